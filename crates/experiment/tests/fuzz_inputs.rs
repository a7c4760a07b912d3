//! Fuzz tests of what the grid runner and the store read (issue 22): grid files (arbitrary
//! text and TOML built from grid keys with hostile values, parsed and expanded) and stores (a
//! real store's file mutated, and arbitrary bytes, opened read-only and read through every
//! query). 10,000 cases each: no panic, no case slower than a few seconds, no allocation past
//! a bound; a foreign or corrupt file is refused, never written.

#[path = "../../../tests/support/fuzz.rs"]
mod fuzz;

use byzadam_experiment::execute::{prepare_grid, GridJob};
use byzadam_experiment::store::Store;
use byzadam_experiment::Grid;
use proptest::prelude::*;
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::OnceLock;
use std::time::Duration;

#[global_allocator]
static ALLOC: fuzz::PeakAlloc = fuzz::PeakAlloc;

const BOUND: usize = 64 << 20;

fn timed<T>(what: &str, f: impl FnOnce() -> T) -> T {
    fuzz::timed(what, Duration::from_secs(5), BOUND, f)
}

fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<i64>().prop_map(|x| x.to_string()),
        Just("9223372036854775807".to_string()),
        Just("-1".to_string()),
        any::<f64>().prop_map(|x| format!("{x:?}")),
        Just("nan".to_string()),
        "\"[a-z_./]{0,12}\"".prop_map(|s| s),
        Just("[]".to_string()),
        Just("[0, 1, 2, 3, 4, 5, 6, 7, 8, 9]".to_string()),
        Just("[1, 1]".to_string()),
        Just("{}".to_string()),
        Just("{ name = \"median\" }".to_string()),
        Just("[{ name = \"trimmed_mean\", f = 9223372036854775807 }]".to_string()),
        Just("\"../../evil\"".to_string()),
    ]
}

fn section() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        Just("[base]\n".to_string()),
        Just("[axes]\n".to_string()),
        Just("[[exclude]]\n".to_string()),
        Just("[[include]]\n".to_string()),
    ]
}

fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(byzadam_sim::RunConfig::KEYS).prop_map(str::to_string),
        prop::sample::select(vec!["name", "description", "base", "axes"]).prop_map(str::to_string),
        "[a-z_]{1,8}".prop_map(|s| s),
    ]
}

/// A real store: a two-run grid on synthetic digits, as `byzadam grid` writes it.
fn store_bytes() -> &'static Vec<u8> {
    static BYTES: OnceLock<Vec<u8>> = OnceLock::new();
    BYTES.get_or_init(|| {
        let dir = tempfile::tempdir().expect("temp dir");
        let grid = dir.path().join("tiny.toml");
        std::fs::write(
            &grid,
            r#"
[base]
dataset = "synthetic"
model = { name = "logistic_regression" }
workers = 4
byzantine = 1
batch = 8
rounds = 3
eval_every = 1
eval_samples = 40
aggregator = { name = "median" }
attack = { name = "sign_flip" }
[axes]
seed = [0, 1]
"#,
        )
        .expect("write");
        let store = dir.path().join("tiny.db");
        let job = GridJob {
            file: grid,
            store: Some(store.clone()),
            shard: None,
            jobs: Some(1),
            threads: Some(1),
            checkpoint_every: Duration::from_secs(3600),
            data_dir: dir.path().to_path_buf(),
            download_progress: byzadam_data::download::Progress::Quiet,
        };
        let report = prepare_grid(&job)
            .expect("prepares")
            .run(&AtomicBool::new(false), &())
            .expect("runs");
        assert_eq!(report.pending, 2, "{:?}", report.outcome);
        std::fs::read(&store).expect("read the store")
    })
}

/// Opens `path` read-only and reads it through every query; `Err` when refused.
fn read_store(path: &Path) -> Result<(), String> {
    let store = Store::open_read_only(path).map_err(|e| e.to_string())?;
    let runs = store.runs(None).map_err(|e| e.to_string())?;
    store.grids().map_err(|e| e.to_string())?;
    store.results_versions().map_err(|e| e.to_string())?;
    for r in runs.iter().take(2) {
        store.curve(&r.id).map_err(|e| e.to_string())?;
    }
    let mut csv = Vec::new();
    store.export_csv(&mut csv).map_err(|e| e.to_string())?;
    Ok(())
}

proptest! {
    #![proptest_config(fuzz::config())]

    #[test]
    fn grid_arbitrary_text(text in "(?s).{0,300}") {
        timed("grid", || {
            if let Ok(g) = Grid::parse(&text, "fuzz.toml") {
                let _ = g.expand();
            }
        });
    }

    #[test]
    fn grid_hostile_values(
        lines in proptest::collection::vec((section(), key(), value()), 0..10),
    ) {
        let text: String = lines.iter().map(|(s, k, v)| format!("{s}{k} = {v}\n")).collect();
        timed("grid", || {
            if let Ok(g) = Grid::parse(&text, "fuzz.toml") {
                if let Ok(runs) = g.expand() {
                    for r in &runs {
                        assert!(r.config.validate().is_ok());
                    }
                }
            }
        });
    }

    #[test]
    fn store_mutated(
        flips in proptest::collection::vec((any::<prop::sample::Index>(), 1u8..=255), 1..6),
        cut in proptest::option::of(any::<prop::sample::Index>()),
    ) {
        let mut bytes = store_bytes().clone();
        for (at, x) in &flips {
            let i = at.index(bytes.len());
            bytes[i] ^= x;
        }
        if let Some(cut) = cut {
            let end = cut.index(bytes.len() + 1);
            bytes.truncate(end);
        }
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("mutated.db");
        std::fs::write(&path, &bytes).expect("write");
        timed("store", || { let _ = read_store(&path); });
        // Read-only: whatever happened, the file is as it was.
        prop_assert!(std::fs::read(&path).expect("read") == bytes);
    }

    #[test]
    fn store_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..1024)) {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("any.db");
        std::fs::write(&path, &bytes).expect("write");
        let out = timed("store", || read_store(&path));
        // Only an empty file may read as an (empty) store.
        prop_assert!(out.is_err() || bytes.is_empty(), "{:?}", out);
        prop_assert!(std::fs::read(&path).expect("read") == bytes);
    }
}

#[test]
fn the_real_store_reads() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("tiny.db");
    std::fs::write(&path, store_bytes()).expect("write");
    read_store(&path).expect("reads");
    assert_eq!(
        Store::open_read_only(&path)
            .unwrap()
            .runs(None)
            .unwrap()
            .len(),
        2
    );
}
