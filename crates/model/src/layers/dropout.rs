//! Dropout (`LayerSpec::Dropout`): in training, each value zeroed with probability `p` and
//! the rest scaled by `1/(1 − p)`, the mask drawn from the worker's own stream; the identity
//! in evaluation.

use rand::RngCore;

/// `y = x · mask` with a fresh mask from `rng` in training (`p > 0`), else `y = x`.
#[inline(always)]
pub(crate) fn forward(
    x: &[f32],
    y: &mut [f32],
    drop: f32,
    train: bool,
    rng: &mut dyn RngCore,
    mask: &mut [f32],
) {
    if train && drop > 0.0 {
        let mask = &mut mask[..y.len()];
        dropout_mask(rng, drop, mask);
        for ((o, &v), &m) in y.iter_mut().zip(x).zip(mask.iter()) {
            *o = v * m;
        }
    } else {
        y.copy_from_slice(x);
    }
}

/// `dx = dy · mask` (the mask of the forward pass).
#[inline(always)]
pub(crate) fn backward(dy: &[f32], drop: f32, mask: &[f32], dx: &mut [f32]) {
    if drop > 0.0 {
        for ((d, &g), &m) in dx.iter_mut().zip(dy).zip(mask) {
            *d = g * m;
        }
    } else {
        dx.copy_from_slice(dy);
    }
}

/// Dropout's mask: `0` with probability `drop`, else `1 / (1 − drop)`, one uniform draw of
/// `rng` per value as `rng.gen::<f32>()` makes it (the top 24 bits of a `u32`, times 2⁻²⁴),
/// the `u32`s taken 256 at a time with `fill_bytes` (for block generators such as ChaCha the
/// same stream as one `next_u32` per value, without a virtual call per value).
#[inline(always)]
fn dropout_mask(rng: &mut dyn RngCore, drop: f32, mask: &mut [f32]) {
    let keep = 1.0 / (1.0 - drop);
    let mut bytes = [0u8; 1024];
    for chunk in mask.chunks_mut(256) {
        let bytes = &mut bytes[..4 * chunk.len()];
        rng.fill_bytes(bytes);
        for (m, b) in chunk.iter_mut().zip(bytes.chunks_exact(4)) {
            let u = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
            let uniform = (1.0 / (1u32 << 24) as f32) * (u >> 8) as f32;
            *m = if uniform < drop { 0.0 } else { keep };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn dropout_mask_is_one_uniform_draw_per_value() {
        // The definition: one `rng.gen::<f32>()` per value, in order. Lengths across the
        // 256-value blocks of `fill_bytes`, and a stream already started mid-block.
        for len in [0, 1, 7, 255, 256, 257, 1000] {
            for drop in [0.1f32, 0.25, 0.5, 0.9] {
                use rand::Rng;
                let mut fast = rand_chacha::ChaCha8Rng::seed_from_u64(len as u64);
                let mut slow = fast.clone();
                fast.next_u32();
                slow.next_u32();
                let mut mask = vec![f32::NAN; len];
                dropout_mask(&mut fast, drop, &mut mask);
                let keep = 1.0 / (1.0 - drop);
                let expected: Vec<f32> = (0..len)
                    .map(|_| if slow.gen::<f32>() < drop { 0.0 } else { keep })
                    .collect();
                assert_eq!(mask, expected, "len {len}, drop {drop}");
                // The streams stay in step after the mask.
                assert_eq!(fast.next_u32(), slow.next_u32());
            }
        }
    }
}
