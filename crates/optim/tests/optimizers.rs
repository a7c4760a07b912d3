//! The optimizers against hand-computed values and against their textbook special cases.

use byzadam_optim::{EpsPlacement, MraGuard, Optimizer, Schedule};

fn constant(value: f64) -> Schedule {
    Schedule::Constant { value }
}

fn send(opt: &Optimizer, state: &mut byzadam_optim::WorkerState, g: &[f32]) -> Vec<Vec<f32>> {
    let mut out = vec![vec![0.0; g.len()]; opt.messages()];
    opt.worker_message(state, g, &mut out);
    out
}

#[test]
fn resam_momentum_by_hand() {
    let opt = Optimizer::Resam {
        lr: constant(0.1),
        beta: 0.5,
    };
    let mut s = opt.worker_state(1);
    assert_eq!(send(&opt, &mut s, &[4.0])[0], [2.0]); // 0.5·0 + 0.5·4
    assert_eq!(send(&opt, &mut s, &[2.0])[0], [2.0]); // 0.5·2 + 0.5·2
    assert_eq!(send(&opt, &mut s, &[-2.0])[0], [0.0]);
    let mut theta = [1.0];
    opt.server_step(1, &mut theta, &[&[2.0]]);
    assert_eq!(theta, [0.8]);
}

#[test]
fn dra_direction_by_hand() {
    // β₁ = 0.5, β₂ = 0.75, ε = 0: first step m̂ = g, v̂ = g², q = g/|g|.
    let opt = Optimizer::Dra {
        lr: constant(0.01),
        beta1: 0.5,
        beta2: 0.75,
        eps: 0.0,
    };
    let mut s = opt.worker_state(2);
    assert_eq!(send(&opt, &mut s, &[3.0, -0.5])[0], [1.0, -1.0]);
    // Second step, g = 1 (first coordinate): m = 0.5·1.5 + 0.5·1 = 1.25, m̂ = 1.25/0.75 = 5/3;
    // v = 0.75·2.25 + 0.25·1 = 1.9375, v̂ = 1.9375/0.4375 = 4.428571…, q = (5/3)/√v̂ = 0.792…
    let q = send(&opt, &mut s, &[1.0, 0.0])[0][0];
    let expected = (5.0f64 / 3.0) / (1.9375f64 / 0.4375).sqrt();
    assert!((q as f64 - expected).abs() < 1e-6, "{q} vs {expected}");
}

#[test]
fn mra_sends_both_bias_corrected_moments() {
    let opt = Optimizer::Mra {
        lr: constant(0.1),
        beta1: 0.9,
        beta2: 0.99,
        eps: 0.0,
        guard: None,
        eps_placement: Default::default(),
    };
    let mut s = opt.worker_state(1);
    let msg = send(&opt, &mut s, &[2.0]);
    assert!(
        (msg[0][0] - 2.0).abs() < 1e-6 && (msg[1][0] - 4.0).abs() < 1e-5,
        "{msg:?}"
    );
    let mut theta = [1.0];
    opt.server_step(1, &mut theta, &[&[2.0], &[4.0]]);
    assert!((theta[0] - 0.9).abs() < 1e-6); // 1 − 0.1 · 2/√4
}

/// Adam as the thesis's Algorithm 10 writes it, independently of the crate.
fn adam(grads: &[Vec<f32>], theta0: &[f32], lr: f32, b1: f32, b2: f32, eps: f32) -> Vec<f32> {
    let mut theta = theta0.to_vec();
    let (mut m, mut v) = (vec![0f32; theta.len()], vec![0f32; theta.len()]);
    for (t, g) in grads.iter().enumerate() {
        let t = t as i32 + 1;
        for i in 0..theta.len() {
            m[i] = b1 * m[i] + (1.0 - b1) * g[i];
            v[i] = b2 * v[i] + (1.0 - b2) * g[i] * g[i];
            let mh = m[i] / (1.0 - b1.powi(t));
            let vh = v[i] / (1.0 - b2.powi(t));
            theta[i] -= lr * mh / (vh.sqrt() + eps);
        }
    }
    theta
}

#[test]
fn dra_with_one_worker_and_averaging_is_adam() {
    let grads: Vec<Vec<f32>> = (0..50)
        .map(|t| {
            (0..4)
                .map(|i| ((t * 7 + i * 3) as f32 * 0.37).sin() * (1.0 + i as f32))
                .collect()
        })
        .collect();
    let theta0 = [0.5, -0.25, 1.0, 0.0];
    let opt = Optimizer::Dra {
        lr: constant(0.001),
        beta1: 0.99,
        beta2: 0.999,
        eps: 1e-8,
    };
    let mut s = opt.worker_state(4);
    let mut theta = theta0.to_vec();
    for (t, g) in grads.iter().enumerate() {
        let msg = send(&opt, &mut s, g);
        // The average of one vector is that vector.
        opt.server_step(t as u64 + 1, &mut theta, &[&msg[0]]);
    }
    let want = adam(&grads, &theta0, 0.001, 0.99, 0.999, 1e-8);
    for (a, b) in theta.iter().zip(&want) {
        assert!((a - b).abs() <= 1e-6 * b.abs().max(1.0), "{a} vs {b}");
    }
}

#[test]
fn resam_with_beta_zero_is_sgd() {
    let sgd = Optimizer::Sgd { lr: constant(0.3) };
    let resam = Optimizer::Resam {
        lr: constant(0.3),
        beta: 0.0,
    };
    let (mut a, mut b) = (sgd.worker_state(3), resam.worker_state(3));
    let (mut ta, mut tb) = (vec![1.0f32, 2.0, 3.0], vec![1.0f32, 2.0, 3.0]);
    for t in 1..20u64 {
        let g: Vec<f32> = (0..3)
            .map(|i| ((t as f32) * 0.7 + i as f32).cos())
            .collect();
        let (ma, mb) = (send(&sgd, &mut a, &g), send(&resam, &mut b, &g));
        assert_eq!(ma, mb);
        sgd.server_step(t, &mut ta, &[&ma[0]]);
        resam.server_step(t, &mut tb, &[&mb[0]]);
    }
    assert_eq!(ta, tb);
}

/// The thesis's finding (section 4): an attack that makes the aggregated second moment
/// negative makes MRA's step NaN, and training stops. The guards prevent it.
#[test]
fn mra_collapses_to_nan_under_sign_flip_with_averaging_and_the_guards_prevent_it() {
    let honest = [0.2f32, -0.1];
    let run = |guard: Option<MraGuard>| {
        let opt = Optimizer::Mra {
            lr: constant(0.001),
            beta1: 0.99,
            beta2: 0.999,
            eps: 1e-8,
            guard,
            eps_placement: Default::default(),
        };
        let mut s = opt.worker_state(2);
        let msg = send(&opt, &mut s, &honest);
        // One honest worker sends x, two sign-flipping Byzantine ones send −x; the server
        // averages: (x − x − x) / 3 = −x / 3.
        let avg = |v: &[f32]| v.iter().map(|x| -x / 3.0).collect::<Vec<f32>>();
        let (m_star, v_star) = (avg(&msg[0]), avg(&msg[1]));
        assert!(
            v_star.iter().all(|&v| v < 0.0),
            "the attack makes v* negative: {v_star:?}"
        );
        let mut theta = vec![1.0f32, 1.0];
        opt.server_step(1, &mut theta, &[&m_star, &v_star]);
        theta
    };
    assert!(
        run(None).iter().all(|x| x.is_nan()),
        "the thesis's collapse"
    );
    let clamped = run(Some(MraGuard::ClampSecondMoment));
    assert!(clamped.iter().all(|x| x.is_finite()));
    let bounded = run(Some(MraGuard::AdamBound));
    assert!(
        bounded
            .iter()
            .all(|x| x.is_finite() && (x - 1.0).abs() <= 0.001 + 1e-6),
        "{bounded:?}"
    );
}

#[test]
fn configs_name_their_optimizer_and_reject_unknown_keys() {
    let opt: Optimizer = serde_json::from_str(r#"{"name": "dra", "lr": {"name": "constant", "value": 0.001}, "beta1": 0.99, "beta2": 0.999}"#).unwrap();
    assert_eq!(
        opt,
        Optimizer::Dra {
            lr: constant(0.001),
            beta1: 0.99,
            beta2: 0.999,
            eps: 1e-8
        }
    );
    assert!(serde_json::from_str::<Optimizer>(r#"{"name": "dra", "lr": {"name": "constant", "value": 0.1}, "beta1": 0.9, "beta2": 0.9, "bata": 1}"#).is_err());
    assert!(Optimizer::Resam {
        lr: constant(0.1),
        beta: 1.0
    }
    .check()
    .is_err_and(|(field, _)| field == "beta"));
}

#[test]
fn mra_eps_inside_or_outside_the_square_root_by_hand() {
    // m* = 0.5, v* = 0.16, ε = 0.09, α = 1: inside 0.5/√0.25 = 1; outside 0.5/(0.4 + 0.09).
    let step = |placement| {
        let opt = Optimizer::Mra {
            lr: constant(1.0),
            beta1: 0.9,
            beta2: 0.99,
            eps: 0.09,
            guard: None,
            eps_placement: placement,
        };
        let mut theta = vec![0.0f32];
        opt.server_step(1, &mut theta, &[&[0.5], &[0.16]]);
        theta[0]
    };
    assert!((step(EpsPlacement::InsideSqrt) + 1.0).abs() < 1e-6);
    assert!((step(EpsPlacement::OutsideSqrt) + 0.5 / 0.49).abs() < 1e-6);
    // The default is the text's, and is not written out (configs keep their run ids).
    let opt: Optimizer = serde_json::from_str(r#"{"name": "mra"}"#).unwrap();
    assert!(!serde_json::to_string(&opt)
        .unwrap()
        .contains("eps_placement"));
    let code: Optimizer =
        serde_json::from_str(r#"{"name": "mra", "eps_placement": "outside_sqrt"}"#).unwrap();
    assert!(matches!(
        code,
        Optimizer::Mra {
            eps_placement: EpsPlacement::OutsideSqrt,
            ..
        }
    ));
}

/// Every optimizer's message and step at every CPU level this machine runs give the portable
/// build's bits, over values with every kind of float in them (zeros of both signs,
/// subnormals, huge values that overflow when squared, infinities and NaN), several rounds.
#[test]
fn every_cpu_level_gives_the_portable_bits() {
    use byzadam_cpu::{scoped, supported, Level};
    // A fixed pseudo-random sequence of floats, with the special values spread through it;
    // 1,003 values: whole vectors of every width and a ragged tail.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let specials = [
        0.0,
        -0.0,
        1e-40,
        -3e-39,
        3e38,
        -2e30,
        f32::INFINITY,
        f32::NEG_INFINITY,
        f32::NAN,
    ];
    let mut values = |n: usize| -> Vec<f32> {
        (0..n)
            .map(|i| {
                let r = next();
                if i % 17 == 5 {
                    specials[(r % specials.len() as u64) as usize]
                } else {
                    ((r >> 11) as f64 / (1u64 << 53) as f64 * 8.0 - 4.0) as f32
                }
            })
            .collect()
    };
    let n = 1003;
    let grads: Vec<Vec<f32>> = (0..3).map(|_| values(n)).collect();
    let theta0 = values(n);
    let optimizers = [
        Optimizer::Sgd { lr: constant(0.5) },
        Optimizer::Resam {
            lr: constant(0.75),
            beta: 0.99,
        },
        Optimizer::Dra {
            lr: constant(0.001),
            beta1: 0.99,
            beta2: 0.999,
            eps: 1e-8,
        },
        Optimizer::Mra {
            lr: constant(0.001),
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            guard: Some(MraGuard::AdamBound),
            eps_placement: EpsPlacement::OutsideSqrt,
        },
        Optimizer::Mra {
            lr: constant(0.001),
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            guard: None,
            eps_placement: EpsPlacement::InsideSqrt,
        },
    ];
    let bits = |v: &[f32]| v.iter().map(|v| v.to_bits()).collect::<Vec<u32>>();
    for opt in &optimizers {
        // Each round's messages and the parameters after each step, as bits.
        let run = || {
            let mut state = opt.worker_state(n);
            let mut theta = theta0.clone();
            let mut seen = Vec::new();
            for (t, g) in grads.iter().enumerate() {
                let msg = send(opt, &mut state, g);
                let refs: Vec<&[f32]> = msg.iter().map(Vec::as_slice).collect();
                opt.server_step(t as u64 + 1, &mut theta, &refs);
                seen.extend(msg.iter().map(|m| bits(m)));
                seen.push(bits(&theta));
            }
            seen
        };
        let portable = scoped(Level::Portable, run).unwrap();
        for level in supported() {
            let got = scoped(level, run).unwrap();
            for (k, (a, b)) in got.iter().zip(&portable).enumerate() {
                // NaN payloads aside (which NaN comes out of two depends on operand order).
                for (i, (&a, &b)) in a.iter().zip(b).enumerate() {
                    let (fa, fb) = (f32::from_bits(a), f32::from_bits(b));
                    assert!(
                        a == b || (fa.is_nan() && fb.is_nan()),
                        "{opt:?} at {level}: vector {k}, value {i}: {fa} against portable {fb}"
                    );
                }
            }
        }
    }
}
