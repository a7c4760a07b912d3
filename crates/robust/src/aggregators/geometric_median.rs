use super::{precheck, Aggregator};
use crate::kernels::{distances, rowsum};
use crate::{Error, Submissions};
use serde::{Deserialize, Serialize};

/// Geometric median `argmin_z Σᵢ ‖xᵢ − z‖`, approximated by the smoothed Weiszfeld algorithm:
/// `z ← Σ βᵢ xᵢ / Σ βᵢ` with `βᵢ = 1 / max(ν, ‖xᵢ − z‖)`, from `z = 0`, until the objective
/// changes by at most `tolerance` (relative) or after `max_iterations` steps. (Pillutla,
/// Kakade & Harchaoui, "Robust aggregation for federated learning", IEEE TSP 2022.)
///
/// A vector at infinite or undefined distance gets weight 0 (ByzFL drops rows containing ±∞;
/// here NaN rows are dropped too). If no vector is at a finite distance from the start point
/// (every row holds a NaN or ±∞) no point is a median and the result is NaN in every
/// coordinate, as ByzFL's and as the mean's; never a made-up zero vector. ByzFL's `GeometricMedian(nu, T)` is this rule with `tolerance = 0`,
/// `max_iterations = T`.
///
/// ```
/// # use byzadam_robust::{aggregators::GeometricMedian, Aggregator, Submissions};
/// // Three collinear points: the geometric median is the middle one.
/// let s = Submissions::from_rows(&[[0.0, 0.0], [1.0, 1.0], [10.0, 10.0]])?;
/// let out = GeometricMedian { nu: 1e-6, max_iterations: 500, tolerance: 1e-12 }.aggregate(&s)?;
/// assert!((out[0] - 1.0).abs() < 1e-2 && (out[1] - 1.0).abs() < 1e-2);
/// # Ok::<(), byzadam_robust::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[doc(alias = "GM")]
#[doc(alias = "RFA")]
pub struct GeometricMedian {
    /// Smoothing `ν > 0`: distances below it count as `ν` (default 1e-6).
    #[serde(default = "default_nu")]
    pub nu: f64,
    /// Most Weiszfeld steps (default 100).
    #[serde(default = "default_iterations")]
    pub max_iterations: usize,
    /// Stop when the objective's relative change is at most this (default 1e-6; 0 runs all
    /// `max_iterations` steps).
    #[serde(default = "default_tolerance")]
    pub tolerance: f64,
}

fn default_nu() -> f64 {
    1e-6
}
fn default_iterations() -> usize {
    100
}
fn default_tolerance() -> f64 {
    1e-6
}

impl Default for GeometricMedian {
    fn default() -> Self {
        Self {
            nu: default_nu(),
            max_iterations: default_iterations(),
            tolerance: default_tolerance(),
        }
    }
}

impl Aggregator for GeometricMedian {
    fn name(&self) -> &'static str {
        "geometric_median"
    }

    fn check(&self, _n: usize) -> Result<(), Error> {
        self.validate()
    }

    fn validate(&self) -> Result<(), Error> {
        if !(self.nu > 0.0 && self.nu.is_finite()) {
            return Err(Error::InvalidParameter {
                rule: self.name(),
                name: "nu",
                reason: format!("must be a positive finite number, got {}", self.nu),
            });
        }
        if !(self.tolerance >= 0.0 && self.tolerance.is_finite()) {
            return Err(Error::InvalidParameter {
                rule: self.name(),
                name: "tolerance",
                reason: format!("must be finite and ≥ 0, got {}", self.tolerance),
            });
        }
        Ok(())
    }

    fn aggregate_into(&mut self, s: &Submissions, out: &mut [f32]) -> Result<(), Error> {
        precheck(self, s, out)?;
        let n = s.n();
        out.fill(0.0);
        let mut d2 = vec![0.0; n];
        let mut beta = vec![0.0; n];
        let mut next = vec![0.0f32; s.dim()];
        let mut previous = f64::INFINITY;
        for iteration in 0..self.max_iterations {
            distances::to_point_sq(s, out, &mut d2);
            let mut objective = 0.0;
            let mut any = false;
            for (b, &d) in beta.iter_mut().zip(&d2) {
                let dist = d.sqrt();
                if dist.is_finite() {
                    *b = 1.0 / dist.max(self.nu);
                    objective += dist;
                    any = true;
                } else {
                    *b = 0.0;
                }
            }
            if !any {
                if iteration == 0 {
                    // No row at a finite distance from 0: no row is finite.
                    out.fill(f32::NAN);
                }
                break;
            }
            if previous.is_finite() && (previous - objective).abs() <= self.tolerance * objective {
                break;
            }
            previous = objective;
            rowsum::weighted_mean(s, &beta, &mut next);
            out.copy_from_slice(&next);
        }
        Ok(())
    }
}

use crate::params::param;

impl crate::params::Described for GeometricMedian {
    const PARAMS: &'static [crate::params::Param] = &[
        param(
            "nu",
            "float",
            "1e-6",
            "finite, > 0",
            "smoothing of the Weiszfeld weights",
        ),
        param(
            "max_iterations",
            "int",
            "100",
            "",
            "Weiszfeld iterations at most",
        ),
        param(
            "tolerance",
            "float",
            "1e-6",
            "finite, ≥ 0",
            "stop when the objective improves by less",
        ),
    ];
}
