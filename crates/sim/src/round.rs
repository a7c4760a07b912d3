//! The round in two halves, which every front end feeds (issue 21).
//!
//! - The **worker half** turns a gradient into what a worker sends: [`Worker`] (any gradient
//!   source: the gradient policy, then the optimizer's worker step, with the optimizer's
//!   moments carried across rounds) and [`EngineWorker`] (a [`Worker`] with the built-in
//!   engine: its shard's sampler, its network, batch-norm statistics and dropout stream, and
//!   its gradient at the shared parameters).
//! - The **server half**, [`Server`], takes the messages of every worker in worker order and
//!   the honest workers' losses, and does the rest: the Byzantine workers' forgeries by their
//!   threat model, the pre-aggregators and the rule on each message, ξ and λ, the optimizer's
//!   server step and the divergence check. It holds the parameters, the pipelines' carried
//!   state and the round counter.
//! - Evaluation is a separate call that the front end makes when [`Server::evaluation_due`]
//!   says so: [`Evaluator`] on the built-in engine.
//!
//! [`crate::Simulation`] is built-in workers feeding the server half; the Python bindings
//! expose both halves, so a loop written in Python reproduces `byzadam run` bit for bit.

use crate::seeds::{self, Stream};
use crate::simulation::{Evaluation, RoundError, RoundMetrics};
use crate::{ByzantineWorkers, ConfigError, RunConfig};
use byzadam_data::partition::partition;
use byzadam_data::sampler::EpochSampler;
use byzadam_data::{Dataset, Normalization, Split};
use byzadam_model::{GradientPolicy, Job, Network};
use byzadam_optim::{Optimizer, WorkerState};
use byzadam_robust::attacks::LabelFlip;
use byzadam_robust::{
    distance_to_mean, pairwise_squared_distances, Attack, AttackContext, Pipeline, Submissions,
    ThreatModel,
};
use rand_chacha::ChaCha20Rng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

fn bad(key: &str, reason: impl Into<String>) -> ConfigError {
    ConfigError {
        key: key.into(),
        reason: reason.into(),
    }
}

/// Whether worker `w` of `config` is Byzantine (none is when the run has no attack).
pub fn is_byzantine(config: &RunConfig, w: usize) -> bool {
    let f = if config.attack.is_some() {
        config.byzantine
    } else {
        0
    };
    match config.byzantine_workers {
        ByzantineWorkers::Last => w >= config.workers - f,
        ByzantineWorkers::First => w < f,
    }
}

/// The model's initial parameters and batch-norm state, drawn from the run's `seed`
/// ([`Stream::Init`]), flat in PyTorch's `model.parameters()` order; the parameters read
/// from the config's `init` file instead when it has one (an error naming the file when it
/// cannot be read, has changed since the config was resolved, or does not fit the model).
pub fn initial_parameters(config: &RunConfig) -> Result<(Vec<f32>, Vec<f32>), ConfigError> {
    let net = config.model.build();
    let mut params = vec![0.0; net.num_params()];
    let mut state = vec![0.0; net.num_state()];
    net.init(
        &mut seeds::rng(config.seed, Stream::Init),
        &mut params,
        &mut state,
    );
    if let Some(init) = &config.init {
        params = init.load(params.len())?;
    }
    Ok((params, state))
}

/// The normalisation a run applies: the dataset's, or none (pixels in `[0, 1]`).
pub fn normalization(config: &RunConfig, kind: byzadam_data::DatasetKind) -> Normalization {
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

/// The worker half for any gradient source: the gradient policy (l2, clipping), then the
/// optimizer's worker step, whose moments it carries from round to round.
#[derive(Debug, Clone, PartialEq)]
pub struct Worker {
    optimizer: Optimizer,
    policy: GradientPolicy,
    state: WorkerState,
    dim: usize,
}

impl Worker {
    /// A fresh worker of `config`'s optimizer and gradient policy, for `dim` parameters.
    pub fn new(config: &RunConfig, dim: usize) -> Self {
        Self {
            optimizer: config.optimizer.clone(),
            policy: config.gradient,
            state: config.optimizer.worker_state(dim),
            dim,
        }
    }

    /// [`Worker::new`] for a `dim` from input: at most
    /// [`MAX_DIMENSION`](byzadam_robust::limits::MAX_DIMENSION), and an error, not an abort,
    /// where the allocator refuses the optimizer's state.
    pub fn try_new(config: &RunConfig, dim: usize) -> Result<Self, RoundError> {
        use byzadam_robust::limits::{at_most, MAX_DIMENSION};
        let input = |reason: String| RoundError::Input { reason };
        if dim == 0 {
            return Err(input("dim must be at least 1".into()));
        }
        at_most("dim", dim as u128, MAX_DIMENSION).map_err(|e| input(e.to_string()))?;
        let state = config.optimizer.try_worker_state(dim).map_err(|_| {
            input(format!(
                "dim = {dim}: not enough memory for the optimizer's state"
            ))
        })?;
        Ok(Self {
            optimizer: config.optimizer.clone(),
            policy: config.gradient,
            state,
            dim,
        })
    }

    /// The parameter count.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Vectors sent per round (2 for MRA, else 1).
    pub fn messages(&self) -> usize {
        self.optimizer.messages()
    }

    /// The optimizer's state (moments and step count).
    pub fn state(&self) -> &WorkerState {
        &self.state
    }

    /// Replaces the optimizer's state (from [`Worker::state`] of a worker of the same config).
    pub fn set_state(&mut self, state: WorkerState) -> Result<(), ConfigError> {
        let fresh = self.optimizer.worker_state(self.dim);
        if state.m.len() != fresh.m.len() || state.v.len() != fresh.v.len() {
            return Err(bad(
                "checkpoint",
                "the optimizer state's shapes do not match the config",
            ));
        }
        self.state = state;
        Ok(())
    }

    /// The optimizer state as bytes (magic number, then bincode), for [`Worker::restore`].
    pub fn checkpoint(&self) -> Result<Vec<u8>, String> {
        encode(HALF_MAGIC, &self.state)
    }

    /// Continues from [`Worker::checkpoint`]'s bytes, taken from a worker of the same config.
    pub fn restore(&mut self, bytes: &[u8]) -> Result<(), String> {
        let state: WorkerState = decode(HALF_MAGIC, "worker", bytes)?;
        self.set_state(state).map_err(|e| e.reason)
    }

    /// An error unless `out` holds [`Worker::messages`] vectors of the model's length.
    fn check_out<O: AsMut<[f32]>>(&self, out: &mut [O]) -> Result<(), RoundError> {
        if out.len() != self.messages() || out.iter_mut().any(|o| o.as_mut().len() != self.dim) {
            return Err(RoundError::Input {
                reason: format!(
                    "a worker writes {} message(s) of {} values",
                    self.messages(),
                    self.dim
                ),
            });
        }
        Ok(())
    }

    /// What the worker sends for `gradient` at `params`: the gradient policy is applied to
    /// `gradient` in place, then the optimizer's worker step writes [`Worker::messages`]
    /// vectors into `out`. An error (and no state change) when a length is wrong.
    pub fn message<O: AsMut<[f32]>>(
        &mut self,
        params: &[f32],
        gradient: &mut [f32],
        out: &mut [O],
    ) -> Result<(), RoundError> {
        let shape = |reason: String| RoundError::Input { reason };
        if params.len() != self.dim || gradient.len() != self.dim {
            return Err(shape(format!(
                "the parameters ({}) and the gradient ({}) must both have the model's {} values",
                params.len(),
                gradient.len(),
                self.dim
            )));
        }
        self.check_out(out)?;
        self.policy.apply(params, gradient);
        self.optimizer
            .worker_message(&mut self.state, gradient, out);
        Ok(())
    }
}

/// A worker on the built-in engine: [`Worker`] plus its shard's epoch sampler, its network
/// (batch-norm running statistics its own), its dropout stream, and the run's data.
pub struct EngineWorker {
    index: usize,
    byzantine: bool,
    /// Label flip's relabelling, applied when this worker is Byzantine.
    flip: Option<LabelFlip>,
    half: Worker,
    net: Network,
    bn_state: Vec<f32>,
    sampler: EpochSampler,
    rng: ChaCha20Rng,
    data: Arc<Split>,
    norm: Normalization,
    per_image: usize,
    grad: Vec<f32>,
    x: Vec<f32>,
    y: Vec<u8>,
}

/// An [`EngineWorker`]'s state between rounds: restoring it into the same worker of a fresh
/// run of the same config continues with the same bits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkerCheckpoint {
    bn_state: Vec<f32>,
    opt: WorkerState,
    sampler: EpochSampler,
    rng: ChaCha20Rng,
}

const WORKER_MAGIC: &[u8; 8] = b"BZWORK01";
const HALF_MAGIC: &[u8; 8] = b"BZHALF01";
const SERVER_MAGIC: &[u8; 8] = b"BZSERV01";

fn encode<T: Serialize>(magic: &[u8; 8], value: &T) -> Result<Vec<u8>, String> {
    let body = bincode::serialize(value).map_err(|e| format!("cannot encode the state: {e}"))?;
    let mut out = magic.to_vec();
    out.extend(body);
    Ok(out)
}

fn decode<T: for<'de> Deserialize<'de>>(
    magic: &[u8; 8],
    what: &str,
    bytes: &[u8],
) -> Result<T, String> {
    let body = bytes
        .strip_prefix(magic.as_slice())
        .ok_or_else(|| format!("not a byzadam {what} state (or an older format)"))?;
    // A length prefix in a hostile file must not allocate past the input's own size.
    use bincode::Options;
    bincode::DefaultOptions::new()
        .with_fixint_encoding()
        .allow_trailing_bytes()
        .with_limit(bytes.len() as u64)
        .deserialize(body)
        .map_err(|e| format!("corrupt {what} state: {e}"))
}

impl WorkerCheckpoint {
    /// A self-describing binary encoding (magic number, then bincode).
    pub fn to_bytes(&self) -> Result<Vec<u8>, String> {
        encode(WORKER_MAGIC, self)
    }

    /// Decodes [`WorkerCheckpoint::to_bytes`]; an error for anything else.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, String> {
        decode(WORKER_MAGIC, "worker", bytes)
    }
}

impl EngineWorker {
    /// Every worker of `config` on `data`: the training set partitioned by `data_seed`, each
    /// worker's sampler and dropout stream drawn from `seed`, every network initialised as
    /// [`initial_parameters`] says (the batch-norm statistics start there).
    pub fn all(config: &RunConfig, data: Arc<Split>) -> Result<Vec<Self>, ConfigError> {
        config.validate()?;
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
        net.set_flush_subnormals(config.flush_subnormals);
        let (params, bn_state) = initial_parameters(config)?;
        let dim = params.len();
        let flip = config.attack.clone().and_then(|a| a.build().label_flip());
        let norm = normalization(config, data.train.kind);
        let per_image = data.train.shape.len();
        let shared = seeds::rng(config.seed, Stream::SharedFirstEpoch);
        Ok(shards
            .shards
            .into_iter()
            .enumerate()
            .map(|(w, shard)| Self {
                index: w,
                byzantine: is_byzantine(config, w),
                flip,
                half: Worker::new(config, dim),
                net: net.clone(),
                bn_state: bn_state.clone(),
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
                data: data.clone(),
                norm: norm.clone(),
                per_image,
                grad: vec![0.0; dim],
                x: Vec::new(),
                y: Vec::new(),
            })
            .collect())
    }

    /// The worker's index, from 0.
    pub fn index(&self) -> usize {
        self.index
    }

    /// Whether this worker is Byzantine (it then trains on flipped labels under label flip).
    pub fn is_byzantine(&self) -> bool {
        self.byzantine
    }

    /// The parameter count.
    pub fn dim(&self) -> usize {
        self.half.dim()
    }

    /// The worker half that turns its gradients into messages.
    pub fn half(&self) -> &Worker {
        &self.half
    }

    /// The worker half, to send a message for a gradient computed elsewhere.
    pub fn half_mut(&mut self) -> &mut Worker {
        &mut self.half
    }

    /// The epoch sampler as it stands (a clone draws the batches this worker trains on next).
    pub fn sampler(&self) -> &EpochSampler {
        &self.sampler
    }

    /// The worker's batch-norm running statistics (empty for a model without batch norm).
    pub fn bn_state(&self) -> &[f32] {
        &self.bn_state
    }

    /// The gradient of the last [`EngineWorker::gradient`] call (after the gradient policy
    /// once [`EngineWorker::step`] has run).
    pub fn last_gradient(&self) -> &[f32] {
        &self.grad
    }

    /// Draws the next batch and computes the loss and gradient at `params` (in
    /// [`EngineWorker::last_gradient`]); updates the batch-norm statistics and the dropout
    /// stream. Returns the batch's mean loss. An error when `params` has the wrong length.
    pub fn gradient(&mut self, params: &[f32]) -> Result<f32, RoundError> {
        self.check_params(params)?;
        self.draw();
        // On the thread's workspace for this model: a process of many workers (the Python
        // engine's) holds one a thread, not one a worker.
        let EngineWorker {
            net,
            bn_state,
            rng,
            grad,
            x,
            y,
            ..
        } = self;
        Ok(net.with_thread_workspace(|net| net.loss_and_grad(params, bn_state, x, y, rng, grad)))
    }

    /// [`EngineWorker::gradient`] for several workers of one run at the same `params`, as one
    /// batched pass on `net` (a network of the run's model: the simulator's per-thread scratch
    /// network) or, without one, on the first worker's network with the thread's workspace
    /// ([`Network::loss_and_grad_batched`], [`Network::with_thread_workspace`]): each worker
    /// gets the same bits as its own `gradient` call. Writes each worker's batch's mean loss
    /// into `losses`.
    ///
    /// Panics if `losses` is shorter than `workers`.
    pub fn gradients(
        workers: &mut [&mut EngineWorker],
        params: &[f32],
        net: Option<&mut Network>,
        losses: &mut [&mut f32],
    ) -> Result<(), RoundError> {
        for w in workers.iter() {
            w.check_params(params)?;
        }
        for w in workers.iter_mut() {
            w.draw();
        }
        let Some((first, rest)) = workers.split_first_mut() else {
            return Ok(());
        };
        let EngineWorker {
            net: own,
            bn_state,
            rng,
            grad,
            x,
            y,
            ..
        } = &mut **first;
        let mut jobs: Vec<Job<'_>> = std::iter::once((bn_state, rng, grad, x, y))
            .chain(
                rest.iter_mut()
                    .map(|w| (&mut w.bn_state, &mut w.rng, &mut w.grad, &mut w.x, &mut w.y)),
            )
            .map(|(state, rng, grad, x, y)| Job {
                images: x,
                labels: y,
                state,
                rng,
                grad,
                loss: 0.0,
            })
            .collect();
        match net {
            Some(net) => net.loss_and_grad_batched(params, &mut jobs),
            // The thread's workspace for this model, as `gradient`'s.
            None => own.with_thread_workspace(|net| net.loss_and_grad_batched(params, &mut jobs)),
        }
        for (l, j) in losses.iter_mut().zip(&jobs) {
            **l = j.loss;
        }
        Ok(())
    }

    fn check_params(&self, params: &[f32]) -> Result<(), RoundError> {
        if params.len() != self.dim() {
            return Err(RoundError::Input {
                reason: format!(
                    "the parameters must have the model's {} values, got {}",
                    self.dim(),
                    params.len()
                ),
            });
        }
        Ok(())
    }

    /// Draws the next batch into `x` and `y` (labels flipped for a Byzantine worker under
    /// label flip).
    fn draw(&mut self) {
        let (train, per) = (&self.data.train, self.per_image);
        let batch = self.sampler.next_batch();
        self.x.resize(batch.len() * per, 0.0);
        self.y.clear();
        for (k, &i) in batch.iter().enumerate() {
            let i = i as usize;
            train.normalized_into(i, &self.norm, &mut self.x[k * per..(k + 1) * per]);
            let y = train.labels[i];
            self.y.push(match self.flip {
                Some(f) if self.byzantine => f.flip(y as usize) as u8,
                _ => y,
            });
        }
    }

    /// [`EngineWorker::gradient`], then the worker half's [`Worker::message`] into `out`.
    /// Returns the batch's loss. A wrong `out` or `params` is an error before the batch is
    /// drawn (nothing changes).
    pub fn step<O: AsMut<[f32]>>(
        &mut self,
        params: &[f32],
        out: &mut [O],
    ) -> Result<f32, RoundError> {
        self.half.check_out(out)?;
        let loss = self.gradient(params)?;
        self.half.message(params, &mut self.grad, out)?;
        Ok(loss)
    }

    /// The worker half's [`Worker::message`] for the gradient of the last
    /// [`EngineWorker::gradient`] or [`EngineWorker::gradients`] call, into `out`.
    pub(crate) fn send<O: AsMut<[f32]>>(
        &mut self,
        params: &[f32],
        out: &mut [O],
    ) -> Result<(), RoundError> {
        self.half.message(params, &mut self.grad, out)
    }

    /// [`Worker::message`] on this worker's optimizer state, for a gradient computed elsewhere.
    pub fn message<O: AsMut<[f32]>>(
        &mut self,
        params: &[f32],
        gradient: &mut [f32],
        out: &mut [O],
    ) -> Result<(), RoundError> {
        self.half.message(params, gradient, out)
    }

    /// The state carried to the next round.
    pub fn checkpoint(&self) -> WorkerCheckpoint {
        WorkerCheckpoint {
            bn_state: self.bn_state.clone(),
            opt: self.half.state.clone(),
            sampler: self.sampler.clone(),
            rng: self.rng.clone(),
        }
    }

    /// Continues from `checkpoint`, taken from the same worker of a run of the same config
    /// (its shapes are checked).
    pub fn restore(&mut self, checkpoint: WorkerCheckpoint) -> Result<(), ConfigError> {
        if checkpoint.bn_state.len() != self.bn_state.len() {
            return Err(bad("checkpoint", "its shapes do not match the config"));
        }
        if !checkpoint.sampler.continues(&self.sampler) {
            return Err(bad(
                "checkpoint",
                "its sampler does not belong to this worker's shard (a corrupt checkpoint?)",
            ));
        }
        self.half.set_state(checkpoint.opt)?;
        self.bn_state = checkpoint.bn_state;
        self.sampler = checkpoint.sampler;
        self.rng = checkpoint.rng;
        Ok(())
    }
}

/// The mean of the honest workers' batch-norm statistics, which evaluation uses (each
/// worker's value divided by their count, summed in worker order).
pub fn honest_mean_state<'a>(workers: impl IntoIterator<Item = &'a EngineWorker>) -> Vec<f32> {
    let all: Vec<&EngineWorker> = workers.into_iter().collect();
    let honest: Vec<&[f32]> = all
        .iter()
        .filter(|w| !w.byzantine)
        .map(|w| w.bn_state.as_slice())
        .collect();
    mean_state(&honest, all.first().map_or(0, |w| w.bn_state.len()))
}

/// The mean of batch-norm states (`len` values each, in worker order; zeros when there are
/// none), computed as [`honest_mean_state`] computes it: for a front end that receives the
/// honest workers' states rather than holding the workers (the networked mode).
pub fn mean_state(states: &[&[f32]], len: usize) -> Vec<f32> {
    let mut state = vec![0.0; len];
    for w in states {
        for (s, &v) in state.iter_mut().zip(*w) {
            *s += v / states.len() as f32;
        }
    }
    state
}

/// When a round's evaluation is due.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EvaluationDue {
    /// Before the server's step (`eval_before_update`): on the parameters the workers used.
    BeforeUpdate,
    /// After the server's step.
    AfterUpdate,
}

/// The server half: the parameters, the Byzantine workers' attack, one pipeline per message,
/// and the round counter.
pub struct Server {
    config: RunConfig,
    params: Vec<f32>,
    pipelines: Vec<Pipeline>,
    /// The attack on each message (MRA's second may differ: `second_message_attack`).
    attacks: Vec<Option<Box<dyn Attack>>>,
    byzantine: Vec<bool>,
    round: u64,
    diverged_at: Option<u64>,
    // Per-round buffers, reused.
    own: Vec<Submissions<'static>>,
    forged: Submissions<'static>,
    all: Submissions<'static>,
    aggregated: Vec<Vec<f32>>,
    d2: Vec<f64>,
    /// The Byzantine workers forge their own rows (networked, node-side attacks): their rows
    /// are aggregated as sent and the config's attack is not run here.
    rows_as_sent: bool,
}

/// The server half's state between rounds: restoring it into a server of the same config
/// continues with the same bits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServerCheckpoint {
    config_json: String,
    round: u64,
    diverged_at: Option<u64>,
    params: Vec<f32>,
    pipelines: Vec<Option<Vec<f32>>>,
}

impl ServerCheckpoint {
    /// A self-describing binary encoding (magic number, then bincode).
    pub fn to_bytes(&self) -> Result<Vec<u8>, String> {
        encode(SERVER_MAGIC, self)
    }

    /// Decodes [`ServerCheckpoint::to_bytes`]; an error for anything else.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, String> {
        decode(SERVER_MAGIC, "server", bytes)
    }

    /// Rounds completed.
    pub fn round(&self) -> u64 {
        self.round
    }
}

impl Server {
    /// The server of `config` (validated), at the initial parameters drawn from its `seed`.
    pub fn new(config: RunConfig) -> Result<Self, ConfigError> {
        config.validate()?;
        let (params, _) = initial_parameters(&config)?;
        Ok(Self::at(config, params))
    }

    /// The server of `config` (validated) starting from `params` instead of the initial
    /// parameters its `seed` draws for its `model`: a model the built-in engine does not
    /// build (the torch backend's), or parameters from elsewhere. They must be finite.
    pub fn with_params(config: RunConfig, params: Vec<f32>) -> Result<Self, ConfigError> {
        config.validate()?;
        if let Some(init) = &config.init {
            return Err(bad(
                "init",
                format!(
                    "the config's initial parameters come from {}: give no other parameters",
                    init.path
                ),
            ));
        }
        if params.is_empty() {
            return Err(bad("params", "at least one parameter is needed"));
        }
        if let Some(i) = params.iter().position(|x| !x.is_finite()) {
            return Err(bad(
                "params",
                format!(
                    "parameter {i} is {}: initial parameters must be finite",
                    params[i]
                ),
            ));
        }
        Ok(Self::at(config, params))
    }

    /// The server of an already validated `config` at `params`.
    pub(crate) fn at(config: RunConfig, params: Vec<f32>) -> Self {
        let dim = params.len();
        let messages = config.optimizer.messages();
        let attack = config.attack.clone().map(|a| a.build());
        let attacks = (0..messages)
            .map(|k| match (&config.second_message_attack, k) {
                (Some(second), 1) => Some(second.clone().build()),
                _ => attack.clone(),
            })
            .collect();
        Self {
            params,
            pipelines: (0..messages).map(|_| config.pipeline()).collect(),
            attacks,
            byzantine: (0..config.workers)
                .map(|w| is_byzantine(&config, w))
                .collect(),
            round: 0,
            diverged_at: None,
            d2: Vec::new(),
            own: vec![Submissions::default(); messages],
            forged: Submissions::default(),
            all: Submissions::default(),
            aggregated: vec![vec![0.0; dim]; messages],
            rows_as_sent: false,
            config,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &RunConfig {
        &self.config
    }

    /// The model's parameters now.
    pub fn params(&self) -> &[f32] {
        &self.params
    }

    /// The parameter count.
    pub fn dim(&self) -> usize {
        self.params.len()
    }

    /// Vectors each worker sends per round (2 for MRA, else 1).
    pub fn messages(&self) -> usize {
        self.pipelines.len()
    }

    /// Workers in all.
    pub fn workers(&self) -> usize {
        self.byzantine.len()
    }

    /// Rounds completed.
    pub fn round(&self) -> u64 {
        self.round
    }

    /// The first round after which the parameters were not all finite.
    pub fn diverged_at(&self) -> Option<u64> {
        self.diverged_at
    }

    /// Whether worker `w` is Byzantine; `None` past the last worker.
    pub fn is_byzantine(&self, w: usize) -> Option<bool> {
        self.byzantine.get(w).copied()
    }

    /// Makes the Byzantine workers' rows the forgeries themselves (a networked run whose
    /// Byzantine nodes forge their own messages): [`Server::step`] aggregates them as sent
    /// and never runs the config's attack; [`Server::needs_byzantine_messages`] is then true.
    pub fn set_rows_as_sent(&mut self, as_sent: bool) {
        self.rows_as_sent = as_sent;
    }

    /// Whether the Byzantine rows are aggregated as sent ([`Server::set_rows_as_sent`]).
    pub fn rows_as_sent(&self) -> bool {
        self.rows_as_sent
    }

    /// Whether the attack reads the Byzantine workers' genuine messages (Little, sign flip,
    /// Empire on its own base, label flip): then they compute them, and [`Server::step`]
    /// reads their rows; otherwise those rows are ignored.
    pub fn needs_byzantine_messages(&self) -> bool {
        self.rows_as_sent
            || self.attacks.iter().flatten().any(|a| {
                matches!(
                    a.threat_model(),
                    ThreatModel::OwnGenuine | ThreatModel::DataPoisoning
                )
            })
    }

    /// Whether the next round ([`Server::round`] + 1) is evaluated, and when: every
    /// `eval_every` rounds and at the last.
    pub fn evaluation_due(&self) -> Option<EvaluationDue> {
        let t = self.round + 1;
        let due = t.is_multiple_of(self.config.eval_every) || t == self.config.rounds;
        due.then_some(if self.config.eval_before_update {
            EvaluationDue::BeforeUpdate
        } else {
            EvaluationDue::AfterUpdate
        })
    }

    /// Whether the next round is the run's last.
    pub fn next_is_last(&self) -> bool {
        self.round + 1 == self.config.rounds
    }

    /// One round: `messages[k]` holds message `k` of every worker, row by row in worker order
    /// (`workers × dim` values; the Byzantine workers' rows are read only when
    /// [`Server::needs_byzantine_messages`]), and `losses` each worker's batch loss (the
    /// honest ones are averaged). Forges, aggregates, steps; the metrics have no evaluation
    /// (the front end adds it). The parameters are unchanged on error.
    pub fn step(
        &mut self,
        messages: &[&[f32]],
        losses: &[f32],
    ) -> Result<RoundMetrics, RoundError> {
        self.step_inner(messages, losses, None)
    }

    /// [`Server::step`] when only some workers replied (a networked round past its deadline):
    /// `present[w]` says whether worker `w`'s reply arrived; the rows and losses of the others
    /// are not read. The round aggregates the rows that arrived (the attack forges for the
    /// Byzantine workers present) when the pipeline's requirement holds for that smaller
    /// count, e.g. n′ > 2f for the trimmed mean; otherwise it returns
    /// [`RoundError::TooFewReplies`] and changes nothing ([`Server::skip`] then moves on).
    /// With every worker present it is [`Server::step`], bit for bit.
    pub fn step_present(
        &mut self,
        messages: &[&[f32]],
        losses: &[f32],
        present: &[bool],
    ) -> Result<RoundMetrics, RoundError> {
        if present.len() != self.workers() {
            return Err(RoundError::Input {
                reason: format!(
                    "the server takes {} presence flags (one per worker), got {}",
                    self.workers(),
                    present.len()
                ),
            });
        }
        self.step_inner(messages, losses, Some(present))
    }

    /// A round without an update (too few replies): the round counter moves on, the
    /// parameters and the rule's carried state stay as they are.
    pub fn skip(&mut self) -> Result<(), RoundError> {
        if self.round >= self.config.rounds {
            return Err(RoundError::Input {
                reason: format!("the run's {} rounds are done", self.config.rounds),
            });
        }
        self.round += 1;
        Ok(())
    }

    fn step_inner(
        &mut self,
        messages: &[&[f32]],
        losses: &[f32],
        present: Option<&[bool]>,
    ) -> Result<RoundMetrics, RoundError> {
        let (n, dim) = (self.workers(), self.dim());
        if messages.len() != self.messages() || messages.iter().any(|m| m.len() != n * dim) {
            return Err(RoundError::Input {
                reason: format!(
                    "the server takes {} message(s), each {n} workers × {dim} values",
                    self.messages()
                ),
            });
        }
        if losses.len() != n {
            return Err(RoundError::Input {
                reason: format!(
                    "the server takes {n} losses (one per worker), got {}",
                    losses.len()
                ),
            });
        }
        let t = self.round + 1;
        let byzantine_compute = self.needs_byzantine_messages();
        let here = |w: usize| present.is_none_or(|p| p[w]);
        let honest_count = (0..n).filter(|&w| here(w) && !self.byzantine[w]).count();
        let byz_count = (0..n).filter(|&w| here(w) && self.byzantine[w]).count();
        if present.is_some() {
            let replies = honest_count + byz_count;
            // The rule sees the honest rows and, under an attack, one forged row for each
            // Byzantine worker present (without one, their rows are dropped).
            let rows = honest_count
                + if self.attacks[0].is_some() || self.rows_as_sent {
                    byz_count
                } else {
                    0
                };
            let too_few = |reason: String| RoundError::TooFewReplies {
                round: t,
                replies,
                reason,
            };
            if honest_count == 0 {
                return Err(too_few("no honest worker replied".into()));
            }
            if let Err(e) = self.pipelines[0].check(rows) {
                return Err(too_few(e.to_string()));
            }
        }
        let mut xi_norm = 0.0;
        let mut diameter = 0.0;
        for (k, rows) in messages.iter().enumerate() {
            // The honest rows go straight into the rule's input (`all`, whose first rows they
            // are); the Byzantine workers' own rows are kept only where the attack or the
            // networked mode reads them.
            let keep_own = byzantine_compute || self.rows_as_sent;
            let own = &mut self.own[k];
            self.all.reshape(honest_count, dim);
            own.reshape(if keep_own { byz_count } else { 0 }, dim);
            let (mut hi, mut bi) = (0, 0);
            for (w, (row, &byzantine)) in rows.chunks_exact(dim).zip(&self.byzantine).enumerate() {
                if !here(w) {
                    continue;
                }
                if !byzantine {
                    self.all.row_mut(hi).copy_from_slice(row);
                    hi += 1;
                } else if keep_own {
                    own.row_mut(bi).copy_from_slice(row);
                    bi += 1;
                }
            }
            let forge = !self.rows_as_sent && (byz_count > 0 || present.is_none());
            if let Some(attack) = self.attacks[k].as_mut().filter(|_| forge) {
                let failed = |source| RoundError::Attack {
                    round: t,
                    message: k,
                    source,
                };
                let honest = Submissions::borrowed(self.all.as_flat(), dim).map_err(failed)?;
                let ctx = AttackContext {
                    n,
                    byzantine: byz_count,
                    dim,
                    own: byzantine_compute.then_some(&*own),
                    honest: Some(&honest),
                    server: Some(&self.pipelines[k]),
                };
                let mut rng = seeds::rng(
                    self.config.seed,
                    Stream::Attack {
                        round: t,
                        message: k,
                    },
                );
                attack
                    .forge(&ctx, &mut rng, &mut self.forged)
                    .map_err(failed)?;
                self.all.extend(&self.forged).map_err(failed)?;
            } else if self.rows_as_sent {
                // The Byzantine nodes forged their rows themselves: aggregated as sent.
                self.all.extend(own).map_err(|source| RoundError::Attack {
                    round: t,
                    message: k,
                    source,
                })?;
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
                let honest = &self.all.as_flat()[..honest_count * dim];
                (xi_norm, diameter) =
                    xi_and_diameter(&self.aggregated[0], honest, dim, &mut self.d2);
            }
        }
        let refs: Vec<&[f32]> = self.aggregated.iter().map(|v| v.as_slice()).collect();
        self.config
            .optimizer
            .server_step(t, &mut self.params, &refs);
        self.round = t;
        if self.diverged_at.is_none() && !self.params.iter().all(|p| p.is_finite()) {
            self.diverged_at = Some(t);
        }
        let train_loss = losses
            .iter()
            .zip(&self.byzantine)
            .enumerate()
            .filter(|&(w, (_, &b))| !b && here(w))
            .map(|(_, (&l, _))| l as f64)
            .sum::<f64>()
            / honest_count as f64;
        Ok(RoundMetrics {
            round: t,
            lr: self.config.optimizer.lr().at(t),
            train_loss,
            xi_norm,
            honest_diameter: diameter,
            lambda: (diameter > 0.0).then(|| xi_norm / diameter),
            diverged: self.diverged_at.is_some(),
            eval: None,
        })
    }

    /// The state carried to the next round.
    pub fn checkpoint(&self) -> ServerCheckpoint {
        ServerCheckpoint {
            config_json: serde_json::to_string(&self.config).unwrap_or_default(),
            round: self.round,
            diverged_at: self.diverged_at,
            params: self.params.clone(),
            pipelines: self.pipelines.iter().map(Pipeline::carried).collect(),
        }
    }

    /// Continues from `checkpoint`, taken from a server of the same config (checked, with its
    /// shapes).
    pub fn restore(&mut self, checkpoint: ServerCheckpoint) -> Result<(), ConfigError> {
        let same = serde_json::from_str::<RunConfig>(&checkpoint.config_json)
            .is_ok_and(|c| c == self.config);
        if !same {
            return Err(bad("checkpoint", "it belongs to another config"));
        }
        self.restore_parts(
            checkpoint.round,
            checkpoint.diverged_at,
            checkpoint.params,
            checkpoint.pipelines,
        )
    }

    pub(crate) fn restore_parts(
        &mut self,
        round: u64,
        diverged_at: Option<u64>,
        params: Vec<f32>,
        pipelines: Vec<Option<Vec<f32>>>,
    ) -> Result<(), ConfigError> {
        if params.len() != self.params.len()
            || pipelines.len() != self.pipelines.len()
            || round > self.config.rounds
        {
            return Err(bad("checkpoint", "its shapes do not match the config"));
        }
        self.round = round;
        self.diverged_at = diverged_at;
        self.params = params;
        for (p, c) in self.pipelines.iter_mut().zip(pipelines) {
            p.restore(c);
        }
        Ok(())
    }

    pub(crate) fn carried(&self) -> Vec<Option<Vec<f32>>> {
        self.pipelines.iter().map(Pipeline::carried).collect()
    }
}

/// `‖F − mean of the honest rows‖` and the honest rows' diameter (0 when it is undefined),
/// for the honest rows `honest` (flat, `dim` wide); `d2` holds the pairwise distances.
fn xi_and_diameter(
    aggregated: &[f32],
    honest: &[f32],
    dim: usize,
    d2: &mut Vec<f64>,
) -> (f64, f64) {
    let Ok(rows) = Submissions::borrowed(honest, dim) else {
        return (0.0, 0.0);
    };
    let xi = distance_to_mean(&rows, aggregated).unwrap_or(0.0);
    let count = rows.n();
    d2.clear();
    d2.resize(count * count, 0.0);
    let diameter = if pairwise_squared_distances(&rows, d2).is_ok() {
        d2.iter().copied().fold(0.0, f64::max).sqrt()
    } else {
        0.0
    };
    (xi, diameter)
}

/// Evaluation on the built-in engine: the (possibly truncated or subset) test set,
/// normalised once.
pub struct Evaluator {
    net: Network,
    test_x: Vec<f32>,
    test_y: Vec<u8>,
    seed: u64,
    training_mode: Option<crate::TrainingModeEval>,
}

/// The images `which` of `d`, normalised with `norm`.
fn normalize_all(d: &Dataset, which: &[u32], norm: &Normalization) -> Vec<f32> {
    let n = d.shape.len();
    let mut out = vec![0f32; which.len() * n];
    out.par_chunks_mut(n)
        .zip(which)
        .for_each(|(o, &i)| d.normalized_into(i as usize, norm, o));
    out
}

impl Evaluator {
    /// The evaluator of `config` on `data`'s test set (`eval_samples` or `eval_subset`
    /// checked against it).
    pub fn new(config: &RunConfig, data: &Split) -> Result<Self, ConfigError> {
        if let Some(k) = config.eval_samples.filter(|&k| k > data.test.len()) {
            return Err(bad(
                "eval_samples",
                format!("the test set has {} images, got {k}", data.test.len()),
            ));
        }
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
        let norm = normalization(config, data.train.kind);
        let mut net = config.model.build();
        net.set_head(config.head);
        net.set_flush_subnormals(config.flush_subnormals);
        Ok(Self {
            net,
            test_x: normalize_all(&data.test, &which, &norm),
            test_y: which
                .iter()
                .map(|&i| data.test.labels[i as usize])
                .collect(),
            seed: config.seed,
            training_mode: config.training_mode_eval,
        })
    }

    /// Test images evaluated.
    pub fn len(&self) -> usize {
        self.test_y.len()
    }

    /// Whether there is no test image (never, for a validated config).
    pub fn is_empty(&self) -> bool {
        self.test_y.is_empty()
    }

    /// Accuracy and loss of `params` with batch-norm statistics `state` (see
    /// [`honest_mean_state`]) during round `round` (which draws training-mode evaluation's
    /// dropout from its own stream).
    /// An error when `params` or `state` has the wrong length.
    pub fn evaluate(
        &mut self,
        params: &[f32],
        state: &[f32],
        round: u64,
    ) -> Result<Evaluation, RoundError> {
        self.check(params, state)?;
        Ok(self.pass(params, state, round, None))
    }

    /// [`Evaluator::evaluate`], and each class's recall in the same pass: of the test images
    /// of class `c`, the share predicted as `c` (NaN for a class with no image).
    pub fn evaluate_with_recall(
        &mut self,
        params: &[f32],
        state: &[f32],
        round: u64,
    ) -> Result<(Evaluation, Vec<f64>), RoundError> {
        self.check(params, state)?;
        let mut predictions = Vec::new();
        let e = self.pass(params, state, round, Some(&mut predictions));
        Ok((e, self.recall_of(&predictions)))
    }

    /// The length of the batch-norm state it evaluates with (0 without batch norm).
    pub fn state_len(&self) -> usize {
        self.net.num_state()
    }

    fn check(&self, params: &[f32], state: &[f32]) -> Result<(), RoundError> {
        let (p, s) = (self.net.num_params(), self.net.num_state());
        if params.len() != p || state.len() != s {
            return Err(RoundError::Input {
                reason: format!(
                    "evaluation takes the model's {p} parameters and {s} batch-norm statistics, got {} and {}",
                    params.len(),
                    state.len()
                ),
            });
        }
        Ok(())
    }

    pub(crate) fn pass(
        &mut self,
        params: &[f32],
        state: &[f32],
        round: u64,
        predictions: Option<&mut Vec<u8>>,
    ) -> Evaluation {
        let (x, y) = (&self.test_x, &self.test_y);
        let ev = match (self.training_mode, predictions) {
            (Some(t), p) => self.net.evaluate_in_training_mode(
                params,
                state,
                x,
                y,
                t.batch,
                &mut seeds::rng(self.seed, Stream::Evaluation { round }),
                p,
            ),
            (None, Some(p)) => self.net.evaluate_predicting(params, state, x, y, 500, p),
            (None, None) => self.net.evaluate(params, state, x, y, 500),
        };
        Evaluation {
            accuracy: ev.accuracy(),
            loss: ev.loss(),
        }
    }

    pub(crate) fn recall_of(&self, predictions: &[u8]) -> Vec<f64> {
        let classes = self.net.classes();
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
}
