//! ONNX export: a model built from the built-in layers and containers, as an
//! `.onnx` file that onnxruntime, tract or any ONNX runtime runs, and Netron draws.
//!
//! - `export.rs` walks the module tree and writes each layer as ONNX operators
//!   (opset [`OPSET`]), in evaluation mode, names kept;
//! - `proto.rs` holds the ONNX messages and their field numbers;
//! - `wire.rs` writes protobuf's wire format, by hand (no protobuf crate to build).
//!
//! The graph takes `input` `[N, C, H, W]`, the batch size left open, with the
//! pixels normalised as the model was trained on them (for MNIST,
//! `(p / 255 − 0.1307) / 0.3081`), and gives `logits` `[N, classes]`.

mod export;
mod proto;
mod wire;

use std::path::Path;

pub use export::EXPORTABLE_KINDS;

use super::format::{write_atomic, IoError};
use super::DataSpec;
use crate::nn::{Module, ModuleConfig};

/// The ONNX operator set the graph uses (the default domain's).
pub const OPSET: i64 = 17;
/// The ONNX IR version written (8: ONNX 1.10 and later read it).
pub const IR_VERSION: i64 = 8;

/// `model` as the bytes of an ONNX file, for inputs of `(channels, height, width)`
/// (any batch size).
///
/// ```
/// use ferrocnn::io::to_onnx_bytes;
/// use ferrocnn::nn::Module;
///
/// let model = ferrocnn::zoo::r1((1, 28, 28), 10, 0);
/// let bytes = to_onnx_bytes(&model, (1, 28, 28))?;
/// // The weights as raw f32s, and the graph around them.
/// assert!(bytes.len() > 4 * model.num_parameters());
/// # Ok::<(), ferrocnn::io::IoError>(())
/// ```
///
/// # Errors
/// [`IoError::NotExportable`] naming the module (by its dotted path) if the model
/// contains a module of a kind the exporter does not know (one of your own: see
/// [`EXPORTABLE_KINDS`]) or does not take inputs of that shape.
pub fn to_onnx_bytes(model: &dyn Module, input: (usize, usize, usize)) -> Result<Vec<u8>, IoError> {
    encode(model, input, None)
}

/// As [`to_onnx_bytes`] for the data `spec` describes: its image shape, and its
/// class names and normalisation in the file's metadata (`ferrocnn.classes`, a
/// JSON list; `ferrocnn.normalize`, `{"mean": […], "std": […]}` per channel), so
/// that a program running the graph can prepare inputs and name outputs.
///
/// # Errors
/// As [`to_onnx_bytes`].
pub fn to_onnx_bytes_with_data(model: &dyn Module, spec: &DataSpec) -> Result<Vec<u8>, IoError> {
    encode(model, spec.input, Some(spec))
}

fn encode(
    model: &dyn Module,
    input: (usize, usize, usize),
    spec: Option<&DataSpec>,
) -> Result<Vec<u8>, IoError> {
    let graph = export::graph(model, input)?;
    let architecture =
        serde_json::to_string(&ModuleConfig::of(model)).map_err(|e| IoError::Encode(e.to_string()))?;
    let model = proto::Model {
        ir_version: IR_VERSION,
        opset: OPSET,
        producer_name: "ferrocnn".into(),
        producer_version: env!("CARGO_PKG_VERSION").into(),
        doc_string: format!(
            "Exported by ferrocnn {} in evaluation mode: batch norm uses its running statistics, \
             dropout is left out. Input `{}` [N, C, H, W], normalised as in training; output `{}`.",
            env!("CARGO_PKG_VERSION"),
            export::INPUT,
            export::OUTPUT
        ),
        graph,
        // ferrocnn's own description of the model, for tools that want to rebuild
        // it (Netron shows it under the model's properties).
        metadata: vec![("ferrocnn.architecture".into(), architecture)],
    };
    let mut model = model;
    if let Some(spec) = spec {
        let json = |v: serde_json::Result<String>| v.map_err(|e| IoError::Encode(e.to_string()));
        model.metadata.push((
            "ferrocnn.classes".into(),
            json(serde_json::to_string(&spec.classes))?,
        ));
        model.metadata.push((
            "ferrocnn.normalize".into(),
            json(serde_json::to_string(&spec.normalize))?,
        ));
    }
    Ok(model.encode())
}

/// Writes `model` to `path` as an ONNX file (atomically, as every ferrocnn file),
/// for inputs of `(channels, height, width)` and any batch size. Open it in
/// onnxruntime, tract or Netron.
///
/// ```no_run
/// use ferrocnn::io::{export_onnx, load_model};
///
/// let model = load_model("models/mnist.bin")?;
/// export_onnx(model.as_ref(), (1, 28, 28), "mnist.onnx")?;
/// # Ok::<(), ferrocnn::io::IoError>(())
/// ```
///
/// # Errors
/// As [`to_onnx_bytes`], and [`IoError::Io`] if the file cannot be written.
pub fn export_onnx(
    model: &dyn Module,
    input: (usize, usize, usize),
    path: impl AsRef<Path>,
) -> Result<(), IoError> {
    export_onnx_at(model, input, path.as_ref())
}

// Not generic: compiled once here, not again in every crate that calls it.
fn export_onnx_at(model: &dyn Module, input: (usize, usize, usize), path: &Path) -> Result<(), IoError> {
    write_atomic(path, &to_onnx_bytes(model, input)?)
}
