//! `Dataset`, batching, augmentation and the MNIST folder loader: the shipped files
//! read as MNIST, batches are seeded and complete, transforms do what they say.

use crate::temp_dir;

use std::collections::HashSet;
use std::path::Path;
use std::sync::OnceLock;

use ferrocnn::data::{shift_rotate, Augment, DataError, Dataset, Mnist, Normalize, Order};

fn mnist() -> &'static Mnist {
    static MNIST: OnceLock<Mnist> = OnceLock::new();
    MNIST.get_or_init(|| Mnist::load("datasets/mnist").expect("shipped MNIST files load"))
}

/// `n` 1×2×2 images whose first two bytes hold the index (little-endian), labels
/// `i % classes`.
fn indexed(n: usize, classes: usize) -> Dataset {
    let mut pixels = Vec::with_capacity(n * 4);
    for i in 0..n {
        pixels.extend_from_slice(&[(i & 0xff) as u8, (i >> 8) as u8, 0, 255]);
    }
    let labels = (0..n).map(|i| i % classes).collect();
    Dataset::from_raw(pixels, labels, 1, 2, 2).unwrap()
}

fn id(ds: &Dataset, i: usize) -> usize {
    let img = ds.image(i);
    usize::from(img[0]) | usize::from(img[1]) << 8
}

fn ids(ds: &Dataset) -> Vec<usize> {
    (0..ds.len()).map(|i| id(ds, i)).collect()
}

// ---- the shipped MNIST files ----

#[test]
fn shipped_mnist_has_60000_and_10000_images_28x28() {
    let m = mnist();
    assert_eq!(m.train.len(), 60_000);
    assert_eq!(m.test.len(), 10_000);
    assert_eq!(m.train.image_shape(), (1, 28, 28));
    assert_eq!(m.test.image_shape(), (1, 28, 28));
    assert_eq!((m.train.num_classes(), m.test.num_classes()), (10, 10));
    assert!(m.train.labels().iter().chain(m.test.labels()).all(|&l| l < 10));
}

#[test]
fn shipped_mnist_first_labels_are_known() {
    let m = mnist();
    assert_eq!(&m.train.labels()[..5], &[5, 0, 4, 1, 9]);
    assert_eq!(&m.test.labels()[..5], &[7, 2, 1, 0, 4]);
    // Each class is present in both sets.
    let train: HashSet<_> = m.train.labels().iter().collect();
    assert_eq!(train.len(), 10);
}

#[test]
fn shipped_mnist_batches_are_normalized_nchw() {
    let m = mnist();
    let batch = m.test.batches(128, Order::Sequential, None).next().unwrap();
    assert_eq!(batch.x.shape(), &[128, 1, 28, 28]);
    assert_eq!(&batch.y[..5], &[7, 2, 1, 0, 4]);
    let zero = -0.1307f32 / 0.3081;
    let max = (1.0 - 0.1307f32) / 0.3081;
    assert_eq!(batch.x[[0, 0, 0, 0]], zero); // corners are background
    assert!(batch.x.iter().all(|&v| (zero..=max).contains(&v)));
    assert_eq!(m.test.batches(128, Order::Sequential, None).len(), 79);
}

#[test]
fn mnist_load_reports_missing_files_with_folder_and_names() {
    let dir = temp_dir::tempdir().unwrap();
    let err = Mnist::load(dir.path()).unwrap_err();
    assert!(matches!(err, DataError::MissingFile { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains(&dir.path().display().to_string()), "{msg}");
    for name in [
        "train-images-idx3-ubyte",
        "train-images-idx3-ubyte.gz",
        "train-images.idx3-ubyte",
    ] {
        assert!(msg.contains(name), "{msg}");
    }
}

fn write_idx(path: &Path, magic: u32, dims: &[u32], data: &[u8]) {
    let mut v = Vec::new();
    for x in std::iter::once(magic).chain(dims.iter().copied()) {
        v.extend_from_slice(&x.to_be_bytes());
    }
    v.extend_from_slice(data);
    std::fs::write(path, v).unwrap();
}

#[test]
fn mnist_load_accepts_dot_spelling_and_any_size() {
    let dir = temp_dir::tempdir().unwrap();
    let d = dir.path();
    write_idx(&d.join("train-images.idx3-ubyte"), 2051, &[3, 2, 2], &[9; 12]);
    write_idx(&d.join("train-labels.idx1-ubyte"), 2049, &[3], &[0, 1, 2]);
    write_idx(&d.join("t10k-images-idx3-ubyte"), 2051, &[1, 2, 2], &[1; 4]);
    write_idx(&d.join("t10k-labels-idx1-ubyte"), 2049, &[1], &[4]);
    let m = Mnist::load(d).unwrap();
    assert_eq!((m.train.len(), m.test.len()), (3, 1));
    assert_eq!(m.train.image_shape(), (1, 2, 2));
    // Both sets share the class count, the largest label in either plus one.
    assert_eq!((m.train.num_classes(), m.test.num_classes()), (5, 5));
}

#[test]
fn from_idx_count_mismatch_names_both_files() {
    let dir = temp_dir::tempdir().unwrap();
    let images = dir.path().join("imgs");
    let labels = dir.path().join("lbls");
    write_idx(&images, 2051, &[3, 1, 1], &[0; 3]);
    write_idx(&labels, 2049, &[2], &[0, 1]);
    let err = Dataset::from_idx(&images, &labels).unwrap_err();
    assert!(
        matches!(
            err,
            DataError::CountMismatch {
                images: 3,
                labels: 2,
                ..
            }
        ),
        "{err:?}"
    );
    let msg = err.to_string();
    assert!(msg.contains(&images.display().to_string()), "{msg}");
    assert!(msg.contains(&labels.display().to_string()), "{msg}");
}

#[test]
fn label_beyond_class_count_names_the_label_file() {
    let dir = temp_dir::tempdir().unwrap();
    let images = dir.path().join("imgs");
    let labels = dir.path().join("lbls");
    write_idx(&images, 2051, &[3, 1, 1], &[0; 3]);
    write_idx(&labels, 2049, &[3], &[0, 12, 1]);
    let err = Dataset::from_idx_with_classes(&images, &labels, 10).unwrap_err();
    assert!(
        matches!(
            err,
            DataError::LabelOutOfRange {
                index: 1,
                label: 12,
                num_classes: 10,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains(&labels.display().to_string()), "{err}");
    assert_eq!(Dataset::from_idx(&images, &labels).unwrap().num_classes(), 13);
}

// ---- construction and reshaping ----

#[test]
fn from_raw_rejects_inconsistent_shapes() {
    let err = Dataset::from_raw(vec![0; 7], vec![0, 1], 1, 2, 2).unwrap_err();
    assert!(matches!(err, DataError::Invalid(_)), "{err:?}");
    let err = Dataset::from_raw(vec![], vec![], 1, 0, 2).unwrap_err();
    assert!(matches!(err, DataError::Invalid(_)), "{err:?}");
    let ds = Dataset::from_raw(vec![], vec![], 3, 4, 4).unwrap();
    assert!(ds.is_empty());
    assert_eq!(ds.batches(8, Order::Shuffle(1), None).count(), 0);
}

#[test]
fn with_num_classes_rejects_a_label_not_below_it() {
    let ds = indexed(10, 5);
    assert_eq!(ds.num_classes(), 5);
    assert_eq!(ds.clone().with_num_classes(10).unwrap().num_classes(), 10);
    let err = ds.with_num_classes(4).unwrap_err();
    assert!(
        matches!(
            err,
            DataError::LabelOutOfRange {
                index: 4,
                label: 4,
                num_classes: 4,
                path: None
            }
        ),
        "{err:?}"
    );
}

#[test]
fn take_and_subset_pick_the_right_samples() {
    let ds = indexed(10, 3);
    assert_eq!(ids(&ds.take(4)), vec![0, 1, 2, 3]);
    assert_eq!(ds.take(100).len(), 10);
    let sub = ds.subset(&[7, 2, 7]);
    assert_eq!(ids(&sub), vec![7, 2, 7]);
    assert_eq!(sub.labels(), &[1, 2, 1]);
    assert_eq!(sub.num_classes(), 3);
}

#[test]
fn split_sizes_are_exact_and_parts_disjoint() {
    let ds = indexed(1000, 10);
    let (train, val) = ds.split(150, 3).unwrap();
    assert_eq!((train.len(), val.len()), (850, 150));
    let t: HashSet<usize> = ids(&train).into_iter().collect();
    let v: HashSet<usize> = ids(&val).into_iter().collect();
    assert!(t.is_disjoint(&v));
    assert_eq!(t.union(&v).count(), 1000);
    // Seeded: same seed, same split; another seed, another split.
    assert_eq!(ds.split(150, 3).unwrap().1, val);
    assert_ne!(ds.split(150, 4).unwrap().1, val);
    // Labels travel with their images.
    assert!((0..val.len()).all(|i| val.label(i) == id(&val, i) % 10));
    assert!(matches!(ds.split(1001, 0), Err(DataError::Invalid(_))));
}

#[test]
fn filter_classes_keeps_and_relabels() {
    let ds = indexed(20, 10);
    let pair = ds.filter_classes(&[3, 8]);
    assert_eq!(ids(&pair), vec![3, 8, 13, 18]);
    assert_eq!(pair.labels(), &[0, 1, 0, 1]);
    assert_eq!(pair.num_classes(), 2);
    let low = ds.filter_classes(&[0, 1, 2, 3, 4]);
    assert_eq!(low.len(), 10);
    assert!((0..low.len()).all(|i| low.label(i) == id(&low, i) % 10));
}

#[test]
fn map_labels_makes_even_odd() {
    let ds = indexed(10, 10).map_labels(|d| d % 2);
    assert_eq!(ds.num_classes(), 2);
    assert_eq!(ds.labels(), &[0, 1, 0, 1, 0, 1, 0, 1, 0, 1]);
}

// ---- batching ----

#[test]
fn batches_are_deterministic_for_a_seed() {
    let ds = mnist().test.take(1000);
    let a: Vec<_> = ds.batches(64, Order::Shuffle(11), None).collect();
    let b: Vec<_> = ds.batches(64, Order::Shuffle(11), None).collect();
    assert_eq!(a, b);
    let c: Vec<_> = ds.batches(64, Order::Shuffle(12), None).collect();
    assert_ne!(a[0].indices, c[0].indices);
    let seq: Vec<usize> = ds
        .batches(64, Order::Sequential, None)
        .flat_map(|b| b.indices)
        .collect();
    assert_eq!(seq, (0..1000).collect::<Vec<_>>());
}

#[test]
fn every_index_appears_once_per_epoch_with_a_partial_last_batch() {
    let ds = indexed(103, 7);
    let batches: Vec<_> = ds.batches(10, Order::Shuffle(5), None).collect();
    assert_eq!(batches.len(), 11);
    assert!(batches[..10].iter().all(|b| b.len() == 10));
    assert_eq!(batches[10].len(), 3);
    assert_eq!(batches[10].x.shape(), &[3, 1, 2, 2]);
    let mut seen: Vec<usize> = batches.iter().flat_map(|b| b.indices.clone()).collect();
    seen.sort_unstable();
    assert_eq!(seen, (0..103).collect::<Vec<_>>());
    for b in &batches {
        for (k, &i) in b.indices.iter().enumerate() {
            assert_eq!(b.y[k], ds.label(i));
        }
    }
}

#[test]
fn normalization_has_known_values() {
    let ds = Dataset::from_raw(vec![0, 255, 51, 128], vec![0], 1, 2, 2).unwrap();
    let x = ds.to_array(0..1);
    assert_eq!(x[[0, 0, 0, 0]], -0.1307f32 / 0.3081);
    assert_eq!(x[[0, 0, 0, 1]], (1.0f32 - 0.1307) / 0.3081);
    let unit = ds.clone().with_normalization(Normalize::UNIT).to_array(0..1);
    assert_eq!(
        unit.iter().copied().collect::<Vec<_>>(),
        vec![0.0, 1.0, 0.2, 128.0 / 255.0]
    );
    let custom = ds
        .with_normalization(Normalize::new(vec![0.5], vec![0.5]).unwrap())
        .to_array(0..1);
    assert_eq!(custom[[0, 0, 0, 0]], -1.0);
    assert_eq!(custom[[0, 0, 0, 1]], 1.0);
}

// ---- augmentation ----

#[test]
fn zero_augmentation_is_identity() {
    let ds = mnist().test.take(200);
    let none: Vec<_> = ds.batches(50, Order::Shuffle(9), None).collect();
    let zero = Augment::default();
    let with: Vec<_> = ds.batches(50, Order::Shuffle(9), Some(&zero)).collect();
    assert_eq!(none, with);
    // Also through the transform itself.
    let img = ds.image(0);
    let mut out = vec![0.0; img.len()];
    shift_rotate(img, (1, 28, 28), (0.0, 0.0), 0.0, &mut out);
    assert!(out.iter().zip(img).all(|(&o, &p)| o == f32::from(p)));
}

#[test]
fn shift_by_one_moves_a_known_pixel() {
    // 1×4×4, one lit pixel at row 1, column 2.
    let mut img = [0u8; 16];
    img[4 + 2] = 200;
    let mut out = [0.0f32; 16];
    shift_rotate(&img, (1, 4, 4), (1.0, 0.0), 0.0, &mut out);
    assert_eq!(out[4 + 3], 200.0);
    assert_eq!(out.iter().sum::<f32>(), 200.0);
    shift_rotate(&img, (1, 4, 4), (0.0, 1.0), 0.0, &mut out);
    assert_eq!(out[8 + 2], 200.0);
    // Shifted out of the frame: background fill.
    shift_rotate(&img, (1, 4, 4), (2.0, 0.0), 0.0, &mut out);
    assert_eq!(out.iter().sum::<f32>(), 0.0);
}

#[test]
fn rotation_by_90_degrees_turns_clockwise_about_the_centre() {
    // 1×3×3, top-middle lit; clockwise on screen it goes to the middle of the right edge.
    let mut img = [0u8; 9];
    img[1] = 100;
    let mut out = [0.0f32; 9];
    shift_rotate(&img, (1, 3, 3), (0.0, 0.0), 90.0, &mut out);
    assert!((out[5] - 100.0).abs() < 1e-3, "{out:?}");
    assert!(
        out.iter().enumerate().all(|(i, &v)| i == 5 || v.abs() < 1e-3),
        "{out:?}"
    );
}

#[test]
fn augmentation_is_seeded_and_changes_images() {
    let ds = mnist().test.take(64);
    let aug = Augment {
        max_shift: 2,
        max_rotation_degrees: 10.0,
    };
    let a = ds.batches(64, Order::Shuffle(1), Some(&aug)).next().unwrap();
    let b = ds.batches(64, Order::Shuffle(1), Some(&aug)).next().unwrap();
    assert_eq!(a, b);
    // Independent of batch size: sample seeds depend on the epoch seed and the index.
    let small: Vec<_> = ds.batches(7, Order::Shuffle(1), Some(&aug)).collect();
    let first = small[0].x.index_axis(ndarray::Axis(0), 0).to_owned();
    assert_eq!(first, a.x.index_axis(ndarray::Axis(0), 0));
    let plain = ds.batches(64, Order::Shuffle(1), None).next().unwrap();
    assert_ne!(a.x, plain.x);
    let other = ds.batches(64, Order::Shuffle(2), Some(&aug)).next().unwrap();
    assert_ne!(a.x.sum(), other.x.sum());
    // Values stay in the normalised pixel range.
    let (lo, hi) = (-0.1307f32 / 0.3081 - 1e-5, (1.0 - 0.1307f32) / 0.3081 + 1e-5);
    assert!(a.x.iter().all(|&v| (lo..=hi).contains(&v)));
}

#[cfg(feature = "mnist")]
#[test]
fn converts_from_the_mnist_crate() {
    let m = mnist::Mnist {
        trn_img: vec![1; 2 * 784],
        trn_lbl: vec![3, 4],
        val_img: vec![2; 784],
        val_lbl: vec![9],
        tst_img: vec![3; 784],
        tst_lbl: vec![0, 0, 0, 0, 0, 1, 0, 0, 0, 0], // one-hot 5
    };
    let ours = Mnist::try_from(m).unwrap();
    assert_eq!(ours.train.labels(), &[3, 4, 9]);
    assert_eq!(ours.test.labels(), &[5]);
    assert_eq!(ours.train.image_shape(), (1, 28, 28));
    assert_eq!(ours.train.num_classes(), 10);
}
