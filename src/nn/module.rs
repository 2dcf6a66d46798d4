//! The `Module` trait every layer and model implements, and `Mode`.

use crate::param::Param;
use crate::tensor::Tensor;

/// Training or evaluation: dropout and batch normalization behave differently
/// (PyTorch's `model.train()` / `model.eval()`, passed explicitly here).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Dropout drops, batch norm uses and updates batch statistics.
    Train,
    /// Dropout is the identity, batch norm uses its running statistics.
    Eval,
}

/// A layer or a network of layers.
///
/// `forward` takes `&mut self` because training-mode passes update state (batch
/// norm's running statistics, dropout's mask counter). Parameters are reported with
/// PyTorch-style dotted names (`conv1.weight`) in a fixed order, which optimizers
/// and model files rely on.
pub trait Module {
    /// Runs the layer. If `x` is on a tape, the parameters are bound to it.
    fn forward(&mut self, x: &Tensor, mode: Mode) -> Tensor;

    /// The parameters with their names, in a fixed order. Layers without parameters
    /// (activations, pooling) keep the default: none.
    fn named_parameters(&self) -> Vec<(String, &Param)> {
        Vec::new()
    }

    /// Mutable access to the parameters, in the same order as `named_parameters`.
    fn named_parameters_mut(&mut self) -> Vec<(String, &mut Param)> {
        Vec::new()
    }

    /// The regularization penalty (Keras's `kernel_regularizer`), bound to the tape
    /// `like` is on, to add to the loss. `None` if the module has no regularizer.
    fn regularization(&self, like: &Tensor) -> Option<Tensor> {
        let _ = like;
        None
    }

    /// The parameters, in the same order as `named_parameters`.
    fn parameters(&self) -> Vec<&Param> {
        self.named_parameters().into_iter().map(|(_, p)| p).collect()
    }

    /// Mutable parameters, in order: what an optimizer step takes.
    fn parameters_mut(&mut self) -> Vec<&mut Param> {
        self.named_parameters_mut().into_iter().map(|(_, p)| p).collect()
    }

    /// Total number of scalars in the parameters.
    fn num_parameters(&self) -> usize {
        self.parameters().iter().map(|p| p.len()).sum()
    }

    /// Freezes (or unfreezes) every parameter: no gradients, no updates.
    fn set_frozen(&mut self, frozen: bool) {
        for p in self.parameters_mut() {
            p.set_frozen(frozen);
        }
    }
}

/// `[("weight", w), ("bias", b)]`: the parameters of conv and linear layers.
pub(crate) fn weight_and_bias<'a>(weight: &'a Param, bias: &'a Option<Param>) -> Vec<(String, &'a Param)> {
    std::iter::once(("weight".to_string(), weight))
        .chain(bias.iter().map(|b| ("bias".to_string(), b)))
        .collect()
}

/// Mutable form of [`weight_and_bias`].
pub(crate) fn weight_and_bias_mut<'a>(
    weight: &'a mut Param,
    bias: &'a mut Option<Param>,
) -> Vec<(String, &'a mut Param)> {
    std::iter::once(("weight".to_string(), weight))
        .chain(bias.iter_mut().map(|b| ("bias".to_string(), b)))
        .collect()
}
