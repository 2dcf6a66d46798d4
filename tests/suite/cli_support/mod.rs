//! What the CLI test files share (each uses a part): running
//! an example binary, tiny MNIST-style folders written as IDX files, small model
//! files (healthy or damaged), and a check that files given to a run are left as
//! they were.
//!
//! The example binaries are the ones `cargo test` builds beside the tests; after
//! changing an example, run plain `cargo test` (not `cargo test --test suite`, which
//! does not rebuild the examples).
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::SystemTime;

use ferrocnn::io::{save_checkpoint, save_model, Checkpoint, FileKind, ModelRecord};
use ferrocnn::nn::{Conv2d, Flatten, Linear, MaxPool2d, Module, ReLU, Sequential};
use ferrocnn::optim::{Adam, AdamConfig, Optimizer};
use ferrocnn::train::FitOptions;
use rand::SeedableRng;

/// The example `name`'s binary, run from the crate root.
pub fn example(name: &str) -> Command {
    let mut command = Command::new(example_path(name));
    command.current_dir(env!("CARGO_MANIFEST_DIR"));
    command
}

/// The path of the example `name`'s binary, which `cargo test` builds beside the
/// tests.
pub fn example_path(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let dir = exe
        .parent()
        .and_then(|d| d.parent())
        .expect("target profile folder");
    let path = dir
        .join("examples")
        .join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    assert!(
        path.exists(),
        "{} is missing: run `cargo test`, which builds the examples",
        path.display()
    );
    path
}

/// How a run ended.
#[derive(Debug)]
pub struct Outcome {
    /// The exit code (-1 if killed by a signal).
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Outcome {
    /// Asserts a failure reported as one `error: …` line (exit code 1, no panic)
    /// that contains every one of `says`.
    pub fn assert_error(&self, says: &[&str]) {
        assert_eq!(self.code, 1, "{self:#?}");
        let last = self.stderr.lines().last().unwrap_or("");
        assert!(
            last.starts_with("error: ") && !self.stderr.contains("panicked"),
            "{self:#?}"
        );
        for text in says {
            assert!(last.contains(text), "missing {text:?}: {self:#?}");
        }
    }

    /// Asserts a usage error (exit code 2) naming `flag` and saying `says`.
    pub fn assert_usage(&self, flag: &str, says: &str) {
        assert_eq!(self.code, 2, "{self:#?}");
        assert!(
            self.stderr.contains(flag) && self.stderr.contains(says),
            "{flag} / {says}: {self:#?}"
        );
    }

    /// Asserts success.
    pub fn assert_ok(&self) {
        assert_eq!(self.code, 0, "{self:#?}");
        assert!(!self.stderr.contains("panicked"), "{self:#?}");
    }
}

/// Runs `command` with `args` and collects its output.
pub fn run(mut command: Command, args: &[&str]) -> Outcome {
    let output = command.args(args).output().expect("runs");
    Outcome {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// A path as a `&str` argument.
pub fn arg(path: &Path) -> &str {
    path.to_str().expect("UTF-8 temp path")
}

/// IDX image bytes: `n` images of `side`×`side`.
pub fn idx_images(n: u32, side: u32) -> Vec<u8> {
    let mut bytes = Vec::new();
    for x in [2051, n, side, side] {
        bytes.extend_from_slice(&x.to_be_bytes());
    }
    bytes.extend((0..n * side * side).map(|i| (i * 37 % 256) as u8));
    bytes
}

/// IDX label bytes: `n` labels cycling through `0..classes`.
pub fn idx_labels(n: u32, classes: u32) -> Vec<u8> {
    let mut bytes = Vec::new();
    for x in [2049, n] {
        bytes.extend_from_slice(&x.to_be_bytes());
    }
    bytes.extend((0..n).map(|i| (i % classes) as u8));
    bytes
}

/// Writes an MNIST-style folder `dir` (created) with `n` raw images of
/// `side`×`side` per split, labelled `0..classes`; returns the folder.
pub fn dataset(dir: &Path, side: u32, n: u32, classes: u32) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    for split in ["train", "t10k"] {
        std::fs::write(
            dir.join(format!("{split}-images-idx3-ubyte")),
            idx_images(n, side),
        )
        .unwrap();
        std::fs::write(
            dir.join(format!("{split}-labels-idx1-ubyte")),
            idx_labels(n, classes),
        )
        .unwrap();
    }
    dir.to_path_buf()
}

/// A small convnet for `channels`×`side`×`side` inputs with `classes` outputs:
/// conv 3×3 → ReLU → max pool 2 → Linear (the head).
pub fn small_net(channels: usize, side: usize, classes: usize) -> Sequential {
    small_net_of(channels, (side, side), classes)
}

/// [`small_net`] for `channels`×`height`×`width` inputs.
pub fn small_net_of(channels: usize, (height, width): (usize, usize), classes: usize) -> Sequential {
    let rng = &mut rand::rngs::StdRng::seed_from_u64(3);
    let pooled = ((height - 2) / 2) * ((width - 2) / 2);
    Sequential::new()
        .add(Conv2d::new(channels, 4, (3, 3), rng))
        .add(ReLU)
        .add(MaxPool2d::new((2, 2)))
        .add(Flatten)
        .add(Linear::new(4 * pooled, classes, rng))
}

/// Saves `model` as `dir/name`; returns the path.
pub fn save(model: &dyn Module, dir: &Path, name: &str) -> PathBuf {
    let path = dir.join(name);
    save_model(model, &path).expect("save");
    path
}

/// Writes a format-2 model file holding `record`, with a valid header and checksum
/// (the layout is the public format), so that what it holds reaches the loader's
/// checks.
pub fn write_record(path: &Path, record: &ModelRecord) {
    write_file(path, FileKind::Model, record);
}

/// Writes `value` as a ferrocnn file of `kind` (the version this build writes),
/// with a valid header and checksum: the public layout, by hand, so that a test
/// can put in it what `save_*` never would.
pub fn write_file(path: &Path, kind: FileKind, value: &impl serde::Serialize) {
    let payload = bincode::serde::encode_to_vec(value, bincode::config::standard()).unwrap();
    let mut bytes = b"FERROCNN".to_vec();
    bytes.extend_from_slice(&kind.written_version().to_le_bytes());
    bytes.push(kind as u8);
    bytes.extend_from_slice(&(payload.len() as u64).to_le_bytes());
    bytes.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
    bytes.extend_from_slice(&payload);
    std::fs::write(path, bytes).unwrap();
}

/// Damaged copies of the model file `good` in `dir`, each with what its error must
/// say: a checkpoint, truncated, bit-flipped, not a ferrocnn file, and valid checksums around
/// content that does not hold together (an unknown layer, a weight of the wrong
/// shape).
pub fn damaged_models(good: &Path, dir: &Path) -> Vec<(PathBuf, &'static str)> {
    let bytes = std::fs::read(good).unwrap();
    let write = |name: &str, bytes: &[u8]| {
        let path = dir.join(name);
        std::fs::write(&path, bytes).unwrap();
        path
    };
    let mut flipped = bytes.clone();
    let at = flipped.len() - 7;
    flipped[at] ^= 0x20;
    let record = ferrocnn::io::read_model_record(good).unwrap();
    let mut unknown = record.clone();
    unknown.architecture = unknown.architecture.replacen("\"Linear\"", "\"Dense\"", 1);
    let unknown_path = dir.join("unknown-kind.bin");
    write_record(&unknown_path, &unknown);
    let mut reshaped = record;
    reshaped.tensors[0].1 = ndarray::ArrayD::zeros(ndarray::IxDyn(&[4, 9]));
    let reshaped_path = dir.join("reshaped.bin");
    write_record(&reshaped_path, &reshaped);
    let checkpoint = Checkpoint {
        model: ModelRecord::of(ferrocnn::io::load_model(good).unwrap().as_ref()),
        optimizer: Adam::new(AdamConfig::default()).state(),
        options: FitOptions::default(),
        history: Vec::new(),
        meta: Default::default(),
    };
    let checkpoint_path = dir.join("checkpoint.ckpt");
    save_checkpoint(&checkpoint, &checkpoint_path).unwrap();
    vec![
        (checkpoint_path, "Checkpoint"),
        (write("truncated.bin", &bytes[..bytes.len() / 2]), "truncated"),
        (write("flipped.bin", &flipped), "checksum"),
        (
            write("png.bin", b"\x89PNG\r\n\x1a\n not a model"),
            "not a ferrocnn file",
        ),
        (write("empty.bin", b""), "not a ferrocnn file"),
        (unknown_path, "unknown module kind \"Dense\""),
        (reshaped_path, "conv1.weight"),
        (dir.join("missing.bin"), "No such file"),
    ]
}

/// Every file under the given paths (folders walked) with its bytes and time of
/// last change, to compare before and after a run.
pub fn snapshot(paths: &[&Path]) -> Vec<(PathBuf, Vec<u8>, Option<SystemTime>)> {
    let mut out = Vec::new();
    for path in paths {
        if path.is_dir() {
            let mut entries: Vec<PathBuf> = std::fs::read_dir(path)
                .unwrap()
                .map(|e| e.unwrap().path())
                .collect();
            entries.sort();
            let refs: Vec<&Path> = entries.iter().map(PathBuf::as_path).collect();
            out.extend(snapshot(&refs));
        } else if let Ok(bytes) = std::fs::read(path) {
            let modified = std::fs::metadata(path).and_then(|m| m.modified()).ok();
            out.push((path.to_path_buf(), bytes, modified));
        }
    }
    out
}

/// A valid model whose first convolution pads its input by 100 000 pixels a side
/// (then global pooling, so any image size fits): a few bytes of settings that
/// make one image's activations tens of gigabytes.
pub fn padded_net(classes: usize) -> Sequential {
    let rng = &mut rand::rngs::StdRng::seed_from_u64(3);
    Sequential::new()
        .add(Conv2d::new(1, 4, (3, 3), rng).with_padding(ferrocnn::Padding::Explicit(100_000, 100_000)))
        .add(ferrocnn::nn::GlobalAvgPool)
        .add(Linear::new(4, classes, rng))
}
