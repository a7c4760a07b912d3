//! Pre-aggregators: `n` vectors in, `n′` out, chainable before any aggregator.

mod adaptive_robust_clipping;
mod bucketing;
mod nearest_neighbor_mixing;
mod static_clipping;

pub use adaptive_robust_clipping::AdaptiveRobustClipping;
pub use bucketing::Bucketing;
pub use nearest_neighbor_mixing::NearestNeighborMixing;
pub use static_clipping::StaticClipping;

use crate::{Error, Submissions};

/// Maps one round's submissions to new submissions (mixing, bucketing, clipping) before an
/// [`crate::Aggregator`] combines them.
pub trait PreAggregator: std::fmt::Debug + Send + Sync + dyn_clone::DynClone {
    /// The snake_case name, as in configs.
    fn name(&self) -> &'static str;

    /// Checks the parameters alone, before any input is seen: the bounds its
    /// [`crate::params::Described::PARAMS`] state (`tau > 0`, a finite `z`), each error naming
    /// the parameter. Every config path (run configs, the CLI, the Python classes) calls it.
    fn validate(&self) -> Result<(), Error> {
        Ok(())
    }

    /// How many vectors come out for `n` in; an error if `n` is too few.
    fn output_len(&self, n: usize) -> Result<usize, Error>;

    /// Writes the transformed submissions into `out` (resized as needed; its allocation is
    /// reused). Randomised pre-aggregators draw from `rng` only.
    fn apply(
        &mut self,
        input: &Submissions,
        out: &mut Submissions,
        rng: &mut dyn rand::RngCore,
    ) -> Result<(), Error> {
        input.check_nonempty()?;
        let m = self.output_len(input.n())?;
        out.reshape(m, input.dim());
        self.apply_into(input, out.as_flat_mut(), rng)
    }

    /// Writes the transformed submissions into a caller's row-major buffer of exactly
    /// `output_len(n) × dim` values, every one of them (the Python bindings write straight into
    /// a new NumPy array). [`PreAggregator::apply`] is this on a resized [`Submissions`].
    fn apply_into(
        &mut self,
        input: &Submissions,
        out: &mut [f32],
        rng: &mut dyn rand::RngCore,
    ) -> Result<(), Error>;
}

/// Checks `input` and `out` for [`PreAggregator::apply_into`]; returns `output_len(n)`.
pub(crate) fn precheck(
    p: &dyn PreAggregator,
    input: &Submissions,
    out: &[f32],
) -> Result<usize, Error> {
    input.check_nonempty()?;
    let m = p.output_len(input.n())?;
    if out.len() != m * input.dim() {
        return Err(Error::OutputLength {
            expected: m * input.dim(),
            found: out.len(),
        });
    }
    Ok(m)
}

dyn_clone::clone_trait_object!(PreAggregator);

/// Scales `row` to L2 norm at most `c`, given its squared norm. A row whose norm is not finite
/// has no direction and becomes the zero vector.
pub(crate) fn clip_row(row: &mut [f32], sq_norm: f64, c: f64) {
    let norm = sq_norm.sqrt();
    if !norm.is_finite() {
        row.fill(0.0);
    } else if norm > c {
        let scale = c / norm;
        for x in row {
            *x = (*x as f64 * scale) as f32;
        }
    }
}
