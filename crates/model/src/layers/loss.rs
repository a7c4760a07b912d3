//! The loss on the last layer's outputs: softmax cross-entropy on the logits (the loss every
//! model here trains with by default), or the thesis's code's softmax output followed by a
//! cross-entropy that applies softmax again.

use serde::{Deserialize, Serialize};

/// What the network's last layer feeds into the loss.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Head {
    /// Cross-entropy on the logits (`log_softmax` then the negative log-likelihood; PyTorch's
    /// `CrossEntropyLoss` on logits): the text's and the default.
    #[default]
    LogSoftmax,
    /// The thesis's code: the model ends in `F.softmax` and the workers' loss is
    /// `nn.CrossEntropyLoss()` on those probabilities, i.e. the cross-entropy of
    /// `softmax(softmax(z))` (`model.py`, `CnnMist.forward`; `worker.py`, `self.loss`). The
    /// loss cannot go below `ln(1 + 9/e) ≈ 1.46` on 10 classes, and a confidently wrong sample
    /// (probability near 0 on its label) gets almost no gradient. Predictions are the arg-max
    /// of the probabilities, computed in `f32` as PyTorch does (saturated probabilities can
    /// tie where the logits do not; ties go to the first class).
    SoftmaxThenCrossEntropy,
}

impl Head {
    /// The class `row` (one sample's outputs of the last layer) predicts: the first maximum
    /// of the logits, or of their softmax probabilities in `f32` for
    /// [`Head::SoftmaxThenCrossEntropy`] (where saturated probabilities can tie).
    pub fn predict(self, row: &[f32]) -> usize {
        match self {
            Self::LogSoftmax => {
                row.iter()
                    .enumerate()
                    .fold(0, |best, (j, &v)| if v > row[best] { j } else { best })
            }
            Self::SoftmaxThenCrossEntropy => {
                let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                let sum: f64 = row.iter().map(|&v| ((v - max) as f64).exp()).sum();
                first_max(row.iter().map(|&v| (((v - max) as f64).exp() / sum) as f32))
            }
        }
    }
}

/// The summed loss of `labels` under `logits` (`labels.len()` rows of `classes`) through
/// `head`, and how many rows predict their label (ties: the first maximum); writes
/// `d mean loss / d logits` into `grad` when given.
#[inline(always)]
pub(crate) fn loss(
    head: Head,
    logits: &[f32],
    classes: usize,
    labels: &[u8],
    grad: Option<&mut [f32]>,
) -> (f64, usize) {
    match head {
        Head::LogSoftmax => cross_entropy(logits, classes, labels, grad),
        Head::SoftmaxThenCrossEntropy => softmax_then_cross_entropy(logits, classes, labels, grad),
    }
}

/// Index of the first maximum.
fn first_max(row: impl Iterator<Item = f32> + Clone) -> usize {
    let mut best = (0, f32::NEG_INFINITY);
    for (j, v) in row.enumerate() {
        if j == 0 || v > best.1 {
            best = (j, v);
        }
    }
    best.0
}

/// Softmax cross-entropy on the logits.
#[inline(always)]
pub(crate) fn cross_entropy(
    logits: &[f32],
    classes: usize,
    labels: &[u8],
    mut grad: Option<&mut [f32]>,
) -> (f64, usize) {
    let (k, batch) = (classes, labels.len());
    let (mut loss, mut correct) = (0f64, 0usize);
    for (b, row) in logits[..batch * k].chunks_exact(k).enumerate() {
        let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let sum: f64 = row.iter().map(|&v| ((v - max) as f64).exp()).sum();
        let log_z = max as f64 + sum.ln();
        let y = labels[b] as usize;
        loss += log_z - row[y] as f64;
        let arg = row
            .iter()
            .enumerate()
            .fold(0, |best, (j, &v)| if v > row[best] { j } else { best });
        correct += usize::from(arg == y);
        if let Some(g) = grad.as_deref_mut() {
            for (j, (gj, &v)) in g[b * k..(b + 1) * k].iter_mut().zip(row).enumerate() {
                let p = ((v as f64) - log_z).exp();
                *gj = ((p - f64::from(u8::from(j == y))) / batch as f64) as f32;
            }
        }
    }
    (loss, correct)
}

/// Cross-entropy of `softmax(p)` where `p = softmax(z)`: with `g = (softmax(p) − e_y)/B` the
/// gradient on the probabilities, `dL/dz_i = p_i (g_i − Σ_j p_j g_j)` (the softmax's
/// Jacobian). Sums in `f64`; 10 classes here, so no buffer is needed beyond 64 classes'
/// worth on the stack.
#[inline(always)]
fn softmax_then_cross_entropy(
    logits: &[f32],
    classes: usize,
    labels: &[u8],
    mut grad: Option<&mut [f32]>,
) -> (f64, usize) {
    const MAX: usize = 64;
    let (k, batch) = (classes, labels.len());
    assert!(
        k <= MAX,
        "softmax_then_cross_entropy supports at most {MAX} classes"
    );
    let (mut loss, mut correct) = (0f64, 0usize);
    let mut p = [0f64; MAX];
    let mut g = [0f64; MAX];
    for (b, row) in logits[..batch * k].chunks_exact(k).enumerate() {
        let y = labels[b] as usize;
        let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let sum: f64 = row.iter().map(|&v| ((v - max) as f64).exp()).sum();
        for (pj, &v) in p.iter_mut().zip(row) {
            *pj = ((v - max) as f64).exp() / sum;
        }
        let p = &p[..k];
        correct += usize::from(first_max(p.iter().map(|&x| x as f32)) == y);
        // Probabilities are in [0, 1]: their softmax needs no shift.
        let z2: f64 = p.iter().map(|&x| x.exp()).sum();
        loss += z2.ln() - p[y];
        if let Some(out) = grad.as_deref_mut() {
            let mut dot = 0f64;
            for (j, (gj, &pj)) in g.iter_mut().zip(p).enumerate() {
                *gj = (pj.exp() / z2 - f64::from(u8::from(j == y))) / batch as f64;
                dot += *gj * pj;
            }
            for (j, o) in out[b * k..(b + 1) * k].iter_mut().enumerate() {
                *o = (p[j] * (g[j] - dot)) as f32;
            }
        }
    }
    (loss, correct)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The loss of one row through `head`, in `f64`, written out from its definition.
    fn reference(head: Head, z: &[f64], y: usize) -> f64 {
        let softmax = |v: &[f64]| {
            let m = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let s: f64 = v.iter().map(|x| (x - m).exp()).sum();
            v.iter().map(|x| (x - m).exp() / s).collect::<Vec<f64>>()
        };
        match head {
            Head::LogSoftmax => -softmax(z)[y].ln(),
            Head::SoftmaxThenCrossEntropy => -softmax(&softmax(z))[y].ln(),
        }
    }

    #[test]
    fn softmax_then_cross_entropy_gradient_matches_a_finite_difference() {
        // Two rows of 10 logits, one confident and wrong, one uncertain.
        let mut z = vec![0f32; 20];
        for (i, v) in z.iter_mut().enumerate() {
            *v = ((i * 7 % 11) as f32 - 5.0) * 0.6;
        }
        z[3] = 9.0; // row 0 predicts 3 confidently
        let labels = [7u8, 2];
        for head in [Head::LogSoftmax, Head::SoftmaxThenCrossEntropy] {
            let mut g = vec![0f32; 20];
            let (sum, _) = loss(head, &z, 10, &labels, Some(&mut g));
            let mean =
                |zz: &[f64]| (reference(head, &zz[..10], 7) + reference(head, &zz[10..], 2)) / 2.0;
            let z64: Vec<f64> = z.iter().map(|&v| v as f64).collect();
            assert!((sum / 2.0 - mean(&z64)).abs() < 1e-6, "{head:?}: the loss");
            for i in 0..20 {
                let h = 1e-5;
                let (mut up, mut down) = (z64.clone(), z64.clone());
                up[i] += h;
                down[i] -= h;
                let fd = (mean(&up) - mean(&down)) / (2.0 * h);
                assert!(
                    (g[i] as f64 - fd).abs() < 1e-6,
                    "{head:?} logit {i}: analytic {} vs finite difference {fd}",
                    g[i]
                );
            }
        }
    }

    #[test]
    fn the_codes_loss_is_bounded_below_and_starves_confident_mistakes() {
        // Perfectly confident and right: CE(softmax(e_y)) = ln(9 + e) − 1 ≈ 1.4612.
        let mut z = vec![-50f32; 10];
        z[4] = 50.0;
        let (l, correct) = loss(Head::SoftmaxThenCrossEntropy, &z, 10, &[4], None);
        assert!((l - ((9.0 + 1f64.exp()).ln() - 1.0)).abs() < 1e-9);
        assert_eq!(correct, 1);
        // Confidently wrong: the log-softmax head's gradient is ~1 on the label; the code's
        // is ~0 (the softmax saturates).
        let mut g = vec![0f32; 10];
        loss(Head::SoftmaxThenCrossEntropy, &z, 10, &[1], Some(&mut g));
        assert!(g.iter().all(|v| v.abs() < 1e-20), "{g:?}");
        loss(Head::LogSoftmax, &z, 10, &[1], Some(&mut g));
        assert!((g[1] + 1.0).abs() < 1e-6);
    }
}
