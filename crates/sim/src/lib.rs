//! # byzadam-sim
//!
//! The thesis's training loop, simulated in one process: every round, the honest workers
//! compute their messages (mini-batch gradient → l2 and clipping → optimizer message), the
//! Byzantine workers compute genuine messages when their attack needs them (on flipped labels
//! for label flip) and the attack forges what they send, the server runs its robust pipeline on
//! each message and steps the model; every `eval_every` rounds the model is evaluated.
//!
//! Workers run in parallel over rayon's pool; each owns its network, sampler and random
//! streams, and results are gathered in worker order, so a run's metrics are bit-identical
//! whatever the thread count.
//!
//! Batch-normalisation running statistics (CIFAR-10 CNN) are each worker's own, updated by its
//! own training passes as its PyTorch replica's would be; evaluation uses the mean of the
//! honest workers' statistics (the simulator knows who is honest; a networked server would
//! have to aggregate them robustly, which is left open).

mod config;
mod resolve;
pub mod round;
pub mod seeds;
mod simulation;

pub use config::{
    ByzantineWorkers, ConfigError, EvalSubset, InitFile, RunConfig, TrainingModeEval,
    MAX_INIT_BYTES, MAX_ROUNDS,
};

/// The version of the numbers a config produces. Part of every run's id (`byzadam-experiment`),
/// so a store never mixes runs of one config that different builds computed differently.
///
/// Bump it in the commit that makes any config give other numbers than before: a kernel's
/// summation order, a seed derivation ([`seeds`]), a default's meaning, a fixed bug. Keep the
/// list below in step.
///
/// - 0: runs recorded before results versions existed (the store's value for them).
/// - 1: independent seed streams ([`seeds`], issue 13).
/// - 2: the CIFAR-10 CNNs' 3 × 3 convolutions of 16 or more input channels by Winograd's
///   F(4×4, 3×3) instead of F(2×2, 3×3) (issue 25): other rounding, in training and
///   evaluation alike; the MNIST CNN, logistic regression and MLP compute the same bits.
pub const RESULTS_VERSION: u32 = 2;
pub use resolve::{apply_set, non_finite, read_text, toml_value, ResolveError, MAX_TEXT_BYTES};
pub use round::{EngineWorker, EvaluationDue, Evaluator, Server, Worker};
pub use simulation::{
    Checkpoint, Evaluation, Recorder, RoundError, RoundMetrics, Simulation, Summary,
    PASS_WORKERS_VAR,
};
