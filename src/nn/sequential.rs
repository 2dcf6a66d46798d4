//! `Sequential`: modules applied in order, each with a name.
//!
//! It only composes, as PyTorch's `nn.Sequential.forward` is a for loop: it never
//! fuses or reorders its children, so each layer computes the same whatever its
//! neighbours are. Fusion is explicit ([`Conv2dBlock`](super::Conv2dBlock)), and
//! slicing large inference batches is [`predict`](crate::train::predict)'s job.

use super::registry::{ConfigError, FromConfig, ModuleConfig, Registry};
use super::{Mode, Module};
use crate::observe::child_output;
use crate::tensor::Tensor;

/// Modules applied one after another (PyTorch's `nn.Sequential`, Keras's
/// `Sequential`). Each has a name — `conv1`, `fc2`, … unless given one — which
/// prefixes its parameters' names (`conv1.weight`), as in a PyTorch `state_dict`.
/// Any module goes in: built-in layers, containers, or your own.
///
/// ```
/// use ferrocnn::nn::{Conv2d, Flatten, Linear, MaxPool2d, Mode, Module, ReLU, Sequential};
/// use ferrocnn::Tensor;
/// use ndarray::Array4;
/// use rand::SeedableRng;
///
/// let mut rng = rand::rngs::StdRng::seed_from_u64(42);
/// let mut net = Sequential::new()
///     .add(Conv2d::new(1, 4, (3, 3), &mut rng))
///     .add(ReLU)
///     .add(MaxPool2d::new((2, 2)))
///     .add(Flatten)
///     .add(Linear::new(4 * 13 * 13, 10, &mut rng));
/// let logits = net.forward(&Tensor::new(Array4::<f32>::zeros((2, 1, 28, 28)).into_dyn()), Mode::Eval);
/// assert_eq!(logits.shape(), &[2, 10]);
/// assert_eq!(net.named_parameters()[0].0, "conv1.weight");
/// ```
#[derive(Clone, Default)]
pub struct Sequential {
    layers: Vec<(String, Box<dyn Module>)>,
}

impl Sequential {
    /// An empty network.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends a module with an automatic name (builder style).
    // Named after Keras's `Sequential.add`; it is not arithmetic.
    #[allow(clippy::should_implement_trait)]
    pub fn add(mut self, module: impl Module) -> Self {
        self.push(module);
        self
    }

    /// Appends a module with an automatic name: its name prefix and the count of
    /// modules with that prefix so far (`conv1`, `conv2`, `fc1`).
    pub fn push(&mut self, module: impl Module) {
        self.push_boxed(Box::new(module));
    }

    /// Appends a boxed module with an automatic name.
    pub fn push_boxed(&mut self, module: Box<dyn Module>) {
        let prefix = module.name_prefix();
        let n = self
            .layers
            .iter()
            .filter(|(_, l)| l.name_prefix() == prefix)
            .count()
            + 1;
        self.layers.push((format!("{prefix}{n}"), module));
    }

    /// Appends a module under a given name. Panics if the name is taken, empty, or
    /// contains a dot (dots separate the parts of a dotted name).
    pub fn push_named(&mut self, name: &str, module: impl Module) {
        self.push_named_boxed(name, Box::new(module));
    }

    /// Appends a boxed module under a given name; panics as `push_named` does.
    pub fn push_named_boxed(&mut self, name: &str, module: Box<dyn Module>) {
        assert!(
            !name.is_empty() && !name.contains('.'),
            "Sequential: layer name {name:?} is empty or contains a dot"
        );
        assert!(
            self.get(name).is_none(),
            "Sequential: a layer is already named {name:?}"
        );
        self.layers.push((name.to_string(), module));
    }

    /// The modules with their names, in order.
    pub fn layers(&self) -> &[(String, Box<dyn Module>)] {
        &self.layers
    }

    /// Mutable access to the modules (e.g. to replace one: assign a new box).
    pub fn layers_mut(&mut self) -> &mut [(String, Box<dyn Module>)] {
        &mut self.layers
    }

    /// The module with this name.
    pub fn get(&self, name: &str) -> Option<&dyn Module> {
        self.layers.iter().find(|(n, _)| n == name).map(|(_, l)| l.as_ref())
    }

    /// The module with this name, as its box (assign to replace it).
    pub fn get_mut(&mut self, name: &str) -> Option<&mut Box<dyn Module>> {
        self.layers.iter_mut().find(|(n, _)| n == name).map(|(_, l)| l)
    }

    /// Number of modules.
    pub fn len(&self) -> usize {
        self.layers.len()
    }

    /// True if there are no modules.
    pub fn is_empty(&self) -> bool {
        self.layers.is_empty()
    }

    /// Output shapes of every module for one input of `input_shape` (without the
    /// batch axis, e.g. `[1, 28, 28]`), or an error naming the first module that
    /// cannot take its input. Nothing is run for built-in layers.
    pub fn try_output_shapes(&self, input_shape: &[usize]) -> Result<Vec<Vec<usize>>, String> {
        let mut shape = input_shape.to_vec();
        self.layers
            .iter()
            .map(|(name, layer)| {
                shape = layer.output_shape(&shape).map_err(|e| format!("{name}: {e}"))?;
                Ok(shape.clone())
            })
            .collect()
    }

    /// [`try_output_shapes`](Sequential::try_output_shapes), panicking on a
    /// mismatch (for networks built in code, where it is a programming error).
    pub fn output_shapes(&self, input_shape: &[usize]) -> Vec<Vec<usize>> {
        self.try_output_shapes(input_shape)
            .unwrap_or_else(|e| panic!("Sequential: {e}"))
    }
}

impl std::fmt::Debug for Sequential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map().entries(self.layers.iter().map(|(n, l)| (n, l))).finish()
    }
}

impl Module for Sequential {
    fn forward(&mut self, x: &Tensor, mode: Mode) -> Tensor {
        let mut x = x.clone();
        for i in 0..self.layers.len() {
            x = self.layers[i].1.forward_owned(x, mode);
            child_output(self, &self.layers[i].0, &x);
        }
        x
    }

    fn kind(&self) -> &str {
        Self::KIND
    }

    fn children(&self) -> Vec<(String, &dyn Module)> {
        self.layers.iter().map(|(n, l)| (n.clone(), l.as_ref())).collect()
    }

    fn children_mut(&mut self) -> Vec<(String, &mut dyn Module)> {
        self.layers
            .iter_mut()
            .map(|(n, l)| (n.clone(), l.as_mut() as &mut dyn Module))
            .collect()
    }

    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>, String> {
        Ok(self
            .try_output_shapes(input)?
            .pop()
            .unwrap_or_else(|| input.to_vec()))
    }
}

impl FromConfig for Sequential {
    const KIND: &'static str = "Sequential";

    fn from_config(config: &ModuleConfig, registry: &Registry) -> Result<Self, ConfigError> {
        let mut net = Sequential::new();
        for (name, child) in &config.children {
            if name.is_empty() || name.contains('.') || net.get(name).is_some() {
                return Err(ConfigError::invalid(
                    Self::KIND,
                    format!("layer name {name:?} is empty, has a dot or is repeated"),
                ));
            }
            net.push_named_boxed(name, registry.build(child)?);
        }
        Ok(net)
    }
}
