//! Shape inference: what a module outputs for a given input shape, or an error that
//! names the first layer that cannot take its input. `fit` uses it to turn "this
//! model does not fit this data" into an error instead of a panic deep inside an op.
//!
//! Built-in layers compute their output shape from their settings alone (the
//! helpers here); a module that does not say runs one evaluation pass on a zero
//! image instead ([`run_for_shape`]).

use std::panic::{catch_unwind, AssertUnwindSafe};

use super::{Mode, Module};
use crate::ops::Padding;
use crate::tensor::Tensor;

/// The output shape of a windowed op (conv, pooling) on `[C, H, W]`: `(OH, OW)`.
pub(crate) fn spatial(
    input: &[usize],
    kernel: (usize, usize),
    stride: (usize, usize),
    padding: Padding,
    dilation: (usize, usize),
) -> Result<(usize, usize), String> {
    let &[_, h, w] = input else {
        return Err(format!("expects [channels, height, width], got {input:?}"));
    };
    if stride.0 == 0 || stride.1 == 0 || dilation.0 == 0 || dilation.1 == 0 {
        return Err(format!(
            "stride {stride:?} and dilation {dilation:?} must be at least 1"
        ));
    }
    padding
        .resolve((h, w), kernel, stride, dilation)
        .map(|r| (r.out_h, r.out_w))
        .ok_or_else(|| format!("kernel {kernel:?} with {padding:?} padding does not fit a {h}×{w} input"))
}

/// `[C, H, W]` with `C == channels`, or an error saying what was expected.
pub(crate) fn expect_channels(input: &[usize], channels: usize) -> Result<(), String> {
    match input {
        [c, _, _] if *c == channels => Ok(()),
        [c, _, _] => Err(format!(
            "expects {channels} input channels, got shape {input:?} ({c} channels)"
        )),
        _ => Err(format!(
            "expects [{channels}, height, width], got shape {input:?}"
        )),
    }
}

/// The output shape of `module` found by running it, in evaluation mode on a copy,
/// on one zero image of `input`. A panic inside (an op refusing its input) becomes
/// the error.
pub(crate) fn run_for_shape(module: &dyn Module, input: &[usize]) -> Result<Vec<usize>, String> {
    let mut copy = module.clone_module();
    let mut shape = vec![1];
    shape.extend_from_slice(input);
    let x = Tensor::new(ndarray::ArrayD::zeros(ndarray::IxDyn(&shape)));
    let out = catch_unwind(AssertUnwindSafe(|| copy.forward(&x, Mode::Eval))).map_err(|panic| {
        let message = panic
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| panic.downcast_ref::<&str>().copied())
            .unwrap_or("it panicked");
        format!("{} does not take input {input:?}: {message}", module.kind())
    })?;
    Ok(out.shape().get(1..).unwrap_or_default().to_vec())
}
