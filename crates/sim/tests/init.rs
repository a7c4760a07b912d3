//! The `init` run option: initial parameters from a flat `.npy` file, pinned by its SHA-256 when
//! the config is resolved. Files are written by hand here (the `.npy` format 1.0), so the
//! reader is checked against an independent writer.

use byzadam_data::{synthetic, Split};
use byzadam_sim::{RoundMetrics, RunConfig, Server, Simulation};
use sha2::{Digest, Sha256};
use std::path::Path;

/// A float32 `.npy` of `values` with the shape `shape` (as NumPy writes it).
fn npy(shape: &str, values: &[f32]) -> Vec<u8> {
    let data: Vec<u8> = values.iter().flat_map(|x| x.to_le_bytes()).collect();
    byzadam_data::testing::npy_bytes("<f4", false, shape, &data)
}

fn write(path: &Path, shape: &str, values: &[f32]) {
    std::fs::write(path, npy(shape, values)).unwrap();
}

/// A small run on synthetic data; `init` (a path) when given.
fn config(init: Option<&Path>) -> RunConfig {
    let mut text = String::from(
        "dataset = \"synthetic\"\nmodel = { name = \"mlp\", hidden = [16] }\nworkers = 4\n\
         byzantine = 1\nbatch = 8\nrounds = 3\neval_every = 3\n\
         aggregator = { name = \"trimmed_mean\", f = 1 }\nattack = { name = \"sign_flip\" }\n",
    );
    if let Some(p) = init {
        text.push_str(&format!("init = {:?}\n", p.display().to_string()));
    }
    RunConfig::resolve(Some(&text), "test.toml", &[]).expect("valid config")
}

fn data() -> Split {
    synthetic::generate(3, 600, 100)
}

fn metrics(config: RunConfig, data: &Split) -> Vec<RoundMetrics> {
    let mut m = Vec::new();
    Simulation::new(config, data).unwrap().run(&mut m).unwrap();
    m
}

#[test]
fn the_file_is_where_the_run_starts_and_its_sha256_is_pinned() {
    let dir = tempfile::tempdir().unwrap();
    let drawn = Server::new(config(None)).unwrap().params().to_vec();
    // The drawn parameters written out: the same run, bit for bit (only the parameters come
    // from the file; batch-norm state and every random stream are as without it).
    let same = dir.path().join("same.npy");
    write(&same, &format!("{},", drawn.len()), &drawn);
    let cfg = config(Some(&same));
    let pinned = cfg.init.as_ref().unwrap().sha256.clone().unwrap();
    let expected: String = Sha256::digest(std::fs::read(&same).unwrap())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(pinned, expected);
    let data = data();
    assert_eq!(metrics(cfg, &data), metrics(config(None), &data));
    // Other values (and a (1, d) shape): the server starts there, and the run differs.
    let halved: Vec<f32> = drawn.iter().map(|x| x * 0.5).collect();
    let other = dir.path().join("halved.npy");
    write(&other, &format!("1, {}", drawn.len()), &halved);
    let cfg = config(Some(&other));
    assert_eq!(Server::new(cfg.clone()).unwrap().params(), &halved[..]);
    assert_ne!(metrics(cfg, &data), metrics(config(None), &data));
}

#[test]
fn configs_without_init_serialise_as_before() {
    // Their ids (hashes of this JSON) must not change.
    let json = serde_json::to_string(&config(None)).unwrap();
    assert!(!json.contains("init"), "{json}");
}

#[test]
fn a_changed_file_is_an_error_not_another_run() {
    let dir = tempfile::tempdir().unwrap();
    let drawn = Server::new(config(None)).unwrap().params().to_vec();
    let path = dir.path().join("init.npy");
    write(&path, &format!("{},", drawn.len()), &drawn);
    let cfg = config(Some(&path));
    write(
        &path,
        &format!("{},", drawn.len()),
        &vec![0.25; drawn.len()],
    );
    let e = Server::new(cfg).err().unwrap().to_string();
    assert!(
        e.starts_with("init: ") && e.contains("has changed since"),
        "{e}"
    );
}

#[test]
fn files_that_do_not_fit_are_errors_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let dim = Server::new(config(None)).unwrap().params().len();
    let resolve = |name: &str, bytes: Vec<u8>| {
        let p = dir.path().join(name);
        std::fs::write(&p, bytes).unwrap();
        let text = format!(
            "dataset = \"synthetic\"\nmodel = {{ name = \"mlp\", hidden = [16] }}\n\
             init = {:?}\n",
            p.display().to_string()
        );
        // Resolving pins the file; the contents are checked when the parameters are loaded.
        RunConfig::resolve(Some(&text), "test.toml", &[])
            .map_err(|e| e.to_string())
            .and_then(|c| Server::new(c).map(|_| ()).map_err(|e| e.to_string()))
            .unwrap_err()
    };
    let short = resolve(
        "short.npy",
        npy(&format!("{},", dim - 1), &vec![0.0; dim - 1]),
    );
    assert!(
        short.contains("short.npy") && short.contains("but the model has"),
        "{short}"
    );
    let square = resolve(
        "square.npy",
        npy(&format!("2, {}", dim / 2), &vec![0.0; dim]),
    );
    assert!(square.contains("expected a flat vector"), "{square}");
    let mut values = vec![0.0; dim];
    values[7] = f32::NAN;
    let nan = resolve("nan.npy", npy(&format!("{dim},"), &values));
    assert!(nan.contains("value 7 is NaN"), "{nan}");
    let text = resolve("text.npy", b"0.1, 0.2".to_vec());
    assert!(text.contains("not a valid .npy"), "{text}");
    let missing = RunConfig::resolve(Some("init = \"/nonexistent/x.npy\"\n"), "t.toml", &[])
        .unwrap_err()
        .to_string();
    assert!(
        missing.contains("t.toml")
            && missing.contains("init")
            && missing.contains("/nonexistent/x.npy"),
        "{missing}"
    );
    let dir_as_file = RunConfig::resolve(
        Some(&format!("init = {:?}\n", dir.path().display().to_string())),
        "t.toml",
        &[],
    )
    .unwrap_err()
    .to_string();
    assert!(dir_as_file.contains("not a regular file"), "{dir_as_file}");
    let bad_hash = RunConfig::resolve(
        Some("init = { path = \"x.npy\", sha256 = \"abc\" }\n"),
        "t.toml",
        &[],
    )
    .unwrap_err()
    .to_string();
    assert!(bad_hash.contains("init.sha256"), "{bad_hash}");
    let bad_shape = RunConfig::resolve(Some("init = 3\n"), "t.toml", &[])
        .unwrap_err()
        .to_string();
    assert!(bad_shape.contains("a path to an .npy file"), "{bad_shape}");
}

#[test]
fn explicit_parameters_and_init_are_not_both_taken() {
    let dir = tempfile::tempdir().unwrap();
    let drawn = Server::new(config(None)).unwrap().params().to_vec();
    let path = dir.path().join("init.npy");
    write(&path, &format!("{},", drawn.len()), &drawn);
    let e = Server::with_params(config(Some(&path)), drawn)
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("give no other parameters"), "{e}");
}

#[test]
fn flush_subnormals_reaches_the_workers_networks() {
    // An MLP (784 → 16 → 10) whose first weights are subnormal (1e-39) and whose second are
    // large and unequal: on pixels in [0, 1] its hidden values are normal (about 1e-37) and
    // its logits of order 1 when subnormals are computed, all zero when the passes read them
    // as zero (every logit 0: the loss is ln 10).
    let dir = tempfile::tempdir().unwrap();
    let dim = Server::new(config(None)).unwrap().params().len();
    let (hidden, classes) = (16, 10);
    let inputs = (dim - hidden - classes * hidden - classes) / hidden;
    let mut values = vec![1.0e-39f32; hidden * inputs];
    values.extend(vec![0.0; hidden]);
    values.extend((0..classes * hidden).map(|i| 1.0e36 * ((i / hidden) as f32 + 1.0) / 10.0));
    values.extend(vec![0.0; classes]);
    assert_eq!(values.len(), dim);
    let path = dir.path().join("subnormal.npy");
    write(&path, &format!("{dim},"), &values);
    let data = data();
    // The workers' training loss and the evaluation's, both at the initial parameters
    // (evaluated before the round's update).
    let first_losses = |flush: bool| {
        let mut cfg = config(Some(&path));
        cfg.normalize_inputs = false;
        cfg.flush_subnormals = flush;
        cfg.rounds = 1;
        cfg.eval_every = 1;
        cfg.eval_before_update = true;
        let m = &metrics(cfg, &data)[0];
        [m.train_loss, m.eval.as_ref().expect("evaluated").loss]
    };
    let (kept, flushed) = (first_losses(false), first_losses(true));
    let ln10 = 10f64.ln();
    for (what, kept, flushed) in [
        ("training", kept[0], flushed[0]),
        ("evaluation", kept[1], flushed[1]),
    ] {
        if cfg!(any(target_arch = "x86_64", target_arch = "aarch64")) {
            assert!(
                (flushed - ln10).abs() < 1e-6,
                "{what}, flushed: every logit 0, loss {flushed}"
            );
        }
        assert!(
            (kept - ln10).abs() > 0.01,
            "{what}, kept: the logits differ, loss {kept}"
        );
    }
}
