//! What every crate's fuzz test shares (issue 22), included by path
//! (`#[path = "../../../tests/support/fuzz.rs"] mod fuzz;`): the case count, a global
//! allocator that remembers the largest single allocation any thread asked for ("no
//! allocation past a bound" is checked against it), and the per-case time and allocation
//! check.

#![allow(unsafe_code)] // a GlobalAlloc implementation is unsafe by definition

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

/// Wraps the system allocator, recording the largest request.
pub struct PeakAlloc;

static LARGEST: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is forwarded unchanged to `System`; only a counter is updated.
unsafe impl GlobalAlloc for PeakAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LARGEST.fetch_max(layout.size(), Ordering::Relaxed);
        System.alloc(layout)
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        LARGEST.fetch_max(layout.size(), Ordering::Relaxed);
        System.alloc_zeroed(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LARGEST.fetch_max(new_size, Ordering::Relaxed);
        System.realloc(ptr, layout, new_size)
    }
}

/// The largest single allocation requested so far, in bytes.
pub fn largest() -> usize {
    LARGEST.load(Ordering::Relaxed)
}

/// Panics (failing the test) if any allocation so far exceeded `bound` bytes.
pub fn assert_at_most(bound: usize, what: &str) {
    let seen = largest();
    assert!(
        seen <= bound,
        "{what}: an allocation of {seen} bytes, over the bound of {bound} for inputs this small"
    );
}

/// 10,000 cases per property, no regression files written.
pub fn config() -> proptest::test_runner::Config {
    proptest::test_runner::Config {
        cases: 10_000,
        failure_persistence: None,
        ..proptest::test_runner::Config::default()
    }
}

/// Runs one case: it must end within `limit` ("no hang") with no allocation so far past
/// `bound` bytes.
pub fn timed<T>(what: &str, limit: std::time::Duration, bound: usize, f: impl FnOnce() -> T) -> T {
    let t = std::time::Instant::now();
    let out = f();
    assert!(
        t.elapsed() < limit,
        "{what}: one case took {:?}",
        t.elapsed()
    );
    assert_at_most(bound, what);
    out
}
