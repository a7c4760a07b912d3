//! Splitting a dataset across workers. Every scheme is seeded and uses each sample at most once.

use crate::DataError;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha20Rng;
use rand_distr::{Distribution, Gamma};
use serde::{Deserialize, Serialize};

/// How samples are split across workers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "name", rename_all = "snake_case", deny_unknown_fields)]
pub enum Scheme {
    /// The thesis's homogeneous split: every worker gets `per_class` samples of every class
    /// (default: the smallest class's count divided by the number of workers, rounded down;
    /// MNIST with 15 workers: 361 per digit, 3,610 per worker). The thesis's CIFAR-10 runs use
    /// 330 per class, which must be given explicitly (the default would be 333).
    Homogeneous {
        /// Samples of each class per worker.
        #[serde(default)]
        per_class: Option<usize>,
        /// Which samples of a class go to which worker: `shuffled` (default; each class
        /// shuffled with the data seed, then dealt) or `file_order` (the thesis's code,
        /// `data_preparation.py`, `homogenous_data_preparation`: the first `per_class ×
        /// workers` samples of each class in file order, cut into `workers` contiguous chunks;
        /// each shard then lists its samples class by class, in file order, as that code's
        /// lists do, which matters when workers share a shuffle: see `shared_first_shuffle`).
        #[serde(default, skip_serializing_if = "is_shuffled")]
        order: SampleOrder,
    },
    /// Uniformly random, sizes differing by at most one; every sample is used.
    Iid,
    /// Per class, proportions across workers drawn from Dirichlet(α, …, α) (Hsu, Qi & Brown,
    /// 2019; the thesis uses α = 0.1). A draw that leaves a worker with fewer than
    /// `min_samples` samples is redrawn (from the same stream, so still deterministic), up to
    /// 1,000 times; then it is an error suggesting a larger α.
    Dirichlet {
        /// Concentration `α > 0`: small is heterogeneous, large is near-iid.
        alpha: f64,
        /// Fewest samples any worker may get (default 1).
        #[serde(default = "one")]
        min_samples: usize,
    },
    /// The thesis's code's heterogeneous split (`data_preparation.py`,
    /// `heterogenous_data_preparation`): each *worker* draws class proportions from
    /// Dirichlet(α, …, α) over the classes; each class's column is normalised over the
    /// workers, and worker `w` gets `round(share[w][c] × per_class)` samples of class `c`
    /// (`per_class` defaults to the smallest class's count, 5,421 on MNIST, as that code's
    /// `torch.min(count)`), taken from the class's samples shuffled with the data seed (the
    /// code's own list-filling is missing from the published file). A draw that leaves a
    /// worker with fewer than `min_samples` samples is redrawn, as for `dirichlet`.
    DirichletPerWorker {
        /// Concentration `α > 0`.
        alpha: f64,
        /// Samples of a class shared out over the workers (default: the smallest class's count).
        #[serde(default)]
        per_class: Option<usize>,
        /// Fewest samples any worker may get (default 1).
        #[serde(default = "one")]
        min_samples: usize,
    },
    /// γ-similarity (Karimireddy et al., SCAFFOLD, ICML 2020): a fraction `γ` of the data is
    /// dealt iid, the rest is sorted by label and dealt in contiguous blocks. `γ = 1` is iid,
    /// `γ = 0` is [`Scheme::Extreme`].
    GammaSimilarity {
        /// Fraction in `[0, 1]` dealt iid.
        gamma: f64,
    },
    /// Sorted by label and dealt in contiguous blocks: each worker sees one or two classes.
    Extreme,
}

fn one() -> usize {
    1
}

/// Which samples of a class a homogeneous split gives to which worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SampleOrder {
    /// Each class shuffled with the data seed, then dealt.
    #[default]
    Shuffled,
    /// Each class in file order, dealt in contiguous chunks.
    FileOrder,
}

fn is_shuffled(o: &SampleOrder) -> bool {
    *o == SampleOrder::Shuffled
}

impl Scheme {
    /// The scheme's name in configs: `homogeneous`, `iid`, `dirichlet`, `gamma_similarity` or
    /// `extreme`.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Homogeneous { .. } => "homogeneous",
            Self::Iid => "iid",
            Self::Dirichlet { .. } => "dirichlet",
            Self::DirichletPerWorker { .. } => "dirichlet_per_worker",
            Self::GammaSimilarity { .. } => "gamma_similarity",
            Self::Extreme => "extreme",
        }
    }

    /// Checks the scheme's parameters, before any data is seen: `per_class ≥ 1` when given,
    /// Dirichlet `α` finite and `> 0`, `γ` in `[0, 1]`. The error is (the field, what is
    /// wrong).
    pub fn check(&self) -> Result<(), (&'static str, String)> {
        match *self {
            Self::Homogeneous {
                per_class: Some(0), ..
            }
            | Self::DirichletPerWorker {
                per_class: Some(0), ..
            } => Err((
                "per_class",
                "must be at least 1 (or absent for the largest even split)".into(),
            )),
            Self::Dirichlet { alpha, .. } | Self::DirichletPerWorker { alpha, .. }
                if !(alpha.is_finite() && alpha > 0.0) =>
            {
                Err(("alpha", format!("must be finite and > 0, got {alpha}")))
            }
            Self::GammaSimilarity { gamma } if !(0.0..=1.0).contains(&gamma) => {
                Err(("gamma", format!("must be in [0, 1], got {gamma}")))
            }
            _ => Ok(()),
        }
    }
}

/// Sample indices per worker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Partition {
    /// `shards[w]`: the indices of worker `w`'s samples, ascending (class by class, in file
    /// order, for a homogeneous split in `file_order`).
    pub shards: Vec<Vec<u32>>,
}

impl Partition {
    /// `counts[w][c]`: how many samples of class `c` worker `w` holds.
    pub fn class_counts(&self, labels: &[u8], classes: usize) -> Vec<Vec<usize>> {
        self.shards
            .iter()
            .map(|s| {
                let mut c = vec![0; classes];
                for &i in s {
                    c[labels[i as usize] as usize] += 1;
                }
                c
            })
            .collect()
    }

    /// A table: one line per worker with its size and label histogram.
    pub fn summary(&self, labels: &[u8], classes: usize) -> String {
        let counts = self.class_counts(labels, classes);
        let mut s = format!("{:>6} {:>7} |", "worker", "samples");
        for c in 0..classes {
            s.push_str(&format!(" {c:>5}"));
        }
        s.push('\n');
        for (w, (shard, c)) in self.shards.iter().zip(&counts).enumerate() {
            s.push_str(&format!("{w:>6} {:>7} |", shard.len()));
            for v in c {
                s.push_str(&format!(" {v:>5}"));
            }
            s.push('\n');
        }
        s
    }
}

/// Each class's sample indices in file order.
fn in_file_order(labels: &[u8], classes: usize) -> Vec<Vec<u32>> {
    let mut per = vec![Vec::new(); classes];
    for (i, &y) in labels.iter().enumerate() {
        per[y as usize].push(i as u32);
    }
    per
}

fn by_class(labels: &[u8], classes: usize, rng: &mut ChaCha20Rng) -> Vec<Vec<u32>> {
    let mut per = vec![Vec::new(); classes];
    for (i, &y) in labels.iter().enumerate() {
        per[y as usize].push(i as u32);
    }
    for p in per.iter_mut() {
        p.shuffle(rng);
    }
    per
}

/// Deals `items` into `workers` contiguous blocks whose sizes differ by at most one.
fn deal_contiguous(items: &[u32], workers: usize, shards: &mut [Vec<u32>]) {
    let (q, r) = (items.len() / workers, items.len() % workers);
    let mut at = 0;
    for (w, shard) in shards.iter_mut().enumerate() {
        let take = q + usize::from(w < r);
        shard.extend_from_slice(&items[at..at + take]);
        at += take;
    }
}

/// Splits the samples with labels `labels` (in `0..classes`) across `workers` workers, drawing
/// from `rng` (the simulator's is derived from `data_seed` by `byzadam_sim::seeds`).
///
/// ```
/// use byzadam_data::partition::{partition, Scheme};
/// let labels: Vec<u8> = (0..100).map(|i| (i % 10) as u8).collect();
/// use rand::SeedableRng;
/// let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(0);
/// let p = partition(&labels, 10, 5, &Scheme::Homogeneous { per_class: None, order: Default::default() }, &mut rng)?;
/// assert!(p.shards.iter().all(|s| s.len() == 20)); // 2 of each class per worker
/// # Ok::<(), byzadam_data::DataError>(())
/// ```
pub fn partition(
    labels: &[u8],
    classes: usize,
    workers: usize,
    scheme: &Scheme,
    rng: &mut ChaCha20Rng,
) -> Result<Partition, DataError> {
    let bad = |m: String| Err(DataError::Partition(m));
    if workers == 0 {
        return bad("at least one worker is needed".into());
    }
    // Checked before the shards are allocated: more workers than samples leaves one empty
    // (and `--workers 10^12` would ask for terabytes).
    if workers > labels.len() {
        return bad(format!(
            "{workers} workers for {} samples: every worker needs at least one sample",
            labels.len()
        ));
    }
    if let Some(i) = labels.iter().position(|&y| y as usize >= classes) {
        return bad(format!(
            "label {} of sample {i} is not in 0..{classes}",
            labels[i]
        ));
    }
    let mut shards = vec![Vec::new(); workers];
    match *scheme {
        Scheme::Homogeneous { per_class, order } => {
            let per = match order {
                SampleOrder::Shuffled => by_class(labels, classes, rng),
                SampleOrder::FileOrder => in_file_order(labels, classes),
            };
            let smallest = per.iter().map(Vec::len).min().unwrap_or(0);
            let k = per_class.unwrap_or(smallest / workers);
            if k == 0 {
                return bad(format!("homogeneous: {workers} workers cannot each get a sample of every class (smallest class has {smallest})"));
            }
            if k * workers > smallest {
                return bad(format!(
                    "homogeneous: {k} per class × {workers} workers = {} exceeds the smallest class ({smallest} samples); at most {} per class",
                    k * workers,
                    smallest / workers
                ));
            }
            for class in &per {
                for (w, shard) in shards.iter_mut().enumerate() {
                    shard.extend_from_slice(&class[w * k..(w + 1) * k]);
                }
            }
            if order == SampleOrder::FileOrder {
                return Ok(Partition { shards });
            }
        }
        Scheme::DirichletPerWorker {
            alpha,
            per_class,
            min_samples,
        } => {
            let per = by_class(labels, classes, rng);
            let smallest = per.iter().map(Vec::len).min().unwrap_or(0);
            let total = per_class.unwrap_or(smallest);
            let gamma = Gamma::new(alpha, 1.0)
                .map_err(|e| DataError::Partition(format!("dirichlet_per_worker: {e}")))?;
            let mut attempt = 0;
            loop {
                // One Dirichlet(α…α) row per worker, as normalised Gamma(α, 1) draws.
                let rows: Vec<Vec<f64>> = (0..workers)
                    .map(|_| dirichlet(&gamma, classes, rng, "dirichlet_per_worker", alpha))
                    .collect::<Result<_, _>>()?;
                for s in shards.iter_mut() {
                    s.clear();
                }
                for (c, class) in per.iter().enumerate() {
                    let column: f64 = rows.iter().map(|r| r[c]).sum();
                    let mut start = 0usize;
                    for (w, shard) in shards.iter_mut().enumerate() {
                        let want = if column > 0.0 {
                            (rows[w][c] / column * total as f64).round() as usize
                        } else {
                            0
                        };
                        let end = (start + want).min(class.len());
                        shard.extend_from_slice(&class[start..end]);
                        start = end;
                    }
                }
                if shards.iter().all(|s| s.len() >= min_samples.max(1)) {
                    break;
                }
                attempt += 1;
                if attempt == 1000 {
                    return bad(format!(
                        "dirichlet_per_worker: after 1,000 draws some worker still had fewer than {min_samples} samples with alpha = {alpha}; use a larger alpha or fewer workers"
                    ));
                }
            }
        }
        Scheme::Iid => {
            let mut all: Vec<u32> = (0..labels.len() as u32).collect();
            all.shuffle(rng);
            deal_contiguous(&all, workers, &mut shards);
        }
        Scheme::Extreme => {
            let per = by_class(labels, classes, rng);
            let sorted: Vec<u32> = per.concat();
            deal_contiguous(&sorted, workers, &mut shards);
        }
        Scheme::GammaSimilarity { gamma } => {
            if !(0.0..=1.0).contains(&gamma) {
                return bad(format!(
                    "gamma_similarity: gamma must be in [0, 1], got {gamma}"
                ));
            }
            let mut all: Vec<u32> = (0..labels.len() as u32).collect();
            all.shuffle(rng);
            let cut = (gamma * all.len() as f64).round() as usize;
            let (iid, rest) = all.split_at(cut);
            deal_contiguous(iid, workers, &mut shards);
            let mut rest = rest.to_vec();
            rest.sort_by_key(|&i| labels[i as usize]); // stable: keeps the shuffled order within a class
            deal_contiguous(&rest, workers, &mut shards);
        }
        Scheme::Dirichlet { alpha, min_samples } => {
            if !(alpha > 0.0 && alpha.is_finite()) {
                return bad(format!(
                    "dirichlet: alpha must be a positive number, got {alpha}"
                ));
            }
            if min_samples * workers > labels.len() {
                return bad(format!("dirichlet: {workers} workers × min_samples {min_samples} exceeds the {} samples", labels.len()));
            }
            let per = by_class(labels, classes, rng);
            let gamma = Gamma::new(alpha, 1.0)
                .map_err(|e| DataError::Partition(format!("dirichlet: {e}")))?;
            let mut attempt = 0;
            loop {
                for s in shards.iter_mut() {
                    s.clear();
                }
                for class in &per {
                    // Dirichlet(α…α) as normalised Gamma(α, 1) draws; an all-zero draw (possible
                    // in floating point for tiny α) is drawn again.
                    let props = dirichlet(&gamma, workers, rng, "dirichlet", alpha)?;
                    let mut cum = 0.0;
                    let mut start = 0usize;
                    for (w, p) in props.iter().enumerate() {
                        cum += p;
                        let end = if w + 1 == workers {
                            class.len()
                        } else {
                            ((cum * class.len() as f64).round() as usize).min(class.len())
                        };
                        let end = end.max(start);
                        shards[w].extend_from_slice(&class[start..end]);
                        start = end;
                    }
                }
                if shards.iter().all(|s| s.len() >= min_samples) {
                    break;
                }
                attempt += 1;
                if attempt == 1000 {
                    return bad(format!(
                        "dirichlet: after 1,000 draws some worker still had fewer than {min_samples} samples with alpha = {alpha}; use a larger alpha or fewer workers"
                    ));
                }
            }
        }
    }
    for s in shards.iter_mut() {
        s.sort_unstable();
    }
    Ok(Partition { shards })
}

/// One Dirichlet(α, …, α) draw of `k` proportions, as normalised Gamma(α, 1) draws. A draw
/// whose Gammas all underflow to 0 (likely in float64 for tiny α) is drawn again, at most
/// 1,000 times: with `alpha = 1e-9` every draw underflows, and that is an error naming α,
/// never an endless loop.
fn dirichlet(
    gamma: &Gamma<f64>,
    k: usize,
    rng: &mut ChaCha20Rng,
    scheme: &str,
    alpha: f64,
) -> Result<Vec<f64>, DataError> {
    for _ in 0..1000 {
        let g: Vec<f64> = (0..k).map(|_| gamma.sample(rng)).collect();
        let total: f64 = g.iter().sum();
        if total > 0.0 && total.is_finite() {
            return Ok(g.into_iter().map(|x| x / total).collect());
        }
    }
    Err(DataError::Partition(format!(
        "{scheme}: alpha = {alpha:?} is too small: 1,000 draws of Gamma(alpha) in a row all \
         underflowed to 0 (use alpha ≥ 1e-3)"
    )))
}
