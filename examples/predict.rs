//! Predict with a trained model, writing a CSV:
//!
//! ```sh
//! cargo run --example predict -- models/mnist.bin test.csv --out submission.csv
//! cargo run --example predict -- models/mnist.bin digits/ one.png --out predictions.csv
//! ```
//!
//! - A `.csv` of images in Kaggle's digit-recognizer layout (its `test.csv`, pixels
//!   only, or a labelled file) gives Kaggle's submission form: `ImageId,Label`, with
//!   ids from 1 in the file's order.
//! - PNG and JPEG files, and folders of them (every `*.png`/`*.jpg` inside, at any
//!   depth, sorted by path), give `file,predicted class,probability`, the class by
//!   its name when the model file keeps class names (a model trained on an image
//!   folder does).
//!
//! Images are prepared as the model's training images were, from what its file
//! says (`io::DataSpec`: channels, size, normalisation; a file without it is taken
//! for a 28×28 MNIST model). `--fit` chooses how an image reaches that size:
//! `mnist` turns it gray, inverts a dark digit on light paper and frames it as
//! MNIST frames its digits (`data::frame_like_mnist`), as `inspect --predict` does;
//! `crop` and `stretch` resize it as `mnist --data` resized the training images.
//! By default (`auto`), for a model of 1×28×28 images, an image is made gray and
//! white on black and framed like MNIST unless it is 28×28 already (framed, then);
//! for any other model it is cropped.
//!
//! Without `--out` the CSV goes to standard output. The file is written whole or
//! not at all, and never over an input.

use std::error::Error;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use ferrocnn::data::{image_files, read_csv, read_image, Fit, Image};
use ferrocnn::io::{self, write_atomic, DataSpec};
use ferrocnn::nn::Module;
use ferrocnn::ops::softmax_rows;
use ferrocnn::train::predict;
use ndarray::Array4;

mod common;
use common::args::{missing, one_of, required, unexpected, usage_error, CommandLine, Long, Value};
use common::files::same_file;

/// `--fit`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum FitArg {
    /// For a model of 1×28×28 images: gray and white on black, and framed like
    /// MNIST unless it is 28×28 already; for others, crop.
    Auto,
    /// Gray, white on black, framed as MNIST frames its digits.
    Mnist,
    /// Scale to cover the size keeping the aspect ratio, then cut the centre.
    Crop,
    /// Scale each side to the size.
    Stretch,
}

/// The command line; `HELP` says what each flag does.
#[derive(Debug)]
struct Args {
    model: PathBuf,
    inputs: Vec<PathBuf>,
    out: Option<PathBuf>,
    fit: FitArg,
}

const HELP: &str = "\
Predict the class of images (a Kaggle-style CSV, or PNG files and folders) with a
trained model, and write the predictions as CSV

Usage: predict [OPTIONS] <MODEL> <INPUTS>...

Arguments:
  <MODEL>
          The model file
  <INPUTS>...
          A .csv of images, or PNG/JPEG files and folders of them

Options:
      --out <OUT>
          Where to write the CSV [default: standard output]
      --fit <FIT>
          How an image is brought to the model's input size [default: auto]
          [possible values: auto, mnist, crop, stretch]
          - auto:    For a model of 1×28×28 images: gray and white on black, and framed
                     like MNIST unless it is 28×28 already; for others, crop
          - mnist:   Gray, white on black, framed as MNIST frames its digits
          - crop:    Scale to cover the size keeping the aspect ratio, then cut the centre
          - stretch: Scale each side to the size
";

impl Args {
    /// Reads the command line; a mistake is a usage error (exit code 2).
    fn parse() -> Args {
        let fits = [
            ("auto", FitArg::Auto),
            ("mnist", FitArg::Mnist),
            ("crop", FitArg::Crop),
            ("stretch", FitArg::Stretch),
        ];
        let (mut model, mut inputs, mut out, mut fit) = (None, Vec::new(), None, FitArg::Auto);
        let mut cli = CommandLine::from_env("predict", HELP);
        while let Some(arg) = cli.next() {
            match arg {
                Long("out") => out = Some(cli.path("--out <OUT>")),
                Long("fit") => fit = cli.value("--fit <FIT>", |t| one_of(t, &fits)),
                Value(path) if model.is_none() => model = Some(PathBuf::from(path)),
                Value(path) => inputs.push(PathBuf::from(path)),
                arg => unexpected(arg),
            }
        }
        let model = required(model, "<MODEL> <INPUTS>...");
        if inputs.is_empty() {
            missing("<INPUTS>...");
        }
        Args {
            model,
            inputs,
            out,
            fit,
        }
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    if let Some(out) = &args.out {
        let inputs = std::iter::once(&args.model).chain(&args.inputs);
        if let Some(clash) = inputs.into_iter().find(|input| same_file(input, out)) {
            let usage = format!(
                "--out {} is an input ({}); give another file",
                out.display(),
                clash.display()
            );
            usage_error(usage);
        }
    }
    common::exit_code(run(&args))
}

fn run(args: &Args) -> Result<(), Box<dyn Error>> {
    let (model, spec) = io::load_model_and_data(&args.model)?;
    let spec = spec.unwrap_or_else(DataSpec::mnist);
    let fit = args.fit;
    let is_csv = |p: &PathBuf| p.extension().is_some_and(|e| e.eq_ignore_ascii_case("csv"));
    let csv = match args.inputs.as_slice() {
        [one] if is_csv(one) => kaggle_submission(model.as_ref(), &args.model, &spec, one)?,
        inputs if inputs.iter().any(is_csv) => {
            return Err("give either one .csv file or image files and folders, not both".into())
        }
        inputs => image_predictions(model.as_ref(), &args.model, &spec, fit, inputs)?,
    };
    match &args.out {
        Some(out) => {
            write_atomic(out, csv.as_bytes())?;
            eprintln!(
                "wrote {} predictions to {}",
                csv.lines().count() - 1,
                out.display()
            );
        }
        None => print!("{csv}"),
    }
    Ok(())
}

/// Runs `model` on `[n, c, h, w]` normalised images: class and probability of
/// each.
fn classify(
    model: &dyn Module,
    model_path: &Path,
    x: Array4<f32>,
) -> Result<Vec<(usize, f32)>, Box<dyn Error>> {
    let (_, c, h, w) = x.dim();
    let output = model.output_shape(&[c, h, w]).map_err(|e| {
        format!(
            "the model {} does not take {c}×{h}×{w} images: {e}",
            model_path.display()
        )
    })?;
    if output.len() != 1 {
        return Err(format!("the model's output {output:?} is not one score per class").into());
    }
    let probs = softmax_rows(&predict(model.clone_module().as_mut(), x.view().into_dyn()));
    Ok(probs
        .rows()
        .into_iter()
        .map(|row| {
            row.iter().enumerate().fold(
                (0, f32::NEG_INFINITY),
                |best, (k, &p)| if p > best.1 { (k, p) } else { best },
            )
        })
        .collect())
}

/// `ImageId,Label` for every image of a Kaggle-style CSV.
fn kaggle_submission(
    model: &dyn Module,
    model_path: &Path,
    spec: &DataSpec,
    path: &Path,
) -> Result<String, Box<dyn Error>> {
    let images = read_csv(path)?;
    let side = images.side;
    let x = Array4::from_shape_fn((images.rows, 1, side, side), |(i, _, y, x)| {
        spec.normalize
            .apply(0, images.pixels[(i * side + y) * side + x] as f32)
    });
    let mut csv = String::from("ImageId,Label\n");
    for (i, (class, _)) in classify(model, model_path, x)?.into_iter().enumerate() {
        let _ = writeln!(csv, "{},{}", i + 1, spec.class_name(class));
    }
    Ok(csv)
}

/// `file,predicted class,probability` for every image given or in a folder given.
fn image_predictions(
    model: &dyn Module,
    model_path: &Path,
    spec: &DataSpec,
    fit: FitArg,
    inputs: &[PathBuf],
) -> Result<String, Box<dyn Error>> {
    let mut files = Vec::new();
    for input in inputs {
        if input.is_dir() {
            let found = image_files(input)?;
            if found.is_empty() {
                return Err(format!("{}: no PNG or JPEG files in this folder", input.display()).into());
            }
            files.extend(found);
        } else {
            files.push(input.clone());
        }
    }
    let (c, h, w) = spec.input;
    let mut x = Array4::<f32>::zeros((files.len(), c, h, w));
    for (i, file) in files.iter().enumerate() {
        let image = read_image(file)?;
        // By default an image already of the model's size is taken to be framed
        // already: framing an MNIST digit again moves it from where MNIST put it.
        let framed_already = (image.height, image.width) == (h, w);
        let input = match fit {
            FitArg::Auto if spec.input == (1, 28, 28) => mnist_framed(&image, spec, !framed_already)?,
            FitArg::Auto => spec.input_of(&image, Fit::Crop)?,
            FitArg::Mnist => mnist_framed(&image, spec, true)?,
            FitArg::Crop => spec.input_of(&image, Fit::Crop)?,
            FitArg::Stretch => spec.input_of(&image, Fit::Stretch)?,
        };
        for (v, p) in x.index_axis_mut(ndarray::Axis(0), i).iter_mut().zip(input) {
            *v = p;
        }
    }
    let mut csv = String::from("file,predicted class,probability\n");
    for (file, (class, p)) in files.iter().zip(classify(model, model_path, x)?) {
        let _ = writeln!(
            csv,
            "{},{},{p:.4}",
            quoted(&file.display().to_string()),
            quoted(&spec.class_name(class))
        );
    }
    Ok(csv)
}

/// A CSV field: quoted when it holds a comma or a quote.
fn quoted(text: &str) -> String {
    if text.contains([',', '"', '\n']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_string()
    }
}

/// A digit photo as MNIST's digits are ([`common::digit::like_mnist`]), normalised.
fn mnist_framed(image: &Image, spec: &DataSpec, frame: bool) -> Result<Vec<f32>, String> {
    let (c, h, w) = spec.input;
    if c != 1 {
        return Err(format!(
            "--fit mnist makes gray images, but the model takes {c} channels; use --fit crop or stretch"
        ));
    }
    let (pixels, _) = common::digit::like_mnist(image, (h, w), frame);
    Ok(pixels
        .iter()
        .map(|&p| spec.normalize.apply(0, p as f32))
        .collect())
}
