//! Resampling images to a chosen size, and the policy for fitting an image of
//! another shape into it.
//!
//! One separable resampler serves every caller: bilinear when enlarging, an
//! area average when shrinking (so a thin stroke fades instead of vanishing between
//! samples, as PIL's antialiased resize does), or nearest.

/// How [`resize_gray`] samples.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Filter {
    /// Each output pixel copies the source pixel under its centre: blocky, exact.
    Nearest,
    /// Bilinear interpolation when enlarging; when shrinking, each output pixel
    /// averages the source pixels it covers (weighted by overlap), so a thin stroke
    /// in a large drawing fades instead of vanishing between samples.
    Bilinear,
}

/// Resizes a row-major gray image from `(height, width)` to `(out_height,
/// out_width)`.
///
/// ```
/// use ferrocnn::data::{resize_gray, Filter};
/// // 4×4 → 2×2 averages each 2×2 block.
/// let px = [0, 0, 100, 100, 0, 0, 100, 100, 40, 40, 200, 200, 40, 40, 200, 200];
/// assert_eq!(resize_gray(&px, (4, 4), (2, 2), Filter::Bilinear), vec![0, 100, 40, 200]);
/// assert_eq!(resize_gray(&[7], (1, 1), (2, 2), Filter::Nearest), vec![7; 4]);
/// ```
///
/// # Panics
/// If `pixels.len() != height × width` or a size is zero.
pub fn resize_gray(
    pixels: &[u8],
    (h, w): (usize, usize),
    (oh, ow): (usize, usize),
    filter: Filter,
) -> Vec<u8> {
    assert!(
        pixels.len() == h * w && h > 0 && w > 0 && oh > 0 && ow > 0,
        "resize_gray: {} pixels for {h}×{w} → {oh}×{ow}",
        pixels.len()
    );
    let (ry, rx) = (axis_weights(h, oh, filter), axis_weights(w, ow, filter));
    // Separable: rows first (h × ow), then columns.
    let mut tmp = vec![0f32; h * ow];
    for y in 0..h {
        for (x, taps) in rx.iter().enumerate() {
            tmp[y * ow + x] = taps.iter().map(|&(i, wt)| wt * pixels[y * w + i] as f32).sum();
        }
    }
    let mut out = Vec::with_capacity(oh * ow);
    for taps in &ry {
        for x in 0..ow {
            let v: f32 = taps.iter().map(|&(i, wt)| wt * tmp[i * ow + x]).sum();
            out.push(v.round().clamp(0.0, 255.0) as u8);
        }
    }
    out
}

/// For each output index along one axis, the source indices and their weights.
fn axis_weights(n_in: usize, n_out: usize, filter: Filter) -> Vec<Vec<(usize, f32)>> {
    let ratio = n_in as f64 / n_out as f64;
    (0..n_out)
        .map(|o| match filter {
            Filter::Nearest => {
                let i = (((o as f64 + 0.5) * ratio) as usize).min(n_in - 1);
                vec![(i, 1.0)]
            }
            Filter::Bilinear if ratio > 1.0 => {
                // Area average over the footprint [o·ratio, (o+1)·ratio).
                let (start, end) = (o as f64 * ratio, (o as f64 + 1.0) * ratio);
                let last = (end.ceil() as usize).min(n_in);
                (start.floor() as usize..last)
                    .map(|i| {
                        let overlap = (end.min(i as f64 + 1.0) - start.max(i as f64)).max(0.0);
                        (i, (overlap / ratio) as f32)
                    })
                    .filter(|&(_, wt)| wt > 0.0)
                    .collect()
            }
            Filter::Bilinear => {
                let centre = ((o as f64 + 0.5) * ratio - 0.5).clamp(0.0, (n_in - 1) as f64);
                let i0 = centre.floor() as usize;
                let t = (centre - i0 as f64) as f32;
                if i0 + 1 < n_in && t > 0.0 {
                    vec![(i0, 1.0 - t), (i0 + 1, t)]
                } else {
                    vec![(i0, 1.0)]
                }
            }
        })
        .collect()
}

/// How an image of another shape is brought to the chosen size.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Fit {
    /// Scale each side to the size, changing the aspect ratio if it differs
    /// (Keras's `image_dataset_from_directory` default).
    Stretch,
    /// Scale to cover the size keeping the aspect ratio, then cut the centre
    /// (torchvision's `Resize(size)` + `CenterCrop(size)`).
    #[default]
    Crop,
}

/// Brings a planar `[channels, height, width]` image to `[channels, out_height,
/// out_width]` by `fit`, each channel resampled with [`Filter::Bilinear`]. An image
/// already of that size is returned as it is.
///
/// ```
/// use ferrocnn::data::{fit_image, Fit};
/// // A 2×4 image cropped to 2×2 keeps its middle columns.
/// let px = [1, 2, 3, 4, 5, 6, 7, 8];
/// assert_eq!(fit_image(&px, (1, 2, 4), (2, 2), Fit::Crop), vec![2, 3, 6, 7]);
/// assert_eq!(fit_image(&px, (1, 2, 4), (2, 2), Fit::Stretch).len(), 4);
/// ```
///
/// # Panics
/// If `pixels.len() != channels × height × width` or a size is zero.
pub fn fit_image(
    pixels: &[u8],
    (c, h, w): (usize, usize, usize),
    (oh, ow): (usize, usize),
    fit: Fit,
) -> Vec<u8> {
    assert!(
        pixels.len() == c * h * w && c > 0,
        "fit_image: {} pixels for {c}×{h}×{w}",
        pixels.len()
    );
    if (h, w) == (oh, ow) {
        return pixels.to_vec();
    }
    // The source window that keeps the output's aspect ratio, centred.
    let (top, left, ch, cw) = match fit {
        Fit::Stretch => (0, 0, h, w),
        Fit::Crop if h * ow > w * oh => {
            let ch = ((w * oh) as f64 / ow as f64).round().max(1.0) as usize;
            ((h - ch) / 2, 0, ch, w)
        }
        Fit::Crop => {
            let cw = ((h * ow) as f64 / oh as f64).round().max(1.0) as usize;
            (0, (w - cw) / 2, h, cw)
        }
    };
    let mut out = Vec::with_capacity(c * oh * ow);
    let mut window = Vec::with_capacity(ch * cw);
    for plane in pixels.chunks_exact(h * w) {
        window.clear();
        for row in plane.chunks_exact(w).skip(top).take(ch) {
            window.extend_from_slice(&row[left..left + cw]);
        }
        out.extend(resize_gray(&window, (ch, cw), (oh, ow), Filter::Bilinear));
    }
    out
}
