//! Fixed-order sums: many `f32` terms summed in `f64` in an order that never depends on the
//! data or the thread count (batch norm's statistics and gradient sums, the bias gradients,
//! the clipping norm).

/// A sum of `f64` terms in 16 running sums (term `i` into sum `i mod 16` of its slice, the
/// sums added pairwise at the end): a fixed order, so the same terms always give the same
/// bits, and 16 independent additions that the compiler vectorises, where one running sum
/// waits on every addition before it.
#[derive(Default)]
pub(crate) struct Lanes64([f64; 16]);

impl Lanes64 {
    /// Adds `f(x)` for every `x` in `xs`.
    #[inline(always)]
    pub(crate) fn add(&mut self, xs: &[f32], f: impl Fn(f32) -> f64) {
        // The sums in a local array (registers), written back once: through `self` the
        // compiler kept them in memory and converted one term at a time.
        let mut sums = self.0;
        let chunks = xs.chunks_exact(16);
        let rest = chunks.remainder();
        for c in chunks {
            let c: &[f32; 16] = c.try_into().expect("16 terms");
            for (s, &x) in sums.iter_mut().zip(c) {
                *s += f(x);
            }
        }
        for (s, &x) in sums.iter_mut().zip(rest) {
            *s += f(x);
        }
        self.0 = sums;
    }

    /// Adds `f(a, b)` for every pair of `as` and `bs` (of one length).
    #[inline(always)]
    pub(crate) fn add2(&mut self, a: &[f32], b: &[f32], f: impl Fn(f32, f32) -> f64) {
        let mut sums = self.0;
        let (ca, cb) = (a.chunks_exact(16), b.chunks_exact(16));
        let (ra, rb) = (ca.remainder(), cb.remainder());
        for (ca, cb) in ca.zip(cb) {
            let (ca, cb): (&[f32; 16], &[f32; 16]) = (
                ca.try_into().expect("16 terms"),
                cb.try_into().expect("16 terms"),
            );
            for ((s, &x), &y) in sums.iter_mut().zip(ca).zip(cb) {
                *s += f(x, y);
            }
        }
        for ((s, &x), &y) in sums.iter_mut().zip(ra).zip(rb) {
            *s += f(x, y);
        }
        self.0 = sums;
    }

    /// The sum of every term added.
    #[inline(always)]
    pub(crate) fn total(&self) -> f64 {
        let mut s = self.0;
        let mut width = 16;
        while width > 1 {
            width /= 2;
            for i in 0..width {
                s[i] += s[i + width];
            }
        }
        s[0]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn lane_sums_are_exact_where_the_sum_is() {
        // Integers up to 2^20, at most 2^12 of them: every partial sum is exact in f64, so
        // any order must give the plain sum; and the order is fixed, so a slice split in two
        // calls (at a multiple of 16) gives the same bits as one call.
        use rand::Rng;
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
        for len in [0, 1, 15, 16, 17, 33, 1000, 4096] {
            let xs: Vec<f32> = (0..len)
                .map(|_| rng.gen_range(-(1 << 20)..(1 << 20)) as f32)
                .collect();
            let mut acc = Lanes64::default();
            acc.add(&xs, |x| x as f64);
            let plain: f64 = xs.iter().map(|&x| x as f64).sum();
            assert_eq!(acc.total(), plain, "len {len}");
            let mut sq = Lanes64::default();
            sq.add2(&xs, &xs, |a, b| a as f64 * b as f64 / 1024.0);
            let plain: f64 = xs.iter().map(|&x| x as f64 * x as f64 / 1024.0).sum();
            assert_eq!(sq.total(), plain, "len {len}");
        }
        let xs: Vec<f32> = (0..100).map(|i| 1.0 / (i as f32 + 1.0)).collect();
        let (mut one, mut two) = (Lanes64::default(), Lanes64::default());
        one.add(&xs, |x| x as f64);
        two.add(&xs[..48], |x| x as f64);
        two.add(&xs[48..], |x| x as f64);
        assert_eq!(one.total().to_bits(), two.total().to_bits());
    }
}
