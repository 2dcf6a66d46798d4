//! Elementwise activations. Each declares only its function `f` and its derivative
//! `df(x, y)` (given the input `x` and the output `y`, so sigmoid and tanh reuse
//! their output); [`Tensor::unary`] does the rest, forward and backward.

use std::sync::Arc;

use super::elementwise::{keep_if, map, map3};

use crate::tensor::Tensor;

impl Tensor {
    /// Applies `f` elementwise and records `df` for the backward pass:
    /// `grad_in = grad_out · df(x, y)`.
    pub fn unary(
        &self,
        name: &'static str,
        f: impl Fn(f32) -> f32 + Sync,
        df: impl Fn(f32, f32) -> f32 + Sync + 'static,
    ) -> Tensor {
        let value = Arc::new(map(self.value(), f));
        let (x, y) = (self.shared_value(), value.clone());
        Tensor::record(name, &[self], value, move |g, _| {
            vec![Some(map3(g, &x, &y, |g, x, y| g * df(x, y)))]
        })
    }

    /// `max(0, x)`. The gradient at exactly 0 is 0, as in PyTorch, and NaN stays
    /// NaN, as in PyTorch (`f32::max` would turn it into 0 and hide it).
    pub fn relu(&self) -> Tensor {
        self.unary("relu", relu, |x, _| keep_if(x > 0.0, 1.0))
    }

    /// `x` for `x > 0`, `slope · x` otherwise (PyTorch's default slope is 0.01).
    pub fn leaky_relu(&self, slope: f32) -> Tensor {
        self.unary(
            "leaky_relu",
            move |x| if x > 0.0 { x } else { slope * x },
            move |x, _| if x > 0.0 { 1.0 } else { slope },
        )
    }

    /// `1 / (1 + e^-x)`, computed without overflow for large |x|.
    pub fn sigmoid(&self) -> Tensor {
        self.unary("sigmoid", sigmoid, |_, y| y * (1.0 - y))
    }

    /// Hyperbolic tangent.
    pub fn tanh(&self) -> Tensor {
        self.unary("tanh", f32::tanh, |_, y| 1.0 - y * y)
    }

    /// Elementwise square (`x²`).
    pub fn square(&self) -> Tensor {
        self.unary("square", |x| x * x, |x, _| 2.0 * x)
    }

    /// Elementwise absolute value; the gradient at 0 is 0.
    pub fn abs(&self) -> Tensor {
        self.unary("abs", f32::abs, |x, _| if x == 0.0 { 0.0 } else { x.signum() })
    }

    /// Elementwise natural exponential.
    pub fn exp(&self) -> Tensor {
        self.unary("exp", f32::exp, |_, y| y)
    }

    /// Elementwise natural logarithm.
    pub fn ln(&self) -> Tensor {
        self.unary("ln", f32::ln, |x, _| 1.0 / x)
    }

    /// Elementwise square root.
    pub fn sqrt(&self) -> Tensor {
        self.unary("sqrt", f32::sqrt, |_, y| 0.5 / y)
    }
}

/// The logistic function, split by sign so `e^-x` never overflows.
fn sigmoid(x: f32) -> f32 {
    if x >= 0.0 {
        1.0 / (1.0 + (-x).exp())
    } else {
        let e = x.exp();
        e / (1.0 + e)
    }
}

/// ReLU of one value, NaN kept: what `relu` and the fused conv block apply.
pub(crate) fn relu(x: f32) -> f32 {
    if x < 0.0 {
        0.0
    } else {
        x
    }
}
