//! Evaluation sixteen images abreast: the network's leading convolutional layers (its
//! *trunk*) run on chunks of [`LANES`] images stored lane-innermost, `[c][h][w][lane]`.
//!
//! In that layout the 16 values a register tile of the SGEMM needs at one depth (input
//! channel and kernel offset) and one output position are contiguous in the input itself, so a
//! convolution reads its input in place ([`gemm::gathered`]): no im2col, no packing of B, and
//! the weights packed once per call instead of once per image. Pooling, batch norm and ReLU
//! become plain passes over whole vectors. It is the forward pass of evaluation only (no
//! arg-max indices, running batch-norm statistics, no dropout), and it performs the same
//! operations in the same order as the per-image path: logits and losses are bit-identical
//! (`tests/convolution_paths.rs` checks it), so which path ran never shows in a result.
//!
//! The trunk is the longest prefix of layers made of convolutions computed by im2col (a
//! Winograd convolution ends it), ReLU, max pooling, batch norm and dropout; at its end the
//! chunk is transposed back into the per-image layout and the remaining layers (the linear
//! ones, for the thesis's models) run on the whole batch as in training.

use crate::gemm::{self, MR};
use crate::network::{Layer, LayerSpec, Shape, BN_EPS};

/// Images per chunk: one per lane of the micro-kernel's two AVX vectors ([`gemm::NR`]).
pub(crate) const LANES: usize = gemm::NR;

/// One layer of the trunk.
#[derive(Debug, Clone)]
enum Step {
    Conv {
        out: usize,
        pad: usize,
        /// Whether the ReLU after it is applied as its output is written (that ReLU is then
        /// no step of its own).
        relu: bool,
        /// Offset and length of the weights, then of the bias, in the parameters.
        weights: (usize, usize),
        bias: usize,
        /// Rows per register tile (the weights are packed in panels of this many).
        rows: usize,
        /// Where the packed weights start in `Lanes::packed`.
        packed_at: usize,
        /// For each depth (input channel, kernel row, kernel column), the offset of its
        /// lanes from an output position's in the padded input.
        offs: Vec<u32>,
    },
    Relu,
    Pool,
    BatchNorm {
        params: usize,
        state: usize,
    },
}

/// The trunk's plan and buffers (part of a network's workspace; built on first use, so a
/// network that never evaluates holds nothing).
#[derive(Debug, Clone, Default)]
pub(crate) struct Lanes {
    /// Each step with its input and output shapes.
    steps: Vec<(Step, Shape, Shape)>,
    /// The first layer not in the trunk (0: no trunk).
    end: usize,
    /// Two buffers for a chunk's activations, and one for a padded convolution input.
    a: Vec<f32>,
    b: Vec<f32>,
    padded: Vec<f32>,
    /// Every convolution's weights, packed in panels of `rows` rows: panel `q`, depth `p`,
    /// row `r` at `packed_at + q · rows · k + p · height + r`, `height` the panel's rows.
    packed: Vec<f32>,
}

/// Rows per register tile for `out` output channels: as many as the kernel has (6), unless
/// 5 divides the count and 6 does not (20 channels: four tiles of 5, not three of 6 and a
/// slow one of 2).
fn tile_rows(out: usize) -> usize {
    if !out.is_multiple_of(MR) && out.is_multiple_of(5) {
        5
    } else {
        MR
    }
}

impl Lanes {
    /// Plans the trunk of `layers` (`winograd`: whether Winograd's algorithm computes the
    /// convolutions it applies to). The plan is empty when the CPU lacks what the gathered
    /// kernel needs or when the first layer cannot be in a trunk.
    pub(crate) fn plan(layers: &[Layer], winograd: bool) -> Self {
        let mut lanes = Lanes::default();
        if !gemm::gathered_available() {
            return lanes;
        }
        let mut packed = 0;
        let mut widest = 0;
        let mut padded = 0;
        let mut i = 0;
        while i < layers.len() {
            let l = &layers[i];
            let step = match l.spec {
                LayerSpec::Conv {
                    out,
                    kernel,
                    padding,
                } if !(winograd && l.wino.is_some()) => {
                    let (hp, wp) = (l.input.h + 2 * padding, l.input.w + 2 * padding);
                    let mut offs = Vec::with_capacity(l.input.c * kernel * kernel);
                    for c in 0..l.input.c {
                        for ky in 0..kernel {
                            for kx in 0..kernel {
                                let at = ((c * hp + ky) * wp + kx) * LANES;
                                offs.push(u32::try_from(at).expect("a chunk fits u32 offsets"));
                            }
                        }
                    }
                    if padding > 0 {
                        padded = padded.max(l.input.c * hp * wp * LANES);
                    }
                    let relu = layers.get(i + 1).map(|n| &n.spec) == Some(&LayerSpec::Relu);
                    let k = offs.len();
                    let step = Step::Conv {
                        out,
                        pad: padding,
                        relu,
                        weights: (l.params.0, out * k),
                        bias: l.params.0 + out * k,
                        rows: tile_rows(out),
                        packed_at: packed,
                        offs,
                    };
                    packed += out * k;
                    if relu {
                        // The ReLU is part of this step: its output is the trunk's output.
                        lanes.steps.push((step, l.input, layers[i + 1].output));
                        widest = widest.max(l.input.len()).max(l.output.len());
                        i += 2;
                        continue;
                    }
                    step
                }
                LayerSpec::Relu => Step::Relu,
                LayerSpec::MaxPool2 => Step::Pool,
                LayerSpec::BatchNorm => Step::BatchNorm {
                    params: l.params.0,
                    state: l.state.0,
                },
                LayerSpec::Dropout { .. } => {
                    // The identity in evaluation.
                    i += 1;
                    continue;
                }
                _ => break,
            };
            lanes.steps.push((step, l.input, l.output));
            widest = widest.max(l.input.len()).max(l.output.len());
            i += 1;
        }
        if lanes.steps.is_empty() {
            return Lanes::default();
        }
        lanes.end = i;
        lanes.a = vec![0.0; widest * LANES];
        lanes.b = vec![0.0; widest * LANES];
        lanes.padded = vec![0.0; padded];
        lanes.packed = vec![0.0; packed];
        lanes
    }

    /// The first layer not in the trunk (0 when there is no trunk).
    pub(crate) fn end(&self) -> usize {
        self.end
    }

    /// Packs every convolution's weights from `params` (once per evaluation call).
    pub(crate) fn pack_weights(&mut self, params: &[f32]) {
        for (step, input, _) in &self.steps {
            if let Step::Conv {
                out,
                weights,
                rows,
                packed_at,
                offs,
                ..
            } = step
            {
                let k = offs.len();
                debug_assert_eq!(k % input.c, 0);
                let w = &params[weights.0..weights.0 + weights.1];
                let dst = &mut self.packed[*packed_at..*packed_at + weights.1];
                for q0 in (0..*out).step_by(*rows) {
                    let height = (*rows).min(out - q0);
                    let panel = &mut dst[q0 * k..(q0 + height) * k];
                    for r in 0..height {
                        for (p, &v) in w[(q0 + r) * k..(q0 + r + 1) * k].iter().enumerate() {
                            panel[p * height + r] = v;
                        }
                    }
                }
            }
        }
    }

    /// Runs the trunk on `images` (`count ≤ LANES` images of `input.len()` values each, one
    /// after the other) and writes its output, image by image, into `out` (`count` rows of the
    /// trunk's output length). Needs [`Lanes::pack_weights`] first.
    #[inline(always)]
    pub(crate) fn run(
        &mut self,
        params: &[f32],
        state: &[f32],
        input: Shape,
        images: &[f32],
        count: usize,
        out: &mut [f32],
    ) {
        assert!(count <= LANES && !self.steps.is_empty());
        let per = input.len();
        // Into lanes: value j of image b at j · LANES + b; missing images are zeros.
        let (mut src, mut dst) = (&mut self.a, &mut self.b);
        if count < LANES {
            src[..per * LANES].fill(0.0);
        }
        for (j0, block) in (0..per)
            .step_by(LANES)
            .zip(src[..per * LANES].chunks_mut(LANES * LANES))
        {
            for b in 0..count {
                let row = &images[b * per + j0..b * per + (j0 + LANES).min(per)];
                for (d, &v) in block.chunks_exact_mut(LANES).zip(row) {
                    d[b] = v;
                }
            }
        }
        for (step, ishape, oshape) in &self.steps {
            let (x, y) = (
                &src[..ishape.len() * LANES],
                &mut dst[..oshape.len() * LANES],
            );
            match step {
                Step::Conv {
                    out,
                    pad,
                    relu,
                    bias,
                    rows,
                    packed_at,
                    offs,
                    weights,
                } => {
                    let x = if *pad > 0 {
                        pad_planes(x, *ishape, *pad, &mut self.padded)
                    } else {
                        x
                    };
                    let k = offs.len();
                    let (ho, wo) = (oshape.h, oshape.w);
                    let wp = ishape.w + 2 * pad;
                    let packed = &self.packed[*packed_at..*packed_at + weights.1];
                    let b = &params[*bias..*bias + out];
                    let plane = ho * wo * LANES;
                    for q0 in (0..*out).step_by(*rows) {
                        let height = (*rows).min(out - q0);
                        let a = &packed[q0 * k..(q0 + height) * k];
                        for oy in 0..ho {
                            for ox in 0..wo {
                                let at = (oy * wo + ox) * LANES;
                                gemm::gathered(
                                    height,
                                    a,
                                    x,
                                    (oy * wp + ox) * LANES,
                                    offs,
                                    &b[q0..q0 + height],
                                    *relu,
                                    &mut y[q0 * plane + at..],
                                    plane,
                                );
                            }
                        }
                    }
                }
                Step::Relu => {
                    for (o, &v) in y.iter_mut().zip(x) {
                        *o = v.max(0.0);
                    }
                }
                Step::Pool => pool(x, *ishape, *oshape, y),
                Step::BatchNorm {
                    params: p,
                    state: s,
                } => {
                    let c_n = ishape.c;
                    let (gamma, beta) = (&params[*p..*p + c_n], &params[*p + c_n..*p + 2 * c_n]);
                    let (mean, var) = (&state[*s..*s + c_n], &state[*s + c_n..*s + 2 * c_n]);
                    let plane = ishape.h * ishape.w * LANES;
                    for (c, (xs, ys)) in x
                        .chunks_exact(plane)
                        .zip(y.chunks_exact_mut(plane))
                        .enumerate()
                    {
                        // As `batchnorm_forward` in evaluation, operation for operation.
                        let (m, inv) = (mean[c], 1.0 / (var[c] + BN_EPS).sqrt());
                        for (o, &v) in ys.iter_mut().zip(xs) {
                            *o = gamma[c] * ((v - m) * inv) + beta[c];
                        }
                    }
                }
            }
            std::mem::swap(&mut src, &mut dst);
        }
        // Out of lanes: image b's value j from j · LANES + b, sixteen values of j at a time
        // (a 1 KiB block read, whole cache lines written).
        let last = self.steps.last().expect("a trunk has steps").2.len();
        for (j0, block) in (0..last)
            .step_by(LANES)
            .zip(src[..last * LANES].chunks(LANES * LANES))
        {
            for b in 0..count {
                let row = &mut out[b * last + j0..b * last + (j0 + LANES).min(last)];
                for (o, s) in row.iter_mut().zip(block.chunks_exact(LANES)) {
                    *o = s[b];
                }
            }
        }
    }
}

/// Copies `x` (`shape`, lane-innermost) into `padded` with `pad` zeros around each plane;
/// returns the padded input.
#[inline(always)]
fn pad_planes<'a>(x: &[f32], shape: Shape, pad: usize, padded: &'a mut [f32]) -> &'a [f32] {
    let (h, w) = (shape.h, shape.w);
    let (hp, wp) = (h + 2 * pad, w + 2 * pad);
    let padded = &mut padded[..shape.c * hp * wp * LANES];
    for (src, dst) in x
        .chunks_exact(h * w * LANES)
        .zip(padded.chunks_exact_mut(hp * wp * LANES))
    {
        dst[..pad * wp * LANES].fill(0.0);
        dst[(pad + h) * wp * LANES..].fill(0.0);
        for (row, d) in src
            .chunks_exact(w * LANES)
            .zip(dst[pad * wp * LANES..].chunks_exact_mut(wp * LANES))
        {
            d[..pad * LANES].fill(0.0);
            d[pad * LANES..(pad + w) * LANES].copy_from_slice(row);
            d[(pad + w) * LANES..].fill(0.0);
        }
    }
    padded
}

/// 2×2 max pooling, stride 2, lane-innermost: as the per-image pooling, the first maximum in
/// raster order wins and a NaN, once taken, is never replaced.
#[inline(always)]
fn pool(x: &[f32], input: Shape, output: Shape, y: &mut [f32]) {
    let (h, w, ho, wo) = (input.h, input.w, output.h, output.w);
    let lanes = |s: &[f32], at: usize| -> [f32; LANES] {
        s[at * LANES..(at + 1) * LANES]
            .try_into()
            .expect("LANES wide")
    };
    for (xs, ys) in x
        .chunks_exact(h * w * LANES)
        .zip(y.chunks_exact_mut(ho * wo * LANES))
    {
        for (oy, row) in ys.chunks_exact_mut(wo * LANES).enumerate() {
            for (ox, o) in row.chunks_exact_mut(LANES).enumerate() {
                let at = 2 * oy * w + 2 * ox;
                let mut m = lanes(xs, at);
                for u in [lanes(xs, at + 1), lanes(xs, at + w), lanes(xs, at + w + 1)] {
                    // Branch-free on fixed-size arrays, so it compiles to vector compares
                    // and blends.
                    for (m, u) in m.iter_mut().zip(u) {
                        let take = (u > *m) | (u.is_nan() & !m.is_nan());
                        *m = if take { u } else { *m };
                    }
                }
                o.copy_from_slice(&m);
            }
        }
    }
}
