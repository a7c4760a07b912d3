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
mod simulation;

pub use config::{ConfigError, RunConfig};
pub use simulation::{Checkpoint, Evaluation, Recorder, RoundMetrics, Simulation, Summary};
