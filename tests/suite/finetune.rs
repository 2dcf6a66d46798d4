//! Fine-tuning: frozen parameters (and frozen batch norms' statistics) do not change
//! by a single bit; the head is replaced for a new class count and trains.

use ferrocnn::data::Mnist;
use ferrocnn::nn::{BatchNorm2d, Conv2d, Module};
use ferrocnn::optim::{Adam, AdamConfig};
use ferrocnn::train::{fit, FitOptions, Progress};
use ferrocnn::zoo;

#[test]
fn frozen_layers_do_not_change_by_a_single_bit() {
    let mnist = Mnist::load("datasets/mnist").expect("shipped MNIST");
    let train = mnist
        .train
        .take(256)
        .map_labels(|l| l % 2)
        .with_num_classes(2)
        .expect("two classes");
    let mut model = zoo::mnist_default((1, 28, 28), 10, 1);
    assert_eq!(model.replace_head(2, 3), Ok(10));
    model.set_frozen_where(true, &|_, m| m.is::<Conv2d>() || m.is::<BatchNorm2d>());
    let before = model.state_dict();

    let mut adam = Adam::new(AdamConfig {
        lr: 1e-2,
        ..Default::default()
    });
    let opts = FitOptions {
        epochs: 1,
        batch_size: 32,
        progress: Progress::Silent,
        ..Default::default()
    };
    fit(&mut model, &mut adam, &train, None, &opts, |_, _, _| Ok(())).expect("train");

    let after = model.state_dict();
    for ((name, a), (_, b)) in before.iter().zip(&after) {
        let frozen = name.starts_with("conv") || name.starts_with("bn");
        if frozen {
            assert_eq!(a, b, "{name} is frozen and must not change");
        } else {
            assert_ne!(a, b, "{name} is trainable and should have moved");
        }
    }
    assert_eq!(
        model.parameters().last().map(|p| p.shape().to_vec()),
        Some(vec![2]),
        "new head bias"
    );
}

#[test]
fn reinitialized_keeps_architecture_and_changes_weights() {
    let model = zoo::mnist_default((1, 28, 28), 10, 1);
    let fresh = model.reinitialized(99);
    let (a, b) = (model.state_dict(), fresh.state_dict());
    assert_eq!(a.len(), b.len());
    for ((na, va), (nb, vb)) in a.iter().zip(&b) {
        assert_eq!((na, va.shape()), (nb, vb.shape()));
    }
    assert_ne!(a[0].1, b[0].1);
}
