//! # byzadam-robust
//!
//! What happens at the server between "n vectors arrive" and "one update leaves", and what a
//! Byzantine worker can send: robust aggregation rules ([`aggregators`]), pre-aggregation
//! ([`preaggregators`]), and attacks ([`attacks`]), on flat `f32` vectors.
//!
//! This crate never sees a tensor, a file or a socket: it is the shared core of the simulator,
//! the networked mode and the `byzadam aggregate` / `byzadam attack` commands.
//!
//! ```
//! use byzadam_robust::{aggregators::TrimmedMean, Aggregator, Submissions};
//! // Three honest workers near (1, 1) and one Byzantine worker sending +∞.
//! let s = Submissions::from_rows(&[
//!     [1.0, 1.0], [1.2, 0.8], [0.8, 1.2], [f32::INFINITY, f32::INFINITY],
//! ])?;
//! let mut rule = TrimmedMean::new(1);
//! let out = rule.aggregate(&s)?;
//! assert!(out.iter().all(|x| x.is_finite()));
//! # Ok::<(), byzadam_robust::Error>(())
//! ```
//!
//! ## Conventions shared by every rule
//!
//! - **Order.** Coordinate-wise rules order values by [`f32::total_cmp`]:
//!   `-NaN < -∞ < … < -0 < +0 < … < +∞ < +NaN`. So ±∞ and NaN sent by at most `f` workers land
//!   at the ends of each coordinate's order and are trimmed like any extreme value.
//! - **Distances.** Distance-based rules read an undefined distance (`∞ − ∞`, NaN) as `+∞`:
//!   a non-finite vector is infinitely far from everything, and is never preferred.
//! - **Determinism.** Work is split into fixed chunks of coordinates, never by thread count,
//!   so every result is bit-identical with 1 or 64 threads. Ties are broken by row index.
//! - **State.** [`Aggregator`]s take `&mut self`: a stateful rule (centred clipping keeps the
//!   previous round's output) keeps its state in the instance. Use one instance per message
//!   stream (MRA aggregates `m̂` and `v̂` with two instances).

#![warn(missing_docs)]

pub mod aggregators;
pub mod attacks;
mod config;
mod error;
mod kernels;
pub mod limits;
pub mod params;
mod pipeline;
pub mod preaggregators;
mod submissions;

pub use aggregators::Aggregator;
pub use attacks::{Attack, AttackContext, ThreatModel};
pub use config::{registry, AggregatorConfig, AttackConfig, PreAggregatorConfig, Registry};
pub use error::Error;
pub use kernels::simd::fast_paths;
pub use pipeline::Pipeline;
pub use preaggregators::PreAggregator;
pub use submissions::Submissions;

/// Squared L2 distances between every pair of rows of `s`, into `out` (`n × n`, row-major,
/// diagonal 0): the kernel under every distance-based rule (MDA, Krum, NNM, Bulyan, CAF,
/// SMEA), exposed for benchmarks and for callers that want the matrix itself. An undefined
/// distance (`∞ − ∞`, NaN) is `+∞`.
///
/// ```
/// # use byzadam_robust::{pairwise_squared_distances, Submissions};
/// let s = Submissions::from_rows(&[[0.0, 0.0], [3.0, 4.0]])?;
/// let mut d2 = [0.0; 4];
/// pairwise_squared_distances(&s, &mut d2)?;
/// assert_eq!(d2, [0.0, 25.0, 25.0, 0.0]);
/// # Ok::<(), byzadam_robust::Error>(())
/// ```
pub fn pairwise_squared_distances(s: &Submissions, out: &mut [f64]) -> Result<(), Error> {
    s.check_nonempty()?;
    if out.len() != s.n() * s.n() {
        return Err(Error::OutputLength {
            expected: s.n() * s.n(),
            found: out.len(),
        });
    }
    kernels::distances::pairwise_sq(s, out);
    Ok(())
}

/// `‖point − mean of the rows of s‖`, in `f64`: the mean is `Σᵢ (xᵢ / n)` accumulated in row
/// order, the squared differences summed in coordinate order, so the result does not depend
/// on the CPU level or the thread count. The simulator's ξ (the aggregate's distance to the
/// honest mean).
///
/// ```
/// # use byzadam_robust::{distance_to_mean, Submissions};
/// let s = Submissions::from_rows(&[[0.0, 0.0], [2.0, 4.0]])?;
/// assert_eq!(distance_to_mean(&s, &[4.0, 6.0])?, 5.0); // the mean is (1, 2)
/// # Ok::<(), byzadam_robust::Error>(())
/// ```
pub fn distance_to_mean(s: &Submissions, point: &[f32]) -> Result<f64, Error> {
    s.check_nonempty()?;
    if point.len() != s.dim() {
        return Err(Error::OutputLength {
            expected: s.dim(),
            found: point.len(),
        });
    }
    Ok(kernels::rowsum::distance_to_mean(s, point))
}

/// Fails with [`Error::TooFewInputs`] unless `ok`.
pub(crate) fn require(
    ok: bool,
    rule: &'static str,
    requirement: &'static str,
    n: usize,
    f: usize,
) -> Result<(), Error> {
    if ok {
        Ok(())
    } else {
        Err(Error::TooFewInputs {
            rule,
            requirement,
            n,
            f,
        })
    }
}

/// `C(n, k)` in `u128`, saturating.
pub(crate) fn binomial(n: usize, k: usize) -> u128 {
    let k = k.min(n - k.min(n));
    let mut c: u128 = 1;
    for i in 0..k {
        c = c.saturating_mul((n - i) as u128) / (i as u128 + 1);
    }
    c
}
