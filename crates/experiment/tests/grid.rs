//! Grid expansion: products, exclusions, ids, errors.

use byzadam_experiment::{run_id, Grid};
use byzadam_sim::RunConfig;

#[test]
fn the_product_minus_exclusions_with_distinct_stable_ids() {
    let grid = Grid::parse(
        r#"
        [base]
        rounds = 20
        [axes]
        seed = [0, 1, 2]
        attack = [{ name = "little" }, { name = "sign_flip" }, "none"]
        [[exclude]]
        attack = "none"
        seed = 2
        "#,
        "g.toml",
    )
    .unwrap();
    let runs = grid.expand().unwrap();
    assert_eq!(runs.len(), 3 * 3 - 1);
    assert!(runs.iter().all(|r| r.config.rounds == 20));
    assert!(!runs
        .iter()
        .any(|r| r.config.seed == 2 && r.config.attack.is_none()));
    let mut ids: Vec<&String> = runs.iter().map(|r| &r.id).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), runs.len(), "distinct configs, distinct ids");
    // Ids depend on the config only: the same grid gives the same ids, in the same order.
    let again = grid.expand().unwrap();
    assert_eq!(
        runs.iter().map(|r| &r.id).collect::<Vec<_>>(),
        again.iter().map(|r| &r.id).collect::<Vec<_>>()
    );
    // A key written with its default value and a key left out are the same config: same id.
    let explicit = Grid::parse("[base]\nrounds = 20\nbatch = 25\n", "a.toml")
        .unwrap()
        .expand()
        .unwrap();
    let implicit = Grid::parse("[base]\nrounds = 20\n", "b.toml")
        .unwrap()
        .expand()
        .unwrap();
    assert_eq!(explicit[0].id, implicit[0].id);
    assert_eq!(
        explicit[0].id,
        run_id(&RunConfig {
            rounds: 20,
            ..RunConfig::default()
        })
    );
    assert_ne!(explicit[0].id, run_id(&RunConfig::default()));
}

#[test]
fn errors_name_the_file_the_run_and_the_key() {
    let e = Grid::parse("[axes]\nseed = []\n", "g.toml")
        .unwrap_err()
        .to_string();
    assert!(e.contains("g.toml") && e.contains("axes.seed"), "{e}");
    let e = Grid::parse("[bases]\nrounds = 1\n", "g.toml")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("g.toml") && e.contains("unknown field `bases`"),
        "{e}"
    );
    let e = Grid::parse(
        "[axes]\naggregator = [{ name = \"trimmed_mean\", f = 8 }]\n",
        "g.toml",
    )
    .unwrap()
    .expand()
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("g.toml") && e.contains("key `aggregator`") && e.contains("n > 2f"),
        "{e}"
    );
    let e = Grid::parse("[axes]\nrounds = [10, 10]\n", "g.toml")
        .unwrap()
        .expand()
        .unwrap_err()
        .to_string();
    assert!(e.contains("same config"), "{e}");
    // Exclusions: a key that is not a config key, or one that matches no run, is an error.
    let e = Grid::parse("[axes]\nseed = [0, 1]\n[[exclude]]\nsede = 1\n", "g.toml")
        .unwrap()
        .expand()
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("g.toml") && e.contains("exclusion 1") && e.contains("`sede`"),
        "{e}"
    );
    let e = Grid::parse(
        "[axes]\nseed = [0, 1]\n[[exclude]]\nseed = 0\n[[exclude]]\nseed = 7\n",
        "g.toml",
    )
    .unwrap()
    .expand()
    .unwrap_err()
    .to_string();
    assert!(e.contains("exclusion 2 matches no run"), "{e}");
}

#[test]
fn an_invalid_value_on_an_axis_names_the_file_the_run_and_the_key() {
    // Issue 13: `clip = -2` used to run, scaling every honest gradient by −2/‖g‖.
    let grid = Grid::parse(
        "[base]\nrounds = 20\n[axes]\ngradient = [{ clip = 2.0 }, { clip = -2.0 }]\n",
        "clips.toml",
    )
    .unwrap();
    let e = grid.expand().unwrap_err().to_string();
    assert!(
        e.contains("clips.toml") && e.contains("clip = -2") && e.contains("gradient.clip"),
        "{e}"
    );
}

#[test]
fn a_run_id_hashes_the_results_version_with_the_config() {
    use sha2::{Digest, Sha256};
    let config = RunConfig::default();
    let hex = |text: String| -> String {
        Sha256::digest(text.as_bytes())
            .iter()
            .take(8)
            .map(|b| format!("{b:02x}"))
            .collect()
    };
    let value = serde_json::to_value(&config).unwrap();
    let versioned = serde_json::json!({
        "config": value,
        "results_version": byzadam_sim::RESULTS_VERSION,
    });
    assert_eq!(run_id(&config), hex(versioned.to_string()));
    assert_ne!(
        run_id(&config),
        hex(value.to_string()),
        "not the config alone"
    );
}

#[test]
fn includes_are_single_runs_after_the_product_and_alone_without_axes() {
    let with_axes = Grid::parse(
        r#"
[base]
rounds = 10
[axes]
seed = [0, 1]
[[include]]
seed = 7
rounds = 20
"#,
        "g.toml",
    )
    .unwrap()
    .expand()
    .unwrap();
    let got: Vec<(u64, u64)> = with_axes
        .iter()
        .map(|r| (r.config.seed, r.config.rounds))
        .collect();
    assert_eq!(got, [(0, 10), (1, 10), (7, 20)]);
    // No axes: just the includes (not the bare base as well).
    let only = Grid::parse(
        "[base]\nrounds = 10\n[[include]]\nseed = 3\n[[include]]\nseed = 4\n",
        "g.toml",
    )
    .unwrap()
    .expand()
    .unwrap();
    assert_eq!(
        only.iter().map(|r| r.config.seed).collect::<Vec<_>>(),
        [3, 4]
    );
    // An include naming no run config key, or a duplicate of a product run, is an error.
    let bad = Grid::parse("[[include]]\nsede = 3\n", "g.toml")
        .unwrap()
        .expand()
        .unwrap_err();
    assert!(bad.to_string().contains("`sede`"), "{bad}");
    let dup = Grid::parse("[axes]\nseed = [1]\n[[include]]\nseed = 1\n", "g.toml")
        .unwrap()
        .expand()
        .unwrap_err();
    assert!(dup.to_string().contains("same config"), "{dup}");
    // An exclusion may name a key left out of the default's serialised form.
    Grid::parse(
        "[axes]\nhead = [\"log_softmax\", \"softmax_then_cross_entropy\"]\n[[exclude]]\nhead = \"log_softmax\"\n",
        "g.toml",
    )
    .unwrap()
    .expand()
    .unwrap();
}

#[test]
fn flushing_subnormals_is_part_of_a_runs_id_and_absent_from_it_by_default() {
    let config = RunConfig::default();
    let json = serde_json::to_value(&config).unwrap();
    assert!(
        json.get("flush_subnormals").is_none(),
        "off, the key is left out: every earlier run keeps its id"
    );
    let flushed = RunConfig {
        flush_subnormals: true,
        ..RunConfig::default()
    };
    assert_eq!(
        serde_json::to_value(&flushed).unwrap()["flush_subnormals"],
        true
    );
    assert_ne!(run_id(&flushed), run_id(&config));
}
