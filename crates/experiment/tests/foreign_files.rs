//! A file that is not a byzadam store is never written to (issue 22): reading it (`store
//! list`, `report`, `byzadam.Store`, a merge's inputs) and opening it to write into (a grid's
//! `--store`, a merge's output) refuse it and leave it byte-identical.

use byzadam_experiment::store::Store;
use std::path::Path;

fn bytes(p: &Path) -> Vec<u8> {
    std::fs::read(p).unwrap()
}

#[test]
fn foreign_files_are_refused_and_left_byte_identical() {
    let dir = tempfile::tempdir().unwrap();
    let sqlite = dir.path().join("other.db");
    {
        let c = rusqlite::Connection::open(&sqlite).unwrap();
        c.execute_batch("CREATE TABLE people (name TEXT); INSERT INTO people VALUES ('ada');")
            .unwrap();
    }
    let empty = dir.path().join("empty.csv");
    std::fs::write(&empty, b"").unwrap();
    let text = dir.path().join("table.csv");
    std::fs::write(&text, b"a,b\n1,2\n").unwrap();
    for (path, readable_as_empty) in [(&sqlite, false), (&empty, true), (&text, false)] {
        let before = bytes(path);
        let e = Store::open_read_only(path)
            .err()
            .expect("refused")
            .to_string();
        assert!(
            e.contains("not a byzadam results store") || e.contains("not a database"),
            "{}: {e}",
            path.display()
        );
        if !readable_as_empty {
            // Opening to write refuses it too (an empty file may become a store).
            let e = Store::open(path).err().expect("refused").to_string();
            assert!(
                e.contains("untouched") || e.contains("not a database"),
                "{e}"
            );
        }
        let mut merged = Store::open(&dir.path().join("merged.db")).unwrap();
        assert!(merged.merge(&[path.to_path_buf()]).is_err());
        assert_eq!(bytes(path), before, "{} was modified", path.display());
        let mut side = path.clone().into_os_string();
        side.push("-wal");
        assert!(
            !Path::new(&side).exists(),
            "a WAL file appeared beside {}",
            path.display()
        );
    }
}

#[test]
fn a_store_opens_read_only_and_reads() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.db");
    {
        let mut s = Store::open(&path).unwrap();
        s.register_grid("g", &["a", "b"]).unwrap();
    }
    let s = Store::open_read_only(&path).unwrap();
    assert_eq!(s.grids().unwrap(), vec![("g".to_string(), 2, 0)]);
    assert!(s.runs(None).unwrap().is_empty());
    assert!(Store::open_read_only(&dir.path().join("missing.db")).is_err());
}

/// Processes sharding one grid into one new store open it at the same moment: each must see
/// either nothing or the whole schema. (The schema used to be made outside a transaction, WAL
/// mode first: a second opener could find a database with some or none of byzadam's tables
/// and refuse it as a foreign file, which `bt.grid(shard=…)`'s two-process test hit.)
#[test]
fn openers_racing_on_a_new_store_all_open_it() {
    use std::sync::{Arc, Barrier};
    let dir = tempfile::tempdir().unwrap();
    for attempt in 0..20 {
        let path = dir.path().join(format!("race-{attempt}.db"));
        let openers = 6;
        let barrier = Arc::new(Barrier::new(openers));
        let handles: Vec<_> = (0..openers)
            .map(|_| {
                let (path, barrier) = (path.clone(), Arc::clone(&barrier));
                std::thread::spawn(move || {
                    barrier.wait();
                    Store::open(&path).map(|_| ()).map_err(|e| e.to_string())
                })
            })
            .collect();
        for h in handles {
            h.join()
                .unwrap()
                .unwrap_or_else(|e| panic!("attempt {attempt}: {e}"));
        }
        let conn = rusqlite::Connection::open(&path).unwrap();
        let versions: i64 = conn
            .query_row(
                "SELECT COUNT(*) FROM meta WHERE key = 'schema_version'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(versions, 1);
        let mode: String = conn
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
    }
}
