//! Same input, same bits, with 1 or 2 threads (work is split by fixed coordinate chunks).

mod common;

use byzadam_robust::preaggregators::{Bucketing, NearestNeighborMixing};
use byzadam_robust::{aggregators::TrimmedMean, Pipeline, PreAggregator, Submissions};
use rand::{Rng, SeedableRng};

fn input(n: usize, dim: usize) -> Submissions<'static> {
    let mut r = rand_chacha::ChaCha8Rng::seed_from_u64(9);
    let rows: Vec<Vec<f32>> = (0..n)
        .map(|_| (0..dim).map(|_| r.gen_range(-3.0..3.0)).collect())
        .collect();
    Submissions::from_rows(&rows).unwrap()
}

fn in_pool<T: Send>(threads: usize, f: impl FnOnce() -> T + Send) -> T {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap()
        .install(f)
}

#[test]
fn every_rule_gives_the_same_bits_with_one_and_two_threads() {
    let x = input(11, 3 * 8192 + 77);
    for (a, b) in common::all_rules(11).into_iter().zip(common::all_rules(11)) {
        let (mut a, mut b) = (a, b);
        let one = in_pool(1, || a.aggregate(&x).unwrap());
        let two = in_pool(2, || b.aggregate(&x).unwrap());
        assert!(
            one.iter()
                .zip(&two)
                .all(|(p, q)| p.to_bits() == q.to_bits()),
            "{}",
            a.name()
        );
    }
    let run = |threads| {
        in_pool(threads, || {
            let pre: Vec<Box<dyn PreAggregator>> = vec![
                Box::new(Bucketing { s: 2 }),
                Box::new(NearestNeighborMixing::new(2)),
            ];
            let mut server = Pipeline::new(pre, Box::new(TrimmedMean::new(2)));
            let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(5);
            server.run(&x, &mut rng).unwrap()
        })
    };
    assert_eq!(run(1), run(2));
}

/// Every rule and a pipeline with both kinds of pre-aggregators give the same bits at every
/// level the CPU supports (AVX-512, AVX2 + FMA, portable: `byzadam_cpu`), on input with NaN,
/// ±∞ and huge values mixed in. The pool has one thread, so every kernel runs on the thread
/// the level is set on.
#[test]
fn every_rule_gives_the_same_bits_at_every_cpu_level() {
    let mut x: Vec<Vec<f32>> = {
        let mut r = rand_chacha::ChaCha8Rng::seed_from_u64(21);
        (0..11)
            .map(|_| (0..2 * 8192 + 45).map(|_| r.gen_range(-3.0..3.0)).collect())
            .collect()
    };
    x[3][7] = f32::NAN;
    x[4][100] = f32::INFINITY;
    x[5][100] = f32::NEG_INFINITY;
    x[6][9000] = 3.0e38;
    let x = Submissions::from_rows(&x).unwrap();
    let levels = byzadam_cpu::supported();
    eprintln!("levels compared: {levels:?}");
    let at = |level, f: &mut (dyn FnMut() -> Vec<u32> + Send)| {
        in_pool(1, || byzadam_cpu::scoped(level, f).unwrap())
    };
    let names: Vec<String> = common::all_rules(11)
        .iter()
        .map(|r| r.name().to_string())
        .collect();
    for (i, name) in names.iter().enumerate() {
        let results: Vec<Vec<u32>> = levels
            .iter()
            .map(|&level| {
                let mut rule = common::all_rules(11).remove(i);
                at(level, &mut || match rule.aggregate(&x) {
                    Ok(v) => v.iter().map(|v| v.to_bits()).collect(),
                    Err(_) => vec![u32::MAX],
                })
            })
            .collect();
        for (level, r) in levels.iter().zip(&results) {
            assert!(
                r == &results[0],
                "{name}: {level} differs from {}",
                levels[0]
            );
        }
    }
    let pipeline = |level| {
        at(level, &mut || {
            let pre: Vec<Box<dyn PreAggregator>> = vec![
                Box::new(Bucketing { s: 2 }),
                Box::new(NearestNeighborMixing::new(2)),
            ];
            let mut server = Pipeline::new(pre, Box::new(TrimmedMean::new(2)));
            let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(5);
            let v = server.run(&x, &mut rng).unwrap();
            v.iter().map(|v| v.to_bits()).collect()
        })
    };
    for &level in &levels {
        assert_eq!(pipeline(level), pipeline(levels[0]), "pipeline at {level}");
    }
}

/// Every registered attack forges the same bits at every CPU level and with one or two
/// threads (their coordinate-wise statistics run in vectorised chunks), on input with NaN, ±∞
/// and huge values mixed in.
#[test]
fn every_attack_forges_the_same_bits_at_every_cpu_level_and_thread_count() {
    use byzadam_robust::{AttackConfig, AttackContext};
    let mut rows: Vec<Vec<f32>> = {
        let mut r = rand_chacha::ChaCha8Rng::seed_from_u64(33);
        (0..9)
            .map(|_| (0..2 * 8192 + 45).map(|_| r.gen_range(-3.0..3.0)).collect())
            .collect()
    };
    rows[2][7] = f32::NAN;
    rows[3][100] = f32::INFINITY;
    rows[4][9000] = 3.0e38;
    let (honest, own) = rows.split_at(6);
    let honest = Submissions::from_rows(honest).unwrap();
    let own = Submissions::from_rows(own).unwrap();
    let server = Pipeline::new(vec![], Box::new(TrimmedMean::new(3)));
    let forge = |name: &str, level, threads| -> Vec<u32> {
        let config: AttackConfig = serde_json::from_str(&format!(r#"{{"name": "{name}"}}"#))
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let mut attack = config.build();
        let ctx = AttackContext {
            n: 9,
            byzantine: 3,
            dim: honest.dim(),
            own: Some(&own),
            honest: Some(&honest),
            server: Some(&server),
        };
        in_pool(threads, || {
            byzadam_cpu::scoped(level, || {
                let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(8);
                let mut out = Submissions::default();
                match attack.forge(&ctx, &mut rng, &mut out) {
                    Ok(()) => out.as_flat().iter().map(|v| v.to_bits()).collect(),
                    Err(_) => vec![u32::MAX],
                }
            })
            .unwrap()
        })
    };
    let levels = byzadam_cpu::supported();
    for &(name, _) in AttackConfig::NAMES {
        let first = forge(name, levels[0], 1);
        for &level in &levels {
            for threads in [1, 2] {
                assert!(
                    forge(name, level, threads) == first,
                    "{name}: {level} on {threads} thread(s) differs from {} on 1",
                    levels[0]
                );
            }
        }
    }
}

/// `distance_to_mean` equals its definition written plainly (the mean `Σ x / n` in row order,
/// the squares summed in coordinate order), bit for bit, at every CPU level, on a dimension
/// that is not a multiple of the chunk.
#[test]
fn distance_to_mean_equals_its_definition_at_every_cpu_level() {
    use byzadam_robust::distance_to_mean;
    let x = input(7, 3 * 8192 + 77);
    let mut r = rand_chacha::ChaCha8Rng::seed_from_u64(4);
    let point: Vec<f32> = (0..x.dim()).map(|_| r.gen_range(-3.0..3.0)).collect();
    let mut mean = vec![0f64; x.dim()];
    for row in x.rows() {
        for (m, &v) in mean.iter_mut().zip(row) {
            *m += v as f64 / x.n() as f64;
        }
    }
    let mut sum = 0f64;
    for (&a, m) in point.iter().zip(&mean) {
        sum += (a as f64 - m) * (a as f64 - m);
    }
    let expected = sum.sqrt();
    for level in byzadam_cpu::supported() {
        let got = in_pool(1, || {
            byzadam_cpu::scoped(level, || distance_to_mean(&x, &point).unwrap()).unwrap()
        });
        assert_eq!(got.to_bits(), expected.to_bits(), "at {level}");
    }
    assert!(
        distance_to_mean(&x, &point[1..]).is_err(),
        "a wrong length is refused"
    );
}
