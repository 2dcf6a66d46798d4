//! Weights in safetensors, the format PyTorch (`safetensors.torch.load_file`,
//! `save_file`) and numpy read and write directly, both ways. Names are the
//! state-dict names (`conv1.weight`) and layouts are PyTorch's (`[out, in, kh, kw]`,
//! `[out, in]`), so tensors move between a PyTorch module and a ferrocnn one of the
//! same architecture as they are, given a map where the names differ.

use std::collections::HashMap;
use std::path::Path;

use ndarray::{ArrayD, IxDyn};
use safetensors::tensor::{Dtype, TensorView};
use safetensors::SafeTensors;

use super::format::{read_at_most, write_atomic, IoError, MAX_PAYLOAD};
use super::state_dict::StateDict;
use crate::nn::Module;

/// Writes every parameter and buffer of `model` to a `.safetensors` file.
pub fn export_safetensors(model: &dyn Module, path: impl AsRef<Path>) -> Result<(), IoError> {
    export_safetensors_at(model, path.as_ref())
}

// Not generic: compiled once here, not again in every crate that calls it.
fn export_safetensors_at(model: &dyn Module, path: &Path) -> Result<(), IoError> {
    let state = model.state_dict();
    let bytes: Vec<(String, Vec<u8>, Vec<usize>)> = state
        .iter()
        .map(|(name, value)| {
            let data = value
                .as_standard_layout()
                .iter()
                .flat_map(|v| v.to_le_bytes())
                .collect();
            (name.clone(), data, value.shape().to_vec())
        })
        .collect();
    let views = bytes
        .iter()
        .map(|(name, data, shape)| {
            TensorView::new(Dtype::F32, shape.clone(), data)
                .map(|v| (name.clone(), v))
                .map_err(|e| IoError::Encode(e.to_string()))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let metadata = HashMap::from([("format".to_string(), "pt".to_string())]);
    let file = safetensors::serialize(views, Some(metadata)).map_err(|e| IoError::Encode(e.to_string()))?;
    write_atomic(path, &file)
}

/// Reads the f32 tensors of a `.safetensors` file as a state dict, sorted by name.
/// Files larger than [`MAX_PAYLOAD`] are refused (a device that never ends, such as
/// `/dev/zero`, after reading that much).
pub fn read_safetensors(path: impl AsRef<Path>) -> Result<StateDict, IoError> {
    read_safetensors_at(path.as_ref())
}

// Not generic: compiled once here, not again in every crate that calls it.
fn read_safetensors_at(path: &Path) -> Result<StateDict, IoError> {
    let bytes = read_at_most(path, MAX_PAYLOAD)?;
    let corrupt = |reason: String| IoError::Corrupt {
        path: path.to_path_buf(),
        reason,
    };
    let tensors = SafeTensors::deserialize(&bytes).map_err(|e| corrupt(e.to_string()))?;
    let mut names: Vec<String> = tensors.names().into_iter().map(str::to_string).collect();
    names.sort();
    names
        .into_iter()
        .map(|name| {
            let view = tensors.tensor(&name).map_err(|e| corrupt(e.to_string()))?;
            if view.dtype() != Dtype::F32 {
                return Err(corrupt(format!("{name} is {:?}, only F32 is read", view.dtype())));
            }
            let values: Vec<f32> = view
                .data()
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect();
            let array = ArrayD::from_shape_vec(IxDyn(view.shape()), values)
                .map_err(|e| corrupt(format!("{name}: {e}")))?;
            Ok((name, array))
        })
        .collect()
}

/// Loads weights PyTorch saved as safetensors
/// (`safetensors.torch.save_file(model.state_dict(), path)`) into `model`, a ferrocnn
/// module of the same architecture; returns the names of the integer tensors it
/// skipped (batch norm's `num_batches_tracked`).
///
/// `renames` maps the file's names to the model's: each name starting with a pair's
/// first prefix has it replaced by the second (the first pair that matches), e.g.
/// `&[("fc.", "fc1.")]` for a PyTorch `self.fc` that ferrocnn's `Sequential` calls
/// `fc1`. Names that match no pair are kept. `f64` tensors are narrowed to `f32`.
///
/// # Errors
/// Every parameter and buffer of the model must be in the file with its shape, and
/// every float tensor of the file must find a place in the model; otherwise an
/// [`IoError::Invalid`] names the file and the tensor, and the model is unchanged.
/// Those of [`read_safetensors`] for the file itself.
pub fn import_safetensors(
    model: &mut dyn Module,
    path: impl AsRef<Path>,
    renames: &[(&str, &str)],
) -> Result<Vec<String>, IoError> {
    import_safetensors_at(model, path.as_ref(), renames)
}

// Not generic: compiled once here, not again in every crate that calls it.
fn import_safetensors_at(
    model: &mut dyn Module,
    path: &Path,
    renames: &[(&str, &str)],
) -> Result<Vec<String>, IoError> {
    let bytes = read_at_most(path, MAX_PAYLOAD)?;
    let invalid = |reason: String| IoError::Invalid {
        path: path.to_path_buf(),
        reason,
    };
    let tensors = SafeTensors::deserialize(&bytes).map_err(|e| IoError::Corrupt {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    let (mut state, mut skipped): (StateDict, Vec<String>) = (Vec::new(), Vec::new());
    for (name, view) in tensors.tensors() {
        let values: Vec<f32> = match view.dtype() {
            Dtype::F32 => view
                .data()
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect(),
            Dtype::F64 => view
                .data()
                .chunks_exact(8)
                .map(|b| f64::from_le_bytes(b.try_into().expect("8 bytes")) as f32)
                .collect(),
            Dtype::I64 | Dtype::I32 | Dtype::I16 | Dtype::I8 | Dtype::U8 | Dtype::BOOL => {
                skipped.push(name);
                continue;
            }
            other => {
                return Err(invalid(format!(
                    "{name} is {other:?}; only F32 and F64 tensors are read"
                )))
            }
        };
        let array = ArrayD::from_shape_vec(IxDyn(view.shape()), values)
            .map_err(|e| invalid(format!("{name}: {e}")))?;
        let renamed = renames
            .iter()
            .find_map(|(from, to)| name.strip_prefix(from).map(|rest| format!("{to}{rest}")))
            .unwrap_or(name);
        state.push((renamed, array));
    }
    skipped.sort();
    model.load_state_dict(&state, true).map_err(|e| {
        let ours: Vec<String> = model.state_dict().into_iter().map(|(n, _)| n).collect();
        invalid(format!(
            "{e}; the model's tensors are {}; map differing names with `renames`",
            ours.join(", ")
        ))
    })?;
    Ok(skipped)
}
