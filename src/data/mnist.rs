//! `Mnist`: the train and test sets of an MNIST-style folder of IDX files.
//!
//! Finds the four files under their usual names (raw or `.gz`, and the
//! `train-images.idx3-ubyte` spelling some mirrors use; [`MnistFiles`] says which
//! was read where a folder holds more than one), and reads them with our own
//! IDX reader, so any sizes the headers declare work (Fashion-MNIST, KMNIST, a set of
//! your own) and a missing or broken file is an error naming it, not a panic.
//!
//! With the cargo feature `mnist`, data already loaded by the `mnist` crate converts
//! with `Mnist::try_from(mnist::Mnist)`.

use std::path::Path;

use super::error::DataError;
use super::files::MnistFiles;
use super::Dataset;

/// The training and test sets of an MNIST-style dataset.
///
/// ```
/// use ferrocnn::data::Mnist;
/// // The shipped files; the path is relative to the crate root, where tests run.
/// let mnist = Mnist::load("datasets/mnist")?;
/// assert_eq!((mnist.train.len(), mnist.test.len()), (60_000, 10_000));
/// assert_eq!(mnist.train.image_shape(), (1, 28, 28));
/// # Ok::<(), ferrocnn::data::DataError>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Mnist {
    /// The training set (`train-*` files).
    pub train: Dataset,
    /// The test set (`t10k-*` files).
    pub test: Dataset,
}

impl Mnist {
    /// Loads `train-images-idx3-ubyte`, `train-labels-idx1-ubyte`,
    /// `t10k-images-idx3-ubyte` and `t10k-labels-idx1-ubyte` (each raw or `.gz`, with
    /// `-idx` or `.idx` before the type; a raw file wins over its `.gz`, see
    /// [`MnistFiles`] for the order) from `dir`. Both sets get the same class
    /// count: the largest label in either, plus one.
    ///
    /// To tell a user which file was read where a folder holds two (`x` and
    /// `x.gz`), find the files with [`MnistFiles::find`] and load them with
    /// [`Mnist::load_files`].
    ///
    /// # Errors
    /// [`DataError::MissingFile`] naming the folder and the names tried; any error
    /// reading a file, naming it; [`DataError::Invalid`] if train and test images
    /// differ in shape.
    pub fn load(dir: impl AsRef<Path>) -> Result<Mnist, DataError> {
        Self::load_at(dir.as_ref())
    }

    // Not generic: compiled once here, not again in every crate that calls it.
    fn load_at(dir: &Path) -> Result<Mnist, DataError> {
        Mnist::load_files(&MnistFiles::find(dir)?)
    }

    /// Loads the files [`MnistFiles::find`] found.
    ///
    /// # Errors
    /// As for [`Mnist::load`], but for the missing files.
    pub fn load_files(files: &MnistFiles) -> Result<Mnist, DataError> {
        let train = Dataset::from_idx(&files.train_images.path, &files.train_labels.path)?;
        let test = Dataset::from_idx(&files.test_images.path, &files.test_labels.path)?;
        Mnist::from_parts(train, test, &files.train_images.path, &files.test_images.path)
    }

    fn from_parts(
        train: Dataset,
        test: Dataset,
        train_name: &Path,
        test_name: &Path,
    ) -> Result<Mnist, DataError> {
        if train.image_shape() != test.image_shape() {
            return Err(DataError::Invalid(format!(
                "{} holds images of {:?} but {} holds {:?} (channels, height, width)",
                train_name.display(),
                train.image_shape(),
                test_name.display(),
                test.image_shape()
            )));
        }
        let k = train.num_classes().max(test.num_classes());
        Ok(Mnist {
            train: train.with_num_classes(k)?,
            test: test.with_num_classes(k)?,
        })
    }
}

/// Interop with the `mnist` crate: the sets it loaded become `Dataset`s.
///
/// The crate's validation set (if its builder made one) is the part of the training
/// file after its training set, so it is appended to `train` in order, which restores
/// the original training file; use [`Dataset::split`] for a validation set. Labels in
/// one-hot format are decoded.
#[cfg(feature = "mnist")]
impl TryFrom<mnist::Mnist> for Mnist {
    type Error = DataError;

    fn try_from(m: mnist::Mnist) -> Result<Mnist, DataError> {
        let mut img = m.trn_img;
        img.extend_from_slice(&m.val_img);
        let mut lbl = m.trn_lbl;
        lbl.extend_from_slice(&m.val_lbl);
        let train = from_crate_parts(img, lbl, "training")?;
        let test = from_crate_parts(m.tst_img, m.tst_lbl, "test")?;
        Mnist::from_parts(train, test, Path::new("training set"), Path::new("test set"))
    }
}

#[cfg(feature = "mnist")]
fn from_crate_parts(pixels: Vec<u8>, labels: Vec<u8>, which: &str) -> Result<Dataset, DataError> {
    const SIDE: usize = 28;
    const CLASSES: usize = 10;
    let n = pixels.len() / (SIDE * SIDE);
    let labels: Vec<usize> = if labels.len() == n {
        labels.into_iter().map(usize::from).collect()
    } else if labels.len() == n * CLASSES {
        labels
            .chunks_exact(CLASSES)
            .map(|one_hot| one_hot.iter().position(|&v| v != 0).unwrap_or(0))
            .collect()
    } else {
        return Err(DataError::Invalid(format!(
            "mnist crate {which} set: {} pixel bytes and {} label bytes do not match 28x28 images",
            pixels.len(),
            labels.len()
        )));
    };
    Dataset::from_raw(pixels, labels, 1, SIDE, SIDE)?.with_num_classes(CLASSES)
}
