//! Files: models, checkpoints, state dicts, and safetensors export.
//!
//! - [`save_model`]/[`load_model`]: a whole network, architecture and weights, so
//!   loading needs no code that rebuilds it.
//! - [`Sequential::state_dict`](crate::nn::Sequential::state_dict) and
//!   [`load_weights`]: weights by name into an existing architecture, strict or not
//!   (PyTorch's `load_state_dict`).
//! - [`Checkpoint`]: model + optimizer state + position, to resume training exactly.
//! - [`export_safetensors`]: weights for PyTorch or numpy.

mod checkpoint;
mod format;
mod model;
mod safetensors;
mod state_dict;

pub use checkpoint::{load_checkpoint, save_checkpoint, Checkpoint};
pub use format::{write_atomic, FileKind, IoError, FORMAT_VERSION, MAGIC, MAX_PAYLOAD};
pub use model::{load_model, load_weights, save_model};
pub use safetensors::{export_safetensors, read_safetensors};
pub use state_dict::{LoadReport, StateDict};
