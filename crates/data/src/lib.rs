//! # byzadam-data
//!
//! The datasets of the thesis and the ways researchers split them across workers:
//!
//! - [`load`]: MNIST, Fashion-MNIST (IDX) and CIFAR-10 (binary version), raw or gzip-compressed,
//!   every file checked against the SHA-256 of its decompressed bytes ([`checksums`]).
//! - [`synthetic`]: ten classes of 28×28 digit-like images drawn from a seed, for work with no
//!   files and no network.
//! - [`partition`]: homogeneous (the thesis's equal per-class counts), iid, Dirichlet(α),
//!   γ-similarity and extreme (sorted by label) splits, each seeded, each using every sample at
//!   most once, with a per-worker summary.
//! - [`flip_label`]: the label-flip transform `y → C − 1 − y`.
//!
//! Data directory: `--data-dir`, then `BYZADAM_DATA_DIR`, then `./data` ([`data_dir`]); inside it,
//! `mnist/`, `fashion-mnist/` and `cifar10/` as in the project's shared data folder.
//!
//! This crate holds no model code.

pub mod checksums;
mod dataset;
pub mod download;
mod error;
mod files;
pub mod npy;
pub mod partition;
pub mod sampler;
pub mod subsets;
pub mod synthetic;
pub mod testing;

pub use dataset::{Dataset, DatasetKind, ImageShape, Normalization, Split};
pub use download::{load_for_run, RunData};
pub use error::DataError;
pub use files::{data_dir, load, parsers, read_checked, DATA_DIR_ENV};

/// Label flip: `y → classes − 1 − y` (the thesis's `9 − y` for ten classes).
///
/// ```
/// assert_eq!(byzadam_data::flip_label(0, 10), 9);
/// assert_eq!(byzadam_data::flip_label(7, 10), 2);
/// ```
pub fn flip_label(y: u8, classes: usize) -> u8 {
    (classes - 1 - y as usize) as u8
}
