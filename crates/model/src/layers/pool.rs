//! 2×2 max pooling, stride 2 (`LayerSpec::MaxPool2`): branch-free, with PyTorch's tie rule
//! (the first maximum in raster order, which matters for ReLU zeros) and NaN rule.

use super::shape::Shape;

/// The output shape of pooling `input`, its parameter and state counts (none).
pub(crate) fn output(input: Shape) -> (Shape, usize, usize) {
    (Shape::new(input.c, input.h / 2, input.w / 2), 0, 0)
}

/// Pools `batch` samples of `input` into `y`, recording each output's arg-max in `idx` (an
/// index into its sample's input).
#[inline(always)]
pub(crate) fn forward(
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

/// Routes each output's gradient to the input it came from (`dx` overwritten).
#[inline(always)]
pub(crate) fn backward(input: Shape, output: Shape, dy: &[f32], idx: &[u32], dx: &mut [f32]) {
    dx.fill(0.0);
    let per_in = input.len();
    let per_out = output.len();
    for (b, (dyb, idx)) in dy
        .chunks_exact(per_out)
        .zip(idx.chunks_exact(per_out))
        .enumerate()
    {
        let dxb = &mut dx[b * per_in..(b + 1) * per_in];
        for (&g, &j) in dyb.iter().zip(idx) {
            dxb[j as usize] += g;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_pooling_takes_the_first_maximum_and_propagates_nan() {
        let input = Shape::new(1, 2, 4);
        let output = Shape::new(1, 1, 2);
        // Window 1: a tie at 0 between positions (0,0) and (1,1): the first wins.
        // Window 2: a NaN at (1,2) beats the larger 9 before it.
        let x = [0.0, -1.0, 9.0, 1.0, -2.0, 0.0, f32::NAN, 3.0];
        let (mut y, mut idx) = ([0.0; 2], [0u32; 2]);
        forward(&x, input, output, 1, &mut y, &mut idx);
        assert_eq!((y[0], idx[0]), (0.0, 0));
        assert!(y[1].is_nan() && idx[1] == 6);
        // Without NaN: a strictly larger value later in raster order wins.
        let x = [0.0, 2.0, 5.0, 5.0, 3.0, 2.0, 5.0, 1.0];
        forward(&x, input, output, 1, &mut y, &mut idx);
        assert_eq!((y, idx), ([3.0, 5.0], [4, 2]));
    }
}
