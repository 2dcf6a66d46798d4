//! Optimizers: they turn the [`Gradients`] of one backward pass into new parameter
//! values. [`SGD`] (momentum, dampening, Nesterov), [`Adam`] and [`AdamW`] follow
//! PyTorch's update rules exactly, in the same f32 operation order as its
//! single-tensor (`foreach=False`) implementation, so trajectories agree with
//! PyTorch's up to f32 rounding. [`LrSchedule`] computes the learning rate of a
//! given step. Gradient clipping by global norm (PyTorch's `clip_grad_norm_`) is
//! [`Gradients::clip_global_norm`], applied to the gradients before the step.
//!
//! # State is kept per position
//!
//! A model hands its parameters over in a fixed order (`model.parameters_mut()`), and
//! an optimizer keeps its state (momentum buffers, Adam moments) **per position in
//! that list**, as PyTorch's `state_dict` does. The state of a position is created
//! with the right shape on the first step that updates it. A parameter whose shape
//! changes between steps at the same position is a programmer error: the step panics
//! naming the position and both shapes.
//!
//! A step skips a parameter that is frozen ([`Param::is_frozen`]) or has no gradient
//! in the given [`Gradients`]: its value is not touched and its state is not advanced
//! (PyTorch skips a parameter whose `p.grad is None` the same way).
//!
//! # Three ways to penalize large weights
//!
//! They are often all called "weight decay", but they are different updates:
//!
//! 1. **L2 regularization as a loss term** — a layer's `kernel_regularizer`
//!    (Keras's name) adds `λ·Σw²` to the loss on the tape. Its gradient `2λw` flows
//!    through backward like any other, and *every* optimizer sees it as part of the
//!    gradient (so Adam rescales it by its per-weight step size).
//! 2. **Coupled weight decay** — `weight_decay` of [`SGD`] and [`Adam`] adds `wd·p`
//!    to the gradient inside the optimizer, before momentum and moments. It is the
//!    loss-term L2 with `λ = wd/2`, without putting anything on the tape. For plain
//!    SGD that is the same as shrinking the weights; for Adam it is not, because the
//!    decay term is divided by `√v̂` like the rest of the gradient (weights with
//!    large gradients are barely decayed).
//! 3. **Decoupled weight decay** — [`AdamW`] (Loshchilov & Hutter) shrinks the
//!    weights directly, `p ← p·(1 − lr·wd)`, and then applies the Adam update
//!    computed from the plain gradient. The decay is the same for every weight,
//!    whatever its gradient history; this is what usually works better with Adam.
//!
//! # Example
//!
//! ```
//! use ferrocnn::{Optimizer, Param, SGD, SGDConfig, Tape};
//! use ndarray::array;
//!
//! let mut w = Param::new(array![1.0f32, -2.0].into_dyn());
//! let mut optimizer = SGD::new(SGDConfig {
//!     lr: 0.1,
//!     momentum: 0.9,
//!     ..SGDConfig::default()
//! });
//!
//! for _ in 0..3 {
//!     let tape = Tape::new();
//!     let loss = (&tape.param(&w) * &tape.param(&w)).sum(); // Σw², gradient 2w
//!     let grads = loss.backward();
//!     optimizer.step(&mut [&mut w], &grads);
//! }
//! // First step: buffer = 2w = [2, −4], w = [0.8, −1.6].
//! assert!(w.value()[0] < 1.0 && w.value()[1] > -2.0);
//! ```

mod adam;
mod schedule;
mod sgd;

use std::sync::atomic::{AtomicBool, Ordering};

use ndarray::ArrayD;
use serde::{Deserialize, Serialize};

use crate::ops::parallel::for_each_index;
use crate::param::Param;
use crate::tape::Gradients;

pub use adam::{Adam, AdamConfig, AdamMoments, AdamW, AdamWConfig};
pub use schedule::LrSchedule;
pub use sgd::{SGDConfig, SGD};

/// Updates parameters from gradients. Object safe: `Box<dyn Optimizer>` works.
///
/// `Send`, like [`Module`](crate::nn::Module): [`fit`](crate::train::fit) runs
/// the epoch on a thread of the pool.
pub trait Optimizer: Send {
    /// One update of `params` (always the same list, in the same order) from
    /// `grads`. Frozen parameters and parameters without a gradient are skipped.
    fn step(&mut self, params: &mut [&mut Param], grads: &Gradients);

    /// [`step`](Self::step), also telling, by position in `params`, which
    /// parameters it knows to hold only finite values afterwards (`false`: not
    /// known, e.g. not updated). [`train_step`](crate::train::train_step) checks
    /// every parameter after the update and reads only the others again. The
    /// default knows nothing; [`SGD`], [`Adam`] and [`AdamW`] check each value as
    /// they write it, where a separate scan read R2's 4.7 MB dense weight once more
    /// on every step.
    fn step_checked(&mut self, params: &mut [&mut Param], grads: &Gradients) -> Vec<bool> {
        self.step(params, grads);
        vec![false; params.len()]
    }

    /// The current learning rate.
    fn lr(&self) -> f64;

    /// Sets the learning rate used by the next steps (what a schedule drives).
    fn set_lr(&mut self, lr: f64);

    /// Which optimizer this is.
    fn kind(&self) -> OptimizerKind;

    /// A copy of the hyperparameters and per-position buffers, for checkpoints.
    fn state(&self) -> OptimizerState;

    /// Replaces hyperparameters (including the learning rate) and buffers with a
    /// saved state, as PyTorch's `load_state_dict` does. Fails, leaving `self`
    /// unchanged, if the state belongs to another kind of optimizer or is invalid.
    fn load_state(&mut self, state: OptimizerState) -> Result<(), OptimError>;
}

/// The kinds of optimizer, as named in errors and saved states.
#[allow(clippy::upper_case_acronyms)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum OptimizerKind {
    /// Stochastic gradient descent, see [`SGD`].
    SGD,
    /// Adam with coupled weight decay, see [`Adam`].
    Adam,
    /// Adam with decoupled weight decay, see [`AdamW`].
    AdamW,
}

impl std::fmt::Display for OptimizerKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self, f)
    }
}

/// Everything an optimizer needs to resume exactly: its kind, hyperparameters and
/// per-position buffers (`None` for a position never updated). Plain data; it
/// round-trips exactly through serde (e.g. bincode) and is saved in checkpoints.
#[allow(clippy::upper_case_acronyms)]
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum OptimizerState {
    /// State of an [`SGD`] optimizer.
    SGD {
        /// Hyperparameters.
        config: SGDConfig,
        /// Momentum buffer per position (empty when momentum is 0).
        momentum_buffers: Vec<Option<ArrayD<f32>>>,
    },
    /// State of an [`Adam`] optimizer.
    Adam {
        /// Hyperparameters.
        config: AdamConfig,
        /// Step count and moments per position.
        moments: Vec<Option<AdamMoments>>,
    },
    /// State of an [`AdamW`] optimizer.
    AdamW {
        /// Hyperparameters.
        config: AdamWConfig,
        /// Step count and moments per position.
        moments: Vec<Option<AdamMoments>>,
    },
}

impl OptimizerState {
    /// Rebuilds the optimizer this state was taken from (to resume a checkpoint).
    pub fn into_optimizer(self) -> Result<Box<dyn Optimizer>, OptimError> {
        let mut optimizer: Box<dyn Optimizer> = match self.kind() {
            OptimizerKind::SGD => Box::new(SGD::new(SGDConfig::default())),
            OptimizerKind::Adam => Box::new(Adam::new(AdamConfig::default())),
            OptimizerKind::AdamW => Box::new(AdamW::new(AdamWConfig::default())),
        };
        optimizer.load_state(self)?;
        Ok(optimizer)
    }

    /// The kind of optimizer this state belongs to.
    pub fn kind(&self) -> OptimizerKind {
        match self {
            OptimizerState::SGD { .. } => OptimizerKind::SGD,
            OptimizerState::Adam { .. } => OptimizerKind::Adam,
            OptimizerState::AdamW { .. } => OptimizerKind::AdamW,
        }
    }

    /// Checks that every saved buffer fits the parameter at its position, so that a
    /// checkpoint written for another architecture is rejected with an error instead
    /// of a panic at the next step.
    pub fn check_params(&self, params: &[&Param]) -> Result<(), OptimError> {
        let shapes: Vec<(usize, &[usize])> = match self {
            OptimizerState::SGD { momentum_buffers, .. } => {
                positions(momentum_buffers).map(|(i, b)| (i, b.shape())).collect()
            }
            OptimizerState::Adam { moments, .. } | OptimizerState::AdamW { moments, .. } => {
                positions(moments).map(|(i, m)| (i, m.exp_avg.shape())).collect()
            }
        };
        for (position, shape) in shapes {
            let Some(param) = params.get(position) else {
                return Err(OptimError::MissingParam {
                    position,
                    count: params.len(),
                });
            };
            if param.shape() != shape {
                return Err(OptimError::ShapeMismatch {
                    position,
                    state: shape.to_vec(),
                    param: param.shape().to_vec(),
                });
            }
        }
        Ok(())
    }
}

/// Why a saved optimizer state cannot be used.
#[derive(Debug, Clone, PartialEq)]
pub enum OptimError {
    /// The state was saved by another kind of optimizer.
    KindMismatch {
        /// The kind of the optimizer loading the state.
        expected: OptimizerKind,
        /// The kind recorded in the state.
        found: OptimizerKind,
    },
    /// The hyperparameters or buffers in the state are not valid.
    InvalidState(String),
    /// A buffer's shape differs from the parameter at its position.
    ShapeMismatch {
        /// Position in the parameter list.
        position: usize,
        /// Shape of the saved buffer.
        state: Vec<usize>,
        /// Shape of the parameter.
        param: Vec<usize>,
    },
    /// The state has a buffer for a position past the end of the parameter list.
    MissingParam {
        /// Position of the buffer.
        position: usize,
        /// Number of parameters given.
        count: usize,
    },
}

impl std::fmt::Display for OptimError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OptimError::KindMismatch { expected, found } => {
                write!(
                    f,
                    "optimizer state was saved by {found}, cannot load it into {expected}"
                )
            }
            OptimError::InvalidState(reason) => write!(f, "invalid optimizer state: {reason}"),
            OptimError::ShapeMismatch {
                position,
                state,
                param,
            } => write!(
                f,
                "optimizer state for parameter at position {position} has shape {state:?}, \
                 the parameter has shape {param:?}"
            ),
            OptimError::MissingParam { position, count } => write!(
                f,
                "optimizer state has a buffer for position {position}, but there are only {count} parameters"
            ),
        }
    }
}

impl std::error::Error for OptimError {}

/// Parameters with at least this many elements are updated on all cores (rayon);
/// smaller ones on one, where the fork/join would cost more than it saves.
pub const PARALLEL_MIN_LEN: usize = 1 << 15;

/// Runs `f` for every parameter the step applies to — not frozen and with a
/// gradient — with its position, its value and its gradient. `f` returns whether
/// the values it wrote are all finite; the result is that by position, `false`
/// for the parameters skipped (what [`Optimizer::step_checked`] returns).
pub(crate) fn for_each_updatable(
    optimizer: OptimizerKind,
    params: &mut [&mut Param],
    grads: &Gradients,
    mut f: impl FnMut(usize, &mut ArrayD<f32>, &ArrayD<f32>) -> bool,
) -> Vec<bool> {
    let mut finite = vec![false; params.len()];
    for (position, param) in params.iter_mut().enumerate() {
        if param.is_frozen() {
            continue;
        }
        let Some(grad) = grads.get(param) else {
            continue;
        };
        assert_eq!(
            grad.shape(),
            param.shape(),
            "{optimizer}: gradient of parameter at position {position} has shape {:?}, \
             the parameter has shape {:?}",
            grad.shape(),
            param.shape()
        );
        finite[position] = f(position, param.value_mut(), grad);
    }
    finite
}

/// A one-dimensional view of all elements. Zipping 1-d views runs a plain loop;
/// ndarray's `Zip` over dynamic-rank arrays costs several times more per element.
pub(crate) fn flat(a: &ArrayD<f32>) -> ndarray::CowArray<'_, f32, ndarray::Ix1> {
    let a = a.as_standard_layout();
    let len = a.len();
    a.into_shape_with_order(len)
        .expect("standard layout reshapes to 1-d")
}

/// The state slot of `position`, growing the list if this position is new.
pub(crate) fn slot<T>(slots: &mut Vec<Option<T>>, position: usize) -> &mut Option<T> {
    if slots.len() <= position {
        slots.resize_with(position + 1, || None);
    }
    &mut slots[position]
}

/// Panics if a parameter's shape changed since its state was created.
pub(crate) fn assert_state_shape(
    optimizer: OptimizerKind,
    position: usize,
    param: &[usize],
    state: &[usize],
) {
    assert!(
        param == state,
        "{optimizer}: parameter at position {position} has shape {param:?}, but its \
         optimizer state has shape {state:?}; the parameter list must keep the same \
         order and shapes between steps"
    );
}

/// The `Some` entries of a per-position list, with their positions.
fn positions<T>(slots: &[Option<T>]) -> impl Iterator<Item = (usize, &T)> {
    slots
        .iter()
        .enumerate()
        .filter_map(|(i, s)| s.as_ref().map(|s| (i, s)))
}

/// Runs an elementwise update of `len` elements as `body(range)` over chunks of
/// them, on all cores when the tensor is large, and returns whether every chunk's
/// `body` did (whether all the values written are finite). The chunks go through
/// `for_each_index`, whose rayon plumbing is compiled once for the library, where
/// ndarray's `Zip::par_for_each` compiled its own for each update.
pub(crate) fn update_in_chunks(len: usize, body: &(dyn Fn(std::ops::Range<usize>) -> bool + Sync)) -> bool {
    /// Elements per parallel task: with Adam's four arrays, 256 KB, in L2.
    const CHUNK: usize = 1 << 14;
    if len >= PARALLEL_MIN_LEN {
        let finite = AtomicBool::new(true);
        for_each_index(len.div_ceil(CHUNK), Some(1), &|i| {
            if !body(i * CHUNK..len.min((i + 1) * CHUNK)) {
                finite.store(false, Ordering::Relaxed);
            }
        });
        finite.into_inner()
    } else {
        body(0..len)
    }
}
