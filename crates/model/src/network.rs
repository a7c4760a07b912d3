//! A sequential network of the layers the thesis's models use, with its own forward and
//! backward passes over flat parameter vectors.

use crate::cpu;
use crate::gemm::{gemm, Pack};
use crate::lanes::{self, Lanes};
use crate::winograd::{self, Winograd};
use rand::{Rng, RngCore};
use serde::{Deserialize, Serialize};

/// Channels × height × width of one sample's activation (a vector is `c × 1 × 1`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shape {
    /// Channels (or features).
    pub c: usize,
    /// Height.
    pub h: usize,
    /// Width.
    pub w: usize,
}

impl Shape {
    /// A `c × h × w` shape.
    pub const fn new(c: usize, h: usize, w: usize) -> Self {
        Self { c, h, w }
    }

    /// Values per sample.
    pub fn len(&self) -> usize {
        self.c * self.h * self.w
    }

    /// True for a zero-sized shape.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// One layer of a sequential network.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "layer", rename_all = "snake_case")]
pub enum LayerSpec {
    /// 2-D convolution, stride 1: weight `[out, in, k, k]` then bias `[out]`.
    Conv {
        /// Output channels.
        out: usize,
        /// Kernel size `k`.
        kernel: usize,
        /// Zero padding on each side.
        padding: usize,
    },
    /// `max(x, 0)`.
    Relu,
    /// 2×2 max pooling, stride 2.
    MaxPool2,
    /// Batch normalisation over channels (ε = 1e-5, momentum 0.1, as PyTorch): weight `[c]`
    /// then bias `[c]`; running mean and variance are state, not parameters.
    BatchNorm,
    /// Zeroes each value with probability `p` in training and scales the rest by `1/(1−p)`.
    Dropout {
        /// Drop probability in `[0, 1)`.
        p: f32,
    },
    /// Fully connected (the input is flattened): weight `[out, in]` then bias `[out]`.
    Linear {
        /// Output features.
        out: usize,
    },
}

#[derive(Debug, Clone)]
pub(crate) struct Layer {
    pub(crate) spec: LayerSpec,
    pub(crate) input: Shape,
    pub(crate) output: Shape,
    /// Offset of this layer's parameters in the flat vector, and their count.
    pub(crate) params: (usize, usize),
    /// Offset of this layer's state (batch-norm running statistics), and its count.
    pub(crate) state: (usize, usize),
    /// The convolution's shape when Winograd's algorithm computes it (see [`winograd`]).
    pub(crate) wino: Option<winograd::Geometry>,
}

/// Per-batch buffers, grown to the largest batch seen and then reused.
#[derive(Debug, Clone, Default)]
struct Workspace {
    batch: usize,
    /// `acts[i]`: the input of layer `i`; `acts[layers]`: the logits.
    acts: Vec<Vec<f32>>,
    /// Per layer: max-pool arg-max indices, dropout masks, batch-norm x̂.
    aux: Vec<Vec<f32>>,
    pool_idx: Vec<Vec<u32>>,
    /// Batch-norm `1/√(var + ε)` per channel.
    inv_std: Vec<Vec<f32>>,
    col: Vec<f32>,
    dcol: Vec<f32>,
    grad_a: Vec<f32>,
    grad_b: Vec<f32>,
    /// The matrix products' packing buffers (fixed size, allocated with the network).
    pack: Pack,
    /// `evaluate`'s copy of the batch-norm running statistics.
    eval_state: Vec<f32>,
    /// The Winograd convolutions' buffers.
    wino: Winograd,
    /// Evaluation's trunk, sixteen images abreast (see [`lanes`]); planned on first use.
    lanes: Option<Lanes>,
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
    /// Whether evaluation runs the network's trunk sixteen images abreast (see [`lanes`]; on
    /// by default, off only to compare it with the per-image path).
    lanes: bool,
    ws: Workspace,
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

pub(crate) const BN_EPS: f32 = 1e-5;

const BN_MOMENTUM: f32 = 0.1;

impl Network {
    /// Builds the network for inputs of shape `input` ending in `classes` logits.
    ///
    /// Panics if the layers do not fit the shapes (a programming error in a model
    /// definition, caught by the model zoo's tests).
    pub fn new(input: Shape, specs: &[LayerSpec], classes: usize) -> Self {
        let mut layers = Vec::with_capacity(specs.len());
        let (mut shape, mut p, mut s) = (input, 0, 0);
        for spec in specs {
            let (output, np, ns) = match *spec {
                LayerSpec::Conv {
                    out,
                    kernel,
                    padding,
                } => {
                    let h = shape.h + 2 * padding + 1 - kernel;
                    let w = shape.w + 2 * padding + 1 - kernel;
                    (
                        Shape::new(out, h, w),
                        out * shape.c * kernel * kernel + out,
                        0,
                    )
                }
                LayerSpec::Relu | LayerSpec::Dropout { .. } => (shape, 0, 0),
                LayerSpec::MaxPool2 => (Shape::new(shape.c, shape.h / 2, shape.w / 2), 0, 0),
                LayerSpec::BatchNorm => (shape, 2 * shape.c, 2 * shape.c),
                LayerSpec::Linear { out } => (Shape::new(out, 1, 1), out * shape.len() + out, 0),
            };
            layers.push(Layer {
                spec: spec.clone(),
                input: shape,
                output,
                params: (p, np),
                state: (s, ns),
                wino: match *spec {
                    LayerSpec::Conv {
                        out,
                        kernel,
                        padding,
                    } if winograd::applies(kernel, padding, shape.c) => {
                        Some(winograd::Geometry::new(shape.c, out, output.h, output.w))
                    }
                    _ => None,
                },
            });
            p += np;
            s += ns;
            shape = output;
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
            ws: Workspace::default(),
        }
    }

    /// Turns Winograd's algorithm for 3 × 3 convolutions off (im2col + SGEMM for every
    /// convolution) or back on. Both compute the same function up to rounding; the tests and
    /// `byzadam bench-engine --im2col` compare them.
    #[doc(hidden)]
    pub fn set_winograd(&mut self, on: bool) {
        self.winograd = on;
        self.ws = Workspace::default();
    }

    /// Turns evaluation sixteen images abreast off (every layer image by image, as in
    /// training) or back on. Both give the same bits; the tests compare them.
    #[doc(hidden)]
    pub fn set_lanes(&mut self, on: bool) {
        self.lanes = on;
        self.ws = Workspace::default();
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
                LayerSpec::Dropout { .. } | LayerSpec::BatchNorm => {
                    vec![0.0; l.output.len() * batch]
                }
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
        ws.inv_std = self
            .layers
            .iter()
            .map(|l| {
                vec![
                    0.0;
                    if l.spec == LayerSpec::BatchNorm {
                        l.input.c
                    } else {
                        0
                    }
                ]
            })
            .collect();
        let on = self.winograd;
        for l in &self.layers {
            if let Some(g) = l.wino.filter(|_| on) {
                ws.wino.reserve(&g, batch);
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
        ws.col = vec![0.0; col];
        ws.dcol = vec![0.0; col];
        let widest = ws.acts.iter().map(Vec::len).max().unwrap_or(0);
        ws.grad_a = vec![0.0; widest];
        ws.grad_b = vec![0.0; widest];
    }

    /// Whether layer `i` is a ReLU that the convolution before it computes (in the pass that
    /// writes the convolution's output), so that its own forward pass is a buffer swap.
    pub(crate) fn relu_fused(layers: &[Layer], i: usize) -> bool {
        i > 0
            && layers.get(i).map(|l| &l.spec) == Some(&LayerSpec::Relu)
            && matches!(layers[i - 1].spec, LayerSpec::Conv { .. })
    }

    /// Whether layer `i` is a batch norm right after a ReLU: its backward pass then applies
    /// the ReLU's mask too (its input is the ReLU's output), and the ReLU's backward pass is
    /// nothing.
    fn mask_fused(layers: &[Layer], i: usize) -> bool {
        i > 0
            && layers.get(i).map(|l| &l.spec) == Some(&LayerSpec::BatchNorm)
            && layers[i - 1].spec == LayerSpec::Relu
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
        cpu::forward(self, params, state, batch, train, rng, from)
    }

    /// The forward pass of evaluation on `batch` images: the trunk sixteen images abreast
    /// when there is one (see [`lanes`]), its chunks shared out over the rayon pool's threads
    /// (each chunk's result is the same whichever thread computes it), then the other layers
    /// on the whole batch.
    fn forward_eval(&mut self, params: &[f32], state: &mut [f32], images: &[f32], batch: usize) {
        use rayon::prelude::*;
        self.prepare(batch);
        let mut no_rng = rand::rngs::mock::StepRng::new(0, 0);
        if self.lanes && self.ws.lanes.is_none() {
            let threads = rayon::current_num_threads();
            self.ws.lanes = Some(Lanes::plan(&self.layers, self.winograd, threads));
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
        let share = batch.div_ceil(lanes::LANES).div_ceil(scratch.len()) * lanes::LANES;
        let lanes = &*lanes;
        scratch
            .par_iter_mut()
            .zip(images[..batch * input.len()].par_chunks(share * input.len()))
            .zip(self.ws.acts[end][..batch * width].par_chunks_mut(share * width))
            .for_each(|((s, xs), ys)| {
                cpu::eval_chunks(lanes, s, params, state, input, xs, width, ys)
            });
        self.ws.lanes.as_mut().expect("planned").scratch = scratch;
        self.forward(params, state, batch, false, &mut no_rng, end);
    }

    /// The backward pass (the AVX2 build when the CPU has it: see [`cpu`]).
    fn backward(
        &mut self,
        params: &[f32],
        batch: usize,
        grad: &mut [f32],
        g: &mut Vec<f32>,
        g2: &mut Vec<f32>,
    ) {
        cpu::backward(self, params, batch, grad, g, g2)
    }

    #[inline(always)]
    pub(crate) fn forward_impl(
        &mut self,
        params: &[f32],
        state: &mut [f32],
        batch: usize,
        train: bool,
        rng: &mut dyn RngCore,
        from: usize,
    ) {
        for (i, l) in self.layers.iter().enumerate().skip(from) {
            if Self::relu_fused(&self.layers, i) {
                // The convolution before already wrote max(y, 0): its output buffer becomes
                // this layer's (the convolution's own output is not needed again).
                self.ws.acts.swap(i, i + 1);
                continue;
            }
            let (before, after) = self.ws.acts.split_at_mut(i + 1);
            let x = &before[i][..l.input.len() * batch];
            let y = &mut after[0][..l.output.len() * batch];
            let p = &params[l.params.0..l.params.0 + l.params.1];
            match l.spec {
                LayerSpec::Conv {
                    kernel,
                    padding,
                    out,
                } => {
                    let (cin, hw) = (l.input.c, l.output.h * l.output.w);
                    let ckk = cin * kernel * kernel;
                    let (w, b) = p.split_at(out * ckk);
                    let relu = Self::relu_fused(&self.layers, i + 1);
                    if let Some(g) = l.wino.filter(|_| self.winograd) {
                        winograd::forward(
                            &g,
                            batch,
                            x,
                            w,
                            b,
                            y,
                            relu,
                            &mut self.ws.wino,
                            &mut self.ws.pack,
                        );
                        continue;
                    }
                    for (xb, yb) in x
                        .chunks_exact(l.input.len())
                        .zip(y.chunks_exact_mut(l.output.len()))
                    {
                        im2col(
                            xb,
                            l.input,
                            kernel,
                            padding,
                            l.output,
                            &mut self.ws.col[..ckk * hw],
                        );
                        gemm(
                            out,
                            hw,
                            ckk,
                            w,
                            false,
                            &self.ws.col,
                            false,
                            0.0,
                            yb,
                            &mut self.ws.pack,
                        );
                        for (plane, &bias) in yb.chunks_exact_mut(hw).zip(b) {
                            if relu {
                                for v in plane {
                                    *v = (*v + bias).max(0.0);
                                }
                            } else {
                                for v in plane {
                                    *v += bias;
                                }
                            }
                        }
                    }
                }
                LayerSpec::Relu => {
                    for (o, &v) in y.iter_mut().zip(x) {
                        *o = v.max(0.0);
                    }
                }
                LayerSpec::MaxPool2 => {
                    maxpool_forward(x, l.input, l.output, batch, y, &mut self.ws.pool_idx[i])
                }
                LayerSpec::BatchNorm => {
                    let s = &mut state[l.state.0..l.state.0 + l.state.1];
                    batchnorm_forward(
                        x,
                        l.input,
                        batch,
                        p,
                        s,
                        train,
                        y,
                        &mut self.ws.aux[i],
                        &mut self.ws.inv_std[i],
                    );
                }
                LayerSpec::Dropout { p: drop } => {
                    if train && drop > 0.0 {
                        let mask = &mut self.ws.aux[i][..y.len()];
                        dropout_mask(rng, drop, mask);
                        for ((o, &v), &m) in y.iter_mut().zip(x).zip(mask.iter()) {
                            *o = v * m;
                        }
                    } else {
                        y.copy_from_slice(x);
                    }
                }
                LayerSpec::Linear { out } => {
                    let n_in = l.input.len();
                    let (w, b) = p.split_at(out * n_in);
                    gemm(
                        batch,
                        out,
                        n_in,
                        x,
                        false,
                        w,
                        true,
                        0.0,
                        y,
                        &mut self.ws.pack,
                    );
                    for row in y.chunks_exact_mut(out) {
                        for (v, &bias) in row.iter_mut().zip(b) {
                            *v += bias;
                        }
                    }
                }
            }
        }
    }

    /// Mean cross-entropy of `labels` under the logits of the last forward pass; writes
    /// `d loss / d logits` into `grad` when given.
    fn cross_entropy(
        &self,
        batch: usize,
        labels: &[u8],
        mut grad: Option<&mut [f32]>,
    ) -> (f64, usize) {
        let k = self.classes;
        let logits = &self.ws.acts[self.layers.len()][..batch * k];
        let (mut loss, mut correct) = (0f64, 0usize);
        for (b, row) in logits.chunks_exact(k).enumerate() {
            let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let sum: f64 = row.iter().map(|&v| ((v - max) as f64).exp()).sum();
            let log_z = max as f64 + sum.ln();
            let y = labels[b] as usize;
            loss += log_z - row[y] as f64;
            let arg = row
                .iter()
                .enumerate()
                .fold(0, |best, (j, &v)| if v > row[best] { j } else { best });
            correct += usize::from(arg == y);
            if let Some(g) = grad.as_deref_mut() {
                for (j, (gj, &v)) in g[b * k..(b + 1) * k].iter_mut().zip(row).enumerate() {
                    let p = ((v as f64) - log_z).exp();
                    *gj = ((p - f64::from(u8::from(j == y))) / batch as f64) as f32;
                }
            }
        }
        (loss, correct)
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
        let batch = labels.len();
        self.load_input(images, batch);
        self.forward(params, state, batch, true, rng, 0);
        grad.fill(0.0);
        let mut g = std::mem::take(&mut self.ws.grad_a);
        let mut g2 = std::mem::take(&mut self.ws.grad_b);
        let (loss, _) = self.cross_entropy(batch, labels, Some(&mut g[..batch * self.classes]));
        self.backward(params, batch, grad, &mut g, &mut g2);
        self.ws.grad_a = g;
        self.ws.grad_b = g2;
        (loss / batch as f64) as f32
    }

    /// The backward pass from `d loss / d logits` in `g`; `g2` is the other ping-pong buffer.
    #[inline(always)]
    pub(crate) fn backward_impl(
        &mut self,
        params: &[f32],
        batch: usize,
        grad: &mut [f32],
        g: &mut Vec<f32>,
        g2: &mut Vec<f32>,
    ) {
        for i in (0..self.layers.len()).rev() {
            if Self::mask_fused(&self.layers, i + 1) {
                // The batch norm after this ReLU applied its mask: `g` already holds dx.
                continue;
            }
            let relu_mask = Self::mask_fused(&self.layers, i);
            let l = &self.layers[i];
            let need_dx = i > 0;
            let x = &self.ws.acts[i][..l.input.len() * batch];
            let y = &self.ws.acts[i + 1][..l.output.len() * batch];
            let dy = &g[..l.output.len() * batch];
            let dx = &mut g2[..l.input.len() * batch];
            let (p0, np) = l.params;
            let p = &params[p0..p0 + np];
            let gp = &mut grad[p0..p0 + np];
            match l.spec {
                LayerSpec::Conv {
                    kernel,
                    padding,
                    out,
                } => {
                    let (cin, hw) = (l.input.c, l.output.h * l.output.w);
                    let ckk = cin * kernel * kernel;
                    let (w, _) = p.split_at(out * ckk);
                    let (gw, gb) = gp.split_at_mut(out * ckk);
                    for (c, gbias) in gb.iter_mut().enumerate() {
                        let mut acc = Lanes64::default();
                        for dyb in dy.chunks_exact(l.output.len()) {
                            acc.add(&dyb[c * hw..(c + 1) * hw], |g| g as f64);
                        }
                        *gbias += acc.total() as f32;
                    }
                    if let Some(geo) = l.wino.filter(|_| self.winograd) {
                        winograd::backward(
                            &geo,
                            batch,
                            x,
                            w,
                            dy,
                            gw,
                            need_dx.then_some(dx),
                            &mut self.ws.wino,
                            &mut self.ws.pack,
                        );
                    } else {
                        for ((xb, dyb), dxb) in x
                            .chunks_exact(l.input.len())
                            .zip(dy.chunks_exact(l.output.len()))
                            .zip(dx.chunks_exact_mut(l.input.len()))
                        {
                            im2col(
                                xb,
                                l.input,
                                kernel,
                                padding,
                                l.output,
                                &mut self.ws.col[..ckk * hw],
                            );
                            gemm(
                                out,
                                ckk,
                                hw,
                                dyb,
                                false,
                                &self.ws.col,
                                true,
                                1.0,
                                gw,
                                &mut self.ws.pack,
                            );
                            if need_dx {
                                gemm(
                                    ckk,
                                    hw,
                                    out,
                                    w,
                                    true,
                                    dyb,
                                    false,
                                    0.0,
                                    &mut self.ws.dcol[..ckk * hw],
                                    &mut self.ws.pack,
                                );
                                col2im(
                                    &self.ws.dcol[..ckk * hw],
                                    l.input,
                                    kernel,
                                    padding,
                                    l.output,
                                    dxb,
                                );
                            }
                        }
                    }
                }
                LayerSpec::Relu => {
                    for ((d, &g), &o) in dx.iter_mut().zip(dy).zip(y) {
                        *d = if o > 0.0 { g } else { 0.0 };
                    }
                }
                LayerSpec::MaxPool2 => {
                    dx.fill(0.0);
                    let per_in = l.input.len();
                    let per_out = l.output.len();
                    for (b, (dyb, idx)) in dy
                        .chunks_exact(per_out)
                        .zip(self.ws.pool_idx[i].chunks_exact(per_out))
                        .enumerate()
                    {
                        let dxb = &mut dx[b * per_in..(b + 1) * per_in];
                        for (&g, &j) in dyb.iter().zip(idx) {
                            dxb[j as usize] += g;
                        }
                    }
                }
                LayerSpec::BatchNorm => batchnorm_backward(
                    dy,
                    l.input,
                    batch,
                    p,
                    &self.ws.aux[i],
                    &self.ws.inv_std[i],
                    relu_mask.then_some(x),
                    gp,
                    dx,
                ),
                LayerSpec::Dropout { p: drop } => {
                    if drop > 0.0 {
                        for ((d, &g), &m) in dx.iter_mut().zip(dy).zip(&self.ws.aux[i]) {
                            *d = g * m;
                        }
                    } else {
                        dx.copy_from_slice(dy);
                    }
                }
                LayerSpec::Linear { out } => {
                    let n_in = l.input.len();
                    let (w, _) = p.split_at(out * n_in);
                    let (gw, gb) = gp.split_at_mut(out * n_in);
                    gemm(
                        out,
                        n_in,
                        batch,
                        dy,
                        true,
                        x,
                        false,
                        1.0,
                        gw,
                        &mut self.ws.pack,
                    );
                    for row in dy.chunks_exact(out) {
                        for (s, &v) in gb.iter_mut().zip(row) {
                            *s += v;
                        }
                    }
                    if need_dx {
                        gemm(
                            batch,
                            n_in,
                            out,
                            dy,
                            false,
                            w,
                            false,
                            0.0,
                            dx,
                            &mut self.ws.pack,
                        );
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
            self.forward_eval(params, &mut state, xs, b);
            let (loss, correct) = self.cross_entropy(b, ys, None);
            ev.loss_sum += loss;
            ev.correct += correct;
            ev.count += b;
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

/// Unfolds one image into columns: row `(c·k + ky)·k + kx`, column `oy·wo + ox`.
#[inline(always)]
fn im2col(x: &[f32], input: Shape, k: usize, pad: usize, output: Shape, col: &mut [f32]) {
    let (h, w, ho, wo) = (input.h, input.w, output.h, output.w);
    let mut row = 0;
    for c in 0..input.c {
        let plane = &x[c * h * w..(c + 1) * h * w];
        for ky in 0..k {
            for kx in 0..k {
                let dst = &mut col[row * ho * wo..(row + 1) * ho * wo];
                // Output columns whose input column ox + kx − pad is inside the image.
                let lo = pad.saturating_sub(kx).min(wo);
                let hi = (w + pad).saturating_sub(kx).min(wo).max(lo);
                for oy in 0..ho {
                    let d = &mut dst[oy * wo..(oy + 1) * wo];
                    let iy = (oy + ky) as isize - pad as isize;
                    if iy < 0 || iy >= h as isize {
                        d.fill(0.0);
                        continue;
                    }
                    let src = &plane[iy as usize * w..(iy as usize + 1) * w];
                    d[..lo].fill(0.0);
                    d[hi..].fill(0.0);
                    let ix0 = lo + kx - pad;
                    // Rows are short (8–32 values): an inline loop beats a call to memcpy.
                    for (a, &b) in d[lo..hi].iter_mut().zip(&src[ix0..ix0 + (hi - lo)]) {
                        *a = b;
                    }
                }
                row += 1;
            }
        }
    }
}

/// The adjoint of [`im2col`]: sums columns back into the image gradient (overwrites `dx`).
#[inline(always)]
fn col2im(col: &[f32], input: Shape, k: usize, pad: usize, output: Shape, dx: &mut [f32]) {
    let (h, w, ho, wo) = (input.h, input.w, output.h, output.w);
    dx.fill(0.0);
    let mut row = 0;
    for c in 0..input.c {
        let plane = &mut dx[c * h * w..(c + 1) * h * w];
        for ky in 0..k {
            for kx in 0..k {
                let src = &col[row * ho * wo..(row + 1) * ho * wo];
                let lo = pad.saturating_sub(kx).min(wo);
                let hi = (w + pad).saturating_sub(kx).min(wo).max(lo);
                for oy in 0..ho {
                    let iy = (oy + ky) as isize - pad as isize;
                    if iy < 0 || iy >= h as isize {
                        continue;
                    }
                    let s = &src[oy * wo + lo..oy * wo + hi];
                    let ix0 = lo + kx - pad;
                    let d = &mut plane[iy as usize * w + ix0..iy as usize * w + ix0 + (hi - lo)];
                    for (a, &b) in d.iter_mut().zip(s) {
                        *a += b;
                    }
                }
                row += 1;
            }
        }
    }
}

#[inline(always)]
fn maxpool_forward(
    x: &[f32],
    input: Shape,
    output: Shape,
    batch: usize,
    y: &mut [f32],
    idx: &mut [u32],
) {
    let (h, w, ho, wo) = (input.h, input.w, output.h, output.w);
    for b in 0..batch {
        for c in 0..input.c {
            let plane = &x[b * input.len() + c * h * w..b * input.len() + (c + 1) * h * w];
            let base = (c * h * w) as u32;
            let o0 = b * output.len() + c * ho * wo;
            // A fold, not `any`: no early exit, so it vectorises.
            let exact = plane.iter().fold(false, |nan, v| nan | v.is_nan());
            for oy in 0..ho {
                let r0 = &plane[2 * oy * w..2 * oy * w + 2 * wo];
                let r1 = &plane[(2 * oy + 1) * w..(2 * oy + 1) * w + 2 * wo];
                let yo = &mut y[o0 + oy * wo..o0 + (oy + 1) * wo];
                let io = &mut idx[o0 + oy * wo..o0 + (oy + 1) * wo];
                let j0 = base + (2 * oy * w) as u32;
                if exact {
                    pool_row_exact(r0, r1, w as u32, j0, yo, io);
                } else {
                    pool_row(r0, r1, w as u32, j0, yo, io);
                }
            }
        }
    }
}

/// One output row of 2×2 max pooling over input rows `r0`, `r1` (no NaN among them): as
/// PyTorch, the first maximum in raster order wins (ties are common: ReLU zeros). Each row's
/// pair first, then the two rows, each step taking the later value only if strictly greater:
/// branch-free, so it vectorises.
#[inline(always)]
fn pool_row(r0: &[f32], r1: &[f32], w: u32, j0: u32, yo: &mut [f32], io: &mut [u32]) {
    for (ox, ((p, q), (o, i))) in r0
        .chunks_exact(2)
        .zip(r1.chunks_exact(2))
        .zip(yo.iter_mut().zip(io.iter_mut()))
        .enumerate()
    {
        let (t0, t1) = (p[1] > p[0], q[1] > q[0]);
        let h0 = if t0 { p[1] } else { p[0] };
        let h1 = if t1 { q[1] } else { q[0] };
        let down = h1 > h0;
        *o = if down { h1 } else { h0 };
        let off = if down { w + t1 as u32 } else { t0 as u32 };
        *i = j0 + 2 * ox as u32 + off;
    }
}

/// Max pooling's rule for replacing the running maximum `m` by a later value `u` of the
/// window: strictly greater (the first maximum in raster order wins, as in PyTorch), or a NaN
/// over a number (NaN propagates). Non-short-circuit operators, so that loops over it
/// vectorise (`lanes.rs` pools with it too).
#[inline(always)]
pub(crate) fn pool_takes(u: f32, m: f32) -> bool {
    (u > m) | (u.is_nan() & !m.is_nan())
}

/// [`pool_row`] for rows holding NaN: a NaN, once taken, is never replaced (NaN propagates,
/// as in PyTorch).
#[inline(always)]
fn pool_row_exact(r0: &[f32], r1: &[f32], w: u32, j0: u32, yo: &mut [f32], io: &mut [u32]) {
    for ox in 0..yo.len() {
        let cand = [
            (r0[2 * ox], 0u32),
            (r0[2 * ox + 1], 1),
            (r1[2 * ox], w),
            (r1[2 * ox + 1], w + 1),
        ];
        let (mut v, mut at) = cand[0];
        for &(u, off) in &cand[1..] {
            if pool_takes(u, v) {
                v = u;
                at = off;
            }
        }
        yo[ox] = v;
        io[ox] = j0 + 2 * ox as u32 + at;
    }
}

/// Dropout's mask: `0` with probability `drop`, else `1 / (1 − drop)`, one uniform draw of
/// `rng` per value as `rng.gen::<f32>()` makes it (the top 24 bits of a `u32`, times 2⁻²⁴),
/// the `u32`s taken 256 at a time with `fill_bytes` (for block generators such as ChaCha the
/// same stream as one `next_u32` per value, without a virtual call per value).
#[inline(always)]
fn dropout_mask(rng: &mut dyn RngCore, drop: f32, mask: &mut [f32]) {
    let keep = 1.0 / (1.0 - drop);
    let mut bytes = [0u8; 1024];
    for chunk in mask.chunks_mut(256) {
        let bytes = &mut bytes[..4 * chunk.len()];
        rng.fill_bytes(bytes);
        for (m, b) in chunk.iter_mut().zip(bytes.chunks_exact(4)) {
            let u = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
            let uniform = (1.0 / (1u32 << 24) as f32) * (u >> 8) as f32;
            *m = if uniform < drop { 0.0 } else { keep };
        }
    }
}

#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn batchnorm_forward(
    x: &[f32],
    shape: Shape,
    batch: usize,
    p: &[f32],
    state: &mut [f32],
    train: bool,
    y: &mut [f32],
    xhat: &mut [f32],
    inv_std: &mut [f32],
) {
    let (c_n, hw) = (shape.c, shape.h * shape.w);
    let n = (batch * hw) as f64;
    let (gamma, beta) = p.split_at(c_n);
    let (running_mean, running_var) = state.split_at_mut(c_n);
    for c in 0..c_n {
        let planes = || (0..batch).map(move |b| b * shape.len() + c * hw);
        let (mean, var) = if train {
            let mut acc = Lanes64::default();
            for o in planes() {
                acc.add(&x[o..o + hw], |v| v as f64);
            }
            let mean = acc.total() / n;
            let mut acc = Lanes64::default();
            for o in planes() {
                acc.add(&x[o..o + hw], |v| (v as f64 - mean).powi(2));
            }
            let var = acc.total() / n;
            running_mean[c] = (1.0 - BN_MOMENTUM) * running_mean[c] + BN_MOMENTUM * mean as f32;
            let unbiased = if n > 1.0 { var * n / (n - 1.0) } else { var };
            running_var[c] = (1.0 - BN_MOMENTUM) * running_var[c] + BN_MOMENTUM * unbiased as f32;
            (mean as f32, var as f32)
        } else {
            (running_mean[c], running_var[c])
        };
        let inv = 1.0 / (var + BN_EPS).sqrt();
        inv_std[c] = inv;
        let (ga, be) = (gamma[c], beta[c]);
        for o in planes() {
            for ((h, o), &v) in xhat[o..o + hw]
                .iter_mut()
                .zip(&mut y[o..o + hw])
                .zip(&x[o..o + hw])
            {
                *h = (v - mean) * inv;
                *o = ga * *h + be;
            }
        }
    }
}

#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn batchnorm_backward(
    dy: &[f32],
    shape: Shape,
    batch: usize,
    p: &[f32],
    xhat: &[f32],
    inv_std: &[f32],
    relu_output: Option<&[f32]>,
    gp: &mut [f32],
    dx: &mut [f32],
) {
    let (c_n, hw) = (shape.c, shape.h * shape.w);
    let n = (batch * hw) as f32;
    let (gamma, _) = p.split_at(c_n);
    let (ggamma, gbeta) = gp.split_at_mut(c_n);
    for c in 0..c_n {
        let planes = || (0..batch).map(move |b| b * shape.len() + c * hw);
        let (mut sum_dy, mut sum_dy_xhat) = (Lanes64::default(), Lanes64::default());
        for o in planes() {
            sum_dy.add(&dy[o..o + hw], |g| g as f64);
            sum_dy_xhat.add2(&dy[o..o + hw], &xhat[o..o + hw], |g, h| (g * h) as f64);
        }
        let (sum_dy, sum_dy_xhat) = (sum_dy.total(), sum_dy_xhat.total());
        ggamma[c] += sum_dy_xhat as f32;
        gbeta[c] += sum_dy as f32;
        let (sd, sdx) = (sum_dy as f32, sum_dy_xhat as f32);
        let k = gamma[c] * inv_std[c] / n;
        for o in planes() {
            let terms = dx[o..o + hw]
                .iter_mut()
                .zip(&dy[o..o + hw])
                .zip(&xhat[o..o + hw]);
            // The ReLU before, fused: its backward pass, `dx · [y > 0]` with `y` its output
            // (this layer's input).
            if let Some(y) = relu_output {
                for (((d, &g), &h), &v) in terms.zip(&y[o..o + hw]) {
                    *d = if v > 0.0 {
                        k * (n * g - sd - h * sdx)
                    } else {
                        0.0
                    };
                }
            } else {
                for ((d, &g), &h) in terms {
                    *d = k * (n * g - sd - h * sdx);
                }
            }
        }
    }
}

/// A sum of `f64` terms in 16 running sums (term `i` into sum `i mod 16` of its slice, the
/// sums added pairwise at the end): a fixed order, so the same terms always give the same
/// bits, and 16 independent additions that the compiler vectorises, where one running sum
/// waits on every addition before it.
#[derive(Default)]
pub(crate) struct Lanes64([f64; 16]);

impl Lanes64 {
    /// Adds `f(x)` for every `x` in `xs`.
    #[inline(always)]
    pub(crate) fn add(&mut self, xs: &[f32], f: impl Fn(f32) -> f64) {
        let chunks = xs.chunks_exact(16);
        let rest = chunks.remainder();
        for c in chunks {
            for (s, &x) in self.0.iter_mut().zip(c) {
                *s += f(x);
            }
        }
        for (s, &x) in self.0.iter_mut().zip(rest) {
            *s += f(x);
        }
    }

    /// Adds `f(a, b)` for every pair of `as` and `bs` (of one length).
    #[inline(always)]
    fn add2(&mut self, a: &[f32], b: &[f32], f: impl Fn(f32, f32) -> f64) {
        let (ca, cb) = (a.chunks_exact(16), b.chunks_exact(16));
        let (ra, rb) = (ca.remainder(), cb.remainder());
        for (ca, cb) in ca.zip(cb) {
            for ((s, &x), &y) in self.0.iter_mut().zip(ca).zip(cb) {
                *s += f(x, y);
            }
        }
        for ((s, &x), &y) in self.0.iter_mut().zip(ra).zip(rb) {
            *s += f(x, y);
        }
    }

    /// The sum of every term added.
    #[inline(always)]
    pub(crate) fn total(&self) -> f64 {
        let mut s = self.0;
        let mut width = 16;
        while width > 1 {
            width /= 2;
            for i in 0..width {
                s[i] += s[i + width];
            }
        }
        s[0]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn max_pooling_takes_the_first_maximum_and_propagates_nan() {
        let input = Shape::new(1, 2, 4);
        let output = Shape::new(1, 1, 2);
        // Window 1: a tie at 0 between positions (0,0) and (1,1): the first wins.
        // Window 2: a NaN at (1,2) beats the larger 9 before it.
        let x = [0.0, -1.0, 9.0, 1.0, -2.0, 0.0, f32::NAN, 3.0];
        let (mut y, mut idx) = ([0.0; 2], [0u32; 2]);
        maxpool_forward(&x, input, output, 1, &mut y, &mut idx);
        assert_eq!((y[0], idx[0]), (0.0, 0));
        assert!(y[1].is_nan() && idx[1] == 6);
        // Without NaN: a strictly larger value later in raster order wins.
        let x = [0.0, 2.0, 5.0, 5.0, 3.0, 2.0, 5.0, 1.0];
        maxpool_forward(&x, input, output, 1, &mut y, &mut idx);
        assert_eq!((y, idx), ([3.0, 5.0], [4, 2]));
    }

    #[test]
    fn dropout_mask_is_one_uniform_draw_per_value() {
        // The definition: one `rng.gen::<f32>()` per value, in order. Lengths across the
        // 256-value blocks of `fill_bytes`, and a stream already started mid-block.
        for len in [0, 1, 7, 255, 256, 257, 1000] {
            for drop in [0.1f32, 0.25, 0.5, 0.9] {
                let mut fast = rand_chacha::ChaCha8Rng::seed_from_u64(len as u64);
                let mut slow = fast.clone();
                fast.next_u32();
                slow.next_u32();
                let mut mask = vec![f32::NAN; len];
                dropout_mask(&mut fast, drop, &mut mask);
                let keep = 1.0 / (1.0 - drop);
                let expected: Vec<f32> = (0..len)
                    .map(|_| if slow.gen::<f32>() < drop { 0.0 } else { keep })
                    .collect();
                assert_eq!(mask, expected, "len {len}, drop {drop}");
                // The streams stay in step after the mask.
                assert_eq!(fast.next_u32(), slow.next_u32());
            }
        }
    }

    #[test]
    fn lane_sums_are_exact_where_the_sum_is() {
        // Integers up to 2^20, at most 2^12 of them: every partial sum is exact in f64, so
        // any order must give the plain sum; and the order is fixed, so a slice split in two
        // calls (at a multiple of 16) gives the same bits as one call.
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
        for len in [0, 1, 15, 16, 17, 33, 1000, 4096] {
            let xs: Vec<f32> = (0..len)
                .map(|_| rng.gen_range(-(1 << 20)..(1 << 20)) as f32)
                .collect();
            let mut acc = Lanes64::default();
            acc.add(&xs, |x| x as f64);
            let plain: f64 = xs.iter().map(|&x| x as f64).sum();
            assert_eq!(acc.total(), plain, "len {len}");
            let mut sq = Lanes64::default();
            sq.add2(&xs, &xs, |a, b| a as f64 * b as f64 / 1024.0);
            let plain: f64 = xs.iter().map(|&x| x as f64 * x as f64 / 1024.0).sum();
            assert_eq!(sq.total(), plain, "len {len}");
        }
        let xs: Vec<f32> = (0..100).map(|i| 1.0 / (i as f32 + 1.0)).collect();
        let (mut one, mut two) = (Lanes64::default(), Lanes64::default());
        one.add(&xs, |x| x as f64);
        two.add(&xs[..48], |x| x as f64);
        two.add(&xs[48..], |x| x as f64);
        assert_eq!(one.total().to_bits(), two.total().to_bits());
    }
}
