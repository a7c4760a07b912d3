//! Weighted sums of rows, accumulated in `f64` in a fixed row order, parallel over coordinates.
//!
//! Accumulating in `f64` makes the mean of `k` identical rows exactly that row (the sum of up to
//! 2²⁹ copies of an `f32` is exact in `f64`), and keeps averages of many rows accurate.

use super::simd::dispatch;
use super::CHUNK;
use crate::Submissions;
use rayon::prelude::*;

/// Coordinates accumulated at once in a stack buffer.
pub(crate) const SUB: usize = 512;

/// `out[c] = scale · Σ_k w_k · x_{rows[k]}[c]`, rows in the given order; `w = None` means all 1.
#[inline(always)]
pub(crate) fn weighted_chunk_generic(
    data: &[f32],
    dim: usize,
    rows: &[usize],
    w: Option<&[f64]>,
    scale: f64,
    c0: usize,
    out: &mut [f32],
) {
    let mut s0 = 0;
    while s0 < out.len() {
        let s1 = (s0 + SUB).min(out.len());
        let width = s1 - s0;
        let mut acc = [-0.0f64; SUB]; // −0.0: the identity of addition
        for (k, &r) in rows.iter().enumerate() {
            let x = &data[r * dim + c0 + s0..r * dim + c0 + s1];
            match w {
                None => {
                    for (a, &v) in acc[..width].iter_mut().zip(x) {
                        *a += v as f64;
                    }
                }
                Some(w) => {
                    let wk = w[k];
                    for (a, &v) in acc[..width].iter_mut().zip(x) {
                        *a += wk * v as f64;
                    }
                }
            }
        }
        for (o, a) in out[s0..s1].iter_mut().zip(&acc[..width]) {
            *o = (a * scale) as f32;
        }
        s0 = s1;
    }
}

/// `out = (1 / rows.len()) Σ_{i ∈ rows} x_i`: the mean of a subset of rows.
pub(crate) fn mean_of(s: &Submissions, rows: &[usize], out: &mut [f32]) {
    let k = rows.len().max(1) as f64;
    combine(s, rows, None, 1.0 / k, out);
}

/// `out = scale · Σ_k w_k x_{rows[k]}`.
pub(crate) fn combine(
    s: &Submissions,
    rows: &[usize],
    w: Option<&[f64]>,
    scale: f64,
    out: &mut [f32],
) {
    let dim = s.dim();
    let data = s.as_flat();
    out.par_chunks_mut(CHUNK).enumerate().for_each(|(c, o)| {
        weighted_chunk(data, dim, rows, w, scale, c * CHUNK, o);
    });
}

/// `out = Σ_i w_i x_i / Σ_i w_i` over the rows whose weight is nonzero (a zero weight drops the
/// row entirely, so an infinite row with weight 0 contributes nothing rather than NaN).
pub(crate) fn weighted_mean(s: &Submissions, weights: &[f64], out: &mut [f32]) {
    super::scratch::with_usize(s.n(), |idx| {
        super::scratch::with_f64_b(s.n(), |w| {
            let mut k = 0;
            let mut total = 0.0;
            for (i, &wi) in weights.iter().enumerate() {
                if wi != 0.0 {
                    idx[k] = i;
                    w[k] = wi;
                    total += wi;
                    k += 1;
                }
            }
            combine(s, &idx[..k], Some(&w[..k]), 1.0 / total, out);
        })
    })
}

dispatch! {
    /// Weighted row sums over one chunk.
    fn weighted_chunk(data: &[f32], dim: usize, rows: &[usize], w: Option<&[f64]>, scale: f64, c0: usize, out: &mut [f32])
        => weighted_chunk_generic
}

/// `‖point − mean‖²` added to `acc` coordinate by coordinate in order, the mean of the rows of
/// `data` (`count` rows, `dim` wide) being `Σ_r (x_r / count)` in `f64`, over the coordinates
/// `c0..c0 + point.len()` (`mean` their scratch).
#[inline(always)]
pub(crate) fn distance_to_mean_chunk_generic(
    data: &[f32],
    dim: usize,
    count: usize,
    c0: usize,
    point: &[f32],
    mean: &mut [f64],
    acc: &mut f64,
) {
    mean.fill(0.0);
    for r in 0..count {
        for (m, &v) in mean.iter_mut().zip(&data[r * dim + c0..]) {
            *m += v as f64 / count as f64;
        }
    }
    let mut sum = *acc;
    for (&a, m) in point.iter().zip(mean.iter()) {
        sum += (a as f64 - m).powi(2);
    }
    *acc = sum;
}

dispatch! {
    /// [`distance_to_mean_chunk_generic`], vectorised where the CPU allows (the same bits).
    fn distance_to_mean_chunk(data: &[f32], dim: usize, count: usize, c0: usize, point: &[f32], mean: &mut [f64], acc: &mut f64)
        => distance_to_mean_chunk_generic
}

/// `‖point − mean of the rows of s‖` in `f64`: the mean `Σ_r (x_r / n)` in row order, the
/// squared differences summed in coordinate order (one thread: the order is the result's).
pub(crate) fn distance_to_mean(s: &Submissions, point: &[f32]) -> f64 {
    let (count, dim) = (s.n(), s.dim());
    let data = s.as_flat();
    super::scratch::with_f64(CHUNK.min(dim), |mean| {
        let mut acc = 0.0;
        for (c, p) in point.chunks(CHUNK).enumerate() {
            distance_to_mean_chunk(
                data,
                dim,
                count,
                c * CHUNK,
                p,
                &mut mean[..p.len()],
                &mut acc,
            );
        }
        acc.sqrt()
    })
}
