//! Downloading from a local HTTP server on 127.0.0.1 that serves the project's shared data:
//! a dropped connection leaves a `.part` file that the next attempt resumes with a `Range`
//! request; a corrupt mirror is caught by the checksum and its file deleted.

use byzadam_data::download::{download, Progress};
use byzadam_data::{load, DataError, DatasetKind};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

/// The data directory's `mnist/`, which these tests serve (found, or downloaded into, as
/// `byzadam run` does: `byzadam_data::testing`).
fn shared_mnist() -> PathBuf {
    let manifest = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    byzadam_data::testing::dataset(DatasetKind::Mnist, manifest);
    byzadam_data::testing::data_dir(manifest).join("mnist")
}

#[derive(Default)]
struct Log {
    /// (path, first byte asked for) of every request.
    requests: Vec<(String, u64)>,
}

/// Serves `root` on 127.0.0.1 for at most `max_requests` requests. The first response for a
/// path containing `drop_first` stops after `drop_after` bytes; `corrupt` flips a byte of
/// every body.
fn serve(
    root: PathBuf,
    drop_first: &'static str,
    drop_after: usize,
    corrupt: bool,
    max_requests: usize,
) -> (String, Arc<Mutex<Log>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}/", listener.local_addr().unwrap());
    let log = Arc::new(Mutex::new(Log::default()));
    let log2 = log.clone();
    std::thread::spawn(move || {
        let mut dropped = false;
        for stream in listener.incoming().take(max_requests) {
            let Ok(mut stream) = stream else { break };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            let path = line
                .split_whitespace()
                .nth(1)
                .unwrap_or("/")
                .trim_start_matches('/')
                .to_string();
            let mut start = 0u64;
            loop {
                let mut h = String::new();
                if reader.read_line(&mut h).unwrap() == 0 || h == "\r\n" {
                    break;
                }
                if let Some(v) = h.to_ascii_lowercase().strip_prefix("range: bytes=") {
                    start = v.trim().trim_end_matches('-').parse().unwrap();
                }
            }
            log2.lock().unwrap().requests.push((path.clone(), start));
            let Ok(mut body) = std::fs::read(root.join(&path)) else {
                let _ = stream.write_all(
                    b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                );
                continue;
            };
            if corrupt {
                let mid = body.len() / 2;
                body[mid] ^= 0xff;
            }
            let status = if start > 0 {
                "206 Partial Content"
            } else {
                "200 OK"
            };
            let rest = &body[start as usize..];
            let header = format!(
                "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                rest.len()
            );
            stream.write_all(header.as_bytes()).unwrap();
            if !dropped && path.contains(drop_first) {
                dropped = true;
                let _ = stream.write_all(&rest[..drop_after.min(rest.len())]);
                let _ = stream.shutdown(std::net::Shutdown::Both);
                continue;
            }
            let _ = stream.write_all(rest);
        }
    });
    (base, log)
}

#[test]
fn an_interrupted_download_resumes_and_is_verified() {
    let root = shared_mnist();
    let (base, log) = serve(root, "train-images", 1 << 20, false, 20);
    let dir = tempfile::tempdir().unwrap();
    // First attempt: the connection drops after 1 MiB of train-images.
    let err = download(DatasetKind::Mnist, dir.path(), &[&base], Progress::Quiet).unwrap_err();
    assert!(
        matches!(err, DataError::Io { .. } | DataError::Truncated { .. }),
        "{err}"
    );
    let part = dir.path().join("mnist/train-images-idx3-ubyte.gz.part");
    let partial = std::fs::metadata(&part)
        .expect("a .part file is left")
        .len();
    assert!(partial > 0 && partial <= 1 << 20, "{partial}");
    assert!(
        !dir.path().join("mnist/train-images-idx3-ubyte.gz").exists(),
        "nothing incomplete is moved into place"
    );
    // Second attempt resumes from where the first stopped, then fetches the rest.
    download(DatasetKind::Mnist, dir.path(), &[&base], Progress::Quiet).unwrap();
    let requests = log.lock().unwrap().requests.clone();
    assert!(
        requests
            .iter()
            .any(|(p, s)| p.contains("train-images") && *s == partial),
        "no Range request from byte {partial}: {requests:?}"
    );
    let data = load(DatasetKind::Mnist, dir.path()).unwrap();
    assert_eq!(data.train.len(), 60_000);
    // A third call finds everything verified and asks for nothing.
    let before = log.lock().unwrap().requests.len();
    download(DatasetKind::Mnist, dir.path(), &[&base], Progress::Quiet).unwrap();
    assert_eq!(log.lock().unwrap().requests.len(), before);
}

#[test]
fn a_corrupt_mirror_is_caught_and_its_file_removed() {
    let (base, _log) = serve(shared_mnist(), "none", 0, true, 4);
    let dir = tempfile::tempdir().unwrap();
    let err = download(DatasetKind::Mnist, dir.path(), &[&base], Progress::Quiet).unwrap_err();
    // Flipping a byte of the gzip stream breaks either the gzip CRC or the SHA-256.
    assert!(
        matches!(err, DataError::BadChecksum { .. } | DataError::Io { .. }),
        "{err}"
    );
    assert!(!dir.path().join("mnist/train-images-idx3-ubyte.gz").exists());
}

#[test]
fn a_mirror_without_the_file_is_an_error_naming_the_url() {
    let empty = tempfile::tempdir().unwrap();
    let (base, _log) = serve(empty.path().to_path_buf(), "none", 0, false, 4);
    let dir = tempfile::tempdir().unwrap();
    let err = download(DatasetKind::Mnist, dir.path(), &[&base], Progress::Quiet)
        .unwrap_err()
        .to_string();
    assert!(err.contains("127.0.0.1") && err.contains("404"), "{err}");
    let _ = std::io::empty().read(&mut [0u8; 1]);
}
