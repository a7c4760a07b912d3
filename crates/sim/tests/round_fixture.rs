//! The round, metric by metric, against the output recorded by the build before the round was
//! split into its worker and server halves (issue 21): 20 rounds of each optimizer under
//! Little, ALIE and label flip, on the MNIST CNN over synthetic digits (no data directory
//! needed). Every metric is compared as Rust's shortest round-trip decimal (so equal text is
//! equal bits), and the final parameters by their SHA-256.
//!
//! The fixture `fixtures/round_before_split.txt` was written by this test at commit 7a2a2b0's
//! code with `BYZADAM_RECORD_FIXTURE=1`; a change that alters it changes the numbers every
//! front end gives, and must bump `RESULTS_VERSION` and re-record it in the same commit.

use byzadam_data::synthetic;
use byzadam_sim::{RoundMetrics, RunConfig, Simulation};
use sha2::{Digest, Sha256};
use std::fmt::Write as _;
use std::path::PathBuf;

const OPTIMIZERS: [&str; 4] = ["sgd", "resam", "dra", "mra"];
const ATTACKS: [&str; 3] = ["little", "a_little_is_enough", "label_flip"];

fn config(optimizer: &str, attack: &str) -> RunConfig {
    let text = format!(
        r#"
        dataset = "synthetic"
        rounds = 20
        eval_every = 5
        eval_samples = 300
        optimizer = {{ name = "{optimizer}" }}
        attack = {{ name = "{attack}" }}
        "#
    );
    toml::from_str(&text).expect("a valid config")
}

fn line(out: &mut String, name: &str, m: &RoundMetrics) {
    let eval = m.eval.map_or("-".to_string(), |e| {
        format!("{:?} {:?}", e.accuracy, e.loss)
    });
    writeln!(
        out,
        "{name} {} lr={:?} loss={:?} xi={:?} diam={:?} lambda={:?} diverged={} eval={eval}",
        m.round, m.lr, m.train_loss, m.xi_norm, m.honest_diameter, m.lambda, m.diverged
    )
    .unwrap();
}

/// Every config's rounds and final parameters, as the fixture's text.
fn record() -> String {
    let data = synthetic::generate(0, 6000, 300);
    let mut out = String::new();
    for optimizer in OPTIMIZERS {
        for attack in ATTACKS {
            let name = format!("{optimizer}+{attack}");
            let mut sim = Simulation::new(config(optimizer, attack), &data).expect("valid");
            let mut metrics = Vec::new();
            let summary = sim.run(&mut metrics).expect("runs");
            for m in &metrics {
                line(&mut out, &name, m);
            }
            let bytes: Vec<u8> = sim.params().iter().flat_map(|p| p.to_le_bytes()).collect();
            let digest: String = Sha256::digest(&bytes)
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            writeln!(
                out,
                "{name} params={digest} recall={:?}",
                summary.class_recall
            )
            .unwrap();
        }
    }
    out
}

#[test]
fn twenty_rounds_of_every_optimizer_under_three_attacks_match_the_recorded_build() {
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/round_before_split.txt");
    let now = record();
    if std::env::var_os("BYZADAM_RECORD_FIXTURE").is_some() {
        std::fs::write(&path, &now).expect("writes the fixture");
        return;
    }
    let recorded = std::fs::read_to_string(&path).expect("the fixture is checked in");
    for (i, (a, b)) in recorded.lines().zip(now.lines()).enumerate() {
        assert_eq!(a, b, "line {} of {} differs", i + 1, path.display());
    }
    assert_eq!(recorded.lines().count(), now.lines().count());
    assert_eq!(recorded.lines().count(), 12 * 21);
}
