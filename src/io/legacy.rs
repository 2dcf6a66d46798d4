//! Reading format 1: the files of ferrocnn's first release, which stored a
//! `Sequential` whose layers were a closed enum, encoded by bincode in the order of
//! its variants and fields.
//!
//! The types below mirror that layout exactly and are frozen: they are the format's
//! definition, kept apart from the live layer types (which may change freely), and
//! converted to them once decoded. Never reorder or edit them.

use std::path::Path;

use ndarray::{Array1, ArrayD};
use serde::Deserialize;

use super::format::{decode_payload, IoError};
use super::legacy_training as training;
use crate::nn;

#[derive(Deserialize)]
struct Sequential {
    layers: Vec<(String, Layer)>,
}

/// The built-in layers of format 1, in their order then.
#[derive(Deserialize)]
#[allow(clippy::large_enum_variant)]
enum Layer {
    Conv2d(Conv2d),
    Linear(Linear),
    MaxPool2d(Window),
    AvgPool2d(AvgPool2d),
    GlobalAvgPool(Unit),
    BatchNorm2d(BatchNorm2d),
    ReLU(Unit),
    LeakyReLU(LeakyReLU),
    Sigmoid(Unit),
    Tanh(Unit),
    Flatten(Unit),
    Dropout(Dropout),
}

#[derive(Deserialize)]
struct Param {
    value: ArrayD<f32>,
    frozen: bool,
}

#[derive(Deserialize)]
struct Unit;

#[derive(Deserialize)]
enum Padding {
    Valid,
    Same,
    Explicit(usize, usize),
}

#[derive(Deserialize)]
enum Regularizer {
    L2(f32),
    L1(f32),
    L1L2(f32, f32),
}

#[derive(Deserialize)]
struct Conv2dOptions {
    stride: (usize, usize),
    padding: Padding,
    dilation: (usize, usize),
}

#[derive(Deserialize)]
struct Conv2d {
    weight: Param,
    bias: Option<Param>,
    options: Conv2dOptions,
    regularizer: Option<Regularizer>,
}

#[derive(Deserialize)]
struct Linear {
    weight: Param,
    bias: Option<Param>,
    regularizer: Option<Regularizer>,
}

#[derive(Deserialize)]
struct Window {
    kernel: (usize, usize),
    stride: (usize, usize),
    padding: Padding,
}

#[derive(Deserialize)]
struct AvgPool2d {
    kernel: (usize, usize),
    stride: (usize, usize),
    padding: Padding,
    count_include_pad: bool,
}

#[derive(Deserialize)]
struct BatchNorm2d {
    weight: Param,
    bias: Param,
    running_mean: Array1<f32>,
    running_var: Array1<f32>,
    num_batches_tracked: u64,
    momentum: f32,
    eps: f32,
}

#[derive(Deserialize)]
struct LeakyReLU {
    negative_slope: f32,
}

#[derive(Deserialize)]
struct Dropout {
    p: f32,
    seed: u64,
    calls: u64,
}

/// A format-1 checkpoint: its training parts kept their layout in format 2
/// (`legacy_training`).
#[derive(Deserialize)]
pub(crate) struct Checkpoint {
    model: Sequential,
    pub optimizer: training::Optimizer,
    pub options: training::Options,
    pub history: Vec<training::Epoch>,
    pub meta: std::collections::BTreeMap<String, String>,
}

/// Decodes a format-1 model payload into today's modules.
pub(crate) fn decode_model(payload: &[u8], path: &Path) -> Result<nn::Sequential, IoError> {
    let model: Sequential = decode_payload(payload, path)?;
    convert(model, path)
}

/// Decodes a format-1 checkpoint payload: its model, converted, and the rest.
pub(crate) fn decode_checkpoint(
    payload: &[u8],
    path: &Path,
) -> Result<(nn::Sequential, Checkpoint), IoError> {
    let mut checkpoint: Checkpoint = decode_payload(payload, path)?;
    let model = std::mem::replace(&mut checkpoint.model, Sequential { layers: Vec::new() });
    Ok((convert(model, path)?, checkpoint))
}

fn convert(model: Sequential, path: &Path) -> Result<nn::Sequential, IoError> {
    let mut net = nn::Sequential::new();
    for (name, layer) in model.layers {
        if name.is_empty() || name.contains('.') || net.get(&name).is_some() {
            return Err(IoError::Corrupt {
                path: path.to_path_buf(),
                reason: format!("layer name {name:?} is empty, has a dot or is repeated"),
            });
        }
        let module: Box<dyn nn::Module> = match layer {
            // Settings format 1 did not have (the algorithm) keep their defaults.
            Layer::Conv2d(c) => Box::new(nn::Conv2d {
                weight: c.weight.into(),
                bias: c.bias.map(Into::into),
                options: crate::ops::Conv2dOptions {
                    stride: c.options.stride,
                    padding: c.options.padding.into(),
                    dilation: c.options.dilation,
                    ..Default::default()
                },
                regularizer: c.regularizer.map(Into::into),
                init: nn::Init::KaimingUniform,
                kernels: Default::default(),
                folded: Default::default(),
            }),
            Layer::Linear(l) => Box::new(nn::Linear::from_parts(
                l.weight.into(),
                l.bias.map(Into::into),
                l.regularizer.map(Into::into),
                nn::Init::KaimingUniform,
            )),
            Layer::MaxPool2d(w) => Box::new(nn::MaxPool2d {
                kernel: w.kernel,
                stride: w.stride,
                padding: w.padding.into(),
            }),
            Layer::AvgPool2d(a) => Box::new(nn::AvgPool2d {
                kernel: a.kernel,
                stride: a.stride,
                padding: a.padding.into(),
                count_include_pad: a.count_include_pad,
            }),
            Layer::GlobalAvgPool(_) => Box::new(nn::GlobalAvgPool),
            Layer::BatchNorm2d(b) => Box::new(nn::BatchNorm2d {
                weight: b.weight.into(),
                bias: b.bias.into(),
                running_mean: b.running_mean,
                running_var: b.running_var,
                num_batches_tracked: b.num_batches_tracked,
                momentum: b.momentum,
                eps: b.eps,
            }),
            Layer::ReLU(_) => Box::new(nn::ReLU),
            Layer::LeakyReLU(l) => Box::new(nn::LeakyReLU {
                negative_slope: l.negative_slope,
            }),
            Layer::Sigmoid(_) => Box::new(nn::Sigmoid),
            Layer::Tanh(_) => Box::new(nn::Tanh),
            Layer::Flatten(_) => Box::new(nn::Flatten),
            Layer::Dropout(d) => Box::new(nn::Dropout {
                p: d.p,
                seed: d.seed,
                calls: d.calls,
            }),
        };
        net.push_named_boxed(&name, module);
    }
    Ok(net)
}

impl From<Param> for nn::Param {
    fn from(p: Param) -> nn::Param {
        let mut param = nn::Param::new(p.value);
        param.set_frozen(p.frozen);
        param
    }
}

impl From<Padding> for crate::ops::Padding {
    fn from(p: Padding) -> Self {
        match p {
            Padding::Valid => crate::ops::Padding::Valid,
            Padding::Same => crate::ops::Padding::Same,
            Padding::Explicit(r, c) => crate::ops::Padding::Explicit(r, c),
        }
    }
}

impl From<Regularizer> for nn::Regularizer {
    fn from(r: Regularizer) -> Self {
        match r {
            Regularizer::L2(l) => nn::Regularizer::L2(l),
            Regularizer::L1(l) => nn::Regularizer::L1(l),
            Regularizer::L1L2(a, b) => nn::Regularizer::L1L2(a, b),
        }
    }
}
