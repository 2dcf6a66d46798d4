//! What a model was trained on, kept in its file: the image shape, the class names
//! and the normalisation, so that a new image is prepared the way the training
//! images were and a prediction is named as its class was (`"cat"`, not `3`).
//!
//! It is stored in the model file's architecture JSON under `"data"`: files
//! without it (every file before it existed) still load, and a build that does not
//! know the key ignores it.

use serde::{Deserialize, Serialize};

use crate::data::{fit_image, Dataset, Fit, Image, Normalize};

/// The largest image side a spec may claim (as the PNG reader's limit).
const MAX_SIDE: usize = 8192;

/// The data a model was trained for.
///
/// ```
/// use ferrocnn::data::{Dataset, Normalize};
/// use ferrocnn::io::DataSpec;
/// let data = Dataset::from_raw(vec![0, 255, 255, 0], vec![0, 1], 1, 1, 2)?
///     .with_class_names(vec!["dark".into(), "light".into()])?;
/// let data = data.clone().with_normalization(Normalize::of(&data)?);
/// let spec = DataSpec::of(&data);
/// assert_eq!(spec.input, (1, 1, 2));
/// assert_eq!(spec.class_name(1), "light");
/// assert_eq!(spec.normalize.mean(), &[0.5]);
/// # Ok::<(), ferrocnn::data::DataError>(())
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DataSpec {
    /// `(channels, height, width)` of the images.
    pub input: (usize, usize, usize),
    /// The name of each class, by label.
    pub classes: Vec<String>,
    /// The normalisation the images went through (computed from the training set).
    pub normalize: Normalize,
}

impl DataSpec {
    /// The spec of a training set: its image shape, its class names (or `"0"`,
    /// `"1"`, …) and the normalisation its batches go through (set it from the
    /// set's own statistics with [`Normalize::of`], as
    /// [`TrainingData`](crate::data::TrainingData) does).
    pub fn of(data: &Dataset) -> DataSpec {
        DataSpec {
            input: data.image_shape(),
            classes: (0..data.num_classes()).map(|c| data.class_name(c)).collect(),
            normalize: data.normalization().clone(),
        }
    }

    /// What a model file without a spec was trained on, by the convention of every
    /// model before specs: 28×28 gray digits `"0"` to `"9"`, normalised with
    /// [`Normalize::MNIST`].
    pub fn mnist() -> DataSpec {
        DataSpec {
            input: (1, 28, 28),
            classes: (0..10).map(|c| c.to_string()).collect(),
            normalize: Normalize::MNIST,
        }
    }

    /// The name of class `label` (the label itself past the names).
    pub fn class_name(&self, label: usize) -> String {
        self.classes
            .get(label)
            .cloned()
            .unwrap_or_else(|| label.to_string())
    }

    /// Checks what a file decoded to: a plausible image shape, normalisation for
    /// its channels, and class names that are there, non-empty and distinct.
    pub fn check(&self) -> Result<(), String> {
        let (c, h, w) = self.input;
        if c == 0 || h == 0 || w == 0 || c > 4 || h > MAX_SIDE || w > MAX_SIDE {
            return Err(format!(
                "data.input {c}×{h}×{w} is not an image shape (1 to 4 channels, sides 1 to {MAX_SIDE})"
            ));
        }
        if !self.normalize.fits(c) {
            return Err(format!(
                "data.normalize has {} statistics for {c} channels",
                self.normalize.mean().len()
            ));
        }
        if self.classes.is_empty() {
            return Err("data.classes is empty".into());
        }
        crate::data::check_class_names(&self.classes, self.classes.len())
            .map_err(|e| format!("data.classes: {e}"))
    }
}

impl DataSpec {
    /// An image as this spec's model input: turned to its channels
    /// ([`Image::to_planes`]), brought to its size by `fit`, normalised; returned as
    /// `[channels, height, width]` values, row-major.
    ///
    /// ```
    /// use ferrocnn::data::{Fit, Image};
    /// use ferrocnn::io::DataSpec;
    /// let white = Image { pixels: vec![255; 4 * 4 * 3], height: 4, width: 4, channels: 3 };
    /// let x = DataSpec::mnist().input_of(&white, Fit::Stretch)?;
    /// assert_eq!(x.len(), 28 * 28);
    /// assert!((x[0] - (1.0 - 0.1307) / 0.3081).abs() < 1e-5);
    /// # Ok::<(), String>(())
    /// ```
    ///
    /// # Errors
    /// For a spec of other than 1 or 3 channels, which image files do not give.
    pub fn input_of(&self, image: &Image, fit: Fit) -> Result<Vec<f32>, String> {
        let (c, h, w) = self.input;
        if c != 1 && c != 3 {
            return Err(format!(
                "the model takes {c}-channel images; image files give 1 (gray) or 3 (RGB)"
            ));
        }
        let planes = image.to_planes(c);
        let fitted = fit_image(&planes, (c, image.height, image.width), (h, w), fit);
        Ok(fitted
            .chunks_exact(h * w)
            .enumerate()
            .flat_map(|(ch, plane)| plane.iter().map(move |&p| self.normalize.apply(ch, f32::from(p))))
            .collect())
    }
}
