//! `BatchNorm2d`: per-channel normalization with batch statistics in training and
//! running statistics in evaluation (PyTorch's semantics and defaults).

use ndarray::Array1;
use serde::{Deserialize, Serialize};

use super::{Mode, Module};
use crate::param::Param;
use crate::tensor::Tensor;

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
#[derive(Clone, Debug, Serialize, Deserialize)]
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
        let (gamma, beta) = (self.weight.bind(x), self.bias.bind(x));
        // As Keras: a frozen batch norm runs in inference mode even in training, so
        // fine-tuning with a frozen feature extractor leaves it bit for bit unchanged.
        let mode = if self.weight.is_frozen() && self.bias.is_frozen() {
            Mode::Eval
        } else {
            mode
        };
        match mode {
            Mode::Train => {
                let (y, stats) = x.batch_norm2d(&gamma, &beta, self.eps);
                let m = self.momentum;
                let unbias = stats.count as f32 / (stats.count as f32 - 1.0);
                self.running_mean
                    .zip_mut_with(&stats.mean, |r, &b| *r = (1.0 - m) * *r + m * b);
                self.running_var
                    .zip_mut_with(&stats.var, |r, &b| *r = (1.0 - m) * *r + m * b * unbias);
                self.num_batches_tracked += 1;
                y
            }
            Mode::Eval => x.batch_norm2d_eval(&gamma, &beta, &self.running_mean, &self.running_var, self.eps),
        }
    }

    fn named_parameters(&self) -> Vec<(String, &Param)> {
        vec![
            ("weight".to_string(), &self.weight),
            ("bias".to_string(), &self.bias),
        ]
    }

    fn named_parameters_mut(&mut self) -> Vec<(String, &mut Param)> {
        vec![
            ("weight".to_string(), &mut self.weight),
            ("bias".to_string(), &mut self.bias),
        ]
    }
}
