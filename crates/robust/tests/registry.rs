//! The registry described once: every entry's declared parameters are exactly the keys its
//! config table takes, each declared type is accepted, and each declared bound is enforced by
//! `validate` (never by deserialisation alone).

use byzadam_robust::aggregators::CenteredClipping;
use byzadam_robust::attacks::{ALittleIsEnough, Gaussian};
use byzadam_robust::params::Param;
use byzadam_robust::preaggregators::StaticClipping;
use byzadam_robust::{registry, AggregatorConfig, AttackConfig, PreAggregatorConfig};
use serde_json::{json, Map, Value};

fn sample(p: &Param) -> Value {
    match p.kind {
        "int" => json!(1),
        "float" => json!(0.5),
        "bool" => json!(false),
        "int list" => json!([]),
        "own | honest_mean" => json!("honest_mean"),
        other => panic!("{}: undeclared kind {other}", p.name),
    }
}

/// The table with every required parameter at a sample value.
fn minimal(name: &str, params: &[Param]) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("name".into(), json!(name));
    for p in params.iter().filter(|p| p.default == "required") {
        m.insert(p.name.into(), sample(p));
    }
    m
}

fn check<T: serde::Serialize + serde::de::DeserializeOwned>(
    kind: &str,
    entries: &[byzadam_robust::params::Entry],
) {
    for e in entries {
        let parse = |m: &Map<String, Value>| serde_json::from_value::<T>(Value::Object(m.clone()));
        let base = minimal(e.name, e.params);
        let made = parse(&base).unwrap_or_else(|err| panic!("{kind} {}: {err}", e.name));
        // Every key it serialises is declared.
        let Value::Object(keys) = serde_json::to_value(&made).unwrap() else {
            panic!("{kind} {}: not a table", e.name)
        };
        for k in keys.keys().filter(|k| *k != "name") {
            assert!(
                e.params.iter().any(|p| p.name == k),
                "{kind} {}: key {k} is not declared in its PARAMS",
                e.name
            );
        }
        // Every declared parameter is a key it accepts, with a value of its declared type.
        for p in e.params {
            let mut m = base.clone();
            m.insert(p.name.into(), sample(p));
            parse(&m).unwrap_or_else(|err| panic!("{kind} {}.{}: {err}", e.name, p.name));
            assert!(
                !p.doc.is_empty() && !p.default.is_empty(),
                "{kind} {}.{}",
                e.name,
                p.name
            );
        }
        // And nothing else.
        let mut m = base.clone();
        m.insert("not_a_parameter".into(), json!(1));
        assert!(
            parse(&m).is_err(),
            "{kind} {}: an unknown key was accepted",
            e.name
        );
    }
}

#[test]
fn every_entrys_declared_parameters_are_exactly_its_keys() {
    let r = registry();
    check::<AggregatorConfig>("aggregator", &r.aggregators);
    check::<PreAggregatorConfig>("pre-aggregator", &r.preaggregators);
    check::<AttackConfig>("attack", &r.attacks);
    assert_eq!(r.aggregators.len(), AggregatorConfig::NAMES.len());
    assert_eq!(r.preaggregators.len(), PreAggregatorConfig::NAMES.len());
    assert_eq!(r.attacks.len(), AttackConfig::NAMES.len());
}

/// Out-of-bound and non-finite values, each refused by `validate` naming its parameter.
#[test]
fn validate_refuses_each_declared_bound_naming_the_parameter() {
    let agg = |v: Value| serde_json::from_value::<AggregatorConfig>(v).unwrap();
    let pre = |v: Value| serde_json::from_value::<PreAggregatorConfig>(v).unwrap();
    let att = |v: Value| serde_json::from_value::<AttackConfig>(v).unwrap();
    let named = |r: Result<(), byzadam_robust::Error>, name: &str| {
        let e = r.expect_err(name).to_string();
        assert!(e.contains(&format!("invalid {name}")), "{e}");
    };
    // JSON has no NaN or ∞: those are set on the built structs.
    for tau in [0.0, -1.0, f64::INFINITY, f64::NAN] {
        let c = AggregatorConfig::CenteredClipping(CenteredClipping::new(tau, 1));
        named(c.validate(), "tau");
    }
    named(
        agg(json!({"name": "cc", "iterations": 0})).validate(),
        "iterations",
    );
    named(agg(json!({"name": "gm", "nu": 0.0})).validate(), "nu");
    named(
        agg(json!({"name": "gm", "tolerance": -1e-9})).validate(),
        "tolerance",
    );
    named(pre(json!({"name": "clipping", "c": 0.0})).validate(), "c");
    named(
        PreAggregatorConfig::StaticClipping(StaticClipping { c: f64::INFINITY }).validate(),
        "c",
    );
    named(pre(json!({"name": "bucketing", "s": 0})).validate(), "s");
    named(
        att(json!({"name": "gaussian", "std": -1.0})).validate(),
        "std",
    );
    let gaussian = Gaussian {
        mean: f64::NAN,
        std: 1.0,
    };
    named(AttackConfig::Gaussian(gaussian).validate(), "mean");
    let alie = ALittleIsEnough {
        z: Some(f64::INFINITY),
    };
    named(AttackConfig::ALittleIsEnough(alie).validate(), "z");
    let mut empire = att(json!({"name": "empire"}));
    if let AttackConfig::Empire(e) = &mut empire {
        e.epsilon = f64::NEG_INFINITY;
    }
    named(empire.validate(), "epsilon");
    named(
        att(json!({"name": "label_flip", "classes": 1})).validate(),
        "classes",
    );
    named(
        att(json!({"name": "optimal_alie", "ratio": 1.0})).validate(),
        "ratio",
    );
    named(
        att(json!({"name": "optimal_alie", "evals": 0})).validate(),
        "evals",
    );
    // In bounds: fine.
    agg(json!({"name": "cc", "tau": 1e-3})).validate().unwrap();
    att(json!({"name": "gaussian", "std": 0.0}))
        .validate()
        .unwrap();
    pre(json!({"name": "clipping", "c": 1e30}))
        .validate()
        .unwrap();
}
