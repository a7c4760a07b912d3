//! Steady-state training steps and evaluations allocate nothing: a counting global allocator
//! sees zero allocations once a network's buffers are sized (after its first batch).
//!
//! This holds where the engine's own packed SGEMM runs (x86-64 with AVX2 and FMA, the
//! project's machines); elsewhere the portable `matrixmultiply` path allocates its packing
//! buffers on every product, and this test says so instead of counting.

// A global allocator is necessarily `unsafe impl`; this one only counts and forwards to
// `System`.
#![allow(unsafe_code)]

use byzadam_model::ModelKind;
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
fn warm_networks_allocate_nothing_per_step_or_evaluation() {
    // The portable path's SGEMM (`matrixmultiply`) allocates its packing buffers per product.
    if !byzadam_model::fast_paths() {
        eprintln!("no x86 fast paths (AVX2 + FMA): the portable SGEMM allocates; nothing to count");
        return;
    }
    // Evaluation shares its chunks out over the rayon pool: start every thread of the pool
    // (each allocates its own state as it starts) before counting.
    rayon::broadcast(|_| ());
    for kind in [
        ModelKind::MnistCnn,
        ModelKind::Cifar10Cnn { dropout: 0.25 },
        ModelKind::Mlp { hidden: vec![64] },
    ] {
        let mut net = kind.build();
        let mut p = vec![0.0; net.num_params()];
        let mut s = vec![0.0; net.num_state()];
        net.init(
            &mut rand_chacha::ChaCha20Rng::seed_from_u64(3),
            &mut p,
            &mut s,
        );
        let mut data = rand_chacha::ChaCha8Rng::seed_from_u64(4);
        let batch = 5;
        let x: Vec<f32> = (0..batch * net.input().len())
            .map(|_| data.gen_range(-1.0..1.0))
            .collect();
        let y: Vec<u8> = (0..batch as u8).collect();
        let mut g = vec![0.0; net.num_params()];
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
        // Warm-up: the first batch sizes the buffers.
        net.loss_and_grad(&p, &mut s, &x, &y, &mut rng, &mut g);
        net.evaluate(&p, &s, &x, &y, batch);
        let before = ALLOCATIONS.load(Ordering::Relaxed);
        for _ in 0..3 {
            net.loss_and_grad(&p, &mut s, &x, &y, &mut rng, &mut g);
            // Smaller batches reuse the same buffers.
            net.loss_and_grad(
                &p,
                &mut s,
                &x[..2 * net.input().len()],
                &y[..2],
                &mut rng,
                &mut g,
            );
            net.evaluate(&p, &s, &x, &y, batch);
        }
        let allocations = ALLOCATIONS.load(Ordering::Relaxed) - before;
        assert_eq!(
            allocations, 0,
            "{kind:?}: {allocations} allocations after warm-up"
        );
    }
}
