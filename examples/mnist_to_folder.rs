//! Writes MNIST's IDX files out as an image folder, the layout torchvision's
//! `ImageFolder` and Keras's `image_dataset_from_directory` read:
//!
//! ```sh
//! cargo run --release --example mnist_to_folder -- /tmp/mnist-png
//! cargo run --release --example mnist -- --data /tmp/mnist-png
//! ```
//!
//! gives `/tmp/mnist-png/train/<digit>/00000.png` (60,000 files) and
//! `/tmp/mnist-png/test/<digit>/00000.png` (10,000): a folder to try `--data` on,
//! and the same images as the IDX files, to compare the two.

use std::error::Error;
use std::path::PathBuf;
use std::process::ExitCode;

use ferrocnn::data::{Dataset, Mnist};
use ferrocnn::viz::GrayImage;
use rayon::prelude::*;

/// The command line; `HELP` says what each flag does.
#[derive(Debug)]
struct Args {
    out: PathBuf,
    data: PathBuf,
}

const HELP: &str = "\
Write MNIST's IDX files as PNG files in class folders

Usage: mnist_to_folder [OPTIONS] <OUT>

Arguments:
  <OUT>
          The folder to create (it must not exist yet)

Options:
      --data <DATA>
          The folder with MNIST's IDX files [default: datasets/mnist]
";

impl Args {
    /// Reads the command line; a mistake is a usage error (exit code 2).
    fn parse() -> Args {
        let (mut out, mut data) = (None, PathBuf::from("datasets/mnist"));
        let mut cli = CommandLine::from_env("mnist_to_folder", HELP);
        while let Some(arg) = cli.next() {
            match arg {
                Long("data") => data = cli.path("--data <DATA>"),
                Value(path) if out.is_none() => out = Some(PathBuf::from(path)),
                arg => unexpected(arg),
            }
        }
        Args {
            out: required(out, "<OUT>"),
            data,
        }
    }
}

mod common;
use common::args::{required, unexpected, CommandLine, Long, Value};

fn main() -> ExitCode {
    common::exit_code(run(Args::parse()))
}

fn run(args: Args) -> Result<(), Box<dyn Error>> {
    if args.out.exists() {
        return Err(format!("{} already exists; give a new folder", args.out.display()).into());
    }
    let Mnist { train, test } = Mnist::load(&args.data)?;
    for (split, data) in [("train", &train), ("test", &test)] {
        write_split(&args.out.join(split), data)?;
        println!(
            "wrote {} images to {}",
            data.len(),
            args.out.join(split).display()
        );
    }
    Ok(())
}

fn write_split(dir: &std::path::Path, data: &Dataset) -> Result<(), Box<dyn Error>> {
    for class in 0..data.num_classes() {
        std::fs::create_dir_all(dir.join(data.class_name(class)))?;
    }
    let (_, h, w) = data.image_shape();
    (0..data.len()).into_par_iter().try_for_each(|i| {
        let mut image = GrayImage::new(w, h, 0);
        for (j, &p) in data.image(i).iter().enumerate() {
            image.put(j % w, j / w, p);
        }
        let path = dir
            .join(data.class_name(data.label(i)))
            .join(format!("{i:05}.png"));
        image.save_png(&path).map_err(|e| e.to_string())
    })?;
    Ok(())
}
