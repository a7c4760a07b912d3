//! A global allocator for the fuzz tests that remembers the largest single allocation any
//! thread asked for: "no allocation past a bound" is checked against it. Included by path from
//! each crate's fuzz test (`#[path = ".../tests/support/peak_alloc.rs"] mod peak_alloc;`).

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
