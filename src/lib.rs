//! # ferrocnn
//!
//! A small, fast, readable CNN framework: a tape-based reverse-mode autograd engine
//! on [`ndarray`] (f32, NCHW), the layers a convnet needs, optimizers, MNIST-style
//! data, and model files.
//!
//! One training step:
//!
//! ```
//! use ferrocnn::{Param, Tape};
//! use ndarray::{array, Array2};
//!
//! // A linear classifier, weights [out, in] as in PyTorch.
//! let mut w = Param::new(Array2::<f32>::zeros((3, 2)).into_dyn());
//! let x = array![[1.0f32, 2.0], [0.5, -1.0]].into_dyn();
//! let labels = [2, 0];
//!
//! let tape = Tape::new();                       // records one forward pass
//! let logits = tape.input(x).linear(&tape.param(&w), None);
//! let loss = logits.cross_entropy(&labels);     // ln 3 for all-zero logits
//! assert!((loss.item() - 3f32.ln()).abs() < 1e-6);
//!
//! let grads = loss.backward();                  // one reverse sweep
//! let g = grads[&w].clone();
//! w.value_mut().scaled_add(-0.1, &g);           // a plain SGD step
//! ```
//!
//! Inference records nothing: build the input with [`Tensor::new`] (on no tape) and
//! every intermediate value is freed as soon as it is used.
//!
//! Networks are [`nn::Module`]s: built-in layers, the containers
//! [`nn::Sequential`] and [`nn::Residual`], or your own struct with a `forward`.
//! Whatever the module, [`train::fit`] trains it, [`io::save_model`] stores it by
//! name, [`nn::Module::summary`] tabulates it and [`viz`] draws what its
//! convolutions learned. The README's "Extending ferrocnn" says which files an
//! op, a layer or a model touches.

pub mod data;
pub mod gradcheck;
pub mod io;
pub mod metrics;
pub mod nn;
mod observe;
pub mod ops;
pub mod optim;
mod param;
pub mod profile;
pub mod runtime;
mod tape;
mod tensor;
pub mod train;
pub mod viz;
pub mod zoo;

pub use gradcheck::GradCheck;
pub use ops::{Conv2dOptions, ConvAlgorithm, ConvEpilogue, Padding, PoolWindow};
pub use optim::{
    Adam, AdamConfig, AdamW, AdamWConfig, LrSchedule, OptimError, Optimizer, OptimizerState, SGDConfig, SGD,
};
pub use param::{Param, ParamId};
pub use tape::{Gradients, Tape};
pub use tensor::Tensor;

/// The JSON crate a module's [`config`](nn::Module::config) is written in, for
/// modules of your own.
pub use serde_json;

/// The README's code blocks, compiled and run as doc tests.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
