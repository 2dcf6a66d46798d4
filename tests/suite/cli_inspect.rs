//! The `inspect` example driven as a user drives it: bad flags are usage errors
//! (exit code 2) naming the flag; a damaged model, a model that does not fit the
//! data, a hostile PNG are one `error:` line (exit code 1), never a panic; and no
//! file given to it is changed, whatever happens.
//!
//! Each case runs the binary on a tiny synthetic dataset (8×8 images) and a small
//! model, so the whole file takes a second or two.

use crate::cli_support;
use crate::common;
use crate::temp_dir;

use std::path::{Path, PathBuf};

use cli_support::{
    arg, damaged_models, dataset, example, padded_net, run, save, small_net, snapshot, Outcome,
};
use ferrocnn::nn::Module;
use ferrocnn::viz::GrayImage;

/// `inspect` with `args`, pictures written to `out`.
fn inspect(out: &Path, args: &[&str]) -> Outcome {
    run(example("inspect"), &[&["--out", arg(out)], args].concat())
}

/// A folder with an 8×8 dataset (labels `0..classes`) and a model for it.
struct Setup {
    dir: temp_dir::TempDir,
    data: PathBuf,
    model: PathBuf,
    out: PathBuf,
}

fn setup(classes: u32) -> Setup {
    let dir = temp_dir::tempdir().unwrap();
    let data = dataset(&dir.path().join("data"), 8, 24, classes);
    let model = save(&small_net(1, 8, 10), dir.path(), "model.bin");
    let out = dir.path().join("pictures");
    Setup {
        dir,
        data,
        model,
        out,
    }
}

#[test]
fn bad_flag_values_are_usage_errors_that_name_the_flag() {
    let s = setup(10);
    let model = arg(&s.model);
    for (args, flag, says) in [
        (&[model, "--image=-1"][..], "--image", "invalid digit"),
        (&[model, "--image", "first"], "--image", "invalid digit"),
        (&[model, "--colour"], "--colour", "unexpected argument"),
        (&[], "<MODEL>", "required"),
    ] {
        inspect(&s.out, args).assert_usage(flag, says);
    }
    assert!(!s.out.exists());
}

#[test]
fn a_good_model_and_data_give_the_pictures_and_change_no_input() {
    let s = setup(10);
    let before = snapshot(&[&s.model, &s.data]);
    let outcome = inspect(&s.out, &[arg(&s.model), "--data", arg(&s.data), "--image", "23"]);
    outcome.assert_ok();
    assert!(outcome.stdout.contains("test accuracy"), "{outcome:#?}");
    for name in ["filters_conv1.png", "features_conv1.png", "input.png"] {
        assert!(s.out.join(name).exists(), "{name}: {outcome:#?}");
    }
    assert_eq!(snapshot(&[&s.model, &s.data]), before);
}

#[test]
fn damaged_model_files_are_errors_naming_the_file() {
    let s = setup(10);
    let damaged = damaged_models(&s.model, s.dir.path());
    let before = snapshot(&[s.dir.path()]);
    for (model, says) in &damaged {
        let name = model.file_name().unwrap().to_str().unwrap();
        inspect(&s.out, &[arg(model), "--data", arg(&s.data)]).assert_error(&[name, says]);
    }
    // A folder is not a model file either.
    let outcome = inspect(&s.out, &[arg(s.dir.path()), "--data", arg(&s.data)]);
    outcome.assert_error(&[arg(s.dir.path())]);
    assert!(!s.out.exists(), "no picture of a model that did not load");
    assert_eq!(snapshot(&[s.dir.path()]), before);
}

#[test]
fn labels_beyond_the_models_outputs_are_an_error_naming_the_labels_and_the_outputs() {
    let s = setup(20);
    let before = snapshot(&[&s.model, &s.data]);
    let outcome = inspect(&s.out, &[arg(&s.model), "--data", arg(&s.data)]);
    outcome.assert_error(&["t10k-labels-idx1-ubyte", "labels go up to 19", "10 outputs"]);
    assert!(!s.out.exists(), "checked before any picture is written");
    assert_eq!(snapshot(&[&s.model, &s.data]), before);
}

#[test]
fn a_model_for_other_images_is_an_error_naming_the_data_and_the_layer() {
    let s = setup(10);
    // Made for 12×12 images: its head takes 4·5·5 inputs, the data gives 4·3·3.
    let wide = save(&small_net(1, 12, 10), s.dir.path(), "wide.bin");
    let outcome = inspect(&s.out, &[arg(&wide), "--data", arg(&s.data)]);
    outcome.assert_error(&[
        "wide.bin",
        "1×8×8",
        "t10k-images-idx3-ubyte",
        "fc1: expects [100] inputs",
    ]);
    // Three channels against gray images.
    let rgb = save(&small_net(3, 8, 10), s.dir.path(), "rgb.bin");
    let outcome = inspect(&s.out, &[arg(&rgb), "--data", arg(&s.data)]);
    outcome.assert_error(&["rgb.bin", "channels"]);
    assert!(!s.out.exists());
}

#[test]
fn a_model_that_would_need_more_memory_than_a_laptop_has_is_refused_before_it_runs() {
    let s = setup(10);
    // It loads (its settings are valid) and fits the images; running it would abort.
    let padded = save(&padded_net(10), s.dir.path(), "padded.bin");
    let outcome = inspect(&s.out, &[arg(&padded), "--data", arg(&s.data)]);
    outcome.assert_error(&["padded.bin", "would need", "conv1 alone holds"]);
    assert!(!s.out.exists());
}

#[test]
fn missing_data_is_an_error_when_asked_for_and_a_note_when_defaulted() {
    let s = setup(10);
    let missing = s.dir.path().join("no-such-data");
    let outcome = inspect(&s.out, &[arg(&s.model), "--data", arg(&missing)]);
    outcome.assert_error(&["no-such-data", "not found"]);

    // Without --data, in a folder with no datasets/mnist: the model alone, as
    // 1×28×28 inputs; a model for 8×8 images says it needs --data.
    let elsewhere = temp_dir::tempdir().unwrap();
    let model28 = save(&small_net(1, 28, 10), s.dir.path(), "model28.bin");
    let mut command = example("inspect");
    command.current_dir(elsewhere.path());
    let outcome = run(command, &[arg(&model28), "--out", arg(&s.out)]);
    outcome.assert_ok();
    assert!(outcome.stderr.contains("note: no dataset"), "{outcome:#?}");
    let mut command = example("inspect");
    command.current_dir(elsewhere.path());
    run(command, &[arg(&s.model), "--out", arg(&s.out)]).assert_error(&["1×28×28", "--data"]);
}

#[test]
fn an_empty_test_set_writes_the_filters_and_says_why_there_is_no_more() {
    let s = setup(10);
    let data = dataset(&s.dir.path().join("empty"), 8, 0, 10);
    let outcome = inspect(&s.out, &[arg(&s.model), "--data", arg(&data)]);
    outcome.assert_ok();
    assert!(outcome.stderr.contains("holds no images"), "{outcome:#?}");
    assert!(s.out.join("filters_conv1.png").exists() && !s.out.join("input.png").exists());
}

#[test]
fn image_index_past_the_test_set_is_an_error() {
    let s = setup(10);
    let outcome = inspect(&s.out, &[arg(&s.model), "--data", arg(&s.data), "--image", "24"]);
    outcome.assert_error(&["--image 24", "24 images"]);
}

#[test]
fn a_model_with_nan_weights_is_inspected_with_a_warning() {
    let s = setup(10);
    let mut net = small_net(1, 8, 10);
    net.named_parameters_mut()[0].1.value_mut()[[0, 0, 1, 1]] = f32::NAN;
    let nan = save(&net, s.dir.path(), "nan.bin");
    let outcome = inspect(&s.out, &[arg(&nan), "--data", arg(&s.data)]);
    outcome.assert_ok();
    assert!(
        outcome.stderr.contains("warning") && outcome.stderr.contains("conv1.weight (1 value)"),
        "{outcome:#?}"
    );
}

#[test]
fn a_folder_holding_x_and_x_gz_says_which_was_read() {
    let s = setup(10);
    let raw = s.data.join("t10k-labels-idx1-ubyte");
    std::fs::copy(&raw, s.data.join("t10k-labels-idx1-ubyte.gz")).unwrap();
    let outcome = inspect(&s.out, &[arg(&s.model), "--data", arg(&s.data)]);
    outcome.assert_ok();
    let line = format!(
        "reading {} (t10k-labels-idx1-ubyte.gz also exists and was ignored)",
        raw.display()
    );
    assert!(outcome.stdout.contains(&line), "{outcome:#?}");
}

/// A PNG whose header says `width`×`height` 8-bit gray and whose data is one
/// empty zlib stream.
fn png_claiming(width: u32, height: u32) -> Vec<u8> {
    common::png::gray_png_claiming(width, height, &[0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01])
}

#[test]
fn hostile_pngs_to_predict_are_errors_naming_the_file_and_nothing_is_written() {
    let s = setup(10);
    let write = |name: &str, bytes: &[u8]| {
        let path = s.dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        path
    };
    let digit = s.dir.path().join("digit.png");
    GrayImage::new(20, 30, 200).save_png(&digit).unwrap();
    let whole = std::fs::read(&digit).unwrap();
    let cases = [
        (write("text.png", b"a digit, honest"), "not a PNG or JPEG"),
        (write("cut.png", &whole[..whole.len() / 2]), "not a readable PNG"),
        (write("huge.png", &png_claiming(1 << 20, 1 << 20)), "limit"),
        (write("zero.png", &png_claiming(0, 5)), "zero.png"),
        (
            write("at-limit.png", &png_claiming(8192, 8192)),
            "not a readable PNG",
        ),
        (s.dir.path().join("absent.png"), "absent.png"),
    ];
    let before = snapshot(&[s.dir.path()]);
    for (png, says) in &cases {
        let name = png.file_name().unwrap().to_str().unwrap();
        let outcome = inspect(
            &s.out,
            &[arg(&s.model), "--data", arg(&s.data), "--predict", arg(png)],
        );
        outcome.assert_error(&[name, says]);
    }
    assert!(!s.out.exists(), "the PNG is read before any picture is written");
    assert_eq!(snapshot(&[s.dir.path()]), before);
}

#[test]
fn odd_but_valid_pngs_are_classified() {
    let s = setup(10);
    for (name, image) in [
        ("dot.png", GrayImage::new(1, 1, 0)),
        ("blank.png", GrayImage::new(40, 3, 255)),
        ("stroke.png", {
            let mut image = GrayImage::new(50, 50, 255);
            (0..50).for_each(|i| image.put(i, 25, 0));
            image
        }),
    ] {
        let png = s.dir.path().join(name);
        image.save_png(&png).unwrap();
        let outcome = inspect(
            &s.out,
            &[arg(&s.model), "--data", arg(&s.data), "--predict", arg(&png)],
        );
        outcome.assert_ok();
        assert!(outcome.stdout.contains("probability"), "{name}: {outcome:#?}");
    }
}

#[test]
fn an_input_where_a_picture_would_be_written_is_refused() {
    let s = setup(10);
    std::fs::create_dir_all(&s.out).unwrap();
    let model = s.out.join("input.png");
    std::fs::copy(&s.model, &model).unwrap();
    let digit = s.out.join("features_conv1.png");
    GrayImage::new(8, 8, 9).save_png(&digit).unwrap();
    let before = snapshot(&[&s.out]);
    inspect(&s.out, &[arg(&model), "--data", arg(&s.data)]).assert_usage("--out", "would be replaced");
    let outcome = inspect(
        &s.out,
        &[arg(&s.model), "--data", arg(&s.data), "--predict", arg(&digit)],
    );
    outcome.assert_usage("--predict", "would be replaced");
    assert_eq!(snapshot(&[&s.out]), before);
}

#[test]
fn what_the_network_sees_is_drawn_on_request_and_bad_requests_say_what() {
    let s = setup(10);
    let model = arg(&s.model);
    let data = arg(&s.data);
    let outcome = inspect(
        &s.out,
        &[
            model,
            "--data",
            data,
            "--saliency",
            "3",
            "--maximize",
            "conv1",
            "--top-images",
            "conv1:2",
        ],
    );
    outcome.assert_ok();
    assert!(
        outcome.stdout.contains("maximised 4 channel(s) of conv1"),
        "{outcome:#?}"
    );
    for name in [
        "saliency.png",
        "maximize_conv1.png",
        "top_conv1_2.png",
        "confusion.png",
    ] {
        assert!(s.out.join(name).exists(), "{name}: {outcome:#?}");
    }
    inspect(&s.out, &[model, "--saliency", "0"]).assert_usage("--saliency", "at least 1");
    inspect(&s.out, &[model, "--maximize", "conv1:x"]).assert_usage("--maximize", "not a channel number");
    let data_args = ["--data", data];
    let run = |extra: &[&str]| inspect(&s.out, &[&[model][..], &data_args, extra].concat());
    run(&["--maximize", "conv7"]).assert_error(&["--maximize conv7", "no module of that name", "conv1"]);
    run(&["--maximize", "conv1:9"]).assert_error(&["`conv1` has 4 channels", "channel 9"]);
    run(&["--top-images", "conv1"]).assert_error(&["--top-images needs LAYER:CHANNEL"]);
}
