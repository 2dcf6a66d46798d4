//! Pooling layers: `MaxPool2d`, `AvgPool2d` and `GlobalAvgPool`.

use serde::{Deserialize, Serialize};

use super::{Mode, Module};
use crate::ops::Padding;
use crate::tensor::Tensor;

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
        x.max_pool2d(self.kernel, self.stride, self.padding)
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
        x.avg_pool2d(self.kernel, self.stride, self.padding, self.count_include_pad)
    }
}

/// The mean of each channel: `[N, C, H, W]` → `[N, C]` (Keras's
/// `GlobalAveragePooling2D`, PyTorch's `AdaptiveAvgPool2d(1)` + flatten).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct GlobalAvgPool;

impl Module for GlobalAvgPool {
    fn forward(&mut self, x: &Tensor, _mode: Mode) -> Tensor {
        x.global_avg_pool2d()
    }
}
