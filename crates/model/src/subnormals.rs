//! Subnormal floats flushed to zero around the network's passes, when a network asks for it
//! ([`crate::Network::set_flush_subnormals`]). Training drives some gradients and
//! activations below `f32`'s normal range (1.2e-38: a confident softmax's probabilities, and
//! what they multiply); x86 cores take a microcode assist on every operation with one, which
//! measured 1.8× slower end to end on the thesis's MNIST setting once they appear. With
//! flushing on, such values read and compute as zero (the x86 MXCSR's FTZ and DAZ bits,
//! AArch64's FPCR.FZ): a different, still deterministic, result. `byzadam.torch`'s
//! `flush_denormal` is the same control for PyTorch's CPU kernels.

/// Sets the calling thread's floating-point mode to flush subnormals (when `on`) for as
/// long as it lives, and restores the mode before on drop. Does nothing on other
/// architectures.
pub(crate) struct Flushed {
    #[allow(dead_code)] // read only where the mode is set
    before: Option<u64>,
}

impl Flushed {
    #[inline]
    pub(crate) fn new(on: bool) -> Self {
        if !on {
            return Self { before: None };
        }
        let before = mode();
        set_mode(before | FLUSH);
        Self {
            before: Some(before),
        }
    }
}

impl Drop for Flushed {
    #[inline]
    fn drop(&mut self) {
        if let Some(before) = self.before {
            set_mode(before);
        }
    }
}

/// MXCSR's FTZ (flush results to zero, bit 15) and DAZ (read inputs as zero, bit 6).
#[cfg(target_arch = "x86_64")]
const FLUSH: u64 = 0x8040;
/// FPCR's FZ bit (24): inputs and results flushed.
#[cfg(target_arch = "aarch64")]
const FLUSH: u64 = 1 << 24;
#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
const FLUSH: u64 = 0;

#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
fn mode() -> u64 {
    let mut csr: u32 = 0;
    // SAFETY: stores the thread's MXCSR into `csr`.
    unsafe { std::arch::asm!("stmxcsr [{}]", in(reg) &mut csr, options(nostack, preserves_flags)) };
    u64::from(csr)
}

#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
fn set_mode(mode: u64) {
    let csr = mode as u32;
    // SAFETY: loads a valid MXCSR (the one read, with FTZ and DAZ set or restored).
    unsafe {
        std::arch::asm!("ldmxcsr [{}]", in(reg) &csr, options(nostack, preserves_flags, readonly))
    };
}

#[cfg(target_arch = "aarch64")]
#[allow(unsafe_code)]
fn mode() -> u64 {
    let fpcr: u64;
    // SAFETY: reads the thread's FPCR.
    unsafe {
        std::arch::asm!("mrs {}, fpcr", out(reg) fpcr, options(nomem, nostack, preserves_flags))
    };
    fpcr
}

#[cfg(target_arch = "aarch64")]
#[allow(unsafe_code)]
fn set_mode(mode: u64) {
    // SAFETY: writes back the FPCR read, with FZ set or restored.
    unsafe {
        std::arch::asm!("msr fpcr, {}", in(reg) mode, options(nomem, nostack, preserves_flags))
    };
}

#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
fn mode() -> u64 {
    0
}

#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
fn set_mode(_: u64) {}

#[cfg(test)]
mod tests {
    use super::*;

    /// A product whose exact value is subnormal, computed at run time (`black_box`: not
    /// folded by the compiler, which knows nothing of the mode).
    fn tiny() -> f32 {
        std::hint::black_box(1.0e-20f32) * std::hint::black_box(1.0e-20f32)
    }

    #[test]
    fn subnormals_are_flushed_inside_the_guard_only_and_the_mode_is_restored() {
        let outside = tiny();
        assert!(
            outside > 0.0 && !outside.is_normal(),
            "{outside:e} is subnormal by default"
        );
        let before = mode();
        {
            let _on = Flushed::new(true);
            if cfg!(any(target_arch = "x86_64", target_arch = "aarch64")) {
                assert_eq!(tiny(), 0.0, "flushed inside");
                // A subnormal input counts as zero too (x86's DAZ; AArch64's FZ).
                let input = std::hint::black_box(f32::from_bits(1));
                assert_eq!(input * std::hint::black_box(2.0f32), 0.0);
            }
            let _off = Flushed::new(false);
            assert_eq!(
                mode(),
                before | FLUSH,
                "a guard that is off changes nothing"
            );
        }
        assert_eq!(mode(), before, "the mode before is restored");
        assert_eq!(tiny().to_bits(), outside.to_bits());
    }
}
