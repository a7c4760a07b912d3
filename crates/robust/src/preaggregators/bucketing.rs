use super::PreAggregator;
use crate::kernels::rowsum;
use crate::{Error, Submissions};
use rand::seq::SliceRandom;
use serde::{Deserialize, Serialize};

/// Bucketing: shuffle the vectors with the round's seeded stream, then average consecutive
/// buckets of `s`; a last, smaller bucket holds the remainder. `n` in, `⌈n/s⌉` out.
/// (Karimireddy, He & Jaggi, "Byzantine-robust learning on heterogeneous datasets via
/// bucketing", ICLR 2022.)
///
/// The following aggregator sees `⌈n/s⌉` vectors, of which up to `f` may be contaminated, so
/// it must tolerate `f` out of `⌈n/s⌉`.
///
/// ```
/// # use byzadam_robust::{preaggregators::Bucketing, PreAggregator, Submissions};
/// # use rand::SeedableRng;
/// let s = Submissions::from_rows(&[[1.0], [2.0], [3.0], [4.0], [5.0]])?;
/// let mut out = Submissions::default();
/// let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(7);
/// Bucketing { s: 2 }.apply(&s, &mut out, &mut rng)?;
/// assert_eq!(out.n(), 3);
/// // A permutation then bucket means: the buckets' sizes weight their means back to the total.
/// let total = 2.0 * out.row(0)[0] + 2.0 * out.row(1)[0] + out.row(2)[0];
/// assert!((total - 15.0).abs() < 1e-5);
/// # Ok::<(), byzadam_robust::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Bucketing {
    /// Bucket size `s ≥ 1`.
    pub s: usize,
}

impl PreAggregator for Bucketing {
    fn name(&self) -> &'static str {
        "bucketing"
    }

    fn validate(&self) -> Result<(), Error> {
        if self.s == 0 {
            return Err(Error::InvalidParameter {
                rule: self.name(),
                name: "s",
                reason: "bucket size must be ≥ 1".into(),
            });
        }
        Ok(())
    }

    fn output_len(&self, n: usize) -> Result<usize, Error> {
        self.validate()?;
        Ok(n.div_ceil(self.s))
    }

    fn apply_into(
        &mut self,
        input: &Submissions,
        out: &mut [f32],
        rng: &mut dyn rand::RngCore,
    ) -> Result<(), Error> {
        super::precheck(self, input, out)?;
        let mut perm: Vec<usize> = (0..input.n()).collect();
        perm.shuffle(rng);
        let dim = input.dim();
        for (chunk, row) in perm.chunks(self.s).zip(out.chunks_exact_mut(dim)) {
            rowsum::mean_of(input, chunk, row);
        }
        Ok(())
    }
}

use crate::params::param;

impl crate::params::Described for Bucketing {
    const PARAMS: &'static [crate::params::Param] =
        &[param("s", "int", "required", "≥ 1", "vectors per bucket")];
}
