//! 3 × 3 convolutions with padding 1 by Winograd's minimal filtering F(2×2, 3×3) (Lavin and
//! Gray, "Fast Algorithms for Convolutional Neural Networks", CVPR 2016).
//!
//! Each 2 × 2 block of outputs (a *tile*) is computed from the 4 × 4 block of inputs around
//! it as `Y = Aᵀ [Σ_c (G g G ᵀ) ⊙ (Bᵀ d B)] A`: after the weights `g` and the input blocks `d`
//! are transformed, the sum over input channels is 16 independent matrix products (one per
//! position ξ of the 4 × 4 block), `M_ξ (out × tiles) = U_ξ (out × in) · V_ξ (in × tiles)`,
//! with 16 multiplications per tile and channel pair instead of direct convolution's 36:
//! 2.25× fewer. The transforms' coefficients are 0, ±1 and ±½, so the results differ from a
//! direct convolution only by rounding (the tests bound it).
//!
//! The backward pass is the exact adjoint of this forward pass (which computes the same
//! function as the convolution, so it *is* the convolution's gradient): the output gradient's
//! tiles are transformed once, `dM = A dY Aᵀ`; then `dU_ξ += dM_ξ · V_ξᵀ` (weights, back
//! through `g ↦ G g Gᵀ`) and `dV_ξ = U_ξᵀ · dM_ξ` (inputs, back through `d ↦ Bᵀ d B` and the
//! overlap of the input blocks).
//!
//! Images are processed in groups of about [`TARGET_TILES`] tiles so that the products are
//! wide enough for the SGEMM and the transformed blocks stay in cache; every buffer lives in
//! a [`Winograd`] workspace sized once, so a warm network allocates nothing.

use crate::gemm::{gemm, Pack};

/// Input channels from which a 3 × 3, padding-1 convolution goes through Winograd: with
/// fewer (the CIFAR-10 CNN's first layer has 3), each of the 16 products is too thin for the
/// SGEMM and im2col is faster.
const MIN_CHANNELS: usize = 16;

/// Tiles per group of images (at least one image per group).
const TARGET_TILES: usize = 256;

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
            th: h.div_ceil(2),
            tw: w.div_ceil(2),
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

    /// Side lengths of the zero-padded plane every tile reads from or adds into.
    fn padded(&self) -> (usize, usize) {
        (2 * self.th + 2, 2 * self.tw + 2)
    }

    /// Buffer sizes this convolution needs: `(u, v, m, scratch)`.
    fn sizes(&self, batch: usize) -> [usize; 4] {
        let t = self.group().min(batch.max(1)) * self.tiles();
        let (ph, pw) = self.padded();
        [
            16 * self.k * self.c,
            16 * self.c * t,
            16 * self.k * t,
            ph * pw + 17 * self.tw,
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
    /// Transform every tile by runs of whole tile rows, without the eight-tile register
    /// blocks: the twin the tests compare the blocks with (the same bits).
    by_runs: bool,
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
    }
}

/// `y = conv(x, w) + b` for `batch` images (`x`: `[batch][c][h][w]`, `w`: `[k][c][3][3]`, `b`:
/// `[k]`, `y`: `[batch][k][h][w]`), then `max(y, 0)` if `relu` (a ReLU fused into the pass
/// that writes `y`).
#[allow(clippy::too_many_arguments)]
#[inline(always)]
pub(crate) fn forward(
    g: &Geometry,
    batch: usize,
    x: &[f32],
    w: &[f32],
    b: &[f32],
    y: &mut [f32],
    relu: bool,
    ws: &mut Winograd,
    pack: &mut Pack,
) {
    let (c, k, hw) = (g.c, g.k, g.h * g.w);
    weights(w, k, c, &mut ws.u);
    for (i0, n, t) in g.groups(batch) {
        inputs(g, &x[i0 * c * hw..(i0 + n) * c * hw], n, ws);
        for xi in 0..16 {
            gemm(
                k,
                t,
                c,
                &ws.u[xi * k * c..(xi + 1) * k * c],
                false,
                &ws.v[xi * c * t..(xi + 1) * c * t],
                false,
                0.0,
                &mut ws.m[xi * k * t..(xi + 1) * k * t],
                pack,
            );
        }
        outputs(
            g,
            n,
            &ws.m,
            b,
            relu,
            &mut y[i0 * k * hw..(i0 + n) * k * hw],
            &mut ws.scratch,
            ws.by_runs,
        );
    }
}

/// The gradient of [`forward`]: `gw += ∂/∂w`, and `dx = ∂/∂x` (overwritten) when given, from
/// the output gradient `dy`. (The bias gradient, the sums of `dy`, is the caller's.)
#[allow(clippy::too_many_arguments)]
#[inline(always)]
pub(crate) fn backward(
    g: &Geometry,
    batch: usize,
    x: &[f32],
    w: &[f32],
    dy: &[f32],
    gw: &mut [f32],
    mut dx: Option<&mut [f32]>,
    ws: &mut Winograd,
    pack: &mut Pack,
) {
    let (c, k, hw) = (g.c, g.k, g.h * g.w);
    if dx.is_some() {
        weights(w, k, c, &mut ws.u);
    }
    ws.du[..16 * k * c].fill(0.0);
    for (i0, n, t) in g.groups(batch) {
        outputs_adjoint(g, n, &dy[i0 * k * hw..(i0 + n) * k * hw], ws);
        inputs(g, &x[i0 * c * hw..(i0 + n) * c * hw], n, ws);
        for xi in 0..16 {
            gemm(
                k,
                c,
                t,
                &ws.m[xi * k * t..(xi + 1) * k * t],
                false,
                &ws.v[xi * c * t..(xi + 1) * c * t],
                true,
                1.0,
                &mut ws.du[xi * k * c..(xi + 1) * k * c],
                pack,
            );
        }
        if let Some(dx) = dx.as_deref_mut() {
            for xi in 0..16 {
                gemm(
                    c,
                    t,
                    k,
                    &ws.u[xi * k * c..(xi + 1) * k * c],
                    true,
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
                ws.by_runs,
            );
        }
    }
    weights_adjoint(&ws.du, k, c, gw);
}

/// `U_ξ[k][c] = (G g G ᵀ)_ξ` for every 3 × 3 kernel `g = w[k][c]`, with
/// `G = [[1, 0, 0], [½, ½, ½], [½, −½, ½], [0, 0, 1]]`.
#[inline(always)]
pub(crate) fn weights(w: &[f32], k: usize, c: usize, u: &mut [f32]) {
    let kc = k * c;
    // G v for a 3-vector v.
    let gv = |[a, b, d]: [f32; 3]| [a, 0.5 * (a + b + d), 0.5 * (a - b + d), d];
    for (j, g) in w[..9 * kc].chunks_exact(9).enumerate() {
        // G g: each column of g to 4 values, then each of the 4 rows of G g.
        let cols: [[f32; 4]; 3] = std::array::from_fn(|col| gv([g[col], g[3 + col], g[6 + col]]));
        for r in 0..4 {
            for (s, v) in gv([cols[0][r], cols[1][r], cols[2][r]])
                .into_iter()
                .enumerate()
            {
                u[(4 * r + s) * kc + j] = v;
            }
        }
    }
}

/// `gw[k][c] += Gᵀ dU G` (the adjoint of [`weights`]).
#[inline(always)]
fn weights_adjoint(du: &[f32], k: usize, c: usize, gw: &mut [f32]) {
    let kc = k * c;
    // Gᵀ u for a 4-vector u.
    let gt = |u: [f32; 4]| {
        [
            u[0] + 0.5 * (u[1] + u[2]),
            0.5 * (u[1] - u[2]),
            0.5 * (u[1] + u[2]) + u[3],
        ]
    };
    for (j, gout) in gw[..9 * kc].chunks_exact_mut(9).enumerate() {
        let d = |r: usize, s: usize| du[(4 * r + s) * kc + j];
        // Rows first: each row of dU (4 values) to 3.
        let rows: [[f32; 3]; 4] = std::array::from_fn(|r| gt([d(r, 0), d(r, 1), d(r, 2), d(r, 3)]));
        for col in 0..3 {
            let v = gt([rows[0][col], rows[1][col], rows[2][col], rows[3][col]]);
            for (r, &x) in v.iter().enumerate() {
                gout[3 * r + col] += x;
            }
        }
    }
}

// The transforms below work on whole tile rows: `tw` tiles side by side, each of their values
// in its own contiguous run of `tw` floats, so every loop is a plain element-wise pass that
// the compiler vectorises. Padded image rows are stored split into their even and odd
// columns (`[even: tw + 1][odd: tw + 1]`), so the 4 columns `2 tx .. 2 tx + 4` of tile `tx`
// are `even[tx], odd[tx], even[tx + 1], odd[tx + 1]`: contiguous runs again. Each transform
// takes eight tiles at a time in registers (`*_tiles8`, `input_block`, `output_block`: the
// whole 4 × 4 transform of eight tiles as 8-float vectors, no scratch rows, no per-run loop overhead), and the runs only for
// the tiles past the last multiple of eight; both compute the same sums in the same order
// (tested bit for bit).

/// `buf[at..at + n]`.
#[inline(always)]
fn run(buf: &mut [f32], at: usize, n: usize) -> &mut [f32] {
    &mut buf[at..at + n]
}

/// `o = f(a, b)` element by element.
#[inline(always)]
fn zip2(o: &mut [f32], a: &[f32], b: &[f32], f: impl Fn(f32, f32) -> f32) {
    for ((o, &a), &b) in o.iter_mut().zip(a).zip(b) {
        *o = f(a, b);
    }
}

/// `o = f(a, b, c)` element by element.
#[inline(always)]
fn zip3(o: &mut [f32], a: &[f32], b: &[f32], c: &[f32], f: impl Fn(f32, f32, f32) -> f32) {
    for (((o, &a), &b), &c) in o.iter_mut().zip(a).zip(b).zip(c) {
        *o = f(a, b, c);
    }
}

/// `o += a` element by element.
#[inline(always)]
fn add_into(o: &mut [f32], a: &[f32]) {
    for (o, &a) in o.iter_mut().zip(a) {
        *o += a;
    }
}

/// `row[2 t] = a[t]`, `row[2 t + 1] = b[t]` (as far as `row` goes).
#[inline(always)]
fn interleave(a: &[f32], b: &[f32], row: &mut [f32]) {
    let n = row.len();
    let mut pairs = row.chunks_exact_mut(2);
    for ((pair, &x), &y) in pairs.by_ref().zip(a).zip(b) {
        pair[0] = x;
        pair[1] = y;
    }
    if let [last] = pairs.into_remainder() {
        *last = a[n / 2];
    }
}

/// `a[t] = row[2 t]`, `b[t] = row[2 t + 1]` (the rest of `a` and `b` as it was).
#[inline(always)]
fn deinterleave(row: &[f32], a: &mut [f32], b: &mut [f32]) {
    let pairs = row.chunks_exact(2);
    if let [last] = pairs.remainder() {
        a[row.len() / 2] = *last;
    }
    for ((pair, x), y) in pairs.zip(a.iter_mut()).zip(b.iter_mut()) {
        *x = pair[0];
        *y = pair[1];
    }
}

/// `V_ξ[c][t] = (Bᵀ d B)_ξ` for the 4 × 4 input block `d` of every tile `t` of the `n` images
/// in `x`, with `Bᵀ = [[1, 0, −1, 0], [0, 1, 1, 0], [0, −1, 1, 0], [0, 1, 0, −1]]`, so
/// `Bᵀ d = [d0 − d2, d1 + d2, d2 − d1, d1 − d3]`.
#[inline(always)]
fn inputs(g: &Geometry, x: &[f32], n: usize, ws: &mut Winograd) {
    let (h, w, th, tw) = (g.h, g.w, g.th, g.tw);
    let (ph, pw) = g.padded();
    let half = tw + 1;
    let t_all = n * g.tiles();
    let ct = g.c * t_all;
    let (plane, rows) = ws.scratch.split_at_mut(ph * pw);
    plane.fill(0.0);
    for img in 0..n {
        for ch in 0..g.c {
            let src = &x[(img * g.c + ch) * h * w..(img * g.c + ch + 1) * h * w];
            for (yy, row) in src.chunks_exact(w).enumerate() {
                // Padded column p = col + 1: odd[t] = row[2 t], even[t + 1] = row[2 t + 1].
                let (even, odd) = plane[(yy + 1) * pw..(yy + 2) * pw].split_at_mut(half);
                deinterleave(row, odd, &mut even[1..]);
            }
            let at = ch * t_all + img * g.tiles();
            for ty in 0..th {
                let t0 = at + ty * tw;
                let band = &plane[2 * ty * pw..(2 * ty + 4) * pw];
                // Eight tiles at a time in registers, the rest (tw mod 8) by runs.
                let full = if ws.by_runs { 0 } else { tw - tw % 8 };
                for tx in (0..full).step_by(8) {
                    set_planes8(&mut ws.v, ct, t0 + tx, &input_tiles8(band, pw, half, tx));
                }
                let rest = tw - full;
                if rest == 0 {
                    continue;
                }
                // Along each of the block's 4 rows r: rows[4 r + j] = (Bᵀ d_r)_j.
                for r in 0..4 {
                    let (even, odd) = band[r * pw..(r + 1) * pw].split_at(half);
                    let (d0, d1) = (&even[full..tw], &odd[full..tw]);
                    let (d2, d3) = (&even[full + 1..], &odd[full + 1..]);
                    let out = &mut rows[4 * r * rest..4 * (r + 1) * rest];
                    let (o0, more) = out.split_at_mut(rest);
                    let (o1, more) = more.split_at_mut(rest);
                    let (o2, o3) = more.split_at_mut(rest);
                    zip2(o0, d0, d2, |a, b| a - b);
                    zip2(o1, d1, d2, |a, b| a + b);
                    zip2(o2, d2, d1, |a, b| a - b);
                    zip2(o3, d1, d3, |a, b| a - b);
                }
                // Down the columns, into the 16 planes of V.
                let t0 = t0 + full;
                for j in 0..4 {
                    let r = |i: usize| &rows[(4 * i + j) * rest..(4 * i + j + 1) * rest];
                    let (r0, r1, r2, r3) = (r(0), r(1), r(2), r(3));
                    let o = |i: usize| (4 * i + j) * ct + t0;
                    zip2(run(&mut ws.v, o(0), rest), r0, r2, |a, b| a - b);
                    zip2(run(&mut ws.v, o(1), rest), r1, r2, |a, b| a + b);
                    zip2(run(&mut ws.v, o(2), rest), r2, r1, |a, b| a - b);
                    zip2(run(&mut ws.v, o(3), rest), r1, r3, |a, b| a - b);
                }
            }
        }
    }
}

/// Eight tiles' `Bᵀ d B` (the 16 values ξ of tiles `tx .. tx + 8` of one tile row, each an
/// 8-float vector), from `band`, the 4 padded rows of their blocks (each split into its
/// even and odd columns, as in [`inputs`]).
#[inline(always)]
fn input_tiles8(band: &[f32], pw: usize, half: usize, tx: usize) -> [[f32; 8]; 16] {
    let mut d = [[[0f32; 8]; 4]; 4];
    for (r, d) in d.iter_mut().enumerate() {
        let (even, odd) = band[r * pw..(r + 1) * pw].split_at(half);
        *d = [
            *vector::<8>(even, tx),
            *vector::<8>(odd, tx),
            *vector::<8>(even, tx + 1),
            *vector::<8>(odd, tx + 1),
        ];
    }
    input_block(&d)
}

/// The 16 vectors `buf[ξ · stride + at ..][..8]`, ξ = 0..16 (eight tiles' values in the 16
/// planes of V or M). (Plain loops here, not `std::array::from_fn`, whose closures can be
/// left out of line.)
#[inline(always)]
fn planes8(buf: &[f32], stride: usize, at: usize) -> [[f32; 8]; 16] {
    let mut v = [[0f32; 8]; 16];
    for (xi, v) in v.iter_mut().enumerate() {
        *v = *vector::<8>(buf, xi * stride + at);
    }
    v
}

/// Writes vector ξ of `v` at `buf[ξ · stride + at ..]` (the inverse of [`planes8`]).
#[inline(always)]
fn set_planes8(buf: &mut [f32], stride: usize, at: usize, v: &[[f32; 8]; 16]) {
    for (xi, v) in v.iter().enumerate() {
        buf[xi * stride + at..xi * stride + at + 8].copy_from_slice(v);
    }
}

/// `Bᵀ d B` of a 4 × 4 input block whose values `d[r][j]` are vectors of `N` (eight tiles
/// here, sixteen images in `lanes.rs`): value ξ = 4 i + j at `[ξ]`, with the sums and their
/// order of the runs of [`inputs`] (along the rows, then down the columns).
#[inline(always)]
pub(crate) fn input_block<const N: usize>(d: &[[[f32; N]; 4]; 4]) -> [[f32; N]; 16] {
    let mut t = [[[0f32; N]; 4]; 4];
    for (t, d) in t.iter_mut().zip(d) {
        for l in 0..N {
            let (d0, d1, d2, d3) = (d[0][l], d[1][l], d[2][l], d[3][l]);
            t[0][l] = d0 - d2;
            t[1][l] = d1 + d2;
            t[2][l] = d2 - d1;
            t[3][l] = d1 - d3;
        }
    }
    let mut v = [[0f32; N]; 16];
    for j in 0..4 {
        for l in 0..N {
            let (r0, r1, r2, r3) = (t[0][j][l], t[1][j][l], t[2][j][l], t[3][j][l]);
            v[j][l] = r0 - r2;
            v[4 + j][l] = r1 + r2;
            v[8 + j][l] = r2 - r1;
            v[12 + j][l] = r1 - r3;
        }
    }
    v
}

/// `dx = Σ B dV Bᵀ` over every tile's 4 × 4 input block (the adjoint of [`inputs`]: the
/// blocks overlap, so their contributions add up), with
/// `B v = [v0, v1 − v2 + v3, v1 + v2 − v0, −v3]`.
#[inline(always)]
fn inputs_adjoint(
    g: &Geometry,
    n: usize,
    dv: &[f32],
    dx: &mut [f32],
    scratch: &mut [f32],
    by_runs: bool,
) {
    let (h, w, th, tw) = (g.h, g.w, g.th, g.tw);
    let (ph, pw) = g.padded();
    let half = tw + 1;
    let t_all = n * g.tiles();
    let ct = g.c * t_all;
    let (plane, rows) = scratch.split_at_mut(ph * pw);
    for img in 0..n {
        for ch in 0..g.c {
            plane.fill(0.0);
            let at = ch * t_all + img * g.tiles();
            for ty in 0..th {
                let t0 = at + ty * tw;
                let band = &mut plane[2 * ty * pw..(2 * ty + 4) * pw];
                // The tiles past the last multiple of 8 by runs, then eight tiles at a time in
                // registers from right to left: every plane value receives its terms in the
                // order of one pass over the whole tile row (a tile's own terms before those
                // of the tile on its left).
                let full = if by_runs { 0 } else { tw - tw % 8 };
                let rest = tw - full;
                if rest > 0 {
                    let t0 = t0 + full;
                    // Down the columns: rows[4 i + j] = (B dV)_{i j}.
                    for j in 0..4 {
                        let d = |i: usize| &dv[(4 * i + j) * ct + t0..(4 * i + j) * ct + t0 + rest];
                        let (d0, d1, d2, d3) = (d(0), d(1), d(2), d(3));
                        let o = |i: usize| (4 * i + j) * rest;
                        run(rows, o(0), rest).copy_from_slice(d0);
                        zip3(run(rows, o(1), rest), d1, d2, d3, |a, b, c| a - b + c);
                        zip3(run(rows, o(2), rest), d1, d2, d0, |a, b, c| a + b - c);
                        zip2(run(rows, o(3), rest), d3, d3, |a, _| -a);
                    }
                    // Along the rows, added into the plane's row 2 ty + i at columns 2 tx + j.
                    let (z, tmp) = rows.split_at_mut(16 * rest);
                    let tmp = &mut tmp[..rest];
                    for i in 0..4 {
                        let q = |j: usize| &z[(4 * i + j) * rest..(4 * i + j + 1) * rest];
                        let (q0, q1, q2, q3) = (q(0), q(1), q(2), q(3));
                        let (even, odd) = band[i * pw..(i + 1) * pw].split_at_mut(half);
                        add_into(&mut even[full..tw], q0);
                        zip3(tmp, q1, q2, q3, |a, b, c| a - b + c);
                        add_into(&mut odd[full..tw], tmp);
                        zip3(tmp, q1, q2, q0, |a, b, c| a + b - c);
                        add_into(&mut even[full + 1..], tmp);
                        zip2(tmp, q3, q3, |a, _| -a);
                        add_into(&mut odd[full + 1..], tmp);
                    }
                }
                for tx in (0..full).step_by(8).rev() {
                    let dv8 = planes8(dv, ct, t0 + tx);
                    for (i, [q0, t1, t2, t3]) in input_adjoint_tiles8(&dv8).iter().enumerate() {
                        let (even, odd) = band[i * pw..(i + 1) * pw].split_at_mut(half);
                        add_into(&mut even[tx..tx + 8], q0);
                        add_into(&mut odd[tx..tx + 8], t1);
                        add_into(&mut even[tx + 1..tx + 9], t2);
                        add_into(&mut odd[tx + 1..tx + 9], t3);
                    }
                }
            }
            let dst = &mut dx[(img * g.c + ch) * h * w..(img * g.c + ch + 1) * h * w];
            for (yy, row) in dst.chunks_exact_mut(w).enumerate() {
                // The padded row's columns 1 ..= w (see `inputs`).
                let (even, odd) = plane[(yy + 1) * pw..(yy + 2) * pw].split_at(half);
                interleave(odd, &even[1..], row);
            }
        }
    }
}

/// Eight tiles' terms of [`inputs_adjoint`] from their `dV` (16 vectors of 8 tiles): for
/// each row `i` of the 4 × 4 block, the four vectors added at even columns `tx`, odd
/// columns `tx`, even columns `tx + 1` and odd columns `tx + 1`; the same sums in the same
/// order as the runs of [`inputs_adjoint`].
#[inline(always)]
fn input_adjoint_tiles8(dv: &[[f32; 8]; 16]) -> [[[f32; 8]; 4]; 4] {
    let mut z = [[0f32; 8]; 16];
    for j in 0..4 {
        for l in 0..8 {
            let (d0, d1, d2, d3) = (dv[j][l], dv[4 + j][l], dv[8 + j][l], dv[12 + j][l]);
            z[j][l] = d0;
            z[4 + j][l] = d1 - d2 + d3;
            z[8 + j][l] = d1 + d2 - d0;
            z[12 + j][l] = -d3;
        }
    }
    let mut out = [[[0f32; 8]; 4]; 4];
    for (i, o) in out.iter_mut().enumerate() {
        for l in 0..8 {
            let (q0, q1, q2, q3) = (
                z[4 * i][l],
                z[4 * i + 1][l],
                z[4 * i + 2][l],
                z[4 * i + 3][l],
            );
            o[0][l] = q0;
            o[1][l] = q1 - q2 + q3;
            o[2][l] = q1 + q2 - q0;
            o[3][l] = -q3;
        }
    }
    out
}

/// `y[k] = Aᵀ M A + b[k]` for every tile (outputs past an odd edge dropped), with
/// `Aᵀ = [[1, 1, 1, 0], [0, 1, −1, −1]]`, so `Aᵀ m = [m0 + m1 + m2, m1 − m2 − m3]`.
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
    by_runs: bool,
) {
    let (h, w, th, tw) = (g.h, g.w, g.th, g.tw);
    let t_all = n * g.tiles();
    let kt = g.k * t_all;
    let (s, rest) = scratch[..12 * tw].split_at_mut(8 * tw);
    let (even, odd) = rest.split_at_mut(2 * tw);
    for img in 0..n {
        for kk in 0..g.k {
            let bias = b[kk];
            let at = kk * t_all + img * g.tiles();
            let out = &mut y[(img * g.k + kk) * h * w..(img * g.k + kk + 1) * h * w];
            for ty in 0..th {
                let t0 = at + ty * tw;
                // Eight tiles at a time in registers while both their columns are inside the
                // image, the rest by runs.
                let full = if by_runs { 0 } else { w / 2 - (w / 2) % 8 };
                for tx in (0..full).step_by(8) {
                    let rows = 2.min(h - 2 * ty);
                    let block = output_block::<8>(m, kt, t0 + tx, bias, relu);
                    for (a, pair) in block.iter().enumerate().take(rows) {
                        let y0 = 2 * ty + a;
                        let o = &mut out[y0 * w + 2 * tx..y0 * w + 2 * tx + 16];
                        for (l, d) in o.chunks_exact_mut(2).enumerate() {
                            d[0] = pair[0][l];
                            d[1] = pair[1][l];
                        }
                    }
                }
                let rest = tw - full;
                if rest == 0 {
                    continue;
                }
                let t0 = t0 + full;
                let p = |xi: usize| &m[xi * kt + t0..xi * kt + t0 + rest];
                // Along each row i of the block: s[2 i + col] = (Aᵀ m_i)_col.
                for i in 0..4 {
                    let (a, bb, c, d) = (p(4 * i), p(4 * i + 1), p(4 * i + 2), p(4 * i + 3));
                    let (s0, s1) = s[2 * i * rest..(2 * i + 2) * rest].split_at_mut(rest);
                    zip3(s0, a, bb, c, |a, b, c| a + b + c);
                    zip3(s1, bb, c, d, |b, c, d| b - c - d);
                }
                let row = |r: usize| &s[r * rest..(r + 1) * rest];
                // Down the columns: output row 2 ty + a, column 2 tx + col.
                for a in 0..2 {
                    let y0 = 2 * ty + a;
                    if y0 >= h {
                        break;
                    }
                    for (col, dst) in [&mut even[..rest], &mut odd[..rest]]
                        .into_iter()
                        .enumerate()
                    {
                        let (r0, r1, r2, r3) = (row(col), row(2 + col), row(4 + col), row(6 + col));
                        if a == 0 {
                            zip3(dst, r0, r1, r2, |x, y, z| x + y + z + bias);
                        } else {
                            zip3(dst, r1, r2, r3, |x, y, z| x - y - z + bias);
                        }
                        if relu {
                            for v in dst.iter_mut() {
                                *v = v.max(0.0);
                            }
                        }
                    }
                    interleave(
                        &even[..rest],
                        &odd[..rest],
                        &mut out[y0 * w + 2 * full..(y0 + 1) * w],
                    );
                }
            }
        }
    }
}

/// `Aᵀ M A + bias` (then ReLU) of one block whose 16 products are the vectors of `N` at
/// `m[at + ξ · stride..]` (eight tiles here, sixteen images in `trunk.rs`): `[row][column]`
/// of the 2 × 2 outputs, with the sums and their order of the runs of [`outputs`]. Read in
/// place, not copied into an array first.
#[inline(always)]
pub(crate) fn output_block<const N: usize>(
    m: &[f32],
    stride: usize,
    at: usize,
    bias: f32,
    relu: bool,
) -> [[[f32; N]; 2]; 2] {
    let m = &m[at..at + 15 * stride + N];
    // Along each row i of the block: s[2 i] = m0 + m1 + m2, s[2 i + 1] = m1 − m2 − m3.
    let mut s = [[0f32; N]; 8];
    for i in 0..4 {
        let a = vector::<N>(m, 4 * i * stride);
        let b = vector::<N>(m, (4 * i + 1) * stride);
        let c = vector::<N>(m, (4 * i + 2) * stride);
        let d = vector::<N>(m, (4 * i + 3) * stride);
        s[2 * i] = sum3::<N, false>(a, b, c, 0.0, false);
        s[2 * i + 1] = sum3::<N, true>(b, c, d, 0.0, false);
    }
    // Down each column: output rows 0 and 1, plus the bias.
    let mut y = [[[0f32; N]; 2]; 2];
    for col in 0..2 {
        y[0][col] = sum3::<N, false>(&s[col], &s[2 + col], &s[4 + col], bias, true);
        y[1][col] = sum3::<N, true>(&s[2 + col], &s[4 + col], &s[6 + col], bias, true);
        if relu {
            y[0][col] = relu_lanes(y[0][col]);
            y[1][col] = relu_lanes(y[1][col]);
        }
    }
    y
}

// The lane-wise steps of `output_block`, each one loop over the lanes, so that the compiler
// makes it one vector operation (as loops over the block's rows with the lanes inside,
// AVX-512 builds vectorised across the rows, with gathers and scatters through the stack).
// Plain functions, no closures: a closure can be left out of line, compiled without the
// caller's CPU features.

/// `buf[at..at + N]` as an array.
#[inline(always)]
fn vector<const N: usize>(buf: &[f32], at: usize) -> &[f32; N] {
    buf[at..at + N].try_into().expect("N values")
}

/// `a + b + c` lane by lane (`a − b − c` when `SUB`), then `+ bias` when `with_bias`.
#[inline(always)]
fn sum3<const N: usize, const SUB: bool>(
    a: &[f32; N],
    b: &[f32; N],
    c: &[f32; N],
    bias: f32,
    with_bias: bool,
) -> [f32; N] {
    let mut o = [0f32; N];
    for l in 0..N {
        o[l] = if SUB {
            a[l] - b[l] - c[l]
        } else {
            a[l] + b[l] + c[l]
        };
        if with_bias {
            o[l] += bias;
        }
    }
    o
}

/// `max(v, 0)` lane by lane (`f32::max`: 0 for a NaN, as every ReLU here).
#[inline(always)]
fn relu_lanes<const N: usize>(mut v: [f32; N]) -> [f32; N] {
    for x in &mut v {
        *x = x.max(0.0);
    }
    v
}

/// `dM = A dY Aᵀ` for every tile's 2 × 2 block of `dy` (zeros past an odd edge), the adjoint
/// of [`outputs`], written into `ws.m`; `A y = [y0, y0 + y1, y0 − y1, −y1]`.
#[inline(always)]
fn outputs_adjoint(g: &Geometry, n: usize, dy: &[f32], ws: &mut Winograd) {
    let (h, w, th, tw) = (g.h, g.w, g.th, g.tw);
    let t_all = n * g.tiles();
    let kt = g.k * t_all;
    let (ab, pq) = ws.scratch[..12 * tw].split_at_mut(4 * tw);
    for img in 0..n {
        for kk in 0..g.k {
            let at = kk * t_all + img * g.tiles();
            let src = &dy[(img * g.k + kk) * h * w..(img * g.k + kk + 1) * h * w];
            for ty in 0..th {
                let t0 = at + ty * tw;
                // Eight tiles at a time in registers while both their columns are inside the
                // image, the rest by runs.
                let full = if ws.by_runs { 0 } else { w / 2 - (w / 2) % 8 };
                for tx in (0..full).step_by(8) {
                    let line = |r: usize| {
                        let y0 = 2 * ty + r;
                        (y0 < h).then(|| &src[y0 * w + 2 * tx..y0 * w + 2 * tx + 16])
                    };
                    let dm = output_adjoint_tiles8([line(0), line(1)]);
                    set_planes8(&mut ws.m, kt, t0 + tx, &dm);
                }
                let rest = tw - full;
                if rest == 0 {
                    continue;
                }
                let t0 = t0 + full;
                let (ab, pq) = (&mut ab[..4 * rest], &mut pq[..8 * rest]);
                // The block's two rows split into even (a) and odd (b) columns, then
                // pq[4 r + j] = (A y_r)_j along each row r.
                ab.fill(0.0);
                for r in 0..2 {
                    let y0 = 2 * ty + r;
                    if y0 < h {
                        let line = &src[y0 * w + 2 * full..(y0 + 1) * w];
                        let (a, b) = ab[2 * r * rest..(2 * r + 2) * rest].split_at_mut(rest);
                        deinterleave(line, a, b);
                    }
                    let (a, b) = ab[2 * r * rest..(2 * r + 2) * rest].split_at(rest);
                    let o = |j: usize| (4 * r + j) * rest;
                    run(pq, o(0), rest).copy_from_slice(a);
                    zip2(run(pq, o(1), rest), a, b, |a, b| a + b);
                    zip2(run(pq, o(2), rest), a, b, |a, b| a - b);
                    zip2(run(pq, o(3), rest), b, b, |b, _| -b);
                }
                // Down the columns, into the 16 planes of dM.
                for j in 0..4 {
                    let (p, q) = (
                        &pq[j * rest..(j + 1) * rest],
                        &pq[(4 + j) * rest..(5 + j) * rest],
                    );
                    let o = |i: usize| (4 * i + j) * kt + t0;
                    run(&mut ws.m, o(0), rest).copy_from_slice(p);
                    zip2(run(&mut ws.m, o(1), rest), p, q, |a, b| a + b);
                    zip2(run(&mut ws.m, o(2), rest), p, q, |a, b| a - b);
                    zip2(run(&mut ws.m, o(3), rest), q, q, |b, _| -b);
                }
            }
        }
    }
}

/// Eight tiles' `A dY Aᵀ` (16 vectors of 8 tiles) from the two output rows of their blocks
/// (16 values each; `None` past the image's last row, zeros); the same sums in the same order
/// as the runs of [`outputs_adjoint`].
#[inline(always)]
fn output_adjoint_tiles8(lines: [Option<&[f32]>; 2]) -> [[f32; 8]; 16] {
    let mut pq = [[0f32; 8]; 8];
    for (r, line) in lines.into_iter().enumerate() {
        let (mut a, mut b) = ([0f32; 8], [0f32; 8]);
        if let Some(line) = line {
            for (l, pair) in line.chunks_exact(2).enumerate() {
                a[l] = pair[0];
                b[l] = pair[1];
            }
        }
        for l in 0..8 {
            pq[4 * r][l] = a[l];
            pq[4 * r + 1][l] = a[l] + b[l];
            pq[4 * r + 2][l] = a[l] - b[l];
            pq[4 * r + 3][l] = -b[l];
        }
    }
    let mut m = [[0f32; 8]; 16];
    for j in 0..4 {
        for l in 0..8 {
            let (p, q) = (pq[j][l], pq[4 + j][l]);
            m[j][l] = p;
            m[4 + j][l] = p + q;
            m[8 + j][l] = p - q;
            m[12 + j][l] = -q;
        }
    }
    m
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
                (a as f64 - b).abs() <= 1e-7 * scale,
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
    fn eight_tile_blocks_give_the_bits_of_whole_runs() {
        // The register blocks against the runs of whole tile rows (every transform: inputs,
        // outputs with and without the ReLU, and both adjoints), bit for bit: sides with one
        // block and none, blocks plus a tail, odd sides (a dropped column or row), groups of
        // one image and of several.
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
        for &(c, k, h, w, batch) in &[
            (3, 2, 16, 16, 2),
            (2, 3, 17, 17, 2),
            (2, 2, 5, 18, 3),
            (3, 2, 3, 19, 2),
            (2, 2, 2, 33, 4),
            (2, 3, 9, 34, 2),
            (3, 2, 7, 48, 2),
            (2, 2, 4, 14, 2),
        ] {
            let g = Geometry::new(c, k, h, w);
            let (x, wt, bias, dy) = random_case(&mut rng, &g, batch);
            let run = |by_runs: bool, relu: bool| {
                let mut ws = Winograd {
                    by_runs,
                    ..Winograd::default()
                };
                ws.reserve(&g, batch);
                let mut pack = Pack::default();
                let mut y = vec![f32::NAN; batch * k * h * w];
                forward(&g, batch, &x, &wt, &bias, &mut y, relu, &mut ws, &mut pack);
                let (mut dx, mut dw) = (vec![f32::NAN; x.len()], vec![0.25f32; wt.len()]);
                backward(
                    &g,
                    batch,
                    &x,
                    &wt,
                    &dy,
                    &mut dw,
                    Some(&mut dx),
                    &mut ws,
                    &mut pack,
                );
                let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
                (bits(&y), bits(&dx), bits(&dw))
            };
            for relu in [false, true] {
                assert!(
                    run(false, relu) == run(true, relu),
                    "c={c} k={k} {h}x{w} batch={batch} relu={relu}"
                );
            }
        }
    }

    #[test]
    fn forward_and_both_gradients_match_the_direct_convolution() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        // Even and odd sides, one tile or many, groups of one image and of several, a partial
        // last group.
        for &(c, k, h, w, batch) in &[
            (16, 5, 8, 8, 3),
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
            forward(&g, batch, &x, &wt, &bias, &mut y, false, &mut ws, &mut pack);
            // Sums of 9 c products of values in ±1: rounding grows with their count (the
            // largest error seen is about a quarter of this bound).
            let scale = (9 * c) as f64;
            let at = format!("c={c} k={k} {h}x{w} batch={batch}");
            close(&format!("y ({at})"), &y, &y_def, scale);
            // With the ReLU fused: exactly max(y, 0) of the same sums.
            let mut y_relu = vec![f32::NAN; y_def.len()];
            forward(
                &g,
                batch,
                &x,
                &wt,
                &bias,
                &mut y_relu,
                true,
                &mut ws,
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
                &wt,
                &dy,
                &mut dw,
                Some(&mut dx),
                &mut ws,
                &mut pack,
            );
            close(&format!("dx ({at})"), &dx, &dx_def, scale);
            let dw_def: Vec<f64> = dw_def.iter().map(|v| v + 0.5).collect(); // accumulated
            close(&format!("dw ({at})"), &dw, &dw_def, (batch * h * w) as f64);
            // Without the input gradient, the weight gradient is the same.
            let mut dw2 = vec![0.5f32; dw_def.len()];
            backward(&g, batch, &x, &wt, &dy, &mut dw2, None, &mut ws, &mut pack);
            assert_eq!(dw, dw2, "{at}");
        }
    }
}
