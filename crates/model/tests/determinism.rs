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
