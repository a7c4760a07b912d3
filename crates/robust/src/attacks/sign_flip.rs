use super::{Attack, AttackContext, Base, ThreatModel};
use crate::{Error, Submissions};
use serde::{Deserialize, Serialize};

/// Sign flip: each Byzantine worker sends `−1 ×` its base vector (its own genuine message by
/// default, or the honest mean). (Allen-Zhu et al., "Byzantine-resilient non-convex stochastic
/// gradient descent", ICLR 2021; the thesis's sign flip.)
///
/// ```
/// # use byzadam_robust::{attacks::SignFlip, Attack, AttackContext, Submissions};
/// # use rand::SeedableRng;
/// let own = Submissions::from_rows(&[[1.0, -2.0]])?;
/// let ctx = AttackContext { n: 3, byzantine: 1, dim: 2, own: Some(&own), honest: None, server: None };
/// let mut out = Submissions::default();
/// SignFlip::default().forge(&ctx, &mut rand_chacha::ChaCha20Rng::seed_from_u64(0), &mut out)?;
/// assert_eq!(out.row(0), &[-1.0, 2.0]);
/// # Ok::<(), byzadam_robust::Error>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignFlip {
    /// The vector negated (default: each worker's own genuine message).
    #[serde(default)]
    pub base: Base,
}

impl Attack for SignFlip {
    fn name(&self) -> &'static str {
        "sign_flip"
    }

    fn threat_model(&self) -> ThreatModel {
        match self.base {
            Base::Own => ThreatModel::OwnGenuine,
            Base::HonestMean => ThreatModel::Omniscient,
        }
    }

    fn forge(
        &mut self,
        ctx: &AttackContext<'_>,
        _rng: &mut dyn rand::RngCore,
        out: &mut Submissions,
    ) -> Result<(), Error> {
        super::empire::scaled_base(self.name(), self.base, -1.0, ctx, out)
    }
}

use crate::params::param;

impl crate::params::Described for SignFlip {
    const PARAMS: &'static [crate::params::Param] = &[param(
        "base",
        "own | honest_mean",
        "own",
        "",
        "what is negated",
    )];
}
