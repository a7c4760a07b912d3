//! `Network::set_flush_subnormals`: the passes read and produce subnormal floats as zero when
//! it is on, compute with them when it is off (the default), and leave the calling thread's
//! floating-point mode as it was either way.

use byzadam_model::{LayerSpec, Network, Shape};

/// A product whose exact value is subnormal, computed at run time (not folded by the
/// compiler, which knows nothing of the mode).
fn tiny() -> f32 {
    std::hint::black_box(1.0e-20f32) * std::hint::black_box(1.0e-20f32)
}

#[test]
fn flushing_zeroes_subnormal_inputs_and_gradients_and_restores_the_mode() {
    // One linear layer, 2 → 2: weights 1, biases 0; inputs subnormal (1e-39).
    let mut net = Network::new(Shape::new(1, 1, 2), &[LayerSpec::Linear { out: 2 }], 2);
    assert!(!net.flush_subnormals(), "off by default");
    let params = [1.0, 1.0, 1.0, 1.0, 0.0, 0.0];
    let images = [1.0e-39f32, 1.0e-39];
    let mut rng = rand::rngs::mock::StepRng::new(0, 1);
    let mut run = |net: &mut Network| {
        let logits = net.logits(&params, &[], &images, 1);
        let mut grad = vec![0.0; 6];
        net.loss_and_grad(&params, &mut [], &images, &[0], &mut rng, &mut grad);
        (logits, grad)
    };

    let (logits, grad) = run(&mut net);
    assert!(
        logits.iter().all(|&v| v > 0.0 && !v.is_normal()),
        "{logits:?}: exact, subnormal"
    );
    assert!(
        grad[..4].iter().all(|&g| g != 0.0),
        "{grad:?}: the weights' gradient is x-sized"
    );

    if cfg!(any(target_arch = "x86_64", target_arch = "aarch64")) {
        net.set_flush_subnormals(true);
        let (logits, grad) = run(&mut net);
        assert_eq!(logits, [0.0, 0.0], "the inputs read as zero");
        assert_eq!(
            &grad[..4],
            &[0.0; 4],
            "and so does their product with the loss's gradient"
        );
        // Softmax of equal logits: the biases' gradient is exact either way.
        assert_eq!(&grad[4..], &[-0.5, 0.5]);
    }
    // The thread computes with subnormals again after the passes.
    assert!(tiny() > 0.0 && !tiny().is_normal());
}
