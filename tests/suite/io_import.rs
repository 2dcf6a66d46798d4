//! PyTorch weights in: R1 trained in PyTorch (`benches/torch_r1_safetensors.py`,
//! its state dict saved as safetensors with PyTorch's names), imported into
//! ferrocnn's R1, evaluates as PyTorch evaluated it, and fine-tunes.

use ferrocnn::data::Mnist;
use ferrocnn::io::import_safetensors;
use ferrocnn::nn::{Mode, Module};
use ferrocnn::optim::{Adam, AdamConfig};
use ferrocnn::serde_json::Value;
use ferrocnn::train::{evaluate, fit, FitOptions, Progress};
use ferrocnn::{zoo, Tensor};

const WEIGHTS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/golden/torch_r1.safetensors");
const REPORT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/golden/torch_r1.json");

/// PyTorch's R1 calls its last layer `fc`; ferrocnn's `zoo::r1` calls it `fc1`.
const RENAMES: &[(&str, &str)] = &[("fc.", "fc1.")];

fn pytorch_report() -> Value {
    ferrocnn::serde_json::from_str(&std::fs::read_to_string(REPORT).unwrap()).unwrap()
}

#[test]
fn pytorch_r1_weights_evaluate_as_in_pytorch_and_fine_tune() {
    let mnist = Mnist::load("datasets/mnist").expect("shipped MNIST files");
    let report = pytorch_report();
    let mut model = zoo::r1((1, 28, 28), 10, 0);
    let skipped = import_safetensors(&mut model, WEIGHTS, RENAMES).expect("imports");
    assert!(skipped.is_empty(), "{skipped:?}");

    let evaluation = evaluate(&mut model, &mnist.test, 1000).unwrap();
    let accuracy = report["accuracy"].as_f64().unwrap();
    // The same accuracy to 0.01% (one image in 10,000).
    assert!(
        (evaluation.accuracy - accuracy).abs() <= 1e-4 + 1e-9,
        "ferrocnn {} vs PyTorch {accuracy}",
        evaluation.accuracy
    );
    let loss = report["loss"].as_f64().unwrap();
    eprintln!(
        "imported R1: accuracy {} (PyTorch {accuracy}), loss {} (PyTorch {loss})",
        evaluation.accuracy, evaluation.loss
    );
    assert!(
        (evaluation.loss - loss).abs() < 1e-4,
        "loss {} vs {loss}",
        evaluation.loss
    );
    let first = model.forward(&Tensor::new(mnist.test.to_array(0..1).into_dyn()), Mode::Eval);
    for (ours, theirs) in first
        .value()
        .iter()
        .zip(report["first_logits"].as_array().unwrap())
    {
        let theirs = theirs.as_f64().unwrap() as f32;
        assert!(
            (ours - theirs).abs() < 1e-4 * (1.0 + theirs.abs()),
            "{ours} vs {theirs}"
        );
    }

    // Fine-tuning continues from there: one epoch on 2,000 images at a small rate.
    let train = mnist.train.take(2000);
    let mut adam = Adam::new(AdamConfig {
        lr: 1e-4,
        ..Default::default()
    });
    let opts = FitOptions {
        batch_size: 64,
        progress: Progress::Silent,
        ..Default::default()
    };
    let history = fit(&mut model, &mut adam, &train, None, &opts, |_, _, _| Ok(())).unwrap();
    assert!(history[0].train_accuracy > 0.95, "{history:?}");
    let after = evaluate(&mut model, &mnist.test.take(2000), 1000).unwrap();
    assert!(after.accuracy > 0.96, "{}", after.accuracy);
}

#[test]
fn names_and_shapes_that_do_not_match_are_errors_that_change_nothing() {
    let mut model = zoo::r1((1, 28, 28), 10, 0);
    let before = model.state_dict();
    let err = import_safetensors(&mut model, WEIGHTS, &[])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("torch_r1.safetensors") && err.contains("fc1.weight") && err.contains("renames"),
        "{err}"
    );
    // Five classes: fc1 is [5, 1600], the file's is [10, 1600].
    let mut narrow = zoo::r1((1, 28, 28), 5, 0);
    let err = import_safetensors(&mut narrow, WEIGHTS, RENAMES)
        .unwrap_err()
        .to_string();
    assert!(err.contains("fc1.weight") && err.contains("10, 1600"), "{err}");
    assert_eq!(model.state_dict(), before, "a failed import changes nothing");
    let missing = import_safetensors(&mut model, "no/such.safetensors", RENAMES).unwrap_err();
    assert!(missing.to_string().contains("no/such.safetensors"), "{missing}");
}
