//! Batcher's odd–even merge sorting network, applied lane-wise to groups of coordinates.
//!
//! A coordinate-wise rule sorts the `n` values of every coordinate. Instead of `d` small sorts
//! with unpredictable branches, we load a group of coordinates as `n` rows of keys and run one
//! fixed network of compare-exchanges over whole rows: branch-free integer min/max that the
//! compiler turns into SIMD. For `n = 15` the network has 59 comparators. Up to
//! [`REG_MAX`] rows, the network is a compile-time constant unrolled over [`GROUP`]
//! coordinates held in registers ([`sort_group`]); beyond, it runs over blocks of `LANES`
//! coordinates in L1 ([`sort_block`]). Both apply the same comparators, so they agree bit
//! for bit.

use super::order::key;

/// Coordinates per block (lanes of the lane-wise network).
pub(crate) const LANES: usize = 64;

/// The comparators `(i, j)`, `i < j`, of a sorting network for `n` inputs.
///
/// Batcher's network for the next power of two `p ≥ n`, keeping the comparators whose both ends
/// are `< n`: the dropped inputs act as `+∞` padding that never moves, so the result still sorts.
pub(crate) fn network(n: usize) -> Vec<(u32, u32)> {
    // Batcher's network on p = 2^t inputs has (t² − t + 4)·2^(t−2) − 1 ≤ p·t·(t + 1)/4
    // comparators.
    let p = n.next_power_of_two();
    let t = p.trailing_zeros() as usize;
    let mut out = vec![(0, 0); (p * t * (t + 1) / 4).max(1)];
    let len = batcher_into(n, &mut out);
    out.truncate(len);
    out
}

/// Writes [`network`]`(n)` into `out` and returns its length (a `const fn`, so that the
/// register path's networks are compile-time constants built by the same code).
const fn batcher_into(n: usize, out: &mut [(u32, u32)]) -> usize {
    let mut len = 0;
    if n < 2 {
        return 0;
    }
    let p_total = n.next_power_of_two();
    let mut p = 1;
    while p < p_total {
        let mut k = p;
        while k >= 1 {
            let mut j = k % p;
            while j + k < p_total {
                let top = if k < p_total - j - k {
                    k
                } else {
                    p_total - j - k
                };
                let mut i = 0;
                while i < top {
                    if (i + j) / (p * 2) == (i + j + k) / (p * 2) {
                        let (a, b) = (i + j, i + j + k);
                        if b < n {
                            out[len] = (a as u32, b as u32);
                            len += 1;
                        }
                    }
                    i += 1;
                }
                j += 2 * k;
            }
            k /= 2;
        }
        p *= 2;
    }
    len
}

/// Largest `n` sorted in registers by [`sort_group`] (Batcher's network for 16 inputs has 63
/// comparators).
pub(crate) const REG_MAX: usize = 16;

/// Coordinates sorted at once in registers: one AVX2 vector of keys per row (the AVX2 and
/// portable builds).
pub(crate) const GROUP: usize = 8;

/// Coordinates sorted at once in registers by the AVX-512 build: one 512-bit vector of keys
/// per row. (With 8 there, LLVM pairs rows into 512-bit vectors and spills, gathers and
/// scatters to split them: the sort ran 2.7× slower than the AVX2 build's.) The width changes
/// only how many coordinates share the instructions: every lane's comparators and reduction
/// are the same, so the results are the same bits.
pub(crate) const GROUP_WIDE: usize = 16;

const MAX_PAIRS: usize = 64;

/// [`network`] at compile time, for `n ≤ REG_MAX`: the comparators and their count.
const fn network_const(n: usize) -> ([(u32, u32); MAX_PAIRS], usize) {
    let mut out = [(0u32, 0u32); MAX_PAIRS];
    let len = batcher_into(n, &mut out);
    (out, len)
}

/// The network for `N` inputs as a constant, so that [`sort_group`] compiles to a fixed
/// sequence of register min/max operations.
struct Net<const N: usize>;

impl<const N: usize> Net<N> {
    const PAIRS: ([(u32, u32); MAX_PAIRS], usize) = {
        assert!(N <= REG_MAX);
        network_const(N)
    };
}

/// Applies comparator `$c` of `Net::<$n>` to `$v` for every listed `$c` below the network's
/// length: unrolled by the macro, so every row index is a constant and `$v` stays in
/// registers (a loop over the comparators, even of constant length, is not unrolled by LLVM).
macro_rules! comparators {
    ($v:ident, $n:ident, $g:ident; $($c:literal)*) => {
        $(
            if $c < Net::<$n>::PAIRS.1 {
                let (i, j) = Net::<$n>::PAIRS.0[$c];
                let (a, b) = ($v[i as usize], $v[j as usize]);
                for l in 0..$g {
                    $v[i as usize][l] = a[l].min(b[l]);
                    $v[j as usize][l] = a[l].max(b[l]);
                }
            }
        )*
    };
}

/// Sorts each of the `G` lanes of `v` (`N` rows of keys) ascending: the same comparators
/// as [`sort_block`], on values the compiler keeps in registers ([`GROUP`] or
/// [`GROUP_WIDE`] lanes, one vector register per row).
#[inline(always)]
pub(crate) fn sort_group<const N: usize, const G: usize>(v: &mut [[i32; G]; N]) {
    const { assert!(MAX_PAIRS == 64) };
    comparators!(v, N, G;
        0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 24 25 26 27 28 29 30 31
        32 33 34 35 36 37 38 39 40 41 42 43 44 45 46 47 48 49 50 51 52 53 54 55 56 57 58 59 60
        61 62 63);
}

/// Loads coordinates `c0 .. c0 + width` of every row of `rows` (row-major, `dim` wide) into
/// `block` as keys, row `r` at `block[r * LANES ..]`. Lanes past `width` keep stale values.
#[inline(always)]
pub(crate) fn load_block(
    rows: &[f32],
    n: usize,
    dim: usize,
    c0: usize,
    width: usize,
    block: &mut [i32],
) {
    for r in 0..n {
        let src = &rows[r * dim + c0..r * dim + c0 + width];
        let dst = &mut block[r * LANES..r * LANES + width];
        for (d, &s) in dst.iter_mut().zip(src) {
            *d = key(s);
        }
    }
}

/// Sorts each lane of `block` (`n` rows of `LANES` keys) ascending.
#[inline(always)]
pub(crate) fn sort_block(block: &mut [i32], net: &[(u32, u32)]) {
    for &(i, j) in net {
        let (lo, hi) = block.split_at_mut(j as usize * LANES);
        let a: &mut [i32; LANES] = (&mut lo[i as usize * LANES..i as usize * LANES + LANES])
            .try_into()
            .expect("block rows are LANES wide");
        let b: &mut [i32; LANES] = (&mut hi[..LANES])
            .try_into()
            .expect("block rows are LANES wide");
        for l in 0..LANES {
            let (x, y) = (a[l], b[l]);
            a[l] = x.min(y);
            b[l] = x.max(y);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The 0–1 principle: a comparator network sorts every input iff it sorts every 0/1 input.
    #[test]
    fn network_sorts_every_zero_one_input_up_to_sixteen() {
        for n in 1..=16usize {
            let net = network(n);
            for mask in 0u32..(1 << n) {
                let mut v: Vec<u8> = (0..n).map(|b| ((mask >> b) & 1) as u8).collect();
                for &(i, j) in &net {
                    let (i, j) = (i as usize, j as usize);
                    if v[i] > v[j] {
                        v.swap(i, j);
                    }
                }
                assert!(v.windows(2).all(|w| w[0] <= w[1]), "n={n} mask={mask:b}");
            }
        }
    }

    #[test]
    fn the_compile_time_network_is_the_run_time_one() {
        for n in 0..=REG_MAX {
            let (pairs, len) = network_const(n);
            assert_eq!(pairs[..len].to_vec(), network(n), "n = {n}");
        }
    }

    /// Past 16 inputs (too many for the 0–1 check), random inputs, up to sizes whose
    /// comparator count is near the buffer's bound.
    #[test]
    fn larger_networks_sort_random_inputs() {
        let mut x = 12345u64;
        for n in 17..=130usize {
            let net = network(n);
            for _ in 0..20 {
                let mut v: Vec<u64> = (0..n)
                    .map(|_| {
                        x = x
                            .wrapping_mul(6364136223846793005)
                            .wrapping_add(1442695040888963407);
                        x >> 40
                    })
                    .collect();
                for &(i, j) in &net {
                    let (i, j) = (i as usize, j as usize);
                    if v[i] > v[j] {
                        v.swap(i, j);
                    }
                }
                assert!(v.windows(2).all(|w| w[0] <= w[1]), "n={n}");
            }
        }
    }

    #[test]
    fn network_for_fifteen_is_small() {
        assert!(network(15).len() <= 63);
    }
}
