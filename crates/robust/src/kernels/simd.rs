//! Runtime CPU-feature dispatch for the hot loops: the CPU check and the `dispatch!` macro
//! that each kernel file uses to build its own twins (the macro holds the `unsafe` call of a
//! `#[target_feature]` function; `mix.rs` holds the only hand-written intrinsics).
//!
//! Each kernel is written once as plain, `#[inline(always)]` Rust. `dispatch!` gives it a twin
//! compiled with AVX2 + FMA enabled, chosen at run time when the CPU has them (integer min/max
//! for the sorting networks needs SSE4.1 at least; the x86-64 baseline has only SSE2), and the
//! generic build everywhere else. Both compute the same operations in the same order, so the
//! results are bit-identical: FMA contraction is never implied by Rust's float semantics.
#![allow(unsafe_code)]

/// Whether the CPU has AVX2 and FMA: the condition for every fast path here.
#[cfg(byzadam_x86)]
pub(crate) fn avx2_fma() -> bool {
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

/// `dispatch! { /// doc\n fn name(args) => plain_kernel }` defines `name`, which runs
/// `plain_kernel` compiled with AVX2 + FMA when the CPU has them, else the plain build.
macro_rules! dispatch {
    ($(#[$m:meta])* fn $name:ident($($a:ident : $t:ty),* $(,)?) => $generic:path) => {
        $(#[$m])*
        #[allow(clippy::too_many_arguments, unsafe_code)]
        pub(crate) fn $name($($a: $t),*) {
            #[cfg(byzadam_x86)]
            {
                if $crate::kernels::simd::avx2_fma() {
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

pub(crate) use dispatch;
