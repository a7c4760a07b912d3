use super::minimum_diameter_averaging::{check_subsets, default_budget};
use super::{precheck, Aggregator};
use crate::kernels::{distances, linalg, rowsum};
use crate::{Error, Submissions};
use serde::{Deserialize, Serialize};

/// SMEA, smallest maximum eigenvalue averaging: the average of the subset `S` of `n − f`
/// vectors whose empirical covariance `(1/|S|) Σ_{i∈S} (xᵢ − x̄_S)(xᵢ − x̄_S)ᵀ` has the smallest
/// largest eigenvalue. Needs `n > 2f`. (Allouah, Guerraoui, Gupta, Pinot & Stephan, "On the
/// privacy-robustness-utility trilemma in distributed learning", ICML 2023.)
///
/// Exact: every subset's top eigenvalue comes from its `(n−f) × (n−f)` centred Gram matrix
/// (Jacobi rotations), not from ByzFL's single random power-iteration step. Subsets are
/// visited in lexicographic order and the first smallest wins; a subset holding a non-finite
/// vector has an infinite eigenvalue. Refuses past `subset_budget` subsets like
/// [`super::MinimumDiameterAveraging`].
///
/// ```
/// # use byzadam_robust::{aggregators::SmallestEigenvalueAveraging, Aggregator, Submissions};
/// let s = Submissions::from_rows(&[[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [30.0, 30.0]])?;
/// let out = SmallestEigenvalueAveraging::new(1).aggregate(&s)?;
/// assert!((out[0] - 1.0 / 3.0).abs() < 1e-6 && (out[1] - 1.0 / 3.0).abs() < 1e-6);
/// # Ok::<(), byzadam_robust::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[doc(alias = "SMEA")]
pub struct SmallestEigenvalueAveraging {
    /// Number of Byzantine inputs tolerated; subsets have `n − f` members.
    pub f: usize,
    /// Largest `C(n, f)` the exact search may face (default 10,000,000).
    #[serde(default = "default_budget")]
    pub subset_budget: u64,
}

impl SmallestEigenvalueAveraging {
    /// With the default subset budget.
    pub fn new(f: usize) -> Self {
        Self {
            f,
            subset_budget: default_budget(),
        }
    }
}

/// Advances `c` (strictly increasing, values `< n`) to the next `k`-combination in
/// lexicographic order; false after the last.
pub(crate) fn next_combination(c: &mut [usize], n: usize) -> bool {
    let k = c.len();
    let mut i = k;
    while i > 0 {
        i -= 1;
        if c[i] < n - k + i {
            c[i] += 1;
            for j in i + 1..k {
                c[j] = c[j - 1] + 1;
            }
            return true;
        }
    }
    false
}

impl Aggregator for SmallestEigenvalueAveraging {
    fn name(&self) -> &'static str {
        "smallest_eigenvalue_averaging"
    }

    fn validate(&self) -> Result<(), Error> {
        crate::params::at_least_one(self.name(), "subset_budget", self.subset_budget)
    }

    fn check(&self, n: usize) -> Result<(), Error> {
        self.validate()?;
        check_subsets(self.name(), n, self.f, self.subset_budget)
    }

    fn aggregate_into(&mut self, s: &Submissions, out: &mut [f32]) -> Result<(), Error> {
        precheck(self, s, out)?;
        let (n, k) = (s.n(), s.n() - self.f);
        let mut d2 = vec![0.0; n * n];
        distances::pairwise_sq(s, &mut d2);
        let w = vec![1.0 / k as f64; k];
        let mut subset: Vec<usize> = (0..k).collect();
        let mut best = subset.clone();
        let mut best_lambda = f64::INFINITY;
        loop {
            let finite = subset
                .iter()
                .all(|&i| subset.iter().all(|&j| d2[i * n + j].is_finite()));
            if finite {
                let g = linalg::centred_gram(&d2, n, &subset, &w);
                let (lambda, _) = linalg::top_eigen(&g, k);
                let lambda = lambda / k as f64;
                if lambda < best_lambda {
                    best_lambda = lambda;
                    best.copy_from_slice(&subset);
                }
            }
            if !next_combination(&mut subset, n) {
                break;
            }
        }
        rowsum::mean_of(s, &best, out);
        Ok(())
    }
}

use crate::params::F;

impl crate::params::Described for SmallestEigenvalueAveraging {
    const PARAMS: &'static [crate::params::Param] = &[F, crate::params::SUBSET_BUDGET];
    const REQUIREMENT: &'static str = "n > 2f, C(n, f) ≤ subset_budget";
}
