use super::{precheck, Aggregator};
use crate::kernels::distances::{check_segments, segment_sums};
use crate::kernels::order::nan_last_cmp;
use crate::kernels::{rowsum, scratch};
use crate::{require, Error, Submissions};
use serde::{Deserialize, Serialize};

/// The thesis's code's "MDA" (`aggregation.py`, `mda`): each vector is scored by its *largest*
/// distance to any vector, and the `n − f` vectors with the smallest scores are averaged.
/// Needs `n > f`.
///
/// This is a heuristic, not minimum diameter averaging ([`super::MinimumDiameterAveraging`]
/// searches the subsets exactly): a tight cluster that contains one far-off honest vector can
/// lose to a looser one. It is here to reproduce the thesis's tables as its code ran them.
///
/// The distance is the one that code uses: with `segments` (the lengths of consecutive
/// coordinate ranges, e.g. a model's parameter tensors, summing to the dimension) the sum
/// over segments of their L2 distances; with no segments (the default) the plain L2 distance.
/// Undefined distances (`∞ − ∞`) are NaN and sort after every number, as NumPy's `argsort`
/// puts them: a vector whose distances include a NaN has the largest score. Ties go to the
/// lower index.
///
/// ```
/// # use byzadam_robust::{aggregators::LargestDistanceFilter, Aggregator, Submissions};
/// // Largest distances: 0 → 20, 1 → 19, 2 → 18, 3 → 17, 20 → 20. The three lowest are
/// // 1, 2 and 3; exact MDA would pick {0, 1, 2} (diameter 2, as {1, 2, 3}, and first).
/// let s = Submissions::from_rows(&[[0.0], [1.0], [2.0], [3.0], [20.0]])?;
/// assert_eq!(LargestDistanceFilter::new(2).aggregate(&s)?, [2.0]);
/// # Ok::<(), byzadam_robust::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LargestDistanceFilter {
    /// Number of vectors dropped: the `n − f` lowest scores are averaged.
    pub f: usize,
    /// Lengths of the coordinate segments whose L2 distances are summed (default: none, the
    /// whole vector is one segment).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub segments: Vec<usize>,
}

impl LargestDistanceFilter {
    /// Over the whole vector (no segments).
    pub fn new(f: usize) -> Self {
        Self {
            f,
            segments: Vec::new(),
        }
    }
}

impl Aggregator for LargestDistanceFilter {
    fn name(&self) -> &'static str {
        "largest_distance_filter"
    }

    fn validate(&self) -> Result<(), Error> {
        crate::params::segments(self.name(), &self.segments)
    }

    fn check(&self, n: usize) -> Result<(), Error> {
        self.validate()?;
        require(n > self.f, self.name(), "n > f", n, self.f)
    }

    fn aggregate_into(&mut self, s: &Submissions, out: &mut [f32]) -> Result<(), Error> {
        precheck(self, s, out)?;
        check_segments(self.name(), &self.segments, s.dim())?;
        let n = s.n();
        scratch::with_f64(n * n + n, |buf| {
            let (d, score) = buf.split_at_mut(n * n);
            segment_sums(s, &self.segments, d);
            for (i, sc) in score.iter_mut().enumerate() {
                *sc = d[i * n..(i + 1) * n]
                    .iter()
                    .copied()
                    .max_by(|a, b| nan_last_cmp(*a, *b))
                    .unwrap_or(0.0);
            }
            scratch::with_usize(n, |idx| {
                for (i, x) in idx.iter_mut().enumerate() {
                    *x = i;
                }
                idx.sort_unstable_by(|&a, &b| nan_last_cmp(score[a], score[b]).then(a.cmp(&b)));
                let kept = &mut idx[..n - self.f];
                kept.sort_unstable();
                rowsum::mean_of(s, kept, out);
            });
        });
        Ok(())
    }
}

use crate::params::F;

impl crate::params::Described for LargestDistanceFilter {
    const PARAMS: &'static [crate::params::Param] = &[F, crate::params::SEGMENTS];
    const REQUIREMENT: &'static str = "n > f";
}
