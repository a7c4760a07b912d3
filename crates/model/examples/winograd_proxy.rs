//! Would Winograd's F(2×2, 5×5) pay for the MNIST CNN's second convolution (20 → 20
//! channels, 5 × 5, 12 × 12 → 8 × 8)? A proxy measured on the engine as it is: F(2×2, 5×5)
//! works on 6 × 6 blocks and 36 products, as the engine's F(4×4, 3×3) does, so a 3 × 3,
//! padding-1 convolution of the same channels on 16 × 16 images (16 tiles an image, as
//! F(2×2, 5×5) has on 8 × 8 outputs) does the same products as an F(2×2, 5×5) layer would,
//! and more transform work (its planes are 16 × 16 in and out, F(2×2, 5×5)'s 12 × 12 in and
//! 8 × 8 out, and its output transform is 4 × 6, not 2 × 6): an upper bound. Printed:
//! microseconds an image (medians of 15 interleaved sets of 40 passes, batch 25 in
//! training, 160 in evaluation) of each convolution alone (its network less the same network
//! without it), in training passes and in evaluation.
//!
//! ```sh
//! cargo run --release -p byzadam-model --example winograd_proxy
//! ```
//!
//! BENCHMARKS.md gives its numbers on a Zen 4 and what they say.

use byzadam_model::{LayerSpec, Network, Shape};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::time::Instant;

/// A network of `specs` on `input` (ten classes), its parameters and a batch to run it on;
/// Winograd's algorithm for its 3 × 3 convolutions when `winograd`.
struct Case {
    net: Network,
    params: Vec<f32>,
    state: Vec<f32>,
    images: Vec<f32>,
    labels: Vec<u8>,
    grad: Vec<f32>,
    rng: ChaCha8Rng,
}

impl Case {
    fn new(input: Shape, specs: &[LayerSpec], winograd: bool, batch: usize) -> Self {
        let mut net = Network::new(input, specs, 10);
        net.set_winograd(winograd);
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let mut params = vec![0.0; net.num_params()];
        let mut state = vec![0.0; net.num_state()];
        net.init(&mut rng, &mut params, &mut state);
        let grad = vec![0.0; net.num_params()];
        Self {
            net,
            params,
            state,
            images: (0..batch * input.len())
                .map(|i| ((i * 7919) % 13) as f32 / 13.0 - 0.5)
                .collect(),
            labels: (0..batch).map(|i| (i % 10) as u8).collect(),
            grad,
            rng,
        }
    }

    /// Microseconds an image of `passes` training passes (or evaluations).
    fn time(&mut self, passes: usize, eval: bool) -> f64 {
        let batch = self.labels.len();
        let t = Instant::now();
        for _ in 0..passes {
            if eval {
                let e =
                    self.net
                        .evaluate(&self.params, &self.state, &self.images, &self.labels, batch);
                std::hint::black_box(e);
            } else {
                self.net.loss_and_grad(
                    &self.params,
                    &mut self.state,
                    &self.images,
                    &self.labels,
                    &mut self.rng,
                    &mut self.grad,
                );
            }
        }
        t.elapsed().as_secs_f64() * 1e6 / (passes * batch) as f64
    }
}

/// Each case's median time over `sets` sets, the cases interleaved within each set (so that
/// a slow spell of a shared machine falls on all of them).
fn medians(cases: &mut [Case], sets: usize, eval: bool) -> Vec<f64> {
    let mut times = vec![Vec::new(); cases.len()];
    for _ in 0..sets {
        for (case, t) in cases.iter_mut().zip(&mut times) {
            t.push(case.time(40, eval));
        }
    }
    times
        .into_iter()
        .map(|mut t| {
            t.sort_by(f64::total_cmp);
            t[t.len() / 2]
        })
        .collect()
}

fn main() {
    use LayerSpec::{Conv, Linear, Relu};
    let shape = |c, h, w| Shape { c, h, w };
    println!("CPU level: {}", byzadam_model::cpu_level());
    for eval in [false, true] {
        let batch = if eval { 160 } else { 25 };
        // A ReLU first, so that the convolution's input gradient is computed, as the MNIST
        // CNN's second convolution's is; a linear layer last, for the loss. Each convolution
        // alone: its network less the same network without it (for the 5 × 5 convolution,
        // the mean of ReLU and linear on its input's and on its output's shape).
        let (direct_in, direct_out, proxy_in) =
            (shape(20, 12, 12), shape(20, 8, 8), shape(20, 16, 16));
        let direct_net = [
            Relu,
            Conv {
                out: 20,
                kernel: 5,
                padding: 0,
            },
            Linear { out: 10 },
        ];
        let proxy_net = [
            Relu,
            Conv {
                out: 20,
                kernel: 3,
                padding: 1,
            },
            Linear { out: 10 },
        ];
        let rest = [Relu, Linear { out: 10 }];
        let mut cases = [
            Case::new(direct_in, &direct_net, true, batch),
            Case::new(direct_in, &rest, true, batch),
            Case::new(direct_out, &rest, true, batch),
            Case::new(proxy_in, &proxy_net, true, batch),
            Case::new(proxy_in, &proxy_net, false, batch),
            Case::new(proxy_in, &rest, true, batch),
        ];
        let m = medians(&mut cases, 15, eval);
        println!(
            "{}, µs an image (median of 15 interleaved sets of 40 passes of {batch} images):\n  \
             5 × 5 direct (the MNIST CNN's conv2): {:.1}\n  \
             3 × 3 Winograd F(4×4, 3×3), 16 tiles an image (F(2×2, 5×5)'s proxy): {:.1}\n  \
             the same 3 × 3 by im2col: {:.1}",
            if eval { "evaluation" } else { "training" },
            m[0] - (m[1] + m[2]) / 2.0,
            m[3] - m[5],
            m[4] - m[5],
        );
    }
}
