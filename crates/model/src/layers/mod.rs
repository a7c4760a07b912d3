//! The layers of the thesis's models, one file per kind: each holds its shape rule (checked
//! as a network is built), its forward pass and its backward pass. `shape` holds what they
//! share (the activation shape); `spec` holds the list a model gives (`LayerSpec`) and a placed
//! layer, and imports the layers (never the reverse).

pub(crate) mod batch_norm;
pub(crate) mod conv;
pub(crate) mod dropout;
pub(crate) mod linear;
pub(crate) mod loss;
pub(crate) mod pool;
pub(crate) mod relu;
mod shape;
mod spec;

pub use loss::Head;
pub use shape::Shape;
pub use spec::LayerSpec;
pub(crate) use spec::{bn_fused, mask_fused, relu_fused, Layer};
