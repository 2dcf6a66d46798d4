//! Checkpoints whose checksum is valid but whose content cannot be run: a training
//! plan no run writes (batch size 0, a schedule of 0 steps, a NaN rotation), or
//! optimizer buffers for another model. Each is an error naming the file or the
//! parameter, where training would have panicked.

use crate::cli_support;
use crate::temp_dir;

use ferrocnn::data::{Augment, Dataset};
use ferrocnn::io::{load_checkpoint, Checkpoint, IoError, ModelRecord};
use ferrocnn::nn::{Flatten, Linear, Registry, Sequential};
use ferrocnn::optim::{Adam, AdamConfig, LrSchedule, Optimizer};
use ferrocnn::train::{fit, FitOptions, Progress};
use rand::SeedableRng;

fn net(inputs: usize) -> Sequential {
    let rng = &mut rand::rngs::StdRng::seed_from_u64(1);
    Sequential::new().add(Flatten).add(Linear::new(inputs, 3, rng))
}

/// A checkpoint of a small run: one epoch of Adam, so the optimizer has buffers.
fn checkpoint() -> Checkpoint {
    let pixels: Vec<u8> = (0..6 * 4).map(|i| (i * 41 % 256) as u8).collect();
    let data = Dataset::from_raw(pixels, vec![0, 1, 2, 0, 1, 2], 1, 2, 2).unwrap();
    let mut model = net(4);
    let mut adam = Adam::new(AdamConfig::default());
    let options = FitOptions {
        batch_size: 2,
        progress: Progress::Hidden,
        ..Default::default()
    };
    fit(&mut model, &mut adam, &data, None, &options, |_, _, _| Ok(())).unwrap();
    Checkpoint {
        model: ModelRecord::of(&model),
        optimizer: adam.state(),
        options,
        history: Vec::new(),
        meta: Default::default(),
    }
}

/// Writes `checkpoint` with a valid header and checksum (the public layout).
fn write(path: &std::path::Path, checkpoint: &Checkpoint) {
    cli_support::write_file(path, ferrocnn::io::FileKind::Checkpoint, checkpoint);
}

#[test]
fn a_checkpoint_as_written_loads_and_restores() {
    let dir = temp_dir::tempdir().unwrap();
    let path = dir.path().join("run.ckpt");
    write(&path, &checkpoint());
    let loaded = load_checkpoint(&path).expect("loads");
    let (model, optimizer) = loaded.restore(&Registry::new()).expect("restores");
    assert_eq!(model.num_parameters(), 15);
    assert_eq!(optimizer.lr(), AdamConfig::default().lr);
}

#[test]
fn a_plan_that_cannot_be_run_is_an_error_naming_the_file_and_the_setting() {
    let dir = temp_dir::tempdir().unwrap();
    type Damage = Box<dyn Fn(&mut FitOptions)>;
    let cases: Vec<(Damage, &str)> = vec![
        (Box::new(|o| o.batch_size = 0), "batch size 0"),
        (Box::new(|o| o.eval_batch_size = 0), "evaluation batch size 0"),
        (Box::new(|o| o.start_epoch = 0), "start epoch 0"),
        (Box::new(|o| o.label_smoothing = 1.5), "label smoothing 1.5"),
        (
            Box::new(|o| o.clip_grad_norm = Some(f64::NAN)),
            "gradient clipping",
        ),
        (
            Box::new(|o| {
                o.augment = Some(Augment {
                    max_shift: 1,
                    max_rotation_degrees: f32::NAN,
                })
            }),
            "augmentation",
        ),
        (
            Box::new(|o| o.start_totals = (f64::INFINITY, 0, 0)),
            "running totals",
        ),
        (Box::new(|o| o.start_totals = (1.0, 5, 2)), "running totals"),
        (
            Box::new(|o| {
                o.schedule = Some(LrSchedule::Step {
                    base_lr: 0.1,
                    step_size: 0,
                    gamma: 0.5,
                })
            }),
            "step_size 0",
        ),
        (
            Box::new(|o| o.schedule = Some(LrSchedule::Constant { lr: f64::NAN })),
            "lr NaN",
        ),
        (
            Box::new(|o| {
                o.schedule = Some(LrSchedule::OneCycle {
                    max_lr: 1e-3,
                    total_steps: 10,
                    pct_start: 2.0,
                    div_factor: 25.0,
                    final_div_factor: 1e4,
                })
            }),
            "pct_start 2",
        ),
    ];
    for (damage, says) in cases {
        let mut bad = checkpoint();
        damage(&mut bad.options);
        let path = dir.path().join("bad.ckpt");
        write(&path, &bad);
        let err = load_checkpoint(&path).expect_err(says);
        assert!(matches!(err, IoError::Invalid { .. }), "{err}");
        let text = err.to_string();
        assert!(text.contains("bad.ckpt") && text.contains(says), "{says}: {text}");
    }
}

#[test]
fn optimizer_buffers_for_another_model_are_an_error_on_restore() {
    let mut mixed = checkpoint();
    // The model of a run on 3×3 images with the optimizer of the run on 2×2.
    mixed.model = ModelRecord::of(&net(9));
    let err = mixed.restore(&Registry::new()).err().expect("refused");
    assert!(err.contains("position") && err.contains("[3, 4]"), "{err}");
}

/// `tests/golden/checkpoint_v2.ckpt` was written by the build of 2026-12-01 before
/// the training hyperparameters became f64 (format 2): every setting comes back
/// exactly (`f64::from` of the f32 it stored), and so do the momentum buffers.
#[test]
fn a_format_2_checkpoint_loads_with_every_setting_and_buffer() {
    use ferrocnn::nn::{Conv2d, Module};
    use ferrocnn::optim::{OptimizerState, SGDConfig, SGD};

    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/golden/checkpoint_v2.ckpt");
    let loaded = load_checkpoint(path).expect("format 2 loads");
    // The run that wrote it, repeated: one SGD step with fixed gradients.
    let rng = &mut rand::rngs::StdRng::seed_from_u64(9);
    let mut model = Sequential::new()
        .add(Conv2d::new(1, 2, (3, 3), rng))
        .add(Flatten)
        .add(Linear::new(2 * 4 * 4, 3, rng));
    let config = SGDConfig {
        lr: 0.05f32.into(),
        momentum: 0.9,
        dampening: 0.0,
        nesterov: true,
        weight_decay: 1e-4,
    };
    let mut sgd = SGD::new(config.clone());
    let mut grads = ferrocnn::Gradients::new();
    for p in model.parameters() {
        grads.insert(p, p.value().mapv(|v| v * 0.5 + 0.1));
    }
    sgd.step(&mut model.parameters_mut(), &grads);
    let OptimizerState::SGD {
        config: got,
        momentum_buffers,
    } = &loaded.optimizer
    else {
        panic!("expected SGD state, got {:?}", loaded.optimizer.kind());
    };
    assert_eq!(got, &config);
    let OptimizerState::SGD {
        momentum_buffers: expected,
        ..
    } = sgd.state()
    else {
        unreachable!()
    };
    assert_eq!(momentum_buffers, &expected);

    let o = &loaded.options;
    assert_eq!(
        (o.epochs, o.batch_size, o.seed, o.eval_batch_size),
        (3, 16, 7, 100)
    );
    assert_eq!(
        o.augment,
        Some(Augment {
            max_shift: 2,
            max_rotation_degrees: 10.0
        })
    );
    assert_eq!(
        (o.clip_grad_norm, o.label_smoothing),
        (Some(1.5), f64::from(0.1f32))
    );
    assert_eq!(
        o.schedule,
        Some(LrSchedule::OneCycle {
            max_lr: 0.05f32.into(),
            total_steps: 30,
            pct_start: 0.3,
            div_factor: 25.0,
            final_div_factor: 1e4
        })
    );
    assert_eq!(
        (o.progress, o.start_epoch, o.start_batch),
        (Progress::Hidden, 2, 3)
    );
    assert_eq!(o.start_totals, (1.25, 20, 48));
    assert_eq!(loaded.history[0].lr, f64::from(0.0123f32));
    assert_eq!(loaded.history[0].eval, Some((0.4, 0.8)));
    assert_eq!(loaded.meta["net"], "golden");
    let (restored, optimizer) = loaded.clone().restore(&Registry::new()).expect("restores");
    // The weights after that step, bit for bit (the f32 step of an f64 lr that was
    // an f32 is the step it was).
    let values = |m: &dyn Module| -> Vec<ndarray::ArrayD<f32>> {
        m.parameters().iter().map(|p| p.value().clone()).collect()
    };
    assert_eq!(values(restored.as_ref()), values(&model));
    assert_eq!(optimizer.lr(), f64::from(0.05f32));
}
