//! Pooling layers: `MaxPool2d`, `AvgPool2d` and `GlobalAvgPool`.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::registry::to_config;
use super::shape::spatial;
use super::{ConfigError, FromConfig, Mode, Module, ModuleConfig, Registry};
use crate::observe::Probe;
use crate::ops::Padding;
use crate::tensor::Tensor;

/// A window that cannot be applied (zero sizes) is an invalid config.
fn check_window(kind: &str, kernel: (usize, usize), stride: (usize, usize)) -> Result<(), ConfigError> {
    if [kernel.0, kernel.1, stride.0, stride.1].contains(&0) {
        return Err(ConfigError::invalid(kind, "kernel and stride must be at least 1"));
    }
    Ok(())
}

/// Max pooling over windows of an NCHW tensor.
///
/// # Shapes
/// `[N, C, H, W]` → `[N, C, OH, OW]`, sizes as for a convolution with this kernel.
///
/// # Defaults
/// stride = kernel (PyTorch's default), no padding.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MaxPool2d {
    /// Window `(kh, kw)`.
    pub kernel: (usize, usize),
    /// Step `(sh, sw)`.
    pub stride: (usize, usize),
    /// Padding (padded positions never win).
    pub padding: Padding,
}

impl MaxPool2d {
    /// Windows of `kernel`, stride equal to the kernel.
    pub fn new(kernel: (usize, usize)) -> Self {
        MaxPool2d {
            kernel,
            stride: kernel,
            padding: Padding::Valid,
        }
    }

    /// Sets the stride (overlapping windows when smaller than the kernel).
    pub fn with_stride(mut self, stride: (usize, usize)) -> Self {
        self.stride = stride;
        self
    }

    /// Sets the padding.
    pub fn with_padding(mut self, padding: Padding) -> Self {
        self.padding = padding;
        self
    }
}

impl Module for MaxPool2d {
    fn forward(&mut self, x: &Tensor, _mode: Mode) -> Tensor {
        let probe = Probe::start(x);
        let y = x.max_pool2d(self.kernel, self.stride, self.padding);
        probe.finish(self, &y);
        y
    }

    fn kind(&self) -> &str {
        Self::KIND
    }

    fn name_prefix(&self) -> String {
        "pool".into()
    }

    fn config(&self) -> Value {
        to_config(self)
    }

    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>, String> {
        let (h, w) = spatial(input, self.kernel, self.stride, self.padding, (1, 1))?;
        Ok(vec![input[0], h, w])
    }
}

impl FromConfig for MaxPool2d {
    const KIND: &'static str = "MaxPool2d";

    fn from_config(config: &ModuleConfig, _: &Registry) -> Result<Self, ConfigError> {
        let pool: MaxPool2d = config.settings()?;
        check_window(Self::KIND, pool.kernel, pool.stride)?;
        Ok(pool)
    }
}

/// Average pooling over windows of an NCHW tensor.
///
/// # Shapes
/// `[N, C, H, W]` → `[N, C, OH, OW]`.
///
/// # Defaults
/// stride = kernel, no padding, padded zeros counted in the average
/// (`count_include_pad = true`, PyTorch's default).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AvgPool2d {
    /// Window `(kh, kw)`.
    pub kernel: (usize, usize),
    /// Step `(sh, sw)`.
    pub stride: (usize, usize),
    /// Padding.
    pub padding: Padding,
    /// Whether padded zeros count in the divisor.
    pub count_include_pad: bool,
}

impl AvgPool2d {
    /// Windows of `kernel`, stride equal to the kernel.
    pub fn new(kernel: (usize, usize)) -> Self {
        AvgPool2d {
            kernel,
            stride: kernel,
            padding: Padding::Valid,
            count_include_pad: true,
        }
    }

    /// Sets the stride.
    pub fn with_stride(mut self, stride: (usize, usize)) -> Self {
        self.stride = stride;
        self
    }

    /// Sets the padding and whether padded zeros count in the average.
    pub fn with_padding(mut self, padding: Padding, count_include_pad: bool) -> Self {
        self.padding = padding;
        self.count_include_pad = count_include_pad;
        self
    }
}

impl Module for AvgPool2d {
    fn forward(&mut self, x: &Tensor, _mode: Mode) -> Tensor {
        let probe = Probe::start(x);
        let y = x.avg_pool2d(self.kernel, self.stride, self.padding, self.count_include_pad);
        probe.finish(self, &y);
        y
    }

    fn kind(&self) -> &str {
        Self::KIND
    }

    fn name_prefix(&self) -> String {
        "avgpool".into()
    }

    fn config(&self) -> Value {
        to_config(self)
    }

    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>, String> {
        let (h, w) = spatial(input, self.kernel, self.stride, self.padding, (1, 1))?;
        Ok(vec![input[0], h, w])
    }
}

impl FromConfig for AvgPool2d {
    const KIND: &'static str = "AvgPool2d";

    fn from_config(config: &ModuleConfig, _: &Registry) -> Result<Self, ConfigError> {
        let pool: AvgPool2d = config.settings()?;
        check_window(Self::KIND, pool.kernel, pool.stride)?;
        Ok(pool)
    }
}

/// The mean of each channel: `[N, C, H, W]` → `[N, C]` (Keras's
/// `GlobalAveragePooling2D`, PyTorch's `AdaptiveAvgPool2d(1)` + flatten).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct GlobalAvgPool;

impl Module for GlobalAvgPool {
    fn forward(&mut self, x: &Tensor, _mode: Mode) -> Tensor {
        let probe = Probe::start(x);
        let y = x.global_avg_pool2d();
        probe.finish(self, &y);
        y
    }

    fn kind(&self) -> &str {
        Self::KIND
    }

    fn name_prefix(&self) -> String {
        "gap".into()
    }

    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>, String> {
        match input {
            [c, _, _] => Ok(vec![*c]),
            _ => Err(format!("expects [channels, height, width], got {input:?}")),
        }
    }
}

impl FromConfig for GlobalAvgPool {
    const KIND: &'static str = "GlobalAvgPool";

    fn from_config(_: &ModuleConfig, _: &Registry) -> Result<Self, ConfigError> {
        Ok(GlobalAvgPool)
    }
}
