//! Steady-state rounds of the per-round rules allocate nothing: a counting global allocator
//! sees zero allocations once the rule, the thread pool and the scratch buffers are warm.
//!
//! Rounds run inside the rayon pool, as the simulator runs them: a thread outside the pool
//! hands its jobs to rayon's injector queue, which allocates one block per 63 jobs.

// A global allocator is necessarily `unsafe impl`; this one only counts and forwards to
// `System`.
#![allow(unsafe_code)]

use byzadam_robust::aggregators::*;
use byzadam_robust::preaggregators::NearestNeighborMixing;
use byzadam_robust::{Aggregator, Pipeline, Submissions};
use rand::{Rng, SeedableRng};
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

struct Counting;
static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

#[test]
fn warm_rules_allocate_nothing_per_round() {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(2)
        .build()
        .unwrap();
    pool.install(rounds);
}

fn rounds() {
    let (n, dim) = (15, 2 * 8192 + 100);
    let mut r = rand_chacha::ChaCha8Rng::seed_from_u64(1);
    let rows: Vec<Vec<f32>> = (0..n)
        .map(|_| (0..dim).map(|_| r.gen_range(-1.0..1.0)).collect())
        .collect();
    let x = Submissions::from_rows(&rows).unwrap();
    let mut out = vec![0.0f32; dim];
    let rules: Vec<Box<dyn Aggregator>> = vec![
        Box::new(Average {}),
        Box::new(TrimmedMean::new(5)),
        Box::new(Median {}),
        Box::new(MeanAroundMedian { f: 5 }),
        Box::new(MinimumDiameterAveraging::new(5)),
        Box::new(Krum::new(5)),
        Box::new(MultiKrum {
            f: 5,
            m: None,
            byzfl: false,
        }),
        Box::new(Monna { f: 5, pivot: 0 }),
    ];
    let mut rules = rules;
    // Warm-up: the rules' scratch buffers, and each pool thread's first steal (crossbeam's
    // epoch registration allocates once per thread).
    for _ in 0..10 {
        for rule in rules.iter_mut() {
            rule.aggregate_into(&x, &mut out).unwrap();
        }
    }
    for rule in rules.iter_mut() {
        let before = ALLOCATIONS.load(Ordering::SeqCst);
        for _ in 0..5 {
            rule.aggregate_into(&x, &mut out).unwrap();
        }
        let allocated = ALLOCATIONS.load(Ordering::SeqCst) - before;
        assert_eq!(
            allocated,
            0,
            "{} allocated {allocated} times in 5 warm rounds",
            rule.name()
        );
    }
    let mut server = Pipeline::new(
        vec![Box::new(NearestNeighborMixing::new(5))],
        Box::new(TrimmedMean::new(5)),
    );
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(0);
    for _ in 0..3 {
        server.run_into(&x, &mut rng, &mut out).unwrap();
    }
    let before = ALLOCATIONS.load(Ordering::SeqCst);
    for _ in 0..5 {
        server.run_into(&x, &mut rng, &mut out).unwrap();
    }
    assert_eq!(
        ALLOCATIONS.load(Ordering::SeqCst) - before,
        0,
        "NNM + trimmed mean pipeline allocated"
    );
}
