use super::{precheck, Aggregator};
use crate::kernels::{distances, linalg, rowsum};
use crate::{require, Error, Submissions};
use serde::{Deserialize, Serialize};

/// CAF, the covariance-bound agnostic filter: weights `cᵢ = 1`; while `Σ c > n − 2f`, take
/// the weighted mean `μ_c` and the top eigenpair `(λ, v)` of the weighted covariance
/// `Σ cᵢ (xᵢ − μ_c)(xᵢ − μ_c)ᵀ / Σ c`, remember `μ_c` if `λ` is the smallest seen, then
/// `cᵢ ← cᵢ (1 − τᵢ / max τ)` with `τᵢ = (v · (xᵢ − μ_c))²`. Returns the remembered mean.
/// Needs `n > 2f`. (Allouah, Guerraoui & Stephan, "Towards trustworthy federated learning with
/// untrusted participants", ICML 2025; a spectral filter in the line of Diakonikolas et al.)
///
/// Computed exactly: the eigenpair comes from the `n × n` centred Gram matrix (obtained from
/// the pairwise distances), never from the `d × d` covariance. Two differences from ByzFL
/// 0.0.11, which are choices of this implementation: ByzFL takes one power-iteration step from
/// a random vector (so its output is random; ours is the exact eigenvector), and its `max τ`
/// runs over all vectors, including those already filtered out; ours runs over the vectors
/// still weighted, so each step removes at least one and the loop ends within `n` steps.
/// Vectors with a non-finite entry start with weight 0 (their distance to every point is
/// infinite). With `f = 0` the loop never runs and the result is the average.
///
/// ```
/// # use byzadam_robust::{aggregators::CovarianceFilter, Aggregator, Submissions};
/// let s = Submissions::from_rows(&[[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [40.0, -40.0]])?;
/// let out = CovarianceFilter { f: 1 }.aggregate(&s)?;
/// // The outlier is filtered out; the square's corners keep (slightly unequal) weights.
/// assert!((out[0] - 0.5).abs() < 0.01 && (out[1] - 0.5).abs() < 0.01);
/// # Ok::<(), byzadam_robust::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[doc(alias = "CAF")]
pub struct CovarianceFilter {
    /// Number of Byzantine inputs tolerated.
    pub f: usize,
}

/// True for rows with only finite entries.
pub(crate) fn finite_rows(s: &Submissions) -> Vec<bool> {
    use rayon::prelude::*;
    s.as_flat()
        .par_chunks(s.dim())
        .map(|r| r.iter().all(|x| x.is_finite()))
        .collect()
}

impl Aggregator for CovarianceFilter {
    fn name(&self) -> &'static str {
        "covariance_filter"
    }

    fn check(&self, n: usize) -> Result<(), Error> {
        require(
            n > self.f.saturating_mul(2),
            self.name(),
            "n > 2f",
            n,
            self.f,
        )
    }

    fn aggregate_into(&mut self, s: &Submissions, out: &mut [f32]) -> Result<(), Error> {
        precheck(self, s, out)?;
        let n = s.n();
        let mut d2 = vec![0.0; n * n];
        distances::pairwise_sq(s, &mut d2);
        let finite = finite_rows(s);
        let mut c: Vec<f64> = finite
            .iter()
            .map(|&ok| if ok { 1.0 } else { 0.0 })
            .collect();
        let mut best_lambda = f64::INFINITY;
        let mut best: Option<Vec<f64>> = None;
        let threshold = (n - 2 * self.f) as f64;
        loop {
            let total: f64 = c.iter().sum();
            if !(total > threshold) {
                break;
            }
            let active: Vec<usize> = (0..n).filter(|&i| c[i] > 0.0).collect();
            let w: Vec<f64> = active.iter().map(|&i| c[i] / total).collect();
            let k = active.len();
            let g = linalg::centred_gram(&d2, n, &active, &w);
            let sw: Vec<f64> = w.iter().map(|x| x.sqrt()).collect();
            let m: Vec<f64> = (0..k * k)
                .map(|ab| sw[ab / k] * g[ab] * sw[ab % k])
                .collect();
            let (lambda, u) = linalg::top_eigen(&m, k);
            if lambda < best_lambda || best.is_none() {
                best_lambda = lambda;
                let mut full = vec![0.0; n];
                for (&i, &wi) in active.iter().zip(&w) {
                    full[i] = wi;
                }
                best = Some(full);
            }
            if !(lambda > 0.0) {
                break; // every weighted point coincides: nothing left to filter
            }
            // v·(x_a − μ) = Σ_b √w_b u_b K_ba / √λ
            let tau: Vec<f64> = (0..k)
                .map(|a| {
                    let p: f64 =
                        (0..k).map(|b| sw[b] * u[b] * g[b * k + a]).sum::<f64>() / lambda.sqrt();
                    p * p
                })
                .collect();
            let tau_max = tau.iter().cloned().fold(0.0, f64::max);
            if !(tau_max > 0.0) {
                break;
            }
            for (a, &i) in active.iter().enumerate() {
                c[i] *= 1.0 - tau[a] / tau_max;
                if c[i] < 0.0 {
                    c[i] = 0.0;
                }
            }
        }
        let weights = best.unwrap_or_else(|| c.clone());
        if weights.iter().all(|&w| w == 0.0) {
            out.fill(f32::NAN);
        } else {
            rowsum::weighted_mean(s, &weights, out);
        }
        Ok(())
    }
}

use crate::params::F;

impl crate::params::Described for CovarianceFilter {
    const PARAMS: &'static [crate::params::Param] = &[F];
    const REQUIREMENT: &'static str = "n > 2f";
}
