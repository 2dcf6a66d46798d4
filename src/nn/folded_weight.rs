//! A convolution's weight with the batch norm after it folded in (`W·scale` per
//! output channel), kept between inference calls by the [`Conv2d`](super::Conv2d)
//! it was made from, with Winograd's transformed kernels of it.
//!
//! Why: a residual block runs inference with each batch norm folded into its
//! convolution ([`residual_fused`](super::residual_fused)). Folded afresh on every
//! call, the weight was a new value each time, so the op transformed it again
//! (`U = G·W·Gᵀ`): with one image per call, 16% of R3's latency (perf,
//! BENCHMARKS.md), and the fold itself another 1.5%.
//!
//! Why it is never stale: the folded weight depends on the convolution's weight and
//! the batch norm's per-channel scale `γ/√(running_var + eps)` alone (the shift only
//! enters the bias, which the block recomputes on every call, one value per
//! channel). The entry is keyed by both:
//!
//! - the weight by the identity of its value, the `Arc` its
//!   [`Param`](crate::param::Param) holds, through a `Weak` pointer: the same address
//!   is the same, unmutated value (the argument is in `ops/conv/kernel_cache.rs`);
//! - the scale by value, every bit of it, compared on every call. The batch norm's
//!   running statistics are plain public arrays that anything may write, so no
//!   identity could stand for them; the scale is one value per channel, computed
//!   anyway for the bias, and it covers γ, the running variance and eps at once.
//!
//! The transformed kernels are kept in a [`KernelCache`] keyed, in turn, by the
//! folded weight's own `Arc`, which is new whenever the entry is.

use std::sync::{Arc, Weak};

use ndarray::ArrayD;

use crate::ops::KernelCache;

/// The folded weight of one convolution and what it was made from, or nothing yet.
/// See the module doc.
#[derive(Clone, Debug, Default)]
pub(crate) struct FoldedWeight {
    entry: Option<Entry>,
    kernels: KernelCache,
}

/// A folded weight and its key.
#[derive(Clone, Debug)]
struct Entry {
    /// The convolution's weight value it was made from (by identity).
    weight: Weak<ArrayD<f32>>,
    /// The bits of the scale it was made with.
    scale: Vec<u32>,
    folded: Arc<ArrayD<f32>>,
}

impl FoldedWeight {
    /// `weight` with output channel `k` multiplied by `scale[k]`, made now unless the
    /// kept one was made from this value of `weight` and these bits of `scale`; and
    /// the cache of its Winograd kernels.
    ///
    /// Panics, naming both, if `scale` does not have one value per output channel.
    pub(crate) fn get(
        &mut self,
        weight: &Arc<ArrayD<f32>>,
        scale: &[f32],
    ) -> (Arc<ArrayD<f32>>, &mut KernelCache) {
        let kept = self.entry.as_ref().filter(|e| {
            std::ptr::eq(e.weight.as_ptr(), Arc::as_ptr(weight))
                && e.scale.iter().copied().eq(scale.iter().map(|k| k.to_bits()))
        });
        let folded = match kept {
            Some(entry) => entry.folded.clone(),
            None => {
                let folded = Arc::new(fold(weight, scale));
                self.entry = Some(Entry {
                    weight: Arc::downgrade(weight),
                    scale: scale.iter().map(|k| k.to_bits()).collect(),
                    folded: folded.clone(),
                });
                folded
            }
        };
        (folded, &mut self.kernels)
    }
}

/// `weight` `[O, …]` with each output channel's values times its `scale`.
fn fold(weight: &ArrayD<f32>, scale: &[f32]) -> ArrayD<f32> {
    let mut weight = weight.as_standard_layout().into_owned();
    let per_channel = weight.len() / scale.len().max(1);
    assert_eq!(
        per_channel * scale.len(),
        weight.len(),
        "Residual: a batch norm of {} channels after a convolution of weight {:?}",
        scale.len(),
        weight.shape()
    );
    weight
        .as_slice_mut()
        .expect("standard layout")
        .chunks_exact_mut(per_channel)
        .zip(scale)
        .for_each(|(w, &k)| w.iter_mut().for_each(|w| *w *= k));
    weight
}

#[cfg(test)]
mod tests {
    use super::*;

    fn weight() -> Arc<ArrayD<f32>> {
        Arc::new(ArrayD::from_shape_vec(ndarray::IxDyn(&[2, 1, 1, 2]), vec![1.0, 2.0, 3.0, 4.0]).unwrap())
    }

    #[test]
    fn the_fold_is_kept_for_the_same_weight_and_scale() {
        let (w, mut cache) = (weight(), FoldedWeight::default());
        let first = cache.get(&w, &[2.0, 0.5]).0;
        assert_eq!(first.as_slice().unwrap(), &[2.0, 4.0, 1.5, 2.0]);
        assert!(Arc::ptr_eq(&first, &cache.get(&w, &[2.0, 0.5]).0));
    }

    #[test]
    fn a_new_scale_or_weight_value_folds_again() {
        let (mut w, mut cache) = (weight(), FoldedWeight::default());
        let first = cache.get(&w, &[2.0, 0.5]).0;
        // The scale by every bit: -0.0 is not 0.0.
        assert_eq!(
            cache.get(&w, &[2.0, 1.0]).0.as_slice().unwrap(),
            &[2.0, 4.0, 3.0, 4.0]
        );
        assert!(!Arc::ptr_eq(&first, &cache.get(&w, &[2.0, 0.5]).0));
        let zero = cache.get(&w, &[0.0, 1.0]).0;
        assert!(!Arc::ptr_eq(&zero, &cache.get(&w, &[-0.0, 1.0]).0));
        // A mutation through `make_mut` (what `Param::value_mut` does) while the
        // cache holds a `Weak`: the value moves, and the fold is made again.
        assert_eq!(
            cache.get(&w, &[1.0, 1.0]).0.as_slice().unwrap(),
            &[1.0, 2.0, 3.0, 4.0]
        );
        Arc::make_mut(&mut w)[[0, 0, 0, 0]] = 10.0;
        assert_eq!(
            cache.get(&w, &[1.0, 1.0]).0.as_slice().unwrap(),
            &[10.0, 2.0, 3.0, 4.0]
        );
    }
}
