//! The simulator from Python: `run` (one training run), `grid` (a grid file into a store) and
//! `Store` (reading one). Long calls run on a thread of their own while the calling thread
//! waits without the GIL, wakes every 100 ms to report progress and to check for Ctrl-C, and on
//! Ctrl-C stops the work cleanly (a run stops between rounds; a grid checkpoints its runs in
//! flight) before raising `KeyboardInterrupt`.

use crate::error;
use crate::round::metrics_dict;
use byzadam_experiment::execute::{self, GridJob, GridObserver};
use byzadam_experiment::runner::Event;
use byzadam_experiment::store::{Store, Timings};
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
    m.add_class::<PyGridStore>()?;
    m.add_function(wrap_pyfunction!(expand_grid, m)?)?;
    m.add_function(wrap_pyfunction!(eval_subset, m)?)?;
    m.add_function(wrap_pyfunction!(run_id, m)?)?;
    Ok(())
}

fn resolve(text: Option<&str>, name: &str, set: &[String]) -> PyResult<RunConfig> {
    RunConfig::resolve(text, name, set).map_err(error)
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
        if t == 0 || t > 1024 {
            return Err(format!("threads must be in 1..=1024, got {t}"));
        }
        b = b.num_threads(t);
    }
    b.build().map_err(|e| e.to_string())
}

/// A run's data as `byzadam run` gets it (`byzadam_data::load_for_run`): the quickstart falls
/// back to synthetic digits only when no data directory was named, by argument or
/// environment.
pub(crate) fn load_run_data(
    py: Python<'_>,
    cfg: &RunConfig,
    data_dir: Option<PathBuf>,
    quickstart: bool,
) -> PyResult<byzadam_data::RunData> {
    let fallback = quickstart
        && data_dir.is_none()
        && std::env::var_os(byzadam_data::DATA_DIR_ENV).is_none_or(|d| d.is_empty());
    let dir = byzadam_data::data_dir(data_dir.as_deref());
    py.detach(|| {
        byzadam_data::load_for_run(
            cfg.dataset,
            &dir,
            cfg.data_seed,
            fallback,
            byzadam_data::download::Progress::Bar,
        )
    })
    .map_err(error)
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

/// One training run, as `byzadam run` runs it (same config resolution, data — the quickstart's
/// synthetic fallback included —, seeds and numbers; no results directory).
/// `progress(metrics)` is called after every round with its metrics dict. Returns
/// `(config_json, [metrics dict per round], summary_json)`; the summary names the dataset and,
/// after a fallback, why (`synthetic_fallback`), as `summary.json` does.
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
) -> PyResult<(String, Vec<Py<pyo3::types::PyDict>>, String)> {
    let mut cfg = resolve(text, name, &set)?;
    // The quickstart: no config, no dataset override.
    let quickstart = text.is_none() && !set.iter().any(|s| s.trim_start().starts_with("dataset"));
    let loaded = load_run_data(py, &cfg, data_dir, quickstart)?;
    let fallback = loaded.fallback;
    cfg.dataset = loaded.kind;
    let data = Arc::new(loaded.split);
    let config_json = serde_json::to_string(&cfg).map_err(error)?;
    let dataset = cfg.dataset.folder();
    let mut metrics = Vec::new();
    let result = supervise(
        py,
        move |tx, stop| -> Result<_, String> {
            let pool = pool(threads)?;
            pool.install(|| {
                let mut sim = Simulation::shared(cfg, data)
                    .map_err(|e| format!("key `{}`: {}", e.key, e.reason))?;
                sim.run(&mut Channel { tx, stop }).map_err(|e| match e {
                    RoundError::Interrupted { .. } => "interrupted".to_string(),
                    e => e.to_string(),
                })
            })
        },
        |py, m: RoundMetrics| {
            let d = metrics_dict(py, &m)?;
            if let Some(cb) = &progress {
                cb.call1(py, (d.clone(),))?;
            }
            metrics.push(d.unbind());
            Ok(())
        },
    )?;
    let summary = result.map_err(error)?;
    let mut summary_json = serde_json::to_value(&summary).map_err(error)?;
    summary_json["dataset"] = serde_json::Value::from(dataset);
    if let Some(why) = fallback {
        summary_json["synthetic_fallback"] = serde_json::Value::from(why);
    }
    Ok((
        config_json,
        metrics,
        serde_json::to_string(&summary_json).map_err(error)?,
    ))
}

/// Rounds done so far and in all, sent to the waiting Python thread after each.
struct Tell {
    tx: std::sync::Mutex<Sender<(u64, u64)>>,
    done: std::sync::atomic::AtomicU64,
    total: u64,
}

impl GridObserver for Tell {
    fn event(&self, e: &Event) {
        let step = match e {
            Event::Started { from_round, .. } => *from_round,
            Event::Round { .. } => 1,
            _ => return,
        };
        let done = self.done.fetch_add(step, Ordering::SeqCst) + step;
        if let Ok(tx) = self.tx.lock() {
            let _ = tx.send((done, self.total));
        }
    }
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
    let job = GridJob {
        file,
        store,
        shard: None,
        jobs,
        threads,
        checkpoint_every: Duration::from_secs(checkpoint_every),
        data_dir: byzadam_data::data_dir(data_dir.as_deref()),
        download_progress: byzadam_data::download::Progress::Bar,
    };
    let plan = py.detach(|| execute::prepare_grid(&job)).map_err(error)?;
    let store_path = plan.store_path.display().to_string();
    let header = format!(
        "grid {}: {} runs; {} already in {}, {} to run as {} at a time × {} thread(s)\n",
        plan.name,
        plan.total,
        plan.finished,
        store_path,
        plan.pending.len(),
        plan.options.jobs,
        plan.options.threads
    );
    let total_rounds = plan.total_rounds();
    let result = supervise(
        py,
        move |tx, stop| {
            let tell = Tell {
                tx: std::sync::Mutex::new(tx),
                done: std::sync::atomic::AtomicU64::new(0),
                total: total_rounds,
            };
            plan.run(&stop, &tell)
        },
        |py, (done, total): (u64, u64)| {
            if let Some(cb) = &progress {
                cb.call1(py, (done, total))?;
            }
            Ok(())
        },
    )?;
    let report = result.map_err(error)?;
    let o = &report.outcome;
    let mut text = header;
    if report.pending > 0 {
        text.push_str(&format!(
            "{} runs finished in {:.1} s; store: {}\n",
            o.finished, report.seconds, store_path
        ));
    } else {
        text.push_str("nothing to do: every run is in the store\n");
    }
    if !o.failed.is_empty() {
        for (id, e) in &o.failed {
            text.push_str(&format!("failed: {id}: {e}\n"));
        }
        return Err(error(format!(
            "{text}{} of {} runs failed",
            o.failed.len(),
            report.pending
        )));
    }
    if o.stopped > 0 {
        return Err(error(format!("{text}interrupted")));
    }
    Ok((text, store_path))
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
            inner: Store::open_read_only(&path).map_err(error)?,
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
                    "backend": r.backend,
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

/// One round's metrics from Python: `(round, lr, train_loss, xi_norm, honest_diameter,
/// lambda, diverged, (accuracy, loss))`.
type RoundRow = (
    u64,
    f32,
    f64,
    f64,
    f64,
    Option<f64>,
    bool,
    Option<(f64, f64)>,
);

fn config_from_json(config_json: &str) -> PyResult<RunConfig> {
    let config: RunConfig = serde_json::from_str(config_json)
        .map_err(|e| error(format!("not a resolved run config: {e}")))?;
    config.validate().map_err(error)?;
    Ok(config)
}

/// The test-set indices a resolved config (JSON) evaluates on when it has `eval_subset` (a
/// named list resolved for its dataset, or its own list); `None` without one.
#[pyfunction]
fn eval_subset(config_json: &str) -> PyResult<Option<Vec<u32>>> {
    let config = config_from_json(config_json)?;
    config
        .eval_subset
        .as_ref()
        .map(|s| s.indices(config.dataset))
        .transpose()
        .map_err(|e| error(format!("eval_subset: {e}")))
}

/// A grid's name and runs, in grid order, each as `(id, config JSON)` with the ids
/// `byzadam grid` gives them. `text` is the grid file's TOML; `file` names it in errors.
#[pyfunction]
fn expand_grid(text: &str, file: &str) -> PyResult<(String, Vec<(String, String)>)> {
    let grid = byzadam_experiment::Grid::parse(text, file).map_err(error)?;
    let runs = grid.expand().map_err(error)?;
    let runs = runs
        .into_iter()
        .map(|r| Ok((r.id, serde_json::to_string(&r.config).map_err(error)?)))
        .collect::<PyResult<Vec<_>>>()?;
    Ok((grid.name().to_string(), runs))
}

/// The id of the run of `config` (resolved JSON) by `identity`: `byzadam grid`'s id for
/// `"builtin"`, an id of its own for anything else (`"torch:<model>@…/<initial parameters>"`).
#[pyfunction]
fn run_id(config_json: &str, identity: &str) -> PyResult<String> {
    Ok(byzadam_experiment::run_id_of(
        identity,
        &config_from_json(config_json)?,
    ))
}

/// A results store opened for writing, as `byzadam grid` opens it (created if absent; a file
/// that is not a byzadam store is refused and left untouched): what `byzadam.torch.grid`
/// records its runs in.
#[pyclass(module = "byzadam._core", name = "GridStore", unsendable)]
pub(crate) struct PyGridStore {
    inner: Store,
}

#[pymethods]
impl PyGridStore {
    #[new]
    fn new(path: PathBuf) -> PyResult<Self> {
        Ok(Self {
            inner: Store::open(&path).map_err(error)?,
        })
    }

    /// Records that grid `name` holds the runs `ids`, in this order.
    fn register_grid(&mut self, name: &str, ids: Vec<String>) -> PyResult<()> {
        let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
        self.inner.register_grid(name, &ids).map_err(error)
    }

    /// The ids of every finished run.
    fn done(&self) -> PyResult<Vec<String>> {
        Ok(self.inner.done().map_err(error)?.into_iter().collect())
    }

    /// The directory for the checkpoints of unfinished runs (`<store>.checkpoints`).
    fn checkpoint_dir(&self) -> String {
        self.inner.checkpoint_dir().display().to_string()
    }

    /// Writes a finished run computed by `backend`: its resolved config (JSON), every round's
    /// metrics and its timings, in one transaction. Each round is `(round, lr, train_loss,
    /// xi_norm, honest_diameter, lambda or None, diverged, (accuracy, loss) or None)`, as the
    /// server's `step` returns them (NaN allowed). The summary is computed from the metrics
    /// (an error when no round was evaluated); a run already stored is left as it is.
    /// `id` must be `run_id(config_json, identity)`, where `identity` (default `backend`)
    /// is the backend followed by whatever else makes the run (a model's initial
    /// parameters' fingerprint). `class_recall`: each class's recall at the last round's
    /// evaluation (each in [0, 1], or NaN for a class the evaluated images lack), stored with
    /// the summary as the built-in grid stores it.
    #[pyo3(signature = (backend, id, config_json, rounds, train_seconds, wall_seconds, threads, identity = None, class_recall = None))]
    #[allow(clippy::too_many_arguments)]
    fn insert_run(
        &mut self,
        backend: &str,
        id: &str,
        config_json: &str,
        rounds: Vec<RoundRow>,
        train_seconds: f64,
        wall_seconds: f64,
        threads: usize,
        identity: Option<&str>,
        class_recall: Option<Vec<f64>>,
    ) -> PyResult<()> {
        let config = config_from_json(config_json)?;
        let class_recall = class_recall.unwrap_or_default();
        if let Some(v) = class_recall
            .iter()
            .find(|v| !(v.is_nan() || (0.0..=1.0).contains(*v)))
        {
            return Err(error(format!(
                "run {id}: a class's recall is {v}: each must be in [0, 1] (or NaN)"
            )));
        }
        if class_recall.len() > 256 {
            return Err(error(format!(
                "run {id}: {} classes' recalls: at most 256",
                class_recall.len()
            )));
        }
        let identity = identity.unwrap_or(backend);
        if !identity.starts_with(backend) {
            return Err(error(format!(
                "run {id}: identity {identity:?} does not start with its backend {backend:?}"
            )));
        }
        if byzadam_experiment::run_id_of(identity, &config) != id {
            return Err(error(format!(
                "run {id}: not the id of this config and {identity}"
            )));
        }
        if rounds.len() as u64 != config.rounds || rounds.iter().zip(1..).any(|(m, t)| m.0 != t) {
            return Err(error(format!(
                "run {id}: the metrics must hold rounds 1..={} in order, one each",
                config.rounds
            )));
        }
        let metrics: Vec<RoundMetrics> = rounds
            .into_iter()
            .map(
                |(round, lr, train_loss, xi_norm, honest_diameter, lambda, diverged, eval)| {
                    RoundMetrics {
                        round,
                        lr,
                        train_loss,
                        xi_norm,
                        honest_diameter,
                        lambda,
                        diverged,
                        eval: eval
                            .map(|(accuracy, loss)| byzadam_sim::Evaluation { accuracy, loss }),
                    }
                },
            )
            .collect();
        let mut summary = byzadam_sim::Summary::from_metrics(&metrics, train_seconds)
            .ok_or_else(|| error(format!("run {id}: no round was evaluated")))?;
        summary.class_recall = class_recall;
        let timings = Timings {
            setup_seconds: 0.0,
            train_seconds,
            checkpoint_seconds: 0.0,
            wall_seconds,
            threads,
        };
        self.inner
            .insert_run_of(backend, id, &config, &metrics, &summary, &timings)
            .map_err(error)
    }

    /// The file.
    #[getter]
    fn path(&self) -> String {
        self.inner.path().display().to_string()
    }
}
