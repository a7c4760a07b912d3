//! The runner and the store together: runs land in the store with the same results as a run
//! on its own; a stopped grid resumes mid-run from checkpoints and ends with the same bits;
//! shards partition a grid; stores merge; the CSV export is the tidy table.

use byzadam_data::{synthetic, Split};
use byzadam_experiment::runner::{self, checkpoint_path, Event, Options};
use byzadam_experiment::store::Store;
use byzadam_experiment::{Grid, Run, Shard};
use byzadam_sim::{RoundMetrics, RunConfig, Simulation};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

fn data() -> Arc<Split> {
    static DATA: OnceLock<Arc<Split>> = OnceLock::new();
    DATA.get_or_init(|| Arc::new(synthetic::generate(0, 3000, 300)))
        .clone()
}

const GRID: &str = r#"
name = "small"
[base]
dataset = "synthetic"
model = { name = "mlp", hidden = [16] }
workers = 7
byzantine = 2
batch = 8
rounds = 16
eval_every = 4
optimizer = { name = "dra", lr = { name = "constant", value = 0.01 }, beta1 = 0.9, beta2 = 0.999 }
[axes]
aggregator = [{ name = "average" }, { name = "median" }, { name = "centered_clipping", tau = 1.0 }]
attack = ["none", { name = "sign_flip" }]
"#;

fn runs() -> Vec<Run> {
    Grid::parse(GRID, "small.toml").unwrap().expand().unwrap()
}

fn lookup(_: &RunConfig) -> Result<Arc<Split>, String> {
    Ok(data())
}

fn options(jobs: usize) -> Options {
    Options {
        jobs,
        threads: 1,
        checkpoint_every: Duration::ZERO, // every round: the hardest case for resumption
    }
}

fn alone(config: &RunConfig) -> Vec<RoundMetrics> {
    let mut sim = Simulation::new(config.clone(), &data()).unwrap();
    let mut m = Vec::new();
    sim.run(&mut m).unwrap();
    m
}

/// The stored curve of a run: (round, accuracy) at each evaluation.
fn stored_curve(store: &Store, id: &str) -> Vec<(u64, u64)> {
    store
        .curve(id)
        .unwrap()
        .into_iter()
        .map(|(r, a)| (r, a.to_bits()))
        .collect()
}

fn expected_curve(m: &[RoundMetrics]) -> Vec<(u64, u64)> {
    m.iter()
        .filter_map(|x| x.eval.map(|e| (x.round, e.accuracy.to_bits())))
        .collect()
}

#[test]
fn every_run_is_stored_with_the_results_of_a_run_alone() {
    let dir = tempfile::tempdir().unwrap();
    let runs = runs();
    let store = Mutex::new(Store::open(&dir.path().join("s.db")).unwrap());
    let finished = AtomicUsize::new(0);
    let on = |e: Event| {
        if let Event::Finished { .. } = e {
            finished.fetch_add(1, Ordering::SeqCst);
        }
    };
    let outcome = runner::run_all(
        &runs,
        &store,
        &lookup,
        &options(2),
        &AtomicBool::new(false),
        &on,
    );
    assert_eq!(outcome.finished, 6);
    assert!(outcome.failed.is_empty() && outcome.stopped == 0);
    assert_eq!(finished.load(Ordering::SeqCst), 6);
    let store = store.into_inner().unwrap();
    assert_eq!(store.done().unwrap().len(), 6);
    let stored = store.runs(None).unwrap();
    for run in &runs {
        let m = alone(&run.config);
        assert_eq!(
            stored_curve(&store, &run.id),
            expected_curve(&m),
            "{}",
            run.id
        );
        let s = stored.iter().find(|s| s.id == run.id).unwrap();
        assert_eq!(s.config, run.config);
        let last = m.last().unwrap().eval.unwrap();
        assert_eq!(s.summary.final_accuracy.to_bits(), last.accuracy.to_bits());
        // The per-class recall of the last evaluation is stored, as a run alone reports it.
        let mut sim = Simulation::new(run.config.clone(), &data()).unwrap();
        let summary = sim.run(&mut Vec::new()).unwrap();
        assert_eq!(summary.class_recall.len(), 10);
        // (JSON in the store: serde_json's default parser may be one ulp off.)
        let stored = &s.summary.class_recall;
        assert_eq!(stored.len(), 10);
        for (a, b) in stored.iter().zip(&summary.class_recall) {
            assert!(
                (a - b).abs() <= 1e-15 * b.abs().max(1.0),
                "{}: {a} vs {b}",
                run.id
            );
        }
    }
    // No checkpoint is left behind by finished runs.
    let left = std::fs::read_dir(store.checkpoint_dir()).unwrap().count();
    assert_eq!(left, 0);
}

#[test]
fn a_stopped_grid_resumes_mid_run_and_ends_with_the_same_bits() {
    let dir = tempfile::tempdir().unwrap();
    let runs = runs();
    let store = Mutex::new(Store::open(&dir.path().join("s.db")).unwrap());
    // Stop once the first run reaches round 7: it (and the other one in flight) checkpoint.
    let stop = AtomicBool::new(false);
    let on = |e: Event| {
        if let Event::Round { metrics, .. } = e {
            if metrics.round == 7 {
                stop.store(true, Ordering::SeqCst);
            }
        }
    };
    let first = runner::run_all(&runs, &store, &lookup, &options(2), &stop, &on);
    assert_eq!(first.finished, 0);
    assert_eq!(first.stopped, runs.len());
    let ckpt_dir = store.lock().unwrap().checkpoint_dir();
    let checkpointed: Vec<&Run> = runs
        .iter()
        .filter(|r| checkpoint_path(&ckpt_dir, &r.id).exists())
        .collect();
    assert!(!checkpointed.is_empty(), "runs in flight left checkpoints");
    assert!(
        store.lock().unwrap().done().unwrap().is_empty(),
        "nothing half-done counts as done"
    );
    // Resume: checkpointed runs start where they stopped, not from round 0.
    let resumed_from = Mutex::new(Vec::new());
    let on = |e: Event| {
        if let Event::Started { run, from_round } = e {
            resumed_from
                .lock()
                .unwrap()
                .push((run.id.clone(), from_round));
        }
    };
    let second = runner::run_all(
        &runs,
        &store,
        &lookup,
        &options(1),
        &AtomicBool::new(false),
        &on,
    );
    assert_eq!(second.finished, runs.len());
    let from = resumed_from.into_inner().unwrap();
    for r in &checkpointed {
        let f = from.iter().find(|(id, _)| *id == r.id).unwrap().1;
        assert!(f >= 1, "run {} resumed from round {f}", r.id);
    }
    let store = store.into_inner().unwrap();
    for run in &runs {
        assert_eq!(
            stored_curve(&store, &run.id),
            expected_curve(&alone(&run.config)),
            "{}",
            run.id
        );
    }
}

#[test]
fn a_corrupt_checkpoint_is_reported_and_the_run_starts_over() {
    let dir = tempfile::tempdir().unwrap();
    let runs: Vec<Run> = runs().into_iter().take(1).collect();
    let store = Mutex::new(Store::open(&dir.path().join("s.db")).unwrap());
    let ckpt_dir = store.lock().unwrap().checkpoint_dir();
    std::fs::create_dir_all(&ckpt_dir).unwrap();
    std::fs::write(checkpoint_path(&ckpt_dir, &runs[0].id), b"garbage").unwrap();
    let ignored = AtomicUsize::new(0);
    let on = |e: Event| {
        if let Event::CheckpointIgnored { .. } = e {
            ignored.fetch_add(1, Ordering::SeqCst);
        }
    };
    let o = runner::run_all(
        &runs,
        &store,
        &lookup,
        &options(1),
        &AtomicBool::new(false),
        &on,
    );
    assert_eq!((o.finished, ignored.load(Ordering::SeqCst)), (1, 1));
    let store = store.into_inner().unwrap();
    assert_eq!(
        stored_curve(&store, &runs[0].id),
        expected_curve(&alone(&runs[0].config))
    );
}

#[test]
fn shards_partition_the_grid() {
    let all = runs();
    let mut seen: Vec<String> = Vec::new();
    for i in 0..4 {
        let shard: Shard = format!("{i}/4").parse().unwrap();
        seen.extend(shard.select(all.clone()).into_iter().map(|r| r.id));
    }
    seen.sort();
    let mut ids: Vec<String> = all.iter().map(|r| r.id.clone()).collect();
    ids.sort();
    assert_eq!(seen, ids);
    for bad in ["4/4", "1/0", "x/2", "1", "-1/3"] {
        assert!(bad.parse::<Shard>().is_err(), "{bad}");
    }
}

#[test]
fn stores_merge_and_export_the_tidy_table() {
    let dir = tempfile::tempdir().unwrap();
    let runs = runs();
    let (a, b) = (dir.path().join("a.db"), dir.path().join("b.db"));
    let no_stop = AtomicBool::new(false);
    for (path, shard) in [(&a, "0/2"), (&b, "1/2")] {
        let mine = shard.parse::<Shard>().unwrap().select(runs.clone());
        let mut store = Store::open(path).unwrap();
        let ids: Vec<&str> = runs.iter().map(|r| r.id.as_str()).collect();
        store.register_grid("small", &ids).unwrap();
        let store = Mutex::new(store);
        let o = runner::run_all(&mine, &store, &lookup, &options(2), &no_stop, &|_| {});
        assert_eq!(o.finished, 3);
    }
    let mut merged = Store::open(&dir.path().join("m.db")).unwrap();
    assert_eq!(merged.merge(&[a.clone(), b.clone()]).unwrap(), (6, 0));
    // Merging again adds nothing.
    assert_eq!(merged.merge(&[a]).unwrap(), (0, 3));
    assert_eq!(merged.grids().unwrap(), vec![("small".to_string(), 6, 6)]);
    assert_eq!(merged.runs(Some("small")).unwrap().len(), 6);
    let mut csv = Vec::new();
    let rows = merged.export_csv(&mut csv).unwrap();
    assert_eq!(rows, 6 * 16, "one row per run and round");
    let text = String::from_utf8(csv).unwrap();
    let header = text.lines().next().unwrap();
    assert!(header.starts_with("run_id,backend,dataset,partition,optimizer,aggregator"));
    assert!(text
        .lines()
        .skip(1)
        .all(|l| l.split(',').nth(1) == Some("builtin")));
    let evals = text.lines().skip(1).filter(|l| !l.ends_with(",,")).count();
    assert_eq!(evals, 6 * 4, "test accuracy on evaluation rounds only");
}

#[test]
fn a_store_of_another_schema_is_refused_with_its_path() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("s.db");
    drop(Store::open(&p).unwrap());
    let conn = rusqlite::Connection::open(&p).unwrap();
    conn.execute(
        "UPDATE meta SET value = '99' WHERE key = 'schema_version'",
        [],
    )
    .unwrap();
    drop(conn);
    let e = Store::open(&p).err().expect("refused").to_string();
    assert!(e.contains("s.db") && e.contains("99"), "{e}");
}

#[test]
fn re_registering_an_edited_grid_replaces_its_membership_but_keeps_results() {
    let dir = tempfile::tempdir().unwrap();
    let runs = runs();
    let store = Mutex::new(Store::open(&dir.path().join("s.db")).unwrap());
    let ids: Vec<&str> = runs.iter().map(|r| r.id.as_str()).collect();
    store.lock().unwrap().register_grid("small", &ids).unwrap();
    let o = runner::run_all(
        &runs,
        &store,
        &lookup,
        &options(2),
        &AtomicBool::new(false),
        &|_| {},
    );
    assert_eq!(o.finished, 6);
    let mut store = store.into_inner().unwrap();
    // The grid now names only its first two runs.
    store.register_grid("small", &ids[..2]).unwrap();
    assert_eq!(store.grids().unwrap(), vec![("small".to_string(), 2, 2)]);
    let in_grid: Vec<String> = store
        .runs(Some("small"))
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(in_grid, ids[..2]);
    assert_eq!(
        store.runs(None).unwrap().len(),
        6,
        "results are never deleted"
    );
}

#[test]
fn leftovers_of_a_crash_are_cleaned_but_not_a_live_writers_files() {
    let dir = tempfile::tempdir().unwrap();
    let runs = runs();
    let store = Store::open(&dir.path().join("s.db")).unwrap();
    let ckpt = store.checkpoint_dir();
    std::fs::create_dir_all(&ckpt).unwrap();
    // A temporary file of a process that no longer exists (pid beyond Linux's maximum), and
    // one of this live process.
    let dead = ckpt.join(format!("{}.ckpt.4294967295.0.tmp", runs[0].id));
    let live = ckpt.join(format!("{}.ckpt.{}.0.tmp", runs[0].id, std::process::id()));
    let pending = checkpoint_path(&ckpt, &runs[1].id);
    for p in [&dead, &live, &pending] {
        std::fs::write(p, b"x").unwrap();
    }
    let removed = runner::remove_stale_checkpoints(&store).unwrap();
    assert_eq!(removed, 1);
    assert!(
        !dead.exists() && live.exists(),
        "only the dead writer's file goes"
    );
    assert!(
        pending.exists(),
        "a checkpoint of an unfinished run is kept"
    );
}

#[test]
fn a_store_of_schema_1_gains_results_versions_and_mixed_versions_are_reported() {
    // Issue 13: a store filled across builds that compute other numbers must say so.
    use byzadam_experiment::store::Timings;
    use byzadam_sim::Summary;
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("s.db");
    let runs = runs();
    let (first, second) = (&runs[0], &runs[1]);
    let store_one = |store: &mut Store, run: &Run| {
        let m = alone(&run.config);
        let summary = Summary::from_metrics(&m, 0.0).unwrap();
        store
            .insert_run(&run.id, &run.config, &m, &summary, &Timings::default())
            .unwrap();
    };
    {
        let mut store = Store::open(&p).unwrap();
        store_one(&mut store, first);
        assert_eq!(
            store.results_versions().unwrap(),
            [(byzadam_sim::RESULTS_VERSION, 1)]
        );
        assert_eq!(store.mixed_versions_warning().unwrap(), None);
    }
    // Make it a store as schema 1 wrote it: no results_version column.
    let conn = rusqlite::Connection::open(&p).unwrap();
    conn.execute_batch(
        "ALTER TABLE runs DROP COLUMN backend;
         ALTER TABLE runs DROP COLUMN class_recall;
         ALTER TABLE runs DROP COLUMN results_version;
         UPDATE meta SET value = '1' WHERE key = 'schema_version';",
    )
    .unwrap();
    drop(conn);
    let mut store = Store::open(&p).unwrap();
    assert_eq!(store.results_versions().unwrap(), [(0, 1)], "old runs: 0");
    store_one(&mut store, second);
    assert_eq!(
        store.results_versions().unwrap(),
        [(0, 1), (byzadam_sim::RESULTS_VERSION, 1)]
    );
    let warning = store.mixed_versions_warning().unwrap().expect("mixed");
    assert!(
        warning.contains("s.db") && warning.contains("version 0: 1 runs"),
        "{warning}"
    );
    assert_eq!(store.runs(None).unwrap().len(), 2, "both runs still read");
}

#[test]
fn a_store_of_schema_2_gains_class_recall_and_still_merges() {
    use byzadam_experiment::store::Timings;
    use byzadam_sim::Summary;
    let dir = tempfile::tempdir().unwrap();
    let (old, fresh) = (dir.path().join("old.db"), dir.path().join("fresh.db"));
    let runs = runs();
    let store_one = |path: &std::path::Path, run: &Run, recall: Vec<f64>| {
        let mut store = Store::open(path).unwrap();
        let m = alone(&run.config);
        let summary = Summary {
            class_recall: recall,
            ..Summary::from_metrics(&m, 0.0).unwrap()
        };
        store
            .insert_run(&run.id, &run.config, &m, &summary, &Timings::default())
            .unwrap();
    };
    store_one(&old, &runs[0], vec![]);
    // Make it a store as schema 2 wrote it: no class_recall column.
    let conn = rusqlite::Connection::open(&old).unwrap();
    conn.execute_batch(
        "ALTER TABLE runs DROP COLUMN backend;
         ALTER TABLE runs DROP COLUMN class_recall;
         UPDATE meta SET value = '2' WHERE key = 'schema_version';",
    )
    .unwrap();
    drop(conn);
    store_one(&old, &runs[1], vec![0.5, 1.0]);
    store_one(&fresh, &runs[2], vec![0.25]);
    let mut store = Store::open(&old).unwrap();
    assert_eq!(store.merge(&[fresh]).unwrap(), (1, 0));
    let read = store.runs(None).unwrap();
    let recall = |id: &str| {
        read.iter()
            .find(|r| r.id == id)
            .map(|r| r.summary.class_recall.clone())
            .unwrap()
    };
    assert_eq!(
        recall(&runs[0].id),
        Vec::<f64>::new(),
        "written before schema 3"
    );
    assert_eq!(recall(&runs[1].id), [0.5, 1.0]);
    assert_eq!(recall(&runs[2].id), [0.25], "merged from a fresh store");
}

#[test]
fn a_store_of_schema_3_gains_backends_and_merges_a_torch_run() {
    // Schema 4 (issue 23): runs.backend. An older store's runs are the built-in engine's; a
    // torch run has an id of its own (same config) and merges beside them.
    use byzadam_experiment::store::{Timings, BUILTIN};
    use byzadam_experiment::{run_id, run_id_of};
    use byzadam_sim::Summary;
    let dir = tempfile::tempdir().unwrap();
    let (old, fresh) = (dir.path().join("old.db"), dir.path().join("fresh.db"));
    let run = &runs()[0];
    let m = alone(&run.config);
    let summary = Summary::from_metrics(&m, 0.0).unwrap();
    {
        let mut store = Store::open(&old).unwrap();
        store
            .insert_run(&run.id, &run.config, &m, &summary, &Timings::default())
            .unwrap();
    }
    let conn = rusqlite::Connection::open(&old).unwrap();
    conn.execute_batch(
        "ALTER TABLE runs DROP COLUMN backend;
         UPDATE meta SET value = '3' WHERE key = 'schema_version';",
    )
    .unwrap();
    drop(conn);
    let torch_id = run_id_of("torch:Net", &run.config);
    assert_eq!(run_id_of(BUILTIN, &run.config), run_id(&run.config));
    assert_eq!(run_id(&run.config), run.id, "built-in ids unchanged");
    assert_ne!(torch_id, run.id);
    assert_ne!(torch_id, run_id_of("torch:Other", &run.config));
    {
        let mut store = Store::open(&fresh).unwrap();
        store
            .insert_run_of(
                "torch:Net",
                &torch_id,
                &run.config,
                &m,
                &summary,
                &Timings::default(),
            )
            .unwrap();
    }
    let mut store = Store::open(&old).unwrap();
    assert_eq!(store.merge(&[fresh]).unwrap(), (1, 0));
    let mut read: Vec<(String, String)> = store
        .runs(None)
        .unwrap()
        .into_iter()
        .map(|r| (r.id, r.backend))
        .collect();
    read.sort();
    let mut expected = vec![
        (run.id.clone(), "builtin".to_string()),
        (torch_id, "torch:Net".to_string()),
    ];
    expected.sort();
    assert_eq!(read, expected);
}

#[test]
fn an_init_file_counts_by_its_content_not_its_path() {
    use byzadam_experiment::run_id;
    use byzadam_sim::InitFile;
    let with = |path: &str, sha: char| RunConfig {
        init: Some(InitFile {
            path: path.into(),
            sha256: Some(sha.to_string().repeat(64)),
        }),
        ..RunConfig::default()
    };
    assert_eq!(
        run_id(&with("a.npy", 'a')),
        run_id(&with("/elsewhere/b.npy", 'a'))
    );
    assert_ne!(run_id(&with("a.npy", 'a')), run_id(&with("a.npy", 'b')));
    assert_ne!(run_id(&with("a.npy", 'a')), run_id(&RunConfig::default()));
}
