//! State dicts: every parameter and buffer of a network by dotted name, in layer
//! order — PyTorch's `state_dict()` — and loading one into an architecture.

use ndarray::ArrayD;

use super::format::IoError;
use crate::nn::{Layer, Sequential};

/// Named tensors in layer order: `conv1.weight`, `conv1.bias`, `bn1.running_mean`, …
pub type StateDict = Vec<(String, ArrayD<f32>)>;

/// What a non-strict load skipped.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LoadReport {
    /// Names the model has but the state dict lacks (left unchanged).
    pub missing: Vec<String>,
    /// Names the state dict has but the model lacks (ignored).
    pub unexpected: Vec<String>,
}

impl Sequential {
    /// Every parameter and buffer by name, as PyTorch's `state_dict()` (batch norm's
    /// `num_batches_tracked` is left out: it does not change what the net computes).
    pub fn state_dict(&self) -> StateDict {
        let mut out = Vec::new();
        for (name, layer) in self.layers() {
            for (p, param) in layer.as_module().named_parameters() {
                out.push((format!("{name}.{p}"), param.value().clone()));
            }
            if let Layer::BatchNorm2d(bn) = layer {
                out.push((format!("{name}.running_mean"), bn.running_mean.clone().into_dyn()));
                out.push((format!("{name}.running_var"), bn.running_var.clone().into_dyn()));
            }
        }
        out
    }

    /// Loads tensors by name. Shapes must match exactly; with `strict`, so must the
    /// set of names. Nothing is changed if an error is returned.
    pub fn load_state_dict(&mut self, state: &StateDict, strict: bool) -> Result<LoadReport, IoError> {
        let ours = self.state_dict();
        let find = |name: &str| state.iter().find(|(n, _)| n == name).map(|(_, v)| v);
        let mut report = LoadReport::default();
        for (name, value) in &ours {
            match find(name) {
                Some(v) if v.shape() != value.shape() => {
                    return Err(IoError::ShapeMismatch {
                        name: name.clone(),
                        found: v.shape().to_vec(),
                        expected: value.shape().to_vec(),
                    })
                }
                Some(_) => {}
                None => report.missing.push(name.clone()),
            }
        }
        report.unexpected = state
            .iter()
            .filter(|(n, _)| !ours.iter().any(|(o, _)| o == n))
            .map(|(n, _)| n.clone())
            .collect();
        if strict && (!report.missing.is_empty() || !report.unexpected.is_empty()) {
            return Err(IoError::KeyMismatch(format!(
                "strict load: missing from the file: {:?}; not in the model: {:?}",
                report.missing, report.unexpected
            )));
        }
        // Validated: now apply.
        for (name, layer) in self.layers_mut() {
            for (p, param) in layer.as_module_mut().named_parameters_mut() {
                if let Some(v) = find(&format!("{name}.{p}")) {
                    param.set_value(v.clone());
                }
            }
            if let Layer::BatchNorm2d(bn) = layer {
                let vector = |v: &ArrayD<f32>| v.clone().into_shape_with_order(v.len()).ok();
                if let Some(v) = find(&format!("{name}.running_mean")).and_then(vector) {
                    bn.running_mean = v;
                }
                if let Some(v) = find(&format!("{name}.running_var")).and_then(vector) {
                    bn.running_var = v;
                }
            }
        }
        Ok(report)
    }
}
