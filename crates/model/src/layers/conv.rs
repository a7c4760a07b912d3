//! 2-D convolution, stride 1 (`LayerSpec::Conv`): weight `[out, in, k, k]` then bias
//! `[out]`. Each image unfolded by im2col and multiplied by our SGEMM, or, for 3 × 3
//! convolutions with padding 1 and at least 16 input channels, Winograd's F(4×4, 3×3)
//! (`crate::winograd`); a ReLU right after is applied as the output is written.

#[cfg(byzadam_x86)]
mod x86;

use super::batch_norm::Normalised;
use super::shape::{Io, Shape};
use crate::cpu::Level;
use crate::gemm::{
    gemm, gemm_packed_a, gemm_unfolded, pack_a, unfolded_available, Pack, PackedA, Unfolded,
};
use crate::sums::Lanes64;
use crate::winograd::{self, Geometry, Winograd};

/// The output shape of an `out`-channel `kernel × kernel` convolution with `padding` on
/// `input`, its parameter count, and its state count (none).
///
/// Panics if the kernel is larger than the padded input.
pub(crate) fn output(
    out: usize,
    kernel: usize,
    padding: usize,
    input: Shape,
) -> (Shape, usize, usize) {
    assert!(
        kernel >= 1 && input.h + 2 * padding >= kernel && input.w + 2 * padding >= kernel,
        "a {kernel} × {kernel} convolution with padding {padding} does not fit a {}×{} input",
        input.h,
        input.w
    );
    let h = input.h + 2 * padding + 1 - kernel;
    let w = input.w + 2 * padding + 1 - kernel;
    (
        Shape::new(out, h, w),
        out * input.c * kernel * kernel + out,
        0,
    )
}

/// The buffers the convolutions' passes work in, owned by the network's workspace (sized by
/// `Network::prepare` for its largest convolution and batch).
#[derive(Debug, Clone, Default)]
pub(crate) struct Scratch {
    /// im2col's columns.
    pub(crate) col: Vec<f32>,
    /// The columns' gradient.
    pub(crate) dcol: Vec<f32>,
    /// Winograd's transformed tiles.
    pub(crate) wino: Winograd,
    /// The weights packed once per pass for the products of every image.
    pub(crate) weights: PackedA,
    /// Where each column row `(c, ky, kx)` of an unpadded convolution starts in its image.
    pub(crate) kernel_offsets: Vec<i32>,
    /// Where each output pixel `(oy, ox)`'s window starts in its image's channel.
    pub(crate) pixel_offsets: Vec<i32>,
}

impl Scratch {
    /// Fills the offset tables for an unpadded `k × k` convolution of `input` (the columns
    /// are then `image[kernel_offsets[r] + pixel_offsets[j]]`: see [`Unfolded`]).
    fn unfold_offsets(&mut self, input: Shape, k: usize, output: Shape) {
        let (kernel, pixel) = (&mut self.kernel_offsets, &mut self.pixel_offsets);
        kernel.clear();
        pixel.clear();
        let at = |v: usize| i32::try_from(v).expect("an image of fewer than 2³¹ values");
        for c in 0..input.c {
            for ky in 0..k {
                kernel.extend((0..k).map(|kx| at((c * input.h + ky) * input.w + kx)));
            }
        }
        for oy in 0..output.h {
            pixel.extend((0..output.w).map(|ox| at(oy * input.w + ox)));
        }
    }
}

/// `y = conv(x) + b` over `batch` images, or `max(conv(x) + b, 0)` when `relu`; by
/// Winograd's algorithm when `wino` is given, which then reads `x` normalised by `bn` when
/// given (the batch norm before: see [`Normalised`]), and keeps its transformed inputs in
/// `keep` when given (for [`backward`]'s `kept`: see `winograd::forward`).
///
/// Panics if `bn` or `keep` is given without `wino`.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
pub(crate) fn forward(
    l: Io,
    (out, kernel, padding): (usize, usize, usize),
    p: &[f32],
    x: &[f32],
    bn: Option<Normalised<'_>>,
    y: &mut [f32],
    batch: usize,
    relu: bool,
    wino: Option<Geometry>,
    keep: Option<&mut [f32]>,
    s: &mut Scratch,
    pack: &mut Pack,
) {
    let (cin, hw) = (l.input.c, l.output.h * l.output.w);
    let ckk = cin * kernel * kernel;
    let (w, b) = p.split_at(out * ckk);
    if let Some(g) = wino {
        winograd::forward(&g, batch, x, bn, w, b, y, relu, &mut s.wino, keep, pack);
        return;
    }
    assert!(
        bn.is_none() && keep.is_none(),
        "only a Winograd convolution normalises its input or keeps its transform"
    );
    pack_a(out, ckk, w, false, pack, &mut s.weights);
    // At AVX-512 an unpadded convolution's columns are packed straight from the image.
    let in_place = padding == 0 && unfolded_available(pack.level());
    if in_place {
        s.unfold_offsets(l.input, kernel, l.output);
    }
    for (xb, yb) in x
        .chunks_exact(l.input.len())
        .zip(y.chunks_exact_mut(l.output.len()))
    {
        let pre = &s.weights;
        if in_place {
            let b = Unfolded {
                src: xb,
                depth: &s.kernel_offsets,
                line: &s.pixel_offsets,
            };
            gemm_unfolded(out, hw, ckk, w, false, Some(pre), b, 0.0, yb, pack);
        } else {
            im2col(
                xb,
                l.input,
                kernel,
                padding,
                l.output,
                &mut s.col[..ckk * hw],
            );
            gemm_packed_a(out, hw, ckk, w, false, pre, &s.col, false, 0.0, yb, pack);
        }
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

/// Adds the gradients of the weights and biases (`gp`) of `batch` images given `dy`, and
/// writes `dx` when given; by Winograd's algorithm when `wino` is given, from `x`
/// normalised by `bn` when given (as [`forward`]), reading the transformed inputs from
/// `kept` when given (what [`forward`] kept for the same `x`).
///
/// Panics if `bn` or `kept` is given without `wino`.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
pub(crate) fn backward(
    l: Io,
    (out, kernel, padding): (usize, usize, usize),
    p: &[f32],
    x: &[f32],
    bn: Option<Normalised<'_>>,
    kept: Option<&[f32]>,
    dy: &[f32],
    batch: usize,
    gp: &mut [f32],
    dx: Option<&mut [f32]>,
    wino: Option<Geometry>,
    s: &mut Scratch,
    pack: &mut Pack,
) {
    let (cin, hw) = (l.input.c, l.output.h * l.output.w);
    let ckk = cin * kernel * kernel;
    let (w, _) = p.split_at(out * ckk);
    let (gw, gb) = gp.split_at_mut(out * ckk);
    // The bias gradients, four channels at a time (their sums' additions overlap), the rest
    // one at a time: each channel's sum in the same order either way.
    const G: usize = 4;
    let grouped = out - out % G;
    for (g, gbias) in gb[..grouped].chunks_exact_mut(G).enumerate() {
        let mut acc: [Lanes64; G] = Default::default();
        for dyb in dy.chunks_exact(l.output.len()) {
            let planes = std::array::from_fn(|i| &dyb[(g * G + i) * hw..(g * G + i + 1) * hw]);
            Lanes64::add4(&mut acc, planes, |g| g as f64);
        }
        for (gbias, acc) in gbias.iter_mut().zip(&acc) {
            *gbias += acc.total() as f32;
        }
    }
    for (c, gbias) in gb.iter_mut().enumerate().skip(grouped) {
        let mut acc = Lanes64::default();
        for dyb in dy.chunks_exact(l.output.len()) {
            acc.add(&dyb[c * hw..(c + 1) * hw], |g| g as f64);
        }
        *gbias += acc.total() as f32;
    }
    if let Some(geo) = wino {
        winograd::backward(&geo, batch, x, bn, w, dy, gw, dx, &mut s.wino, kept, pack);
        return;
    }
    assert!(
        bn.is_none() && kept.is_none(),
        "only a Winograd convolution normalises its input or reads a kept transform"
    );
    let need_dx = dx.is_some();
    let mut no_dx = Vec::new();
    let dx = dx.unwrap_or(&mut no_dx);
    let mut dxs = dx.chunks_exact_mut(l.input.len());
    if need_dx {
        pack_a(ckk, out, w, true, pack, &mut s.weights);
    }
    // At AVX-512 an unpadded convolution's columns are packed straight from the image (as
    // the weight gradient's transposed operand: pixels as the depth).
    let in_place = padding == 0 && unfolded_available(pack.level());
    if in_place {
        s.unfold_offsets(l.input, kernel, l.output);
    }
    for (xb, dyb) in x
        .chunks_exact(l.input.len())
        .zip(dy.chunks_exact(l.output.len()))
    {
        if in_place {
            let b = Unfolded {
                src: xb,
                depth: &s.pixel_offsets,
                line: &s.kernel_offsets,
            };
            gemm_unfolded(out, ckk, hw, dyb, false, None, b, 1.0, gw, pack);
        } else {
            im2col(
                xb,
                l.input,
                kernel,
                padding,
                l.output,
                &mut s.col[..ckk * hw],
            );
            gemm(out, ckk, hw, dyb, false, &s.col, true, 1.0, gw, pack);
        }
        if need_dx {
            let dxb = dxs.next().expect("dx holds every image");
            gemm_packed_a(
                ckk,
                hw,
                out,
                w,
                true,
                &s.weights,
                dyb,
                false,
                0.0,
                &mut s.dcol[..ckk * hw],
                pack,
            );
            col2im(
                &s.dcol[..ckk * hw],
                l.input,
                kernel,
                padding,
                l.output,
                dxb,
                pack.level(),
            );
        }
    }
}

/// Calls `$f::<W>` with the output width `$wo` as a constant `W` for the widths the model
/// zoo's unpadded convolutions have (8, 16, 24 and 32 columns: each output row copied as one
/// fixed-size array, without the loop control of a run of unknown length), and `$any`
/// otherwise.
macro_rules! by_width {
    ($wo:expr, $f:ident($($arg:expr),*), $any:expr) => {
        match $wo {
            8 => $f::<8>($($arg),*),
            16 => $f::<16>($($arg),*),
            24 => $f::<24>($($arg),*),
            32 => $f::<32>($($arg),*),
            _ => $any,
        }
    };
}

/// Unfolds one image into columns: row `(c·k + ky)·k + kx`, column `oy·wo + ox`.
#[inline(always)]
fn im2col(x: &[f32], input: Shape, k: usize, pad: usize, output: Shape, col: &mut [f32]) {
    if pad == 0 {
        by_width!(
            output.w,
            unfold_unpadded(x, input, k, output, col),
            im2col_padded(x, input, k, 0, output, col)
        );
    } else {
        im2col_padded(x, input, k, pad, output, col);
    }
}

/// [`im2col`] without padding, for output rows of `W` columns: every column row's `ho`
/// rows are whole rows of the input plane, copied `W` values at a time.
#[inline(always)]
fn unfold_unpadded<const W: usize>(
    x: &[f32],
    input: Shape,
    k: usize,
    output: Shape,
    col: &mut [f32],
) {
    let (h, w, ho) = (input.h, input.w, output.h);
    debug_assert_eq!(output.w, W);
    let rows = col[..input.c * k * k * ho * W].chunks_exact_mut(ho * W);
    for (r, dst) in rows.enumerate() {
        let (c, ky, kx) = (r / (k * k), r / k % k, r % k);
        let plane = &x[c * h * w + ky * w + kx..];
        for (oy, d) in dst.chunks_exact_mut(W).enumerate() {
            let d: &mut [f32; W] = d.try_into().expect("W wide");
            *d = plane[oy * w..oy * w + W].try_into().expect("W wide");
        }
    }
}

/// [`im2col`] for any padding and width.
#[inline(always)]
fn im2col_padded(x: &[f32], input: Shape, k: usize, pad: usize, output: Shape, col: &mut [f32]) {
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
/// Each input value's terms are added in column-row order, whichever path runs.
/// At the AVX-512 level, unpadded images at most 16 columns wide are summed a row in a
/// register at a time (`x86::col2im_unpadded512`).
#[inline(always)]
fn col2im(
    col: &[f32],
    input: Shape,
    k: usize,
    pad: usize,
    output: Shape,
    dx: &mut [f32],
    level: Level,
) {
    #[cfg(byzadam_x86)]
    if level == Level::Avx512 && pad == 0 && input.w <= 16 {
        // SAFETY: the level is AVX-512 only when the CPU has AVX-512 F, BW and VL, AVX2 and
        // FMA (`crate::cpu`).
        #[allow(unsafe_code)]
        unsafe {
            x86::col2im_unpadded512(col, input, k, output, dx)
        };
        return;
    }
    let _ = level;
    dx.fill(0.0);
    if pad == 0 {
        by_width!(
            output.w,
            fold_unpadded(col, input, k, output, dx),
            col2im_padded(col, input, k, 0, output, dx)
        );
    } else {
        col2im_padded(col, input, k, pad, output, dx);
    }
}

/// [`col2im`] without padding, for output rows of `W` columns (`dx` already zeroed).
#[inline(always)]
fn fold_unpadded<const W: usize>(
    col: &[f32],
    input: Shape,
    k: usize,
    output: Shape,
    dx: &mut [f32],
) {
    let (h, w, ho) = (input.h, input.w, output.h);
    debug_assert_eq!(output.w, W);
    let rows = col[..input.c * k * k * ho * W].chunks_exact(ho * W);
    for (r, src) in rows.enumerate() {
        let (c, ky, kx) = (r / (k * k), r / k % k, r % k);
        let plane = &mut dx[c * h * w + ky * w + kx..];
        for (oy, s) in src.chunks_exact(W).enumerate() {
            let d: &mut [f32; W] = (&mut plane[oy * w..oy * w + W]).try_into().expect("W wide");
            for (a, &b) in d.iter_mut().zip(s) {
                *a += b;
            }
        }
    }
}

/// [`col2im`] for any padding and width (`dx` already zeroed).
#[inline(always)]
fn col2im_padded(col: &[f32], input: Shape, k: usize, pad: usize, output: Shape, dx: &mut [f32]) {
    let (h, w, ho, wo) = (input.h, input.w, output.h, output.w);
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

#[cfg(test)]
mod tests {
    use super::*;

    /// im2col by its definition: column row `(c, ky, kx)`, column `(oy, ox)` holds the input
    /// at `(c, oy + ky − pad, ox + kx − pad)`, or 0 outside the image.
    fn unfold_by_definition(
        x: &[f32],
        input: Shape,
        k: usize,
        pad: usize,
        output: Shape,
    ) -> Vec<f32> {
        let mut col = Vec::new();
        for c in 0..input.c {
            for ky in 0..k {
                for kx in 0..k {
                    for oy in 0..output.h {
                        for ox in 0..output.w {
                            let (iy, ix) = (
                                (oy + ky) as isize - pad as isize,
                                (ox + kx) as isize - pad as isize,
                            );
                            let inside = (0..input.h as isize).contains(&iy)
                                && (0..input.w as isize).contains(&ix);
                            col.push(if inside {
                                x[(c * input.h + iy as usize) * input.w + ix as usize]
                            } else {
                                0.0
                            });
                        }
                    }
                }
            }
        }
        col
    }

    /// Every (input, output) shape the paths see: the widths with a fixed-size path (8, 16,
    /// 24, 32 columns unpadded), other widths, and padded ones.
    fn shapes() -> Vec<(Shape, usize, usize)> {
        let mut v = Vec::new();
        for (c, h, w, k, pad) in [
            (1, 28, 28, 5, 0), // MNIST's first convolution: 24 columns
            (3, 12, 12, 5, 0), // its second: 8
            (2, 18, 18, 3, 0), // 16
            (2, 34, 36, 3, 0), // 32 columns, a non-square image
            (3, 9, 11, 3, 0),  // 9: the general path
            (2, 16, 16, 5, 0), // 12 columns of a 16-wide image: AVX-512's folding, widest
            (4, 5, 6, 1, 0),   // a 1 × 1 kernel
            (2, 8, 8, 3, 1),   // padded
            (2, 6, 7, 5, 2),   // padded, wider than the kernel's reach
        ] {
            v.push((Shape::new(c, h, w), k, pad));
        }
        v
    }

    #[test]
    fn im2col_and_col2im_equal_their_definitions_bit_for_bit_on_every_path() {
        for (input, k, pad) in shapes() {
            let output = Shape::new(1, input.h + 2 * pad + 1 - k, input.w + 2 * pad + 1 - k);
            // Distinct values, NaN and signed zeros among them, so that a misplaced copy shows.
            let x: Vec<f32> = (0..input.len())
                .map(|i| match i % 11 {
                    3 => f32::NAN,
                    7 => -0.0,
                    _ => (i as f32 * 0.37).sin(),
                })
                .collect();
            let want = unfold_by_definition(&x, input, k, pad, output);
            let mut col = vec![f32::INFINITY; want.len()];
            im2col(&x, input, k, pad, output, &mut col);
            let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&col), bits(&want), "im2col, {input:?} k {k} pad {pad}");

            // col2im is im2col's adjoint: each input value sums, in column-row order, the
            // columns that copied it.
            let g: Vec<f32> = (0..want.len())
                .map(|i| match i % 13 {
                    4 => -0.0,
                    _ => ((i * 7919) % 1000) as f32 / 999.0 - 0.5,
                })
                .collect();
            let mut dx_want = vec![0.0f32; input.len()];
            for (i, dx) in dx_want.iter_mut().enumerate() {
                let mut probe = vec![0.0f32; input.len()];
                probe[i] = f32::NAN; // marks the columns holding input i
                for (j, v) in unfold_by_definition(&probe, input, k, pad, output)
                    .iter()
                    .enumerate()
                {
                    if v.is_nan() {
                        *dx += g[j];
                    }
                }
            }
            for level in crate::cpu::supported() {
                let mut dx = vec![f32::NAN; input.len()];
                col2im(&g, input, k, pad, output, &mut dx, level);
                assert_eq!(
                    bits(&dx),
                    bits(&dx_want),
                    "col2im at {level}, {input:?} k {k} pad {pad}"
                );
            }
        }
    }
}
