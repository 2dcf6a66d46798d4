//! Whole-model files: the architecture by name and the weights by name, so a model
//! loads without code that rebuilds it — and a model of your own loads too, either
//! through a [`Registry`] that knows its kind or into an instance built in code.
//!
//! A [`ModelRecord`] is what a model file (format 2) holds:
//! - `architecture`: JSON, `{"format": 1, "model": {"kind": "Sequential",
//!   "children": [["conv1", {"kind": "Conv2d", "config": {…}}], …]}}` — each module
//!   by its kind name and settings, never by the position of an enum variant;
//! - `tensors`: the state dict (`conv1.weight`, `bn1.running_mean`, …);
//! - `frozen`: the names of frozen parameters;
//! - `extra_state`: per module, the counters that are neither parameter nor
//!   buffer (dropout's mask stream, batch norm's batch count), as JSON.
//!
//! The architecture JSON may also hold `"data"`: the [`DataSpec`] the model was
//! trained for (image shape, class names, normalisation).
//!
//! Loading checks what the file decodes to, not just its checksum: the architecture
//! must build, and its parameters and buffers must match the stored tensors name for
//! name and shape for shape, before anything is returned.

use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::data_spec::DataSpec;
use super::format::{decode_payload, encode, open, read_limited, write_atomic, FileKind, IoError};
use super::legacy;
use super::state_dict::{check_state_dict, LoadReport, StateDict};
use crate::nn::{ConfigError, Module, ModuleConfig, Registry, CONFIG_VERSION};

/// A model as stored: architecture, weights, frozen flags and extra state.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelRecord {
    /// The architecture as JSON (see the module docs).
    pub architecture: String,
    /// Every parameter and buffer by dotted name.
    pub tensors: StateDict,
    /// Dotted names of the frozen parameters.
    pub frozen: Vec<String>,
    /// `(module name, JSON)` for each module with extra state.
    pub extra_state: Vec<(String, String)>,
}

/// The `architecture` JSON: the config layout's version, the module tree and,
/// where known, the data the model was trained for.
#[derive(Serialize, Deserialize)]
struct Architecture {
    format: u32,
    model: ModuleConfig,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    data: Option<DataSpec>,
}

impl ModelRecord {
    /// Records `model` as it is now.
    pub fn of(model: &dyn Module) -> ModelRecord {
        let architecture = Architecture {
            format: CONFIG_VERSION,
            model: ModuleConfig::of(model),
            data: None,
        };
        ModelRecord {
            architecture: serde_json::to_string(&architecture).expect("a config is plain data"),
            tensors: model.state_dict(),
            frozen: model
                .named_parameters()
                .into_iter()
                .filter(|(_, p)| p.is_frozen())
                .map(|(n, _)| n)
                .collect(),
            extra_state: model
                .named_modules()
                .into_iter()
                .filter_map(|(n, m)| m.extra_state().map(|s| (n, s.to_string())))
                .collect(),
        }
    }

    /// The record with `spec` as the data the model was trained for.
    ///
    /// # Errors
    /// [`IoError::Invalid`] if the spec fails [`DataSpec::check`] or the stored
    /// architecture does not parse.
    pub fn with_data(mut self, spec: &DataSpec) -> Result<ModelRecord, IoError> {
        let invalid = |reason: String| IoError::Invalid {
            path: "model record".into(),
            reason,
        };
        spec.check().map_err(invalid)?;
        let mut architecture = self.architecture().map_err(|e| invalid(e.to_string()))?;
        architecture.data = Some(spec.clone());
        self.architecture = serde_json::to_string(&architecture).expect("a config is plain data");
        Ok(self)
    }

    /// The data the model was trained for, if the file says (files written before
    /// specs existed do not).
    ///
    /// # Errors
    /// A message naming the key for an architecture that does not parse or a spec
    /// that fails [`DataSpec::check`].
    pub fn data(&self) -> Result<Option<DataSpec>, ConfigError> {
        let spec = self.architecture()?.data;
        if let Some(spec) = &spec {
            spec.check().map_err(|e| ConfigError::invalid("model file", e))?;
        }
        Ok(spec)
    }

    /// The stored architecture.
    pub fn config(&self) -> Result<ModuleConfig, ConfigError> {
        Ok(self.architecture()?.model)
    }

    fn architecture(&self) -> Result<Architecture, ConfigError> {
        let invalid = |reason: String| ConfigError::invalid("model file", reason);
        let architecture: Architecture =
            serde_json::from_str(&self.architecture).map_err(|e| invalid(format!("architecture: {e}")))?;
        if architecture.format == 0 || architecture.format > CONFIG_VERSION {
            return Err(invalid(format!(
                "architecture format {} is not one this build reads (1 to {CONFIG_VERSION})",
                architecture.format
            )));
        }
        Ok(architecture)
    }

    /// Builds the stored model with `registry`'s constructors and loads its state.
    ///
    /// The built-in layers allocate no more than twice the values the record stores,
    /// and a million more (see [`Registry::with_budget`]): a few bytes of settings
    /// cannot claim gigabytes, while a layer a little off its weights is still
    /// reported by the weight that differs, the clearer message.
    pub fn build(&self, registry: &Registry) -> Result<Box<dyn Module>, String> {
        let config = self.config().map_err(|e| e.to_string())?;
        self.data().map_err(|e| e.to_string())?;
        let stored: usize = self.tensors.iter().map(|(_, t)| t.len()).sum();
        let registry = registry
            .clone()
            .with_budget(stored.saturating_mul(2).saturating_add(1 << 20));
        let mut model = registry.build(&config).map_err(|e| e.to_string())?;
        self.load_into(model.as_mut()).map_err(|e| e.to_string())?;
        Ok(model)
    }

    /// Loads the stored state (weights, buffers, frozen flags, extra state) into
    /// `model`, which must have exactly the stored parameters and buffers (PyTorch's
    /// strict `load_state_dict`). Nothing changes if an error is returned.
    pub fn load_into(&self, model: &mut dyn Module) -> Result<(), IoError> {
        // Everything that can fail is checked before `model` changes.
        check_state_dict(model, &self.tensors, true)?;
        let names: Vec<String> = model.named_parameters().into_iter().map(|(n, _)| n).collect();
        if let Some(name) = self.frozen.iter().find(|n| !names.contains(n)) {
            return Err(IoError::KeyMismatch(format!(
                "frozen parameter {name:?} is not in the model"
            )));
        }
        let modules: Vec<String> = model.named_modules().into_iter().map(|(n, _)| n).collect();
        let mut extra = Vec::new();
        for (name, json) in &self.extra_state {
            if !modules.contains(name) {
                return Err(IoError::KeyMismatch(format!(
                    "extra state for {name:?}, which is not in the model"
                )));
            }
            let value: Value = serde_json::from_str(json)
                .map_err(|e| IoError::KeyMismatch(format!("extra state of {name:?}: {e}")))?;
            extra.push((name.as_str(), value));
        }
        // A module may refuse its extra state: try it on a copy first (cheap: the
        // copy shares its weights with `model`).
        let set_extra = |m: &mut dyn Module| {
            let mut failed = None;
            m.visit_mut(&mut |name, m| {
                if let Some((_, value)) = extra.iter().find(|(n, _)| *n == name)
                    && let Err(e) = m.set_extra_state(value.clone())
                {
                    failed.get_or_insert(format!("extra state of {name:?}: {e}"));
                }
            });
            failed.map_or(Ok(()), |reason| Err(IoError::KeyMismatch(reason)))
        };
        set_extra(model.clone_module().as_mut())?;
        model.load_state_dict(&self.tensors, true)?;
        set_extra(model)?;
        for (name, param) in model.named_parameters_mut() {
            param.set_frozen(self.frozen.contains(&name));
        }
        Ok(())
    }
}

/// Saves a whole model — architecture and weights — atomically.
pub fn save_model(model: &dyn Module, path: impl AsRef<Path>) -> Result<(), IoError> {
    save_model_at(model, path.as_ref())
}

// Not generic: compiled once here, not again in every crate that calls it.
fn save_model_at(model: &dyn Module, path: &Path) -> Result<(), IoError> {
    write_atomic(path, &encode(&ModelRecord::of(model), FileKind::Model)?)
}

/// Saves a whole model with the data it was trained for ([`DataSpec`]: image
/// shape, class names, normalisation), so that [`load_model_and_data`] prepares
/// new images the same way.
///
/// # Errors
/// [`IoError::Invalid`] for a spec that fails [`DataSpec::check`]; write errors.
pub fn save_model_with_data(
    model: &dyn Module,
    spec: &DataSpec,
    path: impl AsRef<Path>,
) -> Result<(), IoError> {
    save_model_with_data_at(model, spec, path.as_ref())
}

// Not generic: compiled once here, not again in every crate that calls it.
fn save_model_with_data_at(model: &dyn Module, spec: &DataSpec, path: &Path) -> Result<(), IoError> {
    let record = ModelRecord::of(model).with_data(spec).map_err(|e| match e {
        IoError::Invalid { reason, .. } => IoError::Invalid {
            path: path.to_path_buf(),
            reason,
        },
        e => e,
    })?;
    write_atomic(path, &encode(&record, FileKind::Model)?)
}

/// Loads a model and the data it was trained for, `None` for a file saved without
/// it (see [`DataSpec::mnist`] for what those were trained on).
pub fn load_model_and_data(path: impl AsRef<Path>) -> Result<(Box<dyn Module>, Option<DataSpec>), IoError> {
    load_model_and_data_at(path.as_ref())
}

// Not generic: compiled once here, not again in every crate that calls it.
fn load_model_and_data_at(path: &Path) -> Result<(Box<dyn Module>, Option<DataSpec>), IoError> {
    let invalid = |reason: String| IoError::Invalid {
        path: path.to_path_buf(),
        reason,
    };
    let record = read_model_record(path)?;
    let model = record.build(&Registry::new()).map_err(invalid)?;
    let spec = record.data().map_err(|e| invalid(e.to_string()))?;
    Ok((model, spec))
}

/// Reads the record of a model file (format 2, or format 1 converted).
pub fn read_model_record(path: impl AsRef<Path>) -> Result<ModelRecord, IoError> {
    read_model_record_at(path.as_ref())
}

// Not generic: compiled once here, not again in every crate that calls it.
fn read_model_record_at(path: &Path) -> Result<ModelRecord, IoError> {
    let bytes = read_limited(path)?;
    let (version, payload) = open(&bytes, FileKind::Model, path)?;
    match version {
        1 => Ok(ModelRecord::of(&legacy::decode_model(payload, path)?)),
        _ => decode_payload(payload, path),
    }
}

/// Loads a model saved by [`save_model`] (or by ferrocnn's first release); no code
/// that rebuilds the net is needed for the built-in layers and containers.
pub fn load_model(path: impl AsRef<Path>) -> Result<Box<dyn Module>, IoError> {
    load_model_at(path.as_ref())
}

// Not generic: compiled once here, not again in every crate that calls it.
fn load_model_at(path: &Path) -> Result<Box<dyn Module>, IoError> {
    load_model_with(path, &Registry::new())
}

/// Loads a model whose architecture includes modules of your own, built by the
/// constructors `registry` knows (Keras's `custom_objects`).
pub fn load_model_with(path: impl AsRef<Path>, registry: &Registry) -> Result<Box<dyn Module>, IoError> {
    load_model_with_at(path.as_ref(), registry)
}

// Not generic: compiled once here, not again in every crate that calls it.
fn load_model_with_at(path: &Path, registry: &Registry) -> Result<Box<dyn Module>, IoError> {
    read_model_record(path)?
        .build(registry)
        .map_err(|reason| IoError::Invalid {
            path: path.to_path_buf(),
            reason,
        })
}

/// Loads the weights of the model file at `path` into `model` — built in code, the
/// PyTorch way — matching by name (`conv1.weight`). With `strict`, every name must
/// match both ways; without, names present on one side only are skipped and
/// reported. A shape mismatch is always an error naming the first parameter that
/// differs and both shapes. Nothing changes if an error is returned.
pub fn load_weights(
    model: &mut dyn Module,
    path: impl AsRef<Path>,
    strict: bool,
) -> Result<LoadReport, IoError> {
    load_weights_at(model, path.as_ref(), strict)
}

// Not generic: compiled once here, not again in every crate that calls it.
fn load_weights_at(model: &mut dyn Module, path: &Path, strict: bool) -> Result<LoadReport, IoError> {
    let record = read_model_record(path)?;
    if strict {
        record.load_into(model)?;
        return Ok(LoadReport::default());
    }
    model.load_state_dict(&record.tensors, false)
}
