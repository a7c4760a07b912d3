//! The SGEMM micro-kernels, written with AVX2 + FMA and with AVX-512 intrinsics (x86-64 only:
//! see `crate::cpu`). Their callers in `gemm` check the CPU's features and every slice bound.

use super::{KC, MG512, MR, MR512, NR, NR512};

/// `C (R × NR, row stride ldc) = Σ_p ap[p][..R] ⊗ bp[p] + beta · C` over `kc` packed depths
/// (`R ≤ MR` rows of an `MR`-row panel): up to twelve AVX accumulators, one broadcast of A
/// and two loads of B per pair of FMAs. With `beta = 0`, C is not read.
///
/// # Safety
///
/// The CPU must support AVX2 and FMA.
#[target_feature(enable = "avx2,fma")]
#[allow(unsafe_code)]
pub(super) unsafe fn kernel<const R: usize>(
    kc: usize,
    ap: &[f32],
    bp: &[f32],
    beta: f32,
    c: &mut [f32],
    ldc: usize,
) {
    use std::arch::x86_64::*;
    const { assert!(R >= 1 && R <= MR) };
    assert!(ap.len() >= kc * MR && bp.len() >= kc * NR && c.len() >= (R - 1) * ldc + NR);
    let (a, b) = (ap.as_ptr(), bp.as_ptr());
    let mut acc = [[_mm256_setzero_ps(); 2]; R];
    for p in 0..kc {
        // SAFETY: p < kc, so the reads stay inside the panels (asserted above).
        let (b0, b1) = unsafe {
            (
                _mm256_loadu_ps(b.add(p * NR)),
                _mm256_loadu_ps(b.add(p * NR + 8)),
            )
        };
        for (r, row) in acc.iter_mut().enumerate() {
            // SAFETY: as above (r < R ≤ MR).
            let x = unsafe { _mm256_broadcast_ss(&*a.add(p * MR + r)) };
            row[0] = _mm256_fmadd_ps(x, b0, row[0]);
            row[1] = _mm256_fmadd_ps(x, b1, row[1]);
        }
    }
    let cp = c.as_mut_ptr();
    let bv = _mm256_set1_ps(beta);
    for (r, row) in acc.iter().enumerate() {
        // SAFETY: row r of C spans c[r * ldc .. r * ldc + NR], inside `c` (asserted above).
        unsafe {
            let (c0, c1) = (cp.add(r * ldc), cp.add(r * ldc + 8));
            if beta == 0.0 {
                _mm256_storeu_ps(c0, row[0]);
                _mm256_storeu_ps(c1, row[1]);
            } else if beta == 1.0 {
                _mm256_storeu_ps(c0, _mm256_add_ps(_mm256_loadu_ps(c0), row[0]));
                _mm256_storeu_ps(c1, _mm256_add_ps(_mm256_loadu_ps(c1), row[1]));
            } else {
                _mm256_storeu_ps(c0, _mm256_fmadd_ps(bv, _mm256_loadu_ps(c0), row[0]));
                _mm256_storeu_ps(c1, _mm256_fmadd_ps(bv, _mm256_loadu_ps(c1), row[1]));
            }
        }
    }
}

/// [`gathered`] for `R` rows.
///
/// # Safety
///
/// The CPU must support AVX2 and FMA, and the slices must be as [`gathered`] asserts.
#[target_feature(enable = "avx2,fma")]
#[allow(unsafe_code, clippy::too_many_arguments)]
pub(super) unsafe fn gathered_tile<const R: usize>(
    a: &[f32],
    x: &[f32],
    base: usize,
    offs: &[u32],
    bias: Option<&[f32]>,
    relu: bool,
    c: &mut [f32],
    ldc: usize,
) {
    use std::arch::x86_64::*;
    let (ap, xp, cp) = (a.as_ptr(), x.as_ptr().wrapping_add(base), c.as_mut_ptr());
    let k = offs.len();
    let mut p0 = 0;
    while p0 < k {
        let end = (p0 + KC).min(k);
        let mut acc = [[_mm256_setzero_ps(); 2]; R];
        for p in p0..end {
            // SAFETY: see `gathered`: p < k = offs.len(), and the lanes at offs[p] are inside
            // x. (Indexing by hand: an iterator adapter left out of line here spills the
            // accumulators.)
            let (b0, b1) = unsafe {
                let b = xp.add(*offs.get_unchecked(p) as usize);
                (_mm256_loadu_ps(b), _mm256_loadu_ps(b.add(8)))
            };
            for (r, row) in acc.iter_mut().enumerate() {
                // SAFETY: p · R + r < k · R ≤ a.len().
                let v = unsafe { _mm256_broadcast_ss(&*ap.add(p * R + r)) };
                row[0] = _mm256_fmadd_ps(v, b0, row[0]);
                row[1] = _mm256_fmadd_ps(v, b1, row[1]);
            }
        }
        let last = end == k;
        for (r, row) in acc.iter().enumerate() {
            // SAFETY: row r of C spans c[r · ldc ..][..NR], inside c (see `gathered`).
            unsafe {
                let (c0, c1) = (cp.add(r * ldc), cp.add(r * ldc + 8));
                let (mut v0, mut v1) = (row[0], row[1]);
                if p0 > 0 {
                    // The earlier blocks' sum plus this one's, as `packed` adds them.
                    v0 = _mm256_add_ps(_mm256_loadu_ps(c0), v0);
                    v1 = _mm256_add_ps(_mm256_loadu_ps(c1), v1);
                }
                if last {
                    if let Some(bias) = bias {
                        let b = _mm256_set1_ps(bias[r]);
                        v0 = _mm256_add_ps(v0, b);
                        v1 = _mm256_add_ps(v1, b);
                    }
                    if relu {
                        // max(v, 0) is 0 for a NaN v, as `f32::max(v, 0.0)`.
                        v0 = _mm256_max_ps(v0, _mm256_setzero_ps());
                        v1 = _mm256_max_ps(v1, _mm256_setzero_ps());
                    }
                }
                _mm256_storeu_ps(c0, v0);
                _mm256_storeu_ps(c1, v1);
            }
        }
        p0 = end;
    }
}

/// `C (R × cols, row stride ldc) = Σ_p ap[p·h ..][..R] ⊗ bp[p·NR512 ..][..cols]`, plus C when
/// `add`, over `kc` packed depths (`R ≤ h ≤ MR512` rows of an `h`-row A panel, `cols ≤
/// NR512`): up to 24 AVX-512 accumulators, two loads of B and one broadcast of A per pair of
/// FMAs; the columns past `cols` are neither read nor written (masked). Each value is the same
/// chain of FMAs in depth order as [`kernel`]'s, and the sum added to C the same way, so the
/// two kernels give the same bits.
///
/// # Safety
///
/// The CPU must support AVX-512 F, BW and VL, and FMA.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma")]
#[allow(unsafe_code, clippy::too_many_arguments)]
pub(super) unsafe fn kernel512<const R: usize>(
    kc: usize,
    ap: &[f32],
    h: usize,
    bp: &[f32],
    add: bool,
    c: &mut [f32],
    ldc: usize,
    cols: usize,
) {
    use std::arch::x86_64::*;
    const { assert!(R >= 1 && R <= MR512) };
    assert!(R <= h && (1..=NR512).contains(&cols));
    assert!(ap.len() >= kc * h && bp.len() >= kc * NR512 && c.len() >= (R - 1) * ldc + cols);
    let (a, b) = (ap.as_ptr(), bp.as_ptr());
    let mut acc = [[_mm512_setzero_ps(); 2]; R];
    for p in 0..kc {
        // SAFETY: p < kc, so the reads stay inside the panels (asserted above).
        let (b0, b1) = unsafe {
            (
                _mm512_loadu_ps(b.add(p * NR512)),
                _mm512_loadu_ps(b.add(p * NR512 + 16)),
            )
        };
        for (r, row) in acc.iter_mut().enumerate() {
            // SAFETY: as above (r < R ≤ h).
            let x = unsafe { _mm512_set1_ps(*a.add(p * h + r)) };
            row[0] = _mm512_fmadd_ps(x, b0, row[0]);
            row[1] = _mm512_fmadd_ps(x, b1, row[1]);
        }
    }
    let lanes = |n: usize| -> __mmask16 { ((1u32 << n.min(16)) - 1) as __mmask16 };
    let (m0, m1) = (lanes(cols), lanes(cols.saturating_sub(16)));
    let cp = c.as_mut_ptr();
    for (r, row) in acc.iter().enumerate() {
        // SAFETY: row r of C spans c[r * ldc .. r * ldc + cols], inside `c` (asserted above);
        // the masked loads and stores touch no lane past `cols`.
        unsafe {
            let (c0, c1) = (cp.add(r * ldc), cp.add(r * ldc + 16));
            let (mut v0, mut v1) = (row[0], row[1]);
            if add {
                v0 = _mm512_add_ps(_mm512_maskz_loadu_ps(m0, c0), v0);
                v1 = _mm512_add_ps(_mm512_maskz_loadu_ps(m1, c1), v1);
            }
            _mm512_mask_storeu_ps(c0, m0, v0);
            _mm512_mask_storeu_ps(c1, m1, v1);
        }
    }
}

/// [`gathered_tile`] with AVX-512: `R ≤ MG512` rows of one 16-lane vector each (the lanes of
/// [`NR`] images), one load of the input and `R` broadcast FMAs per depth. Each lane is the
/// same chain of FMAs in depth order, in the same blocks of [`KC`], with the bias and the ReLU
/// applied the same way, so it gives [`gathered_tile`]'s bits.
///
/// # Safety
///
/// The CPU must support AVX-512 F, BW and VL, and FMA, and the slices must be as
/// [`super::gathered`] asserts.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma")]
#[allow(unsafe_code, clippy::too_many_arguments)]
pub(super) unsafe fn gathered_tile512<const R: usize>(
    a: &[f32],
    x: &[f32],
    base: usize,
    offs: &[u32],
    bias: Option<&[f32]>,
    relu: bool,
    c: &mut [f32],
    ldc: usize,
) {
    use std::arch::x86_64::*;
    const { assert!(R >= 1 && R <= MG512 && NR == 16) };
    let (ap, xp, cp) = (a.as_ptr(), x.as_ptr().wrapping_add(base), c.as_mut_ptr());
    let k = offs.len();
    let mut p0 = 0;
    while p0 < k {
        let end = (p0 + KC).min(k);
        let mut acc = [_mm512_setzero_ps(); R];
        for p in p0..end {
            // SAFETY: see `gathered`: p < k = offs.len(), and the lanes at offs[p] are inside x.
            let b = unsafe { _mm512_loadu_ps(xp.add(*offs.get_unchecked(p) as usize)) };
            for (r, row) in acc.iter_mut().enumerate() {
                // SAFETY: p · R + r < k · R ≤ a.len().
                let v = unsafe { _mm512_set1_ps(*ap.add(p * R + r)) };
                *row = _mm512_fmadd_ps(v, b, *row);
            }
        }
        let last = end == k;
        for (r, row) in acc.iter().enumerate() {
            // SAFETY: row r of C spans c[r · ldc ..][..NR], inside c (see `gathered`).
            unsafe {
                let c0 = cp.add(r * ldc);
                let mut v = *row;
                if p0 > 0 {
                    v = _mm512_add_ps(_mm512_loadu_ps(c0), v);
                }
                if last {
                    if let Some(bias) = bias {
                        v = _mm512_add_ps(v, _mm512_set1_ps(bias[r]));
                    }
                    if relu {
                        // max(v, 0) is 0 for a NaN v, as `f32::max(v, 0.0)` and AVX2's max.
                        v = _mm512_max_ps(v, _mm512_setzero_ps());
                    }
                }
                _mm512_storeu_ps(c0, v);
            }
        }
        p0 = end;
    }
}

/// Packs `lines ≤ 16` lines of `kc` values each (line `l`, depth `p` at `src[l · ld + p]`)
/// transposed: depth `p`'s `width` values (`lines ≤ width ≤ 16`) at `dst[p · stride ..]`, line
/// `l` in lane `l`, lanes `lines..width` zero. Sixteen depths at a time: sixteen lines loaded
/// (masked past `kc`, zeros past `lines`), transposed in registers, stored (masked to
/// `width`): the SGEMM's packing of an operand whose lines are contiguous over the depth (a
/// transposed B, a plain A), where one scattered store per value used to cost more than the
/// products. Pure data movement: the packed values are the same bits.
///
/// # Safety
///
/// The CPU must support AVX-512 F, BW and VL.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma")]
#[allow(unsafe_code)]
pub(super) unsafe fn transpose_pack(
    src: &[f32],
    ld: usize,
    lines: usize,
    kc: usize,
    dst: &mut [f32],
    stride: usize,
    width: usize,
) {
    use std::arch::x86_64::*;
    assert!(lines <= width && (1..=16).contains(&width) && kc >= 1);
    assert!(lines == 0 || src.len() >= (lines - 1) * ld + kc);
    assert!(dst.len() >= (kc - 1) * stride + width);
    let out_mask = ((1u32 << width) - 1) as __mmask16;
    let (sp, dp) = (src.as_ptr(), dst.as_mut_ptr());
    let mut p = 0;
    while p < kc {
        let depths = (kc - p).min(16);
        let in_mask = ((1u32 << depths) - 1) as __mmask16;
        // All sixteen rows loaded and all sixteen depths stored, those past `lines` and
        // `depths` with empty masks (no memory touched): loops of constant length, so the
        // block stays in registers (a loop to `lines` kept it in memory, through the stack).
        let mut r = [_mm512_setzero_ps(); 16];
        for (l, row) in r.iter_mut().enumerate() {
            let m = if l < lines { in_mask } else { 0 };
            // SAFETY: for l < lines, depths p .. p + depths ≤ kc: inside `src` (asserted);
            // masked-off lanes are not read (past `lines`, none is: the address needs no
            // allocation there, hence `wrapping_add`).
            *row = unsafe { _mm512_maskz_loadu_ps(m, sp.wrapping_add(l * ld + p)) };
        }
        let t = transpose16(r);
        for (d, col) in t.iter().enumerate() {
            let m = if d < depths { out_mask } else { 0 };
            // SAFETY: for d < depths, depth p + d < kc, lanes < width: inside `dst`
            // (asserted); past `depths` nothing is written.
            unsafe { _mm512_mask_storeu_ps(dp.wrapping_add((p + d) * stride), m, *col) };
        }
        p += depths;
    }
}

/// The transpose of a 16 × 16 block held as sixteen rows: `out[c]` lane `i` = `r[i]` lane `c`
/// (within 128-bit lanes by pairs of floats, then of doubles, then across lanes).
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma")]
fn transpose16(r: [std::arch::x86_64::__m512; 16]) -> [std::arch::x86_64::__m512; 16] {
    use std::arch::x86_64::*;
    let z = _mm512_setzero_ps();
    // t[2i], t[2i+1]: rows 2i and 2i+1 interleaved (a0 b0 a1 b1 | a2 b2 a3 b3 per 128 bits).
    let mut t = [z; 16];
    for i in 0..8 {
        t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
    // u[4g + j], 128-bit lane L: column 4L + j of rows 4g .. 4g + 4.
    let mut u = [z; 16];
    for g in 0..4 {
        let pd = |v: __m512| _mm512_castps_pd(v);
        let (t0, t1, t2, t3) = (
            pd(t[4 * g]),
            pd(t[4 * g + 1]),
            pd(t[4 * g + 2]),
            pd(t[4 * g + 3]),
        );
        u[4 * g] = _mm512_castpd_ps(_mm512_unpacklo_pd(t0, t2));
        u[4 * g + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(t0, t2));
        u[4 * g + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(t1, t3));
        u[4 * g + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(t1, t3));
    }
    // Column 4L + j = lane L of u[j], u[4 + j], u[8 + j], u[12 + j], in that order.
    let mut out = [z; 16];
    for j in 0..4 {
        let lo01 = _mm512_shuffle_f32x4::<0x44>(u[j], u[4 + j]);
        let hi01 = _mm512_shuffle_f32x4::<0xEE>(u[j], u[4 + j]);
        let lo23 = _mm512_shuffle_f32x4::<0x44>(u[8 + j], u[12 + j]);
        let hi23 = _mm512_shuffle_f32x4::<0xEE>(u[8 + j], u[12 + j]);
        out[j] = _mm512_shuffle_f32x4::<0x88>(lo01, lo23);
        out[4 + j] = _mm512_shuffle_f32x4::<0xDD>(lo01, lo23);
        out[8 + j] = _mm512_shuffle_f32x4::<0x88>(hi01, hi23);
        out[12 + j] = _mm512_shuffle_f32x4::<0xDD>(hi01, hi23);
    }
    out
}

/// [`transpose_pack`] with AVX2: `lines ≤ 8` lines, `width ≤ 8` lanes per depth, eight depths
/// at a time through an 8 × 8 register transpose (masked loads past `kc`, zeros past `lines`,
/// masked stores to `width` lanes). The same packed values, bit for bit.
///
/// # Safety
///
/// The CPU must support AVX2.
#[target_feature(enable = "avx2,fma")]
#[allow(unsafe_code)]
pub(super) unsafe fn transpose_pack8(
    src: &[f32],
    ld: usize,
    lines: usize,
    kc: usize,
    dst: &mut [f32],
    stride: usize,
    width: usize,
) {
    use std::arch::x86_64::*;
    assert!(lines <= width && (1..=8).contains(&width) && kc >= 1);
    assert!(lines == 0 || src.len() >= (lines - 1) * ld + kc);
    assert!(dst.len() >= (kc - 1) * stride + width);
    // Lane i of a mask is on when i < n (the sign bit of each 32-bit lane).
    let mask = |n: usize| {
        let idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
        _mm256_cmpgt_epi32(_mm256_set1_epi32(n as i32), idx)
    };
    let out_mask = mask(width);
    let (sp, dp) = (src.as_ptr(), dst.as_mut_ptr());
    let mut p = 0;
    while p < kc {
        let depths = (kc - p).min(8);
        let in_mask = mask(depths);
        let mut r = [_mm256_setzero_ps(); 8];
        for (l, row) in r.iter_mut().enumerate().take(lines) {
            // SAFETY: line l < lines, depths p .. p + depths ≤ kc: inside `src` (asserted);
            // masked-off lanes are not read.
            *row = unsafe { _mm256_maskload_ps(sp.add(l * ld + p), in_mask) };
        }
        let t = transpose8(r);
        for (d, col) in t.iter().enumerate().take(depths) {
            // SAFETY: depth p + d < kc, lanes < width: inside `dst` (asserted).
            unsafe { _mm256_maskstore_ps(dp.add((p + d) * stride), out_mask, *col) };
        }
        p += depths;
    }
}

/// The transpose of an 8 × 8 block held as eight rows: `out[c]` lane `i` = `r[i]` lane `c`.
#[target_feature(enable = "avx2,fma")]
fn transpose8(r: [std::arch::x86_64::__m256; 8]) -> [std::arch::x86_64::__m256; 8] {
    use std::arch::x86_64::*;
    // t[2i], t[2i+1]: rows 2i and 2i+1 interleaved within each 128-bit half.
    let mut t = [_mm256_setzero_ps(); 8];
    for i in 0..4 {
        t[2 * i] = _mm256_unpacklo_ps(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm256_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
    // u[4g + j], half H: column 4H + j of rows 4g .. 4g + 4.
    let mut u = [_mm256_setzero_ps(); 8];
    for g in 0..2 {
        let (t0, t1, t2, t3) = (t[4 * g], t[4 * g + 1], t[4 * g + 2], t[4 * g + 3]);
        u[4 * g] = _mm256_shuffle_ps::<0x44>(t0, t2);
        u[4 * g + 1] = _mm256_shuffle_ps::<0xEE>(t0, t2);
        u[4 * g + 2] = _mm256_shuffle_ps::<0x44>(t1, t3);
        u[4 * g + 3] = _mm256_shuffle_ps::<0xEE>(t1, t3);
    }
    let mut out = [_mm256_setzero_ps(); 8];
    for j in 0..4 {
        out[j] = _mm256_permute2f128_ps::<0x20>(u[j], u[4 + j]);
        out[4 + j] = _mm256_permute2f128_ps::<0x31>(u[j], u[4 + j]);
    }
    out
}

/// Packs B's panels for the AVX-512 product from an operand read through offsets (`Unfolded`):
/// column `line[j]`, depth `depth[p]` is `src[depth[p] + line[j]]`; panel `q` (columns `32q
/// ..`), depth `p`, lane `l` at `dst[(q · kc + p) · 32 + l]`, lanes past the columns zero
/// (`kc = depth.len()`). Sixteen values a gather. Pure data movement: the values
/// `pack_panels` packs from the unfolded matrix.
///
/// # Safety
///
/// The CPU must support AVX-512 F, BW and VL; every `depth[p] + line[j]` must be a
/// non-negative index into `src`.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma")]
#[allow(unsafe_code)]
pub(super) unsafe fn gather_pack(src: &[f32], depth: &[i32], line: &[i32], dst: &mut [f32]) {
    use std::arch::x86_64::*;
    let (kc, n) = (depth.len(), line.len());
    assert!(dst.len() >= n.div_ceil(NR512) * kc * NR512);
    let zero = _mm512_setzero_ps();
    for q in 0..n.div_ceil(NR512) {
        let panel = &mut dst[q * kc * NR512..(q + 1) * kc * NR512];
        for half in 0..2 {
            let l0 = q * NR512 + half * 16;
            let lanes = n.saturating_sub(l0).min(16);
            let mask = ((1u32 << lanes) - 1) as __mmask16;
            let base = panel.as_mut_ptr().wrapping_add(half * 16);
            let out = |p: usize| base.wrapping_add(p * NR512);
            // Columns whose offsets make at most four runs of consecutive values (a
            // convolution's pixels: one or two image rows; its kernel's columns: runs of
            // `k`) are read by masked loads, cheaper than a gather: run r's lanes `from_r ..
            // to_r` read src[d + line[from_r] + (l − from_r)], loaded from a base `from_r`
            // floats before its first value (those lanes masked off).
            let cols = &line[l0.min(n)..l0.min(n) + lanes];
            let mut runs = [(0 as __mmask16, 0usize); 4];
            let mut count = 0;
            let mut from = 0;
            for l in 1..=lanes {
                if l == lanes || cols[l] != cols[l - 1].wrapping_add(1) {
                    if count < runs.len() {
                        let m = ((1u32 << l) - (1u32 << from)) as __mmask16;
                        runs[count] = (m, (cols[from] as usize).wrapping_sub(from));
                    }
                    count += 1;
                    from = l;
                }
            }
            if lanes > 0 && count <= 2 {
                // SAFETY: `runs` as described, from `line` (the caller's contract).
                unsafe { pack_runs::<2>(src, depth, &runs, out) };
                continue;
            }
            if lanes > 0 && count <= 4 {
                // SAFETY: as above.
                unsafe { pack_runs::<4>(src, depth, &runs, out) };
                continue;
            }
            // SAFETY: the lanes read are line[l0 .. l0 + lanes], inside `line`; with none
            // read, the address is not used.
            let idx =
                unsafe { _mm512_maskz_loadu_epi32(mask, line.as_ptr().wrapping_add(l0).cast()) };
            for (p, &d) in depth.iter().enumerate() {
                // SAFETY: each lane read is src[d + line[j]], inside `src` (the caller's
                // contract); masked lanes are not read. The store as above.
                unsafe {
                    let v = _mm512_mask_i32gather_ps::<4>(
                        zero,
                        mask,
                        idx,
                        src.as_ptr().add(d as usize),
                    );
                    _mm512_storeu_ps(out(p), v);
                }
            }
        }
    }
}

/// `gather_pack`'s loads for one half panel whose columns make at most `R` runs of
/// consecutive offsets: depth `p`'s sixteen lanes, each run's by one masked load (runs past
/// the last have empty masks), stored at `out(p)`.
///
/// # Safety
///
/// The CPU must support AVX-512 F; for every depth `d` and run `(mask, base)`, each lane `l`
/// of `mask` must make `d + base + l` an index into `src`; `out(p)` must point to sixteen
/// writable floats for every `p < depth.len()`.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma")]
#[allow(unsafe_code)]
#[inline]
unsafe fn pack_runs<const R: usize>(
    src: &[f32],
    depth: &[i32],
    runs: &[(std::arch::x86_64::__mmask16, usize); 4],
    out: impl Fn(usize) -> *mut f32,
) {
    use std::arch::x86_64::*;
    for (p, &d) in depth.iter().enumerate() {
        let at = src.as_ptr().wrapping_add(d as usize);
        let mut v = _mm512_setzero_ps();
        for &(mask, base) in &runs[..R] {
            // SAFETY: the lanes read are inside `src` (this function's contract); masked
            // lanes are not read, and `wrapping_add` makes no claim about their addresses.
            v = unsafe { _mm512_mask_loadu_ps(v, mask, at.wrapping_add(base)) };
        }
        // SAFETY: sixteen writable floats (this function's contract).
        unsafe { _mm512_storeu_ps(out(p), v) };
    }
}

/// [`gather_pack`] for the AVX2 product's panels of [`NR`] columns (`dst[(q · kc + p) · 16 +
/// l]`), eight columns at a time: one or two runs of consecutive offsets by masked loads,
/// more by a gather. The same values.
///
/// # Safety
///
/// The CPU must support AVX2; every `depth[p] + line[j]` must be a non-negative index into
/// `src`.
#[target_feature(enable = "avx2,fma")]
#[allow(unsafe_code)]
pub(super) unsafe fn gather_pack8(src: &[f32], depth: &[i32], line: &[i32], dst: &mut [f32]) {
    use std::arch::x86_64::*;
    let (kc, n) = (depth.len(), line.len());
    assert!(dst.len() >= n.div_ceil(NR) * kc * NR);
    // Lane i of a mask is on when from ≤ i < to (the sign bit of each 32-bit lane).
    let lanes = |from: usize, to: usize| {
        let idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
        let above = _mm256_cmpgt_epi32(idx, _mm256_set1_epi32(from as i32 - 1));
        _mm256_and_si256(above, _mm256_cmpgt_epi32(_mm256_set1_epi32(to as i32), idx))
    };
    for q in 0..n.div_ceil(NR) {
        let panel = &mut dst[q * kc * NR..(q + 1) * kc * NR];
        for half in 0..2 {
            let l0 = q * NR + half * 8;
            let count = n.saturating_sub(l0).min(8);
            let base = panel.as_mut_ptr().wrapping_add(half * 8);
            let out = |p: usize| base.wrapping_add(p * NR);
            let cols = &line[l0.min(n)..l0.min(n) + count];
            let mut breaks = cols
                .windows(2)
                .enumerate()
                .filter(|(_, p)| p[1] != p[0].wrapping_add(1));
            let split = breaks.next().map_or(count, |(i, _)| i + 1);
            if count > 0 && breaks.next().is_none() {
                // Run 1 is lanes 0..split, run 2 split..count, each loaded from a base
                // `from` floats before its first value (those lanes masked off).
                let (first, second) = (lanes(0, split), lanes(split, count));
                let (o1, o2) = (cols[0] as usize, cols[split.min(count - 1)] as usize);
                for (p, &d) in depth.iter().enumerate() {
                    let at = src.as_ptr().wrapping_add(d as usize);
                    // SAFETY: each lane read is src[d + line[j]], inside `src` (the caller's
                    // contract); masked lanes are not read, and `wrapping_*` makes no claim
                    // about their addresses. The store is lanes 8·half .. 8·half + 8 of depth
                    // p of panel q.
                    unsafe {
                        let v = _mm256_maskload_ps(at.wrapping_add(o1), first);
                        let w = _mm256_maskload_ps(at.wrapping_add(o2).wrapping_sub(split), second);
                        let v = _mm256_blendv_ps(v, w, _mm256_castsi256_ps(second));
                        _mm256_storeu_ps(out(p), v);
                    }
                }
                continue;
            }
            let mask = lanes(0, count);
            // SAFETY: the lanes read are line[l0 .. l0 + count], inside `line`; with none
            // read, the address is not used.
            let idx = unsafe { _mm256_maskload_epi32(line.as_ptr().wrapping_add(l0), mask) };
            for (p, &d) in depth.iter().enumerate() {
                // SAFETY: each lane read is src[d + line[j]], inside `src` (the caller's
                // contract); masked lanes are not read. The store as above.
                unsafe {
                    let v = _mm256_mask_i32gather_ps::<4>(
                        _mm256_setzero_ps(),
                        src.as_ptr().add(d as usize),
                        idx,
                        _mm256_castsi256_ps(mask),
                    );
                    _mm256_storeu_ps(out(p), v);
                }
            }
        }
    }
}
