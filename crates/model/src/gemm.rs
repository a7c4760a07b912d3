//! Matrix products on row-major slices: `C (m×n) = op(A) · op(B) + beta · C`.
//!
//! On x86-64 CPUs with AVX2 and FMA (checked at run time) this is our own single-threaded,
//! BLIS-style packed SGEMM: `op(B)` is packed into panels of [`NR`] columns and `op(A)` into
//! panels of [`MR`] rows, both in buffers the caller owns ([`Pack`], part of every network's
//! workspace), so a training round allocates nothing; a 6 × 16 register-tile micro-kernel of
//! FMAs does the arithmetic. Elsewhere, `ndarray` + `matrixmultiply`'s packed SGEMM (which
//! allocates its packing buffers on every call).
//!
//! Why our own: `matrixmultiply` and `gemm` both allocate per call, and the engine's
//! steady-state rounds must not; packing into our buffers also lets the kernel pick block
//! sizes for the engine's shapes (at most a few thousand rows and columns). docs/benchmarks-history.md
//! compares the engine's rounds with this kernel and with `matrixmultiply`.

#[cfg(byzadam_x86)]
mod x86;

use ndarray::linalg::general_mat_mul;
use ndarray::{ArrayView2, ArrayViewMut2};

/// Rows of the register tile (and of a packed A panel).
pub(crate) const MR: usize = 6;
/// Columns of the register tile (and of a packed B panel): two AVX vectors.
pub(crate) const NR: usize = 16;
/// Depth of one packed block (A panel `MR × KC` in L1 beside a B panel `KC × NR`).
const KC: usize = 256;
/// Rows of A packed at once (`MC × KC` floats, 72 KiB: fits L2).
const MC: usize = 72;
/// Columns of B packed at once (`KC × NC` floats, 1 MiB).
const NC: usize = 1024;

/// Packing buffers for [`gemm`], allocated once (fixed sizes, whatever the shapes); empty
/// where the packed product cannot run (it is the x86-64 fast path's).
#[derive(Debug, Clone)]
#[cfg_attr(not(byzadam_x86), allow(dead_code))]
pub(crate) struct Pack {
    a: Vec<f32>,
    b: Vec<f32>,
}

impl Default for Pack {
    fn default() -> Self {
        let fast = crate::cpu::fast();
        Self {
            a: vec![0.0; if fast { MC * KC } else { 0 }],
            b: vec![0.0; if fast { KC * NC } else { 0 }],
        }
    }
}

/// `C (m×n) = op(A) · op(B) + beta · C`, where `op(A)` is `m×k` (`A` stored `k×m` when
/// `ta`), `op(B)` is `k×n` (`B` stored `n×k` when `tb`). With `beta = 0`, `C` is not read
/// (it may hold anything, NaN included).
///
/// Panics if a slice is shorter than its shape.
#[allow(clippy::too_many_arguments)]
pub(crate) fn gemm(
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
    assert!(a.len() >= m * k && b.len() >= k * n && c.len() >= m * n);
    if m == 0 || n == 0 {
        return;
    }
    #[cfg(byzadam_x86)]
    {
        if crate::cpu::fast() {
            packed(m, n, k, a, ta, b, tb, beta, c, pack);
            return;
        }
    }
    let _ = pack;
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

/// Packs the `width` lines `x0..x0+width` (rows of op(A), or columns of op(B)) over depths
/// `p0..p0+kc` into panels of `W` lines: panel `q`, depth `p`, line `l` at
/// `dst[(q * kc + p) * W + l]`; lines past `width` are zeros. Line `x` at depth `p` is
/// `src[p * ld + x]` when `depth_major` (op(A) of a transposed A, op(B) of a plain B), else
/// `src[x * ld + p]`.
#[cfg(byzadam_x86)]
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn pack_panels<const W: usize>(
    src: &[f32],
    ld: usize,
    depth_major: bool,
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
        if depth_major && lines == W {
            // For each depth the panel's lines are contiguous: copied as a fixed-size array
            // (a call to memcpy per 6 or 16 floats costs more than the copy).
            for (p, d) in panel.chunks_exact_mut(W).enumerate() {
                let at = (p0 + p) * ld + l0;
                let line: &[f32; W] = src[at..at + W].try_into().expect("W wide");
                d.copy_from_slice(line);
            }
        } else if depth_major {
            for p in 0..kc {
                let at = (p0 + p) * ld + l0;
                let d = &mut panel[p * W..p * W + W];
                d[..lines].copy_from_slice(&src[at..at + lines]);
                d[lines..].fill(0.0);
            }
        } else {
            // Each line is contiguous over the depths.
            for l in 0..W {
                if l < lines {
                    let at = (l0 + l) * ld + p0;
                    for (p, &v) in src[at..at + kc].iter().enumerate() {
                        panel[p * W + l] = v;
                    }
                } else {
                    for p in 0..kc {
                        panel[p * W + l] = 0.0;
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
    b: &[f32],
    tb: bool,
    beta: f32,
    c: &mut [f32],
    pack: &mut Pack,
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
        for p0 in (0..k).step_by(KC) {
            let kc = KC.min(k - p0);
            let beta = if p0 == 0 { beta } else { 1.0 };
            // op(B)[p0.., j0..]: columns of op(B) are rows of a transposed B.
            pack_panels::<NR>(b, if tb { k } else { n }, !tb, j0, nc, p0, kc, &mut pack.b);
            for i0 in (0..m).step_by(MC) {
                let mc = MC.min(m - i0);
                pack_panels::<MR>(a, if ta { m } else { k }, ta, i0, mc, p0, kc, &mut pack.a);
                for qb in 0..nc.div_ceil(NR) {
                    let bp = &pack.b[qb * kc * NR..(qb + 1) * kc * NR];
                    let cols = NR.min(nc - qb * NR);
                    for qa in 0..mc.div_ceil(MR) {
                        let ap = &pack.a[qa * kc * MR..(qa + 1) * kc * MR];
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

/// Whether [`gathered`] can run (it has no portable build: callers take another path).
pub(crate) fn gathered_available() -> bool {
    // False without the x86 build (`cpu::fast` says so there).
    crate::cpu::fast()
}

/// One register tile of a product whose B operand is gathered rather than packed:
/// `rows ≤ MR` rows of [`NR`] values,
/// `C[r] = act(Σ_p a[p·rows + r] · x[base + offs[p] ..][..NR] + bias[r])`, row `r` of C at
/// `c[r·ldc..][..NR]`, `act` a ReLU when `relu` (no bias added when `bias` is `None`). `x` holds [`NR`] values (one per lane) at each
/// offset, so a convolution over a batch stored lane-innermost reads its input in place, with
/// no im2col (`trunk.rs`). The depth sum is split into blocks of [`KC`] and the blocks added in
/// order, exactly as [`gemm`] sums them, so each value has the bits an im2col + [`gemm`] +
/// bias pass gives.
///
/// Panics if a slice is too short for the shapes or if [`gathered_available`] is false.
#[allow(clippy::too_many_arguments)]
pub(crate) fn gathered(
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
    assert!((1..=MR).contains(&rows) && k >= 1);
    assert!(a.len() >= k * rows && c.len() >= (rows - 1) * ldc + NR);
    assert!(bias.is_none_or(|b| b.len() >= rows));
    assert!(x.len() >= base + offs.max + NR);
    let offs = &offs.offs[..];
    assert!(
        gathered_available(),
        "the gathered kernel needs AVX2 and FMA"
    );
    #[cfg(byzadam_x86)]
    // SAFETY: the CPU has AVX2 and FMA (asserted); every read of x is below
    // `base + max(offs) + NR`, inside x (asserted), and the other slices are long enough for
    // `rows`, `k` and `ldc` (asserted).
    #[allow(unsafe_code)]
    unsafe {
        match rows {
            1 => x86::gathered_tile::<1>(a, x, base, offs, bias, relu, c, ldc),
            2 => x86::gathered_tile::<2>(a, x, base, offs, bias, relu, c, ldc),
            3 => x86::gathered_tile::<3>(a, x, base, offs, bias, relu, c, ldc),
            4 => x86::gathered_tile::<4>(a, x, base, offs, bias, relu, c, ldc),
            5 => x86::gathered_tile::<5>(a, x, base, offs, bias, relu, c, ldc),
            _ => x86::gathered_tile::<MR>(a, x, base, offs, bias, relu, c, ldc),
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
        let mut pack = Pack::default();
        for &(m, n, k) in &shapes {
            let a: Vec<f32> = (0..m * k)
                .map(|i| ((i * 37) % 101) as f32 * 0.02 - 1.0)
                .collect();
            let b: Vec<f32> = (0..k * n)
                .map(|i| ((i * 53) % 97) as f32 * 0.03 - 1.4)
                .collect();
            for ta in [false, true] {
                for tb in [false, true] {
                    let want = definition(m, n, k, &a, ta, &b, tb);
                    for beta in [0.0f32, 1.0, 0.5] {
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
                                "m {m} n {n} k {k} ta {ta} tb {tb} beta {beta} at {i}: {} vs {w}",
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
        if !gathered_available() {
            eprintln!("no AVX2 + FMA: the gathered kernel is not used on this CPU");
            return;
        }
        for k in [1, 7, KC, KC + 45] {
            // Depth p reads the lanes at a scrambled offset (a permutation of 0..k, × NR).
            let offs: Vec<u32> = (0..k).map(|p| ((p * 37) % k * NR) as u32).collect();
            let offsets = Offsets::new(offs.clone());
            let base = 3;
            let x: Vec<f32> = (0..base + k * NR)
                .map(|i| ((i * 53) % 97) as f32 * 0.03 - 1.4)
                .collect();
            for rows in 1..=MR {
                let a: Vec<f32> = (0..k * rows)
                    .map(|i| ((i * 29) % 89) as f32 * 0.02 - 0.9)
                    .collect();
                let bias: Vec<f32> = (0..rows).map(|r| r as f32 * 0.5 - 1.0).collect();
                for (with_bias, relu) in [(false, false), (true, false), (true, true)] {
                    let ldc = NR + 5;
                    let mut c = vec![f32::NAN; (rows - 1) * ldc + NR];
                    let b = with_bias.then_some(&bias[..]);
                    gathered(rows, &a, &x, base, &offsets, b, relu, &mut c, ldc);
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
