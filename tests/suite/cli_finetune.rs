//! The `finetune` example driven as a user drives it: bad flags are usage errors
//! (exit code 2) naming the flag; a damaged model, a model that does not fit the
//! data, an empty split are one `error:` line (exit code 1), never a panic; the
//! fine-tuned model is saved only by a run that succeeds, never over an input; and
//! no file given to it is changed.
//!
//! Each case runs the binary on a tiny synthetic dataset (8×8 images) and a small
//! model for one epoch, so the whole file takes a second or two.

use crate::cli_support;
use crate::temp_dir;

use std::path::{Path, PathBuf};

use cli_support::{
    arg, damaged_models, dataset, example, padded_net, run, save, small_net, snapshot, Outcome,
};
use ferrocnn::nn::Module;

/// A folder with an 8×8 dataset (labels `0..classes`), a 10-class model for it and
/// the path the fine-tuned model is to be saved to.
struct Setup {
    dir: temp_dir::TempDir,
    data: PathBuf,
    model: PathBuf,
    save: PathBuf,
}

fn setup(classes: u32) -> Setup {
    let dir = temp_dir::tempdir().unwrap();
    let data = dataset(&dir.path().join("data"), 8, 24, classes);
    let model = save(&small_net(1, 8, 10), dir.path(), "model.bin");
    let save = dir.path().join("tuned.bin");
    Setup {
        dir,
        data,
        model,
        save,
    }
}

impl Setup {
    /// `finetune` on this setup's model, data and save path (one epoch), then `args`.
    fn finetune(&self, args: &[&str]) -> Outcome {
        self.finetune_model(&self.model, args)
    }

    fn finetune_model(&self, model: &Path, args: &[&str]) -> Outcome {
        let base = [
            "--model",
            arg(model),
            "--data",
            arg(&self.data),
            "--save",
            arg(&self.save),
            "--epochs",
            "1",
        ];
        // A flag given twice is a usage error of its own: `args` replace the base's.
        let mut all: Vec<&str> = Vec::new();
        for pair in base.chunks(2) {
            if !args.contains(&pair[0]) {
                all.extend(pair);
            }
        }
        all.extend(args);
        run(example("finetune"), &all)
    }

    fn inputs(&self) -> Vec<(PathBuf, Vec<u8>, Option<std::time::SystemTime>)> {
        snapshot(&[&self.model, &self.data])
    }
}

#[test]
fn bad_flag_values_are_usage_errors_that_name_the_flag() {
    let s = setup(10);
    for (args, flag, says) in [
        (&["--batch-size", "0"][..], "--batch-size", "at least 1"),
        (&["--epochs", "0"], "--epochs", "at least 1"),
        (&["--limit-train", "0"], "--limit-train", "at least 1"),
        (&["--limit-train", "many"], "--limit-train", "not a whole number"),
        (&["--lr", "nan"], "--lr", "finite and above 0"),
        (&["--lr=-1"], "--lr", "finite and above 0"),
        (&["--lr", "inf"], "--lr", "finite and above 0"),
        (&["--lr", "0"], "--lr", "finite and above 0"),
        (&["--lr", "fast"], "--lr", "not a number"),
        (&["--task", "odd-even"], "--task", "invalid value"),
        (&["--freeze", "head"], "--freeze", "invalid value"),
        (&["--seed=-3"], "--seed", "invalid digit"),
    ] {
        s.finetune(args).assert_usage(flag, says);
    }
    assert!(!s.save.exists());
}

#[test]
fn a_good_run_saves_the_tuned_model_and_changes_no_input() {
    let s = setup(10);
    let before = s.inputs();
    let outcome = s.finetune(&["--compare-scratch"]);
    outcome.assert_ok();
    assert!(
        outcome.stdout.contains("fine-tuned:") && outcome.stdout.contains("from scratch:"),
        "{outcome:#?}"
    );
    let tuned = ferrocnn::io::load_model(&s.save).expect("the saved model loads");
    assert_eq!(tuned.output_shape(&[1, 8, 8]).unwrap(), [2], "even/odd head");
    assert_eq!(s.inputs(), before);
}

#[test]
fn saving_over_the_model_or_the_data_is_refused_before_anything_runs() {
    let s = setup(10);
    let before = s.inputs();
    s.finetune(&["--save", arg(&s.model)])
        .assert_usage("--save", "would replace the model");
    let images = s.data.join("train-images-idx3-ubyte");
    s.finetune(&["--save", arg(&images)])
        .assert_usage("--save", "would replace the data file");
    assert_eq!(s.inputs(), before);
}

#[test]
fn damaged_model_files_are_errors_naming_the_file_and_nothing_is_saved() {
    let s = setup(10);
    let damaged = damaged_models(&s.model, s.dir.path());
    let before = snapshot(&[s.dir.path()]);
    for (model, says) in &damaged {
        let name = model.file_name().unwrap().to_str().unwrap();
        s.finetune_model(model, &[]).assert_error(&[name, says]);
    }
    assert!(!s.save.exists());
    assert_eq!(snapshot(&[s.dir.path()]), before);
}

#[test]
fn a_model_for_other_images_is_an_error_naming_the_data_and_the_layer() {
    let s = setup(10);
    let before = s.inputs();
    let wide = save(&small_net(1, 12, 10), s.dir.path(), "wide.bin");
    let outcome = s.finetune_model(&wide, &[]);
    outcome.assert_error(&[
        "wide.bin",
        "1×8×8",
        "train-images-idx3-ubyte",
        "fc1: expects [100] inputs",
    ]);
    let rgb = save(&small_net(3, 8, 10), s.dir.path(), "rgb.bin");
    s.finetune_model(&rgb, &[]).assert_error(&["rgb.bin", "channels"]);
    assert!(!s.save.exists());
    assert_eq!(s.inputs(), before);
}

#[test]
fn a_model_that_would_need_more_memory_than_a_laptop_has_is_refused_before_it_runs() {
    let s = setup(10);
    let padded = save(&padded_net(10), s.dir.path(), "padded.bin");
    let outcome = s.finetune_model(&padded, &[]);
    outcome.assert_error(&["padded.bin", "would need", "conv1 alone holds"]);
    assert!(!s.save.exists());
}

#[test]
fn more_classes_than_the_model_has_get_a_new_head() {
    // Labels 0..20 against a 10-class model: --task same replaces the head.
    let s = setup(20);
    let outcome = s.finetune(&["--task", "same"]);
    outcome.assert_ok();
    assert!(outcome.stdout.contains("10 → 20 outputs"), "{outcome:#?}");
    let tuned = ferrocnn::io::load_model(&s.save).unwrap();
    assert_eq!(tuned.output_shape(&[1, 8, 8]).unwrap(), [20]);
}

#[test]
fn a_task_that_keeps_no_training_image_is_an_error_naming_the_task() {
    let s = setup(10);
    // Labels 5..9 only: digits 0–4 keeps nothing.
    let labels: Vec<u8> = [&[0u8, 0, 8, 1][..], &24u32.to_be_bytes()]
        .concat()
        .into_iter()
        .chain((0..24).map(|i| 5 + i % 5))
        .collect();
    for split in ["train", "t10k"] {
        std::fs::write(s.data.join(format!("{split}-labels-idx1-ubyte")), &labels).unwrap();
    }
    let outcome = s.finetune(&["--task", "digits0-to4"]);
    outcome.assert_error(&[
        "--task Digits0To4 keeps none of the 24 training images",
        "train-images",
    ]);
    assert!(!s.save.exists());
}

#[test]
fn empty_splits_an_error_for_training_and_a_note_for_testing() {
    let s = setup(10);
    let empty = dataset(&s.dir.path().join("empty"), 8, 0, 10);
    let outcome = s.finetune(&["--data", arg(&empty)]);
    outcome.assert_error(&["holds no training images", "train-images-idx3-ubyte"]);

    // Training images but no test images: it trains and says there are no figures.
    std::fs::copy(
        empty.join("t10k-images-idx3-ubyte"),
        s.data.join("t10k-images-idx3-ubyte"),
    )
    .unwrap();
    std::fs::copy(
        empty.join("t10k-labels-idx1-ubyte"),
        s.data.join("t10k-labels-idx1-ubyte"),
    )
    .unwrap();
    let outcome = s.finetune(&[]);
    outcome.assert_ok();
    assert!(
        outcome.stdout.contains("no test images") && !outcome.stdout.contains("test accuracy"),
        "{outcome:#?}"
    );
    assert!(s.save.exists());
}

#[test]
fn a_model_with_nan_weights_is_an_error_naming_the_weight() {
    let s = setup(10);
    let mut net = small_net(1, 8, 10);
    net.named_parameters_mut()[0].1.value_mut()[[1, 0, 2, 2]] = f32::INFINITY;
    let nan = save(&net, s.dir.path(), "nan.bin");
    let outcome = s.finetune_model(&nan, &[]);
    outcome.assert_error(&["nan.bin", "conv1.weight (1 value)"]);
    // Not training's "diverged … lower the learning rate", which blames the wrong thing.
    assert!(!outcome.stderr.contains("learning rate"), "{outcome:#?}");
    assert!(!s.save.exists());
}

#[test]
fn missing_files_are_errors_naming_them() {
    let s = setup(10);
    let missing = s.dir.path().join("no-such-data");
    s.finetune(&["--data", arg(&missing)])
        .assert_error(&["no-such-data", "training images"]);
    std::fs::remove_file(s.data.join("t10k-labels-idx1-ubyte")).unwrap();
    s.finetune(&[]).assert_error(&["no test labels file found"]);
    assert!(!s.save.exists());
}

#[test]
fn damaged_data_files_are_errors_naming_them() {
    let s = setup(10);
    let labels = s.data.join("train-labels-idx1-ubyte");
    let bytes = std::fs::read(&labels).unwrap();
    std::fs::write(&labels, &bytes[..bytes.len() - 3]).unwrap();
    s.finetune(&[])
        .assert_error(&["train-labels-idx1-ubyte", "truncated"]);
    std::fs::write(&labels, b"\x1f\x8b not really gzip").unwrap();
    s.finetune(&[]).assert_error(&["train-labels-idx1-ubyte", "gzip"]);
    assert!(!s.save.exists());
}

#[test]
fn a_folder_holding_x_and_x_gz_says_which_was_read() {
    let s = setup(10);
    let raw = s.data.join("train-images-idx3-ubyte");
    std::fs::copy(&raw, s.data.join("train-images-idx3-ubyte.gz")).unwrap();
    let outcome = s.finetune(&[]);
    outcome.assert_ok();
    let line = format!(
        "reading {} (train-images-idx3-ubyte.gz also exists and was ignored)",
        raw.display()
    );
    assert!(outcome.stdout.contains(&line), "{outcome:#?}");
}
