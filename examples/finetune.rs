//! Fine-tune a saved model on a new task: `cargo run --example finetune`.
//!
//! Loads a model (by default the shipped `models/mnist.bin`), builds a new task from
//! an MNIST-style folder, freezes what you ask, replaces the classifier head when the
//! class count differs, trains on a small labelled subset, and reports test accuracy
//! before and after. `--compare-scratch` also trains the same architecture from
//! random weights on the same subset, the baseline fine-tuning should beat.

use std::error::Error;
use std::path::PathBuf;

use ferrocnn::data::{Dataset, Mnist, MnistFiles};
use ferrocnn::io::{load_model, save_model};
use ferrocnn::nn::{BatchNorm2d, Conv2d, Conv2dBlock, Linear, Module};
use ferrocnn::optim::{Adam, AdamConfig};
use ferrocnn::train::{evaluate, fit, FitOptions, Progress, TrainError};

mod common;
use common::args::{at_least_one, learning_rate, number, one_of, unexpected, usage_error, CommandLine, Long};
use common::files::{report_ignored, same_file};
use common::fit::{check_labels, check_memory, describe_tensors, non_finite_tensors, outputs_for};

/// Test images evaluated at once.
const EVAL_BATCH: usize = 1000;

#[derive(Clone, Copy, Debug, PartialEq)]
enum Freeze {
    /// Train every layer.
    None,
    /// Freeze the convolutions (and their batch norms): train only the dense layers.
    Conv,
    /// Freeze everything but the last Linear layer.
    AllButHead,
}

#[derive(Clone, Copy, Debug)]
enum Task {
    /// The folder's labels as they are.
    Same,
    /// Two classes: even (0) or odd (1) digit.
    EvenOdd,
    /// Only digits 0–4 (five classes).
    Digits0To4,
}

/// The command line; `HELP` says what each flag does.
#[derive(Debug)]
struct Args {
    model: PathBuf,
    data: PathBuf,
    task: Task,
    freeze: Freeze,
    limit_train: usize,
    epochs: usize,
    batch_size: usize,
    lr: f64,
    seed: u64,
    compare_scratch: bool,
    save: PathBuf,
}

const HELP: &str = "\
Fine-tune a saved CNN on another MNIST-style task

Usage: finetune [OPTIONS]

Options:
      --model <MODEL>
          The model to start from [default: models/mnist.bin]
      --data <DATA>
          MNIST-style folder with the new task's images [default: datasets/mnist]
      --task <TASK>
          How to relabel the folder's images [default: even-odd]
          [possible values: same, even-odd, digits0-to4]
          - same:        The folder's labels as they are
          - even-odd:    Two classes: even (0) or odd (1) digit
          - digits0-to4: Only digits 0–4 (five classes)
      --freeze <FREEZE>
          What to freeze [default: all-but-head] [possible values: none, conv, all-but-head]
          - none:         Train every layer
          - conv:         Freeze the convolutions (and their batch norms): train only the
                          dense layers
          - all-but-head: Freeze everything but the last Linear layer
      --limit-train <LIMIT_TRAIN>
          Use only the first N training images (a small labelled set), at least 1
          [default: 500]
      --epochs <EPOCHS>
          Epochs, at least 1 [default: 10]
      --batch-size <BATCH_SIZE>
          Batch size, at least 1 [default: 32]
      --lr <LR>
          Learning rate (Adam), a finite number above 0 [default: 0.003]
      --seed <SEED>
          Seed of the new head, shuffling and dropout [default: 7]
      --compare-scratch
          Also train the same architecture from scratch on the same subset
      --save <SAVE>
          Where to save the fine-tuned model (not the --model file, nor a data file)
          [default: models/finetuned.bin]
";

impl Args {
    /// Reads the command line; a mistake is a usage error (exit code 2).
    fn parse() -> Args {
        let mut args = Args {
            model: PathBuf::from("models/mnist.bin"),
            data: PathBuf::from("datasets/mnist"),
            task: Task::EvenOdd,
            freeze: Freeze::AllButHead,
            limit_train: 500,
            epochs: 10,
            batch_size: 32,
            lr: 3e-3,
            seed: 7,
            compare_scratch: false,
            save: PathBuf::from("models/finetuned.bin"),
        };
        let tasks = [
            ("same", Task::Same),
            ("even-odd", Task::EvenOdd),
            ("digits0-to4", Task::Digits0To4),
        ];
        let freezes = [
            ("none", Freeze::None),
            ("conv", Freeze::Conv),
            ("all-but-head", Freeze::AllButHead),
        ];
        let mut cli = CommandLine::from_env("finetune", HELP);
        while let Some(arg) = cli.next() {
            match arg {
                Long("model") => args.model = cli.path("--model <MODEL>"),
                Long("data") => args.data = cli.path("--data <DATA>"),
                Long("task") => args.task = cli.value("--task <TASK>", |t| one_of(t, &tasks)),
                Long("freeze") => args.freeze = cli.value("--freeze <FREEZE>", |t| one_of(t, &freezes)),
                Long("limit-train") => {
                    args.limit_train = cli.value("--limit-train <LIMIT_TRAIN>", at_least_one)
                }
                Long("epochs") => args.epochs = cli.value("--epochs <EPOCHS>", at_least_one),
                Long("batch-size") => args.batch_size = cli.value("--batch-size <BATCH_SIZE>", at_least_one),
                Long("lr") => args.lr = cli.value("--lr <LR>", learning_rate),
                Long("seed") => args.seed = cli.value("--seed <SEED>", number),
                Long("compare-scratch") => args.compare_scratch = cli.flag("--compare-scratch"),
                Long("save") => args.save = cli.path("--save <SAVE>"),
                arg => unexpected(arg),
            }
        }
        args
    }
}

fn relabel(task: Task, data: &Dataset) -> Result<Dataset, Box<dyn Error>> {
    Ok(match task {
        Task::Same => data.clone(),
        Task::EvenOdd => data.map_labels(|l| l % 2).with_num_classes(2)?,
        Task::Digits0To4 => data.filter_classes(&[0, 1, 2, 3, 4]),
    })
}

fn train(model: &mut dyn Module, train: &Dataset, args: &Args) -> Result<(), Box<dyn Error>> {
    let mut adam = Adam::new(AdamConfig {
        lr: args.lr,
        ..Default::default()
    });
    let options = FitOptions {
        epochs: args.epochs,
        batch_size: args.batch_size,
        seed: args.seed,
        progress: Progress::Hidden,
        ..Default::default()
    };
    fit(model, &mut adam, train, None, &options, |_, _, _| Ok(()))?;
    Ok(())
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    if same_file(&args.save, &args.model) {
        let usage = format!(
            "--save {} would replace the model fine-tuning starts from (--model); give --save another path",
            args.save.display()
        );
        usage_error(usage);
    }
    match run(args) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> Result<(), Box<dyn Error>> {
    // Process-wide allocator tuning: a binary's choice, not the library's.
    ferrocnn::runtime::tune_for_training();
    let mut model = load_model(&args.model)?;
    let files = MnistFiles::find(&args.data)?;
    if let Some(file) = files.all().into_iter().find(|f| same_file(&args.save, &f.path)) {
        let usage = format!(
            "--save {} would replace the data file {}; give --save another path",
            args.save.display(),
            file.path.display()
        );
        usage_error(usage);
    }
    report_ignored(files.all());
    let mnist = Mnist::load_files(&files)?;
    let (train_set, test_set) = (
        relabel(args.task, &mnist.train)?,
        relabel(args.task, &mnist.test)?,
    );
    let train_set = train_set.take(args.limit_train);
    if train_set.is_empty() {
        let path = files.train_images.path.display();
        return Err(match mnist.train.len() {
            0 => format!("{path} holds no training images"),
            n => format!(
                "--task {:?} keeps none of the {n} training images of {path}",
                args.task
            ),
        }
        .into());
    }
    let classes = train_set.num_classes().max(test_set.num_classes());
    println!(
        "task {:?}: {} training images (of {}), {} test images, {classes} classes",
        args.task,
        train_set.len(),
        mnist.train.len(),
        test_set.len()
    );
    // The images must fit the layers before the head (a new head keeps its inputs).
    outputs_for(model.as_ref(), &args.model, &train_set, &files.train_images.path)?;

    // A new class count needs a new head; the old one's outputs mean other things.
    let head = model
        .head_name()
        .ok_or("the model has no Linear layer to use as its head")?;
    let outputs = model
        .named_modules()
        .into_iter()
        .find(|(n, _)| *n == head)
        .and_then(|(_, m)| m.downcast_ref::<Linear>().map(Linear::out_features));
    if outputs != Some(classes) {
        let old = model.replace_head(classes, args.seed)?;
        println!("replaced the head {head}: {old} → {classes} outputs (freshly initialized)");
    }
    // The head may not be the last layer: check what the model now outputs.
    let outputs = outputs_for(model.as_ref(), &args.model, &train_set, &files.train_images.path)?;
    check_labels(&train_set, &files.train_labels.path, &args.model, outputs)?;
    check_labels(&test_set, &files.test_labels.path, &args.model, outputs)?;
    // NaN weights make every loss NaN: training would stop at its first step saying
    // "diverged", which blames the learning rate for a damaged file.
    let broken = non_finite_tensors(model.as_ref());
    if !broken.is_empty() {
        return Err(format!(
            "{}: NaN or infinite values in {}; fine-tuning cannot start from it (use a model saved before its run diverged)",
            args.model.display(),
            describe_tensors(&broken)
        )
        .into());
    }
    let (c, h, w) = train_set.image_shape();
    check_memory(model.as_ref(), &args.model, (c, h, w), args.batch_size, true)?;
    check_memory(model.as_ref(), &args.model, (c, h, w), EVAL_BATCH, false)?;
    // No test images, no test figures (an accuracy of 0/0 would print as 0.00%).
    let test_accuracy = |model: &mut dyn Module| -> Result<Option<f64>, TrainError> {
        if test_set.is_empty() {
            return Ok(None);
        }
        Ok(Some(evaluate(model, &test_set, EVAL_BATCH)?.accuracy))
    };
    if test_set.is_empty() {
        println!(
            "no test images in {}: no test figures",
            files.test_images.path.display()
        );
    }
    let before = test_accuracy(model.as_mut())?;

    match args.freeze {
        Freeze::None => {}
        Freeze::Conv => model.set_frozen_where(true, &|_, m| {
            m.is::<Conv2d>() || m.is::<Conv2dBlock>() || m.is::<BatchNorm2d>()
        }),
        Freeze::AllButHead => {
            model.freeze("");
            model.unfreeze(&head);
        }
    }
    let s = model.summary(&[c, h, w]);
    println!(
        "freeze {:?}: {} of {} parameters trainable",
        args.freeze,
        s.trainable_params(),
        s.total_params()
    );

    let scratch = args.compare_scratch.then(|| {
        let mut fresh = model.clone();
        fresh.reinitialize(args.seed);
        fresh
    });
    train(model.as_mut(), &train_set, &args)?;
    if let (Some(before), Some(after)) = (before, test_accuracy(model.as_mut())?) {
        println!(
            "fine-tuned:   test accuracy {:.2}% before, {:.2}% after",
            100.0 * before,
            100.0 * after
        );
    }

    if let Some(mut scratch) = scratch {
        train(scratch.as_mut(), &train_set, &args)?;
        if let Some(accuracy) = test_accuracy(scratch.as_mut())? {
            println!(
                "from scratch: test accuracy {:.2}% (same architecture, subset and epochs)",
                100.0 * accuracy
            );
        }
    }
    save_model(model.as_ref(), &args.save)?;
    println!("saved {}", args.save.display());
    Ok(())
}
