//! Per-thread scratch buffers, reused across calls so that steady-state rounds allocate nothing.
//!
//! A buffer already borrowed on this thread (a rayon worker that stole a second aggregation
//! while waiting inside the first) falls back to a fresh allocation instead of panicking.

use std::cell::RefCell;

macro_rules! scratch {
    ($name:ident, $tl:ident, $t:ty) => {
        thread_local! {
            static $tl: RefCell<Vec<$t>> = const { RefCell::new(Vec::new()) };
        }

        /// Runs `f` on a zero-initialised-at-first-use scratch slice of length `len`.
        /// Contents are whatever the previous user left: callers overwrite before reading.
        pub(crate) fn $name<R>(len: usize, f: impl FnOnce(&mut [$t]) -> R) -> R {
            $tl.with(|cell| match cell.try_borrow_mut() {
                Ok(mut v) => {
                    if v.len() < len {
                        v.resize(len, Default::default());
                    }
                    f(&mut v[..len])
                }
                Err(_) => {
                    let mut v = vec![<$t>::default(); len];
                    f(&mut v)
                }
            })
        }
    };
}

scratch!(with_i32, SCRATCH_I32, i32);
scratch!(with_f64, SCRATCH_F64, f64);
scratch!(with_f64_b, SCRATCH_F64_B, f64);
scratch!(with_f64_c, SCRATCH_F64_C, f64);
scratch!(with_usize, SCRATCH_USIZE, usize);
