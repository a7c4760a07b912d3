use super::{precheck, Aggregator};
use crate::kernels::{distances, order, rowsum, scratch};
use crate::{require, Error, Submissions};
use serde::{Deserialize, Serialize};

/// MoNNA: the average of the `n − f` vectors nearest to a trusted pivot vector (row `pivot`,
/// itself included). Needs `n > 2f`. (Farhadkhani, Guerraoui, Gupta, Hoang, Pinot & Stephan,
/// "Robust collaborative learning with linear gradient overhead", ICML 2023; ByzFL's `MoNNA`.)
///
/// ```
/// # use byzadam_robust::{aggregators::Monna, Aggregator, Submissions};
/// let s = Submissions::from_rows(&[[0.0], [1.0], [2.0], [-9.0]])?;
/// assert_eq!(Monna { f: 1, pivot: 0 }.aggregate(&s)?, [1.0]);
/// # Ok::<(), byzadam_robust::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[doc(alias = "MoNNA")]
pub struct Monna {
    /// Number of Byzantine inputs tolerated.
    pub f: usize,
    /// Index of the trusted vector (default 0).
    #[serde(default)]
    pub pivot: usize,
}

impl Aggregator for Monna {
    fn name(&self) -> &'static str {
        "monna"
    }

    fn check(&self, n: usize) -> Result<(), Error> {
        require(
            n > self.f.saturating_mul(2),
            self.name(),
            "n > 2f",
            n,
            self.f,
        )?;
        if self.pivot >= n {
            return Err(Error::InvalidParameter {
                rule: self.name(),
                name: "pivot",
                reason: format!("must be < n = {n}, got {}", self.pivot),
            });
        }
        Ok(())
    }

    fn aggregate_into(&mut self, s: &Submissions, out: &mut [f32]) -> Result<(), Error> {
        precheck(self, s, out)?;
        let (n, k) = (s.n(), s.n() - self.f);
        scratch::with_f64_b(n, |d| {
            distances::to_point_sq(s, s.row(self.pivot), d);
            d[self.pivot] = f64::NEG_INFINITY; // the pivot always belongs to its neighbourhood
            scratch::with_usize(n, |idx| {
                order::argsort_into(d, idx);
                let nearest = &mut idx[..k];
                nearest.sort_unstable();
                rowsum::mean_of(s, nearest, out);
            })
        });
        Ok(())
    }
}

use crate::params::{param, F};

impl crate::params::Described for Monna {
    const PARAMS: &'static [crate::params::Param] = &[
        F,
        param(
            "pivot",
            "int",
            "0",
            "< n",
            "the input (a trusted worker) whose neighbours are averaged",
        ),
    ];
    const REQUIREMENT: &'static str = "n > 2f";
}
