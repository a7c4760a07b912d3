//! The convolutions' AVX-512 loops (x86-64 only: see `crate::cpu`).

use crate::layers::Shape;

/// `col2im` without padding on images at most 16 columns wide, `dx` already zeroed: each
/// image row of each channel is held in one register while the `k` shifted column rows that
/// add into it for one kernel row are added (an expanding load places a column row at its
/// offset, a masked add leaves the other lanes as they are), then stored once. The scalar
/// loop's adds of shifted, overlapping rows to memory waited on the store before each; here
/// every value still gets its terms in column-row order, `0 +` the first, so the sums have the
/// same bits.
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
        for ky in 0..k {
            for oy in 0..ho {
                let row = &mut dx[(c * h + oy + ky) * w..][..w];
                // SAFETY: the lanes read and written are the row's `w` floats (`row_mask`).
                let mut acc = unsafe { _mm512_maskz_loadu_ps(row_mask, row.as_ptr()) };
                for kx in 0..k {
                    let r = (c * k + ky) * k + kx;
                    let src = &col[r * ho * wo + oy * wo..][..wo];
                    let at = (src_mask << kx) as __mmask16;
                    // SAFETY: an expanding load reads as many floats as `at` has lanes: `wo`,
                    // the length of `src`.
                    let v = unsafe { _mm512_maskz_expandloadu_ps(at, src.as_ptr()) };
                    acc = _mm512_mask_add_ps(acc, at, acc, v);
                }
                // SAFETY: as the load.
                unsafe { _mm512_mask_storeu_ps(row.as_mut_ptr(), row_mask, acc) };
            }
        }
    }
}
