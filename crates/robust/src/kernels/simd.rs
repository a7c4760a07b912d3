//! Runtime CPU-feature dispatch for the hot loops: the one place this workspace allows
//! `unsafe`.
//!
//! Each kernel is written once as plain, `#[inline(always)]` Rust. Here each gets a twin
//! compiled with AVX2 + FMA enabled, chosen at run time when the CPU has them (integer min/max
//! for the sorting networks needs SSE4.1 at least; the x86-64 baseline has only SSE2), and the
//! generic build everywhere else. Both compute the same operations in the same order, so the
//! results are bit-identical: FMA contraction is never implied by Rust's float semantics.
#![allow(unsafe_code)]

use super::coordinatewise::{chunk_generic, Reduce};
use super::distances::{pair_partials_generic, point_partials_generic};
#[cfg(byzadam_x86)]
use super::rowsum::mix_one;
use super::rowsum::{mix_chunk_generic, weighted_chunk_generic};

/// Whether the CPU has AVX2 and FMA: the condition for every fast path here.
#[cfg(byzadam_x86)]
fn avx2_fma() -> bool {
    std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
}

/// Whether this build and CPU run the AVX2 + FMA kernels: compiled for x86-64 without the
/// `portable` feature (`build.rs`), and the CPU has both. Results are the same bits either way.
pub fn fast_paths() -> bool {
    #[cfg(byzadam_x86)]
    {
        avx2_fma()
    }
    #[cfg(not(byzadam_x86))]
    {
        false
    }
}

macro_rules! dispatch {
    ($(#[$m:meta])* fn $name:ident($($a:ident : $t:ty),* $(,)?) => $generic:path) => {
        $(#[$m])*
        #[allow(clippy::too_many_arguments)]
        pub(crate) fn $name($($a: $t),*) {
            #[cfg(byzadam_x86)]
            {
                if avx2_fma() {
                    #[target_feature(enable = "avx2,fma")]
                    #[allow(clippy::too_many_arguments)]
                    unsafe fn fast($($a: $t),*) {
                        $generic($($a),*)
                    }
                    // SAFETY: the CPU supports AVX2 and FMA, checked just above; `fast` has no
                    // other precondition.
                    unsafe { fast($($a),*) };
                    return;
                }
            }
            // Its own function, not inlined here: unoptimised builds give every inlined
            // kernel its own stack slots (the sorting networks' register arrays come to
            // ~1.3 MB), and the dispatcher would hold the generic twin's frame while calling
            // the fast one, overflowing a rayon worker's 2 MiB stack in a debug build. One
            // call per chunk costs nothing optimised.
            #[inline(never)]
            #[allow(clippy::too_many_arguments)]
            fn generic($($a: $t),*) {
                $generic($($a),*)
            }
            generic($($a),*)
        }
    };
}

dispatch! {
    /// Sorts and reduces one chunk of coordinates (see `coordinatewise`).
    fn coordinatewise_chunk(
        rows: &[f32], n: usize, dim: usize, c0: usize, out: &mut [f32],
        net: &[(u32, u32)], reduce: Reduce, block: &mut [i32],
    ) => chunk_generic
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

dispatch! {
    /// Weighted row sums over one chunk.
    fn weighted_chunk(data: &[f32], dim: usize, rows: &[usize], w: Option<&[f64]>, scale: f64, c0: usize, out: &mut [f32])
        => weighted_chunk_generic
}

/// Nearest-neighbour mixing over one column range of every output row (see
/// [`mix_chunk_generic`]). With AVX2 the sums are the same, in the same order, but written
/// with non-temporal stores: mixing writes `n` whole vectors that nothing reads soon, and
/// streaming them past the cache saves reading each output line before overwriting it (at
/// d = 11 M the mixing pass takes a third of the time it takes with ordinary stores).
pub(crate) fn mix_chunk(
    data: &[f32],
    dim: usize,
    nbrs: &[usize],
    k: usize,
    c0: usize,
    rows: &mut [&mut [f32]],
) {
    #[cfg(byzadam_x86)]
    {
        if avx2_fma() {
            // SAFETY: the CPU supports AVX2 and FMA, checked just above; `mix_avx2` has no
            // other precondition (it checks every index it reads and writes).
            unsafe { mix_avx2(data, dim, nbrs, k, c0, rows) };
            return;
        }
    }
    mix_chunk_generic(data, dim, nbrs, k, c0, rows)
}

/// Coordinates mixed per span: the `n` input spans (30 KiB at n = 15) stay in L1 while every
/// output row is written.
#[cfg(byzadam_x86)]
const MIX_SPAN: usize = 512;

#[cfg(byzadam_x86)]
#[target_feature(enable = "avx2,fma")]
unsafe fn mix_avx2(
    data: &[f32],
    dim: usize,
    nbrs: &[usize],
    k: usize,
    c0: usize,
    rows: &mut [&mut [f32]],
) {
    use std::arch::x86_64::*;
    let width = rows.first().map_or(0, |r| r.len());
    assert!(k >= 1 && nbrs.len() >= rows.len() * k);
    for (i, row) in rows.iter().enumerate() {
        assert_eq!(row.len(), width);
        for &j in &nbrs[i * k..(i + 1) * k] {
            assert!((j + 1) * dim >= j * dim + c0 + width && (j + 1) * dim <= data.len());
        }
    }
    let kf = k as f32;
    let kv = _mm256_set1_ps(kf);
    let base = data.as_ptr();
    let mut s0 = 0;
    while s0 < width {
        let s1 = (s0 + MIX_SPAN).min(width);
        for (i, row) in rows.iter_mut().enumerate() {
            let mine = &nbrs[i * k..(i + 1) * k];
            let out = row.as_mut_ptr();
            // Row i's first aligned coordinate: streaming stores need 32-byte alignment, and
            // each row starts at its own offset (dim need not be a multiple of 8).
            let head = ((32 - (out as usize % 32)) % 32 / 4).min(width);
            // This span, shifted by the row's head so every vector store is aligned.
            let lo = if s0 == 0 { 0 } else { s0 + head };
            let hi = if s1 == width {
                width
            } else {
                (s1 + head).min(width)
            };
            let mut c = lo;
            // Heads and tails go through `out` too (one pointer for every write to the row),
            // computed as the plain kernel computes them.
            while c < hi && c < head {
                *out.add(c) = mix_one(data, dim, mine, c0 + c);
                c += 1;
            }
            while c + 32 <= hi {
                let p0 = base.add(mine[0] * dim + c0 + c);
                let mut a = [
                    _mm256_loadu_ps(p0),
                    _mm256_loadu_ps(p0.add(8)),
                    _mm256_loadu_ps(p0.add(16)),
                    _mm256_loadu_ps(p0.add(24)),
                ];
                for &j in &mine[1..] {
                    let p = base.add(j * dim + c0 + c);
                    for (l, acc) in a.iter_mut().enumerate() {
                        *acc = _mm256_add_ps(*acc, _mm256_loadu_ps(p.add(8 * l)));
                    }
                }
                for (l, acc) in a.iter().enumerate() {
                    _mm256_stream_ps(out.add(c + 8 * l), _mm256_div_ps(*acc, kv));
                }
                c += 32;
            }
            while c + 8 <= hi {
                let mut acc = _mm256_loadu_ps(base.add(mine[0] * dim + c0 + c));
                for &j in &mine[1..] {
                    acc = _mm256_add_ps(acc, _mm256_loadu_ps(base.add(j * dim + c0 + c)));
                }
                _mm256_stream_ps(out.add(c), _mm256_div_ps(acc, kv));
                c += 8;
            }
            while c < hi {
                *out.add(c) = mix_one(data, dim, mine, c0 + c);
                c += 1;
            }
        }
        s0 = s1;
    }
    // Streaming stores are weakly ordered: make them visible before the caller (or another
    // thread, after rayon's join) reads the rows.
    _mm_sfence();
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The dispatched kernel (AVX2 with streaming stores on this machine) equals the plain
    /// one bit for bit, at every alignment of the rows and column range.
    #[test]
    fn mixing_matches_the_generic_kernel_bit_for_bit() {
        let (n, k) = (7, 4);
        for dim in [1, 5, 8, 37, 100, 1030, 1100, 1543] {
            let data: Vec<f32> = (0..n * dim)
                .map(|i| ((i * 7919) % 1000) as f32 * 0.37 - 150.0)
                .collect();
            let nbrs: Vec<usize> = (0..n)
                .flat_map(|i| (0..k).map(move |j| (i + 2 * j) % n))
                .collect();
            for (c0, width) in [
                (0, dim),
                (dim / 3, dim - dim / 3),
                (1.min(dim - 1), dim / 2),
            ] {
                // Unaligned output rows of varying offsets inside one buffer.
                for pad in 0..3 {
                    let stride = width + pad;
                    if stride == 0 {
                        continue;
                    }
                    let mut want = vec![0f32; n * stride + 3];
                    let mut got = vec![0f32; n * stride + 3];
                    {
                        let mut rows: Vec<&mut [f32]> = want[pad..]
                            .chunks_mut(stride)
                            .take(n)
                            .map(|r| &mut r[..width])
                            .collect();
                        mix_chunk_generic(&data, dim, &nbrs, k, c0, &mut rows);
                    }
                    {
                        let mut rows: Vec<&mut [f32]> = got[pad..]
                            .chunks_mut(stride)
                            .take(n)
                            .map(|r| &mut r[..width])
                            .collect();
                        mix_chunk(&data, dim, &nbrs, k, c0, &mut rows);
                    }
                    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                    assert_eq!(
                        bits(&got),
                        bits(&want),
                        "dim {dim} c0 {c0} width {width} pad {pad}"
                    );
                }
            }
        }
    }
}
