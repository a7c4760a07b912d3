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
//! let mut rule = TrimmedMean { f: 1 };
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
mod pipeline;
pub mod preaggregators;
mod submissions;

pub use aggregators::Aggregator;
pub use attacks::{Attack, AttackContext, ThreatModel};
pub use config::{AggregatorConfig, AttackConfig, PreAggregatorConfig};
pub use error::Error;
pub use pipeline::Pipeline;
pub use preaggregators::PreAggregator;
pub use submissions::Submissions;

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
