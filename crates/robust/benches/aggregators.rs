//! Criterion benches of the hot rules at the sizes: n = 15, f = 5, f32, for
//! d = 176,050 (the thesis's MNIST CNN), 1,310,922 (its CIFAR-10 CNN) and 11,000,000
//! (ResNet-18 scale), with the two baselines measured in the same run: the plain average (for
//! the coordinate-wise rules) and the pairwise distance matrix (for the distance-based ones).
//!
//! `cargo bench -p byzadam-robust --bench aggregators` (all sizes), or pass a filter such as
//! `-- d=176050`. BENCHMARKS.md reports the ratios.

#![allow(missing_docs)] // criterion_group! generates an undocumented function

use byzadam_robust::aggregators::*;
use byzadam_robust::preaggregators::NearestNeighborMixing;
use byzadam_robust::{pairwise_squared_distances, Aggregator, PreAggregator, Submissions};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use rand::{Rng, SeedableRng};
use std::time::Duration;

const N: usize = 15;
const F: usize = 5;

fn input(dim: usize) -> Submissions<'static> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(dim as u64);
    let data: Vec<f32> = (0..N * dim).map(|_| rng.gen_range(-1.0f32..1.0)).collect();
    Submissions::from_flat(data, dim).expect("non-empty")
}

fn bench(c: &mut Criterion) {
    for dim in [176_050usize, 1_310_922, 11_000_000] {
        let s = input(dim);
        let mut group = c.benchmark_group(format!("n=15,f=5,d={dim}"));
        group.throughput(Throughput::Bytes((N * dim * 4) as u64));
        group.sample_size(10);
        group.warm_up_time(Duration::from_millis(500));
        group.measurement_time(Duration::from_secs(if dim > 5_000_000 { 6 } else { 3 }));
        let mut out = vec![0.0f32; dim];
        let mut d2 = vec![0.0f64; N * N];
        group.bench_function("pairwise_distances", |b| {
            b.iter(|| pairwise_squared_distances(&s, &mut d2).unwrap())
        });
        let rules: Vec<Box<dyn Aggregator>> = vec![
            Box::new(Average {}),
            Box::new(TrimmedMean::new(F)),
            Box::new(Median {}),
            Box::new(MeanAroundMedian { f: F }),
            Box::new(MinimumDiameterAveraging::new(F)),
            Box::new(Krum::new(F)),
        ];
        for mut rule in rules {
            group.bench_with_input(BenchmarkId::new(rule.name(), dim), &s, |b, s| {
                b.iter(|| rule.aggregate_into(s, &mut out).unwrap())
            });
        }
        let mut mixed = Submissions::default();
        let mut nnm = NearestNeighborMixing::new(F);
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(0);
        group.bench_function("nearest_neighbor_mixing", |b| {
            b.iter(|| nnm.apply(&s, &mut mixed, &mut rng).unwrap())
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
