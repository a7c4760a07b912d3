//! `byzadam grid`: expands a grid file, skips what the store already holds, runs the rest in
//! parallel with checkpoints, one progress display; and `byzadam store` (merge, export, list).

use crate::data_cmd;
use anyhow::{anyhow, bail, Context, Result};
use byzadam_data::{DatasetKind, Split};
use byzadam_experiment::runner::{self, Event, Options};
use byzadam_experiment::store::{Labels, Store};
use byzadam_experiment::{Grid, Run, Shard};
use byzadam_sim::RunConfig;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Arguments of `byzadam grid`.
#[derive(Debug, Clone)]
pub struct GridArgs {
    /// The grid file.
    pub file: PathBuf,
    /// The store (default `results/<grid name>.db`).
    pub store: Option<PathBuf>,
    /// The data directory.
    pub data_dir: PathBuf,
    /// Runs at once (default: one per core).
    pub jobs: Option<usize>,
    /// Threads per run (default: the cores shared among the runs).
    pub threads: Option<usize>,
    /// Only this slice of the grid.
    pub shard: Option<Shard>,
    /// Seconds between checkpoints of a run in flight.
    pub checkpoint_every: u64,
    /// List the runs to do and stop.
    pub dry_run: bool,
    /// Show a progress bar.
    pub progress: bool,
}

/// A short label for a run: optimizer·aggregator·attack (pre-aggregators and seeds when set).
pub fn run_label(config: &RunConfig) -> String {
    let l = Labels::of(config);
    let mut s = format!("{}·", l.optimizer);
    if !l.preaggregators.is_empty() {
        s.push_str(&l.preaggregators);
        s.push('+');
    }
    s.push_str(&format!("{}·{}", l.aggregator, l.attack));
    if config.seed != 0 || config.data_seed != 0 {
        s.push_str(&format!("·s{}/{}", config.seed, config.data_seed));
    }
    s
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

struct Cells {
    best: Option<(f64, String)>,
    worst: Option<(f64, String)>,
    done: usize,
}

/// Runs a grid file; `stop` is set on Ctrl-C.
pub fn grid(args: &GridArgs, stop: &AtomicBool, w: &mut dyn Write) -> Result<()> {
    let file = args.file.display().to_string();
    let text = std::fs::read_to_string(&args.file).with_context(|| format!("reading {file}"))?;
    let grid = Grid::parse(&text, &file)?;
    let all = grid.expand()?;
    let total = all.len();
    let ids: Vec<&str> = all.iter().map(|r| r.id.as_str()).collect();
    let store_path = args.store.clone().unwrap_or_else(|| default_store(&grid));
    let mut store = Store::open(&store_path)?;
    store.register_grid(grid.name(), &ids)?;
    let removed = runner::remove_stale_checkpoints(&store)
        .with_context(|| format!("cleaning {}", store.checkpoint_dir().display()))?;
    let mine = match args.shard {
        Some(s) => s.select(all),
        None => all,
    };
    let done = store.done()?;
    let (finished, pending): (Vec<Run>, Vec<Run>) =
        mine.into_iter().partition(|r| done.contains(&r.id));
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut options = Options::for_cores(cores, pending.len());
    if let Some(j) = args.jobs {
        if j == 0 {
            bail!("--jobs must be at least 1");
        }
        options.jobs = j;
        options.threads = (cores / j).max(1);
    }
    if let Some(t) = args.threads {
        if t == 0 {
            bail!("--threads must be at least 1");
        }
        options.threads = t;
    }
    options.checkpoint_every = Duration::from_secs(args.checkpoint_every);
    let shard = args
        .shard
        .map(|s| {
            format!(
                " (shard {}/{}: {} runs)",
                s.index,
                s.count,
                finished.len() + pending.len()
            )
        })
        .unwrap_or_default();
    writeln!(
        w,
        "grid {} ({file}): {total} runs{shard}; {} already in {}, {} to run as {} at a time × {} thread{}",
        grid.name(),
        finished.len(),
        store_path.display(),
        pending.len(),
        options.jobs,
        options.threads,
        if options.threads == 1 { "" } else { "s" }
    )?;
    if removed > 0 {
        writeln!(
            w,
            "removed {removed} stale checkpoint file(s) of stored runs"
        )?;
    }
    if args.dry_run {
        for r in &pending {
            writeln!(w, "{}  {}", r.id, run_label(&r.config))?;
        }
        return Ok(());
    }
    if pending.is_empty() {
        writeln!(w, "nothing to do: every run is in the store")?;
        return Ok(());
    }
    // Load each dataset the pending runs need, once.
    let mut data: Vec<((DatasetKind, u64), Arc<Split>)> = Vec::new();
    let load_start = Instant::now();
    for r in &pending {
        let key = data_key(&r.config);
        if !data.iter().any(|(k, _)| *k == key) {
            let split = data_cmd::load(key.0, &args.data_dir, key.1)?;
            data.push((key, Arc::new(split)));
        }
    }
    let load_seconds = load_start.elapsed().as_secs_f64();
    let lookup = |c: &RunConfig| -> Result<Arc<Split>, String> {
        let key = data_key(c);
        data.iter()
            .find(|(k, _)| *k == key)
            .map(|(_, d)| d.clone())
            .ok_or_else(|| "dataset not loaded".to_string())
    };
    let total_rounds: u64 = pending.iter().map(|r| r.config.rounds).sum();
    let bar = if args.progress {
        indicatif::ProgressBar::new(total_rounds)
    } else {
        indicatif::ProgressBar::hidden()
    };
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{elapsed_precise} [{bar:30}] {percent:>3}% rounds, ETA {eta} · {msg}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    let cells = Mutex::new(Cells {
        best: None,
        worst: None,
        done: 0,
    });
    let count = pending.len();
    let message = |c: &Cells| {
        let cell = |x: &Option<(f64, String)>| {
            x.as_ref()
                .map_or("–".into(), |(a, l)| format!("{a:.4} {l}"))
        };
        format!(
            "runs {}/{count} · best {} · worst {}",
            c.done,
            cell(&c.best),
            cell(&c.worst)
        )
    };
    bar.set_message(message(&cells.lock().unwrap_or_else(|p| p.into_inner())));
    // Lines from the runner's threads go to stderr (stdout is the caller's, locked), above
    // the progress bar when there is one.
    let say = |line: String| {
        if args.progress {
            bar.println(line);
        } else {
            eprintln!("{line}");
        }
    };
    let on = |e: Event| match e {
        Event::Started { run, from_round } => {
            if from_round > 0 {
                let line = format!(
                    "run {} ({}) resumes at round {from_round} from its checkpoint",
                    run.id,
                    run_label(&run.config)
                );
                say(line);
            }
            bar.inc(from_round)
        }
        Event::Round { .. } => bar.inc(1),
        Event::Finished { run, summary } => {
            let mut c = cells.lock().unwrap_or_else(|p| p.into_inner());
            c.done += 1;
            let a = summary.final_accuracy;
            let label = run_label(&run.config);
            if c.best.as_ref().is_none_or(|(b, _)| a > *b) {
                c.best = Some((a, label.clone()));
            }
            if c.worst.as_ref().is_none_or(|(b, _)| a < *b) {
                c.worst = Some((a, label));
            }
            bar.set_message(message(&c));
        }
        Event::Failed { run, error } => say(format!(
            "run {} ({}) failed: {error}",
            run.id,
            run_label(&run.config)
        )),
        Event::CheckpointIgnored { run, reason } => say(format!(
            "run {}: checkpoint not used ({reason}); starting it over",
            run.id
        )),
    };
    let start = Instant::now();
    let store = Mutex::new(store);
    let outcome = runner::run_all(&pending, &store, &lookup, &options, stop, &on);
    bar.finish_and_clear();
    let secs = start.elapsed().as_secs_f64();
    writeln!(
        w,
        "{} runs finished in {:.1} min ({:.0} runs/hour; data loaded in {load_seconds:.1} s); store: {}",
        outcome.finished,
        secs / 60.0,
        outcome.finished as f64 / secs * 3600.0,
        store_path.display()
    )?;
    if outcome.finished > 0 {
        let n = outcome.finished as f64;
        writeln!(
            w,
            "per run: {:.1} s training, {:.3} s setup, {:.3} s checkpoints, {:.3} s store write: overhead {:.2} %",
            outcome.train_seconds / n,
            outcome.setup_seconds / n,
            outcome.checkpoint_seconds / n,
            outcome.store_seconds / n,
            100.0 * outcome.overhead()
        )?;
    }
    let c = cells.into_inner().unwrap_or_else(|p| p.into_inner());
    if let (Some(b), Some(wst)) = (&c.best, &c.worst) {
        writeln!(
            w,
            "best final accuracy {:.4} ({}), worst {:.4} ({})",
            b.0, b.1, wst.0, wst.1
        )?;
    }
    if outcome.stopped > 0 {
        writeln!(
            w,
            "stopped: {} runs not finished (those in flight are checkpointed); run the same command again to resume",
            outcome.stopped
        )?;
    }
    if !outcome.failed.is_empty() {
        for (id, e) in &outcome.failed {
            writeln!(w, "failed: {id}: {e}")?;
        }
        bail!("{} of {count} runs failed", outcome.failed.len());
    }
    if outcome.stopped > 0 {
        return Err(anyhow!("interrupted"));
    }
    writeln!(w, "next: byzadam report {}", store_path.display())?;
    Ok(())
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

/// Opens a store that must exist (reading never creates one).
pub fn open_existing(path: &Path) -> Result<Store> {
    if !path.is_file() {
        bail!(
            "{}: no such store (byzadam grid writes one)",
            path.display()
        );
    }
    Ok(Store::open(path)?)
}
