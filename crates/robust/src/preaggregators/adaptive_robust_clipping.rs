use super::{clip_row, PreAggregator};
use crate::kernels::{distances, order};
use crate::{require, Error, Submissions};
use serde::{Deserialize, Serialize};

/// Adaptive robust clipping (ARC): clip the `k = ⌊2 (f/n) (n − f)⌋` largest-norm vectors to the
/// norm of the largest vector left unclipped. Needs `n > f`. (Allouah, Guerraoui, Gupta,
/// Jellouli, Rizk & Stephan, "The vital role of gradient clipping in Byzantine-resilient
/// distributed learning", arXiv:2405.14432, 2024; ByzFL's `ARC`.)
///
/// Norms are ordered with ties by index; a vector with a non-finite norm is among the
/// largest and, clipped, becomes the zero vector.
///
/// ```
/// # use byzadam_robust::{preaggregators::AdaptiveRobustClipping, PreAggregator, Submissions};
/// # use rand::SeedableRng;
/// // n = 4, f = 1: k = ⌊2 · 1/4 · 3⌋ = 1 vector clipped, to the norm of the next largest (2).
/// let s = Submissions::from_rows(&[[1.0], [2.0], [-0.5], [40.0]])?;
/// let mut out = Submissions::default();
/// let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(0);
/// AdaptiveRobustClipping { f: 1 }.apply(&s, &mut out, &mut rng)?;
/// assert_eq!(out.as_flat(), &[1.0, 2.0, -0.5, 2.0]);
/// # Ok::<(), byzadam_robust::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[doc(alias = "ARC")]
pub struct AdaptiveRobustClipping {
    /// Number of Byzantine inputs tolerated.
    pub f: usize,
}

impl PreAggregator for AdaptiveRobustClipping {
    fn name(&self) -> &'static str {
        "adaptive_robust_clipping"
    }

    fn output_len(&self, n: usize) -> Result<usize, Error> {
        require(n > self.f, self.name(), "n > f", n, self.f)?;
        Ok(n)
    }

    fn apply_into(
        &mut self,
        input: &Submissions,
        out: &mut [f32],
        _rng: &mut dyn rand::RngCore,
    ) -> Result<(), Error> {
        let n = super::precheck(self, input, out)?;
        let dim = input.dim();
        let clipped = (2 * self.f * (n - self.f)) / n;
        let mut norms = vec![0.0; n];
        distances::sq_norms(input, &mut norms);
        out.copy_from_slice(input.as_flat());
        if clipped == 0 {
            return Ok(());
        }
        let mut idx = vec![0; n];
        order::argsort_into(&norms, &mut idx);
        let cut = n - clipped;
        let threshold = norms[idx[cut - 1]].sqrt();
        for &i in &idx[cut..] {
            clip_row(&mut out[i * dim..(i + 1) * dim], norms[i], threshold);
        }
        Ok(())
    }
}

use crate::params::F;

impl crate::params::Described for AdaptiveRobustClipping {
    const PARAMS: &'static [crate::params::Param] = &[F];
    const REQUIREMENT: &'static str = "n > f";
}
