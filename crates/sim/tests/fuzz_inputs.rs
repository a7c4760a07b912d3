//! Fuzz tests of what the simulator reads (issue 22): run configs (arbitrary text and TOML
//! built from the real keys with hostile values) and checkpoints (the run's, the server
//! half's and a worker's: arbitrary bytes and real ones mutated). 10,000 cases each: no
//! panic, no case slower than a second, no allocation past a bound; a mutated checkpoint that
//! still decodes either restores (and the run then steps without a panic) or is refused.

#[path = "../../../tests/support/fuzz.rs"]
mod fuzz;

use byzadam_data::{synthetic, Split};
use byzadam_sim::round::{ServerCheckpoint, WorkerCheckpoint};
use byzadam_sim::{Checkpoint, EngineWorker, RunConfig, Server, Simulation};
use proptest::prelude::*;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

#[global_allocator]
static ALLOC: fuzz::PeakAlloc = fuzz::PeakAlloc;

/// The small runs here need a few megabytes; nothing may ask for more than this at once.
const BOUND: usize = 64 << 20;

fn timed<T>(what: &str, limit: Duration, f: impl FnOnce() -> T) -> T {
    fuzz::timed(what, limit, BOUND, f)
}

const SMALL: &str = r#"
dataset = "synthetic"
model = { name = "logistic_regression" }
workers = 5
byzantine = 1
batch = 8
rounds = 4
eval_every = 2
eval_samples = 50
optimizer = { name = "mra" }
aggregator = { name = "centered_clipping", tau = 1.0 }
attack = { name = "alie" }
"#;

fn data() -> Arc<Split> {
    static DATA: OnceLock<Arc<Split>> = OnceLock::new();
    DATA.get_or_init(|| Arc::new(synthetic::generate(5, 400, 60)))
        .clone()
}

/// The three checkpoints of SMALL after two rounds.
fn checkpoints() -> &'static (Vec<u8>, Vec<u8>, Vec<u8>) {
    static BYTES: OnceLock<(Vec<u8>, Vec<u8>, Vec<u8>)> = OnceLock::new();
    BYTES.get_or_init(|| {
        let cfg = RunConfig::resolve(Some(SMALL), "fuzz", &[]).expect("valid");
        let mut sim = Simulation::shared(cfg, data()).expect("builds");
        let metrics = vec![sim.step().expect("steps"), sim.step().expect("steps")];
        let run = sim.checkpoint(&metrics, 1.0).to_bytes().expect("encodes");
        let server = sim.server().checkpoint().to_bytes().expect("encodes");
        let worker = sim.workers()[2].checkpoint().to_bytes().expect("encodes");
        (run, server, worker)
    })
}

/// A hostile TOML value.
fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<i64>().prop_map(|x| x.to_string()),
        Just("9223372036854775807".to_string()),
        Just("-1".to_string()),
        Just("0".to_string()),
        any::<f64>().prop_map(|x| format!("{x:?}")),
        Just("nan".to_string()),
        Just("-inf".to_string()),
        Just("1e300".to_string()),
        "\"[a-z_]{0,12}\"".prop_map(|s| s),
        Just("[]".to_string()),
        Just("[1000000000]".to_string()),
        Just("{}".to_string()),
        Just("{ name = \"dirichlet\", alpha = 1e-9 }".to_string()),
        Just("{ name = \"mlp\", hidden = [1000000000, 1000000000] }".to_string()),
        Just("{ name = \"trimmed_mean\", f = 9223372036854775807 }".to_string()),
        Just("{ name = \"alie\", z = 1e39 }".to_string()),
        Just("{ name = \"nope\" }".to_string()),
        Just("true".to_string()),
    ]
}

fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(RunConfig::KEYS).prop_map(str::to_string),
        prop::sample::select(RunConfig::KEYS).prop_map(|k| format!("{k}.f")),
        prop::sample::select(RunConfig::KEYS).prop_map(|k| format!("{k}.name")),
        "[a-z_]{1,10}".prop_map(|s| s),
        Just("\"rounds = 1\\nworkers\"".to_string()),
    ]
}

fn mutated(
    bytes: &[u8],
    flips: &[(prop::sample::Index, u8)],
    cut: Option<prop::sample::Index>,
) -> Vec<u8> {
    let mut b = bytes.to_vec();
    for (at, x) in flips {
        let i = at.index(b.len());
        b[i] ^= x;
    }
    if let Some(cut) = cut {
        b.truncate(cut.index(b.len() + 1));
    }
    b
}

fn flips() -> impl Strategy<Value = Vec<(prop::sample::Index, u8)>> {
    proptest::collection::vec((any::<prop::sample::Index>(), 1u8..=255), 1..4)
}

proptest! {
    #![proptest_config(fuzz::config())]

    #[test]
    fn run_config_arbitrary_text(text in "(?s).{0,300}") {
        timed("run config", Duration::from_secs(1), || {
            let _ = RunConfig::resolve(Some(&text), "fuzz", &[]);
        });
    }

    #[test]
    fn run_config_hostile_values(
        entries in proptest::collection::vec((key(), value()), 0..8),
        set in proptest::collection::vec((key(), value()), 0..3),
    ) {
        let text: String = entries.iter().map(|(k, v)| format!("{k} = {v}\n")).collect();
        let set: Vec<String> = set.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let out = timed("run config", Duration::from_secs(1), || {
            RunConfig::resolve(Some(&text), "fuzz", &set)
        });
        if let Ok(cfg) = out {
            // Whatever resolves is valid and round-trips.
            prop_assert!(cfg.validate().is_ok());
        }
    }

    #[test]
    fn checkpoint_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        timed("checkpoint", Duration::from_secs(1), || {
            let _ = Checkpoint::from_bytes(&bytes);
            let _ = ServerCheckpoint::from_bytes(&bytes);
            let _ = WorkerCheckpoint::from_bytes(&bytes);
        });
    }

    #[test]
    fn checkpoints_mutated(
        which in 0usize..3,
        flips in flips(),
        cut in proptest::option::of(any::<prop::sample::Index>()),
    ) {
        let (run, server, worker) = checkpoints();
        let original = [run, server, worker][which];
        let bytes = mutated(original, &flips, cut);
        timed("mutated checkpoint", Duration::from_secs(1), || match which {
            0 => {
                if let Ok(c) = Checkpoint::from_bytes(&bytes) {
                    // Decodes: restoring it is refused or continues without a panic.
                    let mut sim = Simulation::shared(c.config.clone(), data());
                    if let Ok(sim) = sim.as_mut() {
                        if sim.restore(c).is_ok() && sim.round() < sim.config().rounds {
                            let _ = sim.step();
                        }
                    }
                }
            }
            1 => {
                if let Ok(c) = ServerCheckpoint::from_bytes(&bytes) {
                    // Restored or refused; restored, the server steps on honest-shaped input.
                    let cfg = RunConfig::resolve(Some(SMALL), "fuzz", &[]).expect("valid");
                    let mut server = Server::new(cfg).expect("builds");
                    if server.restore(c).is_ok() && server.round() < server.config().rounds {
                        let (n, d) = (server.workers(), server.dim());
                        let rows = vec![0.5f32; n * d];
                        let messages: Vec<&[f32]> = vec![&rows; server.messages()];
                        let _ = server.step(&messages, &vec![1.0; n]);
                    }
                }
            }
            _ => {
                if let Ok(c) = WorkerCheckpoint::from_bytes(&bytes) {
                    // Restored or refused; restored, the worker computes its next message.
                    let cfg = RunConfig::resolve(Some(SMALL), "fuzz", &[]).expect("valid");
                    let mut workers = EngineWorker::all(&cfg, data()).expect("builds");
                    let w = &mut workers[2];
                    if w.restore(c).is_ok() {
                        let dim = w.half().dim();
                        let params = vec![0.01f32; dim];
                        let mut out = vec![vec![0.0f32; dim]; w.half().messages()];
                        let _ = w.step(&params, &mut out);
                    }
                }
            }
        });
    }
}

#[test]
fn a_checkpoint_restores_and_a_foreign_one_is_refused() {
    let (run, _, _) = checkpoints();
    let c = Checkpoint::from_bytes(run).expect("decodes");
    let mut sim = Simulation::shared(c.config.clone(), data()).expect("builds");
    assert_eq!(sim.restore(c).expect("restores").len(), 2);
    assert_eq!(sim.round(), 2);
    // Another config's checkpoint changes nothing.
    let other = RunConfig::resolve(Some(SMALL), "fuzz", &["seed=9".into()]).expect("valid");
    let mut fresh = Simulation::shared(other, data()).expect("builds");
    let c = Checkpoint::from_bytes(run).expect("decodes");
    assert!(fresh.restore(c).is_err());
    assert_eq!(fresh.round(), 0);
}
