//! State dicts: every parameter and buffer of a module tree by dotted name, module
//! by module (own parameters, then own buffers) — PyTorch's `state_dict()` — and
//! loading one into an architecture.

use ndarray::ArrayD;

use super::format::IoError;
use crate::nn::{join, Module};

/// Named tensors in module order: `conv1.weight`, `conv1.bias`, `bn1.weight`, …,
/// `bn1.running_mean`, …
pub type StateDict = Vec<(String, ArrayD<f32>)>;

/// What a non-strict load skipped.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LoadReport {
    /// Names the model has but the state dict lacks (left unchanged).
    pub missing: Vec<String>,
    /// Names the state dict has but the model lacks (ignored).
    pub unexpected: Vec<String>,
}

/// Calls `f(dotted name, value)` on every parameter and buffer of `model`, in
/// state-dict order: by module, its own parameters, then its own buffers.
fn for_each_tensor(model: &dyn Module, mut f: impl FnMut(String, &ArrayD<f32>)) {
    for (prefix, module) in model.named_modules() {
        for (n, p) in module.own_parameters() {
            f(join(&prefix, &n), p.value());
        }
        for (n, b) in module.own_buffers() {
            f(join(&prefix, &n), &b);
        }
    }
}

/// The body of [`Module::state_dict`].
pub(crate) fn state_dict(model: &dyn Module) -> StateDict {
    let mut out = Vec::new();
    for_each_tensor(model, |name, value| out.push((name, value.clone())));
    out
}

/// Every parameter and buffer name of `model` with its shape, in state-dict order,
/// without copying a weight.
fn names_and_shapes(model: &dyn Module) -> Vec<(String, Vec<usize>)> {
    let mut out = Vec::new();
    for_each_tensor(model, |name, value| out.push((name, value.shape().to_vec())));
    out
}

/// Checks `state` against `model` (shapes always; with `strict`, the set of names)
/// and says what a non-strict load would skip. Changes nothing.
pub(crate) fn check_state_dict(
    model: &dyn Module,
    state: &StateDict,
    strict: bool,
) -> Result<LoadReport, IoError> {
    let ours = names_and_shapes(model);
    let mut report = LoadReport::default();
    for (name, shape) in &ours {
        match state.iter().find(|(n, _)| n == name) {
            Some((_, v)) if v.shape() != shape.as_slice() => {
                return Err(IoError::ShapeMismatch {
                    name: name.clone(),
                    found: v.shape().to_vec(),
                    expected: shape.clone(),
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
    Ok(report)
}

/// The body of [`Module::load_state_dict`].
pub(crate) fn load_state_dict(
    model: &mut dyn Module,
    state: &StateDict,
    strict: bool,
) -> Result<LoadReport, IoError> {
    let report = check_state_dict(model, state, strict)?;
    let find = |name: &str| state.iter().find(|(n, _)| n == name).map(|(_, v)| v);
    // Checked: now apply.
    for (name, param) in model.named_parameters_mut() {
        if let Some(v) = find(&name) {
            param.set_value(v.clone());
        }
    }
    let mut failed = None;
    model.visit_mut(&mut |prefix, module| {
        for (n, _) in module.own_buffers() {
            let full = join(prefix, &n);
            if let Some(v) = find(&full)
                && let Err(e) = module.set_own_buffer(&n, v.clone())
            {
                failed.get_or_insert(format!("{full}: {e}"));
            }
        }
    });
    match failed {
        // Shapes were checked, so only a module that refuses its own buffer's shape
        // gets here.
        Some(reason) => Err(IoError::KeyMismatch(reason)),
        None => Ok(report),
    }
}
