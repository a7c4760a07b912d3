//! Small dense symmetric eigenproblems (`n × n`, `n` = number of workers) and the double
//! centering that turns squared distances into centred inner products.

/// The largest eigenvalue of the symmetric `k × k` matrix `a` (row-major) and a unit
/// eigenvector for it, by cyclic Jacobi rotations (exact to rounding; `k` is small).
pub(crate) fn top_eigen(a: &[f64], k: usize) -> (f64, Vec<f64>) {
    let mut m = a.to_vec();
    let mut v = vec![0.0; k * k];
    for i in 0..k {
        v[i * k + i] = 1.0;
    }
    for _sweep in 0..100 {
        let mut off = 0.0;
        for p in 0..k {
            for q in p + 1..k {
                off += m[p * k + q] * m[p * k + q];
            }
        }
        let scale: f64 = (0..k).map(|i| m[i * k + i] * m[i * k + i]).sum::<f64>() + off;
        if off <= 1e-30 * scale.max(f64::MIN_POSITIVE) {
            break;
        }
        for p in 0..k {
            for q in p + 1..k {
                let apq = m[p * k + q];
                if apq == 0.0 {
                    continue;
                }
                let (app, aqq) = (m[p * k + p], m[q * k + q]);
                let theta = (aqq - app) / (2.0 * apq);
                let t = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
                let t = if theta == 0.0 { 1.0 } else { t };
                let c = 1.0 / (t * t + 1.0).sqrt();
                let s = t * c;
                for r in 0..k {
                    let (mrp, mrq) = (m[r * k + p], m[r * k + q]);
                    m[r * k + p] = c * mrp - s * mrq;
                    m[r * k + q] = s * mrp + c * mrq;
                }
                for r in 0..k {
                    let (mpr, mqr) = (m[p * k + r], m[q * k + r]);
                    m[p * k + r] = c * mpr - s * mqr;
                    m[q * k + r] = s * mpr + c * mqr;
                }
                for r in 0..k {
                    let (vrp, vrq) = (v[r * k + p], v[r * k + q]);
                    v[r * k + p] = c * vrp - s * vrq;
                    v[r * k + q] = s * vrp + c * vrq;
                }
            }
        }
    }
    let mut best = 0;
    for i in 1..k {
        if m[i * k + i] > m[best * k + best] {
            best = i;
        }
    }
    let vec = (0..k).map(|r| v[r * k + best]).collect();
    (m[best * k + best], vec)
}

/// Centred inner products `K_ij = (x_i − μ)·(x_j − μ)`, `μ = Σ w_k x_k` (`Σ w = 1`), from the
/// squared distances `d2` (`n × n`) of the rows in `idx`: `K = −½ (D − r1ᵀ − 1rᵀ + t)` with
/// `r_i = Σ_k w_k D_ik`, `t = Σ_k w_k r_k`. Translation-invariant, so no cancellation from a
/// large common mean. Returns `K` over `idx` (`|idx| × |idx|`).
pub(crate) fn centred_gram(d2: &[f64], n: usize, idx: &[usize], w: &[f64]) -> Vec<f64> {
    let k = idx.len();
    let r: Vec<f64> = idx
        .iter()
        .map(|&i| idx.iter().zip(w).map(|(&j, wj)| wj * d2[i * n + j]).sum())
        .collect();
    let t: f64 = r.iter().zip(w).map(|(ri, wi)| ri * wi).sum();
    let mut g = vec![0.0; k * k];
    for a in 0..k {
        for b in 0..k {
            g[a * k + b] = -0.5 * (d2[idx[a] * n + idx[b]] - r[a] - r[b] + t);
        }
    }
    g
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_eigen_of_a_known_matrix() {
        // [[2, 1], [1, 2]] has eigenvalues 3 and 1; the top eigenvector is (1, 1)/√2.
        let (l, v) = top_eigen(&[2.0, 1.0, 1.0, 2.0], 2);
        assert!((l - 3.0).abs() < 1e-12);
        assert!((v[0].abs() - 0.5f64.sqrt()).abs() < 1e-12 && (v[0] - v[1]).abs() < 1e-12);
    }

    #[test]
    fn centred_gram_matches_explicit_centring() {
        let x: [[f64; 2]; 3] = [[1.0, 2.0], [3.0, -1.0], [0.5, 0.5]];
        let n = 3;
        let mut d2 = vec![0.0; 9];
        for i in 0..n {
            for j in 0..n {
                d2[i * n + j] = (x[i][0] - x[j][0]).powi(2) + (x[i][1] - x[j][1]).powi(2);
            }
        }
        let w = [0.5, 0.25, 0.25];
        let mu = [
            w[0] * x[0][0] + w[1] * x[1][0] + w[2] * x[2][0],
            w[0] * x[0][1] + w[1] * x[1][1] + w[2] * x[2][1],
        ];
        let g = centred_gram(&d2, n, &[0, 1, 2], &w);
        for i in 0..n {
            for j in 0..n {
                let e =
                    (x[i][0] - mu[0]) * (x[j][0] - mu[0]) + (x[i][1] - mu[1]) * (x[j][1] - mu[1]);
                assert!((g[i * n + j] - e).abs() < 1e-12);
            }
        }
    }
}
