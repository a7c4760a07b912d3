//! The real files: MNIST, Fashion-MNIST and CIFAR-10 from the data directory (CI:
//! `../shared/data`), else downloaded and checked into it (`byzadam_data::testing`). These
//! tests fail, loudly, naming the file and the command that fetches it, when neither works:
//! they never pass by skipping.

use byzadam_data::partition::{partition, Scheme};
use byzadam_data::DatasetKind;
use rand::SeedableRng;

/// `kind` as `byzadam run` finds it (`byzadam_data::testing`): the data directory, else a
/// checked download into it; a failure names the file and the command that fetches it.
fn real(kind: DatasetKind) -> byzadam_data::Split {
    byzadam_data::testing::dataset(kind, std::path::Path::new(env!("CARGO_MANIFEST_DIR")))
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
    let data = real(DatasetKind::Mnist);
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
        &Scheme::Homogeneous {
            per_class: None,
            order: Default::default(),
        },
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
    let data = real(DatasetKind::Cifar10);
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
            order: Default::default(),
        },
        &mut rand_chacha::ChaCha20Rng::seed_from_u64(1),
    )
    .unwrap();
    assert!(p.shards.iter().all(|s| s.len() == 3_300));
}

#[test]
fn fashion_mnist_loads_from_the_data_directory() {
    let data = real(DatasetKind::FashionMnist);
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

/// The thesis's code's homogeneous split (`homogenous_data_preparation`): for each digit the
/// first 361 × 15 training images in file order, cut into 15 contiguous chunks of 361.
#[test]
fn the_file_order_split_of_mnist_has_the_codes_counts() {
    let data = real(DatasetKind::Mnist);
    let y = &data.train.labels;
    let scheme = Scheme::Homogeneous {
        per_class: None,
        order: byzadam_data::partition::SampleOrder::FileOrder,
    };
    let p = partition(
        y,
        10,
        15,
        &scheme,
        &mut rand_chacha::ChaCha20Rng::seed_from_u64(0),
    )
    .unwrap();
    // floor(5421 / 15) = 361 of each digit per worker (5,421: MNIST's rarest digit, 5).
    for counts in p.class_counts(y, 10) {
        assert_eq!(counts, [361; 10]);
    }
    // Worker w holds occurrences 361·w … 361·w + 360 of every digit, digit by digit.
    for (w, shard) in p.shards.iter().enumerate() {
        for digit in 0..10u8 {
            let expected: Vec<u32> = (0..y.len() as u32)
                .filter(|&i| y[i as usize] == digit)
                .skip(361 * w)
                .take(361)
                .collect();
            let at = digit as usize * 361;
            assert_eq!(
                &shard[at..at + 361],
                &expected[..],
                "worker {w}, digit {digit}"
            );
        }
    }
}

/// The code's evaluation subset is stratified: per-class counts proportional to MNIST's test
/// set (980, 1,135, 1,032, 1,010, 982, 892, 958, 1,028, 974, 1,009), within one of 2000 × share.
#[test]
fn the_codes_mnist_evaluation_subset_is_stratified() {
    let data = real(DatasetKind::Mnist);
    let (idx, kind) = byzadam_data::subsets::named("thesis_code_mnist").unwrap();
    assert_eq!(kind, DatasetKind::Mnist);
    let mut counts = [0usize; 10];
    let mut full = [0usize; 10];
    for &i in &idx {
        counts[data.test.labels[i as usize] as usize] += 1;
    }
    for &l in &data.test.labels {
        full[l as usize] += 1;
    }
    for c in 0..10 {
        let share = 2000.0 * full[c] as f64 / 10_000.0;
        assert!(
            (counts[c] as f64 - share).abs() <= 1.0,
            "class {c}: {} vs {share}",
            counts[c]
        );
    }
    // The reference's own note: 196 227 206 202 196 178 192 206 195 202.
    assert_eq!(counts, [196, 227, 206, 202, 196, 178, 192, 206, 195, 202]);
}
