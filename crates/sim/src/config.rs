//! The run configuration: every field documented, defaults that reproduce the thesis's
//! homogeneous-MNIST setting, validation before any work starts.

use byzadam_data::partition::Scheme;
use byzadam_data::DatasetKind;
use byzadam_model::{GradientPolicy, ModelKind};
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
}

impl Default for RunConfig {
    fn default() -> Self {
        Self {
            dataset: DatasetKind::Mnist,
            partition: Scheme::Homogeneous { per_class: None, order: Default::default() },
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

fn bad(key: &str, reason: impl Into<String>) -> ConfigError {
    ConfigError {
        key: key.into(),
        reason: reason.into(),
    }
}

impl RunConfig {
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
        self.partition.check().map_err(|e| within("partition", e))?;
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
        let shape = self.model.build().input();
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
