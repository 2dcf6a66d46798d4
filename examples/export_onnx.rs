//! Export a saved model to ONNX, for onnxruntime, tract, or a look in Netron:
//!
//! ```sh
//! cargo run --release --example export_onnx -- models/mnist.bin mnist.onnx
//! ```
//!
//! The graph takes `input` `[N, C, H, W]` (any batch size) normalised as in
//! training — for MNIST `(pixel / 255 − 0.1307) / 0.3081` — and gives `logits`
//! `[N, classes]`. The image shape comes from the model file where it keeps the
//! data it was trained for (then its class names and normalisation go into the
//! ONNX metadata too); `--input C,H,W` gives it otherwise, and without either the
//! images are taken to be 28×28 (MNIST's) with as many channels as the first
//! convolution takes.

use std::error::Error;
use std::path::PathBuf;
use std::process::ExitCode;

use ferrocnn::io::{self, onnx};
use ferrocnn::nn::{conv_of, Module};

mod common;
use common::args::{comma_list, required, unexpected, usage_error, CommandLine, Long, Value};
use common::files::same_file;

/// The command line; `HELP` says what each flag does.
#[derive(Debug)]
struct Args {
    model: PathBuf,
    out: PathBuf,
    input: Option<(usize, usize, usize)>,
}

const HELP: &str = "\
Write a ferrocnn model file as an ONNX model (opset 17)

Usage: export_onnx [OPTIONS] <MODEL> <OUT>

Arguments:
  <MODEL>
          The model file (written by `--example mnist` or `io::save_model`)
  <OUT>
          The ONNX file to write

Options:
      --input <C,H,W>
          The shape of one input image, CHANNELS,HEIGHT,WIDTH [default: the model
          file's, or 28×28 with the first convolution's channels]
";

impl Args {
    /// Reads the command line; a mistake is a usage error (exit code 2).
    fn parse() -> Args {
        let (mut model, mut out, mut input) = (None, None, None);
        let mut cli = CommandLine::from_env("export_onnx", HELP);
        while let Some(arg) = cli.next() {
            match arg {
                Long("input") => input = Some(cli.value("--input <C,H,W>", image_shape)),
                Value(path) if model.is_none() => model = Some(PathBuf::from(path)),
                Value(path) if out.is_none() => out = Some(PathBuf::from(path)),
                arg => unexpected(arg),
            }
        }
        Args {
            model: required(model, "<MODEL> <OUT>"),
            out: required(out, "<OUT>"),
            input,
        }
    }
}

/// `C,H,W`: three whole numbers of at least 1.
fn image_shape(text: &str) -> Result<(usize, usize, usize), String> {
    let size = |part: &str| match part.parse::<usize>() {
        Ok(0) | Err(_) => Err(format!(
            "{text:?} is not C,H,W (three whole numbers of at least 1, e.g. 1,28,28)"
        )),
        Ok(n) => Ok(n),
    };
    match comma_list(text, size)?[..] {
        [c, h, w] => Ok((c, h, w)),
        _ => Err(format!("{text:?} is not C,H,W (three sizes, e.g. 1,28,28)")),
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    if same_file(&args.model, &args.out) {
        let usage = format!(
            "OUT {} is the model file being exported; give another path, such as model.onnx",
            args.out.display()
        );
        usage_error(usage);
    }
    common::exit_code(run(&args))
}

fn run(args: &Args) -> Result<(), Box<dyn Error>> {
    let (model, spec) = io::load_model_and_data(&args.model)?;
    let (c, h, w) = match (args.input, &spec) {
        (Some(shape), _) => shape,
        (None, Some(spec)) => spec.input,
        (None, None) => {
            let shape = assumed_input(model.as_ref());
            model.output_shape(&[shape.0, shape.1, shape.2]).map_err(|e| {
                format!(
                    "the model {} does not take {}×{}×{} images, which export_onnx assumes without \
                     --input: {e}; give --input C,H,W with the size it was trained on",
                    args.model.display(),
                    shape.0,
                    shape.1,
                    shape.2
                )
            })?;
            shape
        }
    };
    let bytes = match spec {
        Some(spec) if spec.input == (c, h, w) => io::to_onnx_bytes_with_data(model.as_ref(), &spec)?,
        _ => io::to_onnx_bytes(model.as_ref(), (c, h, w))?,
    };
    io::write_atomic(&args.out, &bytes)?;
    let output = model.output_shape(&[c, h, w])?;
    println!(
        "wrote {} ({:.1} MB, ONNX opset {}): input [N, {c}, {h}, {w}] → logits [N, {}]",
        args.out.display(),
        bytes.len() as f64 / 1e6,
        onnx::OPSET,
        output.iter().map(usize::to_string).collect::<Vec<_>>().join(", ")
    );
    println!(
        "open it in Netron (https://netron.app, or `pip install netron && netron {}`)",
        args.out.display()
    );
    Ok(())
}

/// MNIST's 28×28 with the first convolution's input channels (1 if there is none).
fn assumed_input(model: &dyn Module) -> (usize, usize, usize) {
    let channels = model
        .named_modules()
        .into_iter()
        .find_map(|(_, m)| conv_of(m).map(|conv| conv.kernel_shape().1))
        .unwrap_or(1);
    (channels, 28, 28)
}
