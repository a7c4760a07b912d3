use super::{fill_rows, with_mean_std, Attack, AttackContext, Base, ThreatModel};
use crate::{Error, Submissions};
use serde::{Deserialize, Serialize};

/// Empire (inner-product manipulation): each Byzantine worker sends `−ε ×` its base vector; the
/// thesis uses `ε = 0.9` on each worker's own genuine message (Algorithm 18). With
/// `base = "honest_mean"` it is Xie et al.'s IPM as in ByzFL (`−ε · mean of honest`). (Xie,
/// Koyejo & Gupta, "Fall of empires", UAI 2019.)
///
/// ```
/// # use byzadam_robust::{attacks::Empire, Attack, AttackContext, Submissions};
/// # use rand::SeedableRng;
/// let own = Submissions::from_rows(&[[1.0, -2.0], [10.0, 0.0]])?;
/// let ctx = AttackContext { n: 5, byzantine: 2, dim: 2, own: Some(&own), honest: None, server: None };
/// let mut out = Submissions::default();
/// Empire::default().forge(&ctx, &mut rand_chacha::ChaCha20Rng::seed_from_u64(0), &mut out)?;
/// assert_eq!(out.as_flat(), &[-0.9, 1.8, -9.0, 0.0]);
/// # Ok::<(), byzadam_robust::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[doc(alias = "IPM")]
#[doc(alias = "InnerProductManipulation")]
pub struct Empire {
    /// The factor `ε` (default 0.9).
    #[serde(default = "default_epsilon")]
    pub epsilon: f64,
    /// The vector scaled (default: each worker's own genuine message).
    #[serde(default)]
    pub base: Base,
}

fn default_epsilon() -> f64 {
    0.9
}

impl Default for Empire {
    fn default() -> Self {
        Self {
            epsilon: default_epsilon(),
            base: Base::Own,
        }
    }
}

/// `out = factor × base` for every Byzantine row.
pub(crate) fn scaled_base(
    name: &'static str,
    base: Base,
    factor: f64,
    ctx: &AttackContext<'_>,
    out: &mut Submissions,
) -> Result<(), Error> {
    match base {
        Base::Own => {
            let own = ctx.require_own(name)?;
            out.copy_from(own);
            for x in out.as_flat_mut() {
                *x = (*x as f64 * factor) as f32;
            }
        }
        Base::HonestMean => {
            let honest = ctx.require_honest(name)?;
            with_mean_std(honest, 0, |mean, _| {
                fill_rows(out, ctx.byzantine, ctx.dim, |c| (mean[c] * factor) as f32);
            });
        }
    }
    Ok(())
}

impl Attack for Empire {
    fn name(&self) -> &'static str {
        "empire"
    }

    fn threat_model(&self) -> ThreatModel {
        match self.base {
            Base::Own => ThreatModel::OwnGenuine,
            Base::HonestMean => ThreatModel::Omniscient,
        }
    }

    fn check(&self, _n: usize, _byzantine: usize) -> Result<(), Error> {
        self.validate()
    }

    fn validate(&self) -> Result<(), Error> {
        if self.epsilon.is_finite() {
            Ok(())
        } else {
            Err(Error::InvalidParameter {
                rule: self.name(),
                name: "epsilon",
                reason: format!("must be finite, got {}", self.epsilon),
            })
        }
    }

    fn forge(
        &mut self,
        ctx: &AttackContext<'_>,
        _rng: &mut dyn rand::RngCore,
        out: &mut Submissions,
    ) -> Result<(), Error> {
        scaled_base(self.name(), self.base, -self.epsilon, ctx, out)
    }
}

use crate::params::param;

impl crate::params::Described for Empire {
    const PARAMS: &'static [crate::params::Param] = &[
        param(
            "epsilon",
            "float",
            "0.9",
            "finite",
            "the factor of the negated base",
        ),
        param("base", "own | honest_mean", "own", "", "what is scaled"),
    ];
}
