//! Criterion benches of the round's two halves without the gradients, in the thesis's MNIST
//! setting (the MNIST CNN's 176,050 parameters, 15 workers of which 5 Byzantine, RESAM with
//! lr 0.75 and β 0.99, the trimmed mean with f = 5, A Little Is Enough, omniscient): one honest worker's
//! message (gradient policy and RESAM's worker step) and the server's step (the Byzantine
//! forgeries, the rule, RESAM's server step, ξ and the honest diameter), on random
//! messages. Every front end (`byzadam run`, `byzadam.torch`, the Flower server) runs these
//! two per round besides the gradients.
//!
//! Also the server's step in two of the thesis code's CIFAR-10 settings (group
//! `thesis-code-cifar10-server`).
//!
//! `cargo bench -p byzadam-sim --bench halves`. BENCHMARKS.md reports the figures.

#![allow(missing_docs)] // criterion_group! generates an undocumented function

use byzadam_sim::{RunConfig, Server, Worker};
use criterion::{criterion_group, criterion_main, Criterion};
use rand::{Rng, SeedableRng};
use std::time::Duration;

fn config() -> RunConfig {
    toml::from_str(
        r#"
        dataset = "mnist"
        model = { name = "mnist_cnn" }
        workers = 15
        byzantine = 5
        optimizer = { name = "resam", lr = { name = "constant", value = 0.75 }, beta = 0.99 }
        aggregator = { name = "trimmed_mean", f = 5 }
        attack = { name = "a_little_is_enough" }
        "#,
    )
    .expect("a valid config")
}

fn random(len: usize, seed: u64, scale: f32) -> Vec<f32> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    (0..len).map(|_| rng.gen_range(-scale..scale)).collect()
}

fn bench(c: &mut Criterion) {
    let config = config();
    let mut server = Server::new(config.clone()).expect("a server");
    let (n, dim) = (server.workers(), server.dim());
    let messages = random(n * dim, 1, 0.01);
    let losses = vec![2.3f32; n];
    let params = server.params().to_vec();
    let gradient = random(dim, 2, 0.01);
    let mut worker = Worker::new(&config, dim);
    let mut g = gradient.clone();
    let mut out = vec![vec![0.0f32; dim]; worker.messages()];

    let mut group = c.benchmark_group("thesis-mnist-halves");
    group.sample_size(20);
    group.warm_up_time(Duration::from_millis(500));
    group.measurement_time(Duration::from_secs(3));
    group.bench_function("worker_message", |b| {
        b.iter(|| {
            g.copy_from_slice(&gradient);
            worker.message(&params, &mut g, &mut out).expect("shapes")
        })
    });
    // The quickstart's DRA (Adam's moments, a division and a square root per coordinate).
    let mut dra_config = config.clone();
    dra_config.optimizer = serde_json::from_str(r#"{"name": "dra"}"#).expect("DRA");
    let mut dra = Worker::new(&dra_config, dim);
    group.bench_function("worker_message_dra", |b| {
        b.iter(|| {
            g.copy_from_slice(&gradient);
            dra.message(&params, &mut g, &mut out).expect("shapes")
        })
    });
    group.bench_function("server_step", |b| {
        b.iter(|| server.step(&[&messages], &losses).expect("a round"))
    });
    group.finish();

    // The thesis code's CIFAR-10 settings (1,310,922 parameters, the first 5 of 15 workers
    // Byzantine): its largest-distance filter over 18 parameter tensors under Empire, and the
    // mean around median under Little.
    let mut group = c.benchmark_group("thesis-code-cifar10-server");
    group.sample_size(10);
    group.warm_up_time(Duration::from_millis(500));
    group.measurement_time(Duration::from_secs(5));
    for (label, rule) in [
        (
            "server_step_mda_empire",
            r#"optimizer = { name = "resam", lr = { name = "constant", value = 0.25 }, beta = 0.9 }
            aggregator = { name = "largest_distance_filter", f = 5, segments = [1728, 64, 36864, 64, 64, 64, 73728, 128, 128, 128, 147456, 128, 128, 128, 1048576, 128, 1280, 10] }
            attack = { name = "empire" }"#,
        ),
        (
            "server_step_meamed_little",
            r#"optimizer = { name = "sgd", lr = { name = "constant", value = 0.25 } }
            aggregator = { name = "mean_around_median", f = 5 }
            attack = { name = "little" }"#,
        ),
    ] {
        let config: RunConfig = toml::from_str(&format!(
            r#"
            dataset = "cifar10"
            model = {{ name = "cifar10_cnn_thesis_code", dropout = 0.25 }}
            workers = 15
            byzantine = 5
            byzantine_workers = "first"
            {rule}
            "#
        ))
        .expect("a valid config");
        let mut server = Server::new(config).expect("a server");
        let (n, dim) = (server.workers(), server.dim());
        let messages = random(n * dim, 3, 0.01);
        let losses = vec![2.3f32; n];
        group.bench_function(label, |b| {
            b.iter(|| server.step(&[&messages], &losses).expect("a round"))
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
