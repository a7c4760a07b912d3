//! A total order on `f32` that agrees with [`f32::total_cmp`], as sortable `i32` keys.
//!
//! `-NaN < -∞ < … < -0.0 < +0.0 < … < +∞ < +NaN`. The map is a bijection, so sorting keys and
//! mapping back loses nothing; integer min/max on keys vectorise on every x86-64 CPU.

/// Maps `x` to an `i32` whose signed order is `total_cmp`'s order on `f32`.
#[inline(always)]
pub(crate) fn key(x: f32) -> i32 {
    let b = x.to_bits() as i32;
    b ^ ((((b >> 31) as u32) >> 1) as i32)
}

/// Inverse of [`key`].
#[inline(always)]
pub(crate) fn unkey(k: i32) -> f32 {
    f32::from_bits((k ^ ((((k >> 31) as u32) >> 1) as i32)) as u32)
}

/// Replaces NaN by `+∞` (distances).
#[inline(always)]
pub(crate) fn nan_to_inf(x: f64) -> f64 {
    if x.is_nan() {
        f64::INFINITY
    } else {
        x
    }
}

/// Indices `0..n` sorted by `v` ascending, NaN read as `+∞`, ties by index: a deterministic
/// order for scores and distances.
pub(crate) fn argsort_into(v: &[f64], idx: &mut [usize]) {
    for (i, x) in idx.iter_mut().enumerate() {
        *x = i;
    }
    idx.sort_unstable_by(|&a, &b| {
        nan_to_inf(v[a])
            .total_cmp(&nan_to_inf(v[b]))
            .then(a.cmp(&b))
    });
}

/// `total_cmp` on non-NaN values, with every NaN (either sign) after `+∞` and equal to every
/// other NaN: NumPy's and PyTorch's sort order, which the thesis's code relies on.
#[inline(always)]
pub(crate) fn nan_last_cmp(a: f64, b: f64) -> std::cmp::Ordering {
    match (a.is_nan(), b.is_nan()) {
        (false, false) => a.total_cmp(&b),
        (x, y) => x.cmp(&y),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_order_like_total_cmp_and_round_trip() {
        let xs = [
            f32::NAN,
            -f32::NAN,
            f32::INFINITY,
            f32::NEG_INFINITY,
            0.0,
            -0.0,
            1.0,
            -1.0,
            f32::MIN_POSITIVE,
            -f32::MIN_POSITIVE,
            1e-45,
            f32::MAX,
            f32::MIN,
            3.25,
        ];
        for &a in &xs {
            assert_eq!(unkey(key(a)).to_bits(), a.to_bits());
            for &b in &xs {
                assert_eq!(key(a).cmp(&key(b)), a.total_cmp(&b), "{a} vs {b}");
            }
        }
    }
}
