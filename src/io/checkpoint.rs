//! Training checkpoints: everything needed to continue a run exactly where it
//! stopped — the model (with batch-norm statistics and dropout counters), the
//! optimizer's state, the training plan and its position, and the history so far.
//!
//! There is no separate RNG state to save: shuffling and augmentation are drawn from
//! `(seed, epoch)` and dropout masks from each layer's `(seed, calls)`, all of which
//! are in here, so a resumed run draws what an uninterrupted one would have.
//!
//! A checksum proves a file is the one written, not that what was written can be
//! run: loading also checks the training plan (a batch size of 0, a schedule of 0
//! steps, a NaN rotation would each panic inside training), and
//! [`Checkpoint::restore`] checks that the optimizer's buffers fit the model's
//! parameters before a step would find out.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::format::{decode_payload, encode, open, read_limited, write_atomic, FileKind, IoError};
use super::model::ModelRecord;
use super::{legacy, legacy_training};
use crate::nn::{Module, Registry};
use crate::optim::{Optimizer, OptimizerState};
use crate::train::{EpochStats, FitOptions};

/// A snapshot of a training run.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Checkpoint {
    /// The model, architecture and state ([`ModelRecord::build`] or
    /// [`ModelRecord::load_into`] turn it back into a module).
    pub model: ModelRecord,
    /// The optimizer's hyperparameters and buffers.
    pub optimizer: OptimizerState,
    /// The plan, with `start_epoch`/`start_batch`/`start_totals` pointing at the next step.
    pub options: FitOptions,
    /// The epochs completed so far.
    pub history: Vec<EpochStats>,
    /// Free-form notes (e.g. the command-line settings of the run).
    pub meta: BTreeMap<String, String>,
}

/// A model and its optimizer, as [`Checkpoint::restore`] rebuilds them.
pub type Restored = (Box<dyn Module>, Box<dyn Optimizer>);

impl Checkpoint {
    /// Builds the model (with `registry`'s constructors for modules of your own) and
    /// the optimizer, after checking that every optimizer buffer fits the parameter
    /// at its position: a checkpoint whose two halves disagree is an error here, not
    /// a panic at the first step.
    pub fn restore(&self, registry: &Registry) -> Result<Restored, String> {
        let model = self.model.build(registry)?;
        self.optimizer
            .check_params(&model.parameters())
            .map_err(|e| e.to_string())?;
        let optimizer = self
            .optimizer
            .clone()
            .into_optimizer()
            .map_err(|e| e.to_string())?;
        Ok((model, optimizer))
    }
}

/// A format-2 checkpoint: today's model record, and the training parts as they were
/// then (frozen in `legacy_training`).
#[derive(Deserialize)]
struct CheckpointV2 {
    model: ModelRecord,
    training: legacy_training::Training,
}

/// Saves a checkpoint atomically.
pub fn save_checkpoint(checkpoint: &Checkpoint, path: impl AsRef<Path>) -> Result<(), IoError> {
    save_checkpoint_at(checkpoint, path.as_ref())
}

// Not generic: compiled once here, not again in every crate that calls it.
fn save_checkpoint_at(checkpoint: &Checkpoint, path: &Path) -> Result<(), IoError> {
    write_atomic(path, &encode(checkpoint, FileKind::Checkpoint)?)
}

/// Loads a checkpoint saved by [`save_checkpoint`] (or by ferrocnn's first release).
///
/// # Errors
/// Those of reading a model file, and [`IoError::Invalid`] naming the file and the
/// setting if the training plan cannot be run (see the module docs).
pub fn load_checkpoint(path: impl AsRef<Path>) -> Result<Checkpoint, IoError> {
    load_checkpoint_at(path.as_ref())
}

// Not generic: compiled once here, not again in every crate that calls it.
fn load_checkpoint_at(path: &Path) -> Result<Checkpoint, IoError> {
    let bytes = read_limited(path)?;
    let (version, payload) = open(&bytes, FileKind::Checkpoint, path)?;
    let checkpoint = match version {
        1 => {
            let (model, old) = legacy::decode_checkpoint(payload, path)?;
            Checkpoint {
                model: ModelRecord::of(&model),
                optimizer: old.optimizer.into(),
                options: old.options.into(),
                history: old.history.into_iter().map(EpochStats::from).collect(),
                meta: old.meta,
            }
        }
        2 => {
            let old: CheckpointV2 = decode_payload(payload, path)?;
            Checkpoint {
                model: old.model,
                optimizer: old.training.optimizer.into(),
                options: old.training.options.into(),
                history: old.training.history.into_iter().map(EpochStats::from).collect(),
                meta: old.training.meta,
            }
        }
        _ => decode_payload(payload, path)?,
    };
    // A plan that `fit` would refuse (or that would panic inside it) is no plan a
    // run writes: the file is damaged.
    checkpoint.options.validate().map_err(|e| IoError::Invalid {
        path: path.to_path_buf(),
        reason: format!("its training plan cannot be run: {e}"),
    })?;
    Ok(checkpoint)
}
