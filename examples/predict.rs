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
//! - PNG files, and folders of them (their `*.png`, sorted by name), give
//!   `file,predicted class,probability`. Each image is turned gray, inverted if it is
//!   dark on light, and framed as MNIST frames its digits (`data::frame_like_mnist`),
//!   as `inspect --predict` does.
//!
//! Without `--out` the CSV goes to standard output. The file is written whole or
//! not at all, and never over an input.

use std::error::Error;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::error::ErrorKind;
use clap::{CommandFactory, Parser};
use ferrocnn::data::{frame_like_mnist, read_csv, Normalize};
use ferrocnn::io::{self, write_atomic};
use ferrocnn::nn::Module;
use ferrocnn::ops::softmax_rows;
use ferrocnn::train::predict;
use ferrocnn::viz::read_grayscale_png;
use ndarray::Array4;

mod common;
use common::files::same_file;

/// Predict the class of images (a Kaggle-style CSV, or PNG files and folders) with a
/// trained model, and write the predictions as CSV.
#[derive(Parser, Debug)]
#[command(name = "predict", version, about)]
struct Args {
    /// The model file.
    model: PathBuf,
    /// A .csv of images, or PNG files and folders of them.
    #[arg(required = true)]
    inputs: Vec<PathBuf>,
    /// Where to write the CSV [default: standard output].
    #[arg(long)]
    out: Option<PathBuf>,
}

/// Side of the gray images PNGs are framed into: MNIST's.
const SIDE: usize = 28;

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
            Args::command().error(ErrorKind::ArgumentConflict, usage).exit();
        }
    }
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &Args) -> Result<(), Box<dyn Error>> {
    let model = io::load_model(&args.model)?;
    let is_csv = |p: &PathBuf| p.extension().is_some_and(|e| e.eq_ignore_ascii_case("csv"));
    let csv = match args.inputs.as_slice() {
        [one] if is_csv(one) => kaggle_submission(model.as_ref(), &args.model, one)?,
        inputs if inputs.iter().any(is_csv) => {
            return Err("give either one .csv file or PNG files and folders, not both".into())
        }
        inputs => png_predictions(model.as_ref(), &args.model, inputs)?,
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

/// Runs `model` on `[n, 1, side, side]` normalised images: class and probability
/// of each.
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
fn kaggle_submission(model: &dyn Module, model_path: &Path, path: &Path) -> Result<String, Box<dyn Error>> {
    let images = read_csv(path)?;
    let side = images.side;
    let x = Array4::from_shape_fn((images.rows, 1, side, side), |(i, _, y, x)| {
        Normalize::MNIST.apply(images.pixels[(i * side + y) * side + x] as f32)
    });
    let mut csv = String::from("ImageId,Label\n");
    for (i, (class, _)) in classify(model, model_path, x)?.into_iter().enumerate() {
        let _ = writeln!(csv, "{},{class}", i + 1);
    }
    Ok(csv)
}

/// `file,predicted class,probability` for every PNG given or in a folder given.
fn png_predictions(
    model: &dyn Module,
    model_path: &Path,
    inputs: &[PathBuf],
) -> Result<String, Box<dyn Error>> {
    let mut files = Vec::new();
    for input in inputs {
        if input.is_dir() {
            let read = std::fs::read_dir(input).map_err(|e| format!("{}: {e}", input.display()))?;
            let mut pngs: Vec<PathBuf> = read
                .filter_map(|entry| entry.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|e| e.eq_ignore_ascii_case("png")))
                .collect();
            if pngs.is_empty() {
                return Err(format!("{}: no .png files in this folder", input.display()).into());
            }
            pngs.sort();
            files.extend(pngs);
        } else {
            files.push(input.clone());
        }
    }
    let mut x = Array4::<f32>::zeros((files.len(), 1, SIDE, SIDE));
    for (i, file) in files.iter().enumerate() {
        let (mut pixels, height, width) = read_grayscale_png(file)?;
        let mean = pixels.iter().map(|&p| p as f64).sum::<f64>() / pixels.len().max(1) as f64;
        if mean > 127.0 {
            // MNIST digits are white on black; a dark digit on white paper is inverted.
            pixels.iter_mut().for_each(|p| *p = 255 - *p);
        }
        let framed = frame_like_mnist(&pixels, (height, width), (SIDE, SIDE));
        for (v, &p) in x.index_axis_mut(ndarray::Axis(0), i).iter_mut().zip(&framed) {
            *v = Normalize::MNIST.apply(p as f32);
        }
    }
    let mut csv = String::from("file,predicted class,probability\n");
    for (file, (class, p)) in files.iter().zip(classify(model, model_path, x)?) {
        let name = file.display().to_string();
        let name = if name.contains([',', '"']) {
            format!("\"{}\"", name.replace('"', "\"\""))
        } else {
            name
        };
        let _ = writeln!(csv, "{name},{class},{p:.4}");
    }
    Ok(csv)
}
