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

/// The figure after `test accuracy ` in the run's output, as a fraction.
fn printed_accuracy(stdout: &str) -> f64 {
    let line = stdout
        .lines()
        .find(|l| l.starts_with("test accuracy "))
        .expect("a test accuracy line");
    let percent = line["test accuracy ".len()..].split('%').next().unwrap();
    percent.parse::<f64>().unwrap() / 100.0
}

#[test]
fn a_resumed_run_refuses_plan_flags_and_reports_the_trained_model() {
    let dir = temp_dir::tempdir().unwrap();
    let data = dataset(&dir.path().join("data"), 8, 24, 10);
    let path = dir.path().join("run.ckpt");
    save_checkpoint(&checkpoint(&data), &path).unwrap();
    // A flag that would change the plan is refused, not silently ignored.
    let before = snapshot(&[dir.path()]);
    for (flag, value) in [
        ("--epochs", Some("5")),
        ("--lr", Some("0.1")),
        ("--net", Some("r1")),
        ("--batch-size", Some("4")),
        ("--optimizer", Some("sgd")),
        ("--no-augment", None),
        ("--limit-train", Some("8")),
    ] {
        let mut args = vec!["--data", arg(&data), "--resume", arg(&path), flag];
        args.extend(value);
        run(example("mnist"), &args).assert_usage(flag, "cannot be combined with --resume");
    }
    assert_eq!(snapshot(&[dir.path()]), before, "nothing written");
    // The resumed run trains its last epoch; the test figures it prints are those of
    // the model it saves (taken from the epoch's own evaluation, not a second pass).
    let outcome = run(example("mnist"), &["--data", arg(&data), "--resume", arg(&path)]);
    outcome.assert_ok();
    assert!(outcome.stdout.contains("epoch 2/2"), "{outcome:#?}");
    assert!(outcome.stdout.contains("confusion matrix on the"), "{outcome:#?}");
    let mut saved = ferrocnn::io::load_model(dir.path().join("run.bin")).unwrap();
    let test = Mnist::load(&data).unwrap().test;
    let evaluation = ferrocnn::train::evaluate(saved.as_mut(), &test, 7).unwrap();
    let printed = printed_accuracy(&outcome.stdout);
    assert!(
        (printed - evaluation.accuracy).abs() < 5e-5,
        "printed {printed}, the saved model's {}",
        evaluation.accuracy
    );
    // A run with no epoch left evaluates the model itself, with the same figures.
    let done = dir.path().join("run.ckpt");
    let again = run(
        example("mnist"),
        &[
            "--data",
            arg(&data),
            "--resume",
            arg(&done),
            "--save",
            arg(&dir.path().join("again.bin")),
        ],
    );
    again.assert_ok();
    assert!(!again.stdout.contains("epoch 2/2"), "{again:#?}");
    assert_eq!(printed_accuracy(&again.stdout), printed_accuracy(&outcome.stdout));
}
