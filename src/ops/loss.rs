//! The losses: softmax cross-entropy (fused, numerically stable,
//! optional label smoothing) and mean squared error.
//!
//! Cross-entropy is fused rather than built from `log_softmax` + indexing because the
//! fused gradient, `(softmax − target) / N`, is both cheaper and exact: no `exp` of a
//! large logit is ever formed, so logits of ±1000 give a finite loss and gradient.

use ndarray::{Array2, ArrayD, ArrayView2, Ix2, IxDyn};

use crate::tensor::Tensor;

fn logits2<'a>(op: &str, a: &'a ArrayD<f32>) -> ArrayView2<'a, f32> {
    a.view()
        .into_dimensionality::<Ix2>()
        .unwrap_or_else(|_| panic!("{op}: expects logits [N, classes], got shape {:?}", a.shape()))
}

/// Row-wise log-softmax, shifted by each row's maximum so no `exp` overflows.
fn log_softmax_rows(x: ArrayView2<f32>) -> Array2<f32> {
    let mut out = x.to_owned();
    for mut row in out.rows_mut() {
        let max = row.fold(f32::NEG_INFINITY, |m, &v| m.max(v));
        let log_sum = row.iter().map(|&v| (v - max).exp()).sum::<f32>().ln() + max;
        row.mapv_inplace(|v| v - log_sum);
    }
    out
}

impl Tensor {
    /// Mean softmax cross-entropy of `[N, classes]` logits against class indices
    /// (PyTorch's `F.cross_entropy`).
    pub fn cross_entropy(&self, labels: &[usize]) -> Tensor {
        self.cross_entropy_smoothed(labels, 0.0)
    }

    /// Cross-entropy with label smoothing `eps`: the target puts `1 − eps + eps/C`
    /// on the true class and `eps/C` on each other (PyTorch's `label_smoothing`).
    pub fn cross_entropy_smoothed(&self, labels: &[usize], eps: f32) -> Tensor {
        let logits = logits2("cross_entropy", self.value());
        let (n, classes) = logits.dim();
        assert_eq!(
            labels.len(),
            n,
            "cross_entropy: {} labels for logits of shape {:?}",
            labels.len(),
            logits.shape()
        );
        assert!(
            (0.0..1.0).contains(&eps),
            "cross_entropy: label smoothing {eps} not in [0, 1)"
        );
        let log_p = log_softmax_rows(logits);
        let off = eps / classes as f32;
        let mut targets = Array2::from_elem((n, classes), off);
        for (i, &label) in labels.iter().enumerate() {
            assert!(
                label < classes,
                "cross_entropy: label {label} at row {i} is out of range for {classes} classes"
            );
            targets[[i, label]] += 1.0 - eps;
        }
        let total: f64 = log_p
            .iter()
            .zip(targets.iter())
            .map(|(&lp, &t)| -f64::from(t) * f64::from(lp))
            .sum();
        let loss = ArrayD::from_elem(IxDyn(&[]), (total / n.max(1) as f64) as f32);
        Tensor::record("cross_entropy", &[self], loss, move |g, _| {
            let scale = g.sum() / n.max(1) as f32;
            let mut grad = log_p.mapv(f32::exp);
            grad.zip_mut_with(&targets, |p, &t| *p = (*p - t) * scale);
            vec![Some(grad.into_dyn())]
        })
    }

    /// Mean squared error against `target` of the same shape.
    pub fn mse_loss(&self, target: &Tensor) -> Tensor {
        assert_eq!(
            self.shape(),
            target.shape(),
            "mse_loss: prediction {:?} and target {:?} differ in shape",
            self.shape(),
            target.shape()
        );
        self.sub(target).square().mean()
    }
}

/// Index of the largest logit in each row: the predicted class.
pub fn argmax_rows(logits: &ArrayD<f32>) -> Vec<usize> {
    logits2("argmax_rows", logits)
        .rows()
        .into_iter()
        .map(|row| {
            row.iter()
                .enumerate()
                .fold(
                    (0, f32::NEG_INFINITY),
                    |best, (i, &v)| {
                        if v > best.1 {
                            (i, v)
                        } else {
                            best
                        }
                    },
                )
                .0
        })
        .collect()
}

/// Softmax probabilities of `[N, classes]` logits (no tape; for reporting).
pub fn softmax_rows(logits: &ArrayD<f32>) -> Array2<f32> {
    log_softmax_rows(logits2("softmax_rows", logits)).mapv(f32::exp)
}
