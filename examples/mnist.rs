//! Train a digit classifier on MNIST: `cargo run --example mnist`.
//!
//! Reads the IDX files in `datasets/mnist` (or `--data PATH`: another MNIST-style
//! folder, an image folder of class subfolders, or a CSV file; image size, channels
//! and classes come from the data), trains, evaluates on the test set after every
//! epoch, prints a confusion matrix and saves the model with its class names and
//! normalisation.
//! `cargo run --example mnist -- --help` lists the knobs.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use ferrocnn::data::{Augment, Fit, FolderOptions, TrainingData};
use ferrocnn::io::{load_checkpoint, save_checkpoint, Checkpoint, DataSpec, ModelRecord};
use ferrocnn::metrics::{peak_resident_mib, ConfusionMatrix};
use ferrocnn::nn::{Module, Registry};
use ferrocnn::optim::{Adam, AdamConfig, AdamW, AdamWConfig, LrSchedule, Optimizer, SGDConfig, SGD};
use ferrocnn::profile::Profiler;
use ferrocnn::train::{evaluate, fit, EpochStats, FitOptions, Progress, TrainError};
use ferrocnn::{io, zoo};

mod common;
use common::args::{
    at_least_one, channels, image_size, learning_rate, number, one_of, port, unexpected, usage_error,
    CommandLine, Long,
};
use common::files::same_file;

// The explorer page's server (examples/explore), for `--explore`.
#[path = "explore/server/mod.rs"]
#[allow(dead_code)]
mod server;

#[derive(Clone, Copy, Debug)]
enum Net {
    /// Two conv + batch-norm blocks and a 128-unit hidden layer (≥ 99.3%).
    Default,
    /// The classic Keras MNIST convnet.
    R1,
    /// The net of PyTorch's examples/mnist.
    R2,
    /// A small ResNet: six basic blocks with batch norm, 16 to 64 channels.
    R3,
}

/// How image-folder images of another shape are brought to `--image-size`.
#[derive(Clone, Copy, Debug)]
enum FitArg {
    /// Scale to cover the size keeping the aspect ratio, then cut the centre.
    Crop,
    /// Scale each side to the size.
    Stretch,
}

#[derive(Clone, Copy, Debug)]
enum Opt {
    Sgd,
    Adam,
    Adamw,
}

/// The flags that set the training plan (the net, how long and how it learns, on
/// what): `--resume` goes on with the checkpoint's, so they are refused beside it
/// rather than ignored. `--seed` is not among them: it also draws the held-out set
/// of a folder without a test set, which a resumed run draws again.
const PLAN_FLAGS: [&str; 8] = [
    "--net",
    "--epochs",
    "--batch-size",
    "--lr",
    "--optimizer",
    "--augment",
    "--no-augment",
    "--limit-train",
];

/// The command line; `HELP` says what each flag does.
#[derive(Debug)]
struct Args {
    data: PathBuf,
    image_size: Option<(usize, usize)>,
    fit: FitArg,
    channels: Option<usize>,
    net: Net,
    epochs: Option<usize>,
    batch_size: Option<usize>,
    lr: Option<f64>,
    optimizer: Opt,
    seed: u64,
    threads: Option<usize>,
    /// `--augment` or `--no-augment`, whichever came last.
    augment: Option<bool>,
    limit_train: Option<usize>,
    save: Option<PathBuf>,
    metrics_json: Option<PathBuf>,
    export_safetensors: Option<PathBuf>,
    checkpoint: Option<PathBuf>,
    profile: bool,
    resume: Option<PathBuf>,
    explore: Option<u16>,
}

const HELP: &str = "\
Train a CNN on an MNIST-style dataset

Usage: mnist [OPTIONS]

Options:
      --data <DATA>
          Folder with train-images-idx3-ubyte[.gz], train-labels-idx1-ubyte[.gz], t10k-…;
          or an image folder, DIR/train/<class>/*.png|jpg beside DIR/test/<class>/… (or
          val/), or DIR/<class>/… alone; or a CSV file in Kaggle's layout (label,pixel0,…;
          a labelled test.csv beside it is the test set). Without a test set, 10% is
          held out for validation [default: datasets/mnist]
      --image-size <HxW>
          Image folders: bring every image to HxW (or one side for a square)
          [default: the most common size among the images]
      --fit <FIT>
          Image folders: how an image of another shape is brought to the size
          [default: crop] [possible values: crop, stretch]
          - crop:    Scale to cover the size keeping the aspect ratio, then cut the centre
          - stretch: Scale each side to the size
      --channels <CHANNELS>
          Image folders: 1 (gray) or 3 (RGB) [default: 1 if every image is gray, else 3]
      --net <NET>
          Which network to train [default: default] [possible values: default, r1, r2, r3]
          - default: Two conv + batch-norm blocks and a 128-unit hidden layer (≥ 99.3%)
          - r1:      The classic Keras MNIST convnet
          - r2:      The net of PyTorch's examples/mnist
          - r3:      A small ResNet: six basic blocks with batch norm, 16 to 64 channels
      --epochs <EPOCHS>
          Number of epochs, at least 1 [default: 6 for the default net, 3 for r1, 1 for r2
          and r3]
      --batch-size <BATCH_SIZE>
          Batch size, at least 1 [default: 128, 64 for r2]
      --lr <LR>
          Learning rate, a finite number above 0 [default: 3e-3 with a one-cycle schedule
          for the default net, 1e-3 constant for r1/r2/r3]
      --optimizer <OPTIMIZER>
          Optimizer [default: adam] [possible values: sgd, adam, adamw]
      --seed <SEED>
          Seed of initialization, shuffling, dropout and augmentation [default: 1]
      --threads <THREADS>
          Worker threads, at least 1 [default: all cores]
      --augment
          Augment training images with random shifts (±2 px) and rotations (±10°)
          [default: on for the default net, off for r1/r2/r3]
      --no-augment
          Do not augment training images
      --limit-train <LIMIT_TRAIN>
          Train on only the first N training images (at least 1)
      --save <SAVE>
          Where to save the trained model [default: models/mnist.bin for the default net,
          models/mnist-r1.bin etc. for the reference nets, so that benchmarking a
          reference net does not replace the shipped model; with --resume, the
          checkpoint's path with .bin]
      --metrics-json <METRICS_JSON>
          Write final figures (accuracy, loss, epoch times, parameters, peak memory) as JSON
      --export-safetensors <EXPORT_SAFETENSORS>
          Also export the weights as safetensors (for PyTorch or numpy) to this path
      --checkpoint <CHECKPOINT>
          Checkpoint written after every epoch and on Ctrl-C [default: the --save path
          with .ckpt]
      --profile
          Time the forward pass per layer type and the backward pass per op; print a table
      --resume <RESUME>
          Continue the run saved in this checkpoint (its net, optimizer and plan are used:
          --net, --epochs, --batch-size, --lr, --optimizer, --[no-]augment and
          --limit-train cannot be given with it)
      --explore [<PORT>]
          Serve the explorer page on 127.0.0.1:PORT while training: live loss and accuracy
          curves, the first layer's filters as they change, and drawings run through the
          model as it learns [PORT: 8080; 0 picks a free one]
";

impl Args {
    /// Reads the command line; a mistake is a usage error (exit code 2).
    fn parse() -> Args {
        let mut args = Args {
            data: PathBuf::from("datasets/mnist"),
            image_size: None,
            fit: FitArg::Crop,
            channels: None,
            net: Net::Default,
            epochs: None,
            batch_size: None,
            lr: None,
            optimizer: Opt::Adam,
            seed: 1,
            threads: None,
            augment: None,
            limit_train: None,
            save: None,
            metrics_json: None,
            export_safetensors: None,
            checkpoint: None,
            profile: false,
            resume: None,
            explore: None,
        };
        let nets = [
            ("default", Net::Default),
            ("r1", Net::R1),
            ("r2", Net::R2),
            ("r3", Net::R3),
        ];
        let fits = [("crop", FitArg::Crop), ("stretch", FitArg::Stretch)];
        let optimizers = [("sgd", Opt::Sgd), ("adam", Opt::Adam), ("adamw", Opt::Adamw)];
        let mut cli = CommandLine::from_env("mnist", HELP);
        let mut plan_flag = None;
        while let Some(arg) = cli.next() {
            if let Long(name) = &arg {
                plan_flag = plan_flag.or(PLAN_FLAGS.iter().find(|f| f[2..] == **name));
            }
            match arg {
                Long("data") => args.data = cli.path("--data <DATA>"),
                Long("image-size") => args.image_size = Some(cli.value("--image-size <HxW>", image_size)),
                Long("fit") => args.fit = cli.value("--fit <FIT>", |t| one_of(t, &fits)),
                Long("channels") => args.channels = Some(cli.value("--channels <CHANNELS>", channels)),
                Long("net") => args.net = cli.value("--net <NET>", |t| one_of(t, &nets)),
                Long("epochs") => args.epochs = Some(cli.value("--epochs <EPOCHS>", at_least_one)),
                Long("batch-size") => {
                    args.batch_size = Some(cli.value("--batch-size <BATCH_SIZE>", at_least_one))
                }
                Long("lr") => args.lr = Some(cli.value("--lr <LR>", learning_rate)),
                Long("optimizer") => {
                    args.optimizer = cli.value("--optimizer <OPTIMIZER>", |t| one_of(t, &optimizers))
                }
                Long("seed") => args.seed = cli.value("--seed <SEED>", number),
                Long("threads") => args.threads = Some(cli.value("--threads <THREADS>", at_least_one)),
                // The two override each other: the last one given wins.
                Long("augment") => args.augment = Some(true),
                Long("no-augment") => args.augment = Some(false),
                Long("limit-train") => {
                    args.limit_train = Some(cli.value("--limit-train <LIMIT_TRAIN>", at_least_one))
                }
                Long("save") => args.save = Some(cli.path("--save <SAVE>")),
                Long("metrics-json") => args.metrics_json = Some(cli.path("--metrics-json <METRICS_JSON>")),
                Long("export-safetensors") => {
                    args.export_safetensors = Some(cli.path("--export-safetensors <EXPORT_SAFETENSORS>"))
                }
                Long("checkpoint") => args.checkpoint = Some(cli.path("--checkpoint <CHECKPOINT>")),
                Long("profile") => args.profile = cli.flag("--profile"),
                Long("resume") => args.resume = Some(cli.path("--resume <RESUME>")),
                Long("explore") => {
                    let port = cli.optional_value("--explore [<PORT>]", port);
                    args.explore = Some(port.unwrap_or(8080));
                }
                arg => unexpected(arg),
            }
        }
        if args.resume.is_some()
            && let Some(flag) = plan_flag
        {
            usage_error(format!(
                "{flag} cannot be combined with --resume: the run goes on with the \
                 checkpoint's net, optimizer and plan"
            ));
        }
        args
    }
}

/// The test figures printed after training.
struct Evaluated {
    loss: f64,
    accuracy: f64,
    confusion: ConfusionMatrix,
}

/// A model, its training plan and its optimizer.
type Run = (Box<dyn Module>, FitOptions, Box<dyn Optimizer>);

/// A fresh model, plan and optimizer from the command line.
fn new_run(
    args: &Args,
    (c, h, w): (usize, usize, usize),
    classes: usize,
    train_len: usize,
) -> Result<Run, String> {
    let input = (c, h, w);
    let (model, epochs, batch_size, lr, one_cycle) = match args.net {
        Net::Default => (
            zoo::try_mnist_default(input, classes, args.seed),
            6,
            128,
            3e-3,
            true,
        ),
        Net::R1 => (zoo::try_r1(input, classes, args.seed), 3, 128, 1e-3, false),
        Net::R2 => (zoo::try_r2(input, classes, args.seed), 1, 64, 1e-3, false),
        Net::R3 => (zoo::try_r3(input, classes, args.seed), 1, 128, 1e-3, false),
    };
    let name = format!("{:?}", args.net).to_lowercase();
    let model = model.map_err(|e| format!("--net {name} does not fit the data: {e}"))?;
    let augment = args.augment.unwrap_or(matches!(args.net, Net::Default));
    let epochs = args.epochs.unwrap_or(epochs);
    let batch_size = args.batch_size.unwrap_or(batch_size);
    let lr = args.lr.unwrap_or(lr);
    let optimizer: Box<dyn Optimizer> = match args.optimizer {
        Opt::Sgd => Box::new(SGD::new(SGDConfig {
            lr,
            momentum: 0.9,
            nesterov: true,
            ..Default::default()
        })),
        Opt::Adam => Box::new(Adam::new(AdamConfig {
            lr,
            ..Default::default()
        })),
        Opt::Adamw => Box::new(AdamW::new(AdamWConfig {
            lr,
            ..Default::default()
        })),
    };
    let steps = epochs * train_len.div_ceil(batch_size);
    let options = FitOptions {
        epochs,
        batch_size,
        seed: args.seed,
        augment: augment.then_some(Augment {
            max_shift: 2,
            max_rotation_degrees: 10.0,
        }),
        schedule: one_cycle.then(|| LrSchedule::one_cycle(lr, steps)),
        progress: Progress::Auto,
        ..Default::default()
    };
    Ok((Box::new(model), options, optimizer))
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> Result<ExitCode, Box<dyn std::error::Error>> {
    // Process-wide allocator tuning: a binary's choice, not the library's.
    ferrocnn::runtime::tune_for_training();
    if let Some(threads) = args.threads {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build_global()?;
    }

    // Data: what is at --data, its sizes and classes.
    let folder_options = FolderOptions {
        size: args.image_size,
        fit: match args.fit {
            FitArg::Crop => Fit::Crop,
            FitArg::Stretch => Fit::Stretch,
        },
        channels: args.channels,
    };
    let load_start = Instant::now();
    let data = TrainingData::load_with(&args.data, args.seed, &folder_options)?;
    data.notes.iter().for_each(|note| println!("{note}"));
    let TrainingData {
        mut train, mut test, ..
    } = data;
    if let Some(n) = args.limit_train {
        train = train.take(n.min(train.len()));
    }
    let (c, h, w) = train.image_shape();
    let classes = train.num_classes().max(test.num_classes());
    println!(
        "data: {}: {} training images of {c}×{h}×{w}, {classes} classes; {} {} (read in {:.1} s)",
        data.found,
        train.len(),
        test.len(),
        data.evaluation,
        load_start.elapsed().as_secs_f64()
    );

    // A resumed run saves where the interrupted one would have (its checkpoint is
    // that path with `.ckpt`).
    let save = args
        .save
        .clone()
        .unwrap_or_else(|| match (&args.resume, args.net) {
            (Some(checkpoint), _) => checkpoint.with_extension("bin"),
            (None, Net::Default) => PathBuf::from("models/mnist.bin"),
            (None, net) => PathBuf::from(format!("models/mnist-{}.bin", format!("{net:?}").to_lowercase())),
        });
    let checkpoint_path = args
        .checkpoint
        .clone()
        .unwrap_or_else(|| save.with_extension("ckpt"));
    // Saving the model over its own checkpoint (or the reverse) would lose one.
    if same_file(&checkpoint_path, &save) {
        let usage = format!(
            "the model and the checkpoint would both be {}; give --checkpoint another path",
            save.display()
        );
        usage_error(usage);
    }
    let (mut model, mut optimizer, mut options, mut history, meta) = match &args.resume {
        Some(path) => {
            let ckpt = load_checkpoint(path)?;
            println!(
                "resuming {} at epoch {}, batch {} ({})",
                path.display(),
                ckpt.options.start_epoch,
                ckpt.options.start_batch,
                ckpt.meta.get("net").map_or("?", String::as_str)
            );
            if let Some(n) = ckpt.meta.get("limit_train").and_then(|n| n.parse::<usize>().ok()) {
                train = train.take(n.min(train.len()));
            }
            let (model, optimizer) = ckpt
                .restore(&Registry::new())
                .map_err(|e| format!("{}: {e}", path.display()))?;
            // The run goes on with the statistics it started with.
            let spec = ckpt
                .model
                .data()
                .map_err(|e| format!("{}: {e}", path.display()))?;
            if let Some(spec) = spec.filter(|s| s.normalize.fits(c)) {
                train = train.with_normalization(spec.normalize.clone());
                test = test.with_normalization(spec.normalize);
            }
            (model, optimizer, ckpt.options, ckpt.history, ckpt.meta)
        }
        None => {
            let (model, options, optimizer) = new_run(&args, (c, h, w), classes, train.len())?;
            let meta = BTreeMap::from([
                ("net".to_string(), format!("{:?}", args.net).to_lowercase()),
                ("limit_train".to_string(), train.len().to_string()),
            ]);
            (model, optimizer, options, Vec::new(), meta)
        }
    };
    // A resumed model may not fit this data: say so before anything runs.
    let summary = model.try_summary(&[c, h, w]).map_err(|e| {
        format!(
            "the model does not fit the {c}×{h}×{w} images of {}: {e}",
            args.data.display()
        )
    })?;
    println!("{summary}");

    // Ctrl-C stops after the current step and writes a checkpoint to resume from.
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    // A second Ctrl-C exits at once (saves are atomic, so no file is left half written).
    ctrlc::set_handler(move || {
        if flag.swap(true, Ordering::SeqCst) {
            std::process::exit(130);
        }
    })?;
    options.stop = Some(stop.clone());

    let live = match args.explore {
        Some(port) => {
            let (live, hook) = explore(port, model.as_ref(), &train, &test, options.epochs)?;
            options.on_step = Some(hook);
            Some(live)
        }
        None => None,
    };

    let profiler = args.profile.then(Profiler::new);
    options.profiler = profiler.clone();
    let start = Instant::now();
    // What the model is trained for, saved with it: shape, class names, statistics.
    let mut spec = DataSpec::of(&train);
    spec.classes = (0..classes).map(|c| train.class_name(c)).collect();
    let save_checkpoint_at =
        |model: &dyn Module, optimizer: &dyn Optimizer, history: &[EpochStats], position| {
            let (start_epoch, start_batch, start_totals) = position;
            let options = FitOptions {
                start_epoch,
                start_batch,
                start_totals,
                stop: None,
                profiler: None,
                ..options.clone()
            };
            let ckpt = Checkpoint {
                model: ModelRecord::of(model).with_data(&spec)?,
                optimizer: optimizer.state(),
                options,
                history: history.to_vec(),
                meta: meta.clone(),
            };
            save_checkpoint(&ckpt, &checkpoint_path)
        };
    let mut done = history.clone();
    let result = fit(
        model.as_mut(),
        optimizer.as_mut(),
        &train,
        (!test.is_empty()).then_some(&test),
        &options,
        |stats, model, optimizer| {
            if let Some(live) = &live {
                live.epoch(stats);
            }
            done.push(stats.clone());
            let next = (stats.epoch + 1, 0, (0.0, 0, 0));
            save_checkpoint_at(model, optimizer, &done, next).map_err(|e| e.to_string())
        },
    );
    match result {
        Ok(new) => history.extend(new),
        Err(TrainError::Interrupted {
            epoch,
            batches_done,
            totals,
        }) => {
            save_checkpoint_at(
                model.as_ref(),
                optimizer.as_ref(),
                &done,
                (epoch, batches_done, totals),
            )?;
            let path = checkpoint_path.display();
            println!("\ninterrupted: saved {path}; continue with --resume {path}");
            return Ok(ExitCode::from(130));
        }
        Err(e @ TrainError::Numerical { .. }) => {
            let lr = optimizer.lr();
            return Err(format!("{e}\nthe model was not saved; try a smaller --lr than {lr}").into());
        }
        Err(e) => return Err(e.into()),
    }
    let total = start.elapsed().as_secs_f64();

    if let Some(profiler) = &profiler {
        println!("\nwhere the training time went:\n{}", profiler.report());
    }
    // No test images, no test figures (an accuracy of 0/0 would print as 0.00%).
    // `fit` evaluated the trained model on the test set after its last epoch; a
    // resumed run with no epoch left to train evaluates here.
    let last_evaluation = history
        .last()
        .and_then(|s| Some((s.eval?, s.confusion.clone()?)))
        .map(|((loss, accuracy), confusion)| Evaluated {
            loss,
            accuracy,
            confusion,
        });
    let result = match (test.is_empty(), last_evaluation) {
        (true, _) => None,
        (false, Some(last)) => Some(last),
        (false, None) => {
            let e = evaluate(model.as_mut(), &test, 1000)?;
            Some(Evaluated {
                loss: e.loss,
                accuracy: e.accuracy,
                confusion: e.confusion,
            })
        }
    };
    match &result {
        Some(result) => {
            println!(
                "\nconfusion matrix on the {} test images:\n{}",
                test.len(),
                result.confusion
            );
            if let Some(names) = train.class_names() {
                let legend: Vec<String> = names
                    .iter()
                    .enumerate()
                    .map(|(i, n)| format!("{i} {n}"))
                    .collect();
                println!("classes: {}", legend.join(", "));
            }
            println!(
                "test accuracy {:.2}%  loss {:.4}  ({total:.1} s in all)",
                100.0 * result.accuracy,
                result.loss
            );
        }
        None => println!(
            "no test images in {}: no test figures ({total:.1} s in all)",
            args.data.display()
        ),
    }

    io::save_model_with_data(model.as_ref(), &spec, &save)?;
    println!(
        "saved the model to {} (checkpoint: {})",
        save.display(),
        checkpoint_path.display()
    );
    // The shipped model's curves keep their name; other runs get their own file.
    let curves = match save.file_stem().and_then(|s| s.to_str()) {
        Some("mnist") | None => save.with_file_name("training_curves.png"),
        Some(stem) => save.with_file_name(format!("{stem}_training_curves.png")),
    };
    ferrocnn::viz::save_training_curves(&history, &curves)?;
    println!("training curves: {}", curves.display());
    if let Some(path) = &args.export_safetensors {
        io::export_safetensors(model.as_ref(), path)?;
        println!("exported the weights to {}", path.display());
    }

    if let Some(path) = &args.metrics_json {
        let epochs: Vec<_> = history
            .iter()
            .map(|e| serde_json::json!({"epoch": e.epoch, "seconds": e.seconds, "images_per_s": e.images_per_sec, "train_loss": e.train_loss, "test_accuracy": e.eval.map(|x| x.1)}))
            .collect();
        let json = serde_json::json!({
            "net": format!("{:?}", args.net).to_lowercase(),
            "test_accuracy": result.as_ref().map(|r| r.accuracy),
            "test_loss": result.as_ref().map(|r| r.loss),
            "epochs": epochs,
            "total_seconds": total,
            "parameters": model.num_parameters(),
            "peak_rss_mib": peak_resident_mib(),
            "threads": rayon::current_num_threads(),
        });
        std::fs::write(path, serde_json::to_string_pretty(&json)?)?;
    }
    if let Some(live) = &live {
        live.finish();
        println!("training finished; the explorer page stays up until Ctrl-C");
        while !stop.load(Ordering::SeqCst) {
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `--explore`: serves the explorer page on a copy of the model being trained, and
/// gives the step hook that keeps the page's figures and copy current.
fn explore(
    port: u16,
    model: &dyn Module,
    train: &ferrocnn::data::Dataset,
    test: &ferrocnn::data::Dataset,
    epochs: usize,
) -> Result<(Arc<server::live::Live>, ferrocnn::train::StepHook), String> {
    let test = (!test.is_empty()).then(|| test.clone());
    let mut app = server::App::new(
        "training".into(),
        model.clone_module(),
        train.image_shape(),
        train.normalization().clone(),
        train.class_names().map(<[String]>::to_vec),
        test,
    )
    .map_err(|e| format!("--explore: {e}"))?;
    let live = server::live::Live::new(epochs);
    app.live = Some(live.clone());
    let server = server::http::bind(port).map_err(|e| format!("--explore: {e}"))?;
    println!("explorer page: http://{}/", server.addr);
    let app = Arc::new(app);
    server.spawn(app.clone());
    Ok((live.clone(), live.hook(&app)))
}
