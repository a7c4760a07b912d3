//! Matrix products on row-major slices: `C (m×n) = op(A) · op(B)`, or `C += op(A) · op(B)`.
//!
//! On x86-64 CPUs with AVX2 and FMA (checked at run time: `crate::cpu`) this is our own
//! single-threaded, BLIS-style packed SGEMM: `op(B)` is packed into panels of [`NR`] (AVX2) or
//! [`NR512`] (AVX-512) columns and `op(A)` into panels of rows, both in buffers the caller
//! owns ([`Pack`], part of every network's workspace), so a training round allocates nothing;
//! a register-tile micro-kernel of FMAs does the arithmetic: 6 × 16 with AVX2's 16 registers,
//! up to 12 × 32 with AVX-512's 32 (its row count chosen per block so that 20 or 25 rows make
//! two or three even tiles, not a slow one of 2 or 1), writing edge columns through masks.
//! Both kernels sum each value's products in depth order, in blocks of [`KC`] added in order,
//! so they give the same bits. Elsewhere, `ndarray` + `matrixmultiply`'s packed SGEMM (which
//! allocates its packing buffers on every call).
//!
//! Why our own: `matrixmultiply` and `gemm` both allocate per call, and the engine's
//! steady-state rounds must not; packing into our buffers also lets the kernel pick block
//! sizes for the engine's shapes (at most a few thousand rows and columns). docs/benchmarks-history.md
//! compares the engine's rounds with this kernel and with `matrixmultiply`.

#[cfg(byzadam_x86)]
mod x86;

use crate::cpu::Level;
use ndarray::linalg::general_mat_mul;
use ndarray::{ArrayView2, ArrayViewMut2};

/// Rows of the AVX2 register tile (and of a packed A panel).
pub(crate) const MR: usize = 6;
/// Columns of the AVX2 register tile (and of a packed B panel): two AVX vectors.
pub(crate) const NR: usize = 16;
/// Most rows of the AVX-512 register tile (24 accumulators of its 32 registers).
#[cfg_attr(not(byzadam_x86), allow(dead_code))]
pub(crate) const MR512: usize = 12;
/// Columns of the AVX-512 register tile (and of its packed B panels): two AVX-512 vectors.
#[cfg_attr(not(byzadam_x86), allow(dead_code))]
pub(crate) const NR512: usize = 32;
/// Most rows of [`gathered`]'s AVX-512 tile (one vector of [`NR`] lanes per row).
pub(crate) const MG512: usize = 24;
/// Depth of one packed block (A panel `MR × KC` in L1 beside a B panel `KC × NR`). The same at
/// every level: it fixes the order in which each value's products are summed.
const KC: usize = 256;
/// Rows of A packed at once (`MC × KC` floats, 72 KiB: fits L2); a multiple of [`MR`] and of
/// [`MR512`].
const MC: usize = 72;
/// Columns of B packed at once (`KC × NC` floats, 1 MiB); a multiple of [`NR`] and [`NR512`].
const NC: usize = 1024;

/// Packing buffers for [`gemm`], allocated once (fixed sizes, whatever the shapes), and the
/// level its products run at; empty where the packed product cannot run.
#[derive(Debug, Clone)]
#[cfg_attr(not(byzadam_x86), allow(dead_code))]
pub struct Pack {
    level: Level,
    a: Vec<f32>,
    b: Vec<f32>,
}

impl Default for Pack {
    /// Buffers for the highest level this CPU runs, set to run at [`crate::cpu::level`].
    fn default() -> Self {
        let fast = crate::cpu::best() > Level::Portable;
        Self {
            level: crate::cpu::level(),
            a: vec![0.0; if fast { MC * KC } else { 0 }],
            b: vec![0.0; if fast { KC * NC } else { 0 }],
        }
    }
}

impl Pack {
    /// The level the products run at.
    pub(crate) fn level(&self) -> Level {
        self.level
    }

    /// Runs the products at `level` (checked by the caller: `crate::cpu::check`).
    pub(crate) fn set_level(&mut self, level: Level) {
        assert!(level <= crate::cpu::best(), "{level} is not available");
        self.level = level;
    }
}

/// `C (m×n) = op(A) · op(B) + beta · C`, where `op(A)` is `m×k` (`A` stored `k×m` when
/// `ta`), `op(B)` is `k×n` (`B` stored `n×k` when `tb`), at `pack`'s level. `beta` is 0 (`C`
/// is not read: it may hold anything, NaN included) or 1 (the product is added to `C`).
///
/// Panics if a slice is shorter than its shape, or if `beta` is neither 0 nor 1.
#[allow(clippy::too_many_arguments)]
pub fn gemm(
    m: usize,
    n: usize,
    k: usize,
    a: &[f32],
    ta: bool,
    b: &[f32],
    tb: bool,
    beta: f32,
    c: &mut [f32],
    pack: &mut Pack,
) {
    product(m, n, k, a, ta, b, tb, beta, c, pack, None)
}

/// `op(A)` packed once for several products with the same left operand (a layer's weights,
/// used for every image of a pass): the panels [`gemm`] packs on each call, in the order it
/// reads them. Filled by [`pack_a`], read by [`gemm_packed_a`]; empty at the portable level.
#[derive(Debug, Clone, Default)]
pub(crate) struct PackedA {
    /// The shape, transposition and level the panels were packed for.
    key: Option<(usize, usize, bool, Level)>,
    data: Vec<f32>,
}

/// Packs `op(A)` (`m×k`, `A` stored `k×m` when `ta`) for [`gemm_packed_a`] at `pack`'s level
/// (nothing to pack at the portable level).
///
/// Panics if `a` is shorter than its shape.
pub(crate) fn pack_a(m: usize, k: usize, a: &[f32], ta: bool, pack: &Pack, out: &mut PackedA) {
    assert!(a.len() >= m * k);
    out.key = Some((m, k, ta, pack.level));
    #[cfg(byzadam_x86)]
    if pack.level > Level::Portable {
        // The blocks in the order the products read them (see `off` in `packed512`/`packed`).
        let mut off = 0;
        for p0 in (0..k).step_by(KC) {
            let kc = KC.min(k - p0);
            for i0 in (0..m).step_by(MC) {
                let mc = MC.min(m - i0);
                let h = panel_rows(pack.level, mc);
                let len = mc.div_ceil(h) * kc * h;
                if out.data.len() < off + len {
                    out.data.resize(off + len, 0.0);
                }
                let dst = &mut out.data[off..off + len];
                if pack.level == Level::Avx512 {
                    // SAFETY: the level is AVX-512 only when the CPU has AVX-512 F, BW and VL,
                    // AVX2 and FMA (`Pack::set_level`).
                    #[allow(unsafe_code)]
                    unsafe {
                        pack_a512(a, ta, m, k, i0, mc, p0, kc, h, dst)
                    };
                } else {
                    pack_a256(a, ta, m, k, i0, mc, p0, kc, dst);
                }
                off += len;
            }
        }
    }
}

/// Rows of each packed A panel (and register tile) for a block of `mc` rows at `level`:
/// with AVX-512 the block cut into the fewest even tiles of at most [`MR512`] rows (20 rows:
/// two of 10; 25: 9, 9, 7), with AVX2 [`MR`].
#[cfg(byzadam_x86)]
#[inline(always)]
fn panel_rows(level: Level, mc: usize) -> usize {
    if level == Level::Avx512 {
        mc.div_ceil(mc.div_ceil(MR512))
    } else {
        MR
    }
}

/// [`gemm`] with `op(A)` already packed by [`pack_a`] (from the same `a`, which the portable
/// level reads instead): the same bits, without packing A again.
///
/// Panics as [`gemm`] does, or if `pre` was packed for another shape, transposition or level.
#[allow(clippy::too_many_arguments)]
pub(crate) fn gemm_packed_a(
    m: usize,
    n: usize,
    k: usize,
    a: &[f32],
    ta: bool,
    pre: &PackedA,
    b: &[f32],
    tb: bool,
    beta: f32,
    c: &mut [f32],
    pack: &mut Pack,
) {
    assert_eq!(
        pre.key,
        Some((m, k, ta, pack.level)),
        "packed for another product"
    );
    product(m, n, k, a, ta, b, tb, beta, c, pack, Some(&pre.data))
}

/// A right operand read in place through two tables of offsets: `op(B)` at depth `p`, column
/// `j` is `src[depth[p] + line[j]]`. A convolution's columns (or their transpose) are such an
/// operand of the image they unfold, so the product packs them straight from the image, with
/// no im2col buffer: the same packed values, so the same bits ([`gemm_unfolded`]).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Unfolded<'a> {
    /// The values.
    pub(crate) src: &'a [f32],
    /// Each depth's offset (at least `k` of them).
    pub(crate) depth: &'a [i32],
    /// Each column's offset (at least `n` of them).
    pub(crate) line: &'a [i32],
}

/// The right operand of the packed products.
#[cfg_attr(not(byzadam_x86), allow(dead_code))]
#[derive(Debug, Clone, Copy)]
enum Right<'a> {
    /// `B` stored row-major (`k×n`, or `n×k` when transposed).
    Matrix(&'a [f32], bool),
    /// Read through offsets.
    Unfolded(Unfolded<'a>),
}

/// Whether [`gemm_unfolded`] runs at `level` (AVX2 or AVX-512: its packing gathers).
pub(crate) fn unfolded_available(level: Level) -> bool {
    cfg!(byzadam_x86) && level > Level::Portable
}

/// `C (m×n) = op(A) · op(B) + beta · C` as [`gemm`] (or [`gemm_packed_a`] when `pre` is given)
/// with `op(B)` read through `b`'s offsets: the bits of [`gemm`] on the matrix the offsets
/// describe. AVX2 and AVX-512 only ([`unfolded_available`]).
///
/// Panics below AVX2, if an offset is negative or a pair of them falls
/// outside `b.src`, or as [`gemm`] does.
#[allow(clippy::too_many_arguments)]
pub(crate) fn gemm_unfolded(
    m: usize,
    n: usize,
    k: usize,
    a: &[f32],
    ta: bool,
    pre: Option<&PackedA>,
    b: Unfolded<'_>,
    beta: f32,
    c: &mut [f32],
    pack: &mut Pack,
) {
    assert!(
        unfolded_available(pack.level),
        "offsets are read at AVX2 or AVX-512 only"
    );
    assert!(a.len() >= m * k && c.len() >= m * n);
    assert!(b.depth.len() >= k && b.line.len() >= n);
    assert!(beta == 0.0 || beta == 1.0, "beta is 0 or 1, not {beta}");
    let span = |o: &[i32]| {
        o.iter()
            .try_fold(0i64, |most, &v| (v >= 0).then_some(most.max(v as i64)))
    };
    let (d, l) = (span(&b.depth[..k]), span(&b.line[..n]));
    assert!(
        matches!((d, l), (Some(d), Some(l)) if (k == 0 || n == 0 || d + l < b.src.len() as i64)),
        "offsets outside the operand"
    );
    if let Some(pre) = pre {
        assert_eq!(
            pre.key,
            Some((m, k, ta, pack.level)),
            "packed for another product"
        );
    }
    #[cfg(byzadam_x86)]
    if m > 0 && n > 0 {
        let (right, pre) = (Right::Unfolded(b), pre.map(|p| &p.data[..]));
        if pack.level == Level::Avx512 {
            // SAFETY: the level is AVX-512 only when the CPU has AVX-512 F, BW and VL, AVX2
            // and FMA (`Pack::set_level`); the offsets were checked above.
            #[allow(unsafe_code)]
            unsafe {
                packed512(m, n, k, a, ta, right, beta, c, pack, pre)
            };
        } else {
            packed(m, n, k, a, ta, right, beta, c, pack, pre);
        }
    }
}

#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn product(
    m: usize,
    n: usize,
    k: usize,
    a: &[f32],
    ta: bool,
    b: &[f32],
    tb: bool,
    beta: f32,
    c: &mut [f32],
    pack: &mut Pack,
    pre: Option<&[f32]>,
) {
    assert!(a.len() >= m * k && b.len() >= k * n && c.len() >= m * n);
    assert!(beta == 0.0 || beta == 1.0, "beta is 0 or 1, not {beta}");
    if m == 0 || n == 0 {
        return;
    }
    #[cfg(byzadam_x86)]
    match pack.level {
        Level::Avx512 => {
            // SAFETY: a pack's level is AVX-512 only when the CPU has AVX-512 F, BW and VL,
            // AVX2 and FMA (`Pack::set_level`, `crate::cpu::level`).
            #[allow(unsafe_code)]
            unsafe {
                packed512(m, n, k, a, ta, Right::Matrix(b, tb), beta, c, pack, pre)
            };
            return;
        }
        Level::Avx2 => {
            packed(m, n, k, a, ta, Right::Matrix(b, tb), beta, c, pack, pre);
            return;
        }
        Level::Portable => {}
    }
    let _ = (pack, pre);
    library(m, n, k, a, ta, b, tb, beta, c);
}

/// The same product through `ndarray` / `matrixmultiply` (the portable path, and the
/// independent twin the tests compare the packed kernel with).
#[allow(clippy::too_many_arguments)]
pub(crate) fn library(
    m: usize,
    n: usize,
    k: usize,
    a: &[f32],
    ta: bool,
    b: &[f32],
    tb: bool,
    beta: f32,
    c: &mut [f32],
) {
    let a = if ta {
        ArrayView2::from_shape((k, m), &a[..k * m])
            .expect("A's shape")
            .reversed_axes()
    } else {
        ArrayView2::from_shape((m, k), &a[..m * k]).expect("A's shape")
    };
    let b = if tb {
        ArrayView2::from_shape((n, k), &b[..n * k])
            .expect("B's shape")
            .reversed_axes()
    } else {
        ArrayView2::from_shape((k, n), &b[..k * n]).expect("B's shape")
    };
    let mut c = ArrayViewMut2::from_shape((m, n), &mut c[..m * n]).expect("C's shape");
    general_mat_mul(1.0, &a, &b, beta, &mut c);
}

/// Packs the `width` lines `x0..x0+width` (rows of op(A) of a transposed A, or columns of
/// op(B) of a plain B: line `x` at depth `p` is `src[p * ld + x]`) over depths `p0..p0+kc`
/// into panels of `W` lines: panel `q`, depth `p`, line `l` at `dst[(q * kc + p) * W + l]`;
/// lines past `width` are zeros. (Operands whose lines run along the depth are packed by the
/// transposing packers of `x86.rs`.)
#[cfg(byzadam_x86)]
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn pack_panels<const W: usize>(
    src: &[f32],
    ld: usize,
    x0: usize,
    width: usize,
    p0: usize,
    kc: usize,
    dst: &mut [f32],
) {
    for q in 0..width.div_ceil(W) {
        let panel = &mut dst[q * kc * W..(q + 1) * kc * W];
        let lines = W.min(width - q * W);
        let l0 = x0 + q * W;
        if lines == W {
            // For each depth the panel's lines are contiguous: copied as a fixed-size array
            // (a call to memcpy per 6 or 16 floats costs more than the copy).
            for (p, d) in panel.chunks_exact_mut(W).enumerate() {
                let at = (p0 + p) * ld + l0;
                let line: &[f32; W] = src[at..at + W].try_into().expect("W wide");
                d.copy_from_slice(line);
            }
        } else {
            for (p, d) in panel.chunks_exact_mut(W).enumerate() {
                let at = (p0 + p) * ld + l0;
                // An inline loop: a call to memcpy per depth costs more than the copy.
                for (v, &x) in d[..lines].iter_mut().zip(&src[at..at + lines]) {
                    *v = x;
                }
                d[lines..].fill(0.0);
            }
        }
    }
}

/// Packs the `width` rows `x0..` of a transposed A (row `x` at depth `p` is
/// `src[p * ld + x]`) over depths `p0..p0+kc` into panels of `h` rows, `h` known only at run
/// time (the AVX-512 path's A panels, `h ≤ MR512`): panel `q`, depth `p`, row `l` at
/// `dst[(q * kc + p) * h + l]`; rows past `width` are zeros.
#[cfg(byzadam_x86)]
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn pack_rows(
    src: &[f32],
    ld: usize,
    x0: usize,
    width: usize,
    p0: usize,
    kc: usize,
    h: usize,
    dst: &mut [f32],
) {
    for q in 0..width.div_ceil(h) {
        let panel = &mut dst[q * kc * h..(q + 1) * kc * h];
        let lines = h.min(width - q * h);
        let l0 = x0 + q * h;
        for (p, d) in panel.chunks_exact_mut(h).enumerate() {
            let at = (p0 + p) * ld + l0;
            // An inline loop: a call to memcpy per row of up to 12 floats costs more.
            for (v, &x) in d[..lines].iter_mut().zip(&src[at..at + lines]) {
                *v = x;
            }
            d[lines..].fill(0.0);
        }
    }
}

/// Packs A's rows `i0..i0+mc` over depths `p0..p0+kc` into the AVX-512 path's panels of `h`
/// rows (`dst[(q * kc + p) * h + l]`).
///
/// # Safety
///
/// The CPU must support AVX-512 F, BW and VL, AVX2 and FMA.
#[cfg(byzadam_x86)]
#[allow(clippy::too_many_arguments, unsafe_code)]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma")]
unsafe fn pack_a512(
    a: &[f32],
    ta: bool,
    m: usize,
    k: usize,
    i0: usize,
    mc: usize,
    p0: usize,
    kc: usize,
    h: usize,
    dst: &mut [f32],
) {
    if ta {
        pack_rows(a, m, i0, mc, p0, kc, h, dst);
    } else {
        // Rows of A contiguous over the depth: transposed, a panel at a time.
        for q in 0..mc.div_ceil(h) {
            let lines = h.min(mc - q * h);
            let from = &a[(i0 + q * h) * k + p0..];
            let panel = &mut dst[q * kc * h..(q + 1) * kc * h];
            // SAFETY: the CPU has AVX-512 (this function's contract); the slices are checked
            // by `transpose_pack`.
            unsafe { x86::transpose_pack(from, k, lines, kc, panel, h, h) };
        }
    }
}

/// Packs A's rows `i0..i0+mc` over depths `p0..p0+kc` into the AVX2 path's panels of [`MR`]
/// rows (AVX2 and FMA only: see [`gemm`]).
#[cfg(byzadam_x86)]
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn pack_a256(
    a: &[f32],
    ta: bool,
    m: usize,
    k: usize,
    i0: usize,
    mc: usize,
    p0: usize,
    kc: usize,
    dst: &mut [f32],
) {
    if ta {
        pack_panels::<MR>(a, m, i0, mc, p0, kc, dst);
    } else {
        // Rows of A contiguous over the depth: transposed, a panel at a time.
        for q in 0..mc.div_ceil(MR) {
            let lines = MR.min(mc - q * MR);
            let from = &a[(i0 + q * MR) * k + p0..];
            let panel = &mut dst[q * kc * MR..(q + 1) * kc * MR];
            // SAFETY: this runs only when the CPU has AVX2 and FMA (`gemm`, `pack_a`); the
            // slices are checked by `transpose_pack8`.
            #[allow(unsafe_code)]
            unsafe {
                x86::transpose_pack8(from, k, lines, kc, panel, MR, MR)
            };
        }
    }
}

/// The packed product with the AVX-512 micro-kernel (see [`gemm`]). Each block of up to
/// [`MC`] rows is cut into `t = ⌈rows / MR512⌉` tiles of `h = ⌈rows / t⌉` rows (20 rows: two
/// of 10; 25: three of 9, 9 and 7), and the kernel writes the columns past `n` through masks,
/// so there is no edge tile to copy. Same sums in the same order as [`packed`].
///
/// # Safety
///
/// The CPU must support AVX-512 F, BW and VL, AVX2 and FMA.
#[cfg(byzadam_x86)]
#[allow(clippy::too_many_arguments, unsafe_code)]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma")]
unsafe fn packed512(
    m: usize,
    n: usize,
    k: usize,
    a: &[f32],
    ta: bool,
    right: Right<'_>,
    beta: f32,
    c: &mut [f32],
    pack: &mut Pack,
    pre: Option<&[f32]>,
) {
    if k == 0 {
        for v in &mut c[..m * n] {
            *v = if beta == 0.0 { 0.0 } else { beta * *v };
        }
        return;
    }
    for j0 in (0..n).step_by(NC) {
        let nc = NC.min(n - j0);
        let mut off = 0;
        for p0 in (0..k).step_by(KC) {
            let kc = KC.min(k - p0);
            let add = beta != 0.0 || p0 > 0;
            match right {
                Right::Unfolded(o) => {
                    // SAFETY: the CPU has AVX-512 (this function's contract); every offset
                    // pair is inside `o.src` (checked by `gemm_unfolded`).
                    unsafe {
                        x86::gather_pack(
                            o.src,
                            &o.depth[p0..p0 + kc],
                            &o.line[j0..j0 + nc],
                            &mut pack.b,
                        )
                    };
                }
                Right::Matrix(b, true) => {
                    // Lines of op(B) contiguous over the depth: transposed sixteen at a time.
                    for q in 0..nc.div_ceil(NR512) {
                        let panel = &mut pack.b[q * kc * NR512..(q + 1) * kc * NR512];
                        for half in 0..2 {
                            let l0 = j0 + q * NR512 + half * 16;
                            let lines = (nc + j0).saturating_sub(l0).min(16);
                            let from = &b[(l0 * k + p0).min(b.len())..];
                            // SAFETY: the CPU has AVX-512 (this function's contract); the slices
                            // are checked by `transpose_pack`.
                            unsafe {
                                x86::transpose_pack(
                                    from,
                                    k,
                                    lines,
                                    kc,
                                    &mut panel[half * 16..],
                                    NR512,
                                    16,
                                )
                            };
                        }
                    }
                }
                Right::Matrix(b, false) => pack_panels::<NR512>(b, n, j0, nc, p0, kc, &mut pack.b),
            }
            for i0 in (0..m).step_by(MC) {
                let mc = MC.min(m - i0);
                let h = panel_rows(Level::Avx512, mc);
                let len = mc.div_ceil(h) * kc * h;
                let ablock: &[f32] = match pre {
                    Some(pre) => &pre[off..off + len],
                    None => {
                        // SAFETY: as above.
                        unsafe { pack_a512(a, ta, m, k, i0, mc, p0, kc, h, &mut pack.a) };
                        &pack.a[..len]
                    }
                };
                off += len;
                for qb in 0..nc.div_ceil(NR512) {
                    let bp = &pack.b[qb * kc * NR512..(qb + 1) * kc * NR512];
                    let cols = NR512.min(nc - qb * NR512);
                    for qa in 0..mc.div_ceil(h) {
                        let ap = &ablock[qa * kc * h..(qa + 1) * kc * h];
                        let rows = h.min(mc - qa * h);
                        let (i, j) = (i0 + qa * h, j0 + qb * NR512);
                        let cs = &mut c[i * n + j..(i + rows - 1) * n + j + cols];
                        // SAFETY: the CPU has AVX-512 F, BW, VL and FMA (this function's
                        // contract); the panels hold `kc` depths of `h` and NR512 values, and
                        // `cs` holds `rows` rows of stride n, `cols` wide (sliced above).
                        unsafe {
                            macro_rules! tile {
                                ($($r:literal)*) => {
                                    match rows {
                                        $($r => x86::kernel512::<$r>(kc, ap, h, bp, add, cs, n, cols),)*
                                        _ => unreachable!("a tile has 1 to MR512 rows"),
                                    }
                                };
                            }
                            tile!(1 2 3 4 5 6 7 8 9 10 11 12)
                        }
                    }
                }
            }
        }
    }
}

/// The packed product (AVX2 + FMA only: see [`gemm`]).
#[cfg(byzadam_x86)]
#[allow(clippy::too_many_arguments)]
fn packed(
    m: usize,
    n: usize,
    k: usize,
    a: &[f32],
    ta: bool,
    right: Right<'_>,
    beta: f32,
    c: &mut [f32],
    pack: &mut Pack,
    pre: Option<&[f32]>,
) {
    if k == 0 {
        for v in &mut c[..m * n] {
            *v = if beta == 0.0 { 0.0 } else { beta * *v };
        }
        return;
    }
    let mut tile = [0f32; MR * NR];
    for j0 in (0..n).step_by(NC) {
        let nc = NC.min(n - j0);
        let mut off = 0;
        for p0 in (0..k).step_by(KC) {
            let kc = KC.min(k - p0);
            let beta = if p0 == 0 { beta } else { 1.0 };
            // op(B)[p0.., j0..]: columns of op(B) are rows of a transposed B.
            match right {
                Right::Unfolded(o) => {
                    // SAFETY: this runs only when the CPU has AVX2 and FMA (`gemm`,
                    // `gemm_unfolded`); every offset pair is inside `o.src` (checked by
                    // `gemm_unfolded`).
                    #[allow(unsafe_code)]
                    unsafe {
                        x86::gather_pack8(
                            o.src,
                            &o.depth[p0..p0 + kc],
                            &o.line[j0..j0 + nc],
                            &mut pack.b,
                        )
                    };
                }
                Right::Matrix(b, true) => {
                    // Lines of op(B) contiguous over the depth: transposed eight at a time.
                    for q in 0..nc.div_ceil(NR) {
                        let panel = &mut pack.b[q * kc * NR..(q + 1) * kc * NR];
                        for half in 0..2 {
                            let l0 = j0 + q * NR + half * 8;
                            let lines = (nc + j0).saturating_sub(l0).min(8);
                            let from = &b[(l0 * k + p0).min(b.len())..];
                            // SAFETY: `gemm` runs this only when the CPU has AVX2 and FMA; the
                            // slices are checked by `transpose_pack8`.
                            #[allow(unsafe_code)]
                            unsafe {
                                x86::transpose_pack8(
                                    from,
                                    k,
                                    lines,
                                    kc,
                                    &mut panel[half * 8..],
                                    NR,
                                    8,
                                )
                            };
                        }
                    }
                }
                Right::Matrix(b, false) => pack_panels::<NR>(b, n, j0, nc, p0, kc, &mut pack.b),
            }
            for i0 in (0..m).step_by(MC) {
                let mc = MC.min(m - i0);
                let len = mc.div_ceil(MR) * kc * MR;
                let ablock: &[f32] = match pre {
                    Some(pre) => &pre[off..off + len],
                    None => {
                        pack_a256(a, ta, m, k, i0, mc, p0, kc, &mut pack.a);
                        &pack.a[..len]
                    }
                };
                off += len;
                for qb in 0..nc.div_ceil(NR) {
                    let bp = &pack.b[qb * kc * NR..(qb + 1) * kc * NR];
                    let cols = NR.min(nc - qb * NR);
                    for qa in 0..mc.div_ceil(MR) {
                        let ap = &ablock[qa * kc * MR..(qa + 1) * kc * MR];
                        let rows = MR.min(mc - qa * MR);
                        let (i, j) = (i0 + qa * MR, j0 + qb * NR);
                        if rows == MR && cols == NR {
                            // A whole tile: the kernel updates C in place.
                            let cs = &mut c[i * n + j..(i + MR - 1) * n + j + NR];
                            // SAFETY: `gemm` calls this only when the CPU has AVX2 and FMA;
                            // the panels are `kc × MR` and `kc × NR` floats (sliced above),
                            // and `cs` holds MR rows of stride n, NR wide.
                            #[allow(unsafe_code)]
                            unsafe {
                                x86::kernel::<MR>(kc, ap, bp, beta, cs, n)
                            };
                            continue;
                        }
                        // An edge tile: its `rows` rows computed into `tile` (fewer rows, fewer
                        // FMAs: m = 20 or 25 is common here), then the valid part added.
                        // SAFETY: as above, with `tile` as an MR × NR matrix of stride NR.
                        #[allow(unsafe_code)]
                        unsafe {
                            match rows {
                                1 => x86::kernel::<1>(kc, ap, bp, 0.0, &mut tile, NR),
                                2 => x86::kernel::<2>(kc, ap, bp, 0.0, &mut tile, NR),
                                3 => x86::kernel::<3>(kc, ap, bp, 0.0, &mut tile, NR),
                                4 => x86::kernel::<4>(kc, ap, bp, 0.0, &mut tile, NR),
                                5 => x86::kernel::<5>(kc, ap, bp, 0.0, &mut tile, NR),
                                _ => x86::kernel::<MR>(kc, ap, bp, 0.0, &mut tile, NR),
                            }
                        };
                        for r in 0..rows {
                            let dst = &mut c[(i + r) * n + j..(i + r) * n + j + cols];
                            let src = &tile[r * NR..r * NR + cols];
                            if beta == 0.0 {
                                dst.copy_from_slice(src);
                            } else {
                                for (d, &s) in dst.iter_mut().zip(src) {
                                    *d = beta * *d + s;
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// The offsets [`gathered`] reads B at, with their largest one (found once, so that each call
/// checks its reads with one comparison).
#[derive(Debug, Clone, Default)]
pub(crate) struct Offsets {
    offs: Vec<u32>,
    max: usize,
}

impl Offsets {
    /// Panics if `offs` is empty.
    pub(crate) fn new(offs: Vec<u32>) -> Self {
        let max = *offs.iter().max().expect("at least one depth") as usize;
        Self { offs, max }
    }

    /// The depth of the product.
    pub(crate) fn len(&self) -> usize {
        self.offs.len()
    }
}

/// Whether [`gathered`] can run at `level` (it has no portable build: callers take another
/// path).
pub(crate) fn gathered_available(level: Level) -> bool {
    level > Level::Portable
}

/// The most rows [`gathered`] takes at `level`.
pub(crate) fn gathered_rows(level: Level) -> usize {
    if level == Level::Avx512 {
        MG512
    } else {
        MR
    }
}

/// One register tile of a product whose B operand is gathered rather than packed:
/// `rows ≤ gathered_rows(level)` rows of [`NR`] values,
/// `C[r] = act(Σ_p a[p·rows + r] · x[base + offs[p] ..][..NR] + bias[r])`, row `r` of C at
/// `c[r·ldc..][..NR]`, `act` a ReLU when `relu` (no bias added when `bias` is `None`). `x`
/// holds [`NR`] values (one per lane) at each offset, so a convolution over a batch stored
/// lane-innermost reads its input in place, with no im2col (`trunk.rs`). The depth sum is
/// split into blocks of [`KC`] and the blocks added in order, exactly as [`gemm`] sums them,
/// so each value has the bits an im2col + [`gemm`] + bias pass gives, at either level.
///
/// Panics if a slice is too short for the shapes, if `rows` is out of range, or if
/// [`gathered_available`] is false for `level` or `level` is above what the CPU runs.
#[allow(clippy::too_many_arguments)]
pub(crate) fn gathered(
    level: Level,
    rows: usize,
    a: &[f32],
    x: &[f32],
    base: usize,
    offs: &Offsets,
    bias: Option<&[f32]>,
    relu: bool,
    c: &mut [f32],
    ldc: usize,
) {
    let k = offs.len();
    assert!((1..=gathered_rows(level)).contains(&rows) && k >= 1);
    assert!(a.len() >= k * rows && c.len() >= (rows - 1) * ldc + NR);
    assert!(bias.is_none_or(|b| b.len() >= rows));
    assert!(x.len() >= base + offs.max + NR);
    let offs = &offs.offs[..];
    assert!(
        gathered_available(level) && level <= crate::cpu::best(),
        "the gathered kernel needs AVX2 and FMA, or AVX-512, and a CPU that has them"
    );
    #[cfg(byzadam_x86)]
    // SAFETY: the CPU has what `level` needs (asserted); every read of x is below
    // `base + max(offs) + NR`, inside x (asserted), and the other slices are long enough for
    // `rows`, `k` and `ldc` (asserted).
    #[allow(unsafe_code)]
    unsafe {
        macro_rules! tiles {
            ($kernel:ident: $($r:literal)*) => {
                match rows {
                    $($r => x86::$kernel::<$r>(a, x, base, offs, bias, relu, c, ldc),)*
                    _ => unreachable!("rows checked above"),
                }
            };
        }
        if level == Level::Avx512 {
            tiles!(gathered_tile512: 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 24)
        } else {
            tiles!(gathered_tile: 1 2 3 4 5 6)
        }
    }
    // Without the x86 build `gathered_available` is false and the assert above stops here.
    #[cfg(not(byzadam_x86))]
    let _ = (offs, relu);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn definition(
        m: usize,
        n: usize,
        k: usize,
        a: &[f32],
        ta: bool,
        b: &[f32],
        tb: bool,
    ) -> Vec<f64> {
        let mut out = vec![0f64; m * n];
        for i in 0..m {
            for j in 0..n {
                out[i * n + j] = (0..k)
                    .map(|p| {
                        let x = if ta { a[p * m + i] } else { a[i * k + p] };
                        let y = if tb { b[j * k + p] } else { b[p * n + j] };
                        x as f64 * y as f64
                    })
                    .sum();
            }
        }
        out
    }

    #[test]
    fn gemm_matches_the_definition_for_every_transpose_shape_and_beta() {
        // Shapes around every block edge: MR = 6, NR = 16, KC = 256, MC = 72, NC = 1024.
        let shapes = [
            (1, 1, 1),
            (3, 4, 5),
            (6, 16, 256),
            (7, 17, 257),
            (73, 33, 300),
            (20, 1030, 25),
            (64, 40, 600),
            (5, 3, 0),
        ];
        for level in crate::cpu::supported() {
            gemm_matches_the_definition_at(level, &shapes);
        }
    }

    fn gemm_matches_the_definition_at(level: Level, shapes: &[(usize, usize, usize)]) {
        let mut pack = Pack::default();
        pack.set_level(level);
        for &(m, n, k) in shapes {
            let a: Vec<f32> = (0..m * k)
                .map(|i| ((i * 37) % 101) as f32 * 0.02 - 1.0)
                .collect();
            let b: Vec<f32> = (0..k * n)
                .map(|i| ((i * 53) % 97) as f32 * 0.03 - 1.4)
                .collect();
            for ta in [false, true] {
                for tb in [false, true] {
                    let want = definition(m, n, k, &a, ta, &b, tb);
                    for beta in [0.0f32, 1.0] {
                        // With beta = 0, C's old contents (NaN here) must not leak in.
                        let old: Vec<f32> = (0..m * n)
                            .map(|i| {
                                if beta == 0.0 {
                                    f32::NAN
                                } else {
                                    i as f32 * 0.1
                                }
                            })
                            .collect();
                        let mut c = old.clone();
                        gemm(m, n, k, &a, ta, &b, tb, beta, &mut c, &mut pack);
                        for i in 0..m * n {
                            let w = want[i]
                                + if beta == 0.0 {
                                    0.0
                                } else {
                                    beta as f64 * old[i] as f64
                                };
                            let tol = 1e-4 * (k as f64 + 1.0);
                            assert!(
                                (c[i] as f64 - w).abs() <= tol,
                                "{level}: m {m} n {n} k {k} ta {ta} tb {tb} beta {beta} at {i}: {} vs {w}",
                                c[i]
                            );
                        }
                        let mut lib = old.clone();
                        library(m, n, k, &a, ta, &b, tb, beta, &mut lib);
                        for (x, y) in c.iter().zip(&lib) {
                            assert!((x - y).abs() <= 1e-4 * (k as f32 + 1.0));
                        }
                    }
                }
            }
        }
    }

    /// The gathered tile against its definition, summed in f64: every row count, depths
    /// below, at and above one block of [`KC`], offsets in any order, with and without bias
    /// and ReLU.
    #[test]
    fn gathered_matches_its_definition() {
        for level in crate::cpu::supported() {
            if gathered_available(level) {
                gathered_at(level);
            }
        }
    }

    fn gathered_at(level: Level) {
        for k in [1, 7, KC, KC + 45] {
            // Depth p reads the lanes at a scrambled offset (a permutation of 0..k, × NR).
            let offs: Vec<u32> = (0..k).map(|p| ((p * 37) % k * NR) as u32).collect();
            let offsets = Offsets::new(offs.clone());
            let base = 3;
            let x: Vec<f32> = (0..base + k * NR)
                .map(|i| ((i * 53) % 97) as f32 * 0.03 - 1.4)
                .collect();
            for rows in 1..=gathered_rows(level) {
                let a: Vec<f32> = (0..k * rows)
                    .map(|i| ((i * 29) % 89) as f32 * 0.02 - 0.9)
                    .collect();
                let bias: Vec<f32> = (0..rows).map(|r| r as f32 * 0.5 - 1.0).collect();
                for (with_bias, relu) in [(false, false), (true, false), (true, true)] {
                    let ldc = NR + 5;
                    let mut c = vec![f32::NAN; (rows - 1) * ldc + NR];
                    let b = with_bias.then_some(&bias[..]);
                    gathered(level, rows, &a, &x, base, &offsets, b, relu, &mut c, ldc);
                    for r in 0..rows {
                        for l in 0..NR {
                            let mut want: f64 = (0..k)
                                .map(|p| {
                                    a[p * rows + r] as f64 * x[base + offs[p] as usize + l] as f64
                                })
                                .sum();
                            if with_bias {
                                want += bias[r] as f64;
                            }
                            if relu {
                                want = want.max(0.0);
                            }
                            let got = c[r * ldc + l] as f64;
                            assert!(
                                (got - want).abs() <= 1e-4 * (k as f64 + 1.0),
                                "k {k} rows {rows} bias {with_bias} relu {relu} ({r}, {l}): \
                                 {got} vs {want}"
                            );
                        }
                    }
                }
            }
        }
    }

    /// `gemm` at `level` (a fresh pack set to it).
    #[allow(clippy::too_many_arguments)]
    fn gemm_at(
        level: Level,
        (m, n, k): (usize, usize, usize),
        a: &[f32],
        ta: bool,
        b: &[f32],
        tb: bool,
        beta: f32,
        c: &mut [f32],
    ) {
        let mut pack = Pack::default();
        pack.set_level(level);
        gemm(m, n, k, a, ta, b, tb, beta, c, &mut pack);
    }

    /// The AVX2 and AVX-512 products give the same bits (each value's products summed in the
    /// same order, in the same blocks of depth), on every transpose, both betas, shapes around
    /// every block and tile edge of both kernels, and NaN, ±∞ and values that overflow; and
    /// agree with the portable product (`matrixmultiply`, other order) to rounding.
    #[test]
    fn every_level_gives_the_same_bits() {
        let levels: Vec<Level> = crate::cpu::supported()
            .into_iter()
            .filter(|&l| l > Level::Portable)
            .collect();
        eprintln!("x86-64 levels compared: {levels:?}");
        let shapes = [
            (1, 1, 1),
            (20, 576, 25),
            (20, 25, 576),
            (25, 500, 320),
            (500, 320, 25),
            (13, 33, 257),
            (73, 1057, 300),
            (97, 31, 513),
            (12, 32, 256),
            (25, 10, 500),
        ];
        for &(m, n, k) in &shapes {
            let mut a: Vec<f32> = (0..m * k)
                .map(|i| ((i * 37) % 101) as f32 * 0.0213 - 1.07)
                .collect();
            let b: Vec<f32> = (0..k * n)
                .map(|i| ((i * 53) % 97) as f32 * 0.0311 - 1.4)
                .collect();
            if m * k > 40 {
                a[3] = f32::NAN;
                a[17] = f32::INFINITY;
                a[m * k / 2] = 3.0e38;
            }
            for ta in [false, true] {
                for tb in [false, true] {
                    for beta in [0.0f32, 1.0] {
                        let old: Vec<f32> = (0..m * n).map(|i| i as f32 * 0.37 - 5.0).collect();
                        let results: Vec<Vec<u32>> = levels
                            .iter()
                            .map(|&level| {
                                let mut c = old.clone();
                                gemm_at(level, (m, n, k), &a, ta, &b, tb, beta, &mut c);
                                c.iter().map(|v| v.to_bits()).collect()
                            })
                            .collect();
                        for (level, r) in levels.iter().zip(&results) {
                            assert!(
                                r == &results[0],
                                "{level} differs: m {m} n {n} k {k} ta {ta} tb {tb} beta {beta}"
                            );
                        }
                    }
                }
            }
        }
    }

    /// A product from A packed beforehand ([`pack_a`], [`gemm_packed_a`]) gives the bits of
    /// [`gemm`] at every level, on shapes of several row blocks, depth blocks and column
    /// blocks (the packed blocks are found by their running offset, restarted per column
    /// block), both transposes and betas; one packing serves several products (the same A,
    /// other B); a packing for another shape is refused.
    #[test]
    fn a_product_reading_b_through_offsets_gives_gemms_bits_on_the_matrix_they_describe() {
        let levels: Vec<Level> = crate::cpu::supported()
            .into_iter()
            .filter(|&l| unfolded_available(l))
            .collect();
        if levels.is_empty() {
            eprintln!("no AVX2 on this CPU: gemm_unfolded does not run here");
            return;
        }
        for level in levels {
            let mut pack = Pack::default();
            pack.set_level(level);
            let mut pre = PackedA::default();
            // Shapes on both sides of a panel (32 columns), a depth block (256) and a column
            // block (1024); offsets that repeat and overlap, as a convolution's do.
            for &(m, n, k) in &[
                (20, 64, 500),
                (20, 500, 64),
                (20, 25, 576),
                (7, 1100, 300),
                (1, 1, 1),
                (13, 33, 257),
            ] {
                let src: Vec<f32> = (0..6000)
                    .map(|i| match i % 89 {
                        5 => f32::NAN,
                        6 => -0.0,
                        _ => ((i * 31) % 103) as f32 * 0.017 - 0.8,
                    })
                    .collect();
                let depth: Vec<i32> = (0..k).map(|p| ((p * 7) % 1500) as i32).collect();
                // Columns scattered (a gather each), in rows of 8 of a 12-wide image and of 24 of a
                // 28-wide one (one or two runs per sixteen: masked loads), in runs of 5, contiguous.
                for line in [
                    (0..n).map(|j| ((j * 3) % 2400) as i32).collect::<Vec<_>>(),
                    (0..n).map(|j| (j / 8 * 12 + j % 8) as i32).collect(),
                    (0..n).map(|j| (j / 24 * 28 + j % 24) as i32).collect(),
                    // A 5 × 5 kernel's columns over a 12-wide image: three or four runs.
                    (0..n).map(|j| (j / 5 * 12 + j % 5) as i32).collect(),
                    (0..n).map(|j| j as i32 + 5).collect(),
                ] {
                    let b: Vec<f32> = (0..k * n)
                        .map(|i| src[(depth[i / n] + line[i % n]) as usize])
                        .collect();
                    let a: Vec<f32> = (0..m * k)
                        .map(|i| ((i * 37) % 101) as f32 * 0.0213 - 1.07)
                        .collect();
                    for (ta, beta, packed) in [
                        (false, 0.0f32, false),
                        (true, 1.0, false),
                        (false, 1.0, true),
                    ] {
                        let old: Vec<f32> = (0..m * n).map(|i| i as f32 * 0.37 - 5.0).collect();
                        let (mut want, mut got) = (old.clone(), old);
                        gemm(m, n, k, &a, ta, &b, false, beta, &mut want, &mut pack);
                        pack_a(m, k, &a, ta, &pack, &mut pre);
                        let operand = Unfolded {
                            src: &src,
                            depth: &depth,
                            line: &line,
                        };
                        gemm_unfolded(
                            m,
                            n,
                            k,
                            &a,
                            ta,
                            packed.then_some(&pre),
                            operand,
                            beta,
                            &mut got,
                            &mut pack,
                        );
                        let bits = |c: &[f32]| c.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
                        assert!(
                            bits(&want) == bits(&got),
                            "{level}: m {m} n {n} k {k} ta {ta} beta {beta}"
                        );
                    }
                }
            }
            // Offsets that reach past the operand, or below it, are refused before any read.
            for (depth, line) in [([3999, 0], [1, 0]), ([0, -1], [0, 0])] {
                let refused = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    let operand = Unfolded {
                        src: &[0.0; 4000],
                        depth: &depth,
                        line: &line,
                    };
                    let mut c = [0.0; 4];
                    gemm_unfolded(
                        2, 2, 2, &[0.0; 4], false, None, operand, 0.0, &mut c, &mut pack,
                    )
                }));
                assert!(
                    refused.is_err(),
                    "{level}: offsets {depth:?} + {line:?} outside 4000 values"
                );
            }
        }
    }

    #[test]
    fn a_product_from_packed_a_gives_gemms_bits() {
        for level in crate::cpu::supported() {
            let mut pack = Pack::default();
            pack.set_level(level);
            let mut pre = PackedA::default();
            for &(m, n, k) in &[
                (50, 64, 500),
                (73, 1057, 300),
                (25, 10, 500),
                (1, 1, 1),
                (97, 31, 513),
            ] {
                let mut a: Vec<f32> = (0..m * k)
                    .map(|i| ((i * 37) % 101) as f32 * 0.0213 - 1.07)
                    .collect();
                if m * k > 40 {
                    a[3] = f32::NAN;
                    a[m * k / 2] = 3.0e38;
                }
                for ta in [false, true] {
                    pack_a(m, k, &a, ta, &pack, &mut pre);
                    for (seed, tb, beta) in [(53, false, 0.0f32), (29, true, 1.0), (31, false, 1.0)]
                    {
                        let b: Vec<f32> = (0..k * n)
                            .map(|i| ((i * seed) % 97) as f32 * 0.0311 - 1.4)
                            .collect();
                        let old: Vec<f32> = (0..m * n).map(|i| i as f32 * 0.37 - 5.0).collect();
                        let (mut want, mut got) = (old.clone(), old);
                        gemm(m, n, k, &a, ta, &b, tb, beta, &mut want, &mut pack);
                        gemm_packed_a(m, n, k, &a, ta, &pre, &b, tb, beta, &mut got, &mut pack);
                        let bits = |c: &[f32]| c.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
                        assert!(
                            bits(&want) == bits(&got),
                            "{level}: m {m} n {n} k {k} ta {ta} tb {tb} beta {beta}"
                        );
                    }
                }
            }
            pack_a(4, 5, &[0.0; 20], false, &pack, &mut pre);
            let refused = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                let mut c = [0.0; 20];
                gemm_packed_a(
                    5, 4, 4, &[0.0; 20], false, &pre, &[0.0; 16], false, 0.0, &mut c, &mut pack,
                )
            }));
            assert!(
                refused.is_err(),
                "{level}: a packing of another shape was used"
            );
        }
    }

    /// The two gathered tiles give the same bits (same sums in the same order) at every row
    /// count the AVX2 one takes.
    #[test]
    fn the_gathered_tiles_give_the_same_bits() {
        if crate::cpu::best() < Level::Avx512 {
            eprintln!("no AVX-512 here: nothing to compare");
            return;
        }
        for k in [3, KC + 9] {
            let offs: Vec<u32> = (0..k).map(|p| ((p * 7) % k * NR) as u32).collect();
            let offsets = Offsets::new(offs);
            let mut x: Vec<f32> = (0..k * NR + 5)
                .map(|i| ((i * 53) % 97) as f32 * 0.03 - 1.4)
                .collect();
            x[9] = f32::NAN;
            for rows in 1..=MR {
                let a: Vec<f32> = (0..k * rows)
                    .map(|i| ((i * 29) % 89) as f32 * 0.02 - 0.9)
                    .collect();
                let bias: Vec<f32> = (0..rows).map(|r| r as f32 * 0.25 - 0.5).collect();
                for relu in [false, true] {
                    let run = |level| {
                        let mut c = vec![0f32; (rows - 1) * NR + NR];
                        gathered(
                            level,
                            rows,
                            &a,
                            &x,
                            5,
                            &offsets,
                            Some(&bias),
                            relu,
                            &mut c,
                            NR,
                        );
                        c.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
                    };
                    assert_eq!(run(Level::Avx2), run(Level::Avx512), "k {k} rows {rows}");
                }
            }
        }
    }

    /// A transposing packer (`pack(src, ld, lines, kc, dst, stride, width)`) against its
    /// definition: every line count up to every width up to `most`, depths around its blocks
    /// of `most`; the lanes past the width are left alone.
    #[cfg(byzadam_x86)]
    fn check_transposing_packer(
        most: usize,
        pack: impl Fn(&[f32], usize, usize, usize, &mut [f32], usize, usize),
    ) {
        let ld = 4 * most + 6;
        let src: Vec<f32> = (0..most * ld).map(|i| i as f32 + 0.5).collect();
        for kc in [1, most - 1, most, most + 1, 2 * most + 1, 4 * most] {
            for width in 1..=most {
                for lines in 0..=width {
                    let stride = width + 3;
                    let mut dst = vec![-1f32; kc * stride];
                    pack(&src, ld, lines, kc, &mut dst, stride, width);
                    for p in 0..kc {
                        for l in 0..stride {
                            let want = if l < lines {
                                src[l * ld + p]
                            } else if l < width {
                                0.0
                            } else {
                                -1.0
                            };
                            let got = dst[p * stride + l];
                            assert_eq!(got, want, "kc {kc} w {width} lines {lines}");
                        }
                    }
                }
            }
        }
    }

    /// The AVX-512 (16 × 16) and AVX2 (8 × 8) transposing packers against their definition.
    #[cfg(byzadam_x86)]
    #[test]
    fn the_transposing_packers_match_their_definition() {
        #[allow(unsafe_code)]
        if crate::cpu::best() >= Level::Avx512 {
            // SAFETY: the CPU has AVX-512 (checked); the function checks the slices.
            check_transposing_packer(16, |s, ld, l, kc, d, st, w| unsafe {
                x86::transpose_pack(s, ld, l, kc, d, st, w)
            });
        }
        #[allow(unsafe_code)]
        if crate::cpu::best() >= Level::Avx2 {
            // SAFETY: the CPU has AVX2 (checked); the function checks the slices.
            check_transposing_packer(8, |s, ld, l, kc, d, st, w| unsafe {
                x86::transpose_pack8(s, ld, l, kc, d, st, w)
            });
        }
    }

    /// The packed product allocates nothing (its buffers are the caller's).
    #[test]
    fn the_packing_buffers_have_fixed_sizes() {
        let pack = Pack::default();
        let (a, b) = (pack.a.capacity(), pack.b.capacity());
        let mut pack = pack;
        let x = vec![1f32; 500 * 700];
        let mut c = vec![0f32; 500 * 500];
        gemm(500, 500, 700, &x, false, &x, true, 0.0, &mut c, &mut pack);
        assert_eq!((pack.a.capacity(), pack.b.capacity()), (a, b));
        assert_eq!(c[0], 700.0);
    }
}
