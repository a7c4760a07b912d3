//! Same input, same bits, with 1 or 2 threads (work is split by fixed coordinate chunks).

mod common;

use byzadam_robust::preaggregators::{Bucketing, NearestNeighborMixing};
use byzadam_robust::{aggregators::TrimmedMean, Pipeline, PreAggregator, Submissions};
use rand::{Rng, SeedableRng};

fn input(n: usize, dim: usize) -> Submissions<'static> {
    let mut r = rand_chacha::ChaCha8Rng::seed_from_u64(9);
    let rows: Vec<Vec<f32>> = (0..n)
        .map(|_| (0..dim).map(|_| r.gen_range(-3.0..3.0)).collect())
        .collect();
    Submissions::from_rows(&rows).unwrap()
}

fn in_pool<T: Send>(threads: usize, f: impl FnOnce() -> T + Send) -> T {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap()
        .install(f)
}

#[test]
fn every_rule_gives_the_same_bits_with_one_and_two_threads() {
    let x = input(11, 3 * 8192 + 77);
    for (a, b) in common::all_rules(11).into_iter().zip(common::all_rules(11)) {
        let (mut a, mut b) = (a, b);
        let one = in_pool(1, || a.aggregate(&x).unwrap());
        let two = in_pool(2, || b.aggregate(&x).unwrap());
        assert!(
            one.iter()
                .zip(&two)
                .all(|(p, q)| p.to_bits() == q.to_bits()),
            "{}",
            a.name()
        );
    }
    let run = |threads| {
        in_pool(threads, || {
            let pre: Vec<Box<dyn PreAggregator>> = vec![
                Box::new(Bucketing { s: 2 }),
                Box::new(NearestNeighborMixing::new(2)),
            ];
            let mut server = Pipeline::new(pre, Box::new(TrimmedMean::new(2)));
            let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(5);
            server.run(&x, &mut rng).unwrap()
        })
    };
    assert_eq!(run(1), run(2));
}
