//! Which build of the engine's loops runs: the AVX2 + FMA one, compiled only for x86-64
//! (`cpu/x86.rs`, behind the `byzadam_x86` cfg that `build.rs` sets) and chosen at run time when
//! the CPU has both features, or the portable one, complete on every architecture.
//!
//! Both builds perform the same operations in the same order (Rust never fuses `a*b+c` into an
//! FMA on its own), so results are bit-identical; only the width of the vectors differs. The
//! same check picks `gemm`'s packed SGEMM and allows evaluation sixteen images abreast
//! (`lanes`). The three dispatchers here and the two SGEMM micro-kernels (`gemm/x86.rs`) are
//! the crate's only `unsafe`.

use crate::lanes::{self, Lanes};
use crate::network::{Network, Shape};
use rand::RngCore;

#[cfg(byzadam_x86)]
mod x86;

/// True when the AVX2 + FMA builds are compiled in and the CPU can run them.
pub(crate) fn fast() -> bool {
    #[cfg(byzadam_x86)]
    {
        x86::available()
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

/// [`Network::forward_impl`], in the AVX2 build when [`fast`].
pub(crate) fn forward(
    net: &mut Network,
    params: &[f32],
    state: &mut [f32],
    batch: usize,
    train: bool,
    rng: &mut dyn RngCore,
    from: usize,
) {
    #[cfg(byzadam_x86)]
    if fast() {
        // SAFETY: `fast` checked that the CPU has AVX2 and FMA.
        #[allow(unsafe_code)]
        unsafe {
            x86::forward(net, params, state, batch, train, rng, from)
        };
        return;
    }
    net.forward_impl(params, state, batch, train, rng, from)
}

/// [`Network::backward_impl`], in the AVX2 build when [`fast`].
pub(crate) fn backward(
    net: &mut Network,
    params: &[f32],
    batch: usize,
    grad: &mut [f32],
    g: &mut Vec<f32>,
    g2: &mut Vec<f32>,
) {
    #[cfg(byzadam_x86)]
    if fast() {
        // SAFETY: `fast` checked that the CPU has AVX2 and FMA.
        #[allow(unsafe_code)]
        unsafe {
            x86::backward(net, params, batch, grad, g, g2)
        };
        return;
    }
    net.backward_impl(params, batch, grad, g, g2)
}

/// [`lanes::run_chunks`], in the AVX2 build when [`fast`].
#[allow(clippy::too_many_arguments)]
pub(crate) fn eval_chunks(
    lanes: &Lanes,
    s: &mut lanes::Scratch,
    params: &[f32],
    state: &[f32],
    input: Shape,
    images: &[f32],
    width: usize,
    out: &mut [f32],
) {
    #[cfg(byzadam_x86)]
    if fast() {
        // SAFETY: `fast` checked that the CPU has AVX2 and FMA.
        #[allow(unsafe_code)]
        unsafe {
            x86::eval_chunks(lanes, s, params, state, input, images, width, out)
        };
        return;
    }
    lanes::run_chunks(lanes, s, params, state, input, images, width, out)
}
