//! Checkpoints: a run interrupted mid-epoch (or killed after an epoch's checkpoint)
//! and resumed from its file ends with exactly the weights of an uninterrupted run.

use crate::temp_dir;

use std::collections::BTreeMap;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use ferrocnn::data::{Augment, Dataset, Mnist};
use ferrocnn::io::{load_checkpoint, save_checkpoint, Checkpoint, ModelRecord};
use ferrocnn::nn::{Dropout, Module, Registry, Sequential};
use ferrocnn::optim::{Adam, AdamConfig, LrSchedule, Optimizer};
use ferrocnn::train::{fit, EpochStats, FitOptions, Progress, TrainError};
use ferrocnn::zoo;

fn data() -> Dataset {
    Mnist::load("datasets/mnist")
        .expect("shipped MNIST")
        .train
        .take(640)
}

fn options() -> FitOptions {
    FitOptions {
        epochs: 2,
        batch_size: 64,
        seed: 11,
        augment: Some(Augment {
            max_shift: 2,
            max_rotation_degrees: 8.0,
        }),
        schedule: Some(LrSchedule::one_cycle(3e-3, 20)),
        progress: Progress::Silent,
        ..Default::default()
    }
}

fn fresh() -> (Sequential, Box<dyn Optimizer>) {
    // The default net has dropout and batch norm: both carry state across steps.
    (
        zoo::mnist_default((1, 28, 28), 10, 2),
        Box::new(Adam::new(AdamConfig::default())),
    )
}

fn weights(m: &dyn Module) -> Vec<ndarray::ArrayD<f32>> {
    m.state_dict().into_iter().map(|(_, v)| v).collect()
}

/// `fit` with no evaluation set and no per-epoch callback.
fn train_plain(
    model: &mut dyn Module,
    opt: &mut dyn Optimizer,
    train: &Dataset,
    options: &FitOptions,
) -> Result<Vec<EpochStats>, TrainError> {
    fit(model, opt, train, None, options, |_, _, _| Ok(()))
}

/// The weights of a fresh model after the whole run of `options()`, uninterrupted.
fn uninterrupted(train: &Dataset) -> Vec<ndarray::ArrayD<f32>> {
    let (mut model, mut opt) = fresh();
    train_plain(&mut model, opt.as_mut(), train, &options()).expect("train");
    weights(&model)
}

/// The weights after continuing the run saved in `ckpt` to its end.
fn resumed(ckpt: Checkpoint, train: &Dataset) -> Vec<ndarray::ArrayD<f32>> {
    let mut model = ckpt
        .model
        .build(&Registry::new())
        .expect("the stored model builds");
    let mut opt = ckpt.optimizer.into_optimizer().expect("optimizer");
    train_plain(model.as_mut(), opt.as_mut(), train, &ckpt.options).expect("resume");
    weights(model.as_ref())
}

fn checkpoint_round_trip(ckpt: Checkpoint) -> Checkpoint {
    let dir = temp_dir::tempdir().expect("temp dir");
    let path = dir.path().join("run.ckpt");
    save_checkpoint(&ckpt, &path).expect("save");
    load_checkpoint(&path).expect("load")
}

#[test]
fn resume_after_interruption_equals_uninterrupted_run() {
    let train = data();
    let reference = uninterrupted(&train);

    // Interrupted: the stop flag is up from the start, so training stops after the
    // first batch of epoch 1, as a Ctrl-C would.
    let (mut model, mut opt) = fresh();
    let stopping = FitOptions {
        stop: Some(Arc::new(AtomicBool::new(true))),
        ..options()
    };
    let err = train_plain(&mut model, opt.as_mut(), &train, &stopping).unwrap_err();
    let TrainError::Interrupted {
        epoch,
        batches_done,
        totals,
    } = err
    else {
        panic!("{err}")
    };
    assert_eq!((epoch, batches_done), (1, 1));
    let ckpt = checkpoint_round_trip(Checkpoint {
        model: ModelRecord::of(&model),
        optimizer: opt.state(),
        options: FitOptions {
            start_epoch: epoch,
            start_batch: batches_done,
            start_totals: totals,
            ..options()
        },
        history: Vec::new(),
        meta: BTreeMap::new(),
    });

    assert_eq!(
        resumed(ckpt, &train),
        reference,
        "bit-exact after resuming mid-epoch"
    );
}

#[test]
fn resume_from_epoch_checkpoint_equals_uninterrupted_run() {
    let train = data();
    let reference = uninterrupted(&train);

    // A run killed during epoch 2 leaves the checkpoint written after epoch 1.
    let (mut model, mut opt) = fresh();
    let mut saved = None;
    let one_epoch = FitOptions {
        epochs: 1,
        ..options()
    };
    fit(
        &mut model,
        opt.as_mut(),
        &train,
        None,
        &one_epoch,
        |stats, model, opt| {
            saved = Some(Checkpoint {
                model: ModelRecord::of(model),
                optimizer: opt.state(),
                options: FitOptions {
                    start_epoch: stats.epoch + 1,
                    ..options()
                },
                history: vec![stats.clone()],
                meta: BTreeMap::new(),
            });
            Ok(())
        },
    )
    .expect("epoch 1");
    let ckpt = checkpoint_round_trip(saved.expect("callback ran"));
    assert_eq!(ckpt.history.len(), 1);
    assert!(!ckpt.model.tensors.is_empty());
    let resumed = resumed(ckpt, &train);
    assert_eq!(
        resumed, reference,
        "bit-exact after resuming at an epoch boundary"
    );
    assert_ne!(
        resumed,
        weights(&fresh().0),
        "and training did change the weights"
    );
}

#[test]
fn checkpoint_round_trip_is_bit_exact() {
    let train = data().take(128);
    let (mut model, mut opt) = fresh();
    let one_epoch = FitOptions {
        epochs: 1,
        ..options()
    };
    train_plain(&mut model, opt.as_mut(), &train, &one_epoch).expect("train");
    let ckpt = Checkpoint {
        model: ModelRecord::of(&model),
        optimizer: opt.state(),
        options: FitOptions {
            start_epoch: 2,
            start_batch: 1,
            start_totals: (1.5, 3, 64),
            ..options()
        },
        history: Vec::new(),
        meta: BTreeMap::from([("net".to_string(), "default".to_string())]),
    };
    let back = checkpoint_round_trip(ckpt.clone());
    assert_eq!(back.model, ckpt.model);
    assert_eq!(back.optimizer, ckpt.optimizer);
    assert_eq!(back.meta, ckpt.meta);
    let (a, b) = (&back.options, &ckpt.options);
    assert_eq!(
        (a.start_epoch, a.start_batch, a.start_totals, a.seed),
        (b.start_epoch, b.start_batch, b.start_totals, b.seed)
    );
    assert_eq!((a.augment, &a.schedule), (b.augment, &b.schedule));
    let dropout_calls = |record: &ModelRecord| {
        let m = record.build(&Registry::new()).expect("builds");
        m.named_modules()
            .into_iter()
            .filter_map(|(_, l)| l.downcast_ref::<Dropout>().map(|d| d.calls))
            .collect::<Vec<_>>()
    };
    assert_eq!(dropout_calls(&back.model), dropout_calls(&ckpt.model));
    assert!(
        dropout_calls(&ckpt.model).iter().all(|&c| c == 2),
        "two training batches were drawn"
    );
}
