//! Blocked, parallel squared L2 distances: all pairs of rows, or every row to one point.
//!
//! Differences are formed in `f32` (no `‖a‖² + ‖b‖² − 2a·b` cancellation), summed in 16 `f32`
//! lanes over sub-blocks of 256 coordinates whose n rows stay in L1, and the sub-block sums are
//! added in `f64` in a fixed order. An undefined distance (`∞ − ∞`, NaN) is `+∞`.

use super::order::nan_to_inf;
use super::scratch::{with_f64, with_f64_c, with_usize};
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
///
/// Each segment is cut into pieces of [`SUB`] coordinates from its start; a piece's squared
/// distances (every pair `i ≤ j`, its rows in L1) are summed in `f32` lanes ([`sq_dist`]),
/// the pieces' sums added in `f64` in order, and each segment's square root added in order.
/// The pieces run in parallel (each its own partial sums), the additions after them in that
/// fixed order: the same bits with any thread count. `d[j][i]` is `d[i][j]` (`(y − x)²` is
/// `(x − y)²`).
pub(crate) fn segment_sums(s: &Submissions, segments: &[usize], d: &mut [f64]) {
    let (n, dim) = (s.n(), s.dim());
    debug_assert_eq!(d.len(), n * n);
    if n == 0 {
        return;
    }
    let whole = [dim];
    let segments = if segments.is_empty() {
        &whole[..]
    } else {
        segments
    };
    let rows = s.as_flat();
    let np = n * (n + 1) / 2;
    let pieces: usize = segments.iter().map(|len| len.div_ceil(SUB)).sum();
    with_usize(2 * pieces, |bounds| {
        let mut k = 0;
        let mut at = 0;
        for &len in segments {
            let mut s0 = at;
            while s0 < at + len {
                let s1 = (s0 + SUB).min(at + len);
                bounds[2 * k] = s0;
                bounds[2 * k + 1] = s1;
                k += 1;
                s0 = s1;
            }
            at += len;
        }
        with_f64_c(pieces * np + 2 * np, |buf| {
            let (partials, rest) = buf.split_at_mut(pieces * np);
            let (sq, total) = rest.split_at_mut(np);
            let per_task = CHUNK / SUB;
            partials
                .par_chunks_mut(np * per_task)
                .enumerate()
                .for_each(|(t, part)| {
                    for (k, p) in part.chunks_mut(np).enumerate() {
                        let piece = t * per_task + k;
                        let (s0, s1) = (bounds[2 * piece], bounds[2 * piece + 1]);
                        segment_piece(rows, n, dim, s0, s1, p);
                    }
                });
            total.fill(0.0);
            let mut piece = 0;
            for &len in segments {
                sq.fill(0.0);
                for _ in 0..len.div_ceil(SUB) {
                    for (q, &v) in sq.iter_mut().zip(&partials[piece * np..(piece + 1) * np]) {
                        *q += v;
                    }
                    piece += 1;
                }
                for (t, q) in total.iter_mut().zip(sq.iter()) {
                    *t += q.sqrt();
                }
            }
            let mut p = 0;
            for i in 0..n {
                for j in i..n {
                    d[i * n + j] = total[p];
                    d[j * n + i] = total[p];
                    p += 1;
                }
            }
        })
    });
}

/// The squared distances of one piece `[s0, s1)` of every pair `i ≤ j` of rows, in row-major
/// pair order (the diagonal included).
#[inline(always)]
fn segment_piece_generic(
    rows: &[f32],
    n: usize,
    dim: usize,
    s0: usize,
    s1: usize,
    out: &mut [f64],
) {
    let mut p = 0;
    for i in 0..n {
        let a = &rows[i * dim + s0..i * dim + s1];
        for j in i..n {
            let b = &rows[j * dim + s0..j * dim + s1];
            out[p] = sq_dist(a, b) as f64;
            p += 1;
        }
    }
}

dispatch! {
    /// [`segment_piece_generic`], vectorised where the CPU allows (the same bits).
    fn segment_piece(rows: &[f32], n: usize, dim: usize, s0: usize, s1: usize, out: &mut [f64])
        => segment_piece_generic
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

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    /// The definition, one pair at a time (every ordered pair, the diagonal too): per segment,
    /// pieces of `SUB` from its start summed with `sq_dist` into `f64`, the segments' square
    /// roots added in order.
    fn segment_sums_twin(rows: &[Vec<f32>], segments: &[usize]) -> Vec<f64> {
        let n = rows.len();
        let whole = [rows[0].len()];
        let segments = if segments.is_empty() {
            &whole[..]
        } else {
            segments
        };
        let mut d = vec![0f64; n * n];
        for i in 0..n {
            for j in 0..n {
                let (a, b) = (&rows[i], &rows[j]);
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
                d[i * n + j] = total;
            }
        }
        d
    }

    /// Any NaN as one, other values by their bits.
    fn canonical(v: &[f64]) -> Vec<u64> {
        v.iter()
            .map(|x| {
                if x.is_nan() {
                    f64::NAN.to_bits()
                } else {
                    x.to_bits()
                }
            })
            .collect()
    }

    /// Several row counts and segmentations (pieces cut at segment ends and at `SUB`, more
    /// pieces than one parallel task holds), rows with NaN and infinities, at every CPU level
    /// and with one and two threads: the definition's values, NaN where it has NaN.
    #[test]
    fn segment_sums_equal_their_definition_at_every_cpu_level_and_thread_count() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        let dim = 9000;
        let cases: Vec<(usize, Vec<usize>)> = vec![
            (1, vec![]),
            (2, vec![dim]),
            (5, vec![1, 255, 256, 257, 600, dim - 1369]),
            (15, vec![500, 20, 8000, 480]),
            (17, vec![]),
        ];
        for (n, segments) in cases {
            let mut rows: Vec<Vec<f32>> = (0..n)
                .map(|_| (0..dim).map(|_| rng.gen_range(-2.0f32..2.0)).collect())
                .collect();
            if n > 2 {
                rows[1][10] = f32::INFINITY;
                rows[2][5000] = f32::NAN;
            }
            let s = Submissions::from_rows(&rows).unwrap();
            let want = canonical(&segment_sums_twin(&rows, &segments));
            for level in byzadam_cpu::supported() {
                for threads in [1, 2] {
                    let got = rayon::ThreadPoolBuilder::new()
                        .num_threads(threads)
                        .build()
                        .unwrap()
                        .install(|| {
                            byzadam_cpu::scoped(level, || {
                                let mut d = vec![0f64; n * n];
                                segment_sums(&s, &segments, &mut d);
                                d
                            })
                            .unwrap()
                        });
                    assert_eq!(
                        canonical(&got),
                        want,
                        "n {n}, segments {segments:?}, {level}, {threads} thread(s)"
                    );
                }
            }
        }
    }
}
