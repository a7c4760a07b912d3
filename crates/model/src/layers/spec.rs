//! What a network is made of: the layer kinds a model lists ([`LayerSpec`]) and a layer placed
//! in a network ([`Layer`]: its shapes and where its parameters and state sit in the flat
//! vectors), checked as it is built. The activation shape is `shape`'s.

use super::shape::{Io, Shape};
use super::{batch_norm, conv, linear, pool};
use crate::winograd;
use serde::{Deserialize, Serialize};

/// One layer of a sequential network.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "layer", rename_all = "snake_case")]
pub enum LayerSpec {
    /// 2-D convolution, stride 1: weight `[out, in, k, k]` then bias `[out]`.
    Conv {
        /// Output channels.
        out: usize,
        /// Kernel size `k`.
        kernel: usize,
        /// Zero padding on each side.
        padding: usize,
    },
    /// `max(x, 0)`.
    Relu,
    /// 2×2 max pooling, stride 2.
    MaxPool2,
    /// Batch normalisation over channels (ε = 1e-5, momentum 0.1, as PyTorch): weight `[c]`
    /// then bias `[c]`; running mean and variance are state, not parameters.
    BatchNorm,
    /// Zeroes each value with probability `p` in training and scales the rest by `1/(1−p)`.
    Dropout {
        /// Drop probability in `[0, 1)`.
        p: f32,
    },
    /// Fully connected (the input is flattened): weight `[out, in]` then bias `[out]`.
    Linear {
        /// Output features.
        out: usize,
    },
}

#[derive(Debug, Clone)]
pub(crate) struct Layer {
    pub(crate) spec: LayerSpec,
    pub(crate) input: Shape,
    pub(crate) output: Shape,
    /// Offset of this layer's parameters in the flat vector, and their count.
    pub(crate) params: (usize, usize),
    /// Offset of this layer's state (batch-norm running statistics), and its count.
    pub(crate) state: (usize, usize),
    /// The convolution's shape when Winograd's algorithm computes it (see [`winograd`]).
    pub(crate) wino: Option<winograd::Geometry>,
}

impl Layer {
    /// The layer's input and output shapes.
    pub(crate) fn io(&self) -> Io {
        Io {
            input: self.input,
            output: self.output,
        }
    }

    /// Places `spec` on an input of shape `input`, its parameters from offset `params` and
    /// its state from offset `state` of the network's flat vectors.
    ///
    /// Panics if the layer does not fit the shape (a programming error in a model
    /// definition, caught by the model zoo's tests).
    pub(crate) fn new(spec: &LayerSpec, input: Shape, params: usize, state: usize) -> Self {
        let (output, np, ns) = match *spec {
            LayerSpec::Conv {
                out,
                kernel,
                padding,
            } => conv::output(out, kernel, padding, input),
            LayerSpec::Relu | LayerSpec::Dropout { .. } => (input, 0, 0),
            LayerSpec::MaxPool2 => pool::output(input),
            LayerSpec::BatchNorm => batch_norm::output(input),
            LayerSpec::Linear { out } => linear::output(out, input),
        };
        if let LayerSpec::Dropout { p } = *spec {
            assert!(
                (0.0..1.0).contains(&p),
                "dropout needs p in [0, 1), got {p}"
            );
        }
        let wino = match *spec {
            LayerSpec::Conv {
                out,
                kernel,
                padding,
            } if winograd::applies(kernel, padding, input.c) => {
                Some(winograd::Geometry::new(input.c, out, output.h, output.w))
            }
            _ => None,
        };
        Self {
            spec: spec.clone(),
            input,
            output,
            params: (params, np),
            state: (state, ns),
            wino,
        }
    }
}

/// Whether layer `i` is a ReLU that the convolution before it computes (in the pass that
/// writes the convolution's output), so that its own forward pass is a buffer swap.
pub(crate) fn relu_fused(layers: &[Layer], i: usize) -> bool {
    i > 0
        && layers.get(i).map(|l| &l.spec) == Some(&LayerSpec::Relu)
        && matches!(layers[i - 1].spec, LayerSpec::Conv { .. })
}

/// Whether layer `i` is a batch norm or a max pooling right after a ReLU: its backward pass
/// then applies the ReLU's mask too (its input is the ReLU's output), and the ReLU's backward
/// pass is nothing.
pub(crate) fn mask_fused(layers: &[Layer], i: usize) -> bool {
    i > 0
        && matches!(
            layers.get(i).map(|l| &l.spec),
            Some(LayerSpec::BatchNorm | LayerSpec::MaxPool2)
        )
        && layers[i - 1].spec == LayerSpec::Relu
}

/// Whether layer `i` is a batch norm whose output is never stored: the convolution after it
/// goes through Winograd's algorithm (`winograd` on and the layer's geometry planned), whose
/// input transform normalises the batch norm's *input* as it reads it, in the forward pass
/// and again in the backward pass (`batch_norm::Normalised`). The batch norm's own forward
/// pass then computes only its statistics.
pub(crate) fn bn_fused(layers: &[Layer], i: usize, winograd: bool) -> bool {
    winograd
        && layers.get(i).map(|l| &l.spec) == Some(&LayerSpec::BatchNorm)
        && layers.get(i + 1).is_some_and(|l| l.wino.is_some())
}
