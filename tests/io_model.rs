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
