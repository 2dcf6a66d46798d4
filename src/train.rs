//! `fit` and `evaluate`: the training loop with progress bars, and evaluation with
//! metrics.
//!
//! One step is the flow of DESIGN.md: a fresh tape, forward in training mode, loss
//! (cross-entropy plus the layers' regularization penalties), one backward sweep,
//! optional clipping, an optimizer step. A NaN or infinite loss stops training with
//! an error naming the epoch and batch, before the optimizer writes garbage into the
//! weights.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use indicatif::{ProgressBar, ProgressStyle};
use serde::{Deserialize, Serialize};

use crate::data::{Augment, Dataset, Order};
use crate::metrics::ConfusionMatrix;
use crate::nn::{Mode, Module, Sequential};
use crate::ops::argmax_rows;
use crate::optim::{LrSchedule, Optimizer};
use crate::tape::Tape;
use crate::tensor::Tensor;

/// Errors that stop training.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// The loss became NaN or infinite.
    #[error("training diverged at epoch {epoch}, batch {batch}: the loss is {loss}; lower the learning rate or enable gradient clipping")]
    Diverged {
        /// 1-based epoch.
        epoch: usize,
        /// 1-based batch within the epoch.
        batch: usize,
        /// The offending loss.
        loss: f32,
    },
    /// The training set is empty.
    #[error("the training set is empty")]
    EmptyDataset,
    /// The model has fewer outputs than the data has classes.
    #[error("the model outputs {outputs} classes but the data has {classes}; replace the last Linear layer")]
    ClassMismatch {
        /// Width of the model's output.
        outputs: usize,
        /// Classes in the data.
        classes: usize,
    },
    /// The stop flag was raised (Ctrl-C); the step in progress was completed. Resume
    /// with `start_epoch = epoch`, `start_batch = batches_done`, `start_totals = totals`.
    #[error("training interrupted at epoch {epoch} after {batches_done} batches")]
    Interrupted {
        /// 1-based epoch that was running.
        epoch: usize,
        /// Batches of that epoch already trained.
        batches_done: usize,
        /// That epoch's running (loss sum, correct, seen), to continue its figures.
        totals: (f64, usize, usize),
    },
    /// The model cannot take the data's images (e.g. a 28×28 model on 32×32 data).
    #[error("the model does not fit the data: {0}")]
    Shape(String),
    /// The callback asked to stop with an error (e.g. a checkpoint failed to save).
    #[error("{0}")]
    Callback(String),
}

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
    pub clip_grad_norm: Option<f32>,
    /// Label smoothing of the cross-entropy (0 = none).
    pub label_smoothing: f32,
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
        }
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
    pub lr: f32,
}

/// The result of [`evaluate`].
#[derive(Clone, Debug)]
pub struct Evaluation {
    /// Mean cross-entropy.
    pub loss: f64,
    /// Fraction predicted correctly.
    pub accuracy: f64,
    /// Predicted class of every sample, in dataset order.
    pub predictions: Vec<usize>,
    /// Counts of (true, predicted) pairs.
    pub confusion: ConfusionMatrix,
}

/// One optimizer step on a batch: returns the loss and the number of correct
/// predictions. `step` is the global step number for the schedule.
pub fn train_step(
    model: &mut Sequential,
    optimizer: &mut dyn Optimizer,
    x: ndarray::Array4<f32>,
    y: &[usize],
    opts: &FitOptions,
) -> (f32, usize) {
    let tape = Tape::new();
    let logits = model.forward(&tape.input(x.into_dyn()), Mode::Train);
    let correct = argmax_rows(logits.value())
        .iter()
        .zip(y)
        .filter(|(p, t)| p == t)
        .count();
    let mut loss = logits.cross_entropy_smoothed(y, opts.label_smoothing);
    if let Some(penalty) = model.regularization(&logits) {
        loss = &loss + &penalty;
    }
    let value = loss.item();
    if value.is_finite() {
        let mut grads = loss.backward();
        if let Some(max) = opts.clip_grad_norm {
            grads.clip_global_norm(max);
        }
        let timer = crate::profile::start();
        optimizer.step(&mut model.parameters_mut(), &grads);
        crate::profile::record(timer, "optimizer", crate::profile::Phase::Update);
    }
    (value, correct)
}

/// Trains `model` on `train`, evaluating on `eval` after each epoch, and calls
/// `on_epoch` with each epoch's figures (to print, log or save a checkpoint; an
/// `Err` from it stops training).
pub fn fit(
    model: &mut Sequential,
    optimizer: &mut dyn Optimizer,
    train: &Dataset,
    eval: Option<&Dataset>,
    opts: &FitOptions,
    mut on_epoch: impl FnMut(&EpochStats, &mut Sequential, &dyn Optimizer) -> Result<(), String>,
) -> Result<Vec<EpochStats>, TrainError> {
    crate::runtime::tune_malloc();
    if train.is_empty() {
        return Err(TrainError::EmptyDataset);
    }
    for data in std::iter::once(train).chain(eval) {
        let (c, h, w) = data.image_shape();
        let output = model.check_input(&[c, h, w]).map_err(TrainError::Shape)?;
        let outputs = output.first().copied().unwrap_or(0);
        if output.len() != 1 || outputs < data.num_classes() {
            return Err(TrainError::ClassMismatch {
                outputs,
                classes: data.num_classes(),
            });
        }
    }
    let batches_per_epoch = train.len().div_ceil(opts.batch_size);
    let mut history = Vec::new();
    for epoch in opts.start_epoch..=opts.epochs {
        let bar = progress_bar(opts.progress, batches_per_epoch, epoch, opts.epochs);
        let start = Instant::now();
        let resuming = epoch == opts.start_epoch && opts.start_batch > 0;
        let (mut loss_sum, mut correct, mut seen) = if resuming { opts.start_totals } else { (0.0, 0, 0) };
        let skip = if resuming { opts.start_batch } else { 0 };
        bar.inc(skip as u64);
        let order = Order::Shuffle(opts.seed.wrapping_add(epoch as u64));
        let batches = train.batches(opts.batch_size, order, opts.augment.as_ref());
        // The order and each sample's augmentation depend only on the seed, so after
        // skipping the batches already trained, the rest are exactly those an
        // uninterrupted run would see.
        for (b, batch) in batches.enumerate().skip(skip) {
            if let Some(schedule) = &opts.schedule {
                optimizer.set_lr(schedule.lr_at((epoch - 1) * batches_per_epoch + b));
            }
            let n = batch.len();
            let (loss, ok) = train_step(model, optimizer, batch.x, &batch.y, opts);
            if !loss.is_finite() {
                bar.abandon();
                return Err(TrainError::Diverged {
                    epoch,
                    batch: b + 1,
                    loss,
                });
            }
            loss_sum += f64::from(loss) * n as f64;
            correct += ok;
            seen += n;
            let rate = seen as f64 / start.elapsed().as_secs_f64().max(1e-9);
            bar.set_message(format!(
                "loss {:.4}  acc {:.2}%  {:.0} img/s",
                loss_sum / seen as f64,
                100.0 * correct as f64 / seen as f64,
                rate
            ));
            bar.inc(1);
            if opts.stop.as_ref().is_some_and(|s| s.load(Ordering::SeqCst)) && b + 1 < batches_per_epoch {
                bar.abandon();
                return Err(TrainError::Interrupted {
                    epoch,
                    batches_done: b + 1,
                    totals: (loss_sum, correct, seen),
                });
            }
        }
        bar.finish_and_clear();
        let seconds = start.elapsed().as_secs_f64();
        let eval_result = eval.map(|d| evaluate(model, d, opts.eval_batch_size));
        let stats = EpochStats {
            epoch,
            train_loss: loss_sum / seen as f64,
            train_accuracy: correct as f64 / seen as f64,
            eval: eval_result.as_ref().map(|e| (e.loss, e.accuracy)),
            seconds,
            images_per_sec: seen as f64 / seconds,
            lr: optimizer.lr(),
        };
        if opts.progress != Progress::Silent {
            println!("{}", epoch_line(&stats, opts.epochs));
        }
        on_epoch(&stats, model, optimizer).map_err(TrainError::Callback)?;
        history.push(stats);
    }
    Ok(history)
}

/// One line per epoch: what Keras prints at the end of an epoch.
pub fn epoch_line(s: &EpochStats, epochs: usize) -> String {
    let mut line = format!(
        "epoch {}/{}: loss {:.4}  train acc {:.2}%",
        s.epoch,
        epochs,
        s.train_loss,
        100.0 * s.train_accuracy
    );
    if let Some((loss, acc)) = s.eval {
        line += &format!("  test loss {loss:.4}  test acc {:.2}%", 100.0 * acc);
    }
    line + &format!("  {:.1} s  {:.0} img/s", s.seconds, s.images_per_sec)
}

fn progress_bar(progress: Progress, len: usize, epoch: usize, epochs: usize) -> ProgressBar {
    if progress != Progress::Auto || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(len as u64);
    let style =
        ProgressStyle::with_template("epoch {prefix} [{bar:30.cyan/blue}] {pos}/{len} {msg} (ETA {eta})")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
    bar.set_style(style);
    bar.set_prefix(format!("{epoch}/{epochs}"));
    bar
}

/// Evaluates `model` on `data` in evaluation mode, recording nothing.
pub fn evaluate(model: &mut Sequential, data: &Dataset, batch_size: usize) -> Evaluation {
    crate::runtime::tune_malloc();
    let mut confusion = ConfusionMatrix::new(data.num_classes().max(model_classes(model, data)));
    let mut predictions = Vec::with_capacity(data.len());
    let mut loss_sum = 0.0f64;
    for batch in data.batches(batch_size, Order::Sequential, None) {
        let logits = model.forward(&Tensor::new(batch.x.into_dyn()), Mode::Eval);
        loss_sum += f64::from(logits.cross_entropy(&batch.y).item()) * batch.y.len() as f64;
        let predicted = argmax_rows(logits.value());
        confusion.add(&batch.y, &predicted);
        predictions.extend(predicted);
    }
    Evaluation {
        loss: loss_sum / data.len().max(1) as f64,
        accuracy: confusion.accuracy(),
        predictions,
        confusion,
    }
}

/// Width of the model's output for this data's images.
fn model_classes(model: &Sequential, data: &Dataset) -> usize {
    let (c, h, w) = data.image_shape();
    model
        .output_shapes(&[c, h, w])
        .last()
        .and_then(|s| s.first().copied())
        .unwrap_or(0)
}
