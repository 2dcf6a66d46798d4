//! See what a trained model sees: `cargo run --example explore -- models/mnist.bin`.
//!
//! Serves a page on 127.0.0.1 (`--port`, default 8080; `--port 0` picks a free
//! one) and prints its address. Draw a digit with the mouse, a pen or a finger, or
//! pick a test image, and watch, live: the class probabilities (by class name),
//! every layer's feature maps, the saliency of the input, and the model's filters
//! — the idea of CNN Explainer, for your own model, gray or RGB. `--data` takes
//! what `mnist --data` takes: an MNIST-style folder, an image folder or a CSV file. The page is inside the binary and needs no
//! network. `mnist --explore` serves the same page while a model trains, with its
//! loss and accuracy curves and first-layer filters as they change.
//!
//! Each analysis prints one line with the server's time for it, and the page
//! shows its own time from the stroke to the updated page.

#[path = "../common/mod.rs"]
mod common;
// Shared with `mnist --explore`, which uses the training side that this binary
// does not.
#[allow(dead_code)]
mod server;

use std::error::Error;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use ferrocnn::data::{DataFile, Dataset, FolderOptions, Normalize, TrainingData};
use ferrocnn::io::{self, DataSpec};

use common::args::{port, required, unexpected, CommandLine, Long, Value};

/// The command line; `HELP` says what each flag does.
#[derive(Debug)]
struct Args {
    model: PathBuf,
    port: u16,
    data: Option<PathBuf>,
}

const HELP: &str = "\
Serve a page that shows what a model sees in a digit you draw

Usage: explore [OPTIONS] <MODEL>

Arguments:
  <MODEL>
          The model file (written by `--example mnist` or `io::save_model`)

Options:
      --port <PORT>
          Port on 127.0.0.1 (0 picks a free one) [default: 8080]
      --data <DATA>
          Test images for the page to offer: an MNIST-style folder (its t10k-… files),
          an image folder (DIR/test/<class>/… beside DIR/train/, or val/; without one,
          the tenth of the training images `mnist` holds out) or a CSV file, read at
          the model's image size and channels [default: datasets/mnist, or drawings
          only if that folder is absent]
";

impl Args {
    /// Reads the command line; a mistake is a usage error (exit code 2).
    fn parse() -> Args {
        let mut model = None;
        let mut args = Args {
            model: PathBuf::new(),
            port: 8080,
            data: None,
        };
        let mut cli = CommandLine::from_env("explore", HELP);
        while let Some(arg) = cli.next() {
            match arg {
                Long("port") => args.port = cli.value("--port <PORT>", port),
                Long("data") => args.data = Some(cli.path("--data <DATA>")),
                Value(path) if model.is_none() => model = Some(PathBuf::from(path)),
                arg => unexpected(arg),
            }
        }
        args.model = required(model, "<MODEL>");
        args
    }
}

const DEFAULT_DATA: &str = "datasets/mnist";

fn main() -> ExitCode {
    let args = Args::parse();
    common::exit_code(run(&args))
}

fn run(args: &Args) -> Result<(), Box<dyn Error>> {
    let (model, spec) = io::load_model_and_data(&args.model)?;
    let test = load_test_set(args.data.as_deref(), spec.as_ref())?;
    // Without test images, the shape the model file says it was trained on, else
    // MNIST's.
    let assumed = spec.as_ref().map_or((1, 28, 28), |s| s.input);
    let input = test.as_ref().map_or(assumed, |t| t.image_shape());
    // Inputs are normalised as the model's training images were.
    let normalize = spec.as_ref().map_or(Normalize::MNIST, |s| s.normalize.clone());
    let test = test.map(|t| match normalize.fits(t.image_shape().0) {
        true => t.with_normalization(normalize.clone()),
        false => t,
    });
    let class_names = class_names(spec.as_ref(), test.as_ref());
    let title = args.model.display().to_string();
    let app = server::App::new(title, model, input, normalize, class_names, test)
        .map_err(|e| format!("{}: {e}", args.model.display()))?;
    let server = server::http::bind(args.port)?;
    println!(
        "exploring {} at http://{}/ (Ctrl-C stops)",
        args.model.display(),
        server.addr
    );
    server.run(Arc::new(app));
    Ok(())
}

/// The names the page gives the classes: the model file's (what it was trained
/// on), else the test set's (an image folder's subfolders), else none (numbers).
fn class_names(spec: Option<&DataSpec>, test: Option<&Dataset>) -> Option<Vec<String>> {
    let data_names = test.and_then(|t| t.class_names());
    if let (Some(spec), Some(names)) = (spec, data_names) {
        // Labels come from the data, names from the model: if they disagree, the
        // page would name a test image's label wrongly, so say so.
        if spec.classes != names {
            eprintln!(
                "note: the test images' classes ({}) are not the model's ({}); the page names the model's",
                names.join(", "),
                spec.classes.join(", ")
            );
        }
    }
    spec.map(|s| s.classes.clone())
        .or_else(|| data_names.map(<[String]>::to_vec))
}

/// The test images of `dir`, read as `mnist --data` reads it. An MNIST-style
/// folder gives only its t10k files (the page needs no training set); an image
/// folder or CSV file is read at the size and channels of the model's data spec
/// where its file has one, and gives its test split. The default folder may be
/// absent: the page then takes drawings only, of the model's input shape.
fn load_test_set(dir: Option<&Path>, spec: Option<&DataSpec>) -> Result<Option<Dataset>, Box<dyn Error>> {
    let folder = dir.unwrap_or(Path::new(DEFAULT_DATA));
    let found = DataFile::find(folder, "t10k-images-idx3-ubyte", "test images").and_then(|images| {
        Ok((
            images,
            DataFile::find(folder, "t10k-labels-idx1-ubyte", "test labels")?,
        ))
    });
    match found {
        Ok((images, labels)) => Ok(Some(Dataset::from_idx(&images.path, &labels.path)?)),
        Err(e) if dir.is_none() => {
            let (c, h, w) = spec.map_or((1, 28, 28), |s| s.input);
            eprintln!("note: no test images ({e}); the page takes drawings only, as {c}×{h}×{w}");
            Ok(None)
        }
        Err(_) => {
            let options = FolderOptions {
                size: spec.map(|s| (s.input.1, s.input.2)),
                channels: spec.map(|s| s.input.0).filter(|c| *c == 1 || *c == 3),
                ..FolderOptions::default()
            };
            // `mnist`'s default seed, so that a folder without a test split shows
            // the images a default run held out.
            let data = TrainingData::load_with(folder, 1, &options)?;
            println!("data: {}; {}", data.found, data.evaluation);
            Ok(Some(data.test))
        }
    }
}
