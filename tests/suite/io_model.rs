//! Model files: bit-exact round trip, and a clear error for every kind of bad file.

use crate::cli_support;
use crate::temp_dir;

use cli_support::write_record;
use ferrocnn::io::{load_model, save_model, IoError};
use ferrocnn::nn::{Mode, Module};
use ferrocnn::{zoo, Tensor};
use ndarray::{ArrayD, IxDyn};

fn saved_r1(dir: &std::path::Path) -> std::path::PathBuf {
    let path = dir.join("r1.bin");
    save_model(&zoo::mnist_default((1, 28, 28), 10, 4), &path).expect("save");
    path
}

#[test]
fn model_round_trip_is_bit_exact_and_needs_no_code() {
    let dir = temp_dir::tempdir().expect("temp dir");
    let mut model = zoo::mnist_default((1, 28, 28), 10, 4);
    let path = dir.path().join("m.bin");
    save_model(&model, &path).expect("save");
    let mut loaded = load_model(&path).expect("load");
    let names = |m: &dyn Module| {
        m.named_parameters()
            .into_iter()
            .map(|(n, p)| (n, p.value().clone()))
            .collect::<Vec<_>>()
    };
    assert_eq!(names(&model), names(loaded.as_ref()));
    let x = Tensor::new(ferrocnn::gradcheck::random_like(&[2, 1, 28, 28], 1));
    assert_eq!(
        model.forward(&x, Mode::Eval).value(),
        loaded.forward(&x, Mode::Eval).value()
    );
    assert!(!dir.path().read_dir().unwrap().any(|e| e
        .unwrap()
        .file_name()
        .to_string_lossy()
        .ends_with(".tmp")));
}

#[test]
fn load_rejects_foreign_truncated_corrupt_and_newer_files() {
    let dir = temp_dir::tempdir().expect("temp dir");
    let path = saved_r1(dir.path());
    let good = std::fs::read(&path).unwrap();
    let write = |name: &str, bytes: &[u8]| {
        let p = dir.path().join(name);
        std::fs::write(&p, bytes).unwrap();
        p
    };

    let err = load_model(write("png.bin", b"\x89PNG\r\n\x1a\n....")).unwrap_err();
    assert!(matches!(err, IoError::NotFerrocnn { .. }), "{err}");
    assert!(err.to_string().contains("png.bin") && err.to_string().contains("not a ferrocnn file"));

    let err = load_model(write("short.bin", &good[..good.len() / 2])).unwrap_err();
    assert!(matches!(err, IoError::Truncated { .. }), "{err}");

    let mut flipped = good.clone();
    let at = flipped.len() - 100;
    flipped[at] ^= 0x10;
    let err = load_model(write("flipped.bin", &flipped)).unwrap_err();
    assert!(
        matches!(err, IoError::Corrupt { .. }) && err.to_string().contains("checksum"),
        "{err}"
    );

    let mut newer = good.clone();
    newer[8..12].copy_from_slice(&99u32.to_le_bytes());
    let err = load_model(write("newer.bin", &newer)).unwrap_err();
    assert!(matches!(err, IoError::NewerVersion { found: 99, .. }), "{err}");

    let err = load_model(dir.path().join("missing.bin")).unwrap_err();
    assert!(
        matches!(err, IoError::Io { .. }) && err.to_string().contains("missing.bin"),
        "{err}"
    );
}

#[test]
fn saving_over_a_file_replaces_it_whole() {
    let dir = temp_dir::tempdir().expect("temp dir");
    let path = saved_r1(dir.path());
    let other = zoo::r1((1, 28, 28), 10, 1);
    save_model(&other, &path).expect("overwrite");
    let loaded = load_model(&path).expect("load");
    assert_eq!(loaded.num_parameters(), other.num_parameters());
    let _ = ArrayD::<f32>::zeros(IxDyn(&[1]));
}

#[test]
fn strict_load_names_the_first_mismatched_layer_and_both_shapes() {
    let dir = temp_dir::tempdir().expect("temp dir");
    let path = dir.path().join("r1.bin");
    save_model(&zoo::r1((1, 28, 28), 10, 1), &path).expect("save");

    // Same architecture: loads, values equal.
    let mut same = zoo::r1((1, 28, 28), 10, 2);
    let report = ferrocnn::io::load_weights(&mut same, &path, true).expect("strict load");
    assert!(report.missing.is_empty() && report.unexpected.is_empty());
    assert_eq!(same.state_dict(), zoo::r1((1, 28, 28), 10, 1).state_dict());

    // Another class count: the head differs.
    let mut other = zoo::r1((1, 28, 28), 5, 2);
    let before = other.state_dict();
    let err = ferrocnn::io::load_weights(&mut other, &path, false).unwrap_err();
    assert!(
        matches!(&err, IoError::ShapeMismatch { name, found, expected } if name == "fc1.weight" && found == &[10, 1600] && expected == &[5, 1600]),
        "{err}"
    );
    assert_eq!(other.state_dict(), before, "nothing changes on error");

    // A model with only the first layer: strict refuses, non-strict loads what
    // matches and reports the rest.
    let rng = &mut rand::SeedableRng::seed_from_u64(0);
    let mut partial = ferrocnn::nn::Sequential::new().add(ferrocnn::nn::Conv2d::new(1, 32, (3, 3), rng));
    let err = ferrocnn::io::load_weights(&mut partial, &path, true).unwrap_err();
    assert!(
        matches!(err, IoError::KeyMismatch(_)) && err.to_string().contains("conv2.weight"),
        "{err}"
    );
    let report = ferrocnn::io::load_weights(&mut partial, &path, false).expect("non-strict");
    assert_eq!(
        report.unexpected,
        ["conv2.weight", "conv2.bias", "fc1.weight", "fc1.bias"]
    );
    assert_eq!(
        partial.state_dict()[0],
        zoo::r1((1, 28, 28), 10, 1).state_dict()[0]
    );
}

#[test]
fn safetensors_export_reads_back_the_same_values() {
    let dir = temp_dir::tempdir().expect("temp dir");
    let path = dir.path().join("w.safetensors");
    let model = zoo::mnist_default((1, 28, 28), 10, 3);
    ferrocnn::io::export_safetensors(&model, &path).expect("export");
    let mut expected = model.state_dict();
    expected.sort_by(|a, b| a.0.cmp(&b.0));
    let read = ferrocnn::io::read_safetensors(&path).expect("read");
    assert_eq!(read, expected);
    assert!(read
        .iter()
        .any(|(n, v)| n == "conv1.weight" && v.shape() == [32, 1, 3, 3]));
    assert!(read.iter().any(|(n, _)| n == "bn1.running_var"));
    // The layout is the public format: an 8-byte little-endian header length, then JSON.
    let bytes = std::fs::read(&path).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header = std::str::from_utf8(&bytes[8..8 + n]).expect("JSON header");
    assert!(
        header.contains("\"conv1.weight\"") && header.contains("\"F32\""),
        "{header}"
    );
}

/// Child side of `atomic_save_survives_being_killed`: saves in a loop until killed.
#[test]
fn save_loop_child() {
    let Ok(path) = std::env::var("FERROCNN_SAVE_LOOP") else {
        return;
    };
    let models = [zoo::r2((1, 28, 28), 10, 1), zoo::r2((1, 28, 28), 10, 2)];
    for i in 0.. {
        save_model(&models[i % 2], &path).expect("save");
    }
}

#[test]
fn atomic_save_survives_being_killed() {
    let dir = temp_dir::tempdir().expect("temp dir");
    let path = dir.path().join("r2.bin");
    save_model(&zoo::r2((1, 28, 28), 10, 0), &path).expect("first save");
    for delay_ms in [30, 70, 110, 150] {
        let mut child = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "save_loop_child", "--nocapture"])
            .env("FERROCNN_SAVE_LOOP", &path)
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("spawn the saving child");
        std::thread::sleep(std::time::Duration::from_millis(delay_ms));
        child.kill().expect("kill");
        child.wait().expect("reap");
        let model = load_model(&path).expect("the file is always a whole model, old or new");
        assert_eq!(model.num_parameters(), 1_199_882);
    }
}

/// The golden file: a model of every layer kind of format 1, written by ferrocnn's
/// first release (tests/golden/all_layers_v1.bin), with batch-norm statistics,
/// a dropout counter and a frozen weight moved off their defaults.
const GOLDEN_V1: &str = "tests/golden/all_layers_v1.bin";

/// The model's evaluation-mode output computed on a tape (the training path's ops).
fn on_a_tape(model: &mut dyn Module, x: &Tensor) -> ArrayD<f32> {
    let tape = ferrocnn::Tape::new();
    model
        .forward(&tape.input(x.value().clone()), Mode::Eval)
        .value()
        .clone()
}

fn bits(values: &ArrayD<f32>) -> Vec<u32> {
    values.iter().map(|v| v.to_bits()).collect()
}

/// Equal to `expected` (f32 bit patterns) within a few units of rounding.
fn assert_close(values: &ArrayD<f32>, expected: &[u32]) {
    for (v, e) in values.iter().zip(expected) {
        let e = f32::from_bits(*e);
        assert!((v - e).abs() <= 1e-6 * e.abs().max(1.0), "{v} vs {e}");
    }
}

fn golden_input() -> Tensor {
    let x = ndarray::Array4::from_shape_fn((2, 1, 8, 8), |(n, _, y, x)| {
        ((n * 5 + y * 2 + x) % 9) as f32 / 4.0 - 1.0
    });
    Tensor::new(x.into_dyn())
}

#[test]
fn format_1_files_still_load_bit_exactly() {
    let mut model = load_model(GOLDEN_V1).expect("a format-1 file loads");
    let names: Vec<String> = model.state_dict().into_iter().map(|(n, _)| n).collect();
    assert_eq!(
        names,
        [
            "conv1.weight",
            "conv1.bias",
            "bn1.weight",
            "bn1.bias",
            "bn1.running_mean",
            "bn1.running_var",
            "conv2.weight",
            "fc1.weight",
            "fc1.bias",
            "fc2.weight",
        ]
    );
    let kinds: Vec<String> = model
        .children()
        .iter()
        .map(|(_, m)| m.kind().to_string())
        .collect();
    assert_eq!(
        kinds,
        [
            "Conv2d",
            "BatchNorm2d",
            "ReLU",
            "MaxPool2d",
            "Conv2d",
            "LeakyReLU",
            "AvgPool2d",
            "Tanh",
            "Dropout",
            "Flatten",
            "Linear",
            "Sigmoid",
            "Linear",
        ]
    );
    // What ferrocnn 0.1 computed for this input: bit for bit through the same ops
    // (on a tape), within rounding through inference's faster dense product.
    let expected: [u32; 6] = [
        1000769408, 1068079692, 3206428960, 3168412848, 1067701620, 3205803170,
    ];
    assert_eq!(bits(&on_a_tape(model.as_mut(), &golden_input())), expected);
    let y = model.forward(&golden_input(), Mode::Eval);
    assert_close(y.value(), &expected);
    // State beyond the weights survives: the frozen flag, the counters.
    let frozen: Vec<String> = model
        .named_parameters()
        .into_iter()
        .filter(|(_, p)| p.is_frozen())
        .map(|(n, _)| n)
        .collect();
    assert_eq!(frozen, ["fc2.weight"]);
    let dropout = model.named_modules().into_iter().find_map(|(_, m)| {
        m.downcast_ref::<ferrocnn::nn::Dropout>()
            .map(|d| (d.seed, d.calls))
    });
    assert_eq!(dropout, Some((12447319193965048217, 3)));
    let bn = model.children()[1]
        .1
        .downcast_ref::<ferrocnn::nn::BatchNorm2d>()
        .unwrap()
        .num_batches_tracked;
    assert_eq!(bn, 3);

    // Saved again, it is a format-2 file that loads to the same model.
    let dir = temp_dir::tempdir().expect("temp dir");
    let path = dir.path().join("v2.bin");
    save_model(model.as_ref(), &path).expect("save");
    assert_eq!(std::fs::read(&path).unwrap()[8..12], 2u32.to_le_bytes());
    let mut again = load_model(&path).expect("load");
    assert_eq!(again.forward(&golden_input(), Mode::Eval).value(), y.value());
    assert_eq!(
        ferrocnn::io::read_model_record(&path).unwrap(),
        ferrocnn::io::ModelRecord::of(model.as_ref())
    );
}

#[test]
fn the_shipped_model_loads_bit_exactly() {
    let mut model = load_model("models/mnist.bin").expect("the shipped model");
    let mnist = ferrocnn::data::Mnist::load("datasets/mnist").expect("shipped MNIST");
    let x = Tensor::new(mnist.test.to_array(0..1).into_dyn());
    // The first test image's logits as ferrocnn 0.1 computed them (the file is format
    // 1): bit for bit through the same ops, within rounding through inference's.
    let expected: [u32; 10] = [
        3236811581, 1080205280, 1081720439, 1081024082, 3229445318, 3227226431, 3249079944, 1101356139,
        3221836727, 1078063629,
    ];
    assert_eq!(bits(&on_a_tape(model.as_mut(), &x)), expected);
    assert_close(model.forward(&x, Mode::Eval).value(), &expected);
    // And the figures of models/README.md: 99.46% (54 wrong), loss 0.0176.
    let e = ferrocnn::train::evaluate(model.as_mut(), &mnist.test, 1000).unwrap();
    let wrong = (0..mnist.test.len())
        .filter(|&i| e.predictions[i] != mnist.test.label(i))
        .count();
    assert_eq!(wrong, 54);
    assert!((e.loss - 0.017_621_19).abs() < 1e-6, "{}", e.loss);
}

#[test]
fn the_architecture_is_stored_by_name_as_json() {
    let dir = temp_dir::tempdir().expect("temp dir");
    let path = dir.path().join("r3.bin");
    save_model(&zoo::r3((1, 28, 28), 10, 0), &path).expect("save");
    let record = ferrocnn::io::read_model_record(&path).expect("read");
    let json: serde_json::Value = serde_json::from_str(&record.architecture).expect("JSON");
    assert_eq!(json["format"], 1);
    assert_eq!(json["model"]["kind"], "Sequential");
    assert_eq!(json["model"]["children"][0][0], "conv1");
    assert_eq!(json["model"]["children"][0][1]["kind"], "Conv2d");
    assert_eq!(json["model"]["children"][0][1]["config"]["out_channels"], 16);
    assert_eq!(
        json["model"]["children"][3][1]["children"][2][1]["kind"],
        "Residual"
    );
    assert!(record
        .tensors
        .iter()
        .any(|(n, _)| n == "blocks.2.shortcut.conv1.weight"));
}

#[test]
fn a_file_whose_content_does_not_hold_together_is_an_error_not_a_panic() {
    let dir = temp_dir::tempdir().expect("temp dir");
    let good = ferrocnn::io::ModelRecord::of(&zoo::r1((1, 28, 28), 10, 0));
    type Damage = Box<dyn Fn(&mut ferrocnn::io::ModelRecord)>;
    let cases: Vec<(&str, Damage, &str)> = vec![
        (
            "unknown kind",
            Box::new(|r| r.architecture = r.architecture.replacen("\"Linear\"", "\"Dense\"", 1)),
            "unknown module kind \"Dense\"",
        ),
        (
            "stride 0",
            Box::new(|r| r.architecture = r.architecture.replacen("\"stride\":[1,1]", "\"stride\":[0,1]", 1)),
            "at least 1",
        ),
        (
            "a weight stored 2-d",
            Box::new(|r| r.tensors[0].1 = ndarray::ArrayD::zeros(ndarray::IxDyn(&[32, 9]))),
            "conv1.weight",
        ),
        (
            "a missing weight",
            Box::new(|r| {
                r.tensors.remove(1);
            }),
            "conv1.bias",
        ),
        (
            "not JSON",
            Box::new(|r| r.architecture = "{".into()),
            "architecture",
        ),
        (
            // A few bytes of JSON must not make the loader allocate 25 GB (it aborted).
            "a layer claiming billions of weights",
            Box::new(|r| {
                r.architecture =
                    r.architecture
                        .replacen("\"in_features\":1600", "\"in_features\":640000000", 1)
            }),
            "[10, 640000000] would hold 6400000000 values",
        ),
        (
            "a layer whose size overflows",
            Box::new(|r| {
                r.architecture =
                    r.architecture
                        .replacen("\"out_channels\":32", "\"out_channels\":18446744073709551615", 1)
            }),
            "larger than memory",
        ),
        (
            "a frozen name that does not exist",
            Box::new(|r| r.frozen.push("conv9.weight".into())),
            "conv9.weight",
        ),
    ];
    for (what, damage, says) in cases {
        let mut record = good.clone();
        damage(&mut record);
        let path = dir.path().join("bad.bin");
        write_record(&path, &record);
        let err = load_model(&path)
            .err()
            .unwrap_or_else(|| panic!("{what}: loaded"));
        let text = err.to_string();
        assert!(text.contains("bad.bin") && text.contains(says), "{what}: {text}");
    }
}

#[test]
fn a_device_given_as_a_model_is_read_within_the_limit() {
    if !std::path::Path::new("/dev/zero").exists() {
        return;
    }
    // /dev/zero reports no size and never ends: reading stops after the header, which
    // is not ours (zeros, not "FERROCNN").
    let err = load_model("/dev/zero").expect_err("not a model");
    assert!(matches!(err, IoError::NotFerrocnn { .. }), "{err}");
}

#[test]
fn temp_files_left_by_killed_saves_are_cleaned_up() {
    let dir = temp_dir::tempdir().expect("temp dir");
    let path = dir.path().join("m.bin");
    // A save killed mid-write by a process that no longer runs (pid 0 never is a
    // user process), and one of a live process (this one's parent, say) to keep.
    let dead = dir.path().join(".m.bin.0.tmp");
    let other = dir.path().join(".other.bin.0.tmp");
    std::fs::write(&dead, b"half").unwrap();
    std::fs::write(&other, b"another file's").unwrap();
    save_model(&zoo::r1((1, 28, 28), 10, 0), &path).expect("save");
    if std::path::Path::new("/proc/self").exists() {
        assert!(!dead.exists(), "the stale temp file of m.bin is removed");
    }
    assert!(other.exists(), "another file's temp file is left alone");
}
