use super::{precheck, Aggregator};
use crate::kernels::rowsum;
use crate::{Error, Submissions};
use serde::{Deserialize, Serialize};

/// The plain average `(1/n) Σᵢ xᵢ`: the non-robust baseline (one `+∞` worker makes it `+∞`).
///
/// Accumulated in `f64`, so the average of identical vectors is exactly that vector.
///
/// ```
/// # use byzadam_robust::{aggregators::Average, Aggregator, Submissions};
/// let s = Submissions::from_rows(&[[1.0, 10.0], [2.0, 20.0], [6.0, -3.0]])?;
/// assert_eq!(Average {}.aggregate(&s)?, [3.0, 9.0]);
/// # Ok::<(), byzadam_robust::Error>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[doc(alias = "mean")]
pub struct Average {}

impl Aggregator for Average {
    fn name(&self) -> &'static str {
        "average"
    }

    fn check(&self, _n: usize) -> Result<(), Error> {
        Ok(())
    }

    fn aggregate_into(&mut self, s: &Submissions, out: &mut [f32]) -> Result<(), Error> {
        precheck(self, s, out)?;
        crate::kernels::scratch::with_usize(s.n(), |rows| {
            for (i, r) in rows.iter_mut().enumerate() {
                *r = i;
            }
            rowsum::mean_of(s, rows, out);
        });
        Ok(())
    }
}

impl crate::params::Described for Average {
    const PARAMS: &'static [crate::params::Param] = &[];
}
