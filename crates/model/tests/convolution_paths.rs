//! The two ways the engine computes a 3 × 3, padding-1 convolution, Winograd's F(4×4, 3×3)
//! (the default for 16 or more input channels) and im2col + SGEMM, give the same loss,
//! gradient, logits and batch-norm statistics up to rounding, on the CIFAR-10 CNN (whose last
//! three convolutions go through Winograd) and on odd image sides. Each path is also checked
//! on its own: against PyTorch (`reference.rs`) and finite differences.

use byzadam_model::{LayerSpec, ModelKind, Network, Shape};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

struct Outcome {
    loss: f32,
    grad: Vec<f32>,
    state: Vec<f32>,
    logits: Vec<f32>,
}

fn run(mut net: Network, winograd: bool, batch: usize) -> Outcome {
    net.set_winograd(winograd);
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let mut params = vec![0.0; net.num_params()];
    let mut state = vec![0.0; net.num_state()];
    net.init(
        &mut rand_chacha::ChaCha20Rng::seed_from_u64(11),
        &mut params,
        &mut state,
    );
    let x: Vec<f32> = (0..batch * net.input().len())
        .map(|_| rng.gen_range(-1.0..1.0))
        .collect();
    let y: Vec<u8> = (0..batch).map(|i| (i % net.classes()) as u8).collect();
    let mut grad = vec![0.0; net.num_params()];
    let loss = net.loss_and_grad(
        &params,
        &mut state,
        &x,
        &y,
        &mut ChaCha8Rng::seed_from_u64(3),
        &mut grad,
    );
    let logits = net.logits(&params, &state, &x, batch);
    Outcome {
        loss,
        grad,
        state,
        logits,
    }
}

/// `|a − b| ≤ tol · max |b|` for every element.
fn agree(name: &str, a: &[f32], b: &[f32], tol: f32) {
    assert_eq!(a.len(), b.len());
    let scale = b.iter().fold(0f32, |m, v| m.max(v.abs()));
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        assert!(
            (x - y).abs() <= tol * scale,
            "{name}[{i}]: Winograd {x}, im2col {y} (largest {scale})"
        );
    }
}

fn compare(name: &str, net: Network, batch: usize) {
    let w = run(net.clone(), true, batch);
    let d = run(net, false, batch);
    assert!(
        (w.loss - d.loss).abs() <= 1e-5 * d.loss.abs(),
        "{name}: loss {} against {}",
        w.loss,
        d.loss
    );
    // Rounding differs (the sums are ordered differently); a wrong index, sign or
    // coefficient would change values by far more than 1e-4 of the largest.
    agree(&format!("{name} gradient"), &w.grad, &d.grad, 1e-4);
    agree(&format!("{name} state"), &w.state, &d.state, 1e-5);
    agree(&format!("{name} logits"), &w.logits, &d.logits, 1e-5);
}

#[test]
fn winograd_and_im2col_agree_on_the_cifar10_cnn() {
    compare(
        "cifar10 cnn",
        ModelKind::Cifar10Cnn { dropout: 0.25 }.build(),
        5,
    );
}

#[test]
fn winograd_and_im2col_agree_on_odd_sides_and_many_images() {
    use LayerSpec::*;
    let net = Network::new(
        Shape::new(16, 9, 5),
        &[
            Conv {
                out: 16,
                kernel: 3,
                padding: 1,
            },
            BatchNorm,
            Relu,
            Conv {
                out: 5,
                kernel: 3,
                padding: 1,
            },
            Linear { out: 3 },
        ],
        3,
    );
    // 40 images of 15 tiles: groups of 18 images, the last one partial.
    compare("odd sides", net, 40);
}
