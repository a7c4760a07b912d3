//! `byzadam grid`, `report` and `store` end to end: a grid killed with SIGKILL mid-run resumes
//! from its checkpoints and ends with the same results as a grid never interrupted; the report
//! writes its tables and figures; errors name the file and the key.

mod common;

use common::{byzadam, failure, success};
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

/// Two runs of 120 rounds of the MNIST CNN on synthetic digits: long enough to be killed
/// mid-run, short enough for CI.
/// Starts `byzadam grid GRID --store STORE --quiet EXTRA…` in the background.
fn spawn_grid(grid: &Path, store: &Path, extra: &[&str]) -> Child {
    std::process::Command::new(assert_cmd::cargo::cargo_bin("byzadam"))
        .arg("grid")
        .arg(grid)
        .arg("--store")
        .arg(store)
        .arg("--quiet")
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Checkpoint files in `dir`.
fn checkpoints(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .filter(|e| e.file_name().to_string_lossy().ends_with(".ckpt"))
                .count()
        })
        .unwrap_or(0)
}

/// Waits until `dir` holds `n` checkpoints while `child` still runs.
fn wait_for_checkpoints(child: &mut Child, dir: &Path, n: usize) {
    let start = Instant::now();
    while checkpoints(dir) < n {
        assert!(
            child.try_wait().unwrap().is_none(),
            "the grid ended before it could be interrupted"
        );
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "no checkpoint appeared"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

const GRID: &str = r#"
name = "killme"
[base]
dataset = "synthetic"
workers = 5
byzantine = 1
batch = 16
rounds = 120
eval_every = 40
eval_samples = 500
aggregator = { name = "trimmed_mean", f = 1 }
optimizer = { name = "resam", lr = { name = "constant", value = 0.1 }, beta = 0.9 }
[axes]
attack = [{ name = "sign_flip" }, "none"]
"#;

fn export(store: &Path, csv: &Path) -> String {
    success(
        byzadam()
            .args(["store", "export"])
            .arg(store)
            .arg("--csv")
            .arg(csv),
    );
    std::fs::read_to_string(csv).unwrap()
}

/// `byzadam grid GRID --store STORE --quiet`, which must succeed: (stdout, stderr).
fn run_grid(grid: &Path, store: &Path) -> (String, String) {
    success(
        byzadam()
            .arg("grid")
            .arg(grid)
            .arg("--store")
            .arg(store)
            .arg("--quiet"),
    )
}

#[test]
fn a_killed_grid_resumes_mid_run_with_the_same_results() {
    let dir = tempfile::tempdir().unwrap();
    let grid = dir.path().join("killme.toml");
    std::fs::write(&grid, GRID).unwrap();
    let (killed, straight) = (dir.path().join("killed.db"), dir.path().join("straight.db"));

    // Uninterrupted.
    run_grid(&grid, &straight);

    // Killed (SIGKILL, no chance to clean up) once a run has checkpointed past round 0.
    let ckpts = dir.path().join("killed.db.checkpoints");
    let mut child = spawn_grid(&grid, &killed, &["--checkpoint-every", "0", "--jobs", "1"]);
    wait_for_checkpoints(&mut child, &ckpts, 1);
    child.kill().unwrap();
    child.wait().unwrap();

    // Resumed: the checkpointed run continues where it was, and the results are identical.
    let (_, stderr) = run_grid(&grid, &killed);
    assert!(stderr.contains("resumes at round"), "{stderr}");
    let a = export(&killed, &dir.path().join("a.csv"));
    let b = export(&straight, &dir.path().join("b.csv"));
    assert_eq!(a.lines().count(), 1 + 2 * 120);
    assert_eq!(
        a, b,
        "a killed and resumed grid has the same per-round results"
    );
    assert_eq!(checkpoints(&ckpts), 0, "no checkpoint left");

    // Running the grid again does nothing.
    let (again, _) = run_grid(&grid, &killed);
    assert!(
        again.contains("2 already in") && again.contains("nothing to do"),
        "{again}"
    );

    // The report: tables and figures.
    let report = dir.path().join("report");
    let (out, _) = success(byzadam().arg("report").arg(&killed).arg("-o").arg(&report));
    assert!(out.contains("| | No attack | Sign Flip |"), "{out}");
    let md = std::fs::read_to_string(report.join("report.md")).unwrap();
    assert!(md.contains("## RESAM: every aggregator"), "{md}");
    for f in [
        "killme-best.csv",
        "killme-best.tex",
        "killme-full.csv",
        "killme-full.tex",
    ] {
        assert!(report.join(f).is_file(), "{f}");
    }
    for f in ["killme-accuracy", "killme-heatmap"] {
        let svg = std::fs::read_to_string(report.join(format!("{f}.svg"))).unwrap();
        assert!(svg.contains("<svg") && svg.contains("RESAM"), "{f}.svg");
        let png = std::fs::read(report.join(format!("{f}.png"))).unwrap();
        assert!(png.starts_with(b"\x89PNG"), "{f}.png");
    }
    let best = std::fs::read_to_string(report.join("killme-best.csv")).unwrap();
    assert_eq!(best.lines().count(), 1 + 2, "{best}");

    // Merging the two stores: every run is already there.
    let (merged, _) = success(
        byzadam()
            .args(["store", "merge"])
            .arg(&killed)
            .arg(&straight),
    );
    assert!(merged.contains("0 runs added"), "{merged}");
    let (list, _) = success(byzadam().args(["store", "list"]).arg(&killed));
    assert!(list.contains("grid killme: 2/2 runs done"), "{list}");
}

#[test]
fn grid_errors_name_the_file_and_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let grid = dir.path().join("bad.toml");
    let store = dir.path().join("s.db");
    let bad_grid = || failure(byzadam().arg("grid").arg(&grid).arg("--store").arg(&store));
    std::fs::write(&grid, "[base]\nrounds = 10\nroundz = 3\n").unwrap();
    let err = bad_grid();
    assert!(err.contains("bad.toml") && err.contains("roundz"), "{err}");
    std::fs::write(&grid, "[axes]\nbyzantine = [5, 15]\n").unwrap();
    let err = bad_grid();
    assert!(
        err.contains("bad.toml") && err.contains("byzantine"),
        "{err}"
    );
    let err = failure(byzadam().args(["grid", "x.toml", "--shard", "2/2"]));
    assert!(err.contains("0 <= I < N"), "{err}");
    let missing = dir.path().join("none.db");
    let err = failure(byzadam().arg("report").arg(&missing));
    assert!(
        err.contains("none.db") && err.contains("no such store"),
        "{err}"
    );
    assert!(!missing.exists(), "reading never creates a store");
}

#[test]
fn ctrl_c_or_sigterm_checkpoints_the_runs_in_flight_and_the_same_command_resumes() {
    for signal in ["-INT", "-TERM"] {
        interrupted_by(signal);
    }
}

fn interrupted_by(signal: &str) {
    let dir = tempfile::tempdir().unwrap();
    let grid = dir.path().join("killme.toml");
    std::fs::write(&grid, GRID).unwrap();
    let store = dir.path().join("s.db");
    let ckpts = dir.path().join("s.db.checkpoints");
    let mut child = spawn_grid(&grid, &store, &["--checkpoint-every", "1", "--jobs", "2"]);
    // Both runs under way: each has checkpointed once.
    wait_for_checkpoints(&mut child, &ckpts, 2);
    let status = std::process::Command::new("kill")
        .args([signal, &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let out = child.wait_with_output().unwrap();
    assert!(
        !out.status.success(),
        "an interrupted grid exits with an error"
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("stopped: 2 runs not finished"),
        "{signal}: {stdout}"
    );
    assert_eq!(checkpoints(&ckpts), 2, "both runs in flight checkpointed");
    assert_eq!(
        byzadam_experiment_done(&store),
        0,
        "nothing half-done counts as done"
    );
    let (_, stderr) = run_grid(&grid, &store);
    assert_eq!(stderr.matches("resumes at round").count(), 2, "{stderr}");
}

/// Finished runs in a store, as `byzadam store list` counts them.
fn byzadam_experiment_done(store: &Path) -> usize {
    let (out, _) = success(byzadam().args(["store", "list"]).arg(store));
    out.split(": ")
        .nth(1)
        .and_then(|s| s.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(usize::MAX)
}
