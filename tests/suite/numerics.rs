//! Numerical faults stop a step and say where: NaN or infinite inputs, losses,
//! gradients and weights, and a loss that explodes while staying finite. A step
//! that fails before its update leaves the weights as they were.

use ferrocnn::data::Mnist;
use ferrocnn::nn::{Conv2d, Flatten, Linear, MaxPool2d, Mode, Module, ReLU, Sequential};
use ferrocnn::optim::{
    Adam, AdamConfig, OptimError, Optimizer, OptimizerKind, OptimizerState, SGDConfig, SGD,
};
use ferrocnn::train::{fit, train_step, Fault, FitOptions, Origin, Progress, TrainError};
use ferrocnn::{Gradients, Param, Tensor};
use ndarray::{Array4, ArrayD};
use rand::rngs::StdRng;
use rand::SeedableRng;

/// `x + sqrt(0 · x)`: the value of `x`, but the backward pass of `sqrt` at 0 is
/// infinite, and times the 0 of `mul_scalar` it is NaN.
#[derive(Clone)]
struct SqrtOfZero;

impl Module for SqrtOfZero {
    fn forward(&mut self, x: &Tensor, _: Mode) -> Tensor {
        x.add(&x.mul_scalar(0.0).sqrt())
    }
}

fn small_net(seed: u64) -> Sequential {
    let rng = &mut StdRng::seed_from_u64(seed);
    let mut net = Sequential::new();
    net.push_named("conv1", Conv2d::new(1, 4, (3, 3), rng));
    net.push_named("relu1", ReLU);
    net.push_named("pool1", MaxPool2d::new((2, 2)));
    net.push_named("flatten", Flatten);
    net.push_named("fc1", Linear::new(4 * 13 * 13, 10, rng));
    net
}

fn batch() -> (Array4<f32>, Vec<usize>) {
    let mnist = Mnist::load("datasets/mnist").expect("shipped MNIST files");
    let b = mnist.train.batch(&(0..16).collect::<Vec<_>>());
    (b.x, b.y)
}

fn weights(model: &dyn Module) -> Vec<ArrayD<f32>> {
    model.parameters().iter().map(|p| p.value().clone()).collect()
}

fn adam() -> Adam {
    Adam::new(AdamConfig::default())
}

#[test]
fn a_nan_input_names_its_sample_and_position_and_changes_nothing() {
    let mut model = small_net(0);
    let before = weights(&model);
    let (mut x, y) = batch();
    x[[5, 0, 3, 7]] = f32::NAN;
    let fault = train_step(&mut model, &mut adam(), x, &y, &FitOptions::default()).unwrap_err();
    let Fault::Input { sample, index, value } = fault else {
        panic!("expected an input fault, got {fault:?}");
    };
    assert_eq!((sample, index), (5, 3 * 28 + 7));
    assert!(value.is_nan());
    assert!(fault.to_string().contains("input sample 5"), "{fault}");
    assert_eq!(weights(&model), before);
}

#[test]
fn a_nan_weight_is_traced_to_the_first_module_whose_output_it_spoils() {
    for detect_anomaly in [false, true] {
        let mut model = small_net(1);
        // fc1 is the last layer: conv1's output is finite, fc1's is not.
        model.get_mut("fc1").unwrap().parameters_mut()[0].value_mut()[[2, 100]] = f32::NAN;
        let before = weights(&model);
        let (x, y) = batch();
        let opts = FitOptions {
            detect_anomaly,
            ..Default::default()
        };
        let fault = train_step(&mut model, &mut adam(), x, &y, &opts).unwrap_err();
        let Fault::Loss { value, origin } = &fault else {
            panic!("expected a loss fault, got {fault:?}");
        };
        assert!(value.is_nan());
        assert_eq!(
            origin,
            &Some(Origin::Output {
                module: "fc1".into(),
                kind: "Linear".into()
            }),
            "anomaly mode {detect_anomaly}"
        );
        let message = fault.to_string();
        assert!(message.contains("output of `fc1` (Linear)"), "{message}");
        assert!(message.contains("learning rate"), "{message}");
        let same = weights(&model).iter().zip(&before).all(|(a, b)| {
            a.iter()
                .zip(b.iter())
                .all(|(a, b)| a == b || a.is_nan() && b.is_nan())
        });
        assert!(same, "a failed step must not update the weights");
    }
}

#[test]
fn a_non_finite_gradient_names_the_parameter_and_the_backward_op() {
    for detect_anomaly in [false, true] {
        let rng = &mut StdRng::seed_from_u64(2);
        let mut model = Sequential::new();
        model.push_named("conv1", Conv2d::new(1, 2, (3, 3), rng));
        model.push_named("odd", SqrtOfZero);
        model.push_named("flatten", Flatten);
        model.push_named("fc1", Linear::new(2 * 26 * 26, 10, rng));
        let (x, y) = batch();
        let opts = FitOptions {
            detect_anomaly,
            ..Default::default()
        };
        let fault = train_step(&mut model, &mut adam(), x, &y, &opts).unwrap_err();
        let Fault::Gradient { param, origin, .. } = &fault else {
            panic!("expected a gradient fault, got {fault:?}");
        };
        // fc1 comes after the sqrt, so its gradients are finite; conv1's are not.
        assert!(param.starts_with("conv1."), "{param}");
        assert_eq!(origin, &Some(Origin::Backward { op: "sqrt".into() }));
        assert!(fault.to_string().contains("backward pass of `sqrt`"), "{fault}");
    }
}

/// SGD through the trait's provided `step_checked`, which knows nothing of the
/// values it wrote: the parameter check then reads every weight itself.
struct PlainSgd(SGD);

impl Optimizer for PlainSgd {
    fn step(&mut self, params: &mut [&mut Param], grads: &Gradients) {
        self.0.step(params, grads)
    }
    fn lr(&self) -> f64 {
        self.0.lr()
    }
    fn set_lr(&mut self, lr: f64) {
        self.0.set_lr(lr)
    }
    fn kind(&self) -> OptimizerKind {
        self.0.kind()
    }
    fn state(&self) -> OptimizerState {
        self.0.state()
    }
    fn load_state(&mut self, state: OptimizerState) -> Result<(), OptimError> {
        self.0.load_state(state)
    }
}

#[test]
fn an_update_that_overflows_names_the_parameter() {
    let sgd = || {
        SGD::new(SGDConfig {
            lr: f32::MAX.into(),
            ..Default::default()
        })
    };
    // Adam's step of lr / (1 − β1) is infinite in f32: every weight overflows, so
    // the first parameter is the one named.
    let optimizers: [(Box<dyn Optimizer>, bool); 3] = [
        (Box::new(sgd()), false),
        (Box::new(PlainSgd(sgd())), false),
        (
            Box::new(Adam::new(AdamConfig {
                lr: f32::MAX.into(),
                ..Default::default()
            })),
            true,
        ),
    ];
    for (mut optimizer, all_overflow) in optimizers {
        let mut model = small_net(3);
        let (x, y) = batch();
        let fault = train_step(&mut model, optimizer.as_mut(), x, &y, &FitOptions::default()).unwrap_err();
        let Fault::Parameter { param, value } = &fault else {
            panic!("expected a parameter fault, got {fault:?}");
        };
        assert!(!value.is_finite());
        let names: Vec<String> = model.named_parameters().into_iter().map(|(n, _)| n).collect();
        assert!(names.contains(param), "{param}");
        if all_overflow {
            assert_eq!(param, &names[0]);
        }
        assert!(fault.to_string().contains(&format!("`{param}`")), "{fault}");
    }
}

/// A parameter no forward pass uses: it never has a gradient, so no optimizer
/// updates it.
#[derive(Clone)]
struct Unused(Param);

impl Module for Unused {
    fn forward(&mut self, x: &Tensor, _: Mode) -> Tensor {
        x.clone()
    }
    fn own_parameters(&self) -> Vec<(String, &Param)> {
        vec![("spare".into(), &self.0)]
    }
    fn own_parameters_mut(&mut self) -> Vec<(String, &mut Param)> {
        vec![("spare".into(), &mut self.0)]
    }
}

#[test]
fn a_parameter_the_optimizer_did_not_update_is_still_checked() {
    // The optimizer vouches only for the weights it wrote; a non-finite weight
    // it skipped is still found, and named.
    let mut model = small_net(5);
    let spare = Param::new(ndarray::arr1(&[1.0f32, f32::INFINITY]).into_dyn());
    model.push_named("unused", Unused(spare));
    let (x, y) = batch();
    let fault = train_step(&mut model, &mut adam(), x, &y, &FitOptions::default()).unwrap_err();
    assert_eq!(
        fault,
        Fault::Parameter {
            param: "unused.spare".into(),
            value: f32::INFINITY
        }
    );
}

#[test]
fn anomaly_detection_changes_no_result() {
    let (x, y) = batch();
    let mut results = Vec::new();
    for detect_anomaly in [false, true] {
        let mut model = small_net(4);
        let mut optimizer = adam();
        let opts = FitOptions {
            detect_anomaly,
            ..Default::default()
        };
        let mut losses = Vec::new();
        for _ in 0..3 {
            losses.push(
                train_step(&mut model, &mut optimizer, x.clone(), &y, &opts)
                    .unwrap()
                    .0,
            );
        }
        results.push((losses, weights(&model)));
    }
    assert_eq!(results[0], results[1]);
}

#[test]
fn a_loss_that_explodes_while_finite_stops_fit() {
    let mnist = Mnist::load("datasets/mnist").expect("shipped MNIST files");
    let train = mnist.train.take(512);
    let rng = &mut StdRng::seed_from_u64(5);
    let mut model = Sequential::new().add(Flatten).add(Linear::new(784, 10, rng));
    // Plain SGD at lr 100 on a linear model: the logits grow step by step, and the
    // loss with them, into the thousands, finite all along.
    let mut sgd = SGD::new(SGDConfig {
        lr: 100.0,
        ..Default::default()
    });
    let opts = FitOptions {
        epochs: 1,
        batch_size: 16,
        progress: Progress::Silent,
        ..Default::default()
    };
    let err = fit(&mut model, &mut sgd, &train, None, &opts, |_, _, _| Ok(())).unwrap_err();
    let TrainError::Numerical {
        fault: Fault::Exploded {
            loss, limit, steps, ..
        },
        ..
    } = &err
    else {
        panic!("expected an explosion, got {err:?}");
    };
    assert!(loss.is_finite() && loss > limit && *steps == 6, "{err}");
    assert!(err.to_string().contains("exploded"), "{err}");

    // The same run without the check trains on to the end.
    let mut model = Sequential::new().add(Flatten).add(Linear::new(784, 10, rng));
    let unchecked = FitOptions {
        explosion: None,
        ..opts
    };
    let mut sgd = SGD::new(SGDConfig {
        lr: 100.0,
        ..Default::default()
    });
    let history = fit(&mut model, &mut sgd, &train, None, &unchecked, |_, _, _| Ok(()));
    assert!(history.is_ok_and(|h| h[0].train_loss > 100.0));
}

#[test]
fn out_of_range_options_are_refused_before_training() {
    let mnist = Mnist::load("datasets/mnist").expect("shipped MNIST files");
    let train = mnist.train.take(32);
    let bad = [
        FitOptions {
            batch_size: 0,
            ..Default::default()
        },
        FitOptions {
            clip_grad_norm: Some(f64::NAN),
            ..Default::default()
        },
        FitOptions {
            label_smoothing: 1.0,
            ..Default::default()
        },
        FitOptions {
            explosion: Some(ferrocnn::train::ExplosionCheck {
                factor: 0.5,
                patience: 3,
            }),
            ..Default::default()
        },
    ];
    for opts in bad {
        let mut model = small_net(6);
        let before = weights(&model);
        let err = fit(&mut model, &mut adam(), &train, None, &opts, |_, _, _| Ok(())).unwrap_err();
        assert!(matches!(err, TrainError::Options(_)), "{err:?}");
        assert_eq!(weights(&model), before);
    }
}
