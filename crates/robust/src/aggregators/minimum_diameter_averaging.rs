use super::{precheck, Aggregator};
use crate::kernels::{distances, rowsum, scratch};
use crate::{binomial, require, Error, Submissions};
use serde::{Deserialize, Serialize};

/// Minimum diameter averaging: the average of the subset of `n − f` vectors whose diameter
/// (largest pairwise L2 distance) is smallest. Needs `n > 2f`. (El Mhamdi et al., ICML 2018;
/// Rousseeuw 1985's MVE idea; the thesis's MDA, Algorithm 14, resilience `λ = 2f/(n−f)`.)
///
/// **The thesis's Algorithm 14 divides by `n − 2f`; that is a typo.** The subset has `n − f`
/// members and the rule is their average, as in the paper it cites and in ByzFL; dividing by
/// `n − 2f` would scale every update by `(n−f)/(n−2f)` (1.5× at n = 15, f = 5).
///
/// The search is exact: depth-first over the `C(n, f)` subsets on a precomputed distance
/// matrix, pruning every branch that can no longer win. Before searching, `C(n, f)` is
/// compared with `subset_budget`, and the rule refuses with [`Error::SubsetBudgetExceeded`]
/// rather than run for hours.
///
/// **Ties.** Subsets of equal diameter are common, not a measure-zero accident: every subset
/// that contains the same farthest pair and otherwise fits inside it has that diameter. ByzFL
/// takes the lexicographically first, which makes the output depend on the order in which
/// workers are listed. Here the tie goes to the subset with the smaller sum of squared pairwise
/// distances (the tighter one), and only then to lexicographic order, so the rule is
/// permutation invariant for inputs in general position.
///
/// ```
/// # use byzadam_robust::{aggregators::MinimumDiameterAveraging, Aggregator, Submissions};
/// let s = Submissions::from_rows(&[[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [50.0, 50.0]])?;
/// let mut mda = MinimumDiameterAveraging::new(1);
/// let out = mda.aggregate(&s)?;
/// assert!((out[0] - 1.0 / 3.0).abs() < 1e-6 && (out[1] - 1.0 / 3.0).abs() < 1e-6);
/// # Ok::<(), byzadam_robust::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[doc(alias = "MDA")]
pub struct MinimumDiameterAveraging {
    /// Number of Byzantine inputs tolerated; subsets have `n − f` members.
    pub f: usize,
    /// Largest `C(n, f)` the exact search may face (default 10,000,000: well under a minute).
    #[serde(default = "default_budget")]
    pub subset_budget: u64,
    /// ByzFL 0.0.11's tie rule: among subsets of equal diameter, the first in lexicographic
    /// (`itertools.combinations`) order, not the tighter one.
    #[serde(default, skip_serializing_if = "is_false")]
    pub byzfl: bool,
}

fn is_false(b: &bool) -> bool {
    !*b
}

pub(crate) fn default_budget() -> u64 {
    10_000_000
}

/// `n > 2f` and `C(n, f)` within `budget`: the requirements of the exact subset searches.
pub(crate) fn check_subsets(
    rule: &'static str,
    n: usize,
    f: usize,
    budget: u64,
) -> Result<(), Error> {
    require(n > f.saturating_mul(2), rule, "n > 2f", n, f)?;
    let subsets = binomial(n, f);
    if subsets > budget as u128 {
        return Err(Error::SubsetBudgetExceeded {
            rule,
            subsets,
            budget: budget as u128,
        });
    }
    Ok(())
}

impl MinimumDiameterAveraging {
    /// With the default subset budget.
    pub fn new(f: usize) -> Self {
        Self {
            f,
            subset_budget: default_budget(),
            byzfl: false,
        }
    }
}

/// Depth-first search for the `k`-subset of `0..n` with the smallest diameter under `d2`
/// (squared distances; the order is the same), ties broken by the smaller sum of squared
/// pairwise distances, then by lexicographic order (with `first_tie`, by lexicographic order
/// alone: ByzFL's rule). `chosen` and `best` have length `k`.
/// Returns the best squared diameter (`+∞` if every subset has an infinite one, in which case
/// `best` holds `0..k`).
pub(crate) fn min_diameter_subset(
    d2: &[f64],
    n: usize,
    k: usize,
    chosen: &mut [usize],
    best: &mut [usize],
    first_tie: bool,
) -> f64 {
    struct Search<'a> {
        d2: &'a [f64],
        n: usize,
        k: usize,
        best_diam: f64,
        best_spread: f64,
        first_tie: bool,
    }
    impl Search<'_> {
        fn rec(
            &mut self,
            depth: usize,
            start: usize,
            diam: f64,
            spread: f64,
            chosen: &mut [usize],
            best: &mut [usize],
        ) {
            if depth == self.k {
                let tie_wins =
                    !self.first_tie && diam == self.best_diam && spread < self.best_spread;
                if diam < self.best_diam || tie_wins {
                    self.best_diam = diam;
                    self.best_spread = spread;
                    best.copy_from_slice(chosen);
                }
                return;
            }
            for i in start..=(self.n - (self.k - depth)) {
                let (mut d, mut sp) = (diam, spread);
                for &j in &chosen[..depth] {
                    let v = self.d2[i * self.n + j];
                    sp += v;
                    if v > d {
                        d = v;
                    }
                }
                // Completions only add distances: a branch whose diameter already exceeds the
                // best (or equals it with no smaller spread possible) cannot win.
                // (With ByzFL's tie rule an equal diameter cannot win: the search runs in
                // lexicographic order, so the first subset found keeps the tie.)
                if d > self.best_diam
                    || (d == self.best_diam && (self.first_tie || sp >= self.best_spread))
                {
                    continue;
                }
                chosen[depth] = i;
                self.rec(depth + 1, i + 1, d, sp, chosen, best);
            }
        }
    }
    for (i, b) in best.iter_mut().enumerate() {
        *b = i;
    }
    let mut search = Search {
        d2,
        n,
        k,
        best_diam: f64::INFINITY,
        best_spread: f64::INFINITY,
        first_tie,
    };
    search.rec(0, 0, 0.0, 0.0, chosen, best);
    search.best_diam
}

impl Aggregator for MinimumDiameterAveraging {
    fn name(&self) -> &'static str {
        "minimum_diameter_averaging"
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
        scratch::with_f64_b(n * n, |d2| {
            distances::pairwise_sq(s, d2);
            scratch::with_usize(2 * k, |buf| {
                let (chosen, best) = buf.split_at_mut(k);
                min_diameter_subset(d2, n, k, chosen, best, self.byzfl);
                rowsum::mean_of(s, best, out);
            })
        });
        Ok(())
    }
}

use crate::params::{param, F};

impl crate::params::Described for MinimumDiameterAveraging {
    const PARAMS: &'static [crate::params::Param] = &[
        F,
        crate::params::SUBSET_BUDGET,
        param(
            "byzfl",
            "bool",
            "false",
            "",
            "ByzFL 0.0.11's tie rule: the lexicographically first subset",
        ),
    ];
    const REQUIREMENT: &'static str = "n > 2f, C(n, f) ≤ subset_budget";
}
