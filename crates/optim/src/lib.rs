//! # byzadam-optim
//!
//! The four optimizers of the thesis (chapter 3), split into what an honest worker sends each
//! round and how the server steps with the aggregate, on flat `f32` vectors:
//!
//! | optimizer | worker sends | server step |
//! | --- | --- | --- |
//! | SGD | its gradient `g` | `θ ← θ − α_t F(g₁…gₙ)` |
//! | RESAM | its momentum `m ← β m + (1−β) g` | `θ ← θ − α_t F(m₁…mₙ)` |
//! | DRA (Algorithm 19) | its Adam direction `q = m̂ / (√v̂ + ε)` | `θ ← θ − α_t F(q₁…qₙ)` |
//! | MRA (Algorithm 20) | `m̂` and `v̂` | `θ ← θ − α_t m* / √(v* + ε)`, `m* = F(m̂…)`, `v* = F(v̂…)` |
//!
//! `m̂ = m / (1 − β₁ᵗ)` and `v̂ = v / (1 − β₂ᵗ)` are Adam's bias-corrected moments (Algorithm 10).
//! This crate never aggregates: the caller applies the robust pipeline between
//! [`Optimizer::worker_message`] and [`Optimizer::server_step`].
//!
//! ```
//! use byzadam_optim::{Optimizer, Schedule};
//! let opt = Optimizer::Sgd { lr: Schedule::Constant { value: 0.5 } };
//! let mut state = opt.worker_state(2);
//! let mut msg = vec![vec![0.0; 2]; opt.messages()];
//! opt.worker_message(&mut state, &[2.0, -4.0], &mut msg);
//! let mut theta = vec![1.0, 1.0];
//! opt.server_step(1, &mut theta, &[&msg[0]]);
//! assert_eq!(theta, [0.0, 3.0]);
//! ```

use serde::{Deserialize, Serialize};

/// A hyperparameter that cannot be used: (its field, e.g. `lr.value`; what is wrong and what
/// would be valid).
pub type Invalid = (&'static str, String);

/// A learning-rate schedule over rounds `t = 1, 2, …`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "name", rename_all = "snake_case", deny_unknown_fields)]
pub enum Schedule {
    /// `α_t = value`.
    Constant {
        /// The learning rate.
        value: f64,
    },
    /// `α_t = initial / (1 + ⌊max(t − 1 − lag, 0) / every⌋)`: the thesis's heterogeneous
    /// runs use `0.75 / (1 + ⌊t/50⌋)` (its `t` counts from 0).
    InverseStep {
        /// `α` at the first round.
        initial: f64,
        /// Rounds between decreases (`k ≥ 1`).
        every: u64,
        /// Rounds by which every decrease comes late (default 0). The thesis's code sets the
        /// rate *after* round `r`'s update (`main.py`: `lr = max_lr/(1 + floor(r/50))` at the
        /// end of round `r`, from 0), so round `t` (from 1) uses `⌊(t − 2)/50⌋`: `lag = 1`.
        #[serde(default, skip_serializing_if = "is_zero")]
        lag: u64,
    },
}

impl Schedule {
    /// Checks the schedule: rates finite and `> 0`, `every ≥ 1`. The error is (the field,
    /// what is wrong).
    pub fn check(&self) -> Result<(), Invalid> {
        let positive = |name: &'static str, v: f64| {
            if v.is_finite() && v > 0.0 {
                Ok(())
            } else {
                Err((name, format!("must be finite and > 0, got {v}")))
            }
        };
        match *self {
            Self::Constant { value } => positive("lr.value", value),
            Self::InverseStep { initial, every, .. } => {
                positive("lr.initial", initial)?;
                if every == 0 {
                    return Err(("lr.every", "must be at least 1, got 0".into()));
                }
                Ok(())
            }
        }
    }

    /// The learning rate at round `t ≥ 1`.
    ///
    /// ```
    /// use byzadam_optim::Schedule;
    /// let s = Schedule::InverseStep { initial: 0.75, every: 50, lag: 0 };
    /// assert_eq!((s.at(1), s.at(50), s.at(51), s.at(101)), (0.75, 0.75, 0.375, 0.25));
    /// // The thesis's code: each decrease one round late.
    /// let s = Schedule::InverseStep { initial: 0.75, every: 50, lag: 1 };
    /// assert_eq!((s.at(1), s.at(51), s.at(52), s.at(102)), (0.75, 0.75, 0.375, 0.25));
    /// ```
    pub fn at(&self, t: u64) -> f32 {
        let lr = match *self {
            Self::Constant { value } => value,
            Self::InverseStep {
                initial,
                every,
                lag,
            } => initial / (1 + t.saturating_sub(1 + lag) / every.max(1)) as f64,
        };
        lr as f32
    }
}

/// How MRA's server guards against a negative aggregated second moment `v*`. The thesis's MRA
/// has none: an attack that makes `v*` negative gives `√(v* + ε) = NaN` and training stops.
/// Both guards are improvements of this implementation, off unless asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MraGuard {
    /// `v* ← max(v*, 0)` before the square root: no NaN, but where `v*` was negative the step
    /// is `α m*/√ε`, which can be very large.
    ClampSecondMoment,
    /// `v* ← max(v*, m*²)`: an honest Adam worker always has `v̂ ≥ m̂²` up to the bias
    /// corrections' ratio (the mean of squares bounds the square of the mean), so this only
    /// changes what an attack pushed below it, and bounds every coordinate's step by about
    /// `α`, as in Adam.
    AdamBound,
}

/// One of the thesis's optimizers with its hyperparameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "name", rename_all = "snake_case", deny_unknown_fields)]
pub enum Optimizer {
    /// Workers send gradients.
    Sgd {
        /// Learning rate (default 0.75, the thesis's homogeneous MNIST runs).
        #[serde(default = "lr_sgd")]
        lr: Schedule,
    },
    /// Workers send their momentum (Farhadkhani et al., ICML 2022). The momentum starts at 0,
    /// as in the paper (the thesis's restatement prints `m₀ = 1`).
    Resam {
        /// Learning rate (default 0.75, the thesis's homogeneous MNIST runs).
        #[serde(default = "lr_sgd")]
        lr: Schedule,
        /// Momentum coefficient `β ∈ [0, 1)` (default 0.99, the thesis's).
        #[serde(default = "default_beta1")]
        beta: f64,
    },
    /// Descent-direction Resilient Adam (Algorithm 19).
    Dra {
        /// Learning rate (default 0.001, the thesis's).
        #[serde(default = "lr_adam")]
        lr: Schedule,
        /// `β₁` (default 0.99, the thesis's).
        #[serde(default = "default_beta1")]
        beta1: f64,
        /// `β₂` (default 0.999, the thesis's).
        #[serde(default = "default_beta2")]
        beta2: f64,
        /// `ε` (PyTorch's Adam default 1e-8).
        #[serde(default = "default_eps")]
        eps: f64,
    },
    /// Moment Resilient Adam (Algorithm 20).
    Mra {
        /// Learning rate (default 0.001, the thesis's).
        #[serde(default = "lr_adam")]
        lr: Schedule,
        /// `β₁` (default 0.99, the thesis's).
        #[serde(default = "default_beta1")]
        beta1: f64,
        /// `β₂` (default 0.999, the thesis's).
        #[serde(default = "default_beta2")]
        beta2: f64,
        /// `ε` (PyTorch's Adam default 1e-8).
        #[serde(default = "default_eps")]
        eps: f64,
        /// Protection against a negative `v*` (none by default, as in the thesis).
        #[serde(default)]
        guard: Option<MraGuard>,
        /// Where the server adds `ε`: `inside_sqrt` (default; `m*/√(v* + ε)`, the text's
        /// Algorithm 20) or `outside_sqrt` (`m*/(√v* + ε)`, the thesis's code: `main.py`
        /// takes `_foreach_sqrt` of the aggregated `v̂`, then adds `eps`).
        #[serde(default, skip_serializing_if = "is_inside")]
        eps_placement: EpsPlacement,
    },
}

/// Where MRA's server adds `ε` to the aggregated second moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EpsPlacement {
    /// `m*/√(v* + ε)`.
    #[default]
    InsideSqrt,
    /// `m*/(√v* + ε)`.
    OutsideSqrt,
}

fn is_inside(e: &EpsPlacement) -> bool {
    *e == EpsPlacement::InsideSqrt
}

fn is_zero(x: &u64) -> bool {
    *x == 0
}

fn default_eps() -> f64 {
    1e-8
}
fn default_beta1() -> f64 {
    0.99
}
fn default_beta2() -> f64 {
    0.999
}
fn lr_sgd() -> Schedule {
    Schedule::Constant { value: 0.75 }
}
fn lr_adam() -> Schedule {
    Schedule::Constant { value: 0.001 }
}

/// A worker's optimizer state: its moments and its step count.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct WorkerState {
    /// First moment (RESAM's momentum, Adam's `m`); empty for SGD.
    pub m: Vec<f32>,
    /// Second moment (Adam's `v`); empty unless DRA or MRA.
    pub v: Vec<f32>,
    /// Steps taken.
    pub t: u64,
}

impl Optimizer {
    /// The optimizer's name in configs: `sgd`, `resam`, `dra` or `mra`.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Sgd { .. } => "sgd",
            Self::Resam { .. } => "resam",
            Self::Dra { .. } => "dra",
            Self::Mra { .. } => "mra",
        }
    }

    /// Vectors each worker sends per round: 2 for MRA (`m̂`, `v̂`), else 1.
    pub fn messages(&self) -> usize {
        match self {
            Self::Mra { .. } => 2,
            _ => 1,
        }
    }

    /// The learning-rate schedule.
    pub fn lr(&self) -> &Schedule {
        match self {
            Self::Sgd { lr }
            | Self::Resam { lr, .. }
            | Self::Dra { lr, .. }
            | Self::Mra { lr, .. } => lr,
        }
    }

    /// Checks the hyperparameters (learning rates finite and `> 0`, β's in `[0, 1)`, ε finite
    /// and `≥ 0`). The error is (the field, what is wrong).
    pub fn check(&self) -> Result<(), Invalid> {
        let unit = |name: &'static str, b: f64| {
            if (0.0..1.0).contains(&b) {
                Ok(())
            } else {
                Err((name, format!("must be in [0, 1), got {b}")))
            }
        };
        self.lr().check()?;
        match *self {
            Self::Sgd { .. } => Ok(()),
            Self::Resam { beta, .. } => unit("beta", beta),
            Self::Dra {
                beta1, beta2, eps, ..
            }
            | Self::Mra {
                beta1, beta2, eps, ..
            } => {
                unit("beta1", beta1)?;
                unit("beta2", beta2)?;
                if eps.is_finite() && eps >= 0.0 {
                    Ok(())
                } else {
                    Err(("eps", format!("must be finite and ≥ 0, got {eps}")))
                }
            }
        }
    }

    /// A fresh worker state for parameters of dimension `dim`.
    pub fn worker_state(&self, dim: usize) -> WorkerState {
        self.try_worker_state(dim)
            .unwrap_or_else(|_| std::alloc::handle_alloc_error(f32_layout(dim)))
    }

    /// [`Optimizer::worker_state`], or an error where the allocator refuses the moments (a
    /// caller sizing `dim` from input reports it instead of aborting).
    pub fn try_worker_state(
        &self,
        dim: usize,
    ) -> Result<WorkerState, std::collections::TryReserveError> {
        let zeros = |len: usize| -> Result<Vec<f32>, std::collections::TryReserveError> {
            let mut v = Vec::new();
            v.try_reserve_exact(len)?;
            v.resize(len, 0.0);
            Ok(v)
        };
        Ok(match self {
            Self::Sgd { .. } => WorkerState::default(),
            Self::Resam { .. } => WorkerState {
                m: zeros(dim)?,
                v: Vec::new(),
                t: 0,
            },
            Self::Dra { .. } | Self::Mra { .. } => WorkerState {
                m: zeros(dim)?,
                v: zeros(dim)?,
                t: 0,
            },
        })
    }

    /// Updates the worker's state with its gradient `g` and writes what it sends into `out`
    /// ([`Optimizer::messages`] vectors of `g`'s length: `Vec<f32>`s, or rows of a larger
    /// buffer as `&mut [f32]`).
    ///
    /// Runs the loop built for the widest vectors the level allows (`byzadam_cpu::level`:
    /// AVX-512 or AVX2 on x86-64): the same operations in the same order at every level
    /// (additions, multiplications, divisions and square roots, each rounded once), so the
    /// same bits.
    pub fn worker_message<O: AsMut<[f32]>>(
        &self,
        state: &mut WorkerState,
        g: &[f32],
        out: &mut [O],
    ) {
        state.t += 1;
        #[cfg(target_arch = "x86_64")]
        match byzadam_cpu::level() {
            // SAFETY: the level is AVX-512 only when the CPU has AVX-512 F, BW and VL, AVX2
            // and FMA, and AVX2 only when it has AVX2 and FMA (`byzadam_cpu`).
            #[allow(unsafe_code)]
            byzadam_cpu::Level::Avx512 => return unsafe { x86::message512(self, state, g, out) },
            #[allow(unsafe_code)]
            byzadam_cpu::Level::Avx2 => return unsafe { x86::message256(self, state, g, out) },
            byzadam_cpu::Level::Portable => {}
        }
        self.message(state, g, out)
    }

    /// [`Optimizer::worker_message`]'s loops (the state's round already counted).
    #[inline(always)]
    fn message<O: AsMut<[f32]>>(&self, state: &mut WorkerState, g: &[f32], out: &mut [O]) {
        match *self {
            Self::Sgd { .. } => out[0].as_mut().copy_from_slice(g),
            Self::Resam { beta, .. } => {
                let beta = beta as f32;
                for ((m, &gi), o) in state.m.iter_mut().zip(g).zip(out[0].as_mut().iter_mut()) {
                    *m = beta * *m + (1.0 - beta) * gi;
                    *o = *m;
                }
            }
            Self::Dra {
                beta1, beta2, eps, ..
            } => {
                let (beta1, beta2, eps) = (beta1 as f32, beta2 as f32, eps as f32);
                let (c1, c2) = bias_corrections(beta1, beta2, state.t);
                for (((m, v), &gi), o) in state
                    .m
                    .iter_mut()
                    .zip(state.v.iter_mut())
                    .zip(g)
                    .zip(out[0].as_mut().iter_mut())
                {
                    *m = beta1 * *m + (1.0 - beta1) * gi;
                    *v = beta2 * *v + (1.0 - beta2) * gi * gi;
                    *o = (*m / c1) / ((*v / c2).sqrt() + eps);
                }
            }
            Self::Mra { beta1, beta2, .. } => {
                let (beta1, beta2) = (beta1 as f32, beta2 as f32);
                let (c1, c2) = bias_corrections(beta1, beta2, state.t);
                let (first, rest) = out.split_at_mut(1);
                for ((((m, v), &gi), om), ov) in state
                    .m
                    .iter_mut()
                    .zip(state.v.iter_mut())
                    .zip(g)
                    .zip(first[0].as_mut().iter_mut())
                    .zip(rest[0].as_mut().iter_mut())
                {
                    *m = beta1 * *m + (1.0 - beta1) * gi;
                    *v = beta2 * *v + (1.0 - beta2) * gi * gi;
                    *om = *m / c1;
                    *ov = *v / c2;
                }
            }
        }
    }

    /// The server's step at round `t ≥ 1` with the aggregated messages (one slice per
    /// message, in [`Optimizer::worker_message`]'s order); dispatched by CPU level as
    /// [`Optimizer::worker_message`] is (the same bits at every level).
    pub fn server_step(&self, t: u64, params: &mut [f32], aggregated: &[&[f32]]) {
        #[cfg(target_arch = "x86_64")]
        match byzadam_cpu::level() {
            // SAFETY: as in `worker_message`.
            #[allow(unsafe_code)]
            byzadam_cpu::Level::Avx512 => {
                return unsafe { x86::step512(self, t, params, aggregated) }
            }
            #[allow(unsafe_code)]
            byzadam_cpu::Level::Avx2 => {
                return unsafe { x86::step256(self, t, params, aggregated) }
            }
            byzadam_cpu::Level::Portable => {}
        }
        self.step(t, params, aggregated)
    }

    /// [`Optimizer::server_step`]'s loops.
    #[inline(always)]
    fn step(&self, t: u64, params: &mut [f32], aggregated: &[&[f32]]) {
        let lr = self.lr().at(t);
        match *self {
            Self::Sgd { .. } | Self::Resam { .. } | Self::Dra { .. } => {
                for (p, &u) in params.iter_mut().zip(aggregated[0]) {
                    *p -= lr * u;
                }
            }
            Self::Mra {
                eps,
                guard,
                eps_placement,
                ..
            } => {
                let eps = eps as f32;
                for ((p, &m), &v) in params.iter_mut().zip(aggregated[0]).zip(aggregated[1]) {
                    let v = match guard {
                        Some(MraGuard::ClampSecondMoment) => v.max(0.0),
                        Some(MraGuard::AdamBound) => v.max(m * m),
                        None => v,
                    };
                    *p -= lr
                        * match eps_placement {
                            EpsPlacement::InsideSqrt => m / (v + eps).sqrt(),
                            EpsPlacement::OutsideSqrt => m / (v.sqrt() + eps),
                        };
                }
            }
        }
    }
}

/// The optimizers' loops compiled with AVX-512 (F, BW, VL) and with AVX2 + FMA enabled: the
/// portable functions inlined into `#[target_feature]` bodies (Rust never fuses `a * b + c`
/// into an FMA on its own, so each build computes the same bits).
#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::{Optimizer, WorkerState};

    macro_rules! builds {
        ($features:literal: $message:ident, $step:ident) => {
            #[target_feature(enable = $features)]
            pub(super) fn $message<O: AsMut<[f32]>>(
                opt: &Optimizer,
                state: &mut WorkerState,
                g: &[f32],
                out: &mut [O],
            ) {
                opt.message(state, g, out)
            }

            #[target_feature(enable = $features)]
            pub(super) fn $step(
                opt: &Optimizer,
                t: u64,
                params: &mut [f32],
                aggregated: &[&[f32]],
            ) {
                opt.step(t, params, aggregated)
            }
        };
    }

    builds!("avx512f,avx512bw,avx512vl,avx2,fma": message512, step512);
    builds!("avx2,fma": message256, step256);
}

/// `(1 − β₁ᵗ, 1 − β₂ᵗ)`.
fn bias_corrections(beta1: f32, beta2: f32, t: u64) -> (f32, f32) {
    let t = t.min(i32::MAX as u64) as i32;
    (1.0 - beta1.powi(t), 1.0 - beta2.powi(t))
}

/// The layout of `len` float32 values (for reporting a failed allocation as `Vec` would).
fn f32_layout(len: usize) -> std::alloc::Layout {
    std::alloc::Layout::array::<f32>(len).unwrap_or(std::alloc::Layout::new::<f32>())
}
