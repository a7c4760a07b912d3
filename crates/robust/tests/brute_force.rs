//! Optimised kernels against brute-force twins written the obvious way.

mod common;

use byzadam_robust::aggregators::*;
use byzadam_robust::preaggregators::NearestNeighborMixing;
use byzadam_robust::{Aggregator, PreAggregator, Submissions};
use common::close;
use proptest::prelude::*;
use rand::SeedableRng;

fn matrix(
    n: std::ops::RangeInclusive<usize>,
    dim: std::ops::RangeInclusive<usize>,
) -> impl Strategy<Value = Vec<Vec<f32>>> {
    (n, dim).prop_flat_map(|(n, dim)| {
        prop::collection::vec(prop::collection::vec(-50.0f32..50.0, dim), n)
    })
}

/// Values with many exact ties and every kind of non-finite value, for the sorting network.
fn nasty_matrix() -> impl Strategy<Value = Vec<Vec<f32>>> {
    let value = prop_oneof![
        4 => (-3i32..=3).prop_map(|v| v as f32),
        1 => Just(f32::INFINITY),
        1 => Just(f32::NEG_INFINITY),
        1 => Just(f32::NAN),
        1 => Just(-0.0f32),
        2 => -1e3f32..1e3,
    ];
    (1usize..=20, 1usize..=150).prop_flat_map(move |(n, dim)| {
        prop::collection::vec(prop::collection::vec(value.clone(), dim), n)
    })
}

fn column(rows: &[Vec<f32>], c: usize) -> Vec<f32> {
    let mut v: Vec<f32> = rows.iter().map(|r| r[c]).collect();
    v.sort_by(f32::total_cmp);
    v
}

fn mean64(v: &[f32]) -> f32 {
    (v.iter().map(|&x| x as f64).sum::<f64>() / v.len() as f64) as f32
}

fn sq(a: &[f32], b: &[f32]) -> f64 {
    let d = a
        .iter()
        .zip(b)
        .map(|(x, y)| ((x - y) as f64).powi(2))
        .sum::<f64>();
    if d.is_nan() {
        f64::INFINITY
    } else {
        d
    }
}

fn same_bits(a: &[f32], b: &[f32]) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b)
            .all(|(x, y)| x.to_bits() == y.to_bits() || (x.is_nan() && y.is_nan()))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    /// The lane-wise sorting network against `sort_by(total_cmp)` per coordinate.
    #[test]
    fn coordinate_wise_rules_equal_sorting_each_column(rows in nasty_matrix(), f_seed in any::<usize>()) {
        let n = rows.len();
        let dim = rows[0].len();
        let s = Submissions::from_rows(&rows).unwrap();
        let f = if n > 1 { f_seed % n.div_ceil(2) } else { 0 };
        let f = if 2 * f >= n { (n - 1) / 2 } else { f };
        let tm = TrimmedMean::new(f).aggregate(&s).unwrap();
        let med = Median {}.aggregate(&s).unwrap();
        let (mut tm_twin, mut med_twin) = (vec![], vec![]);
        for c in 0..dim {
            let col = column(&rows, c);
            tm_twin.push(mean64(&col[f..n - f]));
            med_twin.push(if n % 2 == 1 { col[n / 2] } else { (0.5 * (col[n / 2 - 1] as f64 + col[n / 2] as f64)) as f32 });
        }
        prop_assert!(same_bits(&tm, &tm_twin), "trimmed mean {:?} vs {:?}", tm, tm_twin);
        prop_assert!(same_bits(&med, &med_twin), "median {:?} vs {:?}", med, med_twin);
    }

    /// Mean around median against "sort by distance to the median, keep n − f".
    #[test]
    fn mean_around_median_equals_its_definition(rows in matrix(1..=15, 1..=90), f_seed in any::<usize>()) {
        let n = rows.len();
        let f = if n > 1 { f_seed % n.div_ceil(2) } else { 0 };
        let f = if 2 * f >= n { (n - 1) / 2 } else { f };
        let s = Submissions::from_rows(&rows).unwrap();
        let out = MeanAroundMedian { f }.aggregate(&s).unwrap();
        for (c, &o) in out.iter().enumerate() {
            let col = column(&rows, c);
            let med = if n % 2 == 1 { col[n / 2] as f64 } else { 0.5 * (col[n / 2 - 1] as f64 + col[n / 2] as f64) };
            let mut by_distance = col.clone();
            by_distance.sort_by(|a, b| (*a as f64 - med).abs().total_cmp(&(*b as f64 - med).abs()));
            prop_assert!((o - mean64(&by_distance[..n - f])).abs() <= 1e-5 * o.abs().max(1.0));
        }
    }

    /// MDA against all C(n, f) subsets, diameters from the vectors themselves.
    #[test]
    fn minimum_diameter_averaging_equals_exhaustive_search(rows in matrix(3..=10, 1..=6), f_seed in any::<usize>()) {
        let n = rows.len();
        let f = f_seed % n.div_ceil(2);
        let f = if 2 * f >= n { (n - 1) / 2 } else { f };
        let k = n - f;
        let mut best: Option<(f64, f64, Vec<usize>)> = None;
        for mask in 0u32..(1 << n) {
            if mask.count_ones() as usize != k { continue; }
            let idx: Vec<usize> = (0..n).filter(|i| mask >> i & 1 == 1).collect();
            let (mut diam, mut spread) = (0.0f64, 0.0f64);
            for (a, &i) in idx.iter().enumerate() { for &j in &idx[a + 1..] {
                let d = sq(&rows[i], &rows[j]);
                diam = diam.max(d);
                spread += d;
            }}
            let better = match &best { None => true, Some((bd, bs, _)) => diam < *bd || (diam == *bd && spread < *bs) };
            if better { best = Some((diam, spread, idx)); }
        }
        let idx = best.unwrap().2;
        let dim = rows[0].len();
        let twin: Vec<f32> = (0..dim).map(|c| mean64(&idx.iter().map(|&i| rows[i][c]).collect::<Vec<_>>())).collect();
        let out = MinimumDiameterAveraging::new(f).aggregate(&Submissions::from_rows(&rows).unwrap()).unwrap();
        prop_assert!(close(&out, &twin, 1e-5), "{:?} vs {:?}", out, twin);
    }

    /// Krum and Multi-Krum against scores computed pair by pair.
    #[test]
    fn krum_equals_pairwise_scores(rows in matrix(5..=12, 1..=40), f_seed in any::<usize>()) {
        let n = rows.len();
        let f = f_seed % ((n - 3) / 2 + 1);
        let mut scored: Vec<(f64, f64, usize)> = (0..n).map(|i| {
            let mut d: Vec<f64> = (0..n).filter(|&j| j != i).map(|j| sq(&rows[i], &rows[j])).collect();
            d.sort_by(f64::total_cmp);
            (d[..n - f - 2].iter().sum(), d.iter().sum(), i)
        }).collect();
        scored.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.total_cmp(&b.1)).then(a.2.cmp(&b.2)));
        let s = Submissions::from_rows(&rows).unwrap();
        prop_assert_eq!(Krum::new(f).aggregate(&s).unwrap(), rows[scored[0].2].clone());
        let m = n - f;
        let dim = rows[0].len();
        let twin: Vec<f32> = (0..dim).map(|c| mean64(&scored[..m].iter().map(|x| rows[x.2][c]).collect::<Vec<_>>())).collect();
        let multi = MultiKrum { f, m: None, byzfl: false }.aggregate(&s).unwrap();
        prop_assert!(close(&multi, &twin, 1e-5), "multi-krum {:?} vs {:?}", multi, twin);
    }

    /// Nearest-neighbour mixing against a per-row sort of distances.
    #[test]
    fn nearest_neighbor_mixing_equals_per_row_neighbours(rows in matrix(2..=12, 1..=40), f_seed in any::<usize>()) {
        let n = rows.len();
        let f = f_seed % n;
        let k = n - f;
        let s = Submissions::from_rows(&rows).unwrap();
        let mut out = Submissions::default();
        NearestNeighborMixing::new(f).apply(&s, &mut out, &mut rand_chacha::ChaCha8Rng::seed_from_u64(0)).unwrap();
        let dim = rows[0].len();
        for i in 0..n {
            let mut others: Vec<usize> = (0..n).filter(|&j| j != i).collect();
            others.sort_by(|&a, &b| sq(&rows[i], &rows[a]).total_cmp(&sq(&rows[i], &rows[b])).then(a.cmp(&b)));
            let mut nb = vec![i];
            nb.extend_from_slice(&others[..k - 1]);
            let twin: Vec<f32> = (0..dim).map(|c| mean64(&nb.iter().map(|&j| rows[j][c]).collect::<Vec<_>>())).collect();
            prop_assert!(close(out.row(i), &twin, 1e-5), "row {}", i);
        }
    }
}

/// Past the chunk size the kernels split work; the twins must still agree.
#[test]
fn large_dimensions_cross_chunk_boundaries() {
    let n = 7;
    let dim = 3 * 8192 + 65;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
    use rand::Rng;
    let rows: Vec<Vec<f32>> = (0..n)
        .map(|_| (0..dim).map(|_| rng.gen_range(-1.0..1.0)).collect())
        .collect();
    let s = Submissions::from_rows(&rows).unwrap();
    let tm = TrimmedMean::new(2).aggregate(&s).unwrap();
    for c in [0, 63, 64, 8191, 8192, 8193, dim - 1] {
        let col = column(&rows, c);
        assert_eq!(tm[c], mean64(&col[2..5]), "coordinate {c}");
    }
    let krum = Krum::new(1).aggregate(&s).unwrap();
    assert!(rows.iter().any(|r| r == &krum));
}
