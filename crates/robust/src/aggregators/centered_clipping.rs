use super::{precheck, Aggregator};
use crate::kernels::{distances, rowsum};
use crate::{Error, Submissions};
use serde::{Deserialize, Serialize};

/// Centred clipping: from a centre `v` (the previous round's output), `iterations` times
/// `v ← v + (1/n) Σᵢ clip_τ(xᵢ − v)` with `clip_τ(z) = z · min(1, τ/‖z‖)`. (Karimireddy, He &
/// Jaggi, "Learning from history for Byzantine robust optimization", ICML 2021.)
///
/// **Stateful:** the output becomes the next round's centre; the first round starts from `0`
/// (as in ByzFL), or from `center` if set. [`Aggregator::reset`] forgets it. A vector at
/// infinite or undefined distance from `v` has no defined direction and contributes `0`.
///
/// ```
/// # use byzadam_robust::{aggregators::CenteredClipping, Aggregator, Submissions};
/// let s = Submissions::from_rows(&[[1.0, 0.0], [1.0, 0.0], [100.0, 0.0]])?;
/// let mut cc = CenteredClipping::new(2.0, 1);
/// // From 0: the two honest rows move v by 1 each, the outlier by τ = 2: v = (1+1+2)/3.
/// let out = cc.aggregate(&s)?;
/// assert!((out[0] - 4.0 / 3.0).abs() < 1e-6);
/// // Next round starts from there.
/// assert_eq!(cc.center.as_deref(), Some(&out[..]));
/// # Ok::<(), byzadam_robust::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[doc(alias = "CC")]
pub struct CenteredClipping {
    /// Clipping radius `τ > 0` (default 100, as in ByzFL).
    #[serde(default = "default_tau")]
    pub tau: f64,
    /// Clipping iterations `L ≥ 1` per round (default 1).
    #[serde(default = "default_iterations")]
    pub iterations: usize,
    /// The centre carried across rounds; `None` starts from the zero vector.
    #[serde(skip)]
    pub center: Option<Vec<f32>>,
}

fn default_tau() -> f64 {
    100.0
}
fn default_iterations() -> usize {
    1
}

impl CenteredClipping {
    /// With no centre yet.
    pub fn new(tau: f64, iterations: usize) -> Self {
        Self {
            tau,
            iterations,
            center: None,
        }
    }
}

impl Default for CenteredClipping {
    fn default() -> Self {
        Self::new(default_tau(), default_iterations())
    }
}

impl Aggregator for CenteredClipping {
    fn name(&self) -> &'static str {
        "centered_clipping"
    }

    fn check(&self, _n: usize) -> Result<(), Error> {
        self.validate()
    }

    fn validate(&self) -> Result<(), Error> {
        if !(self.tau > 0.0 && self.tau.is_finite()) {
            return Err(Error::InvalidParameter {
                rule: self.name(),
                name: "tau",
                reason: format!("must be finite and > 0, got {}", self.tau),
            });
        }
        if self.iterations == 0 {
            return Err(Error::InvalidParameter {
                rule: self.name(),
                name: "iterations",
                reason: "must be ≥ 1".into(),
            });
        }
        Ok(())
    }

    fn aggregate_into(&mut self, s: &Submissions, out: &mut [f32]) -> Result<(), Error> {
        precheck(self, s, out)?;
        let n = s.n();
        match &self.center {
            Some(c) if c.len() == out.len() => out.copy_from_slice(c),
            _ => out.fill(0.0),
        }
        let mut d2 = vec![0.0; n];
        let mut w = vec![0.0; n];
        let mut pull = vec![0.0f32; s.dim()];
        for _ in 0..self.iterations {
            distances::to_point_sq(s, out, &mut d2);
            let mut kept = 0.0;
            for (wi, &d) in w.iter_mut().zip(&d2) {
                let norm = d.sqrt();
                *wi = if norm.is_finite() {
                    if norm > self.tau {
                        self.tau / norm
                    } else {
                        1.0
                    }
                } else {
                    0.0
                };
                kept += *wi;
            }
            // v + (1/n) Σ wᵢ (xᵢ − v) = v (1 − Σw/n) + (1/n) Σ wᵢ xᵢ
            pull.fill(0.0);
            if kept > 0.0 {
                rowsum::weighted_mean(s, &w, &mut pull);
            }
            let keep_v = 1.0 - kept / n as f64;
            let scale = kept / n as f64;
            for (v, &p) in out.iter_mut().zip(&pull) {
                *v = (*v as f64 * keep_v + p as f64 * scale) as f32;
            }
        }
        let center = self.center.get_or_insert_with(Vec::new);
        center.clear();
        center.extend_from_slice(out);
        Ok(())
    }

    fn reset(&mut self) {
        self.center = None;
    }

    fn carried(&self) -> Option<Vec<f32>> {
        self.center.clone()
    }

    fn restore(&mut self, state: Option<Vec<f32>>) {
        self.center = state;
    }
}

use crate::params::param;

impl crate::params::Described for CenteredClipping {
    const PARAMS: &'static [crate::params::Param] = &[
        param(
            "tau",
            "float",
            "100",
            "finite, > 0",
            "clipping radius around the centre",
        ),
        param(
            "iterations",
            "int",
            "1",
            "≥ 1",
            "clipping iterations per call",
        ),
    ];
}
