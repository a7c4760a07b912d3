use super::{precheck, Aggregator};
use crate::kernels::coordinatewise::{coordinatewise, Reduce};
use crate::{require, Error, Submissions};
use serde::{Deserialize, Serialize};

/// Mean around median: per coordinate, the average of the `n − f` values closest to the
/// coordinate's median. Needs `n > 2f`. (Xie et al., 2018, "Generalized Byzantine-tolerant
/// SGD"; the thesis's MEAMED, Algorithm 15, resilience `λ = 2f/(n−f) · min(2√(n−f), √d)`.)
///
/// The `n − f` closest values are a contiguous window of the sorted coordinate; when two
/// windows are equally close (their farthest values are at the same distance from the
/// median), the lower one is taken. A NaN's distance is `+∞`.
///
/// ```
/// # use byzadam_robust::{aggregators::MeanAroundMedian, Aggregator, Submissions};
/// // Median 2; the two values closest to it are 2 and 3 (1 is farther than 3? no: |1−2| = |3−2|,
/// // so the lower window {1, 2} wins).
/// let s = Submissions::from_rows(&[[1.0], [2.0], [3.0]])?;
/// assert_eq!(MeanAroundMedian { f: 1 }.aggregate(&s)?, [1.5]);
/// let s = Submissions::from_rows(&[[0.0], [2.0], [2.5], [9.0], [-50.0]])?;
/// assert_eq!(MeanAroundMedian { f: 2 }.aggregate(&s)?, [1.5]);
/// # Ok::<(), byzadam_robust::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[doc(alias = "MeaMed")]
pub struct MeanAroundMedian {
    /// Number of Byzantine inputs tolerated; `n − f` values are averaged.
    pub f: usize,
}

impl Aggregator for MeanAroundMedian {
    fn name(&self) -> &'static str {
        "mean_around_median"
    }

    fn check(&self, n: usize) -> Result<(), Error> {
        require(
            n > self.f.saturating_mul(2),
            self.name(),
            "n > 2f",
            n,
            self.f,
        )
    }

    fn aggregate_into(&mut self, s: &Submissions, out: &mut [f32]) -> Result<(), Error> {
        precheck(self, s, out)?;
        coordinatewise(
            s,
            Reduce::AroundMedian {
                keep: s.n() - self.f,
            },
            out,
        );
        Ok(())
    }
}

use crate::params::F;

impl crate::params::Described for MeanAroundMedian {
    const PARAMS: &'static [crate::params::Param] = &[F];
    const REQUIREMENT: &'static str = "n > 2f";
}
