use super::alie::alie_rows;
use super::{fill_rows, mean_std, Attack, AttackContext, ThreatModel};
use crate::{Error, Pipeline, Submissions};
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use serde::{Deserialize, Serialize};

/// The line search of the adaptive attacks (ByzFL's `Optimal_*` attacks): maximise
/// `g(x) = ‖F(honest ∪ f × v(x)) − mean(honest)‖` over the factor `x ≥ start`.
///
/// Expansion: from `x = start`, try `x + δ`; on improvement accept it and double `δ`, otherwise
/// shrink `δ` by `ratio` and stop expanding. Contraction: keep trying `best + δ`, accepting
/// improvements, shrinking `δ` by `ratio` after every try. `evals` evaluations in all.
#[derive(Debug, Clone, PartialEq)]
pub struct LineSearch {
    /// Evaluations of the server pipeline.
    pub evals: usize,
    /// First factor tried.
    pub start: f64,
    /// First step.
    pub delta: f64,
    /// Step shrink factor in (0, 1).
    pub ratio: f64,
}

fn default_evals() -> usize {
    20
}
fn default_delta() -> f64 {
    10.0
}
fn default_ratio() -> f64 {
    0.8
}

impl Default for LineSearch {
    fn default() -> Self {
        Self {
            evals: default_evals(),
            start: 0.0,
            delta: default_delta(),
            ratio: default_ratio(),
        }
    }
}

impl LineSearch {
    /// Checks the settings.
    pub fn check(&self, attack: &'static str) -> Result<(), Error> {
        if self.evals == 0 {
            return Err(Error::InvalidParameter {
                rule: attack,
                name: "evals",
                reason: "must be ≥ 1".into(),
            });
        }
        if !(self.ratio > 0.0 && self.ratio < 1.0) {
            return Err(Error::InvalidParameter {
                rule: attack,
                name: "ratio",
                reason: format!("must be in (0, 1), got {}", self.ratio),
            });
        }
        if !(self.delta.is_finite() && self.start.is_finite()) {
            return Err(Error::InvalidParameter {
                rule: attack,
                name: "delta",
                reason: "start and delta must be finite".into(),
            });
        }
        Ok(())
    }

    /// Runs the search with `g` and returns the best factor.
    pub fn run(&self, mut g: impl FnMut(f64) -> Result<f64, Error>) -> Result<f64, Error> {
        let mut best_x = self.start;
        let mut best_y = g(best_x)?;
        let mut delta = self.delta;
        let mut remaining = self.evals - 1;
        while remaining > 0 {
            let x = best_x + delta;
            let y = g(x)?;
            remaining -= 1;
            if y > best_y {
                (best_x, best_y) = (x, y);
                delta *= 2.0;
            } else {
                delta *= self.ratio;
                break;
            }
        }
        while remaining > 0 {
            let x = best_x + delta;
            let y = g(x)?;
            remaining -= 1;
            if y > best_y {
                (best_x, best_y) = (x, y);
            }
            delta *= self.ratio;
        }
        Ok(best_x)
    }
}

/// Evaluates the server on `honest` followed by the Byzantine rows; returns the distance from
/// its output to the honest mean. Each evaluation probes a fresh clone of the server (its
/// state is never advanced) with the same seed (common random numbers across factors).
struct Probe<'a> {
    server: &'a Pipeline,
    all: Submissions<'static>,
    honest_rows: usize,
    honest_mean: Vec<f64>,
    out: Vec<f32>,
    seed: u64,
}

impl<'a> Probe<'a> {
    fn new(server: &'a Pipeline, honest: &Submissions, rng: &mut dyn rand::RngCore) -> Self {
        let dim = honest.dim();
        let (mut mean, mut std) = (vec![0.0; dim], vec![0.0; dim]);
        mean_std(honest, 0, &mut mean, &mut std);
        let mut all = Submissions::default();
        all.copy_from(honest);
        Self {
            server,
            all,
            honest_rows: honest.n(),
            honest_mean: mean,
            out: vec![0.0; dim],
            seed: rng.next_u64(),
        }
    }

    fn distance(&mut self, byzantine: &Submissions) -> Result<f64, Error> {
        let dim = self.honest_mean.len();
        self.all.reshape(self.honest_rows, dim);
        self.all.extend(byzantine)?;
        let mut server = self.server.clone();
        let mut rng = ChaCha20Rng::seed_from_u64(self.seed);
        server.run_into(&self.all, &mut rng, &mut self.out)?;
        let d2: f64 = self
            .out
            .iter()
            .zip(&self.honest_mean)
            .map(|(&a, m)| (a as f64 - m).powi(2))
            .sum();
        Ok(if d2.is_nan() {
            f64::INFINITY
        } else {
            d2.sqrt()
        })
    }
}

fn server<'a>(ctx: &AttackContext<'a>, attack: &'static str) -> Result<&'a Pipeline, Error> {
    ctx.server.ok_or(Error::MissingView {
        attack,
        what: "the server's pipeline",
    })
}

macro_rules! adaptive_attack {
    ($(#[$doc:meta])* $ty:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
        #[serde(deny_unknown_fields)]
        pub struct $ty {
            /// Evaluations of the server pipeline (default 20).
            #[serde(default = "default_evals")]
            pub evals: usize,
            /// First factor tried (default 0).
            #[serde(default)]
            pub start: f64,
            /// First step (default 10).
            #[serde(default = "default_delta")]
            pub delta: f64,
            /// Step shrink factor in (0, 1) (default 0.8).
            #[serde(default = "default_ratio")]
            pub ratio: f64,
        }

        impl Default for $ty {
            fn default() -> Self {
                let s = LineSearch::default();
                Self { evals: s.evals, start: s.start, delta: s.delta, ratio: s.ratio }
            }
        }

        impl $ty {
            /// The line search these settings describe.
            pub fn search(&self) -> LineSearch {
                LineSearch { evals: self.evals, start: self.start, delta: self.delta, ratio: self.ratio }
            }
        }
    };
}

adaptive_attack!(
    /// Optimal ALIE: [`super::ALittleIsEnough`]'s `μ − z·σ` with `z` chosen by a [`LineSearch`]
    /// that maximises the distance between the server's actual output and the honest mean.
    /// (Allouah et al., "Fixing by mixing", AISTATS 2023; ByzFL's `Optimal_ALittleIsEnough`,
    /// which searches `τ` in `μ + τσ`.)
    OptimalAlie
);

adaptive_attack!(
    /// Optimal Empire: `−ε · mean(honest)` with `ε` chosen by a [`LineSearch`] that maximises
    /// the distance between the server's actual output and the honest mean. (ByzFL's
    /// `Optimal_InnerProductManipulation`.)
    OptimalEmpire
);

impl Attack for OptimalAlie {
    fn name(&self) -> &'static str {
        "optimal_alie"
    }

    fn threat_model(&self) -> ThreatModel {
        ThreatModel::Adaptive
    }

    fn check(&self, _n: usize, _byzantine: usize) -> Result<(), Error> {
        self.validate()
    }

    fn validate(&self) -> Result<(), Error> {
        self.search().check(self.name())
    }

    fn forge(
        &mut self,
        ctx: &AttackContext<'_>,
        rng: &mut dyn rand::RngCore,
        out: &mut Submissions,
    ) -> Result<(), Error> {
        self.search().check(self.name())?;
        let honest = ctx.require_honest(self.name())?;
        let mut probe = Probe::new(server(ctx, self.name())?, honest, rng);
        let mut candidate = Submissions::default();
        let z = self.search().run(|z| {
            alie_rows(honest, z, ctx.byzantine, &mut candidate);
            probe.distance(&candidate)
        })?;
        alie_rows(honest, z, ctx.byzantine, out);
        Ok(())
    }
}

impl Attack for OptimalEmpire {
    fn name(&self) -> &'static str {
        "optimal_empire"
    }

    fn threat_model(&self) -> ThreatModel {
        ThreatModel::Adaptive
    }

    fn check(&self, _n: usize, _byzantine: usize) -> Result<(), Error> {
        self.search().check(self.name())
    }

    fn forge(
        &mut self,
        ctx: &AttackContext<'_>,
        rng: &mut dyn rand::RngCore,
        out: &mut Submissions,
    ) -> Result<(), Error> {
        self.search().check(self.name())?;
        let honest = ctx.require_honest(self.name())?;
        let mut probe = Probe::new(server(ctx, self.name())?, honest, rng);
        let mean = probe.honest_mean.clone();
        let mut candidate = Submissions::default();
        let eps = self.search().run(|eps| {
            fill_rows(&mut candidate, ctx.byzantine, ctx.dim, |c| {
                (-eps * mean[c]) as f32
            });
            probe.distance(&candidate)
        })?;
        fill_rows(out, ctx.byzantine, ctx.dim, |c| (-eps * mean[c]) as f32);
        Ok(())
    }
}

impl crate::params::Described for OptimalAlie {
    const PARAMS: &'static [crate::params::Param] = crate::params::LINE_SEARCH;
}

impl crate::params::Described for OptimalEmpire {
    const PARAMS: &'static [crate::params::Param] = crate::params::LINE_SEARCH;
}
