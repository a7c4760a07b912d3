//! `byzadam run`: one training run from a TOML config (or the quickstart), with a progress
//! bar, a results directory written as the run goes, and a final summary.

use crate::options::{DataDir, Progress, Threads};
use crate::{matrix_io::write_atomically, plot};
use anyhow::{anyhow, Context, Result};
use byzadam_data::load_for_run;
use byzadam_sim::{Recorder, RoundMetrics, RunConfig, Simulation};
use std::io::Write;
use std::path::{Path, PathBuf};

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
    #[command(flatten)]
    #[allow(missing_docs)]
    pub progress: Progress,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub threads: Threads,
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

/// Runs, writing `config.toml`, `metrics.jsonl`, `summary.json`, `accuracy.svg` and `accuracy.png` into the
/// results directory, and prints a summary to `w`.
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
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    write_atomically(&out.join("config.toml"), toml::to_string(&cfg)?.as_bytes())?;
    let mut sim = Simulation::shared(cfg.clone(), std::sync::Arc::new(data))
        .map_err(|e| anyhow!("key `{}`: {}", e.key, e.reason))?;
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
    let metrics_path = out.join("metrics.jsonl");
    let metrics = std::fs::File::create(&metrics_path)
        .with_context(|| format!("creating {}", metrics_path.display()))?;
    let mut rec = Files {
        metrics: std::io::BufWriter::new(metrics),
        bar,
        accuracy: Vec::new(),
        last: None,
    };
    let attack = cfg.attack.as_ref().map_or("no attack".to_string(), |a| {
        format!("{} Byzantine workers sending {}", cfg.byzantine, a.name())
    });
    writeln!(
        w,
        "{} workers, {attack}, on {}: {} rounds, results in {}",
        cfg.workers,
        cfg.dataset.folder(),
        cfg.rounds,
        out.display()
    )?;
    let summary = sim.run(&mut rec).map_err(|e| anyhow!("{e}"))?;
    rec.bar.finish_and_clear();
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
