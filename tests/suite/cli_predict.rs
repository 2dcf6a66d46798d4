//! The `predict` example driven as a user drives it: a Kaggle test CSV gives the
//! submission form (`ImageId,Label`) with the library's predictions; PNG files and
//! folders give `file,predicted class,probability`; bad input is one `error:` line
//! and no file is written over an input.

use crate::cli_support;
use crate::temp_dir;

use std::fmt::Write as _;

use cli_support::{arg, example, run};
use ferrocnn::data::Mnist;
use ferrocnn::nn::Mode;
use ferrocnn::viz::GrayImage;
use ferrocnn::Tensor;

/// The first `n` MNIST test images as a Kaggle test CSV (pixels only, header).
fn kaggle_test_csv(dir: &std::path::Path, n: usize) -> std::path::PathBuf {
    let test = Mnist::load("datasets/mnist").unwrap().test;
    let mut text = (0..784)
        .map(|i| format!("pixel{i}"))
        .collect::<Vec<_>>()
        .join(",");
    for i in 0..n {
        let pixels: Vec<String> = test.image(i).iter().map(|p| p.to_string()).collect();
        let _ = write!(text, "\n{}", pixels.join(","));
    }
    let path = dir.join("test.csv");
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn a_kaggle_test_csv_gives_the_submission_form_with_the_models_predictions() {
    let dir = temp_dir::tempdir().unwrap();
    let csv = kaggle_test_csv(dir.path(), 40);
    let out = dir.path().join("submission.csv");
    run(
        example("predict"),
        &["models/mnist.bin", arg(&csv), "--out", arg(&out)],
    )
    .assert_ok();
    let written = std::fs::read_to_string(&out).unwrap();
    let mut lines = written.lines();
    assert_eq!(lines.next(), Some("ImageId,Label"));
    let mut model = ferrocnn::io::load_model("models/mnist.bin").unwrap();
    let test = Mnist::load("datasets/mnist").unwrap().test;
    let logits = model.forward(&Tensor::new(test.to_array(0..40).into_dyn()), Mode::Eval);
    let expected = ferrocnn::ops::argmax_rows(logits.value());
    let got: Vec<(usize, usize)> = lines
        .map(|l| {
            let (id, label) = l.split_once(',').unwrap();
            (id.parse().unwrap(), label.parse().unwrap())
        })
        .collect();
    assert_eq!(
        got,
        expected
            .into_iter()
            .enumerate()
            .map(|(i, k)| (i + 1, k))
            .collect::<Vec<_>>()
    );
}

#[test]
fn png_files_and_folders_give_file_class_and_probability() {
    let dir = temp_dir::tempdir().unwrap();
    let test = Mnist::load("datasets/mnist").unwrap().test;
    let folder = dir.path().join("digits");
    std::fs::create_dir(&folder).unwrap();
    // Test images 0 (a 7) and 1 (a 2), white on black; image 1 also dark on light.
    for (name, i, invert) in [("a.png", 0, false), ("b.png", 1, false), ("c.png", 1, true)] {
        let mut image = GrayImage::new(28, 28, 0);
        for (k, &p) in test.image(i).iter().enumerate() {
            image.put(k % 28, k / 28, if invert { 255 - p } else { p });
        }
        image.save_png(folder.join(name)).unwrap();
    }
    std::fs::write(folder.join("notes.txt"), "not an image").unwrap();
    // A hidden file (a desktop's thumbnail cache) is not an input.
    std::fs::write(folder.join(".thumb.png"), "not an image either").unwrap();
    let outcome = run(example("predict"), &["models/mnist.bin", arg(&folder)]);
    outcome.assert_ok();
    let lines: Vec<&str> = outcome.stdout.lines().collect();
    assert_eq!(lines[0], "file,predicted class,probability");
    assert_eq!(lines.len(), 4, "{lines:?}");
    for (line, (file, class)) in lines[1..]
        .iter()
        .zip([("a.png", "7"), ("b.png", "2"), ("c.png", "2")])
    {
        let fields: Vec<&str> = line.split(',').collect();
        assert!(fields[0].ends_with(file) && fields[1] == class, "{line}");
        let p: f32 = fields[2].parse().unwrap();
        assert!((0.5..=1.0).contains(&p), "{line}");
    }
}

#[test]
fn bad_input_is_one_error_line_and_no_input_is_overwritten() {
    let dir = temp_dir::tempdir().unwrap();
    let csv = kaggle_test_csv(dir.path(), 3);
    let before = std::fs::read(&csv).unwrap();
    run(
        example("predict"),
        &["models/mnist.bin", arg(&csv), "--out", arg(&csv)],
    )
    .assert_usage("--out", "is an input");
    assert_eq!(std::fs::read(&csv).unwrap(), before);

    let broken = dir.path().join("broken.png");
    std::fs::write(&broken, b"\x89PNG\r\n\x1a\nnot really").unwrap();
    run(example("predict"), &["models/mnist.bin", arg(&broken)]).assert_error(&["broken.png"]);
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    run(example("predict"), &["models/mnist.bin", arg(&empty)]).assert_error(&["no PNG or JPEG files"]);
    // An image in a format the reader does not decode is named, not left out.
    std::fs::write(empty.join("digit.webp"), "RIFF").unwrap();
    run(example("predict"), &["models/mnist.bin", arg(&empty)])
        .assert_error(&["digit.webp", "convert them to PNG"]);
    let ragged = dir.path().join("ragged.csv");
    std::fs::write(&ragged, "label,a,b,c,d\n1,2,3,4,5\n1,2\n").unwrap();
    run(example("predict"), &["models/mnist.bin", arg(&ragged)]).assert_error(&["ragged.csv:3"]);
    run(
        example("predict"),
        &["models/mnist.bin", arg(&ragged.with_file_name("none.csv"))],
    )
    .assert_error(&["none.csv"]);
    // 2×2 images: the shipped model takes 28×28.
    let small = dir.path().join("small.csv");
    std::fs::write(&small, "label,a,b,c,d\n1,2,3,4,5\n").unwrap();
    run(example("predict"), &["models/mnist.bin", arg(&small)]).assert_error(&["does not take 1×2×2 images"]);
    let out = dir.path().join("never.csv");
    run(
        example("predict"),
        &["models/mnist.bin", arg(&small), "--out", arg(&out)],
    )
    .assert_error(&["1×2×2"]);
    assert!(!out.exists(), "nothing partial is written");
}
