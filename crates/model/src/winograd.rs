//! 3 × 3 convolutions with padding 1 by Winograd's minimal filtering F(4×4, 3×3) (Lavin and
//! Gray, "Fast Algorithms for Convolutional Neural Networks", CVPR 2016; interpolation points
//! 0, ±1, ±2 and ∞).
//!
//! Each 4 × 4 block of outputs (a *tile*) is computed from the 6 × 6 block of inputs around
//! it as `Y = Aᵀ [Σ_c (G g Gᵀ) ⊙ (Bᵀ d B)] A`: after the weights `g` and the input blocks `d`
//! are transformed, the sum over input channels is 36 independent matrix products (one per
//! position ξ = 6 i + j of the 6 × 6 block), `M_ξ (out × tiles) = U_ξ (out × in) · V_ξ (in ×
//! tiles)`, with 36 multiplications per tile and channel pair instead of direct convolution's
//! 144: 4× fewer (F(2×2, 3×3), which this module computed before, saves 2.25×). The
//! transforms' coefficients are small integers (and sixths, twelfths and twenty-fourths in
//! `G`, computed in `f64`), so the results differ from a direct convolution only by rounding,
//! larger than F(2×2, 3×3)'s (the tests bound it).
//!
//! The backward pass is the exact adjoint of this forward pass (which computes the same
//! function as the convolution, so it *is* the convolution's gradient): the output gradient's
//! tiles are transformed once, `dM = A dY Aᵀ`; then `dU_ξ += dM_ξ · V_ξᵀ` (weights, back
//! through `g ↦ G g Gᵀ`) and `dV_ξ = U_ξᵀ · dM_ξ` (inputs, back through `d ↦ Bᵀ d B` and the
//! overlap of the input blocks).
//!
//! Images are processed in groups of about [`TARGET_TILES`] tiles so that the products are
//! wide enough for the SGEMM and the transformed blocks stay in cache; every buffer lives in
//! a [`Winograd`] workspace sized once, so a warm network allocates nothing. The block
//! transforms ([`input_block`], [`output_block`]) work on vectors of `N` tiles (8, 4 or 1
//! side by side here, 16 images in `trunk.rs`), lane by lane the same operations, so every
//! path gives the same bits.

use crate::gemm::{gemm, gemm_packed_a, pack_a, Pack, PackedA};
use crate::layers::batch_norm::{self, Normalised};

/// Input channels from which a 3 × 3, padding-1 convolution goes through Winograd: with
/// fewer (the CIFAR-10 CNN's first layer has 3), each of the 36 products is too thin for the
/// SGEMM and im2col is faster.
const MIN_CHANNELS: usize = 16;

/// Tiles per group of images (at least one image per group).
const TARGET_TILES: usize = 64;

/// Outputs per side of a tile.
pub(crate) const TILE: usize = 4;
/// Inputs per side of a tile's block (`TILE + 2`).
pub(crate) const BLOCK: usize = 6;
/// Positions ξ of a block: the products per group.
pub(crate) const POSITIONS: usize = BLOCK * BLOCK;

/// Whether a convolution with this kernel, padding and input channel count is computed by
/// Winograd's algorithm.
pub(crate) fn applies(kernel: usize, padding: usize, cin: usize) -> bool {
    kernel == 3 && padding == 1 && cin >= MIN_CHANNELS
}

/// The shape of one convolution: `c` input channels, `k` output channels, `h × w` images (the
/// output has the same size), tiled into `th × tw` tiles.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Geometry {
    c: usize,
    k: usize,
    h: usize,
    w: usize,
    th: usize,
    tw: usize,
}

impl Geometry {
    pub(crate) fn new(c: usize, k: usize, h: usize, w: usize) -> Self {
        Self {
            c,
            k,
            h,
            w,
            th: h.div_ceil(TILE),
            tw: w.div_ceil(TILE),
        }
    }

    fn tiles(&self) -> usize {
        self.th * self.tw
    }

    /// Images per group.
    fn group(&self) -> usize {
        TARGET_TILES.div_ceil(self.tiles()).max(1)
    }

    /// The groups of a batch: `(first image, images, tiles)`, the last group possibly smaller.
    fn groups(&self, batch: usize) -> impl Iterator<Item = (usize, usize, usize)> + '_ {
        (0..batch).step_by(self.group()).map(move |i0| {
            let n = self.group().min(batch - i0);
            (i0, n, n * self.tiles())
        })
    }

    /// The zero-padded plane every tile reads from or adds into: `rows` rows of `4 · half`
    /// values, each row stored as its four *phases* (padded columns `p`, `p + 4`, `p + 8`, …
    /// for `p` = 0..4, `half` values each), so that column `4 tx + j` of tile `tx` is value
    /// `tx + j / 4` of phase `j mod 4`: the columns of side-by-side tiles are contiguous runs.
    fn padded(&self) -> (usize, usize) {
        (TILE * self.th + 2, self.tw + 1)
    }

    /// The values of the transformed inputs `V` of `batch` images, group after group (what
    /// [`forward`] keeps for [`backward`]; so a group of images from `i0` starts at
    /// `kept_len(i0)`).
    pub(crate) fn kept_len(&self, batch: usize) -> usize {
        POSITIONS * self.c * self.tiles() * batch
    }

    /// Buffer sizes this convolution needs: `(u, v, m, scratch)`. V and M have a vector's
    /// slack at their end (a group's last vector of tiles may be partial), the scratch holds
    /// a padded plane and the expansion.
    fn sizes(&self, batch: usize) -> [usize; 4] {
        let t = self.group().min(batch.max(1)) * self.tiles();
        let (rows, half) = self.padded();
        [
            POSITIONS * self.k * self.c,
            POSITIONS * self.c * t + LANES,
            POSITIONS * self.k * t + LANES,
            rows * TILE * half + POSITIONS * run_len(t),
        ]
    }
}

/// The buffers of Winograd convolutions: transformed weights (and their gradient),
/// transformed input tiles, the products, and a scratch plane. Grown by [`Winograd::reserve`]
/// to the largest convolution of a network, then reused.
#[derive(Debug, Clone, Default)]
pub(crate) struct Winograd {
    u: Vec<f32>,
    du: Vec<f32>,
    v: Vec<f32>,
    m: Vec<f32>,
    scratch: Vec<f32>,
    /// Each `U_ξ` (or its transpose) packed once per pass for the products of every group.
    packed: Vec<PackedA>,
}

impl Winograd {
    /// Makes room for convolution `g` on batches of up to `batch` images.
    pub(crate) fn reserve(&mut self, g: &Geometry, batch: usize) {
        let [u, v, m, s] = g.sizes(batch);
        for (buf, n) in [
            (&mut self.u, u),
            (&mut self.du, u),
            (&mut self.v, v),
            (&mut self.m, m),
            (&mut self.scratch, s),
        ] {
            if buf.len() < n {
                buf.resize(n, 0.0);
            }
        }
        self.packed.resize_with(POSITIONS, PackedA::default);
    }
}

/// `y = conv(x, w) + b` for `batch` images (`x`: `[batch][c][h][w]`, `w`: `[k][c][3][3]`, `b`:
/// `[k]`, `y`: `[batch][k][h][w]`), then `max(y, 0)` if `relu` (a ReLU fused into the pass
/// that writes `y`); with `bn`, the input is `x` normalised by the batch norm before. With
/// `keep` ([`Geometry::kept_len`] values), the transformed inputs are written there, group
/// after group, for [`backward`] to read instead of transforming the inputs again.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
pub(crate) fn forward(
    g: &Geometry,
    batch: usize,
    x: &[f32],
    bn: Option<Normalised<'_>>,
    w: &[f32],
    b: &[f32],
    y: &mut [f32],
    relu: bool,
    ws: &mut Winograd,
    mut keep: Option<&mut [f32]>,
    pack: &mut Pack,
) {
    let (c, k, hw) = (g.c, g.k, g.h * g.w);
    let Winograd {
        u,
        v,
        m,
        scratch,
        packed,
        ..
    } = ws;
    weights(w, k, c, u);
    for (xi, pre) in packed.iter_mut().enumerate() {
        pack_a(k, c, &u[xi * k * c..(xi + 1) * k * c], false, pack, pre);
    }
    for (i0, n, t) in g.groups(batch) {
        let v = match keep.as_deref_mut() {
            Some(kept) => &mut kept[g.kept_len(i0)..g.kept_len(i0 + n)],
            None => &mut v[..],
        };
        inputs(g, &x[i0 * c * hw..(i0 + n) * c * hw], n, bn, scratch, v);
        for xi in 0..POSITIONS {
            gemm_packed_a(
                k,
                t,
                c,
                &u[xi * k * c..(xi + 1) * k * c],
                false,
                &packed[xi],
                &v[xi * c * t..(xi + 1) * c * t],
                false,
                0.0,
                &mut m[xi * k * t..(xi + 1) * k * t],
                pack,
            );
        }
        outputs(
            g,
            n,
            m,
            b,
            relu,
            &mut y[i0 * k * hw..(i0 + n) * k * hw],
            scratch,
        );
    }
}

/// The gradient of [`forward`]: `gw += ∂/∂w`, and `dx = ∂/∂x` (overwritten) when given, from
/// the output gradient `dy`. (The bias gradient, the sums of `dy`, is the caller's.) With
/// `bn`, `dx` is the gradient of the normalised input (the batch norm's output). With
/// `kept`, the transformed inputs [`forward`] kept for the same `x` and `batch` (the same
/// bits as transforming `x` again).
#[allow(clippy::too_many_arguments)]
#[inline(always)]
pub(crate) fn backward(
    g: &Geometry,
    batch: usize,
    x: &[f32],
    bn: Option<Normalised<'_>>,
    w: &[f32],
    dy: &[f32],
    gw: &mut [f32],
    mut dx: Option<&mut [f32]>,
    ws: &mut Winograd,
    kept: Option<&[f32]>,
    pack: &mut Pack,
) {
    let (c, k, hw) = (g.c, g.k, g.h * g.w);
    if dx.is_some() {
        weights(w, k, c, &mut ws.u);
        for (xi, pre) in ws.packed.iter_mut().enumerate() {
            pack_a(c, k, &ws.u[xi * k * c..(xi + 1) * k * c], true, pack, pre);
        }
    }
    ws.du[..POSITIONS * k * c].fill(0.0);
    for (i0, n, t) in g.groups(batch) {
        // Kept transforms come from memory (the forward pass wrote them long ago): each
        // position's is asked for one product ahead, the first while dY is transformed.
        if let Some(kept) = kept {
            prefetch(&kept[g.kept_len(i0)..][..c * t]);
        }
        outputs_adjoint(g, n, &dy[i0 * k * hw..(i0 + n) * k * hw], ws);
        let v = match kept {
            Some(kept) => &kept[g.kept_len(i0)..g.kept_len(i0 + n)],
            None => {
                let x = &x[i0 * c * hw..(i0 + n) * c * hw];
                inputs(g, x, n, bn, &mut ws.scratch, &mut ws.v);
                &ws.v[..]
            }
        };
        for xi in 0..POSITIONS {
            if kept.is_some() && xi + 1 < POSITIONS {
                prefetch(&v[(xi + 1) * c * t..(xi + 2) * c * t]);
            }
            gemm(
                k,
                c,
                t,
                &ws.m[xi * k * t..(xi + 1) * k * t],
                false,
                &v[xi * c * t..(xi + 1) * c * t],
                true,
                1.0,
                &mut ws.du[xi * k * c..(xi + 1) * k * c],
                pack,
            );
        }
        if let Some(dx) = dx.as_deref_mut() {
            for xi in 0..POSITIONS {
                gemm_packed_a(
                    c,
                    t,
                    k,
                    &ws.u[xi * k * c..(xi + 1) * k * c],
                    true,
                    &ws.packed[xi],
                    &ws.m[xi * k * t..(xi + 1) * k * t],
                    false,
                    0.0,
                    &mut ws.v[xi * c * t..(xi + 1) * c * t],
                    pack,
                );
            }
            inputs_adjoint(
                g,
                n,
                &ws.v,
                &mut dx[i0 * c * hw..(i0 + n) * c * hw],
                &mut ws.scratch,
            );
        }
    }
    weights_adjoint(&ws.du, k, c, gw);
}

/// Asks the CPU to bring `values` into its L2 cache ahead of their use: a hint, with no effect
/// on any result (nothing on other architectures).
#[inline(always)]
fn prefetch(values: &[f32]) {
    #[cfg(target_arch = "x86_64")]
    for line in values.chunks(16) {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T1};
        // SAFETY: a prefetch reads nothing the program sees and never faults; the address is
        // inside `values` anyway.
        #[allow(unsafe_code)]
        unsafe {
            _mm_prefetch::<_MM_HINT_T1>(line.as_ptr().cast())
        };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = values;
}

// The one-dimensional transforms. `G` (6 × 3), `Bᵀ` (6 × 6) and `Aᵀ` (4 × 6) of F(4, 3):
//
//   G  = [[1/4, 0, 0], [−1/6, −1/6, −1/6], [−1/6, 1/6, −1/6],
//         [1/24, 1/12, 1/6], [1/24, −1/12, 1/6], [0, 0, 1]]
//   Bᵀ = [[4, 0, −5, 0, 1, 0], [0, −4, −4, 1, 1, 0], [0, 4, −4, −1, 1, 0],
//         [0, −2, −1, 2, 1, 0], [0, 2, −1, −2, 1, 0], [0, 4, 0, −5, 0, 1]]
//   Aᵀ = [[1, 1, 1, 1, 1, 0], [0, 1, −1, 2, −2, 0], [0, 1, 1, 4, 4, 0], [0, 1, −1, 8, −8, 1]]
//
// and their transposes for the adjoints. The two-dimensional transforms apply them along the
// rows of a block, then down its columns (the order of their sums is part of the bits).

/// `G g` for a 3-vector (in `f64`: the weights' transform is cheap, and its sixths round once).
#[inline(always)]
fn g_col([a, b, c]: [f64; 3]) -> [f64; 6] {
    const SIXTH: f64 = 1.0 / 6.0;
    let (s, d) = ((a + c) * SIXTH, b * SIXTH);
    let q = a * (1.0 / 24.0) + c * SIXTH;
    let e = b * (1.0 / 12.0);
    [a * 0.25, -s - d, d - s, q + e, q - e, c]
}

/// `Gᵀ u` for a 6-vector (the adjoint of [`g_col`]), in `f64`.
#[inline(always)]
fn gt_col(u: [f64; 6]) -> [f64; 3] {
    const SIXTH: f64 = 1.0 / 6.0;
    let (s12, d12) = (u[1] + u[2], u[2] - u[1]);
    let (s34, d34) = (u[3] + u[4], u[3] - u[4]);
    [
        u[0] * 0.25 - s12 * SIXTH + s34 * (1.0 / 24.0),
        d12 * SIXTH + d34 * (1.0 / 12.0),
        s34 * SIXTH - s12 * SIXTH + u[5],
    ]
}

/// `Bᵀ d` for a 6-vector.
#[inline(always)]
fn bt_col(d: [f32; 6]) -> [f32; 6] {
    let (t1, t2) = (d[4] - 4.0 * d[2], d[3] - 4.0 * d[1]);
    let (t3, t4) = (d[4] - d[2], 2.0 * (d[3] - d[1]));
    [
        4.0 * d[0] - 5.0 * d[2] + d[4],
        t1 + t2,
        t1 - t2,
        t3 + t4,
        t3 - t4,
        4.0 * d[1] - 5.0 * d[3] + d[5],
    ]
}

/// `B v` for a 6-vector (the adjoint of [`bt_col`]).
#[inline(always)]
fn b_col(v: [f32; 6]) -> [f32; 6] {
    let (d12, d34) = (v[1] - v[2], v[3] - v[4]);
    let (s12, s34) = (v[1] + v[2], v[3] + v[4]);
    [
        4.0 * v[0],
        4.0 * v[5] - 4.0 * d12 - 2.0 * d34,
        -5.0 * v[0] - 4.0 * s12 - s34,
        d12 + 2.0 * d34 - 5.0 * v[5],
        v[0] + s12 + s34,
        v[5],
    ]
}

/// `Aᵀ m` for a 6-vector.
#[inline(always)]
fn at_col(m: [f32; 6]) -> [f32; 4] {
    let (s12, d12) = (m[1] + m[2], m[1] - m[2]);
    let (s34, d34) = (m[3] + m[4], m[3] - m[4]);
    [
        m[0] + s12 + s34,
        d12 + 2.0 * d34,
        s12 + 4.0 * s34,
        d12 + 8.0 * d34 + m[5],
    ]
}

/// `A y` for a 4-vector (the adjoint of [`at_col`]).
#[inline(always)]
fn a_col(y: [f32; 4]) -> [f32; 6] {
    let (e, o) = (y[0] + y[2], y[1] + y[3]);
    let (e4, o8) = (y[0] + 4.0 * y[2], 2.0 * y[1] + 8.0 * y[3]);
    [y[0], e + o, e - o, e4 + o8, e4 - o8, y[3]]
}

// The same on vectors of `N` lanes: one loop over the lanes each (so that the compiler makes
// each value one vector operation; as loops over a block's rows with the lanes inside, AVX-512
// builds once vectorised across the rows, with gathers and scatters through the stack). Plain
// functions, no closures: a closure can be left out of line, compiled without the caller's CPU
// features.

/// `f` lane by lane: `o[·][l] = f(x[·][l])` for each of the `N` lanes (`bt_col` and the
/// others on vectors of tiles or images, `g_col` and `gt_col` on vectors of kernels). `f` is
/// a function, inlined, not a closure.
#[inline(always)]
fn lanes<T: Copy + Default, const N: usize, const I: usize, const O: usize>(
    x: [&[T; N]; I],
    f: fn([T; I]) -> [T; O],
) -> [[T; N]; O] {
    let mut o = [[T::default(); N]; O];
    for l in 0..N {
        let mut v = [T::default(); I];
        for (v, x) in v.iter_mut().zip(x) {
            *v = x[l];
        }
        for (o, r) in o.iter_mut().zip(f(v)) {
            o[l] = r;
        }
    }
    o
}

/// `v + bias`, then `max(·, 0)` when `relu` (`f32::max`: 0 for a NaN, as every ReLU here),
/// lane by lane.
#[inline(always)]
fn finish<const N: usize>(mut v: [f32; N], bias: f32, relu: bool) -> [f32; N] {
    for x in &mut v {
        *x += bias;
        if relu {
            *x = x.max(0.0);
        }
    }
    v
}

/// `buf[at..at + N]` as an array.
#[inline(always)]
fn vector<const N: usize>(buf: &[f32], at: usize) -> &[f32; N] {
    buf[at..at + N].try_into().expect("N values")
}

/// Kernels transformed side by side (the lanes of [`weights`] and [`weights_adjoint`]).
const KERNELS: usize = 8;

/// `U_ξ[k][c] = (G g Gᵀ)_ξ` for every 3 × 3 kernel `g = w[k][c]` (in `f64`, rounded once),
/// [`KERNELS`] kernels at a time, so that each `U_ξ` is written in runs.
#[inline(always)]
pub(crate) fn weights(w: &[f32], k: usize, c: usize, u: &mut [f32]) {
    let kc = k * c;
    for at in (0..kc).step_by(KERNELS) {
        let n = KERNELS.min(kc - at);
        let mut g = [[0f64; KERNELS]; 9];
        for l in 0..n {
            for (q, g) in g.iter_mut().enumerate() {
                g[l] = f64::from(w[(at + l) * 9 + q]);
            }
        }
        // G g: each column s of the kernels to 6 values, then each of the 6 rows of G g.
        let mut cols = [[[0f64; KERNELS]; BLOCK]; 3];
        for (s, col) in cols.iter_mut().enumerate() {
            *col = lanes([&g[s], &g[3 + s], &g[6 + s]], g_col);
        }
        let [c0, c1, c2] = &cols;
        for (i, ((a, b), c)) in c0.iter().zip(c1).zip(c2).enumerate() {
            let row = lanes([a, b, c], g_col);
            for (j, v) in row.iter().enumerate() {
                let o = (BLOCK * i + j) * kc + at;
                for (u, &v) in u[o..o + n].iter_mut().zip(v) {
                    *u = v as f32;
                }
            }
        }
    }
}

/// `gw[k][c] += Gᵀ dU G` (the adjoint of [`weights`], in `f64`), [`KERNELS`] kernels at a
/// time.
#[inline(always)]
fn weights_adjoint(du: &[f32], k: usize, c: usize, gw: &mut [f32]) {
    let kc = k * c;
    for at in (0..kc).step_by(KERNELS) {
        let n = KERNELS.min(kc - at);
        let mut d = [[0f64; KERNELS]; POSITIONS];
        for (xi, d) in d.iter_mut().enumerate() {
            let o = xi * kc + at;
            for (d, &v) in d.iter_mut().zip(&du[o..o + n]) {
                *d = f64::from(v);
            }
        }
        // Along each row i of dU (6 values to 3), then down each of the 3 columns.
        let mut rows = [[[0f64; KERNELS]; 3]; BLOCK];
        for (i, row) in rows.iter_mut().enumerate() {
            let r = BLOCK * i;
            *row = lanes(
                [&d[r], &d[r + 1], &d[r + 2], &d[r + 3], &d[r + 4], &d[r + 5]],
                gt_col,
            );
        }
        for s in 0..3 {
            let col = lanes(
                [
                    &rows[0][s],
                    &rows[1][s],
                    &rows[2][s],
                    &rows[3][s],
                    &rows[4][s],
                    &rows[5][s],
                ],
                gt_col,
            );
            for (r, col) in col.iter().enumerate() {
                for (l, &x) in col[..n].iter().enumerate() {
                    gw[(at + l) * 9 + 3 * r + s] += x as f32;
                }
            }
        }
    }
}

/// `Bᵀ d B` of a 6 × 6 input block whose values `d[r][s]` are vectors of `N` (tiles side by
/// side here, sixteen images in `trunk.rs`): value ξ = 6 i + j at `[ξ]`. Along the rows, then
/// down the columns.
#[inline(always)]
pub(crate) fn input_block<const N: usize>(d: &[[[f32; N]; BLOCK]; BLOCK]) -> [[f32; N]; POSITIONS] {
    let mut t = [[[0f32; N]; BLOCK]; BLOCK];
    for (t, d) in t.iter_mut().zip(d) {
        *t = lanes([&d[0], &d[1], &d[2], &d[3], &d[4], &d[5]], bt_col);
    }
    let mut v = [[0f32; N]; POSITIONS];
    for j in 0..BLOCK {
        let col = lanes(
            [&t[0][j], &t[1][j], &t[2][j], &t[3][j], &t[4][j], &t[5][j]],
            bt_col,
        );
        for (i, c) in col.into_iter().enumerate() {
            v[BLOCK * i + j] = c;
        }
    }
    v
}

/// `Aᵀ M A + bias` (then ReLU) of one block whose 36 products are the vectors of `N` at
/// `m[at + ξ · stride..]` (tiles side by side here, sixteen images in `trunk.rs`):
/// `[row][column]` of the 4 × 4 outputs. Along the rows, then down the columns; read in
/// place, not copied into an array first.
#[inline(always)]
pub(crate) fn output_block<const N: usize>(
    m: &[f32],
    stride: usize,
    at: usize,
    bias: f32,
    relu: bool,
) -> [[[f32; N]; TILE]; TILE] {
    let m = &m[at..at + (POSITIONS - 1) * stride + N];
    let p = |xi: usize| vector::<N>(m, xi * stride);
    let mut s = [[[0f32; N]; TILE]; BLOCK];
    for (i, s) in s.iter_mut().enumerate() {
        let r = BLOCK * i;
        *s = lanes(
            [p(r), p(r + 1), p(r + 2), p(r + 3), p(r + 4), p(r + 5)],
            at_col,
        );
    }
    let mut y = [[[0f32; N]; TILE]; TILE];
    for b in 0..TILE {
        let col = lanes(
            [&s[0][b], &s[1][b], &s[2][b], &s[3][b], &s[4][b], &s[5][b]],
            at_col,
        );
        for (a, v) in col.into_iter().enumerate() {
            y[a][b] = v;
        }
    }
    // Bias and ReLU in a pass of their own (applied as the columns were written, AVX-512
    // builds scattered them).
    for v in y.iter_mut().flatten() {
        *v = finish(*v, bias, relu);
    }
    y
}

/// `A dY Aᵀ` of one tile's 4 × 4 output gradient `dy[a][b]` (vectors of `N` tiles): the 36
/// values ξ = 6 i + j. Along the rows, then down the columns.
#[inline(always)]
fn output_adjoint_block<const N: usize>(dy: &[[[f32; N]; TILE]; TILE]) -> [[f32; N]; POSITIONS] {
    let mut p = [[[0f32; N]; BLOCK]; TILE];
    for (p, d) in p.iter_mut().zip(dy) {
        *p = lanes([&d[0], &d[1], &d[2], &d[3]], a_col);
    }
    let mut m = [[0f32; N]; POSITIONS];
    for j in 0..BLOCK {
        let col = lanes([&p[0][j], &p[1][j], &p[2][j], &p[3][j]], a_col);
        for (i, c) in col.into_iter().enumerate() {
            m[BLOCK * i + j] = c;
        }
    }
    m
}

/// `B dV Bᵀ` of one tile's 36 values `dv[ξ]` (vectors of `N` tiles): `[r][s]` of the 6 × 6
/// block. Along the rows, then down the columns.
#[inline(always)]
fn input_adjoint_block<const N: usize>(dv: &[[f32; N]; POSITIONS]) -> [[[f32; N]; BLOCK]; BLOCK] {
    let mut z = [[[0f32; N]; BLOCK]; BLOCK];
    for (i, z) in z.iter_mut().enumerate() {
        let r = BLOCK * i;
        *z = lanes(
            [
                &dv[r],
                &dv[r + 1],
                &dv[r + 2],
                &dv[r + 3],
                &dv[r + 4],
                &dv[r + 5],
            ],
            b_col,
        );
    }
    let mut d = [[[0f32; N]; BLOCK]; BLOCK];
    for s in 0..BLOCK {
        let col = lanes(
            [&z[0][s], &z[1][s], &z[2][s], &z[3][s], &z[4][s], &z[5][s]],
            b_col,
        );
        for (r, c) in col.into_iter().enumerate() {
            d[r][s] = c;
        }
    }
    d
}

// The passes below transform the tiles of a whole group [`LANES`] at a time, in the order of
// V's and M's columns (image, tile row, tile), through an *expansion* in the scratch: run ρ
// holds value ρ of every tile of the group (ρ = 6 r + j, the block's row and column, for the
// inputs; 4 a + b for the outputs), so that the block transforms read and write whole
// vectors. The runs are filled from (or added back into) the phases of a padded plane, tile
// row by tile row, with contiguous copies.

/// Tiles per vector of the block transforms in training (`trunk.rs` puts sixteen images in
/// the lanes instead).
const LANES: usize = 16;

/// Copies `n` values (a tile row's run; 4 and 8 without a loop).
#[inline(always)]
fn copy_run(dst: &mut [f32], src: &[f32], n: usize) {
    match n {
        8 => dst[..8].copy_from_slice(&src[..8]),
        4 => dst[..4].copy_from_slice(&src[..4]),
        _ => dst[..n].copy_from_slice(&src[..n]),
    }
}

/// Adds `n` values of `src` into `dst`.
#[inline(always)]
fn add_run(dst: &mut [f32], src: &[f32], n: usize) {
    #[inline(always)]
    fn add<const K: usize>(dst: &mut [f32], src: &[f32]) {
        let (d, s): (&mut [f32; K], &[f32; K]) = (
            (&mut dst[..K]).try_into().expect("K values"),
            src[..K].try_into().expect("K values"),
        );
        for l in 0..K {
            d[l] += s[l];
        }
    }
    match n {
        8 => add::<8>(dst, src),
        4 => add::<4>(dst, src),
        _ => {
            for (d, &s) in dst[..n].iter_mut().zip(&src[..n]) {
                *d += s;
            }
        }
    }
}

/// Splits an image row into the phases of a padded plane row (`half` values each): padded
/// column `col + 1` is value `(col + 1) / 4` of phase `(col + 1) mod 4`; each value
/// normalised on the way when `bn` gives its channel's batch norm (`[γ, β, mean, inv]`).
#[inline(always)]
fn to_phases(row: &[f32], phases: &mut [f32], half: usize, bn: Option<[f32; 4]>) {
    match bn {
        None => split_phases::<false>(row, phases, half, [0.0; 4]),
        Some(k) => split_phases::<true>(row, phases, half, k),
    }
}

/// A value as [`to_phases`] stores it: `v`, or its batch norm's output when `NORM`.
#[inline(always)]
fn stored<const NORM: bool>(v: f32, k: [f32; 4]) -> f32 {
    if NORM {
        batch_norm::normalise(v, k)
    } else {
        v
    }
}

#[inline(always)]
fn split_phases<const NORM: bool>(row: &[f32], phases: &mut [f32], half: usize, k: [f32; 4]) {
    let (p0, rest) = phases.split_at_mut(half);
    let (p1, rest) = rest.split_at_mut(half);
    let (p2, p3) = rest.split_at_mut(half);
    let quads = row.chunks_exact(TILE);
    let (q, tail) = (row.len() / TILE, quads.remainder());
    for ((((v, a), b), c), d) in quads
        .zip(p1.iter_mut())
        .zip(p2.iter_mut())
        .zip(p3.iter_mut())
        .zip(p0[1..].iter_mut())
    {
        (*a, *b, *c, *d) = (
            stored::<NORM>(v[0], k),
            stored::<NORM>(v[1], k),
            stored::<NORM>(v[2], k),
            stored::<NORM>(v[3], k),
        );
    }
    for (i, &v) in tail.iter().enumerate() {
        [&mut *p1, &mut *p2, &mut *p3][i][q] = stored::<NORM>(v, k);
    }
}

/// The inverse of [`to_phases`]: the image row from a padded plane row.
#[inline(always)]
fn from_phases(phases: &[f32], half: usize, row: &mut [f32]) {
    let (p0, rest) = phases.split_at(half);
    let (p1, rest) = rest.split_at(half);
    let (p2, p3) = rest.split_at(half);
    let q = row.len() / TILE;
    let mut quads = row.chunks_exact_mut(TILE);
    for ((((v, &a), &b), &c), &d) in quads.by_ref().zip(p1).zip(p2).zip(p3).zip(&p0[1..]) {
        (v[0], v[1], v[2], v[3]) = (a, b, c, d);
    }
    for (i, v) in quads.into_remainder().iter_mut().enumerate() {
        *v = [p1, p2, p3][i][q];
    }
}

/// `row[4 t + b] = runs[b][t]` (as far as `row` goes).
#[inline(always)]
fn interleave4(runs: [&[f32]; TILE], row: &mut [f32]) {
    let q = row.len() / TILE;
    let mut quads = row.chunks_exact_mut(TILE);
    for ((((v, &a), &b), &c), &d) in quads
        .by_ref()
        .zip(runs[0])
        .zip(runs[1])
        .zip(runs[2])
        .zip(runs[3])
    {
        (v[0], v[1], v[2], v[3]) = (a, b, c, d);
    }
    for (b, v) in quads.into_remainder().iter_mut().enumerate() {
        *v = runs[b][q];
    }
}

/// `runs[b][t] = row[4 t + b]`, zeros past the end of `row` (each run `tw` long).
#[inline(always)]
fn deinterleave4(row: &[f32], tw: usize, runs: [&mut [f32]; TILE]) {
    let [r0, r1, r2, r3] = runs;
    let (r0, r1, r2, r3) = (&mut r0[..tw], &mut r1[..tw], &mut r2[..tw], &mut r3[..tw]);
    let quads = row.chunks_exact(TILE);
    let (q, tail) = (row.len() / TILE, quads.remainder());
    for ((((v, a), b), c), d) in quads
        .zip(r0.iter_mut())
        .zip(r1.iter_mut())
        .zip(r2.iter_mut())
        .zip(r3.iter_mut())
    {
        (*a, *b, *c, *d) = (v[0], v[1], v[2], v[3]);
    }
    if q < tw {
        let mut last = [0f32; TILE];
        last[..tail.len()].copy_from_slice(tail);
        (r0[q], r1[q], r2[q], r3[q]) = (last[0], last[1], last[2], last[3]);
    }
}

/// Where the run of column `j` of a tile row's blocks starts in a padded plane row (see
/// [`Geometry::padded`]): tile `tx`'s column `j` is the run's value `tx`.
#[inline(always)]
fn column(j: usize, half: usize) -> usize {
    (j % TILE) * half + j / TILE
}

/// The `K` vectors `buf[ρ · stride + at ..][..N]`, ρ = 0..K.
#[inline(always)]
fn planes<const N: usize, const K: usize>(buf: &[f32], stride: usize, at: usize) -> [[f32; N]; K] {
    let mut v = [[0f32; N]; K];
    for (rho, v) in v.iter_mut().enumerate() {
        *v = *vector::<N>(buf, rho * stride + at);
    }
    v
}

/// The vectors of `R × C` runs of an expansion as a block: `[r][c]` from run `C r + c`
/// (runs `stride` apart), lanes `at..at + LANES`.
#[inline(always)]
fn block_at<const R: usize, const C: usize>(
    e: &[f32],
    stride: usize,
    at: usize,
) -> [[[f32; LANES]; C]; R] {
    let mut b = [[[0f32; LANES]; C]; R];
    for (r, b) in b.iter_mut().enumerate() {
        for (c, b) in b.iter_mut().enumerate() {
            *b = *vector::<LANES>(e, (C * r + c) * stride + at);
        }
    }
    b
}

/// Writes the first `n` lanes of vector ρ of `v` at `buf[ρ · stride + at ..]` (the inverse of
/// [`planes`]; `n < N` for a group's last, partial vector).
#[inline(always)]
fn set_planes<const N: usize, const K: usize>(
    buf: &mut [f32],
    stride: usize,
    at: usize,
    v: &[[f32; N]; K],
    n: usize,
) {
    for (rho, v) in v.iter().enumerate() {
        let o = rho * stride + at;
        if n == N {
            buf[o..o + N].copy_from_slice(v);
        } else {
            buf[o..o + n].copy_from_slice(&v[..n]);
        }
    }
}

/// The length of a group's runs: its `t` tiles, to whole vectors.
#[inline(always)]
fn run_len(t: usize) -> usize {
    t.next_multiple_of(LANES)
}

/// `V_ξ[c][t] = (Bᵀ d B)_ξ` for the 6 × 6 input block `d` of every tile `t` of the `n` images
/// in `x` (normalised by `bn` as they are read, when given).
#[inline(always)]
fn inputs(
    g: &Geometry,
    x: &[f32],
    n: usize,
    bn: Option<Normalised<'_>>,
    scratch: &mut [f32],
    v: &mut [f32],
) {
    let (h, w, th, tw, tiles) = (g.h, g.w, g.th, g.tw, g.tiles());
    let (rows, half) = g.padded();
    let pw = TILE * half;
    let t_all = n * tiles;
    let (ct, tp) = (g.c * t_all, run_len(t_all));
    let (plane, e) = scratch.split_at_mut(rows * pw);
    let e = &mut e[..POSITIONS * tp];
    plane.fill(0.0);
    for ch in 0..g.c {
        let k = bn.map(|bn| bn.channel(ch));
        for img in 0..n {
            let src = &x[(img * g.c + ch) * h * w..(img * g.c + ch + 1) * h * w];
            for (yy, row) in src.chunks_exact(w).enumerate() {
                to_phases(row, &mut plane[(yy + 1) * pw..(yy + 2) * pw], half, k);
            }
            // The expansion: run 6 r + j, tile (ty, tx) = the block's row r, column j.
            for ty in 0..th {
                let at = img * tiles + ty * tw;
                for r in 0..BLOCK {
                    let row = &plane[(TILE * ty + r) * pw..(TILE * ty + r + 1) * pw];
                    for j in 0..BLOCK {
                        let dst = &mut e[(BLOCK * r + j) * tp + at..];
                        copy_run(dst, &row[column(j, half)..], tw);
                    }
                }
            }
        }
        for t0 in (0..t_all).step_by(LANES) {
            let block = input_block(&block_at::<BLOCK, BLOCK>(e, tp, t0));
            set_planes(v, ct, ch * t_all + t0, &block, LANES.min(t_all - t0));
        }
    }
}

/// `dx = Σ B dV Bᵀ` over every tile's 6 × 6 input block (the adjoint of [`inputs`]: the
/// blocks overlap, so their contributions add up, tile row by tile row).
#[inline(always)]
fn inputs_adjoint(g: &Geometry, n: usize, dv: &[f32], dx: &mut [f32], scratch: &mut [f32]) {
    let (h, w, th, tw, tiles) = (g.h, g.w, g.th, g.tw, g.tiles());
    let (rows, half) = g.padded();
    let pw = TILE * half;
    let t_all = n * tiles;
    let (ct, tp) = (g.c * t_all, run_len(t_all));
    let (plane, e) = scratch.split_at_mut(rows * pw);
    let e = &mut e[..POSITIONS * tp];
    for ch in 0..g.c {
        for t0 in (0..t_all).step_by(LANES) {
            let d = input_adjoint_block(&planes::<LANES, POSITIONS>(dv, ct, ch * t_all + t0));
            for (r, d) in d.iter().enumerate() {
                for (j, d) in d.iter().enumerate() {
                    let o = (BLOCK * r + j) * tp + t0;
                    e[o..o + LANES].copy_from_slice(d);
                }
            }
        }
        for img in 0..n {
            plane.fill(0.0);
            for ty in 0..th {
                let at = img * tiles + ty * tw;
                for r in 0..BLOCK {
                    let row = &mut plane[(TILE * ty + r) * pw..(TILE * ty + r + 1) * pw];
                    for j in 0..BLOCK {
                        let src = &e[(BLOCK * r + j) * tp + at..];
                        add_run(&mut row[column(j, half)..], src, tw);
                    }
                }
            }
            let dst = &mut dx[(img * g.c + ch) * h * w..(img * g.c + ch + 1) * h * w];
            for (yy, row) in dst.chunks_exact_mut(w).enumerate() {
                from_phases(&plane[(yy + 1) * pw..(yy + 2) * pw], half, row);
            }
        }
    }
}

/// `y[k] = Aᵀ M A + b[k]` for every tile (outputs past the image's edge dropped).
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn outputs(
    g: &Geometry,
    n: usize,
    m: &[f32],
    b: &[f32],
    relu: bool,
    y: &mut [f32],
    scratch: &mut [f32],
) {
    let (h, w, th, tw, tiles) = (g.h, g.w, g.th, g.tw, g.tiles());
    let t_all = n * tiles;
    let (kt, tp) = (g.k * t_all, run_len(t_all));
    let e = &mut scratch[..TILE * TILE * tp];
    for (kk, &bias) in b[..g.k].iter().enumerate() {
        // The expansion: run 4 a + b = output row a, column b of every tile.
        for t0 in (0..t_all).step_by(LANES) {
            let block = output_block::<LANES>(m, kt, kk * t_all + t0, bias, relu);
            for (a, block) in block.iter().enumerate() {
                for (bb, v) in block.iter().enumerate() {
                    let o = (TILE * a + bb) * tp + t0;
                    e[o..o + LANES].copy_from_slice(v);
                }
            }
        }
        for img in 0..n {
            let out = &mut y[(img * g.k + kk) * h * w..(img * g.k + kk + 1) * h * w];
            for ty in 0..th {
                let at = img * tiles + ty * tw;
                for a in 0..TILE.min(h - TILE * ty) {
                    let run = |bb: usize| &e[(TILE * a + bb) * tp + at..][..tw];
                    let row = &mut out[(TILE * ty + a) * w..(TILE * ty + a + 1) * w];
                    interleave4([run(0), run(1), run(2), run(3)], row);
                }
            }
        }
    }
}

/// `dM = A dY Aᵀ` for every tile's 4 × 4 block of `dy` (zeros past the image's edge), the
/// adjoint of [`outputs`], written into `ws.m`.
#[inline(always)]
fn outputs_adjoint(g: &Geometry, n: usize, dy: &[f32], ws: &mut Winograd) {
    let (h, w, th, tw, tiles) = (g.h, g.w, g.th, g.tw, g.tiles());
    let t_all = n * tiles;
    let (kt, tp) = (g.k * t_all, run_len(t_all));
    let e = &mut ws.scratch[..TILE * TILE * tp];
    for kk in 0..g.k {
        for img in 0..n {
            let src = &dy[(img * g.k + kk) * h * w..(img * g.k + kk + 1) * h * w];
            for ty in 0..th {
                let at = img * tiles + ty * tw;
                for a in 0..TILE {
                    let y0 = TILE * ty + a;
                    let (r0, rest) = e[TILE * a * tp..].split_at_mut(tp);
                    let (r1, rest) = rest.split_at_mut(tp);
                    let (r2, r3) = rest.split_at_mut(tp);
                    let runs = [r0, r1, r2, r3].map(|r| &mut r[at..at + tw]);
                    if y0 < h {
                        deinterleave4(&src[y0 * w..(y0 + 1) * w], tw, runs);
                    } else {
                        for r in runs {
                            r.fill(0.0);
                        }
                    }
                }
            }
        }
        for t0 in (0..t_all).step_by(LANES) {
            let dm = output_adjoint_block(&block_at::<TILE, TILE>(e, tp, t0));
            set_planes(&mut ws.m, kt, kk * t_all + t0, &dm, LANES.min(t_all - t0));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    /// Direct 3 × 3 convolution with padding 1, in f64: `y[b][k][i][j] = Σ x[b][c][i+r−1][j+s−1]
    /// · w[k][c][r][s] + bias[k]`, and its gradients from `dy`, by the definition.
    #[allow(clippy::type_complexity)]
    fn direct(
        g: &Geometry,
        batch: usize,
        x: &[f32],
        w: &[f32],
        bias: &[f32],
        dy: &[f32],
    ) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
        let (c, k, h, wd) = (g.c, g.k, g.h, g.w);
        let xi = |b: usize, ch: usize, i: isize, j: isize| {
            if i < 0 || j < 0 || i >= h as isize || j >= wd as isize {
                None
            } else {
                Some(((b * c + ch) * h + i as usize) * wd + j as usize)
            }
        };
        let mut y = vec![0f64; batch * k * h * wd];
        let mut dx = vec![0f64; batch * c * h * wd];
        let mut dw = vec![0f64; k * c * 9];
        for b in 0..batch {
            for (kk, &bk) in bias.iter().enumerate() {
                for i in 0..h {
                    for j in 0..wd {
                        let o = ((b * k + kk) * h + i) * wd + j;
                        let mut s = bk as f64;
                        for ch in 0..c {
                            for r in 0..3 {
                                for q in 0..3 {
                                    let wi = (kk * c + ch) * 9 + 3 * r + q;
                                    if let Some(at) = xi(
                                        b,
                                        ch,
                                        i as isize + r as isize - 1,
                                        j as isize + q as isize - 1,
                                    ) {
                                        s += x[at] as f64 * w[wi] as f64;
                                        dx[at] += dy[o] as f64 * w[wi] as f64;
                                        dw[wi] += dy[o] as f64 * x[at] as f64;
                                    }
                                }
                            }
                        }
                        y[o] = s;
                    }
                }
            }
        }
        (y, dx, dw)
    }

    fn close(name: &str, got: &[f32], want: &[f64], scale: f64) {
        assert_eq!(got.len(), want.len(), "{name}: length");
        for (i, (&a, &b)) in got.iter().zip(want).enumerate() {
            assert!(
                (a as f64 - b).abs() <= 1e-6 * scale,
                "{name}[{i}]: {a} against the definition's {b}"
            );
        }
    }

    /// Uniform(−1, 1) input, weights, bias and output gradient for `batch` images of `g`.
    fn random_case(
        rng: &mut impl Rng,
        g: &Geometry,
        batch: usize,
    ) -> (Vec<f32>, Vec<f32>, Vec<f32>, Vec<f32>) {
        let mut r = |n: usize| -> Vec<f32> { (0..n).map(|_| rng.gen_range(-1.0..1.0)).collect() };
        (
            r(batch * g.c * g.h * g.w),
            r(g.k * g.c * 9),
            r(g.k),
            r(batch * g.k * g.h * g.w),
        )
    }

    #[test]
    fn forward_and_both_gradients_match_the_direct_convolution() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        // Sides that are multiples of 4 and sides that are not (a last tile past the edge:
        // its rows or columns dropped), one tile or many, groups of one image and of several,
        // a partial last group, a group's last vector of tiles partial.
        for &(c, k, h, w, batch) in &[
            (16, 5, 8, 8, 3),
            (3, 2, 17, 19, 2),
            (2, 3, 6, 61, 3),
            (2, 2, 5, 18, 7),
            (17, 4, 5, 7, 2),
            (3, 2, 1, 1, 2),
            (4, 3, 3, 2, 30),
            (20, 6, 32, 32, 2),
            (16, 8, 16, 16, 9),
        ] {
            let g = Geometry::new(c, k, h, w);
            let (x, wt, bias, dy) = random_case(&mut rng, &g, batch);
            let (y_def, dx_def, dw_def) = direct(&g, batch, &x, &wt, &bias, &dy);
            let mut ws = Winograd::default();
            ws.reserve(&g, batch);
            let mut pack = Pack::default();
            let mut y = vec![f32::NAN; y_def.len()];
            forward(
                &g, batch, &x, None, &wt, &bias, &mut y, false, &mut ws, None, &mut pack,
            );
            // Sums of 9 c products of values in ±1: rounding grows with their count. F(4×4,
            // 3×3)'s transforms amplify it (coefficients up to 8 and 5, sixths in G): the
            // largest error seen is 4.1e-7 of the scale (F(2×2, 3×3)'s was 2.5e-8); a wrong
            // coefficient, sign or index errs by a tenth or more.
            let scale = (9 * c) as f64;
            let at = format!("c={c} k={k} {h}x{w} batch={batch}");
            close(&format!("y ({at})"), &y, &y_def, scale);
            // With the ReLU fused: exactly max(y, 0) of the same sums.
            let mut y_relu = vec![f32::NAN; y_def.len()];
            forward(
                &g,
                batch,
                &x,
                None,
                &wt,
                &bias,
                &mut y_relu,
                true,
                &mut ws,
                None,
                &mut pack,
            );
            let relu: Vec<f32> = y.iter().map(|v| v.max(0.0)).collect();
            assert_eq!(y_relu, relu, "{at}");
            let mut dx = vec![f32::NAN; dx_def.len()];
            let mut dw = vec![0.5f32; dw_def.len()];
            backward(
                &g,
                batch,
                &x,
                None,
                &wt,
                &dy,
                &mut dw,
                Some(&mut dx),
                &mut ws,
                None,
                &mut pack,
            );
            close(&format!("dx ({at})"), &dx, &dx_def, scale);
            let dw_def: Vec<f64> = dw_def.iter().map(|v| v + 0.5).collect(); // accumulated
            close(&format!("dw ({at})"), &dw, &dw_def, (batch * h * w) as f64);
            // Without the input gradient, the weight gradient is the same.
            let mut dw2 = vec![0.5f32; dw_def.len()];
            backward(
                &g, batch, &x, None, &wt, &dy, &mut dw2, None, &mut ws, None, &mut pack,
            );
            assert_eq!(dw, dw2, "{at}");
        }
    }

    /// With a batch norm's constants given (`Normalised`), the convolution reads its input
    /// normalised: the same bits as the convolution of the normalised input stored first
    /// (batch norm's own pass), forward and both gradients, whatever the sides and groups;
    /// and the backward pass reading the transformed inputs the forward pass kept gives the
    /// bits of transforming them again.
    #[test]
    fn a_normalised_input_and_a_kept_transform_give_the_bits_of_the_plain_pass() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
        for &(c, k, h, w, batch) in &[(16, 5, 8, 8, 3), (3, 2, 17, 19, 2), (17, 4, 5, 7, 5)] {
            let g = Geometry::new(c, k, h, w);
            let (x, wt, bias, dy) = random_case(&mut rng, &g, batch);
            // γ, β, then the means and inverse deviations, far from 1 and 0 so that a
            // constant read from the wrong channel or left out shows.
            let params: Vec<f32> = (0..2 * c).map(|_| rng.gen_range(-3.0..3.0)).collect();
            let mut stats: Vec<f32> = (0..c).map(|_| rng.gen_range(-1.0..1.0)).collect();
            stats.extend((0..c).map(|_| rng.gen_range(0.5f32..4.0)));
            let bn = Normalised {
                params: &params,
                stats: &stats,
            };
            let hw = h * w;
            let stored: Vec<f32> = x
                .iter()
                .enumerate()
                .map(|(i, &v)| batch_norm::normalise(v, bn.channel(i / hw % c)))
                .collect();
            let mut ws = Winograd::default();
            ws.reserve(&g, batch);
            let mut pack = Pack::default();
            let at = format!("c={c} k={k} {h}x{w} batch={batch}");
            // The stored normalised input; the raw input normalised as it is read; and that
            // again with the transformed inputs kept from the forward pass for the backward.
            let mut y = vec![vec![f32::NAN; batch * k * hw]; 3];
            let mut dx = vec![vec![f32::NAN; x.len()]; 3];
            let mut dw = vec![vec![0.25f32; wt.len()]; 3];
            let mut kept = vec![f32::NAN; g.kept_len(batch)];
            for (i, (input, norm, keep)) in [
                (&stored, None, false),
                (&x, Some(bn), false),
                (&x, Some(bn), true),
            ]
            .into_iter()
            .enumerate()
            {
                forward(
                    &g,
                    batch,
                    input,
                    norm,
                    &wt,
                    &bias,
                    &mut y[i],
                    true,
                    &mut ws,
                    keep.then_some(&mut kept[..]),
                    &mut pack,
                );
                if keep {
                    assert!(kept.iter().all(|v| !v.is_nan()), "every value kept ({at})");
                }
                backward(
                    &g,
                    batch,
                    input,
                    norm,
                    &wt,
                    &dy,
                    &mut dw[i],
                    Some(&mut dx[i]),
                    &mut ws,
                    keep.then_some(&kept[..]),
                    &mut pack,
                );
            }
            let bits = |v: &[f32]| v.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
            for i in 1..3 {
                assert_eq!(bits(&y[0]), bits(&y[i]), "y {i} ({at})");
                assert_eq!(bits(&dx[0]), bits(&dx[i]), "dx {i} ({at})");
                assert_eq!(bits(&dw[0]), bits(&dw[i]), "dw {i} ({at})");
            }
            // And the constants matter: the raw input gives another output.
            let mut raw = vec![f32::NAN; batch * k * hw];
            forward(
                &g, batch, &x, None, &wt, &bias, &mut raw, true, &mut ws, None, &mut pack,
            );
            assert_ne!(bits(&raw), bits(&y[1]), "{at}");
        }
    }
}
