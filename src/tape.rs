//! The tape: a Wengert list of the operations of one forward pass, and the single
//! reverse sweep that turns it into gradients.
//!
//! Each op that has an input requiring a gradient appends a [`Node`] holding the ids
//! of its inputs' nodes and a closure computing the vector-Jacobian products. Nodes
//! are appended in execution order, so reverse insertion order is a valid
//! topological order: `backward()` is a plain loop (no recursion, no sort), and a
//! graph thousands of ops deep cannot overflow the stack.
//!
//! A forward pass without a tape records nothing: ops on tensors that are on no tape
//! (see [`Tensor::new`]) only compute values, and every intermediate is freed as soon
//! as its last handle drops. That is inference mode; there is no global flag to forget.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Instant;

use ndarray::ArrayD;

use crate::observe::{Observer, Trace};
use crate::ops::finite::array_all_finite;
use crate::ops::parallel::add_assign;
use crate::ops::shape::reshape_owned;
use crate::profile::{Phase, Profiler};

use crate::param::{Param, ParamId};
use crate::tensor::Tensor;

/// Computes, from the gradient of an op's output, the gradients of its inputs.
/// `needs[i]` says whether input `i` wants one; the closure returns `None` for those
/// that do not, so expensive products (a conv's input gradient on the first layer)
/// are skipped.
pub(crate) type BackwardFn = Box<dyn Fn(&ArrayD<f32>, &[bool]) -> Vec<Option<ArrayD<f32>>>>;

pub(crate) enum NodeKind {
    /// A trainable parameter bound to the tape: its gradient is an output of backward.
    Param(ParamId),
    /// An op whose output depends on at least one node.
    Op {
        name: &'static str,
        /// One entry per op input: the input's node, or `None` if it needs no gradient.
        inputs: Vec<Option<usize>>,
        backward: BackwardFn,
    },
    /// A reshape of node `input` (see [`Tensor::reshape`]): its backward is the
    /// gradient under the input's `shape`. The sweep owns each gradient, so this
    /// moves it rather than copying it as a closure given `&grad` would have to
    /// (R2's flattened activations: 2.4 MB a step, 1% of its step).
    Reshape { input: usize, shape: Vec<usize> },
}

/// Records one forward pass. Cheap to clone: clones share the same list.
///
/// ```
/// use ferrocnn::{Param, Tape};
/// use ndarray::array;
///
/// let w = Param::new(array![1.0f32, 2.0, 3.0].into_dyn());
/// let tape = Tape::new();
/// let x = tape.input(array![2.0f32, 0.5, -1.0].into_dyn());
/// let loss = (&x * &tape.param(&w)).sum();          // 2·1 + 0.5·2 − 1·3 = 0
/// assert_eq!(loss.item(), 0.0);
/// let grads = loss.backward();
/// assert_eq!(grads[&w], array![2.0f32, 0.5, -1.0].into_dyn());
/// ```
#[derive(Clone, Default)]
pub struct Tape {
    nodes: Rc<RefCell<Vec<NodeKind>>>,
    observer: Option<Rc<Observer>>,
}

impl Tape {
    /// A new, empty tape. Use one per forward/backward pass.
    pub fn new() -> Self {
        Self::default()
    }

    /// A new tape whose forward pass (per layer type) and backward pass (per op)
    /// are timed into `profiler`.
    pub fn with_profiler(profiler: &Profiler) -> Self {
        Self::observed(Observer {
            profiler: Some(profiler.clone()),
            ..Observer::default()
        })
    }

    /// A new tape that keeps every module's output of the pass (see `observe`).
    pub(crate) fn traced() -> Self {
        Self::observed(Observer {
            trace: Some(RefCell::new(Trace::default())),
            ..Observer::default()
        })
    }

    /// A new tape that keeps every module's output and watches the backward sweep
    /// for the first op that makes a NaN or infinity (anomaly detection), timing
    /// into `profiler` if given.
    pub(crate) fn watching_anomalies(profiler: Option<&Profiler>) -> Self {
        Self::observed(Observer {
            profiler: profiler.cloned(),
            trace: Some(RefCell::new(Trace::default())),
            first_bad_backward: Some(RefCell::new(None)),
        })
    }

    /// The first op of the backward sweep that turned a finite gradient into a
    /// non-finite one, on a tape made by [`Tape::watching_anomalies`].
    pub(crate) fn first_bad_backward(&self) -> Option<&'static str> {
        self.observer
            .as_ref()
            .and_then(|o| o.first_bad_backward.as_ref())
            .and_then(|first| *first.borrow())
    }

    fn observed(observer: Observer) -> Self {
        Tape {
            nodes: Rc::default(),
            observer: Some(Rc::new(observer)),
        }
    }

    pub(crate) fn observer(&self) -> Option<Rc<Observer>> {
        self.observer.clone()
    }

    /// The outputs a traced tape kept.
    pub(crate) fn take_trace(&self) -> Trace {
        self.observer
            .as_ref()
            .and_then(|o| o.trace.as_ref())
            .map(|t| t.take())
            .unwrap_or_default()
    }

    /// Puts data on the tape as an input: no gradient is computed for it, but the ops
    /// applied to it (and the parameters bound to them) are recorded.
    pub fn input(&self, value: impl Into<ArrayD<f32>>) -> Tensor {
        Tensor::from_parts(Arc::new(value.into()), Some(self.clone()), None)
    }

    /// Puts data on the tape as an input whose gradient `backward` computes, found
    /// with [`Gradients::wrt`]: what saliency maps and adversarial examples need
    /// (PyTorch's `x.requires_grad_()`).
    ///
    /// ```
    /// use ferrocnn::{Param, Tape};
    /// use ndarray::array;
    ///
    /// let w = Param::new(array![1.0f32, 2.0].into_dyn());
    /// let tape = Tape::new();
    /// let x = tape.input_with_grad(array![3.0f32, 4.0].into_dyn());
    /// let y = (&x * &tape.param(&w)).sum();
    /// let grads = y.backward();
    /// assert_eq!(grads.wrt(&x).unwrap(), &array![1.0f32, 2.0].into_dyn()); // ∂y/∂x = w
    /// assert_eq!(grads[&w], array![3.0f32, 4.0].into_dyn()); // ∂y/∂w = x
    /// ```
    pub fn input_with_grad(&self, value: impl Into<ArrayD<f32>>) -> Tensor {
        let id = ParamId::fresh();
        let node = self.push(NodeKind::Param(id));
        Tensor::leaf(Arc::new(value.into()), self.clone(), node, id)
    }

    /// Binds a parameter to the tape. A trainable parameter becomes a leaf whose
    /// gradient `backward()` reports under the parameter's id; a frozen one is bound
    /// as a constant, and no gradient flows to it. The value is shared, not copied.
    pub fn param(&self, param: &Param) -> Tensor {
        let node = if param.is_frozen() {
            None
        } else {
            Some(self.push(NodeKind::Param(param.id())))
        };
        Tensor::from_parts(param.shared_value(), Some(self.clone()), node)
    }

    /// Number of recorded nodes (parameter leaves and ops).
    pub fn len(&self) -> usize {
        self.nodes.borrow().len()
    }

    /// True if nothing has been recorded.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub(crate) fn push(&self, node: NodeKind) -> usize {
        let mut nodes = self.nodes.borrow_mut();
        nodes.push(node);
        nodes.len() - 1
    }

    pub(crate) fn same_as(&self, other: &Tape) -> bool {
        Rc::ptr_eq(&self.nodes, &other.nodes)
    }

    /// One reverse sweep from node `root`, seeded with `seed` (the gradient of the
    /// root with respect to itself). Closures are `Fn`, so running it again gives the
    /// same gradients: backward is idempotent.
    pub(crate) fn backward_from(&self, root: usize, seed: ArrayD<f32>) -> Gradients {
        let nodes = self.nodes.borrow();
        let mut pending: Vec<Option<ArrayD<f32>>> = vec![None; root + 1];
        pending[root] = Some(seed);
        let mut grads = Gradients::default();
        let profiler = self.observer.as_ref().and_then(|o| o.profiler.as_ref());
        let watch = self.observer.as_ref().and_then(|o| o.first_bad_backward.as_ref());
        for id in (0..=root).rev() {
            // Taking the gradient frees it as soon as it has been propagated.
            let Some(grad) = pending[id].take() else {
                continue;
            };
            match &nodes[id] {
                NodeKind::Param(pid) => grads.accumulate(*pid, grad),
                // No anomaly watch: a reshape cannot make a finite gradient non-finite.
                NodeKind::Reshape { input, shape } => {
                    let started = profiler.map(|_| Instant::now());
                    let g = reshape_owned(grad, shape);
                    if let (Some(profiler), Some(started)) = (profiler, started) {
                        profiler.record(started, "reshape", Phase::Backward);
                    }
                    accumulate(&mut pending[*input], g, "reshape");
                }
                NodeKind::Op {
                    name,
                    inputs,
                    backward,
                } => {
                    let needs: Vec<bool> = inputs.iter().map(Option::is_some).collect();
                    let started = profiler.map(|_| Instant::now());
                    let input_grads = backward(&grad, &needs);
                    if let (Some(profiler), Some(started)) = (profiler, started) {
                        profiler.record(started, name, Phase::Backward);
                    }
                    if let Some(first) = watch.filter(|first| first.borrow().is_none()) {
                        let made_bad = input_grads.iter().flatten().any(|g| !array_all_finite(g));
                        if made_bad && array_all_finite(&grad) {
                            *first.borrow_mut() = Some(*name);
                        }
                    }
                    for (input, g) in inputs.iter().zip(input_grads) {
                        if let (Some(input), Some(g)) = (input, g) {
                            accumulate(&mut pending[*input], g, name);
                        }
                    }
                }
            }
        }
        grads
    }
}

/// Adds `g` into `slot`: a value used twice receives the sum of both uses' gradients.
fn accumulate(slot: &mut Option<ArrayD<f32>>, g: ArrayD<f32>, op: &str) {
    match slot {
        None => *slot = Some(g),
        Some(acc) => {
            assert_eq!(
                acc.shape(),
                g.shape(),
                "backward of {op}: gradient shape {:?} does not match {:?}",
                g.shape(),
                acc.shape()
            );
            add_assign(acc, &g);
        }
    }
}

/// The gradients of one backward pass, keyed by parameter id.
///
/// Gradients live here, not inside the parameters, so there is nothing to zero
/// between steps: each backward pass returns a fresh set.
#[derive(Clone, Debug, Default)]
pub struct Gradients {
    by_param: HashMap<ParamId, ArrayD<f32>>,
}

impl Gradients {
    /// An empty set, to fill with [`Gradients::insert`]: e.g. to step an optimizer
    /// with gradients computed elsewhere.
    ///
    /// ```
    /// use ferrocnn::optim::{Optimizer, SGDConfig, SGD};
    /// use ferrocnn::{Gradients, Param};
    /// use ndarray::array;
    ///
    /// let mut w = Param::new(array![1.0f32, 1.0].into_dyn());
    /// let mut grads = Gradients::new();
    /// grads.insert(&w, array![0.5f32, -0.5].into_dyn());
    /// let mut sgd = SGD::new(SGDConfig { lr: 0.1, ..Default::default() });
    /// sgd.step(&mut [&mut w], &grads);
    /// assert_eq!(w.value(), &array![0.95f32, 1.05].into_dyn());
    /// ```
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the gradient of `param`, returning the one it replaces.
    ///
    /// # Panics
    /// If the gradient's shape differs from the parameter's.
    pub fn insert(&mut self, param: &Param, grad: ArrayD<f32>) -> Option<ArrayD<f32>> {
        assert_eq!(
            grad.shape(),
            param.shape(),
            "Gradients::insert: gradient of shape {:?} for a parameter of shape {:?}",
            grad.shape(),
            param.shape()
        );
        self.by_param.insert(param.id(), grad)
    }

    /// The gradient of an input made by [`Tape::input_with_grad`], if it took part
    /// in the pass.
    pub fn wrt(&self, input: &Tensor) -> Option<&ArrayD<f32>> {
        input.leaf_id().and_then(|id| self.by_param.get(&id))
    }

    /// The gradient of a parameter, if it took part in the pass and is not frozen.
    pub fn get(&self, param: &Param) -> Option<&ArrayD<f32>> {
        self.by_param.get(&param.id())
    }

    /// The gradient for a parameter id.
    pub fn get_by_id(&self, id: ParamId) -> Option<&ArrayD<f32>> {
        self.by_param.get(&id)
    }

    /// Mutable access, e.g. for clipping or averaging.
    pub fn get_mut(&mut self, id: ParamId) -> Option<&mut ArrayD<f32>> {
        self.by_param.get_mut(&id)
    }

    /// Number of parameters with a gradient.
    pub fn len(&self) -> usize {
        self.by_param.len()
    }

    /// True when no parameter received a gradient.
    pub fn is_empty(&self) -> bool {
        self.by_param.is_empty()
    }

    /// Iterates over `(id, gradient)` pairs in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (ParamId, &ArrayD<f32>)> {
        self.by_param.iter().map(|(id, g)| (*id, g))
    }

    /// Iterates mutably over all gradients.
    pub fn values_mut(&mut self) -> impl Iterator<Item = &mut ArrayD<f32>> {
        self.by_param.values_mut()
    }

    /// The L2 norm of all gradients taken together, accumulated in f64.
    pub fn global_norm(&self) -> f32 {
        let sum: f64 = self
            .by_param
            .values()
            .flat_map(|g| g.iter())
            .map(|&v| f64::from(v) * f64::from(v))
            .sum();
        sum.sqrt() as f32
    }

    /// Scales every gradient so that the global norm is at most `max_norm`
    /// (PyTorch's `clip_grad_norm_`): by `max_norm / (norm + 1e-6)` when that is
    /// below 1. Returns the norm before clipping.
    ///
    /// Unlike PyTorch, a non-finite norm leaves the gradients as they are (PyTorch
    /// would zero them for an infinite norm); the returned norm tells the caller.
    pub fn clip_global_norm(&mut self, max_norm: f32) -> f32 {
        let norm = self.global_norm();
        let scale = max_norm / (norm + 1e-6);
        if norm.is_finite() && scale < 1.0 {
            for g in self.by_param.values_mut() {
                g.mapv_inplace(|v| v * scale);
            }
        }
        norm
    }

    pub(crate) fn accumulate(&mut self, id: ParamId, grad: ArrayD<f32>) {
        match self.by_param.get_mut(&id) {
            None => {
                self.by_param.insert(id, grad);
            }
            Some(acc) => *acc += &grad,
        }
    }
}

impl std::ops::Index<&Param> for Gradients {
    type Output = ArrayD<f32>;

    /// Panics if the parameter has no gradient (frozen, or not used in the pass).
    fn index(&self, param: &Param) -> &ArrayD<f32> {
        self.get(param)
            .unwrap_or_else(|| panic!("no gradient for parameter {:?}", param.id()))
    }
}
