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

/// The shape an `.npy` header claims, read before npyz sees the file: npyz multiplies the
/// dimensions without checking for overflow (a panic in a debug build, a wrapped count in a
/// release one), so a shape whose element count (its non-zero dimensions' product) exceeds
/// the file's bytes is refused here.
/// `None` where the header cannot be read this way (npyz then reports what is wrong).
fn claimed_elements(bytes: &[u8]) -> Option<(Vec<u128>, u128)> {
    let rest = bytes.strip_prefix(b"\x93NUMPY")?;
    let (&major, rest) = rest.split_first()?;
    let rest = rest.get(1..)?;
    let (len, rest) = match major {
        1 => (
            u16::from_le_bytes([*rest.first()?, *rest.get(1)?]) as usize,
            &rest[2..],
        ),
        _ => (
            u32::from_le_bytes([*rest.first()?, *rest.get(1)?, *rest.get(2)?, *rest.get(3)?])
                as usize,
            rest.get(4..)?,
        ),
    };
    let header = std::str::from_utf8(rest.get(..len.min(rest.len()))?).ok()?;
    let at = header
        .find("'shape'")
        .or_else(|| header.find("\"shape\""))?;
    let open = at + header[at..].find('(')?;
    let close = open + header[open..].find(')')?;
    let dims: Option<Vec<u128>> = header[open + 1..close]
        .split(',')
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .map(|d| d.parse::<u128>().ok())
        .collect();
    let dims = dims?;
    // Zero dimensions left out: npyz's strides multiply the others all the same.
    let count = dims
        .iter()
        .filter(|&&d| d != 0)
        .fold(1u128, |a, &d| a.saturating_mul(d));
    Some((dims, count))
}

fn parse_npy(bytes: &[u8]) -> Result<(usize, usize, Vec<f32>)> {
    if let Some((dims, count)) = claimed_elements(bytes) {
        if count > bytes.len() as u128 {
            bail!(
                "truncated: the header's shape {dims:?} claims {count} values, more than the \
                 file's {} bytes can hold",
                bytes.len()
            );
        }
    }
    let npy = npyz::NpyFile::new(bytes).map_err(|e| anyhow!("not a valid .npy file: {e}"))?;
    let shape = npy.shape().to_vec();
    let [rows, dim] = shape[..] else {
        bail!("expected a 2-D array (vectors × dimension), got shape {shape:?}");
    };
    let descr = npy.dtype().descr();
    let width: u128 = match descr.trim_matches('\'') {
        "<f4" | ">f4" => 4,
        "<f8" | ">f8" => 8,
        other => bail!("unsupported dtype {other}: use float32 or float64"),
    };
    // The header's shape is checked against the bytes that follow it before anything is
    // allocated: a header claiming 10^16 values in a 200-byte file is "truncated", not an
    // allocation of 40 petabytes.
    let claimed = rows as u128 * dim as u128 * width;
    if claimed > bytes.len() as u128 {
        bail!(
            "truncated: the header's shape [{rows}, {dim}] needs {claimed} bytes of data, the \
             file has {} in all",
            bytes.len()
        );
    }
    byzadam_robust::limits::matrix("the matrix", rows as u128, dim as u128)?;
    let (rows, dim) = (rows as usize, dim as usize);
    let fortran = npy.order() == npyz::Order::Fortran;
    let truncated = |e: std::io::Error| anyhow!("truncated or unreadable data: {e}");
    let data: Vec<f32> = if width == 4 {
        npy.into_vec::<f32>().map_err(truncated)?
    } else {
        let wide = npy.into_vec::<f64>().map_err(truncated)?;
        let mut out = Vec::with_capacity(wide.len());
        for (k, &x) in wide.iter().enumerate() {
            let (i, j) = if fortran {
                (k % rows.max(1), k / rows.max(1))
            } else {
                (k / dim.max(1), k % dim.max(1))
            };
            out.push(narrow(x).map_err(|e| anyhow!("row {}, column {}: {e}", i + 1, j + 1))?);
        }
        out
    };
    if data.len() != rows * dim {
        bail!("truncated: {} values for shape [{rows}, {dim}]", data.len());
    }
    if fortran {
        let mut c = vec![0.0; data.len()];
        for i in 0..rows {
            for j in 0..dim {
                c[i * dim + j] = data[j * rows + i];
            }
        }
        return Ok((rows, dim, c));
    }
    Ok((rows, dim, data))
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

/// `x` as float32, or why not: a finite value past float32's range (±3.4e38) would silently
/// become ±∞, so it is refused (byzadam computes in float32).
fn narrow(x: f64) -> Result<f32, String> {
    let y = x as f32;
    if x.is_finite() && y.is_infinite() {
        Err(format!(
            "{x:e} is outside float32's range (±3.4e38; byzadam computes in float32)"
        ))
    } else {
        Ok(y)
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
