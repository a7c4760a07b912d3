//! The data side of the simulator: dataset readers, the partitioner and the epoch sampler,
//! drawing from the same seed streams as a run, so a Python loop can match it sample for
//! sample.

use crate::error;
use byzadam_data::partition::{partition, Scheme};
use byzadam_data::sampler::EpochSampler;
use byzadam_data::{synthetic, Dataset, DatasetKind};
use byzadam_sim::seeds::{self, Stream};
use numpy::{PyArray1, PyArrayMethods, PyReadonlyArray1};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyDict;
use std::path::PathBuf;

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(partition_shards, m)?)?;
    m.add_function(wrap_pyfunction!(load_dataset, m)?)?;
    m.add_class::<PySampler>()?;
    Ok(())
}

/// Each worker's sample indices (ascending uint32 arrays) for `labels`, a scheme (JSON of a
/// run config's `partition` table) and a data seed: the split a run with that `data_seed`
/// trains on (`byzadam data partition --seed`).
#[pyfunction]
fn partition_shards<'py>(
    py: Python<'py>,
    labels: PyReadonlyArray1<'py, u8>,
    classes: usize,
    workers: usize,
    scheme: &str,
    data_seed: u64,
) -> PyResult<Vec<Bound<'py, PyArray1<u32>>>> {
    let scheme: Scheme = serde_json::from_str(scheme)
        .map_err(|e| PyValueError::new_err(format!("partition scheme: {e}")))?;
    scheme
        .check()
        .map_err(|(key, why)| error(format!("partition scheme {}: {key} {why}", scheme.name())))?;
    let labels = crate::arrays::bytes(&labels);
    let p = py
        .detach(|| {
            partition(
                &labels,
                classes,
                workers,
                &scheme,
                &mut seeds::rng(data_seed, Stream::Partition),
            )
        })
        .map_err(error)?;
    Ok(p.shards
        .into_iter()
        .map(|s| PyArray1::from_vec(py, s))
        .collect())
}

/// A dataset's training and test images (uint8, `N × C × H × W`) and labels (uint8), read
/// from `data_dir/<folder>` with every file's SHA-256 verified (`synthetic`: generated from
/// `seed`).
#[pyfunction]
#[pyo3(signature = (name, data_dir = None, seed = 0))]
fn load_dataset<'py>(
    py: Python<'py>,
    name: &str,
    data_dir: Option<PathBuf>,
    seed: u64,
) -> PyResult<Bound<'py, PyDict>> {
    let kind: DatasetKind =
        serde_json::from_value(serde_json::Value::from(name)).map_err(|_| {
            error(format!(
                "no dataset {name:?}: mnist, fashion-mnist, cifar10 or synthetic"
            ))
        })?;
    let dir = byzadam_data::data_dir(data_dir.as_deref());
    let split = py
        .detach(|| {
            if kind == DatasetKind::Synthetic {
                Ok(synthetic::generate(seed, 60_000, 10_000))
            } else {
                byzadam_data::load(kind, &dir)
            }
        })
        .map_err(|e| error(format!("{name} from {}: {e}", dir.display())))?;
    let out = PyDict::new(py);
    let put = |prefix: &str, d: Dataset| -> PyResult<()> {
        let shape = [d.len(), d.shape.channels, d.shape.height, d.shape.width];
        out.set_item(
            format!("{prefix}_images"),
            PyArray1::from_vec(py, d.images).reshape(shape)?,
        )?;
        out.set_item(format!("{prefix}_labels"), PyArray1::from_vec(py, d.labels))?;
        Ok(())
    };
    // The normalisation `byzadam run` applies to this dataset: (pixel / 255 − mean) / std.
    let norm = kind.normalization();
    out.set_item("name", kind.folder())?;
    out.set_item("mean", norm.mean)?;
    out.set_item("std", norm.std)?;
    out.set_item("classes", split.train.classes)?;
    out.set_item("data_dir", dir.display().to_string())?;
    put("train", split.train)?;
    put("test", split.test)?;
    Ok(out)
}

/// Worker `worker`'s epoch sampler for a run with seed `seed`: the batches of sample indices
/// that worker trains on, round by round (each epoch a fresh shuffle of its shard).
#[pyclass(module = "byzadam._core", name = "EpochSampler")]
pub(crate) struct PySampler {
    inner: EpochSampler,
}

#[pymethods]
impl PySampler {
    #[new]
    #[pyo3(signature = (shard, batch, seed, worker, shared_first_shuffle = false))]
    fn new(
        shard: PyReadonlyArray1<'_, u32>,
        batch: usize,
        seed: u64,
        worker: usize,
        shared_first_shuffle: bool,
    ) -> PyResult<Self> {
        let shard: Vec<u32> = shard.as_array().iter().copied().collect();
        if shard.is_empty() {
            return Err(error("the shard is empty"));
        }
        if batch == 0 || batch > shard.len() {
            return Err(error(format!(
                "batch must be in 1..={} (the shard's size), got {batch}",
                shard.len()
            )));
        }
        let mut inner =
            EpochSampler::new(shard, batch, seeds::rng(seed, Stream::Sampler { worker }));
        if shared_first_shuffle {
            // The run option `shared_first_shuffle`: every worker's first epoch from the one
            // shared stream, as the simulator's workers draw it.
            inner.start_first_epoch_with(&mut seeds::rng(seed, Stream::SharedFirstEpoch));
        }
        Ok(Self { inner })
    }

    /// The next batch's sample indices.
    fn next_batch<'py>(&mut self, py: Python<'py>) -> Bound<'py, PyArray1<u32>> {
        PyArray1::from_slice(py, self.inner.next_batch())
    }

    /// The next `rounds` batches, one per row (`rounds × batch`).
    fn batches<'py>(
        &mut self,
        py: Python<'py>,
        rounds: usize,
    ) -> PyResult<Bound<'py, numpy::PyArray2<u32>>> {
        let b = self.inner.batch();
        let len = byzadam_robust::limits::at_most(
            "rounds × batch",
            rounds as u128 * b as u128,
            byzadam_robust::limits::MAX_VALUES,
        )
        .map_err(error)?;
        let mut all = Vec::new();
        all.try_reserve_exact(len).map_err(|_| {
            error(format!(
                "rounds = {rounds}: not enough memory for {len} indices"
            ))
        })?;
        for _ in 0..rounds {
            all.extend_from_slice(self.inner.next_batch());
        }
        PyArray1::from_vec(py, all).reshape([rounds, b])
    }

    /// The sampler's state (its order, position and random stream) as bytes.
    fn checkpoint<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, pyo3::types::PyBytes>> {
        let json = serde_json::to_vec(&self.inner).map_err(error)?;
        Ok(pyo3::types::PyBytes::new(py, &json))
    }

    /// Continues from [`checkpoint`](Self::checkpoint)'s bytes, which must come from a
    /// sampler over the same shard with the same batch size (anything else is refused and
    /// nothing changes).
    fn restore(&mut self, state: &[u8]) -> PyResult<()> {
        let restored: EpochSampler = serde_json::from_slice(state)
            .map_err(|e| error(format!("not a sampler's state: {e}")))?;
        if !restored.continues(&self.inner) {
            return Err(error(
                "the state belongs to a sampler over another shard or batch size",
            ));
        }
        self.inner = restored;
        Ok(())
    }

    /// Epochs started so far.
    #[getter]
    fn epoch(&self) -> u64 {
        self.inner.epoch()
    }

    /// Batch size.
    #[getter]
    fn batch(&self) -> usize {
        self.inner.batch()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The sampler built here draws what the simulator's worker draws: same shard, same
    /// stream (the simulator builds it in `Simulation::shared`).
    #[test]
    fn the_sampler_is_the_simulators() {
        let split = synthetic::generate(3, 600, 100);
        let cfg = byzadam_sim::RunConfig::resolve(
            Some("dataset = \"synthetic\"\nworkers = 6\nbyzantine = 2\nbatch = 8\nseed = 11\ndata_seed = 5\naggregator = { name = \"median\" }\n"),
            "test",
            &[],
        )
        .expect("valid");
        let sim = byzadam_sim::Simulation::new(cfg, &split).expect("valid");
        let shards = partition(
            &split.train.labels,
            10,
            6,
            &sim.config().partition,
            &mut seeds::rng(5, Stream::Partition),
        )
        .expect("splits");
        for w in 0..6 {
            let mut theirs = sim.sampler(w).expect("worker").clone();
            let mut mine = EpochSampler::new(
                shards.shards[w].clone(),
                8,
                seeds::rng(11, Stream::Sampler { worker: w }),
            );
            for _ in 0..100 {
                assert_eq!(mine.next_batch(), theirs.next_batch());
            }
        }
    }
}
