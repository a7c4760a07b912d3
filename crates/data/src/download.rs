//! Fetching a missing dataset from its canonical public mirrors: resumable (HTTP `Range`),
//! with a progress bar on a terminal, and verified against the official SHA-256 before it is
//! used. A file is only ever moved into place once complete and verified; an interrupted
//! download leaves a `.part` file that the next attempt resumes.

use crate::files::read_checked;
use crate::{checksums, DataError, DatasetKind};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Where each dataset is published. Each entry is a base URL; file names are appended.
pub fn mirrors(kind: DatasetKind) -> &'static [&'static str] {
    match kind {
        DatasetKind::Mnist => &[
            "https://ossci-datasets.s3.amazonaws.com/mnist/",
            "https://storage.googleapis.com/cvdf-datasets/mnist/",
        ],
        DatasetKind::FashionMnist => {
            &["http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"]
        }
        DatasetKind::Cifar10 => &["https://www.cs.toronto.edu/~kriz/"],
        DatasetKind::Synthetic => &[],
    }
}

/// How a download reports progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// A progress bar on stderr (hidden when stderr is not a terminal).
    Bar,
    /// Nothing.
    Quiet,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> DataError + '_ {
    move |error| DataError::Io {
        path: path.to_path_buf(),
        error,
    }
}

fn net(url: &str, e: impl std::fmt::Display) -> DataError {
    // ureq's messages start with the URL, which the error's path already names.
    let text = e.to_string();
    let text = text
        .strip_prefix(&format!("{url}: "))
        .unwrap_or(&text)
        .to_string();
    DataError::Io {
        path: PathBuf::from(url),
        error: std::io::Error::other(text),
    }
}

/// Downloads `url` to `dest`, resuming from `dest.part` if a previous attempt left one.
pub fn fetch(url: &str, dest: &Path, progress: Progress) -> Result<(), DataError> {
    let part = dest.with_extension(format!(
        "{}.part",
        dest.extension().and_then(|e| e.to_str()).unwrap_or("")
    ));
    let have = std::fs::metadata(&part).map(|m| m.len()).unwrap_or(0);
    let agent = ureq::AgentBuilder::new()
        .timeout_connect(Duration::from_secs(20))
        .timeout_read(Duration::from_secs(60))
        .build();
    let mut request = agent.get(url);
    if have > 0 {
        request = request.set("Range", &format!("bytes={have}-"));
    }
    let response = request.call().map_err(|e| net(url, e))?;
    // 206: the server resumes where we stopped; 200: it sends everything again.
    let resumed = response.status() == 206;
    let start = if resumed { have } else { 0 };
    let total = response
        .header("Content-Length")
        .and_then(|v| v.parse::<u64>().ok())
        .map(|len| len + start);
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .append(resumed)
        .truncate(!resumed)
        .open(&part)
        .map_err(io(&part))?;
    let bar = match progress {
        Progress::Bar => indicatif::ProgressBar::new(total.unwrap_or(0)),
        Progress::Quiet => indicatif::ProgressBar::hidden(),
    };
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} ETA {eta}",
        )
        .expect("valid template")
        .progress_chars("=> "),
    );
    bar.set_message(
        dest.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
    );
    bar.set_position(start);
    let mut reader = response.into_reader();
    let mut buf = vec![0u8; 1 << 16];
    let mut written = start;
    loop {
        let k = reader.read(&mut buf).map_err(|e| net(url, e))?;
        if k == 0 {
            break;
        }
        file.write_all(&buf[..k]).map_err(io(&part))?;
        written += k as u64;
        bar.set_position(written);
    }
    file.sync_all().map_err(io(&part))?;
    bar.finish_and_clear();
    if let Some(total) = total {
        if written != total {
            return Err(DataError::Truncated {
                path: part,
                expected: total as usize,
                found: written as usize,
            });
        }
    }
    std::fs::rename(&part, dest).map_err(io(dest))
}

/// Fetches `file` from the first of `mirrors` that serves it; the last mirror's error if none
/// does (a partial `.part` left by one mirror is resumed from the next).
fn fetch_first(
    mirrors: &[&str],
    file: &str,
    dest: &Path,
    progress: Progress,
) -> Result<(), DataError> {
    let mut last = DataError::Missing {
        path: dest.to_path_buf(),
    };
    for base in mirrors {
        match fetch(&format!("{base}{file}"), dest, progress) {
            Ok(()) => return Ok(()),
            Err(e) => last = e,
        }
    }
    Err(last)
}

/// Downloads every file of `kind` that `dir/<folder>` lacks, from the first mirror that
/// serves it, and verifies each against its official SHA-256 (deleting it if wrong).
pub fn download(
    kind: DatasetKind,
    dir: &Path,
    mirrors: &[&str],
    progress: Progress,
) -> Result<(), DataError> {
    let folder = dir.join(kind.folder());
    std::fs::create_dir_all(&folder).map_err(io(&folder))?;
    match kind {
        DatasetKind::Mnist | DatasetKind::FashionMnist => {
            let table: &'static [(&str, &str)] = if kind == DatasetKind::Mnist {
                &checksums::MNIST
            } else {
                &checksums::FASHION_MNIST
            };
            for (name, digest) in table {
                if read_checked(&folder, name, digest).is_ok() {
                    continue;
                }
                let gz = folder.join(format!("{name}.gz"));
                fetch_first(mirrors, &format!("{name}.gz"), &gz, progress)?;
                if let Err(e) = read_checked(&folder, name, digest) {
                    let _ = std::fs::remove_file(&gz);
                    return Err(e);
                }
            }
            Ok(())
        }
        DatasetKind::Cifar10 => {
            if checksums::CIFAR10
                .iter()
                .all(|(n, d)| read_checked(&folder, n, d).is_ok())
            {
                return Ok(());
            }
            let archive = folder.join("cifar-10-binary.tar.gz");
            fetch_first(mirrors, "cifar-10-binary.tar.gz", &archive, progress)?;
            extract_cifar(&archive, &folder, &checksums::CIFAR10)?;
            std::fs::remove_file(&archive).map_err(io(&archive))
        }
        DatasetKind::Synthetic => Ok(()),
    }
}

/// Extracts the `.bin` files named in `table` from the official archive
/// (`cifar-10-batches-bin/*.bin`) into `folder`, each verified.
pub(crate) fn extract_cifar(
    archive: &Path,
    folder: &Path,
    table: &'static [(&'static str, &'static str)],
) -> Result<(), DataError> {
    let file = std::fs::File::open(archive).map_err(io(archive))?;
    let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(std::io::BufReader::new(file)));
    for entry in tar.entries().map_err(io(archive))? {
        let mut entry = entry.map_err(io(archive))?;
        let path = entry.path().map_err(io(archive))?.into_owned();
        let Some(name) = path.file_name().and_then(|n| n.to_str()).map(str::to_owned) else {
            continue;
        };
        if table.iter().any(|(n, _)| *n == name) {
            let dest = folder.join(&name);
            let mut bytes = Vec::new();
            entry.read_to_end(&mut bytes).map_err(io(archive))?;
            std::fs::write(&dest, &bytes).map_err(io(&dest))?;
        }
    }
    for (name, digest) in table {
        read_checked(folder, name, digest)?;
    }
    Ok(())
}

/// Loads `kind` from `dir`, downloading what is missing first.
pub fn load_or_download(
    kind: DatasetKind,
    dir: &Path,
    progress: Progress,
) -> Result<crate::Split, DataError> {
    match crate::load(kind, dir) {
        Ok(split) => Ok(split),
        Err(DataError::Missing { .. }) => {
            download(kind, dir, mirrors(kind), progress)?;
            crate::load(kind, dir)
        }
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::{Digest, Sha256};

    #[test]
    fn cifar_archive_members_are_extracted_and_verified() {
        let dir = tempfile::tempdir().unwrap();
        let archive = dir.path().join("a.tar.gz");
        let mut builder = tar::Builder::new(flate2::write::GzEncoder::new(
            std::fs::File::create(&archive).unwrap(),
            flate2::Compression::fast(),
        ));
        for (name, body) in [
            ("cifar-10-batches-bin/x.bin", &b"hello"[..]),
            ("cifar-10-batches-bin/readme.html", b"ignored"),
        ] {
            let mut header = tar::Header::new_gnu();
            header.set_size(body.len() as u64);
            header.set_mode(0o644);
            header.set_cksum();
            builder.append_data(&mut header, name, body).unwrap();
        }
        builder.into_inner().unwrap().finish().unwrap();
        let digest: String = Sha256::digest(b"hello")
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let table: &'static [(&'static str, &'static str)] =
            Box::leak(Box::new([("x.bin", &*Box::leak(digest.into_boxed_str()))]));
        extract_cifar(&archive, dir.path(), table).unwrap();
        assert_eq!(std::fs::read(dir.path().join("x.bin")).unwrap(), b"hello");
        assert!(!dir.path().join("readme.html").exists());
        let wrong: &'static [(&'static str, &'static str)] = &[("x.bin", "00")];
        assert!(matches!(
            extract_cifar(&archive, dir.path(), wrong),
            Err(DataError::BadChecksum { .. })
        ));
    }
}

/// A run's data, as `byzadam run`, `byzadam.run` and every other front end get it.
#[derive(Debug)]
pub struct RunData {
    /// The images.
    pub split: crate::Split,
    /// What they are: the dataset asked for, or [`DatasetKind::Synthetic`] after a fallback.
    pub kind: DatasetKind,
    /// Why synthetic digits stand in for the dataset asked for (`None`: no fallback).
    pub fallback: Option<String>,
}

/// The data of a run of `kind`: synthetic digits generated from `seed`; else the dataset
/// from `dir`, downloading (and checking) what is missing; else — only when
/// `synthetic_fallback` (the quickstart, with no data directory named) and the dataset is
/// *missing* (not corrupt) — synthetic digits, with the reason. A corrupt, truncated or
/// foreign file is always an error naming it; a failed download leaves no empty directory
/// behind. Errors name the dataset, the directory and the file.
pub fn load_for_run(
    kind: DatasetKind,
    dir: &Path,
    seed: u64,
    synthetic_fallback: bool,
    progress: Progress,
) -> Result<RunData, String> {
    let synthetic = || crate::synthetic::generate(seed, 60_000, 10_000);
    if kind == DatasetKind::Synthetic {
        return Ok(RunData {
            split: synthetic(),
            kind,
            fallback: None,
        });
    }
    let context = |e: &dyn std::fmt::Display| {
        format!("loading {} from {}: {e}", kind.folder(), dir.display())
    };
    let missing = match crate::load(kind, dir) {
        Ok(split) => {
            return Ok(RunData {
                split,
                kind,
                fallback: None,
            })
        }
        Err(e @ DataError::Missing { .. }) => e,
        Err(e) => return Err(context(&e)),
    };
    let folder = dir.join(kind.folder());
    let created: Vec<PathBuf> = [dir.to_path_buf(), folder.clone()]
        .into_iter()
        .filter(|d| !d.exists())
        .collect();
    match load_or_download(kind, dir, progress) {
        Ok(split) => Ok(RunData {
            split,
            kind,
            fallback: None,
        }),
        Err(e) => {
            // Leave no empty directory the attempt made (deepest first; `remove_dir` only
            // removes empty ones).
            for d in created.iter().rev() {
                let _ = std::fs::remove_dir(d);
            }
            let why = context(&format!("{missing}; downloading it failed: {e}"));
            if synthetic_fallback {
                Ok(RunData {
                    split: synthetic(),
                    kind: DatasetKind::Synthetic,
                    fallback: Some(why),
                })
            } else {
                Err(why)
            }
        }
    }
}
