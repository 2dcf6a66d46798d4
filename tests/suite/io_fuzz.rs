//! Property tests of the file readers of `io`: no byte sequence makes the model,
//! checkpoint or safetensors reader panic, and none makes it allocate more than
//! its cap — random bytes, truncations, bit flips, random payloads behind a valid
//! header and checksum (which reach the decoders of both formats), and valid files
//! whose content was changed and re-checksummed (a layer's settings, a checkpoint's
//! plan), followed as far as a program takes a loaded model: its output shape and
//! its summary.

use crate::common;
use crate::peak_alloc;
use crate::temp_dir;

use std::path::Path;
use std::sync::OnceLock;

use ferrocnn::io::{
    export_safetensors, load_checkpoint, load_model, read_model_record, read_safetensors, save_checkpoint,
    save_model, Checkpoint, ModelRecord, MAX_PAYLOAD,
};
use ferrocnn::nn::{
    footprint, AvgPool2d, BatchNorm2d, Conv2d, Conv2dBlock, Dropout, Flatten, GlobalAvgPool, LeakyReLU,
    Linear, MaxPool2d, Module, ReLU, Registry, Residual, Sequential, Sigmoid, Tanh,
};
use ferrocnn::optim::{Adam, AdamConfig, Optimizer};
use ferrocnn::train::FitOptions;
use ferrocnn::Padding;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use common::property::{self, Index};

/// What a reader may allocate for a file of `len` bytes: a few copies of the file
/// (read, decoded, built into a model) and 2 MiB of fixed cost (serde preallocates
/// up to 1 MiB for a sequence whose length it is told), and never more than the
/// payload cap. (Measured: at most 1.1 MB for the files here, of up to 6.5 kB.)
fn cap(len: usize) -> usize {
    (4 * len + (2 << 20)).min(MAX_PAYLOAD as usize)
}

/// The images every model here takes.
const INPUT: [usize; 3] = [1, 12, 12];

/// A small model of every layer kind (a convolution, batch norm, pools, a fused
/// block, a residual block, activations, dropout, a head) for 1×12×12 inputs.
fn every_kind() -> Sequential {
    let rng = &mut StdRng::seed_from_u64(5);
    let main = Sequential::new()
        .add(Conv2d::new(4, 4, (3, 3), rng).with_padding(Padding::Same))
        .add(Tanh);
    Sequential::new()
        .add(Conv2d::new(1, 4, (3, 3), rng).with_padding(Padding::Explicit(1, 1)))
        .add(BatchNorm2d::new(4))
        .add(ReLU)
        .add(MaxPool2d::new((2, 2)))
        .add(
            Conv2dBlock::new(Conv2d::new(4, 4, (3, 3), rng).with_padding(Padding::Same))
                .with_relu()
                .with_max_pool(MaxPool2d::new((2, 2))),
        )
        .add(Residual::new(main))
        .add(LeakyReLU { negative_slope: 0.1 })
        .add(AvgPool2d::new((1, 1)))
        .add(GlobalAvgPool)
        .add(Flatten)
        .add(Dropout::new(0.25, rng))
        .add(Linear::new(4, 3, rng))
        .add(Sigmoid)
}

/// The bytes of a model file of [`every_kind`].
fn valid_file() -> &'static [u8] {
    static FILE: OnceLock<Vec<u8>> = OnceLock::new();
    FILE.get_or_init(|| {
        let dir = temp_dir::tempdir().expect("temp dir");
        let path = dir.path().join("m.bin");
        save_model(&every_kind(), &path).expect("save");
        std::fs::read(&path).expect("read")
    })
}

/// The bytes of a checkpoint of [`every_kind`] with Adam's buffers.
fn valid_checkpoint() -> &'static [u8] {
    static FILE: OnceLock<Vec<u8>> = OnceLock::new();
    FILE.get_or_init(|| {
        let model = every_kind();
        let mut adam = Adam::new(AdamConfig::default());
        // One step on zero gradients gives every parameter its moments.
        let grads = {
            let tape = ferrocnn::Tape::new();
            let x = tape.input(ndarray::ArrayD::zeros(ndarray::IxDyn(&[2, 1, 12, 12])));
            let mut copy = model.clone();
            copy.forward(&x, ferrocnn::nn::Mode::Train)
                .cross_entropy(&[0, 1])
                .backward()
        };
        let mut stepped = model.clone();
        adam.step(&mut stepped.parameters_mut(), &grads);
        let checkpoint = Checkpoint {
            model: ModelRecord::of(&stepped),
            optimizer: adam.state(),
            options: FitOptions::default(),
            history: Vec::new(),
            meta: Default::default(),
        };
        let dir = temp_dir::tempdir().expect("temp dir");
        let path = dir.path().join("c.ckpt");
        save_checkpoint(&checkpoint, &path).expect("save");
        std::fs::read(&path).expect("read")
    })
}

/// `payload` behind a valid header of format `version` for `kind` (1 model, 2
/// checkpoint).
fn with_header(version: u32, kind: u8, payload: &[u8]) -> Vec<u8> {
    let mut bytes = b"FERROCNN".to_vec();
    bytes.extend_from_slice(&version.to_le_bytes());
    bytes.push(kind);
    bytes.extend_from_slice(&(payload.len() as u64).to_le_bytes());
    bytes.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
    bytes.extend_from_slice(payload);
    bytes
}

/// Writes `bytes` to a temp file and calls `f` with its path.
fn with_file<R>(bytes: &[u8], f: impl FnOnce(&Path) -> R) -> R {
    let dir = temp_dir::tempdir().expect("temp dir");
    let path = dir.path().join("x.bin");
    std::fs::write(&path, bytes).expect("write");
    f(&path)
}

/// What a program does with a model it loaded, as the examples do: checks that it
/// takes the images and what one image would cost (settings can be valid and still
/// ask for gigabytes: [`footprint`]), then runs one through it (the summary).
fn use_model(model: &dyn Module) {
    if let Ok(f) = footprint(model, &INPUT)
        && f.total <= 1 << 20
    {
        let _ = model.try_summary(&INPUT);
    }
}

/// Loads `bytes` as a model and as a checkpoint, and takes what loads as far as a
/// program would ([`use_model`], a checkpoint restored). Asserts the cap; returns
/// whether it loaded as a model.
fn load_bytes(bytes: &[u8]) -> bool {
    with_file(bytes, |path| {
        let (loaded, peak) = peak_alloc::peak_during(|| {
            if let Ok(checkpoint) = load_checkpoint(path)
                && let Ok((model, _)) = checkpoint.restore(&Registry::new())
            {
                use_model(model.as_ref());
            }
            match load_model(path) {
                Ok(model) => {
                    use_model(model.as_ref());
                    true
                }
                Err(_) => false,
            }
        });
        if std::env::var("SHOW_PEAK").is_ok() {
            eprintln!("PEAK {peak} {} {loaded}", bytes.len());
        }
        assert!(
            peak <= cap(bytes.len()),
            "{peak} bytes allocated for a file of {}",
            bytes.len()
        );
        loaded
    })
}

/// The offsets and lengths of the unsigned numbers in a JSON text.
fn numbers(json: &str) -> Vec<(usize, usize)> {
    let bytes = json.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i].is_ascii_digit() && (i == 0 || !bytes[i - 1].is_ascii_alphanumeric()) {
            let start = i;
            while i < bytes.len() && bytes[i].is_ascii_digit() {
                i += 1;
            }
            out.push((start, i - start));
        } else {
            i += 1;
        }
    }
    out
}

/// As many cases as each property had under proptest: the file runs in seconds.
const CASES: u32 = 128;

#[test]
fn random_bytes_are_rejected() {
    property::check(
        "random_bytes_are_rejected",
        CASES,
        |rng| property::bytes(rng, 0..400),
        |bytes| !load_bytes(&bytes),
    );
}

#[test]
fn truncated_files_are_rejected() {
    property::check(
        "truncated_files_are_rejected",
        CASES,
        |rng| rng.random_range(0..valid_file().len()),
        |cut| !load_bytes(&valid_file()[..cut]),
    );
}

/// Whether `valid_file` with bit `bit` of byte `at` flipped is rejected.
fn bit_flip_is_rejected((at, bit): (usize, u8)) -> bool {
    let mut file = valid_file().to_vec();
    file[at] ^= 1 << bit;
    !load_bytes(&file)
}

#[test]
fn bit_flips_are_rejected() {
    property::check(
        "bit_flips_are_rejected",
        CASES,
        |rng| (rng.random_range(0..valid_file().len()), property::bit(rng)),
        bit_flip_is_rejected,
    );
}

/// Bit flips: where (a fraction of the length, for payloads of either format) and
/// which bit.
type Flips = Vec<(Index, u8)>;

fn flips(rng: &mut StdRng) -> Flips {
    property::vec_of(rng, 1..4, |rng| (Index::random(rng), property::bit(rng)))
}

fn hostile_payload_never_panics((version, kind, payload, flips): (u32, u8, Vec<u8>, Flips)) {
    let _ = load_bytes(&with_header(version, kind, &payload));
    // A real payload with a few bits flipped (and the checksum recomputed)
    // reaches the decoder of either format: it must fail or succeed, never panic.
    for real in [&valid_file()[25..], &valid_checkpoint()[25..]] {
        let mut real = real.to_vec();
        for (at, bit) in &flips {
            let i = at.index(real.len());
            real[i] ^= 1 << bit;
        }
        let _ = load_bytes(&with_header(version, kind, &real));
    }
}

#[test]
fn hostile_payloads_behind_a_valid_header_never_panic() {
    property::check(
        "hostile_payloads_behind_a_valid_header_never_panic",
        CASES,
        |rng| {
            (
                rng.random_range(1u32..=2),
                rng.random_range(1u8..=2),
                property::bytes(rng, 0..300),
                flips(rng),
            )
        },
        hostile_payload_never_panics,
    );
}

#[test]
fn inputs_that_once_failed_pass() {
    // proptest found these (its regressions file, now gone); they run on every run
    // instead of waiting for a seed to meet them again.
    assert!(bit_flip_is_rejected((0, 0)));
    for version in 1..=2 {
        for kind in 1..=2 {
            for payload in [vec![], vec![252, 0, 0, 0, 1]] {
                hostile_payload_never_panics((version, kind, payload, vec![(Index(0), 0)]));
            }
        }
    }
}

#[test]
fn a_layer_setting_changed_never_panics_or_overallocates() {
    property::check(
        "a_layer_setting_changed_never_panics_or_overallocates",
        CASES,
        |rng| (Index::random(rng), property::hostile_u64(rng)),
        |(which, value)| {
            // One number of the architecture JSON (a channel count, a kernel size, a
            // stride, a padding, a probability) replaced, the checksum valid: the
            // loader's own checks are all that stand between it and the model.
            let record = with_file(valid_file(), |p| read_model_record(p).expect("valid"));
            let spots = numbers(&record.architecture);
            let (at, len) = spots[which.index(spots.len())];
            let mut changed = record.clone();
            changed.architecture = format!(
                "{}{value}{}",
                &record.architecture[..at],
                &record.architecture[at + len..]
            );
            let payload = bincode::serde::encode_to_vec(&changed, bincode::config::standard()).unwrap();
            let _ = load_bytes(&with_header(2, 1, &payload));
        },
    );
}

#[test]
fn safetensors_never_panic() {
    property::check(
        "safetensors_never_panic",
        CASES,
        |rng| (property::bytes(rng, 0..200), flips(rng), Index::random(rng)),
        |(bytes, flips, cut)| {
            let dir = temp_dir::tempdir().expect("temp dir");
            let path = dir.path().join("w.safetensors");
            export_safetensors(&every_kind(), &path).expect("export");
            let good = std::fs::read(&path).unwrap();
            let mut flipped = good.clone();
            for (at, bit) in &flips {
                let i = at.index(flipped.len());
                flipped[i] ^= 1 << bit;
            }
            for case in [bytes, flipped, good[..cut.index(good.len())].to_vec()] {
                std::fs::write(&path, &case).unwrap();
                let (_, peak) = peak_alloc::peak_during(|| read_safetensors(&path));
                assert!(peak <= cap(case.len()), "{peak} bytes for {} bytes", case.len());
            }
        },
    );
}

#[test]
fn the_model_of_every_kind_loads_and_fits_its_input() {
    // The base of the properties above must itself be valid, or they test nothing.
    let model = with_file(valid_file(), |p| load_model(p).expect("loads"));
    assert_eq!(model.output_shape(&INPUT).unwrap(), [3]);
    let checkpoint = with_file(valid_checkpoint(), |p| load_checkpoint(p).expect("loads"));
    checkpoint.restore(&Registry::new()).expect("restores");
}
