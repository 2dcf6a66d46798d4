//! Helpers shared by the test files that `use crate::common` (each uses a part).
#![allow(dead_code)]

pub mod png;
pub mod property;
pub mod protobuf;

use std::sync::Mutex;

use ferrocnn::runtime::{self, Simd};
use ferrocnn::{Conv2dOptions, ConvAlgorithm, ConvEpilogue, Padding, Param, PoolWindow, Tape, Tensor};
use ndarray::ArrayD;

/// Both kernel choices: every test that runs through [`with_simd`] checks the
/// baseline (SSE2) kernels too, on machines that have AVX2.
pub const BOTH_SIMD: [Simd; 2] = [Simd::Auto, Simd::Baseline];

/// Runs `f` with the process-wide [`Simd`] setting at `simd`, then restores `Auto`.
/// The tests of every file run on parallel threads of one process: a lock keeps two
/// of them from switching the setting under each other. Tests that do not take it
/// may run under either setting, which give the same results bit for bit.
pub fn with_simd<R>(simd: Simd, f: impl FnOnce() -> R) -> R {
    static LOCK: Mutex<()> = Mutex::new(());
    let _guard = LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    runtime::set_simd(simd);
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    runtime::set_simd(Simd::Auto);
    result.unwrap_or_else(|panic| std::panic::resume_unwind(panic))
}

/// `opts` with `algorithm`.
pub fn using(algorithm: ConvAlgorithm, opts: &Conv2dOptions) -> Conv2dOptions {
    Conv2dOptions { algorithm, ..*opts }
}

/// The output of a conv2d (or, with an epilogue, a conv2d_block) and the gradients
/// of `sum(output · g)`; `dx`, `dw`, `db` are `None` where not asked for.
pub struct ConvRun {
    pub y: ArrayD<f32>,
    pub dx: Option<ArrayD<f32>>,
    pub dw: Option<ArrayD<f32>>,
    pub db: Option<ArrayD<f32>>,
}

/// Runs a conv2d of `x` with `w` and `b` (a conv2d_block with `epilogue`) on a
/// tape, then its backward pass for the output gradient `g(output shape)`. `x` and
/// `w` get gradients when `x_grad` and `w_grad` say so.
#[allow(clippy::too_many_arguments)]
pub fn run_conv(
    x: &ArrayD<f32>,
    (w, w_grad): (&ArrayD<f32>, bool),
    b: Option<&ArrayD<f32>>,
    x_grad: bool,
    opts: &Conv2dOptions,
    epilogue: Option<&ConvEpilogue>,
    g: impl FnOnce(&[usize]) -> ArrayD<f32>,
) -> ConvRun {
    let (px, pw) = (Param::new(x.clone()), Param::new(w.clone()));
    let pb = b.cloned().map(Param::new);
    let tape = Tape::new();
    let xt = if x_grad {
        tape.param(&px)
    } else {
        tape.input(x.clone())
    };
    let wt = if w_grad {
        tape.param(&pw)
    } else {
        Tensor::new(w.clone())
    };
    let bias = pb.as_ref().map(|p| tape.param(p));
    let y = match epilogue {
        Some(e) => xt.conv2d_block(&wt, bias.as_ref(), opts, e),
        None => xt.conv2d(&wt, bias.as_ref(), opts),
    };
    let g = g(y.shape());
    let grads = y.mul(&Tensor::new(g)).sum().backward();
    ConvRun {
        y: y.value().clone(),
        dx: grads.get(&px).cloned(),
        dw: grads.get(&pw).cloned(),
        db: pb.as_ref().and_then(|p| grads.get(p).cloned()),
    }
}

/// Asserts `a` is within `1e-4 · max(1, max |reference|)` of `reference`, element by
/// element: the fast algorithms round differently from the direct loops (Winograd
/// most), by a few units in the 6th significant digit on unit-scale data.
pub fn assert_close(what: &str, a: &ArrayD<f32>, reference: &ArrayD<f32>) {
    assert_eq!(a.shape(), reference.shape(), "{what}: shapes differ");
    let scale = reference.iter().fold(1.0f32, |m, v| m.max(v.abs()));
    for (i, (x, y)) in a.iter().zip(reference.iter()).enumerate() {
        assert!((x - y).abs() <= 1e-4 * scale, "{what}[{i}]: {x} vs reference {y}");
    }
}

/// The epilogue of R1's and R2's conv blocks: ReLU, then a 2×2 max pool at stride 2
/// without padding.
pub fn relu_max_pool_2x2() -> ConvEpilogue {
    ConvEpilogue {
        relu: true,
        max_pool: Some(PoolWindow {
            kernel: (2, 2),
            stride: (2, 2),
            padding: Padding::Valid,
        }),
    }
}
