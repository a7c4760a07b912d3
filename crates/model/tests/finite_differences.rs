//! Gradients against central finite differences, layer by layer and for whole models.
//!
//! Central differences `(L(θ+εv) − L(θ−εv)) / 2ε` against `∇L·v` for: the gradient
//! direction itself (ε = 1e-4: along ∇L a step changes every ReLU's input, so only a short
//! step stays on one linear piece; the derivative, ‖∇L‖, is large against `f32` rounding),
//! the 12 largest coordinates and 12 random ones (ε = 1e-3; one weight moves, so kinks are
//! rare, and a transposed index shows). Tolerance 3 % plus 0.5 % of the largest coordinate:
//! a wrong sign, a missing factor or a misplaced index fails by far more.

use byzadam_model::{LayerSpec, ModelKind, Network, Shape};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn loss(net: &mut Network, p: &[f32], x: &[f32], y: &[u8]) -> f64 {
    let mut state = vec![0.0; net.num_state()];
    let mut g = vec![0.0; net.num_params()];
    // The same dropout masks on every evaluation: a fresh stream with a fixed seed.
    net.loss_and_grad(
        p,
        &mut state,
        x,
        y,
        &mut ChaCha8Rng::seed_from_u64(99),
        &mut g,
    ) as f64
}

fn check(name: &str, mut net: Network, batch: usize) {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let mut params = vec![0.0; net.num_params()];
    let mut state = vec![0.0; net.num_state()];
    net.init(
        &mut rand_chacha::ChaCha20Rng::seed_from_u64(3),
        &mut params,
        &mut state,
    );
    let x: Vec<f32> = (0..batch * net.input().len())
        .map(|_| rng.gen_range(-1.0..1.0))
        .collect();
    let y: Vec<u8> = (0..batch)
        .map(|_| rng.gen_range(0..net.classes() as u8))
        .collect();
    let mut grad = vec![0.0; net.num_params()];
    net.loss_and_grad(
        &params,
        &mut state,
        &x,
        &y,
        &mut ChaCha8Rng::seed_from_u64(99),
        &mut grad,
    );
    let mut probe = |v: &[f32], eps: f32| {
        let plus: Vec<f32> = params.iter().zip(v).map(|(p, d)| p + eps * d).collect();
        let minus: Vec<f32> = params.iter().zip(v).map(|(p, d)| p - eps * d).collect();
        let numeric =
            (loss(&mut net, &plus, &x, &y) - loss(&mut net, &minus, &x, &y)) / (2.0 * eps as f64);
        let analytic: f64 = grad.iter().zip(v).map(|(&g, &d)| g as f64 * d as f64).sum();
        (numeric, analytic)
    };
    let gnorm = grad.iter().map(|&g| (g as f64).powi(2)).sum::<f64>().sqrt();
    let gmax = grad.iter().map(|&g| g.abs() as f64).fold(0.0, f64::max);
    let v: Vec<f32> = grad.iter().map(|&g| (g as f64 / gnorm) as f32).collect();
    let (numeric, analytic) = probe(&v, 1e-4);
    assert!(
        (numeric - analytic).abs() <= 0.03 * analytic.abs(),
        "{name}, gradient direction: numeric {numeric}, analytic {analytic}"
    );
    let mut order: Vec<usize> = (0..params.len()).collect();
    order.sort_by(|&a, &b| grad[b].abs().total_cmp(&grad[a].abs()));
    let random: Vec<usize> = (0..12).map(|_| rng.gen_range(0..params.len())).collect();
    for &i in order.iter().take(12).chain(&random) {
        let mut v = vec![0.0; params.len()];
        v[i] = 1.0;
        let (numeric, analytic) = probe(&v, 1e-3);
        assert!(
            (numeric - analytic).abs() <= 0.03 * analytic.abs() + 5e-3 * gmax,
            "{name}, coordinate {i}: numeric {numeric}, analytic {analytic}, largest {gmax}"
        );
    }
}

#[test]
fn convolution_with_padding_relu_pooling_and_linear() {
    use LayerSpec::*;
    let net = Network::new(
        Shape::new(2, 7, 7),
        &[
            Conv {
                out: 3,
                kernel: 3,
                padding: 1,
            },
            Relu,
            MaxPool2,
            Linear { out: 4 },
        ],
        4,
    );
    check("conv+relu+pool+linear", net, 3);
}

#[test]
fn winograd_convolution_on_odd_sides() {
    // 16 input channels, 3 × 3, padding 1: the convolution goes through Winograd's algorithm
    // (partial tiles at the odd edges), as the CIFAR-10 CNN's last three do.
    use LayerSpec::*;
    let net = Network::new(
        Shape::new(16, 5, 7),
        &[
            Conv {
                out: 4,
                kernel: 3,
                padding: 1,
            },
            Relu,
            Conv {
                out: 3,
                kernel: 3,
                padding: 1,
            },
            Linear { out: 4 },
        ],
        4,
    );
    check("winograd conv+relu+conv+linear", net, 3);
}

#[test]
fn convolution_without_padding_stacked() {
    use LayerSpec::*;
    let net = Network::new(
        Shape::new(1, 9, 9),
        &[
            Conv {
                out: 2,
                kernel: 3,
                padding: 0,
            },
            Conv {
                out: 3,
                kernel: 2,
                padding: 0,
            },
            Linear { out: 5 },
        ],
        5,
    );
    check("conv+conv+linear", net, 2);
}

#[test]
fn batch_norm_in_training_mode() {
    use LayerSpec::*;
    let net = Network::new(
        Shape::new(2, 5, 5),
        &[
            Conv {
                out: 3,
                kernel: 3,
                padding: 1,
            },
            BatchNorm,
            Relu,
            Linear { out: 3 },
        ],
        3,
    );
    check("conv+batchnorm", net, 4);
}

#[test]
fn dropout_with_fixed_masks() {
    use LayerSpec::*;
    let net = Network::new(
        Shape::new(12, 1, 1),
        &[
            Linear { out: 16 },
            Relu,
            Dropout { p: 0.5 },
            Linear { out: 3 },
        ],
        3,
    );
    check("linear+dropout", net, 5);
}

#[test]
fn whole_models() {
    check(
        "logistic regression",
        ModelKind::LogisticRegression.build(),
        3,
    );
    check(
        "mlp",
        ModelKind::Mlp {
            hidden: vec![32, 16],
        }
        .build(),
        3,
    );
    check("mnist cnn", ModelKind::MnistCnn.build(), 2);
    check(
        "cifar10 cnn",
        ModelKind::Cifar10Cnn { dropout: 0.25 }.build(),
        2,
    );
}

/// The thesis's code's head (softmax output, then a cross-entropy that applies softmax again),
/// through the whole MNIST CNN.
#[test]
fn the_softmax_then_cross_entropy_head_through_the_mnist_cnn() {
    let mut net = ModelKind::MnistCnn.build();
    net.set_head(byzadam_model::Head::SoftmaxThenCrossEntropy);
    check("mnist cnn, softmax then cross-entropy", net, 3);
}

/// The thesis's code's CIFAR-10 network (dropout after the first ReLU, three batch norms).
#[test]
fn the_thesis_codes_cifar10_cnn() {
    let net = ModelKind::Cifar10CnnThesisCode { dropout: 0.25 }.build();
    // The text's network less one batch norm over 64 channels (2 × 64 parameters).
    assert_eq!(net.num_params(), 1_310_922 - 128);
    check("thesis code's cifar10 cnn", net, 2);
}

/// Evaluating in training mode is the training pass's loss: the same batch statistics and,
/// from the same stream, the same dropout masks.
#[test]
fn evaluation_in_training_mode_is_the_training_forward_pass() {
    let mut net = ModelKind::Cifar10CnnThesisCode { dropout: 0.25 }.build();
    let mut params = vec![0.0; net.num_params()];
    let mut state = vec![0.0; net.num_state()];
    net.init(
        &mut rand_chacha::ChaCha20Rng::seed_from_u64(5),
        &mut params,
        &mut state,
    );
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    let x: Vec<f32> = (0..4 * net.input().len())
        .map(|_| rng.gen_range(-1.0..1.0))
        .collect();
    let y = [3u8, 1, 4, 1];
    let mut grad = vec![0.0; net.num_params()];
    let mut s1 = state.clone();
    let train = net.loss_and_grad(
        &params,
        &mut s1,
        &x,
        &y,
        &mut ChaCha8Rng::seed_from_u64(9),
        &mut grad,
    );
    let mut preds = Vec::new();
    let ev = net.evaluate_in_training_mode(
        &params,
        &state,
        &x,
        &y,
        4,
        &mut ChaCha8Rng::seed_from_u64(9),
        Some(&mut preds),
    );
    assert!(
        (ev.loss() - train as f64).abs() < 1e-6,
        "{} vs {train}",
        ev.loss()
    );
    assert_eq!(preds.len(), 4);
    assert_eq!(
        ev.correct,
        preds.iter().zip(&y).filter(|(p, y)| p == y).count()
    );
    // Another stream draws other dropout masks: another loss.
    let other = net.evaluate_in_training_mode(
        &params,
        &state,
        &x,
        &y,
        4,
        &mut ChaCha8Rng::seed_from_u64(10),
        None,
    );
    assert_ne!(other.loss_sum, ev.loss_sum);
}
