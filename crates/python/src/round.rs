//! The round's two halves for Python (`byzadam_sim::round`): the server half, the worker half
//! for any gradient source, and the built-in engine's workers and evaluation. A Python loop
//! that feeds the server with the workers' messages reproduces `byzadam.run` bit for bit.

use crate::arrays::{message_buffers, vector};
use crate::error;
use byzadam_sim::round::{honest_mean_state, mean_state, ServerCheckpoint, WorkerCheckpoint};
use byzadam_sim::{
    EngineWorker, EvaluationDue, Evaluator, RoundError, RoundMetrics, RunConfig, Server, Worker,
};
use numpy::{
    PyArray1, PyReadonlyArray1, PyReadonlyArray2, PyReadwriteArray1, PyUntypedArrayMethods,
};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict};
use std::path::PathBuf;
use std::sync::Arc;

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyServer>()?;
    m.add_class::<PyWorker>()?;
    m.add_class::<PyEngine>()?;
    m.add_class::<PyEngineWorker>()?;
    Ok(())
}

fn config(json: &str) -> PyResult<RunConfig> {
    let c: RunConfig =
        serde_json::from_str(json).map_err(|e| error(format!("the run config: {e}")))?;
    c.validate()
        .map_err(|e| error(format!("key `{}`: {}", e.key, e.reason)))?;
    Ok(c)
}

fn round_error(e: RoundError) -> PyErr {
    match e {
        RoundError::TooFewReplies { .. } => crate::TooFewReplies::new_err(e.to_string()),
        RoundError::Attack { .. } => crate::AttackFailed::new_err(e.to_string()),
        e => error(e),
    }
}

/// A round's metrics as a dict, the same keys and values as `metrics.jsonl`'s lines (the
/// learning rate as the float its JSON form reads back as).
pub(crate) fn metrics_dict<'py>(py: Python<'py>, m: &RoundMetrics) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("round", m.round)?;
    d.set_item("lr", json_f32(m.lr))?;
    d.set_item("train_loss", m.train_loss)?;
    d.set_item("xi_norm", m.xi_norm)?;
    d.set_item("honest_diameter", m.honest_diameter)?;
    d.set_item("lambda", m.lambda)?;
    d.set_item("diverged", m.diverged)?;
    match m.eval {
        Some(e) => {
            let ev = PyDict::new(py);
            ev.set_item("accuracy", e.accuracy)?;
            ev.set_item("loss", e.loss)?;
            d.set_item("eval", ev)?;
        }
        None => d.set_item("eval", py.None())?,
    }
    Ok(d)
}

/// An `f32` as the `f64` its shortest decimal form (what JSON holds) reads back as.
pub(crate) fn json_f32(x: f32) -> f64 {
    format!("{x}").parse().unwrap_or(x as f64)
}

/// The server half of the round: the parameters, the attack on the Byzantine workers'
/// messages, the pre-aggregators and the rule, the optimizer's server step.
#[pyclass(module = "byzadam._core", name = "Server")]
pub(crate) struct PyServer {
    inner: Server,
}

#[pymethods]
impl PyServer {
    #[new]
    #[pyo3(signature = (config_json, params = None))]
    fn new(config_json: &str, params: Option<PyReadonlyArray1<'_, f32>>) -> PyResult<Self> {
        let cfg = config(config_json)?;
        let inner = match params {
            None => Server::new(cfg),
            Some(p) => Server::with_params(cfg, vector(&p).into_owned()),
        };
        Ok(Self {
            inner: inner.map_err(error)?,
        })
    }

    /// The parameters now (a copy, float32).
    #[getter]
    fn params<'py>(&self, py: Python<'py>) -> Bound<'py, PyArray1<f32>> {
        PyArray1::from_slice(py, self.inner.params())
    }

    /// Rounds completed.
    #[getter]
    fn round(&self) -> u64 {
        self.inner.round()
    }

    /// The parameter count.
    #[getter]
    fn dim(&self) -> usize {
        self.inner.dim()
    }

    /// Vectors each worker sends per round (2 for MRA).
    #[getter]
    fn messages(&self) -> usize {
        self.inner.messages()
    }

    /// Workers in all.
    #[getter]
    fn workers(&self) -> usize {
        self.inner.workers()
    }

    /// Whether the attack reads the Byzantine workers' genuine messages.
    #[getter]
    fn needs_byzantine_messages(&self) -> bool {
        self.inner.needs_byzantine_messages()
    }

    /// Whether worker `w` is Byzantine.
    fn is_byzantine(&self, w: usize) -> PyResult<bool> {
        self.inner
            .is_byzantine(w)
            .ok_or_else(|| error(format!("no worker {w}: there are {}", self.inner.workers())))
    }

    /// `None`, `"before"` or `"after"`: whether the next round is evaluated, and when.
    fn evaluation_due(&self) -> Option<&'static str> {
        self.inner.evaluation_due().map(|d| match d {
            EvaluationDue::BeforeUpdate => "before",
            EvaluationDue::AfterUpdate => "after",
        })
    }

    /// Whether the next round is the run's last.
    fn next_is_last(&self) -> bool {
        self.inner.next_is_last()
    }

    /// One round: `messages`, one float32 `workers × dim` array per message (rows in worker
    /// order), `losses` one float32 per worker, `present` (optional) whether each worker's
    /// reply arrived. Returns the round's metrics (no evaluation).
    #[pyo3(signature = (messages, losses, present = None))]
    fn step<'py>(
        &mut self,
        py: Python<'py>,
        messages: Vec<PyReadonlyArray2<'py, f32>>,
        losses: PyReadonlyArray1<'py, f32>,
        present: Option<Vec<bool>>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let (n, dim) = (self.inner.workers(), self.inner.dim());
        for m in &messages {
            if m.shape() != [n, dim] {
                return Err(error(format!(
                    "each message must be a {n} × {dim} array (workers × parameters), got {:?}",
                    m.shape()
                )));
            }
        }
        let rows: Vec<_> = messages
            .iter()
            .map(|m| match m.as_slice() {
                Ok(s) => std::borrow::Cow::Borrowed(s),
                Err(_) => std::borrow::Cow::Owned(m.as_array().iter().copied().collect()),
            })
            .collect();
        let refs: Vec<&[f32]> = rows.iter().map(|r| &r[..]).collect();
        let losses = vector(&losses);
        let server = &mut self.inner;
        let m = py
            .detach(|| match &present {
                None => server.step(&refs, &losses),
                Some(p) => server.step_present(&refs, &losses, p),
            })
            .map_err(round_error)?;
        metrics_dict(py, &m)
    }

    /// Whether the Byzantine workers' rows are aggregated as sent (their nodes forge them)
    /// instead of being forged here by the config's attack.
    #[getter]
    fn rows_as_sent(&self) -> bool {
        self.inner.rows_as_sent()
    }

    #[setter]
    fn set_rows_as_sent(&mut self, as_sent: bool) {
        self.inner.set_rows_as_sent(as_sent);
    }

    /// A round without an update (too few replies): the round moves on, nothing else.
    fn skip(&mut self) -> PyResult<()> {
        self.inner.skip().map_err(round_error)
    }

    /// The state carried to the next round, as bytes.
    fn checkpoint<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyBytes>> {
        let b = self.inner.checkpoint().to_bytes().map_err(error)?;
        Ok(PyBytes::new(py, &b))
    }

    /// Continues from `checkpoint()`'s bytes (a server of the same config).
    fn restore(&mut self, bytes: &[u8]) -> PyResult<()> {
        let c = ServerCheckpoint::from_bytes(bytes).map_err(error)?;
        self.inner.restore(c).map_err(error)
    }
}

/// The worker half for a gradient computed anywhere (torch, JAX): the gradient policy, then
/// the optimizer's worker step, whose moments it keeps.
#[pyclass(module = "byzadam._core", name = "Worker")]
pub(crate) struct PyWorker {
    inner: Worker,
}

fn messages_out<'py>(py: Python<'py>, out: &[Vec<f32>]) -> Vec<Bound<'py, PyArray1<f32>>> {
    out.iter().map(|m| PyArray1::from_slice(py, m)).collect()
}

/// What worker half `w` sends for `gradient` at `params` (the caller's gradient untouched).
fn send<'py>(
    py: Python<'py>,
    w: &mut Worker,
    params: PyReadonlyArray1<'py, f32>,
    gradient: PyReadonlyArray1<'py, f32>,
) -> PyResult<Vec<Bound<'py, PyArray1<f32>>>> {
    let params = vector(&params);
    let mut g = vector(&gradient).into_owned();
    let mut out = message_buffers(w.messages(), w.dim())?;
    py.detach(|| w.message(&params, &mut g, &mut out))
        .map_err(round_error)?;
    Ok(messages_out(py, &out))
}

#[pymethods]
impl PyWorker {
    #[new]
    fn new(config_json: &str, dim: usize) -> PyResult<Self> {
        Ok(Self {
            inner: Worker::try_new(&config(config_json)?, dim).map_err(round_error)?,
        })
    }

    /// The parameter count.
    #[getter]
    fn dim(&self) -> usize {
        self.inner.dim()
    }

    /// Steps taken.
    #[getter]
    fn t(&self) -> u64 {
        self.inner.state().t
    }

    /// What the worker sends for `gradient` at `params` (float32 vectors): a list of
    /// `messages` float32 vectors. `gradient` is not modified.
    fn message<'py>(
        &mut self,
        py: Python<'py>,
        params: PyReadonlyArray1<'py, f32>,
        gradient: PyReadonlyArray1<'py, f32>,
    ) -> PyResult<Vec<Bound<'py, PyArray1<f32>>>> {
        send(py, &mut self.inner, params, gradient)
    }

    /// [`message`](Self::message) without copies: `gradient` (a contiguous float32 vector,
    /// overwritten with the gradient after the gradient policy) and `out` (one contiguous,
    /// writeable float32 vector of `dim` values per message, e.g. the rows of the server's
    /// message arrays) are written in place. The same bits as `message`; a wrong shape is a
    /// `ValueError` and changes nothing.
    fn message_into(
        &mut self,
        py: Python<'_>,
        params: PyReadonlyArray1<'_, f32>,
        mut gradient: PyReadwriteArray1<'_, f32>,
        mut out: Vec<PyReadwriteArray1<'_, f32>>,
    ) -> PyResult<()> {
        let params = vector(&params);
        let g = gradient
            .as_slice_mut()
            .map_err(|_| error("gradient must be a contiguous float32 array"))?;
        let mut rows = Vec::with_capacity(out.len());
        for o in out.iter_mut() {
            rows.push(
                o.as_slice_mut()
                    .map_err(|_| error("each output must be a contiguous float32 array"))?,
            );
        }
        let w = &mut self.inner;
        py.detach(|| w.message(&params, g, &mut rows))
            .map_err(round_error)
    }

    /// The optimizer state, as bytes.
    fn checkpoint<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyBytes>> {
        Ok(PyBytes::new(py, &self.inner.checkpoint().map_err(error)?))
    }

    /// Continues from `checkpoint()`'s bytes.
    fn restore(&mut self, bytes: &[u8]) -> PyResult<()> {
        self.inner.restore(bytes).map_err(error)
    }
}

/// The built-in engine for a run config: its data (as `byzadam run` gets it), its workers
/// and its evaluation.
#[pyclass(module = "byzadam._core", name = "Engine")]
pub(crate) struct PyEngine {
    config: RunConfig,
    data: Arc<byzadam_data::Split>,
    evaluator: Evaluator,
    fallback: Option<String>,
}

#[pymethods]
impl PyEngine {
    #[new]
    #[pyo3(signature = (config_json, data_dir = None, quickstart = false))]
    fn new(
        py: Python<'_>,
        config_json: &str,
        data_dir: Option<PathBuf>,
        quickstart: bool,
    ) -> PyResult<Self> {
        let mut cfg = config(config_json)?;
        let loaded = crate::sim::load_run_data(py, &cfg, data_dir, quickstart)?;
        cfg.dataset = loaded.kind;
        let evaluator = Evaluator::new(&cfg, &loaded.split).map_err(error)?;
        Ok(Self {
            config: cfg,
            data: Arc::new(loaded.split),
            evaluator,
            fallback: loaded.fallback,
        })
    }

    /// The config as run (JSON; `dataset` is `synthetic` after a fallback).
    #[getter]
    fn config(&self) -> PyResult<String> {
        serde_json::to_string(&self.config).map_err(error)
    }

    /// Why synthetic digits stand in for the dataset (the quickstart only), or `None`.
    #[getter]
    fn fallback(&self) -> Option<String> {
        self.fallback.clone()
    }

    /// Every worker, in worker order.
    fn workers(&self, py: Python<'_>) -> PyResult<Vec<PyEngineWorker>> {
        let (cfg, data) = (&self.config, self.data.clone());
        let all = py.detach(|| EngineWorker::all(cfg, data)).map_err(error)?;
        Ok(all
            .into_iter()
            .map(|inner| PyEngineWorker { inner })
            .collect())
    }

    /// `(accuracy, loss)` of `params` during round `round`, with batch-norm statistics the
    /// mean of the honest `workers`' (all of them, in order); with `recall=True` also each
    /// class's recall: `(accuracy, loss, [recall per class])`.
    #[pyo3(signature = (params, workers, round, recall = false))]
    fn evaluate<'py>(
        &mut self,
        py: Python<'py>,
        params: PyReadonlyArray1<'py, f32>,
        workers: Vec<PyRef<'py, PyEngineWorker>>,
        round: u64,
        recall: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        let state = honest_mean_state(workers.iter().map(|w| &w.inner));
        self.evaluate_with(py, params, state, round, recall)
    }

    /// `evaluate` with the honest workers' batch-norm states given (`states`, in worker
    /// order, each `EngineWorker.bn_state`'s length) instead of the workers: their mean is
    /// computed as `evaluate` computes it.
    #[pyo3(signature = (params, states, round, recall = false))]
    fn evaluate_states<'py>(
        &mut self,
        py: Python<'py>,
        params: PyReadonlyArray1<'py, f32>,
        states: Vec<PyReadonlyArray1<'py, f32>>,
        round: u64,
        recall: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        let states: Vec<_> = states.iter().map(vector).collect();
        let len = self.evaluator.state_len();
        if let Some(s) = states.iter().find(|s| s.len() != len) {
            return Err(error(format!(
                "each batch-norm state must hold {len} values, got {}",
                s.len()
            )));
        }
        let refs: Vec<&[f32]> = states.iter().map(|s| &s[..]).collect();
        let state = mean_state(&refs, len);
        self.evaluate_with(py, params, state, round, recall)
    }
}

impl PyEngine {
    fn evaluate_with<'py>(
        &mut self,
        py: Python<'py>,
        params: PyReadonlyArray1<'py, f32>,
        state: Vec<f32>,
        round: u64,
        recall: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        let params = vector(&params);
        let ev = &mut self.evaluator;
        if recall {
            let (e, r) = py
                .detach(|| ev.evaluate_with_recall(&params, &state, round))
                .map_err(round_error)?;
            Ok((e.accuracy, e.loss, r).into_pyobject(py)?.into_any())
        } else {
            let e = py
                .detach(|| ev.evaluate(&params, &state, round))
                .map_err(round_error)?;
            Ok((e.accuracy, e.loss).into_pyobject(py)?.into_any())
        }
    }
}

/// A worker on the built-in engine: its shard's sampler, its network and streams, and the
/// worker half.
#[pyclass(module = "byzadam._core", name = "EngineWorker")]
pub(crate) struct PyEngineWorker {
    inner: EngineWorker,
}

#[pymethods]
impl PyEngineWorker {
    /// The worker's index.
    #[getter]
    fn index(&self) -> usize {
        self.inner.index()
    }

    /// Whether it is Byzantine (it then trains on flipped labels under label flip).
    #[getter]
    fn byzantine(&self) -> bool {
        self.inner.is_byzantine()
    }

    /// Its batch-norm running statistics (empty for a model without batch norm).
    #[getter]
    fn bn_state<'py>(&self, py: Python<'py>) -> Bound<'py, PyArray1<f32>> {
        PyArray1::from_slice(py, self.inner.bn_state())
    }

    /// `(loss, gradient)` at `params` on its next batch.
    fn gradient<'py>(
        &mut self,
        py: Python<'py>,
        params: PyReadonlyArray1<'py, f32>,
    ) -> PyResult<(f32, Bound<'py, PyArray1<f32>>)> {
        let params = vector(&params);
        let w = &mut self.inner;
        let loss = py.detach(|| w.gradient(&params)).map_err(round_error)?;
        Ok((loss, PyArray1::from_slice(py, self.inner.last_gradient())))
    }

    /// What it sends for `gradient` at `params` (its optimizer state advances).
    fn message<'py>(
        &mut self,
        py: Python<'py>,
        params: PyReadonlyArray1<'py, f32>,
        gradient: PyReadonlyArray1<'py, f32>,
    ) -> PyResult<Vec<Bound<'py, PyArray1<f32>>>> {
        send(py, self.inner.half_mut(), params, gradient)
    }

    /// `gradient` then `message`: `(loss, [message, ...])`.
    fn step<'py>(
        &mut self,
        py: Python<'py>,
        params: PyReadonlyArray1<'py, f32>,
    ) -> PyResult<(f32, Vec<Bound<'py, PyArray1<f32>>>)> {
        let params = vector(&params);
        let mut out = vec![vec![0.0f32; self.inner.dim()]; self.inner.half().messages()];
        let w = &mut self.inner;
        let loss = py
            .detach(|| w.step(&params, &mut out))
            .map_err(round_error)?;
        Ok((loss, messages_out(py, &out)))
    }

    /// [`step`](Self::step) without copies: the messages are written into `out` (one
    /// contiguous, writeable float32 vector of `dim` values per message, e.g. the rows of
    /// the server's message arrays); returns the loss. The same bits as `step`; a wrong
    /// count, length or layout is a `ValueError` raised before the worker draws its batch
    /// (the layout here, the rest by `EngineWorker::step`), and changes nothing.
    fn step_into(
        &mut self,
        py: Python<'_>,
        params: PyReadonlyArray1<'_, f32>,
        mut out: Vec<PyReadwriteArray1<'_, f32>>,
    ) -> PyResult<f32> {
        let mut rows = Vec::with_capacity(out.len());
        for o in out.iter_mut() {
            rows.push(
                o.as_slice_mut()
                    .map_err(|_| error("each output must be a contiguous float32 array"))?,
            );
        }
        let params = vector(&params);
        let w = &mut self.inner;
        py.detach(|| w.step(&params, &mut rows))
            .map_err(round_error)
    }

    /// The state carried to the next round, as bytes.
    fn checkpoint<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyBytes>> {
        let b = self.inner.checkpoint().to_bytes().map_err(error)?;
        Ok(PyBytes::new(py, &b))
    }

    /// Continues from `checkpoint()`'s bytes (the same worker of a run of the same config).
    fn restore(&mut self, bytes: &[u8]) -> PyResult<()> {
        let c = WorkerCheckpoint::from_bytes(bytes).map_err(error)?;
        self.inner.restore(c).map_err(error)
    }
}
