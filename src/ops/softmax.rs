//! Softmax and log-softmax along any axis (PyTorch's `softmax(dim)` and
//! `log_softmax(dim)`), each shifted by its lane's maximum so no `exp` overflows.
//!
//! For a classifier's loss use `cross_entropy`, which fuses the log-softmax with the
//! indexing and is exact for logits of any size.

use std::sync::Arc;

use ndarray::{ArrayD, Axis, Zip};

use crate::tensor::Tensor;

/// Panics naming `op` unless `axis` is one of `x`'s.
fn check_axis(op: &str, x: &ArrayD<f32>, axis: usize) -> Axis {
    assert!(
        axis < x.ndim(),
        "{op}: axis {axis} out of range for shape {:?}",
        x.shape()
    );
    Axis(axis)
}

/// `log softmax` of every lane of `x` along `axis`.
fn log_softmax_along(x: &ArrayD<f32>, axis: Axis) -> ArrayD<f32> {
    let mut out = x.to_owned();
    for mut lane in out.lanes_mut(axis) {
        let max = lane.fold(f32::NEG_INFINITY, |m, &v| m.max(v));
        let log_sum = lane.iter().map(|&v| (v - max).exp()).sum::<f32>().ln() + max;
        lane.mapv_inplace(|v| v - log_sum);
    }
    out
}

impl Tensor {
    /// `log(softmax(x))` along `axis`: `x − log Σ exp(x)` over each lane of that
    /// axis (for logits `[N, classes]`, axis 1).
    ///
    /// ```
    /// use ferrocnn::Tensor;
    /// let x = Tensor::new(ndarray::array![[0.0f32, 0.0], [1.0, 1.0]].into_dyn());
    /// let y = x.log_softmax(1);
    /// assert!(y.value().iter().all(|&v| (v - 0.5f32.ln()).abs() < 1e-6));
    /// ```
    pub fn log_softmax(&self, axis: usize) -> Tensor {
        let axis = check_axis("log_softmax", self.value(), axis);
        let value = Arc::new(log_softmax_along(self.value(), axis));
        let y = value.clone();
        Tensor::record("log_softmax", &[self], value, move |g, _| {
            // dx = g − softmax · Σ g, per lane.
            let mut grad = g.to_owned();
            for (mut lane, y) in grad.lanes_mut(axis).into_iter().zip(y.lanes(axis)) {
                let total = lane.sum();
                lane.zip_mut_with(&y, |g, &y| *g -= y.exp() * total);
            }
            vec![Some(grad)]
        })
    }

    /// `exp(x) / Σ exp(x)` along `axis`: each lane of that axis becomes
    /// probabilities that sum to 1.
    ///
    /// ```
    /// use ferrocnn::Tensor;
    /// let x = Tensor::new(ndarray::array![[1.0f32, 3.0], [2.0, 2.0]].into_dyn());
    /// let p = x.softmax(0); // down the columns
    /// assert!((p.value()[[0, 0]] + p.value()[[1, 0]] - 1.0).abs() < 1e-6);
    /// assert!((p.value()[[0, 1]] - 0.7310586).abs() < 1e-6);
    /// ```
    pub fn softmax(&self, axis: usize) -> Tensor {
        let axis = check_axis("softmax", self.value(), axis);
        let value = Arc::new(log_softmax_along(self.value(), axis).mapv(f32::exp));
        let y = value.clone();
        Tensor::record("softmax", &[self], value, move |g, _| {
            // dx = y · (g − Σ g·y), per lane.
            let mut grad = g.to_owned();
            for (mut lane, y) in grad.lanes_mut(axis).into_iter().zip(y.lanes(axis)) {
                let dot = Zip::from(&lane).and(&y).fold(0.0f32, |acc, &g, &y| acc + g * y);
                lane.zip_mut_with(&y, |g, &y| *g = y * (*g - dot));
            }
            vec![Some(grad)]
        })
    }
}
