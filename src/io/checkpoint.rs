//! Training checkpoints: everything needed to continue a run exactly where it
//! stopped — the model (with batch-norm statistics and dropout counters), the
//! optimizer's state, the training plan and its position, and the history so far.
//!
//! There is no separate RNG state to save: shuffling and augmentation are drawn from
//! `(seed, epoch)` and dropout masks from each layer's `(seed, calls)`, all of which
//! are in here, so a resumed run draws what an uninterrupted one would have.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::format::{decode_payload, encode, open, read_limited, write_atomic, FileKind, IoError};
use super::legacy;
use super::model::ModelRecord;
use crate::optim::OptimizerState;
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

/// Saves a checkpoint atomically.
pub fn save_checkpoint(checkpoint: &Checkpoint, path: impl AsRef<Path>) -> Result<(), IoError> {
    write_atomic(path.as_ref(), &encode(checkpoint, FileKind::Checkpoint)?)
}

/// Loads a checkpoint saved by [`save_checkpoint`] (or by ferrocnn's first release).
pub fn load_checkpoint(path: impl AsRef<Path>) -> Result<Checkpoint, IoError> {
    let path = path.as_ref();
    let bytes = read_limited(path)?;
    let (version, payload) = open(&bytes, FileKind::Checkpoint, path)?;
    if version == 1 {
        let (model, old) = legacy::decode_checkpoint(payload, path)?;
        return Ok(Checkpoint {
            model: ModelRecord::of(&model),
            optimizer: old.optimizer,
            options: old.options,
            history: old.history,
            meta: old.meta,
        });
    }
    decode_payload(payload, path)
}
