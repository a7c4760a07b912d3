//! Checkpoints: a run stopped after any round and restored into a fresh simulation, through
//! the byte encoding, continues with the same bits as the run that never stopped.

use byzadam_data::{synthetic, Split};
use byzadam_model::ModelKind;
use byzadam_optim::{Optimizer, Schedule};
use byzadam_robust::aggregators::CenteredClipping;
use byzadam_robust::attacks::Little;
use byzadam_robust::preaggregators::Bucketing;
use byzadam_robust::{AggregatorConfig, AttackConfig, PreAggregatorConfig};
use byzadam_sim::{Checkpoint, RoundMetrics, RunConfig, Simulation};

fn data() -> Split {
    synthetic::generate(3, 3000, 300)
}

/// State everywhere: MRA (two messages and moments per worker), centred clipping (a centre
/// carried across rounds), bucketing (random per round), Little (reads honest messages).
fn config() -> RunConfig {
    RunConfig {
        dataset: byzadam_data::DatasetKind::Synthetic,
        model: ModelKind::Mlp { hidden: vec![16] },
        workers: 7,
        byzantine: 2,
        batch: 8,
        rounds: 12,
        eval_every: 4,
        optimizer: Optimizer::Mra {
            lr: Schedule::Constant { value: 0.01 },
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            guard: None,
            eps_placement: Default::default(),
        },
        preaggregators: vec![PreAggregatorConfig::Bucketing(Bucketing { s: 2 })],
        aggregator: AggregatorConfig::CenteredClipping(CenteredClipping::new(1.0, 2)),
        attack: Some(AttackConfig::Little(Little::default())),
        ..RunConfig::default()
    }
}

fn bits(m: &[RoundMetrics]) -> String {
    // Debug output distinguishes every float bit pattern that matters here (and NaN = NaN).
    format!("{m:?}")
}

#[test]
fn a_restored_run_continues_bit_for_bit() {
    let data = data();
    let mut straight = Simulation::new(config(), &data).unwrap();
    let mut whole = Vec::new();
    straight.run(&mut whole).unwrap();
    for stop_after in [1u64, 5, 11] {
        let mut first = Simulation::new(config(), &data).unwrap();
        let mut metrics = Vec::new();
        for _ in 0..stop_after {
            metrics.push(first.step().unwrap());
        }
        let bytes = first.checkpoint(&metrics, 1.5).to_bytes().expect("encodes");
        drop(first);
        let checkpoint = Checkpoint::from_bytes(&bytes).unwrap();
        assert_eq!(checkpoint.round, stop_after);
        assert_eq!(checkpoint.seconds, 1.5);
        let mut resumed = Simulation::new(config(), &data).unwrap();
        let mut metrics = resumed.restore(checkpoint).unwrap();
        assert_eq!(resumed.round(), stop_after);
        while resumed.round() < 12 {
            metrics.push(resumed.step().unwrap());
        }
        assert_eq!(
            bits(&metrics),
            bits(&whole),
            "stopped after round {stop_after}"
        );
        assert_eq!(
            resumed
                .params()
                .iter()
                .map(|p| p.to_bits())
                .collect::<Vec<_>>(),
            straight
                .params()
                .iter()
                .map(|p| p.to_bits())
                .collect::<Vec<_>>()
        );
    }
}

#[test]
fn a_checkpoint_restores_only_into_its_own_config() {
    let data = data();
    let mut sim = Simulation::new(config(), &data).unwrap();
    let m = vec![sim.step().unwrap()];
    let checkpoint = sim.checkpoint(&m, 0.0);
    let other = RunConfig {
        seed: 1,
        ..config()
    };
    let mut fresh = Simulation::new(other, &data).unwrap();
    let e = fresh.restore(checkpoint.clone()).unwrap_err();
    assert_eq!(e.key, "checkpoint");
    // Refused without touching the simulation: it still starts from round 0.
    assert_eq!(fresh.round(), 0);
    // Metrics that do not match the round count are refused too.
    let mut bad = checkpoint;
    bad.metrics.clear();
    assert!(Simulation::new(config(), &data)
        .unwrap()
        .restore(bad)
        .is_err());
}

#[test]
fn foreign_or_truncated_bytes_are_errors_not_panics() {
    let data = data();
    let mut sim = Simulation::new(config(), &data).unwrap();
    let m = vec![sim.step().unwrap()];
    let bytes = sim.checkpoint(&m, 0.0).to_bytes().expect("encodes");
    assert!(Checkpoint::from_bytes(b"hello").is_err());
    assert!(Checkpoint::from_bytes(&bytes[..bytes.len() / 2]).is_err());
    assert!(Checkpoint::from_bytes(&bytes[8..]).is_err());
    assert!(Checkpoint::from_bytes(&bytes).is_ok());
}
