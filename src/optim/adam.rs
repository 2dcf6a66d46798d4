//! Adam and AdamW — PyTorch's `torch.optim.Adam` and `torch.optim.AdamW`, with the
//! same f32 operation order as its single-tensor (`foreach=False`) code, so the two
//! trajectories agree up to f32 rounding.
//!
//! For each parameter `p` with gradient `g`, with `t` the parameter's own step count:
//!
//! ```text
//! t = t + 1
//! p = p·(1 − lr·wd)                        AdamW (decoupled weight decay)
//! g = g + wd·p                             Adam (coupled weight decay), if wd ≠ 0
//! m = lerp(m, g, 1 − β1)                   = β1·m + (1 − β1)·g
//! v = β2·v + (1 − β2)·g·g
//! denom = √v / √(1 − β2^t) + eps
//! p = p − (lr / (1 − β1^t))·m / denom
//! ```
//!
//! The scalars (`1 − β1^t`, `√(1 − β2^t)`, `lr / (1 − β1^t)`, `1 − lr·wd`) are
//! computed in f64 and rounded once to f32, as PyTorch computes them in Python
//! floats; the elementwise work is f32.

use ndarray::ArrayD;
use serde::{Deserialize, Serialize};

use super::{
    assert_state_shape, flat, for_each_updatable, slot, update_in_chunks, OptimError, Optimizer,
    OptimizerKind, OptimizerState,
};
use crate::ops::parallel::SharedMut;
use crate::param::Param;
use crate::tape::Gradients;

/// Hyperparameters of [`Adam`], with PyTorch's defaults.
///
/// Every hyperparameter is `f64`, as PyTorch's Python floats are: `1 − β2` for
/// β2 = 0.999 rounded from an f32 β2 would be off by 1e-5 relative. The update's
/// f32 factors are derived from them once per step.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AdamConfig {
    /// Learning rate (default 1e-3).
    pub lr: f64,
    /// Decay rates (β1, β2) of the first and second moment averages
    /// (default (0.9, 0.999)).
    pub betas: (f64, f64),
    /// Added to the denominator for numerical stability (default 1e-8).
    pub eps: f64,
    /// Coupled weight decay: `wd·p` is added to the gradient (default 0).
    pub weight_decay: f64,
}

impl Default for AdamConfig {
    fn default() -> Self {
        AdamConfig {
            lr: 1e-3,
            betas: (0.9, 0.999),
            eps: 1e-8,
            weight_decay: 0.0,
        }
    }
}

/// Hyperparameters of [`AdamW`], with PyTorch's defaults (those of Adam, except a
/// weight decay of 0.01).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AdamWConfig {
    /// Learning rate (default 1e-3).
    pub lr: f64,
    /// Decay rates (β1, β2) of the first and second moment averages
    /// (default (0.9, 0.999)).
    pub betas: (f64, f64),
    /// Added to the denominator for numerical stability (default 1e-8).
    pub eps: f64,
    /// Decoupled weight decay: the weights shrink by `lr·wd` of themselves before
    /// each Adam update (default 0.01).
    pub weight_decay: f64,
}

impl Default for AdamWConfig {
    fn default() -> Self {
        AdamWConfig {
            lr: 1e-3,
            betas: (0.9, 0.999),
            eps: 1e-8,
            weight_decay: 0.01,
        }
    }
}

/// The per-parameter state of Adam and AdamW.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AdamMoments {
    /// How many updates this parameter has received (PyTorch's `state["step"]`).
    pub step: u64,
    /// Running average of the gradient, `m`.
    pub exp_avg: ArrayD<f32>,
    /// Running average of the squared gradient, `v`.
    pub exp_avg_sq: ArrayD<f32>,
}

/// The hyperparameters both variants share, and how weight decay is applied.
#[derive(Clone, Copy)]
struct Hyper {
    lr: f64,
    betas: (f64, f64),
    eps: f64,
    weight_decay: f64,
    decoupled: bool,
}

impl Hyper {
    fn kind(&self) -> OptimizerKind {
        if self.decoupled {
            OptimizerKind::AdamW
        } else {
            OptimizerKind::Adam
        }
    }

    /// The reason these hyperparameters are rejected, if they are (PyTorch's checks).
    fn validate(&self) -> Result<(), String> {
        let kind = self.kind();
        let (beta1, beta2) = self.betas;
        // PyTorch accepts an infinite rate; it can only make the weights infinite.
        if !(self.lr.is_finite() && self.lr >= 0.0) {
            return Err(format!(
                "{kind}: invalid learning rate {}: it must be finite and at least 0",
                self.lr
            ));
        }
        if self.eps.is_nan() || self.eps < 0.0 {
            return Err(format!("{kind}: invalid eps {}", self.eps));
        }
        if !(0.0..1.0).contains(&beta1) {
            return Err(format!("{kind}: invalid beta1 {beta1}, must be in [0, 1)"));
        }
        if !(0.0..1.0).contains(&beta2) {
            return Err(format!("{kind}: invalid beta2 {beta2}, must be in [0, 1)"));
        }
        if self.weight_decay.is_nan() || self.weight_decay < 0.0 {
            return Err(format!("{kind}: invalid weight_decay {}", self.weight_decay));
        }
        Ok(())
    }
}

/// One Adam or AdamW step over all parameters; by position, whether each
/// parameter is known to be finite afterwards (see [`Optimizer::step_checked`]).
fn adam_step(
    h: Hyper,
    moments: &mut Vec<Option<AdamMoments>>,
    params: &mut [&mut Param],
    grads: &Gradients,
) -> Vec<bool> {
    let kind = h.kind();
    let (beta1, beta2) = h.betas;
    let lr = h.lr;
    let one_minus_beta1 = (1.0 - beta1) as f32;
    let beta2_f32 = beta2 as f32;
    let one_minus_beta2 = (1.0 - beta2) as f32;
    let eps = h.eps as f32;
    let coupled_decay = !h.decoupled && h.weight_decay != 0.0;
    let wd = h.weight_decay as f32;
    // AdamW's shrink factor; 1 (an exact no-op) otherwise, so that the loop below
    // has no store under a condition, which kept it from being vectorized.
    let shrink = if h.decoupled && h.weight_decay != 0.0 {
        (1.0 - lr * h.weight_decay) as f32
    } else {
        1.0
    };

    for_each_updatable(kind, params, grads, |position, value, grad| {
        let state = slot(moments, position).get_or_insert_with(|| AdamMoments {
            step: 0,
            exp_avg: ArrayD::zeros(value.raw_dim()),
            exp_avg_sq: ArrayD::zeros(value.raw_dim()),
        });
        assert_state_shape(kind, position, value.shape(), state.exp_avg.shape());
        state.step += 1;
        let t = state.step as f64;
        let bias_correction1 = 1.0 - beta1.powf(t);
        let bias_correction2_sqrt = (1.0 - beta2.powf(t)).sqrt() as f32;
        let neg_step_size = (-(lr / bias_correction1)) as f32;

        let grad = flat(grad);
        let grad = grad.as_slice().expect("1-d view of a standard-layout array");
        let (p, m, v) = (
            slice_mut(value),
            slice_mut(&mut state.exp_avg),
            slice_mut(&mut state.exp_avg_sq),
        );
        let len = p.len();
        assert!(
            grad.len() == len && m.len() == len && v.len() == len,
            "one length"
        );
        let k = Elementwise {
            shrink,
            wd,
            one_minus_beta1,
            beta2: beta2_f32,
            one_minus_beta2,
            bias_correction2_sqrt,
            eps,
            neg_step_size,
        };
        let update = pick_update(coupled_decay, one_minus_beta1.abs() < 0.5);
        let (ps, ms, vs) = (
            SharedMut::new(p.as_mut_ptr()),
            SharedMut::new(m.as_mut_ptr()),
            SharedMut::new(v.as_mut_ptr()),
        );
        update_in_chunks(len, &|r| {
            // SAFETY: `r` lies inside each of the three slices (all `len` long),
            // which are distinct arrays borrowed mutably for this call;
            // `update_in_chunks` hands out each range once, so no two tasks touch
            // the same elements.
            let (p, m, v) = unsafe {
                (
                    ps.slice(r.start, r.len()),
                    ms.slice(r.start, r.len()),
                    vs.slice(r.start, r.len()),
                )
            };
            update(&k, p, &grad[r], m, v)
        })
    })
}

/// An array the optimizer owns, as a slice (always standard layout).
fn slice_mut(a: &mut ArrayD<f32>) -> &mut [f32] {
    a.as_slice_mut().expect("optimizer arrays are in standard layout")
}

/// The f32 scalars of one parameter's update.
struct Elementwise {
    shrink: f32,
    wd: f32,
    one_minus_beta1: f32,
    beta2: f32,
    one_minus_beta2: f32,
    bias_correction2_sqrt: f32,
    eps: f32,
    neg_step_size: f32,
}

/// One run of elements' update, as [`update`] computes it.
type Update = fn(&Elementwise, &mut [f32], &[f32], &mut [f32], &mut [f32]) -> bool;

/// The loop for these loop-invariant choices (one branch-free loop each), compiled
/// for the widest vectors the CPU offers and the [`Simd`](crate::runtime::Simd)
/// setting allows. Square roots and divisions are exact in every width, and no
/// multiply-add is fused, so every version gives the same values bit for bit; with
/// AVX-512 the update takes 16 of them at a time, where the x86-64 baseline takes 4.
fn pick_update(coupled: bool, near_start: bool) -> Update {
    macro_rules! pick {
        ($update:ident) => {
            match (coupled, near_start) {
                (false, true) => $update::<false, true>,
                (false, false) => $update::<false, false>,
                (true, true) => $update::<true, true>,
                (true, false) => $update::<true, false>,
            }
        };
    }
    #[cfg(target_arch = "x86_64")]
    if crate::ops::cpu::avx512() {
        return pick!(update_avx512);
    }
    pick!(update)
}

/// The elementwise update (see the module docs) of one run of elements; returns
/// whether every new value of `p` is finite, checked as it is written rather than
/// by reading the weights again. `COUPLED`: Adam's weight decay is added to the
/// gradient. `NEAR_START`: PyTorch's `lerp` weight `1 − β1` is below ½, so it
/// computes `m + w·(g − m)`, otherwise `g − (g − m)·(1 − w)`, for accuracy. With
/// these as run-time conditions inside the loop, it was not vectorized.
#[inline(always)]
fn update<const COUPLED: bool, const NEAR_START: bool>(
    k: &Elementwise,
    p: &mut [f32],
    g: &[f32],
    m: &mut [f32],
    v: &mut [f32],
) -> bool {
    let w = k.one_minus_beta1;
    let mut finite = true;
    for (((p, &g), m), v) in p.iter_mut().zip(g).zip(m.iter_mut()).zip(v.iter_mut()) {
        *p *= k.shrink;
        let g = if COUPLED { g + k.wd * *p } else { g };
        *m = if NEAR_START {
            *m + w * (g - *m)
        } else {
            g - (g - *m) * (1.0 - w)
        };
        *v = *v * k.beta2 + k.one_minus_beta2 * g * g;
        let denom = v.sqrt() / k.bias_correction2_sqrt + k.eps;
        *p += k.neg_step_size * *m / denom;
        finite &= p.is_finite();
    }
    finite
}

/// [`update`] compiled for AVX-512, as an [`Update`]; [`pick_update`] hands it out
/// only on a CPU with AVX-512F.
#[cfg(target_arch = "x86_64")]
fn update_avx512<const COUPLED: bool, const NEAR_START: bool>(
    k: &Elementwise,
    p: &mut [f32],
    g: &[f32],
    m: &mut [f32],
    v: &mut [f32],
) -> bool {
    #[target_feature(enable = "avx512f")]
    unsafe fn run<const C: bool, const N: bool>(
        k: &Elementwise,
        p: &mut [f32],
        g: &[f32],
        m: &mut [f32],
        v: &mut [f32],
    ) -> bool {
        update::<C, N>(k, p, g, m, v)
    }
    // SAFETY: `pick_update` returns this function only when `cpu::avx512()`
    // found AVX-512F.
    unsafe { run::<COUPLED, NEAR_START>(k, p, g, m, v) }
}

/// Checks the saved moments are consistent with each other.
fn validate_moments(moments: &[Option<AdamMoments>]) -> Result<(), OptimError> {
    for (position, m) in moments.iter().enumerate() {
        if let Some(m) = m
            && m.exp_avg.shape() != m.exp_avg_sq.shape()
        {
            return Err(OptimError::InvalidState(format!(
                "moments at position {position} have shapes {:?} and {:?}",
                m.exp_avg.shape(),
                m.exp_avg_sq.shape()
            )));
        }
    }
    Ok(())
}

/// Adam with coupled weight decay (PyTorch's `torch.optim.Adam`, `amsgrad=False`).
///
/// ```
/// use ferrocnn::{Adam, AdamConfig, Optimizer};
///
/// let adam = Adam::new(AdamConfig { lr: 1e-3, ..AdamConfig::default() });
/// let boxed: Box<dyn Optimizer> = Box::new(adam);
/// assert_eq!(boxed.lr(), 1e-3);
/// ```
#[derive(Clone, Debug)]
pub struct Adam {
    config: AdamConfig,
    moments: Vec<Option<AdamMoments>>,
}

/// Adam with decoupled weight decay (PyTorch's `torch.optim.AdamW`,
/// `amsgrad=False`): the weights shrink by `lr·wd` of themselves before each Adam
/// update, instead of the decay being added to the gradient.
#[derive(Clone, Debug)]
pub struct AdamW {
    config: AdamWConfig,
    moments: Vec<Option<AdamMoments>>,
}

/// `new`, `config` and the `Optimizer` impl: the same for Adam and AdamW but for the
/// config type, the state variant and whether weight decay is decoupled.
macro_rules! adam_variant {
    ($name:ident, $config:ident, decoupled: $decoupled:expr) => {
        impl $name {
            /// A new optimizer. Panics if the hyperparameters are invalid (negative
            /// lr, eps or weight decay, a beta outside [0, 1)), as PyTorch raises.
            pub fn new(config: $config) -> Self {
                let optimizer = $name {
                    config,
                    moments: Vec::new(),
                };
                if let Err(message) = optimizer.hyper().validate() {
                    panic!("{message}");
                }
                optimizer
            }

            /// The hyperparameters.
            pub fn config(&self) -> &$config {
                &self.config
            }

            fn hyper(&self) -> Hyper {
                let c = &self.config;
                Hyper {
                    lr: c.lr,
                    betas: c.betas,
                    eps: c.eps,
                    weight_decay: c.weight_decay,
                    decoupled: $decoupled,
                }
            }
        }

        impl Optimizer for $name {
            fn step(&mut self, params: &mut [&mut Param], grads: &Gradients) {
                adam_step(self.hyper(), &mut self.moments, params, grads);
            }

            fn step_checked(&mut self, params: &mut [&mut Param], grads: &Gradients) -> Vec<bool> {
                adam_step(self.hyper(), &mut self.moments, params, grads)
            }

            fn lr(&self) -> f64 {
                self.config.lr
            }

            fn set_lr(&mut self, lr: f64) {
                self.config.lr = lr;
            }

            fn kind(&self) -> OptimizerKind {
                OptimizerKind::$name
            }

            fn state(&self) -> OptimizerState {
                OptimizerState::$name {
                    config: self.config.clone(),
                    moments: self.moments.clone(),
                }
            }

            fn load_state(&mut self, state: OptimizerState) -> Result<(), OptimError> {
                let OptimizerState::$name { config, moments } = state else {
                    return Err(OptimError::KindMismatch {
                        expected: OptimizerKind::$name,
                        found: state.kind(),
                    });
                };
                let loaded = $name { config, moments };
                loaded
                    .hyper()
                    .validate()
                    .map_err(OptimError::InvalidState)?;
                validate_moments(&loaded.moments)?;
                *self = loaded;
                Ok(())
            }
        }
    };
}

adam_variant!(Adam, AdamConfig, decoupled: false);
adam_variant!(AdamW, AdamWConfig, decoupled: true);

#[cfg(test)]
mod tests {
    use super::*;

    /// The first moment after one update of `m` with gradient `g` and weight `w`
    /// (`1 − β1`), through the loop `adam_step` picks for `w`.
    fn first_moment(m: f32, g: f32, w: f32) -> f32 {
        let k = Elementwise {
            shrink: 1.0,
            wd: 0.0,
            one_minus_beta1: w,
            beta2: 0.0,
            one_minus_beta2: 0.0,
            bias_correction2_sqrt: 1.0,
            eps: 1.0,
            neg_step_size: 0.0,
        };
        let (mut p, mut m, mut v) = ([0.0], [m], [0.0]);
        let update = if w.abs() < 0.5 {
            update::<false, true>
        } else {
            update::<false, false>
        };
        update(&k, &mut p, &[g], &mut m, &mut v);
        m[0]
    }

    #[test]
    fn first_moment_is_the_weighted_average_from_both_ends() {
        assert_eq!(first_moment(1.0, 3.0, 0.25), 1.5);
        assert_eq!(first_moment(1.0, 3.0, 0.75), 2.5);
        assert_eq!(first_moment(2.0, 4.0, 0.0), 2.0);
        assert_eq!(first_moment(2.0, 4.0, 1.0), 4.0);
    }

    #[test]
    #[should_panic(expected = "invalid beta2")]
    fn beta_of_one_is_rejected() {
        Adam::new(AdamConfig {
            betas: (0.9, 1.0),
            ..AdamConfig::default()
        });
    }

    #[test]
    fn adamw_default_weight_decay_is_pytorchs() {
        assert_eq!(AdamWConfig::default().weight_decay, 0.01);
        assert_eq!(AdamConfig::default().weight_decay, 0.0);
    }
}
