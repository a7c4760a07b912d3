//! `max(x, 0)` (`LayerSpec::Relu`). After a convolution the convolution applies it, and
//! before a batch norm or a max pooling that layer's backward pass applies its mask (see
//! `spec::relu_fused`, `spec::mask_fused`); these are the passes of a ReLU on its own.

/// `y = max(x, 0)`.
#[inline(always)]
pub(crate) fn forward(x: &[f32], y: &mut [f32]) {
    for (o, &v) in y.iter_mut().zip(x) {
        *o = v.max(0.0);
    }
}

/// `dx = dy · [y > 0]`, `y` the forward pass's output.
#[inline(always)]
pub(crate) fn backward(dy: &[f32], y: &[f32], dx: &mut [f32]) {
    for ((d, &g), &o) in dx.iter_mut().zip(dy).zip(y) {
        *d = if o > 0.0 { g } else { 0.0 };
    }
}
