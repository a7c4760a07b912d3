//! The run options that reproduce the thesis's code (TheBats/Master-Thesis @ dd4fad3), each
//! against an independent expectation, on synthetic data (MNIST-shaped).

use byzadam_data::partition::{SampleOrder, Scheme};
use byzadam_data::{synthetic, Dataset, DatasetKind, Split};
use byzadam_model::{Head, ModelKind};
use byzadam_optim::{Optimizer, Schedule};
use byzadam_robust::aggregators::{LargestDistanceFilter, TrimmedMean};
use byzadam_robust::attacks::{Empire, Little};
use byzadam_robust::{AggregatorConfig, AttackConfig};
use byzadam_sim::{
    ByzantineWorkers, EvalSubset, RoundMetrics, RunConfig, Simulation, Summary, TrainingModeEval,
};

fn data() -> Split {
    synthetic::generate(11, 1500, 200)
}

fn small() -> RunConfig {
    RunConfig {
        dataset: DatasetKind::Synthetic,
        model: ModelKind::LogisticRegression,
        partition: Scheme::Homogeneous {
            per_class: None,
            order: SampleOrder::FileOrder,
        },
        workers: 7,
        byzantine: 2,
        batch: 10,
        rounds: 6,
        eval_every: 3,
        optimizer: Optimizer::Sgd {
            lr: Schedule::Constant { value: 0.1 },
        },
        aggregator: AggregatorConfig::TrimmedMean(TrimmedMean::new(2)),
        attack: Some(AttackConfig::Little(Little::default())),
        ..RunConfig::default()
    }
}

fn run(config: RunConfig, data: &Split) -> (Vec<RoundMetrics>, Summary) {
    let mut sim = Simulation::new(config, data).expect("valid config");
    let mut metrics = Vec::new();
    let summary = sim.run(&mut metrics).expect("run");
    (metrics, summary)
}

/// A config with every option of this file set away from its default.
fn everything_on() -> RunConfig {
    RunConfig {
        head: Head::SoftmaxThenCrossEntropy,
        normalize_inputs: false,
        shared_first_shuffle: true,
        byzantine_workers: ByzantineWorkers::First,
        second_message_attack: Some(AttackConfig::Little(Little::default())),
        eval_subset: Some(EvalSubset::Indices(vec![3, 1, 4])),
        eval_before_update: true,
        training_mode_eval: Some(TrainingModeEval { batch: 25 }),
        optimizer: Optimizer::Mra {
            lr: Schedule::Constant { value: 0.001 },
            beta1: 0.99,
            beta2: 0.999,
            eps: 1e-7,
            guard: None,
            eps_placement: byzadam_optim::EpsPlacement::OutsideSqrt,
        },
        attack: Some(AttackConfig::Empire(Empire::default())),
        ..small()
    }
}

#[test]
fn the_keys_list_is_every_field_and_defaults_are_not_written() {
    let all = RunConfig {
        init: Some(byzadam_sim::InitFile {
            path: "init.npy".into(),
            sha256: Some("0".repeat(64)),
        }),
        ..everything_on()
    };
    let json = serde_json::to_value(&all).unwrap();
    let mut keys: Vec<&str> = json
        .as_object()
        .unwrap()
        .keys()
        .map(|k| k.as_str())
        .collect();
    let mut expected = RunConfig::KEYS.to_vec();
    keys.sort();
    expected.sort();
    assert_eq!(keys, expected);
    // The defaults of the new options are left out, so older configs keep their run ids.
    let default = serde_json::to_value(RunConfig::default()).unwrap();
    for key in [
        "head",
        "normalize_inputs",
        "shared_first_shuffle",
        "byzantine_workers",
        "second_message_attack",
        "eval_subset",
        "eval_before_update",
        "training_mode_eval",
        "init",
    ] {
        assert!(default.get(key).is_none(), "{key}");
    }
    // And every option reads back.
    let back: RunConfig = serde_json::from_value(json).unwrap();
    assert_eq!(back, all);
    everything_on().validate().unwrap();
    Simulation::new(everything_on(), &data()).unwrap();
}

#[test]
fn byzantine_workers_first_or_last() {
    let data = data();
    let last = Simulation::new(small(), &data).unwrap();
    let first = Simulation::new(
        RunConfig {
            byzantine_workers: ByzantineWorkers::First,
            ..small()
        },
        &data,
    )
    .unwrap();
    let flags = |s: &Simulation| {
        (0..7)
            .map(|w| s.is_byzantine(w).unwrap())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        flags(&last),
        [false, false, false, false, false, true, true]
    );
    assert_eq!(
        flags(&first),
        [true, true, false, false, false, false, false]
    );
}

#[test]
fn a_shared_first_shuffle_gives_every_worker_the_same_labels_in_its_first_epoch() {
    let data = data();
    // The file-order split lists each shard class by class, with the same count per class:
    // the same positions are the same classes, so every worker's batches have the same labels.
    let labels = |shared: bool, epoch_batches: usize| {
        let sim = Simulation::new(
            RunConfig {
                shared_first_shuffle: shared,
                ..small()
            },
            &data,
        )
        .unwrap();
        (0..7)
            .map(|w| {
                let mut s = sim.sampler(w).unwrap().clone();
                (0..epoch_batches)
                    .flat_map(|_| s.next_batch().to_vec())
                    .map(|i| data.train.labels[i as usize])
                    .collect::<Vec<u8>>()
            })
            .collect::<Vec<_>>()
    };
    let shared = labels(true, 3);
    assert!(shared.iter().all(|l| l == &shared[0]), "{shared:?}");
    let own = labels(false, 3);
    assert!(own.iter().any(|l| l != &own[0]));
    // After the first epoch each worker's own stream takes over.
    let sim = Simulation::new(
        RunConfig {
            shared_first_shuffle: true,
            ..small()
        },
        &data,
    )
    .unwrap();
    let second_epoch: Vec<Vec<u32>> = (0..7)
        .map(|w| {
            let mut s = sim.sampler(w).unwrap().clone();
            while s.epoch() < 2 {
                s.next_batch();
            }
            s.next_batch().to_vec() // the second epoch's second batch
        })
        .collect();
    let classes = |b: &[u32]| {
        b.iter()
            .map(|&i| data.train.labels[i as usize])
            .collect::<Vec<_>>()
    };
    assert!(second_epoch
        .iter()
        .any(|b| classes(b) != classes(&second_epoch[0])));
}

#[test]
fn evaluating_before_the_last_update_is_the_model_after_one_update_fewer() {
    let data = data();
    let before = RunConfig {
        eval_before_update: true,
        eval_every: 6,
        ..small()
    };
    let after = RunConfig {
        rounds: 5,
        eval_every: 5,
        ..small()
    };
    let (_, a) = run(before, &data);
    let (_, b) = run(after, &data);
    assert_eq!(a.final_accuracy.to_bits(), b.final_accuracy.to_bits());
    assert_eq!(a.final_loss.to_bits(), b.final_loss.to_bits());
    assert_eq!(a.class_recall, b.class_recall);
}

#[test]
fn an_evaluation_subset_is_the_test_set_of_those_images() {
    let data = data();
    // Unsorted (order is kept); each image once (a repeat is refused: issue 22).
    let which = vec![17u32, 3, 88, 150, 42, 0, 199];
    let (_, on_subset) = run(
        RunConfig {
            eval_subset: Some(EvalSubset::Indices(which.clone())),
            ..small()
        },
        &data,
    );
    // The same run on a split whose test set is exactly those images, in that order.
    let t = &data.test;
    let per = t.shape.len();
    let gathered = Split {
        train: data.train.clone(),
        test: Dataset {
            images: which
                .iter()
                .flat_map(|&i| t.images[i as usize * per..(i as usize + 1) * per].to_vec())
                .collect(),
            labels: which.iter().map(|&i| t.labels[i as usize]).collect(),
            ..t.clone()
        },
    };
    let (_, on_gathered) = run(small(), &gathered);
    assert_eq!(
        on_subset.final_accuracy.to_bits(),
        on_gathered.final_accuracy.to_bits()
    );
    assert_eq!(
        on_subset.final_loss.to_bits(),
        on_gathered.final_loss.to_bits()
    );
    // Recall: per class, hits over that class's images in the subset.
    let k = on_subset.class_recall.len();
    assert_eq!(k, 10);
    let mut hits = 0.0;
    for (c, r) in on_subset.class_recall.iter().enumerate() {
        let n = gathered
            .test
            .labels
            .iter()
            .filter(|&&l| l as usize == c)
            .count();
        if n == 0 {
            assert!(r.is_nan());
        } else {
            hits += r * n as f64;
        }
    }
    assert!((hits / 7.0 - on_subset.final_accuracy).abs() < 1e-12);
    // An index past the test set is an error naming the key.
    let err = Simulation::new(
        RunConfig {
            eval_subset: Some(EvalSubset::Indices(vec![200])),
            ..small()
        },
        &data,
    )
    .err()
    .unwrap();
    assert_eq!(err.key, "eval_subset");
    // An image listed twice is refused, naming it (it would count twice).
    let err = Simulation::new(
        RunConfig {
            eval_subset: Some(EvalSubset::Indices(vec![5, 9, 5])),
            ..small()
        },
        &data,
    )
    .err()
    .unwrap();
    assert!(
        err.key == "eval_subset" && err.reason.contains("image 5 twice"),
        "{err}"
    );
}

#[test]
fn the_codes_head_never_trains_below_its_floor() {
    // CE(softmax(p)) ≥ ln(9 + e) − 1 ≈ 1.4612 for probabilities p over 10 classes.
    let (metrics, _) = run(
        RunConfig {
            head: Head::SoftmaxThenCrossEntropy,
            rounds: 80,
            eval_every: 20,
            optimizer: Optimizer::Sgd {
                lr: Schedule::Constant { value: 0.5 },
            },
            attack: None,
            ..small()
        },
        &data(),
    );
    let floor = (9.0 + 1f64.exp()).ln() - 1.0;
    assert!(metrics.iter().all(|m| m.train_loss >= floor - 1e-6));
    assert!(metrics
        .iter()
        .all(|m| m.eval.is_none_or(|e| e.loss >= floor - 1e-6)));
    // The default head goes below it on the same run.
    let (plain, _) = run(
        RunConfig {
            rounds: 80,
            eval_every: 20,
            optimizer: Optimizer::Sgd {
                lr: Schedule::Constant { value: 0.5 },
            },
            attack: None,
            ..small()
        },
        &data(),
    );
    let lowest = plain
        .iter()
        .map(|m| m.train_loss)
        .fold(f64::INFINITY, f64::min);
    assert!(
        lowest < floor,
        "the log-softmax head's lowest loss {lowest}"
    );
}

#[test]
fn unnormalised_inputs_change_training_but_nothing_else() {
    let data = data();
    let (a, _) = run(small(), &data);
    let (b, _) = run(
        RunConfig {
            normalize_inputs: false,
            ..small()
        },
        &data,
    );
    assert_ne!(a[0].train_loss, b[0].train_loss);
    // Round 1's loss is on the initial model; with pixels in [0, 1] the logits are smaller in
    // magnitude than with standardised pixels (mean 0, sd 1, most pixels at −0.42).
    assert!(
        b[0].train_loss < a[0].train_loss,
        "{} vs {}",
        b[0].train_loss,
        a[0].train_loss
    );
}

#[test]
fn bad_options_name_their_key() {
    let key = |c: RunConfig| c.validate().unwrap_err().key;
    assert_eq!(
        key(RunConfig {
            second_message_attack: Some(AttackConfig::Little(Little::default())),
            ..small()
        }),
        "second_message_attack"
    );
    assert_eq!(
        key(RunConfig {
            eval_subset: Some(EvalSubset::Named("thesis_code_cifar10".into())),
            ..small()
        }),
        "eval_subset"
    );
    assert_eq!(
        key(RunConfig {
            eval_subset: Some(EvalSubset::Named("nope".into())),
            ..small()
        }),
        "eval_subset"
    );
    assert_eq!(
        key(RunConfig {
            aggregator: AggregatorConfig::LargestDistanceFilter(LargestDistanceFilter {
                f: 2,
                segments: vec![7840, 9],
            }),
            ..small()
        }),
        "aggregator.segments"
    );
    // Logistic regression has 7,850 parameters: 7,840 weights and 10 biases.
    RunConfig {
        aggregator: AggregatorConfig::LargestDistanceFilter(LargestDistanceFilter {
            f: 2,
            segments: vec![7840, 10],
        }),
        ..small()
    }
    .validate()
    .unwrap();
    assert_eq!(
        key(RunConfig {
            aggregator: AggregatorConfig::TrimmedMean(TrimmedMean {
                f: 2,
                low: Some(4),
                high: Some(3),
            }),
            ..small()
        }),
        "aggregator"
    );
}

#[test]
fn training_mode_evaluation_equals_evaluation_mode_without_dropout_or_batch_norm() {
    let data = data();
    let mlp = RunConfig {
        model: ModelKind::Mlp { hidden: vec![32] },
        ..small()
    };
    let (_, eval_mode) = run(mlp.clone(), &data);
    let (_, train_mode) = run(
        RunConfig {
            training_mode_eval: Some(TrainingModeEval { batch: 25 }),
            ..mlp
        },
        &data,
    );
    assert_eq!(eval_mode.final_accuracy, train_mode.final_accuracy);
    assert!((eval_mode.final_loss - train_mode.final_loss).abs() < 1e-6 * eval_mode.final_loss);
    assert_eq!(eval_mode.class_recall, train_mode.class_recall);
}

#[test]
fn the_codes_cifar10_network_evaluated_in_training_mode_runs_and_is_reproducible() {
    let data = synthetic_cifar();
    let config = RunConfig {
        dataset: DatasetKind::Cifar10,
        model: ModelKind::Cifar10CnnThesisCode { dropout: 0.25 },
        partition: Scheme::Homogeneous {
            per_class: Some(4),
            order: SampleOrder::FileOrder,
        },
        workers: 3,
        byzantine: 1,
        batch: 8,
        rounds: 2,
        eval_every: 2,
        aggregator: AggregatorConfig::TrimmedMean(TrimmedMean::new(1)),
        attack: Some(AttackConfig::Empire(Empire::default())),
        training_mode_eval: Some(TrainingModeEval { batch: 25 }),
        ..small()
    };
    let (_, a) = run(config.clone(), &data);
    let (_, b) = run(config.clone(), &data);
    assert_eq!(a.final_accuracy.to_bits(), b.final_accuracy.to_bits());
    assert_eq!(a.final_loss.to_bits(), b.final_loss.to_bits());
    // Dropout in the evaluation: not the evaluation-mode numbers.
    let (_, c) = run(
        RunConfig {
            training_mode_eval: None,
            ..config
        },
        &data,
    );
    assert_ne!(a.final_loss.to_bits(), c.final_loss.to_bits());
}

/// CIFAR-10-shaped random images (3 × 32 × 32), 10 of each class.
fn synthetic_cifar() -> Split {
    use rand::{Rng, SeedableRng};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(4);
    let make = |count: usize, rng: &mut rand_chacha::ChaCha8Rng| {
        let shape = DatasetKind::Cifar10.shape();
        Dataset {
            kind: DatasetKind::Cifar10,
            shape,
            images: (0..count * shape.len()).map(|_| rng.gen::<u8>()).collect(),
            labels: (0..count).map(|i| (i % 10) as u8).collect(),
            classes: 10,
        }
    };
    Split {
        train: make(120, &mut rng),
        test: make(50, &mut rng),
    }
}
