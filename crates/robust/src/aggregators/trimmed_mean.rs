use super::{precheck, Aggregator};
use crate::kernels::coordinatewise::{coordinatewise, Reduce};
use crate::{require, Error, Submissions};
use serde::{Deserialize, Serialize};

/// Coordinate-wise trimmed mean: per coordinate, drops the `f` smallest and `f` largest values
/// and averages the `n − 2f` left. Needs `n > 2f`. (Yin et al., ICML 2018; the thesis's CWTM,
/// Algorithm 12, resilience `λ = f/(n−f) · min(2√(n−f), √d)`.)
///
/// Values are ordered by `total_cmp`, so up to `f` infinite or NaN entries per coordinate are
/// trimmed and the result is finite.
///
/// ```
/// # use byzadam_robust::{aggregators::TrimmedMean, Aggregator, Submissions};
/// let s = Submissions::from_rows(&[[1.0, 10.0], [2.0, 20.0], [100.0, -5.0]])?;
/// assert_eq!(TrimmedMean { f: 1 }.aggregate(&s)?, [2.0, 10.0]);
/// # Ok::<(), byzadam_robust::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[doc(alias = "CWTM")]
pub struct TrimmedMean {
    /// Values dropped at each end of every coordinate.
    pub f: usize,
}

impl Aggregator for TrimmedMean {
    fn name(&self) -> &'static str {
        "trimmed_mean"
    }

    fn check(&self, n: usize) -> Result<(), Error> {
        require(n > 2 * self.f, self.name(), "n > 2f", n, self.f)
    }

    fn aggregate_into(&mut self, s: &Submissions, out: &mut [f32]) -> Result<(), Error> {
        precheck(self, s, out)?;
        let reduce = Reduce::Window {
            lo: self.f,
            hi: s.n() - self.f,
        };
        coordinatewise(s, reduce, out);
        Ok(())
    }
}
