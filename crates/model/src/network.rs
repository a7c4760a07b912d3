//! A sequential network of the layers the thesis's models use (`crate::layers`): it places
//! them, owns their buffers, and runs their forward and backward passes in order over flat
//! parameter vectors.

use crate::cpu::{self, CpuError, Level};
use crate::gemm::Pack;
use crate::layers::{
    batch_norm, bn_fused, conv, dropout, linear, loss, mask_fused, pool, relu, relu_fused, Head,
    Layer, LayerSpec, Shape,
};
use crate::subnormals::Flushed;
use crate::trunk::{self, Lanes};
use rand::{Rng, RngCore};
use std::cell::RefCell;

#[cfg(byzadam_x86)]
mod x86;

/// Per-batch buffers, grown to the largest batch seen and then reused.
#[derive(Debug, Clone, Default)]
struct Workspace {
    batch: usize,
    /// `acts[i]`: the input of layer `i`; `acts[layers]`: the logits.
    acts: Vec<Vec<f32>>,
    /// Per layer: dropout masks.
    aux: Vec<Vec<f32>>,
    pool_idx: Vec<Vec<u32>>,
    /// Batch norm's per-channel statistics, per worker of the pass: the means, then
    /// `1/√(var + ε)` (`2c` values a worker).
    bn_stats: Vec<Vec<f32>>,
    /// The convolutions' buffers (im2col columns, Winograd tiles).
    conv: conv::Scratch,
    grad_a: Vec<f32>,
    grad_b: Vec<f32>,
    /// Each worker's first image and image count in a batched pass.
    bounds: Vec<(usize, usize)>,
    /// The matrix products' packing buffers (fixed size, allocated with the network).
    pack: Pack,
    /// `evaluate`'s copy of the batch-norm running statistics.
    eval_state: Vec<f32>,
    /// Evaluation's trunk, sixteen images abreast (see [`trunk`]); planned on first use.
    lanes: Option<Lanes>,
    /// Per layer: the transformed inputs `V` a Winograd convolution's forward pass kept for
    /// the backward pass (empty until a pass keeps them; a network run through
    /// [`Network::with_thread_workspace`] uses its thread's).
    kept_v: Vec<Vec<f32>>,
    /// Whether the passes running now keep `V` (forward) and read it (backward):
    /// [`Network::loss_and_grad_batched`] with one worker, within [`KEEP_LIMIT`], at the
    /// AVX-512 level.
    keep_v: bool,
}

/// The most values of Winograd's transformed inputs one network keeps from a forward pass
/// for its backward pass (64 MiB; 6.5 M values for the CIFAR-10 CNN at batch 25): past it,
/// the backward pass transforms the inputs again (the same bits), as it does for a pass of
/// several workers. Keeping them saves a transform of every input of every Winograd
/// convolution (about a twelfth of a CIFAR-10 gradient's time) for a write and a read of
/// 2.25 values per input value.
const KEEP_LIMIT: usize = 16 << 20;

std::thread_local! {
    /// The networks whose workspaces [`Network::with_thread_workspace`] lends on this thread,
    /// one per layer stack and CPU level it has been called with.
    static LENDERS: RefCell<Vec<Network>> = const { RefCell::new(Vec::new()) };
}

/// Batch norm layer `i`'s output for worker `k` of a pass, as the Winograd convolution after
/// it reads it (`bn_fused`): the layer's γ and β in `params` and the statistics its forward
/// pass kept in `bn_stats`.
fn normalised<'a>(
    layers: &[Layer],
    bn_stats: &'a [Vec<f32>],
    params: &'a [f32],
    i: usize,
    k: usize,
) -> batch_norm::Normalised<'a> {
    let ((p0, np), c2) = (layers[i].params, 2 * layers[i].input.c);
    batch_norm::Normalised {
        params: &params[p0..p0 + np],
        stats: &bn_stats[i][k * c2..(k + 1) * c2],
    }
}

/// A sequential network: layers, their parameter layout, and reusable buffers.
#[derive(Debug, Clone)]
pub struct Network {
    input: Shape,
    classes: usize,
    layers: Vec<Layer>,
    num_params: usize,
    num_state: usize,
    /// Whether the convolutions that can go through Winograd's algorithm do (on by default;
    /// off only to compare it with im2col in tests and benchmarks).
    winograd: bool,
    /// Whether evaluation runs the network's trunk sixteen images abreast (see [`trunk`]; on
    /// by default, off only to compare it with the per-image path).
    lanes: bool,
    /// What the last layer's outputs feed into the loss (default cross-entropy on logits).
    head: Head,
    /// Whether the passes flush subnormal floats to zero (off by default: see
    /// [`Network::set_flush_subnormals`]).
    flush_subnormals: bool,
    ws: Workspace,
}

/// One worker's share of [`Network::loss_and_grad_batched`]: its batch, its own state, dropout
/// stream and gradient buffer, and (on return) its batch's mean loss.
pub struct Job<'a> {
    /// The batch's images, `labels.len()` of them, flat.
    pub images: &'a [f32],
    /// The batch's labels.
    pub labels: &'a [u8],
    /// The worker's batch-norm running statistics (updated as in [`Network::loss_and_grad`]).
    pub state: &'a mut [f32],
    /// The worker's dropout stream.
    pub rng: &'a mut dyn RngCore,
    /// Receives the gradient (overwritten).
    pub grad: &'a mut [f32],
    /// Receives the batch's mean loss.
    pub loss: f32,
}

impl std::fmt::Debug for Job<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Job")
            .field("batch", &self.labels.len())
            .field("loss", &self.loss)
            .finish_non_exhaustive()
    }
}

/// One worker's images in a pass over several workers' batches: where they start in the
/// workspace and how many, and what is the worker's own in the forward pass (running
/// statistics, dropout stream).
pub(crate) struct Seg<'a> {
    start: usize,
    batch: usize,
    state: &'a mut [f32],
    rng: &'a mut dyn RngCore,
}

/// Loss and accuracy counts over a set of samples.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Evaluation {
    /// Sum of the per-sample cross-entropy losses.
    pub loss_sum: f64,
    /// Samples whose arg-max prediction equals the label.
    pub correct: usize,
    /// Samples seen.
    pub count: usize,
}

impl Evaluation {
    /// Mean loss.
    pub fn loss(&self) -> f64 {
        self.loss_sum / self.count.max(1) as f64
    }

    /// Fraction correct.
    pub fn accuracy(&self) -> f64 {
        self.correct as f64 / self.count.max(1) as f64
    }
}

impl Network {
    /// Builds the network for inputs of shape `input` ending in `classes` logits.
    ///
    /// Panics if the layers do not fit the shapes (a programming error in a model
    /// definition, caught by the model zoo's tests).
    pub fn new(input: Shape, specs: &[LayerSpec], classes: usize) -> Self {
        let mut layers = Vec::with_capacity(specs.len());
        let (mut shape, mut p, mut s) = (input, 0, 0);
        for spec in specs {
            let layer = Layer::new(spec, shape, p, s);
            p += layer.params.1;
            s += layer.state.1;
            shape = layer.output;
            layers.push(layer);
        }
        assert_eq!(
            shape.len(),
            classes,
            "the last layer must output one logit per class"
        );
        Self {
            input,
            classes,
            layers,
            num_params: p,
            num_state: s,
            winograd: true,
            lanes: true,
            head: Head::default(),
            flush_subnormals: false,
            ws: Workspace::default(),
        }
    }

    /// Turns Winograd's algorithm for 3 × 3 convolutions off (im2col + SGEMM for every
    /// convolution) or back on. Both compute the same function up to rounding; the tests and
    /// `byzadam bench-engine --im2col` compare them.
    #[doc(hidden)]
    pub fn set_winograd(&mut self, on: bool) {
        self.winograd = on;
        self.ws = Workspace {
            pack: std::mem::take(&mut self.ws.pack),
            ..Workspace::default()
        };
    }

    /// Runs this network's passes at `level` (AVX-512, AVX2 + FMA or portable: see
    /// `byzadam_cpu`) from now on; an error, changing nothing, when this build or CPU cannot.
    /// A network takes the level of the thread that builds it (the CPU's best, lowered by
    /// `BYZADAM_CPU`); the x86-64 levels give the same bits (the twin tests compare them).
    pub fn set_cpu_level(&mut self, level: Level) -> Result<(), CpuError> {
        cpu::check(level)?;
        if level != self.ws.pack.level() {
            self.ws.pack.set_level(level);
            self.ws.lanes = None;
        }
        Ok(())
    }

    /// The level this network's passes run at.
    pub fn cpu_level(&self) -> Level {
        self.ws.pack.level()
    }

    /// Exchanges this network's reusable buffers (activations, packing buffers, evaluation
    /// plan) with `other`'s, a network of the same layers: a simulator lends one scratch
    /// network per thread to each worker it runs, so that one set of buffers stays in cache
    /// instead of one per worker. No result depends on a workspace's contents (tested), and
    /// the level travels with the buffers.
    ///
    /// Panics if the two networks' layers differ.
    pub fn swap_workspace(&mut self, other: &mut Network) {
        assert!(
            self.same_layers(other),
            "swap_workspace: the networks' layers differ"
        );
        std::mem::swap(&mut self.ws, &mut other.ws);
    }

    /// Whether `other` has this network's layers (so that their workspaces fit both).
    fn same_layers(&self, other: &Network) -> bool {
        self.input == other.input
            && self.num_params == other.num_params
            && self.winograd == other.winograd
            && self.layers.len() == other.layers.len()
            && self
                .layers
                .iter()
                .zip(&other.layers)
                .all(|(a, b)| a.spec == b.spec)
    }

    /// Whether this network's workspace fits `other`'s passes: the same layers and CPU level
    /// (the level travels with the workspace).
    fn lends_to(&self, other: &Network) -> bool {
        self.cpu_level() == other.cpu_level() && self.same_layers(other)
    }

    /// Runs `f` on this network with the calling thread's workspace for networks of its layers
    /// and CPU level in place of its own (which `f` does not see, and which stays as it was:
    /// never allocated, for a network only ever run this way). The thread's workspace is
    /// allocated by its first such call and kept for the next, whichever network of the same
    /// layers makes it: a process holding many networks of one model, each run in turn (the
    /// Python engine's workers, one network each), then holds one set of activations and
    /// buffers a thread, not one a network (70 MB each for the CIFAR-10 CNN at batch 25), and
    /// that set stays in cache from one network's pass to the next. A pass's bits do not
    /// depend on the workspace it runs on (see [`Network::swap_workspace`]).
    pub fn with_thread_workspace<R>(&mut self, f: impl FnOnce(&mut Network) -> R) -> R {
        let level = self.cpu_level();
        let found = LENDERS.with(|l| {
            let mut l = l.borrow_mut();
            let i = l.iter().position(|n| n.lends_to(self))?;
            Some(l.swap_remove(i))
        });
        let mut lender = found.unwrap_or_else(|| {
            // A copy of the layers with a workspace of its own, not yet allocated.
            let mut ws = Workspace::default();
            ws.pack.set_level(level);
            Network {
                input: self.input,
                classes: self.classes,
                layers: self.layers.clone(),
                num_params: self.num_params,
                num_state: self.num_state,
                winograd: self.winograd,
                lanes: self.lanes,
                head: self.head,
                flush_subnormals: self.flush_subnormals,
                ws,
            }
        });
        self.swap_workspace(&mut lender);
        // (A panic in `f` leaves this network with the lender's workspace and drops the
        // lender: the thread allocates another on its next call.)
        let out = f(self);
        self.swap_workspace(&mut lender);
        LENDERS.with(|l| l.borrow_mut().push(lender));
        out
    }

    /// Sets what the last layer's outputs feed into the loss, in training and evaluation.
    pub fn set_head(&mut self, head: Head) {
        self.head = head;
    }

    /// Runs the training and evaluation passes with subnormal floats flushed to zero (the
    /// calling threads' floating-point mode set within each pass and restored after; x86-64
    /// and AArch64), or, the default, computed exactly. Training produces values below
    /// `f32`'s normal range (1.2e-38), on which x86 cores slow down on every operation:
    /// flushing them runs faster once they appear and changes the results' bits (values
    /// that small then count as 0); the same seed still gives the same bits.
    pub fn set_flush_subnormals(&mut self, on: bool) {
        self.flush_subnormals = on;
    }

    /// Whether the passes flush subnormal floats to zero.
    pub fn flush_subnormals(&self) -> bool {
        self.flush_subnormals
    }

    /// What the last layer's outputs feed into the loss.
    pub fn head(&self) -> Head {
        self.head
    }

    /// Turns evaluation sixteen images abreast off (every layer image by image, as in
    /// training) or back on. Both give the same bits; the tests compare them.
    #[doc(hidden)]
    pub fn set_lanes(&mut self, on: bool) {
        self.lanes = on;
        self.ws = Workspace {
            pack: std::mem::take(&mut self.ws.pack),
            ..Workspace::default()
        };
    }

    /// About how many bytes of buffers a training pass keeps per image (activations, masks,
    /// arg-max indices, the gradient's ping-pong buffers): what sizes a batched pass
    /// ([`Network::loss_and_grad_batched`]) grows by per image.
    pub fn pass_bytes_per_image(&self) -> usize {
        let acts: usize =
            self.input.len() + self.layers.iter().map(|l| l.output.len()).sum::<usize>();
        let kept: usize = self
            .layers
            .iter()
            .map(|l| match l.spec {
                LayerSpec::Dropout { .. } | LayerSpec::BatchNorm | LayerSpec::MaxPool2 => {
                    l.output.len()
                }
                _ => 0,
            })
            .sum();
        let widest = self
            .layers
            .iter()
            .map(|l| l.output.len())
            .chain([self.input.len()])
            .max()
            .unwrap_or(0);
        4 * (acts + kept + 2 * widest)
    }

    /// The floating-point operations of one training image's forward and backward passes
    /// as direct products count them (two per multiply-add: each convolution and linear
    /// layer's output, weight gradient, and input gradient but for the first layer's; what
    /// Winograd's algorithm saves is not subtracted). Divided by a measured SGEMM rate, the
    /// time a round cannot beat (`byzadam bench-engine --sgemm-peak`).
    pub fn train_flops_per_image(&self) -> u64 {
        let mut flops = 0u64;
        for (i, l) in self.layers.iter().enumerate() {
            let macs = match l.spec {
                LayerSpec::Conv { out, kernel, .. } => {
                    out * l.input.c * kernel * kernel * l.output.h * l.output.w
                }
                LayerSpec::Linear { out } => out * l.input.len(),
                _ => 0,
            } as u64;
            // Output and weight gradient, and the input gradient past the first layer.
            flops += 2 * macs * if i == 0 { 2 } else { 3 };
        }
        flops
    }

    /// Number of parameters (the length of the flat vector).
    pub fn num_params(&self) -> usize {
        self.num_params
    }

    /// Number of state values (batch-norm running means and variances).
    pub fn num_state(&self) -> usize {
        self.num_state
    }

    /// Input shape.
    pub fn input(&self) -> Shape {
        self.input
    }

    /// Number of classes.
    pub fn classes(&self) -> usize {
        self.classes
    }

    /// PyTorch's default initialisation, drawn from `rng`: convolution and linear weights and
    /// biases uniform in `±1/√fan_in` (Kaiming-uniform with `a = √5`), batch-norm weight 1 and
    /// bias 0, running mean 0 and variance 1.
    pub fn init(&self, rng: &mut dyn RngCore, params: &mut [f32], state: &mut [f32]) {
        for l in &self.layers {
            let (p0, np) = l.params;
            let p = &mut params[p0..p0 + np];
            let fan_in = match l.spec {
                LayerSpec::Conv { kernel, .. } => Some(l.input.c * kernel * kernel),
                LayerSpec::Linear { .. } => Some(l.input.len()),
                _ => None,
            };
            if let Some(fan_in) = fan_in {
                let bound = 1.0 / (fan_in as f32).sqrt();
                for x in p.iter_mut() {
                    *x = rng.gen_range(-bound..bound);
                }
            }
            if l.spec == LayerSpec::BatchNorm {
                let c = l.input.c;
                p[..c].fill(1.0);
                p[c..].fill(0.0);
                let s0 = l.state.0;
                state[s0..s0 + c].fill(0.0);
                state[s0 + c..s0 + 2 * c].fill(1.0);
            }
        }
    }

    fn prepare(&mut self, batch: usize) {
        if self.ws.batch >= batch && !self.ws.acts.is_empty() {
            return;
        }
        let ws = &mut self.ws;
        ws.batch = batch;
        ws.acts = std::iter::once(self.input.len())
            .chain(self.layers.iter().map(|l| l.output.len()))
            .map(|n| vec![0.0; n * batch])
            .collect();
        ws.aux = self
            .layers
            .iter()
            .map(|l| match l.spec {
                LayerSpec::Dropout { .. } => vec![0.0; l.output.len() * batch],
                _ => Vec::new(),
            })
            .collect();
        ws.pool_idx = self
            .layers
            .iter()
            .map(|l| {
                if l.spec == LayerSpec::MaxPool2 {
                    vec![0; l.output.len() * batch]
                } else {
                    Vec::new()
                }
            })
            .collect();
        ws.bn_stats = self
            .layers
            .iter()
            .map(|l| {
                vec![
                    0.0;
                    if l.spec == LayerSpec::BatchNorm {
                        2 * l.input.c
                    } else {
                        0
                    }
                ]
            })
            .collect();
        ws.kept_v = vec![Vec::new(); self.layers.len()];
        let on = self.winograd;
        for l in &self.layers {
            if let Some(g) = l.wino.filter(|_| on) {
                ws.conv.wino.reserve(&g, batch);
            }
        }
        let col = self
            .layers
            .iter()
            .filter(|l| l.wino.filter(|_| on).is_none())
            .map(|l| match l.spec {
                LayerSpec::Conv { kernel, .. } => {
                    l.input.c * kernel * kernel * l.output.h * l.output.w
                }
                _ => 0,
            })
            .max()
            .unwrap_or(0);
        ws.conv.col = vec![0.0; col];
        ws.conv.dcol = vec![0.0; col];
        let widest = ws.acts.iter().map(Vec::len).max().unwrap_or(0);
        ws.grad_a = vec![0.0; widest];
        ws.grad_b = vec![0.0; widest];
    }

    /// Runs layers `from..` on `batch` samples whose input to layer `from` is in
    /// `acts[from]` (the AVX2 build when the CPU has it: see [`cpu`]).
    fn forward(
        &mut self,
        params: &[f32],
        state: &mut [f32],
        batch: usize,
        train: bool,
        rng: &mut dyn RngCore,
        from: usize,
    ) {
        let mut segs = [Seg {
            start: 0,
            batch,
            state,
            rng,
        }];
        self.forward_segs(params, &mut segs, batch, train, from)
    }

    /// [`Network::forward_impl`] at the network's level (its AVX2 or AVX-512 build when the
    /// CPU has it: see [`cpu`]).
    fn forward_segs(
        &mut self,
        params: &[f32],
        segs: &mut [Seg<'_>],
        total: usize,
        train: bool,
        from: usize,
    ) {
        #[cfg(byzadam_x86)]
        match self.ws.pack.level() {
            // SAFETY: a network's level is at most what the CPU runs (`cpu::level`,
            // `Network::set_cpu_level`): AVX-512 F, BW, VL, AVX2 and FMA, or AVX2 and FMA.
            #[allow(unsafe_code)]
            cpu::Level::Avx512 => {
                unsafe { x86::forward512(self, params, segs, total, train, from) };
                return;
            }
            #[allow(unsafe_code)]
            cpu::Level::Avx2 => {
                unsafe { x86::forward(self, params, segs, total, train, from) };
                return;
            }
            cpu::Level::Portable => {}
        }
        self.forward_impl(params, segs, total, train, from)
    }

    /// Plans the evaluation trunk with Winograd blocks of `block_tiles` tiles instead of
    /// [`trunk::BLOCK_TILES`] (tests: the bits must not depend on it); returns how many
    /// Winograd steps the trunk has.
    #[cfg(test)]
    pub(crate) fn plan_trunk_blocks(&mut self, block_tiles: usize) -> usize {
        let lanes = self.plan_trunk(block_tiles);
        let steps = lanes.winograd_steps();
        self.ws.lanes = Some(lanes);
        steps
    }

    /// The evaluation trunk's plan for this network, with buffers for the rayon pool's
    /// threads, at the network's CPU level.
    fn plan_trunk(&self, block_tiles: usize) -> Lanes {
        let (threads, level) = (rayon::current_num_threads(), self.ws.pack.level());
        Lanes::plan(&self.layers, self.winograd, threads, level, block_tiles)
    }

    /// The forward pass of evaluation on `batch` images: the trunk sixteen images abreast
    /// when there is one (see [`trunk`]), its chunks shared out over the rayon pool's threads
    /// (each chunk's result is the same whichever thread computes it), then the other layers
    /// on the whole batch.
    fn forward_eval(&mut self, params: &[f32], state: &mut [f32], images: &[f32], batch: usize) {
        use rayon::prelude::*;
        let flush = self.flush_subnormals;
        let _mode = Flushed::new(flush);
        self.prepare(batch);
        let mut no_rng = rand::rngs::mock::StepRng::new(0, 0);
        if self.lanes && self.ws.lanes.is_none() {
            self.ws.lanes = Some(self.plan_trunk(trunk::BLOCK_TILES));
        }
        let end = self.ws.lanes.as_ref().map_or(0, Lanes::end);
        if !self.lanes || end == 0 {
            self.load_input(images, batch);
            self.forward(params, state, batch, false, &mut no_rng, 0);
            return;
        }
        let (input, width) = (self.input, self.layers[end].input.len());
        let lanes = self.ws.lanes.as_mut().expect("planned");
        lanes.pack_weights(params);
        // Each thread's share: whole chunks, as even as they divide.
        let mut scratch = std::mem::take(&mut lanes.scratch);
        let share = batch.div_ceil(trunk::LANES).div_ceil(scratch.len()) * trunk::LANES;
        let lanes = &*lanes;
        scratch
            .par_iter_mut()
            .zip(images[..batch * input.len()].par_chunks(share * input.len()))
            .zip(self.ws.acts[end][..batch * width].par_chunks_mut(share * width))
            .for_each(|((s, xs), ys)| {
                // The pool's threads too.
                let _mode = Flushed::new(flush);
                #[cfg(byzadam_x86)]
                match lanes.level {
                    // SAFETY: the plan's level is the network's, at most what the CPU runs.
                    #[allow(unsafe_code)]
                    cpu::Level::Avx512 => {
                        unsafe {
                            x86::eval_chunks512(lanes, s, params, state, input, xs, width, ys)
                        };
                        return;
                    }
                    #[allow(unsafe_code)]
                    cpu::Level::Avx2 => {
                        unsafe { x86::eval_chunks(lanes, s, params, state, input, xs, width, ys) };
                        return;
                    }
                    cpu::Level::Portable => {}
                }
                trunk::run_chunks(lanes, s, params, state, input, xs, width, ys)
            });
        self.ws.lanes.as_mut().expect("planned").scratch = scratch;
        self.forward(params, state, batch, false, &mut no_rng, end);
    }

    /// The backward pass (the AVX2 build when the CPU has it: see [`cpu`]).
    fn backward(
        &mut self,
        params: &[f32],
        segs: &[(usize, usize)],
        grads: &mut [&mut [f32]],
        total: usize,
        g: &mut Vec<f32>,
        g2: &mut Vec<f32>,
    ) {
        #[cfg(byzadam_x86)]
        match self.ws.pack.level() {
            // SAFETY: as in `forward_segs`.
            #[allow(unsafe_code)]
            cpu::Level::Avx512 => {
                unsafe { x86::backward512(self, params, segs, grads, total, g, g2) };
                return;
            }
            #[allow(unsafe_code)]
            cpu::Level::Avx2 => {
                unsafe { x86::backward(self, params, segs, grads, total, g, g2) };
                return;
            }
            cpu::Level::Portable => {}
        }
        self.backward_impl(params, segs, grads, total, g, g2)
    }

    /// Runs layers `from..` on the `total` samples in the workspace, `segs` giving each
    /// worker's images: layers whose result for an image depends on that image alone
    /// (convolutions, ReLU, pooling, linear layers) run once over all of them, one larger
    /// product per layer; batch norm (batch statistics, running statistics) and dropout (the
    /// worker's stream) run worker by worker. One segment is the one-worker pass.
    #[inline(always)]
    pub(crate) fn forward_impl(
        &mut self,
        params: &[f32],
        segs: &mut [Seg<'_>],
        total: usize,
        train: bool,
        from: usize,
    ) {
        for (i, l) in self.layers.iter().enumerate().skip(from) {
            if relu_fused(&self.layers, i) {
                // The convolution before already wrote max(y, 0): its output buffer becomes
                // this layer's (the convolution's own output is not needed again).
                self.ws.acts.swap(i, i + 1);
                continue;
            }
            let (ni, no) = (l.input.len(), l.output.len());
            let (before, after) = self.ws.acts.split_at_mut(i + 1);
            let x = &before[i][..ni * total];
            let y = &mut after[0][..no * total];
            let p = &params[l.params.0..l.params.0 + l.params.1];
            match l.spec {
                LayerSpec::Conv {
                    out,
                    kernel,
                    padding,
                } => {
                    let (wino, relu) = (
                        l.wino.filter(|_| self.winograd),
                        relu_fused(&self.layers, i + 1),
                    );
                    // One worker's training pass keeps V for its backward pass.
                    let keep = match wino.filter(|_| self.ws.keep_v) {
                        Some(g) => {
                            let (kept, n) = (&mut self.ws.kept_v[i], g.kept_len(total));
                            if kept.len() < n {
                                kept.resize(n, 0.0);
                            }
                            Some(&mut kept[..n])
                        }
                        None => None,
                    };
                    if i > from && bn_fused(&self.layers, i - 1, self.winograd) {
                        // The batch norm before stored only its statistics: its input,
                        // normalised as it is read, each worker's images by their own.
                        let x = &before[i - 1][..ni * total];
                        let mut keep = keep;
                        for (k, s) in segs.iter().enumerate() {
                            let (a, b) = (s.start, s.start + s.batch);
                            let bn = normalised(&self.layers, &self.ws.bn_stats, params, i - 1, k);
                            conv::forward(
                                l.io(),
                                (out, kernel, padding),
                                p,
                                &x[a * ni..b * ni],
                                Some(bn),
                                &mut y[a * no..b * no],
                                s.batch,
                                relu,
                                wino,
                                // (`keep_v` only with one worker.)
                                keep.take(),
                                &mut self.ws.conv,
                                &mut self.ws.pack,
                            )
                        }
                    } else {
                        conv::forward(
                            l.io(),
                            (out, kernel, padding),
                            p,
                            x,
                            None,
                            y,
                            total,
                            relu,
                            wino,
                            keep,
                            &mut self.ws.conv,
                            &mut self.ws.pack,
                        )
                    }
                }
                LayerSpec::Relu => relu::forward(x, y),
                LayerSpec::MaxPool2 => pool::forward(
                    x,
                    l.input,
                    l.output,
                    total,
                    y,
                    &mut self.ws.pool_idx[i],
                    self.ws.pack.level(),
                ),
                LayerSpec::BatchNorm => {
                    let c2 = 2 * l.input.c;
                    let stats = &mut self.ws.bn_stats[i];
                    if stats.len() < c2 * segs.len() {
                        stats.resize(c2 * segs.len(), 0.0);
                    }
                    let store = !bn_fused(&self.layers, i, self.winograd);
                    for (k, s) in segs.iter_mut().enumerate() {
                        let (a, b) = (s.start, s.start + s.batch);
                        batch_norm::forward(
                            &x[a * ni..b * ni],
                            l.input,
                            s.batch,
                            p,
                            &mut s.state[l.state.0..l.state.0 + l.state.1],
                            train,
                            store.then_some(&mut y[a * no..b * no]),
                            &mut stats[k * c2..(k + 1) * c2],
                        )
                    }
                }
                LayerSpec::Dropout { p: drop } => {
                    for s in segs.iter_mut() {
                        let (a, b) = (s.start, s.start + s.batch);
                        dropout::forward(
                            &x[a * ni..b * ni],
                            &mut y[a * no..b * no],
                            drop,
                            train,
                            s.rng,
                            &mut self.ws.aux[i][a * no..b * no],
                        )
                    }
                }
                LayerSpec::Linear { out } => {
                    linear::forward(out, ni, p, x, y, total, &mut self.ws.pack)
                }
            }
        }
    }

    /// Summed cross-entropy of `labels` under the logits of the last forward pass, and the
    /// correct predictions; writes `d mean loss / d logits` into `grad` when given.
    fn cross_entropy(&self, labels: &[u8], grad: Option<&mut [f32]>) -> (f64, usize) {
        let logits = &self.ws.acts[self.layers.len()];
        loss::loss(self.head, logits, self.classes, labels, grad)
    }

    fn load_input(&mut self, images: &[f32], batch: usize) {
        self.prepare(batch);
        let n = self.input.len() * batch;
        self.ws.acts[0][..n].copy_from_slice(&images[..n]);
    }

    /// Mean cross-entropy loss of a batch in training mode (batch statistics, dropout from
    /// `rng`), and its gradient with respect to `params` written into `grad`. Batch-norm
    /// running statistics in `state` are updated as PyTorch does.
    pub fn loss_and_grad(
        &mut self,
        params: &[f32],
        state: &mut [f32],
        images: &[f32],
        labels: &[u8],
        rng: &mut dyn RngCore,
        grad: &mut [f32],
    ) -> f32 {
        let mut jobs = [Job {
            images,
            labels,
            state,
            rng,
            grad,
            loss: 0.0,
        }];
        self.loss_and_grad_batched(params, &mut jobs);
        jobs[0].loss
    }

    /// [`Network::loss_and_grad`] for several workers' batches at the same `params`, as one
    /// batch of all their images: one product per layer over every worker's images
    /// (the weights packed once, not once per worker), while batch statistics, running
    /// statistics, dropout masks, losses and weight gradients stay each worker's own. Each
    /// job gets the same bits as its own [`Network::loss_and_grad`] call (tested), whatever
    /// the jobs beside it.
    ///
    /// Panics if an image buffer does not hold its labels' count of images.
    pub fn loss_and_grad_batched(&mut self, params: &[f32], jobs: &mut [Job<'_>]) {
        let _mode = Flushed::new(self.flush_subnormals);
        let per = self.input.len();
        let total: usize = jobs.iter().map(|j| j.labels.len()).sum();
        self.prepare(total);
        let mut start = 0;
        let mut bounds = std::mem::take(&mut self.ws.bounds);
        bounds.clear();
        for j in jobs.iter() {
            let n = j.labels.len();
            assert!(
                j.images.len() >= n * per,
                "a batch of {n} images needs {} values, got {}",
                n * per,
                j.images.len()
            );
            self.ws.acts[0][start * per..(start + n) * per].copy_from_slice(&j.images[..n * per]);
            bounds.push((start, n));
            start += n;
        }
        // One worker (the simulator's per-worker path, Python's `EngineWorker`): no
        // allocation; several: two short lists per call.
        fn seg<'a>(j: &'a mut Job<'_>, &(start, batch): &(usize, usize)) -> Seg<'a> {
            Seg {
                start,
                batch,
                state: &mut *j.state,
                rng: &mut *j.rng,
            }
        }
        let on = self.winograd;
        let kept: usize = self
            .layers
            .iter()
            .filter_map(|l| l.wino.filter(|_| on))
            .map(|g| g.kept_len(total))
            .sum();
        // At AVX-512 only: measured in pairs on a Zen 4 (BENCHMARKS.md), keeping made the
        // CIFAR-10 round 2.3 % faster there, 4.6 % slower at AVX2 (whose 8 × 8 transposes,
        // packing the weight gradient's operand, read the kept values from memory at half a
        // cache line a row) and changed nothing at the portable level.
        self.ws.keep_v = jobs.len() == 1
            && kept > 0
            && kept <= KEEP_LIMIT
            && self.ws.pack.level() == Level::Avx512;
        match jobs {
            [j] => self.forward_segs(params, &mut [seg(j, &bounds[0])], total, true, 0),
            _ => {
                let mut segs: Vec<Seg<'_>> = jobs
                    .iter_mut()
                    .zip(&bounds)
                    .map(|(j, b)| seg(j, b))
                    .collect();
                self.forward_segs(params, &mut segs, total, true, 0);
            }
        }
        let mut g = std::mem::take(&mut self.ws.grad_a);
        let mut g2 = std::mem::take(&mut self.ws.grad_b);
        let c = self.classes;
        for (j, &(a, n)) in jobs.iter_mut().zip(&bounds) {
            let logits = &self.ws.acts[self.layers.len()][a * c..(a + n) * c];
            let (loss, _) = loss::loss(
                self.head,
                logits,
                c,
                j.labels,
                Some(&mut g[a * c..(a + n) * c]),
            );
            j.loss = (loss / n as f64) as f32;
            j.grad.fill(0.0);
        }
        match jobs {
            [j] => self.backward(params, &bounds, &mut [&mut *j.grad], total, &mut g, &mut g2),
            _ => {
                let mut grads: Vec<&mut [f32]> = jobs.iter_mut().map(|j| &mut *j.grad).collect();
                self.backward(params, &bounds, &mut grads, total, &mut g, &mut g2);
            }
        }
        self.ws.keep_v = false;
        self.ws.grad_a = g;
        self.ws.grad_b = g2;
        self.ws.bounds = bounds;
    }

    /// The backward pass from `d loss / d logits` in `g` (`g2` is the other ping-pong buffer)
    /// over the `total` samples of the forward pass: each worker's weight gradients, batch
    /// norm and convolutions from its own images (`segs`: start and count) into its own
    /// `grads` entry; the input gradients of ReLU, pooling, dropout and linear layers once
    /// over all of them.
    #[inline(always)]
    pub(crate) fn backward_impl(
        &mut self,
        params: &[f32],
        segs: &[(usize, usize)],
        grads: &mut [&mut [f32]],
        total: usize,
        g: &mut Vec<f32>,
        g2: &mut Vec<f32>,
    ) {
        for i in (0..self.layers.len()).rev() {
            if mask_fused(&self.layers, i + 1) {
                // The batch norm or pooling after this ReLU applied its mask: `g` already holds dx.
                continue;
            }
            let relu_mask = mask_fused(&self.layers, i);
            let l = &self.layers[i];
            let need_dx = i > 0;
            let (ni, no) = (l.input.len(), l.output.len());
            let x = &self.ws.acts[i][..ni * total];
            let y = &self.ws.acts[i + 1][..no * total];
            let dy = &g[..no * total];
            let dx = &mut g2[..ni * total];
            let (p0, np) = l.params;
            let p = &params[p0..p0 + np];
            let parts = segs.iter().zip(grads.iter_mut());
            match l.spec {
                LayerSpec::Conv {
                    out,
                    kernel,
                    padding,
                } => {
                    // After a batch norm whose output was not stored: its input, normalised
                    // as the forward pass read it.
                    let fused = i > 0 && bn_fused(&self.layers, i - 1, self.winograd);
                    let x = if fused {
                        &self.ws.acts[i - 1][..ni * total]
                    } else {
                        x
                    };
                    let wino = l.wino.filter(|_| self.winograd);
                    for (k, (&(a, n), gp)) in parts.enumerate() {
                        let b = a + n;
                        let bn = fused
                            .then(|| normalised(&self.layers, &self.ws.bn_stats, params, i - 1, k));
                        // What the forward pass kept (one worker: the whole pass).
                        let kept = wino
                            .filter(|_| self.ws.keep_v)
                            .map(|g| &self.ws.kept_v[i][..g.kept_len(n)]);
                        conv::backward(
                            l.io(),
                            (out, kernel, padding),
                            p,
                            &x[a * ni..b * ni],
                            bn,
                            kept,
                            &dy[a * no..b * no],
                            n,
                            &mut gp[p0..p0 + np],
                            need_dx.then_some(&mut dx[a * ni..b * ni]),
                            wino,
                            &mut self.ws.conv,
                            &mut self.ws.pack,
                        )
                    }
                }
                LayerSpec::Relu => relu::backward(dy, y, dx),
                LayerSpec::MaxPool2 => {
                    let mask = relu_mask.then_some(y);
                    let level = self.ws.pack.level();
                    pool::backward(l.input, l.output, dy, &self.ws.pool_idx[i], mask, dx, level)
                }
                LayerSpec::BatchNorm => {
                    let c2 = 2 * l.input.c;
                    for (k, (&(a, n), gp)) in parts.enumerate() {
                        let b = a + n;
                        batch_norm::backward(
                            &dy[a * no..b * no],
                            l.input,
                            n,
                            p,
                            &x[a * ni..b * ni],
                            &self.ws.bn_stats[i][k * c2..(k + 1) * c2],
                            relu_mask,
                            &mut gp[p0..p0 + np],
                            &mut dx[a * ni..b * ni],
                        )
                    }
                }
                LayerSpec::Dropout { p: drop } => dropout::backward(dy, drop, &self.ws.aux[i], dx),
                LayerSpec::Linear { out } => {
                    for (&(a, n), gp) in parts {
                        let b = a + n;
                        linear::backward_params(
                            out,
                            ni,
                            &x[a * ni..b * ni],
                            &dy[a * no..b * no],
                            n,
                            &mut gp[p0..p0 + np],
                            &mut self.ws.pack,
                        )
                    }
                    if need_dx {
                        linear::backward_input(out, ni, p, dy, total, dx, &mut self.ws.pack)
                    }
                }
            }
            std::mem::swap(g, g2);
        }
    }

    /// Loss and correct predictions on a set of samples in evaluation mode (running
    /// batch-norm statistics, no dropout), `batch` samples at a time.
    pub fn evaluate(
        &mut self,
        params: &[f32],
        state: &[f32],
        images: &[f32],
        labels: &[u8],
        batch: usize,
    ) -> Evaluation {
        self.evaluate_batches(params, state, images, labels, batch, None, None)
    }

    /// [`Network::evaluate`], also pushing each sample's predicted class to `predictions`.
    pub fn evaluate_predicting(
        &mut self,
        params: &[f32],
        state: &[f32],
        images: &[f32],
        labels: &[u8],
        batch: usize,
        predictions: &mut Vec<u8>,
    ) -> Evaluation {
        self.evaluate_batches(
            params,
            state,
            images,
            labels,
            batch,
            None,
            Some(predictions),
        )
    }

    /// Loss and correct predictions on a set of samples in *training* mode, `batch` samples at
    /// a time: batch statistics of each batch, dropout drawn from `rng`, as the thesis's
    /// code's CIFAR-10 runs evaluate (`worker.py`, `test`: `self.model.train()`, test batches
    /// of 25). `state` is not changed (a copy takes the running-statistics updates). Each
    /// sample's predicted class is pushed to `predictions` when given.
    #[allow(clippy::too_many_arguments)]
    pub fn evaluate_in_training_mode(
        &mut self,
        params: &[f32],
        state: &[f32],
        images: &[f32],
        labels: &[u8],
        batch: usize,
        rng: &mut dyn RngCore,
        predictions: Option<&mut Vec<u8>>,
    ) -> Evaluation {
        self.evaluate_batches(params, state, images, labels, batch, Some(rng), predictions)
    }

    /// The evaluation loop: `batch` samples at a time, in evaluation mode, or in training mode
    /// with dropout from `train` when given; predictions pushed when asked for.
    #[allow(clippy::too_many_arguments)]
    fn evaluate_batches(
        &mut self,
        params: &[f32],
        state: &[f32],
        images: &[f32],
        labels: &[u8],
        batch: usize,
        mut train: Option<&mut dyn RngCore>,
        mut predictions: Option<&mut Vec<u8>>,
    ) -> Evaluation {
        let _mode = Flushed::new(self.flush_subnormals);
        let mut ev = Evaluation::default();
        // Evaluation mode reads the running statistics but `forward` takes them mutably (it
        // updates them in training): a reused copy, so evaluating allocates nothing once warm.
        let mut copy = std::mem::take(&mut self.ws.eval_state);
        copy.clear();
        copy.extend_from_slice(state);
        let mut state = copy;
        let per = self.input.len();
        for (xs, ys) in images.chunks(per * batch).zip(labels.chunks(batch)) {
            let b = ys.len();
            match train.as_deref_mut() {
                Some(rng) => {
                    self.load_input(xs, b);
                    self.forward(params, &mut state, b, true, rng, 0);
                }
                None => self.forward_eval(params, &mut state, xs, b),
            }
            let (loss, correct) = self.cross_entropy(ys, None);
            ev.loss_sum += loss;
            ev.correct += correct;
            ev.count += b;
            if let Some(p) = predictions.as_deref_mut() {
                let logits = &self.ws.acts[self.layers.len()][..b * self.classes];
                p.extend(
                    logits
                        .chunks_exact(self.classes)
                        .map(|row| self.head.predict(row) as u8),
                );
            }
        }
        self.ws.eval_state = state;
        ev
    }

    /// The logits of `images` in evaluation mode (for tests and predictions).
    pub fn logits(
        &mut self,
        params: &[f32],
        state: &[f32],
        images: &[f32],
        batch: usize,
    ) -> Vec<f32> {
        let mut state = state.to_vec();
        self.forward_eval(params, &mut state, images, batch);
        self.ws.acts[self.layers.len()][..batch * self.classes].to_vec()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ModelKind;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    /// One training pass of `net` on two images: the loss's and the gradient's bits.
    fn pass(net: &mut Network) -> Vec<u32> {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let mut params = vec![0.0; net.num_params()];
        let mut state = vec![0.0; net.num_state()];
        net.init(&mut rng, &mut params, &mut state);
        let images: Vec<f32> = (0..2 * net.input().len())
            .map(|i| (i % 7) as f32 - 3.0)
            .collect();
        let mut grad = vec![0.0; net.num_params()];
        let loss = net.loss_and_grad(&params, &mut state, &images, &[1, 2], &mut rng, &mut grad);
        std::iter::once(loss)
            .chain(grad)
            .map(f32::to_bits)
            .collect()
    }

    /// Where the activations of this thread's workspaces for networks like `net` live, one
    /// sorted list per such workspace (a pass may exchange two layers' buffers).
    fn lent(net: &Network) -> Vec<Vec<*const f32>> {
        LENDERS.with(|l| {
            l.borrow()
                .iter()
                .filter(|n| n.lends_to(net))
                .map(|n| {
                    let mut at: Vec<*const f32> = n.ws.acts.iter().map(|a| a.as_ptr()).collect();
                    at.sort();
                    at
                })
                .collect()
        })
    }

    /// Networks of one model run through `with_thread_workspace` use one workspace a thread
    /// (their own never allocated) and give the bits of a pass on their own workspace; a
    /// network of another model or level gets a workspace of its own.
    #[test]
    fn networks_of_one_model_share_their_threads_workspace() {
        let kind = ModelKind::MnistCnn;
        let want = pass(&mut kind.build());
        let mut a = kind.build();
        assert_eq!(a.with_thread_workspace(pass), want);
        assert!(
            a.ws.acts.is_empty(),
            "the network's own workspace was allocated"
        );
        let first = lent(&a);
        assert!(first.len() == 1 && !first[0].is_empty());
        let mut b = kind.build();
        assert_eq!(b.with_thread_workspace(pass), want);
        assert!(b.ws.acts.is_empty());
        assert_eq!(
            lent(&b),
            first,
            "the second network got a workspace of its own"
        );
        // Another model, another workspace; and the first model's is still there.
        let mut other = ModelKind::LogisticRegression.build();
        let own = pass(&mut ModelKind::LogisticRegression.build());
        assert_eq!(other.with_thread_workspace(pass), own);
        assert_eq!(lent(&other).len(), 1);
        assert_eq!(lent(&a), first);
        // Another level of the same model, another workspace.
        if crate::cpu::best() > Level::Portable {
            let mut low = kind.build();
            low.set_cpu_level(Level::Portable).unwrap();
            let mut own = kind.build();
            own.set_cpu_level(Level::Portable).unwrap();
            assert_eq!(low.with_thread_workspace(pass), pass(&mut own));
            assert_eq!(lent(&low).len(), 1);
            assert_ne!(lent(&low), first);
        }
    }

    /// Where the kept transforms of this thread's workspaces for networks like `net` live,
    /// with their capacities.
    fn lent_kept(net: &Network) -> Vec<Vec<(*const f32, usize)>> {
        LENDERS.with(|l| {
            l.borrow()
                .iter()
                .filter(|n| n.lends_to(net))
                .map(|n| {
                    let kept = n.ws.kept_v.iter();
                    kept.map(|v| (v.as_ptr(), v.capacity())).collect()
                })
                .collect()
        })
    }

    /// The transforms a Winograd pass keeps (AVX-512) are part of the lent workspace: a
    /// network run through `with_thread_workspace` keeps none of its own, and another
    /// network's pass on the same thread reuses the same buffers rather than allocating its
    /// own (so the Python engine's fifteen CIFAR-10 workers hold one set a thread).
    #[test]
    fn kept_transforms_are_lent_by_the_thread_not_held_by_the_network() {
        if crate::cpu::best() < Level::Avx512 {
            eprintln!("skipped: this CPU has no AVX-512 (only that level keeps transforms)");
            return;
        }
        let kind = ModelKind::Cifar10Cnn { dropout: 0.25 };
        let mut a = kind.build();
        a.set_cpu_level(Level::Avx512).unwrap();
        let _ = a.with_thread_workspace(pass);
        assert!(a.ws.kept_v.is_empty(), "the network kept its buffers");
        let lent = lent_kept(&a);
        let winograd_layers = a.layers.iter().filter(|l| l.wino.is_some()).count();
        assert!(winograd_layers > 0);
        assert_eq!(lent.len(), 1);
        assert_eq!(
            lent[0].iter().filter(|(_, cap)| *cap > 0).count(),
            winograd_layers,
            "one buffer per Winograd convolution in the thread's workspace"
        );
        let mut b = kind.build();
        b.set_cpu_level(Level::Avx512).unwrap();
        let _ = b.with_thread_workspace(pass);
        assert!(b.ws.kept_v.is_empty());
        assert_eq!(lent_kept(&b), lent, "the second network allocated its own");
    }
}
