//! The `byzadam` binary end to end: formats in and out, and errors that name the file, the
//! row and what is wrong.

mod common;

use byzadam_robust::{aggregators::TrimmedMean, Aggregator};
use byzadam_robust::{AggregatorConfig, AttackConfig, PreAggregatorConfig};
use common::{byzadam, failure, success};
use std::path::{Path, PathBuf};

fn example() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/submissions.csv")
}

fn stdout_json(args: &[&str]) -> serde_json::Value {
    serde_json::from_str(&success(byzadam().args(args)).0).unwrap()
}

fn stderr_of(args: &[&str]) -> String {
    failure(byzadam().args(args))
}

fn write_npy_f64(path: &Path, rows: usize, dim: usize, data: &[f64]) {
    use npyz::WriterBuilder;
    let mut buf = Vec::new();
    let mut w = npyz::WriteOptions::new()
        .default_dtype()
        .shape(&[rows as u64, dim as u64])
        .writer(&mut buf)
        .begin_nd()
        .unwrap();
    w.extend(data.iter().copied()).unwrap();
    w.finish().unwrap();
    std::fs::write(path, buf).unwrap();
}

#[test]
fn aggregate_of_the_shipped_example_matches_the_library() {
    let example = example();
    let got = stdout_json(&[
        "aggregate",
        example.to_str().unwrap(),
        "--rule",
        "cwtm",
        "--f",
        "5",
    ]);
    let s = byzadam_cli::matrix_io::read(&example).unwrap();
    let expected = TrimmedMean::new(5).aggregate(&s).unwrap();
    let got: Vec<f32> = got
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect();
    assert_eq!(got, expected);
    // The plain average of the same file is +∞ everywhere: the example has +∞ workers.
    let avg = stdout_json(&["aggregate", example.to_str().unwrap(), "--rule", "average"]);
    assert!(avg.as_array().unwrap().iter().all(|x| x == "inf"));
}

#[test]
fn every_format_reads_and_writes_the_same_numbers() {
    let dir = tempfile::tempdir().unwrap();
    let data = [
        1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0, 11.0, 12.0,
    ];
    let npy = dir.path().join("x.npy");
    write_npy_f64(&npy, 4, 3, &data);
    let csv = dir.path().join("x.csv");
    std::fs::write(&csv, "1,2,3\n4,5,6\n\n7, 8, 9\n10,11,12\n").unwrap();
    let json = dir.path().join("x.json");
    std::fs::write(&json, "[[1,2,3],[4,5,6],[7,8,9],[10,11,12]]").unwrap();
    for input in [&npy, &csv, &json] {
        let v = stdout_json(&["aggregate", input.to_str().unwrap(), "--rule", "median"]);
        assert_eq!(v, serde_json::json!([5.5, 6.5, 7.5]), "{}", input.display());
        for ext in ["npy", "csv", "json"] {
            let out = dir.path().join(format!("out.{ext}"));
            byzadam()
                .args([
                    "aggregate",
                    input.to_str().unwrap(),
                    "--rule",
                    "median",
                    "-o",
                    out.to_str().unwrap(),
                ])
                .assert()
                .success();
            let back = match ext {
                "npy" => {
                    let f = npyz::NpyFile::new(std::fs::File::open(&out).unwrap()).unwrap();
                    assert_eq!(f.shape(), &[3]);
                    f.into_vec::<f32>().unwrap()
                }
                "csv" => std::fs::read_to_string(&out)
                    .unwrap()
                    .trim()
                    .split(',')
                    .map(|x| x.parse().unwrap())
                    .collect(),
                _ => serde_json::from_str::<Vec<f32>>(&std::fs::read_to_string(&out).unwrap())
                    .unwrap(),
            };
            assert_eq!(back, [5.5, 6.5, 7.5], "{} -> {ext}", input.display());
        }
    }
}

#[test]
fn infinities_and_nan_travel_through_csv_and_json() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("x.csv");
    std::fs::write(&csv, "1,inf\n2,-inf\n3,nan\n").unwrap();
    let v = stdout_json(&["aggregate", csv.to_str().unwrap(), "--rule", "average"]);
    assert_eq!(v, serde_json::json!([2.0, "nan"]));
    let json = dir.path().join("x.json");
    std::fs::write(&json, r#"[[1, "Infinity"], [2, 0], [3, 0]]"#).unwrap();
    assert_eq!(
        stdout_json(&[
            "aggregate",
            json.to_str().unwrap(),
            "--rule",
            "trimmed_mean",
            "--f",
            "1"
        ]),
        serde_json::json!([2.0, 0.0])
    );
}

#[test]
fn bad_input_gets_one_line_naming_the_file_row_and_problem() {
    let dir = tempfile::tempdir().unwrap();
    let p = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path.to_str().unwrap().to_string()
    };
    let cases = [
        (
            p("a.csv", "1,2\n3,x\n"),
            "row 2, column 2: \"x\" is not a number",
        ),
        (
            p("b.csv", "1,2\n3,4,5\n"),
            "row 2: 3 values, but the first row has 2",
        ),
        (
            p("c.json", "[[1,2],[3]]"),
            "row 2: 1 values, but the first row has 2",
        ),
        (p("d.json", "{\"a\": 1}"), "expected an array of vectors"),
        (
            p("e.json", "[[1,2],[3,true]]"),
            "row 2, column 2: true is not a number",
        ),
        (p("f.npy", "not numpy"), "not a valid .npy file"),
        (p("g.txt", "1,2"), "unknown format"),
        (p("h.csv", ""), "no vectors"),
    ];
    for (path, needle) in cases {
        let err = stderr_of(&["aggregate", &path, "--rule", "median"]);
        assert!(err.contains(&path), "{err} does not name {path}");
        assert!(err.contains(needle), "{err} does not say {needle}");
        assert_eq!(err.trim_end().lines().count(), 1, "not one line: {err}");
    }
}

#[test]
fn bad_rules_and_settings_say_what_would_be_valid() {
    let example = example();
    let ex = example.to_str().unwrap();
    assert!(stderr_of(&["aggregate", ex, "--rule", "trimed"]).contains("the rules are: average"));
    assert!(stderr_of(&["aggregate", ex, "--rule", "cwtm"]).contains("needs --f"));
    assert!(stderr_of(&["aggregate", ex, "--rule", "median", "--f", "2"]).contains("takes no f"));
    assert!(stderr_of(&["aggregate", ex, "--rule", "cwtm", "--f", "8"])
        .contains("needs n > 2f, but got n = 15, f = 8"));
    assert!(stderr_of(&[
        "aggregate",
        ex,
        "--rule",
        "cwtm",
        "--f",
        "2",
        "--set",
        "F=2"
    ])
    .contains("unknown field `F`"));
    assert!(
        stderr_of(&["aggregate", ex, "--rule", "median", "--pre", "nmm:f=2"])
            .contains("the pre-aggregators are")
    );
    assert!(
        stderr_of(&["aggregate", ex, "--rule", "median", "--pre", "bucketing:s"])
            .contains("not KEY=VALUE")
    );
    assert!(stderr_of(&[
        "aggregate",
        ex,
        "--rule",
        "mda",
        "--f",
        "5",
        "--set",
        "subset_budget=10"
    ])
    .contains("over the budget"));
}

#[test]
fn attack_forges_the_byzantine_rows() {
    let dir = tempfile::tempdir().unwrap();
    let honest = dir.path().join("h.csv");
    std::fs::write(&honest, "0\n2\n4\n").unwrap();
    let own = dir.path().join("own.csv");
    std::fs::write(&own, "1\n3\n").unwrap();
    let h = honest.to_str().unwrap();
    assert_eq!(
        stdout_json(&[
            "attack",
            h,
            "--attack",
            "alie",
            "--byzantine",
            "2",
            "--set",
            "z=1.5"
        ]),
        serde_json::json!([[-1.0], [-1.0]])
    );
    assert_eq!(
        stdout_json(&["attack", h, "--attack", "inf", "--byzantine", "1"]),
        serde_json::json!([["inf"]])
    );
    assert_eq!(
        stdout_json(&[
            "attack",
            h,
            "--attack",
            "empire",
            "--byzantine",
            "2",
            "--own",
            own.to_str().unwrap()
        ]),
        serde_json::json!([[-0.9], [-2.7]])
    );
    assert!(
        stderr_of(&["attack", h, "--attack", "little", "--byzantine", "2"]).contains("--own FILE")
    );
    assert!(stderr_of(&[
        "attack",
        h,
        "--attack",
        "optimal_empire",
        "--byzantine",
        "2"
    ])
    .contains("--server-rule"));
    let opt = stdout_json(&[
        "attack",
        h,
        "--attack",
        "optimal_empire",
        "--byzantine",
        "2",
        "--server-rule",
        "median",
    ]);
    assert_eq!(opt.as_array().unwrap().len(), 2);
    let out = dir.path().join("byz.npy");
    byzadam()
        .args([
            "attack",
            h,
            "--attack",
            "gaussian",
            "--byzantine",
            "2",
            "--seed",
            "3",
            "-o",
            out.to_str().unwrap(),
        ])
        .assert()
        .success();
    let f = npyz::NpyFile::new(std::fs::File::open(&out).unwrap()).unwrap();
    assert_eq!(f.shape(), &[2, 1]);
    // Same seed, same bits.
    let a = stdout_json(&[
        "attack",
        h,
        "--attack",
        "gaussian",
        "--byzantine",
        "2",
        "--seed",
        "3",
    ]);
    let b = stdout_json(&[
        "attack",
        h,
        "--attack",
        "gaussian",
        "--byzantine",
        "2",
        "--seed",
        "3",
    ]);
    assert_eq!(a, b);
}

#[test]
fn rules_lists_every_registry_entry() {
    // Every name and alias of the three registries (issue 13: this listed 8 by hand).
    let (text, _) = success(byzadam().arg("rules"));
    let all = [
        AggregatorConfig::NAMES,
        PreAggregatorConfig::NAMES,
        AttackConfig::NAMES,
    ];
    let mut count = 0;
    for (name, aliases) in all.iter().flat_map(|r| r.iter()) {
        assert!(text.contains(name), "{name} missing from `byzadam rules`");
        for alias in *aliases {
            assert!(text.contains(alias), "alias {alias} of {name} missing");
        }
        count += 1;
    }
    assert_eq!(
        count,
        14 + 4 + 12,
        "the README's 14 rules, 4 pre-aggregators, 12 attacks"
    );
}

/// The first of a few parameter sets that makes `{ name, ... }` a valid registry entry.
fn entry<T: serde::de::DeserializeOwned>(name: &str) -> T {
    let candidates = [
        serde_json::json!({}),
        serde_json::json!({ "f": 1 }),
        serde_json::json!({ "f": 1, "m": 2 }),
        serde_json::json!({ "tau": 1.0 }),
        serde_json::json!({ "threshold": 1.0 }),
        serde_json::json!({ "classes": 10 }),
        serde_json::json!({ "s": 2 }),
    ];
    let mut last = String::new();
    for mut c in candidates {
        c["name"] = name.into();
        match serde_json::from_value(c) {
            Ok(v) => return v,
            Err(e) => last = e.to_string(),
        }
    }
    panic!("{name}: no candidate parameter set parses (last: {last}); add one here");
}

#[test]
fn every_registry_name_is_its_built_rules_name() {
    for (name, aliases) in AggregatorConfig::NAMES {
        for n in std::iter::once(name).chain(aliases.iter()) {
            let c: AggregatorConfig = entry(n);
            assert_eq!((c.name(), c.build().name()), (*name, *name), "{n}");
        }
    }
    for (name, aliases) in PreAggregatorConfig::NAMES {
        for n in std::iter::once(name).chain(aliases.iter()) {
            let c: PreAggregatorConfig = entry(n);
            assert_eq!((c.name(), c.build().name()), (*name, *name), "{n}");
        }
    }
    for (name, aliases) in AttackConfig::NAMES {
        for n in std::iter::once(name).chain(aliases.iter()) {
            let c: AttackConfig = entry(n);
            assert_eq!((c.name(), c.build().name()), (*name, *name), "{n}");
        }
    }
}

/// The data directory holding MNIST, found (or downloaded into) as `byzadam run` does
/// (`byzadam_data::testing`); a failure names the file and the command that fetches it.
fn shared_data() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    byzadam_data::testing::dataset(byzadam_data::DatasetKind::Mnist, manifest);
    byzadam_data::testing::data_dir(manifest)
}

#[test]
fn data_fetch_verifies_and_partition_prints_every_worker() {
    let dir = shared_data();
    let d = dir.to_str().unwrap();
    let (text, _) = success(byzadam().args(["data", "fetch", "mnist", "--data-dir", d]));
    assert!(
        text.contains("60000 training and 10000 test images") && text.contains("SHA-256 verified"),
        "{text}"
    );
    let (text, _) = success(byzadam().args([
        "data",
        "partition",
        "mnist",
        "--workers",
        "15",
        "--data-dir",
        d,
    ]));
    // The thesis's homogeneous split: 15 workers of 3,610, 361 per digit.
    assert!(
        text.contains("54150 of 60000 training samples used"),
        "{text}"
    );
    assert_eq!(
        text.lines().filter(|l| l.contains(" 3610 |")).count(),
        15,
        "{text}"
    );
    let err = stderr_of(&[
        "data",
        "partition",
        "mnist",
        "--scheme",
        "dirichlet",
        "--data-dir",
        d,
    ]);
    assert!(err.contains("missing field `alpha`"), "{err}");
    let err = stderr_of(&["data", "fetch", "imagenet"]);
    assert!(err.contains("unknown dataset"), "{err}");
}

#[test]
fn run_writes_config_metrics_summary_and_plot() {
    let dir = shared_data();
    let out = tempfile::tempdir().unwrap();
    let res = out.path().join("r");
    byzadam()
        .args([
            "run",
            "--quiet",
            "--data-dir",
            dir.to_str().unwrap(),
            "--out",
            res.to_str().unwrap(),
        ])
        .args([
            "--set",
            "rounds=6",
            "--set",
            "eval_every=3",
            "--set",
            "eval_samples=500",
        ])
        .assert()
        .success();
    let metrics = std::fs::read_to_string(res.join("metrics.jsonl")).unwrap();
    let rows: Vec<serde_json::Value> = metrics
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 6);
    assert_eq!(rows.iter().filter(|r| !r["eval"].is_null()).count(), 2);
    assert!(rows
        .iter()
        .all(|r| r["lambda"].as_f64().is_some_and(|l| l.is_finite())));
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(res.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["rounds"], 6);
    assert_eq!(summary["dataset"], "mnist");
    assert!(std::fs::read_to_string(res.join("accuracy.svg"))
        .unwrap()
        .starts_with("<svg"));
    // The resolved config reads back as the same config.
    let written = res.join("config.toml");
    let again = byzadam_cli::commands::run::resolve(Some(&written), &[]).unwrap();
    let direct = byzadam_cli::commands::run::resolve(
        None,
        &[
            "rounds=6".into(),
            "eval_every=3".into(),
            "eval_samples=500".into(),
        ],
    )
    .unwrap();
    assert_eq!(again, direct);
}

#[test]
fn bad_run_configs_name_the_file_and_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("bad.toml");
    std::fs::write(
        &cfg,
        "workers = 15\nrounds = 10\n[aggregator]\nname = \"trimmed_mean\"\nf = 5\nfoo = 1\n",
    )
    .unwrap();
    let err = stderr_of(&["run", cfg.to_str().unwrap()]);
    assert!(
        err.contains("bad.toml")
            && err.contains("aggregator")
            && err.contains("unknown field `foo`"),
        "{err}"
    );
    std::fs::write(&cfg, "rounds = \"many\"\n").unwrap();
    let err = stderr_of(&["run", cfg.to_str().unwrap()]);
    assert!(
        err.contains("bad.toml") && err.contains("`rounds`"),
        "{err}"
    );
    std::fs::write(&cfg, "wrokers = 3\n").unwrap();
    assert!(stderr_of(&["run", cfg.to_str().unwrap()]).contains("unknown field `wrokers`"));
    let err = stderr_of(&["run", "--set", "aggregator.f=8"]);
    assert!(
        err.contains("key `aggregator`") && err.contains("n > 2f") && err.contains("workers = 15"),
        "{err}"
    );
    let err = stderr_of(&["run", "--set", "byzantine=15"]);
    assert!(
        err.contains("key `byzantine`") && err.contains("less than workers"),
        "{err}"
    );
    let err = stderr_of(&["run", "--set", "byzantine=1", "--set", "aggregator.f=1"]);
    assert!(
        err.contains("key `attack`") && err.contains("at least 2 Byzantine"),
        "{err}"
    );
    let err = stderr_of(&["run", "--set", "model={name=\"cifar10_cnn\"}"]);
    assert!(err.contains("key `model`"), "{err}");
}

#[test]
fn only_the_quickstart_without_a_named_data_directory_falls_back_to_synthetic_digits() {
    let empty = tempfile::tempdir().unwrap();
    let here = empty.path();
    let res = here.join("r");
    let quick = [
        "--set",
        "rounds=2",
        "--set",
        "eval_samples=200",
        "--set",
        "model={name=\"logistic_regression\"}",
    ];
    // No config, no data directory named, nothing in ./data, no network: the quickstart says
    // so and trains on synthetic digits, leaving no empty ./data behind.
    let (text, _) = success(
        byzadam()
            .current_dir(here)
            .env_remove("BYZADAM_DATA_DIR")
            .args(["run", "--quiet", "--out", res.to_str().unwrap()])
            .args(quick),
    );
    assert!(
        text.contains("synthetic digits instead") && text.contains("on synthetic digits"),
        "{text}"
    );
    let summary = std::fs::read_to_string(res.join("summary.json")).unwrap();
    assert!(
        summary.contains("\"dataset\": \"synthetic\"") && summary.contains("synthetic_fallback"),
        "{summary}"
    );
    assert!(
        !here.join("data").exists(),
        "the failed download left ./data behind"
    );
    // A data directory the user named must hold the data: an error naming the file.
    let d = here.join("no-data");
    let err = failure(
        byzadam()
            .current_dir(here)
            .args(["run", "--quiet", "--data-dir", d.to_str().unwrap()])
            .args(quick),
    );
    assert!(
        err.contains("train-images-idx3-ubyte") && err.contains("missing"),
        "{err}"
    );
    assert!(
        !d.exists(),
        "the failed download left {} behind",
        d.display()
    );
    let err = failure(
        byzadam()
            .current_dir(here)
            .env("BYZADAM_DATA_DIR", &d)
            .args(["run", "--quiet"])
            .args(quick),
    );
    assert!(err.contains("loading mnist"), "{err}");
    // A corrupt file is never replaced by synthetic digits, even in the quickstart's ./data.
    let mnist = here.join("data/mnist");
    std::fs::create_dir_all(&mnist).unwrap();
    std::fs::write(mnist.join("train-images-idx3-ubyte.gz"), b"not gzip at all").unwrap();
    let err = failure(
        byzadam()
            .current_dir(here)
            .env_remove("BYZADAM_DATA_DIR")
            .args(["run", "--quiet"])
            .args(quick),
    );
    assert!(err.contains("train-images-idx3-ubyte.gz"), "{err}");
    // A run that names its dataset never falls back.
    let err = stderr_of(&[
        "run",
        "--quiet",
        "--data-dir",
        d.to_str().unwrap(),
        "--set",
        "dataset=\"mnist\"",
        "--set",
        "rounds=2",
    ]);
    assert!(err.contains("loading mnist"), "{err}");
}

#[test]
fn settings_take_toml_values_as_run_set_does() {
    // Issue 13: `aggregate`/`attack --set` read TOML values, as `byzadam run --set` does (they
    // read JSON scalars before): a quoted string and a bare word are the same setting, and a
    // TOML-only number (with an underscore) is a number.
    let dir = tempfile::tempdir().unwrap();
    let honest = dir.path().join("h.csv");
    std::fs::write(&honest, "0,10\n2,20\n4,30\n").unwrap();
    let h = honest.to_str().unwrap();
    let empire = |base: &str| {
        stdout_json(&[
            "attack",
            h,
            "--attack",
            "empire",
            "--byzantine",
            "1",
            "--set",
            base,
            "--set",
            "epsilon=1_0.0",
        ])
    };
    // −ε × the honest mean (2, 20).
    let want = serde_json::json!([[-20.0, -200.0]]);
    assert_eq!(empire("base=honest_mean"), want);
    assert_eq!(empire("base=\"honest_mean\""), want);
}

#[test]
fn run_bench_and_bench_engine_take_threads() {
    for command in ["run", "bench", "bench-engine", "grid"] {
        let (help, _) = success(byzadam().args([command, "--help"]));
        assert!(
            help.contains("--threads"),
            "{command} --help lacks --threads"
        );
        assert!(help.contains("same bits"), "{command}: {help}");
    }
    let e = failure(byzadam().args(["bench", "--threads", "0", "--dims", "8"]));
    assert!(e.contains("--threads must be at least 1"), "{e}");
    let (out, _) =
        success(byzadam().args(["bench", "--threads", "1", "--dims", "64", "--repeats", "1"]));
    assert!(out.contains("1 threads"), "{out}");
}

/// NaN and ∞ reach no registry through JSON's `null` (which reads as "absent", so as the
/// default): every path refuses them naming the key (issue 21).
#[test]
fn non_finite_values_are_refused_naming_the_key_on_every_path() {
    let dir = tempfile::tempdir().unwrap();
    for (set, key) in [
        ("attack.z=nan", "attack.z"),
        ("attack={name=\"alie\", z=inf}", "attack.z"),
        (
            "aggregator={name=\"cwtm\", f=2, low=-inf}",
            "aggregator.low",
        ),
        ("optimizer.lr.value=nan", "optimizer.lr.value"),
    ] {
        let err = stderr_of(&[
            "run",
            "--set",
            set,
            "--quiet",
            "--out",
            dir.path().to_str().unwrap(),
        ]);
        assert!(
            err.contains(&format!("`{key}`")) && err.contains("finite"),
            "{set}: {err}"
        );
    }
    let config = dir.path().join("c.toml");
    std::fs::write(&config, "[attack]\nname = \"gaussian\"\nstd = nan\n").unwrap();
    let err = stderr_of(&["run", config.to_str().unwrap(), "--quiet"]);
    assert!(
        err.contains("`attack.std`") && err.contains("c.toml"),
        "{err}"
    );
    let x = dir.path().join("x.csv");
    std::fs::write(&x, "1,2\n3,4\n5,6\n").unwrap();
    for (rule, set) in [("cwtm", "low=nan"), ("cc", "tau=inf"), ("gm", "nu=-inf")] {
        let err = stderr_of(&[
            "aggregate",
            x.to_str().unwrap(),
            "--rule",
            rule,
            "--f",
            "1",
            "--set",
            set,
        ]);
        assert!(err.contains("finite"), "{rule} {set}: {err}");
    }
    let grid = dir.path().join("g.toml");
    std::fs::write(
        &grid,
        "[base]\nrounds = 1\n[axes]\nseed = [0]\n\"attack.z\" = [1.0, nan]\n",
    )
    .unwrap();
    let err = stderr_of(&[
        "grid",
        grid.to_str().unwrap(),
        "--dry-run",
        "--store",
        dir.path().join("s.db").to_str().unwrap(),
    ]);
    assert!(err.contains("finite") && err.contains("g.toml"), "{err}");
    // A bound the rule declares, named as the key.
    let err = stderr_of(&["run", "--set", "aggregator={name=\"cc\", tau=0}", "--quiet"]);
    assert!(err.contains("`aggregator.tau`"), "{err}");
}

#[test]
fn rules_lists_each_entrys_parameters_and_json_the_whole_registry() {
    let (text, _) = success(byzadam().arg("rules"));
    assert!(
        text.contains("tau (float, finite, > 0; default 100)"),
        "{text}"
    );
    assert!(text.contains("(needs n ≥ 4f + 3)"), "{text}");
    let (json, _) = success(byzadam().args(["rules", "--json"]));
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    let aggs = v["aggregators"].as_array().unwrap();
    assert_eq!(aggs.len(), AggregatorConfig::NAMES.len());
    let cc = aggs
        .iter()
        .find(|e| e["name"] == "centered_clipping")
        .unwrap();
    assert_eq!(cc["params"][0]["name"], "tau");
    assert_eq!(cc["aliases"][0], "cc");
}

/// `grid --dry-run` writes nothing: no store, no results directory; it reads an existing
/// store (its stored runs are not listed as to run) and refuses one that is not a store,
/// leaving it as it was.
#[test]
fn a_dry_run_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let g = d.join("g.toml");
    std::fs::write(
        &g,
        "name = \"dry\"\n[base]\ndataset = \"synthetic\"\nrounds = 1\nworkers = 4\n\
         byzantine = 1\naggregator = { name = \"median\" }\nattack = { name = \"sign_flip\" }\n\
         eval_every = 1\neval_samples = 50\n[axes]\nseed = [0, 1]\n",
    )
    .unwrap();
    let (out, _) =
        success(
            byzadam()
                .current_dir(d)
                .args(["grid", g.to_str().unwrap(), "--dry-run"]),
        );
    assert!(
        out.contains("2 to run") && out.contains("nothing written"),
        "{out}"
    );
    assert!(!d.join("results").exists(), "a dry run created a store");
    // With a store holding one of the two runs: that one is not listed.
    let store = d.join("s.db");
    success(byzadam().current_dir(d).args([
        "grid",
        g.to_str().unwrap(),
        "--store",
        store.to_str().unwrap(),
        "--quiet",
    ]));
    let g1 = d.join("g1.toml");
    std::fs::write(
        &g1,
        std::fs::read_to_string(&g)
            .unwrap()
            .replace("seed = [0, 1]", "seed = [0, 1, 2]"),
    )
    .unwrap();
    let before = std::fs::read(&store).unwrap();
    let (out, _) = success(byzadam().current_dir(d).args([
        "grid",
        g1.to_str().unwrap(),
        "--store",
        store.to_str().unwrap(),
        "--dry-run",
    ]));
    assert!(
        out.contains("2 already in") && out.contains("1 to run"),
        "{out}"
    );
    assert_eq!(out.lines().count(), 2, "the one pending run: {out}");
    assert_eq!(
        std::fs::read(&store).unwrap(),
        before,
        "the store was written"
    );
    let junk = d.join("junk.db");
    std::fs::write(&junk, "not a store").unwrap();
    let err = failure(byzadam().current_dir(d).args([
        "grid",
        g.to_str().unwrap(),
        "--store",
        junk.to_str().unwrap(),
        "--dry-run",
    ]));
    assert!(err.contains("not a byzadam results store"), "{err}");
    assert_eq!(std::fs::read(&junk).unwrap(), b"not a store");
}

/// Hostile sizes and paths refused before any work (issue 22): a grid named as a path, a
/// grid whose axes multiply past any machine (or wrap to 0), a test image listed twice,
/// absurd thread counts.
#[test]
fn hostile_sizes_and_paths_are_refused_before_any_work() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    for name in ["../../evil", "/tmp/evil", "..", ".hidden", "a/b"] {
        let g = d.join("g.toml");
        std::fs::write(&g, format!("name = {name:?}\n[axes]\nseed = [0]\n")).unwrap();
        let err =
            failure(
                byzadam()
                    .current_dir(d)
                    .args(["grid", g.to_str().unwrap(), "--dry-run"]),
            );
        assert!(
            err.contains("key `name`") && err.contains("plain file name"),
            "{name}: {err}"
        );
    }
    assert!(!d.join("results").exists(), "a refused grid wrote a store");
    // 64 axes of two values: 2^64 runs, which wrapped to 0 ("nothing to do").
    let mut axes = String::from("[axes]\n");
    for i in 0..64 {
        axes.push_str(&format!("seed{i} = [0, 1]\n"));
    }
    let g = d.join("wide.toml");
    std::fs::write(&g, &axes).unwrap();
    let err = failure(
        byzadam()
            .current_dir(d)
            .args(["grid", g.to_str().unwrap(), "--dry-run"]),
    );
    assert!(!err.contains("nothing to do"), "{err}");
    let g = d.join("big.toml");
    let values: Vec<String> = (0..1001).map(|i| i.to_string()).collect();
    std::fs::write(
        &g,
        format!(
            "[axes]\nseed = [{0}]\ndata_seed = [{0}]\n",
            values.join(",")
        ),
    )
    .unwrap();
    let err = failure(
        byzadam()
            .current_dir(d)
            .args(["grid", g.to_str().unwrap(), "--dry-run"]),
    );
    assert!(
        err.contains("more than 1000000 runs") && err.contains("1001 × 1001"),
        "{err}"
    );
    let err = stderr_of(&["run", "--set", "eval_subset=[1, 1, 1]", "--quiet"]);
    assert!(
        err.contains("`eval_subset`") && err.contains("twice"),
        "{err}"
    );
    let err = failure(byzadam().args(["bench", "--threads", "100000", "--dims", "8"]));
    assert!(err.contains("at most 1024"), "{err}");
}

#[test]
fn a_setting_given_twice_is_an_error_not_the_last_one_silently() {
    let dir = tempfile::tempdir().unwrap();
    let x = dir.path().join("x.csv");
    std::fs::write(&x, "1,2\n3,4\n5,6\n7,8\n9,10\n").unwrap();
    let x = x.to_str().unwrap();
    let err = stderr_of(&["aggregate", x, "--rule", "cwtm", "--f", "2", "--set", "f=3"]);
    assert!(err.contains("--f 2 and --set f=3 disagree"), "{err}");
    let err = stderr_of(&[
        "aggregate",
        x,
        "--rule",
        "multi_krum",
        "--f",
        "1",
        "--set",
        "m=2",
        "--set",
        "m=3",
    ]);
    assert!(err.contains("`m` is given twice"), "{err}");
}

/// A finite number past float32's range is refused, naming its row and column, instead of
/// becoming ±∞ without a word (issue 22); ±∞ spelled out stays an input like any other.
#[test]
fn numbers_past_float32s_range_are_refused_naming_the_cell() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("x.csv");
    std::fs::write(&csv, "1,2\n3,1e39\n5,6\n").unwrap();
    let err = stderr_of(&["aggregate", csv.to_str().unwrap(), "--rule", "median"]);
    assert!(
        err.contains("row 2, column 2") && err.contains("float32's range"),
        "{err}"
    );
    let json = dir.path().join("x.json");
    std::fs::write(&json, "[[1, -1e300], [2, 3]]").unwrap();
    let err = stderr_of(&["aggregate", json.to_str().unwrap(), "--rule", "median"]);
    assert!(
        err.contains("row 1, column 2") && err.contains("float32's range"),
        "{err}"
    );
    let npy = dir.path().join("x.npy");
    write_npy_f64(&npy, 2, 3, &[1.0, 2.0, 3.0, 4.0, 1e300, 6.0]);
    let err = stderr_of(&["aggregate", npy.to_str().unwrap(), "--rule", "median"]);
    assert!(
        err.contains("row 2, column 2") && err.contains("float32's range"),
        "{err}"
    );
    // inf spelled out, and the largest float32, are inputs.
    std::fs::write(&csv, "1,inf\n3,3.4e38\n5,6\n").unwrap();
    success(byzadam().args(["aggregate", csv.to_str().unwrap(), "--rule", "median"]));
}

/// A single run's directory holds one run (issue 22): a run stopped after a checkpoint resumes
/// with the same command and ends with the metrics of an uninterrupted run, bit for bit; a
/// finished run is reported, not redone; another config or a foreign file is refused.
#[test]
fn a_single_run_resumes_from_its_checkpoint_and_never_mixes_runs() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("small.toml");
    std::fs::write(
        &config,
        "dataset = \"synthetic\"\nmodel = { name = \"logistic_regression\" }\nworkers = 5\n\
         byzantine = 1\nbatch = 8\nrounds = 7\neval_every = 2\neval_samples = 100\n\
         optimizer = { name = \"mra\" }\naggregator = { name = \"centered_clipping\" }\n\
         attack = { name = \"alie\" }\n",
    )
    .unwrap();
    let (whole, resumed) = (dir.path().join("whole"), dir.path().join("resumed"));
    let run = |out: &Path| {
        let mut cmd = byzadam();
        cmd.arg("run")
            .arg(&config)
            .arg("-o")
            .arg(out)
            .arg("--quiet");
        cmd
    };
    success(&mut run(&whole));

    // A run stopped after round 3 (its checkpoint written as `byzadam run` writes it).
    let cfg = byzadam_sim::RunConfig::resolve_file(Some(&config), &[]).unwrap();
    let data = byzadam_data::load_for_run(
        cfg.dataset,
        dir.path(),
        cfg.data_seed,
        false,
        byzadam_data::download::Progress::Quiet,
    )
    .unwrap();
    let mut sim = byzadam_sim::Simulation::new(cfg.clone(), &data.split).unwrap();
    let metrics: Vec<_> = (0..3).map(|_| sim.step().unwrap()).collect();
    std::fs::create_dir(&resumed).unwrap();
    std::fs::write(resumed.join("config.toml"), toml::to_string(&cfg).unwrap()).unwrap();
    std::fs::write(
        resumed.join("checkpoint.bin"),
        sim.checkpoint(&metrics, 1.0).to_bytes().unwrap(),
    )
    .unwrap();
    // What a crash may leave: metrics past the checkpoint, rewritten on resume.
    std::fs::write(resumed.join("metrics.jsonl"), "{\"round\": 99}\n").unwrap();
    let (out, _) = success(&mut run(&resumed));
    assert!(out.contains("(resuming after round 3)"), "{out}");
    assert!(!resumed.join("checkpoint.bin").exists());
    for file in ["metrics.jsonl", "config.toml"] {
        assert_eq!(
            std::fs::read_to_string(whole.join(file)).unwrap(),
            std::fs::read_to_string(resumed.join(file)).unwrap(),
            "{file}"
        );
    }
    let summary = |d: &Path| {
        let mut v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(d.join("summary.json")).unwrap())
                .unwrap();
        v.as_object_mut().unwrap().remove("seconds");
        v
    };
    assert_eq!(summary(&whole), summary(&resumed));

    // Finished: said, not redone (the files stay as they are).
    let before = std::fs::read(whole.join("metrics.jsonl")).unwrap();
    let (out, _) = success(&mut run(&whole));
    assert!(out.contains("already holds this run, finished"), "{out}");
    assert_eq!(std::fs::read(whole.join("metrics.jsonl")).unwrap(), before);
    // Another config: refused, naming the key that differs; --overwrite replaces it.
    let err = failure(run(&whole).args(["--set", "rounds=6"]));
    assert!(
        err.contains("another config (they differ at `rounds`)"),
        "{err}"
    );
    success(run(&whole).args(["--set", "rounds=6", "--overwrite"]));
    assert_eq!(
        std::fs::read_to_string(whole.join("metrics.jsonl"))
            .unwrap()
            .lines()
            .count(),
        6
    );
    // A file byzadam did not write: refused, even with --overwrite, and left alone.
    std::fs::write(whole.join("notes.txt"), "mine").unwrap();
    let err = failure(run(&whole).arg("--overwrite"));
    assert!(
        err.contains("\"notes.txt\", which byzadam run did not write"),
        "{err}"
    );
    assert_eq!(
        std::fs::read_to_string(whole.join("notes.txt")).unwrap(),
        "mine"
    );
}

#[test]
fn a_bad_pass_size_in_the_environment_stops_the_run_naming_the_variable() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    for bad in ["0", "two", "-1"] {
        let err = failure(
            byzadam()
                .env("BYZADAM_PASS_WORKERS", bad)
                .args(["run", "--set", "dataset=\"synthetic\""])
                .args([
                    "--set",
                    "model={name=\"mlp\", hidden=[8]}",
                    "--set",
                    "rounds=1",
                ])
                .arg("--out")
                .arg(&out),
        );
        assert!(
            err.contains("BYZADAM_PASS_WORKERS") && err.contains("whole number from 1"),
            "{bad}: {err}"
        );
        assert!(!out.join("metrics.jsonl").exists(), "{bad}: a run started");
    }
}

#[test]
fn bench_engine_gives_the_round_against_its_flop_floor() {
    let (out, _) = success(byzadam().args([
        "bench-engine",
        "--models",
        "mnist",
        "--workers",
        "2",
        "--repeats",
        "1",
        "--threads",
        "1",
        "--sgemm-peak",
    ]));
    assert!(out.contains("GFLOP/s"), "{out}");
    let row = out
        .lines()
        .find(|l| l.starts_with("| mnist"))
        .expect("a row for mnist");
    let cells: Vec<&str> = row.split('|').map(str::trim).collect();
    // | mnist | parameters | round ms | img/s | round GFLOP | floor ms | × floor |
    assert_eq!(
        cells[5], "0.30",
        "2 workers × 25 images × 5.98 MFLOP: {row}"
    );
    // The floor and the multiple are what the printed numbers give (no claim about the
    // times themselves: a test's timings depend on the machine's load). Each printed value
    // is within half its last digit of the value computed, so the checks are intervals.
    let rate: f64 = out
        .lines()
        .find_map(|l| l.strip_prefix("SGEMM, 1024 × 1024 × 1024, one thread: "))
        .and_then(|l| l.strip_suffix(" GFLOP/s"))
        .expect("the SGEMM line")
        .parse()
        .unwrap();
    let num = |i: usize| -> f64 { cells[i].parse().unwrap() };
    let (round, floor, times) = (num(3), num(6), num(7));
    assert!(rate > 0.0 && round > 0.0 && floor > 0.0, "{out}");
    // 2 × 25 images × 5,982,000 FLOPs at `rate` GFLOP/s (printed to 0.1).
    let flops = 2.0 * 25.0 * 5_982_000.0;
    let (lo, hi) = (flops / (rate + 0.05) / 1e6, flops / (rate - 0.05) / 1e6);
    assert!(
        floor >= lo - 0.05 && floor <= hi + 0.05,
        "floor {floor} ms, not {lo}..{hi} from {rate} GFLOP/s: {row}"
    );
    let (lo, hi) = (
        (round - 0.05) / (floor + 0.05),
        (round + 0.05) / (floor - 0.05),
    );
    assert!(
        times >= lo - 0.005 && times <= hi + 0.005,
        "× floor {times}, not round / floor ({lo}..{hi}): {row}"
    );
}
