//! The engine of the coordinate-wise rules: sort every coordinate's `n` values (lane-wise
//! sorting network on total-order keys), then reduce each sorted column.

use super::order::key;
use super::order::unkey;
use super::scratch::with_i32;
use super::simd::dispatch;
use super::sortnet::{load_block, network, sort_block, sort_group, GROUP, GROUP_WIDE, LANES};
use super::CHUNK;
use crate::Submissions;
use rayon::prelude::*;
use std::collections::HashMap;
use std::sync::{Arc, OnceLock, RwLock};

/// What to compute from one coordinate's sorted values `s_0 ≤ … ≤ s_{n−1}`.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Reduce {
    /// Mean of `s_lo … s_{hi−1}`.
    Window {
        /// First kept rank.
        lo: usize,
        /// One past the last kept rank.
        hi: usize,
    },
    /// `s_{(n−1)/2}` for odd `n`; the mean of the two middle values for even `n`.
    Median,
    /// Mean of the `keep` values closest to the median (a contiguous window of ranks; among
    /// windows with the same largest distance to the median, the lowest one).
    AroundMedian {
        /// How many values to average.
        keep: usize,
    },
}

/// A shared sorting network.
type Network = Arc<[(u32, u32)]>;

/// Cached sorting networks, one per `n` (built once, then shared without allocating).
fn cached_network(n: usize) -> Network {
    static NETS: OnceLock<RwLock<HashMap<usize, Network>>> = OnceLock::new();
    let nets = NETS.get_or_init(Default::default);
    if let Some(net) = nets.read().unwrap_or_else(|e| e.into_inner()).get(&n) {
        return net.clone();
    }
    let net: Network = network(n).into();
    nets.write()
        .unwrap_or_else(|e| e.into_inner())
        .entry(n)
        .or_insert(net)
        .clone()
}

/// Up to this many rows, a block lives on the stack (16 KiB).
const STACK_ROWS: usize = 64;

/// Applies `reduce` to every coordinate of `s`, writing `out` (length `dim`).
pub(crate) fn coordinatewise(s: &Submissions, reduce: Reduce, out: &mut [f32]) {
    let (n, dim) = (s.n(), s.dim());
    let net = cached_network(n);
    let rows = s.as_flat();
    out.par_chunks_mut(CHUNK).enumerate().for_each(|(c, o)| {
        if n <= STACK_ROWS {
            // On the stack: no first-use allocation on whichever worker thread runs this.
            let mut block = [0i32; STACK_ROWS * LANES];
            coordinatewise_chunk(
                rows,
                n,
                dim,
                c * CHUNK,
                o,
                &net,
                reduce,
                &mut block[..n * LANES],
            );
        } else {
            with_i32(n * LANES, |block| {
                coordinatewise_chunk(rows, n, dim, c * CHUNK, o, &net, reduce, block)
            });
        }
    });
}

/// One chunk: blocks of `LANES` coordinates loaded, sorted and reduced.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub(crate) fn chunk_generic<const G: usize>(
    rows: &[f32],
    n: usize,
    dim: usize,
    c0: usize,
    out: &mut [f32],
    net: &[(u32, u32)],
    reduce: Reduce,
    block: &mut [i32],
) {
    // Up to 16 rows, whole groups of coordinates are sorted in registers; the rest (more
    // rows, or the chunk's last few coordinates) in blocks in L1.
    let mut b0 = match n {
        2 => chunk_registers::<2, G>(rows, dim, c0, out, reduce),
        3 => chunk_registers::<3, G>(rows, dim, c0, out, reduce),
        4 => chunk_registers::<4, G>(rows, dim, c0, out, reduce),
        5 => chunk_registers::<5, G>(rows, dim, c0, out, reduce),
        6 => chunk_registers::<6, G>(rows, dim, c0, out, reduce),
        7 => chunk_registers::<7, G>(rows, dim, c0, out, reduce),
        8 => chunk_registers::<8, G>(rows, dim, c0, out, reduce),
        9 => chunk_registers::<9, G>(rows, dim, c0, out, reduce),
        10 => chunk_registers::<10, G>(rows, dim, c0, out, reduce),
        11 => chunk_registers::<11, G>(rows, dim, c0, out, reduce),
        12 => chunk_registers::<12, G>(rows, dim, c0, out, reduce),
        13 => chunk_registers::<13, G>(rows, dim, c0, out, reduce),
        14 => chunk_registers::<14, G>(rows, dim, c0, out, reduce),
        15 => chunk_registers::<15, G>(rows, dim, c0, out, reduce),
        16 => chunk_registers::<16, G>(rows, dim, c0, out, reduce),
        _ => 0,
    };
    while b0 < out.len() {
        let width = LANES.min(out.len() - b0);
        load_block(rows, n, dim, c0 + b0, width, block);
        sort_block(block, net);
        let sorted = &block.as_chunks::<LANES>().0[..n];
        for (g, o) in out[b0..b0 + width].chunks_mut(G).enumerate() {
            let mut reduced = [0f32; G];
            reduce_group(n, &BlockRanks { rows: sorted, g }, reduce, &mut reduced);
            o.copy_from_slice(&reduced[..o.len()]);
        }
        b0 += width;
    }
}

/// The whole groups of `G` coordinates of one chunk, `N` rows each, sorted in registers
/// and reduced; returns how many coordinates it wrote (the rest are left to the block path).
/// The same comparators and the same reductions, in the same order, as the block path: the
/// results are bit-identical.
#[inline(always)]
fn chunk_registers<const N: usize, const G: usize>(
    rows: &[f32],
    dim: usize,
    c0: usize,
    out: &mut [f32],
    reduce: Reduce,
) -> usize {
    let whole = out.len() - out.len() % G;
    let (groups, _) = out[..whole].as_chunks_mut::<G>();
    for (g, o) in groups.iter_mut().enumerate() {
        let c = c0 + g * G;
        let mut v = [[0i32; G]; N];
        for (r, keys) in v.iter_mut().enumerate() {
            let x: &[f32; G] = rows[r * dim + c..r * dim + c + G]
                .try_into()
                .expect("a whole group");
            for l in 0..G {
                keys[l] = key(x[l]);
            }
        }
        sort_group(&mut v);
        // The sorted keys copied to a separate array: the reductions index ranks at run time,
        // which keeps this array (not `v`, sorted in registers) in memory. Each rank is mapped
        // back to values where it is read (a loop converting every row here was vectorised
        // across the rows, with gathers and scatters).
        let sorted = v;
        reduce_group(N, &RegisterRanks(&sorted), reduce, o);
    }
    whole
}

/// A group's sorted values by rank: `rank(r)` is rank `r` (`0 ≤ r < n`) of every lane. A
/// trait with an always-inlined method rather than a closure: LLVM declined to inline the
/// closure into the mean around median's loops (a call per rank, its registers spilled).
trait Ranks<const G: usize> {
    fn rank(&self, r: usize) -> [f32; G];
}

/// The register path's sorted keys (`N` rows of `G` lanes).
struct RegisterRanks<'a, const N: usize, const G: usize>(&'a [[i32; G]; N]);

impl<const N: usize, const G: usize> Ranks<G> for RegisterRanks<'_, N, G> {
    #[inline(always)]
    fn rank(&self, r: usize) -> [f32; G] {
        row_values(&self.0[r])
    }
}

/// Group `g` of the block path's sorted rows.
struct BlockRanks<'a> {
    rows: &'a [[i32; LANES]],
    g: usize,
}

impl<const G: usize> Ranks<G> for BlockRanks<'_> {
    #[inline(always)]
    fn rank(&self, r: usize) -> [f32; G] {
        values(self.rows, r, self.g)
    }
}

/// Applies `reduce` to one group of `G` coordinates whose sorted values `rank(r)` gives
/// (rank `r`, `0 ≤ r < n`, of every lane): the one implementation of each reduction, used by
/// the register path and the block path alike.
#[inline(always)]
fn reduce_group<const G: usize>(
    n: usize,
    ranks: &impl Ranks<G>,
    reduce: Reduce,
    out: &mut [f32; G],
) {
    match reduce {
        Reduce::Window { lo, hi } => {
            // −0.0 is the identity of addition (+0.0 is not: −0 + +0 = +0), so a column of
            // −0.0 averages to −0.0, like every other value repeated.
            let mut acc = [-0.0f64; G];
            for r in lo..hi {
                let x = ranks.rank(r);
                for l in 0..G {
                    acc[l] += x[l] as f64;
                }
            }
            let k = (hi - lo) as f64;
            for l in 0..G {
                out[l] = (acc[l] / k) as f32;
            }
        }
        Reduce::Median => {
            let hi = ranks.rank(n / 2);
            if n % 2 == 1 {
                *out = hi;
            } else {
                let lo = ranks.rank(n / 2 - 1);
                for l in 0..G {
                    out[l] = (0.5 * (lo[l] as f64 + hi[l] as f64)) as f32;
                }
            }
        }
        Reduce::AroundMedian { keep } => around_median_group(n, ranks, keep, out),
    }
}

/// Mean around median for one group of `G` coordinates: `ranks.rank(r)` gives rank `r`
/// (`0 ≤ r < n`) of every lane's sorted values. The `keep` values closest to the median are a
/// window of ranks; the window choice compares distances to the median in f32, the inputs' own
/// precision (as ByzFL and NumPy do on float32 input), and the chosen values are summed in
/// f64, in rank order. Every loop is branch-free over the lanes (masks and blends), so it
/// vectorises.
#[inline(always)]
fn around_median_group<const G: usize>(
    n: usize,
    ranks: &impl Ranks<G>,
    keep: usize,
    out: &mut [f32; G],
) {
    let f = n - keep;
    let mut med = [0f32; G];
    if n % 2 == 1 {
        med = ranks.rank(n / 2);
    } else {
        let (lo, hi) = (ranks.rank(n / 2 - 1), ranks.rank(n / 2));
        for l in 0..G {
            med[l] = (0.5 * (lo[l] as f64 + hi[l] as f64)) as f32;
        }
    }
    // Every lane operation below is on 32-bit lanes (selects as bit masks, no `&&` or
    // branches), so the compiler keeps each step one vector instruction.
    let mut best = [f32::INFINITY; G];
    let mut start = [0i32; G];
    for i in 0..=f {
        let (first, last) = (ranks.rank(i), ranks.rank(i + keep - 1));
        for l in 0..G {
            let below = nan_inf32(med[l] - first[l]);
            let above = nan_inf32(last[l] - med[l]);
            let worst = if below > above { below } else { above };
            // Strictly smaller: among equally good windows the lowest wins. If every window
            // is infinitely far, window 0 (already in `start`) is as good as any.
            let better = worst < best[l];
            let m = (better as i32).wrapping_neg();
            best[l] = if better { worst } else { best[l] };
            start[l] = (i as i32 & m) | (start[l] & !m);
        }
    }
    // A rank is in the window iff 0 ≤ rank − start < keep (one unsigned comparison); ranks
    // f..keep (if any) are in every window. Masked-out ranks add −0.0, the identity, so the
    // sum runs over the window in rank order.
    let neg_zero = (-0.0f32).to_bits();
    let mut acc = [-0.0f64; G];
    for r in 0..n {
        let xr = ranks.rank(r);
        if f <= r && r < keep {
            for l in 0..G {
                acc[l] += xr[l] as f64;
            }
        } else {
            let mut kept = [0f32; G];
            for l in 0..G {
                let inside = ((r as i32).wrapping_sub(start[l]) as u32) < keep as u32;
                let m = (inside as u32).wrapping_neg();
                kept[l] = f32::from_bits((xr[l].to_bits() & m) | (neg_zero & !m));
            }
            for l in 0..G {
                acc[l] += kept[l] as f64;
            }
        }
    }
    let k = keep as f64;
    for l in 0..G {
        out[l] = (acc[l] / k) as f32;
    }
}

#[inline(always)]
fn nan_inf32(d: f32) -> f32 {
    if d.is_nan() {
        f32::INFINITY
    } else {
        d
    }
}

/// One row of keys mapped back to values.
#[inline(always)]
fn row_values<const G: usize>(keys: &[i32; G]) -> [f32; G] {
    let mut v = [0f32; G];
    for l in 0..G {
        v[l] = unkey(keys[l]);
    }
    v
}

/// `G` lanes (group `g`) of row `r` of a sorted block, mapped back from keys to values.
#[inline(always)]
fn values<const G: usize>(rows: &[[i32; LANES]], r: usize, g: usize) -> [f32; G] {
    row_values(&rows[r].as_chunks::<G>().0[g])
}

dispatch! {
    /// Sorts and reduces one chunk of coordinates (see [`chunk_generic`]): one vector register
    /// per row, 16 coordinates wide at the AVX-512 level, 8 otherwise (the same bits).
    fn coordinatewise_chunk(
        rows: &[f32], n: usize, dim: usize, c0: usize, out: &mut [f32],
        net: &[(u32, u32)], reduce: Reduce, block: &mut [i32],
    ) => chunk_generic::<GROUP>, avx512: chunk_generic::<GROUP_WIDE>
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    /// The definition, one coordinate at a time: sort (total order), take the median, and of
    /// the windows of `keep` consecutive ranks the first whose farthest value is nearest the
    /// median (NaN distances read as +∞); average it in f64, in rank order.
    fn around_median_twin(column: &[f32], keep: usize) -> f32 {
        let mut s = column.to_vec();
        s.sort_by(f32::total_cmp);
        let n = s.len();
        let med = if n % 2 == 1 {
            s[n / 2]
        } else {
            (0.5 * (s[n / 2 - 1] as f64 + s[n / 2] as f64)) as f32
        };
        let inf = |d: f32| if d.is_nan() { f32::INFINITY } else { d };
        let mut best = (f32::INFINITY, 0);
        for i in 0..=n - keep {
            let worst = inf(med - s[i]).max(inf(s[i + keep - 1] - med));
            if worst < best.0 {
                best = (worst, i);
            }
        }
        let sum = s[best.1..best.1 + keep]
            .iter()
            .fold(-0.0f64, |a, &v| a + v as f64);
        (sum / keep as f64) as f32
    }

    /// The definition of the window and median reductions, one coordinate at a time: sort
    /// (total order), then average ranks `lo..hi` in f64 in rank order, or take the median.
    fn reduce_twin(column: &[f32], reduce: Reduce) -> f32 {
        let mut s = column.to_vec();
        s.sort_by(f32::total_cmp);
        let n = s.len();
        match reduce {
            Reduce::Window { lo, hi } => {
                let sum = s[lo..hi].iter().fold(-0.0f64, |a, &v| a + v as f64);
                (sum / (hi - lo) as f64) as f32
            }
            Reduce::Median if n % 2 == 1 => s[n / 2],
            Reduce::Median => (0.5 * (s[n / 2 - 1] as f64 + s[n / 2] as f64)) as f32,
            Reduce::AroundMedian { keep } => around_median_twin(column, keep),
        }
    }

    /// The bits of `x`, every NaN as one.
    fn canonical(x: f32) -> u32 {
        if x.is_nan() {
            f32::NAN.to_bits()
        } else {
            x.to_bits()
        }
    }

    /// Every reduction for every n up to 20 (the register path's sixteen row counts and the
    /// block path past them), at every CPU level this machine has: the AVX-512 build sorts
    /// 16 coordinates per register and the others 8, and 45 coordinates give both builds
    /// whole groups and a tail for the block path. Each result equals the definition's bits,
    /// NaN aside: a NaN's sign and payload depend on the operand order the compiler picks for
    /// `+` (Rust leaves them unspecified), so any NaN matches any NaN.
    #[test]
    fn every_reduction_equals_its_definition_at_every_cpu_level_and_row_count() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
        let dim = 45;
        for n in 1..=20usize {
            let rows: Vec<Vec<f32>> = (0..n)
                .map(|_| {
                    (0..dim)
                        .map(|_| match rng.gen_range(0..20) {
                            0 => f32::NAN,
                            1 => f32::INFINITY,
                            2 => f32::NEG_INFINITY,
                            3 => -0.0,
                            4 => 1.0e-40,
                            _ => rng.gen_range(-4.0f32..4.0),
                        })
                        .collect()
                })
                .collect();
            let s = Submissions::from_rows(&rows).unwrap();
            let mut reductions = vec![
                Reduce::Median,
                Reduce::AroundMedian {
                    keep: n.div_ceil(2),
                },
            ];
            for lo in 0..n {
                reductions.push(Reduce::Window {
                    lo,
                    hi: n - lo.min(n - lo - 1),
                });
                reductions.push(Reduce::Window { lo, hi: lo + 1 });
            }
            for reduce in reductions {
                let want: Vec<u32> = (0..dim)
                    .map(|c| {
                        let column: Vec<f32> = rows.iter().map(|r| r[c]).collect();
                        canonical(reduce_twin(&column, reduce))
                    })
                    .collect();
                for level in byzadam_cpu::supported() {
                    let got = byzadam_cpu::scoped(level, || {
                        let mut out = vec![0f32; dim];
                        coordinatewise(&s, reduce, &mut out);
                        out
                    })
                    .unwrap();
                    let got: Vec<u32> = got.iter().map(|&x| canonical(x)).collect();
                    assert_eq!(got, want, "n {n}, {reduce:?}, at {level}");
                }
            }
        }
    }

    /// Every `keep` from 1 to n, including `keep < n − keep` (Bulyan keeps β = θ − 2f of θ,
    /// fewer than it drops when θ < 6f), on both paths: rows sorted in registers (n ≤ 16,
    /// whole groups of 8 coordinates) and in blocks (more rows, the last coordinates).
    #[test]
    fn mean_around_median_kernel_equals_its_definition_for_every_window_size() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        let pick = [
            -2.0,
            -1.0,
            0.0,
            0.5,
            1.0,
            3.0,
            f32::INFINITY,
            f32::NEG_INFINITY,
        ];
        for n in 1..=20 {
            for keep in 1..=n {
                let dim = 21;
                let rows: Vec<Vec<f32>> = (0..n)
                    .map(|_| {
                        (0..dim)
                            .map(|_| {
                                if rng.gen_bool(0.5) {
                                    pick[rng.gen_range(0..pick.len())]
                                } else {
                                    rng.gen_range(-4.0f32..4.0)
                                }
                            })
                            .collect()
                    })
                    .collect();
                let s = Submissions::from_rows(&rows).unwrap();
                let mut out = vec![0f32; dim];
                coordinatewise(&s, Reduce::AroundMedian { keep }, &mut out);
                for (c, &o) in out.iter().enumerate() {
                    let column: Vec<f32> = rows.iter().map(|r| r[c]).collect();
                    let want = around_median_twin(&column, keep);
                    assert_eq!(
                        o.to_bits(),
                        want.to_bits(),
                        "n {n} keep {keep} coordinate {c}: {o} vs {want} from {column:?}"
                    );
                }
            }
        }
    }
}
