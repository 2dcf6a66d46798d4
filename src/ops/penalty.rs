//! Weight penalties for regularization: `Σ x²` (L2) and `Σ |x|` (L1). A regularizer
//! adds `λ · penalty` to the loss on the tape, so its gradient flows like any other
//! (Keras's `kernel_regularizer`); optimizer weight decay is a different mechanism.

use ndarray::{ArrayD, IxDyn};

use crate::tensor::Tensor;

impl Tensor {
    /// `Σ x²` over all elements, as a 0-d tensor (no ½ factor, as Keras's `L2`).
    pub fn l2_penalty(&self) -> Tensor {
        let x = self.shared_value();
        let value = ArrayD::from_elem(IxDyn(&[]), x.iter().map(|&v| v * v).sum::<f32>());
        Tensor::record("l2_penalty", &[self], value, move |g, _| {
            let g = g.sum();
            vec![Some(x.mapv(|v| 2.0 * v * g))]
        })
    }

    /// `Σ |x|` over all elements, as a 0-d tensor. The gradient at 0 is 0.
    pub fn l1_penalty(&self) -> Tensor {
        let x = self.shared_value();
        let value = ArrayD::from_elem(IxDyn(&[]), x.iter().map(|v| v.abs()).sum::<f32>());
        Tensor::record("l1_penalty", &[self], value, move |g, _| {
            let g = g.sum();
            vec![Some(x.mapv(|v| if v == 0.0 { 0.0 } else { v.signum() * g }))]
        })
    }
}
