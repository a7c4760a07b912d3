//! Batch normalisation over channels (`LayerSpec::BatchNorm`; ε = 1e-5, momentum 0.1, as
//! PyTorch): weight `[c]` then bias `[c]`; the running mean and variance are state, not
//! parameters, updated by every training pass and used in evaluation. Its sums run in fixed
//! order (`crate::sums`).

use super::shape::Shape;
use crate::sums::Lanes64;

/// ε added to the variance.
pub(crate) const BN_EPS: f32 = 1e-5;
const BN_MOMENTUM: f32 = 0.1;

/// The output shape (the input's), the parameter count (γ and β) and the state count (the
/// running mean and variance) of a batch norm on `input`.
pub(crate) fn output(input: Shape) -> (Shape, usize, usize) {
    (input, 2 * input.c, 2 * input.c)
}

/// `y = γ x̂ + β`, `x̂ = (x − mean) / √(var + ε)` per channel, with the batch's statistics in
/// training (updating the running ones in `state`) or the running ones in evaluation;
/// keeps each channel's `(mean, 1/√(var + ε))` in `stats` (`2c` values: the means, then
/// the inverse deviations) for the backward pass, which computes `x̂` again from `x` by the
/// same `f32` expression (the same bits): storing `x̂` cost a write of the whole
/// activation here and a read there, and batch norm is bound by memory traffic. With `y`
/// `None` (a Winograd convolution comes next and normalises its input as it reads it: see
/// [`Normalised`]) only the statistics are computed.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
pub(crate) fn forward(
    x: &[f32],
    shape: Shape,
    batch: usize,
    p: &[f32],
    state: &mut [f32],
    train: bool,
    mut y: Option<&mut [f32]>,
    stats: &mut [f32],
) {
    let (c_n, hw) = (shape.c, shape.h * shape.w);
    let n = (batch * hw) as f64;
    let (means, inv_std) = stats.split_at_mut(c_n);
    let (gamma, beta) = p.split_at(c_n);
    let (running_mean, running_var) = state.split_at_mut(c_n);
    for c in 0..c_n {
        let planes = || (0..batch).map(move |b| b * shape.len() + c * hw);
        let (mean, var) = if train {
            let mut acc = Lanes64::default();
            for o in planes() {
                acc.add(&x[o..o + hw], |v| v as f64);
            }
            let mean = acc.total() / n;
            let mut acc = Lanes64::default();
            for o in planes() {
                acc.add(&x[o..o + hw], |v| (v as f64 - mean).powi(2));
            }
            let var = acc.total() / n;
            running_mean[c] = (1.0 - BN_MOMENTUM) * running_mean[c] + BN_MOMENTUM * mean as f32;
            let unbiased = if n > 1.0 { var * n / (n - 1.0) } else { var };
            running_var[c] = (1.0 - BN_MOMENTUM) * running_var[c] + BN_MOMENTUM * unbiased as f32;
            (mean as f32, var as f32)
        } else {
            (running_mean[c], running_var[c])
        };
        let inv = 1.0 / (var + BN_EPS).sqrt();
        (means[c], inv_std[c]) = (mean, inv);
        let (ga, be) = (gamma[c], beta[c]);
        if let Some(y) = y.as_deref_mut() {
            for o in planes() {
                for (o, &v) in y[o..o + hw].iter_mut().zip(&x[o..o + hw]) {
                    *o = normalise(v, [ga, be, mean, inv]);
                }
            }
        }
    }
}

/// A batch norm's output computed where it is read instead of stored: its parameters (γ then
/// β) and the statistics its forward pass kept (the means, then the inverse deviations).
/// A Winograd convolution right after a batch norm reads the batch norm's *input* through
/// this (`winograd::inputs`), so the normalised activation is never written nor read back
/// (a write and a read of the whole activation saved a pass, forward and backward); the
/// values are [`normalise`]'s, the bits batch norm's own pass would have stored.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Normalised<'a> {
    pub(crate) params: &'a [f32],
    pub(crate) stats: &'a [f32],
}

impl Normalised<'_> {
    /// Channel `c`'s `[γ, β, mean, 1/√(var + ε)]`.
    #[inline(always)]
    pub(crate) fn channel(&self, c: usize) -> [f32; 4] {
        let n = self.params.len() / 2;
        [
            self.params[c],
            self.params[n + c],
            self.stats[c],
            self.stats[n + c],
        ]
    }
}

/// Batch norm's output for one value, `γ x̂ + β` with channel constants `[γ, β, mean,
/// inv]` ([`Normalised::channel`]): the one expression of both places that compute it.
#[inline(always)]
pub(crate) fn normalise(v: f32, [ga, be, mean, inv]: [f32; 4]) -> f32 {
    ga * xhat(v, mean, inv) + be
}

/// `x̂` of one value: the forward pass's and the backward pass's expression, one function so
/// that both give the same bits.
#[inline(always)]
fn xhat(v: f32, mean: f32, inv: f32) -> f32 {
    (v - mean) * inv
}

/// Adds γ's and β's gradients to `gp` and writes `dx`, from the layer's input `x` and the
/// `stats` its forward pass kept; with `relu_before` (a ReLU comes right before, so `x` is
/// its output) it applies that ReLU's mask too.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
pub(crate) fn backward(
    dy: &[f32],
    shape: Shape,
    batch: usize,
    p: &[f32],
    x: &[f32],
    stats: &[f32],
    relu_before: bool,
    gp: &mut [f32],
    dx: &mut [f32],
) {
    let (c_n, hw) = (shape.c, shape.h * shape.w);
    let n = (batch * hw) as f32;
    let (gamma, _) = p.split_at(c_n);
    let (means, inv_std) = stats.split_at(c_n);
    let (ggamma, gbeta) = gp.split_at_mut(c_n);
    for c in 0..c_n {
        let planes = || (0..batch).map(move |b| b * shape.len() + c * hw);
        let (mean, inv) = (means[c], inv_std[c]);
        let (mut sum_dy, mut sum_dy_xhat) = (Lanes64::default(), Lanes64::default());
        for o in planes() {
            sum_dy.add(&dy[o..o + hw], |g| g as f64);
            sum_dy_xhat.add2(&dy[o..o + hw], &x[o..o + hw], |g, v| {
                (g * xhat(v, mean, inv)) as f64
            });
        }
        let (sum_dy, sum_dy_xhat) = (sum_dy.total(), sum_dy_xhat.total());
        ggamma[c] += sum_dy_xhat as f32;
        gbeta[c] += sum_dy as f32;
        let (sd, sdx) = (sum_dy as f32, sum_dy_xhat as f32);
        let k = gamma[c] * inv / n;
        for o in planes() {
            let terms = dx[o..o + hw]
                .iter_mut()
                .zip(&dy[o..o + hw])
                .zip(&x[o..o + hw]);
            // The ReLU before, fused: its backward pass, `dx · [x > 0]` with `x` its output
            // (this layer's input).
            if relu_before {
                for ((d, &g), &v) in terms {
                    *d = if v > 0.0 {
                        k * (n * g - sd - xhat(v, mean, inv) * sdx)
                    } else {
                        0.0
                    };
                }
            } else {
                for ((d, &g), &v) in terms {
                    *d = k * (n * g - sd - xhat(v, mean, inv) * sdx);
                }
            }
        }
    }
}
