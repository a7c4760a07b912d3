//! The convolutions' AVX-512 loops (x86-64 only: see `crate::cpu`).

use crate::layers::Shape;

/// `col2im` without padding on images at most 16 columns wide (`dx` overwritten): each image
/// row of each channel is summed in one register, from the column rows that add into it
/// (kernel row by kernel row, and within one by kernel column: column-row order), each loaded
/// at its offset with the lanes outside it masked off and added with a masked add, then stored
/// once. Every value gets its terms in the order the scalar loop adds them, `0 +` the first,
/// so the sums have the same bits; the scalar loop's adds of shifted, overlapping rows to
/// memory each waited on the store before it.
///
/// Panics unless `output` is `input` less `k − 1` rows and columns, `input.w ≤ 16`, and the
/// slices hold the shapes.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma")]
#[allow(unsafe_code)]
pub(super) fn col2im_unpadded512(
    col: &[f32],
    input: Shape,
    k: usize,
    output: Shape,
    dx: &mut [f32],
) {
    use std::arch::x86_64::*;
    let (h, w, ho, wo) = (input.h, input.w, output.h, output.w);
    assert!(k >= 1 && w <= 16 && ho + k - 1 == h && wo + k - 1 == w);
    assert!(col.len() >= input.c * k * k * ho * wo && dx.len() >= input.len());
    let row_mask = ((1u32 << w) - 1) as __mmask16;
    let src_mask = (1u32 << wo) - 1;
    for c in 0..input.c {
        for iy in 0..h {
            let mut acc = _mm512_setzero_ps();
            // Kernel rows ky with an output row oy = iy − ky.
            for ky in iy.saturating_sub(ho - 1)..k.min(iy + 1) {
                let oy = iy - ky;
                for kx in 0..k {
                    let r = (c * k + ky) * k + kx;
                    let src = &col[r * ho * wo + oy * wo..][..wo];
                    let at = (src_mask << kx) as __mmask16;
                    // Lane kx + t holds src[t]: loaded from kx floats before `src`, the lanes
                    // below kx masked off (not read: the address needs no allocation there).
                    // SAFETY: the lanes read are `src`'s `wo` floats.
                    let v = unsafe { _mm512_maskz_loadu_ps(at, src.as_ptr().wrapping_sub(kx)) };
                    acc = _mm512_mask_add_ps(acc, at, acc, v);
                }
            }
            let row = &mut dx[(c * h + iy) * w..][..w];
            // SAFETY: the lanes written are the row's `w` floats.
            unsafe { _mm512_mask_storeu_ps(row.as_mut_ptr(), row_mask, acc) };
        }
    }
}
