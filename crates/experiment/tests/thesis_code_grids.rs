//! The shipped grids of `configs/thesis-code/` (written by its generate.py) expand and
//! validate, and describe the same runs wherever docs/thesis-code-reproduction.md reads one
//! grid's store for another's cells: the per-cell grids are cells of the full grids, the
//! text profile's cells are cells of `configs/thesis/`, the ablation's two profiles are those
//! cells, and the ablation's code half is half of the ablation.

use byzadam_experiment::store::Labels;
use byzadam_experiment::{run_id, Grid, Run};
use std::collections::BTreeSet;
use std::path::Path;

fn expand(dir: &str, name: &str) -> Vec<Run> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../configs")
        .join(dir)
        .join(format!("{name}.toml"));
    let mut text = std::fs::read_to_string(&path).unwrap();
    // `init` paths are relative to the working directory (the repository root for the
    // shipped grids; the tests run in the crate's): named absolutely here, the same ids.
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    text = text.replace(
        "init = \"configs/",
        &format!("init = \"{}/configs/", root.display()),
    );
    let grid = Grid::parse(&text, &path.display().to_string()).unwrap();
    let expected = if dir == "thesis" {
        name.to_string()
    } else {
        format!("thesis-code-{name}")
    };
    assert_eq!(grid.name(), expected, "{}", path.display());
    grid.expand().unwrap()
}

fn ids(runs: &[Run]) -> BTreeSet<String> {
    runs.iter().map(|r| r.id.clone()).collect()
}

fn assert_subset(small: &[Run], large: &[Run], what: &str) {
    let (small, large) = (ids(small), ids(large));
    let missing: Vec<_> = small.difference(&large).collect();
    assert!(missing.is_empty(), "{what}: {} runs missing", missing.len());
}

#[test]
fn every_grid_expands_to_its_documented_size_with_distinct_runs() {
    for (name, size) in [
        ("mnist-homogeneous", 140),
        ("mnist-homogeneous-table", 28),
        ("mnist-homogeneous-table-init", 28),
        ("mnist-heterogeneous", 120),
        ("mnist-heterogeneous-table", 24),
        ("text-table-4.1", 28),
        ("text-table-4.2", 24),
        ("ablation-little", 94),
        ("ablation-little-code", 47),
        ("ablation-head-seeds", 16),
        ("seeds", 48),
        ("cifar10-homogeneous", 140),
        ("cifar10-homogeneous-table", 28),
        ("cifar10-heterogeneous", 120),
    ] {
        let runs = expand("thesis-code", name);
        assert_eq!(runs.len(), size, "{name}");
        assert_eq!(ids(&runs).len(), size, "{name}: two runs share an id");
    }
    // Every shipped file is in the list above.
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs/thesis-code");
    let files = std::fs::read_dir(dir)
        .unwrap()
        .filter(|e| e.as_ref().unwrap().path().extension() == Some("toml".as_ref()))
        .count();
    assert_eq!(files, 14);
}

#[test]
fn the_init_grid_is_table_4_1_from_the_codes_initial_weights() {
    // The same 28 cells, each with the file of `init/make_init.py` (its SHA-256 pinned),
    // nothing else changed.
    let table = expand("thesis-code", "mnist-homogeneous-table");
    let init = expand("thesis-code", "mnist-homogeneous-table-init");
    for (a, b) in table.iter().zip(&init) {
        let pinned = b.config.init.as_ref().expect("init");
        assert_eq!(
            pinned.sha256.as_deref(),
            Some("e6a2ff540ab5033fdd042303e8c1f4b610b68d72e960663ed7ed23429482a171"),
            "the file make_init.py writes with torch 2.15"
        );
        let mut without = b.config.clone();
        without.init = None;
        assert_eq!(without, a.config);
        assert_ne!(a.id, b.id);
    }
}

#[test]
fn the_grids_that_share_cells_share_their_runs() {
    let full_41 = expand("thesis-code", "mnist-homogeneous");
    let full_42 = expand("thesis-code", "mnist-heterogeneous");
    assert_subset(
        &expand("thesis-code", "mnist-homogeneous-table"),
        &full_41,
        "Table 4.1's cells in its full grid",
    );
    assert_subset(
        &expand("thesis-code", "mnist-heterogeneous-table"),
        &full_42,
        "Table 4.2's cells in its full grid",
    );
    assert_subset(
        &expand("thesis-code", "cifar10-homogeneous-table"),
        &expand("thesis-code", "cifar10-homogeneous"),
        "Table 4.3's cells in its full grid",
    );
    // The text profile is byzadam's own thesis grids, evaluated at the last round only
    // (`configs/thesis/` evaluates every 25 rounds too; evaluation draws nothing, so the last
    // round's numbers are the same).
    let last_round_only = |runs: Vec<Run>| -> Vec<Run> {
        runs.into_iter()
            .map(|mut r| {
                r.config.eval_every = r.config.rounds;
                r.id = run_id(&r.config);
                r
            })
            .collect()
    };
    let text_41 = expand("thesis-code", "text-table-4.1");
    assert_subset(
        &text_41,
        &last_round_only(expand("thesis", "mnist-homogeneous")),
        "text profile, Table 4.1",
    );
    assert_subset(
        &expand("thesis-code", "text-table-4.2"),
        &last_round_only(expand("thesis", "mnist-heterogeneous")),
        "text profile, Table 4.2",
    );
    let ablation = expand("thesis-code", "ablation-little");
    assert_subset(
        &expand("thesis-code", "ablation-little-code"),
        &ablation,
        "the ablation's code half",
    );
    // The ablation starts from Table 4.1's Little cells (the trimmed mean for every optimizer)
    // in each profile: those 8 runs are the ablation's "code" and "text" runs.
    let little = |runs: &[Run]| -> BTreeSet<String> {
        runs.iter()
            .filter(|r| Labels::of(&r.config).attack == "little")
            .map(|r| r.id.clone())
            .collect()
    };
    let cells: BTreeSet<String> = little(&expand("thesis-code", "mnist-homogeneous-table"))
        .union(&little(&text_41))
        .cloned()
        .collect();
    assert_eq!(cells.len(), 8);
    let shared: BTreeSet<String> = ids(&ablation).intersection(&cells).cloned().collect();
    assert_eq!(
        shared, cells,
        "the ablation's two profiles are Table 4.1's Little cells"
    );
}
