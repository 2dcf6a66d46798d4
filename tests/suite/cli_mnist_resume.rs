//! `mnist --resume` with a checkpoint whose checksum is valid but whose content
//! cannot be run (a plan no run writes, optimizer buffers for another model): one
//! `error:` line naming the file, where training panicked at its first step.

use crate::cli_support;
use crate::temp_dir;

use cli_support::{arg, dataset, example, run, small_net, snapshot};
use ferrocnn::data::Mnist;
use ferrocnn::io::{save_checkpoint, Checkpoint, ModelRecord};
use ferrocnn::optim::{Adam, AdamConfig, Optimizer};
use ferrocnn::train::{fit, FitOptions, Progress};

/// A checkpoint after one epoch of the small net on `data` (so Adam has buffers).
fn checkpoint(data: &std::path::Path) -> Checkpoint {
    let mnist = Mnist::load(data).unwrap();
    let mut model = small_net(1, 8, 10);
    let mut adam = Adam::new(AdamConfig::default());
    let options = FitOptions {
        batch_size: 8,
        epochs: 2,
        progress: Progress::Hidden,
        ..Default::default()
    };
    let one = FitOptions {
        epochs: 1,
        ..options.clone()
    };
    fit(&mut model, &mut adam, &mnist.train, None, &one, |_, _, _| Ok(())).unwrap();
    Checkpoint {
        model: ModelRecord::of(&model),
        optimizer: adam.state(),
        options: FitOptions {
            start_epoch: 2,
            ..options
        },
        history: Vec::new(),
        meta: Default::default(),
    }
}

#[test]
fn a_checkpoint_that_cannot_be_run_is_an_error_naming_it() {
    let dir = temp_dir::tempdir().unwrap();
    let data = dataset(&dir.path().join("data"), 8, 24, 10);
    let good = checkpoint(&data);
    let mut no_batches = good.clone();
    no_batches.options.batch_size = 0;
    let mut mixed = good.clone();
    mixed.model = ModelRecord::of(&small_net(1, 10, 10));
    for (name, ckpt, says) in [
        ("no-batches.ckpt", no_batches, "batch size 0"),
        ("mixed.ckpt", mixed, "position"),
    ] {
        let path = dir.path().join(name);
        save_checkpoint(&ckpt, &path).unwrap();
        let before = snapshot(&[dir.path()]);
        let outcome = run(example("mnist"), &["--data", arg(&data), "--resume", arg(&path)]);
        outcome.assert_error(&[name, says]);
        assert_eq!(snapshot(&[dir.path()]), before, "{name}: nothing written");
    }
    // The good one resumes, as a control.
    let path = dir.path().join("good.ckpt");
    save_checkpoint(&good, &path).unwrap();
    run(example("mnist"), &["--data", arg(&data), "--resume", arg(&path)]).assert_ok();
    assert!(dir.path().join("good.bin").exists());
}
