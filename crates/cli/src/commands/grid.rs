//! `byzadam grid`: expands a grid file, skips what the store already holds, runs the rest in
//! parallel with checkpoints, one progress display.

use super::data;
use crate::options::{DataDir, Progress, Threads};
use anyhow::{anyhow, bail, Context, Result};
use byzadam_data::{DatasetKind, Split};
use byzadam_experiment::runner::{self, Event, Options};
use byzadam_experiment::store::{Labels, Store};
use byzadam_experiment::{Grid, Run, Shard};
use byzadam_sim::RunConfig;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What `byzadam grid` takes.
#[derive(Debug, Clone, clap::Args)]
pub struct GridArgs {
    /// The grid file (TOML).
    pub file: PathBuf,
    /// The results store, an SQLite file (default results/<grid name>.db).
    #[arg(long)]
    pub store: Option<PathBuf>,
    /// Run only slice I of N (I from 0 to N−1; every N-th run), e.g. --shard
    /// $SLURM_ARRAY_TASK_ID/8; merge the shards' stores with `byzadam store merge`.
    #[arg(long, value_name = "I/N")]
    pub shard: Option<Shard>,
    /// Runs at once (default: one per core while there are enough runs).
    #[arg(long)]
    pub jobs: Option<usize>,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub threads: Threads,
    /// Seconds between checkpoints of each run in flight (0: after every round).
    #[arg(long, default_value_t = 60)]
    pub checkpoint_every: u64,
    /// List the runs still to do, then stop.
    #[arg(long)]
    pub dry_run: bool,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub data: DataDir,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub progress: Progress,
}

/// Runs the grid; the first Ctrl-C, SIGTERM or SIGHUP checkpoints the runs in flight and
/// stops, a second quits at once.
pub fn run(args: &GridArgs, w: &mut dyn Write) -> Result<()> {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let _ = ctrlc::set_handler(move || {
        if flag.swap(true, Ordering::SeqCst) {
            std::process::exit(130);
        }
        eprintln!("\nstopping: checkpointing the runs in flight (Ctrl-C again to quit at once)");
    });
    grid(args, &stop, w)
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
    grid_observed(args, stop, w, &|_, _| {})
}

/// [`grid`], telling `progress(rounds done, rounds in all)` as the runs go (from the runner's
/// threads): the Python bindings' progress bar.
pub fn grid_observed(
    args: &GridArgs,
    stop: &AtomicBool,
    w: &mut dyn Write,
    progress: &(dyn Fn(u64, u64) + Sync),
) -> Result<()> {
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
    if let Some(t) = args.threads.threads {
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
            let split = data::load(key.0, &args.data.resolve(), key.1)?;
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
    let bar = if args.progress.shown() {
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
        if args.progress.shown() {
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
            bar.inc(from_round);
            progress(bar.position(), total_rounds);
        }
        Event::Round { .. } => {
            bar.inc(1);
            progress(bar.position(), total_rounds);
        }
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
