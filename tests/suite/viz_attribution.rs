//! Attribution and channel pictures against cases with a known answer: a linear
//! model's saliency is its weight row, integrated gradients add up to the score's
//! change, the input that maximises a lone 3×3 filter under an L2 penalty is the
//! filter itself, and the images that excite a 1×1 "brightness" filter most are the
//! brightest.

use ferrocnn::gradcheck::random_like;
use ferrocnn::nn::{Conv2d, Flatten, Linear, MaxPool2d, Mode, Module, ReLU, Sequential};
use ferrocnn::viz::{
    gradient_times_input, integrated_gradients, maximize_channels, saliency, top_activating, Maximize,
};
use ferrocnn::Tensor;
use ndarray::{Array4, ArrayD, Axis, Ix2};
use rand::rngs::StdRng;
use rand::SeedableRng;

fn linear_model() -> (Sequential, ndarray::Array2<f32>) {
    let rng = &mut StdRng::seed_from_u64(0);
    let model = Sequential::new().add(Flatten).add(Linear::new(2 * 3 * 3, 4, rng));
    let weight = model.parameters()[0]
        .value()
        .clone()
        .into_dimensionality::<Ix2>()
        .unwrap();
    (model, weight)
}

fn images(n: usize, c: usize, side: usize, seed: u64) -> Array4<f32> {
    random_like(&[n, c, side, side], seed)
        .into_dimensionality()
        .unwrap()
}

fn small_convnet() -> Sequential {
    let rng = &mut StdRng::seed_from_u64(1);
    let mut net = Sequential::new();
    net.push_named("conv1", Conv2d::new(1, 3, (3, 3), rng));
    net.push_named("relu1", ReLU);
    net.push_named("pool1", MaxPool2d::new((2, 2)));
    net.push_named("flatten", Flatten);
    net.push_named("fc1", Linear::new(3 * 3 * 3, 5, rng));
    net
}

fn logit(model: &dyn Module, x: &Array4<f32>, class: usize) -> f32 {
    let out = model
        .clone_module()
        .forward(&Tensor::new(x.clone().into_dyn()), Mode::Eval);
    out.value()[[0, class]]
}

fn close(a: f32, b: f32, tol: f32) -> bool {
    (a - b).abs() <= tol * (1.0 + a.abs().max(b.abs()))
}

#[test]
fn a_linear_models_attributions_are_its_weights() {
    let (model, weight) = linear_model();
    let x = images(2, 2, 3, 7);
    let classes = [3, 1];
    let sal = saliency(&model, x.view(), &classes).unwrap();
    let gxi = gradient_times_input(&model, x.view(), &classes).unwrap();
    let baseline = images(2, 2, 3, 8);
    let ig = integrated_gradients(&model, x.view(), &classes, Some(baseline.view()), 3).unwrap();
    for (i, &k) in classes.iter().enumerate() {
        let row = weight.row(k);
        let flat = |a: &Array4<f32>| a.index_axis(Axis(0), i).iter().copied().collect::<Vec<f32>>();
        let xs = flat(&x);
        let bs = flat(&baseline);
        for (j, ((s, g), ig)) in flat(&sal).iter().zip(flat(&gxi)).zip(flat(&ig)).enumerate() {
            assert!(close(*s, row[j], 1e-6), "saliency {i},{j}");
            assert!(close(g, row[j] * xs[j], 1e-6), "gradient × input {i},{j}");
            assert!(close(ig, row[j] * (xs[j] - bs[j]), 1e-5), "integrated {i},{j}");
        }
    }
}

#[test]
fn integrated_gradients_add_up_to_the_change_of_the_score() {
    let model = small_convnet();
    let x = images(1, 1, 8, 3).mapv(|v| v + 0.5);
    for class in [0, 4] {
        let ig = integrated_gradients(&model, x.view(), &[class], None, 256).unwrap();
        let change = logit(&model, &x, class) - logit(&model, &Array4::zeros(x.raw_dim()), class);
        let total: f32 = ig.sum();
        assert!(
            (total - change).abs() <= 0.01 * change.abs().max(0.1),
            "class {class}: Σ attributions {total} vs score change {change}"
        );
    }
}

#[test]
fn saliency_matches_finite_differences_of_the_score() {
    let model = small_convnet();
    let x = images(1, 1, 8, 4);
    let sal = saliency(&model, x.view(), &[2]).unwrap();
    for (r, c) in [(0, 0), (3, 4), (7, 7), (5, 2)] {
        let eps = 1e-2;
        let (mut up, mut down) = (x.clone(), x.clone());
        up[[0, 0, r, c]] += eps;
        down[[0, 0, r, c]] -= eps;
        let numeric = (logit(&model, &up, 2) - logit(&model, &down, 2)) / (2.0 * eps);
        assert!(
            (numeric - sal[[0, 0, r, c]]).abs() < 2e-3,
            "({r}, {c}): {numeric} vs {}",
            sal[[0, 0, r, c]]
        );
    }
}

#[test]
fn bad_requests_are_errors_that_say_what() {
    let model = small_convnet();
    let x = images(2, 1, 8, 5);
    let message = |r: Result<Array4<f32>, ferrocnn::viz::VizError>| r.unwrap_err().to_string();
    assert!(message(saliency(&model, x.view(), &[1])).contains("1 classes for 2 images"));
    assert!(message(saliency(&model, x.view(), &[1, 5])).contains("class 5 is out of range"));
    assert!(message(saliency(&model, images(1, 1, 12, 5).view(), &[0])).contains("does not take"));
    assert!(message(integrated_gradients(&model, x.view(), &[0, 1], None, 0)).contains("1 step"));
    let maximized = maximize_channels(&model, "conv9", &[0], (1, 8, 8), &Maximize::default());
    let err = maximized.unwrap_err().to_string();
    assert!(
        err.contains("no module named `conv9`") && err.contains("conv1, relu1"),
        "{err}"
    );
    let err = maximize_channels(&model, "conv1", &[3], (1, 8, 8), &Maximize::default())
        .unwrap_err()
        .to_string();
    assert!(err.contains("`conv1` has 3 channels"), "{err}");
}

#[test]
fn the_input_that_maximises_a_lone_filter_under_an_l2_penalty_is_the_filter() {
    // One 3×3 filter on a 3×3 input: the activation is w·x + b, and w·x − λ|x|² is
    // largest at x = w / 2λ = w for λ = ½.
    let rng = &mut StdRng::seed_from_u64(2);
    let mut model = Sequential::new();
    model.push_named("conv", Conv2d::new(1, 1, (3, 3), rng));
    let w: Vec<f32> = model.parameters()[0].value().iter().copied().collect();
    let opts = Maximize {
        steps: 400,
        lr: 0.05,
        l2: 0.5,
        jitter: 0,
        blur_every: 0,
        range: None,
        seed: 3,
        ..Maximize::default()
    };
    let x = maximize_channels(&model, "conv", &[0], (1, 3, 3), &opts).unwrap();
    let x: Vec<f32> = x.iter().copied().collect();
    let dot: f32 = x.iter().zip(&w).map(|(a, b)| a * b).sum();
    let norm = |v: &[f32]| v.iter().map(|a| a * a).sum::<f32>().sqrt();
    assert!(dot / (norm(&x) * norm(&w)) > 0.999, "{x:?} vs {w:?}");
    assert!((norm(&x) / norm(&w) - 1.0).abs() < 0.05, "{x:?} vs {w:?}");
}

#[test]
fn the_images_that_excite_a_brightness_filter_most_are_the_brightest() {
    let mut model = Sequential::new();
    let mut conv = Conv2d::new(1, 2, (1, 1), &mut StdRng::seed_from_u64(4));
    // Channel 1 is the pixel itself (weight 1, bias 0); channel 0 its negation.
    conv.parameters_mut()[0].set_value(ArrayD::from_shape_vec(vec![2, 1, 1, 1], vec![-1.0, 1.0]).unwrap());
    conv.parameters_mut()[1].set_value(ArrayD::zeros(vec![2]));
    model.push_named("conv", conv);
    let x = images(300, 1, 5, 6); // more than one slice of 256
    let means: Vec<f32> = x.outer_iter().map(|i| i.mean().unwrap()).collect();
    let mut expected: Vec<usize> = (0..300).collect();
    expected.sort_by(|&a, &b| means[b].total_cmp(&means[a]));
    let top = top_activating(&model, "conv", 1, x.view(), 5).unwrap();
    assert_eq!(top.iter().map(|t| t.0).collect::<Vec<_>>(), expected[..5]);
    assert!(close(top[0].1, means[expected[0]], 1e-5));
    let bottom = top_activating(&model, "conv", 0, x.view(), 1).unwrap();
    assert_eq!(bottom[0].0, expected[299]);
}
