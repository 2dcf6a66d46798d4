//! The fused paths a ResNet basic block runs through (`src/nn/residual_fused.rs`):
//! batch norm with the addition and ReLU in one op, against the separate ops bit for
//! bit and against finite differences; a `Residual` whose branches are
//! `Conv2d → BatchNorm2d (→ ReLU)` chains, against the same layers run one by one —
//! bit for bit in training (values, every gradient, running statistics), to 1e-5
//! in inference, where the batch norms are folded into the convolutions; and the
//! folded weights each conv keeps between inference calls, against the block
//! rebuilt with nothing kept, bit for bit, after every kind of change.

use crate::common;

use common::{with_simd, BOTH_SIMD};
use ferrocnn::gradcheck::random_like;
use ferrocnn::nn::{BatchNorm2d, Conv2d, Init, Mode, Module, ReLU, Residual, Sequential};
use ferrocnn::{zoo, GradCheck, Optimizer, Padding, Tape, Tensor};
use ndarray::{Array1, ArrayD};
use rand::rngs::StdRng;
use rand::SeedableRng;

fn check(inputs: Vec<ArrayD<f32>>, f: impl Fn(&[Tensor]) -> Tensor) {
    if let Err(e) = GradCheck::default().run(&inputs, f) {
        panic!("gradient check failed: {e}");
    }
}

#[test]
fn batch_norm_then_add_and_relu_passes_the_gradient_check() {
    // Finite differences cannot cross ReLU's kink: gamma is small (|γ·x̂| < 1.5
    // here), and what is added moves every sum at least 1.5 away from 0, on either
    // side, so both halves of the mask are checked.
    let off_zero = |shape: &[usize], seed| random_like(shape, seed).mapv(|v| v.signum() * (3.0 + v.abs()));
    for (i, shape) in [[2, 3, 2, 2], [3, 2, 3, 1], [1, 2, 3, 3]].into_iter().enumerate() {
        let seed = 40 + i as u64;
        let c = shape[1];
        let (x, gamma, beta) = (
            random_like(&shape, seed),
            random_like(&[c], seed + 1).mapv(|v| 0.4 + 0.1 * v),
            random_like(&[c], seed + 2),
        );
        check(
            vec![x.clone(), gamma.clone(), beta.clone(), off_zero(&shape, seed + 3)],
            |t| t[0].batch_norm2d_then(&t[1], &t[2], 1e-5, Some(&t[3]), true).0,
        );
        check(vec![x.clone(), gamma.clone(), off_zero(&[c], seed + 4)], |t| {
            t[0].batch_norm2d_then(&t[1], &t[2], 1e-5, None, true).0
        });
        check(vec![x, gamma, beta, random_like(&shape, seed + 5)], |t| {
            t[0].batch_norm2d_then(&t[1], &t[2], 1e-5, Some(&t[3]), false).0
        });
    }
}

/// Output and gradients (x, gamma, beta, skip) of `f` on a tape, for the output
/// gradient `g`.
fn run_bn(
    inputs: &[ArrayD<f32>; 4],
    g: &ArrayD<f32>,
    f: impl Fn(&[Tensor]) -> Tensor,
) -> (ArrayD<f32>, Vec<ArrayD<f32>>) {
    let params: Vec<ferrocnn::Param> = inputs.iter().cloned().map(ferrocnn::Param::new).collect();
    let tape = Tape::new();
    let t: Vec<Tensor> = params.iter().map(|p| tape.param(p)).collect();
    let y = f(&t);
    let grads = y.mul(&Tensor::new(g.clone())).sum().backward();
    (
        y.value().clone(),
        params.iter().map(|p| grads[p].clone()).collect(),
    )
}

#[test]
fn batch_norm_then_add_and_relu_equals_the_separate_ops_bit_for_bit() {
    // Sizes whose planes leave remainders in the 16-lane sums.
    for shape in [[3, 4, 5, 7], [1, 2, 17, 3], [8, 16, 14, 14]] {
        let c = shape[1];
        let inputs = [
            random_like(&shape, 1),
            random_like(&[c], 2).mapv(|v| v + 1.0),
            random_like(&[c], 3),
            random_like(&shape, 4),
        ];
        let g = random_like(&shape, 5);
        for (skip, relu) in [(true, true), (false, true), (true, false), (false, false)] {
            let fused = run_bn(&inputs, &g, |t| {
                let s = &t[3];
                let bn = t[0]
                    .batch_norm2d_then(&t[1], &t[2], 1e-5, skip.then_some(s), relu)
                    .0;
                // Keep the skip on the graph in every case, for a gradient to compare.
                if skip {
                    bn
                } else {
                    &bn + &s.mul_scalar(0.0)
                }
            });
            let separate = run_bn(&inputs, &g, |t| {
                let mut y = t[0].batch_norm2d(&t[1], &t[2], 1e-5).0;
                if skip {
                    y = &y + &t[3];
                }
                if relu {
                    y = y.relu();
                }
                if skip {
                    y
                } else {
                    &y + &t[3].mul_scalar(0.0)
                }
            });
            assert_eq!(fused.0, separate.0, "{shape:?} skip {skip} relu {relu}: output");
            for (i, (a, b)) in fused.1.iter().zip(&separate.1).enumerate() {
                assert_eq!(a, b, "{shape:?} skip {skip} relu {relu}: gradient of input {i}");
            }
        }
    }
}

/// A basic block as `zoo::basic_block` builds it, with batch norms whose affine
/// parameters and running statistics are not the identity.
fn block(cin: usize, cout: usize, stride: usize, seed: u64) -> Residual {
    let mut block = zoo::basic_block(cin, cout, stride, &mut StdRng::seed_from_u64(seed));
    let mut k = 0;
    block.visit_mut(&mut |_, m| {
        if let Some(bn) = m.downcast_mut::<BatchNorm2d>() {
            k += 1;
            let c = bn.channels();
            *bn.weight.value_mut() = random_like(&[c], seed + 10 * k).mapv(|v| v + 1.0);
            *bn.bias.value_mut() = random_like(&[c], seed + 10 * k + 1);
            bn.running_mean = Array1::from(random_like(&[c], seed + 10 * k + 2).into_raw_vec_and_offset().0);
            bn.running_var = Array1::from(
                random_like(&[c], seed + 10 * k + 3)
                    .mapv(|v| v.abs() + 0.5)
                    .into_raw_vec_and_offset()
                    .0,
            );
        }
    });
    block
}

/// The same block with each branch inside another `Sequential`: the same layers
/// and weights, which the block does not recognize, so it runs them one by one.
fn layer_by_layer(block: &Residual) -> Residual {
    let wrap = |m: &dyn Module| {
        let mut s = Sequential::new();
        s.push_boxed(m.clone_module());
        s
    };
    let mut plain = Residual::new(wrap(block.main.as_ref()));
    if let Some(s) = &block.shortcut {
        plain = plain.with_projection(wrap(s.as_ref()));
    }
    if block.relu {
        plain = plain.with_relu();
    }
    plain
}

/// A training pass's output, and its gradients: the input's, then the parameters'.
type Pass = (ArrayD<f32>, Vec<ArrayD<f32>>);

/// Output, the input's gradient and every parameter gradient (in order) of one
/// training step of `m` on `x` for the output gradient `g`.
fn train_pass(m: &mut dyn Module, x: &ArrayD<f32>, g: &ArrayD<f32>) -> Pass {
    let params = m.parameters().len();
    let (y, all) = train_pass_with(m, x, g, true);
    assert_eq!(
        all.len(),
        1 + params,
        "the input's gradient and every parameter's"
    );
    (y, all)
}

/// [`train_pass`] with the input's gradient asked for or not, and only the
/// gradients that exist (frozen parameters have none).
fn train_pass_with(m: &mut dyn Module, x: &ArrayD<f32>, g: &ArrayD<f32>, input_grad: bool) -> Pass {
    let tape = Tape::new();
    let xt = if input_grad {
        tape.input_with_grad(x.clone())
    } else {
        tape.input(x.clone())
    };
    let y = m.forward(&xt, Mode::Train);
    let grads = y.mul(&Tensor::new(g.clone())).sum().backward();
    let mut all: Vec<ArrayD<f32>> = grads.wrt(&xt).into_iter().cloned().collect();
    all.extend(m.parameters().iter().filter_map(|p| grads.get(p).cloned()));
    (y.value().clone(), all)
}

/// Two training passes' outputs and gradients, and the two blocks' buffers after
/// them, are the same bit for bit.
fn assert_same_training(what: &str, (a, b): (Pass, Pass), fused: &dyn Module, plain: &dyn Module) {
    assert_eq!(a.0, b.0, "{what}: output");
    assert_eq!(a.1.len(), b.1.len(), "{what}");
    for (k, (ga, gb)) in a.1.iter().zip(&b.1).enumerate() {
        assert_eq!(ga, gb, "{what}: gradient {k}");
    }
    assert_eq!(fused.named_buffers().len(), plain.named_buffers().len());
    for ((name, a), (_, b)) in fused.named_buffers().iter().zip(plain.named_buffers()) {
        assert_eq!(a, &b, "{what}: {name}");
    }
}

/// A main branch the zoo does not build: 5 → 5 convs with biases, padding Same.
fn biased_branch(seed: u64) -> Sequential {
    let rng = &mut StdRng::seed_from_u64(seed);
    let conv = |rng: &mut StdRng| {
        Conv2d::with_init(5, 5, (3, 3), Init::KaimingUniform, rng).with_padding(Padding::Same)
    };
    Sequential::new()
        .add(conv(rng))
        .add(BatchNorm2d::new(5))
        .add(ReLU)
        .add(conv(rng))
        .add(BatchNorm2d::new(5))
}

/// The geometries of R3's blocks and odd ones: stride 2 on odd planes, a batch of
/// one, a projection without a change of stride.
fn cases() -> Vec<(usize, usize, usize, [usize; 4])> {
    vec![
        (4, 4, 1, [2, 4, 9, 9]),
        (4, 8, 2, [3, 4, 9, 9]),
        (8, 8, 1, [1, 8, 7, 7]),
        (3, 6, 1, [2, 3, 6, 5]),
        (16, 32, 2, [2, 16, 14, 14]),
        (8, 16, 2, [1, 8, 8, 8]),
    ]
}

#[test]
fn a_fused_block_trains_as_its_layers_do_bit_for_bit() {
    for (i, (cin, cout, stride, input)) in cases().into_iter().enumerate() {
        let seed = 100 + 10 * i as u64;
        let x = random_like(&input, seed);
        for simd in BOTH_SIMD {
            let mut fused = block(cin, cout, stride, seed);
            let mut plain = layer_by_layer(&fused);
            for step in 0..2 {
                let out_shape = plain.output_shape(&input[1..]).unwrap();
                let g = random_like(&[&input[..1], &out_shape[..]].concat(), seed + 1 + step);
                let (a, b) = with_simd(simd, || {
                    (train_pass(&mut fused, &x, &g), train_pass(&mut plain, &x, &g))
                });
                let what = format!("{cin}→{cout} stride {stride} on {input:?} ({simd:?}), step {step}");
                assert_same_training(&what, (a, b), &fused, &plain);
            }
        }
    }
}

#[test]
fn a_fused_block_with_biases_and_frozen_layers_trains_as_its_layers_do_bit_for_bit() {
    // Convs with biases (the zoo's have none), recorded with their batch norms as one
    // op; then a frozen batch norm (normalized with its running statistics, so its
    // conv is recorded on its own); then a frozen first conv on an input that needs
    // no gradient (the fused op asks its conv for nothing but passes on gamma's and
    // beta's gradients).
    let mut fused = Residual::new(biased_branch(4)).with_relu();
    let x = random_like(&[3, 5, 6, 6], 11);
    let g = random_like(&[3, 5, 6, 6], 12);
    for case in 0..3 {
        if case == 1 {
            let bn = batch_norm(&mut fused, "main.bn2");
            bn.weight.set_frozen(true);
            bn.bias.set_frozen(true);
        }
        if case == 2 {
            parameter(&mut fused, "main.conv1.weight").set_frozen(true);
            parameter(&mut fused, "main.conv1.bias").set_frozen(true);
        }
        let mut plain = layer_by_layer(&fused);
        let pass = |m: &mut dyn Module| train_pass_with(m, &x, &g, case != 2);
        let passes = (pass(&mut fused), pass(&mut plain));
        assert_same_training(&format!("case {case}"), passes, &fused, &plain);
    }
}

#[test]
fn a_fused_block_infers_as_its_layers_do_within_1e_5() {
    for (i, (cin, cout, stride, input)) in cases().into_iter().enumerate() {
        let seed = 200 + 10 * i as u64;
        let x = Tensor::new(random_like(&input, seed).mapv(|v| 2.0 * v));
        let mut fused = block(cin, cout, stride, seed);
        let mut plain = layer_by_layer(&fused);
        for simd in BOTH_SIMD {
            let (a, b) = with_simd(simd, || {
                (fused.forward(&x, Mode::Eval), plain.forward(&x, Mode::Eval))
            });
            let scale = b.value().iter().fold(1.0f32, |m, v| m.max(v.abs()));
            for (j, (p, q)) in a.value().iter().zip(b.value()).enumerate() {
                assert!(
                    (p - q).abs() <= 1e-5 * scale,
                    "{cin}→{cout} stride {stride} on {input:?} ({simd:?}) [{j}]: fused {p}, layers {q}"
                );
            }
        }
    }
}

#[test]
fn a_fused_block_infers_the_same_bit_for_bit_with_or_without_avx2() {
    // Inference's epilogue (bias, shortcut, ReLU) has an AVX2 version
    // (`conv2d_inference`), as do Winograd's transforms: each must equal its
    // baseline exactly.
    for (i, (cin, cout, stride, input)) in cases().into_iter().enumerate() {
        let seed = 400 + 10 * i as u64;
        let x = Tensor::new(random_like(&input, seed).mapv(|v| 2.0 * v));
        let mut fused = block(cin, cout, stride, seed);
        let [auto, baseline] = BOTH_SIMD.map(|simd| with_simd(simd, || fused.forward(&x, Mode::Eval)));
        assert_eq!(
            auto.value(),
            baseline.value(),
            "{cin}→{cout} stride {stride} on {input:?}"
        );
    }
}

#[test]
fn folding_keeps_a_conv_bias_and_the_identity_shortcut() {
    // A block the zoo does not build: convs with biases, padding Same, no final ReLU.
    let mut fused = Residual::new(biased_branch(3));
    // Move the running statistics off their start.
    for _ in 0..3 {
        fused.forward(
            &Tensor::new(random_like(&[4, 5, 6, 6], 9).mapv(|v| 3.0 * v + 1.0)),
            Mode::Train,
        );
    }
    let mut plain = layer_by_layer(&fused);
    let x = Tensor::new(random_like(&[2, 5, 6, 6], 10));
    let (a, b) = (fused.forward(&x, Mode::Eval), plain.forward(&x, Mode::Eval));
    let scale = b.value().iter().fold(1.0f32, |m, v| m.max(v.abs()));
    assert!(a.value().iter().any(|&v| v < 0.0), "no final ReLU");
    for (p, q) in a.value().iter().zip(b.value()) {
        assert!((p - q).abs() <= 1e-5 * scale, "fused {p}, layers {q}");
    }
}

#[test]
fn r3_keeps_its_parameter_and_buffer_names() {
    // The parameter names of the layers, as before the fused path.
    let net = zoo::r3((1, 28, 28), 10, 0);
    let names: Vec<String> = net.named_parameters().into_iter().map(|(n, _)| n).collect();
    assert!(names.contains(&"blocks.2.main.conv1.weight".to_string()));
    assert!(names.contains(&"blocks.2.shortcut.bn1.bias".to_string()));
    assert_eq!(net.named_buffers().len(), 2 * 15);
}

#[test]
#[should_panic(expected = "Residual: the main branch gives [1, 4, 3, 3] but the shortcut [1, 2, 5, 5]")]
fn a_fused_block_with_mismatched_branches_panics_naming_both_shapes() {
    let rng = &mut StdRng::seed_from_u64(1);
    let main = Sequential::new()
        .add(Conv2d::new(2, 4, (3, 3), rng))
        .add(BatchNorm2d::new(4));
    Residual::new(main).forward(&Tensor::new(random_like(&[1, 2, 5, 5], 1)), Mode::Train);
}

#[test]
fn a_basic_block_records_no_separate_add_or_relu() {
    // What the fusion is for: the addition and both ReLUs ride on the batch norms,
    // and each batch norm is recorded with its conv, as one op.
    let profiler = ferrocnn::profile::Profiler::new();
    let tape = Tape::with_profiler(&profiler);
    let mut b = block(4, 8, 2, 1);
    let x = tape.input(random_like(&[2, 4, 8, 8], 2));
    drop(b.forward(&x, Mode::Train).sum().backward());
    let ops: Vec<String> = profiler.entries().into_iter().map(|e| e.0).collect();
    assert!(ops.contains(&"conv2d_batch_norm2d".to_string()), "{ops:?}");
    let separate = ["add", "relu", "conv2d", "batch_norm2d"];
    assert!(!ops.iter().any(|op| separate.contains(&op.as_str())), "{ops:?}");
}

/// The same block rebuilt from its model record: the same layers and values, with
/// nothing kept from earlier calls.
fn rebuilt(block: &Residual) -> Box<dyn Module> {
    ferrocnn::io::ModelRecord::of(block)
        .build(&ferrocnn::nn::Registry::new())
        .expect("a block's own record builds")
}

/// The batch norm `name` of `block` (`main.bn2`, `shortcut.bn1`, …).
fn batch_norm<'a>(block: &'a mut Residual, name: &str) -> &'a mut BatchNorm2d {
    let (branch, layer) = name.split_once('.').expect("branch.layer");
    let branch = if branch == "main" {
        &mut block.main
    } else {
        block.shortcut.as_mut().expect("a projection")
    };
    let seq = branch.downcast_mut::<Sequential>().expect("a Sequential branch");
    let m = seq
        .layers_mut()
        .iter_mut()
        .find(|(n, _)| n == layer)
        .expect("the layer");
    m.1.downcast_mut::<BatchNorm2d>().expect("a batch norm")
}

/// The parameter `name` of `block`.
fn parameter<'a>(block: &'a mut Residual, name: &str) -> &'a mut ferrocnn::Param {
    let found = block.named_parameters_mut().into_iter().find(|(n, _)| n == name);
    found.unwrap_or_else(|| panic!("no parameter {name}")).1
}

/// One way of changing a block that inference must notice.
type Change = fn(&mut Residual);

#[test]
fn kept_folded_weights_follow_every_change_bit_for_bit() {
    // Inference keeps each conv's folded weight and its Winograd kernels between
    // calls (`src/nn/folded_weight.rs`). After each kind of change, the block's
    // output equals, bit for bit, that of the same block rebuilt with nothing kept.
    // 16 → 32 at stride 2: Winograd (conv2) and im2col (conv1, the projection).
    let (cin, cout, stride, input) = (16, 32, 2, [1, 16, 14, 14]);
    let mut fused = block(cin, cout, stride, 7);
    let x = Tensor::new(random_like(&input, 8).mapv(|v| 2.0 * v));
    let check = |fused: &mut Residual, what: &str| {
        let kept = fused.forward(&x, Mode::Eval);
        let fresh = rebuilt(fused).forward(&x, Mode::Eval);
        assert_eq!(kept.value(), fresh.value(), "after {what}");
        // And the same again from what is now kept.
        assert_eq!(
            fused.forward(&x, Mode::Eval).value(),
            fresh.value(),
            "after {what}, again"
        );
    };
    check(&mut fused, "the first call");
    let before = fused.forward(&x, Mode::Eval);
    let changes: [(&str, Change); 9] = [
        ("a running variance written", |b| {
            batch_norm(b, "main.bn2").running_var[3] *= 1.5
        }),
        ("running means written", |b| {
            batch_norm(b, "shortcut.bn1").running_mean -= 1.0
        }),
        ("eps", |b| batch_norm(b, "main.bn1").eps = 1e-3),
        ("gamma through value_mut", |b| {
            batch_norm(b, "main.bn2").weight.value_mut()[1] *= -2.0
        }),
        ("beta through set_value", |b| {
            let bn = batch_norm(b, "main.bn1");
            let beta = bn.bias.value().mapv(|v| v + 0.5);
            bn.bias.set_value(beta);
        }),
        ("a conv weight through value_mut", |b| {
            parameter(b, "main.conv2.weight").value_mut()[[0, 0, 1, 1]] += 1.0;
        }),
        ("a conv weight through set_value", |b| {
            let w = parameter(b, "shortcut.conv1.weight");
            let negated = w.value().mapv(|v| -v);
            w.set_value(negated);
        }),
        ("an optimizer step", |b| {
            let tape = Tape::new();
            let x = tape.input(random_like(&[2, 16, 14, 14], 9));
            let grads = b.forward(&x, Mode::Train).sum().backward();
            let mut sgd = ferrocnn::SGD::new(ferrocnn::SGDConfig {
                lr: 0.1,
                ..Default::default()
            });
            sgd.step(&mut b.parameters_mut(), &grads);
        }),
        ("loading another block's state", |b| {
            let other = block(16, 32, 2, 70);
            b.load_state_dict(&other.state_dict(), true)
                .expect("same architecture");
        }),
    ];
    for (what, change) in changes {
        let last = fused.forward(&x, Mode::Eval);
        change(&mut fused);
        check(&mut fused, what);
        assert_ne!(
            fused.forward(&x, Mode::Eval).value(),
            last.value(),
            "{what} changed nothing"
        );
    }
    assert_ne!(fused.forward(&x, Mode::Eval).value(), before.value());
}
