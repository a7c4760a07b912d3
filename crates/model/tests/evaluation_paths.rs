//! Evaluation runs a network's convolutional trunk sixteen images abreast (`lanes.rs`): the
//! convolutions read their input in place instead of through im2col. It performs the same
//! operations in the same order as the image-by-image path of training, so logits and
//! evaluation results must be the same bits, on the thesis's CNNs, on odd shapes (padding,
//! odd sides, prime channel counts, a trunk with a standalone ReLU and a pooled convolution
//! without one), on batches that leave a partial chunk of sixteen, and with NaN and ∞ inputs.

use byzadam_model::{Evaluation, LayerSpec, ModelKind, Network, Shape};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

struct Setup {
    params: Vec<f32>,
    state: Vec<f32>,
    images: Vec<f32>,
    labels: Vec<u8>,
}

/// Initial parameters, each scaled and shifted at random (batch norm's weights would all be
/// 1 and its biases 0, which would hide a misplaced product), running statistics away from
/// (0, 1), and `count` random images.
fn setup(net: &Network, count: usize, seed: u64) -> Setup {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut params = vec![0.0; net.num_params()];
    let mut state = vec![0.0; net.num_state()];
    net.init(
        &mut rand_chacha::ChaCha20Rng::seed_from_u64(seed),
        &mut params,
        &mut state,
    );
    for v in &mut params {
        *v = *v * rng.gen_range(0.5..1.5) + rng.gen_range(-0.05..0.05);
    }
    // Batch-norm state is [mean; var] per layer; any positive value is a valid variance.
    for v in &mut state {
        *v = rng.gen_range(0.05..1.5);
    }
    let images = (0..count * net.input().len())
        .map(|_| rng.gen_range(-1.0..1.0))
        .collect();
    let labels = (0..count).map(|i| (i % net.classes()) as u8).collect();
    Setup {
        params,
        state,
        images,
        labels,
    }
}

/// Same value and same bits, NaN matching NaN.
fn same(name: &str, a: &[f32], b: &[f32]) {
    assert_eq!(a.len(), b.len(), "{name}: lengths");
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        assert!(
            x.to_bits() == y.to_bits() || (x.is_nan() && y.is_nan()),
            "{name}[{i}]: sixteen abreast {x}, image by image {y}"
        );
    }
}

fn outcome(mut net: Network, lanes: bool, s: &Setup, batch: usize) -> (Vec<f32>, Evaluation) {
    net.set_lanes(lanes);
    let count = s.labels.len();
    let logits = net.logits(&s.params, &s.state, &s.images, count);
    let ev = net.evaluate(&s.params, &s.state, &s.images, &s.labels, batch);
    (logits, ev)
}

/// Compares the two paths; returns the logits.
fn compare(name: &str, net: Network, s: &Setup, batch: usize) -> Vec<f32> {
    let (la, ea) = outcome(net.clone(), true, s, batch);
    let (lb, eb) = outcome(net, false, s, batch);
    same(&format!("{name} logits"), &la, &lb);
    assert_eq!(ea.correct, eb.correct, "{name}: correct");
    assert_eq!(ea.count, eb.count, "{name}: count");
    assert_eq!(
        ea.loss_sum.to_bits(),
        eb.loss_sum.to_bits(),
        "{name}: loss sum {} against {}",
        ea.loss_sum,
        eb.loss_sum
    );
    la
}

/// Some logits finite and not zero (the comparison would pass on a path that wrote nothing
/// but zeros to both).
fn informative(name: &str, logits: &[f32]) {
    assert!(
        logits.iter().any(|v| v.is_finite() && *v != 0.0),
        "{name}: no finite non-zero logit"
    );
}

#[test]
fn the_mnist_cnn_evaluates_to_the_same_bits() {
    let net = ModelKind::MnistCnn.build();
    // 37 images: two full chunks and one of 5; batches of 20 split a chunk differently.
    let s = setup(&net, 37, 1);
    informative("mnist", &compare("mnist", net.clone(), &s, 37));
    compare("mnist, batches of 20", net, &s, 20);
}

#[test]
fn the_cifar10_cnn_evaluates_to_the_same_bits_with_and_without_winograd() {
    let net = ModelKind::Cifar10Cnn { dropout: 0.25 }.build();
    let s = setup(&net, 18, 2);
    // With Winograd the trunk is the first convolution, its ReLU and batch norm; without,
    // every layer up to the first linear one.
    informative("cifar10", &compare("cifar10", net.clone(), &s, 18));
    let mut im2col = net;
    im2col.set_winograd(false);
    informative(
        "cifar10 by im2col",
        &compare("cifar10 by im2col", im2col, &s, 18),
    );
}

fn odd_net() -> Network {
    use LayerSpec::*;
    Network::new(
        Shape::new(3, 9, 7),
        &[
            // 9×7 → 11×9 (padding 2), 7 channels: tiles of 6 rows and one of 1.
            Conv {
                out: 7,
                kernel: 3,
                padding: 2,
            },
            BatchNorm,
            Relu,
            // 11×9 → 5×4: the last row and column dropped.
            MaxPool2,
            Dropout { p: 0.5 },
            // 13 channels (tiles of 6, 6, 1), a 2×2 kernel: 5×4 → 4×3.
            Conv {
                out: 13,
                kernel: 2,
                padding: 0,
            },
            Relu,
            // 20 channels (tiles of 5), no ReLU after it: NaN reaches the pooling.
            Conv {
                out: 20,
                kernel: 1,
                padding: 1,
            },
            MaxPool2,
            Linear { out: 4 },
        ],
        4,
    )
}

#[test]
fn odd_shapes_evaluate_to_the_same_bits() {
    let net = odd_net();
    let s = setup(&net, 35, 3);
    informative("odd shapes", &compare("odd shapes", net.clone(), &s, 35));
    compare("odd shapes, batches of 17", net, &s, 17);
}

#[test]
fn nan_and_infinite_inputs_evaluate_to_the_same_bits() {
    let net = odd_net();
    let mut s = setup(&net, 33, 4);
    let per = net.input().len();
    // Image 0: one NaN pixel; image 17: +∞ and −∞; image 32 (the partial chunk): all NaN.
    s.images[5] = f32::NAN;
    s.images[17 * per + 40] = f32::INFINITY;
    s.images[17 * per + 41] = f32::NEG_INFINITY;
    for v in &mut s.images[32 * per..33 * per] {
        *v = f32::NAN;
    }
    // (The ReLU after the first convolution turns NaN into 0.)
    informative(
        "non-finite inputs",
        &compare("non-finite inputs", net.clone(), &s, 33),
    );
    // Parameter layout: convolution 7×3×3×3 + 7, batch norm 2×7, convolution 13×7×2×2 + 13,
    // convolution 20×13 + 20, linear.
    let second = 7 * 3 * 9 + 7 + 2 * 7;
    let third = second + 13 * 7 * 4 + 13;
    // A NaN weight in the second convolution: its output channel is NaN everywhere.
    let mut nan = s.params.clone();
    nan[second + 3] = f32::NAN;
    let logits = compare("a NaN weight", net.clone(), &Setup { params: nan, ..s }, 33);
    informative("a NaN weight", &logits);
    // +∞ in the third convolution (no ReLU after it): its channel is +∞ where the ReLU let a
    // value through and NaN (∞ · 0) where it gave 0, so the pooling windows mix ∞ and NaN,
    // and the NaN must win wherever it appears, in both paths.
    let s = setup(&net, 33, 5);
    let mut inf = s.params.clone();
    inf[third + 13 * 2 + 5] = f32::INFINITY;
    let logits = compare("an infinite weight", net, &Setup { params: inf, ..s }, 33);
    assert!(logits.iter().any(|v| v.is_nan()), "NaN reached the logits");
}

#[test]
fn pooling_lets_a_nan_win_wherever_it_is_in_the_window() {
    use LayerSpec::*;
    // A 1 × 1 convolution (no ReLU) then one 2 × 2 window: the logits are finite exactly when
    // the pooled value is.
    let net = Network::new(
        Shape::new(1, 2, 2),
        &[
            Conv {
                out: 1,
                kernel: 1,
                padding: 0,
            },
            MaxPool2,
            Linear { out: 2 },
        ],
        2,
    );
    let mut s = setup(&net, 20, 6);
    let (nan, inf) = (f32::NAN, f32::INFINITY);
    let windows: [[f32; 4]; 8] = [
        [nan, 1.0, 2.0, 3.0],
        [1.0, nan, 2.0, 3.0],
        [3.0, 2.0, nan, 1.0],
        [3.0, 2.0, 1.0, nan],
        [inf, nan, 0.0, 0.0],
        [-inf, 0.0, 0.0, nan],
        [nan, inf, nan, 0.0],
        [inf, 1.0, -inf, 0.5],
    ];
    for (image, w) in s.images.chunks_exact_mut(4).zip(windows.iter().cycle()) {
        image.copy_from_slice(w);
    }
    let logits = compare("pooling windows", net, &s, 20);
    for (i, row) in logits.chunks_exact(2).enumerate() {
        let has_nan = windows[i % 8].iter().any(|v| v.is_nan());
        assert_eq!(row[0].is_nan(), has_nan, "image {i}: logits {row:?}");
    }
}

#[test]
fn winograd_convolutions_on_odd_sides_evaluate_to_the_same_bits() {
    use LayerSpec::*;
    // 13 × 5 images: 7 × 3 tiles, the last tile row and column half outside the image;
    // blocks of 5 tile rows (5 · 3 tiles × 16 images ≈ 256), the second block partial.
    let net = Network::new(
        Shape::new(16, 13, 5),
        &[
            // 16 input channels: Winograd; 17 outputs (tiles of 6, 6, 5), no ReLU.
            Conv {
                out: 17,
                kernel: 3,
                padding: 1,
            },
            BatchNorm,
            Relu,
            // 17 input channels, 10 outputs (tiles of 5), its ReLU fused.
            Conv {
                out: 10,
                kernel: 3,
                padding: 1,
            },
            Relu,
            MaxPool2,
            Linear { out: 3 },
        ],
        3,
    );
    let s = setup(&net, 21, 7);
    informative(
        "odd winograd",
        &compare("odd winograd", net.clone(), &s, 21),
    );
    let mut im2col = net;
    im2col.set_winograd(false);
    compare("odd winograd by im2col", im2col, &s, 21);
}

#[test]
fn evaluation_is_the_same_whatever_the_thread_count() {
    // The trunk's chunks are shared out over the rayon pool's threads; each chunk's result
    // must not depend on which thread, or how many, computed it.
    let net = ModelKind::Cifar10Cnn { dropout: 0.25 }.build();
    let s = setup(&net, 53, 8);
    let on = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .expect("a thread pool");
        pool.install(|| outcome(net.clone(), true, &s, 53))
    };
    let (l1, e1) = on(1);
    for threads in [2, 3] {
        let (l, e) = on(threads);
        same(&format!("{threads} threads"), &l, &l1);
        assert_eq!(e.loss_sum.to_bits(), e1.loss_sum.to_bits());
        assert_eq!((e.correct, e.count), (e1.correct, e1.count));
    }
}
