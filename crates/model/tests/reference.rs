//! Losses, gradients and evaluation logits against PyTorch (values and the script that made
//! them in `reference/`; the torch version is recorded in the JSON).

use byzadam_model::{LayerSpec, ModelKind, Network};
use rand::SeedableRng;
use serde_json::Value;

/// The closed-form parameters of `make_reference.py`.
fn formula_params(net: &Network, specs_bn: &[(usize, usize)]) -> Vec<f32> {
    let mut p: Vec<f32> = (0..net.num_params())
        .map(|i| (0.05 * (0.7 * i as f64 + 0.3).sin()) as f32)
        .collect();
    for &(start, c) in specs_bn {
        for (i, v) in p.iter_mut().enumerate().skip(start).take(c) {
            *v = (1.0 + 0.1 * (i as f64).sin()) as f32;
        }
        for (i, v) in p.iter_mut().enumerate().skip(start + c).take(c) {
            *v = (0.1 * (i as f64).cos()) as f32;
        }
    }
    p
}

/// Where each batch-norm layer's parameters start (weight `c` values, then bias `c`).
fn bn_layout(input: byzadam_model::Shape, specs: &[LayerSpec]) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let (mut c, mut h, mut w, mut offset) = (input.c, input.h, input.w, 0);
    for s in specs {
        match *s {
            LayerSpec::Conv {
                out: o,
                kernel,
                padding,
            } => {
                offset += o * c * kernel * kernel + o;
                h = h + 2 * padding + 1 - kernel;
                w = w + 2 * padding + 1 - kernel;
                c = o;
            }
            LayerSpec::BatchNorm => {
                out.push((offset, c));
                offset += 2 * c;
            }
            LayerSpec::MaxPool2 => {
                h /= 2;
                w /= 2;
            }
            LayerSpec::Linear { out: o } => {
                offset += o * c * h * w + o;
                c = o;
                h = 1;
                w = 1;
            }
            _ => {}
        }
    }
    out
}

fn check(kind: ModelKind, case: &Value) {
    let specs = kind.layers();
    let mut net = kind.build();
    let input = net.input();
    let batch = case["batch"].as_u64().unwrap() as usize;
    assert_eq!(net.num_params() as u64, case["params"].as_u64().unwrap());
    let params = formula_params(&net, &bn_layout(input, &specs));
    let mut state = vec![0.0; net.num_state()];
    net.init(
        &mut rand_chacha::ChaCha20Rng::seed_from_u64(0),
        &mut vec![0.0; net.num_params()],
        &mut state,
    ); // running mean 0, variance 1
    let x: Vec<f32> = (0..batch * input.len())
        .map(|j| (0.13 * j as f64).sin() as f32)
        .collect();
    let y: Vec<u8> = (0..batch).map(|b| ((3 * b + 1) % 10) as u8).collect();
    let mut grad = vec![0.0; net.num_params()];
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
    let loss = net.loss_and_grad(&params, &mut state, &x, &y, &mut rng, &mut grad);
    let want = case["loss"].as_f64().unwrap();
    assert!(
        (loss as f64 - want).abs() < 1e-5 * want.abs().max(1.0),
        "{}: loss {loss} vs {want}",
        case["model"]
    );
    let norm: f64 = grad.iter().map(|&g| (g as f64).powi(2)).sum::<f64>().sqrt();
    let want_norm = case["grad_norm"].as_f64().unwrap();
    assert!(
        (norm - want_norm).abs() < 1e-4 * want_norm,
        "{}: ‖grad‖ {norm} vs {want_norm}",
        case["model"]
    );
    let scale = want_norm / (grad.len() as f64).sqrt();
    let (indices, values) = (
        case["grad_index"].as_array().unwrap(),
        case["grad_value"].as_array().unwrap(),
    );
    // A zip stops at the shorter side: check the lengths first (issue 13).
    assert!(
        !indices.is_empty() && indices.len() == values.len(),
        "{}: {} gradient indices, {} values",
        case["model"],
        indices.len(),
        values.len()
    );
    for (i, v) in indices.iter().zip(values) {
        let (i, v) = (i.as_u64().unwrap() as usize, v.as_f64().unwrap());
        assert!(
            (grad[i] as f64 - v).abs() < 1e-4 * v.abs() + 1e-3 * scale,
            "{}: grad[{i}] {} vs {v}",
            case["model"],
            grad[i]
        );
    }
    // Evaluation after that training pass uses the running statistics it updated.
    let logits = net.logits(&params, &state, &x, batch);
    let want_logits = case["eval_logits_after_one_train_pass"].as_array().unwrap();
    assert_eq!(
        logits.len(),
        want_logits.len(),
        "{}: {batch} images × 10 logits",
        case["model"]
    );
    assert_eq!(logits.len(), batch * 10);
    for (a, b) in logits.iter().zip(want_logits) {
        let b = b.as_f64().unwrap();
        assert!(
            (*a as f64 - b).abs() < 1e-4 * b.abs().max(1.0),
            "{}: logit {a} vs {b}",
            case["model"]
        );
    }
}

fn reference() -> Value {
    serde_json::from_str(include_str!("../reference/reference.json")).unwrap()
}

#[test]
fn mnist_cnn_matches_pytorch() {
    check(ModelKind::MnistCnn, &reference()["cases"][0]);
}

#[test]
fn cifar10_cnn_matches_pytorch() {
    // Dropout 0 so that PyTorch's and our masks cannot differ.
    check(
        ModelKind::Cifar10Cnn { dropout: 0.0 },
        &reference()["cases"][1],
    );
}
