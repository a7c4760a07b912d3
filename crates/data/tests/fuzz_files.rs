//! Fuzz tests of the dataset parsers and loaders (issue 22): IDX, CIFAR-10 binary batches,
//! gzip, and `read_checked` on files in a data directory. 10,000 cases each of arbitrary and
//! structure-aware bytes: no panic, no case slower than a second, no allocation larger than a
//! bound (a gzip bomb stops at the dataset-file limit).

#[path = "../../../tests/support/fuzz.rs"]
mod fuzz;

use byzadam_data::{parsers, read_checked, DataError};
use proptest::prelude::*;
use std::io::Write;
use std::time::Duration;

#[global_allocator]
static ALLOC: fuzz::PeakAlloc = fuzz::PeakAlloc;

/// Past the largest dataset file (48,000,000 bytes): what a gzip bomb may cost before it is
/// refused, and nothing here needs more.
const BOUND: usize = 100 << 20;

fn timed<T>(what: &str, f: impl FnOnce() -> T) -> T {
    fuzz::timed(what, Duration::from_secs(1), BOUND, f)
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(bytes).expect("in memory");
    e.finish().expect("in memory")
}

proptest! {
    #![proptest_config(fuzz::config())]

    #[test]
    fn idx_arbitrary_bytes(
        bytes in proptest::collection::vec(any::<u8>(), 0..256),
        dims in proptest::collection::vec(any::<u32>(), 0..4),
    ) {
        timed("idx", || parsers::idx(bytes, &dims).ok());
    }

    #[test]
    fn idx_hostile_headers(
        dims in proptest::collection::vec(0u32..20, 1..4),
        claimed in proptest::collection::vec(any::<u32>(), 1..4),
        magic_off in any::<bool>(),
        data in proptest::collection::vec(any::<u8>(), 0..512),
    ) {
        // A header with the right or a hostile magic and the claimed dimensions.
        let mut bytes = vec![0, 0, 8, claimed.len() as u8 + magic_off as u8];
        for d in &claimed {
            bytes.extend_from_slice(&d.to_be_bytes());
        }
        bytes.extend_from_slice(&data);
        let out = timed("idx", || parsers::idx(bytes.clone(), &dims));
        if let Ok(v) = out {
            // Accepted only with the expected dimensions and exactly their product of bytes.
            prop_assert_eq!(&claimed, &dims);
            prop_assert_eq!(v.len(), dims.iter().map(|&d| d as usize).product::<usize>());
        }
    }

    #[test]
    fn cifar_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..4096)) {
        let out = timed("cifar", || parsers::cifar_batch(&bytes));
        let truncated = matches!(out, Err(DataError::Truncated { .. }));
        prop_assert!(truncated, "{:?}", out);
    }

    #[test]
    fn gzip_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        timed("gzip", || parsers::gunzip(&bytes).ok());
    }

    #[test]
    fn gzip_mutated_streams(
        content in proptest::collection::vec(any::<u8>(), 0..2048),
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..4),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut z = gzip(&content);
        // Intact, it decompresses to the content.
        prop_assert_eq!(timed("gzip", || parsers::gunzip(&z)).ok(), Some(content.clone()));
        for (at, x) in &flips {
            let i = at.index(z.len());
            z[i] ^= x;
        }
        timed("gzip", || parsers::gunzip(&z).ok());
        let end = cut.index(z.len() + 1);
        timed("gzip", || parsers::gunzip(&z[..end]).ok());
    }
}

/// `read_checked` on whatever a data directory holds (raw or `.gz`): only the exact official
/// bytes pass, anything else is an error naming the file.
#[test]
fn read_checked_refuses_every_other_file() {
    let dir = tempfile::tempdir().expect("temp dir");
    let name = "t10k-labels-idx1-ubyte";
    let expected = byzadam_data::checksums::expected(&byzadam_data::checksums::MNIST, name)
        .expect("in the table");
    let mut runner = proptest::test_runner::TestRunner::new(fuzz::config());
    runner
        .run(
            &(
                proptest::collection::vec(any::<u8>(), 0..256),
                any::<bool>(),
            ),
            |(bytes, gz)| {
                let _ = std::fs::remove_file(dir.path().join(name));
                let _ = std::fs::remove_file(dir.path().join(format!("{name}.gz")));
                let (file, content) = if gz {
                    (format!("{name}.gz"), gzip(&bytes))
                } else {
                    (name.to_string(), bytes.clone())
                };
                std::fs::write(dir.path().join(&file), content).expect("write");
                let out = timed("read_checked", || read_checked(dir.path(), name, expected));
                match out {
                    Err(DataError::BadChecksum { path, .. }) => {
                        prop_assert!(path.ends_with(&file))
                    }
                    other => prop_assert!(false, "{other:?}"),
                }
                Ok(())
            },
        )
        .expect("every case refused");
}

#[test]
fn a_gzip_bomb_stops_at_the_limit() {
    // 60 MB of zeros compress to ~60 KB: decompression stops past 48,000,000 bytes.
    let bomb = gzip(&vec![0u8; 60_000_000]);
    assert!(matches!(
        parsers::gunzip(&bomb),
        Err(DataError::TooLarge { .. })
    ));
}
