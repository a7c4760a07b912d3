use super::{precheck, Aggregator};
use crate::kernels::{distances, rowsum, scratch};
use crate::{require, Error, Submissions};
use serde::{Deserialize, Serialize};

/// Krum scores: `score_i = Σ` of the `neighbours` smallest squared distances from row `i` to
/// the other rows of `active` (summed smallest first). Infinite distances give infinite scores.
/// `spread_i`, the sum of squared distances to all other active rows, breaks ties.
pub(crate) fn krum_scores(
    d2: &[f64],
    n: usize,
    active: &[usize],
    neighbours: usize,
    scores: &mut [f64],
    spread: &mut [f64],
    tmp: &mut [f64],
) {
    for (a, &i) in active.iter().enumerate() {
        let mut m = 0;
        for &j in active {
            if j != i {
                tmp[m] = d2[i * n + j];
                m += 1;
            }
        }
        let row = &mut tmp[..m];
        row.sort_unstable_by(f64::total_cmp);
        scores[a] = row[..neighbours.min(m)].iter().sum();
        spread[a] = row.iter().sum();
    }
}

/// Orders positions `a, b` of `active` by (score, spread, row index): ties in the score, which
/// one or zero neighbours make certain, go to the vector closest to all others, so the
/// choice does not depend on the order in which workers are listed.
pub(crate) fn krum_order(
    scores: &[f64],
    spread: &[f64],
    active: &[usize],
    a: usize,
    b: usize,
) -> std::cmp::Ordering {
    use crate::kernels::order::nan_to_inf;
    nan_to_inf(scores[a])
        .total_cmp(&nan_to_inf(scores[b]))
        .then(nan_to_inf(spread[a]).total_cmp(&nan_to_inf(spread[b])))
        .then(active[a].cmp(&active[b]))
}

/// Krum: the vector whose `n − f − 2` nearest neighbours are closest (smallest sum of squared
/// distances). Needs `n > 2f + 2`. (Blanchard et al., NeurIPS 2017.)
///
/// Ties in the score go to the vector with the smaller sum of squared distances to all others,
/// then to the lowest row index. ByzFL's `Krum` counts `n − f − 1` neighbours instead (it
/// keeps columns `1..n−f` of each sorted distance row); ours follows the paper.
///
/// ```
/// # use byzadam_robust::{aggregators::Krum, Aggregator, Submissions};
/// let s = Submissions::from_rows(&[[0.0], [0.1], [0.3], [0.35], [0.2], [9.0]])?;
/// assert_eq!(Krum::new(1).aggregate(&s)?, [0.2]);
/// # Ok::<(), byzadam_robust::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Krum {
    /// Number of Byzantine inputs tolerated.
    pub f: usize,
    /// ByzFL 0.0.11's definition instead of the paper's: `n − f − 1` neighbours (needs only
    /// `n > 2f`), score ties to the lower index (ByzFL's `argmin`). Same choice as ByzFL for
    /// finite inputs.
    #[serde(default, skip_serializing_if = "is_false")]
    pub byzfl: bool,
}

fn is_false(b: &bool) -> bool {
    !*b
}

impl Krum {
    /// Krum tolerating `f` Byzantine inputs, as the paper defines it.
    pub fn new(f: usize) -> Self {
        Self { f, byzfl: false }
    }
}

/// `n > 2f + 2` (the paper's), or `n > 2f` (ByzFL's definition).
fn krum_requirement(rule: &'static str, n: usize, f: usize, byzfl: bool) -> Result<(), Error> {
    if byzfl {
        require(n > f.saturating_mul(2), rule, "n > 2f (byzfl)", n, f)
    } else {
        require(
            n > f.saturating_mul(2).saturating_add(2),
            rule,
            "n > 2f + 2",
            n,
            f,
        )
    }
}

/// Multi-Krum: the average of the `m` vectors with the best Krum scores (default `m = n − f`).
/// Needs `n > 2f + 2` and `1 ≤ m ≤ n`. (Blanchard et al., NeurIPS 2017; El Mhamdi et al., ICML
/// 2018.)
///
/// ```
/// # use byzadam_robust::{aggregators::MultiKrum, Aggregator, Submissions};
/// let s = Submissions::from_rows(&[[0.0], [0.1], [0.3], [0.35], [0.2], [9.0]])?;
/// let out = MultiKrum { f: 1, m: Some(2), byzfl: false }.aggregate(&s)?;
/// assert!((out[0] - 0.25).abs() < 1e-7); // rows 0.2 and 0.3 have the best scores
/// # Ok::<(), byzadam_robust::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MultiKrum {
    /// Number of Byzantine inputs tolerated.
    pub f: usize,
    /// How many best-scored vectors to average; `None` means `n − f`.
    #[serde(default)]
    pub m: Option<usize>,
    /// ByzFL 0.0.11's scores ([`Krum::byzfl`]): `n − f − 1` neighbours, ties to the lower
    /// index.
    #[serde(default, skip_serializing_if = "is_false")]
    pub byzfl: bool,
}

/// Selects the `m` best Krum-scored rows of `s` into `selected` (ascending row index); with
/// `byzfl`, ByzFL's neighbour count and tie rule.
fn select(s: &Submissions, f: usize, m: usize, byzfl: bool, selected: &mut [usize]) {
    let n = s.n();
    scratch::with_f64_b(n * n + 3 * n, |buf| {
        let (d2, rest) = buf.split_at_mut(n * n);
        let (scores, rest) = rest.split_at_mut(n);
        let (spread, tmp) = rest.split_at_mut(n);
        distances::pairwise_sq(s, d2);
        scratch::with_usize(2 * n, |ibuf| {
            let (active, order_buf) = ibuf.split_at_mut(n);
            for (i, a) in active.iter_mut().enumerate() {
                *a = i;
            }
            let neighbours = if byzfl { n - f - 1 } else { n - f - 2 };
            krum_scores(d2, n, active, neighbours, scores, spread, tmp);
            for (i, o) in order_buf.iter_mut().enumerate() {
                *o = i;
            }
            if byzfl {
                use crate::kernels::order::nan_to_inf;
                order_buf.sort_unstable_by(|&a, &b| {
                    nan_to_inf(scores[a])
                        .total_cmp(&nan_to_inf(scores[b]))
                        .then(a.cmp(&b))
                });
            } else {
                order_buf.sort_unstable_by(|&a, &b| krum_order(scores, spread, active, a, b));
            }
            selected.copy_from_slice(&order_buf[..m]);
            selected.sort_unstable();
        });
    });
}

impl Aggregator for Krum {
    fn name(&self) -> &'static str {
        "krum"
    }

    fn check(&self, n: usize) -> Result<(), Error> {
        krum_requirement(self.name(), n, self.f, self.byzfl)
    }

    fn aggregate_into(&mut self, s: &Submissions, out: &mut [f32]) -> Result<(), Error> {
        precheck(self, s, out)?;
        let mut best = [0usize; 1];
        select(s, self.f, 1, self.byzfl, &mut best);
        out.copy_from_slice(s.row(best[0]));
        Ok(())
    }
}

impl Aggregator for MultiKrum {
    fn name(&self) -> &'static str {
        "multi_krum"
    }

    fn validate(&self) -> Result<(), Error> {
        if self.m == Some(0) {
            return Err(Error::InvalidParameter {
                rule: self.name(),
                name: "m",
                reason: "must be ≥ 1".into(),
            });
        }
        Ok(())
    }

    fn check(&self, n: usize) -> Result<(), Error> {
        self.validate()?;
        krum_requirement(self.name(), n, self.f, self.byzfl)?;
        if let Some(m) = self.m {
            if m == 0 || m > n {
                return Err(Error::InvalidParameter {
                    rule: self.name(),
                    name: "m",
                    reason: format!("must be in 1..={n} (the number of inputs), got {m}"),
                });
            }
        }
        Ok(())
    }

    fn aggregate_into(&mut self, s: &Submissions, out: &mut [f32]) -> Result<(), Error> {
        precheck(self, s, out)?;
        let m = self.m.unwrap_or(s.n() - self.f);
        let mut stack = [0usize; 64];
        let mut heap = Vec::new();
        let selected: &mut [usize] = if m <= stack.len() {
            &mut stack[..m]
        } else {
            heap.resize(m, 0);
            &mut heap
        };
        select(s, self.f, m, self.byzfl, selected);
        rowsum::mean_of(s, selected, out);
        Ok(())
    }
}

use crate::params::{param, F};

const BYZFL: crate::params::Param = param(
    "byzfl",
    "bool",
    "false",
    "",
    "ByzFL 0.0.11's scores: n − f − 1 neighbours, ties to the lower index (needs n > 2f)",
);

impl crate::params::Described for Krum {
    const PARAMS: &'static [crate::params::Param] = &[F, BYZFL];
    const REQUIREMENT: &'static str = "n > 2f + 2 (byzfl: n > 2f)";
}

impl crate::params::Described for MultiKrum {
    const PARAMS: &'static [crate::params::Param] = &[
        F,
        param("m", "int", "n − f", "1 ≤ m ≤ n", "vectors averaged"),
        BYZFL,
    ];
    const REQUIREMENT: &'static str = "n > 2f + 2 (byzfl: n > 2f)";
}
