use super::{clip_row, PreAggregator};
use crate::kernels::distances;
use crate::{Error, Submissions};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

/// Static L2 clipping: every vector of norm above `c` is scaled to norm `c`. A vector with a
/// non-finite norm has no direction and becomes the zero vector. (ByzFL's `Clipping`.)
///
/// ```
/// # use byzadam_robust::{preaggregators::StaticClipping, PreAggregator, Submissions};
/// # use rand::SeedableRng;
/// let s = Submissions::from_rows(&[[3.0, 4.0], [0.3, 0.4]])?;
/// let mut out = Submissions::default();
/// let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(0);
/// StaticClipping { c: 1.0 }.apply(&s, &mut out, &mut rng)?;
/// assert_eq!(out.row(0), &[0.6, 0.8]);
/// assert_eq!(out.row(1), &[0.3, 0.4]);
/// # Ok::<(), byzadam_robust::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[doc(alias = "clipping")]
pub struct StaticClipping {
    /// Largest L2 norm `c > 0` (default 2, the thesis's gradient clipping).
    #[serde(default = "default_c")]
    pub c: f64,
}

fn default_c() -> f64 {
    2.0
}

impl PreAggregator for StaticClipping {
    fn name(&self) -> &'static str {
        "static_clipping"
    }

    fn validate(&self) -> Result<(), Error> {
        if !(self.c > 0.0 && self.c.is_finite()) {
            return Err(Error::InvalidParameter {
                rule: self.name(),
                name: "c",
                reason: format!("must be finite and > 0, got {}", self.c),
            });
        }
        Ok(())
    }

    fn output_len(&self, n: usize) -> Result<usize, Error> {
        self.validate()?;
        Ok(n)
    }

    fn apply_into(
        &mut self,
        input: &Submissions,
        out: &mut [f32],
        _rng: &mut dyn rand::RngCore,
    ) -> Result<(), Error> {
        super::precheck(self, input, out)?;
        let mut norms = vec![0.0; input.n()];
        distances::sq_norms(input, &mut norms);
        out.copy_from_slice(input.as_flat());
        let dim = input.dim();
        out.par_chunks_mut(dim)
            .zip(&norms)
            .for_each(|(row, &sq)| clip_row(row, sq, self.c));
        Ok(())
    }
}

use crate::params::param;

impl crate::params::Described for StaticClipping {
    const PARAMS: &'static [crate::params::Param] = &[param(
        "c",
        "float",
        "2",
        "finite, > 0",
        "largest L2 norm kept",
    )];
}
