//! Activation shapes: the one thing every layer and the layer list share (a module of its own,
//! so that the layers import nothing from `spec`, which places them).

use serde::{Deserialize, Serialize};

/// Channels × height × width of one sample's activation (a vector is `c × 1 × 1`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shape {
    /// Channels (or features).
    pub c: usize,
    /// Height.
    pub h: usize,
    /// Width.
    pub w: usize,
}

impl Shape {
    /// A `c × h × w` shape.
    pub const fn new(c: usize, h: usize, w: usize) -> Self {
        Self { c, h, w }
    }

    /// Values per sample.
    pub fn len(&self) -> usize {
        self.c * self.h * self.w
    }

    /// True for a zero-sized shape.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A layer's input and output shapes, all a layer's passes need of its placement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Io {
    /// The input's shape.
    pub(crate) input: Shape,
    /// The output's shape.
    pub(crate) output: Shape,
}
