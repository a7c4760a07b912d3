//! Evaluation sixteen images abreast: the network's leading convolutional layers (its
//! *trunk*) run on chunks of [`LANES`] images stored lane-innermost, `[c][h][w][lane]`.
//!
//! In that layout the 16 values a register tile of the SGEMM needs at one depth and one
//! output position are contiguous, so a convolution reads its input in place
//! ([`gemm::gathered`]): no im2col, no packing of B, and the weights packed once per call
//! instead of once per image. A Winograd convolution transforms its input tiles, computes its
//! 16 products and transforms its output tiles on whole vectors of 16 images. Pooling, batch
//! norm and ReLU become plain passes over whole vectors. It is the forward pass of evaluation
//! only (no arg-max indices, running batch-norm statistics, no dropout), and it performs the
//! same operations in the same order as the per-image path: logits and losses are
//! bit-identical (`tests/evaluation_paths.rs` checks it), so which path ran never shows in a
//! result.
//!
//! The trunk is the longest prefix of layers made of convolutions (im2col or Winograd), ReLU,
//! max pooling, batch norm and dropout; at its end the chunk is transposed back into the
//! per-image layout and the remaining layers (the linear ones, for the thesis's models) run on
//! the whole batch as in training.

use crate::cpu::Level;
use crate::gemm::{self, Offsets, MR};
use crate::layers::batch_norm::BN_EPS;
use crate::layers::pool::pool_takes;
use crate::layers::{relu_fused, Layer, LayerSpec, Shape};
use crate::winograd::{self, BLOCK, POSITIONS, TILE};
use std::ops::Range;

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
        /// Where the packed weights lie in `Lanes::packed`.
        panels: Range<usize>,
        /// For each depth (input channel, kernel row, kernel column), the offset of its
        /// lanes from an output position's in the padded input.
        offs: Offsets,
    },
    /// A 3 × 3, padding-1 convolution by Winograd's F(4×4, 3×3), as `winograd.rs` computes
    /// it image by image (same transforms, same order of operations).
    Winograd {
        out: usize,
        relu: bool,
        weights: (usize, usize),
        bias: usize,
        rows: usize,
        /// Where the transformed, packed weights lie in `Lanes::packed`: for each of the 36
        /// positions ξ, `out × c` values in panels of `rows` rows.
        panels: Range<usize>,
        /// Tiles per block, in raster order across tile rows (the block's transformed tiles
        /// and products stay in the core's cache).
        block_tiles: usize,
        /// `p · LANES` for each input channel `p` (the transformed input tiles are stored
        /// `[ξ][tile][channel][lane]`).
        offs: Offsets,
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
    /// Winograd's transformed weights before packing.
    u: Vec<f32>,
    /// Every convolution's weights, packed in panels of `rows` rows: panel `q`, depth `p`,
    /// row `r` at `q · rows · k + p · height + r` from the start of the step's `panels`,
    /// `height` the panel's rows.
    packed: Vec<f32>,
    /// One set of chunk buffers per thread that runs the trunk (see [`Lanes::run`]).
    pub(crate) scratch: Vec<Scratch>,
    /// The level the plan's tiles are sized for and its products run at.
    pub(crate) level: Level,
}

/// The buffers one thread needs to run the trunk on a chunk.
#[derive(Debug, Clone, Default)]
pub(crate) struct Scratch {
    /// Two buffers for a chunk's activations, and one for a padded convolution input.
    a: Vec<f32>,
    b: Vec<f32>,
    padded: Vec<f32>,
    /// Winograd's transformed input tiles and products for one block of tiles.
    v: Vec<f32>,
    m: Vec<f32>,
}

/// Tiles per block of a Winograd step. A block's transformed input tiles take
/// `36 · tiles · c · LANES` floats and its products `36 · out · tiles · LANES`: at 2 tiles and
/// the CIFAR-10 CNN's 128 channels, 576 KiB each (at 4 tiles, 1.1 MiB each, past a Zen 4
/// core's 1 MiB L2; measured on the CIFAR-10 CNN's evaluation, 2 tiles beat 1 and 4). The
/// products are the same sums whatever the block (a block only groups tiles), so the bits do
/// not depend on it.
pub(crate) const BLOCK_TILES: usize = 2;

/// Rows per register tile for `out` output channels. AVX2: as many as the kernel has (6),
/// unless 5 divides the count and 6 does not (20 channels: four tiles of 5, not three of 6 and
/// a slow one of 2). AVX-512: the fewest tiles of at most 24 rows, as even as they divide (20
/// channels: one tile; 64: 22, 22 and 20).
fn tile_rows(out: usize, level: Level) -> usize {
    if level == Level::Avx512 {
        let most = gemm::gathered_rows(level);
        out.div_ceil(out.div_ceil(most)).max(1)
    } else if !out.is_multiple_of(MR) && out.is_multiple_of(5) {
        5
    } else {
        MR
    }
}

impl Lanes {
    /// Plans the trunk of `layers` (`winograd`: whether Winograd's algorithm computes the
    /// convolutions it applies to), with buffers for `threads` threads and Winograd steps in
    /// blocks of `block_tiles` tiles ([`BLOCK_TILES`]; any count gives the same bits). The
    /// plan is empty when the CPU lacks what the gathered kernel needs or when the first layer
    /// cannot be in a trunk.
    pub(crate) fn plan(
        layers: &[Layer],
        winograd: bool,
        threads: usize,
        level: Level,
        block_tiles: usize,
    ) -> Self {
        let mut lanes = Lanes {
            level,
            ..Lanes::default()
        };
        if !gemm::gathered_available(level) {
            return lanes;
        }
        let (mut packed, mut widest, mut padded) = (0, 0, 0);
        let (mut v, mut m, mut u) = (0, 0, 0);
        let mut i = 0;
        while i < layers.len() {
            let l = &layers[i];
            // A ReLU right after a convolution is applied as the convolution's output is
            // written: the two layers are one step.
            let relu = relu_fused(layers, i + 1);
            let step = match l.spec {
                LayerSpec::Conv { out, .. } if winograd && l.wino.is_some() => {
                    let c = l.input.c;
                    let (th, tw) = (l.input.h.div_ceil(TILE), l.input.w.div_ceil(TILE));
                    padded = padded.max(c * (TILE * th + 2) * (TILE * tw + 2) * LANES);
                    let tb = block_tiles.clamp(1, th * tw);
                    v = v.max(POSITIONS * tb * c * LANES);
                    m = m.max(POSITIONS * out * tb * LANES);
                    u = u.max(POSITIONS * out * c);
                    let offs = Offsets::new(
                        (0..c)
                            .map(|p| u32::try_from(p * LANES).expect("a chunk fits u32 offsets"))
                            .collect(),
                    );
                    let step = Step::Winograd {
                        out,
                        relu,
                        weights: (l.params.0, out * c * 9),
                        bias: l.params.0 + out * c * 9,
                        rows: tile_rows(out, level),
                        panels: packed..packed + POSITIONS * out * c,
                        block_tiles: tb,
                        offs,
                    };
                    packed += POSITIONS * out * c;
                    step
                }
                LayerSpec::Conv {
                    out,
                    kernel,
                    padding,
                } => {
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
                    let k = offs.len();
                    let offs = Offsets::new(offs);
                    let step = Step::Conv {
                        out,
                        pad: padding,
                        relu,
                        weights: (l.params.0, out * k),
                        bias: l.params.0 + out * k,
                        rows: tile_rows(out, level),
                        panels: packed..packed + out * k,
                        offs,
                    };
                    packed += out * k;
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
                LayerSpec::Linear { .. } => break,
            };
            let last = if relu { i + 1 } else { i };
            lanes.steps.push((step, l.input, layers[last].output));
            widest = widest.max(l.input.len()).max(l.output.len());
            i = last + 1;
        }
        if lanes.steps.is_empty() {
            return Lanes::default();
        }
        lanes.end = i;
        let scratch = Scratch {
            a: vec![0.0; widest * LANES],
            b: vec![0.0; widest * LANES],
            padded: vec![0.0; padded],
            v: vec![0.0; v],
            m: vec![0.0; m],
        };
        lanes.scratch = vec![scratch; threads.max(1)];
        lanes.packed = vec![0.0; packed];
        lanes.u = vec![0.0; u];
        lanes
    }

    /// How many of the steps are Winograd convolutions.
    #[cfg(test)]
    pub(crate) fn winograd_steps(&self) -> usize {
        self.steps
            .iter()
            .filter(|(s, _, _)| matches!(s, Step::Winograd { .. }))
            .count()
    }

    /// The first layer not in the trunk (0 when there is no trunk).
    pub(crate) fn end(&self) -> usize {
        self.end
    }

    /// Packs every convolution's weights from `params` (once per evaluation call).
    pub(crate) fn pack_weights(&mut self, params: &[f32]) {
        for (step, input, _) in &self.steps {
            match step {
                Step::Conv {
                    out,
                    weights,
                    rows,
                    panels,
                    offs,
                    ..
                } => {
                    let w = &params[weights.0..weights.0 + weights.1];
                    let dst = &mut self.packed[panels.clone()];
                    pack_panels(w, *out, offs.len(), *rows, dst);
                }
                Step::Winograd {
                    out,
                    weights,
                    rows,
                    panels,
                    ..
                } => {
                    // U_ξ = G g Gᵀ as `winograd.rs` computes it (`[ξ][out][c]`), each ξ's
                    // `out × c` matrix packed.
                    let (c, kc) = (input.c, out * input.c);
                    let w = &params[weights.0..weights.0 + weights.1];
                    winograd::weights(w, *out, c, &mut self.u);
                    let dst = &mut self.packed[panels.clone()];
                    for (u, d) in self.u[..POSITIONS * kc]
                        .chunks_exact(kc)
                        .zip(dst.chunks_exact_mut(kc))
                    {
                        pack_panels(u, *out, c, *rows, d);
                    }
                }
                _ => {}
            }
        }
    }

    /// Runs the trunk on `images` (`count ≤ LANES` images of `input.len()` values each, one
    /// after the other) in the buffers `s` and writes its output, image by image, into `out`
    /// (`count` rows of the trunk's output length). Needs [`Lanes::pack_weights`] first.
    /// Chunks are independent: threads may run them at once, each with its own `s`.
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    pub(crate) fn run(
        &self,
        s: &mut Scratch,
        params: &[f32],
        state: &[f32],
        input: Shape,
        images: &[f32],
        count: usize,
        out: &mut [f32],
    ) {
        assert!(count <= LANES && !self.steps.is_empty());
        let (per, level) = (input.len(), self.level);
        // Into lanes: value j of image b at j · LANES + b; missing images are zeros.
        let (mut src, mut dst) = (&mut s.a, &mut s.b);
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
                    panels,
                    offs,
                    ..
                } => {
                    let x = if *pad > 0 {
                        let (hp, wp) = (ishape.h + 2 * pad, ishape.w + 2 * pad);
                        pad_planes(x, *ishape, *pad, (hp, wp), &mut s.padded)
                    } else {
                        x
                    };
                    let k = offs.len();
                    let (ho, wo) = (oshape.h, oshape.w);
                    let wp = ishape.w + 2 * pad;
                    let packed = &self.packed[panels.clone()];
                    let b = &params[*bias..*bias + out];
                    let plane = ho * wo * LANES;
                    for q0 in (0..*out).step_by(*rows) {
                        let height = (*rows).min(out - q0);
                        let a = &packed[q0 * k..(q0 + height) * k];
                        for oy in 0..ho {
                            for ox in 0..wo {
                                let at = (oy * wo + ox) * LANES;
                                gemm::gathered(
                                    level,
                                    height,
                                    a,
                                    x,
                                    (oy * wp + ox) * LANES,
                                    offs,
                                    Some(&b[q0..q0 + height]),
                                    *relu,
                                    &mut y[q0 * plane + at..],
                                    plane,
                                );
                            }
                        }
                    }
                }
                Step::Winograd {
                    out,
                    relu,
                    bias,
                    rows,
                    panels,
                    block_tiles,
                    offs,
                    ..
                } => winograd_step(
                    level,
                    x,
                    *ishape,
                    *out,
                    *relu,
                    &params[*bias..*bias + out],
                    *rows,
                    &self.packed[panels.clone()],
                    *block_tiles,
                    offs,
                    &mut s.padded,
                    &mut s.v,
                    &mut s.m,
                    y,
                ),
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

/// Packs the `out × k` row-major matrix `w` in panels of `rows` rows (the last one
/// possibly shorter): panel `q`, depth `p`, row `r` at `q · rows · k + p · height + r`.
fn pack_panels(w: &[f32], out: usize, k: usize, rows: usize, dst: &mut [f32]) {
    for q0 in (0..out).step_by(rows) {
        let height = rows.min(out - q0);
        let panel = &mut dst[q0 * k..(q0 + height) * k];
        for r in 0..height {
            for (p, &v) in w[(q0 + r) * k..(q0 + r + 1) * k].iter().enumerate() {
                panel[p * height + r] = v;
            }
        }
    }
}

/// Copies `x` (`shape`, lane-innermost) into planes of `hp × wp` (`padded`), the image at
/// row and column `pad` and zeros around it; returns the padded input.
#[inline(always)]
fn pad_planes<'a>(
    x: &[f32],
    shape: Shape,
    pad: usize,
    (hp, wp): (usize, usize),
    padded: &'a mut [f32],
) -> &'a [f32] {
    let (h, w) = (shape.h, shape.w);
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

type Lane = [f32; LANES];

/// The lanes at `at` (in units of [`LANES`]).
#[inline(always)]
fn lane(s: &[f32], at: usize) -> Lane {
    s[at * LANES..(at + 1) * LANES]
        .try_into()
        .expect("LANES wide")
}

/// A Winograd F(4×4, 3×3) convolution with padding 1 of a chunk (`x`: `[c][h][w][lane]`,
/// output `[out][h][w][lane]`), block of tiles by block: the input tiles transformed
/// (`[ξ][tile][channel][lane]`), 36 products through the gathered kernel, the output tiles
/// transformed back with bias and ReLU. The transforms are `winograd.rs`'s own
/// (`input_block`, `output_block`, on vectors of 16 images), and the products sum in the
/// SGEMM's order, so every value is the per-image path's.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn winograd_step(
    level: Level,
    x: &[f32],
    shape: Shape,
    out: usize,
    relu: bool,
    bias: &[f32],
    rows: usize,
    packed: &[f32],
    block_tiles: usize,
    offs: &Offsets,
    padded: &mut [f32],
    v: &mut [f32],
    m: &mut [f32],
    y: &mut [f32],
) {
    let (c, h, w) = (shape.c, shape.h, shape.w);
    let (th, tw) = (h.div_ceil(TILE), w.div_ceil(TILE));
    let (ph, pw) = (TILE * th + 2, TILE * tw + 2);
    let x = pad_planes(x, shape, 1, (ph, pw), padded);
    let tb = block_tiles;
    for t0 in (0..th * tw).step_by(tb) {
        let nt = tb.min(th * tw - t0);
        // V_ξ = Bᵀ d B for every tile of the block (`winograd::input_block`).
        for ch in 0..c {
            let plane = &x[ch * ph * pw * LANES..(ch + 1) * ph * pw * LANES];
            for t in 0..nt {
                let (ty, tx) = ((t0 + t) / tw, (t0 + t) % tw);
                let mut d = [[[0.0; LANES]; BLOCK]; BLOCK];
                for (r, row) in d.iter_mut().enumerate() {
                    for (j, v) in row.iter_mut().enumerate() {
                        *v = lane(plane, (TILE * ty + r) * pw + TILE * tx + j);
                    }
                }
                for (xi, col) in winograd::input_block(&d).iter().enumerate() {
                    let at = ((xi * tb + t) * c + ch) * LANES;
                    v[at..at + LANES].copy_from_slice(col);
                }
            }
        }
        // M_ξ (out × tiles) = U_ξ (out × c) · V_ξ (c × tiles), no bias.
        for xi in 0..POSITIONS {
            let u = &packed[xi * out * c..(xi + 1) * out * c];
            for q0 in (0..out).step_by(rows) {
                let height = rows.min(out - q0);
                for t in 0..nt {
                    gemm::gathered(
                        level,
                        height,
                        &u[q0 * c..(q0 + height) * c],
                        v,
                        (xi * tb + t) * c * LANES,
                        offs,
                        None,
                        false,
                        &mut m[((xi * out + q0) * tb + t) * LANES..],
                        tb * LANES,
                    );
                }
            }
        }
        // Y = Aᵀ M A + bias (then ReLU) (`winograd::output_block`).
        for (o, &bo) in bias.iter().enumerate() {
            for t in 0..nt {
                let (ty, tx) = ((t0 + t) / tw, (t0 + t) % tw);
                let block = winograd::output_block::<LANES>(
                    m,
                    out * tb * LANES,
                    (o * tb + t) * LANES,
                    bo,
                    relu,
                );
                for (a, row) in block.iter().enumerate() {
                    let y0 = TILE * ty + a;
                    if y0 >= h {
                        break;
                    }
                    for (col, val) in row.iter().enumerate() {
                        let x0 = TILE * tx + col;
                        if x0 >= w {
                            break;
                        }
                        let at = ((o * h + y0) * w + x0) * LANES;
                        y[at..at + LANES].copy_from_slice(val);
                    }
                }
            }
        }
    }
}

/// 2×2 max pooling, stride 2, lane-innermost: as the per-image pooling, the first maximum in
/// raster order wins and a NaN, once taken, is never replaced ([`pool_takes`]).
#[inline(always)]
fn pool(x: &[f32], input: Shape, output: Shape, y: &mut [f32]) {
    let (h, w, ho, wo) = (input.h, input.w, output.h, output.w);
    for (xs, ys) in x
        .chunks_exact(h * w * LANES)
        .zip(y.chunks_exact_mut(ho * wo * LANES))
    {
        for (oy, row) in ys.chunks_exact_mut(wo * LANES).enumerate() {
            for (ox, o) in row.chunks_exact_mut(LANES).enumerate() {
                let at = 2 * oy * w + 2 * ox;
                let mut m = lane(xs, at);
                for u in [lane(xs, at + 1), lane(xs, at + w), lane(xs, at + w + 1)] {
                    // Branch-free on fixed-size arrays, so it compiles to vector compares
                    // and blends.
                    for (m, u) in m.iter_mut().zip(u) {
                        *m = if pool_takes(u, *m) { u } else { *m };
                    }
                }
                o.copy_from_slice(&m);
            }
        }
    }
}

/// Runs the trunk on consecutive chunks of `images`, writing `out` (`width` values per image):
/// one thread's share of an evaluation.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub(crate) fn run_chunks(
    lanes: &Lanes,
    s: &mut Scratch,
    params: &[f32],
    state: &[f32],
    input: Shape,
    images: &[f32],
    width: usize,
    out: &mut [f32],
) {
    let per = input.len();
    let outs = out.chunks_mut(LANES * width);
    for (xs, ys) in images.chunks(LANES * per).zip(outs) {
        lanes.run(s, params, state, input, xs, xs.len() / per, ys);
    }
}

#[cfg(test)]
mod tests {
    use crate::{LayerSpec, Network, Shape};
    use rand::{Rng, SeedableRng};

    #[test]
    fn winograd_blocks_of_any_size_give_the_bits_of_the_image_by_image_path() {
        // Two Winograd convolutions: 11 × 9 (6 × 5 = 30 tiles, the last row and column of
        // each tile past the edge), then, pooled, 5 × 4 (3 × 2 = 6 tiles). Blocks of one tile,
        // blocks that cut across tile rows and end short of the last tile, the plan's own
        // size, one block for all: the logits are the image-by-image path's, bit for bit.
        use LayerSpec::*;
        let net = Network::new(
            Shape::new(16, 11, 9),
            &[
                Conv {
                    out: 18,
                    kernel: 3,
                    padding: 1,
                },
                Relu,
                MaxPool2,
                Conv {
                    out: 7,
                    kernel: 3,
                    padding: 1,
                },
                Linear { out: 3 },
            ],
            3,
        );
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(9);
        let (mut params, mut state) = (vec![0.0; net.num_params()], vec![0.0; net.num_state()]);
        net.init(&mut rng, &mut params, &mut state);
        for p in &mut params {
            *p += rng.gen_range(-0.05..0.05);
        }
        // A full chunk of sixteen and a partial one.
        let count = 21;
        let images: Vec<f32> = (0..count * net.input().len())
            .map(|_| rng.gen_range(-1.0..1.0))
            .collect();
        let mut by_image = net.clone();
        by_image.set_lanes(false);
        let want = by_image.logits(&params, &state, &images, count);
        assert!(want.iter().any(|v| v.is_finite() && *v != 0.0));
        for tiles in [1, 3, 4, 7, super::BLOCK_TILES, 30, 64] {
            let mut lanes = net.clone();
            lanes.set_lanes(true);
            let steps = lanes.plan_trunk_blocks(tiles);
            if steps == 0 {
                // No trunk at this level (the portable build evaluates image by image).
                assert!(!crate::gemm::gathered_available(crate::cpu::level()));
                return;
            }
            assert_eq!(steps, 2, "both convolutions by Winograd in the trunk");
            let got = lanes.logits(&params, &state, &images, count);
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert!(bits(&got) == bits(&want), "blocks of {tiles} tiles");
        }
    }
}
