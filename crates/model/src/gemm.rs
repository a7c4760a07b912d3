//! Matrix products on row-major slices, through `ndarray` and `matrixmultiply`'s packed
//! SGEMM (no `unsafe` here: `ndarray` checks the shapes).

use ndarray::linalg::general_mat_mul;
use ndarray::{ArrayView2, ArrayViewMut2};

/// `C (m×n) = op(A) · op(B) + beta · C`, where `op(A)` is `m×k` (`A` stored `k×m` when
/// `ta`), `op(B)` is `k×n` (`B` stored `n×k` when `tb`).
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gemm_matches_the_definition_for_every_transpose() {
        let (m, n, k) = (3, 4, 5);
        let a: Vec<f32> = (0..m * k).map(|i| i as f32 * 0.5 - 3.0).collect();
        let b: Vec<f32> = (0..k * n).map(|i| (i as f32).sin()).collect();
        let at: Vec<f32> = (0..k * m).map(|i| a[(i % m) * k + i / m]).collect();
        let bt: Vec<f32> = (0..n * k).map(|i| b[(i % k) * n + i / k]).collect();
        let mut want = vec![0f32; m * n];
        for i in 0..m {
            for j in 0..n {
                want[i * n + j] = (0..k).map(|p| a[i * k + p] * b[p * n + j]).sum::<f32>() + 1.0;
            }
        }
        for (aa, ta) in [(&a, false), (&at, true)] {
            for (bb, tb) in [(&b, false), (&bt, true)] {
                let mut c = vec![1f32; m * n];
                gemm(m, n, k, aa, ta, bb, tb, 1.0, &mut c);
                for (x, y) in c.iter().zip(&want) {
                    assert!((x - y).abs() < 1e-4, "ta={ta} tb={tb}: {x} vs {y}");
                }
            }
        }
    }
}
