use crate::round::{self, EngineWorker, EvaluationDue, Evaluator, Server, WorkerCheckpoint};
use crate::{ConfigError, RunConfig};
use byzadam_data::sampler::EpochSampler;
use byzadam_data::Split;
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
    /// A half was given input of the wrong shape (a message or a parameter vector of the
    /// wrong length, the wrong number of losses): from the Python bindings or another front
    /// end, never from the simulator itself.
    #[error("{reason}")]
    Input {
        /// What is wrong.
        reason: String,
    },
    /// Too few replies arrived for the pipeline's requirement (a networked round past its
    /// deadline, [`crate::round::Server::step_present`]): the round was not applied.
    #[error("round {round}: {replies} replies are too few to aggregate: {reason}")]
    TooFewReplies {
        /// The round, from 1.
        round: u64,
        /// Replies that arrived.
        replies: usize,
        /// What the pipeline requires.
        reason: String,
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
        // `bincode::deserialize`'s format, with a limit: a length prefix in a hostile file
        // cannot make it read (or allocate) past the input's own size.
        use bincode::Options;
        bincode::DefaultOptions::new()
            .with_fixint_encoding()
            .allow_trailing_bytes()
            .with_limit(bytes.len() as u64)
            .deserialize(body)
            .map_err(|e| format!("corrupt checkpoint: {e}"))
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

/// A run in progress: the built-in engine's workers feeding the server half
/// ([`crate::round`]), with evaluation on the built-in engine.
pub struct Simulation {
    config: RunConfig,
    workers: Vec<EngineWorker>,
    server: Server,
    evaluator: Evaluator,
    /// Per-class recall at the last round's evaluation.
    final_recall: Vec<f64>,
    // Per-round buffers, reused: each message of every worker (`workers × dim`), the losses.
    messages: Vec<Vec<f32>>,
    losses: Vec<f32>,
    /// One scratch network per thread, on which the gradient passes of the workers that
    /// thread runs are computed (`EngineWorker::gradients`): one set of buffers per thread
    /// stays in cache where fifteen workers' sets would evict each other. Never part of a
    /// result.
    scratch: byzadam_model::ThreadNetworks,
    /// The most workers one gradient pass takes (see [`Simulation::set_pass_workers`]).
    pass_workers: usize,
    /// The most workers whose batches keep a pass within [`PASS_BYTES`] (at least one).
    pass_cap: usize,
}

/// The most memory one batched pass's buffers may take (activations and what the backward
/// pass keeps): beyond it a pass is cut into several.
const PASS_BYTES: usize = 96 << 20;

/// The environment variable that sets [`Simulation::set_pass_workers`] for every run.
pub const PASS_WORKERS_VAR: &str = "BYZADAM_PASS_WORKERS";

/// `BYZADAM_PASS_WORKERS`, when set: a whole number from 1; an error naming it otherwise.
fn pass_workers_from_env() -> Result<Option<usize>, ConfigError> {
    match std::env::var(PASS_WORKERS_VAR) {
        Err(std::env::VarError::NotPresent) => Ok(None),
        Ok(v) => match v.trim().parse::<usize>() {
            Ok(n) if n >= 1 => Ok(Some(n)),
            _ => Err(ConfigError {
                key: PASS_WORKERS_VAR.into(),
                reason: format!("{v:?} is not a number of workers: use a whole number from 1"),
            }),
        },
        Err(e) => Err(ConfigError {
            key: PASS_WORKERS_VAR.into(),
            reason: e.to_string(),
        }),
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
        let evaluator = Evaluator::new(&config, &data)?;
        let workers = EngineWorker::all(&config, data)?;
        let (params, _) = round::initial_parameters(&config)?;
        let dim = params.len();
        let server = Server::at(config.clone(), params);
        let mut net = config.model.build();
        net.set_head(config.head);
        net.set_flush_subnormals(config.flush_subnormals);
        let pass_workers = pass_workers_from_env()?.unwrap_or(1);
        Ok(Self {
            messages: vec![vec![0.0; workers.len() * dim]; server.messages()],
            losses: vec![0.0; workers.len()],
            scratch: byzadam_model::ThreadNetworks::new(
                &net,
                rayon::current_num_threads().min(workers.len()),
            ),
            pass_workers,
            pass_cap: (PASS_BYTES / (net.pass_bytes_per_image() * config.batch).max(1)).max(1),
            workers,
            server,
            evaluator,
            final_recall: Vec::new(),
            config,
        })
    }

    /// Computes the gradients of up to `n` workers (of those one thread runs) as one batched
    /// pass: each layer's products over all their images at once, the weights packed once
    /// (`Network::loss_and_grad_batched`). The results are the same bits whatever `n`
    /// (tested); only the speed differs. The default, 1, runs each worker's pass on its
    /// thread's scratch network, whose buffers stay in cache: on the machines measured
    /// (BENCHMARKS.md, "Workers batched") that was faster end to end than larger passes,
    /// whose buffers do not fit. `BYZADAM_PASS_WORKERS` sets it for every run. A pass is
    /// also kept within 96 MiB of buffers, whatever `n`. `0` counts as 1.
    pub fn set_pass_workers(&mut self, n: usize) {
        self.pass_workers = n.max(1);
    }

    /// The model's parameters now.
    pub fn params(&self) -> &[f32] {
        self.server.params()
    }

    /// Worker `worker`'s epoch sampler as it stands (a clone draws the batches it will
    /// train on next); `None` past the last worker.
    pub fn sampler(&self, worker: usize) -> Option<&EpochSampler> {
        self.workers.get(worker).map(EngineWorker::sampler)
    }

    /// Each class's recall at the evaluation of the run's last round (empty until that round
    /// has run in this simulation): what [`Simulation::run`] puts in its summary, for callers
    /// that step the run themselves.
    pub fn final_class_recall(&self) -> &[f64] {
        &self.final_recall
    }

    /// Whether worker `worker` is Byzantine in this run; `None` past the last worker.
    pub fn is_byzantine(&self, worker: usize) -> Option<bool> {
        self.server.is_byzantine(worker)
    }

    /// The configuration.
    pub fn config(&self) -> &RunConfig {
        &self.config
    }

    /// Rounds completed.
    pub fn round(&self) -> u64 {
        self.server.round()
    }

    /// The server half.
    pub fn server(&self) -> &Server {
        &self.server
    }

    /// The built-in workers, in worker order.
    pub fn workers(&self) -> &[EngineWorker] {
        &self.workers
    }

    /// A snapshot of the run after its last completed round, with `metrics`, the rounds'
    /// metrics so far (the simulation does not keep them), and `seconds` of training so far.
    pub fn checkpoint(&self, metrics: &[RoundMetrics], seconds: f64) -> Checkpoint {
        Checkpoint {
            config: self.config.clone(),
            round: self.server.round(),
            metrics: metrics.to_vec(),
            seconds,
            diverged_at: self.server.diverged_at(),
            params: self.server.params().to_vec(),
            workers: self.workers.iter().map(EngineWorker::checkpoint).collect(),
            pipelines: self.server.carried(),
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
        if checkpoint.workers.len() != self.workers.len()
            || checkpoint.metrics.len() as u64 != checkpoint.round
        {
            return Err(bad("its shapes do not match the config"));
        }
        // Check every part before changing any.
        let mut server = Server::at(self.config.clone(), self.server.params().to_vec());
        server.restore_parts(
            checkpoint.round,
            checkpoint.diverged_at,
            checkpoint.params,
            checkpoint.pipelines,
        )?;
        let saved: Vec<_> = self.workers.iter().map(EngineWorker::checkpoint).collect();
        for (i, (w, c)) in self.workers.iter_mut().zip(checkpoint.workers).enumerate() {
            if let Err(e) = w.restore(c) {
                for (w, s) in self.workers.iter_mut().zip(saved).take(i) {
                    w.restore(s)?;
                }
                return Err(e);
            }
        }
        self.server = server;
        Ok(checkpoint.metrics)
    }

    /// Each class's recall on the evaluation images under the current model: of the test
    /// images of class `c`, the share predicted as `c` (NaN for a class with no image).
    pub fn class_recall(&mut self) -> Vec<f64> {
        let mut predictions = Vec::new();
        let state = round::honest_mean_state(&self.workers);
        self.evaluator.pass(
            self.server.params(),
            &state,
            self.server.round(),
            Some(&mut predictions),
        );
        self.evaluator.recall_of(&predictions)
    }

    /// Evaluates the current model on the (possibly truncated) test set.
    pub fn evaluate(&mut self) -> Evaluation {
        self.evaluate_in(self.server.round(), false)
    }

    /// Evaluates as during round `round`; `last` records the pass's per-class recall as the
    /// run's final one.
    fn evaluate_in(&mut self, round: u64, last: bool) -> Evaluation {
        let state = round::honest_mean_state(&self.workers);
        let params = self.server.params();
        if last {
            let mut predictions = Vec::new();
            let e = self
                .evaluator
                .pass(params, &state, round, Some(&mut predictions));
            self.final_recall = self.evaluator.recall_of(&predictions);
            e
        } else {
            self.evaluator.pass(params, &state, round, None)
        }
    }

    /// Runs one round and returns its metrics. An error here (an attack or a rule refusing its
    /// input) stops the run; validation rules out every case it can foresee.
    pub fn step(&mut self) -> Result<RoundMetrics, RoundError> {
        let t = self.server.round() + 1;
        let due = self.server.evaluation_due();
        let last = self.server.next_is_last();
        let byzantine_compute = self.server.needs_byzantine_messages();
        let dim = self.server.dim();
        let params = self.server.params();
        let scratch = &self.scratch;
        // Each worker writes its messages straight into its rows of the server's input.
        let mut rows: Vec<Vec<&mut [f32]>> = (0..self.workers.len())
            .map(|_| Vec::with_capacity(self.messages.len()))
            .collect();
        for buffer in &mut self.messages {
            for (r, row) in rows.iter_mut().zip(buffer.chunks_exact_mut(dim)) {
                r.push(row);
            }
        }
        // The workers that compute, in contiguous groups, one per thread: each group's
        // gradients as one batched pass on its thread's scratch network (the same bits as one
        // pass per worker, whatever the grouping), then each worker's message.
        let mut todo: Vec<(&mut EngineWorker, &mut Vec<&mut [f32]>, &mut f32)> = self
            .workers
            .iter_mut()
            .zip(rows.iter_mut())
            .zip(self.losses.iter_mut())
            .filter(|((w, _), _)| !w.is_byzantine() || byzantine_compute)
            .map(|((w, out), loss)| (w, out, loss))
            .collect();
        let size = todo
            .len()
            .div_ceil(scratch.len())
            .clamp(1, self.pass_workers.min(self.pass_cap));
        todo.par_chunks_mut(size).try_for_each(|group| {
            // This thread's scratch network, if no other pass holds it (a nested step on the
            // same thread, or more groups than threads): else the first worker's own.
            let mut held = scratch.try_this_thread();
            let (mut ws, mut losses): (Vec<&mut EngineWorker>, Vec<&mut f32>) = group
                .iter_mut()
                .map(|(w, _, loss)| (&mut **w, &mut **loss))
                .unzip();
            EngineWorker::gradients(&mut ws, params, held.as_deref_mut(), &mut losses)?;
            drop(held);
            for (w, out, _) in group.iter_mut() {
                w.send(params, out)?;
            }
            Ok::<(), RoundError>(())
        })?;
        drop(todo);
        drop(rows);
        let before = (due == Some(EvaluationDue::BeforeUpdate)).then(|| self.evaluate_in(t, last));
        let refs: Vec<&[f32]> = self.messages.iter().map(Vec::as_slice).collect();
        let mut metrics = self.server.step(&refs, &self.losses)?;
        metrics.eval = match before {
            Some(e) => Some(e),
            None => due.is_some().then(|| self.evaluate_in(t, last)),
        };
        Ok(metrics)
    }

    /// Runs the remaining rounds, reporting each to `recorder`.
    pub fn run(&mut self, recorder: &mut dyn Recorder) -> Result<Summary, RoundError> {
        let start = std::time::Instant::now();
        let mut metrics = Vec::new();
        while self.server.round() < self.config.rounds {
            if recorder.stop() {
                return Err(RoundError::Interrupted {
                    round: self.server.round(),
                });
            }
            let m = self.step()?;
            recorder.round(&m);
            metrics.push(m);
        }
        let summary = match Summary::from_metrics(&metrics, start.elapsed().as_secs_f64()) {
            Some(s) => s,
            // No round evaluated (none was left to run): evaluate now.
            None => {
                let e = self.evaluate_in(self.server.round(), true);
                Summary {
                    rounds: self.server.round(),
                    final_accuracy: e.accuracy,
                    best_accuracy: e.accuracy,
                    final_loss: e.loss,
                    diverged_at: self.server.diverged_at(),
                    seconds: start.elapsed().as_secs_f64(),
                    class_recall: Vec::new(),
                }
            }
        };
        // Rounds and divergence count from the run's start, also when `step` ran before.
        Ok(Summary {
            rounds: self.server.round(),
            diverged_at: self.server.diverged_at(),
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
