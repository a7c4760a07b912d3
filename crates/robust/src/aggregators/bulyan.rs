use super::krum::{krum_order, krum_scores};
use super::{precheck, Aggregator};
use crate::kernels::coordinatewise::{coordinatewise, Reduce};
use crate::kernels::distances;
use crate::{require, Error, Submissions};
use serde::{Deserialize, Serialize};

/// Bulyan: select `θ = n − 2f` vectors by repeatedly taking the Krum winner of those left
/// (each Krum over the `r` remaining vectors counts `max(r − f − 2, 0)` neighbours), then per
/// coordinate average the `β = θ − 2f` selected values closest to their median. Krum's ties
/// (certain in the last rounds, which count one or zero neighbours) go to the vector with the
/// smaller sum of squared distances to the others left, so the result does not depend on the
/// order of the inputs. Needs
/// `n ≥ 4f + 3`. (El Mhamdi, Guerraoui & Rouault, "The hidden vulnerability of distributed
/// learning in Byzantium", ICML 2018.)
///
/// ```
/// # use byzadam_robust::{aggregators::Bulyan, Aggregator, Submissions};
/// let s = Submissions::from_rows(&[[0.0], [0.1], [0.2], [0.3], [0.4], [0.5], [99.0]])?;
/// let out = Bulyan { f: 1 }.aggregate(&s)?;
/// assert!(out[0] >= 0.0 && out[0] <= 0.5);
/// # Ok::<(), byzadam_robust::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Bulyan {
    /// Number of Byzantine inputs tolerated.
    pub f: usize,
}

impl Aggregator for Bulyan {
    fn name(&self) -> &'static str {
        "bulyan"
    }

    fn check(&self, n: usize) -> Result<(), Error> {
        require(
            n > self.f.saturating_mul(4).saturating_add(2),
            self.name(),
            "n ≥ 4f + 3",
            n,
            self.f,
        )
    }

    fn aggregate_into(&mut self, s: &Submissions, out: &mut [f32]) -> Result<(), Error> {
        precheck(self, s, out)?;
        let (n, f) = (s.n(), self.f);
        let theta = n - 2 * f;
        let mut d2 = vec![0.0; n * n];
        distances::pairwise_sq(s, &mut d2);
        let mut remaining: Vec<usize> = (0..n).collect();
        let mut selected = Vec::with_capacity(theta);
        let (mut scores, mut spread, mut tmp) = (vec![0.0; n], vec![0.0; n], vec![0.0; n]);
        while selected.len() < theta {
            let r = remaining.len();
            krum_scores(
                &d2,
                n,
                &remaining,
                r.saturating_sub(f + 2),
                &mut scores[..r],
                &mut spread[..r],
                &mut tmp,
            );
            let mut best = 0;
            for a in 1..r {
                if krum_order(&scores, &spread, &remaining, a, best).is_lt() {
                    best = a;
                }
            }
            selected.push(remaining.remove(best));
        }
        selected.sort_unstable();
        let mut chosen = Submissions::zeros(0, s.dim());
        chosen.reshape(theta, s.dim());
        for (dst, &i) in chosen.rows_mut().zip(&selected) {
            dst.copy_from_slice(s.row(i));
        }
        coordinatewise(
            &chosen,
            Reduce::AroundMedian {
                keep: theta - 2 * f,
            },
            out,
        );
        Ok(())
    }
}

use crate::params::F;

impl crate::params::Described for Bulyan {
    const PARAMS: &'static [crate::params::Param] = &[F];
    const REQUIREMENT: &'static str = "n ≥ 4f + 3";
}
