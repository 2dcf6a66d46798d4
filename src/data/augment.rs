//! Data augmentation for small grey images: a random shift and a small rotation.
//!
//! The transform is computed backwards, as image warping usually is: for every output
//! pixel, find where it comes from in the source and sample there bilinearly, with
//! zero (background) outside the image. That way every output pixel is written once
//! and no holes appear. An integer shift without rotation samples exactly on the
//! grid, so it moves pixels without blurring them.
//!
//! Randomness comes from a caller-supplied `rand` 0.9 RNG; [`crate::data::Batches`]
//! seeds one per sample from the epoch seed and the sample's index, so the same seed
//! gives the same augmented batches, bit for bit, whatever the batch size.

use rand::Rng;

/// Random shift and rotation, drawn independently for each image.
///
/// The shift is a whole number of pixels in `-max_shift..=max_shift` on each axis; the
/// rotation an angle in `-max_rotation_degrees..=max_rotation_degrees` about the image
/// centre. Both zero (the [`Default`]) is the identity.
///
/// ```
/// use ferrocnn::data::Augment;
/// let aug = Augment { max_shift: 2, max_rotation_degrees: 10.0 };
/// assert!(!aug.is_identity());
/// assert!(Augment::default().is_identity());
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Augment {
    /// Largest shift in pixels, along each axis.
    pub max_shift: usize,
    /// Largest rotation in degrees, either direction.
    pub max_rotation_degrees: f32,
}

impl Augment {
    /// True when this augmentation leaves every image unchanged.
    pub fn is_identity(&self) -> bool {
        self.max_shift == 0 && self.max_rotation_degrees == 0.0
    }

    /// Draws a shift and an angle from `rng` and writes the transformed image, as
    /// pixel values in `0.0..=255.0`, into `out`.
    ///
    /// `image` is one sample, `[channels, height, width]` bytes; every channel gets the
    /// same transform. `out` has the same length.
    ///
    /// # Panics
    /// If `max_rotation_degrees` is negative or not finite, or the buffer lengths do
    /// not match `shape` (programmer errors).
    pub fn apply<R: Rng + ?Sized>(
        &self,
        image: &[u8],
        shape: (usize, usize, usize),
        rng: &mut R,
        out: &mut [f32],
    ) {
        assert!(
            self.max_rotation_degrees.is_finite() && self.max_rotation_degrees >= 0.0,
            "Augment: max_rotation_degrees must be finite and >= 0, got {}",
            self.max_rotation_degrees
        );
        let s = i64::try_from(self.max_shift).unwrap_or(i64::MAX);
        let (dx, dy) = if s > 0 {
            (rng.random_range(-s..=s), rng.random_range(-s..=s))
        } else {
            (0, 0)
        };
        let r = self.max_rotation_degrees;
        let angle = if r > 0.0 { rng.random_range(-r..=r) } else { 0.0 };
        shift_rotate(image, shape, (dx as f32, dy as f32), angle, out);
    }
}

/// Shifts by `(dx, dy)` pixels (positive: right, down) and rotates by `angle_degrees`
/// about the centre (positive: clockwise on screen, where rows grow downwards),
/// sampling bilinearly with zero outside. Writes pixel values in `0.0..=255.0`.
///
/// # Panics
/// If `image` or `out` does not hold `channels * height * width` values.
///
/// ```
/// use ferrocnn::data::shift_rotate;
/// // A 1-channel 3×3 image with one lit pixel in the centre.
/// let mut img = [0u8; 9];
/// img[4] = 200;
/// let mut out = [0.0f32; 9];
/// shift_rotate(&img, (1, 3, 3), (1.0, 0.0), 0.0, &mut out);
/// assert_eq!(out[5], 200.0); // moved one pixel to the right
/// assert_eq!(out[4], 0.0);
/// ```
pub fn shift_rotate(
    image: &[u8],
    shape: (usize, usize, usize),
    (dx, dy): (f32, f32),
    angle_degrees: f32,
    out: &mut [f32],
) {
    let (channels, height, width) = shape;
    let plane = height * width;
    assert_eq!(
        image.len(),
        channels * plane,
        "shift_rotate: image has {} bytes, shape {:?} needs {}",
        image.len(),
        shape,
        channels * plane
    );
    assert_eq!(
        out.len(),
        image.len(),
        "shift_rotate: output has {} values, image {}",
        out.len(),
        image.len()
    );
    let (sin, cos) = angle_degrees.to_radians().sin_cos();
    let cx = (width as f32 - 1.0) / 2.0;
    let cy = (height as f32 - 1.0) / 2.0;
    let (w, h) = (width as isize, height as isize);

    for (src, dst) in image.chunks_exact(plane).zip(out.chunks_exact_mut(plane)) {
        let at = |x: isize, y: isize| -> f32 {
            if x >= 0 && x < w && y >= 0 && y < h {
                f32::from(src[(y * w + x) as usize])
            } else {
                0.0
            }
        };
        for (y, row) in dst.chunks_exact_mut(width).enumerate() {
            let v = y as f32 - dy - cy;
            for (x, o) in row.iter_mut().enumerate() {
                let u = x as f32 - dx - cx;
                // Inverse map: undo the shift, then rotate by -angle about the centre.
                let sx = cos * u + sin * v + cx;
                let sy = -sin * u + cos * v + cy;
                let (x0, y0) = (sx.floor(), sy.floor());
                let (fx, fy) = (sx - x0, sy - y0);
                let (x0, y0) = (x0 as isize, y0 as isize);
                // Saturating: a huge shift puts every sample outside, never overflows.
                let (x1, y1) = (x0.saturating_add(1), y0.saturating_add(1));
                let top = at(x0, y0) * (1.0 - fx) + at(x1, y0) * fx;
                let bottom = at(x0, y1) * (1.0 - fx) + at(x1, y1) * fx;
                *o = top * (1.0 - fy) + bottom * fy;
            }
        }
    }
}
