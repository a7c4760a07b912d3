//! 2×2 max pooling, stride 2 (`LayerSpec::MaxPool2`): branch-free, with PyTorch's tie rule
//! (the first maximum in raster order, which matters for ReLU zeros) and NaN rule.

#[cfg(byzadam_x86)]
mod x86;

use super::shape::Shape;
use crate::cpu::Level;

/// The output shape of pooling `input`, its parameter and state counts (none).
pub(crate) fn output(input: Shape) -> (Shape, usize, usize) {
    (Shape::new(input.c, input.h / 2, input.w / 2), 0, 0)
}

/// Pools `batch` samples of `input` into `y`, recording each output's arg-max in `idx` (an
/// index into its sample's input); at the AVX-512 level, inputs at most 32 columns wide a
/// row of windows at a time (`x86::forward512`, the same values and indices).
#[inline(always)]
pub(crate) fn forward(
    x: &[f32],
    input: Shape,
    output: Shape,
    batch: usize,
    y: &mut [f32],
    idx: &mut [u32],
    level: Level,
) {
    #[cfg(byzadam_x86)]
    if level == Level::Avx512 && input.w <= 32 {
        // SAFETY: the level is AVX-512 only when the CPU has AVX-512 F, BW and VL, AVX2 and
        // FMA (`crate::cpu`).
        #[allow(unsafe_code)]
        unsafe {
            x86::forward512(x, input, output, batch, y, idx)
        };
        return;
    }
    let _ = level;
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

/// Routes each output's gradient to the input it came from (`dx` overwritten). When `relu`
/// holds this pooling's output and its input is a ReLU's output, the ReLU's mask is applied
/// too and `dx` is the ReLU's input gradient (`spec::mask_fused`): an output's value is its
/// arg-max input's, so the ReLU passes the gradient exactly when that value is positive.
/// Windows do not overlap, so each input gets at most one term, written as `0 + g` (what
/// adding it to a zeroed buffer gives: −0 becomes +0). At the AVX-512 level, inputs at most
/// 32 columns wide are written whole a row of windows at a time (`x86::backward512`, the
/// same values).
#[inline(always)]
pub(crate) fn backward(
    input: Shape,
    output: Shape,
    dy: &[f32],
    idx: &[u32],
    relu: Option<&[f32]>,
    dx: &mut [f32],
    level: Level,
) {
    let (ho, wo) = (output.h, output.w);
    if ho * wo == 0 {
        dx.fill(0.0);
        return;
    }
    #[cfg(byzadam_x86)]
    if level == Level::Avx512 && input.w <= 32 {
        // SAFETY: the level is AVX-512 only when the CPU has AVX-512 F, BW and VL, AVX2 and
        // FMA (`crate::cpu`).
        #[allow(unsafe_code)]
        unsafe {
            x86::backward512(input, output, dy, idx, relu, dx)
        };
        return;
    }
    let _ = level;
    // Zeros, then each window's term at its arg-max (written whole, window by window, this
    // measured slower at AVX2).
    dx.fill(0.0);
    for (k, (g, at)) in dy
        .chunks_exact(ho * wo)
        .zip(idx.chunks_exact(ho * wo))
        .enumerate()
    {
        // `idx` counts from the start of the sample.
        let sample = &mut dx[k / input.c * input.len()..(k / input.c + 1) * input.len()];
        let y = relu.map(|y| &y[k * ho * wo..(k + 1) * ho * wo]);
        for (o, (&g, &j)) in g.iter().zip(at).enumerate() {
            let keep = y.is_none_or(|y| y[o] > 0.0);
            sample[j as usize] = if keep { 0.0 + g } else { 0.0 };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The backward pass by its definition: each output's gradient added to a zeroed buffer at
    /// its arg-max, then the ReLU's backward pass (`relu.rs`) when its mask is fused.
    fn backward_by_definition(
        input: Shape,
        dy: &[f32],
        idx: &[u32],
        x: &[f32],
        relu: bool,
    ) -> Vec<f32> {
        let per_out = dy.len() / (x.len() / input.len());
        let mut dx = vec![0.0f32; x.len()];
        for (o, (&g, &j)) in dy.iter().zip(idx).enumerate() {
            dx[o / per_out * input.len() + j as usize] += g;
        }
        if relu {
            let mut out = vec![0.0; dx.len()];
            crate::layers::relu::backward(&dx, x, &mut out);
            dx = out;
        }
        dx
    }

    #[test]
    fn the_backward_pass_equals_its_definition_with_and_without_the_relu_mask() {
        // Even and odd sizes (odd rows and columns belong to no window), one and two samples.
        for (c, h, w, batch) in [
            (2, 24, 24, 2),
            (3, 8, 8, 1),
            (2, 5, 7, 2),
            (1, 3, 2, 1),
            (2, 6, 20, 2),
            (1, 5, 33, 1),
            (1, 4, 34, 2),
        ] {
            let input = Shape::new(c, h, w);
            let (output, _, _) = super::output(input);
            let n = input.len() * batch;
            // A ReLU's output: zeros (ties, and whole windows of them, whose gradient the
            // mask stops) and positive values.
            let x: Vec<f32> = (0..n)
                .map(|i| {
                    let zero_block = (i / w) % 4 < 2 && (i % w) % 4 < 2;
                    if zero_block || i % 3 == 0 {
                        0.0
                    } else {
                        ((i * 37) % 17) as f32
                    }
                })
                .collect();
            let mut y = vec![0.0; output.len() * batch];
            let mut idx = vec![0u32; y.len()];
            forward(&x, input, output, batch, &mut y, &mut idx, Level::Portable);
            // Gradients with −0, NaN and ±∞ among them.
            let dy: Vec<f32> = (0..y.len())
                .map(|i| match i % 7 {
                    0 => -0.0,
                    3 => f32::NAN,
                    5 => f32::NEG_INFINITY,
                    _ => i as f32 * 0.5 - 3.0,
                })
                .collect();
            let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
            for (relu, level) in [false, true]
                .into_iter()
                .flat_map(|r| crate::cpu::supported().into_iter().map(move |l| (r, l)))
            {
                let want = backward_by_definition(input, &dy, &idx, &x, relu);
                let mut dx = vec![f32::NAN; n];
                let mask = relu.then_some(&y[..]);
                backward(input, output, &dy, &idx, mask, &mut dx, level);
                assert_eq!(
                    bits(&dx),
                    bits(&want),
                    "{level}, {input:?} × {batch}, relu mask {relu}"
                );
            }
        }
    }

    #[test]
    fn max_pooling_takes_the_first_maximum_and_propagates_nan() {
        for level in crate::cpu::supported() {
            let input = Shape::new(1, 2, 4);
            let output = Shape::new(1, 1, 2);
            // Window 1: a tie at 0 between positions (0,0) and (1,1): the first wins.
            // Window 2: a NaN at (1,2) beats the larger 9 before it.
            let x = [0.0, -1.0, 9.0, 1.0, -2.0, 0.0, f32::NAN, 3.0];
            let (mut y, mut idx) = ([0.0; 2], [0u32; 2]);
            forward(&x, input, output, 1, &mut y, &mut idx, level);
            assert_eq!((y[0], idx[0]), (0.0, 0), "{level}");
            assert!(y[1].is_nan() && idx[1] == 6, "{level}");
            // Without NaN: a strictly larger value later in raster order wins.
            let x = [0.0, 2.0, 5.0, 5.0, 3.0, 2.0, 5.0, 1.0];
            forward(&x, input, output, 1, &mut y, &mut idx, level);
            assert_eq!((y, idx), ([3.0, 5.0], [4, 2]), "{level}");
        }
    }

    #[test]
    fn the_forward_pass_equals_its_definition_at_every_cpu_level() {
        // Each window by the rule's definition: its four values in raster order, the running
        // maximum replaced only by a strictly greater value or by a NaN over a number.
        let by_definition = |x: &[f32], input: Shape, output: Shape, batch: usize| {
            let (mut y, mut idx) = (Vec::new(), Vec::new());
            for b in 0..batch {
                for c in 0..input.c {
                    for oy in 0..output.h {
                        for ox in 0..output.w {
                            let at = |dy: usize, dx: usize| {
                                c * input.h * input.w + (2 * oy + dy) * input.w + 2 * ox + dx
                            };
                            let mut best = at(0, 0);
                            for j in [at(0, 1), at(1, 0), at(1, 1)] {
                                let (u, m) = (x[b * input.len() + j], x[b * input.len() + best]);
                                if u > m || (u.is_nan() && !m.is_nan()) {
                                    best = j;
                                }
                            }
                            y.push(x[b * input.len() + best]);
                            idx.push(best as u32);
                        }
                    }
                }
            }
            (y, idx)
        };
        // Widths on both sides of 16 and 32 columns (AVX-512's one and two registers, and
        // the scalar path past them), odd sizes, one and three samples.
        for (c, h, w, batch) in [
            (2, 24, 24, 3),
            (3, 8, 8, 1),
            (2, 5, 7, 3),
            (1, 4, 16, 1),
            (2, 6, 17, 1),
            (1, 4, 32, 3),
            (1, 3, 33, 1),
            (2, 9, 40, 1),
        ] {
            let input = Shape::new(c, h, w);
            let (output, _, _) = super::output(input);
            let n = input.len() * batch;
            // Ties, signed zeros, NaN (in some planes only: the scalar path pools planes with
            // and without NaN differently) and infinities.
            let x: Vec<f32> = (0..n)
                .map(|i| match (i * 7) % 23 {
                    0 | 1 => 0.0,
                    2 => -0.0,
                    3 if (i / input.len()).is_multiple_of(2) => f32::NAN,
                    4 => f32::INFINITY,
                    5 => f32::NEG_INFINITY,
                    r => (r % 5) as f32 - 2.0,
                })
                .collect();
            let (want_y, want_idx) = by_definition(&x, input, output, batch);
            let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
            for level in crate::cpu::supported() {
                let mut y = vec![1.5; output.len() * batch];
                let mut idx = vec![u32::MAX; y.len()];
                forward(&x, input, output, batch, &mut y, &mut idx, level);
                assert_eq!(bits(&y), bits(&want_y), "{level}, {input:?} × {batch}");
                assert_eq!(idx, want_idx, "{level}, {input:?} × {batch}");
            }
        }
    }
}
