//! conv2d and the pools: gradient checks, known values, and the fast conv against
//! the direct seven-loop convolution (`ConvAlgorithm::Direct`; each algorithm on its
//! own is tested against it in `conv_algorithms.rs`). The tests that reach kernels with an AVX2 version
//! run with both [`Simd`](ferrocnn::runtime::Simd) settings.

use crate::common;

use common::{assert_close, run_conv, using, with_simd, BOTH_SIMD};
use ferrocnn::gradcheck::random_like;
use ferrocnn::{
    Conv2dOptions, ConvAlgorithm, ConvEpilogue, GradCheck, Padding, Param, PoolWindow, Tape, Tensor,
};
use ndarray::{Array4, ArrayD, IxDyn};

fn arr4(shape: (usize, usize, usize, usize), values: &[f32]) -> ArrayD<f32> {
    Array4::from_shape_vec(shape, values.to_vec()).unwrap().into_dyn()
}

fn opts(stride: (usize, usize), padding: Padding, dilation: (usize, usize)) -> Conv2dOptions {
    Conv2dOptions {
        stride,
        padding,
        dilation,
        ..Conv2dOptions::default()
    }
}

/// (input shape, weight shape, options, with bias)
type ConvCase = ([usize; 4], [usize; 4], Conv2dOptions, bool);

fn conv_cases() -> Vec<ConvCase> {
    vec![
        ([1, 1, 5, 5], [1, 1, 3, 3], Conv2dOptions::default(), true),
        ([2, 3, 5, 4], [2, 3, 2, 3], Conv2dOptions::default(), false),
        (
            [2, 2, 7, 6],
            [3, 2, 3, 3],
            opts((2, 2), Padding::Valid, (1, 1)),
            true,
        ),
        (
            [1, 2, 6, 5],
            [2, 2, 3, 2],
            opts((1, 2), Padding::Explicit(1, 2), (1, 1)),
            true,
        ),
        // Same with odd total padding: 6 with kernel 2 → total 1 (bottom/right).
        (
            [2, 1, 6, 6],
            [2, 1, 2, 2],
            opts((1, 1), Padding::Same, (1, 1)),
            true,
        ),
        (
            [1, 2, 6, 7],
            [2, 2, 3, 3],
            opts((2, 2), Padding::Same, (1, 1)),
            false,
        ),
        (
            [2, 2, 7, 7],
            [2, 2, 3, 3],
            opts((1, 1), Padding::Valid, (2, 2)),
            true,
        ),
        (
            [1, 1, 6, 6],
            [2, 1, 2, 3],
            opts((2, 1), Padding::Same, (2, 1)),
            true,
        ),
    ]
}

/// Convolutions that take the Winograd path (3×3, stride 1, ≥ 8 channels each way),
/// in the backward pass too from 100 output pixels on.
fn winograd_cases() -> Vec<ConvCase> {
    let stride1 = |padding| opts((1, 1), padding, (1, 1));
    vec![
        ([2, 8, 14, 14], [8, 8, 3, 3], stride1(Padding::Same), true),
        (
            [1, 8, 15, 17],
            [9, 8, 3, 3],
            stride1(Padding::Explicit(1, 2)),
            true,
        ),
        (
            [1, 8, 16, 16],
            [8, 8, 3, 3],
            stride1(Padding::Explicit(3, 3)),
            false,
        ),
        ([3, 8, 9, 8], [8, 8, 3, 3], stride1(Padding::Same), true),
        (
            [2, 9, 7, 10],
            [10, 9, 3, 3],
            stride1(Padding::Explicit(2, 1)),
            true,
        ),
        (
            [2, 8, 6, 6],
            [8, 8, 3, 3],
            stride1(Padding::Explicit(3, 3)),
            false,
        ),
        ([7, 16, 11, 11], [8, 16, 3, 3], Conv2dOptions::default(), true),
        // Tiny planes: one output pixel; a 2×3 output.
        ([2, 8, 3, 3], [8, 8, 3, 3], Conv2dOptions::default(), true),
        ([1, 8, 4, 5], [9, 8, 3, 3], Conv2dOptions::default(), false),
    ]
}

#[test]
fn winograd_gradients_match_finite_differences() {
    for simd in BOTH_SIMD {
        with_simd(simd, || {
            for (seed, (xs, ws, o, with_bias)) in winograd_cases().into_iter().take(2).enumerate() {
                let seed = 70 + seed as u64 * 3;
                let mut inputs = vec![random_like(&xs, seed), random_like(&ws, seed + 1)];
                if with_bias {
                    inputs.push(random_like(&ws[..1], seed + 2));
                }
                GradCheck::default()
                    .run(&inputs, |t| t[0].conv2d(&t[1], t.get(2), &o))
                    .unwrap_or_else(|e| panic!("input {xs:?} weight {ws:?} {o:?}: {e}"));
            }
        });
    }
}

#[test]
fn conv2d_gradients_match_finite_differences() {
    for (seed, (xs, ws, o, with_bias)) in conv_cases().into_iter().enumerate() {
        let seed = seed as u64 * 3;
        let mut inputs = vec![random_like(&xs, seed + 1), random_like(&ws, seed + 2)];
        if with_bias {
            inputs.push(random_like(&ws[..1], seed + 3));
        }
        // The fast path, and the direct loops every fast path is tested against.
        for algorithm in [ConvAlgorithm::Auto, ConvAlgorithm::Direct] {
            let o = using(algorithm, &o);
            GradCheck::default()
                .run(&inputs, |t| t[0].conv2d(&t[1], t.get(2), &o))
                .unwrap_or_else(|e| panic!("input {xs:?} weight {ws:?} {o:?} bias {with_bias}: {e}"));
        }
    }
}

#[test]
fn conv2d_matches_direct_convolution_forward_and_backward() {
    let mut cases = conv_cases();
    // Batches large enough to be split over tasks and grouped into one product.
    cases.push(([9, 3, 6, 6], [4, 3, 3, 3], Conv2dOptions::default(), true));
    cases.push((
        [13, 4, 9, 8],
        [5, 4, 3, 2],
        opts((2, 1), Padding::Same, (1, 2)),
        true,
    ));
    cases.push(([5, 8, 13, 13], [16, 8, 3, 3], Conv2dOptions::default(), true));
    // 3×3 stride-1 kernels with at least 8 channels in and out run as Winograd
    // F(4×4, 3×3): odd output sizes (tiles over the edge), padding, grouped images,
    // and padding 3, where the input gradient falls back to im2col.
    cases.extend(winograd_cases());
    for simd in BOTH_SIMD {
        for (seed, (xs, ws, o, with_bias)) in cases.iter().cloned().enumerate() {
            let seed = 100 + seed as u64 * 5;
            let (x, w, b) = (
                random_like(&xs, seed),
                random_like(&ws, seed + 1),
                random_like(&ws[..1], seed + 2),
            );
            let b = with_bias.then_some(b);
            let run = |algorithm| {
                let opts = using(algorithm, &o);
                let g = |shape: &[usize]| random_like(shape, seed + 3);
                with_simd(simd, || {
                    run_conv(&x, (&w, true), b.as_ref(), true, &opts, None, g)
                })
            };
            let (fast, direct) = (run(ConvAlgorithm::Auto), run(ConvAlgorithm::Direct));
            let what = format!("{simd:?} input {xs:?} weight {ws:?} {o:?}");
            assert_close(&format!("{what} forward"), &fast.y, &direct.y);
            assert_close(&format!("{what} dx"), &fast.dx.unwrap(), &direct.dx.unwrap());
            assert_close(&format!("{what} dW"), &fast.dw.unwrap(), &direct.dw.unwrap());
            if with_bias {
                assert_close(&format!("{what} db"), &fast.db.unwrap(), &direct.db.unwrap());
            }
        }
    }
}

#[test]
fn conv2d_skips_the_input_gradient_of_a_tape_input() {
    let (x, w) = (random_like(&[3, 2, 5, 5], 1), random_like(&[4, 2, 3, 3], 2));
    let run = |algorithm| {
        let opts = using(algorithm, &Conv2dOptions::default());
        run_conv(&x, (&w, true), None, false, &opts, None, |s| random_like(s, 3))
    };
    let (fast, direct) = (run(ConvAlgorithm::Auto), run(ConvAlgorithm::Direct));
    assert!(fast.dx.is_none() && direct.dx.is_none());
    assert_close("dW", &fast.dw.unwrap(), &direct.dw.unwrap());
}

#[test]
fn conv2d_blog_example_same_and_valid() {
    // The classic 2×2 example: input [[1,2],[3,4]], kernel [[1,2],[3,4]].
    let x = Tensor::new(arr4((1, 1, 2, 2), &[1., 2., 3., 4.]));
    let k = Tensor::new(arr4((1, 1, 2, 2), &[1., 2., 3., 4.]));
    let same = x.conv2d(&k, None, &opts((1, 1), Padding::Same, (1, 1)));
    assert_eq!(same.value(), &arr4((1, 1, 2, 2), &[30., 14., 11., 4.]));
    let valid = x.conv2d(&k, None, &Conv2dOptions::default());
    assert_eq!(valid.value(), &arr4((1, 1, 1, 1), &[30.]));
}

#[test]
fn conv2d_stride_two_known_values() {
    // 4×4 input 1..16, kernel [[1,0],[0,1]] (sum of a pixel and its lower-right
    // neighbour), stride 2: windows at (0,0) 1+6, (0,2) 3+8, (2,0) 9+14, (2,2) 11+16.
    let x = Tensor::new(arr4(
        (1, 1, 4, 4),
        &(1..=16).map(|v| v as f32).collect::<Vec<_>>(),
    ));
    let k = Tensor::new(arr4((1, 1, 2, 2), &[1., 0., 0., 1.]));
    let b = Tensor::new(ndarray::arr1(&[0.5f32]).into_dyn());
    let y = x.conv2d(&k, Some(&b), &opts((2, 2), Padding::Valid, (1, 1)));
    assert_eq!(y.value(), &arr4((1, 1, 2, 2), &[7.5, 11.5, 23.5, 27.5]));
}

#[test]
#[should_panic(expected = "conv2d")]
fn conv2d_rejects_channel_mismatch() {
    let x = Tensor::new(ArrayD::zeros(IxDyn(&[1, 3, 5, 5])));
    let w = Tensor::new(ArrayD::zeros(IxDyn(&[2, 2, 3, 3])));
    x.conv2d(&w, None, &Conv2dOptions::default());
}

#[test]
#[should_panic(expected = "conv2d")]
fn conv2d_rejects_bias_mismatch() {
    let x = Tensor::new(ArrayD::zeros(IxDyn(&[1, 2, 5, 5])));
    let w = Tensor::new(ArrayD::zeros(IxDyn(&[2, 2, 3, 3])));
    let b = Tensor::new(ArrayD::zeros(IxDyn(&[3])));
    x.conv2d(&w, Some(&b), &Conv2dOptions::default());
}

#[test]
#[should_panic(expected = "conv2d")]
fn conv2d_rejects_kernel_larger_than_input() {
    let x = Tensor::new(ArrayD::zeros(IxDyn(&[1, 1, 2, 2])));
    let w = Tensor::new(ArrayD::zeros(IxDyn(&[1, 1, 3, 3])));
    x.conv2d(&w, None, &Conv2dOptions::default());
}

/// Distinct values, at least 0.1 apart, in a shuffled order: no max-pool ties within
/// the gradient check's perturbation.
fn distinct(shape: &[usize], seed: u64) -> ArrayD<f32> {
    let r = random_like(shape, seed);
    let mut order: Vec<usize> = (0..r.len()).collect();
    order.sort_by(|&a, &b| r.as_slice().unwrap()[a].total_cmp(&r.as_slice().unwrap()[b]));
    let mut values = vec![0.0; r.len()];
    for (rank, &i) in order.iter().enumerate() {
        values[i] = rank as f32 * 0.1 - r.len() as f32 * 0.05;
    }
    ArrayD::from_shape_vec(IxDyn(shape), values).unwrap()
}

/// (input shape, kernel, stride, padding)
type PoolCase = ([usize; 4], (usize, usize), (usize, usize), Padding);

fn pool_cases() -> Vec<PoolCase> {
    vec![
        ([2, 2, 4, 4], (2, 2), (2, 2), Padding::Valid),
        ([1, 2, 7, 7], (3, 3), (2, 2), Padding::Valid),
        ([2, 1, 6, 5], (3, 3), (2, 2), Padding::Same),
        ([1, 2, 5, 6], (3, 2), (1, 2), Padding::Explicit(1, 1)),
        ([1, 1, 7, 5], (2, 3), (3, 1), Padding::Explicit(1, 0)),
    ]
}

#[test]
fn max_pool2d_gradients_match_finite_differences() {
    for (seed, (shape, kernel, stride, padding)) in pool_cases().into_iter().enumerate() {
        GradCheck::default()
            .run(&[distinct(&shape, seed as u64)], |t| {
                t[0].max_pool2d(kernel, stride, padding)
            })
            .unwrap_or_else(|e| panic!("{shape:?} k{kernel:?} s{stride:?} {padding:?}: {e}"));
    }
}

#[test]
fn avg_pool2d_gradients_match_finite_differences() {
    for (seed, (shape, kernel, stride, padding)) in pool_cases().into_iter().enumerate() {
        for include in [true, false] {
            GradCheck::default()
                .run(&[random_like(&shape, seed as u64)], |t| {
                    t[0].avg_pool2d(kernel, stride, padding, include)
                })
                .unwrap_or_else(|e| panic!("{shape:?} k{kernel:?} s{stride:?} {padding:?} {include}: {e}"));
        }
    }
}

#[test]
fn global_avg_pool2d_gradients_match_finite_differences() {
    GradCheck::default()
        .run(&[random_like(&[2, 3, 4, 5], 9)], |t| t[0].global_avg_pool2d())
        .unwrap();
    let y = Tensor::new(arr4((1, 2, 1, 2), &[1., 3., -2., 6.])).global_avg_pool2d();
    assert_eq!(y.value(), &ndarray::arr2(&[[2.0f32, 2.0]]).into_dyn());
}

fn pool_grad(x: ArrayD<f32>, f: impl Fn(&Tensor) -> Tensor) -> (ArrayD<f32>, ArrayD<f32>) {
    let p = Param::new(x);
    let tape = Tape::new();
    let y = f(&tape.param(&p));
    let grads = y.sum().backward();
    (y.value().clone(), grads[&p].clone())
}

#[test]
fn maxpool_backward_routes_to_argmax() {
    let x = arr4((1, 1, 2, 4), &[1., 5., 2., 0., 3., 4., 8., 7.]);
    let (y, dx) = pool_grad(x, |t| t.max_pool2d((2, 2), (2, 2), Padding::Valid));
    assert_eq!(y, arr4((1, 1, 1, 2), &[5., 8.]));
    assert_eq!(dx, arr4((1, 1, 2, 4), &[0., 1., 0., 0., 0., 0., 1., 0.]));
}

#[test]
fn maxpool_overlapping_windows_accumulate() {
    // Kernel 3, stride 2 on 5×5: the centre pixel is in all four windows and is the
    // maximum of each, so it receives four gradients.
    let mut v = vec![0.0f32; 25];
    v[12] = 10.0;
    v[0] = 1.0;
    let (y, dx) = pool_grad(arr4((1, 1, 5, 5), &v), |t| {
        t.max_pool2d((3, 3), (2, 2), Padding::Valid)
    });
    assert_eq!(y, arr4((1, 1, 2, 2), &[10.; 4]));
    let mut expected = vec![0.0f32; 25];
    expected[12] = 4.0;
    assert_eq!(dx, arr4((1, 1, 5, 5), &expected));
}

#[test]
fn maxpool_padding_never_wins() {
    let x = arr4((1, 1, 2, 2), &[-4., -3., -2., -1.]);
    let (y, dx) = pool_grad(x, |t| t.max_pool2d((2, 2), (1, 1), Padding::Explicit(1, 1)));
    assert_eq!(
        y,
        arr4((1, 1, 3, 3), &[-4., -3., -3., -2., -1., -1., -2., -1., -1.])
    );
    assert_eq!(dx, arr4((1, 1, 2, 2), &[1., 2., 2., 4.]));
}

#[test]
fn avgpool_count_include_pad_divides_by_kernel_area_or_real_pixels() {
    let x = arr4((1, 1, 2, 2), &[1., 2., 3., 4.]);
    let (y, dx) = pool_grad(x.clone(), |t| {
        t.avg_pool2d((2, 2), (2, 2), Padding::Explicit(1, 1), true)
    });
    assert_eq!(y, arr4((1, 1, 2, 2), &[0.25, 0.5, 0.75, 1.0]));
    assert_eq!(dx, arr4((1, 1, 2, 2), &[0.25; 4]));
    let (y, dx) = pool_grad(x, |t| {
        t.avg_pool2d((2, 2), (2, 2), Padding::Explicit(1, 1), false)
    });
    assert_eq!(y, arr4((1, 1, 2, 2), &[1., 2., 3., 4.]));
    assert_eq!(dx, arr4((1, 1, 2, 2), &[1.; 4]));
    // Overlapping windows (kernel 2, stride 1) without padding: the centre of a 3×3
    // is in all four windows, each giving 1/4.
    let (_, dx) = pool_grad(ArrayD::zeros(IxDyn(&[1, 1, 3, 3])), |t| {
        t.avg_pool2d((2, 2), (1, 1), Padding::Valid, true)
    });
    assert_eq!(
        dx,
        arr4((1, 1, 3, 3), &[0.25, 0.5, 0.25, 0.5, 1.0, 0.5, 0.25, 0.5, 0.25])
    );
}

#[test]
#[should_panic(expected = "max_pool2d")]
fn maxpool_rejects_padding_as_large_as_the_kernel() {
    Tensor::new(ArrayD::zeros(IxDyn(&[1, 1, 4, 4]))).max_pool2d((2, 2), (2, 2), Padding::Explicit(2, 2));
}

#[test]
fn conv2d_frozen_weight_gives_only_the_input_gradient() {
    let (x, w) = (random_like(&[2, 3, 6, 5], 4), random_like(&[2, 3, 3, 3], 5));
    let o = opts((1, 1), Padding::Same, (1, 1));
    let run = |algorithm| {
        let opts = using(algorithm, &o);
        run_conv(&x, (&w, false), None, true, &opts, None, |s| random_like(s, 6))
    };
    let (fast, direct) = (run(ConvAlgorithm::Auto), run(ConvAlgorithm::Direct));
    assert!(fast.dw.is_none() && direct.dw.is_none());
    assert_close("dx", &fast.dx.unwrap(), &direct.dx.unwrap());
}

#[test]
fn conv2d_gradients_are_deterministic() {
    let run = || {
        let (px, pw) = (
            Param::new(random_like(&[24, 4, 9, 9], 7)),
            Param::new(random_like(&[8, 4, 3, 3], 8)),
        );
        let tape = Tape::new();
        let y = tape
            .param(&px)
            .conv2d(&tape.param(&pw), None, &Conv2dOptions::default());
        let grads = y.mul(&Tensor::new(random_like(y.shape(), 9))).sum().backward();
        (y.value().clone(), grads[&px].clone(), grads[&pw].clone())
    };
    assert_eq!(run(), run());
}

#[test]
fn maxpool_propagates_nan_and_routes_to_it() {
    // A NaN wins its window (as in PyTorch), in both the 2×2 fast path and the
    // general one (3×3 stride 1: the NaN at (1, 1) is in all four windows), and the
    // gradient goes to the NaN's position.
    let mut v: Vec<f32> = (0..16).map(|i| i as f32).collect();
    v[5] = f32::NAN;
    for (kernel, stride) in [((2, 2), (2, 2)), ((3, 3), (1, 1))] {
        let (y, dx) = pool_grad(arr4((1, 1, 4, 4), &v), |t| {
            t.max_pool2d(kernel, stride, Padding::Valid)
        });
        assert!(y.iter().next().unwrap().is_nan(), "{kernel:?}: {y}");
        assert_eq!(
            dx.as_slice().unwrap()[5],
            if kernel == (2, 2) { 1.0 } else { 4.0 },
            "{kernel:?}"
        );
    }
}

#[test]
fn maxpool_ties_go_to_the_first_maximum() {
    let (_, dx) = pool_grad(arr4((1, 1, 2, 2), &[3., 3., 3., 3.]), |t| {
        t.max_pool2d((2, 2), (2, 2), Padding::Valid)
    });
    assert_eq!(dx, arr4((1, 1, 2, 2), &[1., 0., 0., 0.]));
    let (_, dx) = pool_grad(arr4((1, 1, 3, 3), &[0., 0., 0., 0., 3., 3., 0., 3., 3.]), |t| {
        t.max_pool2d((3, 3), (1, 1), Padding::Valid)
    });
    assert_eq!(dx.as_slice().unwrap()[4], 1.0);
}

/// Max pooling by its definition: each window's maximum and the position of its
/// first maximum in reading order (a NaN wins at once), padding never winning.
fn naive_max_pool(
    x: &ArrayD<f32>,
    kernel: (usize, usize),
    stride: (usize, usize),
) -> (ArrayD<f32>, Vec<usize>) {
    let s = x.shape();
    let (oh, ow) = ((s[2] - kernel.0) / stride.0 + 1, (s[3] - kernel.1) / stride.1 + 1);
    let x = x.as_slice().unwrap();
    let (mut out, mut winners) = (Vec::new(), Vec::new());
    for plane in 0..s[0] * s[1] {
        for oy in 0..oh {
            for ox in 0..ow {
                let mut best: Option<(f32, usize)> = None;
                for r in oy * stride.0..oy * stride.0 + kernel.0 {
                    for c in ox * stride.1..ox * stride.1 + kernel.1 {
                        let at = (plane * s[2] + r) * s[3] + c;
                        let v = x[at];
                        match best {
                            Some((b, _)) if b.is_nan() || !(v > b || v.is_nan()) => {}
                            _ => best = Some((v, at)),
                        }
                    }
                }
                let (v, at) = best.unwrap();
                out.push(v);
                winners.push(at);
            }
        }
    }
    (
        ArrayD::from_shape_vec(IxDyn(&[s[0], s[1], oh, ow]), out).unwrap(),
        winners,
    )
}

/// Equal, with a NaN equal to a NaN (and, as `==` has it, −0 to +0: which zero a
/// window of both returns is not specified).
fn same_values(a: &ArrayD<f32>, b: &ArrayD<f32>) -> bool {
    a.shape() == b.shape()
        && a.iter()
            .zip(b.iter())
            .all(|(x, y)| x == y || x.is_nan() && y.is_nan())
}

#[test]
fn maxpool_matches_its_definition_with_and_without_a_tape() {
    for simd in BOTH_SIMD {
        with_simd(simd, || {
            // Widths whose rows of 2×2 windows end in a partial block of four (13, 5, 7
            // outputs), fewer than four windows, an odd leftover column and row, and a
            // general window; values in a few levels (many ties) and with NaNs, one of them
            // in the last window of a row.
            let cases = [
                ([2, 3, 26, 26], (2, 2), (2, 2)),
                ([1, 2, 11, 11], (2, 2), (2, 2)),
                ([1, 1, 9, 15], (2, 2), (2, 2)),
                ([1, 2, 6, 6], (2, 2), (2, 2)),
                ([1, 2, 16, 16], (2, 2), (2, 2)),
                ([1, 2, 9, 12], (3, 3), (2, 2)),
            ];
            for (seed, (shape, kernel, stride)) in cases.into_iter().enumerate() {
                for with_nan in [false, true] {
                    let mut x = random_like(&shape, 300 + seed as u64).mapv(|v| (v * 2.0).round());
                    if with_nan {
                        let w = shape[3];
                        let last = x.len() - 1;
                        let xs = x.as_slice_mut().unwrap();
                        xs[w + 2 * (w / 2) - 1] = f32::NAN;
                        xs[last / 3] = f32::NAN;
                    }
                    let (want, winners) = naive_max_pool(&x, kernel, stride);
                    let what = format!("{shape:?} k{kernel:?} nan {with_nan}");
                    let inference = Tensor::new(x.clone()).max_pool2d(kernel, stride, Padding::Valid);
                    assert!(
                        same_values(inference.value(), &want),
                        "{what}: values without a tape"
                    );
                    let g = random_like(want.shape(), 9);
                    let p = Param::new(x.clone());
                    let tape = Tape::new();
                    let y = tape.param(&p).max_pool2d(kernel, stride, Padding::Valid);
                    assert!(same_values(y.value(), &want), "{what}: values on a tape");
                    let dx = y.mul(&Tensor::new(g.clone())).sum().backward()[&p].clone();
                    let mut want_dx = vec![0.0f32; x.len()];
                    for (&at, &g) in winners.iter().zip(g.iter()) {
                        want_dx[at] += g;
                    }
                    assert_eq!(dx.as_slice().unwrap(), &want_dx[..], "{what}: gradient routing");
                }
            }
        });
    }
}

#[test]
fn conv2d_block_without_a_tape_gives_the_taped_values() {
    for simd in BOTH_SIMD {
        with_simd(simd, || {
            // Inference pools before adding the bias and keeps no winners; the values must
            // not change. Biases large enough to round the products' differences away.
            for (seed, e) in epilogues().into_iter().enumerate() {
                let seed = 400 + seed as u64;
                let x = random_like(&[3, 4, 14, 14], seed);
                let w = random_like(&[8, 4, 3, 3], seed + 1);
                let b = random_like(&[8], seed + 2).mapv(|v| v * 1e3);
                let free = Tensor::new(x.clone()).conv2d_block(
                    &Tensor::new(w.clone()),
                    Some(&Tensor::new(b.clone())),
                    &Conv2dOptions::default(),
                    &e,
                );
                let (px, pw, pb) = (Param::new(x), Param::new(w), Param::new(b));
                let tape = Tape::new();
                let taped = tape.param(&px).conv2d_block(
                    &tape.param(&pw),
                    Some(&tape.param(&pb)),
                    &Conv2dOptions::default(),
                    &e,
                );
                assert!(taped.requires_grad());
                assert_eq!(*free.value(), *taped.value(), "{e:?}");
            }
        });
    }
}

/// Epilogues of the fused conv block: ReLU, 2×2 pooling, overlapping padded pooling.
fn epilogues() -> Vec<ConvEpilogue> {
    let window = |kernel, stride, padding| {
        Some(PoolWindow {
            kernel,
            stride,
            padding,
        })
    };
    let pool2 = window((2, 2), (2, 2), Padding::Valid);
    let overlapping = window((3, 3), (2, 2), Padding::Explicit(1, 1));
    vec![
        ConvEpilogue {
            relu: true,
            max_pool: pool2,
        },
        ConvEpilogue {
            relu: true,
            max_pool: None,
        },
        ConvEpilogue {
            relu: false,
            max_pool: overlapping,
        },
        ConvEpilogue {
            relu: true,
            max_pool: overlapping,
        },
        ConvEpilogue::default(),
    ]
}

/// The separate ops a block stands for: conv2d, then ReLU, then max pooling.
fn unfused(x: &Tensor, w: &Tensor, b: Option<&Tensor>, o: &Conv2dOptions, e: &ConvEpilogue) -> Tensor {
    let mut y = x.conv2d(w, b, o);
    if e.relu {
        y = y.relu();
    }
    if let Some(p) = e.max_pool {
        y = y.max_pool2d(p.kernel, p.stride, p.padding);
    }
    y
}

#[test]
fn conv2d_block_gradients_match_finite_differences() {
    let cases = [
        ([2, 2, 7, 7], [3, 2, 3, 3], Conv2dOptions::default()),
        ([1, 3, 8, 9], [2, 3, 2, 3], opts((1, 2), Padding::Same, (1, 1))),
    ];
    for (seed, (xs, ws, o)) in cases.into_iter().enumerate() {
        for (k, e) in epilogues().into_iter().enumerate() {
            let seed = 40 + 10 * seed as u64 + k as u64;
            let inputs = vec![
                random_like(&xs, seed),
                random_like(&ws, seed + 1),
                random_like(&ws[..1], seed + 2),
            ];
            for algorithm in [ConvAlgorithm::Auto, ConvAlgorithm::Direct] {
                let o = using(algorithm, &o);
                GradCheck::default()
                    .run(&inputs, |t| t[0].conv2d_block(&t[1], Some(&t[2]), &o, &e))
                    .unwrap_or_else(|err| panic!("input {xs:?} weight {ws:?} {o:?} {e:?}: {err}"));
            }
        }
    }
}

#[test]
fn first_layer_conv2d_block_weight_gradients_match_finite_differences() {
    // The input is a constant (as a first layer's is), so under `Auto` the weight and
    // bias gradients are summed from the pooling's winners alone
    // (`src/ops/conv/pooled_gradient.rs`).
    let cases = [
        ([2, 1, 8, 8], [3, 1, 3, 3], Conv2dOptions::default()),
        ([1, 1, 9, 7], [2, 1, 3, 3], opts((2, 1), Padding::Same, (1, 1))),
    ];
    for (seed, (xs, ws, o)) in cases.into_iter().enumerate() {
        for (k, e) in epilogues().into_iter().enumerate() {
            if e.max_pool.is_none() {
                continue;
            }
            let seed = 80 + 10 * seed as u64 + k as u64;
            let x = random_like(&xs, seed);
            let inputs = vec![random_like(&ws, seed + 1), random_like(&ws[..1], seed + 2)];
            // A smaller step than the default's: a weight moves every output of its
            // channel, and a step of 1e-2 often changes a pool's winner.
            let check = GradCheck {
                eps: 1e-3,
                atol: 5e-3,
                ..GradCheck::default()
            };
            for algorithm in [ConvAlgorithm::Auto, ConvAlgorithm::Direct] {
                let o = using(algorithm, &o);
                check
                    .run(&inputs, |t| {
                        Tensor::new(x.clone()).conv2d_block(&t[0], Some(&t[1]), &o, &e)
                    })
                    .unwrap_or_else(|err| panic!("input {xs:?} weight {ws:?} {o:?} {e:?}: {err}"));
            }
        }
    }
}

#[test]
fn conv2d_block_equals_the_separate_ops_bit_for_bit() {
    for simd in BOTH_SIMD {
        with_simd(simd, || {
            // Batches of 1, of several images grouped into one product, and split over tasks.
            let cases = [
                ([1, 1, 28, 28], [4, 1, 3, 3], Conv2dOptions::default()),
                ([9, 3, 13, 13], [5, 3, 3, 3], Conv2dOptions::default()),
                ([6, 2, 9, 8], [3, 2, 3, 2], opts((2, 1), Padding::Same, (1, 1))),
            ];
            // The fast algorithms, and the direct loops: a block by any algorithm
            // equals the separate ops by the same algorithm.
            let algorithms = [ConvAlgorithm::Auto, ConvAlgorithm::Direct];
            let cases = cases
                .into_iter()
                .flat_map(|(xs, ws, o)| algorithms.map(|a| (xs, ws, using(a, &o))));
            for (seed, (xs, ws, o)) in cases.enumerate() {
                for e in epilogues() {
                    let seed = 200 + seed as u64 * 7;
                    let (px, pw, pb) = (
                        Param::new(random_like(&xs, seed)),
                        Param::new(random_like(&ws, seed + 1)),
                        Param::new(random_like(&ws[..1], seed + 2)),
                    );
                    let run = |fused: bool| {
                        let tape = Tape::new();
                        let (x, w, b) = (tape.param(&px), tape.param(&pw), tape.param(&pb));
                        let y = if fused {
                            x.conv2d_block(&w, Some(&b), &o, &e)
                        } else {
                            unfused(&x, &w, Some(&b), &o, &e)
                        };
                        let g = random_like(y.shape(), seed + 3);
                        let grads = y.mul(&Tensor::new(g)).sum().backward();
                        let grad = |p: &Param| grads.get(p).cloned().expect("gradient");
                        (y.value().clone(), grad(&px), grad(&pw), grad(&pb))
                    };
                    let (fused, separate) = (run(true), run(false));
                    let what = format!("input {xs:?} weight {ws:?} {o:?} {e:?}");
                    assert_eq!(fused.0, separate.0, "{what}: output");
                    assert_eq!(fused.1, separate.1, "{what}: dx");
                    assert_eq!(fused.2, separate.2, "{what}: dW");
                    assert_eq!(fused.3, separate.3, "{what}: db");
                    if e.relu {
                        assert!(fused.0.iter().any(|&v| v == 0.0) && fused.0.iter().any(|&v| v > 0.0));
                    }
                }
            }
        });
    }
}

#[test]
fn a_pooled_blocks_winograd_skips_what_the_pooling_never_reads() {
    // R1's second conv: the 2×2 pooling reads 10×10 of the 11×11 output, which reads
    // 12×12 of the 13×13 input; so the forward computes 10×10, and the input
    // gradient is zero in its last row and column and computed 12×12. 40 images:
    // several groups, and tasks. Equal to the direct loops within rounding (the
    // tiles no longer mix in the pixels the pooling never reads).
    let (x, w, b) = (
        random_like(&[40, 4, 13, 13], 1),
        random_like(&[6, 4, 3, 3], 2),
        random_like(&[6], 3),
    );
    let (e, default) = (common::relu_max_pool_2x2(), Conv2dOptions::default());
    let block = |algorithm| {
        let o = using(algorithm, &default);
        run_conv(&x, (&w, true), Some(&b), true, &o, Some(&e), |s| {
            random_like(s, 4)
        })
    };
    let (fast, direct) = (block(ConvAlgorithm::Winograd), block(ConvAlgorithm::Direct));
    assert_close("output", &fast.y, &direct.y);
    let dx = fast.dx.expect("dx");
    assert_close("dx", &dx, &direct.dx.expect("dx"));
    assert_close("dW", &fast.dw.expect("dW"), &direct.dw.expect("dW"));
    assert_close("db", &fast.db.expect("db"), &direct.db.expect("db"));
    for ((_, _, r, c), &v) in dx
        .view()
        .into_dimensionality::<ndarray::Ix4>()
        .unwrap()
        .indexed_iter()
    {
        if r == 12 || c == 12 {
            assert_eq!(v, 0.0, "dx at row {r}, column {c}");
        }
    }
}

#[test]
#[should_panic(expected = "conv2d_block")]
fn conv2d_block_names_itself_when_the_pool_does_not_fit() {
    // A 3×3 pool does not fit the 2×2 conv output.
    let x = Tensor::new(random_like(&[1, 1, 4, 4], 1));
    let w = Tensor::new(random_like(&[1, 1, 3, 3], 2));
    let e = ConvEpilogue {
        relu: true,
        max_pool: Some(PoolWindow {
            kernel: (3, 3),
            stride: (1, 1),
            padding: Padding::Valid,
        }),
    };
    x.conv2d_block(&w, None, &Conv2dOptions::default(), &e);
}

#[test]
fn simd_settings_give_the_same_results_bit_for_bit() {
    // Winograd's transforms (forward, input and weight gradients) and the 2×2 max
    // pool without winners have AVX2 versions; they must round exactly as the
    // baseline ones do.
    let (x, w, b) = (
        random_like(&[3, 16, 20, 20], 500),
        random_like(&[16, 16, 3, 3], 501),
        random_like(&[16], 502),
    );
    let run = || {
        let (px, pw, pb) = (
            Param::new(x.clone()),
            Param::new(w.clone()),
            Param::new(b.clone()),
        );
        let tape = Tape::new();
        let o = opts((1, 1), Padding::Same, (1, 1));
        let y = tape
            .param(&px)
            .conv2d(&tape.param(&pw), Some(&tape.param(&pb)), &o);
        let grads = y.mul(&Tensor::new(random_like(y.shape(), 503))).sum().backward();
        let pooled = Tensor::new(y.value().clone()).max_pool2d((2, 2), (2, 2), Padding::Valid);
        (
            y.value().clone(),
            grads[&px].clone(),
            grads[&pw].clone(),
            pooled.value().clone(),
        )
    };
    let [auto, baseline] = BOTH_SIMD.map(|simd| with_simd(simd, run));
    assert_eq!(auto, baseline);
}

#[test]
fn simd_settings_give_the_same_conv_block_gradients_bit_for_bit() {
    // The conv block's backward routes the gradient through ReLU's mask (AVX2 or
    // SSE2) and, pooled, through the 2×2 windows' winners (eight or four windows at
    // a time): every version must give the baseline's values exactly. 24×24 planes
    // pool to rows of 12 windows (the AVX2 kernel), 10×10 to rows of 5 (SSE2).
    for (side, pooled) in [(24, true), (10, true), (24, false)] {
        let (x, w, b) = (
            random_like(&[2, 3, side, side], 510),
            random_like(&[8, 3, 3, 3], 511),
            random_like(&[8], 512),
        );
        let epilogue = match pooled {
            true => common::relu_max_pool_2x2(),
            false => ConvEpilogue {
                relu: true,
                max_pool: None,
            },
        };
        let run = || {
            let (px, pw, pb) = (
                Param::new(x.clone()),
                Param::new(w.clone()),
                Param::new(b.clone()),
            );
            let tape = Tape::new();
            let o = opts((1, 1), Padding::Same, (1, 1));
            let y = tape
                .param(&px)
                .conv2d_block(&tape.param(&pw), Some(&tape.param(&pb)), &o, &epilogue);
            let grads = y.mul(&Tensor::new(random_like(y.shape(), 513))).sum().backward();
            let bits = |a: &ArrayD<f32>| a.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
            (
                bits(y.value()),
                bits(&grads[&px]),
                bits(&grads[&pw]),
                bits(&grads[&pb]),
            )
        };
        let [auto, baseline] = BOTH_SIMD.map(|simd| with_simd(simd, run));
        assert_eq!(auto, baseline, "{side}x{side}, pooled {pooled}");
    }
}

#[test]
fn simd_settings_give_a_first_layers_weight_gradient_bit_for_bit() {
    // A pooled first layer (its input needs no gradient, one channel: R1's first
    // conv) sums its weight gradient from the pool's winners, a block of 16 taps at
    // a time: one AVX-512 vector, two AVX2 ones or the baseline's; all the same bits.
    let (x, w, b) = (
        random_like(&[3, 1, 14, 14], 520),
        random_like(&[8, 1, 3, 3], 521),
        random_like(&[8], 522),
    );
    let epilogue = common::relu_max_pool_2x2();
    let run = || {
        let (pw, pb) = (Param::new(w.clone()), Param::new(b.clone()));
        let tape = Tape::new();
        let y = tape.input(x.clone()).conv2d_block(
            &tape.param(&pw),
            Some(&tape.param(&pb)),
            &Conv2dOptions::default(),
            &epilogue,
        );
        let grads = y.mul(&Tensor::new(random_like(y.shape(), 523))).sum().backward();
        let bits = |a: &ArrayD<f32>| a.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
        (bits(&grads[&pw]), bits(&grads[&pb]))
    };
    let [auto, baseline] = BOTH_SIMD.map(|simd| with_simd(simd, run));
    assert_eq!(auto, baseline);
}
