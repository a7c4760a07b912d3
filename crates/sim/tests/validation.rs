//! Every numeric field of a run config is checked before any work (issue 13): each invalid
//! value below is refused with the key that names it, and a table that names its variant takes
//! the documented defaults for the fields it leaves out.

use byzadam_data::{synthetic, DatasetKind};
use byzadam_model::ModelKind;
use byzadam_optim::{Optimizer, Schedule};
use byzadam_sim::{RunConfig, Simulation};
use serde_json::{json, Value};

/// The default config with `key` (a top-level key) replaced by `value`, as a config file or
/// `--set` would give it.
fn with(key: &str, value: Value) -> Result<RunConfig, String> {
    let mut v = serde_json::to_value(RunConfig::default()).map_err(|e| e.to_string())?;
    v[key] = value;
    serde_json::from_value(v).map_err(|e| e.to_string())
}

/// The key `validate` names for `key = value`.
fn refused_key(key: &str, value: Value) -> String {
    let config = with(key, value.clone()).unwrap_or_else(|e| panic!("{key} = {value}: {e}"));
    match config.validate() {
        Ok(()) => panic!("{key} = {value} was accepted"),
        Err(e) => e.key,
    }
}

#[test]
fn every_invalid_number_is_refused_with_its_key() {
    let sgd = |lr: Value| json!({ "name": "sgd", "lr": lr });
    let cases: Vec<(&str, Value, &str)> = vec![
        (
            "optimizer",
            sgd(json!({"name": "constant", "value": -1.0})),
            "optimizer.lr.value",
        ),
        (
            "optimizer",
            sgd(json!({"name": "constant", "value": 0.0})),
            "optimizer.lr.value",
        ),
        (
            "optimizer",
            sgd(json!({"name": "inverse_step", "initial": -0.75, "every": 50})),
            "optimizer.lr.initial",
        ),
        (
            "optimizer",
            sgd(json!({"name": "inverse_step", "initial": 0.75, "every": 0})),
            "optimizer.lr.every",
        ),
        (
            "optimizer",
            json!({"name": "resam", "beta": 1.0}),
            "optimizer.beta",
        ),
        (
            "optimizer",
            json!({"name": "dra", "beta1": -0.1}),
            "optimizer.beta1",
        ),
        (
            "optimizer",
            json!({"name": "mra", "beta2": 1.5}),
            "optimizer.beta2",
        ),
        (
            "optimizer",
            json!({"name": "dra", "eps": -1e-8}),
            "optimizer.eps",
        ),
        ("gradient", json!({"l2": -1e-4}), "gradient.l2"),
        ("gradient", json!({"clip": -2.0}), "gradient.clip"),
        ("gradient", json!({"clip": 0.0}), "gradient.clip"),
        (
            "model",
            json!({"name": "cifar10_cnn", "dropout": 1.5}),
            "model.dropout",
        ),
        (
            "model",
            json!({"name": "cifar10_cnn", "dropout": 1.0}),
            "model.dropout",
        ),
        (
            "model",
            json!({"name": "cifar10_cnn", "dropout": -0.1}),
            "model.dropout",
        ),
        (
            "model",
            json!({"name": "mlp", "hidden": [32, 0]}),
            "model.hidden",
        ),
        (
            "partition",
            json!({"name": "dirichlet", "alpha": 0.0}),
            "partition.alpha",
        ),
        (
            "partition",
            json!({"name": "gamma_similarity", "gamma": 1.5}),
            "partition.gamma",
        ),
        (
            "partition",
            json!({"name": "homogeneous", "per_class": 0}),
            "partition.per_class",
        ),
        ("eval_samples", json!(0), "eval_samples"),
    ];
    for (key, value, expected) in cases {
        assert_eq!(refused_key(key, value.clone()), expected, "{key} = {value}");
    }
}

#[test]
fn non_finite_numbers_are_refused_with_their_key() {
    // JSON cannot write NaN or ∞, a TOML file can (`nan`, `inf`): build them directly.
    let base = RunConfig::default;
    let key = |c: RunConfig| c.validate().expect_err("refused").key;
    for v in [f64::NAN, f64::INFINITY] {
        let lr = Schedule::Constant { value: v };
        assert_eq!(
            key(RunConfig {
                optimizer: Optimizer::Sgd { lr },
                ..base()
            }),
            "optimizer.lr.value"
        );
        assert_eq!(
            key(RunConfig {
                optimizer: Optimizer::Resam {
                    lr: Schedule::Constant { value: 0.1 },
                    beta: v
                },
                ..base()
            }),
            "optimizer.beta"
        );
        assert_eq!(
            key(RunConfig {
                optimizer: Optimizer::Dra {
                    lr: Schedule::Constant { value: 0.001 },
                    beta1: 0.9,
                    beta2: 0.999,
                    eps: v
                },
                ..base()
            }),
            "optimizer.eps"
        );
        let mut c = base();
        c.gradient.l2 = v;
        assert_eq!(key(c), "gradient.l2");
        let mut c = base();
        c.gradient.clip = Some(v);
        assert_eq!(key(c), "gradient.clip");
        assert_eq!(
            key(RunConfig {
                model: ModelKind::Cifar10Cnn { dropout: v as f32 },
                dataset: DatasetKind::Cifar10,
                ..base()
            }),
            "model.dropout"
        );
        assert_eq!(
            key(RunConfig {
                partition: byzadam_data::partition::Scheme::Dirichlet {
                    alpha: v,
                    min_samples: 1
                },
                ..base()
            }),
            "partition.alpha"
        );
        assert_eq!(
            key(RunConfig {
                attack: Some(byzadam_robust::AttackConfig::Empire(
                    byzadam_robust::attacks::Empire {
                        epsilon: v,
                        ..Default::default()
                    }
                )),
                ..base()
            }),
            // The rule's own parameter, named as the key (the registry's validate).
            "attack.epsilon"
        );
        assert_eq!(
            key(RunConfig {
                attack: Some(byzadam_robust::AttackConfig::ALittleIsEnough(
                    byzadam_robust::attacks::ALittleIsEnough { z: Some(v) }
                )),
                ..base()
            }),
            "attack.z"
        );
    }
}

#[test]
fn more_evaluation_samples_than_test_images_is_refused() {
    let data = synthetic::generate(1, 600, 50);
    let config = RunConfig {
        dataset: DatasetKind::Synthetic,
        model: ModelKind::LogisticRegression,
        eval_samples: Some(51),
        batch: 4,
        ..RunConfig::default()
    };
    let e = Simulation::new(config.clone(), &data)
        .err()
        .expect("refused");
    assert_eq!(e.key, "eval_samples");
    assert!(e.reason.contains("50 images"), "{e}");
    let fits = RunConfig {
        eval_samples: Some(50),
        ..config
    };
    assert!(Simulation::new(fits, &data).is_ok());
}

#[test]
fn an_optimizer_table_naming_its_variant_takes_the_documented_defaults() {
    // docs/config.md: DRA and MRA α 0.001, β₁ 0.99, β₂ 0.999, ε 1e-8; RESAM β 0.99; SGD and
    // RESAM α 0.75 (the thesis's homogeneous MNIST settings, section 4.1).
    let parse = |v: Value| serde_json::from_value::<Optimizer>(v).expect("parses");
    let lr = |value| Schedule::Constant { value };
    assert_eq!(
        parse(json!({"name": "dra", "lr": {"name": "constant", "value": 0.001}})),
        Optimizer::Dra {
            lr: lr(0.001),
            beta1: 0.99,
            beta2: 0.999,
            eps: 1e-8
        }
    );
    assert_eq!(
        parse(json!({"name": "mra"})),
        Optimizer::Mra {
            lr: lr(0.001),
            beta1: 0.99,
            beta2: 0.999,
            eps: 1e-8,
            guard: None,
            eps_placement: Default::default(),
        }
    );
    assert_eq!(
        parse(json!({"name": "resam"})),
        Optimizer::Resam {
            lr: lr(0.75),
            beta: 0.99
        }
    );
    assert_eq!(
        parse(json!({"name": "sgd"})),
        Optimizer::Sgd { lr: lr(0.75) }
    );
    // The run config's own default optimizer is the documented DRA.
    assert_eq!(
        RunConfig::default().optimizer,
        parse(json!({"name": "dra"}))
    );
}
