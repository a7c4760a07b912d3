//! The layers of the thesis's models, one file per kind: each holds its shape rule (checked
//! as a network is built), its forward pass and its backward pass. `spec` holds what they
//! share: the activation shape, the list a model gives (`LayerSpec`), a placed layer.

pub(crate) mod batch_norm;
pub(crate) mod conv;
pub(crate) mod dropout;
pub(crate) mod linear;
pub(crate) mod loss;
pub(crate) mod pool;
pub(crate) mod relu;
mod spec;

pub use loss::Head;
pub(crate) use spec::{mask_fused, relu_fused, Layer};
pub use spec::{LayerSpec, Shape};
