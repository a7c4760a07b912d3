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
    /// Which comes first (default `l2_then_clip`, the text's; `clip_then_l2` is the thesis's
    /// code: `worker.py` calls `clip_grad_norm_(…, 2)` on the raw gradient, then adds
    /// `weight_decay · θ`, so the message's norm can exceed the clip).
    #[serde(default, skip_serializing_if = "is_default_order")]
    pub order: GradientOrder,
}

/// The order of l2 regularisation and clipping.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GradientOrder {
    /// `λ θ` added, then the sum clipped (the text's).
    #[default]
    L2ThenClip,
    /// The raw gradient clipped, then `λ θ` added (the thesis's code).
    ClipThenL2,
}

fn is_default_order(o: &GradientOrder) -> bool {
    *o == GradientOrder::default()
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
            order: GradientOrder::default(),
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

    /// Adds `λ θ` to `grad`, then scales it to norm at most `clip` (or the other way round,
    /// with [`GradientOrder::ClipThenL2`]). Returns the norm before clipping. A non-finite
    /// norm (a diverged model) leaves the gradient as it is: clipping cannot give it a
    /// direction.
    ///
    /// ```
    /// use byzadam_model::GradientPolicy;
    /// let mut g = vec![3.0, 4.0];
    /// let norm = GradientPolicy { l2: 0.0, clip: Some(1.0), ..Default::default() }
    ///     .apply(&[0.0, 0.0], &mut g);
    /// assert_eq!(norm, 5.0);
    /// assert!((g[0] - 0.6).abs() < 1e-6 && (g[1] - 0.8).abs() < 1e-6);
    /// ```
    pub fn apply(&self, params: &[f32], grad: &mut [f32]) -> f32 {
        match self.order {
            GradientOrder::L2ThenClip => {
                self.add_l2(params, grad);
                self.clip(grad)
            }
            GradientOrder::ClipThenL2 => {
                let norm = self.clip(grad);
                self.add_l2(params, grad);
                norm
            }
        }
    }

    fn add_l2(&self, params: &[f32], grad: &mut [f32]) {
        if self.l2 != 0.0 {
            let l2 = self.l2 as f32;
            for (g, &p) in grad.iter_mut().zip(params) {
                *g += l2 * p;
            }
        }
    }

    /// Scales `grad` to norm at most `clip`; returns the norm before.
    fn clip(&self, grad: &mut [f32]) -> f32 {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_two_orders_by_hand() {
        // θ = (10, 0), g = (3, 4) (norm 5), λ = 0.1, clip 1.
        let params = [10.0, 0.0];
        let text = GradientPolicy {
            l2: 0.1,
            clip: Some(1.0),
            order: GradientOrder::L2ThenClip,
        };
        // g + λθ = (4, 4), norm √32, clipped to (1/√2, 1/√2).
        let mut g = vec![3.0, 4.0];
        assert!((text.apply(&params, &mut g) - 32f32.sqrt()).abs() < 1e-6);
        assert!((g[0] - 0.5f32.sqrt()).abs() < 1e-6 && (g[1] - 0.5f32.sqrt()).abs() < 1e-6);
        // Clipped first to (0.6, 0.8), then + (1, 0): (1.6, 0.8), norm above the clip.
        let code = GradientPolicy {
            order: GradientOrder::ClipThenL2,
            ..text
        };
        let mut g = vec![3.0, 4.0];
        assert_eq!(code.apply(&params, &mut g), 5.0);
        assert!((g[0] - 1.6).abs() < 1e-6 && (g[1] - 0.8).abs() < 1e-6);
    }

    #[test]
    fn the_default_order_is_not_written_so_old_configs_keep_their_ids() {
        let json = serde_json::to_string(&GradientPolicy::default()).unwrap();
        assert_eq!(json, r#"{"l2":0.0001,"clip":2.0}"#);
        let code: GradientPolicy =
            serde_json::from_str(r#"{"l2":0.001,"clip":2.0,"order":"clip_then_l2"}"#).unwrap();
        assert_eq!(code.order, GradientOrder::ClipThenL2);
    }
}
