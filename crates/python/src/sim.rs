//! The simulator from Python: `run` (one training run), `grid` (a grid file into a store) and
//! `Store` (reading one). Long calls run on a thread of their own while the calling thread
//! waits without the GIL, wakes every 100 ms to report progress and to check for Ctrl-C, and on
//! Ctrl-C stops the work cleanly (a run stops between rounds; a grid checkpoints its runs in
//! flight) before raising `KeyboardInterrupt`.

use crate::error;
use byzadam_cli::commands::grid::{grid_observed, GridArgs};
use byzadam_cli::commands::run::resolve_text;
use byzadam_cli::options::{DataDir, Progress, Threads};
use byzadam_experiment::store::Store;
use byzadam_sim::{Recorder, RoundError, RoundMetrics, RunConfig, Simulation};
use pyo3::prelude::*;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{channel, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::time::Duration;

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(resolve_config, m)?)?;
    m.add_function(wrap_pyfunction!(run, m)?)?;
    m.add_function(wrap_pyfunction!(grid, m)?)?;
    m.add_class::<PyStore>()?;
    Ok(())
}

fn resolve(text: Option<&str>, name: &str, set: &[String]) -> PyResult<RunConfig> {
    resolve_text(text, name, set).map_err(|e| error(format!("{e:#}")))
}

/// The run config `byzadam run` would use for this TOML text (`None`: the quickstart) and
/// these `--set` overrides, as JSON, defaults filled in and validated.
#[pyfunction]
#[pyo3(signature = (text, name, set = Vec::new()))]
fn resolve_config(text: Option<&str>, name: &str, set: Vec<String>) -> PyResult<String> {
    let cfg = resolve(text, name, &set)?;
    serde_json::to_string(&cfg).map_err(error)
}

/// Runs `work` on its own thread; meanwhile waits for its messages without the GIL, hands
/// each to `on` (with the GIL), and on Ctrl-C (or an exception from `on`) sets `stop`, waits
/// for the work to wind down and raises.
fn supervise<M: Send + 'static, R: Send + 'static>(
    py: Python<'_>,
    work: impl FnOnce(Sender<M>, Arc<AtomicBool>) -> R + Send + 'static,
    mut on: impl FnMut(Python<'_>, M) -> PyResult<()>,
) -> PyResult<R> {
    let stop = Arc::new(AtomicBool::new(false));
    let (tx, rx) = channel();
    // A receiver is not Sync; the mutex lets the GIL-free wait borrow it.
    let rx = std::sync::Mutex::new(rx);
    let flag = stop.clone();
    let handle = std::thread::spawn(move || work(tx, flag));
    loop {
        let got = py.detach(|| match rx.lock() {
            Ok(rx) => rx.recv_timeout(Duration::from_millis(100)),
            Err(_) => Err(RecvTimeoutError::Disconnected),
        });
        let outcome = match got {
            Ok(m) => on(py, m),
            Err(RecvTimeoutError::Timeout) => Ok(()),
            Err(RecvTimeoutError::Disconnected) => break,
        }
        .and_then(|()| py.check_signals());
        if let Err(e) = outcome {
            stop.store(true, Ordering::SeqCst);
            let _ = py.detach(|| handle.join());
            return Err(e);
        }
    }
    py.detach(|| handle.join())
        .map_err(|_| error("the run's thread panicked (a bug: please report it)"))
}

fn pool(threads: Option<usize>) -> Result<rayon::ThreadPool, String> {
    let mut b = rayon::ThreadPoolBuilder::new();
    if let Some(t) = threads {
        if t == 0 {
            return Err("threads must be at least 1".into());
        }
        b = b.num_threads(t);
    }
    b.build().map_err(|e| e.to_string())
}

struct Channel {
    tx: Sender<RoundMetrics>,
    stop: Arc<AtomicBool>,
}

impl Recorder for Channel {
    fn round(&mut self, m: &RoundMetrics) {
        let _ = self.tx.send(m.clone());
    }
    fn stop(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }
}

/// One training run, as `byzadam run` runs it (same config resolution, data, seeds and
/// numbers; no results directory). `progress(metrics_json)` is called after every round.
/// Returns `(config_json, [metrics_json per round], summary_json)`.
#[pyfunction]
#[pyo3(signature = (text, name, set = Vec::new(), data_dir = None, threads = None, progress = None))]
fn run(
    py: Python<'_>,
    text: Option<&str>,
    name: &str,
    set: Vec<String>,
    data_dir: Option<PathBuf>,
    threads: Option<usize>,
    progress: Option<Py<PyAny>>,
) -> PyResult<(String, Vec<String>, String)> {
    let cfg = resolve(text, name, &set)?;
    let config_json = serde_json::to_string(&cfg).map_err(error)?;
    let dir = byzadam_data::data_dir(data_dir.as_deref());
    let mut metrics = Vec::new();
    let result = supervise(
        py,
        move |tx, stop| -> Result<_, String> {
            let pool = pool(threads)?;
            pool.install(|| {
                let data = byzadam_cli::commands::data::load(cfg.dataset, &dir, cfg.data_seed)
                    .map_err(|e| format!("{e:#}"))?;
                let mut sim = Simulation::shared(cfg, Arc::new(data))
                    .map_err(|e| format!("key `{}`: {}", e.key, e.reason))?;
                sim.run(&mut Channel { tx, stop }).map_err(|e| match e {
                    RoundError::Interrupted { .. } => "interrupted".to_string(),
                    e => e.to_string(),
                })
            })
        },
        |py, m: RoundMetrics| {
            let line = serde_json::to_string(&m).map_err(error)?;
            if let Some(cb) = &progress {
                cb.call1(py, (line.clone(),))?;
            }
            metrics.push(line);
            Ok(())
        },
    )?;
    let summary = result.map_err(error)?;
    Ok((
        config_json,
        metrics,
        serde_json::to_string(&summary).map_err(error)?,
    ))
}

/// Runs a grid file into a store as `byzadam grid` does (runs already stored are skipped,
/// runs in flight checkpointed, so an interrupted grid resumes). `progress(done, total)` in
/// rounds. Returns the report `byzadam grid` prints and the store's path.
#[pyfunction]
#[pyo3(signature = (file, store = None, data_dir = None, jobs = None, threads = None, checkpoint_every = 60, progress = None))]
#[allow(clippy::too_many_arguments)]
fn grid(
    py: Python<'_>,
    file: PathBuf,
    store: Option<PathBuf>,
    data_dir: Option<PathBuf>,
    jobs: Option<usize>,
    threads: Option<usize>,
    checkpoint_every: u64,
    progress: Option<Py<PyAny>>,
) -> PyResult<(String, String)> {
    let store = match store {
        Some(s) => s,
        None => {
            let text = std::fs::read_to_string(&file)
                .map_err(|e| error(format!("reading {}: {e}", file.display())))?;
            let g = byzadam_experiment::Grid::parse(&text, &file.display().to_string())
                .map_err(error)?;
            byzadam_cli::commands::grid::default_store(&g)
        }
    };
    let store_path = store.display().to_string();
    let store = Some(store);
    let args = GridArgs {
        file,
        store,
        shard: None,
        jobs,
        threads: Threads { threads },
        checkpoint_every,
        dry_run: false,
        data: DataDir { data_dir },
        progress: Progress { quiet: true },
    };
    let result = supervise(
        py,
        move |tx, stop| {
            let mut out = Vec::new();
            let tell = std::sync::Mutex::new(tx);
            let r = grid_observed(&args, &stop, &mut out, &|done, total| {
                if let Ok(tx) = tell.lock() {
                    let _ = tx.send((done, total));
                }
            });
            let text = String::from_utf8_lossy(&out).into_owned();
            r.map(|()| text.clone()).map_err(|e| format!("{text}{e:#}"))
        },
        |py, (done, total): (u64, u64)| {
            if let Some(cb) = &progress {
                cb.call1(py, (done, total))?;
            }
            Ok(())
        },
    )?;
    result.map(|report| (report, store_path)).map_err(error)
}

/// A results store (SQLite), read from Python.
#[pyclass(module = "byzadam._core", name = "Store", unsendable)]
pub(crate) struct PyStore {
    inner: Store,
}

#[pymethods]
impl PyStore {
    #[new]
    fn new(path: PathBuf) -> PyResult<Self> {
        if !path.exists() {
            return Err(error(format!("no store at {}", path.display())));
        }
        Ok(Self {
            inner: Store::open(&path).map_err(error)?,
        })
    }

    /// Every finished run (or those of grid `grid`), each as JSON `{id, config, summary}`.
    #[pyo3(signature = (grid = None))]
    fn runs(&self, grid: Option<&str>) -> PyResult<Vec<String>> {
        self.inner
            .runs(grid)
            .map_err(error)?
            .into_iter()
            .map(|r| {
                serde_json::to_string(&serde_json::json!({
                    "id": r.id,
                    "config": r.config,
                    "summary": r.summary,
                }))
                .map_err(error)
            })
            .collect()
    }

    /// The grids: `(name, runs, finished runs)`.
    fn grids(&self) -> PyResult<Vec<(String, usize, usize)>> {
        self.inner.grids().map_err(error)
    }

    /// Run `id`'s test-accuracy curve: `[(round, accuracy)]`.
    fn curve(&self, id: &str) -> PyResult<Vec<(u64, f64)>> {
        self.inner.curve(id).map_err(error)
    }

    /// `[(results version, runs)]`: more than one means numbers from builds that differ.
    fn results_versions(&self) -> PyResult<Vec<(u32, usize)>> {
        self.inner.results_versions().map_err(error)
    }

    /// The file.
    #[getter]
    fn path(&self) -> String {
        self.inner.path().display().to_string()
    }
}
