//! `Conv2dBlock`: `Conv2d → ReLU → MaxPool2d` (or a part of it) as one fused op.
//!
//! The fused op ([`Tensor::conv2d_block`]) keeps each image's conv result in cache
//! while it adds the bias, pools and applies ReLU, instead of writing the
//! full-resolution output to memory and reading it back (a quarter of an R1 step,
//! profiled). Values and gradients are those of the separate layers, bit for bit.
//!
//! Fusion is explicit — this block, written where the network is defined — rather
//! than something a container does behind the user's back, so a `Conv2d` computes
//! the same wherever it is, and the block works the same inside a residual branch
//! or a user's own module.

use rand::rngs::StdRng;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::registry::{ConfigError, FromConfig, ModuleConfig, Registry};
use super::shape::spatial;
use super::{Conv2d, MaxPool2d, Mode, Module};
use crate::observe::Probe;
use crate::ops::{ConvEpilogue, PoolWindow};
use crate::param::Param;
use crate::tensor::Tensor;

/// A convolution followed by ReLU and/or max pooling, computed as one op. Its
/// parameters are the convolution's (`weight`, `bias`), so a block named `conv1`
/// has the same state dict as a `Conv2d` named `conv1`.
///
/// ```
/// use ferrocnn::nn::{Conv2d, Conv2dBlock, MaxPool2d, Mode, Module};
/// use ferrocnn::Tensor;
/// use ndarray::Array4;
/// use rand::SeedableRng;
///
/// let rng = &mut rand::rngs::StdRng::seed_from_u64(0);
/// let mut block = Conv2dBlock::new(Conv2d::new(1, 8, (3, 3), rng))
///     .with_relu()
///     .with_max_pool(MaxPool2d::new((2, 2)));
/// let y = block.forward(&Tensor::new(Array4::<f32>::zeros((2, 1, 28, 28)).into_dyn()), Mode::Train);
/// assert_eq!(y.shape(), &[2, 8, 13, 13]);
/// ```
#[derive(Clone, Debug)]
pub struct Conv2dBlock {
    /// The convolution.
    pub conv: Conv2d,
    /// ReLU after the convolution.
    pub relu: bool,
    /// Max pooling after that.
    pub max_pool: Option<MaxPool2d>,
}

impl Conv2dBlock {
    /// The convolution alone (add parts with the `with_` methods).
    pub fn new(conv: Conv2d) -> Self {
        Conv2dBlock {
            conv,
            relu: false,
            max_pool: None,
        }
    }

    /// Adds ReLU.
    pub fn with_relu(mut self) -> Self {
        self.relu = true;
        self
    }

    /// Adds max pooling.
    pub fn with_max_pool(mut self, pool: MaxPool2d) -> Self {
        self.max_pool = Some(pool);
        self
    }

    fn epilogue(&self) -> ConvEpilogue {
        ConvEpilogue {
            relu: self.relu,
            max_pool: self.max_pool.as_ref().map(|p| PoolWindow {
                kernel: p.kernel,
                stride: p.stride,
                padding: p.padding,
            }),
        }
    }
}

/// The settings of the block's epilogue (the conv's are stored as its own).
#[derive(Serialize, Deserialize)]
struct Epilogue {
    relu: bool,
    max_pool: Option<MaxPool2d>,
}

impl Module for Conv2dBlock {
    fn forward(&mut self, x: &Tensor, _mode: Mode) -> Tensor {
        let probe = Probe::start(x);
        let epilogue = self.epilogue();
        let y = self.conv.forward_block_keeping(x, &epilogue);
        probe.finish(self, &y);
        y
    }

    fn kind(&self) -> &str {
        Self::KIND
    }

    fn name_prefix(&self) -> String {
        "conv".into()
    }

    fn config(&self) -> Value {
        json!({
            "conv": self.conv.config(),
            "relu": self.relu,
            "max_pool": self.max_pool.as_ref().map(Module::config),
        })
    }

    fn own_parameters(&self) -> Vec<(String, &Param)> {
        self.conv.own_parameters()
    }

    fn own_parameters_mut(&mut self) -> Vec<(String, &mut Param)> {
        self.conv.own_parameters_mut()
    }

    fn own_penalty(&self, like: &Tensor) -> Option<Tensor> {
        self.conv.own_penalty(like)
    }

    fn reset_own_parameters(&mut self, rng: &mut StdRng) {
        self.conv.reset_own_parameters(rng);
    }

    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>, String> {
        let out = self.conv.output_shape(input)?;
        match &self.max_pool {
            Some(p) => {
                let (h, w) = spatial(&out, p.kernel, p.stride, p.padding, (1, 1))
                    .map_err(|e| format!("its max pooling: {e}"))?;
                Ok(vec![out[0], h, w])
            }
            None => Ok(out),
        }
    }
}

impl FromConfig for Conv2dBlock {
    const KIND: &'static str = "Conv2dBlock";

    fn from_config(config: &ModuleConfig, registry: &Registry) -> Result<Self, ConfigError> {
        let part = |kind: &str, key: &str| ModuleConfig {
            kind: kind.to_string(),
            config: config.config.get(key).cloned().unwrap_or(Value::Null),
            children: Vec::new(),
        };
        let epilogue: Epilogue = config.settings()?;
        let max_pool = match epilogue.max_pool {
            Some(_) => Some(MaxPool2d::from_config(&part("MaxPool2d", "max_pool"), registry)?),
            None => None,
        };
        Ok(Conv2dBlock {
            conv: Conv2d::from_config(&part("Conv2d", "conv"), registry)?,
            relu: epilogue.relu,
            max_pool,
        })
    }
}

/// The convolution of a module that is one — a [`Conv2d`] or a [`Conv2dBlock`] —
/// for the pictures of its filters and feature maps.
pub fn conv_of(module: &dyn Module) -> Option<&Conv2d> {
    module
        .downcast_ref::<Conv2d>()
        .or_else(|| module.downcast_ref::<Conv2dBlock>().map(|b| &b.conv))
}
