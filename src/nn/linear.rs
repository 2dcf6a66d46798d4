//! `Linear`: a dense layer, `y = x·Wᵀ + b`.

use rand::rngs::StdRng;
use serde::{Deserialize, Serialize};

use super::module::{weight_and_bias, weight_and_bias_mut};
use super::{Init, Mode, Module, Regularizer};
use crate::param::Param;
use crate::tensor::Tensor;

/// A fully connected layer (Keras's `Dense`).
///
/// # Shapes
/// input `[N, in_features]` → output `[N, out_features]`; weight
/// `[out_features, in_features]` (PyTorch's layout), bias `[out_features]`.
///
/// # Defaults
/// bias on, weight Kaiming-uniform (He), bias U(±1/√in) as PyTorch, no regularizer.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Linear {
    /// Weight `[out, in]`.
    pub weight: Param,
    /// Bias `[out]`, if any.
    pub bias: Option<Param>,
    /// Penalty on the weight added to the loss, if any.
    pub regularizer: Option<Regularizer>,
}

impl Linear {
    /// A dense layer from `in_features` to `out_features`.
    pub fn new(in_features: usize, out_features: usize, rng: &mut StdRng) -> Self {
        Self::with_init(in_features, out_features, Init::KaimingUniform, rng)
    }

    /// Like [`Linear::new`] with a chosen weight initializer.
    pub fn with_init(in_features: usize, out_features: usize, init: Init, rng: &mut StdRng) -> Self {
        assert!(
            in_features > 0 && out_features > 0,
            "Linear: sizes must be positive"
        );
        let weight = init.tensor(&[out_features, in_features], in_features, out_features, rng);
        let bias = Init::PyTorchDefault.tensor(&[out_features], in_features, out_features, rng);
        Linear {
            weight: Param::new(weight),
            bias: Some(Param::new(bias)),
            regularizer: None,
        }
    }

    /// Removes the bias.
    pub fn without_bias(mut self) -> Self {
        self.bias = None;
        self
    }

    /// Adds a penalty on the weight to the loss (Keras's `kernel_regularizer`).
    pub fn with_regularizer(mut self, regularizer: Regularizer) -> Self {
        self.regularizer = Some(regularizer);
        self
    }

    /// `in_features`.
    pub fn in_features(&self) -> usize {
        self.weight.shape()[1]
    }

    /// `out_features`.
    pub fn out_features(&self) -> usize {
        self.weight.shape()[0]
    }
}

impl Module for Linear {
    fn forward(&mut self, x: &Tensor, _mode: Mode) -> Tensor {
        let w = self.weight.bind(x);
        let b = self.bias.as_ref().map(|b| b.bind(x));
        x.linear(&w, b.as_ref())
    }

    fn named_parameters(&self) -> Vec<(String, &Param)> {
        weight_and_bias(&self.weight, &self.bias)
    }

    fn named_parameters_mut(&mut self) -> Vec<(String, &mut Param)> {
        weight_and_bias_mut(&mut self.weight, &mut self.bias)
    }

    fn regularization(&self, like: &Tensor) -> Option<Tensor> {
        self.regularizer.map(|r| r.penalty(&self.weight.bind(like)))
    }
}
