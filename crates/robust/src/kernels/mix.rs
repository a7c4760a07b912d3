//! Nearest-neighbour mixing (NNM's inner loop): each output row the mean of its `k`
//! neighbours, summed in `f32` in the listed order. The plain kernel, and its AVX2 twin that
//! writes with streaming stores (this file's own intrinsics, hence its `unsafe`).
#![allow(unsafe_code)]

#[cfg(byzadam_x86)]
use super::simd::avx2_fma;

/// Coordinates of one output row accumulated at once, in registers (four AVX vectors).
const GROUP: usize = 32;

/// Nearest-neighbour mixing over one column range: `rows[i] = (Σ_{j ∈ nbrs[i]} x_j) / k`
/// (`nbrs` holds `k` indices per row, summed in that order). Unlike the averages, this sums in
/// `f32`: mixing writes `n` vectors and reads `n(n − f)` rows per coordinate, and `f32` halves
/// the work (8 lanes, no conversions). The error is that of summing `k` floats (below
/// `k · 2⁻²⁴` relative). Each output group of [`GROUP`] coordinates is summed in registers
/// (one load and one add per neighbour and coordinate, one store per output), since the
/// column range's `n` input spans are in cache whichever row reads them.
#[inline(always)]
pub(crate) fn mix_chunk_generic(
    data: &[f32],
    dim: usize,
    nbrs: &[usize],
    k: usize,
    c0: usize,
    rows: &mut [&mut [f32]],
) {
    let width = rows.first().map_or(0, |r| r.len());
    let kf = k as f32;
    let whole = width - width % GROUP;
    let mut g0 = 0;
    while g0 < whole {
        for (i, row) in rows.iter_mut().enumerate() {
            let mine = &nbrs[i * k..(i + 1) * k];
            let first = mine[0] * dim + c0 + g0;
            let mut acc: [f32; GROUP] = data[first..first + GROUP].try_into().expect("GROUP wide");
            for &j in &mine[1..] {
                let x: &[f32; GROUP] = data[j * dim + c0 + g0..j * dim + c0 + g0 + GROUP]
                    .try_into()
                    .expect("GROUP wide");
                for l in 0..GROUP {
                    acc[l] += x[l];
                }
            }
            let out: &mut [f32; GROUP] = (&mut row[g0..g0 + GROUP]).try_into().expect("GROUP wide");
            for l in 0..GROUP {
                out[l] = acc[l] / kf;
            }
        }
        g0 += GROUP;
    }
    if whole < width {
        // The tail: the same sums, element by element.
        for (i, row) in rows.iter_mut().enumerate() {
            let mine = &nbrs[i * k..(i + 1) * k];
            for (c, o) in row[whole..].iter_mut().enumerate() {
                *o = mix_one(data, dim, mine, c0 + whole + c);
            }
        }
    }
}

/// One coordinate (`at`) of one mixed row: the rows `mine` summed in that order, divided by
/// their count (what [`mix_chunk_generic`] computes for every coordinate).
#[inline(always)]
pub(crate) fn mix_one(data: &[f32], dim: usize, mine: &[usize], at: usize) -> f32 {
    let mut acc = data[mine[0] * dim + at];
    for &j in &mine[1..] {
        acc += data[j * dim + at];
    }
    acc / mine.len() as f32
}

/// Nearest-neighbour mixing over one column range of every output row (see
/// [`mix_chunk_generic`]). With AVX2 the sums are the same, in the same order, but written
/// with non-temporal stores: mixing writes `n` whole vectors that nothing reads soon, and
/// streaming them past the cache saves reading each output line before overwriting it (at
/// d = 11 M the mixing pass takes a third of the time it takes with ordinary stores).
pub(crate) fn mix_chunk(
    data: &[f32],
    dim: usize,
    nbrs: &[usize],
    k: usize,
    c0: usize,
    rows: &mut [&mut [f32]],
) {
    #[cfg(byzadam_x86)]
    {
        if avx2_fma() {
            // SAFETY: the CPU supports AVX2 and FMA, checked just above; `mix_avx2` has no
            // other precondition (it checks every index it reads and writes).
            unsafe { mix_avx2(data, dim, nbrs, k, c0, rows) };
            return;
        }
    }
    mix_chunk_generic(data, dim, nbrs, k, c0, rows)
}

/// Coordinates mixed per span: the `n` input spans (30 KiB at n = 15) stay in L1 while every
/// output row is written.
#[cfg(byzadam_x86)]
const MIX_SPAN: usize = 512;

#[cfg(byzadam_x86)]
#[target_feature(enable = "avx2,fma")]
unsafe fn mix_avx2(
    data: &[f32],
    dim: usize,
    nbrs: &[usize],
    k: usize,
    c0: usize,
    rows: &mut [&mut [f32]],
) {
    use std::arch::x86_64::*;
    let width = rows.first().map_or(0, |r| r.len());
    assert!(k >= 1 && nbrs.len() >= rows.len() * k);
    for (i, row) in rows.iter().enumerate() {
        assert_eq!(row.len(), width);
        for &j in &nbrs[i * k..(i + 1) * k] {
            assert!((j + 1) * dim >= j * dim + c0 + width && (j + 1) * dim <= data.len());
        }
    }
    let kf = k as f32;
    let kv = _mm256_set1_ps(kf);
    let base = data.as_ptr();
    let mut s0 = 0;
    while s0 < width {
        let s1 = (s0 + MIX_SPAN).min(width);
        for (i, row) in rows.iter_mut().enumerate() {
            let mine = &nbrs[i * k..(i + 1) * k];
            let out = row.as_mut_ptr();
            // Row i's first aligned coordinate: streaming stores need 32-byte alignment, and
            // each row starts at its own offset (dim need not be a multiple of 8).
            let head = ((32 - (out as usize % 32)) % 32 / 4).min(width);
            // This span, shifted by the row's head so every vector store is aligned.
            let lo = if s0 == 0 { 0 } else { s0 + head };
            let hi = if s1 == width {
                width
            } else {
                (s1 + head).min(width)
            };
            let mut c = lo;
            // Heads and tails go through `out` too (one pointer for every write to the row),
            // computed as the plain kernel computes them.
            while c < hi && c < head {
                *out.add(c) = mix_one(data, dim, mine, c0 + c);
                c += 1;
            }
            while c + 32 <= hi {
                let p0 = base.add(mine[0] * dim + c0 + c);
                let mut a = [
                    _mm256_loadu_ps(p0),
                    _mm256_loadu_ps(p0.add(8)),
                    _mm256_loadu_ps(p0.add(16)),
                    _mm256_loadu_ps(p0.add(24)),
                ];
                for &j in &mine[1..] {
                    let p = base.add(j * dim + c0 + c);
                    for (l, acc) in a.iter_mut().enumerate() {
                        *acc = _mm256_add_ps(*acc, _mm256_loadu_ps(p.add(8 * l)));
                    }
                }
                for (l, acc) in a.iter().enumerate() {
                    _mm256_stream_ps(out.add(c + 8 * l), _mm256_div_ps(*acc, kv));
                }
                c += 32;
            }
            while c + 8 <= hi {
                let mut acc = _mm256_loadu_ps(base.add(mine[0] * dim + c0 + c));
                for &j in &mine[1..] {
                    acc = _mm256_add_ps(acc, _mm256_loadu_ps(base.add(j * dim + c0 + c)));
                }
                _mm256_stream_ps(out.add(c), _mm256_div_ps(acc, kv));
                c += 8;
            }
            while c < hi {
                *out.add(c) = mix_one(data, dim, mine, c0 + c);
                c += 1;
            }
        }
        s0 = s1;
    }
    // Streaming stores are weakly ordered: make them visible before the caller (or another
    // thread, after rayon's join) reads the rows.
    _mm_sfence();
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The dispatched kernel (AVX2 with streaming stores on this machine) equals the plain
    /// one bit for bit, at every alignment of the rows and column range.
    #[test]
    fn mixing_matches_the_generic_kernel_bit_for_bit() {
        let (n, k) = (7, 4);
        for dim in [1, 5, 8, 37, 100, 1030, 1100, 1543] {
            let data: Vec<f32> = (0..n * dim)
                .map(|i| ((i * 7919) % 1000) as f32 * 0.37 - 150.0)
                .collect();
            let nbrs: Vec<usize> = (0..n)
                .flat_map(|i| (0..k).map(move |j| (i + 2 * j) % n))
                .collect();
            for (c0, width) in [
                (0, dim),
                (dim / 3, dim - dim / 3),
                (1.min(dim - 1), dim / 2),
            ] {
                // Unaligned output rows of varying offsets inside one buffer.
                for pad in 0..3 {
                    let stride = width + pad;
                    if stride == 0 {
                        continue;
                    }
                    let mut want = vec![0f32; n * stride + 3];
                    let mut got = vec![0f32; n * stride + 3];
                    {
                        let mut rows: Vec<&mut [f32]> = want[pad..]
                            .chunks_mut(stride)
                            .take(n)
                            .map(|r| &mut r[..width])
                            .collect();
                        mix_chunk_generic(&data, dim, &nbrs, k, c0, &mut rows);
                    }
                    {
                        let mut rows: Vec<&mut [f32]> = got[pad..]
                            .chunks_mut(stride)
                            .take(n)
                            .map(|r| &mut r[..width])
                            .collect();
                        mix_chunk(&data, dim, &nbrs, k, c0, &mut rows);
                    }
                    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                    assert_eq!(
                        bits(&got),
                        bits(&want),
                        "dim {dim} c0 {c0} width {width} pad {pad}"
                    );
                }
            }
        }
    }
}
