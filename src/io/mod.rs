//! Files: models, checkpoints, state dicts, and safetensors and ONNX export.
//!
//! - [`save_model`]/[`load_model`]: a whole model, architecture by name and weights
//!   by name, so loading needs no code that rebuilds it; [`load_model_with`] for
//!   architectures with modules of your own (registered in a
//!   [`Registry`](crate::nn::Registry)).
//! - [`load_weights`] and [`Module::load_state_dict`](crate::nn::Module::load_state_dict):
//!   weights by name into a model built in code, strict or not (PyTorch's way).
//! - [`save_model_with_data`]/[`load_model_and_data`]: the same, with the
//!   [`DataSpec`] the model was trained for (class names, normalisation).
//! - [`Checkpoint`]: model + optimizer state + position, to resume training exactly.
//! - [`export_safetensors`]: weights for PyTorch or numpy.
//! - [`export_onnx`]: the whole model as ONNX, for onnxruntime, tract or Netron.

mod checkpoint;
mod data_spec;
mod format;
mod legacy;
mod legacy_training;
mod model;
pub mod onnx;
mod safetensors;
pub(crate) mod state_dict;

pub use checkpoint::{load_checkpoint, save_checkpoint, Checkpoint, Restored};
pub use data_spec::DataSpec;
pub use format::{write_atomic, FileKind, IoError, FORMAT_VERSION, MAGIC, MAX_PAYLOAD};
pub use model::{
    load_model, load_model_and_data, load_model_with, load_weights, read_model_record, save_model,
    save_model_with_data, ModelRecord,
};
pub use onnx::{export_onnx, to_onnx_bytes, to_onnx_bytes_with_data};
pub use safetensors::{export_safetensors, import_safetensors, read_safetensors};
pub use state_dict::{LoadReport, StateDict};
