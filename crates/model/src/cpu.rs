//! Which build of the engine's loops runs (`byzadam_cpu`'s [`Level`]): the AVX-512 one or the
//! AVX2 + FMA one, compiled only for x86-64 (behind the `byzadam_x86` cfg that `build.rs`
//! sets: `network/x86.rs` and `gemm/x86.rs`), or the portable one, complete on every
//! architecture.
//!
//! A network takes the thread's level when it is built ([`level`]: the CPU's best, lowered by
//! `BYZADAM_CPU`) and keeps it, also in the workers and threads it is cloned into;
//! `Network::set_cpu_level` changes it (twin tests, benchmarks). Its packing buffers and its
//! evaluation plan follow it, so every matrix product of the network runs at that level.
//!
//! Every build performs the same operations in the same order (Rust never fuses `a*b+c` into
//! an FMA on its own; the AVX2 and AVX-512 SGEMM micro-kernels sum each value's products in
//! the same order, in the same blocks of depth, whatever the tile), so results are
//! bit-identical at every level; only the width of the vectors differs. The portable build's
//! matrix products go through `matrixmultiply`, whose sums are ordered otherwise: a portable
//! build agrees with the x86-64 ones to rounding, not to the bit. The network's dispatch
//! points and the SGEMM micro-kernels are the crate's only `unsafe`.

pub use byzadam_cpu::{CpuError, Level};

/// The highest level this build can run on this CPU: [`Level::Portable`] without the x86-64
/// builds (other architectures, the `portable` feature).
pub(crate) fn best() -> Level {
    #[cfg(byzadam_x86)]
    {
        byzadam_cpu::detected()
    }
    #[cfg(not(byzadam_x86))]
    {
        Level::Portable
    }
}

/// The level a network built on this thread now takes: `byzadam_cpu::level()`, capped by
/// [`best`].
pub(crate) fn level() -> Level {
    byzadam_cpu::level().min(best())
}

/// `level` if this build and CPU can run it.
pub(crate) fn check(level: Level) -> Result<Level, CpuError> {
    if level <= best() {
        Ok(level)
    } else {
        Err(CpuError::Unsupported {
            asked: level,
            best: best(),
        })
    }
}

/// Whether networks built on this thread now run the x86-64 fast paths (AVX2 + FMA or
/// AVX-512); false on other architectures, with the `portable` feature and with
/// `BYZADAM_CPU=portable`.
pub fn fast_paths() -> bool {
    level() > Level::Portable
}

/// The level networks built on this thread now take (see the module's documentation).
pub fn cpu_level() -> Level {
    level()
}

/// The levels this build and CPU run, most portable first.
#[cfg(test)]
pub(crate) fn supported() -> Vec<Level> {
    Level::ALL.into_iter().filter(|&l| l <= best()).collect()
}
