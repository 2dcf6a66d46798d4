//! `Sequential`: layers applied in order, each with a name, and `Layer`, the closed
//! set of built-in layers.
//!
//! `Layer` is an enum rather than a boxed trait object so that a whole network —
//! architecture and weights — serializes with serde and loads back without code that
//! rebuilds it. Custom models can still implement [`Module`] directly.

use serde::{Deserialize, Serialize};

use super::{
    AvgPool2d, BatchNorm2d, Conv2d, Dropout, Flatten, GlobalAvgPool, LeakyReLU, Linear, MaxPool2d, Mode,
    Module, ReLU, Sigmoid, Tanh,
};
use crate::ops::{ConvEpilogue, PoolWindow};
use crate::param::Param;
use crate::tensor::Tensor;

macro_rules! layers {
    ($($variant:ident => $prefix:literal),* $(,)?) => {
        /// One of the built-in layers.
        #[derive(Clone, Debug, Serialize, Deserialize)]
        #[allow(clippy::large_enum_variant)]
        pub enum Layer {
            $(
                #[doc = concat!("A [`", stringify!($variant), "`].")]
                $variant($variant),
            )*
        }

        impl Layer {
            /// The layer's type name, e.g. `"Conv2d"`.
            pub fn kind(&self) -> &'static str {
                match self { $(Layer::$variant(_) => stringify!($variant),)* }
            }

            /// The prefix of automatic names (`conv` → `conv1`, `conv2`, …).
            fn name_prefix(&self) -> &'static str {
                match self { $(Layer::$variant(_) => $prefix,)* }
            }

            /// The layer as a module.
            pub fn as_module(&self) -> &dyn Module {
                match self { $(Layer::$variant(l) => l,)* }
            }

            /// The layer as a mutable module.
            pub fn as_module_mut(&mut self) -> &mut dyn Module {
                match self { $(Layer::$variant(l) => l,)* }
            }
        }

        $(
            impl From<$variant> for Layer {
                fn from(l: $variant) -> Layer {
                    Layer::$variant(l)
                }
            }
        )*
    };
}

layers! {
    Conv2d => "conv",
    Linear => "fc",
    MaxPool2d => "pool",
    AvgPool2d => "avgpool",
    GlobalAvgPool => "gap",
    BatchNorm2d => "bn",
    ReLU => "relu",
    LeakyReLU => "leaky_relu",
    Sigmoid => "sigmoid",
    Tanh => "tanh",
    Flatten => "flatten",
    Dropout => "dropout",
}

/// Batch slice for inference on large batches (see `forward`).
const EVAL_SLICE: usize = 64;

/// Batch chunk for the layers from a large `Linear` on, in inference (see `forward`).
const HEAD_SLICE: usize = 512;

/// Weight elements from which a `Linear` layer counts as large (see `forward`).
const LARGE_WEIGHT: usize = 1 << 18;

/// Layers applied one after another (PyTorch's `nn.Sequential`, Keras's
/// `Sequential`). Each layer has a name — `conv1`, `fc2`, … unless given one — which
/// prefixes its parameters' names (`conv1.weight`), as in a PyTorch `state_dict`.
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
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Sequential {
    layers: Vec<(String, Layer)>,
}

impl Sequential {
    /// An empty network.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends a layer with an automatic name (builder style).
    // Named after Keras's `Sequential.add`; it is not arithmetic.
    #[allow(clippy::should_implement_trait)]
    pub fn add(mut self, layer: impl Into<Layer>) -> Self {
        self.push(layer);
        self
    }

    /// Appends a layer with an automatic name: its kind's prefix and the count of
    /// layers of that kind so far (`conv1`, `conv2`, `fc1`).
    pub fn push(&mut self, layer: impl Into<Layer>) {
        let layer = layer.into();
        let prefix = layer.name_prefix();
        let n = self
            .layers
            .iter()
            .filter(|(_, l)| l.name_prefix() == prefix)
            .count()
            + 1;
        self.layers.push((format!("{prefix}{n}"), layer));
    }

    /// Appends a layer under a given name. Panics if the name is taken or contains
    /// a dot (dots separate layer and parameter names).
    pub fn push_named(&mut self, name: &str, layer: impl Into<Layer>) {
        assert!(
            !name.contains('.'),
            "Sequential: layer name {name:?} contains a dot"
        );
        assert!(
            self.get(name).is_none(),
            "Sequential: a layer is already named {name:?}"
        );
        self.layers.push((name.to_string(), layer.into()));
    }

    /// The layers with their names, in order.
    pub fn layers(&self) -> &[(String, Layer)] {
        &self.layers
    }

    /// Mutable access to the layers (e.g. to replace the head for fine-tuning).
    pub fn layers_mut(&mut self) -> &mut [(String, Layer)] {
        &mut self.layers
    }

    /// The layer with this name.
    pub fn get(&self, name: &str) -> Option<&Layer> {
        self.layers.iter().find(|(n, _)| n == name).map(|(_, l)| l)
    }

    /// The layer with this name, mutably.
    pub fn get_mut(&mut self, name: &str) -> Option<&mut Layer> {
        self.layers.iter_mut().find(|(n, _)| n == name).map(|(_, l)| l)
    }

    /// Number of layers.
    pub fn len(&self) -> usize {
        self.layers.len()
    }

    /// True if there are no layers.
    pub fn is_empty(&self) -> bool {
        self.layers.is_empty()
    }

    /// Output shapes of every layer for one input of `input_shape` (without the
    /// batch axis, e.g. `[1, 28, 28]`), from an evaluation pass that records nothing.
    pub fn output_shapes(&self, input_shape: &[usize]) -> Vec<Vec<usize>> {
        // Cloning is cheap: parameter values are shared, not copied.
        let mut net = self.clone();
        let mut shape = vec![1];
        shape.extend_from_slice(input_shape);
        let mut x = Tensor::new(ndarray::ArrayD::zeros(ndarray::IxDyn(&shape)));
        net.layers
            .iter_mut()
            .map(|(_, layer)| {
                x = layer.as_module_mut().forward(&x, Mode::Eval);
                x.shape()[1..].to_vec()
            })
            .collect()
    }
}

impl Sequential {
    /// Whether the layers from `i` on form a block that runs as one fused op
    /// ([`Tensor::conv2d_block`]): `Conv2d` followed by `ReLU` and/or `MaxPool2d`, in
    /// either order (ReLU is monotonic, so it commutes with max pooling). Returns the
    /// epilogue, how many layers it covers and the name the profile shows.
    fn fusion_at(&self, i: usize, end: usize) -> Option<(ConvEpilogue, usize, &'static str)> {
        let Some((_, Layer::Conv2d(_))) = self.layers.get(i) else {
            return None;
        };
        let mut epilogue = ConvEpilogue::default();
        let mut span = 1;
        while let Some((_, layer)) = self.layers[..end].get(i + span) {
            match layer {
                Layer::ReLU(_) if !epilogue.relu => epilogue.relu = true,
                Layer::MaxPool2d(pool) if epilogue.max_pool.is_none() => {
                    epilogue.max_pool = Some(PoolWindow {
                        kernel: pool.kernel,
                        stride: pool.stride,
                        padding: pool.padding,
                    })
                }
                _ => break,
            }
            span += 1;
        }
        let kind = match (epilogue.relu, epilogue.max_pool.is_some()) {
            (false, false) => return None,
            (true, false) => "Conv2d+ReLU",
            (false, true) => "Conv2d+MaxPool2d",
            (true, true) => "Conv2d+ReLU+MaxPool2d",
        };
        Some((epilogue, span, kind))
    }
}

impl Sequential {
    /// Layers `range` applied in order (fusing and reordering as the comments say).
    fn forward_layers(&mut self, x: &Tensor, mode: Mode, range: std::ops::Range<usize>) -> Tensor {
        let mut x = x.clone();
        let mut i = range.start;
        while i < range.end {
            if let Some((epilogue, span, kind)) = self.fusion_at(i, range.end) {
                let Layer::Conv2d(conv) = &mut self.layers[i].1 else {
                    unreachable!("fusion_at starts at a Conv2d")
                };
                let timer = crate::profile::start();
                x = conv.forward_block(&x, &epilogue);
                crate::profile::record(timer, kind, crate::profile::Phase::Forward);
                i += span;
                continue;
            }
            // ReLU is monotonic, so it commutes with max-pooling: ReLU → MaxPool2d runs
            // as MaxPool2d → ReLU, with the ReLU on a quarter of the elements (for 2×2
            // windows). Outputs and gradients are identical: both route the gradient
            // to the window's first maximum, and only where it is positive.
            let next = (i + 1 < range.end).then(|| &self.layers[i + 1].1);
            let order: &[usize] = match (&self.layers[i].1, next) {
                (Layer::ReLU(_), Some(Layer::MaxPool2d(_))) => &[1, 0],
                _ => &[0],
            };
            for &k in order {
                let layer = &mut self.layers[i + k].1;
                let timer = crate::profile::start();
                x = layer.as_module_mut().forward(&x, mode);
                crate::profile::record(timer, layer.kind(), crate::profile::Phase::Forward);
            }
            i += order.len();
        }
        x
    }

    /// Where inference switches from slices of [`EVAL_SLICE`] images to chunks of
    /// [`HEAD_SLICE`]: at the first `Linear` layer whose weight has at least
    /// [`LARGE_WEIGHT`] elements, if any.
    fn head_start(&self) -> Option<usize> {
        self.layers.iter().position(|(_, layer)| match layer {
            Layer::Linear(linear) => linear.weight.len() >= LARGE_WEIGHT,
            _ => false,
        })
    }

    /// `x` through `range` in slices of `slice` images, the outputs joined.
    fn forward_sliced(
        &mut self,
        x: &ndarray::ArrayViewD<f32>,
        range: std::ops::Range<usize>,
        slice: usize,
    ) -> Tensor {
        let outputs: Vec<Tensor> = x
            .axis_chunks_iter(ndarray::Axis(0), slice)
            .map(|slice| self.forward_layers(&Tensor::new(slice.to_owned()), Mode::Eval, range.clone()))
            .collect();
        if outputs.len() == 1 {
            return outputs.into_iter().next().expect("one slice");
        }
        let views: Vec<_> = outputs.iter().map(|t| t.value().view()).collect();
        Tensor::new(ndarray::concatenate(ndarray::Axis(0), &views).expect("slices share their shape"))
    }
}

impl Module for Sequential {
    fn forward(&mut self, x: &Tensor, mode: Mode) -> Tensor {
        // Inference on a large batch runs in slices of the batch: every activation of
        // a 1000-image batch is tens to hundreds of MB, which malloc maps fresh from
        // the OS (and page-faults in) for every layer of every batch. Slices of 64
        // images reuse the same memory and stay in cache. Only without a tape: in
        // evaluation each image's output depends on that image alone, so the result
        // is the same.
        //
        // A large dense layer (R2's 9216 → 128, 4.7 MB of weights) gets bigger chunks:
        // its product copies ("packs") the weight on every call, which on 64-image
        // slices cost as much as the product itself.
        let len = self.layers.len();
        if mode == Mode::Eval && x.tape().is_none() && x.ndim() >= 1 && x.shape()[0] > EVAL_SLICE {
            let value = x.value().view();
            let Some(head) = self.head_start() else {
                return self.forward_sliced(&value, 0..len, EVAL_SLICE);
            };
            let outputs: Vec<Tensor> = value
                .axis_chunks_iter(ndarray::Axis(0), HEAD_SLICE)
                .map(|chunk| {
                    let features = self.forward_sliced(&chunk, 0..head, EVAL_SLICE);
                    self.forward_layers(&features, Mode::Eval, head..len)
                })
                .collect();
            let views: Vec<_> = outputs.iter().map(|t| t.value().view()).collect();
            return Tensor::new(
                ndarray::concatenate(ndarray::Axis(0), &views).expect("chunks share their shape"),
            );
        }
        self.forward_layers(x, mode, 0..len)
    }

    fn named_parameters(&self) -> Vec<(String, &Param)> {
        self.layers
            .iter()
            .flat_map(|(name, layer)| {
                layer
                    .as_module()
                    .named_parameters()
                    .into_iter()
                    .map(move |(p, v)| (format!("{name}.{p}"), v))
            })
            .collect()
    }

    fn named_parameters_mut(&mut self) -> Vec<(String, &mut Param)> {
        self.layers
            .iter_mut()
            .flat_map(|(name, layer)| {
                let name = name.clone();
                layer
                    .as_module_mut()
                    .named_parameters_mut()
                    .into_iter()
                    .map(move |(p, v)| (format!("{name}.{p}"), v))
            })
            .collect()
    }

    fn regularization(&self, like: &Tensor) -> Option<Tensor> {
        self.layers
            .iter()
            .filter_map(|(_, l)| l.as_module().regularization(like))
            .reduce(|a, b| &a + &b)
    }
}
