//! Small cases computed by hand, non-finite inputs, and typed errors.

mod common;

use byzadam_robust::aggregators::*;
use byzadam_robust::attacks::*;
use byzadam_robust::preaggregators::*;
use byzadam_robust::{
    Aggregator, Attack, AttackContext, Error, Pipeline, PreAggregator, Submissions,
};
use common::all_rules;
use rand::SeedableRng;

fn s<const D: usize>(rows: &[[f32; D]]) -> Submissions<'static> {
    Submissions::from_rows(rows).unwrap()
}

fn rng() -> rand_chacha::ChaCha20Rng {
    rand_chacha::ChaCha20Rng::seed_from_u64(42)
}

#[test]
fn trimmed_mean_ignores_f_outliers_per_coordinate() -> Result<(), Error> {
    // Per coordinate, sorted: [-100, 1, 2, 3, 1e9] and [-7, 4, 5, 6, 7]; drop one each end.
    let x = s(&[
        [1.0, 7.0],
        [1e9, 5.0],
        [2.0, -7.0],
        [-100.0, 4.0],
        [3.0, 6.0],
    ]);
    assert_eq!(TrimmedMean::new(1).aggregate(&x)?, [2.0, 5.0]);
    assert_eq!(TrimmedMean::new(2).aggregate(&x)?, [2.0, 5.0]);
    Ok(())
}

#[test]
fn median_of_even_count_is_the_mean_of_the_middle_two() -> Result<(), Error> {
    let x = s(&[[1.0], [4.0], [f32::INFINITY], [-3.0]]);
    assert_eq!(Median {}.aggregate(&x)?, [2.5]);
    Ok(())
}

#[test]
fn minimum_diameter_averaging_divides_by_n_minus_f_not_n_minus_2f() -> Result<(), Error> {
    // n = 5, f = 1: the four clustered points are kept and averaged over 4 (the thesis's
    // 1/(n−2f) = 1/3 would give 4/3 × their mean).
    let x = s(&[[1.0], [1.0], [1.0], [1.0], [90.0]]);
    assert_eq!(MinimumDiameterAveraging::new(1).aggregate(&x)?, [1.0]);
    Ok(())
}

#[test]
fn geometric_median_without_a_finite_row_is_nan_not_zero() -> Result<(), Error> {
    // Every row holds a NaN or ±∞: no point is a median. ByzFL 0.0.11 gives [nan, nan] for
    // both inputs (its Weiszfeld step divides by a zero weight sum); the old result, the
    // start point 0, looked like a real aggregate.
    for x in [
        s(&[
            [f32::NAN, f32::NAN],
            [f32::NAN, f32::NAN],
            [f32::NAN, f32::NAN],
        ]),
        s(&[[f32::INFINITY, 1.0], [f32::INFINITY, 2.0], [f32::NAN, 3.0]]),
    ] {
        let out = GeometricMedian::default().aggregate(&x)?;
        assert!(out.iter().all(|v| v.is_nan()), "{out:?}");
    }
    // One finite row is enough: it is the median.
    let x = s(&[[f32::NAN, 0.0], [2.0, 3.0], [f32::INFINITY, 0.0]]);
    let out = GeometricMedian::default().aggregate(&x)?;
    assert!(
        (out[0] - 2.0).abs() < 1e-5 && (out[1] - 3.0).abs() < 1e-5,
        "{out:?}"
    );
    Ok(())
}

#[test]
fn geometric_median_of_a_square_and_an_outlier_is_near_the_square() -> Result<(), Error> {
    // Four corners of the unit square and one far point: by symmetry the optimum lies on the
    // diagonal, pulled only slightly toward the outlier (each corner pulls with unit force).
    let x = s(&[
        [0.0, 0.0],
        [1.0, 0.0],
        [0.0, 1.0],
        [1.0, 1.0],
        [100.0, 100.0],
    ]);
    let gm = GeometricMedian {
        nu: 1e-9,
        max_iterations: 1000,
        tolerance: 1e-12,
    }
    .aggregate(&x)?;
    assert!((gm[0] - gm[1]).abs() < 1e-4, "{gm:?}");
    assert!(gm[0] > 0.5 && gm[0] < 1.0, "{gm:?}");
    // First-order optimality: the unit vectors from z to the points sum to ~0.
    let z = [gm[0] as f64, gm[1] as f64];
    let mut g = [0.0f64; 2];
    for r in x.rows() {
        let d = [r[0] as f64 - z[0], r[1] as f64 - z[1]];
        let norm = (d[0] * d[0] + d[1] * d[1]).sqrt();
        g[0] += d[0] / norm;
        g[1] += d[1] / norm;
    }
    assert!(g[0].abs() < 1e-3 && g[1].abs() < 1e-3, "{g:?}");
    Ok(())
}

#[test]
fn centered_clipping_carries_its_centre_across_rounds_and_resets() -> Result<(), Error> {
    let x = s(&[[3.0], [3.0], [3.0]]);
    let mut cc = CenteredClipping::new(1.0, 1);
    // Each round moves the centre by at most τ = 1 toward 3.
    assert_eq!(cc.aggregate(&x)?, [1.0]);
    assert_eq!(cc.aggregate(&x)?, [2.0]);
    assert_eq!(cc.aggregate(&x)?, [3.0]);
    cc.reset();
    assert_eq!(cc.aggregate(&x)?, [1.0]);
    Ok(())
}

#[test]
fn bulyan_hand_case() -> Result<(), Error> {
    // n = 7, f = 1: θ = 5 selected by Krum (the outlier never), β = 3 closest to the median.
    let x = s(&[[0.0], [1.0], [2.0], [3.0], [4.0], [5.0], [1000.0]]);
    let out = Bulyan { f: 1 }.aggregate(&x)?;
    // Krum rounds (neighbours 4, 3, 2, 1, 0 as the set shrinks; score ties to the smaller total
    // squared distance): 3 (ties 2 on score 10, total 994,028 < 996,023), then 2 (score 9),
    // then 4 (ties 1 on 10), then 1 (ties 0 on 1), then 5 (all 0; 5 is closer to 1000 than 0).
    // Selected {1, 2, 3, 4, 5}; β = 3 values around the median 3: {2, 3, 4}, mean 3.
    assert_eq!(out, [3.0]);
    Ok(())
}

#[test]
fn smallest_eigenvalue_averaging_drops_the_vector_that_stretches_the_spread() -> Result<(), Error> {
    let x = s(&[[0.0, 0.0], [0.1, 0.0], [0.0, 0.1], [0.1, 0.1], [5.0, -5.0]]);
    let out = SmallestEigenvalueAveraging::new(1).aggregate(&x)?;
    assert!(
        (out[0] - 0.05).abs() < 1e-6 && (out[1] - 0.05).abs() < 1e-6,
        "{out:?}"
    );
    Ok(())
}

/// f Byzantine rows of +∞, −∞, NaN or a mix: every robust rule returns a finite vector; the
/// plain average does not (by its definition).
#[test]
fn robust_rules_survive_f_non_finite_vectors() -> Result<(), Error> {
    let honest = [
        [1.0f32, -2.0, 0.5],
        [1.5, -1.0, 0.0],
        [0.5, -1.5, 1.0],
        [1.2, -2.2, 0.7],
        [0.9, -1.8, 0.2],
        [1.1, -1.1, 0.4],
        [0.7, -1.7, 0.9],
    ];
    for bad in [
        [f32::INFINITY; 3],
        [f32::NEG_INFINITY; 3],
        [f32::NAN; 3],
        [f32::INFINITY, f32::NAN, f32::NEG_INFINITY],
    ] {
        for f in 1..=2 {
            let mut rows = honest.to_vec();
            rows.extend(std::iter::repeat_n(bad, f));
            let x = Submissions::from_rows(&rows)?;
            let n = x.n();
            let rules: Vec<Box<dyn Aggregator>> = vec![
                Box::new(TrimmedMean::new(f)),
                Box::new(Median {}),
                Box::new(MeanAroundMedian { f }),
                Box::new(MinimumDiameterAveraging::new(f)),
                Box::new(Krum::new(f)),
                Box::new(MultiKrum {
                    f,
                    m: None,
                    byzfl: false,
                }),
                Box::new(GeometricMedian::default()),
                Box::new(CenteredClipping::new(1.0, 5)),
                Box::new(Bulyan { f: 1 }),
                Box::new(Monna { f, pivot: 0 }),
                Box::new(CovarianceFilter { f }),
                Box::new(SmallestEigenvalueAveraging::new(f)),
            ];
            for mut rule in rules {
                if rule.check(n).is_err() {
                    continue;
                }
                let out = rule.aggregate(&x)?;
                assert!(
                    out.iter().all(|v| v.is_finite()),
                    "{} with f = {f} of {bad:?}: {out:?}",
                    rule.name()
                );
            }
            // Through the pre-aggregators too.
            for pre in [
                Box::new(NearestNeighborMixing::new(f)) as Box<dyn PreAggregator>,
                Box::new(StaticClipping { c: 1.0 }),
                Box::new(AdaptiveRobustClipping { f }),
            ] {
                let mut server = Pipeline::new(vec![pre], Box::new(TrimmedMean::new(f)));
                let out = server.run(&x, &mut rng())?;
                assert!(
                    out.iter().all(|v| v.is_finite()),
                    "{:?} + trimmed mean: {out:?}",
                    server.preaggregators()[0]
                );
            }
        }
    }
    let x = s(&[[1.0], [2.0], [f32::INFINITY]]);
    assert_eq!(Average {}.aggregate(&x)?, [f32::INFINITY]);
    Ok(())
}

#[test]
fn requirements_fail_with_typed_errors_not_panics() {
    let x = s(&[[1.0], [2.0], [3.0], [4.0]]);
    assert!(matches!(
        TrimmedMean::new(2).aggregate(&x),
        Err(Error::TooFewInputs { n: 4, f: 2, .. })
    ));
    assert!(matches!(
        Krum::new(1).aggregate(&x),
        Err(Error::TooFewInputs { .. })
    ));
    assert!(matches!(
        Bulyan { f: 1 }.aggregate(&x),
        Err(Error::TooFewInputs { .. })
    ));
    assert!(matches!(
        MultiKrum {
            f: 0,
            m: Some(9),
            byzfl: false
        }
        .aggregate(&x),
        Err(Error::InvalidParameter { name: "m", .. })
    ));
    assert!(matches!(
        Monna { f: 1, pivot: 4 }.aggregate(&x),
        Err(Error::InvalidParameter { name: "pivot", .. })
    ));
    let mut out = [0.0f32; 2];
    assert!(matches!(
        Average {}.aggregate_into(&x, &mut out),
        Err(Error::OutputLength {
            expected: 1,
            found: 2
        })
    ));
    assert!(matches!(
        Submissions::from_rows(&[vec![1.0f32], vec![1.0, 2.0]]),
        Err(Error::RaggedRow { row: 1, .. })
    ));
    assert!(matches!(
        Submissions::from_rows::<Vec<f32>>(&[]),
        Err(Error::Empty)
    ));
    assert!(matches!(
        Submissions::from_flat(vec![1.0; 5], 2),
        Err(Error::NotWholeRows { .. })
    ));
    for mut rule in all_rules(4) {
        assert!(
            rule.aggregate(&Submissions::default()).is_err(),
            "{} accepted an empty input",
            rule.name()
        );
    }
}

#[test]
fn exact_searches_refuse_past_their_budget_instead_of_running_for_hours() {
    let mda = MinimumDiameterAveraging {
        f: 20,
        subset_budget: 10_000_000,
        byzfl: false,
    };
    // C(50, 20) ≈ 4.7e13 subsets.
    assert!(
        matches!(mda.check(50), Err(Error::SubsetBudgetExceeded { subsets, .. }) if subsets == 47_129_212_243_960)
    );
    assert!(SmallestEigenvalueAveraging::new(20).check(50).is_err());
    assert!(MinimumDiameterAveraging::new(5).check(15).is_ok());
}

#[test]
fn attacks_refuse_what_their_threat_model_does_not_provide() {
    let ctx = AttackContext {
        n: 5,
        byzantine: 2,
        dim: 3,
        own: None,
        honest: None,
        server: None,
    };
    let mut out = Submissions::default();
    assert!(matches!(
        Little::default().forge(&ctx, &mut rng(), &mut out),
        Err(Error::MissingView { .. })
    ));
    assert!(matches!(
        ALittleIsEnough::default().forge(&ctx, &mut rng(), &mut out),
        Err(Error::MissingView { .. })
    ));
    assert!(matches!(
        OptimalAlie::default().forge(&ctx, &mut rng(), &mut out),
        Err(Error::MissingView { .. })
    ));
    assert!(
        Little::default().check(5, 1).is_err(),
        "sample std of one worker is undefined"
    );
    assert!(Mimic { target: 3 }.check(5, 2).is_err());
    PositiveInfinity {}
        .forge(&ctx, &mut rng(), &mut out)
        .unwrap();
    assert_eq!((out.n(), out.dim()), (2, 3));
}

#[test]
fn baruch_z_for_the_thesis_setting() {
    // n = 15, f = 5: s = ⌊15/2 + 1⌋ − 5 = 3, z = Φ⁻¹(12/15) = Φ⁻¹(0.8).
    assert!((baruch_z(15, 5) - 0.8416212335729143).abs() < 1e-8);
}

#[test]
fn optimal_attacks_do_at_least_as_much_damage_as_their_starting_factor() -> Result<(), Error> {
    let mut r = rng();
    use rand::Rng;
    let honest: Vec<Vec<f32>> = (0..10)
        .map(|_| (0..20).map(|_| r.gen_range(-1.0..1.0)).collect())
        .collect();
    let honest = Submissions::from_rows(&honest)?;
    let server = Pipeline::new(vec![], Box::new(TrimmedMean::new(5)));
    let ctx = AttackContext {
        n: 15,
        byzantine: 5,
        dim: 20,
        own: None,
        honest: Some(&honest),
        server: Some(&server),
    };
    let damage = |byz: &Submissions| -> f64 {
        let mut all = honest.clone();
        all.extend(byz).unwrap();
        let out = server.clone().run(&all, &mut rng()).unwrap();
        let mean = Average {}.aggregate(&honest).unwrap();
        out.iter()
            .zip(&mean)
            .map(|(a, b)| ((a - b) as f64).powi(2))
            .sum::<f64>()
            .sqrt()
    };
    let mut out = Submissions::default();
    OptimalAlie::default().forge(&ctx, &mut rng(), &mut out)?;
    let optimal = damage(&out);
    ALittleIsEnough { z: Some(0.0) }.forge(&ctx, &mut rng(), &mut out)?;
    assert!(optimal >= damage(&out));
    ALittleIsEnough { z: None }.forge(&ctx, &mut rng(), &mut out)?;
    let baruch = damage(&out);
    assert!(optimal > 0.0 && baruch > 0.0);
    OptimalEmpire::default().forge(&ctx, &mut rng(), &mut out)?;
    let opt_empire = damage(&out);
    Empire {
        epsilon: 0.0,
        base: Base::HonestMean,
    }
    .forge(&ctx, &mut rng(), &mut out)?;
    assert!(opt_empire >= damage(&out));
    Ok(())
}

/// `apply_into` (a caller's buffer, what the Python bindings use) writes exactly what `apply`
/// writes, for every pre-aggregator, and refuses a buffer of the wrong length.
#[test]
fn apply_into_a_slice_equals_apply_for_every_preaggregator() {
    let rows: Vec<Vec<f32>> = (0..7)
        .map(|i| {
            (0..5)
                .map(|j| ((i * 5 + j) as f32).sin() * (1.0 + i as f32))
                .collect()
        })
        .collect();
    let mut rows = rows;
    rows[2][1] = f32::INFINITY;
    let s = Submissions::from_rows(&rows).unwrap();
    let all: Vec<Box<dyn PreAggregator>> = vec![
        Box::new(NearestNeighborMixing::new(2)),
        Box::new(Bucketing { s: 3 }),
        Box::new(StaticClipping { c: 1.5 }),
        Box::new(AdaptiveRobustClipping { f: 2 }),
    ];
    for mut p in all {
        let mut via_apply = Submissions::default();
        p.apply(
            &s,
            &mut via_apply,
            &mut rand_chacha::ChaCha20Rng::seed_from_u64(3),
        )
        .unwrap();
        let m = p.output_len(7).unwrap();
        let mut buf = vec![f32::NAN; m * 5];
        p.apply_into(
            &s,
            &mut buf,
            &mut rand_chacha::ChaCha20Rng::seed_from_u64(3),
        )
        .unwrap();
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&buf), bits(via_apply.as_flat()), "{}", p.name());
        let mut short = vec![0.0; m * 5 - 1];
        assert_eq!(
            p.apply_into(
                &s,
                &mut short,
                &mut rand_chacha::ChaCha20Rng::seed_from_u64(3)
            ),
            Err(Error::OutputLength {
                expected: m * 5,
                found: m * 5 - 1
            }),
            "{}",
            p.name()
        );
    }
}

/// ByzFL 0.0.11's conventions as options (`byzfl = true`), against brute-force twins written
/// as ByzFL computes: Krum scores over `n − f − 1` neighbours with ties to the lower index,
/// Multi-Krum's `m` best of those, MDA's ties to the lexicographically first subset. Small
/// integer coordinates make ties common.
#[test]
fn byzfl_conventions_match_their_brute_force_twins() {
    use rand::Rng;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
    let (n, f, d) = (7usize, 2usize, 3usize);
    for _ in 0..200 {
        let rows: Vec<Vec<f32>> = (0..n)
            .map(|_| (0..d).map(|_| rng.gen_range(0..3) as f32).collect())
            .collect();
        let s = Submissions::from_rows(&rows).unwrap();
        let d2 = |i: usize, j: usize| -> f64 {
            rows[i]
                .iter()
                .zip(&rows[j])
                .map(|(a, b)| ((a - b) as f64).powi(2))
                .sum()
        };
        // Krum, ByzFL: the n − f − 1 smallest distances to the others, first minimum.
        let scores: Vec<f64> = (0..n)
            .map(|i| {
                let mut others: Vec<f64> = (0..n).filter(|&j| j != i).map(|j| d2(i, j)).collect();
                others.sort_by(f64::total_cmp);
                others[..n - f - 1].iter().sum()
            })
            .collect();
        let first_min = (0..n)
            .min_by(|&a, &b| scores[a].total_cmp(&scores[b]).then(a.cmp(&b)))
            .unwrap();
        let krum = Krum { f, byzfl: true }.aggregate(&s).unwrap();
        assert_eq!(krum, rows[first_min]);
        // Multi-Krum, ByzFL: the n − f best scores (lower index on ties), their mean.
        let mut order: Vec<usize> = (0..n).collect();
        order.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]).then(a.cmp(&b)));
        let chosen = &order[..n - f];
        let multi = MultiKrum {
            f,
            m: None,
            byzfl: true,
        }
        .aggregate(&s)
        .unwrap();
        for c in 0..d {
            let mean = chosen.iter().map(|&i| rows[i][c] as f64).sum::<f64>() / chosen.len() as f64;
            assert!((multi[c] as f64 - mean).abs() < 1e-6, "{multi:?} vs {mean}");
        }
        // MDA, ByzFL: the lexicographically first subset of the smallest diameter.
        let mut best: Option<(f64, Vec<usize>)> = None;
        let mut subset: Vec<usize> = (0..n - f).collect();
        loop {
            let diam = subset
                .iter()
                .flat_map(|&i| subset.iter().map(move |&j| (i, j)))
                .map(|(i, j)| d2(i, j))
                .fold(0.0, f64::max);
            if best.as_ref().is_none_or(|(b, _)| diam < *b) {
                best = Some((diam, subset.clone()));
            }
            // Next combination in lexicographic order.
            let k = subset.len();
            let Some(i) = (0..k).rev().find(|&i| subset[i] < n - k + i) else {
                break;
            };
            subset[i] += 1;
            for j in i + 1..k {
                subset[j] = subset[j - 1] + 1;
            }
        }
        let first = best.unwrap().1;
        let mut mda = MinimumDiameterAveraging::new(f);
        mda.byzfl = true;
        let got = mda.aggregate(&s).unwrap();
        for c in 0..d {
            let mean = first.iter().map(|&i| rows[i][c] as f64).sum::<f64>() / first.len() as f64;
            assert!((got[c] as f64 - mean).abs() < 1e-6, "{got:?} vs {first:?}");
        }
    }
    // ByzFL's Krum needs only n > 2f.
    assert!(Krum { f: 3, byzfl: true }.check(7).is_ok());
    assert!(Krum::new(3).check(7).is_err());
}

/// A huge `f` (as a hostile config or `--f 9223372036854775808` gives) is refused by every
/// requirement, never wrapped past it into an index out of bounds or a silent result
/// (issue 22: `2f` and `4f + 2` overflowed in release builds).
#[test]
fn huge_f_is_refused_by_every_requirement_without_overflow() {
    let s = Submissions::from_rows(&vec![vec![1.0f32, 2.0]; 15]).unwrap();
    for f in [
        usize::MAX,
        usize::MAX / 2 + 1,
        usize::MAX / 4 + 1,
        1usize << 62,
    ] {
        for e in byzadam_robust::registry().aggregators {
            if !e.params.iter().any(|p| p.name == "f") {
                continue;
            }
            let cfg: byzadam_robust::AggregatorConfig =
                serde_json::from_value(serde_json::json!({"name": e.name, "f": f})).unwrap();
            let mut rule = cfg.build();
            assert!(rule.check(15).is_err(), "{} accepted f = {f}", e.name);
            assert!(
                rule.aggregate(&s).is_err(),
                "{} aggregated with f = {f}",
                e.name
            );
        }
        for low_high in [(f, 1usize), (1, f)] {
            let t = TrimmedMean {
                f: 0,
                low: Some(low_high.0),
                high: Some(low_high.1),
            };
            assert!(t.check(15).is_err());
        }
        for e in byzadam_robust::registry().preaggregators {
            if !e.params.iter().any(|p| p.name == "f") {
                continue;
            }
            let cfg: byzadam_robust::PreAggregatorConfig =
                serde_json::from_value(serde_json::json!({"name": e.name, "f": f})).unwrap();
            assert!(
                cfg.build().output_len(15).is_err(),
                "{} accepted f = {f}",
                e.name
            );
        }
    }
}
