//! The `mnist` example driven as a user drives it: bad flags are usage errors (exit
//! code 2) that name the flag, failures are one Display line on stderr (exit code
//! 1), and no failing run touches an existing model file.
//!
//! They run the example binary that `cargo test` builds beside the tests; after
//! changing the example, run plain `cargo test` (not `--test suite` alone, which
//! does not rebuild the examples).

use crate::cli_support;
use crate::temp_dir;

use std::process::{Command, Output};

/// The example's binary, run from the crate root.
fn mnist() -> Command {
    cli_support::example("mnist")
}

fn run(args: &[&str]) -> (i32, String) {
    let Output { status, stderr, .. } = mnist().args(args).output().expect("runs");
    (
        status.code().unwrap_or(-1),
        String::from_utf8_lossy(&stderr).into_owned(),
    )
}

#[test]
fn bad_flag_values_are_usage_errors_that_name_the_flag() {
    for (args, flag, says) in [
        (&["--batch-size", "0"][..], "--batch-size", "at least 1"),
        (&["--epochs", "0"], "--epochs", "at least 1"),
        (&["--threads", "0"], "--threads", "at least 1"),
        (&["--limit-train", "0"], "--limit-train", "at least 1"),
        (&["--lr", "nan"], "--lr", "finite and above 0"),
        (&["--lr=-1"], "--lr", "finite and above 0"),
        (&["--lr", "inf"], "--lr", "finite and above 0"),
        (&["--lr", "fast"], "--lr", "not a number"),
    ] {
        let (code, stderr) = run(args);
        assert_eq!(code, 2, "{args:?}: {stderr}");
        assert!(
            stderr.contains(flag) && stderr.contains(says),
            "{args:?}: {stderr}"
        );
    }
}

#[test]
fn a_checkpoint_path_equal_to_the_model_path_is_refused_before_anything_runs() {
    let dir = temp_dir::tempdir().expect("temp dir");
    let model = dir.path().join("x.ckpt");
    std::fs::write(&model, b"keep me").unwrap();
    let (code, stderr) = run(&["--save", model.to_str().unwrap(), "--limit-train", "64"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("--checkpoint"), "{stderr}");
    assert_eq!(std::fs::read(&model).unwrap(), b"keep me");
}

#[test]
fn failures_print_one_display_line_and_leave_files_alone() {
    let dir = temp_dir::tempdir().expect("temp dir");
    let model = dir.path().join("m.bin");
    std::fs::write(&model, b"an existing model").unwrap();
    let save = ["--save", model.to_str().unwrap()];

    // A dataset folder that does not exist.
    let missing = dir.path().join("no-such-data");
    let (code, stderr) = run(&[&save[..], &["--data", missing.to_str().unwrap()]].concat());
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.starts_with("error: ") && stderr.contains("no-such-data"),
        "{stderr}"
    );

    // A checkpoint to resume that is not one: a model file is refused by kind.
    let (code, stderr) = run(&[&save[..], &["--resume", "models/mnist.bin"]].concat());
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.starts_with("error: ") && stderr.contains("mnist.bin") && !stderr.contains("WrongKind {"),
        "Display, not Debug: {stderr}"
    );
    assert_eq!(std::fs::read(&model).unwrap(), b"an existing model");
}

#[test]
fn a_dataset_without_test_images_trains_and_reports_no_test_figures() {
    let dir = temp_dir::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    for file in ["train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"] {
        std::fs::copy(format!("datasets/mnist/{file}"), data.join(file)).unwrap();
    }
    // IDX headers that hold no items: images (0 × 28 × 28) and labels (0).
    let images = [
        &[0u8, 0, 8, 3][..],
        &0u32.to_be_bytes(),
        &28u32.to_be_bytes(),
        &28u32.to_be_bytes(),
    ]
    .concat();
    let labels = [&[0u8, 0, 8, 1][..], &0u32.to_be_bytes()].concat();
    std::fs::write(data.join("t10k-images-idx3-ubyte"), images).unwrap();
    std::fs::write(data.join("t10k-labels-idx1-ubyte"), labels).unwrap();
    let save = dir.path().join("m.bin");
    let output = mnist()
        .args([
            "--data",
            data.to_str().unwrap(),
            "--limit-train",
            "128",
            "--epochs",
            "1",
        ])
        .args(["--save", save.to_str().unwrap()])
        .output()
        .expect("runs");
    let (stdout, stderr) = (
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
    );
    assert!(output.status.success(), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("no test images") && !stdout.contains("0.00%"),
        "{stdout}"
    );
    assert!(save.exists());
}

/// Writes an MNIST-style folder of `n` gray `side`×`side` images per split.
fn tiny_dataset(dir: &std::path::Path, side: u32, n: u32) {
    for (prefix, count) in [("train", n), ("t10k", n)] {
        let mut images = [
            &[0u8, 0, 8, 3][..],
            &count.to_be_bytes(),
            &side.to_be_bytes(),
            &side.to_be_bytes(),
        ]
        .concat();
        images.extend((0..count * side * side).map(|i| (i * 37 % 256) as u8));
        let mut labels = [&[0u8, 0, 8, 1][..], &count.to_be_bytes()].concat();
        labels.extend((0..count).map(|i| (i % 10) as u8));
        std::fs::write(dir.join(format!("{prefix}-images-idx3-ubyte")), images).unwrap();
        std::fs::write(dir.join(format!("{prefix}-labels-idx1-ubyte")), labels).unwrap();
    }
}

#[test]
fn a_reference_net_on_images_too_small_for_it_is_an_error_not_a_panic() {
    // R1 needs 10×10 images at least, R2 6×6.
    for (net, side) in [("r1", 8), ("r2", 5)] {
        let dir = temp_dir::tempdir().expect("temp dir");
        tiny_dataset(dir.path(), side, 20);
        let save = dir.path().join("m.bin");
        let (code, stderr) = run(&[
            "--data",
            dir.path().to_str().unwrap(),
            "--net",
            net,
            "--save",
            save.to_str().unwrap(),
        ]);
        assert_eq!(code, 1, "{net}: {stderr}");
        assert!(
            stderr.starts_with("error: ")
                && stderr.contains(&format!("--net {net} does not fit"))
                && !stderr.contains("panicked"),
            "{net}: {stderr}"
        );
        assert!(!save.exists());
    }
}

#[test]
fn a_learning_rate_that_makes_the_loss_explode_stops_the_run_and_saves_nothing() {
    // Adam at 1e6 keeps the loss finite but absurd (1e19 and up), SGD at 1e6 makes it
    // NaN: both stop with the batch and the cause, exit 1, and leave the model alone.
    for optimizer in ["adam", "sgd"] {
        let dir = temp_dir::tempdir().expect("temp dir");
        let model = dir.path().join("m.bin");
        std::fs::write(&model, b"an existing model").unwrap();
        let (code, stderr) = run(&[
            "--net",
            "r1",
            "--lr",
            "1e6",
            "--optimizer",
            optimizer,
            "--limit-train",
            "1280",
            "--epochs",
            "1",
            "--save",
            model.to_str().unwrap(),
        ]);
        assert_eq!(code, 1, "{optimizer}: {stderr}");
        assert!(
            stderr.starts_with("error: training stopped at epoch 1, batch ")
                && (stderr.contains("exploded") || stderr.contains("the loss is NaN"))
                && stderr.contains("the model was not saved; try a smaller --lr"),
            "{optimizer}: {stderr}"
        );
        assert_eq!(std::fs::read(&model).unwrap(), b"an existing model");
    }
}

#[test]
fn a_kaggle_style_train_csv_trains_with_a_validation_split() {
    use std::fmt::Write as _;
    let dir = temp_dir::tempdir().expect("temp dir");
    let images = ferrocnn::data::Mnist::load("datasets/mnist").unwrap().train;
    let mut text = String::from("label");
    (0..784).for_each(|i| {
        let _ = write!(text, ",pixel{i}");
    });
    for i in 0..300 {
        let _ = write!(text, "\n{}", images.label(i));
        images.image(i).iter().for_each(|p| {
            let _ = write!(text, ",{p}");
        });
    }
    let csv = dir.path().join("train.csv");
    std::fs::write(&csv, text).unwrap();
    let save = dir.path().join("m.bin");
    let output = mnist()
        .args(["--data", csv.to_str().unwrap(), "--net", "r1", "--epochs", "1"])
        .args(["--save", save.to_str().unwrap()])
        .output()
        .expect("runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains("images in CSV")
            && stdout.contains("270 training images of 1×28×28")
            && stdout.contains("30 validation images (10% held out: no test.csv beside"),
        "{stdout}"
    );
    assert!(save.exists());
}
