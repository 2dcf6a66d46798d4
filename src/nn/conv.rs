//! `Conv2d`: a 2-d convolution layer (cross-correlation, as every framework).

use rand::rngs::StdRng;
use serde::{Deserialize, Serialize};

use super::module::{weight_and_bias, weight_and_bias_mut};
use super::{Init, Mode, Module, Regularizer};
use crate::ops::{Conv2dOptions, ConvEpilogue, Padding};
use crate::param::Param;
use crate::tensor::Tensor;

/// 2-d convolution over NCHW input.
///
/// # Shapes
/// input `[N, in_channels, H, W]` → output `[N, out_channels, OH, OW]` with
/// `OH = (H + pad_top + pad_bottom − dilation·(kh−1) − 1) / stride + 1` (likewise OW);
/// weight `[out_channels, in_channels, kh, kw]`, bias `[out_channels]`.
///
/// # Defaults
/// stride 1, `Padding::Valid`, dilation 1, bias on, weights Kaiming-uniform (He, for
/// ReLU), bias U(±1/√fan_in) as PyTorch, no regularizer.
///
/// ```
/// use ferrocnn::nn::{Conv2d, Mode, Module};
/// use ferrocnn::{Padding, Tensor};
/// use ndarray::Array4;
/// use rand::SeedableRng;
///
/// let mut rng = rand::rngs::StdRng::seed_from_u64(0);
/// let mut conv = Conv2d::new(1, 8, (3, 3), &mut rng).with_padding(Padding::Same);
/// let y = conv.forward(&Tensor::new(Array4::<f32>::zeros((2, 1, 28, 28)).into_dyn()), Mode::Eval);
/// assert_eq!(y.shape(), &[2, 8, 28, 28]);
/// ```
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Conv2d {
    /// Kernel `[out, in, kh, kw]`.
    pub weight: Param,
    /// Bias `[out]`, if any.
    pub bias: Option<Param>,
    /// Stride, padding and dilation.
    pub options: Conv2dOptions,
    /// Penalty on the kernel added to the loss, if any.
    pub regularizer: Option<Regularizer>,
}

impl Conv2d {
    /// A convolution from `in_channels` to `out_channels` with a `(kh, kw)` kernel.
    pub fn new(in_channels: usize, out_channels: usize, kernel: (usize, usize), rng: &mut StdRng) -> Self {
        Self::with_init(in_channels, out_channels, kernel, Init::KaimingUniform, rng)
    }

    /// Like [`Conv2d::new`] with a chosen weight initializer.
    pub fn with_init(
        in_channels: usize,
        out_channels: usize,
        (kh, kw): (usize, usize),
        init: Init,
        rng: &mut StdRng,
    ) -> Self {
        assert!(
            in_channels > 0 && out_channels > 0 && kh > 0 && kw > 0,
            "Conv2d: sizes must be positive"
        );
        let (fan_in, fan_out) = (in_channels * kh * kw, out_channels * kh * kw);
        let weight = init.tensor(&[out_channels, in_channels, kh, kw], fan_in, fan_out, rng);
        let bias = Init::PyTorchDefault.tensor(&[out_channels], fan_in, fan_out, rng);
        Conv2d {
            weight: Param::new(weight),
            bias: Some(Param::new(bias)),
            options: Conv2dOptions::default(),
            regularizer: None,
        }
    }

    /// Sets the stride `(sh, sw)`.
    pub fn with_stride(mut self, stride: (usize, usize)) -> Self {
        self.options.stride = stride;
        self
    }

    /// Sets the padding: `Padding::Same`, `Padding::Valid` or `Padding::Explicit(ph, pw)`.
    pub fn with_padding(mut self, padding: Padding) -> Self {
        self.options.padding = padding;
        self
    }

    /// Sets the dilation `(dh, dw)`.
    pub fn with_dilation(mut self, dilation: (usize, usize)) -> Self {
        self.options.dilation = dilation;
        self
    }

    /// Removes the bias (e.g. before batch normalization).
    pub fn without_bias(mut self) -> Self {
        self.bias = None;
        self
    }

    /// Adds a penalty on the kernel to the loss (Keras's `kernel_regularizer`).
    pub fn with_regularizer(mut self, regularizer: Regularizer) -> Self {
        self.regularizer = Some(regularizer);
        self
    }

    /// The forward pass followed by `epilogue` (ReLU, max pooling) in one op; see
    /// [`Tensor::conv2d_block`].
    pub fn forward_block(&mut self, x: &Tensor, epilogue: &ConvEpilogue) -> Tensor {
        let (w, b) = self.bind(x);
        x.conv2d_block(&w, b.as_ref(), &self.options, epilogue)
    }

    /// The weight and bias bound to `x`'s tape.
    fn bind(&self, x: &Tensor) -> (Tensor, Option<Tensor>) {
        (self.weight.bind(x), self.bias.as_ref().map(|b| b.bind(x)))
    }

    /// `(out_channels, in_channels, kh, kw)`.
    pub fn kernel_shape(&self) -> (usize, usize, usize, usize) {
        let s = self.weight.shape();
        (s[0], s[1], s[2], s[3])
    }
}

impl Module for Conv2d {
    fn forward(&mut self, x: &Tensor, _mode: Mode) -> Tensor {
        let (w, b) = self.bind(x);
        x.conv2d(&w, b.as_ref(), &self.options)
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
