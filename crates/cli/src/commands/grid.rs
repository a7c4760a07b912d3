//! `byzadam grid`: expands a grid file, skips what the store already holds, runs the rest in
//! parallel with checkpoints, one progress display.

use crate::options::{DataDir, Progress, Threads};
use anyhow::{anyhow, bail, Result};
use byzadam_experiment::execute::{self, GridJob, GridObserver};
use byzadam_experiment::runner::Event;
use byzadam_experiment::store::Labels;
use byzadam_experiment::{Grid, Shard};
use byzadam_sim::RunConfig;
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Mutex;
use std::time::Duration;

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
    let stop = crate::options::stop_on_signals("stopping: checkpointing the runs in flight");
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
    execute::default_store(grid)
}

struct Cells {
    best: Option<(f64, String)>,
    worst: Option<(f64, String)>,
    done: usize,
}

/// The command line's view of a grid as it runs: a progress bar over every pending round,
/// the best and worst run so far, and lines for resumed, failed and restarted runs.
struct Display<'a> {
    args: &'a GridArgs,
    bar: indicatif::ProgressBar,
    count: usize,
    cells: Mutex<Cells>,
}

impl Display<'_> {
    fn message(&self, c: &Cells) -> String {
        let cell = |x: &Option<(f64, String)>| {
            x.as_ref()
                .map_or("–".into(), |(a, l)| format!("{a:.4} {l}"))
        };
        format!(
            "runs {}/{} · best {} · worst {}",
            c.done,
            self.count,
            cell(&c.best),
            cell(&c.worst)
        )
    }

    /// Lines from the runner's threads go to stderr (stdout is the caller's, locked), above
    /// the progress bar when there is one.
    fn say(&self, line: String) {
        if self.args.progress.shown() {
            self.bar.println(line);
        } else {
            eprintln!("{line}");
        }
    }
}

impl GridObserver for Display<'_> {
    fn event(&self, e: &Event) {
        match *e {
            Event::Started { run, from_round } => {
                if from_round > 0 {
                    self.say(format!(
                        "run {} ({}) resumes at round {from_round} from its checkpoint",
                        run.id,
                        run_label(&run.config)
                    ));
                }
                self.bar.inc(from_round);
            }
            Event::Round { .. } => self.bar.inc(1),
            Event::Finished { run, summary } => {
                let mut c = self.cells.lock().unwrap_or_else(|p| p.into_inner());
                c.done += 1;
                let a = summary.final_accuracy;
                let label = run_label(&run.config);
                if c.best.as_ref().is_none_or(|(b, _)| a > *b) {
                    c.best = Some((a, label.clone()));
                }
                if c.worst.as_ref().is_none_or(|(b, _)| a < *b) {
                    c.worst = Some((a, label));
                }
                self.bar.set_message(self.message(&c));
            }
            Event::Failed { run, error } => self.say(format!(
                "run {} ({}) failed: {error}",
                run.id,
                run_label(&run.config)
            )),
            Event::CheckpointIgnored { run, reason } => self.say(format!(
                "run {}: checkpoint not used ({reason}); starting it over",
                run.id
            )),
        }
    }
}

/// " (shard i/k: n runs)" when the job is a shard.
fn shard_text(args: &GridArgs, runs: usize) -> String {
    args.shard
        .map(|s| format!(" (shard {}/{}: {runs} runs)", s.index, s.count))
        .unwrap_or_default()
}

/// Runs a grid file; `stop` is set on Ctrl-C.
pub fn grid(args: &GridArgs, stop: &AtomicBool, w: &mut dyn Write) -> Result<()> {
    let job = GridJob {
        file: args.file.clone(),
        store: args.store.clone(),
        shard: args.shard,
        jobs: args.jobs,
        threads: args.threads.threads,
        checkpoint_every: Duration::from_secs(args.checkpoint_every),
        data_dir: args.data.resolve(),
        download_progress: byzadam_data::download::Progress::Bar,
    };
    if args.dry_run {
        // Nothing written: no store created, no grid registered, no checkpoint removed.
        let plan = execute::dry_run(&job).map_err(|e| anyhow!(e))?;
        writeln!(
            w,
            "grid {} ({}): {} runs{}; {} already in {}, {} to run as {} at a time × {} thread{} \
             (dry run: nothing written)",
            plan.name,
            args.file.display(),
            plan.total,
            shard_text(args, plan.finished + plan.pending.len()),
            plan.finished,
            plan.store_path.display(),
            plan.pending.len(),
            plan.options.jobs,
            plan.options.threads,
            if plan.options.threads == 1 { "" } else { "s" }
        )?;
        for r in &plan.pending {
            writeln!(w, "{}  {}", r.id, run_label(&r.config))?;
        }
        return Ok(());
    }
    let plan = execute::prepare_grid(&job).map_err(|e| anyhow!(e))?;
    let shard = shard_text(args, plan.finished + plan.pending.len());
    let o = &plan.options;
    writeln!(
        w,
        "grid {} ({}): {} runs{shard}; {} already in {}, {} to run as {} at a time × {} thread{}",
        plan.name,
        args.file.display(),
        plan.total,
        plan.finished,
        plan.store_path.display(),
        plan.pending.len(),
        o.jobs,
        o.threads,
        if o.threads == 1 { "" } else { "s" }
    )?;
    if plan.removed > 0 {
        writeln!(
            w,
            "removed {} stale checkpoint file(s) of stored runs",
            plan.removed
        )?;
    }
    if plan.pending.is_empty() {
        writeln!(w, "nothing to do: every run is in the store")?;
        return Ok(());
    }
    let bar = if args.progress.shown() {
        indicatif::ProgressBar::new(plan.total_rounds())
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
    let display = Display {
        args,
        bar,
        count: plan.pending.len(),
        cells: Mutex::new(Cells {
            best: None,
            worst: None,
            done: 0,
        }),
    };
    display
        .bar
        .set_message(display.message(&display.cells.lock().unwrap_or_else(|p| p.into_inner())));
    let report = plan.run(stop, &display);
    display.bar.finish_and_clear();
    let report = report.map_err(|e| anyhow!(e))?;
    let (outcome, secs) = (&report.outcome, report.seconds);
    writeln!(
        w,
        "{} runs finished in {:.1} min ({:.0} runs/hour; data loaded in {:.1} s); store: {}",
        outcome.finished,
        secs / 60.0,
        outcome.finished as f64 / secs * 3600.0,
        report.load_seconds,
        report.store.display()
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
    let c = display
        .cells
        .into_inner()
        .unwrap_or_else(|p| p.into_inner());
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
        bail!("{} of {} runs failed", outcome.failed.len(), report.pending);
    }
    if outcome.stopped > 0 {
        return Err(anyhow!("interrupted"));
    }
    writeln!(w, "next: byzadam report {}", report.store.display())?;
    Ok(())
}
