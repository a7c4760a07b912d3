//! Fully connected (`LayerSpec::Linear`; the input is flattened): weight `[out, in]` then
//! bias `[out]`, one SGEMM over the whole batch.

use super::shape::Shape;
use crate::gemm::{gemm, Pack};

/// The output shape, parameter count and state count (none) of an `out`-feature linear
/// layer on `input`.
pub(crate) fn output(out: usize, input: Shape) -> (Shape, usize, usize) {
    (Shape::new(out, 1, 1), out * input.len() + out, 0)
}

/// `y = x Wᵀ + b` for `batch` rows of `n_in` values.
#[inline(always)]
pub(crate) fn forward(
    out: usize,
    n_in: usize,
    p: &[f32],
    x: &[f32],
    y: &mut [f32],
    batch: usize,
    pack: &mut Pack,
) {
    let (w, b) = p.split_at(out * n_in);
    gemm(batch, out, n_in, x, false, w, true, 0.0, y, pack);
    for row in y.chunks_exact_mut(out) {
        for (v, &bias) in row.iter_mut().zip(b) {
            *v += bias;
        }
    }
}

/// Adds `dyᵀ x` and the column sums of `dy` (`batch` rows) to the weight and bias gradients
/// (`gp`).
#[inline(always)]
pub(crate) fn backward_params(
    out: usize,
    n_in: usize,
    x: &[f32],
    dy: &[f32],
    batch: usize,
    gp: &mut [f32],
    pack: &mut Pack,
) {
    let (gw, gb) = gp.split_at_mut(out * n_in);
    gemm(out, n_in, batch, dy, true, x, false, 1.0, gw, pack);
    for row in dy[..batch * out].chunks_exact(out) {
        for (s, &v) in gb.iter_mut().zip(row) {
            *s += v;
        }
    }
}

/// Writes `dx = dy W` for `batch` rows (each row's result depends on its own row alone).
#[inline(always)]
pub(crate) fn backward_input(
    out: usize,
    n_in: usize,
    p: &[f32],
    dy: &[f32],
    batch: usize,
    dx: &mut [f32],
    pack: &mut Pack,
) {
    let (w, _) = p.split_at(out * n_in);
    gemm(batch, n_in, out, dy, false, w, false, 0.0, dx, pack);
}
