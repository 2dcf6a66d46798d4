//! Layers and networks: the [`Module`] trait, the containers ([`Sequential`],
//! [`Residual`]), the built-in layers, initializers, regularizers, and the
//! [`Registry`] that rebuilds stored architectures.
//!
//! # Adding a layer
//!
//! Write `nn/my_layer.rs` with the struct, its `impl Module` (`forward`, `kind`,
//! `config`, its own parameters, `output_shape`) and its `impl FromConfig`, then
//! list it in the `layers!` block below: that one line declares the file, exports
//! the type and registers it, so model files can name it.

mod activations;
mod folded_weight;
mod footprint;
mod init;
mod module;
mod registry;
mod regularizer;
mod residual_fused;
mod shape;
mod summary;
mod transfer;

pub(crate) use module::join;
pub(crate) use summary::{trace, walk};

pub use crate::param::{Param, ParamId};
pub use activations::{activations, Activation};
pub use conv_block::conv_of;
pub use footprint::{footprint, Footprint};
pub use init::Init;
pub use module::{Mode, Module, ModuleBase};
pub use registry::{Builder, ConfigError, FromConfig, ModuleConfig, Registry, CONFIG_VERSION};
pub use regularizer::Regularizer;
pub use summary::{Summary, SummaryRow};

/// The built-in modules: each line names a file's types, exports them and registers
/// them with every [`Registry::new`].
macro_rules! layers {
    ($($file:ident :: {$($layer:ident),+}),+ $(,)?) => {
        $(
            mod $file;
            pub use $file::{$($layer),+};
        )+

        /// Registers every built-in module (called by [`Registry::new`]).
        pub(crate) fn register_builtins(registry: &mut Registry) {
            $($(registry.register::<$layer>();)+)+
        }
    };
}

layers! {
    activation::{ReLU, LeakyReLU, Sigmoid, Tanh, Flatten},
    batch_norm::{BatchNorm2d},
    conv::{Conv2d},
    conv_block::{Conv2dBlock},
    dropout::{Dropout},
    linear::{Linear},
    pool::{MaxPool2d, AvgPool2d, GlobalAvgPool},
    residual::{Residual},
    sequential::{Sequential},
}
