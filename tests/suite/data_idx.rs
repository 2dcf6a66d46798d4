//! The IDX reader on crafted files: every way a file can be wrong gives its own error
//! variant and a message naming the file; random and damaged bytes never panic, and
//! never make it allocate more than the data that arrives.

use crate::common;
use crate::peak_alloc;
use crate::temp_dir;

use std::io::Write;
use std::path::{Path, PathBuf};

use ferrocnn::data::idx::{self, MAX_DATA_BYTES};
use ferrocnn::data::{DataError, IdxKind};
use flate2::write::GzEncoder;
use flate2::Compression;
use rand::Rng;

use common::property::{self, Index};

fn images_bytes(count: u32, rows: u32, cols: u32, data: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    for x in [2051, count, rows, cols] {
        v.extend_from_slice(&u32::to_be_bytes(x));
    }
    v.extend_from_slice(data);
    v
}

fn labels_bytes(count: u32, data: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    for x in [2049, count] {
        v.extend_from_slice(&u32::to_be_bytes(x));
    }
    v.extend_from_slice(data);
    v
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = GzEncoder::new(Vec::new(), Compression::fast());
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
}

/// Two 2×3 images: pixels 0..12.
fn two_images() -> Vec<u8> {
    images_bytes(2, 2, 3, &(0..12).collect::<Vec<u8>>())
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

/// Writes `bytes` raw and gzip'd; returns both paths.
fn write_both(dir: &Path, name: &str, bytes: &[u8]) -> [PathBuf; 2] {
    [
        write(dir, name, bytes),
        write(dir, &format!("{name}.gz"), &gzip(bytes)),
    ]
}

fn assert_names(err: &DataError, path: &Path) {
    let msg = err.to_string();
    assert!(
        msg.contains(&path.display().to_string()),
        "message does not name {}: {msg}",
        path.display()
    );
}

#[test]
fn reads_raw_and_gzip_images_alike() {
    let dir = temp_dir::tempdir().unwrap();
    for path in write_both(dir.path(), "img", &two_images()) {
        let images = idx::read_images(&path).unwrap();
        assert_eq!((images.count, images.rows, images.cols), (2, 2, 3));
        assert_eq!(images.pixels, (0..12).collect::<Vec<u8>>());
    }
}

#[test]
fn reads_raw_and_gzip_labels_alike() {
    let dir = temp_dir::tempdir().unwrap();
    for path in write_both(dir.path(), "lbl", &labels_bytes(3, &[7, 0, 9])) {
        assert_eq!(idx::read_labels(&path).unwrap(), vec![7, 0, 9]);
    }
}

#[test]
fn detects_gzip_by_magic_bytes_not_extension() {
    let dir = temp_dir::tempdir().unwrap();
    let raw_named_gz = write(dir.path(), "raw.gz", &two_images());
    let gz_named_raw = write(dir.path(), "gz-without-extension", &gzip(&two_images()));
    assert_eq!(idx::read_images(&raw_named_gz).unwrap().count, 2);
    assert_eq!(idx::read_images(&gz_named_raw).unwrap().count, 2);
}

#[test]
fn accepts_any_declared_size_including_empty() {
    let dir = temp_dir::tempdir().unwrap();
    let path = write(dir.path(), "empty", &images_bytes(0, 32, 32, &[]));
    let images = idx::read_images(&path).unwrap();
    assert_eq!((images.count, images.rows, images.cols), (0, 32, 32));
    let path = write(dir.path(), "one", &images_bytes(1, 1, 5, &[1, 2, 3, 4, 5]));
    assert_eq!(idx::read_images(&path).unwrap().pixels, vec![1, 2, 3, 4, 5]);
}

#[test]
fn missing_file_is_not_found_naming_it() {
    let dir = temp_dir::tempdir().unwrap();
    let path = dir.path().join("nope-idx3-ubyte.gz");
    let err = idx::read_images(&path).unwrap_err();
    assert!(matches!(err, DataError::NotFound { .. }), "{err:?}");
    assert_names(&err, &path);
    assert!(err.to_string().contains("not found"));
}

#[test]
fn unreadable_path_is_io_error_naming_it() {
    let dir = temp_dir::tempdir().unwrap();
    // A directory opens on Unix but cannot be read as a file.
    let err = idx::read_labels(dir.path()).unwrap_err();
    assert!(matches!(err, DataError::Io { .. }), "{err:?}");
    assert_names(&err, dir.path());
}

#[test]
fn label_file_read_as_images_is_bad_magic() {
    let dir = temp_dir::tempdir().unwrap();
    for path in write_both(dir.path(), "lbl", &labels_bytes(3, &[1, 2, 3])) {
        let err = idx::read_images(&path).unwrap_err();
        match &err {
            DataError::BadMagic { kind, found, .. } => {
                assert_eq!((*kind, *found), (IdxKind::Images, 2049));
            }
            other => panic!("expected BadMagic, got {other:?}"),
        }
        let msg = err.to_string();
        assert_names(&err, &path);
        assert!(msg.contains("not an IDX image file"), "{msg}");
        assert!(msg.contains("2049") && msg.contains("2051"), "{msg}");
    }
}

#[test]
fn image_file_read_as_labels_is_bad_magic() {
    let dir = temp_dir::tempdir().unwrap();
    let path = write(dir.path(), "img", &two_images());
    let err = idx::read_labels(&path).unwrap_err();
    assert!(
        matches!(
            err,
            DataError::BadMagic {
                kind: IdxKind::Labels,
                found: 2051,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("not an IDX label file"));
}

#[test]
fn text_file_is_bad_magic() {
    let dir = temp_dir::tempdir().unwrap();
    let path = write(dir.path(), "notes.txt", b"hello, this is not a dataset\n");
    let err = idx::read_images(&path).unwrap_err();
    assert!(matches!(err, DataError::BadMagic { .. }), "{err:?}");
    assert_names(&err, &path);
}

#[test]
fn file_shorter_than_header_is_short_header() {
    let dir = temp_dir::tempdir().unwrap();
    let cut = &two_images()[..10];
    for path in write_both(dir.path(), "img", cut) {
        let err = idx::read_images(&path).unwrap_err();
        assert!(
            matches!(
                err,
                DataError::ShortHeader {
                    expected: 16,
                    found: 10,
                    ..
                }
            ),
            "{err:?}"
        );
        assert_names(&err, &path);
    }
    for path in write_both(dir.path(), "empty", &[]) {
        let err = idx::read_labels(&path).unwrap_err();
        assert!(
            matches!(
                err,
                DataError::ShortHeader {
                    expected: 8,
                    found: 0,
                    ..
                }
            ),
            "{err:?}"
        );
    }
}

#[test]
fn missing_data_is_truncated_with_counts() {
    let dir = temp_dir::tempdir().unwrap();
    let bytes = two_images();
    for path in write_both(dir.path(), "img", &bytes[..bytes.len() - 5]) {
        let err = idx::read_images(&path).unwrap_err();
        assert!(
            matches!(
                err,
                DataError::Truncated {
                    expected: 12,
                    found: 7,
                    ..
                }
            ),
            "{err:?}"
        );
        let msg = err.to_string();
        assert_names(&err, &path);
        assert!(
            msg.contains("truncated") && msg.contains("12") && msg.contains('7'),
            "{msg}"
        );
    }
}

#[test]
fn lying_header_is_truncated_without_allocating_the_claim() {
    let dir = temp_dir::tempdir().unwrap();
    // Claims 60000 * 1000 * 60 = 3.6e9 bytes (under the cap) but holds 12.
    let bytes = images_bytes(60_000, 1000, 60, &[0; 12]);
    for path in write_both(dir.path(), "liar", &bytes) {
        let err = idx::read_images(&path).unwrap_err();
        assert!(
            matches!(
                err,
                DataError::Truncated {
                    expected: 3_600_000_000,
                    found: 12,
                    ..
                }
            ),
            "{err:?}"
        );
    }
}

#[test]
fn extra_bytes_are_trailing_garbage() {
    let dir = temp_dir::tempdir().unwrap();
    let mut bytes = labels_bytes(2, &[1, 2]);
    bytes.extend_from_slice(b"junk");
    for path in write_both(dir.path(), "lbl", &bytes) {
        let err = idx::read_labels(&path).unwrap_err();
        assert!(
            matches!(
                err,
                DataError::TrailingBytes {
                    expected: 2,
                    found: 6,
                    ..
                }
            ),
            "{err:?}"
        );
        assert_names(&err, &path);
        assert!(err.to_string().contains("trailing garbage"));
    }
}

#[test]
fn absurd_header_is_too_large() {
    let dir = temp_dir::tempdir().unwrap();
    let bytes = images_bytes(u32::MAX, 28, 28, &[0; 4]);
    for path in write_both(dir.path(), "huge", &bytes) {
        let err = idx::read_images(&path).unwrap_err();
        assert!(
            matches!(
                err,
                DataError::TooLarge {
                    limit: MAX_DATA_BYTES,
                    ..
                }
            ),
            "{err:?}"
        );
        assert_names(&err, &path);
        assert!(err.to_string().contains("4294967295 x 28 x 28"), "{err}");
    }
}

#[test]
fn gzip_bomb_stops_one_byte_past_the_claim() {
    let dir = temp_dir::tempdir().unwrap();
    // 2 declared label bytes followed by 64 MiB of zeros: compresses to ~64 KiB.
    let mut bytes = labels_bytes(2, &[1, 2]);
    bytes.resize(bytes.len() + (64 << 20), 0);
    let path = write(dir.path(), "bomb.gz", &gzip(&bytes));
    let err = idx::read_labels(&path).unwrap_err();
    match err {
        DataError::TrailingBytes {
            expected: 2,
            at_least: true,
            ..
        } => {}
        other => panic!("expected TrailingBytes, got {other:?}"),
    }
}

#[test]
fn garbage_after_gzip_magic_is_corrupt_gzip() {
    let dir = temp_dir::tempdir().unwrap();
    let path = write(
        dir.path(),
        "bad.gz",
        &[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3, 0xff, 0xff, 0xff, 0xff],
    );
    let err = idx::read_images(&path).unwrap_err();
    assert!(matches!(err, DataError::Gzip { .. }), "{err:?}");
    assert_names(&err, &path);
    assert!(err.to_string().contains("corrupt gzip"));
}

#[test]
fn cut_gzip_stream_is_corrupt_gzip() {
    let dir = temp_dir::tempdir().unwrap();
    let gz = gzip(&two_images());
    let path = write(dir.path(), "cut.gz", &gz[..gz.len() - 6]);
    let err = idx::read_images(&path).unwrap_err();
    assert!(matches!(err, DataError::Gzip { .. }), "{err:?}");
    assert_names(&err, &path);
}

#[test]
fn parse_in_memory_matches_files() {
    let images = idx::parse_images(&gzip(&two_images()), "memory").unwrap();
    assert_eq!(images.count, 2);
    let err = idx::parse_labels(&two_images(), "memory").unwrap_err();
    assert!(err.to_string().starts_with("memory: "), "{err}");
}

/// A valid file of either kind, raw or gzip'd, built from a property's choices.
fn valid_file(kind: bool, n: u32, side: u32, gz: bool) -> Vec<u8> {
    let bytes = if kind {
        images_bytes(n, side, side, &vec![7; (n * side * side) as usize])
    } else {
        labels_bytes(n, &vec![3; n as usize])
    };
    if gz {
        gzip(&bytes)
    } else {
        bytes
    }
}

fn read_both(bytes: &[u8]) {
    // Either answer is fine; a panic fails the test. What arrives bounds what is
    // allocated, whatever the header claims: the file itself when raw; through gzip,
    // at most 1032 times its size (deflate's largest ratio), and twice that while
    // the buffer grows; plus the decoder's own buffers.
    let bound = 2 * 1032 * bytes.len() + (1 << 20);
    for images in [true, false] {
        let ((), peak) = peak_alloc::peak_during(|| {
            let _ = if images {
                idx::parse_images(bytes, "fuzz").map(|_| ())
            } else {
                idx::parse_labels(bytes, "fuzz").map(|_| ())
            };
        });
        assert!(peak <= bound, "{peak} bytes allocated for {} bytes", bytes.len());
    }
}

/// As many cases as each property had under proptest: the file runs in seconds.
const CASES: u32 = 300;

#[test]
fn random_bytes_never_panic() {
    property::check(
        "random_bytes_never_panic",
        CASES,
        |rng| (property::bytes(rng, 0..64), rng.random::<bool>()),
        |(bytes, gz)| {
            let bytes = if gz { gzip(&bytes) } else { bytes };
            read_both(&bytes);
        },
    );
}

#[test]
fn random_header_never_panics() {
    property::check(
        "random_header_never_panics",
        CASES,
        |rng| {
            (
                rng.random::<[u32; 4]>(),
                rng.random_range(0usize..64),
                rng.random::<bool>(),
            )
        },
        |(dims, body, gz)| {
            let mut bytes = Vec::new();
            for (i, d) in dims.iter().enumerate() {
                let d = if i == 0 { 2051 } else { *d };
                bytes.extend_from_slice(&d.to_be_bytes());
            }
            bytes.resize(bytes.len() + body, 1);
            let bytes = if gz { gzip(&bytes) } else { bytes };
            read_both(&bytes);
        },
    );
}

#[test]
fn truncated_files_are_errors() {
    property::check(
        "truncated_files_are_errors",
        CASES,
        |rng| {
            (
                rng.random::<bool>(),
                rng.random_range(1u32..5),
                rng.random_range(1u32..6),
                rng.random::<bool>(),
                Index::random(rng),
            )
        },
        |(kind, n, side, gz, cut)| {
            let bytes = valid_file(kind, n, side, gz);
            let cut = cut.index(bytes.len());
            if kind {
                idx::parse_images(&bytes[..cut], "t").is_err()
            } else {
                idx::parse_labels(&bytes[..cut], "t").is_err()
            }
        },
    );
}

#[test]
fn bit_flipped_files_never_panic() {
    property::check(
        "bit_flipped_files_never_panic",
        CASES,
        |rng| {
            (
                rng.random::<bool>(),
                rng.random_range(0u32..5),
                rng.random_range(1u32..6),
                rng.random::<bool>(),
                Index::random(rng),
                property::bit(rng),
            )
        },
        |(kind, n, side, gz, at, bit)| {
            let mut bytes = valid_file(kind, n, side, gz);
            let i = at.index(bytes.len());
            bytes[i] ^= 1 << bit;
            read_both(&bytes);
        },
    );
}
