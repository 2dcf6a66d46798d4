//! Activation layers and `Flatten`: stateless, no parameters.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::registry::to_config;
use super::{ConfigError, FromConfig, Mode, Module, ModuleConfig, Registry};
use crate::observe::Probe;
use crate::tensor::Tensor;

/// A parameterless layer that keeps its input's shape, applying `op` elementwise.
macro_rules! elementwise_layer {
    ($(#[$doc:meta])* $name:ident, $kind:literal, $prefix:literal, |$x:ident| $op:expr) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
        pub struct $name;

        impl Module for $name {
            fn forward(&mut self, $x: &Tensor, _mode: Mode) -> Tensor {
                let probe = Probe::start($x);
                let y = $op;
                probe.finish(self, &y);
                y
            }

            fn kind(&self) -> &str {
                $kind
            }

            fn name_prefix(&self) -> String {
                $prefix.into()
            }

            fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>, String> {
                Ok(input.to_vec())
            }
        }

        impl FromConfig for $name {
            const KIND: &'static str = $kind;

            fn from_config(_: &ModuleConfig, _: &Registry) -> Result<Self, ConfigError> {
                Ok($name)
            }
        }
    };
}

elementwise_layer!(
    /// `max(0, x)`. Any shape.
    ReLU, "ReLU", "relu", |x| x.relu()
);

elementwise_layer!(
    /// The logistic function. Any shape.
    Sigmoid, "Sigmoid", "sigmoid", |x| x.sigmoid()
);

elementwise_layer!(
    /// Hyperbolic tangent. Any shape.
    Tanh, "Tanh", "tanh", |x| x.tanh()
);

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
        let probe = Probe::start(x);
        let y = x.leaky_relu(self.negative_slope);
        probe.finish(self, &y);
        y
    }

    fn kind(&self) -> &str {
        Self::KIND
    }

    fn name_prefix(&self) -> String {
        "leaky_relu".into()
    }

    fn config(&self) -> Value {
        to_config(self)
    }

    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>, String> {
        Ok(input.to_vec())
    }
}

impl FromConfig for LeakyReLU {
    const KIND: &'static str = "LeakyReLU";

    fn from_config(config: &ModuleConfig, _: &Registry) -> Result<Self, ConfigError> {
        config.settings()
    }
}

/// Flattens all axes but the batch axis: `[N, C, H, W]` → `[N, C·H·W]`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Flatten;

impl Module for Flatten {
    fn forward(&mut self, x: &Tensor, mode: Mode) -> Tensor {
        self.forward_owned(x.clone(), mode)
    }

    fn forward_owned(&mut self, x: Tensor, _mode: Mode) -> Tensor {
        let probe = Probe::start(&x);
        let shape = [x.shape()[0], x.shape()[1..].iter().product()];
        let y = x.into_reshape(&shape);
        probe.finish(self, &y);
        y
    }

    fn kind(&self) -> &str {
        Self::KIND
    }

    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>, String> {
        Ok(vec![input.iter().product()])
    }
}

impl FromConfig for Flatten {
    const KIND: &'static str = "Flatten";

    fn from_config(_: &ModuleConfig, _: &Registry) -> Result<Self, ConfigError> {
        Ok(Flatten)
    }
}
