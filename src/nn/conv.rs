//! `Conv2d`: a 2-d convolution layer (cross-correlation, as every framework).

use ndarray::ArrayD;
use rand::rngs::StdRng;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::folded_weight::FoldedWeight;
use super::module::{weight_and_bias, weight_and_bias_mut};
use super::registry::to_config;
use super::shape::{expect_channels, spatial};
use super::{ConfigError, FromConfig, Init, Mode, Module, ModuleConfig, Regularizer, Registry};
use crate::observe::Probe;
use crate::ops::{Conv2dOptions, ConvEpilogue, KernelCache, Padding, PlaneMoments, Unrecorded};
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
/// ReLU), bias U(±1/√fan_in) as PyTorch, no regularizer, the convolution algorithm
/// chosen by the op.
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
#[derive(Clone, Debug)]
pub struct Conv2d {
    /// Kernel `[out, in, kh, kw]`.
    pub weight: Param,
    /// Bias `[out]`, if any.
    pub bias: Option<Param>,
    /// Stride, padding and dilation.
    pub options: Conv2dOptions,
    /// Penalty on the kernel added to the loss, if any.
    pub regularizer: Option<Regularizer>,
    /// How the kernel is filled when (re)initialized.
    pub init: Init,
    /// Winograd's transformed kernels of the weight value, for inference, with the
    /// value they were made from (see `KernelCache`: never stale).
    pub(crate) kernels: KernelCache,
    /// The weight with a batch norm folded in, for a residual block's inference,
    /// with the values it was made from (see `FoldedWeight`: never stale).
    pub(crate) folded: FoldedWeight,
}

/// What a model file stores of a `Conv2d` besides its weights.
#[derive(Serialize, Deserialize)]
struct Conv2dConfig {
    in_channels: usize,
    out_channels: usize,
    kernel_size: (usize, usize),
    options: Conv2dOptions,
    bias: bool,
    #[serde(default)]
    regularizer: Option<Regularizer>,
    #[serde(default = "Init::kaiming_uniform")]
    init: Init,
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
        let mut conv = Conv2d {
            weight: Param::new(ndarray::ArrayD::zeros(ndarray::IxDyn(&[out_channels, in_channels, kh, kw]))),
            bias: Some(Param::new(ndarray::ArrayD::zeros(ndarray::IxDyn(&[out_channels])))),
            options: Conv2dOptions::default(),
            regularizer: None,
            init,
            kernels: KernelCache::default(),
            folded: FoldedWeight::default(),
        };
        conv.reset_own_parameters(rng);
        conv
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
    /// [`Tensor::conv2d_block`] and [`Conv2dBlock`](super::Conv2dBlock).
    pub fn forward_block(&self, x: &Tensor, epilogue: &ConvEpilogue) -> Tensor {
        let (w, b) = self.bind(x);
        x.conv2d_block(&w, b.as_ref(), &self.options, epilogue)
    }

    /// [`forward_block`](Self::forward_block), keeping Winograd's transformed kernels
    /// between calls that record nothing (see `KernelCache`).
    pub(crate) fn forward_block_keeping(&mut self, x: &Tensor, epilogue: &ConvEpilogue) -> Tensor {
        let (w, b) = self.bind(x);
        let kernels = x.tape().is_none().then_some(&mut self.kernels);
        x.conv2d_block_keeping(&w, b.as_ref(), &self.options, epilogue, kernels)
    }

    /// The forward pass on `x` with the weight and bias `w`, `b` (from
    /// [`bind`](Self::bind)), not recorded: its output, each output plane's moments,
    /// and what the batch norm after it needs to record the two as one op (see
    /// `residual_fused.rs`).
    pub(crate) fn forward_unrecorded<'t>(
        &mut self,
        x: &'t Tensor,
        w: &'t Tensor,
        b: Option<&'t Tensor>,
    ) -> (ArrayD<f32>, Vec<PlaneMoments>, Unrecorded<'t>) {
        let kernels = x.tape().is_none().then_some(&mut self.kernels);
        let mut moments = Vec::new();
        let (y, conv) = x.conv2d_unrecorded(w, b, &self.options, kernels, Some(&mut moments));
        (y, moments, conv)
    }

    /// The weight and bias bound to `x`'s tape.
    pub(crate) fn bind(&self, x: &Tensor) -> (Tensor, Option<Tensor>) {
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
        let probe = Probe::start(x);
        let (w, b) = self.bind(x);
        // Nothing recorded (inference): the weight is the same from call to call.
        let kernels = x.tape().is_none().then_some(&mut self.kernels);
        let y = x.conv2d_keeping(&w, b.as_ref(), &self.options, kernels);
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
        let (out_channels, in_channels, kh, kw) = self.kernel_shape();
        to_config(&Conv2dConfig {
            in_channels,
            out_channels,
            kernel_size: (kh, kw),
            options: self.options,
            bias: self.bias.is_some(),
            regularizer: self.regularizer,
            init: self.init,
        })
    }

    fn own_parameters(&self) -> Vec<(String, &Param)> {
        weight_and_bias(&self.weight, &self.bias)
    }

    fn own_parameters_mut(&mut self) -> Vec<(String, &mut Param)> {
        weight_and_bias_mut(&mut self.weight, &mut self.bias)
    }

    fn own_penalty(&self, like: &Tensor) -> Option<Tensor> {
        self.regularizer.map(|r| r.penalty(&self.weight.bind(like)))
    }

    fn reset_own_parameters(&mut self, rng: &mut StdRng) {
        let (out, inp, kh, kw) = self.kernel_shape();
        let (fan_in, fan_out) = (inp * kh * kw, out * kh * kw);
        self.weight = Param::new(self.init.tensor(&[out, inp, kh, kw], fan_in, fan_out, rng));
        if self.bias.is_some() {
            self.bias = Some(Param::new(Init::PyTorchDefault.tensor(&[out], fan_in, fan_out, rng)));
        }
    }

    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>, String> {
        let (out, inp, kh, kw) = self.kernel_shape();
        expect_channels(input, inp)?;
        let o = self.options;
        let (h, w) = spatial(input, (kh, kw), o.stride, o.padding, o.dilation)?;
        Ok(vec![out, h, w])
    }
}

impl FromConfig for Conv2d {
    const KIND: &'static str = "Conv2d";

    fn from_config(config: &ModuleConfig, registry: &Registry) -> Result<Self, ConfigError> {
        let c: Conv2dConfig = config.settings()?;
        let (kh, kw) = c.kernel_size;
        let o = c.options;
        if [c.in_channels, c.out_channels, kh, kw, o.stride.0, o.stride.1, o.dilation.0, o.dilation.1].contains(&0) {
            return Err(ConfigError::invalid(
                Self::KIND,
                "channels, kernel size, stride and dilation must all be at least 1",
            ));
        }
        registry.reserve(Self::KIND, "weight", &[c.out_channels, c.in_channels, kh, kw])?;
        if c.bias {
            registry.reserve(Self::KIND, "bias", &[c.out_channels])?;
        }
        let zeros = |shape: &[usize]| Param::new(ndarray::ArrayD::zeros(ndarray::IxDyn(shape)));
        Ok(Conv2d {
            weight: zeros(&[c.out_channels, c.in_channels, kh, kw]),
            bias: c.bias.then(|| zeros(&[c.out_channels])),
            options: c.options,
            regularizer: c.regularizer,
            init: c.init,
            kernels: KernelCache::default(),
            folded: FoldedWeight::default(),
        })
    }
}
