use super::{fill_rows, with_mean_std, Attack, AttackContext, ThreatModel};
use crate::{Error, Submissions};
use serde::{Deserialize, Serialize};

/// A little is enough (ALIE), the standard omniscient form: every Byzantine worker sends
/// `μ − z·σ`, with `μ`, `σ` the coordinate-wise mean and sample standard deviation of the
/// honest messages. Without `z`, Baruch et al.'s choice [`baruch_z`]. (Baruch, Baruch &
/// Goldberg, "A little is enough: circumventing defenses for distributed learning", NeurIPS
/// 2019. ByzFL's `ALittleIsEnough(tau)` sends `μ + τσ`, i.e. `z = −τ`.)
///
/// ```
/// # use byzadam_robust::{attacks::ALittleIsEnough, Attack, AttackContext, Submissions};
/// # use rand::SeedableRng;
/// let honest = Submissions::from_rows(&[[0.0], [2.0], [4.0]])?; // μ = 2, σ = 2
/// let ctx = AttackContext { n: 4, byzantine: 1, dim: 1, own: None, honest: Some(&honest), server: None };
/// let mut out = Submissions::default();
/// ALittleIsEnough { z: Some(1.5) }.forge(&ctx, &mut rand_chacha::ChaCha20Rng::seed_from_u64(0), &mut out)?;
/// assert_eq!(out.as_flat(), &[-1.0]);
/// # Ok::<(), byzadam_robust::Error>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[doc(alias = "ALIE")]
pub struct ALittleIsEnough {
    /// The number of standard deviations; `None` uses [`baruch_z`] for the run's `n` and `f`.
    #[serde(default)]
    pub z: Option<f64>,
}

/// Baruch et al.'s `z_max`: with `s = ⌊n/2 + 1⌋ − f` workers to win over,
/// `z = Φ⁻¹((n − s)/n)`. For `n = 15`, `f = 5`: `s = 3`, `z = Φ⁻¹(0.8) ≈ 0.8416`.
///
/// ```
/// assert!((byzadam_robust::attacks::baruch_z(15, 5) - 0.841_621_2).abs() < 1e-6);
/// ```
pub fn baruch_z(n: usize, f: usize) -> f64 {
    let s = (n / 2 + 1) as f64 - f as f64;
    inverse_normal_cdf((n as f64 - s) / n as f64)
}

/// `Φ⁻¹(p)` by P. J. Acklam's rational approximation (relative error below 1.15e-9 on
/// (0, 1)); ±∞ at 0 and 1, NaN outside.
#[allow(clippy::excessive_precision)] // Acklam's published coefficients, as published
pub(crate) fn inverse_normal_cdf(p: f64) -> f64 {
    if !(0.0..=1.0).contains(&p) {
        return f64::NAN;
    }
    if p == 0.0 {
        return f64::NEG_INFINITY;
    }
    if p == 1.0 {
        return f64::INFINITY;
    }
    const A: [f64; 6] = [
        -3.969683028665376e1,
        2.209460984245205e2,
        -2.759285104469687e2,
        1.383577518672690e2,
        -3.066479806614716e1,
        2.506628277459239,
    ];
    const B: [f64; 5] = [
        -5.447609879822406e1,
        1.615858368580409e2,
        -1.556989798598866e2,
        6.680131188771972e1,
        -1.328068155288572e1,
    ];
    const C: [f64; 6] = [
        -7.784894002430293e-3,
        -3.223964580411365e-1,
        -2.400758277161838,
        -2.549732539343734,
        4.374664141464968,
        2.938163982698783,
    ];
    const D: [f64; 4] = [
        7.784695709041462e-3,
        3.224671290700398e-1,
        2.445134137142996,
        3.754408661907416,
    ];
    let plow = 0.02425;
    if p < plow {
        let q = (-2.0 * p.ln()).sqrt();
        (((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5])
            / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    } else if p <= 1.0 - plow {
        let q = p - 0.5;
        let r = q * q;
        (((((A[0] * r + A[1]) * r + A[2]) * r + A[3]) * r + A[4]) * r + A[5]) * q
            / (((((B[0] * r + B[1]) * r + B[2]) * r + B[3]) * r + B[4]) * r + 1.0)
    } else {
        let q = (-2.0 * (1.0 - p).ln()).sqrt();
        -(((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5])
            / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    }
}

impl ALittleIsEnough {
    /// The `z` used for `n` workers of which `f` are Byzantine.
    pub fn z_for(&self, n: usize, f: usize) -> f64 {
        self.z.unwrap_or_else(|| baruch_z(n, f))
    }
}

/// `μ − z σ` of the honest messages, into `ctx.byzantine` rows.
pub(crate) fn alie_rows(honest: &Submissions, z: f64, rows: usize, out: &mut Submissions) {
    let dim = honest.dim();
    with_mean_std(honest, usize::from(honest.n() > 1), |mean, std| {
        fill_rows(out, rows, dim, |c| (mean[c] - z * std[c]) as f32);
    });
}

impl Attack for ALittleIsEnough {
    fn name(&self) -> &'static str {
        "a_little_is_enough"
    }

    fn threat_model(&self) -> ThreatModel {
        ThreatModel::Omniscient
    }

    fn check(&self, _n: usize, _byzantine: usize) -> Result<(), Error> {
        self.validate()
    }

    fn validate(&self) -> Result<(), Error> {
        match self.z {
            Some(z) if !z.is_finite() => Err(Error::InvalidParameter {
                rule: self.name(),
                name: "z",
                reason: format!("must be finite, got {z}"),
            }),
            _ => Ok(()),
        }
    }

    fn forge(
        &mut self,
        ctx: &AttackContext<'_>,
        _rng: &mut dyn rand::RngCore,
        out: &mut Submissions,
    ) -> Result<(), Error> {
        let honest = ctx.require_honest(self.name())?;
        alie_rows(honest, self.z_for(ctx.n, ctx.byzantine), ctx.byzantine, out);
        Ok(())
    }
}

use crate::params::param;

impl crate::params::Described for ALittleIsEnough {
    const PARAMS: &'static [crate::params::Param] = &[param(
        "z",
        "float",
        "from n and f (Baruch et al.)",
        "finite",
        "standard deviations from the honest mean",
    )];
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reference quantiles of the standard normal (scipy.stats.norm.ppf, SciPy 1.x).
    #[test]
    fn inverse_normal_cdf_matches_known_quantiles() {
        for (p, x) in [
            (0.5, 0.0),
            (0.8, 0.8416212335729143),
            (0.975, 1.959963984540054),
            (0.01, -2.3263478740408408),
            (0.999, 3.090232306167813),
        ] {
            assert!((inverse_normal_cdf(p) - x).abs() < 1e-7, "p = {p}");
        }
    }
}
