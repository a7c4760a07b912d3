//! Aggregation rules: `n` vectors in, one out.
//!
//! One file per rule; each rule's doc gives its formula, what it needs, its paper and a
//! doctest.

mod average;
mod bulyan;
mod centered_clipping;
mod covariance_filter;
mod geometric_median;
mod krum;
mod largest_distance_filter;
mod mean_around_median;
mod median;
mod minimum_diameter_averaging;
mod monna;
mod smallest_eigenvalue_averaging;
mod trimmed_mean;

pub use average::Average;
pub use bulyan::Bulyan;
pub use centered_clipping::CenteredClipping;
pub use covariance_filter::CovarianceFilter;
pub use geometric_median::GeometricMedian;
pub use krum::{Krum, MultiKrum};
pub use largest_distance_filter::LargestDistanceFilter;
pub use mean_around_median::MeanAroundMedian;
pub use median::Median;
pub use minimum_diameter_averaging::MinimumDiameterAveraging;
pub use monna::Monna;
pub use smallest_eigenvalue_averaging::SmallestEigenvalueAveraging;
pub use trimmed_mean::TrimmedMean;

use crate::{Error, Submissions};

/// Combines one round's submissions into one vector.
///
/// `aggregate_into` writes into a caller's buffer and, for the rules the simulator runs every
/// round, allocates nothing once warm. Rules take `&mut self` so that a stateful rule
/// ([`CenteredClipping`]) can carry its state from round to round; [`Aggregator::reset`]
/// forgets it.
pub trait Aggregator: std::fmt::Debug + Send + Sync + dyn_clone::DynClone {
    /// The rule's snake_case name, as in configs.
    fn name(&self) -> &'static str;

    /// Checks the parameters alone, before any input is seen: the bounds its
    /// [`crate::params::Described::PARAMS`] state (`tau > 0`, a finite `z`), each error naming
    /// the parameter. Every config path (run configs, the CLI, the Python classes) calls it.
    fn validate(&self) -> Result<(), Error> {
        Ok(())
    }

    /// Checks that the rule can aggregate `n` inputs with its parameters (for example
    /// `n > 2f`), so a run can be validated before any work starts.
    fn check(&self, n: usize) -> Result<(), Error>;

    /// Aggregates `s` into `out` (length `s.dim()`).
    fn aggregate_into(&mut self, s: &Submissions, out: &mut [f32]) -> Result<(), Error>;

    /// Aggregates `s` into a new vector.
    fn aggregate(&mut self, s: &Submissions) -> Result<Vec<f32>, Error> {
        let mut out = vec![0.0; s.dim()];
        self.aggregate_into(s, &mut out)?;
        Ok(out)
    }

    /// Forgets any state carried across rounds. A no-op for stateless rules.
    fn reset(&mut self) {}

    /// The state carried across rounds, for checkpoints: `None` for stateless rules (and for
    /// a stateful rule that has none yet). [`Aggregator::restore`] puts it back.
    fn carried(&self) -> Option<Vec<f32>> {
        None
    }

    /// Restores state returned by [`Aggregator::carried`] (`None`: as after
    /// [`Aggregator::reset`]). A no-op for stateless rules.
    fn restore(&mut self, state: Option<Vec<f32>>) {
        let _ = state;
    }
}

dyn_clone::clone_trait_object!(Aggregator);

/// Checks `s` and `out`, then `rule.check(n)`.
pub(crate) fn precheck(rule: &dyn Aggregator, s: &Submissions, out: &[f32]) -> Result<(), Error> {
    s.check_out(out)?;
    rule.check(s.n())
}
