//! Finite-difference gradient checks for the dense and elementwise ops, over several
//! shapes, including broadcasting of bias-like shapes; and for the convolution's
//! algorithms, the direct loops first (the reference the others are tested
//! against), with the AVX2 and the baseline kernels.

use crate::common;

use common::{using, with_simd, BOTH_SIMD};
use ferrocnn::gradcheck::random_like;
use ferrocnn::{Conv2dOptions, ConvAlgorithm, GradCheck, Padding, Tensor};
use ndarray::ArrayD;

fn rand(shape: &[usize], seed: u64) -> ArrayD<f32> {
    random_like(shape, seed)
}

/// Values in ±[0.2, 1.2): away from the kinks of relu, abs and friends.
fn away_from_zero(shape: &[usize], seed: u64) -> ArrayD<f32> {
    rand(shape, seed).mapv(|v| v.signum() * (0.2 + v.abs()))
}

fn check(inputs: Vec<ArrayD<f32>>, f: impl Fn(&[Tensor]) -> Tensor) {
    if let Err(e) = GradCheck::default().run(&inputs, f) {
        panic!("gradient check failed: {e}");
    }
}

#[test]
fn arithmetic_with_broadcasting() {
    let shapes: [(&[usize], &[usize]); 4] = [
        (&[2, 3], &[2, 3]),
        (&[2, 3, 4, 5], &[3, 1, 1]),
        (&[4, 1], &[1, 3]),
        (&[3, 5], &[5]),
    ];
    for (i, (sa, sb)) in shapes.into_iter().enumerate() {
        let a = rand(sa, i as u64);
        let b = away_from_zero(sb, 100 + i as u64).mapv(|v| v + v.signum());
        check(vec![a.clone(), b.clone()], |t| &t[0] + &t[1]);
        check(vec![a.clone(), b.clone()], |t| &t[0] - &t[1]);
        check(vec![a.clone(), b.clone()], |t| &t[0] * &t[1]);
        check(vec![a.clone(), b.clone()], |t| &t[0] / &t[1]);
        check(vec![b.clone(), a.clone()], |t| &t[1] * &t[0]);
    }
}

#[test]
fn scalar_forms_and_negation() {
    let a = rand(&[3, 4], 1);
    check(vec![a.clone()], |t| -&t[0]);
    check(vec![a.clone()], |t| t[0].add_scalar(2.5));
    check(vec![a.clone()], |t| t[0].mul_scalar(-1.5));
    check(vec![a.clone()], |t| t[0].sub_scalar(0.5).div_scalar(4.0));
}

#[test]
fn reductions() {
    for (i, shape) in [vec![5], vec![3, 4], vec![2, 3, 5]].into_iter().enumerate() {
        let a = rand(&shape, i as u64);
        check(vec![a.clone()], |t| t[0].sum());
        check(vec![a.clone()], |t| t[0].mean());
        for axis in 0..shape.len() {
            check(vec![a.clone()], |t| t[0].sum_axis(axis));
            check(vec![a.clone()], |t| t[0].mean_axis(axis));
        }
    }
}

#[test]
fn reshape_and_flatten() {
    let a = rand(&[2, 3, 4, 1], 3);
    check(vec![a.clone()], |t| t[0].reshape(&[6, 4]));
    check(vec![a.clone()], |t| t[0].flatten());
    // Given up: a shared value is copied, an unshared one (a product's) kept.
    check(vec![a.clone()], |t| t[0].clone().into_reshape(&[4, 6]));
    check(vec![a.clone()], |t| t[0].mul(&t[0]).into_reshape(&[4, 6]));
}

#[test]
fn matmul_and_linear() {
    for (i, (m, k, n)) in [(1, 1, 1), (3, 4, 5), (7, 2, 3)].into_iter().enumerate() {
        let seed = 10 * i as u64;
        check(vec![rand(&[m, k], seed), rand(&[k, n], seed + 1)], |t| {
            t[0].matmul(&t[1])
        });
        let (x, w, b) = (
            rand(&[m, k], seed + 2),
            rand(&[n, k], seed + 3),
            rand(&[n], seed + 4),
        );
        check(vec![x.clone(), w.clone(), b], |t| t[0].linear(&t[1], Some(&t[2])));
        check(vec![x, w], |t| t[0].linear(&t[1], None));
    }
}

#[test]
fn activations() {
    for (i, shape) in [vec![7], vec![2, 3, 4]].into_iter().enumerate() {
        let a = away_from_zero(&shape, i as u64);
        check(vec![a.clone()], |t| t[0].relu());
        check(vec![a.clone()], |t| t[0].leaky_relu(0.1));
        check(vec![a.clone()], |t| t[0].sigmoid());
        check(vec![a.clone()], |t| t[0].tanh());
        check(vec![a.clone()], |t| t[0].square());
        check(vec![a.clone()], |t| t[0].abs());
        check(vec![a.clone()], |t| t[0].exp());
        let positive = a.mapv(f32::abs);
        check(vec![positive.clone()], |t| t[0].ln());
        check(vec![positive], |t| t[0].sqrt());
    }
}

#[test]
fn log_softmax_and_losses() {
    for (i, (n, c)) in [(1, 2), (4, 10), (3, 7)].into_iter().enumerate() {
        let logits = rand(&[n, c], i as u64).mapv(|v| 3.0 * v);
        let labels: Vec<usize> = (0..n).map(|r| (r * 3 + 1) % c).collect();
        check(vec![logits.clone()], |t| t[0].log_softmax(1));
        check(vec![logits.clone()], |t| t[0].cross_entropy(&labels));
        check(vec![logits.clone()], |t| {
            t[0].cross_entropy_smoothed(&labels, 0.1)
        });
        check(vec![logits.clone(), rand(&[n, c], 50)], |t| t[0].mse_loss(&t[1]));
    }
}

#[test]
fn softmax_and_log_softmax_along_every_axis() {
    let x = rand(&[2, 3, 4], 21).mapv(|v| 3.0 * v);
    for axis in 0..3 {
        check(vec![x.clone()], |t| t[0].softmax(axis));
        check(vec![x.clone()], |t| t[0].log_softmax(axis));
        // Each lane of the axis sums to 1 (in probability).
        let p = Tensor::new(x.clone()).softmax(axis);
        let sums = p.value().sum_axis(ndarray::Axis(axis));
        assert!(sums.iter().all(|s| (s - 1.0).abs() < 1e-5), "axis {axis}: {sums}");
    }
    // Huge logits: shifted by the lane's maximum, nothing overflows.
    let big = ndarray::array![[1000.0f32, 0.0], [-1000.0, 1000.0]].into_dyn();
    let p = Tensor::new(big.clone()).softmax(1);
    assert_eq!(p.value(), &ndarray::array![[1.0f32, 0.0], [0.0, 1.0]].into_dyn());
    assert!(Tensor::new(big)
        .log_softmax(0)
        .value()
        .iter()
        .all(|v| v.is_finite()));
}

#[test]
fn permute_and_transpose() {
    let x = rand(&[2, 3, 4, 5], 22);
    check(vec![x.clone()], |t| t[0].permute(&[0, 2, 3, 1]));
    check(vec![x.clone()], |t| t[0].permute(&[3, 1, 0, 2]));
    check(vec![x.clone()], |t| t[0].transpose(1, 3));
    // Known values: NCHW → NHWC, and a matrix transpose.
    let p = Tensor::new(x.clone()).permute(&[0, 2, 3, 1]);
    assert_eq!(p.shape(), &[2, 4, 5, 3]);
    assert_eq!(p.value()[[1, 2, 4, 0]], x[[1, 0, 2, 4]]);
    let m = Tensor::new(ndarray::array![[1.0f32, 2.0, 3.0], [4.0, 5.0, 6.0]].into_dyn());
    assert_eq!(
        m.transpose(0, 1).value(),
        &ndarray::array![[1.0f32, 4.0], [2.0, 5.0], [3.0, 6.0]].into_dyn()
    );
}

#[test]
#[should_panic(expected = "permute: [0, 0, 1] is not an order of the 3 axes")]
fn permute_with_a_repeated_axis_panics_naming_the_op() {
    Tensor::new(rand(&[2, 3, 4], 1)).permute(&[0, 0, 1]);
}

#[test]
fn penalties_and_dropout() {
    let a = away_from_zero(&[3, 5], 9);
    check(vec![a.clone()], |t| t[0].l2_penalty());
    check(vec![a.clone()], |t| t[0].l1_penalty());
    // The same seed draws the same mask on every evaluation, so dropout is a fixed
    // linear map here and its gradient can be checked.
    check(vec![a.clone()], |t| t[0].dropout(0.3, 42));
    check(vec![a], |t| t[0].dropout(0.5, 7).relu().sum());
}

#[test]
fn composite_expression() {
    // A small MLP with a shared weight used twice: gradients must accumulate.
    let (x, w, b) = (rand(&[4, 3], 1), rand(&[3, 3], 2), rand(&[3], 3));
    check(vec![x, w, b], |t| {
        let h = t[0].linear(&t[1], Some(&t[2])).tanh();
        h.linear(&t[1], None).cross_entropy(&[0, 1, 2, 1])
    });
}

#[test]
fn batch_norm2d_training_form() {
    for (i, shape) in [[2, 3, 2, 2], [3, 2, 3, 1], [1, 1, 2, 3]].into_iter().enumerate() {
        let seed = 30 + i as u64;
        let c = shape[1];
        let (x, gamma, beta) = (
            rand(&shape, seed),
            rand(&[c], seed + 1).mapv(|v| v + 1.5),
            rand(&[c], seed + 2),
        );
        check(vec![x, gamma, beta], |t| t[0].batch_norm2d(&t[1], &t[2], 1e-5).0);
    }
}

#[test]
fn batch_norm2d_normalizes_each_channel() {
    let x = rand(&[4, 3, 5, 5], 77).mapv(|v| 10.0 * v + 3.0);
    let ones = Tensor::new(ndarray::Array1::<f32>::ones(3).into_dyn());
    let zeros = Tensor::new(ndarray::Array1::<f32>::zeros(3).into_dyn());
    let (y, stats) = Tensor::new(x.clone()).batch_norm2d(&ones, &zeros, 1e-5);
    assert_eq!(stats.count, 100);
    for ch in 0..3 {
        let plane = y.value().index_axis(ndarray::Axis(1), ch).to_owned();
        assert!(plane.mean().unwrap().abs() < 1e-5);
        let var = plane.mapv(|v| v * v).mean().unwrap();
        assert!((var - 1.0).abs() < 1e-3, "channel {ch} variance {var}");
        let xm = x.index_axis(ndarray::Axis(1), ch).mean().unwrap();
        assert!((stats.mean[ch] - xm).abs() < 1e-4);
    }
}

#[test]
fn batch_norm2d_statistics_match_a_two_pass_f64_reference_far_from_zero() {
    // Planes of one channel with means that differ (image i adds 3i) on a large
    // offset, as the per-plane sums are merged (Chan's rule) rather than the
    // deviations taken from the channel's mean.
    let (n, c, h, w) = (6, 3, 7, 7);
    let x = rand(&[n, c, h, w], 91);
    let x = ndarray::Array4::from_shape_fn((n, c, h, w), |(i, ch, r, q)| {
        1000.0 * (ch as f32 + 1.0) + 3.0 * i as f32 + x[[i, ch, r, q]]
    })
    .into_dyn();
    let ones = Tensor::new(ndarray::Array1::<f32>::ones(c).into_dyn());
    let zeros = Tensor::new(ndarray::Array1::<f32>::zeros(c).into_dyn());
    let (_, stats) = Tensor::new(x.clone()).batch_norm2d(&ones, &zeros, 1e-5);
    for ch in 0..c {
        let values: Vec<f64> = x
            .index_axis(ndarray::Axis(1), ch)
            .iter()
            .map(|&v| f64::from(v))
            .collect();
        let mean = values.iter().sum::<f64>() / values.len() as f64;
        let var = values.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / values.len() as f64;
        let (got_mean, got_var) = (f64::from(stats.mean[ch]), f64::from(stats.var[ch]));
        assert!(
            (got_mean - mean).abs() <= 1e-6 * mean.abs(),
            "channel {ch} mean {got_mean} against {mean}"
        );
        assert!(
            (got_var - var).abs() <= 1e-5 * var,
            "channel {ch} variance {got_var} against {var}"
        );
    }
}

#[test]
fn batch_norm2d_evaluation_form() {
    let (x, gamma, beta) = (rand(&[2, 3, 2, 3], 61), rand(&[3], 62), rand(&[3], 63));
    let mean = ndarray::Array1::from(vec![0.1f32, -0.3, 0.5]);
    let var = ndarray::Array1::from(vec![0.5f32, 1.5, 2.0]);
    check(vec![x.clone(), gamma, beta], |t| {
        t[0].batch_norm2d_eval(&t[1], &t[2], &mean, &var, 1e-5)
    });
    // Known value: with gamma 1, beta 0 it is (x − mean)/√(var + eps).
    let ones = Tensor::new(ndarray::Array1::<f32>::ones(3).into_dyn());
    let zeros = Tensor::new(ndarray::Array1::<f32>::zeros(3).into_dyn());
    let y = Tensor::new(x.clone()).batch_norm2d_eval(&ones, &zeros, &mean, &var, 0.0);
    let expected = (x[[1, 2, 1, 0]] - 0.5) / 2f32.sqrt();
    assert!((y.value()[[1, 2, 1, 0]] - expected).abs() < 1e-6);
}

/// Convolutions for the gradient checks: stride, padding (odd Same), dilation,
/// a 3×3 stride-1 one that Winograd can compute, with and without a bias.
fn conv_cases() -> Vec<([usize; 4], [usize; 4], Conv2dOptions, bool)> {
    let opts = |stride, padding, dilation| Conv2dOptions {
        stride,
        padding,
        dilation,
        ..Conv2dOptions::default()
    };
    vec![
        (
            [2, 2, 6, 5],
            [3, 2, 3, 3],
            opts((1, 1), Padding::Explicit(1, 2), (1, 1)),
            true,
        ),
        (
            [1, 2, 7, 6],
            [2, 2, 2, 3],
            opts((2, 1), Padding::Same, (1, 1)),
            false,
        ),
        (
            [2, 1, 7, 7],
            [2, 1, 3, 2],
            opts((1, 2), Padding::Valid, (2, 1)),
            true,
        ),
        (
            [1, 2, 5, 5],
            [2, 2, 1, 1],
            opts((2, 2), Padding::Valid, (1, 1)),
            true,
        ),
    ]
}

#[test]
fn conv2d_every_algorithm() {
    for (i, (xs, ws, o, with_bias)) in conv_cases().into_iter().enumerate() {
        let seed = 60 + 3 * i as u64;
        let mut inputs = vec![rand(&xs, seed), rand(&ws, seed + 1)];
        if with_bias {
            inputs.push(rand(&ws[..1], seed + 2));
        }
        let winograd = (ws[2], ws[3]) == (3, 3) && o.stride == (1, 1) && o.dilation == (1, 1);
        let algorithms = [
            ConvAlgorithm::Direct,
            ConvAlgorithm::Im2col,
            ConvAlgorithm::Winograd,
            ConvAlgorithm::Auto,
        ];
        for algorithm in algorithms
            .into_iter()
            .filter(|&a| winograd || a != ConvAlgorithm::Winograd)
        {
            let o = using(algorithm, &o);
            for simd in BOTH_SIMD {
                with_simd(simd, || {
                    check(inputs.clone(), |t| t[0].conv2d(&t[1], t.get(2), &o))
                });
            }
        }
    }
}

#[test]
fn conv2d_block_direct() {
    // With these seeds no conv output lies within the perturbation of ReLU's kink
    // or of a tie in a pool window, where finite differences would not apply.
    let x = rand(&[2, 2, 6, 6], 90);
    let (w, b) = (away_from_zero(&[3, 2, 3, 3], 91), rand(&[3], 92));
    let epilogue = common::relu_max_pool_2x2();
    let o = using(ConvAlgorithm::Direct, &Conv2dOptions::default());
    check(vec![x, w, b], |t| {
        t[0].conv2d_block(&t[1], Some(&t[2]), &o, &epilogue)
    });
}
