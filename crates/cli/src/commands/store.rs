//! `byzadam store`: list, merge and export results stores.

use anyhow::{bail, Result};
use byzadam_experiment::store::Store;
use std::io::Write;
use std::path::{Path, PathBuf};

/// The `store` subcommands.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum StoreCommand {
    /// The grids in STORE, how many of their runs are done, and the results versions of its
    /// runs.
    List {
        /// The store.
        store: PathBuf,
    },
    /// Copy the runs of other stores (for example the shards of a grid run on several
    /// machines) into OUTPUT, creating it if need be; runs already there are kept.
    Merge {
        /// The store to merge into.
        output: PathBuf,
        /// The stores to merge from.
        #[arg(required = true)]
        inputs: Vec<PathBuf>,
    },
    /// Write the tidy per-round table (one row per run and round, with the run's optimizer,
    /// aggregator, attack, seeds…) as CSV.
    Export {
        /// The store.
        store: PathBuf,
        /// The CSV file to write.
        #[arg(long)]
        csv: PathBuf,
    },
}

/// Runs a `store` subcommand.
pub fn run(command: &StoreCommand, w: &mut dyn Write) -> Result<()> {
    match command {
        StoreCommand::List { store } => list(store, w),
        StoreCommand::Merge { output, inputs } => merge(output, inputs, w),
        StoreCommand::Export { store, csv } => export(store, csv, w),
    }
}

/// `byzadam store merge`: copies the runs of `inputs` into `output`.
pub fn merge(output: &Path, inputs: &[PathBuf], w: &mut dyn Write) -> Result<()> {
    if inputs.is_empty() {
        bail!("name at least one store to merge into {}", output.display());
    }
    for i in inputs {
        if !i.exists() {
            bail!("{}: no such store", i.display());
        }
    }
    let mut store = Store::open(output)?;
    let (added, present) = store.merge(inputs)?;
    writeln!(
        w,
        "{added} runs added to {}, {present} already there",
        output.display()
    )?;
    Ok(())
}

/// `byzadam store export`: the tidy per-round table as CSV.
pub fn export(store: &Path, csv: &Path, w: &mut dyn Write) -> Result<()> {
    let store = open_existing(store)?;
    let mut buf = Vec::new();
    let rows = store.export_csv(&mut buf)?;
    crate::matrix_io::write_atomically(csv, &buf)?;
    writeln!(w, "{rows} rows written to {}", csv.display())?;
    Ok(())
}

/// `byzadam store list`: the grids and how far each is.
pub fn list(store: &Path, w: &mut dyn Write) -> Result<()> {
    let store = open_existing(store)?;
    let runs = store.runs(None)?;
    writeln!(
        w,
        "{}: {} finished runs",
        store.path().display(),
        runs.len()
    )?;
    for (g, total, done) in store.grids()? {
        writeln!(w, "  grid {g}: {done}/{total} runs done")?;
    }
    for (v, n) in store.results_versions()? {
        writeln!(w, "  results version {v}: {n} runs")?;
    }
    if let Some(warning) = store.mixed_versions_warning()? {
        writeln!(w, "warning: {warning}")?;
    }
    Ok(())
}

/// Opens a store that must exist for reading: reading never creates one, never writes to
/// one, and refuses a file that is not a byzadam store (leaving it untouched).
pub fn open_existing(path: &Path) -> Result<Store> {
    Ok(Store::open_read_only(path)?)
}
