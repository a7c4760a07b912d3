//! Golden values from an independent implementation: `reference/make_reference.py` (ByzFL
//! 0.0.11 where its definition is ours, numpy from the papers where it is not; each case names
//! its source). Regenerate with the command in that script's docstring.

use byzadam_robust::{
    AggregatorConfig, AttackConfig, AttackContext, Pipeline, PreAggregatorConfig, Submissions,
};
use rand::SeedableRng;
use serde_json::{json, Value};

fn reference() -> Value {
    serde_json::from_str(include_str!("../reference/reference.json"))
        .expect("reference.json parses")
}

fn matrix(v: &Value) -> Submissions<'static> {
    let rows: Vec<Vec<f32>> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            r.as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_f64().unwrap() as f32)
                .collect()
        })
        .collect();
    Submissions::from_rows(&rows).unwrap()
}

fn flat(v: &Value) -> Vec<f64> {
    fn walk(v: &Value, out: &mut Vec<f64>) {
        match v {
            Value::Array(a) => a.iter().for_each(|x| walk(x, out)),
            x => out.push(x.as_f64().unwrap()),
        }
    }
    let mut out = Vec::new();
    walk(v, &mut out);
    out
}

fn config(name: &str, params: &Value) -> Value {
    let mut cfg = params.clone();
    cfg.as_object_mut()
        .unwrap()
        .insert("name".into(), json!(name));
    cfg
}

fn assert_close(got: &[f32], expected: &[f64], what: &str) {
    assert_eq!(got.len(), expected.len(), "{what}: length");
    for (i, (&g, &e)) in got.iter().zip(expected).enumerate() {
        let tol = 2e-6 * e.abs().max(1.0);
        assert!(
            (g as f64 - e).abs() <= tol,
            "{what}: coordinate {i}: got {g}, expected {e}"
        );
    }
}

#[test]
fn every_rule_matches_its_independent_reference() {
    let r = reference();
    let mut checked = 0;
    for case in r["aggregators"].as_array().unwrap() {
        let rule = case["rule"].as_str().unwrap();
        let cfg = config(rule, &case["params"]);
        let input = matrix(&case["input"]);
        let expected = flat(&case["expected"]);
        let what = format!("{rule} {} ({})", case["params"], case["source"]);
        let got: Vec<f32> =
            if let Ok(pre) = serde_json::from_value::<PreAggregatorConfig>(cfg.clone()) {
                let mut out = Submissions::default();
                let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(0);
                pre.build().apply(&input, &mut out, &mut rng).unwrap();
                out.into_flat()
            } else {
                let agg: AggregatorConfig = serde_json::from_value(cfg).unwrap();
                agg.build().aggregate(&input).unwrap()
            };
        assert_close(&got, &expected, &what);
        checked += 1;
    }
    assert!(checked >= 30, "only {checked} reference cases");
}

#[test]
fn every_attack_matches_its_independent_reference() {
    let r = reference();
    for case in r["attacks"].as_array().unwrap() {
        let name = case["attack"].as_str().unwrap();
        let mut params = case["params"].clone();
        let server = params.as_object_mut().unwrap().remove("server").map(|s| {
            let agg: AggregatorConfig = serde_json::from_value(s).unwrap();
            Pipeline::new(vec![], agg.build())
        });
        let attack: AttackConfig = serde_json::from_value(config(name, &params)).unwrap();
        let honest = matrix(&case["honest"]);
        let own = (!case["own"].is_null()).then(|| matrix(&case["own"]));
        let ctx = AttackContext {
            n: case["n"].as_u64().unwrap() as usize,
            byzantine: case["byzantine"].as_u64().unwrap() as usize,
            dim: honest.dim(),
            own: own.as_ref(),
            honest: Some(&honest),
            server: server.as_ref(),
        };
        let mut out = Submissions::default();
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(0);
        attack.build().forge(&ctx, &mut rng, &mut out).unwrap();
        assert_close(
            out.as_flat(),
            &flat(&case["expected"]),
            &format!("{name} ({})", case["source"]),
        );
    }
}
