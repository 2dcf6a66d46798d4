//! Checkpoints whose checksum is valid but whose content cannot be run: a training
//! plan no run writes (batch size 0, a schedule of 0 steps, a NaN rotation), or
//! optimizer buffers for another model. Each is an error naming the file or the
//! parameter, where training would have panicked.

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
    let payload = bincode::serde::encode_to_vec(checkpoint, bincode::config::standard()).unwrap();
    let mut bytes = b"FERROCNN".to_vec();
    bytes.extend_from_slice(&2u32.to_le_bytes());
    bytes.push(2);
    bytes.extend_from_slice(&(payload.len() as u64).to_le_bytes());
    bytes.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
    bytes.extend_from_slice(&payload);
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn a_checkpoint_as_written_loads_and_restores() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("run.ckpt");
    write(&path, &checkpoint());
    let loaded = load_checkpoint(&path).expect("loads");
    let (model, optimizer) = loaded.restore(&Registry::new()).expect("restores");
    assert_eq!(model.num_parameters(), 15);
    assert_eq!(optimizer.lr(), AdamConfig::default().lr);
}

#[test]
fn a_plan_that_cannot_be_run_is_an_error_naming_the_file_and_the_setting() {
    let dir = tempfile::tempdir().unwrap();
    type Damage = Box<dyn Fn(&mut FitOptions)>;
    let cases: Vec<(Damage, &str)> = vec![
        (Box::new(|o| o.batch_size = 0), "batch size 0"),
        (Box::new(|o| o.eval_batch_size = 0), "evaluation batch size 0"),
        (Box::new(|o| o.start_epoch = 0), "start epoch 0"),
        (Box::new(|o| o.label_smoothing = 1.5), "label smoothing 1.5"),
        (
            Box::new(|o| o.clip_grad_norm = Some(f32::NAN)),
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
            Box::new(|o| o.schedule = Some(LrSchedule::Constant { lr: f32::NAN })),
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
