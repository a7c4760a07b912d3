//! Turning command-line specs (`--rule trimmed_mean --f 5 --set k=v`, `--pre nnm:f=5`) into
//! the robust crate's registries, with errors that say what is wrong and what would be valid.

use anyhow::{anyhow, bail, Result};
use byzadam_robust::{AggregatorConfig, AttackConfig, PreAggregatorConfig};
use serde_json::{Map, Value};

pub use byzadam_sim::toml_value;

/// A `KEY=VALUE` setting of a rule, pre-aggregator or attack, its value read by
/// [`toml_value`] (the grammar of `byzadam run --set`).
pub fn parse_setting(s: &str) -> Result<(String, Value)> {
    let (k, v) = s
        .split_once('=')
        .ok_or_else(|| anyhow!("{s:?} is not KEY=VALUE"))?;
    let (k, v) = (k.trim(), v.trim());
    if k.is_empty() {
        bail!("{s:?}: empty key");
    }
    let value = toml_value(v).map_err(|e| anyhow!("{k}: {e}"))?;
    // JSON (what the registries read) has no NaN or ∞: refused, never read as "absent".
    if let Some((key, x)) = byzadam_sim::non_finite(k, &value) {
        bail!("{s:?}: `{key}` must be a finite number, got {x}");
    }
    let value = serde_json::to_value(value)
        .map_err(|e| anyhow!("{s:?}: {e} (a number that JSON cannot hold?)"))?;
    Ok((k.to_string(), value))
}

/// [`parse_setting`] as clap's value parser.
pub fn setting(s: &str) -> std::result::Result<(String, Value), String> {
    parse_setting(s).map_err(|e| e.to_string())
}

fn names(list: &[(&str, &[&str])]) -> String {
    list.iter()
        .map(|(n, a)| {
            if a.is_empty() {
                n.to_string()
            } else {
                format!("{n} ({})", a.join(", "))
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn table(kind: &str, canonical: &str, settings: &[(String, Value)]) -> Result<Value> {
    let mut map = Map::new();
    map.insert("name".into(), Value::from(canonical));
    for (k, v) in settings {
        if k == "name" {
            bail!("{kind} {canonical}: `name` is not a setting");
        }
        if map.insert(k.clone(), v.clone()).is_some() {
            bail!("{kind} {canonical}: `{k}` is given twice; give each setting once");
        }
    }
    Ok(Value::Object(map))
}

fn explain(kind: &str, name: &str, e: serde_json::Error) -> anyhow::Error {
    anyhow!("{kind} {name}: {e}")
}

/// The aggregation rule `name` (or an alias) with `f` and further settings.
pub fn aggregator(
    name: &str,
    f: Option<usize>,
    settings: &[(String, Value)],
) -> Result<AggregatorConfig> {
    let canonical = AggregatorConfig::canonical(name).ok_or_else(|| {
        anyhow!(
            "unknown rule {name:?}; the rules are: {}",
            names(AggregatorConfig::NAMES)
        )
    })?;
    let mut all = settings.to_vec();
    if let Some(f) = f {
        if let Some((_, v)) = settings.iter().find(|(k, _)| k == "f") {
            bail!("rule {canonical}: --f {f} and --set f={v} disagree; give f once");
        }
        all.push(("f".into(), Value::from(f)));
    }
    let cfg = table("rule", canonical, &all)?;
    serde_json::from_value(cfg).map_err(|e| {
        if f.is_some() && e.to_string().contains("unknown field `f`") {
            anyhow!("rule {canonical} takes no f (it needs no bound on the Byzantine workers); drop --f")
        } else if e.to_string().contains("missing field `f`") {
            anyhow!("rule {canonical} needs --f, the number of Byzantine inputs it must tolerate")
        } else {
            explain("rule", canonical, e)
        }
    })
}

/// A pre-aggregator spec `NAME[:KEY=VALUE,...]`.
pub fn preaggregator(spec: &str) -> Result<PreAggregatorConfig> {
    let (name, rest) = spec.split_once(':').unwrap_or((spec, ""));
    let canonical = PreAggregatorConfig::canonical(name.trim()).ok_or_else(|| {
        anyhow!(
            "unknown pre-aggregator {name:?}; the pre-aggregators are: {}",
            names(PreAggregatorConfig::NAMES)
        )
    })?;
    let settings = rest
        .split(',')
        .filter(|s| !s.trim().is_empty())
        .map(parse_setting)
        .collect::<Result<Vec<_>>>()
        .map_err(|e| anyhow!("pre-aggregator {canonical}: {e}"))?;
    serde_json::from_value(table("pre-aggregator", canonical, &settings)?)
        .map_err(|e| explain("pre-aggregator", canonical, e))
}

/// The attack `name` (or an alias) with its settings.
pub fn attack(name: &str, settings: &[(String, Value)]) -> Result<AttackConfig> {
    let canonical = AttackConfig::canonical(name).ok_or_else(|| {
        anyhow!(
            "unknown attack {name:?}; the attacks are: {}",
            names(AttackConfig::NAMES)
        )
    })?;
    serde_json::from_value(table("attack", canonical, settings)?)
        .map_err(|e| explain("attack", canonical, e))
}

/// One line per rule, pre-aggregator and attack, with aliases.
pub fn catalogue() -> String {
    let r = byzadam_robust::registry();
    let mut s = String::new();
    for (title, list) in [
        ("Aggregation rules (--rule)", &r.aggregators),
        ("Pre-aggregators (--pre)", &r.preaggregators),
        ("Attacks (--attack)", &r.attacks),
    ] {
        s.push_str(title);
        s.push_str(":\n");
        for e in list.iter() {
            let mut line = format!("  {}", e.name);
            if !e.aliases.is_empty() {
                line = format!("{line:<34} aliases: {}", e.aliases.join(", "));
            }
            if !e.requirement.is_empty() {
                line.push_str(&format!("  (needs {})", e.requirement));
            }
            s.push_str(line.trim_end());
            s.push('\n');
            for p in e.params {
                let bound = if p.bound.is_empty() {
                    String::new()
                } else {
                    format!(", {}", p.bound)
                };
                s.push_str(&format!(
                    "      {} ({}{bound}; default {}): {}\n",
                    p.name, p.kind, p.default, p.doc
                ));
            }
        }
    }
    s
}
