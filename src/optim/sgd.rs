//! Stochastic gradient descent with momentum, dampening, Nesterov momentum and
//! coupled weight decay — PyTorch's `torch.optim.SGD`, rule for rule.
//!
//! For each parameter `p` with gradient `grad` (scalars in PyTorch's order):
//!
//! ```text
//! g = grad + wd·p                          if wd ≠ 0
//! if μ ≠ 0:
//!     b = g                                on the first step of this parameter
//!     b = μ·b + (1 − dampening)·g          afterwards
//!     g = g + μ·b   if nesterov, else  g = b
//! p = p − lr·g
//! ```

use ndarray::ArrayD;
use serde::{Deserialize, Serialize};

use super::{
    assert_state_shape, flat, for_each_updatable, slot, update_in_chunks, OptimError, Optimizer,
    OptimizerKind, OptimizerState,
};
use crate::ops::parallel::SharedMut;
use crate::param::Param;
use crate::tape::Gradients;

/// Hyperparameters of [`SGD`], with PyTorch's defaults.
///
/// Everything but the learning rate is `f64`, as PyTorch's Python floats are: the
/// f32 factors of the update are derived from them the way PyTorch derives them
/// (`1 − dampening` is computed in f64, then rounded once).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SGDConfig {
    /// Learning rate (default 1e-3).
    pub lr: f64,
    /// Momentum factor μ (default 0: no momentum buffer).
    pub momentum: f64,
    /// Dampening of the gradient's contribution to the momentum buffer (default 0).
    pub dampening: f64,
    /// Nesterov momentum (default false); requires momentum > 0 and dampening 0.
    pub nesterov: bool,
    /// Coupled weight decay: `wd·p` is added to the gradient (default 0).
    pub weight_decay: f64,
}

impl Default for SGDConfig {
    fn default() -> Self {
        SGDConfig {
            lr: 1e-3,
            momentum: 0.0,
            dampening: 0.0,
            nesterov: false,
            weight_decay: 0.0,
        }
    }
}

impl SGDConfig {
    /// The reason these hyperparameters are rejected, if they are (PyTorch's checks).
    pub fn validate(&self) -> Result<(), String> {
        // PyTorch accepts an infinite rate; it can only make the weights infinite.
        if !(self.lr.is_finite() && self.lr >= 0.0) {
            return Err(format!(
                "SGD: invalid learning rate {}: it must be finite and at least 0",
                self.lr
            ));
        }
        if self.momentum.is_nan() || self.momentum < 0.0 {
            return Err(format!("SGD: invalid momentum {}", self.momentum));
        }
        if self.weight_decay.is_nan() || self.weight_decay < 0.0 {
            return Err(format!("SGD: invalid weight_decay {}", self.weight_decay));
        }
        if self.nesterov && (self.momentum <= 0.0 || self.dampening != 0.0) {
            return Err(format!(
                "SGD: Nesterov momentum requires momentum > 0 and dampening = 0 \
                 (got momentum {}, dampening {})",
                self.momentum, self.dampening
            ));
        }
        Ok(())
    }
}

/// Stochastic gradient descent (PyTorch's `torch.optim.SGD`).
///
/// ```
/// use ferrocnn::{Optimizer, Param, SGD, SGDConfig, Tape};
/// use ndarray::array;
///
/// let mut w = Param::new(array![3.0f32].into_dyn());
/// let mut sgd = SGD::new(SGDConfig { lr: 0.25, ..SGDConfig::default() });
/// let tape = Tape::new();
/// let loss = (&tape.param(&w) * &tape.param(&w)).sum(); // w², gradient 2w = 6
/// sgd.step(&mut [&mut w], &loss.backward());
/// assert_eq!(w.value()[0], 1.5); // 3 − 0.25·6
/// ```
#[allow(clippy::upper_case_acronyms)]
#[derive(Clone, Debug)]
pub struct SGD {
    config: SGDConfig,
    /// Momentum buffer per parameter position; `None` until its first update.
    momentum_buffers: Vec<Option<ArrayD<f32>>>,
}

impl SGD {
    /// An SGD optimizer. Panics if the hyperparameters are invalid (negative, or
    /// Nesterov without momentum or with dampening), as PyTorch raises.
    pub fn new(config: SGDConfig) -> Self {
        if let Err(message) = config.validate() {
            panic!("{message}");
        }
        SGD {
            config,
            momentum_buffers: Vec::new(),
        }
    }

    /// The hyperparameters.
    pub fn config(&self) -> &SGDConfig {
        &self.config
    }
}

impl Optimizer for SGD {
    fn step(&mut self, params: &mut [&mut Param], grads: &Gradients) {
        self.step_checked(params, grads);
    }

    fn step_checked(&mut self, params: &mut [&mut Param], grads: &Gradients) -> Vec<bool> {
        let c = &self.config;
        // The f32 factors, each rounded once from PyTorch's f64 scalars.
        let neg_lr = -c.lr as f32;
        let wd = c.weight_decay as f32;
        let decay = c.weight_decay != 0.0;
        let mu = c.momentum as f32;
        let one_minus_dampening = (1.0 - c.dampening) as f32;
        let nesterov = c.nesterov;
        let buffers = &mut self.momentum_buffers;

        if c.momentum == 0.0 {
            return for_each_updatable(OptimizerKind::SGD, params, grads, |_, value, grad| {
                let grad = flat(grad);
                let grad = grad.as_slice().expect("1-d view of a standard-layout array");
                let value = slice_mut(value);
                assert_eq!(value.len(), grad.len(), "SGD: gradient length");
                let values = SharedMut::new(value.as_mut_ptr());
                update_in_chunks(value.len(), &|r| {
                    // SAFETY: `r` lies inside `value` (as long as `grad`), and each
                    // chunk is handed out once: no other task reaches these elements.
                    let value = unsafe { values.slice(r.start, r.len()) };
                    plain_update(value, &grad[r], decay, wd, neg_lr)
                })
            });
        }

        for_each_updatable(OptimizerKind::SGD, params, grads, |position, value, grad| {
            let slot = slot(buffers, position);
            let first = slot.is_none();
            let buffer = slot.get_or_insert_with(|| ArrayD::zeros(value.raw_dim()));
            assert_state_shape(OptimizerKind::SGD, position, value.shape(), buffer.shape());
            let grad = flat(grad);
            let grad = grad.as_slice().expect("1-d view of a standard-layout array");
            let (value, buffer) = (slice_mut(value), slice_mut(buffer));
            assert_eq!(value.len(), grad.len(), "SGD: gradient length");
            let (values, buffers) = (
                SharedMut::new(value.as_mut_ptr()),
                SharedMut::new(buffer.as_mut_ptr()),
            );
            update_in_chunks(value.len(), &|r| {
                // SAFETY: `r` lies inside `value` and `buffer` (distinct arrays of
                // the same shape, checked above), and each chunk is handed out once:
                // no other task reaches these elements.
                let (value, buffer) =
                    unsafe { (values.slice(r.start, r.len()), buffers.slice(r.start, r.len())) };
                let k = Momentum {
                    decay,
                    wd,
                    first,
                    mu,
                    one_minus_dampening,
                    nesterov,
                    neg_lr,
                };
                momentum_update(&k, value, &grad[r], buffer)
            })
        })
    }

    fn lr(&self) -> f64 {
        self.config.lr
    }

    fn set_lr(&mut self, lr: f64) {
        self.config.lr = lr;
    }

    fn kind(&self) -> OptimizerKind {
        OptimizerKind::SGD
    }

    fn state(&self) -> OptimizerState {
        OptimizerState::SGD {
            config: self.config.clone(),
            momentum_buffers: self.momentum_buffers.clone(),
        }
    }

    fn load_state(&mut self, state: OptimizerState) -> Result<(), OptimError> {
        let OptimizerState::SGD {
            config,
            momentum_buffers,
        } = state
        else {
            return Err(OptimError::KindMismatch {
                expected: OptimizerKind::SGD,
                found: state.kind(),
            });
        };
        config.validate().map_err(OptimError::InvalidState)?;
        self.config = config;
        self.momentum_buffers = momentum_buffers;
        Ok(())
    }
}

/// An array the optimizer owns, as a slice (always standard layout).
fn slice_mut(a: &mut ArrayD<f32>) -> &mut [f32] {
    a.as_slice_mut()
        .expect("optimizer buffers and parameter values are in standard layout")
}

// The loops are functions of their own, taking the slices as arguments: the
// compiler then knows they do not overlap the scalars (which a closure reads through
// its captures) and vectorizes them. Written inside `update_in_chunks`'s closure,
// over slices made from pointers, they ran about five times as many instructions.

// Each returns whether every value it wrote is finite: checked in the same pass,
// while the value is in a register, rather than by reading the weights again.

/// `p -= lr·(g + wd·p)`, the update without momentum, over one run of elements.
fn plain_update(p: &mut [f32], g: &[f32], decay: bool, wd: f32, neg_lr: f32) -> bool {
    let mut finite = true;
    for (p, &g) in p.iter_mut().zip(g) {
        let g = if decay { g + wd * *p } else { g };
        *p += neg_lr * g;
        finite &= p.is_finite();
    }
    finite
}

/// The scalars of a momentum update.
struct Momentum {
    decay: bool,
    wd: f32,
    first: bool,
    mu: f32,
    one_minus_dampening: f32,
    nesterov: bool,
    neg_lr: f32,
}

/// The update with momentum (PyTorch's rule) over one run of elements.
fn momentum_update(k: &Momentum, p: &mut [f32], g: &[f32], b: &mut [f32]) -> bool {
    let mut finite = true;
    for ((p, &g), b) in p.iter_mut().zip(g).zip(b.iter_mut()) {
        let g = if k.decay { g + k.wd * *p } else { g };
        *b = if k.first {
            g
        } else {
            *b * k.mu + k.one_minus_dampening * g
        };
        let g = if k.nesterov { g + k.mu * *b } else { *b };
        *p += k.neg_lr * g;
        finite &= p.is_finite();
    }
    finite
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    fn grads_for(param: &Param, grad: ArrayD<f32>) -> Gradients {
        let mut grads = Gradients::default();
        grads.accumulate(param.id(), grad);
        grads
    }

    #[test]
    fn first_momentum_step_uses_the_gradient_as_buffer() {
        let mut w = Param::new(array![1.0f32, 2.0].into_dyn());
        let mut sgd = SGD::new(SGDConfig {
            lr: 0.5,
            momentum: 0.9,
            dampening: 0.5,
            ..SGDConfig::default()
        });
        let grads = grads_for(&w, array![1.0f32, -1.0].into_dyn());
        sgd.step(&mut [&mut w], &grads);
        // Dampening does not apply on the first step: b = g.
        assert_eq!(w.value(), &array![0.5f32, 2.5].into_dyn());
        let OptimizerState::SGD { momentum_buffers, .. } = sgd.state() else {
            unreachable!()
        };
        assert_eq!(momentum_buffers[0], Some(array![1.0f32, -1.0].into_dyn()));
    }

    #[test]
    #[should_panic(expected = "position 0 has shape [3]")]
    fn shape_change_between_steps_panics_naming_position_and_shapes() {
        let mut sgd = SGD::new(SGDConfig {
            momentum: 0.9,
            ..SGDConfig::default()
        });
        let mut a = Param::new(array![1.0f32, 2.0].into_dyn());
        let grads = grads_for(&a, array![1.0f32, 1.0].into_dyn());
        sgd.step(&mut [&mut a], &grads);
        let mut b = Param::new(array![1.0f32, 2.0, 3.0].into_dyn());
        let grads = grads_for(&b, array![1.0f32, 1.0, 1.0].into_dyn());
        sgd.step(&mut [&mut b], &grads);
    }

    #[test]
    #[should_panic(expected = "Nesterov momentum requires momentum > 0")]
    fn nesterov_without_momentum_is_rejected() {
        SGD::new(SGDConfig {
            nesterov: true,
            ..SGDConfig::default()
        });
    }

    #[test]
    #[should_panic(expected = "dampening = 0")]
    fn nesterov_with_dampening_is_rejected() {
        SGD::new(SGDConfig {
            nesterov: true,
            momentum: 0.9,
            dampening: 0.1,
            ..SGDConfig::default()
        });
    }
}
