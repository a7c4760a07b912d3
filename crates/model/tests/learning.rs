//! The engine learns: one worker, plain SGD on the thesis's MNIST CNN with the thesis's
//! gradient policy (l2 1e-4, clipping at 2), mini-batches from the epoch sampler. Real MNIST
//! from the data directory, else downloaded into it (`byzadam_data::testing`); fails loudly,
//! naming the file, when neither works.

use byzadam_data::sampler::EpochSampler;
use byzadam_data::{synthetic, Dataset, DatasetKind};
use byzadam_model::{GradientPolicy, ModelKind, Network};
use rand::SeedableRng;

fn normalized(d: &Dataset, idx: &[u32], out: &mut Vec<f32>) {
    let norm = d.kind.normalization();
    let n = d.shape.len();
    out.resize(idx.len() * n, 0.0);
    for (k, &i) in idx.iter().enumerate() {
        d.normalized_into(i as usize, &norm, &mut out[k * n..(k + 1) * n]);
    }
}

/// Trains with SGD for `steps` batches of 25; returns test accuracy on the first `test` images.
fn train(
    net: &mut Network,
    train: &Dataset,
    test: &Dataset,
    steps: usize,
    lr: f32,
    test_n: usize,
) -> f64 {
    let mut params = vec![0.0; net.num_params()];
    let mut state = vec![0.0; net.num_state()];
    net.init(
        &mut rand_chacha::ChaCha20Rng::seed_from_u64(1),
        &mut params,
        &mut state,
    );
    let mut sampler = EpochSampler::new(
        (0..train.len() as u32).collect(),
        25,
        rand_chacha::ChaCha20Rng::seed_from_u64(2),
    );
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(3);
    let (mut x, mut grad) = (Vec::new(), vec![0.0; net.num_params()]);
    let policy = GradientPolicy::default();
    for _ in 0..steps {
        let batch = sampler.next_batch().to_vec();
        normalized(train, &batch, &mut x);
        let y: Vec<u8> = batch.iter().map(|&i| train.labels[i as usize]).collect();
        net.loss_and_grad(&params, &mut state, &x, &y, &mut rng, &mut grad);
        policy.apply(&params, &mut grad);
        for (p, g) in params.iter_mut().zip(&grad) {
            *p -= lr * g;
        }
    }
    let idx: Vec<u32> = (0..test_n as u32).collect();
    normalized(test, &idx, &mut x);
    net.evaluate(&params, &state, &x, &test.labels[..test_n], 250)
        .accuracy()
}

#[test]
fn sgd_on_the_mnist_cnn_reaches_high_accuracy_in_a_few_hundred_steps() {
    let data = byzadam_data::testing::dataset(
        DatasetKind::Mnist,
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")),
    );
    let acc = train(
        &mut ModelKind::MnistCnn.build(),
        &data.train,
        &data.test,
        300,
        0.1,
        2000,
    );
    assert!(acc > 0.9, "test accuracy after 300 steps: {acc}");
}

#[test]
fn the_synthetic_digits_take_the_cnn_more_than_a_few_steps() {
    let data = synthetic::generate(1, 20_000, 2_000);
    let early = train(
        &mut ModelKind::MnistCnn.build(),
        &data.train,
        &data.test,
        30,
        0.1,
        2000,
    );
    let late = train(
        &mut ModelKind::MnistCnn.build(),
        &data.train,
        &data.test,
        400,
        0.1,
        2000,
    );
    eprintln!("synthetic: {early} after 30 steps, {late} after 400");
    assert!(early < 0.6, "30 steps already give {early}: too easy");
    assert!(
        late > early + 0.2 && late > 0.6,
        "400 steps give {late} (30 gave {early})"
    );
}
