//! `byzadam data`: fetch and check datasets, and show how a partition splits one.

use crate::options::DataDir;
use anyhow::{anyhow, Context, Result};
use byzadam_data::download::{load_or_download, Progress};
use byzadam_data::partition::{partition, Scheme};
use byzadam_data::{synthetic, DatasetKind, Split};
use std::io::Write;
use std::path::{Path, PathBuf};

/// The `data` subcommands.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum DataCommand {
    /// Download DATASET into the data directory if missing (resumable, from the canonical
    /// mirrors), verify every file's SHA-256, and print its sizes and class counts.
    Fetch {
        /// mnist, fashion-mnist, cifar10 (or synthetic, generated).
        dataset: String,
        #[command(flatten)]
        #[allow(missing_docs)]
        data: DataDir,
    },
    /// Split DATASET's training set across workers and print each worker's size and label
    /// histogram: the split a run with `data_seed = SEED` trains on.
    ///
    /// Example: byzadam data partition mnist --workers 15 --scheme dirichlet:alpha=0.1
    Partition {
        /// mnist, fashion-mnist, cifar10 or synthetic.
        dataset: String,
        /// Number of workers.
        #[arg(long, default_value_t = 15)]
        workers: usize,
        /// homogeneous[:per_class=N], iid, dirichlet:alpha=A[,min_samples=M],
        /// gamma_similarity:gamma=G, or extreme.
        #[arg(long, default_value = "homogeneous")]
        scheme: String,
        /// The data seed: of the partition (and of the synthetic data).
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Also draw the per-worker label histogram as a stacked bar chart (.svg or .png).
        #[arg(long, value_name = "FILE")]
        plot: Option<PathBuf>,
        #[command(flatten)]
        #[allow(missing_docs)]
        data: DataDir,
    },
}

/// Runs a `data` subcommand.
pub fn run(command: &DataCommand, w: &mut dyn Write) -> Result<()> {
    match command {
        DataCommand::Fetch { dataset, data } => fetch(dataset, &data.resolve(), w),
        DataCommand::Partition {
            dataset,
            workers,
            scheme,
            seed,
            plot,
            data,
        } => show_partition(
            dataset,
            &data.resolve(),
            *workers,
            scheme,
            *seed,
            plot.as_deref(),
            w,
        ),
    }
}

/// The dataset called `name` (`mnist`, `fashion-mnist`, `cifar10`, `synthetic`).
pub fn kind(name: &str) -> Result<DatasetKind> {
    serde_json::from_value(serde_json::Value::from(name)).map_err(|_| {
        anyhow!("unknown dataset {name:?}: use mnist, fashion-mnist, cifar10 or synthetic")
    })
}

/// Loads `kind` from `dir`, downloading what is missing (synthetic: generated from `seed`).
pub fn load(kind: DatasetKind, dir: &Path, seed: u64) -> Result<Split> {
    if kind == DatasetKind::Synthetic {
        return Ok(synthetic::generate(seed, 60_000, 10_000));
    }
    load_or_download(kind, dir, Progress::Bar)
        .with_context(|| format!("loading {} from {}", kind.folder(), dir.display()))
}

/// Fetches (if needed) and verifies a dataset, then prints its sizes and class counts.
pub fn fetch(name: &str, dir: &Path, w: &mut dyn Write) -> Result<()> {
    let k = kind(name)?;
    let split = load(k, dir, 0)?;
    writeln!(
        w,
        "{name}: {} training and {} test images of {:?}, every file's SHA-256 verified",
        split.train.len(),
        split.test.len(),
        split.train.shape
    )?;
    writeln!(
        w,
        "training images per class: {:?}",
        split.train.class_counts()
    )?;
    writeln!(
        w,
        "test images per class:     {:?}",
        split.test.class_counts()
    )?;
    Ok(())
}

/// A scheme spec `NAME[:KEY=VALUE,...]`, e.g. `dirichlet:alpha=0.1`.
pub fn scheme(spec: &str) -> Result<Scheme> {
    let (name, rest) = spec.split_once(':').unwrap_or((spec, ""));
    let mut map = serde_json::Map::new();
    map.insert("name".into(), name.trim().into());
    for kv in rest.split(',').filter(|s| !s.trim().is_empty()) {
        let (k, v) = crate::spec::parse_setting(kv)?;
        map.insert(k, v);
    }
    serde_json::from_value(serde_json::Value::Object(map)).map_err(|e| {
        anyhow!("partition scheme {spec:?}: {e} (schemes: homogeneous[:per_class=N], iid, dirichlet:alpha=A[,min_samples=M], gamma_similarity:gamma=G, extreme)")
    })
}

/// Prints the per-worker sizes and label histogram of a partition of a training set.
pub fn show_partition(
    name: &str,
    dir: &Path,
    workers: usize,
    spec: &str,
    seed: u64,
    plot: Option<&Path>,
    w: &mut dyn Write,
) -> Result<()> {
    let k = kind(name)?;
    let scheme = scheme(spec)?;
    let split = load(k, dir, seed)?;
    let p = partition(
        &split.train.labels,
        split.train.classes,
        workers,
        &scheme,
        // The stream a run with `data_seed = seed` splits its training set with.
        &mut byzadam_sim::seeds::rng(seed, byzadam_sim::seeds::Stream::Partition),
    )?;
    let used: usize = p.shards.iter().map(Vec::len).sum();
    writeln!(
        w,
        "{name}, {workers} workers, {spec}, seed {seed}: {used} of {} training samples used",
        split.train.len()
    )?;
    write!(w, "{}", p.summary(&split.train.labels, split.train.classes))?;
    if let Some(path) = plot {
        let counts = p.class_counts(&split.train.labels, split.train.classes);
        crate::plot::partition(
            path,
            &format!("{name}: {workers} workers, {spec}, seed {seed}"),
            &counts,
        )?;
        writeln!(w, "plot: {}", path.display())?;
    }
    Ok(())
}
