//! The optimizers' two halves on flat vectors: what a worker sends, how the server steps.

use crate::arrays::{message_buffers, vector};
use crate::error;
use byzadam_optim::{Optimizer, WorkerState};
use byzadam_robust::limits::{at_most, MAX_DIMENSION, MAX_VALUES};
use numpy::{PyArray1, PyReadonlyArray1, PyReadwriteArray1};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyOptimizer>()?;
    m.add_class::<PyWorkerState>()?;
    Ok(())
}

/// One of SGD, RESAM, DRA and MRA with its hyperparameters (the JSON form of a run config's
/// `optimizer` table), exactly the code the simulator runs.
#[pyclass(module = "byzadam._core", name = "Optimizer")]
pub(crate) struct PyOptimizer {
    inner: Optimizer,
}

/// A worker's optimizer state: its moments and step count.
#[derive(Clone)]
#[pyclass(module = "byzadam._core", name = "WorkerState")]
pub(crate) struct PyWorkerState {
    inner: WorkerState,
    dim: usize,
    messages: Vec<Vec<f32>>,
}

#[pymethods]
impl PyOptimizer {
    #[new]
    fn new(config: &str) -> PyResult<Self> {
        let inner: Optimizer = serde_json::from_str(config)
            .map_err(|e| PyValueError::new_err(format!("optimizer: {e}")))?;
        inner
            .check()
            .map_err(|(key, why)| error(format!("optimizer {}: {key} {why}", inner.name())))?;
        Ok(Self { inner })
    }

    /// Vectors each worker sends per round: 2 for MRA, else 1.
    #[getter]
    fn messages(&self) -> usize {
        self.inner.messages()
    }

    /// `sgd`, `resam`, `dra` or `mra`.
    #[getter]
    fn name(&self) -> &'static str {
        self.inner.name()
    }

    /// The config as JSON, defaults filled in.
    #[getter]
    fn config(&self) -> PyResult<String> {
        serde_json::to_string(&self.inner).map_err(error)
    }

    /// The learning rate at round `t ≥ 1`.
    fn lr(&self, t: u64) -> PyResult<f32> {
        if t == 0 {
            return Err(error("rounds count from 1"));
        }
        Ok(self.inner.lr().at(t))
    }

    /// A fresh worker state for parameters of dimension `dim`.
    fn worker_state(&self, dim: usize) -> PyResult<PyWorkerState> {
        if dim == 0 {
            return Err(error("dim must be at least 1"));
        }
        // Checked before allocating: `SGD().worker(10**12)` is an error, not an abort.
        let values = dim as u128 * (1 + self.inner.messages() as u128);
        at_most("dim", dim as u128, MAX_DIMENSION).map_err(error)?;
        at_most("the worker state's values", values, MAX_VALUES).map_err(error)?;
        let out_of_memory = |_| {
            error(format!(
                "dim = {dim}: not enough memory for the worker's state ({values} float32 values)"
            ))
        };
        let inner = self.inner.try_worker_state(dim).map_err(out_of_memory)?;
        let messages = message_buffers(self.inner.messages(), dim)?;
        Ok(PyWorkerState {
            inner,
            dim,
            messages,
        })
    }

    /// Updates `state` with the gradient `g` and returns what the worker sends (a list of
    /// `messages` float32 vectors).
    fn worker_message<'py>(
        &self,
        py: Python<'py>,
        mut state: PyRefMut<'py, PyWorkerState>,
        g: PyReadonlyArray1<'py, f32>,
    ) -> PyResult<Vec<Bound<'py, PyArray1<f32>>>> {
        let g = vector(&g);
        if g.len() != state.dim {
            return Err(error(format!(
                "the gradient has {} values, the state was made for dim = {}",
                g.len(),
                state.dim
            )));
        }
        if state.messages.len() != self.inner.messages() {
            return Err(error("this state was made by another optimizer"));
        }
        let st = &mut *state;
        let opt = &self.inner;
        py.detach(|| opt.worker_message(&mut st.inner, &g, &mut st.messages));
        Ok(st
            .messages
            .iter()
            .map(|m| PyArray1::from_slice(py, m))
            .collect())
    }

    /// The server's step at round `t ≥ 1`: updates `params` (a float32 array, in place) with
    /// the aggregated messages (one vector per message, in the worker's order).
    fn server_step(
        &self,
        py: Python<'_>,
        t: u64,
        mut params: PyReadwriteArray1<'_, f32>,
        aggregated: Vec<PyReadonlyArray1<'_, f32>>,
    ) -> PyResult<()> {
        if t == 0 {
            return Err(error("rounds count from 1"));
        }
        if aggregated.len() != self.inner.messages() {
            return Err(error(format!(
                "{} takes {} aggregated vector(s) per round, got {}",
                self.inner.name(),
                self.inner.messages(),
                aggregated.len()
            )));
        }
        let p = params
            .as_slice_mut()
            .map_err(|_| error("params must be a contiguous float32 array"))?;
        let aggs: Vec<_> = aggregated.iter().map(vector).collect();
        if let Some(a) = aggs.iter().find(|a| a.len() != p.len()) {
            return Err(error(format!(
                "an aggregated vector has {} values, params has {}",
                a.len(),
                p.len()
            )));
        }
        let slices: Vec<&[f32]> = aggs.iter().map(|a| &a[..]).collect();
        let opt = &self.inner;
        py.detach(|| opt.server_step(t, p, &slices));
        Ok(())
    }
}

#[pymethods]
impl PyWorkerState {
    /// The first moment (RESAM's momentum, Adam's `m`); empty for SGD.
    #[getter]
    fn m<'py>(&self, py: Python<'py>) -> Bound<'py, PyArray1<f32>> {
        PyArray1::from_slice(py, &self.inner.m)
    }

    /// The second moment (Adam's `v`); empty unless DRA or MRA.
    #[getter]
    fn v<'py>(&self, py: Python<'py>) -> Bound<'py, PyArray1<f32>> {
        PyArray1::from_slice(py, &self.inner.v)
    }

    /// An independent copy of the state (`copy.copy`).
    fn copy(&self) -> Self {
        self.clone()
    }

    /// Steps taken.
    #[getter]
    fn t(&self) -> u64 {
        self.inner.t
    }

    /// The dimension.
    #[getter]
    fn dim(&self) -> usize {
        self.dim
    }
}
