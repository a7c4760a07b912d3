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
/// `c0..c0 + point.len()`. In sub-blocks of [`SUB`] coordinates, whose squares are summed while
/// the block is in L1 (the same operations in the same order); `mean` is one sub-block's
/// scratch (at least `SUB.min(point.len())` long).
/// `FMA`: the divisions by [`div_by_count`] (the same bits, FMA instructions needed).
#[inline(always)]
pub(crate) fn distance_to_mean_chunk_generic<const FMA: bool>(
    data: &[f32],
    dim: usize,
    count: usize,
    c0: usize,
    point: &[f32],
    mean: &mut [f64],
    acc: &mut f64,
) {
    let b = count as f64;
    let inv = 1.0 / b;
    let fma = FMA && count <= DIV_BY_COUNT_MAX;
    let mut sum = *acc;
    for (k, point) in point.chunks(SUB).enumerate() {
        let c = c0 + k * SUB;
        let mean = &mut mean[..point.len()];
        mean.fill(0.0);
        for r in 0..count {
            let row = &data[r * dim + c..r * dim + c + mean.len()];
            if fma {
                for (m, &v) in mean.iter_mut().zip(row) {
                    *m += div_by_count(v as f64, b, inv);
                }
            } else {
                for (m, &v) in mean.iter_mut().zip(row) {
                    *m += v as f64 / b;
                }
            }
        }
        for (&a, m) in point.iter().zip(mean.iter()) {
            sum += (a as f64 - m).powi(2);
        }
    }
    *acc = sum;
}

/// Counts up to which [`div_by_count`] is checked to equal the division for every `f32` input
/// (`tests::div_by_count_is_the_division_for_every_f32_significand`, run with `--ignored`).
pub(crate) const DIV_BY_COUNT_MAX: usize = 4096;

/// `x / b` for an `f32` value `x` (as `f64`) and an integer count `b ≤` [`DIV_BY_COUNT_MAX`],
/// given `inv = 1 / b`, without a division: the quotient `q = x · inv` and one correction
/// (Markstein's): the remainder `x − q·b` is exact in one FMA, and `q + remainder · inv`
/// rounds to the correctly rounded quotient. Checked for every `f32` significand and every
/// such count (rounding is scale-invariant, and `f32`'s range keeps every step of this far
/// from `f64`'s underflow and overflow). Zero remainders (exact quotients, signed zeros) and
/// non-finite ones (`x` infinite or NaN) take `q`, which is then the quotient. A division is
/// one 4-lane result every 8 cycles here, this three multiply-adds.
#[inline(always)]
pub(crate) fn div_by_count(x: f64, b: f64, inv: f64) -> f64 {
    let q = x * inv;
    let r = (-q).mul_add(b, x);
    if r != 0.0 && r.is_finite() {
        r.mul_add(inv, q)
    } else {
        q
    }
}

dispatch! {
    /// [`distance_to_mean_chunk_generic`], vectorised where the CPU allows, with
    /// [`div_by_count`] where FMA is an instruction (the portable build divides: there
    /// `mul_add` is a library call); the same bits.
    fn distance_to_mean_chunk(data: &[f32], dim: usize, count: usize, c0: usize, point: &[f32], mean: &mut [f64], acc: &mut f64)
        => distance_to_mean_chunk_generic::<false>,
        avx512: distance_to_mean_chunk_generic::<true>,
        avx2: distance_to_mean_chunk_generic::<true>
}

/// `‖point − mean of the rows of s‖` in `f64`: the mean `Σ_r (x_r / n)` in row order, the
/// squared differences summed in coordinate order (one thread: the order is the result's).
pub(crate) fn distance_to_mean(s: &Submissions, point: &[f32]) -> f64 {
    let (count, dim) = (s.n(), s.dim());
    let data = s.as_flat();
    super::scratch::with_f64(SUB.min(dim), |mean| {
        let mut acc = 0.0;
        for (c, p) in point.chunks(CHUNK).enumerate() {
            distance_to_mean_chunk(data, dim, count, c * CHUNK, p, mean, &mut acc);
        }
        acc.sqrt()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every `f32` significand `m` (`2²³ ≤ m < 2²⁴`; every other finite non-zero `f32` is one
    /// of them times a power of two and a sign, which rounding to nearest does not see)
    /// divided by `count`: `div_by_count` against the division, bit for bit.
    fn mismatches(count: usize) -> u64 {
        let b = count as f64;
        let inv = 1.0 / b;
        ((1u32 << 23)..(1u32 << 24))
            .map(|m| {
                let x = m as f64;
                (div_by_count(x, b, inv).to_bits() != (x / b).to_bits()) as u64
            })
            .sum()
    }

    #[test]
    fn div_by_count_is_the_division_for_every_f32_significand_at_some_counts() {
        for count in [1, 2, 3, 5, 7, 9, 10, 11, 13, 15, 49, 97, 1000, 4093, 4096] {
            assert_eq!(mismatches(count), 0, "count {count}");
        }
    }

    /// The check behind [`DIV_BY_COUNT_MAX`]: every count up to it (about 3 minutes in a release
    /// build on two cores: `cargo test --release -p byzadam-robust div_by_count -- --ignored`).
    #[test]
    #[ignore = "exhaustive, about 3 minutes on two cores"]
    fn div_by_count_is_the_division_for_every_f32_significand() {
        use rayon::prelude::*;
        let bad: Vec<usize> = (1..=DIV_BY_COUNT_MAX)
            .into_par_iter()
            .filter(|&c| mismatches(c) > 0)
            .collect();
        assert!(bad.is_empty(), "counts {bad:?}");
    }

    /// Without the correction the quotient is wrong for millions of inputs: the check above
    /// can fail.
    #[test]
    fn the_uncorrected_quotient_is_not_the_division() {
        let (b, inv) = (7.0f64, 1.0 / 7.0);
        let wrong = ((1u32 << 23)..(1u32 << 24))
            .filter(|&m| (m as f64 * inv).to_bits() != (m as f64 / b).to_bits())
            .count();
        assert!(wrong > 100_000, "{wrong}");
    }

    /// The values outside the scaled significands: zeros of both signs, subnormal and extreme
    /// `f32`s, infinities and NaN.
    #[test]
    fn div_by_count_handles_zeros_extremes_infinities_and_nan() {
        let xs = [
            0.0f32,
            -0.0,
            f32::from_bits(1),
            -f32::from_bits(1),
            f32::from_bits(0x007f_ffff),
            f32::MIN_POSITIVE,
            f32::MAX,
            f32::MIN,
            f32::INFINITY,
            f32::NEG_INFINITY,
        ];
        for count in [1usize, 3, 10, 4096] {
            let (b, inv) = (count as f64, 1.0 / count as f64);
            for &x in &xs {
                let (got, want) = (div_by_count(x as f64, b, inv), x as f64 / b);
                assert_eq!(got.to_bits(), want.to_bits(), "{x} / {count}");
            }
            assert!(div_by_count(f64::NAN, b, inv).is_nan());
        }
    }
}
