//! `mnist --data` on an image folder, then `predict` with the model it saved: the
//! way a user brings their own images. Colour images of two classes, told apart by
//! colour, so that a couple of epochs learn them.

use crate::cli_support;
use crate::temp_dir;

use std::path::Path;

use cli_support::{arg, example, run};
use ferrocnn::io::load_model_and_data;
use ferrocnn::viz::RgbImage;
use rand::{Rng, SeedableRng};

/// `root/{train,test}/{blue,red}/<i>.png`: 28×28 images, a square of the class's
/// colour at a random place on a gray background.
fn colour_folder(root: &Path, train: usize, test: usize) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(5);
    for (split, n) in [("train", train), ("test", test)] {
        for (class, colour) in [("blue", [30, 60, 220]), ("red", [220, 40, 30])] {
            let dir = root.join(split).join(class);
            std::fs::create_dir_all(&dir).unwrap();
            for i in 0..n {
                let mut image = RgbImage::new(28, 28, [120, 120, 120]);
                let (x0, y0) = (rng.random_range(0..18), rng.random_range(0..18));
                for y in y0..y0 + 10 {
                    for x in x0..x0 + 10 {
                        image.put(x, y, colour);
                    }
                }
                image.save_png(dir.join(format!("{i:02}.png"))).unwrap();
            }
        }
    }
}

#[test]
fn an_image_folder_trains_saves_its_classes_and_predicts_by_name() {
    let dir = temp_dir::tempdir().unwrap();
    let data = dir.path().join("shapes");
    colour_folder(&data, 24, 5);
    let model = dir.path().join("colours.bin");
    let outcome = run(
        example("mnist"),
        &[
            "--data",
            arg(&data),
            "--epochs",
            "2",
            "--batch-size",
            "8",
            "--no-augment",
            "--save",
            arg(&model),
        ],
    );
    outcome.assert_ok();
    assert!(
        outcome.stdout.contains("an image folder")
            && outcome.stdout.contains("2 classes (blue, red), RGB, 28×28"),
        "{}",
        outcome.stdout
    );
    assert!(
        outcome.stdout.contains("10 test images from"),
        "{}",
        outcome.stdout
    );

    // The model file keeps the classes and the training images' statistics.
    let (_, spec) = load_model_and_data(&model).unwrap();
    let spec = spec.expect("a model trained by mnist keeps its data spec");
    assert_eq!(spec.input, (3, 28, 28));
    assert_eq!(spec.classes, ["blue", "red"]);
    assert_eq!(spec.normalize.mean().len(), 3);

    let outcome = run(example("predict"), &[arg(&model), arg(&data.join("test"))]);
    outcome.assert_ok();
    let lines: Vec<&str> = outcome.stdout.lines().skip(1).collect();
    assert_eq!(lines.len(), 10, "{}", outcome.stdout);
    let right = lines
        .iter()
        .filter(|line| {
            let fields: Vec<&str> = line.split(',').collect();
            let truth = Path::new(fields[0]).parent().unwrap().file_name().unwrap();
            assert!(["blue", "red"].contains(&fields[1]), "{line}");
            truth.to_str() == Some(fields[1])
        })
        .count();
    assert!(right >= 8, "{right} of 10 right: {}", outcome.stdout);
}

#[test]
fn bad_folders_and_flags_fail_before_anything_is_saved() {
    let dir = temp_dir::tempdir().unwrap();
    let data = dir.path().join("shapes");
    colour_folder(&data, 2, 1);
    let model = dir.path().join("never.bin");
    let train = |extra: &[&str]| {
        let mut args = vec!["--data", arg(&data), "--epochs", "1", "--save", arg(&model)];
        args.extend_from_slice(extra);
        run(example("mnist"), &args)
    };
    train(&["--image-size", "0x28"]).assert_usage("--image-size", "is not an image size");
    train(&["--channels", "2"]).assert_usage("--channels", "1 (gray) or 3 (RGB)");
    std::fs::create_dir_all(data.join("train/green")).unwrap();
    train(&[]).assert_error(&["train/green", "no PNG or JPEG images"]);
    std::fs::remove_dir(data.join("train/green")).unwrap();
    std::fs::write(data.join("train/red/99.png"), b"\x89PNG\r\n\x1a\ntruncated").unwrap();
    train(&[]).assert_error(&["99.png"]);
    assert!(!model.exists(), "a failed run saves nothing");
}
