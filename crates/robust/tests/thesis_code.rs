//! The thesis's code's rules (TheBats/Master-Thesis @ dd4fad3, `aggregation.py` and
//! `preaggregation.py`): the asymmetric trimmed mean, the largest-distance filter and the
//! segment-summed distances, against hand-computed cases and brute-force twins written as that
//! code computes them.

use byzadam_robust::aggregators::{LargestDistanceFilter, MinimumDiameterAveraging, TrimmedMean};
use byzadam_robust::preaggregators::NearestNeighborMixing;
use byzadam_robust::{Aggregator, AggregatorConfig, PreAggregator, Submissions};
use proptest::prelude::*;
use rand::SeedableRng;

fn rows(v: &[Vec<f32>]) -> Submissions<'static> {
    Submissions::from_rows(v).unwrap()
}

#[test]
fn the_codes_trimmed_mean_keeps_ranks_f_plus_1_to_n_minus_f_minus_1() {
    // `sorted_m[range(f+1, n-f)]` with n = 15, f = 5: ranks 6, 7, 8, 9 of 0..14, mean 7.5;
    // the text's trimmed mean keeps ranks 5..9, mean 7.
    let values: Vec<Vec<f32>> = [9, 3, 14, 0, 7, 11, 1, 5, 13, 2, 8, 12, 4, 10, 6]
        .iter()
        .map(|&v| vec![v as f32, -(v as f32)])
        .collect();
    let s = rows(&values);
    let code = TrimmedMean {
        f: 5,
        low: Some(6),
        high: Some(5),
    };
    assert_eq!(code.clone().aggregate(&s).unwrap(), [7.5, -6.5]);
    assert_eq!(TrimmedMean::new(5).aggregate(&s).unwrap(), [7.0, -7.0]);
    // `high` defaults to f.
    let mut low_only = TrimmedMean {
        f: 5,
        low: Some(6),
        high: None,
    };
    assert_eq!(low_only.aggregate(&s).unwrap(), [7.5, -6.5]);
    // It needs n > low + high.
    assert!(code.check(12).is_ok());
    assert!(code.check(11).is_err());
    let err = TrimmedMean {
        f: 1,
        low: Some(3),
        high: Some(2),
    }
    .aggregate(&rows(&vec![vec![1.0]; 5]))
    .unwrap_err();
    assert!(err.to_string().contains("low + high"), "{err}");
}

#[test]
fn the_asymmetric_trimmed_mean_is_read_from_configs_and_the_symmetric_one_serialises_as_before() {
    let cfg: AggregatorConfig =
        serde_json::from_str(r#"{"name": "cwtm", "f": 5, "low": 6}"#).unwrap();
    assert_eq!(
        cfg,
        AggregatorConfig::TrimmedMean(TrimmedMean {
            f: 5,
            low: Some(6),
            high: None
        })
    );
    // Run ids are hashes of the canonical config: the symmetric rule keeps its old form.
    let old = serde_json::to_string(&AggregatorConfig::TrimmedMean(TrimmedMean::new(5))).unwrap();
    assert_eq!(old, r#"{"name":"trimmed_mean","f":5}"#);
}

proptest! {
    #[test]
    fn the_asymmetric_trimmed_mean_is_the_mean_of_its_sorted_window(
        (n, dim) in (3usize..=20, 1usize..=40),
        seed in 0u64..1000,
        lo_share in 0.0f64..1.0,
        hi_share in 0.0f64..1.0,
    ) {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let values: Vec<Vec<f32>> = (0..n)
            .map(|_| (0..dim).map(|_| rand::Rng::gen_range(&mut rng, -5i32..=5) as f32 * 0.5).collect())
            .collect();
        let budget = n - 1;
        let lo = ((budget as f64) * lo_share) as usize;
        let hi = (((budget - lo) as f64) * hi_share) as usize;
        let out = TrimmedMean { f: 0, low: Some(lo), high: Some(hi) }
            .aggregate(&rows(&values))
            .unwrap();
        for c in 0..dim {
            let mut col: Vec<f64> = values.iter().map(|r| r[c] as f64).collect();
            col.sort_by(f64::total_cmp);
            let kept = &col[lo..n - hi];
            let mean = kept.iter().sum::<f64>() / kept.len() as f64;
            prop_assert!((out[c] as f64 - mean).abs() < 1e-5, "coordinate {}: {} vs {}", c, out[c], mean);
        }
    }
}

/// The thesis's code's MDA, as `aggregation.py` writes it: per segment `torch.norm` of the
/// difference, summed; per row the entry `argsort` puts last (NaN sorts after every number);
/// the `n − f` rows with the lowest such scores (ties: the lower index), averaged.
fn code_mda(values: &[Vec<f32>], segments: &[usize], f: usize) -> Vec<f64> {
    let n = values.len();
    let dist = |i: usize, j: usize| -> f64 {
        let mut at = 0;
        let mut total = 0.0;
        for &len in segments {
            let sq: f64 = (at..at + len)
                .map(|k| ((values[j][k] - values[i][k]) as f64).powi(2))
                .sum();
            total += sq.sqrt();
            at += len;
        }
        total
    };
    let key = |x: f64| (x.is_nan(), if x.is_nan() { 0.0 } else { x });
    let scores: Vec<f64> = (0..n)
        .map(|i| {
            let mut row: Vec<f64> = (0..n).map(|j| dist(i, j)).collect();
            row.sort_by(|a, b| key(*a).partial_cmp(&key(*b)).unwrap());
            row[n - 1]
        })
        .collect();
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&a, &b| {
        key(scores[a])
            .partial_cmp(&key(scores[b]))
            .unwrap()
            .then(a.cmp(&b))
    });
    let kept = &order[..n - f];
    (0..values[0].len())
        .map(|k| kept.iter().map(|&i| values[i][k] as f64).sum::<f64>() / kept.len() as f64)
        .collect()
}

#[test]
fn the_largest_distance_filter_by_hand() {
    // Largest distances: 0 → 20, 1 → 19, 2 → 18, 3 → 17, 20 → 20: keep {1, 2, 3}, mean 2.
    // Exact MDA keeps a subset of diameter 2: {0, 1, 2} (tied with {1, 2, 3}, first), mean 1.
    let s = rows(&[vec![0.0], vec![1.0], vec![2.0], vec![3.0], vec![20.0]]);
    assert_eq!(LargestDistanceFilter::new(2).aggregate(&s).unwrap(), [2.0]);
    assert_eq!(
        MinimumDiameterAveraging::new(2).aggregate(&s).unwrap(),
        [1.0]
    );
    // Segments change the distance: rows (0, 0), (3, 4), (3, 0), (0, 4), (30, 40).
    // Whole-vector L2 from row 0: 0, 5, 3, 4, 50. Segments [1, 1] (|Δx| + |Δy|): 0, 7, 3, 4, 70.
    let s = rows(&[
        vec![0.0, 0.0],
        vec![3.0, 4.0],
        vec![3.0, 0.0],
        vec![0.0, 4.0],
        vec![30.0, 40.0],
    ]);
    // Scores with f = 1 (largest distance, L1 here): 70, 63, 67, 66, 70: drop row 4 (ties with
    // row 0, which has the lower index, so row 0 is kept).
    let seg = LargestDistanceFilter {
        f: 1,
        segments: vec![1, 1],
    };
    assert_eq!(seg.clone().aggregate(&s).unwrap(), [1.5, 2.0]);
    // With f = 2 the two highest scores go: rows 0 and 4 (70, 70); kept rows 1, 2, 3.
    let mut seg2 = LargestDistanceFilter {
        f: 2,
        segments: vec![1, 1],
    };
    assert_eq!(seg2.aggregate(&s).unwrap(), [2.0, 8.0 / 3.0]);
    // Segments must cover the vector.
    let bad = LargestDistanceFilter {
        f: 1,
        segments: vec![1, 2],
    };
    let err = bad.clone().aggregate(&s).unwrap_err();
    assert!(err.to_string().contains("segments"), "{err}");
    assert!(LargestDistanceFilter {
        f: 1,
        segments: vec![0, 2]
    }
    .aggregate(&s)
    .is_err());
    assert!(LargestDistanceFilter::new(5).check(5).is_err());
}

#[test]
fn infinite_rows_have_nan_scores_and_are_dropped_as_numpy_sorts_them() {
    // 4 honest rows, 2 rows of +∞: honest–∞ distances are ∞, ∞–∞ (and ∞ to itself) NaN, so
    // every honest score is ∞ and every infinite row's NaN: the honest rows are kept.
    let mut v: Vec<Vec<f32>> = (0..4).map(|i| vec![i as f32, 1.0, -(i as f32)]).collect();
    v.insert(1, vec![f32::INFINITY; 3]);
    v.push(vec![f32::INFINITY; 3]);
    let out = LargestDistanceFilter {
        f: 2,
        segments: vec![2, 1],
    }
    .aggregate(&rows(&v))
    .unwrap();
    assert_eq!(out, [1.5, 1.0, -1.5]);
    assert_eq!(
        out.iter().map(|&x| x as f64).collect::<Vec<_>>(),
        code_mda(&v, &[2, 1], 2)
    );
}

proptest! {
    #[test]
    fn the_largest_distance_filter_is_the_codes_mda(
        (n, dim) in (2usize..=12, 1usize..=30),
        seed in 0u64..10_000,
        cuts in prop::collection::vec(0.0f64..1.0, 0..4),
        f_share in 0.0f64..1.0,
        infinite in prop::collection::vec(any::<bool>(), 12),
    ) {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let mut values: Vec<Vec<f32>> = (0..n)
            .map(|_| (0..dim).map(|_| rand::Rng::gen_range(&mut rng, -10.0f32..10.0)).collect())
            .collect();
        for (i, row) in values.iter_mut().enumerate() {
            if infinite[i] && i % 3 == 0 {
                row.fill(if i % 2 == 0 { f32::INFINITY } else { f32::NEG_INFINITY });
            }
        }
        // Segment lengths from cut points.
        let mut points: Vec<usize> = cuts.iter().map(|c| 1 + (c * (dim - 1) as f64) as usize).filter(|&p| p < dim).collect();
        points.sort();
        points.dedup();
        let mut segments = Vec::new();
        let mut at = 0;
        for p in points.into_iter().chain([dim]) {
            segments.push(p - at);
            at = p;
        }
        let f = ((n - 1) as f64 * f_share) as usize;
        let out = LargestDistanceFilter { f, segments: segments.clone() }.aggregate(&rows(&values)).unwrap();
        let twin = code_mda(&values, &segments, f);
        for (a, b) in out.iter().zip(&twin) {
            prop_assert!(
                (a.is_nan() && b.is_nan()) || a == &(*b as f32) || ((*a as f64) - b).abs() < 1e-4 * b.abs().max(1.0),
                "{:?} vs {:?}", out, twin
            );
        }
    }
}

#[test]
fn nnm_with_segments_mixes_by_the_summed_distances_as_the_code_does() {
    // Rows (0, 0), (3, 4), (3, 0), (0, 4); segments [1, 1] (|Δx| + |Δy|), f = 2, k = 2:
    // row 0's distances 0, 7, 3, 4 → {0, 2}; row 1's 7, 0, 4, 3 → {1, 3};
    // row 2's 3, 4, 0, 7 → {2, 0}; row 3's 4, 3, 7, 0 → {3, 1}.
    let s = rows(&[
        vec![0.0, 0.0],
        vec![3.0, 4.0],
        vec![3.0, 0.0],
        vec![0.0, 4.0],
    ]);
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(0);
    let mut out = Submissions::default();
    NearestNeighborMixing {
        f: 2,
        segments: vec![1, 1],
    }
    .apply(&s, &mut out, &mut rng)
    .unwrap();
    assert_eq!(out.as_flat(), &[1.5, 0.0, 1.5, 4.0, 1.5, 0.0, 1.5, 4.0]);
    // With whole-vector L2 distances row 0's are 0, 5, 3, 4: the same neighbours here; the
    // plain NNM agrees.
    let mut plain = Submissions::default();
    NearestNeighborMixing::new(2)
        .apply(&s, &mut plain, &mut rng)
        .unwrap();
    assert_eq!(plain.as_flat(), out.as_flat());
    // An infinite row is ∞ from the finite rows and NaN from itself and the other infinite
    // row: it is replaced by the mean of the first n − f finite rows.
    let v = vec![
        vec![f32::INFINITY, f32::INFINITY],
        vec![1.0, 2.0],
        vec![3.0, 4.0],
        vec![5.0, 6.0],
        vec![f32::INFINITY, f32::INFINITY],
    ];
    NearestNeighborMixing {
        f: 2,
        segments: vec![2],
    }
    .apply(&rows(&v), &mut out, &mut rng)
    .unwrap();
    assert_eq!(&out.as_flat()[..2], &[3.0, 4.0]);
    assert_eq!(&out.as_flat()[8..], &[3.0, 4.0]);
    // The finite rows' neighbourhoods stay finite: {1, 2, 3} for each.
    assert_eq!(&out.as_flat()[2..8], &[3.0, 4.0, 3.0, 4.0, 3.0, 4.0]);
}
