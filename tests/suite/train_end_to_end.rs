//! End to end: a small convnet trained for a few seconds on a few thousand shipped
//! MNIST images classifies held-out digits; the same seed gives the same weights.

use ferrocnn::data::Mnist;
use ferrocnn::nn::{Module, Sequential};
use ferrocnn::optim::{Adam, AdamConfig};
use ferrocnn::train::{evaluate, fit, FitOptions, Progress, TrainError};
use ferrocnn::zoo;

fn train_small(seed: u64) -> (Sequential, f64) {
    let mnist = Mnist::load("datasets/mnist").expect("shipped MNIST files");
    let (train, held_out) = (mnist.train.take(4000), mnist.test.take(1000));
    let mut model = zoo::r1((1, 28, 28), 10, seed);
    let mut adam = Adam::new(AdamConfig {
        lr: 2e-3,
        ..Default::default()
    });
    let opts = FitOptions {
        epochs: 2,
        batch_size: 64,
        seed,
        progress: Progress::Silent,
        ..Default::default()
    };
    let history = fit(&mut model, &mut adam, &train, None, &opts, |_, _, _| Ok(())).expect("training runs");
    assert_eq!(history.len(), 2);
    assert!(history[1].train_loss < history[0].train_loss, "{history:?}");
    let accuracy = evaluate(&mut model, &held_out, 500).unwrap().accuracy;
    (model, accuracy)
}

#[test]
fn small_convnet_learns_mnist_and_is_deterministic() {
    let (a, accuracy) = train_small(5);
    assert!(accuracy > 0.90, "held-out accuracy {accuracy}");
    let (b, again) = train_small(5);
    assert_eq!(accuracy, again);
    for (pa, pb) in a.parameters().iter().zip(b.parameters()) {
        assert_eq!(pa.value(), pb.value(), "same seed, same weights bit for bit");
    }
}

#[test]
fn divergence_stops_training_with_the_epoch_and_batch() {
    let mnist = Mnist::load("datasets/mnist").expect("shipped MNIST files");
    let train = mnist.train.take(256);
    let mut model = zoo::r1((1, 28, 28), 10, 1);
    let mut adam = Adam::new(AdamConfig {
        lr: 1e30,
        ..Default::default()
    });
    let opts = FitOptions {
        epochs: 3,
        batch_size: 32,
        progress: Progress::Silent,
        ..Default::default()
    };
    match fit(&mut model, &mut adam, &train, None, &opts, |_, _, _| Ok(())) {
        Err(err @ TrainError::Numerical { .. }) => {
            let TrainError::Numerical { epoch, batch, .. } = &err else {
                unreachable!()
            };
            assert!(*epoch >= 1 && *batch >= 1);
            let message = err.to_string();
            assert!(
                message.contains(&format!("epoch {epoch}, batch {batch}")),
                "{message}"
            );
        }
        other => panic!("expected divergence, got {other:?}"),
    }
}

#[test]
fn data_that_does_not_fit_the_model_is_an_error_not_a_panic() {
    let mnist = Mnist::load("datasets/mnist").expect("shipped MNIST files");
    let train = mnist.train.take(64);
    let mut model = zoo::r1((1, 20, 20), 10, 1); // built for 20×20 images
    let mut adam = Adam::new(AdamConfig::default());
    let opts = FitOptions {
        progress: Progress::Silent,
        ..Default::default()
    };
    let err = fit(&mut model, &mut adam, &train, None, &opts, |_, _, _| Ok(())).unwrap_err();
    assert!(
        matches!(err, TrainError::Shape(_)) && err.to_string().contains("fc1"),
        "{err}"
    );
}

#[test]
fn evaluating_on_data_the_model_does_not_fit_is_an_error_not_a_panic() {
    let mnist = Mnist::load("datasets/mnist").expect("shipped MNIST files");
    let test = mnist.test.take(64);
    // Five outputs for ten classes: a label of 7 has no logit.
    let mut narrow = zoo::r1((1, 28, 28), 5, 1);
    let err = evaluate(&mut narrow, &test, 32).unwrap_err();
    assert!(
        matches!(
            err,
            TrainError::ClassMismatch {
                outputs: 5,
                classes: 10
            }
        ),
        "{err:?}"
    );
    // Built for 20×20 images.
    let mut small = zoo::r1((1, 20, 20), 10, 1);
    assert!(matches!(
        evaluate(&mut small, &test, 32),
        Err(TrainError::Shape(_))
    ));
    let mut r1 = zoo::r1((1, 28, 28), 10, 1);
    assert!(matches!(evaluate(&mut r1, &test, 0), Err(TrainError::Options(_))));
    assert_eq!(evaluate(&mut r1, &test, 32).unwrap().predictions.len(), 64);
}
