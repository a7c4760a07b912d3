//! The run configuration: every field documented, defaults that reproduce the thesis's
//! homogeneous-MNIST setting, validation before any work starts.

use byzadam_data::partition::Scheme;
use byzadam_data::DatasetKind;
use byzadam_model::{GradientPolicy, Head, ModelKind};
use byzadam_optim::{Optimizer, Schedule};
use byzadam_robust::aggregators::TrimmedMean;
use byzadam_robust::attacks::Little;
use byzadam_robust::{AggregatorConfig, AttackConfig, Pipeline, PreAggregatorConfig};
use serde::{Deserialize, Serialize};

/// One training run: `workers` workers, `byzantine` of them attacking, for `rounds` rounds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RunConfig {
    /// `mnist`, `fashion-mnist`, `cifar10` or `synthetic` (default `mnist`).
    pub dataset: DatasetKind,
    /// How the training set is split across all workers, Byzantine ones included (default
    /// the thesis's homogeneous split).
    pub partition: Scheme,
    /// The model (default the thesis's MNIST CNN).
    pub model: ModelKind,
    /// Workers in all, honest and Byzantine (default 15).
    pub workers: usize,
    /// Byzantine workers among them (default 5; the last `byzantine` workers).
    pub byzantine: usize,
    /// Mini-batch per worker (default 25).
    pub batch: usize,
    /// Training rounds (default 300).
    pub rounds: u64,
    /// Evaluate on the test set every this many rounds, and after the last (default 10).
    pub eval_every: u64,
    /// Test images used per evaluation; `None` (default) for the whole test set.
    pub eval_samples: Option<usize>,
    /// What workers send and how the server steps (default DRA, α 0.001, β₁ 0.99, β₂ 0.999).
    pub optimizer: Optimizer,
    /// The server's pre-aggregators, in order (default none).
    pub preaggregators: Vec<PreAggregatorConfig>,
    /// The server's aggregation rule (default trimmed mean with f = 5).
    pub aggregator: AggregatorConfig,
    /// What the Byzantine workers send (default Little); `attack = "none"` for an attack-free
    /// run, in which every worker is honest.
    #[serde(with = "attack_or_none")]
    pub attack: Option<AttackConfig>,
    /// l2 regularisation and clipping of each worker's gradient (default 1e-4 and 2).
    pub gradient: GradientPolicy,
    /// Seed of everything random in training: initialisation, sampling, dropout, attacks.
    pub seed: u64,
    /// Seed of the data split (and of the synthetic dataset).
    pub data_seed: u64,
    /// What the model's outputs feed into the loss (default `log_softmax`: cross-entropy on
    /// the logits; `softmax_then_cross_entropy` is the thesis's code's softmax output followed
    /// by `nn.CrossEntropyLoss`, `model.py` and `worker.py`).
    #[serde(skip_serializing_if = "is_default")]
    pub head: Head,
    /// Whether images are standardised with the dataset's mean and standard deviation
    /// (default true); false feeds pixels in `[0, 1]`, as the thesis's code does
    /// (`transforms.ToTensor()` only, `data_preparation.py`).
    #[serde(skip_serializing_if = "is_true")]
    pub normalize_inputs: bool,
    /// Whether every worker's first epoch is shuffled from one shared stream (default false:
    /// each worker's own). The thesis's code creates every worker's loader right after
    /// `torch.manual_seed(123)` (`main.py`), so all workers visit the same positions of their
    /// shards in the same order in their first epoch; with the `file_order` homogeneous split
    /// that means the same digits in every worker's batch.
    #[serde(skip_serializing_if = "is_default")]
    pub shared_first_shuffle: bool,
    /// Which workers are Byzantine: `last` (default; workers `n − f … n − 1`) or `first`
    /// (`0 … f − 1`, the thesis's code: `idx < f` in `main.py`). Either way the server's
    /// pipeline sees the honest messages first.
    #[serde(skip_serializing_if = "is_default")]
    pub byzantine_workers: ByzantineWorkers,
    /// The attack on the second message (MRA's `v̂`), when it differs from `attack` (default:
    /// the same attack on every message). The thesis's code attacks MRA's `v̂` with Little
    /// under Empire (`main.py`: `attacks.little(moments2, …)` in the `"empire"` case).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub second_message_attack: Option<AttackConfig>,
    /// Evaluate on these test images only: a named list (`"thesis_code_mnist"`,
    /// `"thesis_code_cifar10"`: the thesis's code's 2,000 stratified indices) or a list of
    /// indices. Default: the first `eval_samples` images, or the whole test set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub eval_subset: Option<EvalSubset>,
    /// Whether an evaluation round is evaluated before its update (default false: after).
    /// The thesis's code tests at the start of every round (`main.py`), so its last value
    /// is after `rounds − 1` updates.
    #[serde(skip_serializing_if = "is_default")]
    pub eval_before_update: bool,
    /// Evaluate in training mode (each test batch's own batch-norm statistics, dropout on,
    /// drawn from the round's evaluation stream) in test batches of `batch`, as the thesis's
    /// code's CIFAR-10 runs do (`worker.py`, `test`: `self.model.train()`; test loader batches
    /// of 25). Default: evaluation mode (running statistics, no dropout).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub training_mode_eval: Option<TrainingModeEval>,
    /// Initial parameters from a file instead of drawn from `seed`: a flat `.npy` vector
    /// (float32, or float64 within float32's range; shape `(d,)` or `(1, d)`) of the model's
    /// parameter count in its `model.parameters()` order, finite. Given as a path (relative to
    /// the working directory); resolving the config pins the file's SHA-256 beside it (`init =
    /// { path, sha256 }`), so a run's id names the file's content and a changed file is an
    /// error, never another run under the same id. The batch-norm statistics and every random
    /// stream start as without it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub init: Option<InitFile>,
    /// Flush subnormal floats to zero in the network's passes (default false: computed
    /// exactly, as PyTorch does by default). Training drives some gradients below `f32`'s
    /// normal range (1.2e-38), on which x86 cores slow down on every operation (the thesis's
    /// MNIST setting: 1.8× slower per round once they appear, after a few dozen rounds);
    /// `true` runs those rounds at full speed and changes the results' bits (such values
    /// count as 0), so it is part of the run's id. `byzadam.torch`'s `flush_denormal` is the
    /// same control for PyTorch's kernels (on there by default).
    #[serde(skip_serializing_if = "is_default")]
    pub flush_subnormals: bool,
}

/// A run's initial parameters in a file (see [`RunConfig::init`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "InitRepr")]
pub struct InitFile {
    /// The `.npy` file.
    pub path: String,
    /// The SHA-256 of its bytes (64 lowercase hex digits), recorded when the config is
    /// resolved ([`RunConfig::pin_init`]) and checked whenever the file is read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
}

#[derive(Deserialize)]
#[serde(
    untagged,
    expecting = "a path to an .npy file, or a table { path, sha256 }"
)]
enum InitRepr {
    Path(String),
    Table {
        path: String,
        #[serde(default)]
        sha256: Option<String>,
    },
}

impl From<InitRepr> for InitFile {
    fn from(r: InitRepr) -> Self {
        match r {
            InitRepr::Path(path) => Self { path, sha256: None },
            InitRepr::Table { path, sha256 } => Self { path, sha256 },
        }
    }
}

/// Largest `init` file read: a float64 vector of [`byzadam_model::MAX_PARAMETERS`] values and
/// its header.
pub const MAX_INIT_BYTES: u64 = (byzadam_model::MAX_PARAMETERS as u64) * 8 + (1 << 20);

impl InitFile {
    /// The file's bytes and their SHA-256 (hex), bounded by [`MAX_INIT_BYTES`]; an error
    /// naming the file when it cannot be read, or when its SHA-256 is not the one recorded.
    fn read(&self) -> Result<(Vec<u8>, String), ConfigError> {
        use sha2::{Digest, Sha256};
        let bytes = crate::resolve::read_bounded(std::path::Path::new(&self.path), MAX_INIT_BYTES)
            .map_err(|e| bad("init", e))?;
        let digest: String = Sha256::digest(&bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        if let Some(pinned) = &self.sha256 {
            if *pinned != digest {
                return Err(bad(
                    "init",
                    format!(
                        "{} has changed since the config was resolved (SHA-256 {digest}, the \
                         config records {pinned}): resolve the config again (a new run id) or \
                         restore the file",
                        self.path
                    ),
                ));
            }
        }
        Ok((bytes, digest))
    }

    /// The initial parameters: `dim` finite float32 values.
    pub fn load(&self, dim: usize) -> Result<Vec<f32>, ConfigError> {
        let (bytes, _) = self.read()?;
        let at = |e: String| bad("init", format!("{}: {e}", self.path));
        let array = byzadam_data::npy::parse(&bytes).map_err(at)?;
        let flat = matches!(array.shape[..], [_] | [1, _]);
        if !flat {
            return Err(at(format!(
                "shape {:?}: expected a flat vector, (d,) or (1, d)",
                array.shape
            )));
        }
        if array.data.len() != dim {
            return Err(at(format!(
                "{} values, but the model has {dim} parameters",
                array.data.len()
            )));
        }
        if let Some(i) = array.data.iter().position(|x| !x.is_finite()) {
            return Err(at(format!(
                "value {i} is {}: initial parameters must be finite",
                array.data[i]
            )));
        }
        Ok(array.data)
    }
}

/// Evaluation in training mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainingModeEval {
    /// Test images per batch (the batch statistics are each batch's).
    pub batch: usize,
}

/// Which workers are Byzantine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ByzantineWorkers {
    /// The last `byzantine` workers.
    #[default]
    Last,
    /// The first `byzantine` workers.
    First,
}

/// Test images to evaluate on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum EvalSubset {
    /// A compiled-in list (`byzadam_data::subsets`).
    Named(String),
    /// Test-set indices.
    Indices(Vec<u32>),
}

impl EvalSubset {
    /// The indices, or why there are none (an unknown name, a list for another dataset).
    pub fn indices(&self, dataset: DatasetKind) -> Result<Vec<u32>, String> {
        match self {
            Self::Indices(v) => Ok(v.clone()),
            Self::Named(name) => match byzadam_data::subsets::named(name) {
                Some((idx, kind)) if kind == dataset => Ok(idx),
                Some((_, kind)) => Err(format!(
                    "\"{name}\" indexes the {kind:?} test set, not {dataset:?}'s"
                )),
                None => Err(format!(
                    "unknown subset \"{name}\"; known: {}",
                    byzadam_data::subsets::NAMES
                        .iter()
                        .map(|(n, _)| format!("\"{n}\""))
                        .collect::<Vec<_>>()
                        .join(", ")
                )),
            },
        }
    }
}

fn is_default<T: Default + PartialEq>(v: &T) -> bool {
    *v == T::default()
}

fn is_true(v: &bool) -> bool {
    *v
}

impl Default for RunConfig {
    fn default() -> Self {
        Self {
            dataset: DatasetKind::Mnist,
            partition: Scheme::Homogeneous {
                per_class: None,
                order: Default::default(),
            },
            model: ModelKind::MnistCnn,
            workers: 15,
            byzantine: 5,
            batch: 25,
            rounds: 300,
            eval_every: 10,
            eval_samples: None,
            optimizer: Optimizer::Dra {
                lr: Schedule::Constant { value: 0.001 },
                beta1: 0.99,
                beta2: 0.999,
                eps: 1e-8,
            },
            preaggregators: Vec::new(),
            aggregator: AggregatorConfig::TrimmedMean(TrimmedMean::new(5)),
            attack: Some(AttackConfig::Little(Little::default())),
            gradient: GradientPolicy::default(),
            seed: 0,
            data_seed: 0,
            head: Head::default(),
            normalize_inputs: true,
            shared_first_shuffle: false,
            byzantine_workers: ByzantineWorkers::default(),
            second_message_attack: None,
            eval_subset: None,
            eval_before_update: false,
            training_mode_eval: None,
            init: None,
            flush_subnormals: false,
        }
    }
}

/// A configuration that cannot run, naming the key and what would be valid.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{key}: {reason}")]
pub struct ConfigError {
    /// The offending key (`aggregator.f`, `byzantine`, …).
    pub key: String,
    /// What is wrong and what would be valid.
    pub reason: String,
}

/// Most rounds a run may have (a grid multiplies them by its runs; at a millisecond a round
/// this is already three years).
pub const MAX_ROUNDS: u64 = 100_000_000;

fn bad(key: &str, reason: impl Into<String>) -> ConfigError {
    ConfigError {
        key: key.into(),
        reason: reason.into(),
    }
}

impl RunConfig {
    /// Every key a run config may have (some are left out of its serialised form while they
    /// hold their defaults, so that configs written before they existed keep their ids).
    pub const KEYS: &'static [&'static str] = &[
        "dataset",
        "partition",
        "model",
        "workers",
        "byzantine",
        "batch",
        "rounds",
        "eval_every",
        "eval_samples",
        "optimizer",
        "preaggregators",
        "aggregator",
        "attack",
        "gradient",
        "seed",
        "data_seed",
        "head",
        "normalize_inputs",
        "shared_first_shuffle",
        "byzantine_workers",
        "second_message_attack",
        "eval_subset",
        "eval_before_update",
        "training_mode_eval",
        "init",
    ];

    /// Pins [`RunConfig::init`]: reads its file and records its SHA-256 beside the path (an
    /// error when the file cannot be read, or differs from a SHA-256 already recorded), so
    /// that the config, and a run id hashed from it, names the file's content. Nothing to do
    /// without `init`. [`RunConfig::resolve`] and grid expansion call it.
    pub fn pin_init(&mut self) -> Result<(), ConfigError> {
        if let Some(init) = &mut self.init {
            let (_, digest) = init.read()?;
            init.sha256 = Some(digest);
        }
        Ok(())
    }

    /// The server pipeline this configuration describes.
    pub fn pipeline(&self) -> Pipeline {
        Pipeline::new(
            self.preaggregators
                .iter()
                .cloned()
                .map(|p| p.build())
                .collect(),
            self.aggregator.clone().build(),
        )
    }

    /// Checks everything that can be checked before loading data.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.workers == 0 {
            return Err(bad("workers", "must be at least 1"));
        }
        if let Some(init) = &self.init {
            if init.path.is_empty() {
                return Err(bad("init.path", "empty: name an .npy file"));
            }
            let hex = |h: &String| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit());
            if let Some(h) = init.sha256.as_ref().filter(|h| !hex(h)) {
                return Err(bad(
                    "init.sha256",
                    format!("{h:?} is not a SHA-256 (64 hex digits)"),
                ));
            }
        }
        use byzadam_robust::limits::{MAX_VALUES, MAX_VECTORS};
        if self.workers > MAX_VECTORS {
            return Err(bad(
                "workers",
                format!("at most {MAX_VECTORS}, got {}", self.workers),
            ));
        }
        if self.rounds > MAX_ROUNDS {
            return Err(bad(
                "rounds",
                format!("at most {MAX_ROUNDS}, got {}", self.rounds),
            ));
        }
        if self.byzantine >= self.workers {
            return Err(bad(
                "byzantine",
                format!(
                    "must be less than workers ({}), got {}",
                    self.workers, self.byzantine
                ),
            ));
        }
        if self.batch == 0 {
            return Err(bad("batch", "must be at least 1"));
        }
        if self.rounds == 0 {
            return Err(bad("rounds", "must be at least 1"));
        }
        if self.eval_every == 0 {
            return Err(bad("eval_every", "must be at least 1"));
        }
        if self.eval_samples == Some(0) {
            return Err(bad(
                "eval_samples",
                "must be at least 1 (or absent for the whole test set)",
            ));
        }
        // Each part names its own field: the key is `part.field` (`optimizer.lr.value`).
        let within =
            |part: &str, (field, reason): (&str, String)| bad(&format!("{part}.{field}"), reason);
        self.optimizer.check().map_err(|e| within("optimizer", e))?;
        self.gradient.check().map_err(|e| within("gradient", e))?;
        self.model.check().map_err(|e| within("model", e))?;
        // Every worker's message is a row of the server's n × d input: bound the product
        // (in 128 bits) before anything is allocated.
        let values = self.model.parameter_count() * self.workers as u128;
        if values > MAX_VALUES as u128 {
            return Err(bad(
                "workers",
                format!(
                    "{} workers × {} parameters = {values} values per message, over the \
                     limit of {MAX_VALUES}",
                    self.workers,
                    self.model.parameter_count()
                ),
            ));
        }
        self.partition.check().map_err(|e| within("partition", e))?;
        // Each rule's, pre-aggregator's and attack's own bounds (declared beside its type),
        // named as the key (`aggregator.tau`).
        let param = |part: String, e: byzadam_robust::Error| match e {
            byzadam_robust::Error::InvalidParameter { name, reason, .. } => {
                bad(&format!("{part}.{name}"), reason)
            }
            e => bad(&part, e.to_string()),
        };
        self.aggregator
            .validate()
            .map_err(|e| param("aggregator".into(), e))?;
        for (i, p) in self.preaggregators.iter().enumerate() {
            p.validate()
                .map_err(|e| param(format!("preaggregators[{i}]"), e))?;
        }
        if let Some(a) = &self.attack {
            a.validate().map_err(|e| param("attack".into(), e))?;
        }
        if let Some(a) = &self.second_message_attack {
            a.validate()
                .map_err(|e| param("second_message_attack".into(), e))?;
        }
        let pipeline = self.pipeline();
        let key = if self.preaggregators.is_empty() {
            "aggregator"
        } else {
            "preaggregators"
        };
        pipeline
            .check(self.workers)
            .map_err(|e| bad(key, format!("{e} (with workers = {})", self.workers)))?;
        if let Some(attack) = &self.attack {
            if let Some(flip) = attack.clone().build().label_flip() {
                if flip.classes != 10 {
                    return Err(bad(
                        "attack.classes",
                        format!("every dataset here has 10 classes, got {}", flip.classes),
                    ));
                }
            }
            if self.byzantine == 0 {
                return Err(bad(
                    "attack",
                    "an attack needs byzantine ≥ 1 (or remove the attack)",
                ));
            }
            attack
                .clone()
                .build()
                .check(self.workers, self.byzantine)
                .map_err(|e| bad("attack", e.to_string()))?;
        }
        if let Some(second) = &self.second_message_attack {
            if self.optimizer.messages() < 2 {
                return Err(bad(
                    "second_message_attack",
                    format!(
                        "{} sends one message; only MRA sends a second",
                        self.optimizer.name()
                    ),
                ));
            }
            if self.attack.is_none() {
                return Err(bad(
                    "second_message_attack",
                    "needs an attack on the first message too (attack is \"none\")",
                ));
            }
            let built = second.clone().build();
            if built.label_flip().is_some() {
                return Err(bad(
                    "second_message_attack",
                    "label flip poisons the data, not one message: set it as `attack`",
                ));
            }
            built
                .check(self.workers, self.byzantine)
                .map_err(|e| bad("second_message_attack", e.to_string()))?;
        }
        if self.training_mode_eval.is_some_and(|t| t.batch == 0) {
            return Err(bad("training_mode_eval.batch", "must be at least 1"));
        }
        if let Some(subset) = &self.eval_subset {
            let idx = subset
                .indices(self.dataset)
                .map_err(|e| bad("eval_subset", e))?;
            if idx.is_empty() {
                return Err(bad("eval_subset", "must list at least one test image"));
            }
            let mut sorted = idx.clone();
            sorted.sort_unstable();
            if let Some(w) = sorted.windows(2).find(|w| w[0] == w[1]) {
                return Err(bad(
                    "eval_subset",
                    format!("lists test image {} twice (each image counts once)", w[0]),
                ));
            }
            if self.eval_samples.is_some() {
                return Err(bad(
                    "eval_samples",
                    "give eval_samples or eval_subset, not both",
                ));
            }
        }
        let net = self.model.build();
        check_segments(&self.preaggregators, &self.aggregator, net.num_params())?;
        let shape = net.input();
        let data = self.dataset.shape();
        if (shape.c, shape.h, shape.w) != (data.channels, data.height, data.width) {
            return Err(bad(
                "model",
                format!(
                    "takes {}×{}×{} inputs, but {:?} images are {}×{}×{}",
                    shape.c, shape.h, shape.w, self.dataset, data.channels, data.height, data.width
                ),
            ));
        }
        Ok(())
    }
}

/// Every `segments` list of the pipeline sums to the model's parameter count.
fn check_segments(
    pre: &[PreAggregatorConfig],
    rule: &AggregatorConfig,
    params: usize,
) -> Result<(), ConfigError> {
    let check = |key: String, segments: &[usize]| {
        let total: usize = segments.iter().sum();
        if segments.is_empty() || (total == params && !segments.contains(&0)) {
            Ok(())
        } else {
            Err(bad(
                &key,
                format!(
                    "segment lengths must be ≥ 1 and sum to the model's {params} parameters, got {} summing to {total}",
                    segments.len()
                ),
            ))
        }
    };
    for (i, p) in pre.iter().enumerate() {
        if let PreAggregatorConfig::NearestNeighborMixing(nnm) = p {
            check(format!("preaggregators[{i}].segments"), &nnm.segments)?;
        }
    }
    if let AggregatorConfig::LargestDistanceFilter(l) = rule {
        check("aggregator.segments".into(), &l.segments)?;
    }
    Ok(())
}

/// `attack = "none"` or an attack table (TOML has no null).
mod attack_or_none {
    use byzadam_robust::AttackConfig;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<S: Serializer>(v: &Option<AttackConfig>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            None => "none".serialize(s),
            Some(a) => a.serialize(s),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<AttackConfig>, D::Error> {
        // Decode to a generic value first, so an attack table's own error (an unknown field)
        // is reported rather than serde's "did not match any variant".
        let v = serde_json::Value::deserialize(d)?;
        match v {
            serde_json::Value::String(w) if w == "none" => Ok(None),
            serde_json::Value::String(w) => Err(serde::de::Error::custom(format!(
                "expected \"none\" or an attack table, got \"{w}\""
            ))),
            other => serde_json::from_value(other)
                .map(Some)
                .map_err(serde::de::Error::custom),
        }
    }
}
