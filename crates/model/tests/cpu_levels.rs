//! The network's passes at every CPU level this machine runs (AVX-512, AVX2 + FMA: see
//! `byzadam_cpu`) give the same bits: training steps (loss, gradient, batch-norm running
//! statistics, dropout) and evaluation (sixteen images abreast and image by image), on the
//! thesis's CNNs with Winograd's algorithm and with im2col, and on input with NaN and ∞. The
//! portable level multiplies matrices through `matrixmultiply`, in another order: it is
//! compared to rounding only.

use byzadam_model::{Level, ModelKind, Network};
use rand::{Rng, SeedableRng};
use rand_chacha::{ChaCha20Rng, ChaCha8Rng};

/// Everything a level's passes produce, as bits: per step the loss and the gradient, then the
/// state, the logits and the evaluation's loss sum and correct count.
fn run(mut net: Network, level: Level, steps: usize, batch: usize) -> Vec<Vec<u32>> {
    net.set_cpu_level(level).unwrap();
    assert_eq!(net.cpu_level(), level);
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let mut params = vec![0.0; net.num_params()];
    let mut state = vec![0.0; net.num_state()];
    net.init(&mut ChaCha20Rng::seed_from_u64(1), &mut params, &mut state);
    let mut images: Vec<f32> = (0..batch * net.input().len())
        .map(|_| rng.gen_range(-1.0..1.0))
        .collect();
    images[5] = f32::NAN;
    images[net.input().len() + 7] = f32::INFINITY;
    let labels: Vec<u8> = (0..batch).map(|i| (i % net.classes()) as u8).collect();
    let mut out = Vec::new();
    let mut grad = vec![0.0; net.num_params()];
    let mut drop_rng = ChaCha8Rng::seed_from_u64(9);
    for step in 0..steps {
        // The first step sees the NaN and ∞ images; the later ones clean ones.
        let (from, n) = if step == 0 {
            (0, batch)
        } else {
            (2, batch - 2)
        };
        let x = &images[from * net.input().len()..(from + n) * net.input().len()];
        let loss = net.loss_and_grad(
            &params,
            &mut state,
            x,
            &labels[from..from + n],
            &mut drop_rng,
            &mut grad,
        );
        out.push(vec![loss.to_bits()]);
        out.push(grad.iter().map(|v| v.to_bits()).collect());
        for (p, g) in params.iter_mut().zip(&grad) {
            if g.is_finite() {
                *p -= 0.01 * g;
            }
        }
    }
    out.push(state.iter().map(|v| v.to_bits()).collect());
    let clean = &images[2 * net.input().len()..];
    let count = batch - 2;
    for lanes in [true, false] {
        net.set_lanes(lanes);
        let logits = net.logits(&params, &state, clean, count);
        out.push(logits.iter().map(|v| v.to_bits()).collect());
        let ev = net.evaluate(&params, &state, clean, &labels[2..], 7);
        let bits = ev.loss_sum.to_bits();
        out.push(vec![(bits >> 32) as u32, bits as u32, ev.correct as u32]);
    }
    out
}

fn levels() -> Vec<Level> {
    let best = byzadam_model::cpu_level();
    Level::ALL.into_iter().filter(|&l| l <= best).collect()
}

/// Same bits, any NaN matching any NaN (which NaN an operation returns when several meet
/// depends on the instruction's operand order, not on the arithmetic).
fn same(a: &[u32], b: &[u32]) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b)
            .all(|(&x, &y)| x == y || (f32::from_bits(x).is_nan() && f32::from_bits(y).is_nan()))
}

#[test]
fn every_x86_level_gives_the_same_bits_on_the_thesis_models() {
    let fast: Vec<Level> = levels()
        .into_iter()
        .filter(|&l| l > Level::Portable)
        .collect();
    eprintln!("levels compared bit for bit: {fast:?}");
    for (name, kind, batch) in [
        ("mnist", ModelKind::MnistCnn, 25),
        ("cifar10", ModelKind::Cifar10Cnn { dropout: 0.25 }, 20),
    ] {
        for winograd in [true, false] {
            let mut net = kind.build();
            net.set_winograd(winograd);
            let results: Vec<_> = fast
                .iter()
                .map(|&l| run(net.clone(), l, 2, batch))
                .collect();
            for (l, r) in fast.iter().zip(&results) {
                for (i, (x, y)) in r.iter().zip(&results[0]).enumerate() {
                    assert!(
                        same(x, y),
                        "{name} (winograd {winograd}): output {i} at {l} differs from {}",
                        fast[0]
                    );
                }
            }
        }
    }
}

#[test]
fn the_portable_level_agrees_to_rounding() {
    let (best, net) = (byzadam_model::cpu_level(), ModelKind::MnistCnn.build());
    if best == Level::Portable {
        eprintln!("only the portable level here");
        return;
    }
    let a = run(net.clone(), best, 1, 12);
    let b = run(net, Level::Portable, 1, 12);
    // Step 0's gradient sees NaN input: compare the clean logits (index 3: after loss,
    // gradient and state), finite, to rounding.
    let (la, lb) = (&a[3], &b[3]);
    assert_eq!(la.len(), lb.len());
    for (x, y) in la.iter().zip(lb) {
        let (x, y) = (f32::from_bits(*x), f32::from_bits(*y));
        assert!((x - y).abs() <= 1e-4 * (1.0 + x.abs()), "{x} vs {y}");
    }
}

#[test]
fn a_level_the_cpu_lacks_is_refused_and_changes_nothing() {
    let mut net = ModelKind::MnistCnn.build();
    let before = net.cpu_level();
    // Whether the CPU has AVX-512, not the level this thread takes: `BYZADAM_CPU=avx2` (the
    // suite run at every level) lowers the default without taking AVX-512 from the CPU.
    match net.set_cpu_level(Level::Avx512) {
        Err(e) => {
            assert!(e.to_string().contains("supports at most"), "{e}");
            assert_eq!(net.cpu_level(), before);
        }
        Ok(()) => {
            assert_eq!(
                byzadam_cpu::detected(),
                Level::Avx512,
                "granted without AVX-512"
            );
            assert_eq!(net.cpu_level(), Level::Avx512);
        }
    }
    net.set_cpu_level(Level::Portable).unwrap();
    assert_eq!(net.cpu_level(), Level::Portable);
}
