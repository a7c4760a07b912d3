//! Invariants of every rule, on random and adversarial inputs (proptest).

mod common;

use byzadam_robust::aggregators::*;
use byzadam_robust::preaggregators::NearestNeighborMixing;
use byzadam_robust::{Aggregator, PreAggregator, Submissions};
use common::*;
use proptest::prelude::*;
use rand::SeedableRng;

fn matrix(max_n: usize, max_dim: usize) -> impl Strategy<Value = Vec<Vec<f32>>> {
    (3..=max_n, 1..=max_dim).prop_flat_map(|(n, dim)| {
        prop::collection::vec(prop::collection::vec(-100.0f32..100.0, dim), n)
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn every_symmetric_rule_is_permutation_invariant(rows in matrix(9, 12), seed in any::<u64>()) {
        use rand::seq::SliceRandom;
        let n = rows.len();
        let mut shuffled = rows.clone();
        shuffled.shuffle(&mut rand_chacha::ChaCha8Rng::seed_from_u64(seed));
        let (a, b) = (Submissions::from_rows(&rows).unwrap(), Submissions::from_rows(&shuffled).unwrap());
        for (mut r1, mut r2) in symmetric_rules(n).into_iter().zip(symmetric_rules(n)) {
            let (x, y) = (r1.aggregate(&a).unwrap(), r2.aggregate(&b).unwrap());
            match r1.name() {
                // Sorted-order sums: bit-identical whatever the input order.
                "trimmed_mean" | "median" | "mean_around_median" => prop_assert_eq!(&x, &y, "{}", r1.name()),
                // Sums in another order: equal up to rounding.
                _ => prop_assert!(close(&x, &y, 1e-4), "{}: {:?} vs {:?}", r1.name(), x, y),
            }
        }
    }

    #[test]
    fn identical_inputs_are_returned_unchanged(v in prop::collection::vec(-1e3f32..1e3, 1..20), n in 3usize..10) {
        let s = Submissions::from_rows(&vec![v.clone(); n]).unwrap();
        for mut rule in all_rules(n) {
            if rule.name() == "centered_clipping" {
                // From the zero centre, CC moves at most τ per iteration: only a τ that covers
                // ‖v‖ returns v. That is the rule, not a defect.
                rule = Box::new(CenteredClipping::new(1e9, 1));
            }
            let out = rule.aggregate(&s).unwrap();
            match rule.name() {
                "geometric_median" => prop_assert!(close(&out, &v, 1e-5), "{}", rule.name()),
                _ => prop_assert_eq!(&out, &v, "{}", rule.name()),
            }
        }
        let mut mixed = Submissions::default();
        NearestNeighborMixing::new(n / 2).apply(&s, &mut mixed, &mut rand_chacha::ChaCha8Rng::seed_from_u64(0)).unwrap();
        // NNM sums in f32 (see `mix_chunk_generic`): equal up to the rounding of k additions.
        prop_assert!(mixed.rows().all(|r| close(r, &v, 1e-6)));
    }

    #[test]
    fn trimmed_mean_with_f_zero_is_the_average(rows in matrix(12, 16)) {
        let s = Submissions::from_rows(&rows).unwrap();
        let (tm, avg) = (TrimmedMean::new(0).aggregate(&s).unwrap(), Average {}.aggregate(&s).unwrap());
        // Both sum in f64 and round once to f32; only the order of the f64 sum differs.
        for (a, b) in tm.iter().zip(&avg) {
            prop_assert!((a - b).abs() <= f32::EPSILON * b.abs().max(1e-30) * 2.0, "{} vs {}", a, b);
        }
    }

    #[test]
    fn coordinate_rules_stay_inside_the_honest_range(
        honest in matrix(9, 10),
        bad in prop::collection::vec(prop_oneof![
            Just(f32::INFINITY), Just(f32::NEG_INFINITY), Just(f32::NAN), Just(1e30f32), Just(-1e30f32), -1e4f32..1e4
        ], 1..40),
        f_seed in any::<usize>(),
    ) {
        let h = honest.len();
        let dim = honest[0].len();
        // Up to f adversarial rows, with n > 2f.
        let f = 1 + f_seed % (h - 1).max(1);
        let f = f.min(h - 1);
        let mut rows = honest.clone();
        for k in 0..f {
            rows.push((0..dim).map(|c| bad[(k * dim + c) % bad.len()]).collect());
        }
        let s = Submissions::from_rows(&rows).unwrap();
        for mut rule in [Box::new(TrimmedMean::new(f)) as Box<dyn Aggregator>, Box::new(Median {})] {
            let out = rule.aggregate(&s).unwrap();
            for c in 0..dim {
                let lo = honest.iter().map(|r| r[c]).fold(f32::INFINITY, f32::min);
                let hi = honest.iter().map(|r| r[c]).fold(f32::NEG_INFINITY, f32::max);
                prop_assert!(out[c] >= lo - 1e-3 && out[c] <= hi + 1e-3, "{} coordinate {}: {} not in [{}, {}]", rule.name(), c, out[c], lo, hi);
            }
        }
    }

    /// The thesis's Definition 2.2.1 with the λ it states for each rule (section 2.2.2.1):
    /// ‖F(x₁…xₙ) − x̄_H‖ ≤ λ · max_{i,j∈H} ‖xᵢ − xⱼ‖ for the honest set H of size n − f.
    #[test]
    fn thesis_resilience_bounds_hold(
        honest in matrix(10, 8),
        attack in 0usize..5,
        scale in 0.1f32..1e3,
    ) {
        let h = honest.len();
        let dim = honest[0].len();
        // n - f = h honest, f Byzantine, n > 2f: f < h.
        let f = (h - 1).min(4);
        let n = h + f;
        let hs = Submissions::from_rows(&honest).unwrap();
        let mean: Vec<f64> = (0..dim).map(|c| honest.iter().map(|r| r[c] as f64).sum::<f64>() / h as f64).collect();
        let std: Vec<f64> = (0..dim).map(|c| (honest.iter().map(|r| (r[c] as f64 - mean[c]).powi(2)).sum::<f64>() / h as f64).sqrt()).collect();
        let byz: Vec<f32> = match attack {
            0 => mean.iter().map(|m| (m + scale as f64) as f32).collect(),          // shifted
            1 => mean.iter().zip(&std).map(|(m, s)| (m - 1.5 * s) as f32).collect(),  // ALIE-like
            2 => mean.iter().map(|m| (-0.9 * m) as f32).collect(),                  // Empire-like
            3 => honest[0].iter().map(|x| x * scale).collect(),
            _ => vec![scale; dim],
        };
        let mut rows = honest.clone();
        rows.extend(std::iter::repeat_n(byz, f));
        let s = Submissions::from_rows(&rows).unwrap();
        let mut diam: f64 = 0.0;
        for a in hs.rows() { for b in hs.rows() {
            diam = diam.max(a.iter().zip(b).map(|(x, y)| ((x - y) as f64).powi(2)).sum::<f64>().sqrt());
        }}
        let nf = (n - f) as f64;
        let shrink = (2.0 * nf.sqrt()).min((dim as f64).sqrt());
        let cases: Vec<(Box<dyn Aggregator>, f64)> = vec![
            (Box::new(TrimmedMean::new(f)), f as f64 / nf * shrink),
            (Box::new(Median {}), n as f64 / (2.0 * nf) * shrink),
            (Box::new(MeanAroundMedian { f }), 2.0 * f as f64 / nf * shrink),
            (Box::new(MinimumDiameterAveraging::new(f)), 2.0 * f as f64 / nf),
        ];
        for (mut rule, lambda) in cases {
            let out = rule.aggregate(&s).unwrap();
            let err: Vec<f64> = out.iter().zip(&mean).map(|(&o, m)| o as f64 - m).collect();
            let lhs = norm(&err);
            prop_assert!(lhs <= lambda * diam * (1.0 + 1e-4) + 1e-4, "{}: ‖ξ‖ = {} > λ·diam = {} · {}", rule.name(), lhs, lambda, diam);
        }
    }
}
