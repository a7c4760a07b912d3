//! `byzadam run`: one training run from a TOML config (or the quickstart), with a progress
//! bar, a results directory written as the run goes, and a final summary.

use crate::options::{DataDir, Progress, Threads};
use crate::{matrix_io::write_atomically, plot};
use anyhow::{anyhow, bail, Context, Result};
use byzadam_data::load_for_run;
use byzadam_sim::{Checkpoint, Recorder, RoundMetrics, RunConfig, Simulation, Summary};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;

/// What `byzadam run` takes.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct RunArgs {
    /// A TOML run config (every key documented in docs/config.md); none runs the quickstart.
    pub config: Option<PathBuf>,
    /// Override a key, KEY=VALUE with a dotted key and a TOML value (repeatable), e.g.
    /// --set aggregator.f=3, --set 'optimizer={name="sgd", lr={name="constant", value=0.75}}',
    /// --set attack=none.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub data: DataDir,
    /// The results directory (default: results/<time>-<optimizer>-<rule>-<attack>).
    #[arg(long, short)]
    pub out: Option<PathBuf>,
    /// Replace the run already in --out (its config, metrics, summary, plots and checkpoint
    /// are deleted first). Without it, a directory holding an unfinished run of the same
    /// config resumes from its checkpoint, and one holding another run is an error. Files
    /// byzadam did not write are never deleted: their presence is always an error.
    #[arg(long)]
    pub overwrite: bool,
    /// Seconds between checkpoints (`checkpoint.bin` in the results directory); Ctrl-C also
    /// checkpoints before stopping. The same command then resumes the run.
    #[arg(long, value_name = "SECONDS", default_value_t = 60)]
    pub checkpoint_every: u64,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub progress: Progress,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub threads: Threads,
}

/// The files `byzadam run` writes into its results directory (and nothing else is there).
const OURS: [&str; 6] = [
    "config.toml",
    "metrics.jsonl",
    "summary.json",
    "accuracy.svg",
    "accuracy.png",
    CHECKPOINT,
];

/// The checkpoint of an unfinished run, deleted when the run completes.
const CHECKPOINT: &str = "checkpoint.bin";

/// One of [`OURS`], or the temporary file [`write_atomically`] writes beside one
/// (`summary.json.<pid>.<k>.tmp`), left by a crash in the middle of a write.
fn ours(name: &str) -> bool {
    OURS.iter().any(|o| {
        name == *o
            || name
                .strip_prefix(o)
                .and_then(|rest| rest.strip_prefix('.'))
                .is_some_and(|rest| rest.ends_with(".tmp"))
    })
}

/// What `--out` already holds.
#[derive(Debug)]
enum Previous {
    /// Nothing (or no directory): start.
    Nothing,
    /// A finished run of this config: its summary.
    Finished(serde_json::Value),
    /// An unfinished run of this config with a checkpoint: resume from it.
    Resumable(Vec<u8>),
    /// A run of this config stopped before its first checkpoint: start again.
    Restart,
}

/// Reads what `out` holds against `config_toml` (this run's resolved config): an error for a
/// directory with files byzadam did not write, and for one holding another config's run.
/// With `overwrite`, byzadam's files are deleted and the answer is [`Previous::Nothing`].
fn previous(out: &Path, config_toml: &str, overwrite: bool) -> Result<Previous> {
    let entries = match std::fs::read_dir(out) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Previous::Nothing),
        Err(e) => {
            if out.exists() && !out.is_dir() {
                bail!("--out {}: not a directory", out.display());
            }
            return Err(e).with_context(|| format!("reading {}", out.display()));
        }
    };
    let mut names = Vec::new();
    for e in entries {
        let e = e.with_context(|| format!("reading {}", out.display()))?;
        names.push(e.file_name().to_string_lossy().into_owned());
    }
    names.sort();
    if let Some(foreign) = names.iter().find(|n| !ours(n)) {
        bail!(
            "--out {} holds {foreign:?}, which byzadam run did not write: give an empty or new \
             directory (nothing there was changed)",
            out.display()
        );
    }
    if names.is_empty() {
        return Ok(Previous::Nothing);
    }
    if overwrite {
        for n in &names {
            let p = out.join(n);
            std::fs::remove_file(&p).with_context(|| format!("deleting {}", p.display()))?;
        }
        return Ok(Previous::Nothing);
    }
    let theirs = match std::fs::read_to_string(out.join("config.toml")) {
        Ok(t) => t,
        Err(_) => bail!(
            "--out {} holds a run's files but no config.toml: pass --overwrite to replace them",
            out.display()
        ),
    };
    if theirs != config_toml {
        bail!(
            "--out {} holds a run of another config{}: choose another --out, or pass \
             --overwrite to replace it",
            out.display(),
            first_difference(&theirs, config_toml)
                .map_or(String::new(), |k| format!(" (they differ at `{k}`)"))
        );
    }
    let summary = out.join("summary.json");
    if summary.is_file() && !out.join(CHECKPOINT).exists() {
        let text = std::fs::read_to_string(&summary)
            .with_context(|| format!("reading {}", summary.display()))?;
        let value = serde_json::from_str(&text)
            .with_context(|| format!("reading {}", summary.display()))?;
        return Ok(Previous::Finished(value));
    }
    match std::fs::read(out.join(CHECKPOINT)) {
        Ok(bytes) => Ok(Previous::Resumable(bytes)),
        Err(_) => Ok(Previous::Restart),
    }
}

/// The first top-level key whose value differs between two configs' TOML.
fn first_difference(a: &str, b: &str) -> Option<String> {
    let (a, b): (toml::Table, toml::Table) = (toml::from_str(a).ok()?, toml::from_str(b).ok()?);
    let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
    keys.sort();
    keys.into_iter().find(|k| a.get(*k) != b.get(*k)).cloned()
}

/// Reads and checks the run config ([`RunConfig::resolve`]): the defaults, each top-level key
/// of the file (if any) replacing the default's whole entry, then the `--set` overrides
/// editing that tree (so `--set aggregator.f=3` changes the default rule's `f`), then
/// validation. Errors name the file and the key.
pub fn resolve(config: Option<&Path>, set: &[String]) -> Result<RunConfig> {
    RunConfig::resolve_file(config, set).map_err(|e| anyhow!(e))
}

struct Files {
    metrics: std::io::BufWriter<std::fs::File>,
    bar: indicatif::ProgressBar,
    accuracy: Vec<(u64, f64)>,
    last: Option<f64>,
}

impl Recorder for Files {
    fn round(&mut self, m: &RoundMetrics) {
        // One line per round, flushed: a crash loses at most the round in flight.
        if let Ok(line) = serde_json::to_string(m) {
            let _ = writeln!(self.metrics, "{line}");
            let _ = self.metrics.flush();
        }
        if let Some(e) = m.eval {
            self.accuracy.push((m.round, e.accuracy));
            self.last = Some(e.accuracy);
        }
        self.bar.set_position(m.round);
        let acc = self.last.map_or("–".to_string(), |a| format!("{:.4}", a));
        self.bar.set_message(format!(
            "test accuracy {acc}{}",
            if m.diverged { " (diverged)" } else { "" }
        ));
    }
}

fn slug(cfg: &RunConfig) -> String {
    let opt = cfg.optimizer.name();
    let attack = cfg.attack.as_ref().map_or("none", |a| a.name());
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    format!("{secs}-{opt}-{}-{attack}", cfg.aggregator.name())
}

/// Runs, writing `config.toml`, `metrics.jsonl`, `summary.json`, `accuracy.svg` and
/// `accuracy.png` into the results directory (and `checkpoint.bin` while it runs), and prints
/// a summary to `w`. A directory holding an unfinished run of the same config resumes it; one
/// holding anything else is refused unless `--overwrite` (see [`RunArgs::overwrite`]).
pub fn run(args: &RunArgs, w: &mut dyn Write) -> Result<()> {
    // Workers run on a pool of --threads threads: the same bits whatever the number.
    args.threads.set_global()?;
    let mut cfg = resolve(args.config.as_deref(), &args.set)?;
    // The quickstart (no config, no dataset override) falls back to synthetic digits when
    // MNIST is missing and cannot be downloaded; a config that names a dataset never falls
    // back, nor does a corrupt file.
    let quickstart = args.config.is_none()
        && !args
            .set
            .iter()
            .any(|s| s.trim_start().starts_with("dataset"));
    // ...and only when no data directory was named (flag or environment): a directory the
    // user named must hold the data.
    let named_dir = args.data.data_dir.is_some()
        || std::env::var_os(byzadam_data::DATA_DIR_ENV).is_some_and(|d| !d.is_empty());
    let loaded = load_for_run(
        cfg.dataset,
        &args.data.resolve(),
        cfg.data_seed,
        quickstart && !named_dir,
        byzadam_data::download::Progress::Bar,
    )
    .map_err(|e| anyhow!(e))?;
    let fallback = loaded.fallback;
    if let Some(why) = &fallback {
        writeln!(w, "MNIST is not available ({why}); the quickstart runs on byzadam's synthetic digits instead")?;
        cfg.dataset = loaded.kind;
    }
    let data = loaded.split;
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| Path::new("results").join(slug(&cfg)));
    let config_toml = toml::to_string(&cfg)?;
    let previous = previous(&out, &config_toml, args.overwrite)?;
    if let Previous::Finished(summary) = &previous {
        writeln!(
            w,
            "{} already holds this run, finished: test accuracy {} (best {}); pass --overwrite \
             to run it again",
            out.display(),
            summary["final_accuracy"],
            summary["best_accuracy"]
        )?;
        return Ok(());
    }
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    write_atomically(&out.join("config.toml"), config_toml.as_bytes())?;
    let mut sim = Simulation::shared(cfg.clone(), std::sync::Arc::new(data))
        .map_err(|e| anyhow!("key `{}`: {}", e.key, e.reason))?;
    let checkpoint_path = out.join(CHECKPOINT);
    let (mut metrics, seconds_before) = match previous {
        Previous::Resumable(bytes) => {
            let c = Checkpoint::from_bytes(&bytes).map_err(|e| {
                anyhow!(
                    "{}: {e}; pass --overwrite to start the run again",
                    checkpoint_path.display()
                )
            })?;
            let seconds = c.seconds;
            let m = sim.restore(c).map_err(|e| {
                anyhow!(
                    "{}: {}; pass --overwrite to start the run again",
                    checkpoint_path.display(),
                    e.reason
                )
            })?;
            (m, seconds)
        }
        _ => (Vec::new(), 0.0),
    };
    let bar = if args.progress.shown() {
        indicatif::ProgressBar::new(cfg.rounds)
    } else {
        indicatif::ProgressBar::hidden()
    };
    bar.set_style(
        indicatif::ProgressStyle::with_template("round {pos}/{len} [{bar:30}] {msg} ETA {eta}")
            .expect("valid template")
            .progress_chars("=> "),
    );
    // metrics.jsonl holds exactly the rounds done: rewritten from the checkpoint on resume
    // (a crash may have left rounds past it), then appended to.
    let metrics_path = out.join("metrics.jsonl");
    let file = std::fs::File::create(&metrics_path)
        .with_context(|| format!("creating {}", metrics_path.display()))?;
    let mut rec = Files {
        metrics: std::io::BufWriter::new(file),
        bar,
        accuracy: Vec::new(),
        last: None,
    };
    for m in &metrics {
        rec.round(m);
    }
    let attack = cfg.attack.as_ref().map_or("no attack".to_string(), |a| {
        format!("{} Byzantine workers sending {}", cfg.byzantine, a.name())
    });
    writeln!(
        w,
        "{} workers, {attack}, on {}: {} rounds, results in {}{}",
        cfg.workers,
        cfg.dataset.folder(),
        cfg.rounds,
        out.display(),
        if metrics.is_empty() {
            String::new()
        } else {
            format!(" (resuming after round {})", metrics.len())
        }
    )?;
    let stop = crate::options::stop_on_signals("stopping: checkpointing the run");
    let every = std::time::Duration::from_secs(args.checkpoint_every);
    let start = std::time::Instant::now();
    let mut last_checkpoint = std::time::Instant::now();
    let save = |sim: &Simulation, metrics: &[RoundMetrics], seconds: f64| -> Result<()> {
        let bytes = sim
            .checkpoint(metrics, seconds)
            .to_bytes()
            .map_err(|e| anyhow!(e))?;
        write_atomically(&checkpoint_path, &bytes)
    };
    while sim.round() < cfg.rounds {
        if stop.load(Ordering::SeqCst) {
            rec.bar.abandon();
            if sim.round() > 0 {
                save(
                    &sim,
                    &metrics,
                    seconds_before + start.elapsed().as_secs_f64(),
                )?;
            }
            bail!(
                "interrupted after round {}: run the same command with --out {} to resume",
                sim.round(),
                out.display()
            );
        }
        let m = sim.step().map_err(|e| anyhow!("{e}"))?;
        rec.round(&m);
        metrics.push(m);
        if last_checkpoint.elapsed() >= every && sim.round() < cfg.rounds {
            save(
                &sim,
                &metrics,
                seconds_before + start.elapsed().as_secs_f64(),
            )?;
            last_checkpoint = std::time::Instant::now();
        }
    }
    rec.bar.finish_and_clear();
    let summary = Summary {
        class_recall: sim.final_class_recall().to_vec(),
        ..Summary::from_metrics(&metrics, seconds_before + start.elapsed().as_secs_f64())
            .ok_or_else(|| anyhow!("the run evaluated nothing"))?
    };
    let mut summary_json = serde_json::to_value(&summary)?;
    summary_json["dataset"] = serde_json::Value::from(cfg.dataset.folder());
    if let Some(why) = &fallback {
        summary_json["synthetic_fallback"] = serde_json::Value::from(why.as_str());
    }
    write_atomically(
        &out.join("summary.json"),
        serde_json::to_string_pretty(&summary_json)?.as_bytes(),
    )?;
    let title = format!(
        "{} · {} · {} · {}",
        cfg.dataset.folder(),
        cfg.optimizer.name(),
        cfg.aggregator.name(),
        cfg.attack.as_ref().map_or("no attack", |a| a.name())
    );
    plot::accuracy(&out.join("accuracy.svg"), &title, &rec.accuracy)?;
    plot::accuracy(&out.join("accuracy.png"), &title, &rec.accuracy)?;
    // Finished: the checkpoint goes last, so a crash before here resumes and rewrites all.
    if checkpoint_path.exists() {
        std::fs::remove_file(&checkpoint_path)
            .with_context(|| format!("deleting {}", checkpoint_path.display()))?;
    }
    writeln!(
        w,
        "done in {:.1} s: test accuracy {:.4} (best {:.4}){}{}",
        summary.seconds,
        summary.final_accuracy,
        summary.best_accuracy,
        summary
            .diverged_at
            .map_or(String::new(), |t| format!(", diverged at round {t}")),
        if fallback.is_some() {
            " — on synthetic digits, MNIST was not available"
        } else {
            ""
        }
    )?;
    Ok(())
}
