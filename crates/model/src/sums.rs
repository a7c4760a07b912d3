//! Fixed-order sums: many `f32` terms summed in `f64` in an order that never depends on the
//! data or the thread count (batch norm's statistics and gradient sums, the bias gradients,
//! the clipping norm).

/// A sum of `f64` terms in 16 running sums (term `i` into sum `i mod 16` of its slice, the
/// sums added pairwise at the end): a fixed order, so the same terms always give the same
/// bits, and 16 independent additions that the compiler vectorises, where one running sum
/// waits on every addition before it. The sums are kept as two halves of eight lanes (sum
/// `l` at `[l / 8][l % 8]`: a vector register each at AVX-512; as one array of sixteen the
/// compiler split them into pieces of 8, 4, 2 and 1 lanes, some through the stack).
#[derive(Default, Clone, Copy)]
pub(crate) struct Lanes64([[f64; 8]; 2]);

/// Adds `f(x[l])` into lane `l` of `s` for the first `x.len() ≤ 16` lanes.
#[inline(always)]
fn step(s: &mut [[f64; 8]; 2], x: &[f32], f: &impl Fn(f32) -> f64) {
    for (h, s) in s.iter_mut().enumerate() {
        for (s, &v) in s.iter_mut().zip(x.iter().skip(8 * h)) {
            *s += f(v);
        }
    }
}

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
            step(&mut sums, c, &f);
        }
        step(&mut sums, rest, &f);
        self.0 = sums;
    }

    /// [`Lanes64::add`] of `xs[i]` into `sums[i]` for each of four slices of one length:
    /// each sum gets the same additions in the same order as from its own `add` call, the
    /// four sums' chunks interleaved so that their additions overlap instead of each waiting
    /// on its own previous one (one `add` call is bound by its additions' latency). Four
    /// named locals, not an array of them, so that they stay in registers.
    #[inline(always)]
    pub(crate) fn add4(sums: &mut [Lanes64; 4], xs: [&[f32]; 4], f: impl Fn(f32) -> f64) {
        let len = xs[0].len();
        assert!(xs.iter().all(|x| x.len() == len), "slices of one length");
        let [mut s0, mut s1, mut s2, mut s3] = sums.map(|s| s.0);
        let whole = len - len % 16;
        for start in (0..whole).step_by(16) {
            let chunk =
                |i: usize| -> &[f32; 16] { xs[i][start..start + 16].try_into().expect("16 terms") };
            let (c0, c1, c2, c3) = (chunk(0), chunk(1), chunk(2), chunk(3));
            step(&mut s0, c0, &f);
            step(&mut s1, c1, &f);
            step(&mut s2, c2, &f);
            step(&mut s3, c3, &f);
        }
        step(&mut s0, &xs[0][whole..], &f);
        step(&mut s1, &xs[1][whole..], &f);
        step(&mut s2, &xs[2][whole..], &f);
        step(&mut s3, &xs[3][whole..], &f);
        *sums = [s0, s1, s2, s3].map(Lanes64);
    }

    /// Adds `f(a, b)` for every pair of `as` and `bs` (of one length).
    #[inline(always)]
    pub(crate) fn add2(&mut self, a: &[f32], b: &[f32], f: impl Fn(f32, f32) -> f64) {
        let mut sums = self.0;
        let pair = |s: &mut [[f64; 8]; 2], x: &[f32], y: &[f32]| {
            for (h, s) in s.iter_mut().enumerate() {
                let terms = x.iter().zip(y).skip(8 * h);
                for (s, (&x, &y)) in s.iter_mut().zip(terms) {
                    *s += f(x, y);
                }
            }
        };
        let (ca, cb) = (a.chunks_exact(16), b.chunks_exact(16));
        let (ra, rb) = (ca.remainder(), cb.remainder());
        for (ca, cb) in ca.zip(cb) {
            let (ca, cb): (&[f32; 16], &[f32; 16]) = (
                ca.try_into().expect("16 terms"),
                cb.try_into().expect("16 terms"),
            );
            pair(&mut sums, ca, cb);
        }
        pair(&mut sums, ra, rb);
        self.0 = sums;
    }

    /// The sum of every term added.
    #[inline(always)]
    pub(crate) fn total(&self) -> f64 {
        let mut s: [f64; 16] = std::array::from_fn(|l| self.0[l / 8][l % 8]);
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
        // `add4` gives each sum the bits of its own `add` calls (lengths with and without
        // a remainder, two calls running).
        for len in [0, 7, 16, 40, 64] {
            let ys: Vec<f32> = (0..4 * len).map(|i| 1.0 / (i as f32 + 1.0)).collect();
            let planes: [&[f32]; 4] = std::array::from_fn(|i| &ys[i * len..(i + 1) * len]);
            let mut each: [Lanes64; 4] = Default::default();
            let mut own: [Lanes64; 4] = Default::default();
            for _ in 0..2 {
                Lanes64::add4(&mut each, planes, |x| x as f64 * 0.3);
                for (acc, p) in own.iter_mut().zip(planes) {
                    acc.add(p, |x| x as f64 * 0.3);
                }
            }
            for (e, o) in each.iter().zip(&own) {
                assert_eq!(e.total().to_bits(), o.total().to_bits(), "len {len}");
                assert_eq!(
                    e.0.map(|h| h.map(f64::to_bits)),
                    o.0.map(|h| h.map(f64::to_bits))
                );
            }
        }
        // The order pinned against its definition, on terms where order changes the bits:
        // term `i` of each call into lane `i mod 16`, then lanes `l` and `l + w` added for
        // w = 8, 4, 2, 1.
        let definition = |calls: &[&[f32]], f: &dyn Fn(f32) -> f64| {
            let mut lanes = [0f64; 16];
            for c in calls {
                for (i, &x) in c.iter().enumerate() {
                    lanes[i % 16] += f(x);
                }
            }
            for w in [8, 4, 2, 1] {
                for l in 0..w {
                    lanes[l] += lanes[l + w];
                }
            }
            lanes[0]
        };
        let f = |x: f32| (x as f64).sin() * 1e3;
        let calls: [&[f32]; 3] = [&xs[..37], &xs[37..53], &xs[53..]];
        let (mut acc, mut sq) = (Lanes64::default(), Lanes64::default());
        for c in calls {
            acc.add(c, f);
            sq.add2(c, c, |a, b| f(a) * b as f64);
        }
        assert_eq!(acc.total().to_bits(), definition(&calls, &f).to_bits());
        let g = |x: f32| f(x) * x as f64;
        assert_eq!(sq.total().to_bits(), definition(&calls, &g).to_bits());
        let (mut one, mut two) = (Lanes64::default(), Lanes64::default());
        one.add(&xs, |x| x as f64);
        two.add(&xs[..48], |x| x as f64);
        two.add(&xs[48..], |x| x as f64);
        assert_eq!(one.total().to_bits(), two.total().to_bits());
    }
}
