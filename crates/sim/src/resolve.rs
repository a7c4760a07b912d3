//! Run configs from text, as every front end reads them: the defaults, each top-level key of
//! a file (or a TOML string, or a Python dict written as one) replacing the default's whole
//! entry, then `--set KEY=VALUE` overrides editing that tree, then validation. Errors name
//! the source and the key.

use crate::RunConfig;
use std::path::Path;

/// A run config that cannot be read: the source (a file's path, "the quickstart config"),
/// the key when one is to blame, and what is wrong.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{0}")]
pub struct ResolveError(pub String);

fn fail(message: impl Into<String>) -> ResolveError {
    ResolveError(message.into())
}

/// A TOML value as `--set` reads it, in `byzadam run` and every other command: the text as a
/// TOML value (`7`, `1.5e-3`, `true`, `"text"`, `[1, 2]`, `{ name = "cwtm", f = 5 }`), else
/// a bare word as a string (`honest_mean`). Text that starts like a TOML value (a digit, a
/// sign, a quote, `[` or `{`) but is not one is an error saying why (an integer past TOML's
/// 64-bit range, an unclosed table), never silently a string; so is text holding more than
/// one value (`1\nworkers = 3`).
pub fn toml_value(text: &str) -> Result<toml::Value, String> {
    match toml::from_str::<toml::Table>(&format!("v = {text}")) {
        Ok(mut t) if t.len() == 1 => Ok(t.remove("v").unwrap_or(toml::Value::Boolean(false))),
        Ok(_) => Err(format!("`{text}` holds more than one value")),
        Err(e) => {
            let t = text.trim();
            let looks_like_toml = t.starts_with(['{', '[', '"', '\'', '+', '-', '.'])
                || t.starts_with(|c: char| c.is_ascii_digit());
            if looks_like_toml {
                Err(format!(
                    "`{t}` is not a valid TOML value: {} (integers are at most \
                     9223372036854775807)",
                    e.message().trim()
                ))
            } else {
                Ok(toml::Value::String(text.to_string()))
            }
        }
    }
}

/// Applies `key.path=value` to a TOML table (the value read by [`toml_value`]).
pub fn apply_set(table: &mut toml::Table, spec: &str) -> Result<(), ResolveError> {
    let (key, value) = spec
        .split_once('=')
        .ok_or_else(|| fail(format!("--set {spec:?}: expected KEY=VALUE")))?;
    let value = toml_value(value).map_err(|e| fail(format!("--set {key}: {e}")))?;
    let parts: Vec<&str> = key.trim().split('.').collect();
    let mut cur = table;
    for (i, part) in parts.iter().enumerate() {
        if part.is_empty() {
            return Err(fail(format!("--set {spec:?}: empty key segment")));
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
            .ok_or_else(|| fail(format!("--set {spec:?}: {part} is not a table")))?;
    }
    Ok(())
}

/// The first non-finite number in `value` (a float that is NaN or ±∞), with its dotted key.
/// No key of a run config, a grid or a rule takes one: configs travel as JSON, where NaN
/// and ∞ have no form (serde_json writes them as `null`, which reads back as "absent" and
/// so as the default), so they are refused at the door, naming the key.
pub fn non_finite(prefix: &str, value: &toml::Value) -> Option<(String, f64)> {
    match value {
        toml::Value::Float(x) if !x.is_finite() => Some((prefix.to_string(), *x)),
        toml::Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, v)| non_finite(&format!("{prefix}[{i}]"), v)),
        toml::Value::Table(t) => t.iter().find_map(|(k, v)| {
            let key = if prefix.is_empty() {
                k.clone()
            } else {
                format!("{prefix}.{k}")
            };
            non_finite(&key, v)
        }),
        _ => None,
    }
}

impl RunConfig {
    /// Reads `text` (a run config as TOML; `None` for the quickstart, the defaults) with the
    /// `--set` overrides `set`, and validates it. `name` names the source in errors (a
    /// file's path, "the config dict").
    ///
    /// ```
    /// use byzadam_sim::RunConfig;
    /// let c = RunConfig::resolve(Some("rounds = 7"), "my.toml", &["aggregator.f=3".into()]).unwrap();
    /// assert_eq!(c.rounds, 7);
    /// let e = RunConfig::resolve(None, "the quickstart", &["attack.z=nan".into()]).unwrap_err();
    /// assert!(e.to_string().contains("`attack.z`"), "{e}");
    /// ```
    pub fn resolve(text: Option<&str>, name: &str, set: &[String]) -> Result<Self, ResolveError> {
        let mut table = match toml::Value::try_from(RunConfig::default()) {
            Ok(toml::Value::Table(t)) => t,
            _ => return Err(fail("the default config is not a table (a bug)")),
        };
        if let Some(text) = text {
            let file: toml::Table =
                toml::from_str(text).map_err(|e| fail(format!("{name}: {e}")))?;
            for (k, v) in file {
                table.insert(k, v);
            }
        }
        for s in set {
            apply_set(&mut table, s)?;
        }
        let table = toml::Value::Table(table);
        if let Some((key, x)) = non_finite("", &table) {
            return Err(fail(format!(
                "{name}: key `{key}`: must be a finite number, got {x}"
            )));
        }
        let cfg: RunConfig = serde_path_to_error::deserialize(table).map_err(|e| {
            let path = e.path().to_string();
            let key = if path == "." {
                String::new()
            } else {
                format!(" key `{path}`:")
            };
            fail(format!("{name}:{key} {}", e.into_inner()))
        })?;
        let mut cfg = cfg;
        cfg.validate()
            .and_then(|()| cfg.pin_init())
            .map_err(|e| fail(format!("{name}: key `{}`: {}", e.key, e.reason)))?;
        Ok(cfg)
    }

    /// [`RunConfig::resolve`] on a file (`None`: the quickstart), errors naming its path.
    pub fn resolve_file(path: Option<&Path>, set: &[String]) -> Result<Self, ResolveError> {
        match path {
            Some(p) => {
                let text = read_text(p).map_err(fail)?;
                Self::resolve(Some(&text), &p.display().to_string(), set)
            }
            None => Self::resolve(None, "the quickstart config", set),
        }
    }
}

/// A file's bytes, or an error naming the file: what is not a regular file (a directory,
/// `/dev/zero`, a named pipe, which would block) and what is over `limit` bytes are refused
/// before reading (memory reserved fallibly), and reading stops at the limit anyway.
pub(crate) fn read_bounded(path: &Path, limit: u64) -> Result<Vec<u8>, String> {
    use std::io::Read;
    let at = |e: std::io::Error| format!("reading {}: {e}", path.display());
    // Checked before opening too: opening a named pipe would wait for a writer forever.
    if !std::fs::metadata(path).map_err(at)?.is_file() {
        return Err(format!(
            "reading {}: not a regular file (a directory, a device or a pipe)",
            path.display()
        ));
    }
    let file = std::fs::File::open(path).map_err(at)?;
    let too_large = || {
        format!(
            "reading {}: over the limit of {limit} bytes for this file",
            path.display()
        )
    };
    let size = file.metadata().map_err(at)?.len();
    if size > limit {
        return Err(too_large());
    }
    let mut bytes = Vec::new();
    bytes.try_reserve_exact(size as usize).map_err(|_| {
        format!(
            "reading {}: not enough memory for {size} bytes",
            path.display()
        )
    })?;
    file.take(limit + 1).read_to_end(&mut bytes).map_err(at)?;
    if bytes.len() as u64 > limit {
        return Err(too_large());
    }
    Ok(bytes)
}

/// Largest config, grid or reference file read (16 MiB; the thesis's largest grid file has
/// a few kilobytes).
pub const MAX_TEXT_BYTES: u64 = 16 << 20;

/// A config, grid or reference file's text, or an error naming the file: what is not a
/// regular file (a directory, `/dev/zero`, a named pipe, which would block) and what is over
/// [`MAX_TEXT_BYTES`] are refused before reading, and reading stops at the limit anyway.
pub fn read_text(path: &Path) -> Result<String, String> {
    let bytes = read_bounded(path, MAX_TEXT_BYTES)?;
    String::from_utf8(bytes).map_err(|e| {
        format!(
            "reading {}: not UTF-8 text (invalid byte at offset {})",
            path.display(),
            e.utf8_error().valid_up_to()
        )
    })
}
