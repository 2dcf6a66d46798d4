//! Export of a network's weights as safetensors, the format PyTorch
//! (`safetensors.torch.load_file`) and numpy (`safetensors.numpy.load_file`) read
//! directly. Names are the state-dict names (`conv1.weight`) and layouts are
//! PyTorch's (`[out, in, kh, kw]`, `[out, in]`), so the tensors drop into a PyTorch
//! module with the same names.

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
    let path = path.as_ref();
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
    let path = path.as_ref();
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
