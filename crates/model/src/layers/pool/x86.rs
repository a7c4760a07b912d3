//! Max pooling's AVX-512 forward pass (x86-64 only: see `crate::cpu`).

use crate::layers::Shape;
use std::arch::x86_64::*;

/// `pool::forward` for inputs at most 32 columns wide, an output row at a time: the row's
/// even and odd columns of both input rows gathered into four registers by permutes, then
/// PyTorch's rule window by window (`pool_takes`: a later value replaces the running maximum
/// only if strictly greater, or if it is a NaN and the maximum is not), in raster order, in
/// every lane at once. That rule is the one both scalar paths implement (the pairwise one
/// where a plane holds no NaN), so the values and indices are the same.
///
/// Panics unless `input.w ≤ 32`, `output` is `input` halved, and the slices hold `batch`
/// samples.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma")]
#[allow(unsafe_code)]
pub(super) fn forward512(
    x: &[f32],
    input: Shape,
    output: Shape,
    batch: usize,
    y: &mut [f32],
    idx: &mut [u32],
) {
    let (h, w, ho, wo) = (input.h, input.w, output.h, output.w);
    assert!(w <= 32 && ho == h / 2 && wo == w / 2 && output.c == input.c);
    assert!(x.len() >= batch * input.len());
    assert!(y.len() >= batch * output.len() && idx.len() >= batch * output.len());
    let lanes = |n: usize| ((1u64 << n) - 1) as u32;
    // The input row's first 16 columns and the next 16 (2·wo ≤ 32 of them are read).
    let (lo, hi) = (
        lanes((2 * wo).min(16)) as __mmask16,
        lanes((2 * wo).saturating_sub(16)) as __mmask16,
    );
    let out = lanes(wo) as __mmask16;
    let even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    let odd = _mm512_add_epi32(even, _mm512_set1_epi32(1));
    let (xp, yp, ip) = (x.as_ptr(), y.as_mut_ptr(), idx.as_mut_ptr());
    // Reads input row `at` (its first 2·wo values): its even and odd columns.
    let row = |at: usize| {
        // SAFETY: lanes below 2·wo ≤ w of row `at`, inside `x` (asserted above); with no
        // lane of the second half read (2·wo ≤ 16) its address may lie past `x`: nothing is
        // read there, and `wrapping_add` makes no claim about it.
        let (a, b) = unsafe {
            (
                _mm512_maskz_loadu_ps(lo, xp.add(at)),
                _mm512_maskz_loadu_ps(hi, xp.wrapping_add(at + 16)),
            )
        };
        (
            _mm512_permutex2var_ps(a, even, b),
            _mm512_permutex2var_ps(a, odd, b),
        )
    };
    let two_lanes = _mm512_slli_epi32::<1>(_mm512_setr_epi32(
        0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15,
    ));
    for b in 0..batch {
        for c in 0..input.c {
            let plane = b * input.len() + c * h * w;
            let base = (c * h * w) as i32;
            for oy in 0..ho {
                let r0 = plane + 2 * oy * w;
                let ((e0, o0), (e1, o1)) = (row(r0), row(r0 + w));
                let mut v = e0;
                let mut at = _mm512_setzero_si512();
                for (u, off) in [(o0, 1), (e1, w as i32), (o1, w as i32 + 1)] {
                    let greater = _mm512_cmp_ps_mask::<_CMP_GT_OQ>(u, v);
                    let nan_u = _mm512_cmp_ps_mask::<_CMP_UNORD_Q>(u, u);
                    let nan_v = _mm512_cmp_ps_mask::<_CMP_UNORD_Q>(v, v);
                    let take = greater | (nan_u & !nan_v);
                    v = _mm512_mask_mov_ps(v, take, u);
                    at = _mm512_mask_mov_epi32(at, take, _mm512_set1_epi32(off));
                }
                let first = _mm512_set1_epi32(base + (2 * oy * w) as i32);
                let j = _mm512_add_epi32(_mm512_add_epi32(first, two_lanes), at);
                let o = b * output.len() + c * ho * wo + oy * wo;
                // SAFETY: lanes below wo of output row `o`, inside `y` and `idx` (asserted).
                unsafe {
                    _mm512_mask_storeu_ps(yp.add(o), out, v);
                    _mm512_mask_storeu_epi32(ip.add(o).cast(), out, j);
                }
            }
        }
    }
}

/// `pool::backward` for inputs at most 32 columns wide, an output row at a time: each
/// window's term (`0 + g`, or 0 where the ReLU's mask stops it) placed in the lane of its
/// arg-max among four masked copies, which permutes interleave into the two input rows,
/// stored whole (zeros elsewhere, and in the rows and columns no window covers). The same
/// values as the scalar pass.
///
/// Panics unless `input.w ≤ 32`, `output` is `input` halved, and the slices hold the same
/// number of samples (`relu`, when given, as many values as `dy`).
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma")]
#[allow(unsafe_code)]
pub(super) fn backward512(
    input: Shape,
    output: Shape,
    dy: &[f32],
    idx: &[u32],
    relu: Option<&[f32]>,
    dx: &mut [f32],
) {
    let (h, w, ho, wo) = (input.h, input.w, output.h, output.w);
    assert!(w <= 32 && ho == h / 2 && wo == w / 2 && output.c == input.c && ho * wo > 0);
    let planes = dy.len() / (ho * wo);
    assert!(idx.len() >= dy.len() && dx.len() >= planes * h * w);
    assert!(relu.is_none_or(|y| y.len() >= dy.len()));
    let lanes = |n: usize| ((1u64 << n) - 1) as u32;
    let out = lanes(wo) as __mmask16;
    let (lo, hi) = (
        lanes(w.min(16)) as __mmask16,
        lanes(w.saturating_sub(16)) as __mmask16,
    );
    // Lanes 0..16 of a and b interleaved: a0 b0 a1 b1 … (first half, then second).
    let first = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
    let second = _mm512_add_epi32(first, _mm512_set1_epi32(8));
    let two_lanes = _mm512_slli_epi32::<1>(_mm512_setr_epi32(
        0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15,
    ));
    let (gp, ip, dp) = (dy.as_ptr(), idx.as_ptr(), dx.as_mut_ptr());
    let yp = relu.map(|y| y.as_ptr());
    let zero = _mm512_setzero_ps();
    // Writes input row `at` from its windows' terms: `even` for its even columns, `odd` for
    // its odd ones.
    let write = |at: usize, even: __m512, odd: __m512| {
        let (a, b) = (
            _mm512_permutex2var_ps(even, first, odd),
            _mm512_permutex2var_ps(even, second, odd),
        );
        // SAFETY: lanes below w of row `at`, inside `dx` (asserted); with no lane of the
        // second half written (w ≤ 16) its address may lie past `dx`: nothing is written
        // there, and `wrapping_add` makes no claim about it.
        unsafe {
            _mm512_mask_storeu_ps(dp.add(at), lo, a);
            _mm512_mask_storeu_ps(dp.wrapping_add(at + 16), hi, b);
        }
    };
    for k in 0..planes {
        let plane = k * h * w;
        let base = ((k % input.c) * h * w) as i32;
        for oy in 0..ho {
            let o = k * ho * wo + oy * wo;
            // SAFETY: lanes below wo of output row `o`, inside `dy`, `idx` and `relu`
            // (asserted).
            let (g, at) = unsafe {
                (
                    _mm512_maskz_loadu_ps(out, gp.add(o)),
                    _mm512_maskz_loadu_epi32(out, ip.add(o).cast()),
                )
            };
            let keep = match yp {
                // SAFETY: as above.
                Some(yp) => {
                    let y = unsafe { _mm512_maskz_loadu_ps(out, yp.add(o)) };
                    _mm512_cmp_ps_mask::<_CMP_GT_OQ>(y, zero)
                }
                None => out,
            };
            let v = _mm512_maskz_add_ps(keep, zero, g);
            let j0 = _mm512_set1_epi32(base + (2 * oy * w) as i32);
            let off = _mm512_sub_epi32(at, _mm512_add_epi32(j0, two_lanes));
            let term =
                |o: i32| _mm512_maskz_mov_ps(_mm512_cmpeq_epi32_mask(off, _mm512_set1_epi32(o)), v);
            let r0 = plane + 2 * oy * w;
            write(r0, term(0), term(1));
            write(r0 + w, term(w as i32), term(w as i32 + 1));
        }
        // The last row of an odd height belongs to no window.
        if h % 2 == 1 {
            write(plane + (h - 1) * w, zero, zero);
        }
    }
}
