//! Procedural digits: ten classes of 28×28 grey images drawn from a seed, needing no files
//! and no network.
//!
//! Each class is a set of strokes shaped like the digit (polylines and arcs in the unit
//! square). Every sample draws its own random affine map (rotation ±18°, scale 0.75–1.1,
//! shear ±0.3, shift ±3 px), stroke width (1.3–2.8 px), per-point wobble, and brightness;
//! one sample in eight gets a distracting extra stroke, and every pixel gets Gaussian noise.
//! The result is harder than MNIST for a small CNN on purpose: a model needs a few hundred
//! rounds to get it right, which is what tests and the offline quickstart need.
//!
//! Sample `i` of a split depends only on `(seed, split, i)`, so any subset can be regenerated.

use crate::{Dataset, DatasetKind, Split};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};

type Stroke = Vec<(f32, f32)>;

fn arc(cx: f32, cy: f32, rx: f32, ry: f32, from_deg: f32, to_deg: f32, steps: usize) -> Stroke {
    (0..=steps)
        .map(|k| {
            let t = (from_deg + (to_deg - from_deg) * k as f32 / steps as f32).to_radians();
            (cx + rx * t.cos(), cy + ry * t.sin())
        })
        .collect()
}

/// The strokes of digit `d` in the unit square (x right, y down).
fn strokes(d: u8) -> Vec<Stroke> {
    match d {
        0 => vec![arc(0.5, 0.5, 0.27, 0.37, 0.0, 360.0, 20)],
        1 => vec![
            vec![(0.52, 0.12), (0.5, 0.88)],
            vec![(0.36, 0.27), (0.52, 0.12)],
        ],
        2 => {
            let mut top = arc(0.5, 0.32, 0.24, 0.2, 200.0, 360.0, 10);
            top.extend([(0.7, 0.48), (0.25, 0.88), (0.78, 0.88)]);
            vec![top]
        }
        3 => vec![
            arc(0.48, 0.31, 0.22, 0.18, 210.0, 450.0, 12),
            arc(0.48, 0.67, 0.25, 0.2, 270.0, 510.0, 12),
        ],
        4 => vec![vec![(0.64, 0.88), (0.64, 0.12), (0.22, 0.62), (0.8, 0.62)]],
        5 => {
            let mut s = vec![(0.74, 0.12), (0.32, 0.12), (0.29, 0.46)];
            s.extend(arc(0.47, 0.66, 0.26, 0.22, 240.0, 480.0, 12));
            vec![s]
        }
        6 => vec![
            vec![(0.68, 0.12), (0.36, 0.45), (0.3, 0.64)],
            arc(0.5, 0.66, 0.21, 0.21, 0.0, 360.0, 16),
        ],
        7 => vec![
            vec![(0.22, 0.13), (0.78, 0.13), (0.42, 0.88)],
            vec![(0.38, 0.5), (0.66, 0.5)],
        ],
        8 => vec![
            arc(0.5, 0.3, 0.18, 0.17, 0.0, 360.0, 14),
            arc(0.5, 0.68, 0.22, 0.2, 0.0, 360.0, 16),
        ],
        _ => vec![
            arc(0.5, 0.34, 0.21, 0.2, 0.0, 360.0, 16),
            vec![(0.71, 0.34), (0.62, 0.88)],
        ],
    }
}

fn segment_distance(p: (f32, f32), a: (f32, f32), b: (f32, f32)) -> f32 {
    let (dx, dy) = (b.0 - a.0, b.1 - a.1);
    let len2 = dx * dx + dy * dy;
    let t = if len2 > 0.0 {
        (((p.0 - a.0) * dx + (p.1 - a.1) * dy) / len2).clamp(0.0, 1.0)
    } else {
        0.0
    };
    let (qx, qy) = (a.0 + t * dx - p.0, a.1 + t * dy - p.1);
    (qx * qx + qy * qy).sqrt()
}

/// Renders one sample of class `label` into `out` (28 × 28 bytes).
fn render(label: u8, rng: &mut ChaCha8Rng, out: &mut [u8]) {
    const S: f32 = 28.0;
    let angle = rng.gen_range(-18f32..18.0).to_radians();
    let scale = rng.gen_range(0.75f32..1.1);
    let aspect = rng.gen_range(0.85f32..1.15);
    let shear = rng.gen_range(-0.3f32..0.3);
    let (tx, ty) = (rng.gen_range(-3f32..3.0), rng.gen_range(-3f32..3.0));
    let (c, s) = (angle.cos(), angle.sin());
    let width = rng.gen_range(1.3f32..2.8);
    let brightness = rng.gen_range(0.65f32..1.0);
    let wobble = Normal::new(0.0f32, 0.02).expect("valid");
    // Map unit-square points to pixels: centre, shear, scale, rotate, shift.
    let map = |(x, y): (f32, f32)| {
        let (x, y) = (x - 0.5 + shear * (y - 0.5), y - 0.5);
        let (x, y) = (x * scale * aspect, y * scale);
        let (x, y) = (c * x - s * y, s * x + c * y);
        ((x + 0.5) * S + tx, (y + 0.5) * S + ty)
    };
    let mut segments: Vec<((f32, f32), (f32, f32))> = Vec::new();
    let mut all = strokes(label);
    if rng.gen_ratio(1, 8) {
        let a = (rng.gen_range(0.1f32..0.9), rng.gen_range(0.1f32..0.9));
        let b = (rng.gen_range(0.1f32..0.9), rng.gen_range(0.1f32..0.9));
        all.push(vec![a, b]);
    }
    for stroke in &all {
        let pts: Vec<(f32, f32)> = stroke
            .iter()
            .map(|&(x, y)| map((x + wobble.sample(rng), y + wobble.sample(rng))))
            .collect();
        for w in pts.windows(2) {
            segments.push((w[0], w[1]));
        }
    }
    let noise = Normal::new(0.0f32, 0.12).expect("valid");
    for (i, px) in out.iter_mut().enumerate() {
        let p = ((i % 28) as f32 + 0.5, (i / 28) as f32 + 0.5);
        let d = segments
            .iter()
            .map(|&(a, b)| segment_distance(p, a, b))
            .fold(f32::INFINITY, f32::min);
        // Full ink inside the stroke, a one-pixel soft edge, then background.
        let ink = (1.0 - (d - width / 2.0)).clamp(0.0, 1.0) * brightness;
        let v = (ink + noise.sample(rng)).clamp(0.0, 1.0);
        *px = (v * 255.0).round() as u8;
    }
}

fn split(seed: u64, which: u64, n: usize) -> Dataset {
    let kind = DatasetKind::Synthetic;
    let mut images = vec![0u8; n * 28 * 28];
    let mut labels = Vec::with_capacity(n);
    for (i, img) in images.chunks_exact_mut(28 * 28).enumerate() {
        // One stream per (seed, split, sample): any sample can be regenerated alone.
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ which.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        rng.set_stream(i as u64);
        let label = rng.gen_range(0..10u8);
        render(label, &mut rng, img);
        labels.push(label);
    }
    Dataset {
        kind,
        shape: kind.shape(),
        classes: 10,
        images,
        labels,
    }
}

/// `train` training and `test` test images from `seed` (labels uniform over the ten classes).
///
/// ```
/// let data = byzadam_data::synthetic::generate(7, 100, 20);
/// assert_eq!((data.train.len(), data.test.len()), (100, 20));
/// assert_eq!(data, byzadam_data::synthetic::generate(7, 100, 20)); // same seed, same bytes
/// ```
pub fn generate(seed: u64, train: usize, test: usize) -> Split {
    Split {
        train: split(seed, 1, train),
        test: split(seed, 2, test),
    }
}
