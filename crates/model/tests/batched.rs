//! Workers batched (`Network::loss_and_grad_batched`): several workers' batches at the same
//! parameters in one pass give each worker the same bits as its own `loss_and_grad` call —
//! loss, gradient, batch-norm running statistics and the dropout stream after the step —
//! whatever the workers beside it, their batch sizes and the order they come in; on every
//! model of the zoo (batch norm and dropout included), with Winograd's algorithm and with
//! im2col, at every CPU level this machine runs, with NaN and ∞ among the images.

use byzadam_model::{Job, Level, ModelKind, Network};
use rand::{Rng, RngCore, SeedableRng};
use rand_chacha::{ChaCha20Rng, ChaCha8Rng};

/// One worker's inputs and state.
#[derive(Clone)]
struct Worker {
    images: Vec<f32>,
    labels: Vec<u8>,
    state: Vec<f32>,
    rng: ChaCha8Rng,
}

/// What a step leaves behind, as bits: the loss, the gradient, the running statistics and
/// the next draw of the dropout stream.
fn outcome(w: &mut Worker, loss: f32, grad: &[f32]) -> Vec<u32> {
    let mut bits = vec![loss.to_bits()];
    bits.extend(grad.iter().map(|v| v.to_bits()));
    bits.extend(w.state.iter().map(|v| v.to_bits()));
    let next = w.rng.next_u64();
    bits.extend([(next >> 32) as u32, next as u32]);
    bits
}

fn workers(net: &Network, batches: &[usize], seed: u64) -> Vec<Worker> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let per = net.input().len();
    batches
        .iter()
        .enumerate()
        .map(|(k, &b)| {
            let mut images: Vec<f32> = (0..b * per).map(|_| rng.gen_range(-1.0..1.0)).collect();
            if k == 1 {
                images[3] = f32::NAN;
                images[per + 11] = f32::INFINITY;
            }
            Worker {
                images,
                labels: (0..b)
                    .map(|_| rng.gen_range(0..net.classes()) as u8)
                    .collect(),
                // Running statistics that differ per worker, so a mix-up shows.
                state: (0..net.num_state())
                    .map(|i| {
                        if i % 2 == 0 {
                            0.1 * k as f32
                        } else {
                            1.0 + k as f32
                        }
                    })
                    .collect(),
                rng: ChaCha8Rng::seed_from_u64(100 + k as u64),
            }
        })
        .collect()
}

/// Same bits, any NaN matching any NaN (which NaN comes out where several meet depends on
/// an instruction's operand order, not on the arithmetic).
fn same(a: &[u32], b: &[u32]) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b)
            .all(|(&x, &y)| x == y || (f32::from_bits(x).is_nan() && f32::from_bits(y).is_nan()))
}

fn check(kind: &ModelKind, level: Level, winograd: bool, batches: &[usize]) {
    let mut net = kind.build();
    net.set_winograd(winograd);
    net.set_cpu_level(level).unwrap();
    let mut params = vec![0.0; net.num_params()];
    let mut state = vec![0.0; net.num_state()];
    net.init(&mut ChaCha20Rng::seed_from_u64(7), &mut params, &mut state);
    let ws = workers(&net, batches, 5);
    // Each worker alone, on its own network.
    let alone: Vec<Vec<u32>> = ws
        .iter()
        .map(|w| {
            let mut w = w.clone();
            let mut own = kind.build();
            own.set_winograd(winograd);
            own.set_cpu_level(level).unwrap();
            let mut grad = vec![f32::NAN; net.num_params()];
            let loss = own.loss_and_grad(
                &params,
                &mut w.state,
                &w.images,
                &w.labels,
                &mut w.rng,
                &mut grad,
            );
            outcome(&mut w, loss, &grad)
        })
        .collect();
    // All together, twice on the same network (its buffers then hold the first pass's
    // values), and once in reverse order.
    for order in [false, false, true] {
        let mut ws = ws.clone();
        if order {
            ws.reverse();
        }
        let mut grads = vec![vec![f32::NAN; net.num_params()]; ws.len()];
        let mut jobs: Vec<Job<'_>> = ws
            .iter_mut()
            .zip(grads.iter_mut())
            .map(|(w, g)| Job {
                images: &w.images,
                labels: &w.labels,
                state: &mut w.state,
                rng: &mut w.rng,
                grad: g,
                loss: f32::NAN,
            })
            .collect();
        net.loss_and_grad_batched(&params, &mut jobs);
        let losses: Vec<f32> = jobs.iter().map(|j| j.loss).collect();
        drop(jobs);
        for (k, ((w, g), loss)) in ws.iter_mut().zip(&grads).zip(losses).enumerate() {
            let who = if order { batches.len() - 1 - k } else { k };
            let got = outcome(w, loss, g);
            assert!(
                same(&got, &alone[who]),
                "{kind:?} at {level}, winograd {winograd}, batches {batches:?}: worker {who} \
                 differs from its own pass"
            );
        }
    }
}

fn levels() -> Vec<Level> {
    let best = byzadam_model::cpu_level();
    Level::ALL.into_iter().filter(|&l| l <= best).collect()
}

#[test]
fn batched_workers_get_their_own_passes_bits() {
    let kinds = [
        ModelKind::MnistCnn,
        ModelKind::Cifar10Cnn { dropout: 0.25 },
        ModelKind::Cifar10CnnThesisCode { dropout: 0.25 },
        ModelKind::LogisticRegression,
        ModelKind::Mlp {
            hidden: vec![37, 5],
        },
    ];
    for level in levels() {
        for kind in &kinds {
            // Uneven batches, one of a single image (batch norm's variance of one value).
            check(kind, level, true, &[5, 3, 1, 4]);
        }
        // The CIFAR-10 CNN with im2col instead of Winograd, and a single job.
        check(&kinds[1], level, false, &[3, 2]);
        check(&kinds[0], level, true, &[6]);
    }
}

#[test]
fn a_batch_without_workers_does_nothing() {
    let mut net = ModelKind::MnistCnn.build();
    let params = vec![0.0; net.num_params()];
    net.loss_and_grad_batched(&params, &mut []);
}
