//! `byzadam run`: one training run from a TOML config (or the quickstart), with a progress
//! bar, a results directory written as the run goes, and a final summary.

use super::data;
use crate::options::{DataDir, Progress, Threads};
use crate::{matrix_io::write_atomically, plot};
use anyhow::{anyhow, bail, Context, Result};
use byzadam_data::{synthetic, DatasetKind};
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

/// Applies `key.path=value` to a TOML table (the value parsed as TOML, else taken as text).
pub fn apply_set(table: &mut toml::Table, spec: &str) -> Result<()> {
    let (key, value) = spec
        .split_once('=')
        .ok_or_else(|| anyhow!("--set {spec:?}: expected KEY=VALUE"))?;
    let value = crate::spec::toml_value(value);
    let parts: Vec<&str> = key.trim().split('.').collect();
    let mut cur = table;
    for (i, part) in parts.iter().enumerate() {
        if part.is_empty() {
            bail!("--set {spec:?}: empty key segment");
        }
        if i + 1 == parts.len() {
            cur.insert(part.to_string(), value);
            break;
        }
        let next = cur
            .entry(part.to_string())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        cur = next
            .as_table_mut()
            .ok_or_else(|| anyhow!("--set {spec:?}: {part} is not a table"))?;
    }
    Ok(())
}

/// Reads and checks the run config: the defaults, each top-level key of the file (if any)
/// replacing the default's whole entry, then the `--set` overrides editing that tree (so
/// `--set aggregator.f=3` changes the default rule's `f`), then validation. Errors name the
/// file and the key.
pub fn resolve(config: Option<&Path>, set: &[String]) -> Result<RunConfig> {
    match config {
        Some(p) => {
            let text =
                std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
            resolve_text(Some(&text), &p.display().to_string(), set)
        }
        None => resolve_text(None, "the quickstart config", set),
    }
}

/// [`resolve`] on a config's text (`None`: the quickstart), errors naming it `name`: what
/// `byzadam.run` in Python reads (a dict, a TOML string or a file, all as TOML text).
pub fn resolve_text(text: Option<&str>, name: &str, set: &[String]) -> Result<RunConfig> {
    let mut table = match toml::Value::try_from(RunConfig::default())? {
        toml::Value::Table(t) => t,
        _ => bail!("the default config is not a table"),
    };
    if let Some(text) = text {
        let file: toml::Table = toml::from_str(text).map_err(|e| anyhow!("{name}: {e}"))?;
        for (k, v) in file {
            table.insert(k, v);
        }
    }
    for s in set {
        apply_set(&mut table, s)?;
    }
    let cfg: RunConfig =
        serde_path_to_error::deserialize(toml::Value::Table(table)).map_err(|e| {
            let path = e.path().to_string();
            let key = if path == "." {
                String::new()
            } else {
                format!(" key `{path}`:")
            };
            anyhow!("{name}:{key} {}", e.into_inner())
        })?;
    cfg.validate()
        .map_err(|e| anyhow!("{name}: key `{}`: {}", e.key, e.reason))?;
    Ok(cfg)
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
    // MNIST cannot be had; a config that names a dataset never falls back.
    let quickstart = args.config.is_none()
        && !args
            .set
            .iter()
            .any(|s| s.trim_start().starts_with("dataset"));
    let mut fallback = None;
    let data = if cfg.dataset == DatasetKind::Synthetic {
        synthetic::generate(cfg.data_seed, 60_000, 10_000)
    } else {
        match data::load(cfg.dataset, &args.data.resolve(), cfg.data_seed) {
            Ok(d) => d,
            Err(e) if quickstart => {
                let why = format!("{e:#}");
                writeln!(w, "MNIST is not available ({why}); the quickstart runs on byzadam's synthetic digits instead")?;
                fallback = Some(why);
                cfg.dataset = DatasetKind::Synthetic;
                synthetic::generate(cfg.data_seed, 60_000, 10_000)
            }
            Err(e) => return Err(e),
        }
    };
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
