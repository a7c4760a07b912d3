//! Runs a list of runs in parallel into a [`Store`], checkpointing each so that an interrupted
//! grid resumes mid-run.
//!
//! `jobs` runs go at once, each on its own rayon pool of `threads` threads (the simulator's
//! workers are parallel within a round, with bit-identical results for any thread count).
//! A finished run is written to the store in one transaction, then its checkpoint is deleted;
//! a run in flight checkpoints every `checkpoint_every` (atomically: written beside, synced,
//! renamed), and on a stop request. Killing the process loses at most the rounds since each
//! in-flight run's last checkpoint, never a finished result.

use crate::store::{Store, Timings};
use crate::Run;
use byzadam_data::Split;
use byzadam_sim::{Checkpoint, RoundMetrics, RunConfig, Simulation, Summary};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How to run.
#[derive(Debug, Clone)]
pub struct Options {
    /// Runs at once.
    pub jobs: usize,
    /// Threads per run.
    pub threads: usize,
    /// Checkpoint a run in flight at least this often (wall clock).
    pub checkpoint_every: Duration,
}

impl Options {
    /// Fills `cores` cores with `pending` runs: one single-threaded run per core while there
    /// are at least as many runs as cores (runs scale perfectly, threads within a run do
    /// not), else the cores shared among the runs.
    pub fn for_cores(cores: usize, pending: usize) -> Self {
        let cores = cores.max(1);
        let jobs = pending.clamp(1, cores);
        Self {
            jobs,
            threads: (cores / jobs).max(1),
            checkpoint_every: Duration::from_secs(60),
        }
    }
}

/// What the runner reports as it goes (from several threads).
#[derive(Debug)]
pub enum Event<'a> {
    /// A run starts, at `from_round` (0, or where its checkpoint left it).
    Started {
        /// The run.
        run: &'a Run,
        /// Rounds already done (from a checkpoint).
        from_round: u64,
    },
    /// A run completed a round.
    Round {
        /// The run.
        run: &'a Run,
        /// Its metrics.
        metrics: &'a RoundMetrics,
    },
    /// A run finished and is in the store.
    Finished {
        /// The run.
        run: &'a Run,
        /// Its summary.
        summary: &'a Summary,
    },
    /// A run failed (it is not in the store; the grid goes on).
    Failed {
        /// The run.
        run: &'a Run,
        /// Why.
        error: &'a str,
    },
    /// A checkpoint could not be used and the run starts over.
    CheckpointIgnored {
        /// The run.
        run: &'a Run,
        /// Why.
        reason: &'a str,
    },
}

/// How a call to [`run_all`] ended.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Runs finished and stored.
    pub finished: usize,
    /// Runs that failed: (id, error).
    pub failed: Vec<(String, String)>,
    /// Runs left undone (or checkpointed mid-way) because a stop was requested.
    pub stopped: usize,
    /// Seconds, summed over the finished runs: building each simulation (or restoring it).
    pub setup_seconds: f64,
    /// … training and evaluating.
    pub train_seconds: f64,
    /// … writing checkpoints.
    pub checkpoint_seconds: f64,
    /// … writing results to the store.
    pub store_seconds: f64,
}

impl Outcome {
    /// The per-run overhead (setup, checkpoints, store writes) as a fraction of the finished
    /// runs' whole time.
    pub fn overhead(&self) -> f64 {
        let extra = self.setup_seconds + self.checkpoint_seconds + self.store_seconds;
        extra / (extra + self.train_seconds).max(f64::MIN_POSITIVE)
    }
}

/// The checkpoint file of run `id` in `dir`.
pub fn checkpoint_path(dir: &Path, id: &str) -> PathBuf {
    dir.join(format!("{id}.ckpt"))
}

/// Writes `bytes` to `path` atomically: a sibling temporary file, synced, renamed over, and
/// the directory synced, so that `path` is always either the old or the new content.
/// The temporary name is unique to the process and call, so two writers of the same path (two
/// grids started on one store by mistake: they compute the same deterministic runs) never
/// interleave their bytes in one file.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    static CALLS: AtomicUsize = AtomicUsize::new(0);
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!(
        ".{}.{}.tmp",
        std::process::id(),
        CALLS.fetch_add(1, Ordering::Relaxed)
    ));
    let tmp = path.with_file_name(name);
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        // Directory fsync makes the rename durable; not every platform allows opening one.
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
    }
    Ok(())
}

/// Deletes checkpoints of runs that are already in the store (left by a crash between the
/// store write and the deletion), and temporary files left by a crash mid-write (their
/// writing process is gone, or they are over an hour old; others may belong to another grid
/// writing now).
pub fn remove_stale_checkpoints(store: &Store) -> std::io::Result<usize> {
    let dir = store.checkpoint_dir();
    let done = store.done().unwrap_or_default();
    let mut removed = 0;
    if let Ok(entries) = std::fs::read_dir(&dir) {
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let old = || {
                e.metadata()
                    .and_then(|m| m.modified())
                    .ok()
                    .and_then(|t| t.elapsed().ok())
                    .is_some_and(|age| age > Duration::from_secs(3600))
            };
            // `<id>.ckpt.<pid>.<n>.tmp`: its writer is gone when no process has that pid
            // (known where /proc exists), or when the file is old.
            let writer_gone = || {
                let pid = name.rsplit('.').nth(2).and_then(|p| p.parse::<u32>().ok());
                let proc = Path::new("/proc");
                match pid {
                    Some(pid) if proc.is_dir() => !proc.join(pid.to_string()).exists(),
                    _ => false,
                }
            };
            let stale = match name.strip_suffix(".ckpt") {
                Some(id) => done.contains(id),
                None => name.ends_with(".tmp") && (writer_gone() || old()),
            };
            if stale {
                std::fs::remove_file(e.path())?;
                removed += 1;
            }
        }
    }
    Ok(removed)
}

/// Runs `runs` (none of them in the store yet) with `options`, `jobs` at a time, writing each
/// finished run to `store`. `data` gives the dataset split of a config. Setting `stop` makes
/// every run in flight checkpoint and return, and no new run start.
pub fn run_all(
    runs: &[Run],
    store: &Mutex<Store>,
    data: &(dyn Fn(&RunConfig) -> Result<Arc<Split>, String> + Sync),
    options: &Options,
    stop: &AtomicBool,
    on: &(dyn Fn(Event) + Sync),
) -> Outcome {
    let dir = store.lock().map(|s| s.checkpoint_dir()).unwrap_or_default();
    if let Err(e) = std::fs::create_dir_all(&dir) {
        let error = format!("cannot create {}: {e}", dir.display());
        for run in runs {
            on(Event::Failed { run, error: &error });
        }
        return Outcome {
            failed: runs.iter().map(|r| (r.id.clone(), error.clone())).collect(),
            ..Outcome::default()
        };
    }
    // Runs with a checkpoint first: resume what was in flight before starting anything new.
    let mut order: Vec<&Run> = runs.iter().collect();
    order.sort_by_key(|r| !checkpoint_path(&dir, &r.id).exists());
    let next = AtomicUsize::new(0);
    let outcome = Mutex::new(Outcome::default());
    std::thread::scope(|scope| {
        for _ in 0..options.jobs.max(1) {
            scope.spawn(|| {
                let pool = match rayon::ThreadPoolBuilder::new()
                    .num_threads(options.threads.max(1))
                    .build()
                {
                    Ok(pool) => pool,
                    Err(e) => {
                        let error = format!("cannot start a thread pool: {e}");
                        if let Ok(mut o) = outcome.lock() {
                            o.failed.push((String::new(), error));
                        }
                        return;
                    }
                };
                loop {
                    if stop.load(Ordering::SeqCst) {
                        return;
                    }
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    let Some(run) = order.get(i) else { return };
                    let result =
                        pool.install(|| execute(run, store, data, options, &dir, stop, on));
                    let mut o = outcome.lock().unwrap_or_else(|p| p.into_inner());
                    match result {
                        Ok(Some((summary, t, store_seconds))) => {
                            o.finished += 1;
                            o.setup_seconds += t.setup_seconds;
                            o.train_seconds += t.train_seconds;
                            o.checkpoint_seconds += t.checkpoint_seconds;
                            o.store_seconds += store_seconds;
                            drop(o);
                            on(Event::Finished {
                                run,
                                summary: &summary,
                            });
                        }
                        Ok(None) => o.stopped += 1,
                        Err(error) => {
                            o.failed.push((run.id.clone(), error.clone()));
                            drop(o);
                            on(Event::Failed { run, error: &error });
                        }
                    }
                }
            });
        }
    });
    let mut outcome = outcome.into_inner().unwrap_or_else(|p| p.into_inner());
    let started = next.load(Ordering::SeqCst).min(order.len());
    outcome.stopped += order.len() - started;
    outcome
}

/// One run: build (or restore), step to the end with checkpoints, store; returns its summary,
/// timings and the store write's seconds. `Ok(None)` when stopped.
fn execute(
    run: &Run,
    store: &Mutex<Store>,
    data: &(dyn Fn(&RunConfig) -> Result<Arc<Split>, String> + Sync),
    options: &Options,
    dir: &Path,
    stop: &AtomicBool,
    on: &(dyn Fn(Event) + Sync),
) -> Result<Option<(Summary, Timings, f64)>, String> {
    let wall = Instant::now();
    let split = data(&run.config)?;
    // The run reads the grid's shared bytes; it holds no normalised copy of the training set.
    let mut sim = Simulation::shared(run.config.clone(), split).map_err(|e| e.to_string())?;
    let path = checkpoint_path(dir, &run.id);
    // Capacity capped: `rounds` comes from input (up to MAX_ROUNDS).
    let mut metrics = Vec::with_capacity((run.config.rounds as usize).min(4096));
    let mut seconds_before = 0.0;
    if path.exists() {
        let restored = std::fs::read(&path)
            .map_err(|e| e.to_string())
            .and_then(|b| Checkpoint::from_bytes(&b))
            .and_then(|c| {
                let s = c.seconds;
                sim.restore(c).map(|m| (m, s)).map_err(|e| e.to_string())
            });
        match restored {
            Ok((m, s)) => {
                metrics = m;
                seconds_before = s;
            }
            Err(reason) => {
                // `restore` checks before it changes anything: `sim` is still fresh.
                on(Event::CheckpointIgnored {
                    run,
                    reason: &reason,
                });
            }
        }
    }
    let setup_seconds = wall.elapsed().as_secs_f64();
    on(Event::Started {
        run,
        from_round: sim.round(),
    });
    let train = Instant::now();
    let mut checkpoint_seconds = 0.0;
    let mut last_checkpoint = Instant::now();
    let mut save = |sim: &Simulation, metrics: &[RoundMetrics], trained: f64| {
        let t = Instant::now();
        let r = sim
            .checkpoint(metrics, seconds_before + trained)
            .to_bytes()
            .and_then(|bytes| {
                write_atomic(&path, &bytes)
                    .map_err(|e| format!("cannot write checkpoint {}: {e}", path.display()))
            });
        checkpoint_seconds += t.elapsed().as_secs_f64();
        r
    };
    while sim.round() < run.config.rounds {
        if stop.load(Ordering::SeqCst) {
            if sim.round() > 0 {
                save(&sim, &metrics, train.elapsed().as_secs_f64())?;
            }
            return Ok(None);
        }
        let m = sim.step().map_err(|e| e.to_string())?;
        on(Event::Round { run, metrics: &m });
        metrics.push(m);
        if last_checkpoint.elapsed() >= options.checkpoint_every && sim.round() < run.config.rounds
        {
            save(&sim, &metrics, train.elapsed().as_secs_f64())?;
            last_checkpoint = Instant::now();
        }
    }
    let train_seconds = train.elapsed().as_secs_f64() - checkpoint_seconds;
    let summary = Summary {
        class_recall: sim.final_class_recall().to_vec(),
        ..Summary::from_metrics(&metrics, seconds_before + train_seconds)
            .ok_or("the run evaluated nothing")?
    };
    let timings = Timings {
        setup_seconds,
        train_seconds,
        checkpoint_seconds,
        wall_seconds: wall.elapsed().as_secs_f64(),
        threads: rayon::current_num_threads(),
    };
    let written = Instant::now();
    store
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert_run(&run.id, &run.config, &metrics, &summary, &timings)
        .map_err(|e| e.to_string())?;
    let store_seconds = written.elapsed().as_secs_f64();
    if path.exists() {
        std::fs::remove_file(&path)
            .map_err(|e| format!("stored, but cannot delete {}: {e}", path.display()))?;
    }
    Ok(Some((summary, timings, store_seconds)))
}
