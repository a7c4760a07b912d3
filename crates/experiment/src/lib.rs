//! # byzadam-experiment
//!
//! Grids of runs: a base run config plus axes (lists of values for top-level keys) whose
//! Cartesian product, minus explicit exclusions, is the set of runs; each run named by an id
//! derived from its complete, canonical config, so two different configs never share an id and
//! a re-run can tell what is already done. This crate never trains by itself.
//!
//! (Groundwork for issue 5: the store, the parallel runner, sharding and reports come next.)
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
    base: toml::Table,
    #[serde(default)]
    axes: BTreeMap<String, Vec<toml::Value>>,
    #[serde(default)]
    exclude: Vec<toml::Table>,
}

/// A parsed grid file.
#[derive(Debug, Clone)]
pub struct Grid {
    file: String,
    base: toml::Table,
    axes: BTreeMap<String, Vec<toml::Value>>,
    exclude: Vec<toml::Table>,
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
/// defaults included, keys sorted).
pub fn run_id(config: &RunConfig) -> String {
    let canonical = serde_json::to_value(config)
        .map(|v| v.to_string())
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
        let g: GridFile = serde_path_to_error::deserialize(value)
            .map_err(|e| err(format!("key `{}`: {}", e.path(), e.inner())))?;
        for (k, v) in &g.axes {
            if v.is_empty() {
                return Err(err(format!(
                    "key `axes.{k}`: an axis needs at least one value"
                )));
            }
        }
        Ok(Self {
            file: file.to_string(),
            base: g.base,
            axes: g.axes,
            exclude: g.exclude,
        })
    }

    /// Every run: the product of the axes (in the order of the axes' names, then of each
    /// axis's values), minus those matching an exclusion (every key of the exclusion equal).
    /// Each config is checked; errors name the file, the run's axis values and the key.
    pub fn expand(&self) -> Result<Vec<Run>, GridError> {
        let err = |message: String| GridError {
            file: self.file.clone(),
            message,
        };
        let names: Vec<&String> = self.axes.keys().collect();
        let sizes: Vec<usize> = names.iter().map(|n| self.axes[*n].len()).collect();
        let total: usize = sizes.iter().product();
        let mut runs = Vec::new();
        let mut seen = BTreeMap::new();
        for index in 0..total {
            let mut rest = index;
            let mut point = toml::Table::new();
            for (name, size) in names.iter().zip(&sizes).rev() {
                point.insert((*name).clone(), self.axes[*name][rest % size].clone());
                rest /= size;
            }
            if self.exclude.iter().any(|ex| {
                ex.iter().all(|(k, v)| {
                    point.get(k) == Some(v) || self.base.get(k) == Some(v) && !point.contains_key(k)
                })
            }) {
                continue;
            }
            let mut table = self.base.clone();
            for (k, v) in &point {
                table.insert(k.clone(), v.clone());
            }
            let label = toml::to_string(&point)
                .unwrap_or_default()
                .replace('\n', "; ");
            let config: RunConfig = serde_path_to_error::deserialize(toml::Value::Table(table))
                .map_err(|e| err(format!("run [{label}]: key `{}`: {}", e.path(), e.inner())))?;
            config
                .validate()
                .map_err(|e| err(format!("run [{label}]: key `{}`: {}", e.key, e.reason)))?;
            let id = run_id(&config);
            if let Some(other) = seen.insert(id.clone(), label.clone()) {
                return Err(err(format!(
                    "runs [{other}] and [{label}] are the same config"
                )));
            }
            runs.push(Run { id, config });
        }
        Ok(runs)
    }
}
