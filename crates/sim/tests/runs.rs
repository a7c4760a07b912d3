//! Runs of the simulator: determinism across thread counts on synthetic data, and the thesis's
//! qualitative findings on real MNIST (from the data directory, else downloaded into it:
//! `byzadam_data::testing`; these fail loudly, naming the file, when neither works).

use byzadam_data::{synthetic, DatasetKind, Split};
use byzadam_model::ModelKind;
use byzadam_optim::{MraGuard, Optimizer, Schedule};
use byzadam_robust::aggregators::{Average, TrimmedMean};
use byzadam_robust::attacks::{PositiveInfinity, SignFlip};
use byzadam_robust::{AggregatorConfig, AttackConfig};
use byzadam_sim::{RoundMetrics, RunConfig, Simulation, Summary};
use std::sync::OnceLock;

fn mnist() -> &'static Split {
    static DATA: OnceLock<Split> = OnceLock::new();
    // As `byzadam run` finds it: the data directory, else a checked download into it.
    DATA.get_or_init(|| {
        byzadam_data::testing::dataset(
            DatasetKind::Mnist,
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")),
        )
    })
}

fn run(config: RunConfig, data: &Split) -> (Vec<RoundMetrics>, Summary) {
    let mut sim = Simulation::new(config, data).expect("valid config");
    let mut metrics = Vec::new();
    let summary = sim.run(&mut metrics).expect("run");
    (metrics, summary)
}

fn quick(
    optimizer: Optimizer,
    aggregator: AggregatorConfig,
    attack: Option<AttackConfig>,
    rounds: u64,
) -> RunConfig {
    RunConfig {
        optimizer,
        aggregator,
        attack,
        rounds,
        eval_every: rounds,
        eval_samples: Some(2000),
        ..RunConfig::default()
    }
}

fn constant(value: f64) -> Schedule {
    Schedule::Constant { value }
}

/// `f` run in a rayon pool of `threads` threads.
fn in_pool<T: Send>(threads: usize, f: impl FnOnce() -> T + Send) -> T {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap()
        .install(f)
}

#[test]
fn same_config_and_seed_give_the_same_bits_with_one_and_two_threads() {
    let data = synthetic::generate(4, 3000, 300);
    let config = RunConfig {
        dataset: DatasetKind::Synthetic,
        model: ModelKind::Mlp { hidden: vec![32] },
        batch: 10,
        rounds: 12,
        eval_every: 4,
        ..RunConfig::default()
    };
    let metrics = |threads| in_pool(threads, || run(config.clone(), &data).0);
    let (one, two) = (metrics(1), metrics(2));
    assert_eq!(
        serde_json::to_string(&one).unwrap(),
        serde_json::to_string(&two).unwrap()
    );
    assert!(one.iter().any(|m| m.eval.is_some()) && one.iter().all(|m| m.xi_norm.is_finite()));
}

#[test]
fn batched_gradient_passes_give_the_same_bits_as_one_pass_per_worker() {
    // Label flip (the Byzantine workers compute too, on their own labels), uneven groups:
    // 15 workers in passes of 1, 4 and all, on one and two threads. (Batch norm and dropout
    // in batched passes: crates/model/tests/batched.rs.)
    let data = synthetic::generate(4, 3000, 300);
    let config = RunConfig {
        dataset: DatasetKind::Synthetic,
        model: ModelKind::Mlp { hidden: vec![24] },
        batch: 8,
        rounds: 6,
        eval_every: 3,
        attack: Some(AttackConfig::LabelFlip(Default::default())),
        ..RunConfig::default()
    };
    let with = |threads, pass| {
        in_pool(threads, || {
            let mut sim = Simulation::new(config.clone(), &data).expect("valid config");
            sim.set_pass_workers(pass);
            let mut metrics = Vec::new();
            sim.run(&mut metrics).expect("run");
            let bits: Vec<u32> = sim.params().iter().map(|v| v.to_bits()).collect();
            (serde_json::to_string(&metrics).unwrap(), bits)
        })
    };
    let one = with(1, 1);
    for (threads, pass) in [(1, 4), (1, 100), (2, 4), (2, 100)] {
        assert!(
            with(threads, pass) == one,
            "{threads} threads, passes of {pass} workers"
        );
    }
}

/// Stops after `after` rounds, keeping what it saw.
struct StopAfter {
    after: usize,
    seen: Vec<RoundMetrics>,
}

impl byzadam_sim::Recorder for StopAfter {
    fn round(&mut self, m: &RoundMetrics) {
        self.seen.push(m.clone());
    }
    fn stop(&self) -> bool {
        self.seen.len() >= self.after
    }
}

#[test]
fn a_recorder_that_asks_to_stop_ends_the_run_between_rounds_with_the_rounds_done() {
    let data = synthetic::generate(4, 3000, 300);
    let config = RunConfig {
        dataset: DatasetKind::Synthetic,
        model: ModelKind::Mlp { hidden: vec![16] },
        batch: 10,
        rounds: 50,
        eval_every: 4,
        ..RunConfig::default()
    };
    let mut sim = Simulation::new(config.clone(), &data).expect("valid config");
    let mut rec = StopAfter {
        after: 3,
        seen: Vec::new(),
    };
    let err = sim.run(&mut rec).expect_err("stopped");
    assert_eq!(err, byzadam_sim::RoundError::Interrupted { round: 3 });
    assert_eq!(sim.round(), 3);
    // The rounds it did are the first three of an uninterrupted run.
    let (full, _) = run(config, &data);
    assert_eq!(rec.seen, full[..3]);
}

#[test]
fn every_optimizer_learns_mnist_without_attack() {
    let avg = || AggregatorConfig::Average(Average {});
    for (name, opt, rounds) in [
        ("sgd", Optimizer::Sgd { lr: constant(0.75) }, 60),
        (
            "resam",
            Optimizer::Resam {
                lr: constant(0.75),
                beta: 0.9,
            },
            60,
        ),
        (
            "dra",
            Optimizer::Dra {
                lr: constant(0.001),
                beta1: 0.9,
                beta2: 0.999,
                eps: 1e-8,
            },
            60,
        ),
        (
            "mra",
            Optimizer::Mra {
                lr: constant(0.001),
                beta1: 0.9,
                beta2: 0.999,
                eps: 1e-8,
                guard: None,
                eps_placement: Default::default(),
            },
            60,
        ),
    ] {
        let (_, s) = run(quick(opt, avg(), None, rounds), mnist());
        assert!(
            s.final_accuracy > 0.7,
            "{name}: accuracy {} after {rounds} rounds",
            s.final_accuracy
        );
        assert!(s.diverged_at.is_none(), "{name}");
    }
}

#[test]
fn infinity_breaks_averaging_but_not_the_trimmed_mean() {
    let sgd = || Optimizer::Sgd { lr: constant(0.75) };
    let inf = || Some(AttackConfig::PositiveInfinity(PositiveInfinity {}));
    let (_, avg) = run(
        quick(sgd(), AggregatorConfig::Average(Average {}), inf(), 20),
        mnist(),
    );
    assert_eq!(
        avg.diverged_at,
        Some(1),
        "one +∞ worker makes the average +∞ at once"
    );
    assert!(
        avg.final_accuracy < 0.2,
        "a diverged model guesses one class: {}",
        avg.final_accuracy
    );
    let (_, tm) = run(
        quick(
            sgd(),
            AggregatorConfig::TrimmedMean(TrimmedMean::new(5)),
            inf(),
            60,
        ),
        mnist(),
    );
    // The trimmed mean drops the 5 infinite values per coordinate and the 5 smallest honest
    // ones; it learns more slowly than the attack-free average, but it learns.
    assert!(
        tm.diverged_at.is_none() && tm.final_accuracy > 0.5,
        "{tm:?}"
    );
}

#[test]
fn mra_collapses_under_sign_flip_with_averaging_and_its_guard_prevents_it() {
    let mra = |guard| Optimizer::Mra {
        lr: constant(0.001),
        beta1: 0.99,
        beta2: 0.999,
        eps: 1e-8,
        guard,
        eps_placement: Default::default(),
    };
    let flip = || Some(AttackConfig::SignFlip(SignFlip::default()));
    // 5 of 15 workers flip the sign of their m̂ and v̂: the average of v̂ can go negative.
    let config = |guard| RunConfig {
        workers: 11,
        byzantine: 5,
        ..quick(
            mra(guard),
            AggregatorConfig::Average(Average {}),
            flip(),
            10,
        )
    };
    let (_, bare) = run(config(None), mnist());
    assert!(
        bare.diverged_at.is_some(),
        "the thesis's NaN collapse: {bare:?}"
    );
    let (_, guarded) = run(config(Some(MraGuard::AdamBound)), mnist());
    assert!(guarded.diverged_at.is_none(), "{guarded:?}");
}

#[test]
fn label_flip_trains_the_byzantine_workers_on_flipped_labels() {
    use byzadam_robust::attacks::LabelFlip;
    let data = synthetic::generate(6, 3000, 300);
    let base = RunConfig {
        dataset: DatasetKind::Synthetic,
        model: ModelKind::LogisticRegression,
        batch: 10,
        rounds: 3,
        eval_every: 3,
        aggregator: AggregatorConfig::Average(Average {}),
        // A split that ignores labels, so relabelling by hand below keeps every shard.
        partition: byzadam_data::partition::Scheme::Iid,
        ..RunConfig::default()
    };
    let flipped = RunConfig {
        attack: Some(AttackConfig::LabelFlip(LabelFlip { classes: 10 })),
        ..base.clone()
    };
    // Without the attack the same 15 workers draw the same batches and the average sees the
    // same rows in the same order (the Byzantine workers are the last five), so a label flip
    // that flipped nothing would give bit-identical parameters after round 1 (issue 13).
    let round_one = |config: RunConfig| {
        let mut sim = Simulation::new(config, &data).expect("valid config");
        sim.step().expect("round 1");
        sim.params().to_vec()
    };
    let clean = round_one(RunConfig {
        attack: None,
        ..base.clone()
    });
    let attacked = round_one(flipped.clone());
    assert!(
        clean != attacked,
        "the flipped labels must change the update"
    );
    // And the difference is that of training on 9 − y: flipping, in a copy of the data, the
    // labels of the Byzantine workers' first batches and running everyone honestly gives the
    // same bits (the shards are disjoint, so no honest batch changes).
    let probe = Simulation::new(flipped.clone(), &data).expect("valid config");
    let mut by_hand_data = data.clone();
    for w in 10..15 {
        for &i in probe.sampler(w).expect("worker").clone().next_batch() {
            by_hand_data.train.labels[i as usize] = 9 - data.train.labels[i as usize];
        }
    }
    let by_hand = {
        let mut sim = Simulation::new(
            RunConfig {
                attack: None,
                ..flipped.clone()
            },
            &by_hand_data,
        )
        .expect("valid config");
        sim.step().expect("round 1");
        sim.params().to_vec()
    };
    assert!(by_hand == attacked, "Byzantine workers train on 9 − y");
    let bad = RunConfig {
        attack: Some(AttackConfig::LabelFlip(LabelFlip { classes: 7 })),
        ..flipped
    };
    assert_eq!(bad.validate().unwrap_err().key, "attack.classes");
}

#[test]
fn no_two_workers_of_seeds_0_to_3_shuffle_their_shards_alike() {
    // Issue 13: with `seed ^ (c + w)`, seed 1's worker 0 drew seed 0's worker 1's stream, so
    // across a seed axis the "independent" seeds shuffled the same positions of their shards
    // in the same order. Compare the positions (ranks within each shard) of every first batch.
    use byzadam_data::partition::partition;
    use byzadam_sim::seeds::{self, Stream};
    let data = synthetic::generate(6, 3000, 300);
    let config = |seed| RunConfig {
        dataset: DatasetKind::Synthetic,
        model: ModelKind::LogisticRegression,
        seed,
        ..RunConfig::default()
    };
    let c = config(0);
    let shards = partition(
        &data.train.labels,
        10,
        c.workers,
        &c.partition,
        &mut seeds::rng(c.data_seed, Stream::Partition),
    )
    .expect("partition")
    .shards;
    let mut seen = std::collections::HashMap::new();
    for seed in 0..4 {
        let sim = Simulation::new(config(seed), &data).expect("valid config");
        for (w, shard) in shards.iter().enumerate() {
            let batch = sim
                .sampler(w)
                .expect("worker")
                .clone()
                .next_batch()
                .to_vec();
            let positions: Vec<usize> = batch
                .iter()
                .map(|i| {
                    shard
                        .binary_search(i)
                        .expect("a batch comes from its shard")
                })
                .collect();
            if let Some((s, v)) = seen.insert(positions, (seed, w)) {
                panic!("seed {seed} worker {w} shuffles as seed {s} worker {v}");
            }
        }
    }
    let again = Simulation::new(config(0), &data).expect("valid config");
    let first = |s: &Simulation| s.sampler(3).expect("worker").clone().next_batch().to_vec();
    assert_eq!(
        first(&again),
        first(&Simulation::new(config(0), &data).expect("valid config")),
        "the same seed draws the same batches"
    );
}
