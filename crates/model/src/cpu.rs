//! Which build of the engine's loops runs: the AVX2 + FMA one, compiled only for x86-64
//! (behind the `byzadam_x86` cfg that `build.rs` sets: `network/x86.rs` and `gemm/x86.rs`)
//! and chosen at run time when the CPU has both features, or the portable one, complete on
//! every architecture.
//!
//! Both builds perform the same operations in the same order (Rust never fuses `a*b+c` into an
//! FMA on its own), so results are bit-identical; only the width of the vectors differs. The
//! same check picks `gemm`'s packed SGEMM and allows evaluation sixteen images abreast
//! (`trunk`). The network's three dispatch points and the two SGEMM micro-kernels are the
//! crate's only `unsafe`.

/// True when the AVX2 + FMA builds are compiled in and the CPU can run them.
pub(crate) fn fast() -> bool {
    #[cfg(byzadam_x86)]
    {
        std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
    }
    #[cfg(not(byzadam_x86))]
    {
        false
    }
}

/// Whether this build and CPU run the engine's x86-64 fast paths (AVX2 + FMA); false on
/// other architectures and with the `portable` feature. Results are the same bits either way.
pub fn fast_paths() -> bool {
    fast()
}
