use crate::seeds::{self, Stream};
use crate::{ByzantineWorkers, ConfigError, RunConfig};
use byzadam_data::sampler::EpochSampler;
use byzadam_data::{partition::partition, Normalization, Split};
use byzadam_model::Network;
use byzadam_optim::WorkerState;
use byzadam_robust::attacks::LabelFlip;
use byzadam_robust::{
    pairwise_squared_distances, Attack, AttackContext, Pipeline, Submissions, ThreatModel,
};
use rand_chacha::ChaCha20Rng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// Test-set loss and accuracy.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Evaluation {
    /// Fraction of test images classified correctly.
    pub accuracy: f64,
    /// Mean cross-entropy.
    pub loss: f64,
}

/// What one round recorded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoundMetrics {
    /// Round number, from 1.
    pub round: u64,
    /// Learning rate used.
    pub lr: f32,
    /// Mean training loss of the honest workers' batches.
    pub train_loss: f64,
    /// `‖ξ_t‖ = ‖F(messages) − mean of the honest messages‖` (first message).
    pub xi_norm: f64,
    /// `max_{i,j ∈ H} ‖q_i − q_j‖` over the honest messages (first message).
    pub honest_diameter: f64,
    /// `λ_t = ‖ξ_t‖ / honest diameter`: the empirical resilience coefficient (section 3.2.3);
    /// `None` when the honest messages coincide.
    pub lambda: Option<f64>,
    /// True once the parameters are no longer all finite.
    pub diverged: bool,
    /// Test-set evaluation, on evaluation rounds.
    pub eval: Option<Evaluation>,
}

/// The outcome of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// Rounds run.
    pub rounds: u64,
    /// Test accuracy at the last evaluation.
    pub final_accuracy: f64,
    /// Best test accuracy seen.
    pub best_accuracy: f64,
    /// Test loss at the last evaluation.
    pub final_loss: f64,
    /// First round after which the parameters were not all finite.
    pub diverged_at: Option<u64>,
    /// Wall-clock seconds of training and evaluation.
    pub seconds: f64,
    /// Each class's recall (the share of its test images predicted as it) at the last
    /// evaluation of the run's last round: which classes a model has lost. Empty when the
    /// run's last round was not evaluated by this run (a summary rebuilt from metrics).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub class_recall: Vec<f64>,
}

/// A round that could not complete: the attack or the server's pipeline refused what it was
/// given. Validation rules out every case it can foresee, so this is rare (an attack whose
/// forged vectors have the wrong shape, a rule's requirement broken by the data).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum RoundError {
    /// The attack failed to forge the Byzantine workers' message.
    #[error("round {round}, message {message}: the attack failed: {source}")]
    Attack {
        /// The round, from 1.
        round: u64,
        /// The message (MRA sends two).
        message: usize,
        /// What the attack said.
        source: byzadam_robust::Error,
    },
    /// The server's pipeline (pre-aggregators and rule) refused the round's messages.
    #[error("round {round}, message {message}: the server's pipeline failed: {source}")]
    Pipeline {
        /// The round, from 1.
        round: u64,
        /// The message (MRA sends two).
        message: usize,
        /// What the rule said.
        source: byzadam_robust::Error,
    },
    /// The recorder asked the run to stop ([`Recorder::stop`]) after `round` rounds: a Ctrl-C
    /// in the Python bindings.
    #[error("interrupted after round {round}")]
    Interrupted {
        /// Rounds completed.
        round: u64,
    },
}

/// Receives each round's metrics as the run goes (progress bars, files, tests).
pub trait Recorder {
    /// Called after every round.
    fn round(&mut self, metrics: &RoundMetrics);

    /// Asked before every round: `true` stops the run with [`RoundError::Interrupted`].
    fn stop(&self) -> bool {
        false
    }
}

impl Recorder for Vec<RoundMetrics> {
    fn round(&mut self, metrics: &RoundMetrics) {
        self.push(metrics.clone());
    }
}

impl Summary {
    /// The summary of a run whose every round is in `metrics` (in order), which took
    /// `seconds`. `None` when no round was evaluated.
    pub fn from_metrics(metrics: &[RoundMetrics], seconds: f64) -> Option<Self> {
        let evals = metrics.iter().filter_map(|m| m.eval);
        let last = evals.clone().next_back()?;
        Some(Self {
            rounds: metrics.last().map_or(0, |m| m.round),
            final_accuracy: last.accuracy,
            best_accuracy: evals.map(|e| e.accuracy).fold(last.accuracy, f64::max),
            final_loss: last.loss,
            diverged_at: metrics.iter().find(|m| m.diverged).map(|m| m.round),
            seconds,
            class_recall: Vec::new(),
        })
    }
}

/// Everything a run carries from one round to the next: restoring it into a fresh
/// [`Simulation`] of the same config continues the run with the same bits as if it had never
/// stopped. Serialised with [`Checkpoint::to_bytes`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// The run's config: a checkpoint restores only into a simulation of the same config.
    /// (Encoded as JSON inside the binary: its tagged enums need a self-describing format.)
    #[serde(with = "config_as_json")]
    pub config: RunConfig,
    /// Rounds completed.
    pub round: u64,
    /// Every round's metrics so far, so that a resumed run reports its whole history.
    pub metrics: Vec<RoundMetrics>,
    /// Seconds of training spent up to the checkpoint (as the caller counted them).
    pub seconds: f64,
    diverged_at: Option<u64>,
    params: Vec<f32>,
    workers: Vec<WorkerCheckpoint>,
    pipelines: Vec<Option<Vec<f32>>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct WorkerCheckpoint {
    bn_state: Vec<f32>,
    opt: WorkerState,
    sampler: EpochSampler,
    rng: ChaCha20Rng,
}

mod config_as_json {
    use crate::RunConfig;
    use serde::{de::Error as _, ser::Error as _, Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(c: &RunConfig, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&serde_json::to_string(c).map_err(S::Error::custom)?)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<RunConfig, D::Error> {
        serde_json::from_str(&String::deserialize(d)?).map_err(D::Error::custom)
    }
}

const CHECKPOINT_MAGIC: &[u8; 8] = b"BZCKPT01";

impl Checkpoint {
    /// A self-describing binary encoding (magic, format version, then bincode). An encoding
    /// failure is an error, never a file holding only the magic number (issue 13).
    pub fn to_bytes(&self) -> Result<Vec<u8>, String> {
        framed(bincode::serialize(self))
    }

    /// Decodes [`Checkpoint::to_bytes`]; an error for anything else (a truncated or foreign
    /// file, an older format).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, String> {
        let body = bytes
            .strip_prefix(CHECKPOINT_MAGIC.as_slice())
            .ok_or("not a byzadam checkpoint (or an older format)")?;
        bincode::deserialize(body).map_err(|e| format!("corrupt checkpoint: {e}"))
    }
}

/// The magic number followed by the encoded `body`, or why there is none.
fn framed(body: bincode::Result<Vec<u8>>) -> Result<Vec<u8>, String> {
    let body = body.map_err(|e| format!("cannot encode the checkpoint: {e}"))?;
    let mut out = Vec::with_capacity(CHECKPOINT_MAGIC.len() + body.len());
    out.extend_from_slice(CHECKPOINT_MAGIC);
    out.extend(body);
    Ok(out)
}

struct Worker {
    byzantine: bool,
    net: Network,
    bn_state: Vec<f32>,
    opt: WorkerState,
    sampler: EpochSampler,
    rng: ChaCha20Rng,
    grad: Vec<f32>,
    msgs: Vec<Vec<f32>>,
    x: Vec<f32>,
    y: Vec<u8>,
    loss: f32,
}

/// A run in progress.
pub struct Simulation {
    config: RunConfig,
    /// The data, shared (a grid's runs hold one copy of the bytes); training images are
    /// normalised batch by batch as they are drawn, so a run holds no `f32` training set.
    data: Arc<Split>,
    norm: Normalization,
    test_x: Vec<f32>,
    test_y: Vec<u8>,
    per_image: usize,
    workers: Vec<Worker>,
    params: Vec<f32>,
    pipelines: Vec<Pipeline>,
    /// The attack on each message (MRA's second may differ: `second_message_attack`).
    attacks: Vec<Option<Box<dyn Attack>>>,
    flip: Option<LabelFlip>,
    eval_net: Network,
    round: u64,
    diverged_at: Option<u64>,
    /// Per-class recall at the last round's evaluation.
    final_recall: Vec<f64>,
    // Per-round buffers, reused.
    honest: Vec<Submissions<'static>>,
    own: Vec<Submissions<'static>>,
    forged: Submissions<'static>,
    all: Submissions<'static>,
    aggregated: Vec<Vec<f32>>,
}

/// The images `which` of `d`, normalised with `norm`.
fn normalize_all(d: &byzadam_data::Dataset, which: &[u32], norm: &Normalization) -> Vec<f32> {
    let n = d.shape.len();
    let mut out = vec![0f32; which.len() * n];
    out.par_chunks_mut(n)
        .zip(which)
        .for_each(|(o, &i)| d.normalized_into(i as usize, norm, o));
    out
}

/// The normalisation a run applies: the dataset's, or none (pixels in `[0, 1]`).
fn normalization(config: &RunConfig, kind: byzadam_data::DatasetKind) -> Normalization {
    let norm = kind.normalization();
    if config.normalize_inputs {
        norm
    } else {
        Normalization {
            mean: vec![0.0; norm.mean.len()],
            std: vec![1.0; norm.std.len()],
        }
    }
}

impl Simulation {
    /// Sets a run up on a copy of `data` (see [`Simulation::shared`] to share one).
    pub fn new(config: RunConfig, data: &Split) -> Result<Self, ConfigError> {
        Self::shared(config, Arc::new(data.clone()))
    }

    /// Sets a run up on `data`, shared with other runs: validates, partitions the training
    /// set, initialises the model and every worker, and normalises the (possibly truncated)
    /// test set once; training batches are normalised as they are drawn.
    pub fn shared(config: RunConfig, data: Arc<Split>) -> Result<Self, ConfigError> {
        config.validate()?;
        let bad = |key: &str, reason: String| ConfigError {
            key: key.into(),
            reason,
        };
        if let Some(k) = config.eval_samples.filter(|&k| k > data.test.len()) {
            return Err(bad(
                "eval_samples",
                format!("the test set has {} images, got {k}", data.test.len()),
            ));
        }
        let n = config.workers;
        let shards = partition(
            &data.train.labels,
            data.train.classes,
            n,
            &config.partition,
            &mut seeds::rng(config.data_seed, Stream::Partition),
        )
        .map_err(|e| bad("partition", e.to_string()))?;
        if let Some((w, s)) = shards
            .shards
            .iter()
            .enumerate()
            .find(|(_, s)| s.len() < config.batch)
        {
            return Err(bad(
                "batch",
                format!(
                    "worker {w} has {} samples, fewer than batch = {}",
                    s.len(),
                    config.batch
                ),
            ));
        }
        let mut net = config.model.build();
        net.set_head(config.head);
        let mut params = vec![0.0; net.num_params()];
        let mut bn_state = vec![0.0; net.num_state()];
        net.init(
            &mut seeds::rng(config.seed, Stream::Init),
            &mut params,
            &mut bn_state,
        );
        let attack = config.attack.clone().map(|a| a.build());
        let flip = attack.as_ref().and_then(|a| a.label_flip());
        let f = if attack.is_some() {
            config.byzantine
        } else {
            0
        };
        let dim = params.len();
        let messages = config.optimizer.messages();
        let attacks = (0..messages)
            .map(|k| match (&config.second_message_attack, k) {
                (Some(second), 1) => Some(second.clone().build()),
                _ => attack.clone(),
            })
            .collect();
        let byzantine = |w: usize| match config.byzantine_workers {
            ByzantineWorkers::Last => w >= n - f,
            ByzantineWorkers::First => w < f,
        };
        let shared = seeds::rng(config.seed, Stream::SharedFirstEpoch);
        let workers = shards
            .shards
            .into_iter()
            .enumerate()
            .map(|(w, shard)| Worker {
                byzantine: byzantine(w),
                net: net.clone(),
                bn_state: bn_state.clone(),
                opt: config.optimizer.worker_state(dim),
                sampler: {
                    let mut s = EpochSampler::new(
                        shard,
                        config.batch,
                        seeds::rng(config.seed, Stream::Sampler { worker: w }),
                    );
                    if config.shared_first_shuffle {
                        // The same stream, from the same start, for every worker.
                        s.start_first_epoch_with(&mut shared.clone());
                    }
                    s
                },
                rng: seeds::rng(config.seed, Stream::Worker { worker: w }),
                grad: vec![0.0; dim],
                msgs: vec![vec![0.0; dim]; messages],
                x: Vec::new(),
                y: Vec::new(),
                loss: 0.0,
            })
            .collect();
        let pipelines = (0..messages).map(|_| config.pipeline()).collect();
        let which: Vec<u32> = match &config.eval_subset {
            Some(subset) => {
                let idx = subset
                    .indices(config.dataset)
                    .map_err(|e| bad("eval_subset", e))?;
                if let Some(&i) = idx.iter().find(|&&i| i as usize >= data.test.len()) {
                    return Err(bad(
                        "eval_subset",
                        format!(
                            "index {i} is past the test set's {} images",
                            data.test.len()
                        ),
                    ));
                }
                idx
            }
            None => (0..config.eval_samples.unwrap_or(data.test.len()) as u32).collect(),
        };
        let norm = normalization(&config, data.train.kind);
        let test_x = normalize_all(&data.test, &which, &norm);
        let test_y = which
            .iter()
            .map(|&i| data.test.labels[i as usize])
            .collect();
        let per_image = data.train.shape.len();
        Ok(Self {
            norm,
            data,
            test_x,
            test_y,
            per_image,
            workers,
            params,
            pipelines,
            attacks,
            flip,
            eval_net: net,
            round: 0,
            diverged_at: None,
            final_recall: Vec::new(),
            honest: vec![Submissions::default(); messages],
            own: vec![Submissions::default(); messages],
            forged: Submissions::default(),
            all: Submissions::default(),
            aggregated: vec![vec![0.0; dim]; messages],
            config,
        })
    }

    /// The model's parameters now.
    pub fn params(&self) -> &[f32] {
        &self.params
    }

    /// Worker `worker`'s epoch sampler as it stands (a clone draws the batches it will
    /// train on next); `None` past the last worker.
    pub fn sampler(&self, worker: usize) -> Option<&EpochSampler> {
        self.workers.get(worker).map(|w| &w.sampler)
    }

    /// Each class's recall at the evaluation of the run's last round (empty until that round
    /// has run in this simulation): what [`Simulation::run`] puts in its summary, for callers
    /// that step the run themselves.
    pub fn final_class_recall(&self) -> &[f64] {
        &self.final_recall
    }

    /// Whether worker `worker` is Byzantine in this run; `None` past the last worker.
    pub fn is_byzantine(&self, worker: usize) -> Option<bool> {
        self.workers.get(worker).map(|w| w.byzantine)
    }

    /// The configuration.
    pub fn config(&self) -> &RunConfig {
        &self.config
    }

    /// Rounds completed.
    pub fn round(&self) -> u64 {
        self.round
    }

    /// A snapshot of the run after its last completed round, with `metrics`, the rounds'
    /// metrics so far (the simulation does not keep them), and `seconds` of training so far.
    pub fn checkpoint(&self, metrics: &[RoundMetrics], seconds: f64) -> Checkpoint {
        Checkpoint {
            config: self.config.clone(),
            round: self.round,
            metrics: metrics.to_vec(),
            seconds,
            diverged_at: self.diverged_at,
            params: self.params.clone(),
            workers: self
                .workers
                .iter()
                .map(|w| WorkerCheckpoint {
                    bn_state: w.bn_state.clone(),
                    opt: w.opt.clone(),
                    sampler: w.sampler.clone(),
                    rng: w.rng.clone(),
                })
                .collect(),
            pipelines: self.pipelines.iter().map(Pipeline::carried).collect(),
        }
    }

    /// Continues from `checkpoint`, which must come from a simulation of the same config
    /// (checked, with its shapes); returns the metrics of the rounds it had completed.
    pub fn restore(&mut self, checkpoint: Checkpoint) -> Result<Vec<RoundMetrics>, ConfigError> {
        let bad = |reason: &str| ConfigError {
            key: "checkpoint".into(),
            reason: reason.into(),
        };
        if checkpoint.config != self.config {
            return Err(bad("it belongs to another config"));
        }
        let consistent = checkpoint.params.len() == self.params.len()
            && checkpoint.workers.len() == self.workers.len()
            && checkpoint.pipelines.len() == self.pipelines.len()
            && checkpoint.metrics.len() as u64 == checkpoint.round
            && checkpoint.round <= self.config.rounds
            && checkpoint
                .workers
                .iter()
                .zip(&self.workers)
                .all(|(c, w)| c.bn_state.len() == w.bn_state.len());
        if !consistent {
            return Err(bad("its shapes do not match the config"));
        }
        self.round = checkpoint.round;
        self.diverged_at = checkpoint.diverged_at;
        self.params = checkpoint.params;
        for (w, c) in self.workers.iter_mut().zip(checkpoint.workers) {
            w.bn_state = c.bn_state;
            w.opt = c.opt;
            w.sampler = c.sampler;
            w.rng = c.rng;
        }
        for (p, c) in self.pipelines.iter_mut().zip(checkpoint.pipelines) {
            p.restore(c);
        }
        Ok(checkpoint.metrics)
    }

    /// The batch-norm statistics evaluation uses: the honest workers' mean.
    fn eval_state(&self) -> Vec<f32> {
        let honest: Vec<&Worker> = self.workers.iter().filter(|w| !w.byzantine).collect();
        let mut state = vec![0.0; self.eval_net.num_state()];
        for w in &honest {
            for (s, &v) in state.iter_mut().zip(&w.bn_state) {
                *s += v / honest.len() as f32;
            }
        }
        state
    }

    /// Each class's recall on the evaluation images under the current model: of the test
    /// images of class `c`, the share predicted as `c` (NaN for a class with no image).
    pub fn class_recall(&mut self) -> Vec<f64> {
        let mut predictions = Vec::new();
        self.evaluation_pass(Some(&mut predictions));
        self.recall_of(&predictions)
    }

    /// Per-class recall of `predictions` (one per evaluation image, in order).
    fn recall_of(&self, predictions: &[u8]) -> Vec<f64> {
        let classes = self.eval_net.classes();
        let (mut hit, mut total) = (vec![0usize; classes], vec![0usize; classes]);
        for (&p, &y) in predictions.iter().zip(&self.test_y) {
            total[y as usize] += 1;
            hit[y as usize] += usize::from(p == y);
        }
        hit.iter()
            .zip(&total)
            .map(|(&h, &t)| {
                if t == 0 {
                    f64::NAN
                } else {
                    h as f64 / t as f64
                }
            })
            .collect()
    }

    /// Evaluates the current model on the (possibly truncated) test set.
    pub fn evaluate(&mut self) -> Evaluation {
        self.evaluation_pass(None)
    }

    /// Evaluates, and records the per-class recall of the same pass as the run's final one.
    fn evaluate_final(&mut self) -> Evaluation {
        let mut predictions = Vec::new();
        let e = self.evaluation_pass(Some(&mut predictions));
        self.final_recall = self.recall_of(&predictions);
        e
    }

    /// One pass over the evaluation images (in training mode with the round's evaluation
    /// stream when `training_mode_eval` is set), pushing predictions when asked for.
    fn evaluation_pass(&mut self, predictions: Option<&mut Vec<u8>>) -> Evaluation {
        let state = self.eval_state();
        let (params, x, y) = (&self.params, &self.test_x, &self.test_y);
        let ev = match (self.config.training_mode_eval, predictions) {
            (Some(t), p) => self.eval_net.evaluate_in_training_mode(
                params,
                &state,
                x,
                y,
                t.batch,
                &mut seeds::rng(self.config.seed, Stream::Evaluation { round: self.round }),
                p,
            ),
            (None, Some(p)) => self
                .eval_net
                .evaluate_predicting(params, &state, x, y, 500, p),
            (None, None) => self.eval_net.evaluate(params, &state, x, y, 500),
        };
        Evaluation {
            accuracy: ev.accuracy(),
            loss: ev.loss(),
        }
    }

    /// Runs one round and returns its metrics. An error here (an attack or a rule refusing its
    /// input) stops the run; validation rules out every case it can foresee.
    pub fn step(&mut self) -> Result<RoundMetrics, RoundError> {
        self.round += 1;
        let t = self.round;
        let byzantine_compute = self.attacks.iter().flatten().any(|a| {
            matches!(
                a.threat_model(),
                ThreatModel::OwnGenuine | ThreatModel::DataPoisoning
            )
        });
        let (params, train, norm, per) =
            (&self.params, &self.data.train, &self.norm, self.per_image);
        let (optimizer, policy, flip) = (&self.config.optimizer, &self.config.gradient, self.flip);
        self.workers
            .par_iter_mut()
            .filter(|w| !w.byzantine || byzantine_compute)
            .for_each(|w| {
                let batch = w.sampler.next_batch();
                w.x.resize(batch.len() * per, 0.0);
                w.y.clear();
                for (k, &i) in batch.iter().enumerate() {
                    let i = i as usize;
                    train.normalized_into(i, norm, &mut w.x[k * per..(k + 1) * per]);
                    let y = train.labels[i];
                    w.y.push(match flip {
                        Some(f) if w.byzantine => f.flip(y as usize) as u8,
                        _ => y,
                    });
                }
                w.loss = w.net.loss_and_grad(
                    params,
                    &mut w.bn_state,
                    &w.x,
                    &w.y,
                    &mut w.rng,
                    &mut w.grad,
                );
                policy.apply(params, &mut w.grad);
                optimizer.worker_message(&mut w.opt, &w.grad, &mut w.msgs);
            });
        let dim = self.params.len();
        let honest_count = self.workers.iter().filter(|w| !w.byzantine).count();
        let byz_count = self.workers.len() - honest_count;
        let mut xi_norm = 0.0;
        let mut diameter = 0.0;
        for k in 0..self.pipelines.len() {
            let (honest, own) = (&mut self.honest[k], &mut self.own[k]);
            honest.reshape(honest_count, dim);
            own.reshape(byz_count, dim);
            let (mut hi, mut bi) = (0, 0);
            for w in &self.workers {
                if w.byzantine {
                    own.row_mut(bi).copy_from_slice(&w.msgs[k]);
                    bi += 1;
                } else {
                    honest.row_mut(hi).copy_from_slice(&w.msgs[k]);
                    hi += 1;
                }
            }
            self.all.copy_from(honest);
            if let Some(attack) = self.attacks[k].as_mut() {
                let ctx = AttackContext {
                    n: self.workers.len(),
                    byzantine: byz_count,
                    dim,
                    own: byzantine_compute.then_some(&*own),
                    honest: Some(&*honest),
                    server: Some(&self.pipelines[k]),
                };
                let mut rng = seeds::rng(
                    self.config.seed,
                    Stream::Attack {
                        round: t,
                        message: k,
                    },
                );
                let failed = |source| RoundError::Attack {
                    round: t,
                    message: k,
                    source,
                };
                attack
                    .forge(&ctx, &mut rng, &mut self.forged)
                    .map_err(failed)?;
                self.all.extend(&self.forged).map_err(failed)?;
            }
            let mut rng = seeds::rng(
                self.config.seed,
                Stream::Pipeline {
                    round: t,
                    message: k,
                },
            );
            self.pipelines[k]
                .run_into(&self.all, &mut rng, &mut self.aggregated[k])
                .map_err(|source| RoundError::Pipeline {
                    round: t,
                    message: k,
                    source,
                })?;
            if k == 0 {
                let mut mean = vec![0f64; dim];
                for row in honest.rows() {
                    for (m, &v) in mean.iter_mut().zip(row) {
                        *m += v as f64 / honest_count as f64;
                    }
                }
                xi_norm = self.aggregated[0]
                    .iter()
                    .zip(&mean)
                    .map(|(&a, m)| (a as f64 - m).powi(2))
                    .sum::<f64>()
                    .sqrt();
                let mut d2 = vec![0.0; honest_count * honest_count];
                if pairwise_squared_distances(honest, &mut d2).is_ok() {
                    diameter = d2.iter().copied().fold(0.0, f64::max).sqrt();
                }
            }
        }
        let evaluating = t.is_multiple_of(self.config.eval_every) || t == self.config.rounds;
        let last = t == self.config.rounds;
        let evaluate = |sim: &mut Self| {
            if last {
                sim.evaluate_final()
            } else {
                sim.evaluate()
            }
        };
        let before = (evaluating && self.config.eval_before_update).then(|| evaluate(self));
        let refs: Vec<&[f32]> = self.aggregated.iter().map(|v| v.as_slice()).collect();
        self.config
            .optimizer
            .server_step(t, &mut self.params, &refs);
        if self.diverged_at.is_none() && !self.params.iter().all(|p| p.is_finite()) {
            self.diverged_at = Some(t);
        }
        let train_loss = self
            .workers
            .iter()
            .filter(|w| !w.byzantine)
            .map(|w| w.loss as f64)
            .sum::<f64>()
            / honest_count as f64;
        let eval = match before {
            Some(e) => Some(e),
            None => evaluating.then(|| evaluate(self)),
        };
        Ok(RoundMetrics {
            round: t,
            lr: self.config.optimizer.lr().at(t),
            train_loss,
            xi_norm,
            honest_diameter: diameter,
            lambda: (diameter > 0.0).then(|| xi_norm / diameter),
            diverged: self.diverged_at.is_some(),
            eval,
        })
    }

    /// Runs the remaining rounds, reporting each to `recorder`.
    pub fn run(&mut self, recorder: &mut dyn Recorder) -> Result<Summary, RoundError> {
        let start = std::time::Instant::now();
        let mut metrics = Vec::new();
        while self.round < self.config.rounds {
            if recorder.stop() {
                return Err(RoundError::Interrupted { round: self.round });
            }
            let m = self.step()?;
            recorder.round(&m);
            metrics.push(m);
        }
        let summary = match Summary::from_metrics(&metrics, start.elapsed().as_secs_f64()) {
            Some(s) => s,
            // No round evaluated (none was left to run): evaluate now.
            None => {
                let e = self.evaluate_final();
                Summary {
                    rounds: self.round,
                    final_accuracy: e.accuracy,
                    best_accuracy: e.accuracy,
                    final_loss: e.loss,
                    diverged_at: self.diverged_at,
                    seconds: start.elapsed().as_secs_f64(),
                    class_recall: Vec::new(),
                }
            }
        };
        // Rounds and divergence count from the run's start, also when `step` ran before.
        Ok(Summary {
            rounds: self.round,
            diverged_at: self.diverged_at,
            class_recall: self.final_recall.clone(),
            ..summary
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_checkpoint_that_cannot_be_encoded_is_an_error_not_a_bare_magic_number() {
        let failed = framed(Err(Box::new(bincode::ErrorKind::SizeLimit)));
        assert!(failed.is_err_and(|e| e.contains("cannot encode")));
        let ok = framed(Ok(vec![7, 8])).expect("encodes");
        assert_eq!(&ok[..8], CHECKPOINT_MAGIC);
        assert_eq!(&ok[8..], [7, 8]);
    }
}
