//! Reading `n × d` matrices and writing vectors or matrices as `.npy`, `.csv` or `.json`.
//!
//! - `.npy`: a 2-D array of `float32` or `float64` (little- or big-endian, C or Fortran order).
//! - `.csv`: one vector per line, no header; `inf`, `-inf` and `nan` are accepted.
//! - `.json`: an array of arrays of numbers; JSON has no ±∞ or NaN, so the strings `"inf"`,
//!   `"-inf"`, `"nan"` (and `"Infinity"`, `"-Infinity"`, `"NaN"`) stand for them, in and out.
//!
//! Every error names the file and, where it has one, the row (1-based, as in an editor) and the
//! column.

use anyhow::{anyhow, bail, Context, Result};
use byzadam_data::npy::narrow;
use byzadam_robust::Submissions;
use std::io::Write;
use std::path::Path;

/// A file format, chosen by extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// NumPy's `.npy`.
    Npy,
    /// Comma-separated values, one vector per line.
    Csv,
    /// JSON array of arrays.
    Json,
}

impl Format {
    /// The format for `path`'s extension.
    pub fn of(path: &Path) -> Result<Self> {
        match path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            Some("npy") => Ok(Self::Npy),
            Some("csv") => Ok(Self::Csv),
            Some("json") => Ok(Self::Json),
            _ => bail!(
                "{}: unknown format: use a .npy, .csv or .json file",
                path.display()
            ),
        }
    }
}

/// Largest matrix file read (16 GiB): checked before reading, so a link to `/dev/zero` or a
/// file that claims more than it holds never allocates past it.
pub const MAX_FILE_BYTES: u64 = 1 << 34;

/// Largest `.json` matrix file (256 MiB): a parsed JSON value takes several times its text;
/// use `.npy` for more.
pub const MAX_JSON_BYTES: u64 = 1 << 28;

/// Reads the matrix in `path` as submissions (one row per vector).
pub fn read(path: &Path) -> Result<Submissions<'static>> {
    let format = Format::of(path)?;
    let bytes =
        read_bounded(path, format).with_context(|| format!("reading {}", path.display()))?;
    parse(format, &bytes).with_context(|| format!("reading {}", path.display()))
}

/// Parses a whole matrix file's bytes (what [`read`] does after reading them): every error
/// says what is wrong and where, nothing panics, and nothing is allocated past what the bytes
/// can hold (the fuzz tests feed it arbitrary bytes).
pub fn parse(format: Format, bytes: &[u8]) -> Result<Submissions<'static>> {
    let (rows, dim, data) = match format {
        Format::Npy => parse_npy(bytes),
        Format::Csv => parse_csv(bytes),
        Format::Json => parse_json(bytes),
    }?;
    if rows == 0 || dim == 0 {
        bail!("no vectors (the file holds a {rows} × {dim} matrix)");
    }
    byzadam_robust::limits::matrix("the matrix", rows as u128, dim as u128)?;
    Submissions::from_flat(data, dim).map_err(|e| anyhow!("{e}"))
}

/// The file's bytes, refusing what is not a regular file (a directory, a device such as
/// `/dev/zero`, a pipe) and what is larger than the format's limit, before reading it.
fn read_bounded(path: &Path, format: Format) -> Result<Vec<u8>> {
    use std::io::Read;
    let not_regular = || {
        anyhow!(
            "not a regular file (a directory, a device or a pipe): give a .npy, .csv or .json file"
        )
    };
    // Checked before opening too: opening a named pipe would wait for a writer forever.
    if !std::fs::metadata(path)?.is_file() {
        return Err(not_regular());
    }
    let file = std::fs::File::open(path)?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(not_regular());
    }
    let limit = match format {
        Format::Json => MAX_JSON_BYTES,
        _ => MAX_FILE_BYTES,
    };
    let too_large = |size: u64| {
        anyhow!(
            "{size} bytes, over the limit of {limit} for a {} file{}",
            match format {
                Format::Npy => ".npy",
                Format::Csv => ".csv",
                Format::Json => ".json",
            },
            if format == Format::Json {
                " (use .npy for large matrices)"
            } else {
                ""
            }
        )
    };
    if meta.len() > limit {
        return Err(too_large(meta.len()));
    }
    let mut bytes = Vec::new();
    bytes
        .try_reserve_exact(meta.len() as usize)
        .map_err(|_| anyhow!("not enough memory to read its {} bytes", meta.len()))?;
    // Bounded even if the file grows while it is read.
    file.take(limit + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit {
        return Err(too_large(bytes.len() as u64));
    }
    Ok(bytes)
}

fn parse_npy(bytes: &[u8]) -> Result<(usize, usize, Vec<f32>)> {
    let array = byzadam_data::npy::parse(bytes).map_err(|e| anyhow!(e))?;
    let [rows, dim] = array.shape[..] else {
        bail!(
            "expected a 2-D array (vectors × dimension), got shape {:?}",
            array.shape
        );
    };
    Ok((rows, dim, array.data))
}

/// Parses one number, accepting the spellings of ±∞ and NaN. A finite number past float32's
/// range is an error (it would become ±∞ without a word); ±∞ spelled out stays ±∞.
fn parse_number(s: &str) -> Result<f32, String> {
    let t = s.trim();
    match t.to_ascii_lowercase().as_str() {
        "inf" | "+inf" | "infinity" | "+infinity" => Ok(f32::INFINITY),
        "-inf" | "-infinity" => Ok(f32::NEG_INFINITY),
        "nan" | "+nan" | "-nan" => Ok(f32::NAN),
        _ => match t.parse::<f64>() {
            // `1e400` parses as ∞: a finite number past every float's range, not an ∞ given.
            Ok(x) if x.is_infinite() => Err(format!(
                "{t} is outside float32's range (±3.4e38; byzadam computes in float32)"
            )),
            Ok(x) => narrow(x),
            Err(_) => Err(format!("{s:?} is not a number")),
        },
    }
}

fn parse_csv(bytes: &[u8]) -> Result<(usize, usize, Vec<f32>)> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .trim(csv::Trim::All)
        .comment(Some(b'#'))
        .from_reader(bytes);
    let (mut rows, mut dim, mut data) = (0usize, 0usize, Vec::new());
    for record in reader.records() {
        let record = record?;
        let line = record.position().map_or(rows + 1, |p| p.line() as usize);
        if record.len() == 1 && record[0].is_empty() {
            continue;
        }
        if rows == 0 {
            dim = record.len();
        } else if record.len() != dim {
            bail!(
                "row {line}: {} values, but the first row has {dim}",
                record.len()
            );
        }
        for (col, field) in record.iter().enumerate() {
            let x =
                parse_number(field).map_err(|e| anyhow!("row {line}, column {}: {e}", col + 1))?;
            data.push(x);
        }
        rows += 1;
    }
    Ok((rows, dim, data))
}

fn parse_json(bytes: &[u8]) -> Result<(usize, usize, Vec<f32>)> {
    let value: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| anyhow!("invalid JSON: {e}"))?;
    let outer = value
        .as_array()
        .ok_or_else(|| anyhow!("expected an array of vectors (arrays of numbers)"))?;
    let (mut dim, mut data) = (0usize, Vec::new());
    for (r, row) in outer.iter().enumerate() {
        let row = row
            .as_array()
            .ok_or_else(|| anyhow!("row {}: expected an array of numbers, got {row}", r + 1))?;
        if r == 0 {
            dim = row.len();
        } else if row.len() != dim {
            bail!(
                "row {}: {} values, but the first row has {dim}",
                r + 1,
                row.len()
            );
        }
        for (c, v) in row.iter().enumerate() {
            let x = match v {
                serde_json::Value::Number(n) => n
                    .as_f64()
                    .ok_or_else(|| format!("{v} is not a number"))
                    .and_then(narrow),
                serde_json::Value::String(s) => parse_number(s),
                _ => Err(format!("{v} is not a number")),
            };
            data.push(x.map_err(|e| anyhow!("row {}, column {}: {e}", r + 1, c + 1))?);
        }
    }
    Ok((outer.len(), dim, data))
}

fn json_number(x: f32) -> serde_json::Value {
    if x.is_finite() {
        // Shortest representation that reads back as the same f32.
        serde_json::Value::Number(
            serde_json::Number::from_f64(x.to_string().parse::<f64>().unwrap_or(x as f64))
                .expect("finite"),
        )
    } else if x.is_nan() {
        "nan".into()
    } else if x > 0.0 {
        "inf".into()
    } else {
        "-inf".into()
    }
}

/// Writes `rows` vectors of length `dim` (`data` row-major) to `path`, or as JSON to `stdout`
/// when `path` is `None`. A single vector (`as_vector`) is written as a 1-D array / one line.
pub fn write(
    path: Option<&Path>,
    data: &[f32],
    dim: usize,
    as_vector: bool,
    stdout: &mut dyn Write,
) -> Result<()> {
    let rows = data.len() / dim.max(1);
    let format = match path {
        Some(p) => Format::of(p)?,
        None => Format::Json,
    };
    let mut buf: Vec<u8> = Vec::new();
    match format {
        Format::Json => {
            let value = if as_vector {
                serde_json::Value::Array(data.iter().map(|&x| json_number(x)).collect())
            } else {
                serde_json::Value::Array(
                    data.chunks(dim.max(1))
                        .map(|r| {
                            serde_json::Value::Array(r.iter().map(|&x| json_number(x)).collect())
                        })
                        .collect(),
                )
            };
            serde_json::to_writer(&mut buf, &value)?;
            buf.push(b'\n');
        }
        Format::Csv => {
            for row in data.chunks(dim.max(1)) {
                let line: Vec<String> = row.iter().map(|x| x.to_string()).collect();
                writeln!(buf, "{}", line.join(","))?;
            }
        }
        Format::Npy => {
            use npyz::WriterBuilder;
            let shape: Vec<u64> = if as_vector {
                vec![dim as u64]
            } else {
                vec![rows as u64, dim as u64]
            };
            let mut w = npyz::WriteOptions::new()
                .default_dtype()
                .shape(&shape)
                .writer(&mut buf)
                .begin_nd()?;
            w.extend(data.iter().copied())?;
            w.finish()?;
        }
    }
    match path {
        None => stdout.write_all(&buf)?,
        Some(p) => write_atomically(p, &buf)?,
    }
    Ok(())
}

/// Writes to a temporary file beside `path`, then renames it over `path`: a crash never
/// leaves a half-written output (`byzadam_experiment::runner::write_atomic`, with the path in
/// the error).
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    byzadam_experiment::runner::write_atomic(path, bytes)
        .with_context(|| format!("writing {}", path.display()))
}
