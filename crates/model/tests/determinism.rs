//! Same seeds, same bits: initialisation, gradients (dropout masks included) and evaluation.

use byzadam_model::ModelKind;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

#[test]
fn same_seeds_give_the_same_bits() {
    for kind in [ModelKind::MnistCnn, ModelKind::Cifar10Cnn { dropout: 0.25 }] {
        let run = || {
            let mut net = kind.build();
            let mut p = vec![0.0; net.num_params()];
            let mut s = vec![0.0; net.num_state()];
            net.init(
                &mut rand_chacha::ChaCha20Rng::seed_from_u64(11),
                &mut p,
                &mut s,
            );
            let mut data = ChaCha8Rng::seed_from_u64(5);
            let x: Vec<f32> = (0..3 * net.input().len())
                .map(|_| data.gen_range(-1.0..1.0))
                .collect();
            let y = [1u8, 4, 7];
            let mut g = vec![0.0; net.num_params()];
            let mut dropout = ChaCha8Rng::seed_from_u64(9);
            let loss = net.loss_and_grad(&p, &mut s, &x, &y, &mut dropout, &mut g);
            // A second batch through the same network reuses its buffers.
            let loss2 = net.loss_and_grad(&p, &mut s, &x, &y, &mut dropout, &mut g);
            let logits = net.logits(&p, &s, &x, 3);
            (p, s, loss, loss2, g, logits)
        };
        let (a, b) = (run(), run());
        assert_eq!(a.0, b.0, "init");
        assert_eq!(a.1, b.1, "batch-norm state");
        assert_eq!(
            (a.2.to_bits(), a.3.to_bits()),
            (b.2.to_bits(), b.3.to_bits()),
            "loss"
        );
        assert!(
            a.4.iter()
                .zip(&b.4)
                .all(|(x, y)| x.to_bits() == y.to_bits()),
            "gradient"
        );
        assert!(
            a.5.iter()
                .zip(&b.5)
                .all(|(x, y)| x.to_bits() == y.to_bits()),
            "logits"
        );
        let other = {
            let net = kind.build();
            let mut p = vec![0.0; net.num_params()];
            net.init(
                &mut rand_chacha::ChaCha20Rng::seed_from_u64(12),
                &mut p,
                &mut vec![0.0; net.num_state()],
            );
            p
        };
        assert_ne!(a.0, other, "another seed, other parameters");
    }
}

/// A network's gradient depends only on the batch it is given, not on what it computed
/// before: after a training step on other images, a smaller batch, an evaluation of yet other
/// images and an im2col network's evaluation at a larger batch, the gradient of a batch is
/// the bits a fresh network gives (no buffer of an earlier batch leaks into it).
#[test]
fn a_gradient_does_not_depend_on_earlier_batches() {
    for (kind, winograd) in [
        (ModelKind::MnistCnn, true),
        (ModelKind::Cifar10Cnn { dropout: 0.0 }, false),
    ] {
        let build = || {
            let mut net = kind.build();
            net.set_winograd(winograd);
            net
        };
        let net = build();
        let mut p = vec![0.0; net.num_params()];
        let mut s = vec![0.0; net.num_state()];
        net.init(
            &mut rand_chacha::ChaCha20Rng::seed_from_u64(2),
            &mut p,
            &mut s,
        );
        let mut data = ChaCha8Rng::seed_from_u64(8);
        let images = |n: usize, data: &mut ChaCha8Rng| -> Vec<f32> {
            (0..n * net.input().len())
                .map(|_| data.gen_range(-1.0..1.0))
                .collect()
        };
        let (a, b, c) = (
            images(6, &mut data),
            images(4, &mut data),
            images(9, &mut data),
        );
        let labels = [0u8, 1, 2, 3, 4, 5, 6, 7, 8];
        let grad_of = |net: &mut byzadam_model::Network, x: &[f32], n: usize| {
            let mut g = vec![0.0; net.num_params()];
            let mut st = s.clone();
            let mut rng = ChaCha8Rng::seed_from_u64(1);
            let loss = net.loss_and_grad(&p, &mut st, x, &labels[..n], &mut rng, &mut g);
            (
                loss.to_bits(),
                g.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            )
        };
        let fresh = grad_of(&mut build(), &b, 4);
        let mut used = build();
        grad_of(&mut used, &a, 6);
        grad_of(&mut used, &c[..3 * net.input().len()], 3);
        used.evaluate(&p, &s, &c, &labels, 9);
        assert!(grad_of(&mut used, &b, 4) == fresh, "{kind:?}");
    }
}

/// A workspace lent by another network of the same model (the simulator's per-thread scratch
/// networks) gives the bits of the network's own; networks of other layers refuse to swap.
#[test]
fn a_borrowed_workspace_gives_the_same_bits_and_other_layers_refuse() {
    let kind = ModelKind::Cifar10Cnn { dropout: 0.25 };
    let mut own = kind.build();
    let mut lender = kind.build();
    let mut p = vec![0.0; own.num_params()];
    let mut s = vec![0.0; own.num_state()];
    own.init(
        &mut rand_chacha::ChaCha20Rng::seed_from_u64(4),
        &mut p,
        &mut s,
    );
    let mut data = ChaCha8Rng::seed_from_u64(6);
    let x: Vec<f32> = (0..5 * own.input().len())
        .map(|_| data.gen_range(-1.0..1.0))
        .collect();
    let y = [3u8, 1, 4, 1, 5];
    let grad = |net: &mut byzadam_model::Network, n: usize| {
        let mut g = vec![0.0; net.num_params()];
        let mut st = s.clone();
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        let l = net.loss_and_grad(&p, &mut st, &x[..n * 3072], &y[..n], &mut rng, &mut g);
        (
            l.to_bits(),
            g.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            st,
        )
    };
    let want = grad(&mut kind.build(), 3);
    grad(&mut lender, 5);
    own.swap_workspace(&mut lender);
    assert!(grad(&mut own, 3) == want);
    own.swap_workspace(&mut lender);
    let mut other = ModelKind::MnistCnn.build();
    let refused = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        own.swap_workspace(&mut other)
    }));
    assert!(refused.is_err());
}
