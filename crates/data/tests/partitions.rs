//! Every scheme: seeded, deterministic, and using each sample at most once.

use byzadam_data::partition::{partition, Scheme};
use proptest::prelude::*;
use rand::SeedableRng;

fn schemes() -> Vec<Scheme> {
    vec![
        Scheme::Homogeneous {
            per_class: None,
            order: Default::default(),
        },
        Scheme::Iid,
        Scheme::Dirichlet {
            alpha: 0.1,
            min_samples: 1,
        },
        Scheme::Dirichlet {
            alpha: 100.0,
            min_samples: 1,
        },
        Scheme::GammaSimilarity { gamma: 0.5 },
        Scheme::Extreme,
        Scheme::DirichletPerWorker {
            alpha: 0.1,
            per_class: None,
            min_samples: 1,
        },
    ]
}

fn labels(n: usize, classes: usize, seed: u64) -> Vec<u8> {
    use rand::{Rng, SeedableRng};
    let mut r = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    (0..n).map(|_| r.gen_range(0..classes) as u8).collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn every_scheme_uses_each_sample_at_most_once(n in 200usize..2000, workers in 1usize..20, seed in any::<u64>()) {
        let y = labels(n, 10, seed);
        for scheme in schemes() {
            let p = match partition(&y, 10, workers, &scheme, &mut rand_chacha::ChaCha20Rng::seed_from_u64(seed)) {
                Ok(p) => p,
                // Only these two can be impossible (a class too small for every worker, or no
                // Dirichlet draw giving every worker a sample); the others always succeed.
                Err(e) => {
                    prop_assert!(matches!(scheme, Scheme::Dirichlet { .. } | Scheme::Homogeneous { .. }), "{:?}: {}", scheme, e);
                    continue;
                }
            };
            prop_assert_eq!(p.shards.len(), workers);
            let mut seen = vec![false; n];
            for s in &p.shards {
                for &i in s {
                    prop_assert!(!seen[i as usize], "{:?}: sample {} twice", scheme, i);
                    seen[i as usize] = true;
                }
            }
            // Same seed, same partition.
            prop_assert_eq!(&p, &partition(&y, 10, workers, &scheme, &mut rand_chacha::ChaCha20Rng::seed_from_u64(seed)).unwrap());
            match scheme {
                // Iid, γ-similarity and extreme deal every sample, sizes within one of each other.
                Scheme::Iid | Scheme::Extreme | Scheme::GammaSimilarity { .. } => {
                    prop_assert!(seen.iter().all(|&s| s));
                    let (lo, hi) = (p.shards.iter().map(Vec::len).min().unwrap(), p.shards.iter().map(Vec::len).max().unwrap());
                    prop_assert!(hi - lo <= 2, "{:?}: sizes {}..{}", scheme, lo, hi);
                }
                Scheme::Dirichlet { min_samples, .. } => {
                    prop_assert!(seen.iter().all(|&s| s));
                    prop_assert!(p.shards.iter().all(|s| s.len() >= min_samples));
                }
                Scheme::DirichletPerWorker { min_samples, .. } => {
                    prop_assert!(p.shards.iter().all(|s| s.len() >= min_samples));
                    // No class gives out more than the smallest class's count, plus rounding.
                    let counts = p.class_counts(&y, 10);
                    let smallest = (0..10).map(|c| y.iter().filter(|&&l| l as usize == c).count()).min().unwrap();
                    for c in 0..10 {
                        let given: usize = counts.iter().map(|w| w[c]).sum();
                        prop_assert!(given <= smallest + workers / 2 + 1, "class {}: {} > {}", c, given, smallest);
                    }
                }
                Scheme::Homogeneous { .. } => {
                    let counts = p.class_counts(&y, 10);
                    prop_assert!(counts.iter().all(|c| c == &counts[0] && c.iter().all(|&v| v == c[0])));
                }
            }
        }
    }
}

#[test]
fn different_seeds_give_different_partitions() {
    let y = labels(1000, 10, 3);
    for scheme in schemes() {
        let a = partition(
            &y,
            10,
            5,
            &scheme,
            &mut rand_chacha::ChaCha20Rng::seed_from_u64(1),
        )
        .unwrap();
        let b = partition(
            &y,
            10,
            5,
            &scheme,
            &mut rand_chacha::ChaCha20Rng::seed_from_u64(2),
        )
        .unwrap();
        assert_ne!(a, b, "{scheme:?}");
    }
}

#[test]
fn dirichlet_concentration_controls_heterogeneity() {
    let y = labels(20_000, 10, 4);
    // Share of each worker's data in its most common class.
    let skew = |alpha: f64| {
        let p = partition(
            &y,
            10,
            10,
            &Scheme::Dirichlet {
                alpha,
                min_samples: 1,
            },
            &mut rand_chacha::ChaCha20Rng::seed_from_u64(7),
        )
        .unwrap();
        let c = p.class_counts(&y, 10);
        c.iter()
            .map(|w| *w.iter().max().unwrap() as f64 / w.iter().sum::<usize>() as f64)
            .sum::<f64>()
            / 10.0
    };
    let (small, large) = (skew(0.1), skew(1000.0));
    assert!(
        small > 0.35,
        "α = 0.1 should concentrate each worker on few classes: {small}"
    );
    assert!(
        large < 0.15,
        "α = 1000 should be near-uniform over ten classes: {large}"
    );
}

#[test]
fn extreme_gives_each_worker_one_or_two_classes() {
    let y = labels(5000, 10, 5);
    let p = partition(
        &y,
        10,
        10,
        &Scheme::Extreme,
        &mut rand_chacha::ChaCha20Rng::seed_from_u64(0),
    )
    .unwrap();
    for c in p.class_counts(&y, 10) {
        assert!(c.iter().filter(|&&v| v > 0).count() <= 2, "{c:?}");
    }
}

#[test]
fn impossible_requests_are_errors_that_say_why() {
    let y = labels(100, 10, 6);
    let e = partition(
        &y,
        10,
        0,
        &Scheme::Iid,
        &mut rand_chacha::ChaCha20Rng::seed_from_u64(0),
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("at least one worker"), "{e}");
    let e = partition(
        &y,
        10,
        5,
        &Scheme::Homogeneous {
            per_class: Some(50),
            order: Default::default(),
        },
        &mut rand_chacha::ChaCha20Rng::seed_from_u64(0),
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("exceeds the smallest class"), "{e}");
    let e = partition(
        &y,
        10,
        200,
        &Scheme::Dirichlet {
            alpha: 0.1,
            min_samples: 1,
        },
        &mut rand_chacha::ChaCha20Rng::seed_from_u64(0),
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("200 workers for 100 samples"), "{e}");
    let e = partition(
        &y,
        10,
        50,
        &Scheme::Dirichlet {
            alpha: 0.01,
            min_samples: 2,
        },
        &mut rand_chacha::ChaCha20Rng::seed_from_u64(0),
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("use a larger alpha"), "{e}");
    assert!(partition(
        &y,
        10,
        5,
        &Scheme::GammaSimilarity { gamma: 1.5 },
        &mut rand_chacha::ChaCha20Rng::seed_from_u64(0)
    )
    .is_err());
    assert!(partition(
        &[3, 12],
        10,
        1,
        &Scheme::Iid,
        &mut rand_chacha::ChaCha20Rng::seed_from_u64(0)
    )
    .is_err());
}

#[test]
fn the_file_order_split_by_hand() {
    // Labels 0 1 0 1 0 1 0 1 0: two workers, two of each class, in file order, class by class.
    let y = [0u8, 1, 0, 1, 0, 1, 0, 1, 0];
    let scheme = Scheme::Homogeneous {
        per_class: None,
        order: byzadam_data::partition::SampleOrder::FileOrder,
    };
    let p = partition(
        &y,
        2,
        2,
        &scheme,
        &mut rand_chacha::ChaCha20Rng::seed_from_u64(0),
    )
    .unwrap();
    assert_eq!(p.shards, vec![vec![0, 2, 1, 3], vec![4, 6, 5, 7]]);
    // No randomness: any seed gives the same split.
    let q = partition(
        &y,
        2,
        2,
        &scheme,
        &mut rand_chacha::ChaCha20Rng::seed_from_u64(9),
    )
    .unwrap();
    assert_eq!(p, q);
    // The thesis's code writes no `order` key; neither does the default.
    let json = serde_json::to_string(&Scheme::Homogeneous {
        per_class: None,
        order: Default::default(),
    })
    .unwrap();
    assert_eq!(json, r#"{"name":"homogeneous","per_class":null}"#);
}

#[test]
fn dirichlet_per_worker_normalises_each_class_over_the_workers() {
    // 3 classes of 100, 120 and 150 samples: each class hands out about min = 100 samples.
    let mut y = vec![0u8; 100];
    y.extend(vec![1u8; 120]);
    y.extend(vec![2u8; 150]);
    let p = partition(
        &y,
        3,
        4,
        &Scheme::DirichletPerWorker {
            alpha: 0.5,
            per_class: None,
            min_samples: 1,
        },
        &mut rand_chacha::ChaCha20Rng::seed_from_u64(3),
    )
    .unwrap();
    let counts = p.class_counts(&y, 3);
    for c in 0..3 {
        let given: usize = counts.iter().map(|w| w[c]).sum();
        assert!((98..=102).contains(&given), "class {c}: {given}");
    }
}
