//! Shared helpers for the integration tests.
#![allow(dead_code)]

use byzadam_robust::aggregators::*;
use byzadam_robust::{Aggregator, Submissions};

/// Every aggregation rule, with the largest `f` it accepts for `n` inputs (at least 0).
pub fn all_rules(n: usize) -> Vec<Box<dyn Aggregator>> {
    let f_half = (n - 1) / 2;
    let f_krum = n.saturating_sub(3) / 2;
    let f_bulyan = n.saturating_sub(3) / 4;
    let f_subsets = f_half.min(3);
    let mut rules: Vec<Box<dyn Aggregator>> = vec![
        Box::new(Average {}),
        Box::new(TrimmedMean::new(f_half)),
        Box::new(Median {}),
        Box::new(MeanAroundMedian { f: f_half }),
        Box::new(MinimumDiameterAveraging::new(f_subsets)),
        Box::new(Monna {
            f: f_half,
            pivot: 0,
        }),
        Box::new(GeometricMedian::default()),
        Box::new(CenteredClipping::new(10.0, 3)),
        Box::new(CovarianceFilter { f: f_half }),
        Box::new(SmallestEigenvalueAveraging::new(f_subsets)),
    ];
    if n >= 3 {
        rules.push(Box::new(Krum::new(f_krum)));
        rules.push(Box::new(MultiKrum {
            f: f_krum,
            m: None,
            byzfl: false,
        }));
    }
    if n >= 3 {
        rules.push(Box::new(Bulyan { f: f_bulyan }));
    }
    rules
}

/// Rules that are invariant to the order of their inputs (all but MoNNA, whose pivot is a row
/// index).
pub fn symmetric_rules(n: usize) -> Vec<Box<dyn Aggregator>> {
    all_rules(n)
        .into_iter()
        .filter(|r| r.name() != "monna")
        .collect()
}

/// The rows as vectors.
pub fn rows(s: &Submissions) -> Vec<Vec<f32>> {
    s.rows().map(|r| r.to_vec()).collect()
}

/// Euclidean norm.
pub fn norm(v: &[f64]) -> f64 {
    v.iter().map(|x| x * x).sum::<f64>().sqrt()
}

/// `|a - b| ≤ tol · max(1, |b|)` coordinate-wise.
pub fn close(a: &[f32], b: &[f32], tol: f32) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b)
            .all(|(x, y)| (x - y).abs() <= tol * y.abs().max(1.0))
}
