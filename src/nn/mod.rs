//! Layers and networks: the [`Module`] trait, [`Sequential`], the built-in layers,
//! initializers and regularizers.

mod activation;
mod batch_norm;
mod conv;
mod dropout;
mod init;
mod linear;
mod module;
mod pool;
mod regularizer;
mod sequential;
mod shape_check;
mod summary;
mod transfer;

pub use crate::param::{Param, ParamId};
pub use activation::{Flatten, LeakyReLU, ReLU, Sigmoid, Tanh};
pub use batch_norm::BatchNorm2d;
pub use conv::Conv2d;
pub use dropout::Dropout;
pub use init::Init;
pub use linear::Linear;
pub use module::{Mode, Module};
pub use pool::{AvgPool2d, GlobalAvgPool, MaxPool2d};
pub use regularizer::Regularizer;
pub use sequential::{Layer, Sequential};
pub use summary::{Summary, SummaryRow};
