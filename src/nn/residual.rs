//! `Residual`: a main branch plus a shortcut, added — the block of a ResNet.

use serde_json::{json, Value};

use super::registry::{ConfigError, FromConfig, ModuleConfig, Registry};
use super::{Mode, Module};
use crate::observe::{child_output, Probe};
use crate::tensor::Tensor;

/// `main(x) + shortcut(x)`, optionally followed by ReLU: a residual block. The
/// shortcut is the identity unless a projection is given (typically a 1×1 conv with
/// the block's stride, then batch norm, when the block changes the shape).
///
/// When both branches are chains of `Conv2d → BatchNorm2d (→ ReLU)` (a ResNet basic
/// block, as [`zoo::basic_block`](crate::zoo::basic_block) builds), the block runs
/// them through fused ops: in training each batch norm takes the ReLU after it, and
/// the main branch's last one the addition and the final ReLU, with the values and
/// gradients of the layers, bit for bit; in inference (no tape, evaluation mode) the
/// batch norms are folded into the convolutions, equal to the layers within 1e-5.
/// The layers, their names and the model file stay the same.
///
/// # Shapes
/// `main` and the shortcut must produce the same shape; the block outputs it.
/// Parameter names: `main.…` and `shortcut.…`.
///
/// ```
/// use ferrocnn::nn::{BatchNorm2d, Conv2d, Mode, Module, ReLU, Residual, Sequential};
/// use ferrocnn::{Padding, Tensor};
/// use ndarray::Array4;
/// use rand::SeedableRng;
///
/// let rng = &mut rand::rngs::StdRng::seed_from_u64(0);
/// // A ResNet basic block, 8 → 16 channels at stride 2.
/// let main = Sequential::new()
///     .add(Conv2d::new(8, 16, (3, 3), rng).with_stride((2, 2)).with_padding(Padding::Explicit(1, 1)).without_bias())
///     .add(BatchNorm2d::new(16))
///     .add(ReLU)
///     .add(Conv2d::new(16, 16, (3, 3), rng).with_padding(Padding::Explicit(1, 1)).without_bias())
///     .add(BatchNorm2d::new(16));
/// let projection = Sequential::new()
///     .add(Conv2d::new(8, 16, (1, 1), rng).with_stride((2, 2)).without_bias())
///     .add(BatchNorm2d::new(16));
/// let mut block = Residual::new(main).with_projection(projection).with_relu();
/// let y = block.forward(&Tensor::new(Array4::<f32>::ones((2, 8, 14, 14)).into_dyn()), Mode::Train);
/// assert_eq!(y.shape(), &[2, 16, 7, 7]);
/// assert_eq!(block.named_parameters()[0].0, "main.conv1.weight");
/// ```
#[derive(Clone, Debug)]
pub struct Residual {
    /// The main branch.
    pub main: Box<dyn Module>,
    /// The projection shortcut; `None` is the identity.
    pub shortcut: Option<Box<dyn Module>>,
    /// Apply ReLU after the addition (as a ResNet basic block does).
    pub relu: bool,
}

impl Residual {
    /// `main(x) + x`.
    pub fn new(main: impl Module) -> Self {
        Residual {
            main: Box::new(main),
            shortcut: None,
            relu: false,
        }
    }

    /// Uses `shortcut(x)` instead of `x` as the shortcut.
    pub fn with_projection(mut self, shortcut: impl Module) -> Self {
        self.shortcut = Some(Box::new(shortcut));
        self
    }

    /// Applies ReLU after the addition.
    pub fn with_relu(mut self) -> Self {
        self.relu = true;
        self
    }
}

impl Module for Residual {
    fn forward(&mut self, x: &Tensor, mode: Mode) -> Tensor {
        let probe = Probe::start(x);
        // A ResNet basic block runs through fused ops (`residual_fused.rs`).
        if let Some(out) = self.forward_fused(x, mode) {
            probe.finish(self, &out);
            return out;
        }
        let y = self.main.forward(x, mode);
        child_output(self, "main", &y);
        let skip = match &mut self.shortcut {
            Some(shortcut) => shortcut.forward(x, mode),
            None => x.clone(),
        };
        if self.shortcut.is_some() {
            child_output(self, "shortcut", &skip);
        }
        assert_eq!(
            y.shape(),
            skip.shape(),
            "Residual: the main branch gives {:?} but the shortcut {:?}",
            y.shape(),
            skip.shape()
        );
        let mut out = &y + &skip;
        if self.relu {
            out = out.relu();
        }
        probe.finish(self, &out);
        out
    }

    fn kind(&self) -> &str {
        Self::KIND
    }

    fn name_prefix(&self) -> String {
        "block".into()
    }

    fn config(&self) -> Value {
        json!({ "relu": self.relu })
    }

    fn children(&self) -> Vec<(String, &dyn Module)> {
        let mut out = vec![("main".to_string(), self.main.as_ref())];
        if let Some(s) = &self.shortcut {
            out.push(("shortcut".to_string(), s.as_ref()));
        }
        out
    }

    fn children_mut(&mut self) -> Vec<(String, &mut dyn Module)> {
        let mut out: Vec<(String, &mut dyn Module)> = vec![("main".to_string(), self.main.as_mut())];
        if let Some(s) = &mut self.shortcut {
            out.push(("shortcut".to_string(), s.as_mut()));
        }
        out
    }

    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>, String> {
        let main = self.main.output_shape(input).map_err(|e| format!("main: {e}"))?;
        let skip = match &self.shortcut {
            Some(s) => s.output_shape(input).map_err(|e| format!("shortcut: {e}"))?,
            None => input.to_vec(),
        };
        if main != skip {
            let what = if self.shortcut.is_some() { "the projection" } else { "the identity shortcut" };
            return Err(format!(
                "the main branch outputs {main:?} but {what} {skip:?}; give a projection that matches"
            ));
        }
        Ok(main)
    }
}

impl FromConfig for Residual {
    const KIND: &'static str = "Residual";

    fn from_config(config: &ModuleConfig, registry: &Registry) -> Result<Self, ConfigError> {
        let relu = config.config.get("relu").and_then(Value::as_bool).unwrap_or(false);
        let shortcut = match config.children.iter().find(|(n, _)| n == "shortcut") {
            Some((_, c)) => Some(registry.build(c)?),
            None => None,
        };
        if let Some((name, _)) = config.children.iter().find(|(n, _)| n != "main" && n != "shortcut") {
            return Err(ConfigError::invalid(Self::KIND, format!("unexpected child {name:?}")));
        }
        Ok(Residual {
            main: registry.build(config.child("main")?)?,
            shortcut,
            relu,
        })
    }
}
