//! `Dataset`: labelled images held as bytes, with the operations training needs.
//!
//! Images stay `u8` in memory (`[n, channels, height, width]`, one flat `Vec<u8>`):
//! a quarter of the size of `f32`, and the form the files have. Conversion to
//! normalised `f32` happens per batch (see [`crate::data::Batches`]), through a
//! 256-entry lookup table, so it costs one load per pixel.
//!
//! Operations that reshape the data (`take`, `subset`, `split`, `filter_classes`,
//! `map_labels`) return new datasets and leave `self` alone; they copy bytes, which
//! for MNIST-sized data is milliseconds and keeps ownership simple.

use std::ops::Range;
use std::path::Path;

use ndarray::Array4;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;

use super::batch::{Batch, Batches, Order};
use super::error::DataError;
use super::idx;
use super::{Augment, Normalize};

/// Labelled images: `len()` samples of shape `[channels, height, width]` bytes, each
/// with a class label below `num_classes()`.
///
/// ```
/// use ferrocnn::data::{Dataset, Order};
/// // Four 1×2×2 images, labels 0..=3.
/// let pixels: Vec<u8> = (0..16).collect();
/// let ds = Dataset::from_raw(pixels, vec![0, 1, 2, 3], 1, 2, 2)?;
/// assert_eq!(ds.image(1), &[4, 5, 6, 7]);
/// let batch = ds.batches(3, Order::Shuffle(7), None).next().unwrap();
/// assert_eq!(batch.x.shape(), &[3, 1, 2, 2]);
/// # Ok::<(), ferrocnn::data::DataError>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Dataset {
    pixels: Vec<u8>,
    labels: Vec<usize>,
    channels: usize,
    height: usize,
    width: usize,
    num_classes: usize,
    normalize: Normalize,
    class_names: Option<Vec<String>>,
}

impl Dataset {
    /// Builds a dataset from flat pixels (`[n, channels, height, width]`, row-major) and
    /// one label per image; `num_classes` is the largest label plus one.
    ///
    /// # Errors
    /// [`DataError::Invalid`] if a dimension is zero or the pixel count is not
    /// `labels.len() * channels * height * width`.
    pub fn from_raw(
        pixels: Vec<u8>,
        labels: Vec<usize>,
        channels: usize,
        height: usize,
        width: usize,
    ) -> Result<Dataset, DataError> {
        if channels == 0 || height == 0 || width == 0 {
            return Err(DataError::Invalid(format!(
                "image shape {channels}x{height}x{width} has a zero dimension"
            )));
        }
        let expected = channels
            .checked_mul(height)
            .and_then(|p| p.checked_mul(width))
            .and_then(|p| p.checked_mul(labels.len()));
        if expected != Some(pixels.len()) {
            return Err(DataError::Invalid(format!(
                "{} pixels do not make {} images of {channels}x{height}x{width}",
                pixels.len(),
                labels.len()
            )));
        }
        let num_classes = labels.iter().max().map_or(0, |&m| m + 1);
        Ok(Dataset {
            pixels,
            labels,
            channels,
            height,
            width,
            num_classes,
            normalize: Normalize::default(),
            class_names: None,
        })
    }

    /// Reads an IDX image file and its label file (each raw or gzip'd).
    ///
    /// # Errors
    /// Any error of [`idx::read_images`] / [`idx::read_labels`];
    /// [`DataError::CountMismatch`] if the counts differ; [`DataError::Invalid`] if the
    /// images have a zero dimension.
    pub fn from_idx(
        images_path: impl AsRef<Path>,
        labels_path: impl AsRef<Path>,
    ) -> Result<Dataset, DataError> {
        Self::from_idx_at(images_path.as_ref(), labels_path.as_ref())
    }

    // Not generic: compiled once here, not again in every crate that calls it.
    fn from_idx_at(images_path: &Path, labels_path: &Path) -> Result<Dataset, DataError> {
        let images = idx::read_images(images_path)?;
        let labels = idx::read_labels(labels_path)?;
        if images.count != labels.len() {
            return Err(DataError::CountMismatch {
                images_path: images_path.to_path_buf(),
                images: images.count,
                labels_path: labels_path.to_path_buf(),
                labels: labels.len(),
            });
        }
        let labels = labels.into_iter().map(usize::from).collect();
        Dataset::from_raw(images.pixels, labels, 1, images.rows, images.cols)
            .map_err(|e| DataError::Invalid(format!("{}: {e}", images_path.display())))
    }

    /// As [`Dataset::from_idx`], with a fixed class count.
    ///
    /// # Errors
    /// Those of `from_idx`, and [`DataError::LabelOutOfRange`] naming the label file if
    /// a label is `>= num_classes`.
    pub fn from_idx_with_classes(
        images_path: impl AsRef<Path>,
        labels_path: impl AsRef<Path>,
        num_classes: usize,
    ) -> Result<Dataset, DataError> {
        Self::from_idx_with_classes_at(images_path.as_ref(), labels_path.as_ref(), num_classes)
    }

    // Not generic: compiled once here, not again in every crate that calls it.
    fn from_idx_with_classes_at(
        images_path: &Path,
        labels_path: &Path,
        num_classes: usize,
    ) -> Result<Dataset, DataError> {
        let ds = Dataset::from_idx(images_path, labels_path)?;
        ds.checked_num_classes(num_classes, Some(labels_path))
    }

    /// Sets the class count, e.g. 10 for a subset that happens to lack the digit 9.
    ///
    /// # Errors
    /// [`DataError::LabelOutOfRange`] if a label is `>= num_classes`.
    pub fn with_num_classes(self, num_classes: usize) -> Result<Dataset, DataError> {
        self.checked_num_classes(num_classes, None)
    }

    pub(crate) fn checked_num_classes(
        mut self,
        num_classes: usize,
        path: Option<&Path>,
    ) -> Result<Dataset, DataError> {
        if let Some((index, &label)) = self.labels.iter().enumerate().find(|&(_, &l)| l >= num_classes) {
            return Err(DataError::LabelOutOfRange {
                path: path.map(Path::to_path_buf),
                index,
                label,
                num_classes,
            });
        }
        self.num_classes = num_classes;
        Ok(self)
    }

    /// Sets the normalisation used by batches (default [`Normalize::MNIST`]; compute
    /// a dataset's own with [`Normalize::of`]).
    ///
    /// # Panics
    /// If `normalize` has statistics for another number of channels.
    pub fn with_normalization(mut self, normalize: Normalize) -> Dataset {
        assert!(
            normalize.fits(self.channels),
            "Dataset::with_normalization: {} statistics for {} channels",
            normalize.mean().len(),
            self.channels
        );
        self.normalize = normalize;
        self
    }

    /// The normalisation used by batches.
    pub fn normalization(&self) -> &Normalize {
        &self.normalize
    }

    /// Names the classes (`names[label]`), as an image folder's subfolders do.
    ///
    /// # Errors
    /// [`DataError::Invalid`] if there are fewer names than classes, or a name is
    /// empty or repeated.
    pub fn with_class_names(mut self, names: Vec<String>) -> Result<Dataset, DataError> {
        check_class_names(&names, self.num_classes)?;
        self.num_classes = names.len();
        self.class_names = Some(names);
        Ok(self)
    }

    /// The class names, if the data has them (an image folder's subfolders).
    pub fn class_names(&self) -> Option<&[String]> {
        self.class_names.as_deref()
    }

    /// The name of class `label`: its folder name, or the label itself.
    pub fn class_name(&self, label: usize) -> String {
        match &self.class_names {
            Some(names) if label < names.len() => names[label].clone(),
            _ => label.to_string(),
        }
    }

    /// Number of samples.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// True if there are no samples.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// `(channels, height, width)` of every image.
    pub fn image_shape(&self) -> (usize, usize, usize) {
        (self.channels, self.height, self.width)
    }

    /// Bytes per image: `channels * height * width`.
    pub fn image_len(&self) -> usize {
        self.channels * self.height * self.width
    }

    /// Number of classes; every label is below it.
    pub fn num_classes(&self) -> usize {
        self.num_classes
    }

    /// The label of sample `i`.
    ///
    /// # Panics
    /// If `i >= len()`.
    pub fn label(&self, i: usize) -> usize {
        self.labels[i]
    }

    /// All labels, in order.
    pub fn labels(&self) -> &[usize] {
        &self.labels
    }

    /// The bytes of sample `i`, `[channels, height, width]` row-major.
    ///
    /// # Panics
    /// If `i >= len()`.
    pub fn image(&self, i: usize) -> &[u8] {
        let n = self.image_len();
        &self.pixels[i * n..(i + 1) * n]
    }

    /// All pixels, `[len, channels, height, width]` row-major.
    pub fn pixels(&self) -> &[u8] {
        &self.pixels
    }

    /// The first `n` samples (all of them if `n >= len()`).
    pub fn take(&self, n: usize) -> Dataset {
        let n = n.min(self.len());
        Dataset {
            pixels: self.pixels[..n * self.image_len()].to_vec(),
            labels: self.labels[..n].to_vec(),
            ..self.empty_like()
        }
    }

    /// The samples at `indices`, in that order (repeats allowed). Keeps `num_classes`.
    ///
    /// # Panics
    /// If an index is `>= len()`.
    pub fn subset(&self, indices: &[usize]) -> Dataset {
        let mut pixels = Vec::with_capacity(indices.len() * self.image_len());
        let mut labels = Vec::with_capacity(indices.len());
        for &i in indices {
            pixels.extend_from_slice(self.image(i));
            labels.push(self.labels[i]);
        }
        Dataset {
            pixels,
            labels,
            ..self.empty_like()
        }
    }

    /// Splits off `validation` samples chosen at random (seeded): returns
    /// `(train, validation)`, disjoint, each in the original order.
    ///
    /// # Errors
    /// [`DataError::Invalid`] if `validation > len()`.
    pub fn split(&self, validation: usize, seed: u64) -> Result<(Dataset, Dataset), DataError> {
        if validation > self.len() {
            return Err(DataError::Invalid(format!(
                "cannot split {validation} validation samples from a dataset of {}",
                self.len()
            )));
        }
        let mut order: Vec<usize> = (0..self.len()).collect();
        order.shuffle(&mut StdRng::seed_from_u64(seed));
        let (val, train) = order.split_at_mut(validation);
        val.sort_unstable();
        train.sort_unstable();
        Ok((self.subset(train), self.subset(val)))
    }

    /// Keeps only the samples of the given classes and relabels them by their position
    /// in `classes`: `filter_classes(&[3, 8])` gives a 2-class set where 3 → 0, 8 → 1.
    /// (For digits 0–4, `filter_classes(&[0, 1, 2, 3, 4])` keeps the labels as they are.)
    pub fn filter_classes(&self, classes: &[usize]) -> Dataset {
        let indices: Vec<usize> = (0..self.len())
            .filter(|&i| classes.contains(&self.labels[i]))
            .collect();
        let mut ds = self.subset(&indices);
        for l in &mut ds.labels {
            *l = classes.iter().position(|c| c == l).unwrap_or(0);
        }
        ds.num_classes = classes.len();
        ds.class_names = self.class_names.as_ref().map(|names| {
            classes
                .iter()
                .map(|&c| names.get(c).cloned().unwrap_or(c.to_string()))
                .collect()
        });
        ds
    }

    /// Relabels every sample with `f(label)`, e.g. `|d| d % 2` for even/odd; the class
    /// count becomes the largest new label plus one.
    pub fn map_labels(&self, f: impl Fn(usize) -> usize) -> Dataset {
        let labels: Vec<usize> = self.labels.iter().map(|&l| f(l)).collect();
        let num_classes = labels.iter().max().map_or(0, |&m| m + 1);
        Dataset {
            pixels: self.pixels.clone(),
            labels,
            num_classes,
            // The new labels mean something else.
            class_names: None,
            ..self.empty_like()
        }
    }

    /// Mini-batches over one epoch in the given order, optionally augmented; the last
    /// batch is smaller if `batch_size` does not divide `len()`.
    ///
    /// # Panics
    /// If `batch_size == 0`.
    pub fn batches<'a>(
        &'a self,
        batch_size: usize,
        order: Order,
        augment: Option<&'a Augment>,
    ) -> Batches<'a> {
        Batches::new(self, batch_size, order, augment)
    }

    /// The samples at `indices` as one normalised, unaugmented batch.
    ///
    /// # Panics
    /// If an index is `>= len()`.
    pub fn batch(&self, indices: &[usize]) -> Batch {
        Batches::build(self, indices, None, 0)
    }

    /// The samples in `range` as a normalised `[n, c, h, w]` array (for evaluation).
    ///
    /// # Panics
    /// If `range` reaches past `len()`.
    pub fn to_array(&self, range: Range<usize>) -> Array4<f32> {
        let indices: Vec<usize> = range.collect();
        self.batch(&indices).x
    }

    /// Same shape, classes and normalisation; no samples.
    fn empty_like(&self) -> Dataset {
        Dataset {
            pixels: Vec::new(),
            labels: Vec::new(),
            normalize: self.normalize.clone(),
            class_names: self.class_names.clone(),
            ..*self
        }
    }
}

/// Class names must name every class, once each.
pub(crate) fn check_class_names(names: &[String], num_classes: usize) -> Result<(), DataError> {
    if names.len() < num_classes {
        return Err(DataError::Invalid(format!(
            "{} class names for {num_classes} classes",
            names.len()
        )));
    }
    if let Some(i) = names.iter().position(|n| n.trim().is_empty()) {
        return Err(DataError::Invalid(format!("class {i} has an empty name")));
    }
    for (i, name) in names.iter().enumerate() {
        if let Some(j) = names[..i].iter().position(|n| n == name) {
            return Err(DataError::Invalid(format!(
                "classes {j} and {i} are both named {name:?}"
            )));
        }
    }
    Ok(())
}
