//! Parameters: the learned values (kernels, weights, biases) that live outside any
//! tape, each with a stable id under which gradients and optimizer state are found.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use ndarray::ArrayD;

use crate::tensor::Tensor;

/// Identifies a parameter for its whole life: gradients and optimizer state are keyed
/// by it. Ids are unique within a process; a loaded model gets fresh ones.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ParamId(u64);

impl ParamId {
    pub(crate) fn fresh() -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        ParamId(NEXT.fetch_add(1, Ordering::Relaxed))
    }
}

/// Parameters are kept in standard (row-major, contiguous) layout so that
/// optimizers and ops can work on them as flat slices.
fn standard(value: ArrayD<f32>) -> ArrayD<f32> {
    if value.is_standard_layout() {
        value
    } else {
        value.as_standard_layout().into_owned()
    }
}

/// A learned value with a stable id and a frozen flag (PyTorch's
/// `requires_grad=False`, Keras's `trainable=False`).
///
/// The value is reference counted so that binding it to a tape shares it instead of
/// copying; [`Param::value_mut`] copies only if a tape still holds it.
#[derive(Clone, Debug)]
pub struct Param {
    id: ParamId,
    value: Arc<ArrayD<f32>>,
    frozen: bool,
}

impl Param {
    /// A trainable parameter with a fresh id.
    pub fn new(value: impl Into<ArrayD<f32>>) -> Self {
        Param {
            id: ParamId::fresh(),
            value: Arc::new(standard(value.into())),
            frozen: false,
        }
    }

    /// This parameter's id.
    pub fn id(&self) -> ParamId {
        self.id
    }

    /// The current value.
    pub fn value(&self) -> &ArrayD<f32> {
        &self.value
    }

    /// Mutable access to the value (what an optimizer step uses).
    pub fn value_mut(&mut self) -> &mut ArrayD<f32> {
        Arc::make_mut(&mut self.value)
    }

    /// Replaces the value. Panics if the shape differs: a parameter's shape is part
    /// of the architecture (use a new `Param` to change it).
    pub fn set_value(&mut self, value: ArrayD<f32>) {
        assert_eq!(
            self.value.shape(),
            value.shape(),
            "Param::set_value: shape {:?} differs from the parameter's {:?}",
            value.shape(),
            self.value.shape()
        );
        self.value = Arc::new(standard(value));
    }

    /// The shape of the value.
    pub fn shape(&self) -> &[usize] {
        self.value.shape()
    }

    /// Number of scalars in the value.
    pub fn len(&self) -> usize {
        self.value.len()
    }

    /// True if the value has no elements.
    pub fn is_empty(&self) -> bool {
        self.value.is_empty()
    }

    /// True if no gradient is computed for this parameter and optimizers skip it.
    pub fn is_frozen(&self) -> bool {
        self.frozen
    }

    /// Freezes or unfreezes the parameter.
    pub fn set_frozen(&mut self, frozen: bool) {
        self.frozen = frozen;
    }

    /// Binds this parameter to the tape `like` is recorded on, or as a plain constant
    /// if `like` is on no tape (inference). Layers call this in `forward`.
    pub fn bind(&self, like: &Tensor) -> Tensor {
        match like.tape() {
            Some(tape) => tape.param(self),
            None => Tensor::from_parts(self.value.clone(), None, None),
        }
    }

    pub(crate) fn shared_value(&self) -> Arc<ArrayD<f32>> {
        self.value.clone()
    }
}
