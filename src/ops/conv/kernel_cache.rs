//! Winograd's transformed kernels (`U = G·g·Gᵀ`) kept between inference calls by
//! the layer that owns the weight.
//!
//! Why: `U` depends on the weight alone, yet the op recomputed it on every call.
//! With one image per call there is no batch to spread that over: it was 12–19% of
//! the default net's batch-1 latency (perf, BENCHMARKS.md "Batch-1 latency").
//!
//! Why it is never stale: the entry is keyed by the identity of the weight's value,
//! the `Arc` a [`Param`](crate::param::Param) holds, through a `Weak` pointer. A
//! `Param` changes its value only through `Arc::make_mut` (`value_mut`, what every
//! optimizer step uses) or by replacing the `Arc` (`set_value`, loading). While a
//! `Weak` to the old allocation exists, `make_mut` never writes into it: it copies
//! the value out when the value is shared and moves it to a new allocation when
//! only weak pointers remain, and the allocation itself cannot be freed and reused
//! for another value as long as the `Weak` lives. So the same address means the same,
//! unmutated value. (`Linear`'s transposed weight is kept the same way, and so are a
//! residual block's folded weights, whose own `Arc`s are never mutated, only
//! replaced: `nn/folded_weight.rs`.) The layer asks only when nothing is recorded:
//! in training the weight changes every step.

use std::sync::{Arc, Weak};

use ndarray::ArrayD;

use super::algorithm::{winograd_forward_form, ConvAlgorithm, WinogradForm};
use super::im2col::ConvGeometry;
use super::winograd::Winograd;

/// One weight value's transformed kernels, or nothing yet. See the module doc.
#[derive(Clone, Debug, Default)]
pub struct KernelCache {
    entry: Option<Kept>,
}

/// The weight value (by identity) and the kernels made from it.
type Kept = (Weak<ArrayD<f32>>, WinogradForm, Arc<Vec<f32>>);

impl KernelCache {
    /// The kernels made from `weight` by `transform` for Winograd's `form` (each
    /// form has its own layout), made now if `weight` is not the value the kept ones
    /// were made from, or they were made for the other form.
    pub(crate) fn get(
        &mut self,
        weight: &Arc<ArrayD<f32>>,
        form: WinogradForm,
        transform: impl FnOnce() -> Vec<f32>,
    ) -> Arc<Vec<f32>> {
        if let Some((from, kept_form, u)) = &self.entry
            && std::ptr::eq(from.as_ptr(), Arc::as_ptr(weight))
            && *kept_form == form
        {
            return u.clone();
        }
        let u = Arc::new(transform());
        self.entry = Some((Arc::downgrade(weight), form, u.clone()));
        u
    }
}

/// Winograd's transformed kernels for the forward pass of geometry `g` with `o`
/// output channels on `batch` images, kept in `cache`, when that pass runs by
/// Winograd (`algorithm`) and the layer gave a cache; `None` otherwise, and the op
/// transforms `w` itself. `weight` is the value `w` (standard layout) was read from:
/// the cache's key. (A layer called at batch sizes that alternate between the two
/// forms transforms its kernels on each switch.)
pub(crate) fn forward_kernels(
    cache: Option<&mut KernelCache>,
    algorithm: ConvAlgorithm,
    g: &ConvGeometry,
    o: usize,
    batch: usize,
    weight: &Arc<ArrayD<f32>>,
    w: &[f32],
) -> Option<Arc<Vec<f32>>> {
    let cache = cache.filter(|_| algorithm == ConvAlgorithm::Winograd)?;
    let form = winograd_forward_form(g, o, batch);
    Some(cache.get(weight, form, || forward_kernel(g, o, form, w)))
}

/// `U` of the kernels `w` for Winograd's forward pass in `form`.
pub(super) fn forward_kernel(g: &ConvGeometry, o: usize, form: WinogradForm, w: &[f32]) -> Vec<f32> {
    let winograd = Winograd::forward(g, o);
    match form {
        WinogradForm::Slots => winograd.transform_kernel(w, false),
        WinogradForm::Channels => winograd.channel_kernel(w),
    }
}
