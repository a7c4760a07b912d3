//! Criterion benches of the engine: one worker's gradient (forward + backward) on a batch of
//! 25, and evaluation of 500 images, for the thesis's two CNNs. `byzadam bench-engine` times a
//! whole round of 15 workers; BENCHMARKS.md compares both with PyTorch.
//!
//! `cargo bench -p byzadam-model --bench engine`
#![allow(missing_docs)] // criterion_group! generates an undocumented function

use byzadam_model::{gemm, ModelKind};
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

/// The MNIST CNN's convolution products for a worker's 25 images, as the engine runs them (one
/// product per image, each image's columns fresh from im2col) against one product over the
/// 25 images' columns side by side (`N` or `K` 25 times larger): whether batching the images
/// into one product pays. Forward: `W (out × c·k²) · columns (c·k² × h·w)`; weight gradient:
/// `dY (out × h·w) · columnsᵀ`, summed over the images. With a 1024³ product as the baseline.
fn conv_products(c: &mut Criterion) {
    const IMAGES: usize = 25;
    let mut group = c.benchmark_group("conv_products");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(2));
    // The baseline, in the same run: a 1024³ product (2.15 GFLOP), the SGEMM's rate where its
    // shape does not limit it (`byzadam bench-engine --sgemm-peak` measures the same).
    {
        const N: usize = 1024;
        let a: Vec<f32> = (0..N * N).map(|i| (i % 7) as f32 * 0.1).collect();
        let b: Vec<f32> = (0..N * N).map(|i| (i % 5) as f32 * 0.1).collect();
        let mut out = vec![0.0; N * N];
        let mut pack = byzadam_model::Pack::default();
        group.throughput(Throughput::Elements(1));
        group.bench_function("sgemm_1024", |bench| {
            bench.iter(|| gemm(N, N, N, &a, false, &b, false, 0.0, &mut out, &mut pack))
        });
    }
    // (layer, output channels, output pixels, depth c·k²)
    for (layer, m, hw, k) in [("conv1", 20, 576, 25), ("conv2", 20, 64, 500)] {
        let w: Vec<f32> = (0..m * k).map(|i| (i % 7) as f32 * 0.1).collect();
        let cols: Vec<f32> = (0..k * hw * IMAGES).map(|i| (i % 5) as f32 * 0.1).collect();
        let dy: Vec<f32> = (0..m * hw * IMAGES).map(|i| (i % 3) as f32 * 0.1).collect();
        let mut y = vec![0.0; m * hw * IMAGES];
        let mut gw = vec![0.0; m * k];
        let mut pack = byzadam_model::Pack::default();
        group.throughput(Throughput::Elements(IMAGES as u64));
        group.bench_function(format!("{layer}_forward_per_image"), |b| {
            b.iter(|| {
                for (x, out) in cols.chunks_exact(k * hw).zip(y.chunks_exact_mut(m * hw)) {
                    gemm(m, hw, k, &w, false, x, false, 0.0, out, &mut pack);
                }
            })
        });
        // The images' columns side by side: (c·k²) × (25·h·w).
        let wide = side_by_side(&cols, k, hw);
        group.bench_function(format!("{layer}_forward_batched"), |b| {
            b.iter(|| {
                gemm(
                    m,
                    hw * IMAGES,
                    k,
                    &w,
                    false,
                    &wide,
                    false,
                    0.0,
                    &mut y,
                    &mut pack,
                )
            })
        });
        group.bench_function(format!("{layer}_weight_gradient_per_image"), |b| {
            b.iter(|| {
                for (x, d) in cols.chunks_exact(k * hw).zip(dy.chunks_exact(m * hw)) {
                    gemm(m, k, hw, d, false, x, true, 1.0, &mut gw, &mut pack);
                }
            })
        });
        let dy_wide = side_by_side(&dy, m, hw);
        group.bench_function(format!("{layer}_weight_gradient_batched"), |b| {
            b.iter(|| {
                gemm(
                    m,
                    k,
                    hw * IMAGES,
                    &dy_wide,
                    false,
                    &wide,
                    true,
                    1.0,
                    &mut gw,
                    &mut pack,
                )
            })
        });
    }
    group.finish();
}

/// Per-image matrices of `rows × width` (image after image) laid side by side: one matrix of
/// `rows × (images · width)`, row `r` holding every image's row `r` in image order.
fn side_by_side(per_image: &[f32], rows: usize, width: usize) -> Vec<f32> {
    let images = per_image.len() / (rows * width);
    (0..rows)
        .flat_map(|r| (0..images).map(move |i| (i * rows + r) * width))
        .flat_map(|at| per_image[at..at + width].iter().copied())
        .collect()
}

criterion_group! {
    name = benches;
    config = Criterion::default();
    targets = bench, conv_products
}
criterion_main!(benches);
