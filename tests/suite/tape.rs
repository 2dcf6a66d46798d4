//! Behaviour of the tape itself: backward twice, unused branches, accumulation,
//! frozen parameters, inference without a tape, deep graphs.

use ferrocnn::{Param, Tape, Tensor};
use ndarray::{array, ArrayD, IxDyn};

fn scalar_param(v: f32) -> Param {
    Param::new(ArrayD::from_elem(IxDyn(&[]), v))
}

#[test]
fn backward_twice_gives_the_same_gradients() {
    let w = Param::new(array![1.0f32, -2.0, 3.0].into_dyn());
    let tape = Tape::new();
    let loss = tape.param(&w).square().sum();
    let (g1, g2) = (loss.backward(), loss.backward());
    assert_eq!(g1[&w], array![2.0f32, -4.0, 6.0].into_dyn());
    assert_eq!(g1[&w], g2[&w]);
}

#[test]
fn value_used_twice_accumulates_gradients() {
    // loss = w·w + 3w  → dloss/dw = 2w + 3 = 7 at w = 2.
    let w = scalar_param(2.0);
    let tape = Tape::new();
    let x = tape.param(&w);
    let loss = &(&x * &x) + &x.mul_scalar(3.0);
    assert_eq!(loss.backward()[&w].sum(), 7.0);
    // A parameter bound twice to one tape also accumulates (weight sharing).
    let tape = Tape::new();
    let loss = &(&tape.param(&w) * &tape.param(&w)) + &tape.param(&w).mul_scalar(3.0);
    assert_eq!(loss.backward()[&w].sum(), 7.0);
}

#[test]
fn unused_branches_do_not_contribute_or_fail() {
    let (a, b) = (scalar_param(2.0), scalar_param(5.0));
    let tape = Tape::new();
    let (ta, tb) = (tape.param(&a), tape.param(&b));
    let _unused = (&ta * &tb).exp(); // recorded but not part of the loss
    let loss = ta.mul_scalar(4.0);
    let grads = loss.backward();
    assert_eq!(grads[&a].sum(), 4.0);
    assert!(
        grads.get(&b).is_none(),
        "b is not in the loss, it gets no gradient"
    );
}

#[test]
fn frozen_parameter_gets_no_gradient_and_records_nothing() {
    let mut w = Param::new(array![[1.0f32, 2.0]].into_dyn());
    w.set_frozen(true);
    let tape = Tape::new();
    let x = tape.input(array![[3.0f32, 4.0]].into_dyn());
    let loss = x.linear(&tape.param(&w), None).sum();
    assert_eq!(loss.item(), 11.0);
    assert!(!loss.requires_grad());
    assert!(loss.backward().is_empty());
    assert!(tape.is_empty(), "nothing trainable: nothing recorded");
}

#[test]
fn inference_records_nothing() {
    let w = Param::new(array![[1.0f32, 2.0]].into_dyn());
    let x = Tensor::new(array![[3.0f32, 4.0]].into_dyn());
    let y = x.linear(&w.bind(&x), None).relu();
    assert!(y.tape().is_none() && !y.requires_grad());
    assert_eq!(y.value(), &array![[11.0f32]].into_dyn());
}

#[test]
fn deep_graph_does_not_overflow_the_stack() {
    let w = scalar_param(1.0);
    let tape = Tape::new();
    let mut x = tape.param(&w);
    for _ in 0..200_000 {
        x = x.mul_scalar(1.0);
    }
    assert_eq!(x.backward()[&w].sum(), 1.0);
}

#[test]
fn cross_entropy_is_finite_for_huge_logits() {
    let w = Param::new(array![[1000.0f32, -1000.0, 0.0], [-1000.0, 1000.0, 1000.0]].into_dyn());
    let tape = Tape::new();
    let loss = tape.param(&w).cross_entropy(&[1, 0]);
    // Row 0: true class logit -1000 vs max 1000 → loss 2000; row 1: 2000 + ln 2.
    assert!(
        (loss.item() - (2000.0 + 0.5 * 2f32.ln())).abs() < 1e-2,
        "{}",
        loss.item()
    );
    let g = loss.backward()[&w].clone();
    assert!(g.iter().all(|v| v.is_finite()));
    // (softmax − onehot)/N: row 0 → [0.5, -0.5, 0]; row 1 → [-0.5, 0.25, 0.25].
    let expected = array![[0.5f32, -0.5, 0.0], [-0.5, 0.25, 0.25]].into_dyn();
    assert!(
        g.iter().zip(expected.iter()).all(|(a, b)| (a - b).abs() < 1e-4),
        "{g}"
    );
}

#[test]
fn label_smoothing_known_value() {
    // Uniform logits: loss is ln C whatever the smoothing.
    let w = Param::new(ArrayD::zeros(IxDyn(&[2, 4])));
    let tape = Tape::new();
    let loss = tape.param(&w).cross_entropy_smoothed(&[0, 3], 0.2);
    assert!((loss.item() - 4f32.ln()).abs() < 1e-6);
}

#[test]
fn dropout_scales_survivors_and_is_reproducible() {
    let x = Tensor::new(ArrayD::from_elem(IxDyn(&[1000]), 1.0f32));
    let (a, b) = (x.dropout(0.25, 3), x.dropout(0.25, 3));
    assert_eq!(a.value(), b.value(), "same seed, same mask");
    assert!(a
        .value()
        .iter()
        .all(|&v| v == 0.0 || (v - 1.0 / 0.75).abs() < 1e-6));
    let kept = a.value().iter().filter(|&&v| v != 0.0).count();
    assert!((700..800).contains(&kept), "kept {kept} of 1000 at p = 0.25");
    assert_ne!(
        x.dropout(0.25, 4).value(),
        a.value(),
        "another seed, another mask"
    );
}

#[test]
#[should_panic(expected = "matmul: shapes [2, 3] and [2, 3] do not chain")]
fn matmul_shape_mismatch_names_op_and_shapes() {
    let a = Tensor::new(ArrayD::zeros(IxDyn(&[2, 3])));
    let _ = a.matmul(&a);
}

#[test]
#[should_panic(expected = "backward: expects a scalar")]
fn backward_requires_a_scalar() {
    let w = Param::new(ArrayD::zeros(IxDyn(&[2])));
    let tape = Tape::new();
    let _ = tape.param(&w).relu().backward();
}
