//! Batcher's odd–even merge sorting network, applied lane-wise to blocks of coordinates.
//!
//! A coordinate-wise rule sorts the `n` values of every coordinate. Instead of `d` small sorts
//! with unpredictable branches, we load a block of `LANES` coordinates as `n` rows of keys and
//! run one fixed network of compare-exchanges over whole rows: branch-free integer min/max that
//! the compiler turns into SIMD. For `n = 15` the network has 59 comparators.

use super::order::key;

/// Coordinates per block (lanes of the lane-wise network).
pub(crate) const LANES: usize = 64;

/// The comparators `(i, j)`, `i < j`, of a sorting network for `n` inputs.
///
/// Batcher's network for the next power of two `p ≥ n`, keeping the comparators whose both ends
/// are `< n`: the dropped inputs act as `+∞` padding that never moves, so the result still sorts.
pub(crate) fn network(n: usize) -> Vec<(u32, u32)> {
    let mut out = Vec::new();
    if n < 2 {
        return out;
    }
    let p_total = n.next_power_of_two();
    let mut p = 1;
    while p < p_total {
        let mut k = p;
        while k >= 1 {
            let mut j = k % p;
            while j + k < p_total {
                for i in 0..k.min(p_total - j - k) {
                    if (i + j) / (p * 2) == (i + j + k) / (p * 2) {
                        let (a, b) = (i + j, i + j + k);
                        if b < n {
                            out.push((a as u32, b as u32));
                        }
                    }
                }
                j += 2 * k;
            }
            k /= 2;
        }
        p *= 2;
    }
    out
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
    fn network_for_fifteen_is_small() {
        assert!(network(15).len() <= 63);
    }
}
