//! Every convolution algorithm against the direct loops (`ConvAlgorithm::Direct`,
//! `src/ops/conv/reference.rs`): forward, input, weight and bias gradients, through
//! `Tensor::conv2d` and through `conv2d_block` with ReLU and max pooling, over a
//! table of geometries, with the AVX2 and the baseline kernels. The direct loops
//! themselves are checked against finite differences in `gradcheck_ops.rs`.

use crate::common;

use common::{assert_close, run_conv, using, with_simd, ConvRun, BOTH_SIMD};
use ferrocnn::gradcheck::random_like;
use ferrocnn::{Conv2dOptions, ConvAlgorithm, ConvEpilogue, Padding, PoolWindow, Tensor};

/// One convolution: input `[N, C, H, W]`, weight `[O, C, kh, kw]`, options.
struct Geometry {
    input: [usize; 4],
    weight: [usize; 4],
    opts: Conv2dOptions,
}

fn conv(input: [usize; 4], weight: [usize; 4], stride: usize, padding: Padding, dilation: usize) -> Geometry {
    Geometry {
        input,
        weight,
        opts: Conv2dOptions {
            stride: (stride, stride),
            padding,
            dilation: (dilation, dilation),
            ..Conv2dOptions::default()
        },
    }
}

/// 1×1, 3×3 with stride 1, 2 and 3, 5×5, padding Same/Valid/Explicit, dilation 2, few
/// and many channels, a batch of 1 and batches split over tasks and grouped into one
/// product; planes above and below the 100 pixels where `Auto`'s backward passes
/// switch to Winograd.
fn geometries() -> Vec<Geometry> {
    use Padding::{Explicit, Same, Valid};
    vec![
        conv([1, 3, 6, 6], [4, 3, 1, 1], 1, Valid, 1),
        conv([5, 16, 7, 7], [8, 16, 1, 1], 1, Valid, 1),
        conv([1, 2, 8, 7], [3, 2, 3, 3], 1, Valid, 1),
        conv([2, 1, 9, 9], [8, 1, 3, 3], 1, Same, 1),
        conv([3, 8, 14, 14], [8, 8, 3, 3], 1, Same, 1),
        conv([2, 16, 11, 11], [12, 16, 3, 3], 1, Valid, 1),
        conv([1, 8, 15, 17], [9, 8, 3, 3], 1, Explicit(1, 2), 1),
        conv([9, 4, 6, 6], [4, 4, 3, 3], 1, Explicit(2, 2), 1),
        conv([2, 8, 12, 12], [8, 8, 3, 3], 1, Explicit(3, 3), 1),
        conv([2, 3, 9, 9], [4, 3, 3, 3], 2, Valid, 1),
        conv([3, 16, 10, 10], [8, 16, 3, 3], 2, Same, 1),
        conv([2, 3, 10, 9], [4, 3, 5, 5], 1, Same, 1),
        conv([1, 8, 11, 11], [16, 8, 5, 5], 2, Explicit(2, 1), 1),
        conv([2, 3, 11, 11], [4, 3, 3, 3], 1, Valid, 2),
        conv([13, 8, 12, 12], [8, 8, 3, 3], 1, Same, 2),
        // R3's: stride-2 3×3 padded by 1 and 1×1 stride-2 projections on even and
        // odd planes, a batch of one; 3×3 padded by 1 on 7×7 (im2col backward).
        conv([1, 16, 14, 14], [32, 16, 3, 3], 2, Explicit(1, 1), 1),
        conv([3, 8, 7, 7], [16, 8, 3, 3], 2, Explicit(1, 1), 1),
        conv([2, 16, 14, 14], [32, 16, 1, 1], 2, Valid, 1),
        conv([1, 5, 7, 7], [6, 5, 1, 1], 2, Valid, 1),
        conv([2, 8, 7, 7], [8, 8, 3, 3], 1, Explicit(1, 1), 1),
        // 3-wide taps read straight from the row: stride 3 with padding 2 (outputs
        // whose taps reach the padding on both sides), and rows of 1 and 2 pixels.
        conv([2, 4, 11, 10], [5, 4, 3, 3], 3, Explicit(2, 2), 1),
        conv([1, 2, 2, 2], [3, 2, 3, 3], 1, Explicit(1, 1), 1),
        conv([1, 2, 3, 1], [2, 2, 3, 3], 2, Explicit(1, 1), 1),
        // 1×1 taps gathered straight from the row: stride 3, and a Same padding
        // whose right edge a tap reads.
        conv([2, 3, 10, 10], [4, 3, 1, 1], 3, Valid, 1),
        conv([1, 3, 6, 6], [2, 3, 1, 1], 4, Same, 1),
        // Through im2col's padded plane: a stride-2 window that skips the last row
        // and column, Same's odd padding on the bottom and right only, 1×1 with
        // padding, padding wider than the kernel.
        conv([1, 3, 8, 8], [4, 3, 3, 3], 2, Valid, 1),
        conv([2, 4, 6, 5], [3, 4, 3, 3], 2, Same, 1),
        conv([2, 2, 5, 6], [3, 2, 1, 1], 2, Explicit(1, 1), 1),
        conv([1, 3, 5, 7], [2, 3, 3, 3], 2, Explicit(3, 4), 1),
        // Winograd with several images side by side in each row of tiles: R3's
        // 28-wide planes, three images to a product group; and planes 2 and 3
        // pixels wide, where a tile spans several images.
        conv([3, 8, 28, 28], [8, 8, 3, 3], 1, Same, 1),
        conv([6, 3, 5, 2], [4, 3, 3, 3], 1, Explicit(1, 1), 1),
        conv([5, 2, 6, 3], [3, 2, 3, 3], 1, Valid, 1),
        // Winograd's channel form (forward, at most 16 tiles, channels in eights):
        // planes of 2×2 tiles cut at the bottom and right, and 3×3 tiles with more
        // padding on the sides than above and below.
        conv([2, 8, 6, 5], [16, 8, 3, 3], 1, Same, 1),
        conv([1, 16, 9, 10], [8, 16, 3, 3], 1, Explicit(1, 2), 1),
    ]
}

/// Whether Winograd can compute every pass of `g`: 3×3, stride 1, dilation 1, and a
/// padding of at most 2 before the first row and column (the input gradient's).
fn winograd_applies(g: &Geometry) -> bool {
    let (input, kernel) = ((g.input[2], g.input[3]), (g.weight[2], g.weight[3]));
    let o = &g.opts;
    let pad = o.padding.resolve(input, kernel, o.stride, o.dilation).unwrap();
    kernel == (3, 3) && o.stride == (1, 1) && o.dilation == (1, 1) && pad.top <= 2 && pad.left <= 2
}

/// The algorithms that can compute `g` besides Direct.
fn fast_algorithms(g: &Geometry) -> Vec<ConvAlgorithm> {
    let mut algorithms = vec![ConvAlgorithm::Auto, ConvAlgorithm::Im2col];
    if winograd_applies(g) {
        algorithms.push(ConvAlgorithm::Winograd);
    }
    algorithms
}

fn assert_runs_close(what: &str, fast: ConvRun, direct: &ConvRun) {
    assert_close(&format!("{what} output"), &fast.y, &direct.y);
    for (name, got, want) in [
        ("dx", fast.dx, &direct.dx),
        ("dW", fast.dw, &direct.dw),
        ("db", fast.db, &direct.db),
    ] {
        let (got, want) = (got.expect("gradient"), want.as_ref().expect("gradient"));
        assert_close(&format!("{what} {name}"), &got, want);
    }
}

/// Each fast algorithm against Direct on every geometry, as `conv2d` (no epilogue)
/// or `conv2d_block` with `epilogue`.
fn check_against_direct(epilogue: Option<&ConvEpilogue>) {
    for (case, g) in geometries().iter().enumerate() {
        let seed = 1000 + 10 * case as u64;
        let x = random_like(&g.input, seed);
        let w = random_like(&g.weight, seed + 1);
        let b = random_like(&g.weight[..1], seed + 2);
        let run = |algorithm| {
            let opts = using(algorithm, &g.opts);
            let grad = |shape: &[usize]| random_like(shape, seed + 3);
            run_conv(&x, (&w, true), Some(&b), true, &opts, epilogue, grad)
        };
        let direct = run(ConvAlgorithm::Direct);
        for algorithm in fast_algorithms(g) {
            for simd in BOTH_SIMD {
                let fast = with_simd(simd, || run(algorithm));
                let what = format!(
                    "{algorithm:?} ({simd:?}) input {:?} weight {:?} {:?} {epilogue:?}:",
                    g.input, g.weight, g.opts
                );
                assert_runs_close(&what, fast, &direct);
            }
        }
    }
}

#[test]
fn every_algorithm_matches_direct_in_conv2d() {
    check_against_direct(None);
}

#[test]
fn every_algorithm_matches_direct_in_conv2d_block_with_relu_and_max_pool() {
    let epilogue = ConvEpilogue {
        relu: true,
        max_pool: Some(PoolWindow {
            kernel: (2, 2),
            stride: (2, 2),
            padding: Padding::Same,
        }),
    };
    check_against_direct(Some(&epilogue));
}

/// A first layer (its input needs no gradient) that max-pools: under `Auto` its
/// weight and bias gradients are summed from the pooling's winners alone
/// (`src/ops/conv/pooled_gradient.rs`). Against the direct loops, with 2×2 windows
/// (R1's 28×28 → 26×26, batches split over tasks), overlapping 3×3 windows with a
/// stride of 1 and 2 (several windows sharing a winner), padded windows, strided
/// and padded convs, a 4×4 kernel (`K = 16`, the most it takes), two input channels,
/// with and without ReLU, both SIMD levels.
#[test]
fn first_layer_blocks_sum_weight_gradients_from_the_winners() {
    let pool = |kernel, stride, padding| PoolWindow {
        kernel: (kernel, kernel),
        stride: (stride, stride),
        padding,
    };
    let cases = [
        (
            conv([9, 1, 28, 28], [32, 1, 3, 3], 1, Padding::Valid, 1),
            pool(2, 2, Padding::Valid),
        ),
        (
            conv([1, 1, 12, 11], [5, 1, 3, 3], 1, Padding::Same, 1),
            pool(2, 2, Padding::Same),
        ),
        (
            conv([3, 1, 10, 10], [4, 1, 3, 3], 1, Padding::Valid, 1),
            pool(3, 1, Padding::Valid),
        ),
        (
            conv([2, 1, 9, 9], [6, 1, 3, 3], 1, Padding::Explicit(1, 1), 1),
            pool(3, 2, Padding::Same),
        ),
        (
            conv([5, 1, 11, 11], [4, 1, 3, 3], 2, Padding::Same, 1),
            pool(2, 2, Padding::Valid),
        ),
        (
            conv([2, 1, 10, 10], [3, 1, 4, 4], 1, Padding::Valid, 1),
            pool(2, 2, Padding::Valid),
        ),
        (
            conv([2, 2, 9, 8], [3, 2, 2, 2], 1, Padding::Valid, 2),
            pool(2, 1, Padding::Valid),
        ),
    ];
    for (case, (g, window)) in cases.iter().enumerate() {
        let seed = 3000 + 10 * case as u64;
        let x = random_like(&g.input, seed);
        let w = random_like(&g.weight, seed + 1);
        let b = random_like(&g.weight[..1], seed + 2);
        for relu in [false, true] {
            let epilogue = ConvEpilogue {
                relu,
                max_pool: Some(*window),
            };
            let run = |algorithm| {
                let opts = using(algorithm, &g.opts);
                let grad = |shape: &[usize]| random_like(shape, seed + 3);
                run_conv(&x, (&w, true), Some(&b), false, &opts, Some(&epilogue), grad)
            };
            let direct = run(ConvAlgorithm::Direct);
            for simd in BOTH_SIMD {
                let auto = with_simd(simd, || run(ConvAlgorithm::Auto));
                let what = format!(
                    "({simd:?}) input {:?} weight {:?} {epilogue:?}",
                    g.input, g.weight
                );
                assert!(auto.dx.is_none(), "{what}: no input gradient");
                assert_close(&format!("{what} output"), &auto.y, &direct.y);
                assert_close(
                    &format!("{what} dW"),
                    auto.dw.as_ref().unwrap(),
                    direct.dw.as_ref().unwrap(),
                );
                assert_close(
                    &format!("{what} db"),
                    auto.db.as_ref().unwrap(),
                    direct.db.as_ref().unwrap(),
                );
            }
        }
    }
}

#[test]
fn direct_gives_known_values() {
    // The classic 2×2 example with SAME padding: input [[1,2],[3,4]], kernel
    // [[1,2],[3,4]]; and a 2×2 stride-2 window summing a pixel and its lower-right
    // neighbour, plus a bias of 0.5.
    let image = |h, w, v: Vec<f32>| {
        Tensor::new(
            ndarray::Array4::from_shape_vec((1, 1, h, w), v)
                .unwrap()
                .into_dyn(),
        )
    };
    let direct = |opts: Conv2dOptions| using(ConvAlgorithm::Direct, &opts);
    let x = image(2, 2, vec![1., 2., 3., 4.]);
    let same = direct(Conv2dOptions {
        padding: Padding::Same,
        ..Default::default()
    });
    let y = x.conv2d(&x, None, &same);
    assert_eq!(y.value().as_slice().unwrap(), &[30., 14., 11., 4.]);
    let x = image(4, 4, (1..=16).map(|v| v as f32).collect());
    let k = image(2, 2, vec![1., 0., 0., 1.]);
    let b = Tensor::new(ndarray::arr1(&[0.5f32]).into_dyn());
    let stride2 = direct(Conv2dOptions {
        stride: (2, 2),
        ..Default::default()
    });
    let y = x.conv2d(&k, Some(&b), &stride2);
    assert_eq!(y.value().as_slice().unwrap(), &[7.5, 11.5, 23.5, 27.5]);
}

#[test]
fn auto_computes_what_the_algorithm_it_picks_computes_bit_for_bit() {
    // R2's and R1's second convs on a small batch: Winograd for all three passes.
    // And 32 → 64 on 7×7 outputs: Winograd forward, im2col backward.
    for (input, weight) in [
        ([2, 32, 26, 26], [64, 32, 3, 3]),
        ([2, 32, 13, 13], [64, 32, 3, 3]),
        ([2, 32, 9, 9], [64, 32, 3, 3]),
    ] {
        let g = conv(input, weight, 1, Padding::Valid, 1);
        let (x, w, b) = (
            random_like(&input, 7),
            random_like(&weight, 8),
            random_like(&[64], 9),
        );
        let run = |algorithm| {
            let opts = using(algorithm, &g.opts);
            run_conv(&x, (&w, true), Some(&b), true, &opts, None, |s| {
                random_like(s, 10)
            })
        };
        let auto = run(ConvAlgorithm::Auto);
        let (winograd, im2col) = (run(ConvAlgorithm::Winograd), run(ConvAlgorithm::Im2col));
        assert_eq!(auto.y, winograd.y, "{input:?}: forward");
        let backward = if input[2] >= 13 { &winograd } else { &im2col };
        assert_eq!(auto.dx, backward.dx, "{input:?}: dx");
        assert_eq!(auto.dw, backward.dw, "{input:?}: dW");
        assert_eq!(auto.db, backward.db, "{input:?}: db");
    }
}

#[test]
#[should_panic(
    expected = "conv2d: ConvAlgorithm::Winograd cannot compute the Forward pass of a 3×3 kernel with stride (2, 2)"
)]
fn forcing_winograd_on_a_strided_conv_panics_naming_it() {
    let x = Tensor::new(random_like(&[1, 8, 9, 9], 1));
    let w = Tensor::new(random_like(&[8, 8, 3, 3], 2));
    let opts = Conv2dOptions {
        stride: (2, 2),
        algorithm: ConvAlgorithm::Winograd,
        ..Conv2dOptions::default()
    };
    x.conv2d(&w, None, &opts);
}

#[test]
#[should_panic(expected = "conv2d: ConvAlgorithm::Winograd cannot compute the InputGradient pass")]
fn forcing_winograd_where_its_input_gradient_cannot_go_panics_at_the_call() {
    // Padding 3: the input gradient would need padding −1. The panic comes from the
    // call, not later from the backward pass.
    let x = Tensor::new(random_like(&[1, 8, 6, 6], 1));
    let w = Tensor::new(random_like(&[8, 8, 3, 3], 2));
    let opts = Conv2dOptions {
        padding: Padding::Explicit(3, 3),
        algorithm: ConvAlgorithm::Winograd,
        ..Conv2dOptions::default()
    };
    x.conv2d(&w, None, &opts);
}

/// A `Conv2d` layer keeps Winograd's transformed kernels between inference calls
/// (`KernelCache`); every way of changing its weight — `value_mut` in place, an
/// optimizer step, `set_value`, a change through a clone that shares the value —
/// must give the new weight's output, bit for bit that of the op, which transforms
/// the kernels afresh on each call.
#[test]
fn conv2d_layer_never_reuses_winograd_kernels_of_an_old_weight() {
    use ferrocnn::nn::{Conv2d, Mode, Module};
    use ferrocnn::optim::{Optimizer, SGDConfig, SGD};
    use rand::SeedableRng;

    let rng = &mut rand::rngs::StdRng::seed_from_u64(3);
    let mut conv = Conv2d::new(4, 8, (3, 3), rng).with_padding(Padding::Same);
    conv.options.algorithm = ConvAlgorithm::Winograd;
    let x = Tensor::new(random_like(&[1, 4, 9, 9], 5));
    let check = |conv: &mut Conv2d, what: &str| {
        let got = conv.forward(&x, Mode::Eval);
        let (w, b) = (
            Tensor::new(conv.weight.value().clone()),
            conv.bias.as_ref().map(|b| Tensor::new(b.value().clone())),
        );
        let want = x.conv2d(&w, b.as_ref(), &conv.options);
        assert_eq!(got.value(), want.value(), "{what}");
    };
    check(&mut conv, "first call");
    check(&mut conv, "second call (kept kernels)");

    conv.weight.value_mut().mapv_inplace(|v| -0.5 * v + 0.01);
    check(&mut conv, "after value_mut");

    let mut sgd = SGD::new(SGDConfig {
        lr: 0.1f32.into(),
        ..SGDConfig::default()
    });
    let mut grads = ferrocnn::Gradients::new();
    grads.insert(&conv.weight, conv.weight.value().mapv(|v| v * 3.0 + 0.2));
    sgd.step(&mut conv.parameters_mut(), &grads);
    check(&mut conv, "after an SGD step");

    conv.weight.set_value(random_like(&[8, 4, 3, 3], 7));
    check(&mut conv, "after set_value");

    let mut twin = conv.clone();
    twin.weight.value_mut().mapv_inplace(|v| v + 1.0);
    check(&mut twin, "a clone after its own weight changed");
    check(&mut conv, "the original after its clone's weight changed");
}

/// As above, for a `Conv2dBlock` (conv, ReLU, max pooling in one op), which keeps
/// its convolution's transformed kernels the same way.
#[test]
fn conv2d_block_layer_never_reuses_winograd_kernels_of_an_old_weight() {
    use ferrocnn::nn::{Conv2d, Conv2dBlock, MaxPool2d, Mode, Module};
    use rand::SeedableRng;

    let rng = &mut rand::rngs::StdRng::seed_from_u64(4);
    let mut conv = Conv2d::new(3, 6, (3, 3), rng);
    conv.options.algorithm = ConvAlgorithm::Winograd;
    let mut block = Conv2dBlock::new(conv)
        .with_relu()
        .with_max_pool(MaxPool2d::new((2, 2)));
    let epilogue = common::relu_max_pool_2x2();
    let x = Tensor::new(random_like(&[1, 3, 12, 12], 6));
    let check = |block: &mut Conv2dBlock, what: &str| {
        let got = block.forward(&x, Mode::Eval);
        let conv = &block.conv;
        let w = Tensor::new(conv.weight.value().clone());
        let b = conv.bias.as_ref().map(|b| Tensor::new(b.value().clone()));
        let want = x.conv2d_block(&w, b.as_ref(), &conv.options, &epilogue);
        assert_eq!(got.value(), want.value(), "{what}");
    };
    check(&mut block, "first call");
    check(&mut block, "second call (kept kernels)");
    block.conv.weight.value_mut().mapv_inplace(|v| 0.25 - v);
    check(&mut block, "after value_mut");
    block.conv.weight.set_value(random_like(&[6, 3, 3, 3], 8));
    check(&mut block, "after set_value");
}
