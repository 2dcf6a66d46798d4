//! Activation layers and `Flatten`: stateless, no parameters.

use serde::{Deserialize, Serialize};

use super::{Mode, Module};
use crate::tensor::Tensor;

/// `max(0, x)`. Any shape.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ReLU;

impl Module for ReLU {
    fn forward(&mut self, x: &Tensor, _mode: Mode) -> Tensor {
        x.relu()
    }
}

/// `x` if positive, else `negative_slope · x`. Any shape. PyTorch's default slope is 0.01.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct LeakyReLU {
    /// Slope for negative inputs.
    pub negative_slope: f32,
}

impl Default for LeakyReLU {
    fn default() -> Self {
        LeakyReLU { negative_slope: 0.01 }
    }
}

impl Module for LeakyReLU {
    fn forward(&mut self, x: &Tensor, _mode: Mode) -> Tensor {
        x.leaky_relu(self.negative_slope)
    }
}

/// The logistic function. Any shape.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Sigmoid;

impl Module for Sigmoid {
    fn forward(&mut self, x: &Tensor, _mode: Mode) -> Tensor {
        x.sigmoid()
    }
}

/// Hyperbolic tangent. Any shape.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Tanh;

impl Module for Tanh {
    fn forward(&mut self, x: &Tensor, _mode: Mode) -> Tensor {
        x.tanh()
    }
}

/// Flattens all axes but the batch axis: `[N, C, H, W]` → `[N, C·H·W]`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Flatten;

impl Module for Flatten {
    fn forward(&mut self, x: &Tensor, _mode: Mode) -> Tensor {
        x.flatten()
    }
}
