//! Which file of an MNIST-style folder is read when it holds one under two names
//! (`x` and `x.gz`, `-idx` and `.idx`): the raw file wins, the others are kept as
//! ignored, and `Display` says both.

use crate::temp_dir;

use std::io::Write;
use std::path::Path;

use ferrocnn::data::{DataError, Mnist, MnistFiles};
use flate2::write::GzEncoder;
use flate2::Compression;

/// IDX images (`n` of 2×2) and labels (`i % 3`).
fn idx_pair(n: u32) -> (Vec<u8>, Vec<u8>) {
    let mut images = Vec::new();
    for x in [2051, n, 2, 2] {
        images.extend_from_slice(&x.to_be_bytes());
    }
    images.extend((0..n * 4).map(|i| i as u8));
    let mut labels = Vec::new();
    for x in [2049, n] {
        labels.extend_from_slice(&x.to_be_bytes());
    }
    labels.extend((0..n).map(|i| (i % 3) as u8));
    (images, labels)
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = GzEncoder::new(Vec::new(), Compression::fast());
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
}

/// Writes the four files raw with `n` samples per split.
fn write_raw(dir: &Path, n: u32) {
    let (images, labels) = idx_pair(n);
    for split in ["train", "t10k"] {
        std::fs::write(dir.join(format!("{split}-images-idx3-ubyte")), &images).unwrap();
        std::fs::write(dir.join(format!("{split}-labels-idx1-ubyte")), &labels).unwrap();
    }
}

/// Writes the four files gzip'd with `n` samples per split.
fn write_gz(dir: &Path, n: u32) {
    let (images, labels) = idx_pair(n);
    for split in ["train", "t10k"] {
        std::fs::write(dir.join(format!("{split}-images-idx3-ubyte.gz")), gzip(&images)).unwrap();
        std::fs::write(dir.join(format!("{split}-labels-idx1-ubyte.gz")), gzip(&labels)).unwrap();
    }
}

#[test]
fn the_raw_file_is_read_and_its_gz_reported_as_ignored() {
    let dir = temp_dir::tempdir().unwrap();
    // Different contents, so the test sees which one was read.
    write_raw(dir.path(), 3);
    write_gz(dir.path(), 5);
    let files = MnistFiles::find(dir.path()).unwrap();
    let mnist = Mnist::load_files(&files).unwrap();
    assert_eq!((mnist.train.len(), mnist.test.len()), (3, 3));
    assert_eq!(
        files.train_images.path,
        dir.path().join("train-images-idx3-ubyte")
    );
    assert_eq!(
        files.train_images.ignored,
        [dir.path().join("train-images-idx3-ubyte.gz")]
    );
    assert_eq!(files.with_ignored().count(), 4);
    assert_eq!(
        files.test_labels.to_string(),
        format!(
            "{} (t10k-labels-idx1-ubyte.gz also exists and was ignored)",
            dir.path().join("t10k-labels-idx1-ubyte").display()
        )
    );
    // `load` reads what `find` + `load_files` read.
    assert_eq!(Mnist::load(dir.path()).unwrap(), mnist);
}

#[test]
fn a_lone_gz_file_is_read_with_nothing_to_report() {
    let dir = temp_dir::tempdir().unwrap();
    write_gz(dir.path(), 5);
    let files = MnistFiles::find(dir.path()).unwrap();
    assert_eq!(files.with_ignored().count(), 0);
    assert_eq!(
        files.train_labels.to_string(),
        dir.path()
            .join("train-labels-idx1-ubyte.gz")
            .display()
            .to_string()
    );
    assert_eq!(Mnist::load_files(&files).unwrap().train.len(), 5);
}

#[test]
fn every_other_name_present_is_listed_in_order() {
    let dir = temp_dir::tempdir().unwrap();
    write_gz(dir.path(), 5);
    let (images, _) = idx_pair(2);
    std::fs::write(dir.path().join("train-images.idx3-ubyte"), &images).unwrap();
    std::fs::write(dir.path().join("train-images.idx3-ubyte.gz"), gzip(&images)).unwrap();
    let files = MnistFiles::find(dir.path()).unwrap();
    let file = &files.train_images;
    assert_eq!(file.path, dir.path().join("train-images-idx3-ubyte.gz"));
    assert!(
        file.to_string().ends_with(
            "(train-images.idx3-ubyte and train-images.idx3-ubyte.gz also exist and were ignored)"
        ),
        "{file}"
    );
    assert_eq!(files.with_ignored().collect::<Vec<_>>(), [file]);
}

#[test]
fn a_missing_file_names_the_folder_and_the_names_tried() {
    let dir = temp_dir::tempdir().unwrap();
    write_raw(dir.path(), 3);
    std::fs::remove_file(dir.path().join("t10k-labels-idx1-ubyte")).unwrap();
    let err = MnistFiles::find(dir.path()).unwrap_err();
    assert!(matches!(err, DataError::MissingFile { .. }), "{err}");
    let text = err.to_string();
    assert!(
        text.contains("test labels") && text.contains("t10k-labels.idx1-ubyte.gz"),
        "{text}"
    );
}
