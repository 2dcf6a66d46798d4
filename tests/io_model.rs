//! Model files: bit-exact round trip, and a clear error for every kind of bad file.

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
    let dir = tempfile::tempdir().expect("temp dir");
    let mut model = zoo::mnist_default((1, 28, 28), 10, 4);
    let path = dir.path().join("m.bin");
    save_model(&model, &path).expect("save");
    let mut loaded = load_model(&path).expect("load");
    let names = |m: &ferrocnn::nn::Sequential| {
        m.named_parameters()
            .into_iter()
            .map(|(n, p)| (n, p.value().clone()))
            .collect::<Vec<_>>()
    };
    assert_eq!(names(&model), names(&loaded));
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
    let dir = tempfile::tempdir().expect("temp dir");
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
    let dir = tempfile::tempdir().expect("temp dir");
    let path = saved_r1(dir.path());
    let other = zoo::r1((1, 28, 28), 10, 1);
    save_model(&other, &path).expect("overwrite");
    let loaded = load_model(&path).expect("load");
    assert_eq!(loaded.num_parameters(), other.num_parameters());
    let _ = ArrayD::<f32>::zeros(IxDyn(&[1]));
}

#[test]
fn strict_load_names_the_first_mismatched_layer_and_both_shapes() {
    let dir = tempfile::tempdir().expect("temp dir");
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
    let dir = tempfile::tempdir().expect("temp dir");
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
    let dir = tempfile::tempdir().expect("temp dir");
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
