//! # byzadam-model
//!
//! The thesis's models on byzadam's own CPU engine: a sequential network of exactly the layers
//! they use (convolution by im2col + SGEMM, or by Winograd's F(4×4, 3×3) for 3 × 3 ones,
//! ReLU, 2×2 max pooling, batch normalisation, dropout, linear, softmax cross-entropy), with
//! parameters in one flat `f32` vector in PyTorch's order (each layer's weight, then its
//! bias), so a model *is* a point of `ℝ^d` that the robust aggregators can combine.
//!
//! ```
//! use byzadam_model::ModelKind;
//! let net = ModelKind::MnistCnn.build();
//! assert_eq!(net.num_params(), 176_050); // the thesis's MNIST CNN
//! assert_eq!(ModelKind::Cifar10Cnn { dropout: 0.25 }.build().num_params(), 1_310_922);
//! ```
//!
//! Batch-normalisation running statistics are not parameters: they live in a separate `state`
//! vector, updated by every training forward pass as PyTorch updates them, and used only in
//! evaluation. How a distributed run keeps them is the simulator's decision.

mod cpu;
mod gemm;
mod gradient_policy;
mod layers;
mod network;
mod subnormals;
mod sums;
mod thread_networks;
mod trunk;
mod winograd;

pub use cpu::{cpu_level, fast_paths, CpuError, Level};
pub use gradient_policy::{GradientOrder, GradientPolicy};
pub use layers::{Head, LayerSpec, Shape};
pub use network::{Evaluation, Job, Network};
pub use thread_networks::ThreadNetworks;

/// Our SGEMM's rate on one thread, in GFLOP/s (two per multiply-add), at this thread's CPU
/// level: the median of `repeats` products `C = A · B` of `size × size` matrices (after one
/// untimed product). What `byzadam bench-engine --sgemm-peak` measures the engine's rounds
/// against (their FLOP floor).
#[doc(hidden)]
pub fn sgemm_rate(size: usize, repeats: usize) -> f64 {
    let mut pack = gemm::Pack::default();
    let a: Vec<f32> = (0..size * size).map(|i| (i % 7) as f32 * 0.1).collect();
    let b: Vec<f32> = (0..size * size).map(|i| (i % 5) as f32 * 0.1).collect();
    let mut c = vec![0.0; size * size];
    let mut run = || {
        let t = std::time::Instant::now();
        gemm::gemm(
            size, size, size, &a, false, &b, false, 0.0, &mut c, &mut pack,
        );
        t.elapsed().as_secs_f64()
    };
    run();
    let mut times: Vec<f64> = (0..repeats.max(1)).map(|_| run()).collect();
    times.sort_by(f64::total_cmp);
    2.0 * (size as f64).powi(3) / times[times.len() / 2] / 1e9
}
/// Our SGEMM and its packing buffers, for benches (`benches/engine.rs`'s `conv_products`
/// group times the convolutions' product shapes one image at a time against all of a batch's
/// images in one product).
#[doc(hidden)]
pub use gemm::{gemm, Pack};

use serde::{Deserialize, Serialize};

/// The models byzadam ships.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "name", rename_all = "snake_case", deny_unknown_fields)]
pub enum ModelKind {
    /// The thesis's MNIST CNN (from Farhadkhani et al., 2022): C(20, k5) – ReLU – MaxPool2 –
    /// C(20, k5) – ReLU – MaxPool2 – L(500) – ReLU – L(10), 176,050 parameters.
    MnistCnn,
    /// The thesis's CIFAR-10 CNN: C(64) – ReLU – BN – C(64) – ReLU – BN – MaxPool2 – D –
    /// C(128) – ReLU – BN – C(128) – ReLU – BN – MaxPool2 – D – L(128) – ReLU – D – L(10),
    /// 3×3 convolutions with padding 1, dropout `D` with probability `dropout` (the thesis:
    /// 0.25), 1,310,922 parameters.
    Cifar10Cnn {
        /// Dropout probability.
        #[serde(default = "quarter")]
        dropout: f32,
    },
    /// The thesis's code's CIFAR-10 CNN (`model.py`, `CnnCifar10`), which differs from the
    /// text's in where dropout and batch norm sit: C(64) – ReLU – **D** – C(64) – ReLU – BN –
    /// MaxPool2 – D – C(128) – ReLU – BN – C(128) – ReLU – BN – MaxPool2 – D – L(128) – ReLU –
    /// D – L(10), 1,310,794 parameters (one batch norm fewer). The code's batch norms keep no
    /// running statistics (`track_running_stats=False`) and it evaluates in training mode:
    /// pair it with the run option `eval_in_training_mode`.
    Cifar10CnnThesisCode {
        /// Dropout probability (the code's: 0.25).
        #[serde(default = "quarter")]
        dropout: f32,
    },
    /// Multinomial logistic regression on 28×28 grey images.
    LogisticRegression,
    /// A multilayer perceptron on 28×28 grey images with ReLU hidden layers.
    Mlp {
        /// Hidden layer widths.
        hidden: Vec<usize>,
    },
}

/// Most parameters a model may have: 2^30 (4 GiB of float32 per copy; the thesis's largest
/// network has 1.3 million). The same bound as `byzadam_robust::limits::MAX_DIMENSION`.
pub const MAX_PARAMETERS: usize = 1 << 30;

/// Most hidden layers of an MLP.
pub const MAX_HIDDEN_LAYERS: usize = 64;

fn quarter() -> f32 {
    0.25
}

impl ModelKind {
    /// Checks the model's parameters: dropout in `[0, 1)`, hidden widths `≥ 1`; the error
    /// is (the field, what is wrong).
    pub fn check(&self) -> Result<(), (&'static str, String)> {
        match self {
            Self::Cifar10Cnn { dropout } | Self::Cifar10CnnThesisCode { dropout }
                if !(0.0..1.0).contains(dropout) =>
            {
                Err(("dropout", format!("must be in [0, 1), got {dropout}")))
            }
            Self::Mlp { hidden } if hidden.contains(&0) => Err((
                "hidden",
                format!("widths must be at least 1, got {hidden:?}"),
            )),
            Self::Mlp { hidden } if hidden.len() > MAX_HIDDEN_LAYERS => Err((
                "hidden",
                format!(
                    "at most {MAX_HIDDEN_LAYERS} hidden layers, got {}",
                    hidden.len()
                ),
            )),
            _ if self.parameter_count() > MAX_PARAMETERS as u128 => Err((
                "hidden",
                format!(
                    "the network would have {} parameters, over the limit of {MAX_PARAMETERS}",
                    self.parameter_count()
                ),
            )),
            _ => Ok(()),
        }
    }

    /// The number of trainable parameters, computed without building the network (and in 128
    /// bits, so a hostile width cannot wrap it).
    pub fn parameter_count(&self) -> u128 {
        match self {
            Self::MnistCnn => 176_050,
            Self::Cifar10Cnn { .. } => 1_310_922,
            Self::Cifar10CnnThesisCode { .. } => 1_310_794,
            Self::LogisticRegression => 784 * 10 + 10,
            Self::Mlp { hidden } => {
                let mut fan_in: u128 = 784;
                let mut total: u128 = 0;
                for &h in hidden.iter().chain(std::iter::once(&10)) {
                    let h = h as u128;
                    // Saturating: 64 layers of usize::MAX widths stay far below u128::MAX,
                    // but saturate anyway rather than trust that.
                    total = total.saturating_add(fan_in.saturating_mul(h).saturating_add(h));
                    fan_in = h;
                }
                total
            }
        }
    }

    /// The input shape.
    pub fn input(&self) -> Shape {
        match self {
            Self::Cifar10Cnn { .. } | Self::Cifar10CnnThesisCode { .. } => Shape::new(3, 32, 32),
            _ => Shape::new(1, 28, 28),
        }
    }

    /// The layers, in order.
    pub fn layers(&self) -> Vec<LayerSpec> {
        use LayerSpec::*;
        match self {
            Self::MnistCnn => vec![
                Conv {
                    out: 20,
                    kernel: 5,
                    padding: 0,
                },
                Relu,
                MaxPool2,
                Conv {
                    out: 20,
                    kernel: 5,
                    padding: 0,
                },
                Relu,
                MaxPool2,
                Linear { out: 500 },
                Relu,
                Linear { out: 10 },
            ],
            Self::Cifar10Cnn { dropout } => {
                let p = *dropout;
                vec![
                    Conv {
                        out: 64,
                        kernel: 3,
                        padding: 1,
                    },
                    Relu,
                    BatchNorm,
                    Conv {
                        out: 64,
                        kernel: 3,
                        padding: 1,
                    },
                    Relu,
                    BatchNorm,
                    MaxPool2,
                    Dropout { p },
                    Conv {
                        out: 128,
                        kernel: 3,
                        padding: 1,
                    },
                    Relu,
                    BatchNorm,
                    Conv {
                        out: 128,
                        kernel: 3,
                        padding: 1,
                    },
                    Relu,
                    BatchNorm,
                    MaxPool2,
                    Dropout { p },
                    Linear { out: 128 },
                    Relu,
                    Dropout { p },
                    Linear { out: 10 },
                ]
            }
            Self::Cifar10CnnThesisCode { dropout } => {
                let p = *dropout;
                let conv = |out| Conv {
                    out,
                    kernel: 3,
                    padding: 1,
                };
                vec![
                    conv(64),
                    Relu,
                    Dropout { p },
                    conv(64),
                    Relu,
                    BatchNorm,
                    MaxPool2,
                    Dropout { p },
                    conv(128),
                    Relu,
                    BatchNorm,
                    conv(128),
                    Relu,
                    BatchNorm,
                    MaxPool2,
                    Dropout { p },
                    Linear { out: 128 },
                    Relu,
                    Dropout { p },
                    Linear { out: 10 },
                ]
            }
            Self::LogisticRegression => vec![Linear { out: 10 }],
            Self::Mlp { hidden } => {
                let mut layers = Vec::new();
                for &h in hidden {
                    layers.push(Linear { out: h });
                    layers.push(Relu);
                }
                layers.push(Linear { out: 10 });
                layers
            }
        }
    }

    /// Builds the network.
    pub fn build(&self) -> Network {
        Network::new(self.input(), &self.layers(), 10)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameter_count_matches_the_built_network() {
        for kind in [
            ModelKind::MnistCnn,
            ModelKind::Cifar10Cnn { dropout: 0.25 },
            ModelKind::Cifar10CnnThesisCode { dropout: 0.25 },
            ModelKind::LogisticRegression,
            ModelKind::Mlp { hidden: vec![] },
            ModelKind::Mlp {
                hidden: vec![7, 3, 5],
            },
        ] {
            assert_eq!(
                kind.parameter_count(),
                kind.build().num_params() as u128,
                "{kind:?}"
            );
        }
    }

    #[test]
    fn training_flops_are_counted_by_hand() {
        // MNIST CNN: conv 1→20 (5×5, 24×24 out) 288,000 multiply-adds, conv 20→20 (5×5,
        // 8×8 out) 640,000, linear 320→500 160,000, linear 500→10 5,000; two FLOPs each, for
        // the output and weight gradient of the first layer and also the input gradient of
        // the others.
        let want = 2 * (288_000 * 2 + (640_000 + 160_000 + 5_000) * 3);
        assert_eq!(ModelKind::MnistCnn.build().train_flops_per_image(), want);
        // Logistic regression: one linear layer, the first: no input gradient.
        assert_eq!(
            ModelKind::LogisticRegression
                .build()
                .train_flops_per_image(),
            2 * 7_840 * 2
        );
    }

    #[test]
    fn hostile_widths_are_refused_before_building() {
        // 784 × 10^9 + 10^9 + 10 × 10^9 + 10 parameters: refused by the count, not by an allocation abort.
        let huge = ModelKind::Mlp {
            hidden: vec![1_000_000_000],
        };
        let (key, why) = huge.check().unwrap_err();
        assert_eq!(key, "hidden");
        assert!(why.contains("795000000010 parameters"), "{why}");
        // usize::MAX widths saturate instead of wrapping to a small count.
        let wrap = ModelKind::Mlp {
            hidden: vec![usize::MAX, usize::MAX],
        };
        assert!(wrap.check().is_err());
        let deep = ModelKind::Mlp {
            hidden: vec![1; MAX_HIDDEN_LAYERS + 1],
        };
        assert!(deep.check().unwrap_err().1.contains("hidden layers"));
        assert!(ModelKind::Mlp { hidden: vec![100] }.check().is_ok());
    }
}
