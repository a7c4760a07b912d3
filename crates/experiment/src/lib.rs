//! # byzadam-experiment
//!
//! Grids of runs: a base run config plus axes (lists of values for top-level keys) whose
//! Cartesian product, minus explicit exclusions, is the set of runs; each run named by an id
//! derived from its complete, canonical config, so two different configs never share an id and
//! a re-run can tell what is already done. This crate never trains by itself.
//!
//! [`runner`] runs a grid's runs in parallel, checkpointing, into a [`store::Store`] (SQLite).
//!
//! ```
//! let grid = byzadam_experiment::Grid::parse(r#"
//! [base]
//! rounds = 10
//! [axes]
//! seed = [0, 1]
//! aggregator = [{ name = "average" }, { name = "median" }]
//! [[exclude]]
//! seed = 1
//! aggregator = { name = "median" }
//! "#, "example.toml").unwrap();
//! let runs = grid.expand().unwrap();
//! assert_eq!(runs.len(), 3); // 2 × 2 − 1
//! ```

pub mod execute;
pub mod report;
pub mod runner;
pub mod store;

use byzadam_sim::RunConfig;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

/// A grid that cannot be expanded, naming the file and the key.
#[derive(Debug, thiserror::Error)]
#[error("{file}: {message}")]
pub struct GridError {
    /// The grid file.
    pub file: String,
    /// What is wrong.
    pub message: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct GridFile {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    base: toml::Table,
    #[serde(default)]
    axes: BTreeMap<String, Vec<toml::Value>>,
    #[serde(default)]
    exclude: Vec<toml::Table>,
    #[serde(default)]
    include: Vec<toml::Table>,
}

/// The most runs one grid may expand to (each is a training run: a million is weeks of a
/// cluster); past it the grid is refused before any memory is spent on it.
pub const MAX_RUNS: usize = 1_000_000;

/// A parsed grid file.
#[derive(Debug, Clone)]
pub struct Grid {
    file: String,
    name: String,
    description: String,
    base: toml::Table,
    axes: BTreeMap<String, Vec<toml::Value>>,
    exclude: Vec<toml::Table>,
    include: Vec<toml::Table>,
}

/// One run of a grid: its id and its complete config.
#[derive(Debug, Clone, PartialEq)]
pub struct Run {
    /// 16 hex digits of the SHA-256 of the canonical config.
    pub id: String,
    /// The config.
    pub config: RunConfig,
}

/// The id of a config: 16 hex digits of the SHA-256 of its canonical JSON (every field,
/// defaults included, keys sorted) together with [`byzadam_sim::RESULTS_VERSION`], so that a
/// build that computes other numbers for the same config gives its runs other ids: a store
/// filled across such builds never holds two results under one id, and a grid re-run after
/// such a change runs again (issue 13).
pub fn run_id(config: &RunConfig) -> String {
    run_id_of(store::BUILTIN, config)
}

/// The id of `config` run by `backend`: [`run_id`] for [`store::BUILTIN`]; for another
/// backend (`torch:<model>`, whose name says which model and initial parameters) the
/// backend joins the hashed JSON, so its runs never share an id with the built-in engine's
/// or another model's.
///
/// An `init` file counts by its content (the SHA-256 the config pins), not by its path: the
/// same file named from another directory, or moved, keeps its runs' ids.
pub fn run_id_of(backend: &str, config: &RunConfig) -> String {
    let canonical = serde_json::to_value(config)
        .map(|mut v| {
            if let Some(init) = v.get_mut("init").and_then(|i| i.as_object_mut()) {
                init.remove("path");
            }
            let mut key = serde_json::json!({
                "config": v,
                "results_version": byzadam_sim::RESULTS_VERSION,
            });
            if backend != store::BUILTIN {
                key["backend"] = backend.into();
            }
            key.to_string()
        })
        .unwrap_or_default();
    Sha256::digest(canonical.as_bytes())
        .iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect()
}

impl Grid {
    /// Parses a grid from TOML text; `file` names it in errors.
    pub fn parse(text: &str, file: &str) -> Result<Self, GridError> {
        let err = |message: String| GridError {
            file: file.to_string(),
            message,
        };
        let value: toml::Value = toml::from_str(text).map_err(|e| err(e.to_string()))?;
        // No key of a grid takes NaN or ±∞ (run configs are stored as JSON, where they would
        // read back as the default): refused here, naming the key, as in a run config.
        if let Some((key, x)) = byzadam_sim::non_finite("", &value) {
            return Err(err(format!(
                "key `{key}`: must be a finite number, got {x}"
            )));
        }
        let g: GridFile = serde_path_to_error::deserialize(value)
            .map_err(|e| err(format!("key `{}`: {}", e.path(), e.inner())))?;
        for (k, v) in &g.axes {
            if v.is_empty() {
                return Err(err(format!(
                    "key `axes.{k}`: an axis needs at least one value"
                )));
            }
        }
        let name = match g.name {
            Some(n) if n.trim().is_empty() => {
                return Err(err("key `name`: must not be empty".into()))
            }
            // The name becomes the default store's file name (results/<name>.db): a path
            // would write elsewhere (`../../evil`, `/tmp/x`).
            Some(n)
                if n.contains(['/', '\\', '\0'])
                    || n == "."
                    || n == ".."
                    || n.starts_with('.')
                    || n.len() > 200 =>
            {
                return Err(err(format!(
                    "key `name`: must be a plain file name (no `/`, `\\`, leading `.`, at most 200 bytes), got {n:?}"
                )))
            }
            Some(n) => n,
            None => std::path::Path::new(file)
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_else(|| file.to_string()),
        };
        Ok(Self {
            file: file.to_string(),
            name,
            description: g.description.unwrap_or_default(),
            base: g.base,
            axes: g.axes,
            exclude: g.exclude,
            include: g.include,
        })
    }

    /// The grid's name (its `name` key, else the file's stem): runs are filed under it in
    /// the store.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The grid's `description` (empty when none).
    pub fn description(&self) -> &str {
        &self.description
    }

    /// The file it came from.
    pub fn file(&self) -> &str {
        &self.file
    }

    /// Every run: the product of the axes (in the order of the axes' names, then of each
    /// axis's values), minus those matching an exclusion (every key of the exclusion equal),
    /// then each `[[include]]` table in order (the base with that table's keys: single runs
    /// outside the product; a grid with includes and no axes is just its includes).
    /// Each config is checked; errors name the file, the run's axis values and the key.
    pub fn expand(&self) -> Result<Vec<Run>, GridError> {
        let err = |message: String| GridError {
            file: self.file.clone(),
            message,
        };
        for (what, tables) in [("exclusion", &self.exclude), ("include", &self.include)] {
            for (i, ex) in tables.iter().enumerate() {
                if ex.is_empty() {
                    return Err(err(format!("{what} {}: it names no key", i + 1)));
                }
                for k in ex.keys() {
                    if !RunConfig::KEYS.contains(&k.as_str()) {
                        return Err(err(format!(
                            "{what} {}: key `{k}` is not a run config key",
                            i + 1
                        )));
                    }
                }
            }
        }
        let mut used = vec![false; self.exclude.len()];
        let names: Vec<&String> = self.axes.keys().collect();
        let sizes: Vec<usize> = names.iter().map(|n| self.axes[*n].len()).collect();
        let total: usize = if self.axes.is_empty() && !self.include.is_empty() {
            0
        } else {
            // Checked: 64 axes of two values would wrap to 0 runs ("nothing to do").
            sizes
                .iter()
                .try_fold(1usize, |a, &b| a.checked_mul(b))
                .filter(|&t| t <= MAX_RUNS)
                .ok_or_else(|| {
                    err(format!(
                        "its axes multiply to more than {MAX_RUNS} runs ({}): split it into several grids",
                        sizes
                            .iter()
                            .map(|s| s.to_string())
                            .collect::<Vec<_>>()
                            .join(" × ")
                    ))
                })?
        };
        let mut runs = Vec::new();
        let mut seen = BTreeMap::new();
        let mut pinned: BTreeMap<String, String> = BTreeMap::new();
        let points = (0..total).map(|index| {
            let mut rest = index;
            let mut point = toml::Table::new();
            for (name, size) in names.iter().zip(&sizes).rev() {
                point.insert((*name).clone(), self.axes[*name][rest % size].clone());
                rest /= size;
            }
            (point, false)
        });
        for (point, included) in points.chain(self.include.iter().map(|t| (t.clone(), true))) {
            let matching = self.exclude.iter().position(|ex| {
                ex.iter().all(|(k, v)| {
                    point.get(k) == Some(v) || self.base.get(k) == Some(v) && !point.contains_key(k)
                })
            });
            if let (Some(i), false) = (matching, included) {
                used[i] = true;
                continue;
            }
            let mut table = self.base.clone();
            for (k, v) in &point {
                table.insert(k.clone(), v.clone());
            }
            let label = toml::to_string(&point)
                .unwrap_or_default()
                .replace('\n', "; ");
            let mut config: RunConfig = serde_path_to_error::deserialize(toml::Value::Table(table))
                .map_err(|e| err(format!("run [{label}]: key `{}`: {}", e.path(), e.inner())))?;
            let failed = |e: byzadam_sim::ConfigError| {
                err(format!("run [{label}]: key `{}`: {}", e.key, e.reason))
            };
            config.validate().map_err(failed)?;
            // `init` files pinned by their SHA-256 (each file read once per expansion).
            match config.init.as_mut() {
                Some(init) if init.sha256.is_none() => {
                    if let Some(digest) = pinned.get(&init.path) {
                        init.sha256 = Some(digest.clone());
                    } else {
                        config.pin_init().map_err(failed)?;
                        if let Some(i) = &config.init {
                            pinned.insert(i.path.clone(), i.sha256.clone().unwrap_or_default());
                        }
                    }
                }
                Some(_) => config.pin_init().map_err(failed)?,
                None => {}
            }
            let id = run_id(&config);
            if let Some(other) = seen.insert(id.clone(), label.clone()) {
                return Err(err(format!(
                    "runs [{other}] and [{label}] are the same config"
                )));
            }
            runs.push(Run { id, config });
        }
        // An exclusion that excludes nothing is almost always a typo in a value.
        if let Some(i) = used.iter().position(|u| !u) {
            return Err(err(format!(
                "exclusion {} matches no run: its values must equal an axis's values exactly",
                i + 1
            )));
        }
        Ok(runs)
    }
}

/// A deterministic slice of a grid: shard `index` of `count` (from 0), for job arrays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    /// Which slice, from 0.
    pub index: usize,
    /// How many slices.
    pub count: usize,
}

impl std::str::FromStr for Shard {
    type Err = String;

    /// Parses `I/N` with `0 ≤ I < N`.
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("expected I/N with 0 <= I < N (for example 0/4), got `{s}`");
        let (i, n) = s.split_once('/').ok_or_else(bad)?;
        let (index, count) = (
            i.trim().parse::<usize>().map_err(|_| bad())?,
            n.trim().parse::<usize>().map_err(|_| bad())?,
        );
        if count == 0 || index >= count {
            return Err(bad());
        }
        Ok(Self { index, count })
    }
}

impl Shard {
    /// The runs of this shard: every `count`-th run of the grid's order, from the `index`-th,
    /// so that the shards partition the grid and each gets a mix of its settings.
    pub fn select(&self, runs: Vec<Run>) -> Vec<Run> {
        runs.into_iter()
            .enumerate()
            .filter(|(i, _)| i % self.count == self.index)
            .map(|(_, r)| r)
            .collect()
    }
}
