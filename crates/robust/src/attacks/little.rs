use super::{with_mean_std, Attack, AttackContext, ThreatModel};
use crate::{Error, Submissions};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

/// Little, as the thesis's Algorithm 8 defines it: each Byzantine worker sends its own genuine
/// message minus the coordinate-wise standard deviation of the Byzantine group's genuine
/// messages, `mᵢ − σ(B)`. The standard deviation is the sample one (`ddof = 1`, PyTorch's
/// `torch.std` default) unless `unbiased = false`. (After Baruch, Baruch & Goldberg, "A little
/// is enough", NeurIPS 2019; for their omniscient form see [`super::ALittleIsEnough`].)
///
/// ```
/// # use byzadam_robust::{attacks::Little, Attack, AttackContext, Submissions};
/// # use rand::SeedableRng;
/// let own = Submissions::from_rows(&[[1.0, 5.0], [3.0, 5.0]])?;
/// let ctx = AttackContext { n: 6, byzantine: 2, dim: 2, own: Some(&own), honest: None, server: None };
/// let mut out = Submissions::default();
/// Little::default().forge(&ctx, &mut rand_chacha::ChaCha20Rng::seed_from_u64(0), &mut out)?;
/// let s = 2f32.sqrt(); // sample std of {1, 3}
/// let expected = [1.0 - s, 5.0, 3.0 - s, 5.0];
/// assert!(out.as_flat().iter().zip(expected).all(|(a, b)| (a - b).abs() < 1e-6));
/// # Ok::<(), byzadam_robust::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Little {
    /// Sample (`true`, default) or population standard deviation.
    #[serde(default = "default_true")]
    pub unbiased: bool,
}

fn default_true() -> bool {
    true
}

impl Default for Little {
    fn default() -> Self {
        Self { unbiased: true }
    }
}

impl Attack for Little {
    fn name(&self) -> &'static str {
        "little"
    }

    fn threat_model(&self) -> ThreatModel {
        ThreatModel::OwnGenuine
    }

    fn check(&self, _n: usize, byzantine: usize) -> Result<(), Error> {
        if self.unbiased && byzantine < 2 {
            return Err(Error::InvalidParameter {
                rule: self.name(),
                name: "byzantine",
                reason: format!(
                    "the sample standard deviation of the Byzantine group needs at least 2 \
                     Byzantine workers, got {byzantine} (or set unbiased = false)"
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
        self.check(ctx.n, ctx.byzantine)?;
        let own = ctx.require_own(self.name())?;
        with_mean_std(own, usize::from(self.unbiased), |_, std| {
            out.copy_from(own);
            out.as_flat_mut().par_chunks_mut(ctx.dim).for_each(|row| {
                for (x, s) in row.iter_mut().zip(std) {
                    *x = (*x as f64 - s) as f32;
                }
            });
        });
        Ok(())
    }
}

use crate::params::param;

impl crate::params::Described for Little {
    const PARAMS: &'static [crate::params::Param] = &[param(
        "unbiased",
        "bool",
        "true",
        "",
        "the Byzantine group's sample (n − 1) standard deviation",
    )];
    const REQUIREMENT: &'static str = "byzantine ≥ 2 when unbiased";
}
