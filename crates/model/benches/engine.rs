//! Criterion benches of the engine: one worker's gradient (forward + backward) on a batch of
//! 25, and evaluation of 500 images, for the thesis's two CNNs. `byzadam bench-engine` times a
//! whole round of 15 workers; BENCHMARKS.md compares both with PyTorch.
//!
//! `cargo bench -p byzadam-model --bench engine`
#![allow(missing_docs)] // criterion_group! generates an undocumented function

use byzadam_model::ModelKind;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use rand::{Rng, SeedableRng};
use std::time::Duration;

fn bench(c: &mut Criterion) {
    for (name, kind) in [
        ("mnist_cnn", ModelKind::MnistCnn),
        ("cifar10_cnn", ModelKind::Cifar10Cnn { dropout: 0.25 }),
    ] {
        let mut net = kind.build();
        let mut params = vec![0.0; net.num_params()];
        let mut state = vec![0.0; net.num_state()];
        net.init(
            &mut rand_chacha::ChaCha20Rng::seed_from_u64(1),
            &mut params,
            &mut state,
        );
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
        let per = net.input().len();
        let x: Vec<f32> = (0..500 * per).map(|_| rng.gen_range(-1.0..1.0)).collect();
        let y: Vec<u8> = (0..500).map(|i| (i % 10) as u8).collect();
        let mut grad = vec![0.0; net.num_params()];
        let mut group = c.benchmark_group(name);
        group
            .sample_size(10)
            .warm_up_time(Duration::from_millis(500))
            .measurement_time(Duration::from_secs(3));
        group.throughput(Throughput::Elements(25));
        group.bench_function("gradient_batch_25", |b| {
            b.iter(|| {
                net.loss_and_grad(
                    &params,
                    &mut state,
                    &x[..25 * per],
                    &y[..25],
                    &mut rng,
                    &mut grad,
                )
            })
        });
        group.throughput(Throughput::Elements(500));
        group.bench_function("evaluate_500", |b| {
            b.iter(|| net.evaluate(&params, &state, &x, &y, 500))
        });
        group.finish();
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default();
    targets = bench
}
criterion_main!(benches);
