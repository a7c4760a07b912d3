//! Attacks: what the `f` Byzantine workers send.
//!
//! Each attack declares its [`ThreatModel`], what it must see, and receives exactly that
//! through one [`AttackContext`]. The simulator computes the Byzantine workers' genuine
//! messages when the threat model needs them (the thesis's model: "each of these workers
//! compute genuine descent directions"), on poisoned data for a data-poisoning attack.

mod alie;
mod empire;
mod gaussian;
mod infinity;
mod label_flip;
mod little;
mod mimic;
mod optimal;
mod sign_flip;

pub use alie::{baruch_z, ALittleIsEnough};
pub use empire::Empire;
pub use gaussian::Gaussian;
pub use infinity::{NegativeInfinity, NotANumber, PositiveInfinity};
pub use label_flip::LabelFlip;
pub use little::Little;
pub use mimic::Mimic;
pub use optimal::{LineSearch, OptimalAlie, OptimalEmpire};
pub use sign_flip::SignFlip;

use crate::kernels::scratch::with_f64;
use crate::kernels::simd::dispatch;
use crate::kernels::CHUNK;
use crate::{Error, Pipeline, Submissions};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

/// What an attack must see to forge its vectors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ThreatModel {
    /// Nothing but the dimension (±∞, NaN, Gaussian noise).
    Blind,
    /// The Byzantine workers' own genuine messages (the thesis's model).
    OwnGenuine,
    /// Every honest message (omniscient).
    Omniscient,
    /// Every honest message and the server's pipeline (adaptive attacks).
    Adaptive,
    /// The honest procedure run by the Byzantine workers on poisoned data: their genuine
    /// messages, computed on that data, are sent as they are.
    DataPoisoning,
}

/// Where sign flip and Empire take the vector they negate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Base {
    /// Each Byzantine worker negates its own genuine message (the thesis's Algorithm 18).
    #[default]
    Own,
    /// Every Byzantine worker sends the negated mean of the honest messages (Xie et al.;
    /// ByzFL).
    HonestMean,
}

/// Everything an attack may see in one round. Fields outside the attack's threat model may be
/// `None`; an attack that needs a missing field fails with [`Error::MissingView`].
#[derive(Debug, Clone, Copy)]
pub struct AttackContext<'a> {
    /// Total number of workers, honest and Byzantine.
    pub n: usize,
    /// Number of Byzantine workers: the rows to forge.
    pub byzantine: usize,
    /// Dimension of every message.
    pub dim: usize,
    /// The Byzantine workers' genuine messages (`byzantine` rows).
    pub own: Option<&'a Submissions<'a>>,
    /// The honest workers' messages.
    pub honest: Option<&'a Submissions<'a>>,
    /// The server's pre-aggregation and aggregation pipeline (probed on clones).
    pub server: Option<&'a Pipeline>,
}

impl<'a> AttackContext<'a> {
    /// The Byzantine workers' genuine messages, or the error naming the attack.
    pub fn require_own(&self, attack: &'static str) -> Result<&'a Submissions<'a>, Error> {
        let own = self.own.ok_or(Error::MissingView {
            attack,
            what: "the Byzantine workers' genuine messages",
        })?;
        if own.n() != self.byzantine || own.dim() != self.dim {
            return Err(Error::InvalidParameter {
                rule: attack,
                name: "own",
                reason: format!(
                    "expected {} genuine messages of dimension {}, got {} of dimension {}",
                    self.byzantine,
                    self.dim,
                    own.n(),
                    own.dim()
                ),
            });
        }
        Ok(own)
    }

    /// The honest messages, or the error naming the attack.
    pub fn require_honest(&self, attack: &'static str) -> Result<&'a Submissions<'a>, Error> {
        let honest = self.honest.ok_or(Error::MissingView {
            attack,
            what: "the honest workers' messages",
        })?;
        if honest.dim() != self.dim || honest.n() == 0 {
            return Err(Error::InvalidParameter {
                rule: attack,
                name: "honest",
                reason: format!(
                    "expected at least one honest message of dimension {}, got {} of dimension {}",
                    self.dim,
                    honest.n(),
                    honest.dim()
                ),
            });
        }
        Ok(honest)
    }
}

/// Forges the Byzantine workers' vectors.
pub trait Attack: std::fmt::Debug + Send + Sync + dyn_clone::DynClone {
    /// The snake_case name, as in configs.
    fn name(&self) -> &'static str;

    /// What the attack must see.
    fn threat_model(&self) -> ThreatModel;

    /// Checks the parameters alone, before any input is seen: the bounds its
    /// [`crate::params::Described::PARAMS`] state (`tau > 0`, a finite `z`), each error naming
    /// the parameter. Every config path (run configs, the CLI, the Python classes) calls it.
    fn validate(&self) -> Result<(), Error> {
        Ok(())
    }

    /// Checks the attack can run with `byzantine` Byzantine workers among `n`.
    fn check(&self, _n: usize, _byzantine: usize) -> Result<(), Error> {
        Ok(())
    }

    /// Writes `ctx.byzantine` forged vectors of dimension `ctx.dim` into `out` (resized).
    fn forge(
        &mut self,
        ctx: &AttackContext<'_>,
        rng: &mut dyn rand::RngCore,
        out: &mut Submissions,
    ) -> Result<(), Error>;

    /// For a data-poisoning attack, the label map the Byzantine workers train with.
    fn label_flip(&self) -> Option<LabelFlip> {
        None
    }
}

dyn_clone::clone_trait_object!(Attack);

/// Coordinate-wise mean and standard deviation (`ddof` 0 or 1) of the rows of `s`, in `f64`,
/// two-pass.
pub(crate) fn mean_std(s: &Submissions, ddof: usize, mean: &mut [f64], std: &mut [f64]) {
    let (n, dim) = (s.n(), s.dim());
    let data = s.as_flat();
    mean.par_chunks_mut(CHUNK)
        .zip(std.par_chunks_mut(CHUNK))
        .enumerate()
        .for_each(|(c, (m, sd))| mean_std_chunk(data, n, dim, c * CHUNK, ddof, m, sd));
}

/// Runs `f` on the coordinate-wise mean and standard deviation ([`mean_std`]) of the rows of
/// `s`, held in the thread's scratch (no allocation in steady-state rounds).
pub(crate) fn with_mean_std<R>(
    s: &Submissions,
    ddof: usize,
    f: impl FnOnce(&[f64], &[f64]) -> R,
) -> R {
    let dim = s.dim();
    with_f64(2 * dim, |buf| {
        let (mean, std) = buf.split_at_mut(dim);
        mean_std(s, ddof, mean, std);
        f(mean, std)
    })
}

/// Coordinates whose two passes run back to back in [`mean_std_chunk_generic`]: the second
/// pass reads the rows from L1 (`n` × 1 KB) instead of memory.
const MEAN_STD_SUB: usize = 256;

/// [`mean_std`] on the coordinates `c0..c0 + m.len()`, two-pass, in sub-blocks of
/// [`MEAN_STD_SUB`] (the same operations per coordinate, in the same order).
#[inline(always)]
fn mean_std_chunk_generic(
    data: &[f32],
    n: usize,
    dim: usize,
    c0: usize,
    ddof: usize,
    m: &mut [f64],
    sd: &mut [f64],
) {
    let denom = n.saturating_sub(ddof) as f64;
    for (k, (m, sd)) in m
        .chunks_mut(MEAN_STD_SUB)
        .zip(sd.chunks_mut(MEAN_STD_SUB))
        .enumerate()
    {
        let c = c0 + k * MEAN_STD_SUB;
        m.fill(0.0);
        for r in 0..n {
            for (acc, &x) in m.iter_mut().zip(&data[r * dim + c..]) {
                *acc += x as f64;
            }
        }
        for v in m.iter_mut() {
            *v /= n as f64;
        }
        sd.fill(0.0);
        for r in 0..n {
            for ((acc, &x), mu) in sd.iter_mut().zip(&data[r * dim + c..]).zip(m.iter()) {
                let d = x as f64 - mu;
                *acc += d * d;
            }
        }
        for v in sd.iter_mut() {
            *v = (*v / denom).sqrt();
        }
    }
}

dispatch! {
    /// [`mean_std_chunk_generic`], vectorised where the CPU allows (the same bits).
    fn mean_std_chunk(data: &[f32], n: usize, dim: usize, c0: usize, ddof: usize, m: &mut [f64], sd: &mut [f64])
        => mean_std_chunk_generic
}

/// Writes the same vector `v` into every one of `rows` rows of `out`: computed into the first
/// row, then copied.
pub(crate) fn fill_rows(
    out: &mut Submissions,
    rows: usize,
    dim: usize,
    v: impl Fn(usize) -> f32 + Sync,
) {
    out.reshape(rows, dim);
    let Some((first, rest)) = out.as_flat_mut().split_at_mut_checked(dim) else {
        return;
    };
    first
        .par_chunks_mut(CHUNK)
        .enumerate()
        .for_each(|(c, chunk)| {
            for (i, x) in chunk.iter_mut().enumerate() {
                *x = v(c * CHUNK + i);
            }
        });
    rest.par_chunks_mut(dim)
        .for_each(|row| row.copy_from_slice(first));
}
