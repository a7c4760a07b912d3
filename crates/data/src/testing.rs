//! Data for tests, benchmarks and scripts, found as `byzadam run` finds it (issue 21): the
//! directory in `$BYZADAM_DATA_DIR`; else the project's `shared/data` beside the checkout when
//! it exists; else `data/` in the workspace (the CLI's default, git-ignored). A dataset missing
//! there is downloaded into it and checked against its official SHA-256; only when neither
//! works does [`dataset`] fail, naming the file and the command that fetches it.

use crate::download::{load_or_download, Progress};
use crate::{DatasetKind, Split, DATA_DIR_ENV};
use std::path::{Path, PathBuf};

/// The data directory for the crate whose manifest directory is `manifest_dir` (a crate of
/// this workspace: `crates/<name>`): `$BYZADAM_DATA_DIR`, else `<workspace>/../shared/data`
/// when it exists, else `<workspace>/data`.
pub fn data_dir(manifest_dir: &Path) -> PathBuf {
    if let Some(d) = std::env::var_os(DATA_DIR_ENV).filter(|d| !d.is_empty()) {
        return PathBuf::from(d);
    }
    let workspace = manifest_dir.join("../..");
    let shared = workspace.join("../shared/data");
    if shared.is_dir() {
        shared
    } else {
        workspace.join("data")
    }
}

/// `kind` from [`data_dir`], downloaded (and checked) into it when missing. The error names
/// what is missing and how to get it.
pub fn try_dataset(kind: DatasetKind, manifest_dir: &Path) -> Result<Split, String> {
    let dir = data_dir(manifest_dir);
    let found = match crate::load(kind, &dir) {
        Ok(split) => return Ok(split),
        Err(e) => e,
    };
    load_or_download(kind, &dir, Progress::Quiet).map_err(|e| {
        format!(
            "this test needs {name}: {found}; downloading it failed: {e}. Fetch it with `cargo run --release -p byzadam -- data fetch {name} --data-dir {dir}` \
             on a machine with network access, or set {DATA_DIR_ENV} to a directory holding {name}/",
            name = kind.folder(),
            dir = dir.display()
        )
    })
}

/// [`try_dataset`], panicking with its message: for tests, which must fail (never skip)
/// when their data cannot be had.
pub fn dataset(kind: DatasetKind, manifest_dir: &Path) -> Split {
    try_dataset(kind, manifest_dir).unwrap_or_else(|e| panic!("{e}"))
}

/// An `.npy` file (format 1.0) written by hand, independently of the reader under test:
/// `descr` (`"<f4"`, `"<f8"`, …), the order flag, the shape as NumPy writes it inside its
/// parentheses (`"3,"`, `"2, 3"`) and the raw data bytes.
pub fn npy_bytes(descr: &str, fortran: bool, shape: &str, data: &[u8]) -> Vec<u8> {
    let mut header = format!(
        "{{'descr': '{descr}', 'fortran_order': {}, 'shape': ({shape}), }}",
        if fortran { "True" } else { "False" }
    );
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend((header.len() as u16).to_le_bytes());
    out.extend(header.as_bytes());
    out.extend(data);
    out
}
