use super::{Attack, AttackContext, ThreatModel};
use crate::{Error, Submissions};
use serde::{Deserialize, Serialize};

/// Mimic: every Byzantine worker sends a copy of one honest worker's message, over-weighting
/// that worker's data. (Karimireddy, He & Jaggi, "Byzantine-robust learning on heterogeneous
/// datasets via bucketing", ICLR 2022; ByzFL's `Mimic(epsilon)`.)
///
/// ```
/// # use byzadam_robust::{attacks::Mimic, Attack, AttackContext, Submissions};
/// # use rand::SeedableRng;
/// let honest = Submissions::from_rows(&[[1.0], [2.0]])?;
/// let ctx = AttackContext { n: 4, byzantine: 2, dim: 1, own: None, honest: Some(&honest), server: None };
/// let mut out = Submissions::default();
/// Mimic { target: 1 }.forge(&ctx, &mut rand_chacha::ChaCha20Rng::seed_from_u64(0), &mut out)?;
/// assert_eq!(out.as_flat(), &[2.0, 2.0]);
/// # Ok::<(), byzadam_robust::Error>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mimic {
    /// Index of the honest worker copied (default 0).
    #[serde(default)]
    pub target: usize,
}

impl Attack for Mimic {
    fn name(&self) -> &'static str {
        "mimic"
    }

    fn threat_model(&self) -> ThreatModel {
        ThreatModel::Omniscient
    }

    fn check(&self, n: usize, byzantine: usize) -> Result<(), Error> {
        let honest = n.saturating_sub(byzantine);
        if self.target >= honest {
            return Err(Error::InvalidParameter {
                rule: self.name(),
                name: "target",
                reason: format!(
                    "must be < {honest} (the number of honest workers), got {}",
                    self.target
                ),
            });
        }
        Ok(())
    }

    fn forge(
        &mut self,
        ctx: &AttackContext<'_>,
        _rng: &mut dyn rand::RngCore,
        out: &mut Submissions,
    ) -> Result<(), Error> {
        let honest = ctx.require_honest(self.name())?;
        if self.target >= honest.n() {
            return Err(Error::InvalidParameter {
                rule: self.name(),
                name: "target",
                reason: format!(
                    "must be < {} (the number of honest workers), got {}",
                    honest.n(),
                    self.target
                ),
            });
        }
        let row = honest.row(self.target);
        super::fill_rows(out, ctx.byzantine, ctx.dim, |c| row[c]);
        Ok(())
    }
}

use crate::params::param;

impl crate::params::Described for Mimic {
    const PARAMS: &'static [crate::params::Param] = &[param(
        "target",
        "int",
        "0",
        "< the honest workers",
        "the honest worker copied",
    )];
    const REQUIREMENT: &'static str = "target < n − byzantine";
}
