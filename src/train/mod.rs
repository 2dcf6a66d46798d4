//! Training and evaluation: [`fit`] (the loop, with progress bars), [`train_step`],
//! [`predict`] and [`evaluate`].
//!
//! One step is the flow of DESIGN.md: a fresh tape, forward in training mode, loss
//! (cross-entropy plus the layers' regularization penalties), one backward sweep,
//! optional clipping, an optimizer step. The checks of [`health`] stop a run whose
//! numbers go bad (NaN or infinite inputs, loss, gradients or weights, or a loss
//! that explodes) with an error naming the epoch, the batch and where the first bad
//! value appeared, before the optimizer writes garbage into the weights.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::data::Augment;
use crate::metrics::ConfusionMatrix;
use crate::nn::Module;
use crate::optim::LrSchedule;
use crate::profile::Profiler;

mod fit;
pub mod health;
mod predict;

pub use fit::{epoch_line, fit, train_step};
pub use health::{ExplosionCheck, Fault, Origin};
pub use predict::{check_fits, evaluate, predict, Evaluation, PREDICT_SLICE};

/// Errors that stop training.
#[derive(Debug)]
pub enum TrainError {
    /// A numerical check failed: a NaN or infinite value, or an exploding loss
    /// (see [`health`]).
    Numerical {
        /// 1-based epoch.
        epoch: usize,
        /// 1-based batch within the epoch.
        batch: usize,
        /// What went wrong, and where.
        fault: Fault,
    },
    /// A setting of [`FitOptions`] is out of range.
    Options(String),
    /// The training set is empty.
    EmptyDataset,
    /// The model has fewer outputs than the data has classes.
    ClassMismatch {
        /// Width of the model's output.
        outputs: usize,
        /// Classes in the data.
        classes: usize,
    },
    /// The stop flag was raised (Ctrl-C); the step in progress was completed. Resume
    /// with `start_epoch = epoch`, `start_batch = batches_done`, `start_totals = totals`.
    Interrupted {
        /// 1-based epoch that was running.
        epoch: usize,
        /// Batches of that epoch already trained.
        batches_done: usize,
        /// That epoch's running (loss sum, correct, seen), to continue its figures.
        totals: (f64, usize, usize),
    },
    /// The model cannot take the data's images (e.g. a 28×28 model on 32×32 data).
    Shape(String),
    /// The callback asked to stop with an error (e.g. a checkpoint failed to save).
    Callback(String),
}

impl std::fmt::Display for TrainError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TrainError::Numerical {
                epoch,
                batch,
                fault,
            } => write!(f, "training stopped at epoch {epoch}, batch {batch}: {fault}"),
            TrainError::Options(reason) => write!(f, "invalid training option: {reason}"),
            TrainError::EmptyDataset => f.write_str("the training set is empty"),
            TrainError::ClassMismatch { outputs, classes } => write!(
                f,
                "the model outputs {outputs} classes but the data has {classes}; replace the last Linear layer"
            ),
            TrainError::Interrupted {
                epoch,
                batches_done,
                ..
            } => write!(f, "training interrupted at epoch {epoch} after {batches_done} batches"),
            TrainError::Shape(reason) => write!(f, "the model does not fit the data: {reason}"),
            TrainError::Callback(message) => f.write_str(message),
        }
    }
}

impl std::error::Error for TrainError {}

/// When to draw progress bars.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Progress {
    /// Bars when standard error is a terminal; per-epoch lines only otherwise.
    #[default]
    Auto,
    /// Never draw bars (per-epoch lines still print).
    Hidden,
    /// Print nothing at all.
    Silent,
}

/// Settings of [`fit`]. Serializable, so a checkpoint carries the plan it resumes.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct FitOptions {
    /// Number of epochs to train.
    pub epochs: usize,
    /// Samples per training batch.
    pub batch_size: usize,
    /// Seed of the shuffling and augmentation (epoch `e` uses `seed + e`).
    pub seed: u64,
    /// Augmentation of training images, if any.
    pub augment: Option<Augment>,
    /// Clip the gradients' global norm to this, if set.
    pub clip_grad_norm: Option<f64>,
    /// Label smoothing of the cross-entropy (0 = none).
    pub label_smoothing: f64,
    /// Learning-rate schedule over optimizer steps; `None` keeps the optimizer's lr.
    pub schedule: Option<LrSchedule>,
    /// Samples per evaluation batch.
    pub eval_batch_size: usize,
    /// Progress display.
    pub progress: Progress,
    /// First epoch to run (1-based); later than 1 when resuming.
    pub start_epoch: usize,
    /// Batches of `start_epoch` already trained (resuming an interrupted epoch).
    pub start_batch: usize,
    /// Running (loss sum, correct, seen) of those batches.
    pub start_totals: (f64, usize, usize),
    /// Raised (e.g. by a Ctrl-C handler) to stop after the current step with
    /// [`TrainError::Interrupted`].
    #[serde(skip)]
    pub stop: Option<Arc<AtomicBool>>,
    /// Times every training step's forward pass (per layer type), backward pass
    /// (per op) and optimizer update into this profiler, if set.
    #[serde(skip)]
    pub profiler: Option<Profiler>,
    /// Stops a run whose loss explodes while staying finite; `None` turns the check
    /// off. Not saved in checkpoints: a resumed run uses the default unless told.
    #[serde(skip, default = "default_explosion")]
    pub explosion: Option<ExplosionCheck>,
    /// Checks every module's output and every backward gradient of every step for
    /// NaN and infinities (PyTorch's `detect_anomaly`). Off by default: without it
    /// the cheap checks of [`health`] still catch every non-finite value, and a
    /// failing step is re-run with these checks to say where it started. Not saved
    /// in checkpoints.
    #[serde(skip)]
    pub detect_anomaly: bool,
    /// Called after every training step, e.g. to draw live curves. Not saved in
    /// checkpoints. It runs where the epoch does, on a thread of rayon's pool: it
    /// should not wait for another thread that is itself waiting for the pool (with
    /// one thread, nothing would run it).
    #[serde(skip)]
    pub on_step: Option<StepHook>,
}

fn default_explosion() -> Option<ExplosionCheck> {
    Some(ExplosionCheck::default())
}

impl FitOptions {
    /// Checks every setting's range; [`fit`] calls it before the first step.
    pub fn validate(&self) -> Result<(), TrainError> {
        let fail = |what: String| Err(TrainError::Options(what));
        if self.batch_size == 0 {
            return fail("batch size 0: it must be at least 1".into());
        }
        if self.eval_batch_size == 0 {
            return fail("evaluation batch size 0: it must be at least 1".into());
        }
        if self.start_epoch == 0 {
            return fail("start epoch 0: epochs count from 1".into());
        }
        if let Some(max) = self.clip_grad_norm.filter(|m| !(m.is_finite() && *m > 0.0)) {
            return fail(format!(
                "gradient clipping at {max}: it must be finite and above 0"
            ));
        }
        if !(0.0..1.0).contains(&self.label_smoothing) {
            return fail(format!(
                "label smoothing {} is not in [0, 1)",
                self.label_smoothing
            ));
        }
        if let Some(a) = self
            .augment
            .as_ref()
            .filter(|a| !(a.max_rotation_degrees.is_finite() && a.max_rotation_degrees >= 0.0))
        {
            return fail(format!(
                "augmentation by up to {}°: it must be finite and at least 0",
                a.max_rotation_degrees
            ));
        }
        let (loss, correct, seen) = self.start_totals;
        if !loss.is_finite() || correct > seen {
            return fail(format!(
                "the running totals {:?} of the interrupted epoch are not (finite loss, correct ≤ seen)",
                self.start_totals
            ));
        }
        if let Some(schedule) = &self.schedule {
            schedule
                .validate()
                .map_err(|e| TrainError::Options(format!("learning-rate schedule: {e}")))?;
        }
        if let Some(check) = &self.explosion {
            check.validate().map_err(TrainError::Options)?;
        }
        Ok(())
    }
}

impl Default for FitOptions {
    fn default() -> Self {
        FitOptions {
            epochs: 1,
            batch_size: 64,
            seed: 0,
            augment: None,
            clip_grad_norm: None,
            label_smoothing: 0.0,
            schedule: None,
            eval_batch_size: 1000,
            progress: Progress::Auto,
            start_epoch: 1,
            start_batch: 0,
            start_totals: (0.0, 0, 0),
            stop: None,
            profiler: None,
            explosion: default_explosion(),
            detect_anomaly: false,
            on_step: None,
        }
    }
}

/// What one training step did, as [`FitOptions::on_step`] is told.
#[derive(Clone, Debug, PartialEq)]
pub struct StepStats {
    /// 1-based epoch.
    pub epoch: usize,
    /// 1-based batch within the epoch.
    pub batch: usize,
    /// Batches in an epoch.
    pub batches_per_epoch: usize,
    /// This batch's loss (cross-entropy + penalties).
    pub loss: f32,
    /// Fraction of this batch predicted correctly (in training mode).
    pub accuracy: f64,
    /// The learning rate of this step.
    pub lr: f64,
}

/// A function [`fit`] calls after every step with the step's figures and the
/// updated model: to stream live curves, or pictures of the weights as they
/// change (the `mnist --explore` page). It runs on the training thread between
/// steps, so it should copy what it needs and return; the weights' values are
/// shared, so keeping a clone of the model costs a copy only when the next step
/// writes them.
///
/// ```
/// use std::sync::{Arc, Mutex};
/// use ferrocnn::train::{FitOptions, StepHook};
///
/// let losses = Arc::new(Mutex::new(Vec::new()));
/// let sink = losses.clone();
/// let options = FitOptions {
///     on_step: Some(StepHook::new(move |step, _model| sink.lock().unwrap().push(step.loss))),
///     ..Default::default()
/// };
/// # let _ = options;
/// ```
#[derive(Clone)]
pub struct StepHook(Arc<StepFn>);

/// The function a [`StepHook`] holds.
type StepFn = dyn Fn(&StepStats, &dyn Module) + Send + Sync;

impl StepHook {
    /// Wraps `f`.
    pub fn new(f: impl Fn(&StepStats, &dyn Module) + Send + Sync + 'static) -> Self {
        StepHook(Arc::new(f))
    }

    /// Calls the function.
    pub fn call(&self, step: &StepStats, model: &dyn Module) {
        (self.0)(step, model)
    }
}

impl std::fmt::Debug for StepHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StepHook(..)")
    }
}

/// What one epoch did.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EpochStats {
    /// 1-based epoch.
    pub epoch: usize,
    /// Mean training loss over the epoch (cross-entropy + penalties).
    pub train_loss: f64,
    /// Training accuracy over the epoch (in training mode, so with dropout).
    pub train_accuracy: f64,
    /// Loss and accuracy on the evaluation set, if one was given.
    pub eval: Option<(f64, f64)>,
    /// Wall time of the training loop (evaluation excluded).
    pub seconds: f64,
    /// Training images per second.
    pub images_per_sec: f64,
    /// Learning rate at the end of the epoch.
    pub lr: f64,
    /// The confusion matrix on the evaluation set, from the same pass as `eval`, so
    /// a caller that wants it after training need not evaluate again. Not saved with
    /// a checkpoint's history: `None` for epochs read back from a file.
    #[serde(skip)]
    pub confusion: Option<ConfusionMatrix>,
}
