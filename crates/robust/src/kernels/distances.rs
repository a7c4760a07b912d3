//! Blocked, parallel squared L2 distances: all pairs of rows, or every row to one point.
//!
//! Differences are formed in `f32` (no `‖a‖² + ‖b‖² − 2a·b` cancellation), summed in 16 `f32`
//! lanes over sub-blocks of 256 coordinates whose n rows stay in L1, and the sub-block sums are
//! added in `f64` in a fixed order. An undefined distance (`∞ − ∞`, NaN) is `+∞`.

use super::order::nan_to_inf;
use super::scratch::with_f64;
use super::simd::dispatch;
use super::CHUNK;
use crate::Submissions;
use rayon::prelude::*;

/// Sub-block of coordinates whose rows stay in cache while every pair is visited.
const SUB: usize = 256;

/// `Σ (a_k − b_k)²` in 16 lanes.
#[inline(always)]
pub(crate) fn sq_dist(a: &[f32], b: &[f32]) -> f32 {
    // 16 lanes (two AVX registers); the tail goes to a separate scalar sum so the main loop's
    // accumulator stays in registers (measured: 2× faster than folding the tail into it).
    let len = a.len().min(b.len());
    let (ca, ra) = a[..len].as_chunks::<16>();
    let (cb, rb) = b[..len].as_chunks::<16>();
    let mut acc = [0f32; 16];
    for (x, y) in ca.iter().zip(cb) {
        for l in 0..16 {
            let d = x[l] - y[l];
            acc[l] += d * d;
        }
    }
    let mut s = 0f32;
    for v in acc {
        s += v;
    }
    for (x, y) in ra.iter().zip(rb) {
        let d = x - y;
        s += d * d;
    }
    s
}

/// Partial sums for one chunk `[c0, c1)`, all pairs `i < j` in row-major pair order.
#[inline(always)]
pub(crate) fn pair_partials_generic(
    rows: &[f32],
    n: usize,
    dim: usize,
    c0: usize,
    c1: usize,
    partial: &mut [f64],
) {
    partial.fill(0.0);
    let mut s0 = c0;
    while s0 < c1 {
        let s1 = (s0 + SUB).min(c1);
        let mut p = 0;
        for i in 0..n {
            let a = &rows[i * dim + s0..i * dim + s1];
            for j in i + 1..n {
                let b = &rows[j * dim + s0..j * dim + s1];
                partial[p] += sq_dist(a, b) as f64;
                p += 1;
            }
        }
        s0 = s1;
    }
}

/// Partial sums of `‖x_i − v‖²` over one chunk, one per row.
#[inline(always)]
pub(crate) fn point_partials_generic(
    rows: &[f32],
    n: usize,
    dim: usize,
    v: &[f32],
    c0: usize,
    c1: usize,
    partial: &mut [f64],
) {
    for i in 0..n {
        partial[i] = sq_dist(&rows[i * dim + c0..i * dim + c1], &v[c0..c1]) as f64;
    }
}

/// Number of pairs `i < j` among `n`.
pub(crate) fn pairs(n: usize) -> usize {
    n * n.saturating_sub(1) / 2
}

/// Fills `d2` (`n × n`, row-major) with squared distances between rows; the diagonal is 0.
pub(crate) fn pairwise_sq(s: &Submissions, d2: &mut [f64]) {
    let (n, dim) = (s.n(), s.dim());
    debug_assert_eq!(d2.len(), n * n);
    let np = pairs(n);
    let chunks = dim.div_ceil(CHUNK);
    let rows = s.as_flat();
    with_f64(chunks * np.max(1), |partials| {
        partials
            .par_chunks_mut(np.max(1))
            .enumerate()
            .for_each(|(c, part)| {
                let c0 = c * CHUNK;
                let c1 = (c0 + CHUNK).min(dim);
                pair_partials(rows, n, dim, c0, c1, &mut part[..np]);
            });
        d2.fill(0.0);
        for part in partials.chunks(np.max(1)) {
            let mut p = 0;
            for i in 0..n {
                for j in i + 1..n {
                    d2[i * n + j] += part[p];
                    p += 1;
                }
            }
        }
        for i in 0..n {
            for j in i + 1..n {
                let v = nan_to_inf(d2[i * n + j]);
                d2[i * n + j] = v;
                d2[j * n + i] = v;
            }
        }
    });
}

/// Fills `out[i]` with `‖x_i − v‖²` for every row.
pub(crate) fn to_point_sq(s: &Submissions, v: &[f32], out: &mut [f64]) {
    let (n, dim) = (s.n(), s.dim());
    let chunks = dim.div_ceil(CHUNK);
    let rows = s.as_flat();
    with_f64(chunks * n, |partials| {
        partials
            .par_chunks_mut(n)
            .enumerate()
            .for_each(|(c, part)| {
                let c0 = c * CHUNK;
                let c1 = (c0 + CHUNK).min(dim);
                point_partials(rows, n, dim, v, c0, c1, part);
            });
        out.fill(0.0);
        for part in partials.chunks(n) {
            for (o, p) in out.iter_mut().zip(part) {
                *o += p;
            }
        }
        for o in out.iter_mut() {
            *o = nan_to_inf(*o);
        }
    });
}

/// Fills `out[i]` with `‖x_i‖²`.
pub(crate) fn sq_norms(s: &Submissions, out: &mut [f64]) {
    let (n, dim) = (s.n(), s.dim());
    let chunks = dim.div_ceil(CHUNK);
    let rows = s.as_flat();
    with_f64(chunks * n, |partials| {
        partials
            .par_chunks_mut(n)
            .enumerate()
            .for_each(|(c, part)| {
                let c0 = c * CHUNK;
                let c1 = (c0 + CHUNK).min(dim);
                for i in 0..n {
                    let r = &rows[i * dim + c0..i * dim + c1];
                    part[i] = r.iter().map(|&x| (x as f64) * (x as f64)).sum();
                }
            });
        out.fill(0.0);
        for part in partials.chunks(n) {
            for (o, p) in out.iter_mut().zip(part) {
                *o += p;
            }
        }
        for o in out.iter_mut() {
            *o = nan_to_inf(*o);
        }
    });
}

/// Checks that `segments` (lengths of consecutive coordinate ranges) cover exactly `dim`
/// coordinates, none empty; an empty list is one segment of the whole vector.
pub(crate) fn check_segments(
    rule: &'static str,
    segments: &[usize],
    dim: usize,
) -> Result<(), crate::Error> {
    let total: usize = segments.iter().sum();
    if segments.contains(&0) || (!segments.is_empty() && total != dim) {
        return Err(crate::Error::InvalidParameter {
            rule,
            name: "segments",
            reason: format!(
                "segment lengths must be ≥ 1 and sum to the dimension {dim}, got {} segments summing to {total}",
                segments.len()
            ),
        });
    }
    Ok(())
}

/// Fills `d` (`n × n`, row-major) with `Σ_s ‖x_i[s] − x_j[s]‖`: the L2 distances over each
/// segment (consecutive coordinate ranges of the given lengths, one segment of the whole
/// vector when `segments` is empty), summed. This is the thesis's code's distance (its MDA
/// and NNM sum `torch.norm` over the model's parameter tensors). Unlike [`pairwise_sq`], an
/// undefined distance stays NaN (`∞ − ∞`), as in that code; the diagonal is `‖x_i − x_i‖`,
/// so NaN for a row holding an infinity. `segments` must have passed [`check_segments`].
pub(crate) fn segment_sums(s: &Submissions, segments: &[usize], d: &mut [f64]) {
    let (n, dim) = (s.n(), s.dim());
    debug_assert_eq!(d.len(), n * n);
    let whole = [dim];
    let segments = if segments.is_empty() {
        &whole[..]
    } else {
        segments
    };
    let rows = s.as_flat();
    d.par_chunks_mut(n).enumerate().for_each(|(i, out)| {
        let a = &rows[i * dim..(i + 1) * dim];
        for (j, o) in out.iter_mut().enumerate() {
            let b = &rows[j * dim..(j + 1) * dim];
            let mut total = 0f64;
            let mut at = 0;
            for &len in segments {
                let mut sq = 0f64;
                let mut s0 = at;
                while s0 < at + len {
                    let s1 = (s0 + SUB).min(at + len);
                    sq += sq_dist(&a[s0..s1], &b[s0..s1]) as f64;
                    s0 = s1;
                }
                total += sq.sqrt();
                at += len;
            }
            *o = total;
        }
    });
}

dispatch! {
    /// Pairwise squared-distance partial sums over one chunk.
    fn pair_partials(rows: &[f32], n: usize, dim: usize, c0: usize, c1: usize, partial: &mut [f64])
        => pair_partials_generic
}

dispatch! {
    /// Row-to-point squared-distance partial sums over one chunk.
    fn point_partials(rows: &[f32], n: usize, dim: usize, v: &[f32], c0: usize, c1: usize, partial: &mut [f64])
        => point_partials_generic
}
