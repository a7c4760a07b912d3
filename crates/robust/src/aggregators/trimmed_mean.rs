use super::{precheck, Aggregator};
use crate::kernels::coordinatewise::{coordinatewise, Reduce};
use crate::{require, Error, Submissions};
use serde::{Deserialize, Serialize};

/// Coordinate-wise trimmed mean: per coordinate, drops the `f` smallest and `f` largest values
/// and averages the `n − 2f` left. Needs `n > 2f`. (Yin et al., ICML 2018; the thesis's CWTM,
/// Algorithm 12, resilience `λ = f/(n−f) · min(2√(n−f), √d)`.)
///
/// `low` and `high` trim the two ends by different counts (each defaults to `f`): per
/// coordinate the sorted ranks `low … n − high − 1` are averaged, and `n > low + high` is
/// needed. The thesis's code (`aggregation.py`, `cwtm`: `sorted_m[range(f+1, n-f)]`) keeps
/// ranks `f + 1 … n − f − 1`, i.e. `low = f + 1`, `high = f`: with n = 15, f = 5 it averages
/// 4 values, not the text's 5.
///
/// Values are ordered by `total_cmp`, so up to `min(low, high)` infinite or NaN entries per
/// coordinate are trimmed and the result is finite.
///
/// ```
/// # use byzadam_robust::{aggregators::TrimmedMean, Aggregator, Submissions};
/// let s = Submissions::from_rows(&[[1.0, 10.0], [2.0, 20.0], [100.0, -5.0]])?;
/// assert_eq!(TrimmedMean::new(1).aggregate(&s)?, [2.0, 10.0]);
/// // The thesis's code: one more value dropped at the low end.
/// let s = Submissions::from_rows(&[[1.0], [2.0], [3.0], [4.0], [50.0]])?;
/// assert_eq!(TrimmedMean { f: 1, low: Some(2), high: None }.aggregate(&s)?, [3.5]);
/// # Ok::<(), byzadam_robust::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[doc(alias = "CWTM")]
pub struct TrimmedMean {
    /// Values dropped at each end of every coordinate.
    pub f: usize,
    /// Values dropped at the low end instead of `f` (default `f`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub low: Option<usize>,
    /// Values dropped at the high end instead of `f` (default `f`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub high: Option<usize>,
}

impl TrimmedMean {
    /// The symmetric trimmed mean: `f` dropped at each end.
    pub fn new(f: usize) -> Self {
        Self {
            f,
            low: None,
            high: None,
        }
    }

    /// The counts dropped at the low and the high end.
    pub fn trims(&self) -> (usize, usize) {
        (self.low.unwrap_or(self.f), self.high.unwrap_or(self.f))
    }
}

impl Aggregator for TrimmedMean {
    fn name(&self) -> &'static str {
        "trimmed_mean"
    }

    fn check(&self, n: usize) -> Result<(), Error> {
        match (self.low, self.high) {
            (None, None) => require(
                n > self.f.saturating_mul(2),
                self.name(),
                "n > 2f",
                n,
                self.f,
            ),
            _ => {
                let (lo, hi) = self.trims();
                if n > lo.saturating_add(hi) {
                    Ok(())
                } else {
                    Err(Error::InvalidParameter {
                        rule: self.name(),
                        name: "low + high",
                        reason: format!("must be less than n = {n}, got {lo} + {hi}"),
                    })
                }
            }
        }
    }

    fn aggregate_into(&mut self, s: &Submissions, out: &mut [f32]) -> Result<(), Error> {
        precheck(self, s, out)?;
        let (lo, hi) = self.trims();
        let reduce = Reduce::Window { lo, hi: s.n() - hi };
        coordinatewise(s, reduce, out);
        Ok(())
    }
}

use crate::params::{param, F};

impl crate::params::Described for TrimmedMean {
    const PARAMS: &'static [crate::params::Param] = &[
        F,
        param(
            "low",
            "int",
            "f",
            "",
            "values dropped at the low end of each coordinate",
        ),
        param(
            "high",
            "int",
            "f",
            "",
            "values dropped at the high end of each coordinate",
        ),
    ];
    const REQUIREMENT: &'static str = "n > 2f (n > low + high)";
}
