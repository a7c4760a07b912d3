//! The engine of the coordinate-wise rules: sort every coordinate's `n` values (lane-wise
//! sorting network on total-order keys), then reduce each sorted column.

use super::order::unkey;
use super::scratch::with_i32;
use super::sortnet::{load_block, network, sort_block, LANES};
use super::{simd, CHUNK};
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
            simd::coordinatewise_chunk(
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
                simd::coordinatewise_chunk(rows, n, dim, c * CHUNK, o, &net, reduce, block)
            });
        }
    });
}

/// One chunk: blocks of `LANES` coordinates loaded, sorted and reduced.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub(crate) fn chunk_generic(
    rows: &[f32],
    n: usize,
    dim: usize,
    c0: usize,
    out: &mut [f32],
    net: &[(u32, u32)],
    reduce: Reduce,
    block: &mut [i32],
) {
    let mut b0 = 0;
    while b0 < out.len() {
        let width = LANES.min(out.len() - b0);
        load_block(rows, n, dim, c0 + b0, width, block);
        sort_block(block, net);
        let o = &mut out[b0..b0 + width];
        match reduce {
            Reduce::Window { lo, hi } => window_mean(block, lo, hi, o),
            Reduce::Median => median(block, n, o),
            Reduce::AroundMedian { keep } => around_median(block, n, keep, o),
        }
        b0 += width;
    }
}

#[inline(always)]
fn window_mean(block: &[i32], lo: usize, hi: usize, out: &mut [f32]) {
    // −0.0 is the identity of addition (+0.0 is not: −0 + +0 = +0), so a column of −0.0
    // averages to −0.0, like every other value repeated.
    let mut acc = [-0.0f64; LANES];
    for r in lo..hi {
        let row = &block[r * LANES..r * LANES + LANES];
        for l in 0..LANES {
            acc[l] += unkey(row[l]) as f64;
        }
    }
    let k = (hi - lo) as f64;
    for (o, a) in out.iter_mut().zip(acc) {
        *o = (a / k) as f32;
    }
}

#[inline(always)]
fn median_lanes(block: &[i32], n: usize, med: &mut [f64; LANES]) {
    let hi = &block[(n / 2) * LANES..(n / 2) * LANES + LANES];
    if n % 2 == 1 {
        for l in 0..LANES {
            med[l] = unkey(hi[l]) as f64;
        }
    } else {
        let lo = &block[(n / 2 - 1) * LANES..(n / 2 - 1) * LANES + LANES];
        for l in 0..LANES {
            med[l] = 0.5 * (unkey(lo[l]) as f64 + unkey(hi[l]) as f64);
        }
    }
}

#[inline(always)]
fn median(block: &[i32], n: usize, out: &mut [f32]) {
    let mut med = [0f64; LANES];
    median_lanes(block, n, &mut med);
    for (o, m) in out.iter_mut().zip(med) {
        *o = m as f32;
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

/// A row of the block as a fixed-size array (lets the compiler drop bounds checks).
#[inline(always)]
fn row(block: &[i32], r: usize) -> &[i32; LANES] {
    block[r * LANES..r * LANES + LANES]
        .try_into()
        .expect("LANES wide")
}

#[inline(always)]
fn around_median(block: &mut [i32], n: usize, keep: usize, out: &mut [f32]) {
    // Map the sorted keys back to f32 bit patterns in place, once: every rank is read several
    // times below. The window choice compares distances to the median in f32, the inputs' own
    // precision (as ByzFL and NumPy do on float32 input); the chosen values are summed in f64.
    // Every loop runs over whole rows of lanes with masks and blends, so it vectorises.
    for k in block.iter_mut() {
        *k = unkey(*k).to_bits() as i32;
    }
    let block = &*block;
    let val = |bits: i32| f32::from_bits(bits as u32);
    let f = n - keep;
    let mut med = [0f32; LANES];
    {
        let hi = row(block, n / 2);
        if n % 2 == 1 {
            for l in 0..LANES {
                med[l] = val(hi[l]);
            }
        } else {
            let lo = row(block, n / 2 - 1);
            for l in 0..LANES {
                med[l] = (0.5 * (val(lo[l]) as f64 + val(hi[l]) as f64)) as f32;
            }
        }
    }
    let mut best = [f32::INFINITY; LANES];
    let mut start = [0i32; LANES];
    for i in 0..=f {
        let (first, last) = (row(block, i), row(block, i + keep - 1));
        for l in 0..LANES {
            let below = nan_inf32(med[l] - val(first[l]));
            let above = nan_inf32(val(last[l]) - med[l]);
            let worst = if below > above { below } else { above };
            // Strictly smaller: among equally good windows the lowest wins. If every window is
            // infinitely far, window 0 (already in `start`) is as good as any.
            let better = worst < best[l];
            best[l] = if better { worst } else { best[l] };
            start[l] = if better { i as i32 } else { start[l] };
        }
    }
    // Ranks f..keep are in every window; below f a rank is in iff it is ≥ the start, from keep
    // on iff it is < start + keep. Masked-out ranks add −0.0, the identity.
    let neg_zero = (-0.0f32).to_bits() as i32;
    let mut acc = [-0.0f64; LANES];
    for r in 0..f {
        let (x, r32) = (row(block, r), r as i32);
        for l in 0..LANES {
            acc[l] += val(if r32 >= start[l] { x[l] } else { neg_zero }) as f64;
        }
    }
    for r in f..keep {
        let x = row(block, r);
        for l in 0..LANES {
            acc[l] += val(x[l]) as f64;
        }
    }
    let mut end = [0i32; LANES];
    for l in 0..LANES {
        end[l] = start[l] + keep as i32;
    }
    for r in keep..n {
        let (x, r32) = (row(block, r), r as i32);
        for l in 0..LANES {
            acc[l] += val(if r32 < end[l] { x[l] } else { neg_zero }) as f64;
        }
    }
    let k = keep as f64;
    for (o, a) in out.iter_mut().zip(acc) {
        *o = (a / k) as f32;
    }
}
