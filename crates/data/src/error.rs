use std::path::PathBuf;

/// Everything that can go wrong finding, reading or splitting data. Every variant that concerns
/// a file names it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DataError {
    /// Neither the file nor its `.gz` exists.
    #[error("{path}: missing (looked for it and for {path}.gz)")]
    Missing {
        /// The uncompressed path looked for.
        path: PathBuf,
    },
    /// Reading failed.
    #[error("{path}: {error}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        error: std::io::Error,
    },
    /// Fewer bytes than the format requires.
    #[error("{path}: truncated: {found} bytes, expected {expected}")]
    Truncated {
        /// The file.
        path: PathBuf,
        /// Bytes the header or format requires.
        expected: usize,
        /// Bytes present (decompressed).
        found: usize,
    },
    /// The IDX magic number is not the expected one.
    #[error("{path}: wrong magic number {found:#010x}, expected {expected:#010x} ({what})")]
    WrongMagic {
        /// The file.
        path: PathBuf,
        /// The magic read.
        found: u32,
        /// The magic expected.
        expected: u32,
        /// What the file should be.
        what: &'static str,
    },
    /// The header's dimensions are not the dataset's.
    #[error("{path}: header says {found:?}, expected {expected:?}")]
    WrongShape {
        /// The file.
        path: PathBuf,
        /// Dimensions read.
        found: Vec<u32>,
        /// Dimensions expected.
        expected: Vec<u32>,
    },
    /// The decompressed bytes do not have the official SHA-256.
    #[error("{path}: bad checksum: SHA-256 of the decompressed bytes is {found}, expected {expected} (corrupt or not the official file)")]
    BadChecksum {
        /// The file.
        path: PathBuf,
        /// Hex digest found.
        found: String,
        /// Hex digest expected.
        expected: &'static str,
    },
    /// A label outside `0..classes`.
    #[error("{path}: label {label} at record {index} is not a class (0..{classes})")]
    BadLabel {
        /// The file.
        path: PathBuf,
        /// Record index.
        index: usize,
        /// The label.
        label: u8,
        /// Number of classes.
        classes: usize,
    },
    /// The file (decompressed) is larger than any dataset file: corrupt, or a gzip bomb.
    #[error("{path}: larger than any dataset file (over {limit} bytes decompressed): corrupt, or not the official file")]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// The most bytes read.
        limit: u64,
    },
    /// A partition cannot be made as asked.
    #[error("partition: {0}")]
    Partition(String),
}
