//! How a [`Residual`] runs a ResNet basic block in fewer passes over memory.
//!
//! A basic block's branches are chains of `Conv2d → BatchNorm2d (→ ReLU)` links,
//! and the block ends with `relu(main + shortcut)`. Run layer by layer, each batch
//! norm, ReLU and the addition is a pass of its own over a full activation, forward
//! and backward. When `Residual` finds its branches in that form, it runs them
//! through fused ops instead:
//!
//! - in training, each link's batch norm takes its ReLU with it, and the main
//!   branch's last one the addition and the block's ReLU
//!   ([`Tensor::batch_norm2d_then`]), and is recorded with its convolution as one
//!   op: the conv takes each output plane's moments for the statistics while the
//!   plane is in cache, and the backward pass computes batch norm's input gradient
//!   straight into the conv's gradient planes. The same values and gradients, bit
//!   for bit;
//! - in inference (no tape, evaluation mode), each batch norm is folded into the
//!   convolution before it (`W·scale`, `shift` as its bias), and the bias, the
//!   addition and ReLU are applied while each image's products are in cache
//!   ([`Tensor::conv2d_inference`]): equal up to rounding (1e-5, tested).
//!
//! The module tree, the parameter names and the model file are those of the
//! layers; only the schedule changes, and only inside this block, which knows the
//! pattern. Anything else — another layer in a branch, a ReLU after the last batch
//! norm of the main branch, a traced pass that wants every layer's own output —
//! runs layer by layer.
//!
//! Each convolution keeps its folded weight, and Winograd's transform of it,
//! between inference calls ([`FoldedWeight`](super::folded_weight)): with one
//! image per call, transforming the kernels again was a sixth of R3's time. The
//! entry is keyed by the weight's value and the batch norm's scale, so any change
//! to either (an optimizer step, `set_value`, loading, a running statistic written
//! by hand) folds again; the bias is recomputed on every call.

use super::{BatchNorm2d, Conv2d, Mode, Module, ReLU, Residual, Sequential};
use crate::observe::Probe;
use crate::tensor::Tensor;

/// One `Conv2d → BatchNorm2d (→ ReLU)` link of a branch.
struct Link<'a> {
    conv: &'a mut Conv2d,
    bn: &'a mut BatchNorm2d,
    relu: bool,
}

/// The links of `branch`, if it is a `Sequential` of them and nothing else.
fn links(branch: &mut dyn Module) -> Option<Vec<Link<'_>>> {
    let layers = branch.downcast_mut::<Sequential>()?.layers_mut();
    let mut out: Vec<Link> = Vec::new();
    let mut layers = layers.iter_mut().map(|(_, m)| m.as_mut()).peekable();
    while let Some(conv) = layers.next() {
        let conv = conv.downcast_mut::<Conv2d>()?;
        let bn = layers.next()?.downcast_mut::<BatchNorm2d>()?;
        let relu = layers.next_if(|m| m.is::<ReLU>()).is_some();
        out.push(Link { conv, bn, relu });
    }
    (!out.is_empty()).then_some(out)
}

/// Whether the pass on `x` keeps each module's output (summary, feature maps,
/// anomaly detection): then every layer must run as itself.
fn traced(x: &Tensor) -> bool {
    x.tape()
        .and_then(|t| t.observer())
        .is_some_and(|o| o.trace.is_some())
}

impl Residual {
    /// The block's forward pass through fused ops, or `None` if its branches are
    /// not chains of links (see the module docs) and it must run layer by layer.
    pub(super) fn forward_fused(&mut self, x: &Tensor, mode: Mode) -> Option<Tensor> {
        if traced(x) {
            return None;
        }
        let relu = self.relu;
        let mut main = links(self.main.as_mut())?;
        let shortcut = match &mut self.shortcut {
            Some(s) => Some(links(s.as_mut())?),
            None => None,
        };
        if main.last().is_some_and(|l| l.relu) || shortcut.as_ref().is_some_and(|s| s.iter().any(|l| l.relu))
        {
            return None;
        }
        let last = main.pop().expect("at least one link");
        let inference = x.tape().is_none() && mode == Mode::Eval;
        let run = |link: &mut Link, x: &Tensor, skip: Option<&Tensor>, relu: bool| {
            if inference {
                folded(link, x, skip, relu)
            } else {
                trained(link, x, mode, skip, relu)
            }
        };
        let mut h = x.clone();
        for link in &mut main {
            h = run(link, &h, None, link.relu);
        }
        let skip = match shortcut {
            Some(links) => links
                .into_iter()
                .fold(x.clone(), |s, mut link| run(&mut link, &s, None, false)),
            None => x.clone(),
        };
        let mut last = last;
        // As the layer-by-layer pass, a mismatch panics naming both shapes (a kernel
        // that does not fit panics in the convolution).
        if let Ok(out) = last.conv.output_shape(&h.shape()[1..]) {
            let main_shape = [&h.shape()[..1], &out[..]].concat();
            assert!(
                main_shape == skip.shape(),
                "Residual: the main branch gives {main_shape:?} but the shortcut {:?}",
                skip.shape()
            );
        }
        Some(run(&mut last, &h, Some(&skip), relu))
    }
}

/// A link in training form: the convolution, then its batch norm with the ReLU (and
/// the addition) in one op. Where the batch norm normalizes with the batch's
/// statistics, the two are recorded as one op: the conv takes each output plane's
/// moments while its products are in cache (so the statistics need no pass over
/// memory), and the backward pass computes batch norm's input gradient into the
/// conv's gradient planes (so it is never written to memory and read back).
fn trained(link: &mut Link, x: &Tensor, mode: Mode, skip: Option<&Tensor>, relu: bool) -> Tensor {
    if !link.bn.uses_batch_statistics(mode) {
        let y = link.conv.forward(x, mode);
        let probe = Probe::start(&y);
        let out = link.bn.normalize_then(&y, mode, skip, relu);
        probe.finish(link.bn, &out);
        return out;
    }
    let probe = Probe::start(x);
    let (w, b) = link.conv.bind(x);
    let (y, moments, conv) = link.conv.forward_unrecorded(x, &w, b.as_ref());
    let y = Tensor::new(y);
    probe.finish(link.conv, &y);
    let probe = Probe::start(x);
    let out = link.bn.normalize_after_conv(&y, skip, relu, moments, conv);
    probe.finish(link.bn, &out);
    out
}

/// A link in inference form: the batch norm folded into the convolution.
fn folded(link: &mut Link, x: &Tensor, skip: Option<&Tensor>, relu: bool) -> Tensor {
    let probe = Probe::start(x);
    let (scale, shift) = link.bn.eval_affine();
    let conv = &mut *link.conv;
    let (weight, kernels) = conv.folded.get(&conv.weight.shared_value(), &scale);
    let bias: Vec<f32> = match &conv.bias {
        Some(b) => b
            .value()
            .iter()
            .zip(&scale)
            .zip(&shift)
            .map(|((&b, &k), &s)| b * k + s)
            .collect(),
        None => shift,
    };
    let weight = Tensor::from_parts(weight, None, None);
    let out = x.conv2d_inference(&weight, &bias, &conv.options, skip, relu, Some(kernels));
    probe.finish(link.conv, &out);
    out
}
