//! The real files: MNIST and CIFAR-10 from the data directory (CI: `../shared/data`),
//! Fashion-MNIST from Debian's `dataset-fashion-mnist`. These tests fail, loudly, when the data
//! is missing: they never pass by skipping.

use byzadam_data::partition::{partition, Scheme};
use byzadam_data::{load, DatasetKind, DATA_DIR_ENV};
use rand::SeedableRng;
use std::path::PathBuf;

/// `$BYZADAM_DATA_DIR`, else the project's shared data beside the checkout.
fn data_dir() -> PathBuf {
    if let Some(d) = std::env::var_os(DATA_DIR_ENV) {
        return PathBuf::from(d);
    }
    let shared = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data");
    assert!(
        shared.join("mnist").exists(),
        "real-data tests need MNIST and CIFAR-10: set {DATA_DIR_ENV} to a directory holding mnist/ and cifar10/ \
         (the project's shared/data), looked in {}",
        shared.display()
    );
    shared
}

fn mean_std(images: &[u8], planes: usize, plane: usize) -> Vec<(f64, f64)> {
    (0..planes)
        .map(|c| {
            let (mut s, mut s2, mut n) = (0f64, 0f64, 0f64);
            for img in images.chunks_exact(planes * plane) {
                for &x in &img[c * plane..(c + 1) * plane] {
                    let v = x as f64 / 255.0;
                    s += v;
                    s2 += v * v;
                    n += 1.0;
                }
            }
            let m = s / n;
            (m, (s2 / n - m * m).sqrt())
        })
        .collect()
}

#[test]
fn mnist_loads_with_the_official_counts_and_normalisation() {
    let data = load(DatasetKind::Mnist, &data_dir()).expect("MNIST in the data directory");
    assert_eq!((data.train.len(), data.test.len()), (60_000, 10_000));
    // Per-digit counts of the official files (shared/data/mnist/README.md).
    assert_eq!(
        data.train.class_counts(),
        [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    );
    assert_eq!(
        data.test.class_counts(),
        [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    );
    let norm = DatasetKind::Mnist.normalization();
    let (m, s) = mean_std(&data.train.images, 1, 784)[0];
    assert!(
        (m - norm.mean[0] as f64).abs() < 5e-4 && (s - norm.std[0] as f64).abs() < 5e-4,
        "{m} {s}"
    );
    // The thesis's homogeneous split: 15 workers, 361 of each digit, 3,610 each.
    let p = partition(
        &data.train.labels,
        10,
        15,
        &Scheme::Homogeneous { per_class: None },
        &mut rand_chacha::ChaCha20Rng::seed_from_u64(1),
    )
    .unwrap();
    for counts in p.class_counts(&data.train.labels, 10) {
        assert_eq!(counts, [361; 10]);
    }
    assert!(p.shards.iter().all(|s| s.len() == 3_610));
}

#[test]
fn cifar10_loads_in_the_official_order_with_its_normalisation() {
    let data = load(DatasetKind::Cifar10, &data_dir()).expect("CIFAR-10 in the data directory");
    assert_eq!((data.train.len(), data.test.len()), (50_000, 10_000));
    assert_eq!(data.train.class_counts(), [5000; 10]);
    assert_eq!(data.test.class_counts(), [1000; 10]);
    // First labels of the official files (shared/data/cifar10/README.md).
    assert_eq!(data.train.labels[..10], [6, 9, 9, 4, 1, 1, 2, 7, 8, 3]);
    assert_eq!(data.test.labels[..10], [3, 8, 8, 0, 6, 6, 1, 6, 3, 1]);
    let norm = DatasetKind::Cifar10.normalization();
    for (c, (m, s)) in mean_std(&data.train.images, 3, 1024)
        .into_iter()
        .enumerate()
    {
        assert!(
            (m - norm.mean[c] as f64).abs() < 5e-4 && (s - norm.std[c] as f64).abs() < 5e-4,
            "channel {c}: {m} {s}"
        );
    }
    // The thesis's CIFAR-10 split: 330 per class per worker, 3,300 each.
    let p = partition(
        &data.train.labels,
        10,
        15,
        &Scheme::Homogeneous {
            per_class: Some(330),
        },
        &mut rand_chacha::ChaCha20Rng::seed_from_u64(1),
    )
    .unwrap();
    assert!(p.shards.iter().all(|s| s.len() == 3_300));
}

#[test]
fn fashion_mnist_loads_from_debians_package() {
    let data = load(DatasetKind::FashionMnist, &data_dir())
        .expect("Fashion-MNIST: `apt-get install dataset-fashion-mnist` (CI installs it)");
    assert_eq!((data.train.len(), data.test.len()), (60_000, 10_000));
    assert_eq!(data.train.class_counts(), [6000; 10]);
    assert_eq!(data.test.class_counts(), [1000; 10]);
    let norm = DatasetKind::FashionMnist.normalization();
    let (m, s) = mean_std(&data.train.images, 1, 784)[0];
    assert!(
        (m - norm.mean[0] as f64).abs() < 5e-4 && (s - norm.std[0] as f64).abs() < 5e-4,
        "{m} {s}"
    );
}
