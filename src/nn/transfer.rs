//! Transfer learning on a `Sequential`: freeze parts, swap the classifier head for
//! another class count, or re-initialize the same architecture (the from-scratch
//! baseline a fine-tuning result is compared with).

use rand::rngs::StdRng;
use rand::SeedableRng;

use super::{Conv2d, Layer, Linear, Sequential};

impl Sequential {
    /// Freezes (`true`) or unfreezes the parameters of every layer for which
    /// `select(name, layer)` holds; other layers are left as they are.
    pub fn set_frozen_where(&mut self, frozen: bool, select: impl Fn(&str, &Layer) -> bool) {
        for (name, layer) in self.layers_mut() {
            if select(name, layer) {
                layer.as_module_mut().set_frozen(frozen);
            }
        }
    }

    /// The name of the last `Linear` layer: the classifier head.
    pub fn head_name(&self) -> Option<&str> {
        self.layers()
            .iter()
            .rev()
            .find(|(_, l)| matches!(l, Layer::Linear(_)))
            .map(|(n, _)| n.as_str())
    }

    /// Replaces the last `Linear` layer by a freshly initialized one with `classes`
    /// outputs (same inputs). Returns `false` if the network has no `Linear` layer.
    pub fn replace_head(&mut self, classes: usize, seed: u64) -> bool {
        let Some(name) = self.head_name().map(str::to_string) else {
            return false;
        };
        let rng = &mut StdRng::seed_from_u64(seed);
        if let Some(Layer::Linear(head)) = self.get_mut(&name) {
            *head = fresh_linear(head, classes, rng);
        }
        true
    }

    /// The same architecture with freshly initialized weights (default initializers,
    /// batch-norm statistics reset, nothing frozen).
    pub fn reinitialized(&self, seed: u64) -> Sequential {
        let rng = &mut StdRng::seed_from_u64(seed);
        let mut net = self.clone();
        for (_, layer) in net.layers_mut() {
            match layer {
                Layer::Conv2d(conv) => {
                    let (out, inp, kh, kw) = conv.kernel_shape();
                    let mut fresh = Conv2d::new(inp, out, (kh, kw), rng);
                    fresh.options = conv.options;
                    fresh.regularizer = conv.regularizer;
                    if conv.bias.is_none() {
                        fresh = fresh.without_bias();
                    }
                    *conv = fresh;
                }
                Layer::Linear(fc) => *fc = fresh_linear(fc, fc.out_features(), rng),
                Layer::BatchNorm2d(bn) => *bn = super::BatchNorm2d::new(bn.channels()),
                _ => {}
            }
        }
        net
    }
}

/// A freshly initialized `Linear` like `like` (inputs, bias or not, regularizer)
/// with `outputs` outputs.
fn fresh_linear(like: &Linear, outputs: usize, rng: &mut StdRng) -> Linear {
    let mut fresh = Linear::new(like.in_features(), outputs, rng);
    fresh.regularizer = like.regularizer;
    if like.bias.is_none() {
        fresh = fresh.without_bias();
    }
    fresh
}
