//! `Linear`: a dense layer, `y = x·Wᵀ + b`.

use std::sync::{Arc, Weak};

use ndarray::ArrayD;
use rand::rngs::StdRng;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::module::{weight_and_bias, weight_and_bias_mut};
use super::registry::to_config;
use super::{ConfigError, FromConfig, Init, Mode, Module, ModuleConfig, Regularizer, Registry};
use crate::observe::Probe;
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
#[derive(Clone, Debug)]
pub struct Linear {
    /// Weight `[out, in]`.
    pub weight: Param,
    /// Bias `[out]`, if any.
    pub bias: Option<Param>,
    /// Penalty on the weight added to the loss, if any.
    pub regularizer: Option<Regularizer>,
    /// How the weight is filled when (re)initialized.
    pub init: Init,
    /// The weight transposed to `[in, out]` and contiguous, for inference, with the
    /// weight value it was made from (a weak pointer: it neither keeps the old value
    /// alive nor makes an optimizer step copy the weight).
    transposed: Option<Transposed>,
}

/// A weight value (weakly held) and its transpose.
type Transposed = (Weak<ArrayD<f32>>, Arc<ArrayD<f32>>);

/// What a model file stores of a `Linear` besides its weights.
#[derive(Serialize, Deserialize)]
struct LinearConfig {
    in_features: usize,
    out_features: usize,
    bias: bool,
    #[serde(default)]
    regularizer: Option<Regularizer>,
    #[serde(default = "Init::kaiming_uniform")]
    init: Init,
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
        let mut linear = Linear::zeros(in_features, out_features, true, init);
        linear.reset_own_parameters(rng);
        linear
    }

    /// All-zero weights (and bias), to be filled by a state dict.
    fn zeros(in_features: usize, out_features: usize, bias: bool, init: Init) -> Self {
        let zeros = |shape: &[usize]| Param::new(ndarray::ArrayD::zeros(ndarray::IxDyn(shape)));
        Linear {
            weight: zeros(&[out_features, in_features]),
            bias: bias.then(|| zeros(&[out_features])),
            regularizer: None,
            init,
            transposed: None,
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

    /// A layer with the given weight `[out, in]` and bias `[out]` (e.g. read from a
    /// file written by an older format).
    pub fn from_parts(weight: Param, bias: Option<Param>, regularizer: Option<Regularizer>, init: Init) -> Self {
        Linear {
            weight,
            bias,
            regularizer,
            init,
            transposed: None,
        }
    }

    /// `Wᵀ` as `[in, out]`, contiguous: made once per weight value.
    fn transposed_weight(&mut self) -> Arc<ArrayD<f32>> {
        let current = self.weight.shared_value();
        if let Some((from, wt)) = &self.transposed
            && std::ptr::eq(from.as_ptr(), Arc::as_ptr(&current)) {
                return wt.clone();
            }
        let wt = Arc::new(current.t().as_standard_layout().into_owned());
        self.transposed = Some((Arc::downgrade(&current), wt.clone()));
        wt
    }

    /// A freshly initialized layer like this one (inputs, bias or not, initializer,
    /// regularizer) with `outputs` outputs: a new classifier head.
    pub fn fresh_with_outputs(&self, outputs: usize, rng: &mut StdRng) -> Linear {
        let mut fresh = Linear::zeros(self.in_features(), outputs, self.bias.is_some(), self.init);
        fresh.regularizer = self.regularizer;
        fresh.reset_own_parameters(rng);
        fresh
    }
}

impl Module for Linear {
    fn forward(&mut self, x: &Tensor, _mode: Mode) -> Tensor {
        let probe = Probe::start(x);
        let y = if x.tape().is_none() && x.ndim() == 2 {
            // Inference: the same values through a contiguous `Wᵀ` (see the op).
            let wt = self.transposed_weight();
            x.linear_inference(&wt, self.bias.as_ref().map(Param::value))
        } else {
            let w = self.weight.bind(x);
            let b = self.bias.as_ref().map(|b| b.bind(x));
            x.linear(&w, b.as_ref())
        };
        probe.finish(self, &y);
        y
    }

    fn kind(&self) -> &str {
        Self::KIND
    }

    fn name_prefix(&self) -> String {
        "fc".into()
    }

    fn config(&self) -> Value {
        to_config(&LinearConfig {
            in_features: self.in_features(),
            out_features: self.out_features(),
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
        let (out, inp) = (self.out_features(), self.in_features());
        self.weight = Param::new(self.init.tensor(&[out, inp], inp, out, rng));
        if self.bias.is_some() {
            self.bias = Some(Param::new(Init::PyTorchDefault.tensor(&[out], inp, out, rng)));
        }
    }

    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>, String> {
        match input {
            [n] if *n == self.in_features() => Ok(vec![self.out_features()]),
            _ => Err(format!(
                "expects [{}] inputs, got shape {input:?}",
                self.in_features()
            )),
        }
    }
}

impl FromConfig for Linear {
    const KIND: &'static str = "Linear";

    fn from_config(config: &ModuleConfig, registry: &Registry) -> Result<Self, ConfigError> {
        let c: LinearConfig = config.settings()?;
        if c.in_features == 0 || c.out_features == 0 {
            return Err(ConfigError::invalid(Self::KIND, "in_features and out_features must be at least 1"));
        }
        registry.reserve(Self::KIND, "weight", &[c.out_features, c.in_features])?;
        if c.bias {
            registry.reserve(Self::KIND, "bias", &[c.out_features])?;
        }
        let mut linear = Linear::zeros(c.in_features, c.out_features, c.bias, c.init);
        linear.regularizer = c.regularizer;
        Ok(linear)
    }
}
