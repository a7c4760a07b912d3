use super::PreAggregator;
use crate::kernels::columns::for_each_column_chunk;
use crate::kernels::order::nan_last_cmp;
use crate::kernels::{distances, mix, scratch};
use crate::{require, Error, Submissions};
use serde::{Deserialize, Serialize};

/// Nearest-neighbour mixing: each vector is replaced by the average of its `n − f` nearest
/// vectors (itself included, then the others by distance, ties by index). Needs `n > f`.
/// (Allouah, Farhadkhani, Guerraoui, Gupta, Pinot & Stephan, "Fixing by mixing: a recipe for
/// optimal Byzantine ML under heterogeneity", AISTATS 2023; the thesis's Algorithm 16.)
///
/// With `segments` (lengths of consecutive coordinate ranges summing to the dimension, e.g. a
/// model's parameter tensors) the distance is the thesis's code's (`preaggregation.py`,
/// `nnm`): the sum over segments of their L2 distances, and each row's neighbours are its
/// `n − f` nearest rows by that distance, itself included only by its distance (0, or NaN for
/// a row holding an infinity), NaN distances last, ties by index, as that code's `argsort`
/// orders them. A row of infinities is then at distance `∞` from every finite row and NaN from
/// itself: its neighbourhood is the first `n − f` finite rows by index (when there are that
/// many), so it is replaced by their average.
///
/// ```
/// # use byzadam_robust::{preaggregators::NearestNeighborMixing, PreAggregator, Submissions};
/// # use rand::SeedableRng;
/// let s = Submissions::from_rows(&[[0.0], [1.0], [3.0], [100.0]])?;
/// let mut out = Submissions::default();
/// let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(0);
/// NearestNeighborMixing::new(1).apply(&s, &mut out, &mut rng)?;
/// assert_eq!(out.as_flat(), &[4.0 / 3.0, 4.0 / 3.0, 4.0 / 3.0, 104.0 / 3.0]);
/// # Ok::<(), byzadam_robust::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[doc(alias = "NNM")]
pub struct NearestNeighborMixing {
    /// Number of Byzantine inputs tolerated; each output averages `n − f` inputs.
    pub f: usize,
    /// Lengths of the coordinate segments whose L2 distances are summed (default: none, the
    /// plain L2 distance, every row its own first neighbour).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub segments: Vec<usize>,
}

impl NearestNeighborMixing {
    /// Over the whole vector (no segments).
    pub fn new(f: usize) -> Self {
        Self {
            f,
            segments: Vec::new(),
        }
    }
}

/// For each row `i`, its `k` nearest rows by `d` (NaN last, ties by index; the row itself
/// only by its own distance) into `nbrs[i*k..(i+1)*k]`, sorted by index.
fn segment_neighbourhoods(d: &[f64], n: usize, k: usize, nbrs: &mut [usize]) {
    let mut idx: Vec<usize> = (0..n).collect();
    for i in 0..n {
        let row = &d[i * n..(i + 1) * n];
        for (j, o) in idx.iter_mut().enumerate() {
            *o = j;
        }
        idx.sort_unstable_by(|&a, &b| nan_last_cmp(row[a], row[b]).then(a.cmp(&b)));
        let dst = &mut nbrs[i * k..(i + 1) * k];
        dst.copy_from_slice(&idx[..k]);
        dst.sort_unstable();
    }
}

/// For each row `i`, its `k` nearest rows (itself first) into `nbrs[i*k..(i+1)*k]`, sorted
/// by index.
pub(crate) fn neighbourhoods(d2: &[f64], n: usize, k: usize, nbrs: &mut [usize]) {
    let mut order: [usize; 64] = [0; 64];
    let mut heap = Vec::new();
    let idx: &mut [usize] = if n <= 64 {
        &mut order[..n]
    } else {
        heap.resize(n, 0);
        &mut heap
    };
    for i in 0..n {
        for (j, o) in idx.iter_mut().enumerate() {
            *o = j;
        }
        let row = &d2[i * n..(i + 1) * n];
        idx.sort_unstable_by(|&a, &b| {
            let key = |j: usize| if j == i { f64::NEG_INFINITY } else { row[j] };
            key(a).total_cmp(&key(b)).then(a.cmp(&b))
        });
        let dst = &mut nbrs[i * k..(i + 1) * k];
        dst.copy_from_slice(&idx[..k]);
        dst.sort_unstable();
    }
}

impl PreAggregator for NearestNeighborMixing {
    fn name(&self) -> &'static str {
        "nearest_neighbor_mixing"
    }

    fn validate(&self) -> Result<(), Error> {
        crate::params::segments(self.name(), &self.segments)
    }

    fn output_len(&self, n: usize) -> Result<usize, Error> {
        self.validate()?;
        require(n > self.f, self.name(), "n > f", n, self.f)?;
        Ok(n)
    }

    fn apply_into(
        &mut self,
        input: &Submissions,
        out: &mut [f32],
        _rng: &mut dyn rand::RngCore,
    ) -> Result<(), Error> {
        super::precheck(self, input, out)?;
        let (n, dim) = (input.n(), input.dim());
        let k = n - self.f;
        distances::check_segments(self.name(), &self.segments, dim)?;
        let segmented = !self.segments.is_empty();
        scratch::with_f64_b(n * n, |d2| {
            if segmented {
                distances::segment_sums(input, &self.segments, d2);
            } else {
                distances::pairwise_sq(input, d2);
            }
            scratch::with_usize(n * k, |nbrs| {
                if segmented {
                    segment_neighbourhoods(d2, n, k, nbrs);
                } else {
                    neighbourhoods(d2, n, k, nbrs);
                }
                let nbrs = &*nbrs;
                let data = input.as_flat();
                for_each_column_chunk(out, dim, &|c0, rows| {
                    mix::mix_chunk(data, dim, nbrs, k, c0, rows);
                });
            })
        });
        Ok(())
    }
}

use crate::params::F;

impl crate::params::Described for NearestNeighborMixing {
    const PARAMS: &'static [crate::params::Param] = &[F, crate::params::SEGMENTS];
    const REQUIREMENT: &'static str = "n > f";
}
