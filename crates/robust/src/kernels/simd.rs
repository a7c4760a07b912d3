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
use super::rowsum::{mix_chunk_generic, weighted_chunk_generic};

macro_rules! dispatch {
    ($(#[$m:meta])* fn $name:ident($($a:ident : $t:ty),* $(,)?) => $generic:path) => {
        $(#[$m])*
        #[allow(clippy::too_many_arguments)]
        pub(crate) fn $name($($a: $t),*) {
            #[cfg(target_arch = "x86_64")]
            {
                if std::arch::is_x86_feature_detected!("avx2")
                    && std::arch::is_x86_feature_detected!("fma")
                {
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
            $generic($($a),*)
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

dispatch! {
    /// Nearest-neighbour mixing over one column range of every output row.
    fn mix_chunk(data: &[f32], dim: usize, nbrs: &[usize], k: usize, c0: usize, rows: &mut [&mut [f32]])
        => mix_chunk_generic
}
