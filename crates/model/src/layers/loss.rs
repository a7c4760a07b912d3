//! Softmax cross-entropy on the logits (the loss every model here trains with).

/// The summed cross-entropy of `labels` under `logits` (`labels.len()` rows of `classes`),
/// and how many rows predict their label (ties: the first maximum); writes
/// `d mean loss / d logits` into `grad` when given.
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
