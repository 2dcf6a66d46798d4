//! The `Module` trait: the unit that everything in ferrocnn accepts — `fit`,
//! `evaluate`, `predict`, model files, state dicts, fine-tuning, `summary`, the
//! inspect pictures and `GradCheck` — whether it is a built-in layer, a container,
//! or a user's own struct.
//!
//! A module is a tree. Each node says what it owns directly (its parameters,
//! buffers and extra state) and which named children it has; every recursive view
//! (`named_parameters`, `state_dict`, freezing by prefix, …) is derived from those
//! two, so a user's module writes `forward` and lists its children, nothing more:
//!
//! ```
//! use ferrocnn::nn::{Conv2d, Mode, Module, ReLU};
//! use ferrocnn::Tensor;
//! use rand::SeedableRng;
//!
//! /// Two convolutions with a ReLU between, and the input added back.
//! #[derive(Clone)]
//! struct TwoConvs {
//!     conv1: Conv2d,
//!     conv2: Conv2d,
//! }
//!
//! impl Module for TwoConvs {
//!     fn forward(&mut self, x: &Tensor, mode: Mode) -> Tensor {
//!         let h = self.conv1.forward(x, mode).relu();
//!         &self.conv2.forward(&h, mode) + x
//!     }
//!     ferrocnn::module_children!(conv1, conv2);
//! }
//!
//! let rng = &mut rand::rngs::StdRng::seed_from_u64(0);
//! let same = ferrocnn::Padding::Same;
//! let block = TwoConvs {
//!     conv1: Conv2d::new(4, 4, (3, 3), rng).with_padding(same),
//!     conv2: Conv2d::new(4, 4, (3, 3), rng).with_padding(same),
//! };
//! let names: Vec<String> = block.named_parameters().into_iter().map(|(n, _)| n).collect();
//! assert_eq!(names, ["conv1.weight", "conv1.bias", "conv2.weight", "conv2.bias"]);
//! ```

use std::any::Any;

use ndarray::ArrayD;
use rand::rngs::StdRng;
use serde_json::Value;

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

/// A layer, a container of layers, or a whole network.
///
/// Implement [`forward`](Module::forward) and, for a module made of others,
/// [`children`](Module::children)/[`children_mut`](Module::children_mut) (the
/// [`module_children!`](crate::module_children) macro writes both). A module that
/// owns parameters directly reports them in [`own_parameters`](Module::own_parameters).
/// The rest has working defaults. The type must be `Clone` (derive it): copies are
/// how models are checkpointed, summarized and checked, and the copy shares
/// parameter values until one side changes them.
///
/// Names nest as in a PyTorch `state_dict`: a parameter `weight` of child `conv1` of
/// child `blocks.2` is `blocks.2.conv1.weight`. Parameters are listed in a fixed
/// order (own first, then each child's in order), which optimizers rely on.
///
/// `forward` takes `&mut self` because training-mode passes update state (batch
/// norm's running statistics, dropout's mask counter).
///
/// To be saved with its architecture and loaded without code, a module also gives its
/// settings in [`config`](Module::config) and is registered with a
/// [`Registry`](super::Registry); without that, its weights still save and load
/// into a module built in code ([`io::load_weights`](crate::io::load_weights)).
pub trait Module: Any + Send + ModuleBase {
    /// Runs the module. If `x` is on a tape, the parameters are bound to it.
    fn forward(&mut self, x: &Tensor, mode: Mode) -> Tensor;

    /// [`forward`](Module::forward) on a tensor the caller gives up, so that a
    /// module whose output can reuse the input's buffer takes it: [`Flatten`](super::Flatten)
    /// returns the same elements under a new shape without copying them (R2's
    /// 2.4 MB of activations, every step) when no other handle shares them.
    /// [`Sequential`](super::Sequential) calls it for each child. The default is `self.forward(&x, mode)`;
    /// override it only where a buffer can be reused, with the same result.
    fn forward_owned(&mut self, x: Tensor, mode: Mode) -> Tensor {
        self.forward(&x, mode)
    }

    /// The type's name, as shown in summaries and stored in model files
    /// (`"Conv2d"`). Defaults to the Rust type's name without its path; that comes
    /// from `std::any::type_name`, whose exact text Rust does not promise across
    /// compiler versions, so a module you register for model files should return a
    /// constant here (its [`FromConfig::KIND`](super::FromConfig::KIND)).
    fn kind(&self) -> &str {
        short_type_name(std::any::type_name::<Self>())
    }

    /// The prefix of the names [`Sequential`](super::Sequential) gives automatically
    /// (`conv` → `conv1`, `conv2`). Defaults to the kind in lower case.
    fn name_prefix(&self) -> String {
        tree::name_prefix(self.as_dyn())
    }

    /// The settings that rebuild this module (without its children and weights),
    /// as stored in a model file; `Null` when there are none.
    fn config(&self) -> Value {
        Value::Null
    }

    /// The direct children with their names, in order.
    fn children(&self) -> Vec<(String, &dyn Module)> {
        Vec::new()
    }

    /// Mutable access to the direct children, in the same order as `children`.
    fn children_mut(&mut self) -> Vec<(String, &mut dyn Module)> {
        Vec::new()
    }

    /// The parameters this module owns itself (not its children's), with names.
    fn own_parameters(&self) -> Vec<(String, &Param)> {
        Vec::new()
    }

    /// Mutable form of `own_parameters`, in the same order.
    fn own_parameters_mut(&mut self) -> Vec<(String, &mut Param)> {
        Vec::new()
    }

    /// `own_parameters_mut` and `children_mut` at once, as two disjoint borrows. The
    /// default serves modules that have one or the other (nearly all: layers own
    /// parameters, containers own children); a module with both must override it,
    /// which `module_children!(conv; params: scale)` does.
    #[allow(clippy::type_complexity)]
    fn own_parameters_and_children_mut(
        &mut self,
    ) -> (Vec<(String, &mut Param)>, Vec<(String, &mut dyn Module)>) {
        tree::own_parameters_or_children_mut(self.as_dyn_mut())
    }

    /// Tensors this module owns that are state but not trained (batch norm's running
    /// statistics): saved in state dicts and model files beside the parameters.
    fn own_buffers(&self) -> Vec<(String, ArrayD<f32>)> {
        Vec::new()
    }

    /// Replaces the buffer `name` (one of `own_buffers`, with the same shape).
    fn set_own_buffer(&mut self, name: &str, value: ArrayD<f32>) -> Result<(), String> {
        let _ = value;
        Err(tree::no_buffer(self.as_dyn(), name))
    }

    /// Other state that is neither parameter nor buffer and must survive a save, such
    /// as counters (PyTorch's `get_extra_state`): dropout's mask seed and call count,
    /// batch norm's count of batches.
    fn extra_state(&self) -> Option<Value> {
        None
    }

    /// Restores what `extra_state` returned.
    fn set_extra_state(&mut self, state: Value) -> Result<(), String> {
        let _ = state;
        Err(tree::no_extra_state(self.as_dyn()))
    }

    /// The regularization penalty on this module's own parameters (Keras's
    /// `kernel_regularizer`), bound to the tape `like` is on. See
    /// [`regularization`](Module::regularization) for the whole tree's.
    fn own_penalty(&self, like: &Tensor) -> Option<Tensor> {
        let _ = like;
        None
    }

    /// Fills this module's own parameters afresh (its default initialization) and
    /// resets its buffers; see [`reinitialize`](Module::reinitialize).
    fn reset_own_parameters(&mut self, rng: &mut StdRng) {
        let _ = rng;
    }

    /// The output shape (without the batch axis) for an input of `input`, or why the
    /// input does not fit. Built-in layers compute it without running anything; the
    /// default runs `forward` in evaluation on one zero image of a copy.
    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>, String> {
        super::shape::run_for_shape(self.as_dyn(), input)
    }

    // ---- Derived from the above; there is rarely a reason to override these. ----
    // Their bodies are in `tree` below, on `&dyn Module`: a default method's body is
    // compiled once per implementing type, the free function once (15 copies of
    // each, about 18k lines of LLVM IR, before this was done).

    /// Every module in the tree with its dotted name, this one first (named `""`),
    /// then depth first in order.
    fn named_modules(&self) -> Vec<(String, &dyn Module)> {
        tree::named_modules(self.as_dyn())
    }

    /// Calls `f` on every module of the tree with its dotted name, parents before
    /// their children: the mutable counterpart of `named_modules`.
    fn visit_mut(&mut self, f: &mut dyn FnMut(&str, &mut dyn Module)) {
        tree::visit_mut("", self.as_dyn_mut(), f)
    }

    /// Every parameter of the tree with its dotted name (`conv1.weight`), in order.
    fn named_parameters(&self) -> Vec<(String, &Param)> {
        tree::named_parameters(self.as_dyn())
    }

    /// Mutable form of `named_parameters`, in the same order.
    fn named_parameters_mut(&mut self) -> Vec<(String, &mut Param)> {
        tree::named_parameters_mut(self.as_dyn_mut())
    }

    /// The parameters, in the order of `named_parameters`.
    fn parameters(&self) -> Vec<&Param> {
        tree::parameters(self.as_dyn())
    }

    /// Mutable parameters, in order: what an optimizer step takes.
    fn parameters_mut(&mut self) -> Vec<&mut Param> {
        tree::parameters_mut(self.as_dyn_mut())
    }

    /// Total number of scalars in the parameters.
    fn num_parameters(&self) -> usize {
        tree::num_parameters(self.as_dyn())
    }

    /// Every buffer of the tree with its dotted name (`bn1.running_mean`).
    fn named_buffers(&self) -> Vec<(String, ArrayD<f32>)> {
        tree::named_buffers(self.as_dyn())
    }

    /// Every parameter and buffer by dotted name, module by module (PyTorch's
    /// `state_dict()`; batch norm's `num_batches_tracked` is extra state, not here).
    fn state_dict(&self) -> crate::io::StateDict {
        crate::io::state_dict::state_dict(self.as_dyn())
    }

    /// Loads tensors by name (PyTorch's `load_state_dict`). Shapes must match
    /// exactly; with `strict`, so must the set of names. Nothing is changed if an
    /// error is returned.
    fn load_state_dict(
        &mut self,
        state: &crate::io::StateDict,
        strict: bool,
    ) -> Result<crate::io::LoadReport, crate::io::IoError> {
        crate::io::state_dict::load_state_dict(self.as_dyn_mut(), state, strict)
    }

    /// The sum of every module's regularization penalty, bound to the tape `like` is
    /// on, to add to the loss; `None` if no module has a regularizer.
    fn regularization(&self, like: &Tensor) -> Option<Tensor> {
        tree::regularization(self.as_dyn(), like)
    }

    /// Freezes (or unfreezes) every parameter: no gradients, no updates.
    fn set_frozen(&mut self, frozen: bool) {
        tree::set_frozen(self.as_dyn_mut(), frozen)
    }

    /// Freezes every parameter whose dotted name is `prefix` or lies under it
    /// (`"conv1"` freezes `conv1.weight` and `conv1.bias`, not `conv10.weight`;
    /// `"blocks.0"` a whole block). Returns how many parameters matched.
    fn freeze(&mut self, prefix: &str) -> usize {
        super::transfer::set_frozen_under(self.as_dyn_mut(), prefix, true)
    }

    /// Unfreezes as [`freeze`](Module::freeze) freezes.
    fn unfreeze(&mut self, prefix: &str) -> usize {
        super::transfer::set_frozen_under(self.as_dyn_mut(), prefix, false)
    }

    /// Freezes (`true`) or unfreezes the parameters of every module for which
    /// `select(name, module)` holds, with everything under it; e.g. every
    /// convolution: `|_, m| m.is::<Conv2d>()`.
    fn set_frozen_where(&mut self, frozen: bool, select: &dyn Fn(&str, &dyn Module) -> bool) {
        super::transfer::set_frozen_where(self.as_dyn_mut(), frozen, select)
    }

    /// The dotted name of the classifier head: the last `Linear` module.
    fn head_name(&self) -> Option<String> {
        super::transfer::head_name(self.as_dyn())
    }

    /// Replaces the head (the last `Linear`) by a freshly initialized one with
    /// `classes` outputs and the same inputs, for fine-tuning on another task.
    /// Returns the old head's output count, or an error if there is no `Linear`.
    fn replace_head(&mut self, classes: usize, seed: u64) -> Result<usize, String> {
        super::transfer::replace_head(self.as_dyn_mut(), classes, seed)
    }

    /// A summary table for inputs of `input_shape` (without the batch axis), as
    /// Keras's `model.summary()`; panics if the input does not fit (see
    /// [`try_summary`](Module::try_summary)).
    fn summary(&self, input_shape: &[usize]) -> super::Summary {
        tree::summary(self.as_dyn(), input_shape)
    }

    /// The summary, or an error naming the first module that cannot take the input.
    fn try_summary(&self, input_shape: &[usize]) -> Result<super::Summary, String> {
        super::summary::summarize(self.as_dyn(), input_shape)
    }

    /// Re-initializes every module of the tree (`reset_own_parameters`), from a
    /// seed: the same architecture, trained from scratch. Nothing stays frozen.
    fn reinitialize(&mut self, seed: u64) {
        tree::reinitialize(self.as_dyn_mut(), seed)
    }

    /// A copy re-initialized as [`reinitialize`](Module::reinitialize) does.
    fn reinitialized(&self, seed: u64) -> Self
    where
        Self: Sized + Clone,
    {
        let mut fresh = self.clone();
        fresh.reinitialize(seed);
        fresh
    }
}

impl dyn Module {
    /// This module as a `T`, if it is one (to reach a layer's own fields).
    pub fn downcast_ref<T: Module>(&self) -> Option<&T> {
        (self as &dyn Any).downcast_ref()
    }

    /// Mutable form of `downcast_ref`.
    pub fn downcast_mut<T: Module>(&mut self) -> Option<&mut T> {
        (self as &mut dyn Any).downcast_mut()
    }

    /// True if this module is a `T`.
    pub fn is<T: Module>(&self) -> bool {
        (self as &dyn Any).is::<T>()
    }
}

/// What every `Module` gets for free from being `Clone` and sized: a boxed copy and
/// a view as `dyn Module`. Implemented for every `T: Module + Clone`; not meant to
/// be implemented by hand.
pub trait ModuleBase {
    /// A boxed copy (parameter values are shared until one side changes them).
    fn clone_module(&self) -> Box<dyn Module>;
    /// This module as a trait object.
    fn as_dyn(&self) -> &dyn Module;
    /// This module as a mutable trait object.
    fn as_dyn_mut(&mut self) -> &mut dyn Module;
}

impl<T: Module + Clone> ModuleBase for T {
    fn clone_module(&self) -> Box<dyn Module> {
        Box::new(self.clone())
    }

    fn as_dyn(&self) -> &dyn Module {
        self
    }

    fn as_dyn_mut(&mut self) -> &mut dyn Module {
        self
    }
}

impl Clone for Box<dyn Module> {
    fn clone(&self) -> Self {
        self.clone_module()
    }
}

impl std::fmt::Debug for dyn Module {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.kind())?;
        let children = self.children();
        if !children.is_empty() {
            f.debug_map()
                .entries(children.iter().map(|(n, c)| (n, c)))
                .finish()?;
        }
        Ok(())
    }
}

/// Lists a struct's fields as the module's children, in the order given, named after
/// the fields: writes `children` and `children_mut` inside an `impl Module`. After a
/// `;`, `params:` lists the fields that are the module's own [`Param`]s, and the
/// macro writes `own_parameters`, `own_parameters_mut` and
/// `own_parameters_and_children_mut` too.
///
/// ```
/// use ferrocnn::nn::{Linear, Mode, Module, Param};
/// use ferrocnn::Tensor;
///
/// #[derive(Clone)]
/// struct Mlp { fc1: Linear, fc2: Linear, scale: Param }
///
/// impl Module for Mlp {
///     fn forward(&mut self, x: &Tensor, mode: Mode) -> Tensor {
///         let h = self.fc1.forward(x, mode).relu();
///         self.fc2.forward(&h, mode).mul(&self.scale.bind(x))
///     }
///     ferrocnn::module_children!(fc1, fc2; params: scale);
/// }
/// # use rand::SeedableRng;
/// # let rng = &mut rand::rngs::StdRng::seed_from_u64(0);
/// # let mut mlp = Mlp { fc1: Linear::new(2, 3, rng), fc2: Linear::new(3, 1, rng), scale: Param::new(ndarray::arr1(&[1.0f32]).into_dyn()) };
/// # assert_eq!(mlp.named_parameters_mut()[0].0, "scale");
/// ```
#[macro_export]
macro_rules! module_children {
    ($($field:ident),* $(,)?) => {
        fn children(&self) -> Vec<(String, &dyn $crate::nn::Module)> {
            vec![$((stringify!($field).to_string(), &self.$field as &dyn $crate::nn::Module)),*]
        }
        fn children_mut(&mut self) -> Vec<(String, &mut dyn $crate::nn::Module)> {
            vec![$((stringify!($field).to_string(), &mut self.$field as &mut dyn $crate::nn::Module)),*]
        }
    };
    ($($field:ident),* ; params: $($param:ident),+ $(,)?) => {
        $crate::module_children!($($field),*);
        fn own_parameters(&self) -> Vec<(String, &$crate::nn::Param)> {
            vec![$((stringify!($param).to_string(), &self.$param)),+]
        }
        fn own_parameters_mut(&mut self) -> Vec<(String, &mut $crate::nn::Param)> {
            vec![$((stringify!($param).to_string(), &mut self.$param)),+]
        }
        #[allow(clippy::type_complexity)]
        fn own_parameters_and_children_mut(
            &mut self,
        ) -> (Vec<(String, &mut $crate::nn::Param)>, Vec<(String, &mut dyn $crate::nn::Module)>) {
            (
                vec![$((stringify!($param).to_string(), &mut self.$param)),+],
                vec![$((stringify!($field).to_string(), &mut self.$field as &mut dyn $crate::nn::Module)),*],
            )
        }
    };
}

/// The bodies of `Module`'s default methods, compiled once for every module type
/// rather than once per type. Children are reached through their own (possibly
/// overridden) methods, so an override anywhere in the tree still takes effect.
mod tree {
    use ndarray::ArrayD;
    use rand::rngs::StdRng;

    use super::{join, Module};
    use crate::param::Param;
    use crate::tensor::Tensor;

    pub(super) fn name_prefix(m: &dyn Module) -> String {
        m.kind().to_lowercase()
    }

    #[allow(clippy::type_complexity)]
    pub(super) fn own_parameters_or_children_mut(
        m: &mut dyn Module,
    ) -> (Vec<(String, &mut Param)>, Vec<(String, &mut dyn Module)>) {
        if m.own_parameters().is_empty() {
            return (Vec::new(), m.children_mut());
        }
        assert!(
            m.children().is_empty(),
            "{}: a module with both its own parameters and children must implement \
             own_parameters_and_children_mut",
            m.kind()
        );
        (m.own_parameters_mut(), Vec::new())
    }

    pub(super) fn no_buffer(m: &dyn Module, name: &str) -> String {
        format!("{} has no buffer {name:?}", m.kind())
    }

    pub(super) fn no_extra_state(m: &dyn Module) -> String {
        format!("{} keeps no extra state", m.kind())
    }

    pub(super) fn named_modules(m: &dyn Module) -> Vec<(String, &dyn Module)> {
        let mut out = vec![(String::new(), m)];
        for (name, child) in m.children() {
            for (sub, c) in child.named_modules() {
                out.push((join(&name, &sub), c));
            }
        }
        out
    }

    pub(super) fn visit_mut(prefix: &str, m: &mut dyn Module, f: &mut dyn FnMut(&str, &mut dyn Module)) {
        f(prefix, m);
        for (name, child) in m.children_mut() {
            visit_mut(&join(prefix, &name), child, f);
        }
    }

    pub(super) fn named_parameters(m: &dyn Module) -> Vec<(String, &Param)> {
        let mut out = m.own_parameters();
        for (name, child) in m.children() {
            for (p, param) in child.named_parameters() {
                out.push((join(&name, &p), param));
            }
        }
        out
    }

    pub(super) fn named_parameters_mut(m: &mut dyn Module) -> Vec<(String, &mut Param)> {
        let (mut out, children) = m.own_parameters_and_children_mut();
        for (name, child) in children {
            for (p, param) in child.named_parameters_mut() {
                out.push((join(&name, &p), param));
            }
        }
        out
    }

    pub(super) fn parameters(m: &dyn Module) -> Vec<&Param> {
        m.named_parameters().into_iter().map(|(_, p)| p).collect()
    }

    pub(super) fn parameters_mut(m: &mut dyn Module) -> Vec<&mut Param> {
        m.named_parameters_mut().into_iter().map(|(_, p)| p).collect()
    }

    pub(super) fn num_parameters(m: &dyn Module) -> usize {
        m.parameters().iter().map(|p| p.len()).sum()
    }

    pub(super) fn named_buffers(m: &dyn Module) -> Vec<(String, ArrayD<f32>)> {
        let mut out = m.own_buffers();
        for (name, child) in m.children() {
            for (b, value) in child.named_buffers() {
                out.push((join(&name, &b), value));
            }
        }
        out
    }

    pub(super) fn regularization(m: &dyn Module, like: &Tensor) -> Option<Tensor> {
        let children = m.children();
        let parts = m
            .own_penalty(like)
            .into_iter()
            .chain(children.iter().filter_map(|(_, c)| c.regularization(like)));
        parts.reduce(|a, b| &a + &b)
    }

    pub(super) fn set_frozen(m: &mut dyn Module, frozen: bool) {
        for p in m.parameters_mut() {
            p.set_frozen(frozen);
        }
    }

    pub(super) fn summary(m: &dyn Module, input_shape: &[usize]) -> crate::nn::Summary {
        m.try_summary(input_shape)
            .unwrap_or_else(|e| panic!("summary: {e}"))
    }

    pub(super) fn reinitialize(m: &mut dyn Module, seed: u64) {
        let rng = &mut <StdRng as rand::SeedableRng>::seed_from_u64(seed);
        m.visit_mut(&mut |_, m| m.reset_own_parameters(rng));
        m.set_frozen(false);
    }
}

/// `a.b`, or whichever is not empty.
pub(crate) fn join(a: &str, b: &str) -> String {
    match (a.is_empty(), b.is_empty()) {
        (true, _) => b.to_string(),
        (_, true) => a.to_string(),
        _ => format!("{a}.{b}"),
    }
}

/// `my_crate::blocks::Block<T>` → `Block<T>`.
fn short_type_name(full: &str) -> &str {
    let head = full.split('<').next().unwrap_or(full);
    match head.rfind("::") {
        Some(at) => &full[at + 2..],
        None => full,
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
