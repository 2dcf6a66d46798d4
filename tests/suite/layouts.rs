//! Arrays in any memory layout — transposed, permuted (an NHWC batch turned NCHW with
//! `permuted_axes`), column-major, sliced with a step — go wherever a row-major one
//! does and give the same results, as PyTorch's non-contiguous tensors do: a net's
//! forward and backward pass, the elementwise and matrix ops, an optimizer step on
//! parameters set from such arrays, and a gradient taken with respect to an input.

use ferrocnn::gradcheck::random_like;
use ferrocnn::nn::{Mode, Module};
use ferrocnn::optim::{Adam, AdamConfig};
use ferrocnn::{zoo, Optimizer, Param, Tape, Tensor};
use ndarray::{s, ArrayD, Axis, IxDyn, ShapeBuilder, Slice};

/// `a`'s elements in the same logical order, stored in other layouts.
fn other_layouts(a: &ArrayD<f32>) -> Vec<(&'static str, ArrayD<f32>)> {
    let shape = a.shape().to_vec();
    let column_major = {
        let mut f = ArrayD::zeros(IxDyn(&shape).f());
        f.assign(a);
        f
    };
    // Stored NHWC-like (last axis first in memory order), then permuted back.
    let mut order: Vec<usize> = (1..a.ndim()).collect();
    order.push(0);
    let mut back = vec![0; a.ndim()];
    for (i, &axis) in order.iter().enumerate() {
        back[axis] = i;
    }
    let permuted = a
        .view()
        .permuted_axes(IxDyn(&order))
        .as_standard_layout()
        .into_owned()
        .permuted_axes(IxDyn(&back));
    // Every other element of a twice-as-long first axis.
    let mut doubled_shape = shape.clone();
    doubled_shape[0] *= 2;
    let mut doubled = ArrayD::from_elem(IxDyn(&doubled_shape), f32::NAN);
    doubled.slice_axis_mut(Axis(0), Slice::new(0, None, 2)).assign(a);
    let stepped = doubled.slice_axis_move(Axis(0), Slice::new(0, None, 2));
    let layouts = vec![
        ("column-major", column_major),
        ("permuted", permuted),
        ("stepped", stepped),
    ];
    for (name, l) in &layouts {
        assert!(
            !l.is_standard_layout(),
            "{name}: the test meant a non-standard layout"
        );
        assert_eq!(l, a, "{name}: the same elements");
    }
    layouts
}

/// Output and every parameter's gradient of one training-mode pass.
fn pass(net: &mut dyn Module, x: Tensor, labels: &[usize]) -> (ArrayD<f32>, Vec<ArrayD<f32>>) {
    let y = net.forward(&x, Mode::Train);
    let grads = y.cross_entropy(labels).backward();
    let out = y.value().clone();
    let g = net.parameters().into_iter().map(|p| grads[p].clone()).collect();
    (out, g)
}

#[test]
fn nets_take_inputs_in_any_layout() {
    let labels = [3, 1, 4];
    let x = random_like(&[3, 1, 28, 28], 7);
    for (net_name, make) in [
        ("r1", zoo::r1 as fn((usize, usize, usize), usize, u64) -> _),
        ("r3", zoo::r3),
        ("default", zoo::mnist_default),
    ] {
        let want = pass(
            &mut make((1, 28, 28), 10, 5),
            Tape::new().input(x.clone()),
            &labels,
        );
        for (layout, x) in other_layouts(&x) {
            let got = pass(
                &mut make((1, 28, 28), 10, 5),
                Tape::new().input(x.clone()),
                &labels,
            );
            assert_eq!(got.0, want.0, "{net_name}, {layout} input: output");
            assert_eq!(got.1, want.1, "{net_name}, {layout} input: gradients");
            // Off the tape (inference), too.
            let y = make((1, 28, 28), 10, 5).forward(&Tensor::new(x.clone()), Mode::Eval);
            let eval_want = make((1, 28, 28), 10, 5)
                .forward(&Tensor::new(x.as_standard_layout().into_owned()), Mode::Eval);
            assert_eq!(
                y.value(),
                eval_want.value(),
                "{net_name}, {layout} input: inference"
            );
        }
    }
}

#[test]
fn ops_take_operands_in_any_layout() {
    let a = random_like(&[4, 6], 1);
    let b = random_like(&[6, 5], 2);
    let c = random_like(&[4, 6], 3);
    let run = |a: ArrayD<f32>, b: ArrayD<f32>, c: ArrayD<f32>| {
        let tape = Tape::new();
        let (a, b, c) = (
            tape.input_with_grad(a),
            tape.input_with_grad(b),
            tape.input_with_grad(c),
        );
        let y = (&(&a * &c).relu() + &a.exp().mul_scalar(0.5)).matmul(&b).tanh();
        let loss = y.square().sum();
        let grads = loss.backward();
        let g: Vec<ArrayD<f32>> = [&a, &b, &c]
            .iter()
            .map(|t| grads.wrt(t).unwrap().clone())
            .collect();
        (y.value().clone(), g)
    };
    let want = run(a.clone(), b.clone(), c.clone());
    let (la, lb, lc) = (other_layouts(&a), other_layouts(&b), other_layouts(&c));
    for ((name, a), ((_, b), (_, c))) in la.into_iter().zip(lb.into_iter().zip(lc)) {
        // The matrix product may round differently when its operands are laid out
        // differently (its kernels block the sums by layout), as in PyTorch.
        let (y, grads) = run(a, b, c);
        for (what, got, want) in [
            ("y", &y, &want.0),
            ("da", &grads[0], &want.1[0]),
            ("db", &grads[1], &want.1[1]),
            ("dc", &grads[2], &want.1[2]),
        ] {
            assert_eq!(got.shape(), want.shape(), "{name} operands: {what}'s shape");
            let err = got
                .iter()
                .zip(want)
                .fold(0f32, |m, (g, w)| m.max((g - w).abs() / w.abs().max(1.0)));
            assert!(err < 1e-5, "{name} operands: {what} off by {err}");
        }
    }
}

#[test]
fn reshape_copies_any_layout_in_logical_order() {
    // Large enough to be copied over the pool's threads (R2's flatten, 64 × 9216),
    // forward and backward; the elements keep their logical order in every layout.
    let a = random_like(&[8, 16, 24, 24], 4);
    let g = random_like(&[8, 16 * 24 * 24], 5);
    for (name, a) in std::iter::once(("row-major", a.clone())).chain(other_layouts(&a)) {
        let tape = Tape::new();
        let x = tape.input_with_grad(a.clone());
        let y = x.flatten();
        let grads = y.mul(&Tensor::new(g.clone())).sum().backward();
        let flat: Vec<f32> = a.iter().copied().collect();
        assert_eq!(y.shape(), &[8, 16 * 24 * 24], "{name}");
        assert!(y.value().iter().copied().eq(flat), "{name}: values");
        let dx = grads.wrt(&x).unwrap();
        assert_eq!(dx.shape(), a.shape(), "{name}");
        assert!(dx.iter().eq(g.iter()), "{name}: gradient");
    }
}

#[test]
fn reshape_backward_moves_a_row_major_gradient_and_copies_any_other() {
    let a = random_like(&[4, 3, 5, 5], 6);
    let g = random_like(&[4, 75], 7);
    for (name, g) in std::iter::once(("row-major", g.clone())).chain(other_layouts(&g)) {
        let tape = Tape::new();
        let x = tape.input_with_grad(a.clone());
        let upstream = g.clone();
        let at = upstream.as_ptr();
        let grads = x.flatten().backward_with(upstream);
        let dx = grads.wrt(&x).unwrap();
        assert_eq!(dx.shape(), a.shape(), "{name}");
        assert!(dx.iter().eq(g.iter()), "{name}: gradient in logical order");
        // Row-major, the gradient reaches x in the buffer it came in: no copy.
        assert_eq!(
            dx.as_ptr() == at,
            name == "row-major",
            "{name}: moved, not copied"
        );
    }
}

#[test]
fn flatten_keeps_an_unshared_buffer_and_copies_a_shared_one() {
    let tape = Tape::new();
    let x = tape.input(random_like(&[4, 3, 5, 5], 8));
    let mut flatten = ferrocnn::nn::Flatten;
    // Borrowed (the caller keeps `x`): a copy.
    let copied = flatten.forward(&x, Mode::Train);
    assert_ne!(
        copied.value().as_ptr(),
        x.value().as_ptr(),
        "a shared value is copied"
    );
    // Given up with no other handle: the same buffer.
    let at = copied.value().as_ptr();
    let kept = flatten.forward_owned(copied, Mode::Train);
    assert_eq!(kept.value().as_ptr(), at, "an unshared value is kept");
    // A Sequential hands each child its input; the values are those of a copy.
    let mut net = ferrocnn::nn::Sequential::new()
        .add(ferrocnn::nn::Flatten)
        .add(ferrocnn::nn::Flatten);
    let y = net.forward(&x, Mode::Train);
    assert_eq!(y.shape(), &[4, 75]);
    assert!(y.value().iter().eq(x.value().iter()), "values in logical order");
}

#[test]
fn flatten_takes_a_pooled_conv_blocks_output_as_is() {
    // Behind a pool, the block's backward keeps ReLU's mask as marks on the pool's
    // winners, not its output: the output is the tape's alone, and Flatten takes
    // it without a copy (R1's flatten). The gradient still reaches the weight.
    let (w, b) = (
        Param::new(random_like(&[4, 3, 3, 3], 9)),
        Param::new(random_like(&[4], 11)),
    );
    let tape = Tape::new();
    let epilogue = crate::common::relu_max_pool_2x2();
    let y = tape.input(random_like(&[2, 3, 8, 8], 10)).conv2d_block(
        &tape.param(&w),
        Some(&tape.param(&b)),
        &ferrocnn::Conv2dOptions::default(),
        &epilogue,
    );
    let at = y.value().as_ptr();
    let flat = ferrocnn::nn::Flatten.forward_owned(y, Mode::Train);
    assert_eq!(flat.shape(), &[2, 36]);
    assert_eq!(flat.value().as_ptr(), at, "moved, not copied");
    let kept = flat.value().iter().filter(|&&v| v > 0.0).count();
    assert!(
        kept > 0 && kept < 72,
        "some windows dropped by ReLU, some kept: {kept}"
    );
    let grads = flat.sum().backward();
    assert!(grads[&b].iter().any(|&g| g != 0.0));
}

#[test]
fn parameters_set_from_any_layout_train() {
    let w = random_like(&[5, 3], 4);
    let x = random_like(&[2, 5], 5);
    let steps = |w: ArrayD<f32>| {
        let mut param = Param::new(w);
        let mut adam = Adam::new(AdamConfig::default());
        for _ in 0..3 {
            let tape = Tape::new();
            let loss = tape.input(x.clone()).matmul(&tape.param(&param)).square().sum();
            let grads = loss.backward();
            adam.step(&mut [&mut param], &grads);
        }
        param.value().clone()
    };
    let want = steps(w.clone());
    for (name, w) in other_layouts(&w) {
        assert_eq!(steps(w), want, "{name} weights");
    }
    // A slice of a larger array, too.
    let big = random_like(&[10, 3], 4);
    let _ = steps(big.slice(s![..;2, ..]).to_owned().into_dyn());
}
