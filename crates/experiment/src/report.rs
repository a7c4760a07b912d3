//! From stored runs to the thesis's tables: runs grouped into sections (one per setting:
//! everything but optimizer, aggregator, attack and seeds; the backend too, when a run is not
//! the built-in engine's), cells (optimizer × aggregator ×
//! attack) holding the mean and standard deviation over seeds of the final test accuracy and
//! of each evaluation round, and the tables rendered as Markdown, LaTeX and CSV.
//!
//! The best aggregator of a (optimizer, attack) pair is the one with the highest *mean* final
//! accuracy (ties: the first in grid order); per attack column, the best and worst optimizer
//! rows are marked.

use crate::store::StoredRun;
use serde_json::Value;
use std::collections::BTreeMap;
use std::fmt::Write;

/// Mean and sample standard deviation of a set of values.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Stats {
    /// The mean.
    pub mean: f64,
    /// The sample standard deviation (n − 1 in the denominator); 0 for one value.
    pub sd: f64,
    /// How many values.
    pub n: usize,
}

impl Stats {
    /// The statistics of `values` (at least one).
    pub fn of(values: &[f64]) -> Self {
        let n = values.len();
        let mean = values.iter().sum::<f64>() / n as f64;
        let sd = if n > 1 {
            (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1) as f64).sqrt()
        } else {
            0.0
        };
        Self { mean, sd, n }
    }
}

/// The thesis's name for an optimizer.
pub fn optimizer_label(name: &str) -> String {
    name.to_uppercase()
}

/// The thesis's acronym for an aggregation rule (the field's usual one for the others).
pub fn aggregator_label(name: &str) -> String {
    match name {
        "average" => "AVG",
        "trimmed_mean" => "CWTM",
        "mean_around_median" => "MEAMED",
        "median" => "CWM",
        "minimum_diameter_averaging" => "MDA",
        "krum" => "Krum",
        "multi_krum" => "MultiKrum",
        "geometric_median" => "GM",
        "centered_clipping" => "CC",
        "bulyan" => "Bulyan",
        "monna" => "MoNNA",
        "covariance_filter" => "CAF",
        "smallest_eigenvalue_averaging" => "SMEA",
        other => other,
    }
    .to_string()
}

/// The thesis's name for an attack (`none`: "No attack").
pub fn attack_label(name: &str) -> String {
    match name {
        "none" => "No attack",
        "little" => "Little",
        "empire" => "Empire",
        "sign_flip" => "Sign Flip",
        "label_flip" => "Label Flip",
        "positive_infinity" => "Inf",
        "negative_infinity" => "-Inf",
        "a_little_is_enough" => "ALIE",
        "optimal_alie" => "Optimal ALIE",
        "optimal_empire" => "Optimal Empire",
        "gaussian" => "Gaussian",
        "mimic" => "Mimic",
        "nan" => "NaN",
        other => other,
    }
    .to_string()
}

/// One cell: the runs of one (optimizer, aggregator, attack) in a section, over seeds.
#[derive(Debug, Clone, PartialEq)]
pub struct Cell {
    /// Final test accuracy over the seeds.
    pub final_accuracy: Stats,
    /// Test accuracy at each evaluation round, over the seeds: (round, stats).
    pub curve: Vec<(u64, Stats)>,
    /// How many of the seeds' runs diverged (parameters not all finite).
    pub diverged: usize,
    /// The run ids.
    pub runs: Vec<String>,
}

/// Runs that share everything but optimizer, aggregator, attack and seeds.
#[derive(Debug, Clone, PartialEq)]
pub struct Section {
    /// What sets this section apart from the others in the same report (empty when alone).
    pub title: String,
    /// The setting shared by every run (config JSON without the varying keys).
    pub setting: Value,
    /// Optimizer labels, in order of first appearance.
    pub optimizers: Vec<String>,
    /// Aggregator labels, in order of first appearance.
    pub aggregators: Vec<String>,
    /// Attack labels, in order of first appearance ("No attack" first when present).
    pub attacks: Vec<String>,
    /// Cells by (optimizer, aggregator, attack) index.
    pub cells: BTreeMap<(usize, usize, usize), Cell>,
}

const VARYING: [&str; 5] = ["optimizer", "aggregator", "attack", "seed", "data_seed"];

fn index_of(list: &mut Vec<String>, label: String) -> usize {
    match list.iter().position(|l| *l == label) {
        Some(i) => i,
        None => {
            list.push(label);
            list.len() - 1
        }
    }
}

/// Settings, each with its cells (cell key, runs).
/// The `name` of a tagged config value (`{ name = "trimmed_mean", f = 5 }`), or the value
/// itself when it is a bare string (`"none"`); `none` when neither. (Cells are grouped by the
/// configs' JSON, so their labels are read from it.)
fn name_of(value: &Value) -> String {
    value
        .get("name")
        .and_then(|n| n.as_str())
        .or_else(|| value.as_str())
        .unwrap_or("none")
        .to_string()
}

type Grouped<'a> = Vec<(Value, Vec<(Value, Vec<&'a StoredRun>)>)>;

/// Groups `runs` into sections and cells; `curve` gives a run's (round, accuracy) points.
/// Two runs land in the same cell only when their configs differ in nothing but the seeds;
/// two different settings of a labelled axis (an optimizer at two learning rates) get the
/// label and their difference.
pub fn sections(runs: &[StoredRun], curve: &dyn Fn(&str) -> Vec<(u64, f64)>) -> Vec<Section> {
    // setting JSON -> (cell key JSON -> runs)
    let mut settings: Grouped = Vec::new();
    let other_backends = runs.iter().any(|r| r.backend != crate::store::BUILTIN);
    for run in runs {
        let v = serde_json::to_value(&run.config).unwrap_or_default();
        let mut setting = v.clone();
        let mut key = serde_json::Map::new();
        if let Some(obj) = setting.as_object_mut() {
            // Another backend's runs (`byzadam.torch`) are a setting of their own: a torch
            // model's numbers never average with the built-in engine's.
            if other_backends {
                obj.insert("backend".into(), run.backend.clone().into());
            }
            for k in VARYING {
                if let Some(x) = obj.remove(k) {
                    if k != "seed" && k != "data_seed" {
                        key.insert(k.into(), x);
                    }
                }
            }
        }
        let key = Value::Object(key);
        let pos = match settings.iter().position(|(s, _)| *s == setting) {
            Some(p) => p,
            None => {
                settings.push((setting, Vec::new()));
                settings.len() - 1
            }
        };
        let cells = &mut settings[pos].1;
        match cells.iter_mut().find(|(k, _)| *k == key) {
            Some((_, rs)) => rs.push(run),
            None => cells.push((key, vec![run])),
        }
    }
    // Keys whose values differ between sections make the titles.
    let differing: Vec<String> = {
        let mut keys: Vec<String> = Vec::new();
        if settings.len() > 1 {
            for (s, _) in &settings {
                for (k, v) in s.as_object().into_iter().flatten() {
                    if !keys.contains(k) && settings.iter().any(|(o, _)| o.get(k) != Some(v)) {
                        keys.push(k.clone());
                    }
                }
            }
        }
        keys
    };
    settings
        .into_iter()
        .map(|(setting, cells)| {
            let title = differing
                .iter()
                .map(|k| format!("{k} = {}", setting.get(k).unwrap_or(&Value::Null)))
                .collect::<Vec<_>>()
                .join(", ");
            let mut section = Section {
                title,
                setting,
                optimizers: Vec::new(),
                aggregators: Vec::new(),
                attacks: Vec::new(),
                cells: BTreeMap::new(),
            };
            // Labels, disambiguated when two settings of an axis share a name.
            let label = |axis: &str, v: &Value| -> String {
                let base = match axis {
                    "optimizer" => optimizer_label(&name_of(v)),
                    "aggregator" => aggregator_label(&name_of(v)),
                    _ => attack_label(&name_of(v)),
                };
                let clash = cells.iter().any(|(k, _)| {
                    let o = &k[axis];
                    o != v && name_of(o) == name_of(v)
                });
                if clash {
                    format!("{base} {v}")
                } else {
                    base
                }
            };
            // "No attack" first, as in the thesis's figures.
            let mut order: Vec<&(Value, Vec<&StoredRun>)> = cells.iter().collect();
            order.sort_by_key(|(k, _)| name_of(&k["attack"]) != "none");
            for (k, rs) in order {
                let o = index_of(&mut section.optimizers, label("optimizer", &k["optimizer"]));
                let a = index_of(
                    &mut section.aggregators,
                    label("aggregator", &k["aggregator"]),
                );
                let t = index_of(&mut section.attacks, label("attack", &k["attack"]));
                let finals: Vec<f64> = rs.iter().map(|r| r.summary.final_accuracy).collect();
                let curves: Vec<Vec<(u64, f64)>> = rs.iter().map(|r| curve(&r.id)).collect();
                let mut by_round: BTreeMap<u64, Vec<f64>> = BTreeMap::new();
                for c in &curves {
                    for &(round, acc) in c {
                        by_round.entry(round).or_default().push(acc);
                    }
                }
                section.cells.insert(
                    (o, a, t),
                    Cell {
                        final_accuracy: Stats::of(&finals),
                        curve: by_round
                            .into_iter()
                            .map(|(r, v)| (r, Stats::of(&v)))
                            .collect(),
                        diverged: rs
                            .iter()
                            .filter(|r| r.summary.diverged_at.is_some())
                            .count(),
                        runs: rs.iter().map(|r| r.id.clone()).collect(),
                    },
                );
            }
            section
        })
        .collect()
}

/// Output formats of the tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// GitHub-flavoured Markdown (best **bold**, worst _italic_).
    Markdown,
    /// LaTeX `tabular` (best `\textbf`, worst `\underline`).
    Latex,
    /// CSV, one row per cell, with `best` and `worst` columns.
    Csv,
}

fn number(s: &Stats) -> String {
    if s.n > 1 {
        format!("{:.4} ± {:.4}", s.mean, s.sd)
    } else {
        format!("{:.4}", s.mean)
    }
}

fn latex_escape(s: &str) -> String {
    s.replace('\\', "\\textbackslash{}")
        .replace('&', "\\&")
        .replace('%', "\\%")
        .replace('_', "\\_")
        .replace('#', "\\#")
        .replace('±', "$\\pm$")
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// How a cell is marked in a table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mark {
    None,
    Best,
    Worst,
}

fn mark(column: &(Vec<bool>, Vec<bool>), row: usize) -> Mark {
    if column.0[row] {
        Mark::Best
    } else if column.1[row] {
        Mark::Worst
    } else {
        Mark::None
    }
}

/// A table row: its label and its cells (text and mark, or empty).
type Row = (String, Vec<Option<(String, Mark)>>);

/// A table with a labelled row per entry of `rows` and a column per `columns`, each cell a
/// text and its mark or empty: Markdown (best **bold**, worst _italics_) or LaTeX (best
/// `\textbf`, worst `\underline`).
fn grid_table(format: Format, corner: &str, columns: &[String], rows: &[Row]) -> String {
    let mut out = String::new();
    let latex = format == Format::Latex;
    let esc = |t: &str| {
        if latex {
            latex_escape(t)
        } else {
            t.to_string()
        }
    };
    let (sep, end) = if latex {
        (" & ", " \\\\")
    } else {
        (" | ", " |")
    };
    let head: Vec<String> = columns.iter().map(|c| esc(c)).collect();
    if latex {
        let _ = writeln!(out, "\\begin{{tabular}}{{l{}}}", "r".repeat(columns.len()));
        let _ = writeln!(out, "\\hline");
        let _ = writeln!(out, "{}{sep}{}{end}", esc(corner), head.join(sep));
        let _ = writeln!(out, "\\hline");
    } else {
        let corner = if corner.is_empty() {
            "|".to_string()
        } else {
            format!("| {corner}")
        };
        let _ = writeln!(out, "{corner}{sep}{}{end}", head.join(sep));
        let _ = writeln!(out, "|---|{}", "---:|".repeat(columns.len()));
    }
    for (label, cells) in rows {
        let cells: Vec<String> = cells
            .iter()
            .map(|c| match c {
                None if latex => "--".into(),
                None => "–".into(),
                Some((text, m)) => {
                    let text = esc(text);
                    match (m, latex) {
                        (Mark::Best, true) => format!("\\textbf{{{text}}}"),
                        (Mark::Worst, true) => format!("\\underline{{{text}}}"),
                        (Mark::Best, false) => format!("**{text}**"),
                        (Mark::Worst, false) => format!("_{text}_"),
                        (Mark::None, _) => text,
                    }
                }
            })
            .collect();
        if latex {
            let _ = writeln!(out, "{}{sep}{}{end}", esc(label), cells.join(sep));
        } else {
            let _ = writeln!(out, "| {}{sep}{}{end}", label, cells.join(sep));
        }
    }
    if latex {
        let _ = writeln!(out, "\\hline");
        let _ = writeln!(out, "\\end{{tabular}}");
    }
    out
}

/// Marks for a column of values: (best rows, worst rows) by value (ties all marked); none
/// when the column has fewer than two values or all are equal.
fn extremes(values: &[Option<f64>]) -> (Vec<bool>, Vec<bool>) {
    let present: Vec<f64> = values.iter().flatten().copied().collect();
    let none = vec![false; values.len()];
    if present.len() < 2 {
        return (none.clone(), none);
    }
    let max = present.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let min = present.iter().copied().fold(f64::INFINITY, f64::min);
    if max == min {
        return (none.clone(), none);
    }
    (
        values.iter().map(|v| *v == Some(max)).collect(),
        values.iter().map(|v| *v == Some(min)).collect(),
    )
}

impl Section {
    /// The best aggregator for `(optimizer, attack)`, chosen on the mean final accuracy
    /// (ties: the first aggregator in order).
    pub fn best(&self, optimizer: usize, attack: usize) -> Option<(usize, &Cell)> {
        let mut best: Option<(usize, &Cell)> = None;
        for a in 0..self.aggregators.len() {
            if let Some(c) = self.cells.get(&(optimizer, a, attack)) {
                if best.is_none_or(|(_, b)| c.final_accuracy.mean > b.final_accuracy.mean) {
                    best = Some((a, c));
                }
            }
        }
        best
    }

    /// The table like the thesis's 4.1–4.4: rows optimizers, columns attacks, each cell the
    /// best aggregator's final accuracy and its name; per column the best row and the worst
    /// row marked.
    pub fn best_table(&self, format: Format) -> String {
        let rows: Vec<Vec<Option<(String, Stats)>>> = (0..self.optimizers.len())
            .map(|o| {
                (0..self.attacks.len())
                    .map(|t| {
                        self.best(o, t)
                            .map(|(a, c)| (self.aggregators[a].clone(), c.final_accuracy))
                    })
                    .collect()
            })
            .collect();
        let marks: Vec<(Vec<bool>, Vec<bool>)> = (0..self.attacks.len())
            .map(|t| {
                extremes(
                    &rows
                        .iter()
                        .map(|r| r[t].as_ref().map(|c| c.1.mean))
                        .collect::<Vec<_>>(),
                )
            })
            .collect();
        let mut out = String::new();
        match format {
            Format::Csv => {
                out.push_str("optimizer,attack,best_aggregator,mean,sd,seeds,best_in_column,worst_in_column\n");
                for (o, row) in rows.iter().enumerate() {
                    for (t, cell) in row.iter().enumerate() {
                        if let Some((agg, s)) = cell {
                            let _ = writeln!(
                                out,
                                "{},{},{},{},{},{},{},{}",
                                csv_field(&self.optimizers[o]),
                                csv_field(&self.attacks[t]),
                                csv_field(agg),
                                s.mean,
                                s.sd,
                                s.n,
                                marks[t].0[o],
                                marks[t].1[o]
                            );
                        }
                    }
                }
            }
            Format::Markdown | Format::Latex => {
                let body = rows
                    .iter()
                    .enumerate()
                    .map(|(o, row)| {
                        let cells = row
                            .iter()
                            .enumerate()
                            .map(|(t, c)| {
                                c.as_ref().map(|(agg, s)| {
                                    (format!("{} {agg}", number(s)), mark(&marks[t], o))
                                })
                            })
                            .collect();
                        (self.optimizers[o].clone(), cells)
                    })
                    .collect::<Vec<_>>();
                out = grid_table(format, "", &self.attacks, &body);
            }
        }
        out
    }

    /// The full table of one optimizer: rows aggregators, columns attacks, each cell the final
    /// accuracy; per column the best aggregator marked (bold / `\textbf` / `best_in_column`).
    // The indices address the cells, the labels and the marks at once.
    #[allow(clippy::needless_range_loop)]
    pub fn full_table(&self, optimizer: usize, format: Format) -> String {
        let value =
            |a: usize, t: usize| self.cells.get(&(optimizer, a, t)).map(|c| c.final_accuracy);
        let best: Vec<Vec<bool>> = (0..self.attacks.len())
            .map(|t| {
                extremes(
                    &(0..self.aggregators.len())
                        .map(|a| value(a, t).map(|s| s.mean))
                        .collect::<Vec<_>>(),
                )
                .0
            })
            .collect();
        let mut out = String::new();
        match format {
            Format::Csv => {
                out.push_str("optimizer,aggregator,attack,mean,sd,seeds,diverged,best_in_column\n");
                for a in 0..self.aggregators.len() {
                    for t in 0..self.attacks.len() {
                        if let Some(c) = self.cells.get(&(optimizer, a, t)) {
                            let s = c.final_accuracy;
                            let _ = writeln!(
                                out,
                                "{},{},{},{},{},{},{},{}",
                                csv_field(&self.optimizers[optimizer]),
                                csv_field(&self.aggregators[a]),
                                csv_field(&self.attacks[t]),
                                s.mean,
                                s.sd,
                                s.n,
                                c.diverged,
                                best[t][a]
                            );
                        }
                    }
                }
            }
            Format::Markdown | Format::Latex => {
                let body = (0..self.aggregators.len())
                    .map(|a| {
                        let cells = (0..self.attacks.len())
                            .map(|t| {
                                value(a, t).map(|s| {
                                    let m = if best[t][a] { Mark::Best } else { Mark::None };
                                    (number(&s), m)
                                })
                            })
                            .collect();
                        (self.aggregators[a].clone(), cells)
                    })
                    .collect::<Vec<_>>();
                out = grid_table(format, &self.optimizers[optimizer], &self.attacks, &body);
            }
        }
        out
    }
}

/// A published result to compare with: the best final accuracy of an (optimizer, attack)
/// cell and the aggregator that gave it, with the report's labels (`SGD`, `Little`, `CWTM`).
#[derive(Debug, Clone, PartialEq)]
pub struct Reference {
    /// Optimizer label.
    pub optimizer: String,
    /// Attack label.
    pub attack: String,
    /// Final test accuracy.
    pub accuracy: f64,
    /// Aggregator label.
    pub aggregator: String,
}

/// Reads a reference table: CSV with the header `optimizer,attack,accuracy,aggregator`.
/// Errors name the line.
pub fn parse_reference(text: &str) -> Result<Vec<Reference>, String> {
    let mut r = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_reader(text.as_bytes());
    let header: Vec<String> = r
        .headers()
        .map_err(|e| e.to_string())?
        .iter()
        .map(str::to_string)
        .collect();
    if header != ["optimizer", "attack", "accuracy", "aggregator"] {
        return Err(format!(
            "line 1: expected the header optimizer,attack,accuracy,aggregator, got {}",
            header.join(",")
        ));
    }
    let mut out = Vec::new();
    for (i, rec) in r.records().enumerate() {
        let line = i + 2;
        let rec = rec.map_err(|e| format!("line {line}: {e}"))?;
        let accuracy: f64 = rec[2]
            .parse()
            .map_err(|_| format!("line {line}: accuracy `{}` is not a number", &rec[2]))?;
        out.push(Reference {
            optimizer: rec[0].to_string(),
            attack: rec[1].to_string(),
            accuracy,
            aggregator: rec[3].to_string(),
        });
    }
    Ok(out)
}

impl Section {
    /// Our best cell beside each reference cell, one row per (optimizer, attack) in the
    /// section's order: ours, its aggregator, the reference, its aggregator, the difference
    /// (ours − reference). Markdown or CSV (LaTeX: use the CSV). Reference cells the section
    /// lacks are listed as missing.
    pub fn comparison(&self, reference: &[Reference], format: Format) -> String {
        let mut out = String::new();
        match format {
            Format::Csv | Format::Latex => out.push_str(
                "optimizer,attack,byzadam,byzadam_sd,byzadam_aggregator,reference,reference_aggregator,difference\n",
            ),
            Format::Markdown => {
                out.push_str("| optimizer | attack | byzadam | aggregator | reference | aggregator | difference |\n");
                out.push_str("|---|---|---:|---|---:|---|---:|\n");
            }
        }
        for (o, opt) in self.optimizers.iter().enumerate() {
            for (t, att) in self.attacks.iter().enumerate() {
                let Some(r) = reference
                    .iter()
                    .find(|r| r.optimizer == *opt && r.attack == *att)
                else {
                    continue;
                };
                let ours = self.best(o, t);
                match format {
                    Format::Csv | Format::Latex => {
                        let (m, sd, agg) =
                            ours.map_or((String::new(), String::new(), String::new()), |(a, c)| {
                                (
                                    c.final_accuracy.mean.to_string(),
                                    c.final_accuracy.sd.to_string(),
                                    self.aggregators[a].clone(),
                                )
                            });
                        let diff = ours.map_or(String::new(), |(_, c)| {
                            (c.final_accuracy.mean - r.accuracy).to_string()
                        });
                        let _ = writeln!(
                            out,
                            "{},{},{m},{sd},{},{},{},{diff}",
                            csv_field(opt),
                            csv_field(att),
                            csv_field(&agg),
                            r.accuracy,
                            csv_field(&r.aggregator)
                        );
                    }
                    Format::Markdown => {
                        let (m, agg, diff) = match ours {
                            Some((a, c)) => (
                                number(&c.final_accuracy),
                                self.aggregators[a].clone(),
                                format!("{:+.4}", c.final_accuracy.mean - r.accuracy),
                            ),
                            None => ("–".into(), "–".into(), "–".into()),
                        };
                        let _ = writeln!(
                            out,
                            "| {opt} | {att} | {m} | {agg} | {:.4} | {} | {diff} |",
                            r.accuracy, r.aggregator
                        );
                    }
                }
            }
        }
        out
    }
}
