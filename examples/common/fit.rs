//! Does a model fit a dataset? The checks an example makes before it evaluates or
//! trains, so that a model trained on other images or other classes is an error
//! naming the model file, the data and what to do — not a panic deep in a layer or
//! in the loss.

use std::fmt;
use std::path::{Path, PathBuf};

use ferrocnn::data::Dataset;
use ferrocnn::nn::{footprint, Module};

/// The most memory the examples let a batch take: more than a laptop has. A model
/// that needs more has damaged settings (a padding of 100 000 is a few bytes in a
/// file) or was made for far larger images; running it would abort when the
/// allocation fails.
pub const MAX_BATCH_BYTES: usize = 16 << 30;

/// Why a model does not fit a dataset.
#[derive(Debug)]
pub enum Mismatch {
    /// A layer cannot take the data's images (size or channels).
    Images {
        /// The model file.
        model: PathBuf,
        /// The dataset (folder or image file).
        data: PathBuf,
        /// The images' `(channels, height, width)`.
        shape: (usize, usize, usize),
        /// The first layer that refuses them, and why.
        reason: String,
    },
    /// The model's output for one image is not a vector of class scores.
    NotPerClass {
        /// The model file.
        model: PathBuf,
        /// Its output shape for one image.
        output: Vec<usize>,
    },
    /// A batch would need more memory than [`MAX_BATCH_BYTES`].
    TooLarge {
        /// The model file.
        model: PathBuf,
        /// The images' `(channels, height, width)`.
        shape: (usize, usize, usize),
        /// Images per batch.
        batch: usize,
        /// Bytes the batch would need.
        bytes: usize,
        /// The layer that holds the most, and its values per image.
        largest: (String, usize),
    },
    /// A label is not below the model's number of outputs.
    Labels {
        /// The label file.
        labels: PathBuf,
        /// The largest label in it.
        max_label: usize,
        /// The model file.
        model: PathBuf,
        /// The model's number of outputs.
        outputs: usize,
    },
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Mismatch::Images {
                model,
                data,
                shape: (c, h, w),
                reason,
            } => write!(
                f,
                "the model {} does not take the {c}×{h}×{w} images of {}: {reason}; \
                 use images like the ones it was trained on",
                model.display(),
                data.display()
            ),
            Mismatch::TooLarge {
                model,
                shape: (c, h, w),
                batch,
                bytes,
                largest: (layer, values),
            } => write!(
                f,
                "the model {} would need {:.1} GB for a batch of {batch} {c}×{h}×{w} images \
                 ({layer} alone holds {values} values per image), more than the {} GB allowed: \
                 its settings look damaged, or it was made for far larger images",
                model.display(),
                *bytes as f64 / 1e9,
                MAX_BATCH_BYTES >> 30
            ),
            Mismatch::NotPerClass { model, output } => write!(
                f,
                "the model {} outputs {output:?} per image, not one score per class",
                model.display()
            ),
            Mismatch::Labels {
                labels,
                max_label,
                model,
                outputs,
            } => write!(
                f,
                "{}: labels go up to {max_label}, but the model {} has {outputs} outputs \
                 (classes 0 to {}); use data labelled below {outputs}, or fine-tune the \
                 model for these classes (the finetune example, --task same)",
                labels.display(),
                model.display(),
                outputs.saturating_sub(1)
            ),
        }
    }
}

impl std::error::Error for Mismatch {}

/// The model's number of outputs for the images of `data`, after checking that it
/// takes them and gives one score per class. `model_path` and `data_path` are for
/// the message.
pub fn outputs_for(
    model: &dyn Module,
    model_path: &Path,
    data: &Dataset,
    data_path: &Path,
) -> Result<usize, Mismatch> {
    let (c, h, w) = data.image_shape();
    let output = model
        .output_shape(&[c, h, w])
        .map_err(|reason| Mismatch::Images {
            model: model_path.to_path_buf(),
            data: data_path.to_path_buf(),
            shape: (c, h, w),
            reason,
        })?;
    match output[..] {
        [outputs] if outputs > 0 => Ok(outputs),
        _ => Err(Mismatch::NotPerClass {
            model: model_path.to_path_buf(),
            output,
        }),
    }
}

/// Checks that a batch of `batch` images of `shape` fits in [`MAX_BATCH_BYTES`],
/// from the model's shapes alone (nothing runs): counting every layer's output when
/// `training` (the tape keeps them all), the largest layer otherwise.
pub fn check_memory(
    model: &dyn Module,
    model_path: &Path,
    (c, h, w): (usize, usize, usize),
    batch: usize,
    training: bool,
) -> Result<(), Box<dyn std::error::Error>> {
    let f = footprint(model, &[c, h, w])?;
    let per_image = if training { f.total } else { f.largest };
    let bytes = per_image
        .saturating_mul(batch)
        .saturating_mul(std::mem::size_of::<f32>());
    if bytes > MAX_BATCH_BYTES {
        let layer = if f.largest_at.is_empty() {
            "the model".to_string()
        } else {
            f.largest_at
        };
        return Err(Mismatch::TooLarge {
            model: model_path.to_path_buf(),
            shape: (c, h, w),
            batch,
            bytes,
            largest: (layer, f.largest),
        }
        .into());
    }
    Ok(())
}

/// Checks that every label of `data` (read from `labels_path`) is below `outputs`.
pub fn check_labels(
    data: &Dataset,
    labels_path: &Path,
    model_path: &Path,
    outputs: usize,
) -> Result<(), Mismatch> {
    match data.labels().iter().max() {
        Some(&max_label) if max_label >= outputs => Err(Mismatch::Labels {
            labels: labels_path.to_path_buf(),
            max_label,
            model: model_path.to_path_buf(),
            outputs,
        }),
        _ => Ok(()),
    }
}

/// The weights and buffers (batch-norm statistics) holding NaN or infinite values,
/// with how many: a model saved from a run that diverged, or a damaged one whose
/// checksum was recomputed. Empty for a healthy model.
pub fn non_finite_tensors(model: &dyn Module) -> Vec<(String, usize)> {
    model
        .state_dict()
        .into_iter()
        .map(|(name, v)| (name, v.iter().filter(|v| !v.is_finite()).count()))
        .filter(|(_, bad)| *bad > 0)
        .collect()
}

/// `conv1.weight (3 values), fc1.bias (1 value)`.
pub fn describe_tensors(bad: &[(String, usize)]) -> String {
    bad.iter()
        .map(|(name, n)| format!("{name} ({n} value{})", if *n == 1 { "" } else { "s" }))
        .collect::<Vec<_>>()
        .join(", ")
}
