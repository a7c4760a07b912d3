use super::{precheck, Aggregator};
use crate::kernels::coordinatewise::{coordinatewise, Reduce};
use crate::{Error, Submissions};
use serde::{Deserialize, Serialize};

/// Coordinate-wise median; for even `n`, the mean of the two middle values. (Yin et al., ICML
/// 2018; the thesis's CWM, Algorithm 13, resilience `λ = n/(2(n−f)) · min(2√(n−f), √d)`.)
///
/// Tolerates any `f < n/2` without being told `f`. Values are ordered by `total_cmp`.
///
/// ```
/// # use byzadam_robust::{aggregators::Median, Aggregator, Submissions};
/// let s = Submissions::from_rows(&[[1.0, 10.0], [2.0, 40.0], [100.0, -5.0], [3.0, 20.0]])?;
/// assert_eq!(Median {}.aggregate(&s)?, [2.5, 15.0]);
/// # Ok::<(), byzadam_robust::Error>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[doc(alias = "CWM")]
#[doc(alias = "CoordinateWiseMedian")]
pub struct Median {}

impl Aggregator for Median {
    fn name(&self) -> &'static str {
        "median"
    }

    fn check(&self, _n: usize) -> Result<(), Error> {
        Ok(())
    }

    fn aggregate_into(&mut self, s: &Submissions, out: &mut [f32]) -> Result<(), Error> {
        precheck(self, s, out)?;
        coordinatewise(s, Reduce::Median, out);
        Ok(())
    }
}

impl crate::params::Described for Median {
    const PARAMS: &'static [crate::params::Param] = &[];
}
