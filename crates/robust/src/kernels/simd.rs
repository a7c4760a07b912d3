//! Runtime CPU-feature dispatch for the hot loops: the CPU check and the `dispatch!` macro
//! that each kernel file uses to build its own twins (the macro holds the `unsafe` call of a
//! `#[target_feature]` function; `mix.rs` holds the only hand-written intrinsics).
//!
//! Each kernel is written once as plain, `#[inline(always)]` Rust. `dispatch!` gives it two
//! twins, compiled with AVX-512 (F, BW, VL) and with AVX2 + FMA enabled, chosen at run time by
//! the level (`byzadam_cpu`: the CPU's features, lowered by `BYZADAM_CPU`) (integer min/max
//! for the sorting networks needs SSE4.1 at least; the x86-64 baseline has only SSE2), and the
//! generic build everywhere else. All three compute the same operations in the same order, so the
//! results are bit-identical: FMA contraction is never implied by Rust's float semantics.
#![allow(unsafe_code)]

/// The level the kernels run at on this thread ([`byzadam_cpu::level`]; always portable
/// in a build without the x86-64 fast paths).
pub(crate) fn level() -> byzadam_cpu::Level {
    #[cfg(byzadam_x86)]
    {
        byzadam_cpu::level()
    }
    #[cfg(not(byzadam_x86))]
    {
        byzadam_cpu::Level::Portable
    }
}

/// Whether the CPU has AVX2 and FMA and the level allows them (AVX-512 included): the
/// condition for the hand-written AVX2 intrinsics of `mix.rs`.
#[cfg(byzadam_x86)]
pub(crate) fn avx2_fma() -> bool {
    level() >= byzadam_cpu::Level::Avx2
}

/// Whether this build and CPU run the x86-64 vector kernels (AVX2 + FMA, or AVX-512): compiled
/// for x86-64 without the `portable` feature (`build.rs`), the CPU has them, and
/// `BYZADAM_CPU` does not ask for `portable`. Results are the same bits either way.
pub fn fast_paths() -> bool {
    level() > byzadam_cpu::Level::Portable
}

/// `dispatch! { /// doc\n fn name(args) => plain_kernel }` defines `name`, which runs
/// `plain_kernel` compiled with AVX-512 (F, BW, VL) or with AVX2 + FMA when the level
/// ([`level`]) allows them, else the plain build.
///
/// `=> plain_kernel, avx512: wide_kernel` compiles `wide_kernel` for the AVX-512 level instead
/// (a kernel written for wider vectors, computing the same bits), and `=> plain_kernel,
/// avx512: wide_kernel, avx2: fast_kernel` `fast_kernel` for the AVX2 level (e.g. one that
/// needs FMA, which the plain build would call as a library function).
macro_rules! dispatch {
    ($(#[$m:meta])* fn $name:ident($($a:ident : $t:ty),* $(,)?) => $generic:path) => {
        $crate::kernels::simd::dispatch! {
            $(#[$m])* fn $name($($a: $t),*) => $generic, avx512: $generic, avx2: $generic
        }
    };
    ($(#[$m:meta])* fn $name:ident($($a:ident : $t:ty),* $(,)?) => $generic:path, avx512: $wide:path) => {
        $crate::kernels::simd::dispatch! {
            $(#[$m])* fn $name($($a: $t),*) => $generic, avx512: $wide, avx2: $generic
        }
    };
    ($(#[$m:meta])* fn $name:ident($($a:ident : $t:ty),* $(,)?) => $generic:path, avx512: $wide:path, avx2: $fast:path) => {
        $(#[$m])*
        #[allow(clippy::too_many_arguments, unsafe_code)]
        pub(crate) fn $name($($a: $t),*) {
            #[cfg(byzadam_x86)]
            {
                match $crate::kernels::simd::level() {
                    byzadam_cpu::Level::Avx512 => {
                        #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma")]
                        #[allow(clippy::too_many_arguments)]
                        unsafe fn wide($($a: $t),*) {
                            $wide($($a),*)
                        }
                        // SAFETY: the level is AVX-512 only when the CPU has AVX-512 F, BW
                        // and VL, AVX2 and FMA (`byzadam_cpu::check`); `wide` has no other
                        // precondition.
                        unsafe { wide($($a),*) };
                        return;
                    }
                    byzadam_cpu::Level::Avx2 => {
                        #[target_feature(enable = "avx2,fma")]
                        #[allow(clippy::too_many_arguments)]
                        unsafe fn fast($($a: $t),*) {
                            $fast($($a),*)
                        }
                        // SAFETY: the level is AVX2 only when the CPU has AVX2 and FMA; `fast`
                        // has no other precondition.
                        unsafe { fast($($a),*) };
                        return;
                    }
                    byzadam_cpu::Level::Portable => {}
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
