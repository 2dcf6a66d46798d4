//! [`frame_like_mnist`]: a digit drawn or photographed at any size, brought to the
//! framing of MNIST's images, so that the model sees it as it saw its training data.
//!
//! MNIST's digits were made this way (LeCun, Cortes, Burges, "The MNIST database"):
//! each NIST digit was scaled, keeping its aspect ratio, to fit a 20×20 box
//! (anti-aliasing gives the gray levels), then placed in a 28×28 image so that its
//! centre of mass sits at the image's centre. A digit that fills a 280×280 canvas,
//! or sits in its corner, is far from anything the model was trained on until it
//! is framed the same way.

use crate::viz::{resize_gray, Filter};

/// A pixel brighter than this is ink when finding the digit's bounding box: faint
/// anti-aliasing and noise at the edges do not stretch the box.
const INK: u8 = 32;

/// Frames a white-on-black gray digit (`height × width` bytes, row-major) as MNIST
/// frames its digits, into `out_height × out_width` bytes (28×28 for MNIST): crop
/// to the bounding box of the ink (pixels above 32), scale it, aspect kept, so its
/// longer side is 20/28 of the output's shorter side (averaging when shrinking),
/// then place it with its centre of mass at the centre (moved no further than
/// keeps it whole). A blank image is only resized.
///
/// The pixels are then normalized as the dataset's are
/// ([`Normalize::MNIST`](super::Normalize::MNIST)). A dark digit on light paper
/// needs inverting first (`255 - p`).
///
/// ```
/// use ferrocnn::data::frame_like_mnist;
///
/// // A 100×60 white bar in the top-left corner of a 280×280 canvas.
/// let mut canvas = vec![0u8; 280 * 280];
/// for y in 10..110 {
///     for x in 20..80 {
///         canvas[y * 280 + x] = 255;
///     }
/// }
/// let framed = frame_like_mnist(&canvas, (280, 280), (28, 28));
/// // Scaled to 20×12 and centred: rows 4..24, columns 8..20.
/// let ink = |y: usize, x: usize| framed[y * 28 + x] > 0;
/// assert!(ink(4, 8) && ink(23, 19));
/// assert!(!ink(3, 8) && !ink(24, 19) && !ink(4, 7) && !ink(23, 20));
/// ```
///
/// # Panics
/// If `pixels.len() != height × width` or a size is zero.
pub fn frame_like_mnist(
    pixels: &[u8],
    (height, width): (usize, usize),
    (out_height, out_width): (usize, usize),
) -> Vec<u8> {
    let (h, w) = (out_height, out_width);
    assert!(
        pixels.len() == height * width && h * w > 0,
        "frame_like_mnist: {} pixels for {height}×{width}, output {h}×{w}",
        pixels.len()
    );
    let ink = |y: usize, x: usize| pixels[y * width + x] > INK;
    let rows: Vec<usize> = (0..height).filter(|&y| (0..width).any(|x| ink(y, x))).collect();
    let cols: Vec<usize> = (0..width).filter(|&x| (0..height).any(|y| ink(y, x))).collect();
    let (Some(&top), Some(&bottom), Some(&left), Some(&right)) =
        (rows.first(), rows.last(), cols.first(), cols.last())
    else {
        return resize_gray(pixels, (height, width), (h, w), Filter::Bilinear);
    };
    let (bh, bw) = (bottom - top + 1, right - left + 1);
    let crop: Vec<u8> = (top..=bottom)
        .flat_map(|y| pixels[y * width + left..=y * width + right].iter().copied())
        .collect();
    let fit = (20 * h.min(w)).div_ceil(28) as f64 / bh.max(bw) as f64;
    let (nh, nw) = (
        ((bh as f64 * fit).round() as usize).clamp(1, h),
        ((bw as f64 * fit).round() as usize).clamp(1, w),
    );
    let digit = resize_gray(&crop, (bh, bw), (nh, nw), Filter::Bilinear);
    let mass: f64 = digit.iter().map(|&p| p as f64).sum::<f64>().max(1.0);
    let moment = |f: &dyn Fn(usize) -> f64| {
        digit
            .iter()
            .enumerate()
            .map(|(i, &p)| p as f64 * f(i))
            .sum::<f64>()
            / mass
    };
    let (cy, cx) = (
        moment(&|i| (i / nw) as f64 + 0.5),
        moment(&|i| (i % nw) as f64 + 0.5),
    );
    let place = |centre: f64, len: usize, n: usize| {
        ((len as f64 / 2.0 - centre).round().max(0.0) as usize).min(len - n)
    };
    let (oy, ox) = (place(cy, h, nh), place(cx, w, nw));
    let mut out = vec![0u8; h * w];
    for y in 0..nh {
        out[(oy + y) * w + ox..(oy + y) * w + ox + nw].copy_from_slice(&digit[y * nw..(y + 1) * nw]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::frame_like_mnist;

    #[test]
    fn blank_canvas_stays_blank() {
        assert_eq!(
            frame_like_mnist(&[0; 280 * 280], (280, 280), (28, 28)),
            vec![0; 784]
        );
    }

    #[test]
    fn digit_is_moved_so_its_centre_of_mass_is_central() {
        // An "L": heavier on the left, so its box sits right of centre.
        let mut canvas = vec![0u8; 200 * 200];
        for y in 0..100 {
            for x in 150..200 {
                let bar = x < 160 || y >= 90;
                canvas[y * 200 + x] = if bar { 255 } else { 0 };
            }
        }
        let framed = frame_like_mnist(&canvas, (200, 200), (28, 28));
        let mass: f64 = framed.iter().map(|&p| p as f64).sum();
        let cx: f64 = framed
            .iter()
            .enumerate()
            .map(|(i, &p)| p as f64 * ((i % 28) as f64 + 0.5))
            .sum::<f64>()
            / mass;
        let cy: f64 = framed
            .iter()
            .enumerate()
            .map(|(i, &p)| p as f64 * ((i / 28) as f64 + 0.5))
            .sum::<f64>()
            / mass;
        assert!(
            (cx - 14.0).abs() <= 0.5 && (cy - 14.0).abs() <= 0.5,
            "centre of mass ({cx}, {cy})"
        );
    }
}
