//! `Tensor`: a handle to one value, and to the node that computed it if it is
//! recorded on a [`Tape`]. Ops are methods on `Tensor`, defined next to their
//! backward rules in `ops/`.

use std::fmt;
use std::sync::Arc;

use ndarray::{ArrayD, ArrayView4, Ix4};

use crate::param::ParamId;
use crate::tape::{BackwardFn, Gradients, NodeKind, Tape};

/// A value (an f32 n-dimensional array) plus, when it is recorded, the tape and node
/// that produced it. Cloning is cheap: the value is shared.
///
/// A tensor on no tape is a constant: ops on it compute values only (inference).
/// A tensor on a tape but with no node (an input, a frozen parameter, or anything
/// computed only from those) records the ops applied to it once a trainable
/// parameter joins in.
#[derive(Clone)]
pub struct Tensor {
    value: Arc<ArrayD<f32>>,
    tape: Option<Tape>,
    node: Option<usize>,
    /// For an input that wants its gradient ([`Tape::input_with_grad`]): the id
    /// [`Gradients::wrt`] finds it under.
    leaf: Option<ParamId>,
}

impl Tensor {
    /// A constant on no tape: operations on it are not recorded.
    pub fn new(value: impl Into<ArrayD<f32>>) -> Self {
        Self::from_parts(Arc::new(value.into()), None, None)
    }

    pub(crate) fn from_parts(value: Arc<ArrayD<f32>>, tape: Option<Tape>, node: Option<usize>) -> Self {
        Tensor {
            value,
            tape,
            node,
            leaf: None,
        }
    }

    /// An input leaf: recorded at `node`, its gradient reported under `id`.
    pub(crate) fn leaf(value: Arc<ArrayD<f32>>, tape: Tape, node: usize, id: ParamId) -> Self {
        Tensor {
            value,
            tape: Some(tape),
            node: Some(node),
            leaf: Some(id),
        }
    }

    /// The id this tensor's gradient is reported under, if it is an input made by
    /// [`Tape::input_with_grad`].
    pub(crate) fn leaf_id(&self) -> Option<ParamId> {
        self.leaf
    }

    /// The value.
    pub fn value(&self) -> &ArrayD<f32> {
        &self.value
    }

    /// The value as a shared pointer (no copy).
    pub fn shared_value(&self) -> Arc<ArrayD<f32>> {
        self.value.clone()
    }

    /// Takes the value out, copying only if another handle shares it.
    pub fn into_value(self) -> ArrayD<f32> {
        Arc::try_unwrap(self.value).unwrap_or_else(|shared| (*shared).clone())
    }

    /// The shape, e.g. `[N, C, H, W]`.
    pub fn shape(&self) -> &[usize] {
        self.value.shape()
    }

    /// Number of dimensions.
    pub fn ndim(&self) -> usize {
        self.value.ndim()
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.value.len()
    }

    /// True if the tensor has no elements.
    pub fn is_empty(&self) -> bool {
        self.value.is_empty()
    }

    /// The single value of a one-element tensor (a loss).
    pub fn item(&self) -> f32 {
        assert_eq!(
            self.len(),
            1,
            "item: expects a one-element tensor, got shape {:?}",
            self.shape()
        );
        *self.value.iter().next().expect("one element")
    }

    /// A four-dimensional view, for NCHW ops. Panics naming `op` if the rank differs.
    pub(crate) fn view4(&self, op: &str) -> ArrayView4<'_, f32> {
        self.value
            .view()
            .into_dimensionality::<Ix4>()
            .unwrap_or_else(|_| panic!("{op}: expects a 4-d NCHW tensor, got shape {:?}", self.shape()))
    }

    /// The tape this tensor is recorded on, if any.
    pub fn tape(&self) -> Option<&Tape> {
        self.tape.as_ref()
    }

    /// True if a gradient flows back through this tensor to some parameter or input.
    pub fn requires_grad(&self) -> bool {
        self.node.is_some()
    }

    /// The same value, cut off from the graph: no gradient flows through it.
    pub fn detach(&self) -> Tensor {
        Tensor::from_parts(self.value.clone(), self.tape.clone(), None)
    }

    /// Reverse-mode differentiation from this scalar (a loss): one sweep over the
    /// tape, returning the gradient of every trainable parameter that contributed.
    ///
    /// Calling it again returns the same gradients. If nothing trainable contributed
    /// (all frozen, or no tape), the result is empty.
    pub fn backward(&self) -> Gradients {
        assert_eq!(
            self.len(),
            1,
            "backward: expects a scalar (one-element) loss, got shape {:?}; use backward_with",
            self.shape()
        );
        self.backward_with(ArrayD::ones(self.value.raw_dim()))
    }

    /// Reverse-mode differentiation from a tensor of any shape, given the gradient
    /// of some scalar with respect to it (`upstream`, of this tensor's shape): the
    /// vector-Jacobian product, PyTorch's `y.backward(gradient)`. `backward()` is
    /// `backward_with(ones)` on a scalar.
    ///
    /// ```
    /// use ferrocnn::Tape;
    /// use ndarray::array;
    ///
    /// let tape = Tape::new();
    /// let x = tape.input_with_grad(array![1.0f32, 2.0, 3.0].into_dyn());
    /// let y = x.square(); // dy/dx = 2x, elementwise
    /// let grads = y.backward_with(array![1.0f32, 0.0, 10.0].into_dyn());
    /// assert_eq!(grads.wrt(&x).unwrap(), &array![2.0f32, 0.0, 60.0].into_dyn());
    /// ```
    pub fn backward_with(&self, upstream: ArrayD<f32>) -> Gradients {
        assert_eq!(
            upstream.shape(),
            self.shape(),
            "backward_with: the upstream gradient's shape {:?} differs from the tensor's {:?}",
            upstream.shape(),
            self.shape()
        );
        match (&self.tape, self.node) {
            (Some(tape), Some(node)) => tape.backward_from(node, upstream),
            _ => Gradients::default(),
        }
    }

    /// Records the result of an op: `value` computed from `inputs`, with `backward`
    /// giving the inputs' gradients from the output's. Records nothing if no input
    /// needs a gradient, so frozen layers and inference cost no tape memory.
    pub(crate) fn record<F>(
        name: &'static str,
        inputs: &[&Tensor],
        value: impl Into<Arc<ArrayD<f32>>>,
        backward: F,
    ) -> Tensor
    where
        F: Fn(&ArrayD<f32>, &[bool]) -> Vec<Option<ArrayD<f32>>> + 'static,
    {
        // The rest is not generic: compiled once rather than once per op's closure.
        let recorded = Tensor::recorded_inputs(name, inputs);
        let backward = recorded.1.is_some().then(|| Box::new(backward) as BackwardFn);
        Tensor::push_op(name, value.into(), recorded, backward)
    }

    /// Records `value`, `input`'s elements under another shape (see
    /// `NodeKind::Reshape`).
    pub(crate) fn record_reshape(input: &Tensor, value: ArrayD<f32>) -> Tensor {
        let node = input.reshape_node();
        Tensor::from_parts(Arc::new(value), input.tape.clone(), node)
    }

    /// [`record_reshape`](Tensor::record_reshape) of a tensor given up: `reshape`
    /// turns its value (shared or not) into the result's.
    pub(crate) fn record_reshape_owned(
        self,
        reshape: impl FnOnce(Arc<ArrayD<f32>>) -> ArrayD<f32>,
    ) -> Tensor {
        let node = self.reshape_node();
        let Tensor { value, tape, .. } = self;
        Tensor::from_parts(Arc::new(reshape(value)), tape, node)
    }

    /// The node of a reshape of this tensor, if it is recorded.
    fn reshape_node(&self) -> Option<usize> {
        match (&self.tape, self.node) {
            (Some(tape), Some(node)) => Some(tape.push(NodeKind::Reshape {
                input: node,
                shape: self.shape().to_vec(),
            })),
            _ => None,
        }
    }

    /// The tape `inputs` are on (all on one, checked), and their nodes if any of
    /// them is recorded.
    fn recorded_inputs<'t>(
        name: &str,
        inputs: &[&'t Tensor],
    ) -> (Option<&'t Tape>, Option<Vec<Option<usize>>>) {
        let mut tape: Option<&Tape> = None;
        for t in inputs.iter().filter_map(|t| t.tape.as_ref()) {
            match tape {
                None => tape = Some(t),
                Some(first) => assert!(first.same_as(t), "{name}: inputs are recorded on different tapes"),
            }
        }
        let node_inputs: Vec<Option<usize>> = inputs.iter().map(|t| t.node).collect();
        let recorded = tape.is_some() && node_inputs.iter().any(Option::is_some);
        (tape, recorded.then_some(node_inputs))
    }

    /// [`record`](Tensor::record)'s second half: pushes the op if its inputs are recorded.
    fn push_op(
        name: &'static str,
        value: Arc<ArrayD<f32>>,
        (tape, node_inputs): (Option<&Tape>, Option<Vec<Option<usize>>>),
        backward: Option<BackwardFn>,
    ) -> Tensor {
        let node = match (tape, node_inputs, backward) {
            (Some(tape), Some(inputs), Some(backward)) => Some(tape.push(NodeKind::Op {
                name,
                inputs,
                backward,
            })),
            _ => None,
        };
        Tensor::from_parts(value, tape.cloned(), node)
    }
}

impl fmt::Debug for Tensor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tensor")
            .field("shape", &self.shape())
            .field("requires_grad", &self.requires_grad())
            .field("value", &*self.value)
            .finish()
    }
}
