//! Finding the data directory, reading files raw or gzip-compressed with their checksums, and
//! parsing IDX and CIFAR-10 binary records.

use crate::checksums;
use crate::{DataError, Dataset, DatasetKind, Split};
use sha2::{Digest, Sha256};
use std::io::Read;
use std::path::{Path, PathBuf};

/// The environment variable naming the data directory.
pub const DATA_DIR_ENV: &str = "BYZADAM_DATA_DIR";

/// The data directory: `flag` if given, else `$BYZADAM_DATA_DIR`, else `./data`.
pub fn data_dir(flag: Option<&Path>) -> PathBuf {
    if let Some(p) = flag {
        return p.to_path_buf();
    }
    match std::env::var_os(DATA_DIR_ENV) {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => PathBuf::from("data"),
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> DataError + '_ {
    move |error| DataError::Io {
        path: path.to_path_buf(),
        error,
    }
}

/// The most bytes any dataset file decompresses to: the largest official one, MNIST's and
/// Fashion-MNIST's training images, is 47,040,016 bytes. Reading stops past this, so a
/// corrupt file or a gzip bomb costs at most this much memory before it is refused.
pub const MAX_FILE_BYTES: u64 = 48_000_000;

/// Reads at most [`MAX_FILE_BYTES`] from `r`; an error for more.
fn read_bounded(path: &Path, r: impl Read) -> Result<Vec<u8>, DataError> {
    let mut bytes = Vec::new();
    r.take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(io(path))?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(DataError::TooLarge {
            path: path.to_path_buf(),
            limit: MAX_FILE_BYTES,
        });
    }
    Ok(bytes)
}

/// Reads `dir/name` or `dir/name.gz` (decompressed, stopping past [`MAX_FILE_BYTES`]), and
/// checks the SHA-256 of the bytes against `expected` (hex).
pub fn read_checked(dir: &Path, name: &str, expected: &'static str) -> Result<Vec<u8>, DataError> {
    let raw = dir.join(name);
    let gz = dir.join(format!("{name}.gz"));
    let (path, bytes) = if raw.is_file() {
        let file = std::fs::File::open(&raw).map_err(io(&raw))?;
        (raw.clone(), read_bounded(&raw, file)?)
    } else if gz.is_file() {
        let file = std::fs::File::open(&gz).map_err(io(&gz))?;
        let bytes = read_bounded(
            &gz,
            flate2::read::GzDecoder::new(std::io::BufReader::new(file)),
        )?;
        (gz, bytes)
    } else {
        return Err(DataError::Missing { path: raw });
    };
    let found = hex(&Sha256::digest(&bytes));
    if found != expected {
        return Err(DataError::BadChecksum {
            path,
            found,
            expected,
        });
    }
    Ok(bytes)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn be_u32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// Parses an IDX file: magic `0x0000_08_0D` (unsigned bytes, `D` dimensions), the dimensions as
/// big-endian `u32`, then the data. Checks the magic and the dimensions against `dims`.
pub(crate) fn parse_idx(
    path: &Path,
    bytes: Vec<u8>,
    dims: &[u32],
    what: &'static str,
) -> Result<Vec<u8>, DataError> {
    let header = 4 + 4 * dims.len();
    if bytes.len() < header {
        return Err(DataError::Truncated {
            path: path.to_path_buf(),
            expected: header,
            found: bytes.len(),
        });
    }
    let magic = be_u32(&bytes, 0);
    let expected_magic = 0x0800 | dims.len() as u32;
    if magic != expected_magic {
        return Err(DataError::WrongMagic {
            path: path.to_path_buf(),
            found: magic,
            expected: expected_magic,
            what,
        });
    }
    let found: Vec<u32> = (0..dims.len()).map(|i| be_u32(&bytes, 4 + 4 * i)).collect();
    if found != dims {
        return Err(DataError::WrongShape {
            path: path.to_path_buf(),
            found,
            expected: dims.to_vec(),
        });
    }
    let len: usize = dims.iter().map(|&d| d as usize).product();
    if bytes.len() != header + len {
        return Err(DataError::Truncated {
            path: path.to_path_buf(),
            expected: header + len,
            found: bytes.len(),
        });
    }
    Ok(bytes[header..].to_vec())
}

fn check_labels(path: &Path, labels: &[u8], classes: usize) -> Result<(), DataError> {
    match labels.iter().position(|&y| y as usize >= classes) {
        Some(index) => Err(DataError::BadLabel {
            path: path.to_path_buf(),
            index,
            label: labels[index],
            classes,
        }),
        None => Ok(()),
    }
}

fn load_idx_pair(
    dir: &Path,
    kind: DatasetKind,
    table: &'static [(&'static str, &'static str)],
    prefix: &str,
    n: u32,
) -> Result<Dataset, DataError> {
    let read = |name: &str, dims: &[u32], what: &'static str| {
        let bytes = read_checked(
            dir,
            name,
            checksums::expected(table, name).expect("in table"),
        )?;
        parse_idx(&dir.join(name), bytes, dims, what)
    };
    let lab_name = format!("{prefix}-labels-idx1-ubyte");
    let images = read(
        &format!("{prefix}-images-idx3-ubyte"),
        &[n, 28, 28],
        "IDX images: unsigned bytes, 3 dimensions",
    )?;
    let labels = read(&lab_name, &[n], "IDX labels: unsigned bytes, 1 dimension")?;
    check_labels(&dir.join(&lab_name), &labels, 10)?;
    Ok(Dataset {
        kind,
        shape: kind.shape(),
        classes: 10,
        images,
        labels,
    })
}

/// Bytes per CIFAR-10 record: the label, then 3 × 32 × 32 pixels.
const CIFAR_RECORD: usize = 1 + 3 * 32 * 32;

/// Appends a CIFAR-10 binary batch's images and labels: exactly 10,000 records of a label
/// (< 10) and 3 × 32 × 32 pixels.
fn parse_cifar_batch(
    path: &Path,
    bytes: &[u8],
    images: &mut Vec<u8>,
    labels: &mut Vec<u8>,
) -> Result<(), DataError> {
    if bytes.len() != 10_000 * CIFAR_RECORD {
        return Err(DataError::Truncated {
            path: path.to_path_buf(),
            expected: 10_000 * CIFAR_RECORD,
            found: bytes.len(),
        });
    }
    for record in bytes.chunks_exact(CIFAR_RECORD) {
        labels.push(record[0]);
        images.extend_from_slice(&record[1..]);
    }
    check_labels(path, labels, 10)
}

/// The parsers behind [`load`] on bytes instead of files, for the fuzz tests
/// (`crates/data/tests/fuzz_files.rs`); not a stable API.
#[doc(hidden)]
pub mod parsers {
    use super::*;

    /// An IDX file's data after checking its magic and dimensions against `dims`.
    pub fn idx(bytes: Vec<u8>, dims: &[u32]) -> Result<Vec<u8>, DataError> {
        parse_idx(Path::new("fuzz"), bytes, dims, "IDX")
    }

    /// A CIFAR-10 binary batch: (images, labels).
    pub fn cifar_batch(bytes: &[u8]) -> Result<(Vec<u8>, Vec<u8>), DataError> {
        let (mut images, mut labels) = (Vec::new(), Vec::new());
        parse_cifar_batch(Path::new("fuzz"), bytes, &mut images, &mut labels)?;
        Ok((images, labels))
    }

    /// A gzip stream decompressed as a `.gz` dataset file is: stopping past
    /// [`MAX_FILE_BYTES`].
    pub fn gunzip(bytes: &[u8]) -> Result<Vec<u8>, DataError> {
        read_bounded(Path::new("fuzz"), flate2::read::GzDecoder::new(bytes))
    }
}

fn load_cifar_batches(dir: &Path, names: &[&str]) -> Result<Dataset, DataError> {
    let kind = DatasetKind::Cifar10;
    let mut images = Vec::new();
    let mut labels = Vec::new();
    for name in names {
        let bytes = read_checked(
            dir,
            name,
            checksums::expected(&checksums::CIFAR10, name).expect("in table"),
        )?;
        parse_cifar_batch(&dir.join(name), &bytes, &mut images, &mut labels)?;
    }
    Ok(Dataset {
        kind,
        shape: kind.shape(),
        classes: 10,
        images,
        labels,
    })
}

/// Loads a dataset from `dir/<folder>` (see [`DatasetKind::folder`]); Fashion-MNIST is also
/// looked for where Debian's `dataset-fashion-mnist` puts it
/// (`/usr/share/datasets/fashion-mnist`). Every file is checked against its official SHA-256.
/// The synthetic dataset needs no files: use [`crate::synthetic::generate`].
pub fn load(kind: DatasetKind, dir: &Path) -> Result<Split, DataError> {
    let folder = dir.join(kind.folder());
    match kind {
        DatasetKind::Mnist => Ok(Split {
            train: load_idx_pair(&folder, kind, &checksums::MNIST, "train", 60_000)?,
            test: load_idx_pair(&folder, kind, &checksums::MNIST, "t10k", 10_000)?,
        }),
        DatasetKind::FashionMnist => {
            let debian = Path::new("/usr/share/datasets/fashion-mnist");
            let folder = if !folder.exists() && debian.exists() {
                debian.to_path_buf()
            } else {
                folder
            };
            Ok(Split {
                train: load_idx_pair(&folder, kind, &checksums::FASHION_MNIST, "train", 60_000)?,
                test: load_idx_pair(&folder, kind, &checksums::FASHION_MNIST, "t10k", 10_000)?,
            })
        }
        DatasetKind::Cifar10 => Ok(Split {
            train: load_cifar_batches(
                &folder,
                &[
                    "data_batch_1.bin",
                    "data_batch_2.bin",
                    "data_batch_3.bin",
                    "data_batch_4.bin",
                    "data_batch_5.bin",
                ],
            )?,
            test: load_cifar_batches(&folder, &["test_batch.bin"])?,
        }),
        DatasetKind::Synthetic => Err(DataError::Missing { path: folder }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn idx(magic: u32, dims: &[u32], data: &[u8]) -> Vec<u8> {
        let mut b = magic.to_be_bytes().to_vec();
        for d in dims {
            b.extend(d.to_be_bytes());
        }
        b.extend_from_slice(data);
        b
    }

    #[test]
    fn idx_parser_checks_magic_shape_and_length() {
        let p = Path::new("x-images-idx3-ubyte");
        let good = idx(0x0803, &[2, 2, 2], &[1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(
            parse_idx(p, good, &[2, 2, 2], "images").unwrap(),
            [1, 2, 3, 4, 5, 6, 7, 8]
        );
        let wrong_magic = idx(0x0801, &[2, 2, 2], &[0; 8]);
        assert!(matches!(
            parse_idx(p, wrong_magic, &[2, 2, 2], "images"),
            Err(DataError::WrongMagic { found: 0x0801, .. })
        ));
        let wrong_shape = idx(0x0803, &[3, 2, 2], &[0; 12]);
        assert!(matches!(
            parse_idx(p, wrong_shape, &[2, 2, 2], "images"),
            Err(DataError::WrongShape { .. })
        ));
        let short = idx(0x0803, &[2, 2, 2], &[0; 7]);
        let err = parse_idx(p, short, &[2, 2, 2], "images").unwrap_err();
        assert!(matches!(
            err,
            DataError::Truncated {
                expected: 24,
                found: 23,
                ..
            }
        ));
        assert!(err.to_string().contains("x-images-idx3-ubyte: truncated"));
        assert!(matches!(
            parse_idx(p, vec![0, 0], &[2], "labels"),
            Err(DataError::Truncated { .. })
        ));
    }

    #[test]
    fn files_are_found_raw_or_gzipped_and_checked() {
        use std::io::Write;
        let dir = tempfile::tempdir().unwrap();
        let bytes = b"hello".to_vec();
        let digest = hex(&Sha256::digest(&bytes));
        let digest: &'static str = Box::leak(digest.into_boxed_str());
        std::fs::write(dir.path().join("a"), &bytes).unwrap();
        assert_eq!(read_checked(dir.path(), "a", digest).unwrap(), bytes);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(&bytes).unwrap();
        std::fs::write(dir.path().join("b.gz"), gz.finish().unwrap()).unwrap();
        assert_eq!(read_checked(dir.path(), "b", digest).unwrap(), bytes);
        std::fs::write(dir.path().join("c"), b"hellO").unwrap();
        let err = read_checked(dir.path(), "c", digest).unwrap_err();
        assert!(
            matches!(err, DataError::BadChecksum { .. })
                && err.to_string().contains("bad checksum"),
            "{err}"
        );
        assert!(matches!(
            read_checked(dir.path(), "d", digest),
            Err(DataError::Missing { .. })
        ));
        std::fs::write(dir.path().join("e.gz"), b"\x1f\x8bnot really gzip").unwrap();
        assert!(matches!(
            read_checked(dir.path(), "e", digest),
            Err(DataError::Io { .. })
        ));
    }

    /// A gzip bomb (a few kilobytes inflating past any dataset file) is refused once
    /// [`MAX_FILE_BYTES`] is passed, without inflating the rest (issue 22).
    #[test]
    fn decompression_stops_past_the_largest_dataset_file() {
        use std::io::Write;
        let dir = tempfile::tempdir().unwrap();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        let zeros = vec![0u8; 1 << 20];
        for _ in 0..(MAX_FILE_BYTES >> 20) + 200 {
            gz.write_all(&zeros).unwrap();
        }
        let bomb = gz.finish().unwrap();
        assert!(bomb.len() < 1 << 20, "{} bytes", bomb.len());
        std::fs::write(dir.path().join("x.gz"), &bomb).unwrap();
        let err = read_checked(dir.path(), "x", "00").unwrap_err();
        assert!(matches!(err, DataError::TooLarge { .. }), "{err}");
        assert!(
            err.to_string()
                .contains("x.gz: larger than any dataset file"),
            "{err}"
        );
    }

    #[test]
    fn data_dir_prefers_the_flag() {
        assert_eq!(data_dir(Some(Path::new("/x"))), PathBuf::from("/x"));
    }
}
