//! Weighted sums of rows, accumulated in `f64` in a fixed row order, parallel over coordinates.
//!
//! Accumulating in `f64` makes the mean of `k` identical rows exactly that row (the sum of up to
//! 2²⁹ copies of an `f32` is exact in `f64`), and keeps averages of many rows accurate.

use super::{simd, CHUNK};
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
        simd::weighted_chunk(data, dim, rows, w, scale, c * CHUNK, o);
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

/// Coordinates of one output row accumulated at once, in registers (four AVX vectors).
const GROUP: usize = 32;

/// Nearest-neighbour mixing over one column range: `rows[i] = (Σ_{j ∈ nbrs[i]} x_j) / k`
/// (`nbrs` holds `k` indices per row, summed in that order). Unlike the averages, this sums in
/// `f32`: mixing writes `n` vectors and reads `n(n − f)` rows per coordinate, and `f32` halves
/// the work (8 lanes, no conversions). The error is that of summing `k` floats (below
/// `k · 2⁻²⁴` relative). Each output group of [`GROUP`] coordinates is summed in registers
/// (one load and one add per neighbour and coordinate, one store per output), since the
/// column range's `n` input spans are in cache whichever row reads them.
#[inline(always)]
pub(crate) fn mix_chunk_generic(
    data: &[f32],
    dim: usize,
    nbrs: &[usize],
    k: usize,
    c0: usize,
    rows: &mut [&mut [f32]],
) {
    let width = rows.first().map_or(0, |r| r.len());
    let kf = k as f32;
    let whole = width - width % GROUP;
    let mut g0 = 0;
    while g0 < whole {
        for (i, row) in rows.iter_mut().enumerate() {
            let mine = &nbrs[i * k..(i + 1) * k];
            let first = mine[0] * dim + c0 + g0;
            let mut acc: [f32; GROUP] = data[first..first + GROUP].try_into().expect("GROUP wide");
            for &j in &mine[1..] {
                let x: &[f32; GROUP] = data[j * dim + c0 + g0..j * dim + c0 + g0 + GROUP]
                    .try_into()
                    .expect("GROUP wide");
                for l in 0..GROUP {
                    acc[l] += x[l];
                }
            }
            let out: &mut [f32; GROUP] = (&mut row[g0..g0 + GROUP]).try_into().expect("GROUP wide");
            for l in 0..GROUP {
                out[l] = acc[l] / kf;
            }
        }
        g0 += GROUP;
    }
    if whole < width {
        // The tail: the same sums, element by element.
        for (i, row) in rows.iter_mut().enumerate() {
            let mine = &nbrs[i * k..(i + 1) * k];
            for (c, o) in row[whole..].iter_mut().enumerate() {
                *o = mix_one(data, dim, mine, c0 + whole + c);
            }
        }
    }
}

/// One coordinate (`at`) of one mixed row: the rows `mine` summed in that order, divided by
/// their count (what [`mix_chunk_generic`] computes for every coordinate).
#[inline(always)]
pub(crate) fn mix_one(data: &[f32], dim: usize, mine: &[usize], at: usize) -> f32 {
    let mut acc = data[mine[0] * dim + at];
    for &j in &mine[1..] {
        acc += data[j * dim + at];
    }
    acc / mine.len() as f32
}
