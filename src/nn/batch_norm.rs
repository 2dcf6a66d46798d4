//! `BatchNorm2d`: per-channel normalization with batch statistics in training and
//! running statistics in evaluation (PyTorch's semantics and defaults).

use ndarray::{Array1, ArrayD};
use rand::rngs::StdRng;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::registry::to_config;
use super::shape::expect_channels;
use super::{ConfigError, FromConfig, Mode, Module, ModuleConfig, Registry};
use crate::observe::Probe;
use crate::ops::{BatchStats, PlaneMoments, Unrecorded};
use crate::param::Param;
use crate::tensor::Tensor;

/// What a model file stores of a `BatchNorm2d` besides its weights and statistics.
#[derive(Serialize, Deserialize)]
struct BatchNormConfig {
    channels: usize,
    momentum: f32,
    eps: f32,
}

/// Batch normalization over the channels of an NCHW tensor.
///
/// # Shapes
/// `[N, C, H, W]` → `[N, C, H, W]`; `weight` (γ) and `bias` (β) are `[C]`.
///
/// # Defaults
/// `eps = 1e-5`, `momentum = 0.1` (running = (1 − momentum)·running + momentum·batch,
/// with the unbiased batch variance, as PyTorch), γ = 1, β = 0.
///
/// When γ and β are frozen the layer behaves as in evaluation even in training mode
/// (Keras's rule for `trainable=False`): its statistics stop moving too.
#[derive(Clone, Debug)]
pub struct BatchNorm2d {
    /// Scale γ `[C]`.
    pub weight: Param,
    /// Shift β `[C]`.
    pub bias: Param,
    /// Running mean `[C]`, used in evaluation (a buffer, not trained).
    pub running_mean: Array1<f32>,
    /// Running variance `[C]`, used in evaluation.
    pub running_var: Array1<f32>,
    /// Training batches seen.
    pub num_batches_tracked: u64,
    /// Weight of the newest batch in the running statistics.
    pub momentum: f32,
    /// Added to the variance for numerical stability.
    pub eps: f32,
}

impl BatchNorm2d {
    /// Batch normalization for `channels` channels.
    pub fn new(channels: usize) -> Self {
        BatchNorm2d {
            weight: Param::new(Array1::<f32>::ones(channels).into_dyn()),
            bias: Param::new(Array1::<f32>::zeros(channels).into_dyn()),
            running_mean: Array1::zeros(channels),
            running_var: Array1::ones(channels),
            num_batches_tracked: 0,
            momentum: 0.1,
            eps: 1e-5,
        }
    }

    /// Number of channels.
    pub fn channels(&self) -> usize {
        self.running_mean.len()
    }
}

impl Module for BatchNorm2d {
    fn forward(&mut self, x: &Tensor, mode: Mode) -> Tensor {
        let probe = Probe::start(x);
        let y = self.normalize(x, mode);
        probe.finish(self, &y);
        y
    }

    fn kind(&self) -> &str {
        Self::KIND
    }

    fn name_prefix(&self) -> String {
        "bn".into()
    }

    fn config(&self) -> Value {
        to_config(&BatchNormConfig {
            channels: self.channels(),
            momentum: self.momentum,
            eps: self.eps,
        })
    }

    fn own_parameters(&self) -> Vec<(String, &Param)> {
        vec![
            ("weight".to_string(), &self.weight),
            ("bias".to_string(), &self.bias),
        ]
    }

    fn own_parameters_mut(&mut self) -> Vec<(String, &mut Param)> {
        vec![
            ("weight".to_string(), &mut self.weight),
            ("bias".to_string(), &mut self.bias),
        ]
    }

    fn own_buffers(&self) -> Vec<(String, ArrayD<f32>)> {
        vec![
            ("running_mean".to_string(), self.running_mean.clone().into_dyn()),
            ("running_var".to_string(), self.running_var.clone().into_dyn()),
        ]
    }

    fn set_own_buffer(&mut self, name: &str, value: ArrayD<f32>) -> Result<(), String> {
        let vector = value
            .into_dimensionality::<ndarray::Ix1>()
            .ok()
            .filter(|v| v.len() == self.channels())
            .ok_or_else(|| format!("{name} must be a vector of {} values", self.channels()))?;
        match name {
            "running_mean" => self.running_mean = vector,
            "running_var" => self.running_var = vector,
            _ => return Err(format!("BatchNorm2d has no buffer {name:?}")),
        }
        Ok(())
    }

    fn extra_state(&self) -> Option<Value> {
        Some(Value::from(self.num_batches_tracked))
    }

    fn set_extra_state(&mut self, state: Value) -> Result<(), String> {
        self.num_batches_tracked = state
            .as_u64()
            .ok_or_else(|| format!("num_batches_tracked must be a count, got {state}"))?;
        Ok(())
    }

    fn reset_own_parameters(&mut self, _: &mut StdRng) {
        *self = BatchNorm2d {
            momentum: self.momentum,
            eps: self.eps,
            ..BatchNorm2d::new(self.channels())
        };
    }

    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>, String> {
        expect_channels(input, self.channels())?;
        Ok(input.to_vec())
    }
}

impl FromConfig for BatchNorm2d {
    const KIND: &'static str = "BatchNorm2d";

    fn from_config(config: &ModuleConfig, registry: &Registry) -> Result<Self, ConfigError> {
        let c: BatchNormConfig = config.settings()?;
        if c.channels == 0 || !(c.eps > 0.0 && c.eps.is_finite()) || !(0.0..=1.0).contains(&c.momentum) {
            return Err(ConfigError::invalid(
                Self::KIND,
                format!("channels {} must be ≥ 1, eps {} > 0, momentum {} in [0, 1]", c.channels, c.eps, c.momentum),
            ));
        }
        // Weight, bias, running mean and running variance.
        registry.reserve(Self::KIND, "weight, bias and running statistics", &[4, c.channels])?;
        Ok(BatchNorm2d {
            momentum: c.momentum,
            eps: c.eps,
            ..BatchNorm2d::new(c.channels)
        })
    }
}

impl BatchNorm2d {
    /// The normalization itself (`forward` without the probe).
    fn normalize(&mut self, x: &Tensor, mode: Mode) -> Tensor {
        self.normalize_then(x, mode, None, false)
    }

    /// Whether a pass in `mode` normalizes with the batch's own statistics (training
    /// form): a frozen batch norm runs in inference mode even in training, as Keras
    /// does, so fine-tuning with a frozen feature extractor leaves it bit for bit
    /// unchanged.
    pub(crate) fn uses_batch_statistics(&self, mode: Mode) -> bool {
        mode == Mode::Train && !(self.weight.is_frozen() && self.bias.is_frozen())
    }

    /// The normalization, then `+ skip` and ReLU if asked: in training, one op
    /// ([`Tensor::batch_norm2d_then`]), from `x`'s plane moments if the conv that
    /// made `x` took them; in evaluation, the evaluation form followed by the
    /// separate ops. What a residual block's branches end with.
    pub(crate) fn normalize_then(&mut self, x: &Tensor, mode: Mode, skip: Option<&Tensor>, relu: bool) -> Tensor {
        let (gamma, beta) = (self.weight.bind(x), self.bias.bind(x));
        let mode = if self.uses_batch_statistics(mode) {
            Mode::Train
        } else {
            Mode::Eval
        };
        match mode {
            Mode::Train => {
                let (y, stats) = x.batch_norm2d_then(&gamma, &beta, self.eps, skip, relu);
                self.track(&stats);
                y
            }
            Mode::Eval => {
                let mut y = x.batch_norm2d_eval(&gamma, &beta, &self.running_mean, &self.running_var, self.eps);
                if let Some(skip) = skip {
                    y = &y + skip;
                }
                if relu {
                    y = y.relu();
                }
                y
            }
        }
    }

    /// The training form on the output `y` of a conv that was not recorded (see
    /// [`Conv2d::forward_unrecorded`](super::Conv2d::forward_unrecorded)), with its
    /// planes' `moments`, then `+ skip` and ReLU if asked: conv and batch norm
    /// recorded as one op ([`Tensor::batch_norm2d_then_from`]). Only where
    /// [`uses_batch_statistics`](Self::uses_batch_statistics).
    pub(crate) fn normalize_after_conv(
        &mut self,
        y: &Tensor,
        skip: Option<&Tensor>,
        relu: bool,
        moments: Vec<PlaneMoments>,
        conv: Unrecorded,
    ) -> Tensor {
        let (gamma, beta) = match conv.inputs.first() {
            Some(x) => (self.weight.bind(x), self.bias.bind(x)),
            None => (self.weight.bind(y), self.bias.bind(y)),
        };
        let (out, stats) = y.batch_norm2d_then_from(&gamma, &beta, self.eps, skip, relu, Some(moments), Some(conv));
        self.track(&stats);
        out
    }

    /// Folds a training pass's batch statistics into the running ones.
    fn track(&mut self, stats: &BatchStats) {
        let m = self.momentum;
        let unbias = stats.count as f32 / (stats.count as f32 - 1.0);
        self.running_mean
            .zip_mut_with(&stats.mean, |r, &b| *r = (1.0 - m) * *r + m * b);
        self.running_var
            .zip_mut_with(&stats.var, |r, &b| *r = (1.0 - m) * *r + m * b * unbias);
        self.num_batches_tracked += 1;
    }

    /// The per-channel affine map of the evaluation form, `y = scale·x + shift`:
    /// `scale = γ/√(running_var + eps)`, `shift = β − running_mean·scale`, computed
    /// as [`Tensor::batch_norm2d_eval`] computes them. What folding the layer into
    /// the convolution before it multiplies in.
    pub(crate) fn eval_affine(&self) -> (Vec<f32>, Vec<f32>) {
        let (g, b) = (self.weight.value(), self.bias.value());
        let scale: Vec<f32> = (0..self.channels())
            .map(|ch| g[ch] * (1.0 / (self.running_var[ch] + self.eps).sqrt()))
            .collect();
        let shift = (0..self.channels())
            .map(|ch| b[ch] - self.running_mean[ch] * scale[ch])
            .collect();
        (scale, shift)
    }
}
