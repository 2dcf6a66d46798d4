//! Reductions: sum and mean, over all elements or along one axis.

use ndarray::{ArrayD, Axis, IxDyn};

use crate::tensor::Tensor;

impl Tensor {
    /// The sum of all elements, as a 0-d tensor.
    pub fn sum(&self) -> Tensor {
        let value = ArrayD::from_elem(IxDyn(&[]), self.value().sum());
        let shape = self.value().raw_dim();
        Tensor::record("sum", &[self], value, move |g, _| {
            vec![Some(ArrayD::from_elem(shape.clone(), g.sum()))]
        })
    }

    /// The mean of all elements, as a 0-d tensor.
    pub fn mean(&self) -> Tensor {
        let n = self.len().max(1) as f32;
        self.sum().mul_scalar(1.0 / n)
    }

    /// Sums along `axis`, removing it (PyTorch's `sum(dim)`).
    pub fn sum_axis(&self, axis: usize) -> Tensor {
        assert!(
            axis < self.ndim(),
            "sum_axis: axis {axis} out of range for shape {:?}",
            self.shape()
        );
        let value = self.value().sum_axis(Axis(axis));
        let shape = self.value().raw_dim();
        Tensor::record("sum_axis", &[self], value, move |g, _| {
            let g = g.view().insert_axis(Axis(axis));
            let g = g.broadcast(shape.clone()).expect("reduced axis broadcasts back");
            vec![Some(g.to_owned())]
        })
    }

    /// Averages along `axis`, removing it (PyTorch's `mean(dim)`).
    pub fn mean_axis(&self, axis: usize) -> Tensor {
        let n = self.shape().get(axis).copied().unwrap_or(1).max(1) as f32;
        self.sum_axis(axis).mul_scalar(1.0 / n)
    }
}
