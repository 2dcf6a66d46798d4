//! Whole-model files, and loading a file's weights into an existing architecture.

use std::path::Path;

use super::format::{decode, encode, read_limited, write_atomic, FileKind, IoError};
use super::state_dict::LoadReport;
use crate::nn::Sequential;

/// Saves a whole model — architecture and weights — atomically.
pub fn save_model(model: &Sequential, path: impl AsRef<Path>) -> Result<(), IoError> {
    write_atomic(path.as_ref(), &encode(model, FileKind::Model)?)
}

/// Loads a model saved by [`save_model`]; no code that rebuilds the net is needed.
pub fn load_model(path: impl AsRef<Path>) -> Result<Sequential, IoError> {
    let path = path.as_ref();
    let bytes = read_limited(path)?;
    decode(&bytes, FileKind::Model, path)
}

/// Loads the weights of the model file at `path` into `model`, matching by name
/// (`conv1.weight`). With `strict`, every name must match both ways; without, names
/// present on one side only are skipped and reported. A shape mismatch is always an
/// error naming the first parameter that differs and both shapes.
pub fn load_weights(
    model: &mut Sequential,
    path: impl AsRef<Path>,
    strict: bool,
) -> Result<LoadReport, IoError> {
    let source = load_model(path)?;
    model.load_state_dict(&source.state_dict(), strict)
}
