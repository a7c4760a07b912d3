//! The synthetic digits: deterministic, balanced, learnable, and not trivial.

use byzadam_data::synthetic::generate;

#[test]
fn same_seed_same_bytes_and_samples_regenerate_alone() {
    let a = generate(11, 300, 50);
    assert_eq!(a, generate(11, 300, 50));
    assert_ne!(a.train.images, generate(12, 300, 50).train.images);
    // Sample i depends only on (seed, split, i): a longer split starts with the same samples.
    let longer = generate(11, 400, 50);
    assert_eq!(longer.train.images[..300 * 784], a.train.images[..]);
    assert_eq!(longer.train.labels[..300], a.train.labels[..]);
}

#[test]
fn classes_are_balanced_and_images_use_the_whole_range() {
    let d = generate(5, 5000, 0).train;
    for (c, &n) in d.class_counts().iter().enumerate() {
        assert!((400..600).contains(&n), "class {c}: {n}");
    }
    let ink = d.images.iter().filter(|&&p| p > 128).count() as f64 / d.images.len() as f64;
    assert!(ink > 0.05 && ink < 0.4, "share of bright pixels {ink}");
}

/// A nearest-class-mean classifier, fitted on 4,000 images and scored on 1,000 others, is far
/// above chance (the classes are learnable) and far from perfect (a CNN has work to do).
#[test]
fn nearest_centroid_is_well_above_chance_but_far_from_perfect() {
    let d = generate(3, 4000, 1000);
    let mut centroids = vec![vec![0f64; 784]; 10];
    let counts = d.train.class_counts();
    for i in 0..d.train.len() {
        let c = d.train.labels[i] as usize;
        for (m, &p) in centroids[c].iter_mut().zip(d.train.image(i)) {
            *m += p as f64 / counts[c] as f64;
        }
    }
    let correct = (0..d.test.len())
        .filter(|&i| {
            let img = d.test.image(i);
            let best = (0..10)
                .min_by(|&a, &b| {
                    let dist = |c: usize| {
                        centroids[c]
                            .iter()
                            .zip(img)
                            .map(|(m, &p)| (m - p as f64).powi(2))
                            .sum::<f64>()
                    };
                    dist(a).total_cmp(&dist(b))
                })
                .unwrap();
            best == d.test.labels[i] as usize
        })
        .count();
    let accuracy = correct as f64 / d.test.len() as f64;
    assert!(
        accuracy > 0.3 && accuracy < 0.85,
        "nearest-centroid accuracy {accuracy}"
    );
}
