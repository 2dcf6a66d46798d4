//! Per-layer weight regularization, as Keras's `kernel_regularizer`.
//!
//! A regularizer adds `λ·Σw²` (L2) or `λ·Σ|w|` (L1) of a layer's weight to the loss
//! on the tape, so it shows in the reported loss and its gradient flows through
//! backward like any other term. Optimizer *weight decay* (`SGD`/`Adam`
//! `weight_decay`) instead adds `wd·w` to the gradient inside the optimizer and never
//! appears in the loss; `AdamW` decouples it further from the adaptive step. With
//! plain SGD, L2 with λ equals weight decay with `wd = 2λ`; with Adam they differ.

use serde::{Deserialize, Serialize};

use crate::tensor::Tensor;

/// A penalty on a layer's weight (biases are not penalized, as in Keras).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub enum Regularizer {
    /// `λ · Σ w²`.
    L2(f32),
    /// `λ · Σ |w|`.
    L1(f32),
    /// `λ1 · Σ |w| + λ2 · Σ w²`.
    L1L2(f32, f32),
}

impl Regularizer {
    /// The penalty of `weight` (already bound to the tape).
    pub fn penalty(self, weight: &Tensor) -> Tensor {
        match self {
            Regularizer::L2(l) => weight.l2_penalty().mul_scalar(l),
            Regularizer::L1(l) => weight.l1_penalty().mul_scalar(l),
            Regularizer::L1L2(l1, l2) => {
                &weight.l1_penalty().mul_scalar(l1) + &weight.l2_penalty().mul_scalar(l2)
            }
        }
    }
}
