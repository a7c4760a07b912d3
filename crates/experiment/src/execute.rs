//! A grid file run into a store, as `byzadam grid` and `byzadam.grid` run it: expanded, the
//! stored runs skipped, stale checkpoints removed, each dataset loaded once, the rest run in
//! parallel with checkpoints. What a front end shows (progress bars, lines, a callback) it
//! does in a [`GridObserver`].

use crate::runner::{self, Event, Options, Outcome};
use crate::store::Store;
use crate::{Grid, Run, Shard};
use byzadam_data::download::Progress;
use byzadam_data::{DatasetKind, Split};
use byzadam_sim::RunConfig;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What to run.
#[derive(Debug, Clone)]
pub struct GridJob {
    /// The grid file (TOML).
    pub file: PathBuf,
    /// The results store (default [`default_store`]).
    pub store: Option<PathBuf>,
    /// Only this slice of the runs.
    pub shard: Option<Shard>,
    /// Runs at once (default: one per core while there are enough runs).
    pub jobs: Option<usize>,
    /// Threads per run (default: the cores divided among the runs at once).
    pub threads: Option<usize>,
    /// Time between checkpoints of each run in flight.
    pub checkpoint_every: Duration,
    /// The data directory.
    pub data_dir: PathBuf,
    /// How downloads show their progress.
    pub download_progress: Progress,
}

/// A grid expanded, its store open and read: what a job will do, before it does it.
pub struct PreparedGrid {
    /// The grid's name.
    pub name: String,
    /// Runs in the whole grid.
    pub total: usize,
    /// Runs of this job (its shard) already in the store.
    pub finished: usize,
    /// Runs of this job still to do.
    pub pending: Vec<Run>,
    /// The store's path.
    pub store_path: PathBuf,
    /// How the runs will run.
    pub options: Options,
    /// Stale checkpoint files removed.
    pub removed: usize,
    store: Store,
    data_dir: PathBuf,
    download_progress: Progress,
}

/// What a front end shows of a grid as it runs: each runner event (a run started, a round,
/// a run finished or failed), called from the runner's threads.
pub trait GridObserver: Sync {
    /// One event.
    fn event(&self, _event: &Event) {}
}

/// An observer that shows nothing.
impl GridObserver for () {}

/// How a grid job ended.
#[derive(Debug)]
pub struct GridReport {
    /// The grid's name.
    pub name: String,
    /// The store.
    pub store: PathBuf,
    /// Runs this job had to do.
    pub pending: usize,
    /// Rounds those runs have in all.
    pub total_rounds: u64,
    /// Seconds spent loading data.
    pub load_seconds: f64,
    /// Seconds spent running.
    pub seconds: f64,
    /// What the runner did (default on a dry run or when nothing was to do).
    pub outcome: Outcome,
}

/// The default store of a grid: `results/<name>.db`.
pub fn default_store(grid: &Grid) -> PathBuf {
    Path::new("results").join(format!("{}.db", grid.name()))
}

fn data_key(c: &RunConfig) -> (DatasetKind, u64) {
    // Real datasets do not depend on the seed; synthetic data does.
    let seed = if c.dataset == DatasetKind::Synthetic {
        c.data_seed
    } else {
        0
    };
    (c.dataset, seed)
}

/// The grid of `job`, expanded (every run, before sharding).
fn expand_job(job: &GridJob) -> Result<(Grid, Vec<Run>), String> {
    let file = job.file.display().to_string();
    let text = byzadam_sim::read_text(&job.file)?;
    let grid = Grid::parse(&text, &file).map_err(|e| e.to_string())?;
    let all = grid.expand().map_err(|e| e.to_string())?;
    Ok((grid, all))
}

/// `job`'s runs and options: split into stored (`done`) and pending, the options checked.
fn split_runs(
    job: &GridJob,
    all: Vec<Run>,
    done: &BTreeSet<String>,
) -> Result<(usize, Vec<Run>, Options), String> {
    let mine = match job.shard {
        Some(s) => s.select(all),
        None => all,
    };
    let (finished, pending): (Vec<Run>, Vec<Run>) =
        mine.into_iter().partition(|r| done.contains(&r.id));
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut options = Options::for_cores(cores, pending.len());
    if let Some(j) = job.jobs {
        if j == 0 || j > 1024 {
            return Err(format!("--jobs must be in 1..=1024, got {j}"));
        }
        options.jobs = j;
        options.threads = (cores / j).max(1);
    }
    if let Some(t) = job.threads {
        if t == 0 || t > 1024 {
            return Err(format!("--threads must be in 1..=1024, got {t}"));
        }
        options.threads = t;
    }
    options.checkpoint_every = job.checkpoint_every;
    Ok((finished.len(), pending, options))
}

/// What `job` would do, found without writing anything: the grid expanded, its store read
/// (read-only) if it exists, the runs split into stored and pending (`grid --dry-run`).
pub struct DryRun {
    /// The grid's name.
    pub name: String,
    /// Runs in the whole grid.
    pub total: usize,
    /// Runs of this job (its shard) already in the store.
    pub finished: usize,
    /// Runs of this job still to do.
    pub pending: Vec<Run>,
    /// The store's path (which may not exist yet).
    pub store_path: PathBuf,
    /// How the runs would run.
    pub options: Options,
}

/// [`prepare_grid`] without its writes: no store is created, no grid registered, no
/// checkpoint removed. A file at the store's path that is not a byzadam store is an error.
pub fn dry_run(job: &GridJob) -> Result<DryRun, String> {
    let (grid, all) = expand_job(job)?;
    let total = all.len();
    let store_path = job.store.clone().unwrap_or_else(|| default_store(&grid));
    let exists = store_path.metadata().is_ok_and(|m| m.len() > 0);
    let done = if exists {
        Store::open_read_only(&store_path)
            .and_then(|s| s.done())
            .map_err(|e| e.to_string())?
    } else {
        BTreeSet::new()
    };
    let (finished, pending, options) = split_runs(job, all, &done)?;
    Ok(DryRun {
        name: grid.name().to_string(),
        total,
        finished,
        pending,
        store_path,
        options,
    })
}

/// Expands `job`'s grid, opens its store (registering the grid), removes stale checkpoints
/// and splits the runs into stored and pending. An error for a grid or store that cannot be
/// read, or bad options.
pub fn prepare_grid(job: &GridJob) -> Result<PreparedGrid, String> {
    let (grid, all) = expand_job(job)?;
    let total = all.len();
    let ids: Vec<&str> = all.iter().map(|r| r.id.as_str()).collect();
    let store_path = job.store.clone().unwrap_or_else(|| default_store(&grid));
    let mut store = Store::open(&store_path).map_err(|e| e.to_string())?;
    store
        .register_grid(grid.name(), &ids)
        .map_err(|e| e.to_string())?;
    let removed = runner::remove_stale_checkpoints(&store)
        .map_err(|e| format!("cleaning {}: {e}", store.checkpoint_dir().display()))?;
    let done = store.done().map_err(|e| e.to_string())?;
    let (finished, pending, options) = split_runs(job, all, &done)?;
    Ok(PreparedGrid {
        name: grid.name().to_string(),
        total,
        finished,
        pending,
        store_path,
        options,
        removed,
        store,
        data_dir: job.data_dir.clone(),
        download_progress: job.download_progress,
    })
}

impl PreparedGrid {
    /// Rounds the pending runs have in all.
    pub fn total_rounds(&self) -> u64 {
        self.pending.iter().map(|r| r.config.rounds).sum()
    }

    /// Runs the pending runs (each dataset they need loaded once); `stop` (set on Ctrl-C)
    /// makes the runs in flight checkpoint and return. An error when data cannot be had;
    /// runs that fail are in the report's outcome, not errors.
    pub fn run(self, stop: &AtomicBool, observer: &dyn GridObserver) -> Result<GridReport, String> {
        let mut report = GridReport {
            name: self.name.clone(),
            store: self.store_path.clone(),
            pending: self.pending.len(),
            total_rounds: self.total_rounds(),
            load_seconds: 0.0,
            seconds: 0.0,
            outcome: Outcome::default(),
        };
        if self.pending.is_empty() {
            return Ok(report);
        }
        let mut data: Vec<((DatasetKind, u64), Arc<Split>)> = Vec::new();
        let load_start = Instant::now();
        for r in &self.pending {
            let key = data_key(&r.config);
            if !data.iter().any(|(k, _)| *k == key) {
                let loaded = byzadam_data::load_for_run(
                    key.0,
                    &self.data_dir,
                    key.1,
                    false,
                    self.download_progress,
                )?;
                data.push((key, Arc::new(loaded.split)));
            }
        }
        report.load_seconds = load_start.elapsed().as_secs_f64();
        let lookup = |c: &RunConfig| -> Result<Arc<Split>, String> {
            let key = data_key(c);
            data.iter()
                .find(|(k, _)| *k == key)
                .map(|(_, d)| d.clone())
                .ok_or_else(|| "dataset not loaded".to_string())
        };
        let start = Instant::now();
        let store = Mutex::new(self.store);
        report.outcome =
            runner::run_all(&self.pending, &store, &lookup, &self.options, stop, &|e| {
                observer.event(&e)
            });
        report.seconds = start.elapsed().as_secs_f64();
        Ok(report)
    }
}
