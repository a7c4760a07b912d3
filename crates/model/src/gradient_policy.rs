//! What an honest worker does with the model each round before any optimizer: a mini-batch
//! gradient of the cross-entropy, plus l2 regularisation, clipped to an L2 norm (the thesis:
//! λ = 1e-4, clipping at 2).

use crate::sums::Lanes64;
use serde::{Deserialize, Serialize};

/// Gradient post-processing of the thesis's workers.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GradientPolicy {
    /// `λ` of the l2 regularisation `λ/2 ‖θ‖²`: `λ θ` is added to the gradient (default 1e-4).
    #[serde(default = "default_l2")]
    pub l2: f64,
    /// Largest L2 norm of the gradient after regularisation; `None` for no clipping
    /// (default 2).
    #[serde(default = "default_clip")]
    pub clip: Option<f64>,
}

fn default_l2() -> f64 {
    1e-4
}
fn default_clip() -> Option<f64> {
    Some(2.0)
}

impl Default for GradientPolicy {
    fn default() -> Self {
        Self {
            l2: default_l2(),
            clip: default_clip(),
        }
    }
}

impl GradientPolicy {
    /// Checks the policy: `l2` finite and `≥ 0`, `clip` finite and `> 0`; the error is (the
    /// field. (A negative clip would scale every gradient by `clip/‖g‖ < 0`: training uphill.)
    pub fn check(&self) -> Result<(), (&'static str, String)> {
        if !(self.l2.is_finite() && self.l2 >= 0.0) {
            return Err(("l2", format!("must be finite and ≥ 0, got {}", self.l2)));
        }
        match self.clip {
            Some(c) if !(c.is_finite() && c > 0.0) => Err((
                "clip",
                format!("must be finite and > 0 (or absent for no clipping), got {c}"),
            )),
            _ => Ok(()),
        }
    }

    /// Adds `λ θ` to `grad`, then scales it to norm at most `clip`. Returns the norm before
    /// clipping. A non-finite norm (a diverged model) leaves the gradient as it is: clipping
    /// cannot give it a direction.
    ///
    /// ```
    /// use byzadam_model::GradientPolicy;
    /// let mut g = vec![3.0, 4.0];
    /// let norm = GradientPolicy { l2: 0.0, clip: Some(1.0) }.apply(&[0.0, 0.0], &mut g);
    /// assert_eq!(norm, 5.0);
    /// assert!((g[0] - 0.6).abs() < 1e-6 && (g[1] - 0.8).abs() < 1e-6);
    /// ```
    pub fn apply(&self, params: &[f32], grad: &mut [f32]) -> f32 {
        if self.l2 != 0.0 {
            let l2 = self.l2 as f32;
            for (g, &p) in grad.iter_mut().zip(params) {
                *g += l2 * p;
            }
        }
        let mut squares = Lanes64::default();
        squares.add(grad, |g| (g as f64) * (g as f64));
        let norm = squares.total().sqrt() as f32;
        if let Some(c) = self.clip {
            let c = c as f32;
            if norm.is_finite() && norm > c {
                let s = c / norm;
                for g in grad.iter_mut() {
                    *g *= s;
                }
            }
        }
        norm
    }
}
