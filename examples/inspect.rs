//! Look inside a trained model: `cargo run --example inspect -- models/mnist.bin`.
//!
//! Prints the layer table, then writes PNG pictures to `--out` (default
//! `models/inspect`):
//!
//! - `filters_<conv>.png` — every convolution's kernels, at any depth, named by
//!   its dotted name (first layer: one tile per filter; deeper layers: one row per
//!   filter, one tile per input channel);
//! - `features_<conv>.png` — what each convolution outputs for test image `--image`;
//! - `input.png` — that test image, captioned with its label;
//! - `misclassified.png` — up to 64 test images the model gets wrong, captioned
//!   `true→predicted`;
//! - `confusion.png` — the confusion matrix on the test set.
//!
//! What the network sees, on request:
//!
//! - `--saliency N`: `saliency.png`, the first N test images beside what drove their
//!   prediction (saliency, gradient × input, integrated gradients);
//! - `--maximize LAYER[:CHANNEL]`: `maximize_<layer>.png`, inputs optimised from
//!   noise to excite each channel of a module (or one), as Lucid does;
//! - `--top-images LAYER:CHANNEL`: `top_<layer>_<channel>.png`, the 16 test images
//!   that excite that channel most.
//!
//! With `--predict digit.png` it also classifies your own image (any PNG; it is
//! turned gray, inverted if it is dark-on-light, cropped to the digit and framed
//! as MNIST frames its digits, by `data::frame_like_mnist`) and prints the class probabilities.

use std::error::Error;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use ferrocnn::data::{read_image, DataFile, Dataset, Fit, FolderOptions, Image, Normalize, TrainingData};
use ferrocnn::io::{self, DataSpec};
use ferrocnn::nn::{conv_of, Module};
use ferrocnn::ops::softmax_rows;
use ferrocnn::train::{evaluate, predict};
use ferrocnn::viz::{
    save_attributions, save_confusion_matrix, save_conv_filters, save_feature_maps, save_image_grid,
    save_maximized, save_top_images, Maximize,
};
use ndarray::Array4;

mod common;
use common::args::{at_least_one, number, required, unexpected, usage_error, CommandLine, Long, Value};
use common::files::{report_ignored, same_file};
use common::fit::{check_labels, check_memory, describe_tensors, non_finite_tensors, outputs_for};

/// The command line; `HELP` says what each flag does.
#[derive(Debug)]
struct Args {
    model: PathBuf,
    out: PathBuf,
    image: usize,
    data: Option<PathBuf>,
    predict: Option<PathBuf>,
    saliency: Option<usize>,
    maximize: Option<(String, Option<usize>)>,
    top_images: Option<(String, Option<usize>)>,
}

const HELP: &str = "\
Print a model's summary and write its filters, feature maps and mistakes as PNGs

Usage: inspect [OPTIONS] <MODEL>

Arguments:
  <MODEL>
          The model file (written by `--example mnist` or `io::save_model`)

Options:
      --out <OUT>
          Folder for the pictures [default: models/inspect]
      --image <IMAGE>
          Which test image to show feature maps for [default: 0]
      --data <DATA>
          The data whose test set is used: an MNIST-style folder, an image folder or a
          CSV file, as `mnist --data` takes [default: datasets/mnist, or the model's
          input shape and no test pictures if that folder is absent]
      --predict <PREDICT>
          Classify this PNG image and print the class probabilities
      --saliency <N>
          Draw what drove the predictions of the first N test images (saliency.png)
      --maximize <LAYER[:CHANNEL]>
          Draw inputs that excite the channels of module LAYER (all, or CHANNEL), e.g.
          `conv1` or `blocks.0.main.conv1:3` (maximize_<layer>.png)
      --top-images <LAYER:CHANNEL>
          Draw the 16 test images that excite CHANNEL of module LAYER most, e.g.
          `conv2:5` (top_<layer>_<channel>.png)
";

impl Args {
    /// Reads the command line; a mistake is a usage error (exit code 2).
    fn parse() -> Args {
        let mut model = None;
        let mut args = Args {
            model: PathBuf::new(),
            out: PathBuf::from("models/inspect"),
            image: 0,
            data: None,
            predict: None,
            saliency: None,
            maximize: None,
            top_images: None,
        };
        let mut cli = CommandLine::from_env("inspect", HELP);
        while let Some(arg) = cli.next() {
            match arg {
                Long("out") => args.out = cli.path("--out <OUT>"),
                Long("image") => args.image = cli.value("--image <IMAGE>", number),
                Long("data") => args.data = Some(cli.path("--data <DATA>")),
                Long("predict") => args.predict = Some(cli.path("--predict <PREDICT>")),
                Long("saliency") => args.saliency = Some(cli.value("--saliency <N>", at_least_one)),
                Long("maximize") => {
                    args.maximize = Some(cli.value("--maximize <LAYER[:CHANNEL]>", layer_channel))
                }
                Long("top-images") => {
                    args.top_images = Some(cli.value("--top-images <LAYER:CHANNEL>", layer_channel))
                }
                Value(path) if model.is_none() => model = Some(PathBuf::from(path)),
                arg => unexpected(arg),
            }
        }
        args.model = required(model, "<MODEL>");
        args
    }
}

/// `LAYER[:CHANNEL]`: a module's dotted name and, optionally, a channel index.
fn layer_channel(text: &str) -> Result<(String, Option<usize>), String> {
    let (layer, channel) = match text.rsplit_once(':') {
        Some((layer, channel)) => {
            let channel = channel
                .parse::<usize>()
                .map_err(|_| format!("{channel:?} is not a channel number (LAYER:CHANNEL, e.g. conv1:3)"))?;
            (layer, Some(channel))
        }
        None => (text, None),
    };
    if layer.is_empty() {
        return Err("give a module's name, e.g. conv1 or blocks.0.main.conv1".into());
    }
    Ok((layer.to_string(), channel))
}

const DEFAULT_DATA: &str = "datasets/mnist";
/// Test images evaluated at once.
const EVAL_BATCH: usize = 256;

fn main() -> ExitCode {
    let args = Args::parse();
    refuse_to_overwrite_inputs(&args);
    common::exit_code(run(&args))
}

/// A usage error (exit code 2) if an input sits in `--out` under a name the
/// pictures are written to: it would be replaced.
fn refuse_to_overwrite_inputs(args: &Args) {
    let ours = |name: &str| {
        let prefixes = ["filters_", "features_", "maximize_", "top_"];
        ["input.png", "misclassified.png", "confusion.png", "saliency.png"].contains(&name)
            || (name.ends_with(".png") && prefixes.iter().any(|p| name.starts_with(p)))
    };
    let inputs = [("MODEL", Some(&args.model)), ("--predict", args.predict.as_ref())];
    for (what, path) in inputs.into_iter().filter_map(|(w, p)| Some((w, p?))) {
        let dir = path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let name = path.file_name().map(|n| n.to_string_lossy()).unwrap_or_default();
        if ours(&name) && same_file(dir, &args.out) {
            let usage = format!(
                "{what} {} is in --out {}, where inspect writes its pictures, and would be \
                 replaced; give --out another folder",
                path.display(),
                args.out.display()
            );
            usage_error(usage);
        }
    }
}

/// A test set and the files it was read from (for messages).
struct TestSet {
    data: Dataset,
    images: PathBuf,
    labels: PathBuf,
}

/// The test set of `--data`; `None` (with a note) when `--data` is not given and the
/// default folder is absent, so that a model alone can be inspected anywhere.
/// Image folders and CSV files are read as `mnist --data` reads them, at the size
/// and channels of the model's data spec where its file has one.
fn load_test_set(args: &Args, spec: Option<&DataSpec>) -> Result<Option<TestSet>, Box<dyn Error>> {
    let dir = args.data.clone().unwrap_or_else(|| PathBuf::from(DEFAULT_DATA));
    let is_idx = dir.is_dir() && DataFile::find(&dir, "t10k-images-idx3-ubyte", "test images").is_ok();
    if args.data.is_some() && !is_idx {
        let options = FolderOptions {
            size: spec.map(|s| (s.input.1, s.input.2)),
            channels: spec.map(|s| s.input.0).filter(|c| *c == 1 || *c == 3),
            ..FolderOptions::default()
        };
        let data = TrainingData::load_with(&dir, 0, &options)?;
        println!("data: {}; {}", data.found, data.evaluation);
        return Ok(Some(TestSet {
            data: data.test,
            images: dir.clone(),
            labels: dir,
        }));
    }
    let found = DataFile::find(&dir, "t10k-images-idx3-ubyte", "test images").and_then(|images| {
        Ok((
            images,
            DataFile::find(&dir, "t10k-labels-idx1-ubyte", "test labels")?,
        ))
    });
    let (images, labels) = match found {
        Ok(files) => files,
        Err(e) if args.data.is_none() => {
            eprintln!("note: no dataset ({e}); assuming the model's input shape, skipping feature maps and mistakes");
            return Ok(None);
        }
        Err(e) => return Err(e.into()),
    };
    report_ignored([&images, &labels]);
    let test = Dataset::from_idx(&images.path, &labels.path)?;
    if test.is_empty() {
        eprintln!(
            "note: {} holds no images: skipping feature maps and mistakes",
            images.path.display()
        );
    }
    Ok(Some(TestSet {
        data: test,
        images: images.path,
        labels: labels.path,
    }))
}

fn run(args: &Args) -> Result<(), Box<dyn Error>> {
    let (model, spec) = io::load_model_and_data(&args.model)?;
    let broken = non_finite_tensors(model.as_ref());
    if !broken.is_empty() {
        // Worth inspecting (that is what this program is for), but say why it looks odd.
        eprintln!(
            "warning: {}: NaN or infinite values in {}; outputs that depend on them are NaN",
            args.model.display(),
            describe_tensors(&broken)
        );
    }
    // Read the PNG to classify first, so a bad file fails before the slow part.
    let user_image = args.predict.as_ref().map(read_image).transpose()?;

    // The data gives the input shape and the test images; without it, assume MNIST.
    let data = load_test_set(args, spec.as_ref())?;
    // Images are normalised as the model's training images were (its file says how;
    // a file from before that kept it was trained on MNIST's statistics).
    let normalize = spec.as_ref().map_or(Normalize::MNIST, |s| s.normalize.clone());
    let data = data.map(|set| TestSet {
        data: match normalize.fits(set.data.image_shape().0) {
            true => set.data.with_normalization(normalize.clone()),
            false => set.data,
        },
        ..set
    });
    // Without data, the shape the model file says it was trained on, else MNIST's.
    let assumed = spec.as_ref().map_or((1, 28, 28), |s| s.input);
    let (c, h, w) = data.as_ref().map_or(assumed, |set| set.data.image_shape());
    // Everything the model and the data must agree on, checked before any picture
    // is written.
    match &data {
        Some(set) => {
            let outputs = outputs_for(model.as_ref(), &args.model, &set.data, &set.images)?;
            check_labels(&set.data, &set.labels, &args.model, outputs)?;
        }
        None => {
            model.output_shape(&[c, h, w]).map_err(|e| {
                format!(
                    "the model {} does not take {c}×{h}×{w} images, which inspect assumes without a \
                     dataset: {e}; give --data with images like the ones it was trained on",
                    args.model.display()
                )
            })?;
        }
    }
    // The summary and the feature maps run one image, the evaluation a batch.
    check_memory(model.as_ref(), &args.model, (c, h, w), EVAL_BATCH, false)?;
    let test = data.as_ref().map(|set| &set.data).filter(|test| !test.is_empty());
    if let Some(test) = test
        && args.image >= test.len()
    {
        let n = test.len();
        return Err(format!("--image {}: the test set has {n} images (0..{n})", args.image).into());
    }
    println!("{}", model.try_summary(&[c, h, w])?);

    let mut written = Vec::new();
    for (name, module) in model.named_modules() {
        if let Some(conv) = conv_of(module) {
            let (_, in_channels, kh, kw) = conv.kernel_shape();
            // First-layer kernels are few: show them large. Deeper ones are many.
            let target = if in_channels == 1 || in_channels == 3 {
                48
            } else {
                18
            };
            let path = args.out.join(format!("filters_{name}.png"));
            save_conv_filters(conv, &path, (target / kh.max(kw)).max(1))?;
            written.push(path);
        }
    }

    if let Some(test) = test {
        let n = args.image;
        let x = test.to_array(n..n + 1);
        written.extend(save_feature_maps(model.as_ref(), &x, &args.out)?);
        let label = test.class_name(test.label(n));
        let input_path = args.out.join("input.png");
        save_image_grid(&[(test.image(n), &label)], (h, w), 1, 4, &input_path)?;
        written.push(input_path);

        let evaluation = evaluate(model.clone().as_mut(), test, EVAL_BATCH)?;
        let wrong: Vec<usize> = (0..test.len())
            .filter(|&i| evaluation.predictions[i] != test.label(i))
            .collect();
        println!(
            "test accuracy {:.2}% ({} of {} wrong)",
            100.0 * evaluation.accuracy,
            wrong.len(),
            test.len()
        );
        let wrong: Vec<(usize, String)> = wrong
            .into_iter()
            .take(64)
            .map(|i| {
                let (truth, predicted) = (test.label(i), evaluation.predictions[i]);
                (
                    i,
                    format!("{}→{}", test.class_name(truth), test.class_name(predicted)),
                )
            })
            .collect();
        if !wrong.is_empty() {
            let images: Vec<(&[u8], &str)> = wrong
                .iter()
                .map(|(i, caption)| (test.image(*i), caption.as_str()))
                .collect();
            let path = args.out.join("misclassified.png");
            save_image_grid(&images, (h, w), 8, 2, &path)?;
            written.push(path);
        }
        let path = args.out.join("confusion.png");
        save_confusion_matrix(&evaluation.confusion, &path)?;
        written.push(path);
        if let Some(n) = args.saliency {
            let n = n.min(test.len());
            let x = test.to_array(0..n);
            let predicted = &evaluation.predictions[..n];
            let captions: Vec<String> = (0..n)
                .map(|i| {
                    format!(
                        "{}→{}",
                        test.class_name(test.label(i)),
                        test.class_name(predicted[i])
                    )
                })
                .collect();
            let path = args.out.join("saliency.png");
            let black: Vec<f32> = (0..c).map(|ch| test.normalization().apply(ch, 0.0)).collect();
            save_attributions(model.as_ref(), x.view(), predicted, &captions, &black, &path)?;
            written.push(path);
        }
        if let Some((layer, channel)) = &args.top_images {
            let channel = channel.ok_or("--top-images needs LAYER:CHANNEL, e.g. conv2:5")?;
            let path = args.out.join(format!("top_{layer}_{channel}.png"));
            let x = test.to_array(0..test.len());
            save_top_images(model.as_ref(), layer, channel, x.view(), 16, &path)?;
            written.push(path);
        }
    }
    if let Some((layer, channel)) = &args.maximize {
        // Pixels stay between black and white, in every channel's normalisation.
        let (black, white) = (0..c)
            .map(|ch| normalize.range(ch))
            .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), (b, w)| {
                (lo.min(b), hi.max(w))
            });
        let maximize = Maximize {
            range: Some((black, white)),
            ..Maximize::default()
        };
        let channels = match channel {
            Some(c) => vec![*c],
            None => (0..channel_count(model.as_ref(), layer, (c, h, w))?).collect(),
        };
        let path = args.out.join(format!("maximize_{layer}.png"));
        let started = std::time::Instant::now();
        save_maximized(model.as_ref(), layer, &channels, (c, h, w), &maximize, &path)?;
        println!(
            "maximised {} channel(s) of {layer} in {:.1} s",
            channels.len(),
            started.elapsed().as_secs_f64()
        );
        written.push(path);
    }

    println!("wrote:");
    for path in &written {
        println!("  {}", path.display());
    }

    if let (Some(path), Some(image)) = (&args.predict, user_image) {
        let spec = DataSpec {
            input: (c, h, w),
            classes: spec.map(|s| s.classes).unwrap_or_default(),
            normalize,
        };
        classify(model.as_ref(), path, &image, &spec)?;
    }
    Ok(())
}

/// The number of channels module `layer` outputs, from the summary's shapes.
fn channel_count(
    model: &dyn Module,
    layer: &str,
    (c, h, w): (usize, usize, usize),
) -> Result<usize, Box<dyn Error>> {
    let summary = model.try_summary(&[c, h, w])?;
    let Some(row) = summary.rows.iter().find(|r| r.name == layer) else {
        let names: Vec<&str> = summary.rows.iter().map(|r| r.name.as_str()).collect();
        return Err(format!(
            "--maximize {layer}: the model has no module of that name; its modules are: {}",
            names.join(", ")
        )
        .into());
    };
    match row.output_shape.as_deref() {
        Some([channels, ..]) => Ok(*channels),
        _ => Err(format!("--maximize {layer}: its output is not observed; pick its container").into()),
    }
}

/// Classifies one gray image and prints the probabilities, most likely first.
fn classify(model: &dyn Module, path: &Path, image: &Image, spec: &DataSpec) -> Result<(), Box<dyn Error>> {
    let (c, h, w) = spec.input;
    println!("\n{}: {}×{}", path.display(), image.width, image.height);
    let x = match c {
        1 => {
            let (pixels, inverted) = common::digit::like_mnist(image, (h, w), true);
            if let Some(mean) = inverted {
                println!("mean brightness {mean:.0} > 127: inverted to white-on-black like MNIST");
            }
            println!(
                "framed as MNIST frames its digits: scaled into a 20×20 box, centred by mass in {w}×{h}"
            );
            pixels
                .iter()
                .map(|&p| spec.normalize.apply(0, p as f32))
                .collect()
        }
        _ => {
            println!("scaled to cover {w}×{h} and cropped to it, as the training images were");
            spec.input_of(image, Fit::Crop)?
        }
    };
    let x = Array4::from_shape_vec((1, c, h, w), x)?;
    let logits = predict(model.clone_module().as_mut(), x.view().into_dyn());
    let probs = softmax_rows(&logits);
    let mut ranked: Vec<(usize, f32)> = probs.row(0).iter().copied().enumerate().collect();
    ranked.sort_by(|a, b| b.1.total_cmp(&a.1));
    println!("class  probability");
    for (class, p) in ranked {
        let bar = "#".repeat((p * 40.0).round() as usize);
        let name = spec.class_name(class);
        println!("{name:>5}  {p:.4}  {bar}");
    }
    Ok(())
}
