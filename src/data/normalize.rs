//! Input normalisation, per channel: a pixel `p` of channel `c` becomes
//! `(p / 255 − mean[c]) / std[c]`, torchvision's `Normalize(mean, std)` after
//! `ToTensor()`.
//!
//! The statistics are computed from the training images ([`Normalize::of`]) and
//! travel with a model in its file (see `io::DataSpec`), so an image met later is
//! normalised the way the training images were.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

use super::{DataError, Dataset};

/// Per-channel normalisation statistics. One value applies to every channel, as
/// MNIST's `(0.1307,)`, `(0.3081,)` do.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "Stats")]
pub struct Normalize {
    // `Cow` so that the usual constants are `const` and a computed one is owned.
    mean: Cow<'static, [f32]>,
    std: Cow<'static, [f32]>,
}

impl Normalize {
    /// MNIST's training-set statistics, the usual choice: mean 0.1307, std 0.3081.
    pub const MNIST: Normalize = Normalize {
        mean: Cow::Borrowed(&[0.1307]),
        std: Cow::Borrowed(&[0.3081]),
    };

    /// `p / 255` only: values in `0.0..=1.0`.
    pub const UNIT: Normalize = Normalize {
        mean: Cow::Borrowed(&[0.0]),
        std: Cow::Borrowed(&[1.0]),
    };

    /// Statistics given per channel (or one pair for all channels).
    ///
    /// ```
    /// use ferrocnn::data::Normalize;
    /// let imagenet = Normalize::new(vec![0.485, 0.456, 0.406], vec![0.229, 0.224, 0.225])?;
    /// assert_eq!(imagenet.channel(2), (0.406, 0.225));
    /// assert_eq!(imagenet.apply(0, 255.0), (1.0 - 0.485) / 0.229);
    /// # Ok::<(), ferrocnn::data::DataError>(())
    /// ```
    ///
    /// # Errors
    /// [`DataError::Invalid`] unless `mean` and `std` have the same non-zero length,
    /// every mean is finite and every std finite and positive.
    pub fn new(mean: Vec<f32>, std: Vec<f32>) -> Result<Normalize, DataError> {
        let invalid = |why: String| Err(DataError::Invalid(format!("normalisation: {why}")));
        if mean.is_empty() || mean.len() != std.len() {
            return invalid(format!(
                "{} means and {} standard deviations",
                mean.len(),
                std.len()
            ));
        }
        if let Some(m) = mean.iter().find(|m| !m.is_finite()) {
            return invalid(format!("mean {m} is not finite"));
        }
        if let Some(s) = std.iter().find(|s| !(s.is_finite() && **s > 0.0)) {
            return invalid(format!("standard deviation {s} is not a positive finite number"));
        }
        Ok(Normalize {
            mean: Cow::Owned(mean),
            std: Cow::Owned(std),
        })
    }

    /// The mean and standard deviation of `p / 255` per channel over every pixel of
    /// `data`, as `torchvision` users compute them for `Normalize`. A channel that
    /// never varies gets std 1, so it is centred but not blown up.
    ///
    /// # Errors
    /// [`DataError::Invalid`] for an empty dataset.
    pub fn of(data: &Dataset) -> Result<Normalize, DataError> {
        if data.is_empty() {
            return Err(DataError::Invalid(
                "normalisation statistics need at least one image".into(),
            ));
        }
        let (c, h, w) = data.image_shape();
        let plane = h * w;
        // Byte histograms per channel: exact sums in integers, one pass over the data.
        let mut counts = vec![[0u64; 256]; c];
        for image in data.pixels().chunks_exact(c * plane) {
            for (channel, pixels) in image.chunks_exact(plane).enumerate() {
                let hist = &mut counts[channel];
                for &p in pixels {
                    hist[usize::from(p)] += 1;
                }
            }
        }
        let (mut mean, mut std) = (Vec::with_capacity(c), Vec::with_capacity(c));
        for hist in &counts {
            let n: u64 = hist.iter().sum();
            let sum: f64 = hist.iter().enumerate().map(|(p, &k)| p as f64 * k as f64).sum();
            let m = sum / n as f64;
            let var = hist
                .iter()
                .enumerate()
                .map(|(p, &k)| (p as f64 - m).powi(2) * k as f64)
                .sum::<f64>()
                / n as f64;
            let s = var.sqrt() / 255.0;
            mean.push((m / 255.0) as f32);
            std.push(if s > 1e-6 { s as f32 } else { 1.0 });
        }
        Normalize::new(mean, std)
    }

    /// The means, one per channel or one for all.
    pub fn mean(&self) -> &[f32] {
        &self.mean
    }

    /// The standard deviations, one per channel or one for all.
    pub fn std(&self) -> &[f32] {
        &self.std
    }

    /// True if these statistics can normalise images of `channels` channels: one
    /// pair for all, or one per channel.
    pub fn fits(&self, channels: usize) -> bool {
        self.mean.len() == 1 || self.mean.len() == channels
    }

    /// `(mean, std)` of channel `c`.
    ///
    /// # Panics
    /// If the statistics are per channel and `c` is past them.
    pub fn channel(&self, c: usize) -> (f32, f32) {
        let i = if self.mean.len() == 1 { 0 } else { c };
        (self.mean[i], self.std[i])
    }

    /// The normalised value of one pixel value of channel `c` (`0.0..=255.0`,
    /// fractional after augmentation).
    #[inline]
    pub fn apply(&self, c: usize, pixel: f32) -> f32 {
        let (mean, std) = self.channel(c);
        (pixel / 255.0 - mean) / std
    }

    /// The normalised value of every byte of channel `c`, indexed by the byte.
    pub fn table(&self, c: usize) -> [f32; 256] {
        std::array::from_fn(|p| self.apply(c, p as f32))
    }

    /// The normalised values of black (0) and white (255) in channel `c`: the range
    /// a model's inputs live in.
    pub fn range(&self, c: usize) -> (f32, f32) {
        (self.apply(c, 0.0), self.apply(c, 255.0))
    }
}

/// What a file stores; checked by [`Normalize::new`] as it is read.
#[derive(Deserialize)]
struct Stats {
    mean: Vec<f32>,
    std: Vec<f32>,
}

impl TryFrom<Stats> for Normalize {
    type Error = DataError;

    fn try_from(stats: Stats) -> Result<Normalize, DataError> {
        Normalize::new(stats.mean, stats.std)
    }
}

impl Default for Normalize {
    fn default() -> Self {
        Normalize::MNIST
    }
}
