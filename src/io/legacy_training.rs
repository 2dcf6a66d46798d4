//! Reading the training parts of checkpoints of formats 1 and 2: the optimizer's
//! state, the plan and the history, as they were laid out before the training
//! hyperparameters became `f64` (format 3).
//!
//! As in `legacy`, the types below mirror the old layout exactly and are frozen:
//! bincode encodes fields in order with no names, so an `f32` read as an `f64`
//! would take the next field's bytes. Never reorder or edit them. Each converts to
//! today's type exactly (`f64::from` of an `f32` is exact).

use std::collections::BTreeMap;

use ndarray::ArrayD;
use serde::Deserialize;

use crate::data::Augment;
use crate::optim::{AdamConfig, AdamMoments, AdamWConfig, LrSchedule, OptimizerState, SGDConfig};
use crate::train::{EpochStats, FitOptions, Progress};

/// A checkpoint's training parts in formats 1 and 2.
#[derive(Deserialize)]
pub(crate) struct Training {
    pub optimizer: Optimizer,
    pub options: Options,
    pub history: Vec<Epoch>,
    pub meta: BTreeMap<String, String>,
}

#[derive(Deserialize)]
#[allow(clippy::upper_case_acronyms)]
pub(crate) enum Optimizer {
    SGD {
        config: Sgd,
        momentum_buffers: Vec<Option<ArrayD<f32>>>,
    },
    Adam {
        config: Adam,
        moments: Vec<Option<AdamMoments>>,
    },
    AdamW {
        config: Adam,
        moments: Vec<Option<AdamMoments>>,
    },
}

#[derive(Deserialize)]
pub(crate) struct Sgd {
    lr: f32,
    momentum: f64,
    dampening: f64,
    nesterov: bool,
    weight_decay: f64,
}

#[derive(Deserialize)]
pub(crate) struct Adam {
    lr: f32,
    betas: (f64, f64),
    eps: f64,
    weight_decay: f64,
}

#[derive(Deserialize)]
pub(crate) enum Schedule {
    Constant {
        lr: f32,
    },
    Step {
        base_lr: f32,
        step_size: usize,
        gamma: f32,
    },
    Exponential {
        base_lr: f32,
        gamma: f32,
    },
    Cosine {
        base_lr: f32,
        min_lr: f32,
        total_steps: usize,
    },
    WarmupCosine {
        base_lr: f32,
        min_lr: f32,
        warmup_steps: usize,
        total_steps: usize,
    },
    OneCycle {
        max_lr: f32,
        total_steps: usize,
        pct_start: f64,
        div_factor: f64,
        final_div_factor: f64,
    },
}

#[derive(Deserialize)]
pub(crate) struct Options {
    epochs: usize,
    batch_size: usize,
    seed: u64,
    augment: Option<Augment>,
    clip_grad_norm: Option<f32>,
    label_smoothing: f32,
    schedule: Option<Schedule>,
    eval_batch_size: usize,
    progress: Progress,
    start_epoch: usize,
    start_batch: usize,
    start_totals: (f64, usize, usize),
}

#[derive(Deserialize)]
pub(crate) struct Epoch {
    epoch: usize,
    train_loss: f64,
    train_accuracy: f64,
    eval: Option<(f64, f64)>,
    seconds: f64,
    images_per_sec: f64,
    lr: f32,
}

impl From<Optimizer> for OptimizerState {
    fn from(old: Optimizer) -> Self {
        match old {
            Optimizer::SGD {
                config: c,
                momentum_buffers,
            } => OptimizerState::SGD {
                config: SGDConfig {
                    lr: c.lr.into(),
                    momentum: c.momentum,
                    dampening: c.dampening,
                    nesterov: c.nesterov,
                    weight_decay: c.weight_decay,
                },
                momentum_buffers,
            },
            Optimizer::Adam { config: c, moments } => OptimizerState::Adam {
                config: AdamConfig {
                    lr: c.lr.into(),
                    betas: c.betas,
                    eps: c.eps,
                    weight_decay: c.weight_decay,
                },
                moments,
            },
            Optimizer::AdamW { config: c, moments } => OptimizerState::AdamW {
                config: AdamWConfig {
                    lr: c.lr.into(),
                    betas: c.betas,
                    eps: c.eps,
                    weight_decay: c.weight_decay,
                },
                moments,
            },
        }
    }
}

impl From<Schedule> for LrSchedule {
    fn from(old: Schedule) -> Self {
        match old {
            Schedule::Constant { lr } => LrSchedule::Constant { lr: lr.into() },
            Schedule::Step {
                base_lr,
                step_size,
                gamma,
            } => LrSchedule::Step {
                base_lr: base_lr.into(),
                step_size,
                gamma: gamma.into(),
            },
            Schedule::Exponential { base_lr, gamma } => LrSchedule::Exponential {
                base_lr: base_lr.into(),
                gamma: gamma.into(),
            },
            Schedule::Cosine {
                base_lr,
                min_lr,
                total_steps,
            } => LrSchedule::Cosine {
                base_lr: base_lr.into(),
                min_lr: min_lr.into(),
                total_steps,
            },
            Schedule::WarmupCosine {
                base_lr,
                min_lr,
                warmup_steps,
                total_steps,
            } => LrSchedule::WarmupCosine {
                base_lr: base_lr.into(),
                min_lr: min_lr.into(),
                warmup_steps,
                total_steps,
            },
            Schedule::OneCycle {
                max_lr,
                total_steps,
                pct_start,
                div_factor,
                final_div_factor,
            } => LrSchedule::OneCycle {
                max_lr: max_lr.into(),
                total_steps,
                pct_start,
                div_factor,
                final_div_factor,
            },
        }
    }
}

impl From<Options> for FitOptions {
    fn from(o: Options) -> Self {
        FitOptions {
            epochs: o.epochs,
            batch_size: o.batch_size,
            seed: o.seed,
            augment: o.augment,
            clip_grad_norm: o.clip_grad_norm.map(f64::from),
            label_smoothing: o.label_smoothing.into(),
            schedule: o.schedule.map(LrSchedule::from),
            eval_batch_size: o.eval_batch_size,
            progress: o.progress,
            start_epoch: o.start_epoch,
            start_batch: o.start_batch,
            start_totals: o.start_totals,
            ..FitOptions::default()
        }
    }
}

impl From<Epoch> for EpochStats {
    fn from(e: Epoch) -> Self {
        EpochStats {
            epoch: e.epoch,
            train_loss: e.train_loss,
            train_accuracy: e.train_accuracy,
            eval: e.eval,
            seconds: e.seconds,
            images_per_sec: e.images_per_sec,
            lr: e.lr.into(),
            confusion: None,
        }
    }
}
