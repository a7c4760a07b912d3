//! Rules, pre-aggregators and attacks: `Pipeline`, `PreAggregator`, `Attack`, the registry's
//! names and the distance kernel.

use crate::arrays::matrix;
use crate::error;
use byzadam_robust::limits::matrix as matrix_size;
use byzadam_robust::{
    pairwise_squared_distances, AggregatorConfig, Attack, AttackConfig, AttackContext, Error,
    Pipeline, PreAggregator, PreAggregatorConfig, Submissions, ThreatModel,
};
use numpy::{PyArray1, PyArray2, PyArrayMethods, PyReadonlyArray2};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyDict;
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyPipeline>()?;
    m.add_class::<PyPreAggregator>()?;
    m.add_class::<PyAttack>()?;
    m.add_function(wrap_pyfunction!(registry, m)?)?;
    m.add_function(wrap_pyfunction!(registry_json, m)?)?;
    m.add_function(wrap_pyfunction!(canonical_name, m)?)?;
    m.add_function(wrap_pyfunction!(squared_distances, m)?)?;
    Ok(())
}

/// A config from JSON; the serde message names the key (`unknown field`, `invalid type`).
fn parse<T: serde::de::DeserializeOwned>(json: &str, what: &str) -> PyResult<T> {
    serde_json::from_str(json).map_err(|e| PyValueError::new_err(format!("{what}: {e}")))
}

/// Checks the hyperparameters alone, before any input is seen: the entry's `validate`, which
/// enforces the bounds its registry entry declares (`byzadam rules`), naming the parameter.
/// Requirements on `n` (`n > 2f`) are checked at each call, when `n` is known.
fn validated<T>(cfg: T, validate: impl Fn(&T) -> Result<(), Error>) -> PyResult<T> {
    validate(&cfg).map_err(error)?;
    Ok(cfg)
}

/// Submissions over an array's rows, in place when it is C-contiguous.
fn submissions<'a>(rows: &'a [f32], d: usize) -> PyResult<Submissions<'a>> {
    Submissions::borrowed(rows, d).map_err(error)
}

/// A server pipeline: pre-aggregators in order, then an aggregation rule, with the seeded
/// stream randomised pre-aggregators draw from (`ChaCha20Rng::seed_from_u64(seed)`, as
/// `byzadam aggregate --seed`). Stateful rules (centred clipping) keep their state across
/// calls.
#[pyclass(module = "byzadam._core", name = "Pipeline")]
#[derive(Clone)]
pub(crate) struct PyPipeline {
    pub(crate) inner: Pipeline,
    rng: ChaCha20Rng,
}

#[pymethods]
impl PyPipeline {
    /// An independent copy (`copy.copy`): its state (centred clipping's centre, the random
    /// stream) is copied, never shared with this one.
    fn copy(&self) -> Self {
        self.clone()
    }

    #[new]
    #[pyo3(signature = (aggregator, pre = Vec::new(), seed = 0))]
    fn new(aggregator: &str, pre: Vec<String>, seed: u64) -> PyResult<Self> {
        let rule: AggregatorConfig = parse(aggregator, "aggregator")?;
        let rule = validated(rule, AggregatorConfig::validate)?.build();
        let mut stages: Vec<Box<dyn PreAggregator>> = Vec::new();
        for p in &pre {
            let cfg: PreAggregatorConfig = parse(p, "pre-aggregator")?;
            let stage = validated(cfg, PreAggregatorConfig::validate)?.build();
            stages.push(stage);
        }
        Ok(Self {
            inner: Pipeline::new(stages, rule),
            rng: ChaCha20Rng::seed_from_u64(seed),
        })
    }

    /// Aggregates the rows of an `n × d` float32 array (read in place when C-contiguous) into
    /// a new float32 vector. The GIL is released while the kernels run.
    fn run<'py>(
        &mut self,
        py: Python<'py>,
        x: PyReadonlyArray2<'py, f32>,
    ) -> PyResult<Bound<'py, PyArray1<f32>>> {
        let (rows, d) = matrix(&x)?;
        let s = submissions(&rows, d)?;
        let (inner, rng) = (&mut self.inner, &mut self.rng);
        filled(py, d, |buf| inner.run_into(&s, rng, buf))
    }

    /// Times the kernels alone, inside Rust: `repeats` runs of the pipeline on `x` into one
    /// warm output buffer (state reset before each), as the simulator runs them, each run's
    /// seconds. What `benchmarks/python_vs_byzfl.py` compares the Python call with, to
    /// measure the bindings' overhead in the same process.
    fn time_kernel(
        &mut self,
        py: Python<'_>,
        x: PyReadonlyArray2<'_, f32>,
        repeats: usize,
    ) -> PyResult<Vec<f64>> {
        let (rows, d) = matrix(&x)?;
        let s = submissions(&rows, d)?;
        let (inner, rng) = (&mut self.inner, &mut self.rng);
        py.detach(|| {
            // One untimed run first, so the output buffer's pages are faulted in: warm.
            let mut out = vec![0.0; d];
            inner.reset();
            inner.run_into(&s, rng, &mut out)?;
            (0..repeats)
                .map(|_| {
                    inner.reset();
                    let t = std::time::Instant::now();
                    inner.run_into(&s, rng, &mut out)?;
                    Ok(t.elapsed().as_secs_f64())
                })
                .collect::<Result<Vec<f64>, Error>>()
        })
        .map_err(error)
    }

    /// Checks that the pipeline can take `n` vectors (e.g. `n > 2f`).
    fn check(&self, n: usize) -> PyResult<()> {
        self.inner.check(n).map_err(error)
    }

    /// Forgets the state carried across calls (centred clipping's centre).
    fn reset(&mut self) {
        self.inner.reset();
    }

    /// The rule's canonical name.
    #[getter]
    fn name(&self) -> &'static str {
        self.inner.aggregator().name()
    }
}

/// A new, uninitialised float32 NumPy vector of length `d`, for a kernel to fill.
///
/// Zeroing it first would cost as much as the binding's whole remaining overhead (a memset of
/// the output, page faults on fresh pages). Only [`filled`] uses it (for
/// [`PyPipeline::run`] and [`PyPreAggregator::apply`]), and hands the array to Python only after
/// `Pipeline::run_into` or `PreAggregator::apply_into` succeeded, each of which writes every
/// element; on an error the array is dropped unseen. Any bit pattern is a valid `f32`.
#[allow(unsafe_code)]
fn uninit_vector(py: Python<'_>, d: usize) -> Bound<'_, PyArray1<f32>> {
    // SAFETY: see above; the array is C-contiguous, owned by NumPy, of length `d`.
    unsafe { PyArray1::<f32>::new(py, [d], false) }
}

/// A new float32 NumPy vector of length `len`, filled by `fill` without the GIL: results are
/// written straight into the array Python receives (no copy, no zeroing).
fn filled<'py>(
    py: Python<'py>,
    len: usize,
    fill: impl FnOnce(&mut [f32]) -> Result<(), Error> + Send,
) -> PyResult<Bound<'py, PyArray1<f32>>> {
    let out = uninit_vector(py, len);
    {
        let mut guard = out.readwrite();
        let buf = guard
            .as_slice_mut()
            .map_err(|_| error("output not contiguous (a bug)"))?;
        py.detach(|| fill(buf)).map_err(error)?;
    }
    Ok(out)
}

/// One pre-aggregator on its own: `n` vectors in, `output_len(n)` out.
#[pyclass(module = "byzadam._core", name = "PreAggregator")]
#[derive(Clone)]
pub(crate) struct PyPreAggregator {
    inner: Box<dyn PreAggregator>,
    rng: ChaCha20Rng,
}

#[pymethods]
impl PyPreAggregator {
    /// An independent copy (`copy.copy`): its state (centred clipping's centre, the random
    /// stream) is copied, never shared with this one.
    fn copy(&self) -> Self {
        self.clone()
    }

    #[new]
    #[pyo3(signature = (config, seed = 0))]
    fn new(config: &str, seed: u64) -> PyResult<Self> {
        let cfg: PreAggregatorConfig = parse(config, "pre-aggregator")?;
        let inner = validated(cfg, PreAggregatorConfig::validate)?.build();
        Ok(Self {
            inner,
            rng: ChaCha20Rng::seed_from_u64(seed),
        })
    }

    /// Transforms the rows of an `n × d` float32 array into a new `output_len(n) × d` array.
    fn apply<'py>(
        &mut self,
        py: Python<'py>,
        x: PyReadonlyArray2<'py, f32>,
    ) -> PyResult<Bound<'py, PyArray2<f32>>> {
        let (rows, d) = matrix(&x)?;
        let s = submissions(&rows, d)?;
        let m = self.inner.output_len(s.n()).map_err(error)?;
        let (inner, rng) = (&mut self.inner, &mut self.rng);
        filled(py, m * d, |buf| inner.apply_into(&s, buf, rng))?.reshape([m, d])
    }

    /// Times the kernel alone, inside Rust: `repeats` applications to `x` into one warm output
    /// buffer, each one's seconds.
    fn time_kernel(
        &mut self,
        py: Python<'_>,
        x: PyReadonlyArray2<'_, f32>,
        repeats: usize,
    ) -> PyResult<Vec<f64>> {
        let (rows, d) = matrix(&x)?;
        let s = submissions(&rows, d)?;
        let m = self.inner.output_len(s.n()).map_err(error)?;
        let (inner, rng) = (&mut self.inner, &mut self.rng);
        py.detach(|| {
            // One untimed application first, so the output buffer is warm.
            let mut out = vec![0.0; m * d];
            inner.apply_into(&s, &mut out, rng)?;
            (0..repeats)
                .map(|_| {
                    let t = std::time::Instant::now();
                    inner.apply_into(&s, &mut out, rng)?;
                    Ok(t.elapsed().as_secs_f64())
                })
                .collect::<Result<Vec<f64>, Error>>()
        })
        .map_err(error)
    }

    /// How many vectors come out for `n` in.
    fn output_len(&self, n: usize) -> PyResult<usize> {
        self.inner.output_len(n).map_err(error)
    }

    /// The canonical name.
    #[getter]
    fn name(&self) -> &'static str {
        self.inner.name()
    }
}

fn to_matrix<'py>(py: Python<'py>, s: Submissions<'_>) -> PyResult<Bound<'py, PyArray2<f32>>> {
    let (n, d) = (s.n(), s.dim());
    PyArray1::from_vec(py, s.into_flat()).reshape([n, d])
}

/// One attack: forges the Byzantine workers' vectors from what its threat model sees.
#[pyclass(module = "byzadam._core", name = "Attack")]
#[derive(Clone)]
pub(crate) struct PyAttack {
    inner: Box<dyn Attack>,
    rng: ChaCha20Rng,
}

#[pymethods]
impl PyAttack {
    /// An independent copy (`copy.copy`): its state (centred clipping's centre, the random
    /// stream) is copied, never shared with this one.
    fn copy(&self) -> Self {
        self.clone()
    }

    #[new]
    #[pyo3(signature = (config, seed = 0))]
    fn new(config: &str, seed: u64) -> PyResult<Self> {
        let cfg: AttackConfig = parse(config, "attack")?;
        let inner = validated(cfg, AttackConfig::validate)?.build();
        Ok(Self {
            inner,
            rng: ChaCha20Rng::seed_from_u64(seed),
        })
    }

    /// Forges `byzantine` vectors (a `byzantine × d` float32 array). `honest`: the honest
    /// vectors; `own`: the Byzantine workers' genuine vectors (`byzantine` rows); `server`:
    /// the server's pipeline (adaptive attacks); `n`: all workers (default: honest rows +
    /// `byzantine`); `dim`: the dimension when neither `honest` nor `own` is given.
    #[pyo3(signature = (byzantine, honest = None, own = None, server = None, n = None, dim = None))]
    #[allow(clippy::too_many_arguments)]
    fn forge<'py>(
        &mut self,
        py: Python<'py>,
        byzantine: usize,
        honest: Option<PyReadonlyArray2<'py, f32>>,
        own: Option<PyReadonlyArray2<'py, f32>>,
        server: Option<PyRef<'py, PyPipeline>>,
        n: Option<usize>,
        dim: Option<usize>,
    ) -> PyResult<Bound<'py, PyArray2<f32>>> {
        let name = self.inner.name();
        if byzantine == 0 {
            return Err(error("byzantine must be at least 1"));
        }
        let honest = honest.as_ref().map(matrix).transpose()?;
        let own = own.as_ref().map(matrix).transpose()?;
        let honest = match &honest {
            Some((rows, d)) => Some(submissions(rows, *d)?),
            None => None,
        };
        let own = match &own {
            Some((rows, d)) => Some(submissions(rows, *d)?),
            None => None,
        };
        let d = match (&honest, &own, dim) {
            (Some(h), _, _) => h.dim(),
            (None, Some(o), _) => o.dim(),
            (None, None, Some(d)) if d > 0 => d,
            _ => {
                return Err(error(format!(
                "attack {name}: give the honest vectors, the Byzantine workers' own vectors or dim"
            )))
            }
        };
        if let (Some(h), Some(o)) = (&honest, &own) {
            if h.dim() != o.dim() {
                return Err(error(format!(
                    "the honest vectors have dimension {}, the Byzantine workers' own {}",
                    h.dim(),
                    o.dim()
                )));
            }
        }
        if let Some(o) = &own {
            if o.n() != byzantine {
                return Err(error(format!(
                    "{} own vectors given, but byzantine is {byzantine}",
                    o.n()
                )));
            }
        }
        let model = self.inner.threat_model();
        if own.is_none() && matches!(model, ThreatModel::OwnGenuine | ThreatModel::DataPoisoning) {
            return Err(error(format!(
                "attack {name} starts from the Byzantine workers' own genuine vectors: pass own ({byzantine} rows)"
            )));
        }
        if honest.is_none() && matches!(model, ThreatModel::Omniscient | ThreatModel::Adaptive) {
            return Err(error(format!("attack {name} needs the honest vectors")));
        }
        if server.is_none() && model == ThreatModel::Adaptive {
            return Err(error(format!(
                "attack {name} is adaptive: pass the server's aggregator (and pre-aggregators)"
            )));
        }
        // Checked before forging allocates `byzantine × d` values (10^12 is an error).
        matrix_size("the forged vectors", byzantine as u128, d as u128).map_err(error)?;
        let n = n.unwrap_or(honest.as_ref().map_or(0, |h| h.n()) + byzantine);
        self.inner.check(n, byzantine).map_err(error)?;
        let server: Option<&Pipeline> = server.as_ref().map(|p| &p.inner);
        if let Some(p) = server {
            p.check(n).map_err(|e| {
                error(format!(
                    "the server's pipeline cannot take honest + Byzantine vectors: {e}"
                ))
            })?;
        }
        let ctx = AttackContext {
            n,
            byzantine,
            dim: d,
            own: own.as_ref(),
            honest: honest.as_ref(),
            server,
        };
        let (inner, rng) = (&mut self.inner, &mut self.rng);
        let out = py
            .detach(|| {
                let mut out = Submissions::default();
                inner.forge(&ctx, rng, &mut out).map(|()| out)
            })
            .map_err(error)?;
        to_matrix(py, out)
    }

    /// What the attack must see: `blind`, `own_genuine`, `omniscient`, `adaptive` or
    /// `data_poisoning`.
    #[getter]
    fn threat_model(&self) -> PyResult<String> {
        serde_json::to_value(self.inner.threat_model())
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .ok_or_else(|| error("unnamed threat model"))
    }

    /// The canonical name.
    #[getter]
    fn name(&self) -> &'static str {
        self.inner.name()
    }
}

/// Every name the registries accept: `{"aggregators": [(name, [aliases])], "preaggregators":
/// …, "attacks": …}`.
#[pyfunction]
fn registry(py: Python<'_>) -> PyResult<Bound<'_, PyDict>> {
    let d = PyDict::new(py);
    let list = |names: &[(&str, &[&str])]| -> Vec<(String, Vec<String>)> {
        names
            .iter()
            .map(|(n, a)| (n.to_string(), a.iter().map(|s| s.to_string()).collect()))
            .collect()
    };
    d.set_item("aggregators", list(AggregatorConfig::NAMES))?;
    d.set_item("preaggregators", list(PreAggregatorConfig::NAMES))?;
    d.set_item("attacks", list(AttackConfig::NAMES))?;
    Ok(d)
}

/// The whole registry as JSON (`byzadam rules --json`): every entry's name, aliases,
/// requirement and parameters (name, type, default, bound, doc).
#[pyfunction]
fn registry_json() -> PyResult<String> {
    serde_json::to_string(&byzadam_robust::registry()).map_err(error)
}

/// The canonical name of `name` in registry `kind` (`aggregators`, `preaggregators`,
/// `attacks`), or `None`.
#[pyfunction]
fn canonical_name(kind: &str, name: &str) -> PyResult<Option<&'static str>> {
    match kind {
        "aggregators" => Ok(AggregatorConfig::canonical(name)),
        "preaggregators" => Ok(PreAggregatorConfig::canonical(name)),
        "attacks" => Ok(AttackConfig::canonical(name)),
        _ => Err(error(format!("no registry {kind:?}"))),
    }
}

/// Squared L2 distances between every pair of rows (`n × n` float64; an undefined distance
/// is `+∞`), the kernel under every distance-based rule.
#[pyfunction]
fn squared_distances<'py>(
    py: Python<'py>,
    x: PyReadonlyArray2<'py, f32>,
) -> PyResult<Bound<'py, PyArray2<f64>>> {
    let (rows, d) = matrix(&x)?;
    let s = submissions(&rows, d)?;
    let n = s.n();
    let out = py
        .detach(|| {
            let mut out = vec![0.0; n * n];
            pairwise_squared_distances(&s, &mut out).map(|()| out)
        })
        .map_err(error)?;
    PyArray1::from_vec(py, out).reshape([n, n])
}
