//! Layers: output shapes, parameter counts and names, train/eval differences,
//! regularization, summary.

use ferrocnn::nn::{
    AvgPool2d, BatchNorm2d, Conv2d, Conv2dBlock, Dropout, GlobalAvgPool, Linear, MaxPool2d, Mode, Module,
    Regularizer, Sequential,
};
use ferrocnn::{zoo, GradCheck, Padding, Tape, Tensor};
use ndarray::{ArrayD, IxDyn};
use rand::rngs::StdRng;
use rand::SeedableRng;

fn zeros(shape: &[usize]) -> Tensor {
    Tensor::new(ArrayD::zeros(IxDyn(shape)))
}

fn rng() -> StdRng {
    StdRng::seed_from_u64(3)
}

#[test]
fn conv_output_shapes_and_parameter_counts() {
    let mut r = rng();
    let cases: Vec<(Conv2d, [usize; 4])> = vec![
        (Conv2d::new(1, 32, (3, 3), &mut r), [2, 32, 26, 26]),
        (
            Conv2d::new(1, 32, (3, 3), &mut r).with_padding(Padding::Same),
            [2, 32, 28, 28],
        ),
        (
            Conv2d::new(1, 8, (3, 3), &mut r)
                .with_stride((2, 2))
                .with_padding(Padding::Same),
            [2, 8, 14, 14],
        ),
        (
            Conv2d::new(1, 8, (2, 3), &mut r).with_padding(Padding::Explicit(1, 0)),
            [2, 8, 29, 26],
        ),
        (
            Conv2d::new(1, 4, (3, 3), &mut r).with_dilation((2, 2)),
            [2, 4, 24, 24],
        ),
    ];
    for (mut conv, expected) in cases {
        let (o, i, kh, kw) = conv.kernel_shape();
        assert_eq!(conv.num_parameters(), o * i * kh * kw + o);
        assert_eq!(
            conv.forward(&zeros(&[2, 1, 28, 28]), Mode::Eval).shape(),
            &expected
        );
    }
    assert_eq!(
        Conv2d::new(3, 5, (3, 3), &mut r).without_bias().num_parameters(),
        5 * 3 * 9
    );
}

#[test]
fn pools_and_linear_shapes() {
    let x = zeros(&[2, 3, 28, 28]);
    assert_eq!(
        MaxPool2d::new((2, 2)).forward(&x, Mode::Eval).shape(),
        &[2, 3, 14, 14]
    );
    assert_eq!(
        MaxPool2d::new((3, 3))
            .with_stride((2, 2))
            .forward(&x, Mode::Eval)
            .shape(),
        &[2, 3, 13, 13]
    );
    assert_eq!(
        AvgPool2d::new((2, 2)).forward(&x, Mode::Eval).shape(),
        &[2, 3, 14, 14]
    );
    assert_eq!(GlobalAvgPool.forward(&x, Mode::Eval).shape(), &[2, 3]);
    let mut fc = Linear::new(7, 4, &mut rng());
    assert_eq!(fc.num_parameters(), 7 * 4 + 4);
    assert_eq!(fc.forward(&zeros(&[5, 7]), Mode::Eval).shape(), &[5, 4]);
}

#[test]
fn reference_nets_have_the_published_parameter_counts() {
    // R1 (Keras example): 320 + 18,496 + 16,010 = 34,826. R2 (PyTorch example): 1,199,882.
    assert_eq!(zoo::r1((1, 28, 28), 10, 0).num_parameters(), 34_826);
    assert_eq!(zoo::r2((1, 28, 28), 10, 0).num_parameters(), 1_199_882);
    let names: Vec<String> = zoo::r1((1, 28, 28), 10, 0)
        .named_parameters()
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    assert_eq!(
        names,
        [
            "conv1.weight",
            "conv1.bias",
            "conv2.weight",
            "conv2.bias",
            "fc1.weight",
            "fc1.bias"
        ]
    );
}

#[test]
fn dropout_differs_between_modes() {
    let mut d = Dropout::new(0.5, &mut rng());
    let x = Tensor::new(ArrayD::from_elem(IxDyn(&[4, 100]), 1.0f32));
    assert_eq!(
        d.forward(&x, Mode::Eval).value(),
        x.value(),
        "identity in evaluation"
    );
    let a = d.forward(&x, Mode::Train);
    let b = d.forward(&x, Mode::Train);
    assert!(a.value().iter().any(|&v| v == 0.0) && a.value().iter().any(|&v| v == 2.0));
    assert_ne!(a.value(), b.value(), "each training pass draws a new mask");
    assert_eq!(d.calls, 2);
}

#[test]
fn batch_norm_uses_batch_statistics_in_training_and_running_ones_in_evaluation() {
    let mut bn = BatchNorm2d::new(2);
    let x = ferrocnn::gradcheck::random_like(&[4, 2, 3, 3], 5).mapv(|v| 4.0 * v + 10.0);
    let x = Tensor::new(x);
    let train = bn.forward(&x, Mode::Train);
    assert!(
        train.value().mean().unwrap().abs() < 1e-4,
        "normalized by the batch"
    );
    assert_eq!(bn.num_batches_tracked, 1);
    // Running mean moved 10% of the way from 0 towards the batch mean (≈ 10).
    assert!(
        bn.running_mean.iter().all(|&m| (m - 1.0).abs() < 0.2),
        "{}",
        bn.running_mean
    );
    let eval = bn.forward(&x, Mode::Eval);
    assert!(
        eval.value().mean().unwrap() > 5.0,
        "evaluation uses the running statistics"
    );
    assert_eq!(bn.num_batches_tracked, 1, "evaluation does not update them");
    // Eval mode is differentiable too (fine-tuning in eval mode).
    let g = GradCheck::default().run(&[x.value().clone()], |t| {
        let mut bn = bn.clone();
        bn.forward(&t[0], Mode::Eval)
    });
    assert!(g.is_ok(), "{g:?}");
}

#[test]
fn regularizer_adds_penalty_and_its_gradient() {
    let mut r = rng();
    let mut net = Sequential::new().add(Linear::new(3, 2, &mut r).with_regularizer(Regularizer::L2(0.5)));
    let w = net.parameters()[0].value().clone();
    let tape = Tape::new();
    let x = tape.input(ArrayD::zeros(IxDyn(&[1, 3])));
    let out = net.forward(&x, Mode::Train);
    let penalty = net.regularization(&out).expect("one regularized layer");
    assert!((penalty.item() - 0.5 * w.mapv(|v| v * v).sum()).abs() < 1e-5);
    let grads = penalty.backward();
    let g = grads.get(net.parameters()[0]).expect("gradient of the weight");
    assert!(
        g.iter().zip(w.iter()).all(|(g, w)| (g - w).abs() < 1e-6),
        "d(0.5·Σw²)/dw = w"
    );
}

#[test]
fn summary_lists_layers_shapes_and_counts() {
    let mut net = zoo::r1((1, 28, 28), 10, 0);
    assert_eq!(net.freeze("conv1"), 2);
    let s = net.summary(&[1, 28, 28]);
    // conv1 is a fused Conv2d → ReLU → MaxPool2d block: its output is pooled.
    assert_eq!(s.rows[0].output_shape, Some(vec![32, 13, 13]));
    assert_eq!(
        s.rows.last().map(|r| r.output_shape.clone()),
        Some(Some(vec![10]))
    );
    assert_eq!((s.total_params(), s.trainable_params()), (34_826, 34_826 - 320));
    let text = s.to_string();
    assert!(
        text.contains("conv1 (Conv2dBlock)")
            && text.contains("frozen")
            && text.contains("Total params: 34826"),
        "{text}"
    );
}

#[test]
fn same_seed_same_network() {
    let a = zoo::r2((1, 28, 28), 10, 9);
    let b = zoo::r2((1, 28, 28), 10, 9);
    let c = zoo::r2((1, 28, 28), 10, 10);
    let values = |n: &Sequential| {
        n.parameters()
            .iter()
            .map(|p| p.value().clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(values(&a), values(&b));
    assert_ne!(values(&a), values(&c));
}

#[test]
fn conv2d_block_equals_the_layers_one_by_one() {
    // A Conv2dBlock (Conv2d → ReLU → MaxPool2d as one fused op) computes what the
    // separate layers compute, values and gradients bit for bit; likewise without the
    // pool, and without the ReLU. One exception: a first layer that pools (its input
    // needs no gradient, as here) sums its weight gradient from the pooling's winners
    // alone, which rounds differently.
    let mut r = rng();
    let conv = Conv2d::new(2, 3, (3, 3), &mut r);
    let x = ferrocnn::gradcheck::random_like(&[2, 2, 9, 9], 8);
    for (relu, pool) in [(true, true), (true, false), (false, true)] {
        let mut block = Conv2dBlock::new(conv.clone());
        let mut layers = Sequential::new().add(conv.clone());
        if relu {
            block = block.with_relu();
            layers.push(ferrocnn::nn::ReLU);
        }
        if pool {
            block = block.with_max_pool(MaxPool2d::new((2, 2)));
            layers.push(MaxPool2d::new((2, 2)));
        }
        let run = |net: &mut dyn Module| {
            let tape = Tape::new();
            let y = net.forward(&tape.input(x.clone()), Mode::Train);
            let g = ferrocnn::gradcheck::random_like(y.shape(), 9);
            let grads = y.mul(&Tensor::new(g)).sum().backward();
            (
                y.value().clone(),
                grads.get(&conv.weight).cloned().expect("weight gradient"),
            )
        };
        let (a, b) = (run(&mut block), run(&mut layers));
        assert_eq!(a.0, b.0, "same output (relu {relu}, pool {pool})");
        if pool {
            let scale = b.1.iter().fold(1.0f32, |m, v| m.max(v.abs()));
            let worst =
                a.1.iter()
                    .zip(&b.1)
                    .fold(0.0f32, |m, (a, b)| m.max((a - b).abs()));
            assert!(
                worst <= 1e-5 * scale,
                "weight gradient within rounding (relu {relu}): off by {worst}"
            );
        } else {
            assert_eq!(a.1, b.1, "same weight gradient (relu {relu}, pool {pool})");
        }
        assert_eq!(block.named_parameters()[0].0, "weight");
        assert_eq!(block.output_shape(&[2, 9, 9]).unwrap(), b.0.shape()[1..].to_vec());
    }
}

#[test]
fn shape_inference_matches_the_forward_pass_and_names_the_layer_that_does_not_fit() {
    for net in [
        zoo::r1((1, 28, 28), 10, 0),
        zoo::r2((1, 28, 28), 10, 0),
        zoo::mnist_default((1, 28, 28), 10, 0),
    ] {
        assert_eq!(
            net.try_output_shapes(&[1, 28, 28]),
            Ok(net.output_shapes(&[1, 28, 28]))
        );
    }
    let err = zoo::r1((1, 28, 28), 10, 0)
        .output_shape(&[1, 32, 32])
        .unwrap_err();
    assert!(
        err.contains("fc1") && err.contains("1600") && err.contains("2304"),
        "{err}"
    );
    let err = zoo::r1((1, 28, 28), 10, 0)
        .output_shape(&[3, 28, 28])
        .unwrap_err();
    assert!(err.contains("conv1") && err.contains("1 input channels"), "{err}");
}

#[test]
fn inference_on_a_large_batch_equals_inference_image_by_image() {
    // `predict` runs a large batch in slices of images; no image's output may depend
    // on the others in its batch. 600 images cross several slices.
    let mut r = rng();
    let mut net = Sequential::new()
        .add(Conv2d::new(1, 4, (3, 3), &mut r))
        .add(ferrocnn::nn::ReLU)
        .add(MaxPool2d::new((2, 2)))
        .add(ferrocnn::nn::Flatten)
        .add(Linear::new(4 * 13 * 13, 400, &mut r))
        .add(ferrocnn::nn::ReLU)
        .add(Dropout::new(0.5, &mut r))
        .add(Linear::new(400, 10, &mut r));
    let x = ferrocnn::gradcheck::random_like(&[600, 1, 28, 28], 5);
    let whole = Tensor::new(ferrocnn::train::predict(&mut net, x.view()));
    assert_eq!(whole.shape(), [600, 10]);
    for i in [0, 63, 64, 200, 511, 512, 599] {
        let one = x.slice_axis(ndarray::Axis(0), (i..i + 1).into()).to_owned();
        let single = net.forward(&Tensor::new(one), Mode::Eval);
        for (a, b) in whole
            .value()
            .index_axis(ndarray::Axis(0), i)
            .iter()
            .zip(single.value().iter())
        {
            assert!(
                (a - b).abs() <= 1e-5 * (1.0 + b.abs()),
                "image {i}: {a} in the batch, {b} alone"
            );
        }
    }
}

#[test]
fn residual_blocks_and_fused_conv_blocks_pass_the_gradient_check() {
    let mut r = rng();
    let x = ferrocnn::gradcheck::random_like(&[2, 2, 6, 6], 11);
    // A projection block (stride 2, 2 → 3 channels) and an identity block, with batch
    // norm in training mode.
    // A smaller step than the default: batch norm makes every value order 1, and a
    // step of 1e-2 carries some across a ReLU's kink.
    let check = GradCheck {
        eps: 1e-3,
        atol: 5e-3,
        ..GradCheck::default()
    };
    for block in [
        ferrocnn::zoo::basic_block(2, 3, 2, &mut r),
        ferrocnn::zoo::basic_block(2, 2, 1, &mut r),
    ] {
        check
            .check_module(&block, &x, Mode::Train)
            .unwrap_or_else(|e| panic!("{}: {e}", block.shortcut.is_some()));
    }
    let fused = Conv2dBlock::new(Conv2d::new(2, 3, (3, 3), &mut r))
        .with_relu()
        .with_max_pool(MaxPool2d::new((2, 2)));
    // (This input puts no value within a step of the ReLU's kink or a pooling tie.)
    let x = ferrocnn::gradcheck::random_like(&[2, 2, 6, 6], 3);
    check.check_module(&fused, &x, Mode::Train).expect("fused block");
}

#[test]
fn relu_keeps_nan_as_pytorch_does() {
    // max(NaN, 0) would be 0 and hide a NaN input; PyTorch's ReLU keeps it.
    let x = Tensor::new(ndarray::arr1(&[f32::NAN, -1.0, 0.0, 2.0]).into_dyn());
    let y = x.relu();
    let v: Vec<f32> = y.value().iter().copied().collect();
    assert!(v[0].is_nan() && v[1..] == [0.0, 0.0, 2.0], "{v:?}");
    // The fused block applies the same rule.
    let mut r = rng();
    let mut block = Conv2dBlock::new(Conv2d::new(1, 2, (1, 1), &mut r)).with_relu();
    let mut image = ndarray::Array4::<f32>::ones((1, 1, 3, 3));
    image[[0, 0, 1, 1]] = f32::NAN;
    let out = block.forward(&Tensor::new(image.into_dyn()), Mode::Eval);
    assert_eq!(
        out.value().iter().filter(|v| v.is_nan()).count(),
        2,
        "one NaN per channel"
    );
}

#[test]
fn reference_nets_say_which_layer_images_are_too_small_for() {
    let err = zoo::try_r1((1, 8, 8), 10, 0).unwrap_err();
    assert!(err.contains("conv2") && err.contains("max pooling"), "{err}");
    assert!(zoo::try_r2((1, 5, 5), 10, 0).is_err());
    assert!(zoo::try_mnist_default((1, 28, 28), 0, 0)
        .unwrap_err()
        .contains("at least 1"));
    // R3's convs are padded: any image size fits.
    assert!(zoo::try_r3((1, 3, 3), 10, 0).is_ok());
}
