//! See what a trained model sees: `cargo run --example explore -- models/mnist.bin`.
//!
//! Serves a page on 127.0.0.1 (`--port`, default 8080; `--port 0` picks a free
//! one) and prints its address. Draw a digit with the mouse, a pen or a finger, or
//! pick a test image, and watch, live: the class probabilities, every layer's
//! feature maps, the saliency of the input, and the model's filters — the idea of
//! CNN Explainer, for your own model. The page is inside the binary and needs no
//! network. `mnist --explore` serves the same page while a model trains, with its
//! loss and accuracy curves and first-layer filters as they change.
//!
//! Each analysis prints one line with the server's time for it, and the page
//! shows its own time from the stroke to the updated page.

// Shared with `mnist --explore`, which uses the training side that this binary
// does not.
#[allow(dead_code)]
mod server;

use std::error::Error;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use ferrocnn::data::{DataFile, Dataset, Normalize};
use ferrocnn::io;

/// Serve a page that shows what a model sees in a digit you draw.
#[derive(Parser, Debug)]
#[command(name = "explore", version)]
struct Args {
    /// The model file (written by `--example mnist` or `io::save_model`).
    model: PathBuf,
    /// Port on 127.0.0.1 (0 picks a free one).
    #[arg(long, default_value_t = 8080)]
    port: u16,
    /// MNIST-style dataset folder whose test images (t10k-…) the page offers
    /// [default: datasets/mnist, or drawings only if that folder is absent].
    #[arg(long)]
    data: Option<PathBuf>,
}

const DEFAULT_DATA: &str = "datasets/mnist";

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &Args) -> Result<(), Box<dyn Error>> {
    let (model, spec) = io::load_model_and_data(&args.model)?;
    let test = load_test_set(args.data.as_deref())?;
    let input = test.as_ref().map_or((1, 28, 28), |t| t.image_shape());
    // Inputs are normalised as the model's training images were.
    let normalize = spec.map_or(Normalize::MNIST, |s| s.normalize);
    let test = test.map(|t| match normalize.fits(t.image_shape().0) {
        true => t.with_normalization(normalize.clone()),
        false => t,
    });
    let title = args.model.display().to_string();
    let app = server::App::new(title, model, input, normalize, test)
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

/// The test images of `dir` (only those: the page needs no training set). The
/// default folder may be absent: the page then takes drawings only, as MNIST's
/// 1×28×28, normalized as MNIST.
fn load_test_set(dir: Option<&Path>) -> Result<Option<Dataset>, Box<dyn Error>> {
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
            eprintln!("note: no test images ({e}); the page takes drawings only, as 1×28×28");
            Ok(None)
        }
        Err(e) => Err(e.into()),
    }
}
