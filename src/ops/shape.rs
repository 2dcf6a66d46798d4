//! Shape changes: reshape and flatten (the same elements in the same order), and
//! permute and transpose (the axes reordered).

use std::sync::Arc;

use ndarray::{ArrayD, IxDyn};

use super::elementwise::map;
use crate::tensor::Tensor;

/// A copy in standard layout, over the pool's threads when large: a reshape runs
/// on the calling thread between ops, and there a serial copy of R2's flattened
/// activations and their gradient (2.4 MB each) kept the pool idle (1.3% of an R2
/// epoch's samples, perf).
fn copy(a: &ArrayD<f32>) -> ArrayD<f32> {
    map(a, |v| v)
}

/// `a`'s elements (row-major order) under `shape`: the same buffer when `a` is in
/// standard layout, else a copy.
pub(crate) fn reshape_owned(a: ArrayD<f32>, shape: &[usize]) -> ArrayD<f32> {
    let a = if a.is_standard_layout() { a } else { copy(&a) };
    a.into_shape_with_order(IxDyn(shape)).expect("same element count")
}

impl Tensor {
    /// The same elements (row-major order) under a new shape with as many elements.
    pub fn reshape(&self, shape: &[usize]) -> Tensor {
        self.check_reshape(shape);
        Tensor::record_reshape(self, reshape_owned(copy(self.value()), shape))
    }

    /// [`reshape`](Tensor::reshape) of a tensor given up: when no other handle
    /// shares its value and that is in standard layout, the result keeps the
    /// buffer (no copy), like a PyTorch `view`.
    ///
    /// ```
    /// use ferrocnn::Tensor;
    /// let x = Tensor::new(ndarray::Array2::<f32>::ones((2, 6)).into_dyn());
    /// let at = x.value().as_ptr();
    /// let y = x.into_reshape(&[2, 3, 2]);
    /// assert_eq!((y.shape(), y.value().as_ptr()), (&[2, 3, 2][..], at));
    /// ```
    pub fn into_reshape(self, shape: &[usize]) -> Tensor {
        self.check_reshape(shape);
        self.record_reshape_owned(|value| match Arc::try_unwrap(value) {
            Ok(owned) => reshape_owned(owned, shape),
            Err(shared) => reshape_owned(copy(&shared), shape),
        })
    }

    fn check_reshape(&self, shape: &[usize]) {
        let n: usize = shape.iter().product();
        assert_eq!(
            n,
            self.len(),
            "reshape: cannot view shape {:?} ({} elements) as {shape:?} ({n} elements)",
            self.shape(),
            self.len()
        );
    }

    /// Flattens all axes but the first: `[N, C, H, W]` → `[N, C·H·W]`.
    pub fn flatten(&self) -> Tensor {
        assert!(
            self.ndim() >= 1,
            "flatten: expects at least one axis, got a scalar"
        );
        let n = self.shape()[0];
        let rest = self.shape()[1..].iter().product();
        self.reshape(&[n, rest])
    }

    /// The axes reordered: axis `i` of the result is axis `order[i]` of `self`
    /// (PyTorch's `permute`), e.g. `[0, 2, 3, 1]` turns NCHW into NHWC. The result
    /// is stored in the new order (row-major).
    ///
    /// ```
    /// use ferrocnn::Tensor;
    /// let x = Tensor::new(ndarray::Array3::<f32>::zeros((2, 3, 4)).into_dyn());
    /// assert_eq!(x.permute(&[2, 0, 1]).shape(), &[4, 2, 3]);
    /// ```
    pub fn permute(&self, order: &[usize]) -> Tensor {
        let mut seen = vec![false; self.ndim()];
        for &axis in order {
            if let Some(seen) = seen.get_mut(axis) {
                *seen = true;
            }
        }
        assert!(
            order.len() == self.ndim() && seen.iter().all(|&s| s),
            "permute: {order:?} is not an order of the {} axes of shape {:?}",
            self.ndim(),
            self.shape()
        );
        let value = self
            .value()
            .view()
            .permuted_axes(IxDyn(order))
            .as_standard_layout()
            .into_owned();
        // The gradient goes back through the inverse order.
        let mut inverse = vec![0; order.len()];
        for (i, &axis) in order.iter().enumerate() {
            inverse[axis] = i;
        }
        Tensor::record("permute", &[self], value, move |g, _| {
            vec![Some(
                g.view()
                    .permuted_axes(IxDyn(&inverse))
                    .as_standard_layout()
                    .into_owned(),
            )]
        })
    }

    /// Axes `a` and `b` swapped (PyTorch's `transpose`); `transpose(0, 1)` of a
    /// matrix is its transpose.
    pub fn transpose(&self, a: usize, b: usize) -> Tensor {
        assert!(
            a < self.ndim() && b < self.ndim(),
            "transpose: axes {a} and {b} out of range for shape {:?}",
            self.shape()
        );
        let mut order: Vec<usize> = (0..self.ndim()).collect();
        order.swap(a, b);
        self.permute(&order)
    }
}
