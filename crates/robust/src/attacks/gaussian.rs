use super::{Attack, AttackContext, ThreatModel};
use crate::{Error, Submissions};
use rand_distr::{Distribution, Normal};
use serde::{Deserialize, Serialize};

/// Gaussian noise: every coordinate of every Byzantine vector drawn independently from
/// `N(mean, std²)` with the attack's seeded stream. (ByzFL's `Gaussian`.)
///
/// ```
/// # use byzadam_robust::{attacks::Gaussian, Attack, AttackContext, Submissions};
/// # use rand::SeedableRng;
/// let ctx = AttackContext { n: 3, byzantine: 2, dim: 1000, own: None, honest: None, server: None };
/// let mut out = Submissions::default();
/// Gaussian { mean: 5.0, std: 0.1 }.forge(&ctx, &mut rand_chacha::ChaCha20Rng::seed_from_u64(0), &mut out)?;
/// let avg: f32 = out.as_flat().iter().sum::<f32>() / 2000.0;
/// assert!((avg - 5.0).abs() < 0.02);
/// # Ok::<(), byzadam_robust::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Gaussian {
    /// Mean (default 0).
    #[serde(default)]
    pub mean: f64,
    /// Standard deviation `≥ 0` (default 1).
    #[serde(default = "default_std")]
    pub std: f64,
}

fn default_std() -> f64 {
    1.0
}

impl Default for Gaussian {
    fn default() -> Self {
        Self {
            mean: 0.0,
            std: 1.0,
        }
    }
}

impl Attack for Gaussian {
    fn name(&self) -> &'static str {
        "gaussian"
    }

    fn threat_model(&self) -> ThreatModel {
        ThreatModel::Blind
    }

    fn check(&self, _n: usize, _byzantine: usize) -> Result<(), Error> {
        self.validate()
    }

    fn validate(&self) -> Result<(), Error> {
        if !self.mean.is_finite() {
            return Err(Error::InvalidParameter {
                rule: self.name(),
                name: "mean",
                reason: format!("must be finite, got {}", self.mean),
            });
        }
        if !(self.std >= 0.0 && self.std.is_finite()) {
            return Err(Error::InvalidParameter {
                rule: self.name(),
                name: "std",
                reason: format!("must be finite and ≥ 0, got {}", self.std),
            });
        }
        Ok(())
    }

    fn forge(
        &mut self,
        ctx: &AttackContext<'_>,
        rng: &mut dyn rand::RngCore,
        out: &mut Submissions,
    ) -> Result<(), Error> {
        self.check(ctx.n, ctx.byzantine)?;
        let normal = Normal::new(self.mean, self.std).expect("checked above");
        out.reshape(ctx.byzantine, ctx.dim);
        for x in out.as_flat_mut() {
            *x = normal.sample(rng) as f32;
        }
        Ok(())
    }
}

use crate::params::param;

impl crate::params::Described for Gaussian {
    const PARAMS: &'static [crate::params::Param] = &[
        param("mean", "float", "0", "finite", "the noise's mean"),
        param(
            "std",
            "float",
            "1",
            "finite, ≥ 0",
            "the noise's standard deviation",
        ),
    ];
}
