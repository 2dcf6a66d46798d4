//! The confusion matrix as a picture: one cell per (true, predicted) pair, shaded
//! by the share of the true class's images it holds, with the count written in.

use std::path::Path;

use super::font::{draw_text, text_width, GLYPH_HEIGHT};
use super::image::RgbImage;
use super::VizError;
use crate::metrics::ConfusionMatrix;

/// Pixels per cell side: room for a four-digit count at font scale 1.
const CELL: usize = 30;
/// Blue of a cell holding all of its row.
const FULL: [u8; 3] = [20, 70, 150];

/// Writes `matrix` as a PNG: rows are true classes, columns predicted ones, each
/// cell shaded from white (none of that row's images) to dark blue (all of them)
/// and labelled with its count, so the diagonal reads as accuracy per class and a
/// dark off-diagonal cell as a confusion (e.g. 4 read as 9).
///
/// ```
/// use ferrocnn::metrics::ConfusionMatrix;
/// let mut m = ConfusionMatrix::new(3);
/// m.add(&[0, 1, 2, 2], &[0, 1, 2, 1]);
/// let path = std::env::temp_dir().join("ferrocnn_confusion_doc.png");
/// ferrocnn::viz::save_confusion_matrix(&m, &path)?;
/// # Ok::<(), ferrocnn::viz::VizError>(())
/// ```
pub fn save_confusion_matrix(matrix: &ConfusionMatrix, path: impl AsRef<Path>) -> Result<(), VizError> {
    save_confusion_matrix_at(matrix, path.as_ref())
}

// Not generic: compiled once here, not again in every crate that calls it.
fn save_confusion_matrix_at(matrix: &ConfusionMatrix, path: &Path) -> Result<(), VizError> {
    let n = matrix.classes();
    if n == 0 {
        return Err(VizError::Empty("a confusion matrix of 0 classes".into()));
    }
    let label_width = text_width(&(n - 1).to_string(), 1) + 8;
    let title = "TRUE (ROWS) / PREDICTED (COLUMNS)";
    let top = 2 * (GLYPH_HEIGHT + 6);
    let width = (label_width + n * CELL + 4).max(text_width(title, 1) + 8);
    let height = top + n * CELL + 4;
    let mut image = RgbImage::new(width, height, [255, 255, 255]);
    let text = |image: &mut RgbImage, s: &str, x: usize, y: usize, color: [u8; 3]| {
        draw_text(s, x as i64, y as i64, 1, |px, py| image.put(px, py, color));
    };
    text(&mut image, title, 4, 3, [0, 0, 0]);
    for k in 0..n {
        let label = k.to_string();
        let centre = label_width + k * CELL + (CELL - text_width(&label, 1)) / 2;
        text(&mut image, &label, centre, GLYPH_HEIGHT + 9, [0, 0, 0]);
        let row_y = top + k * CELL + (CELL - GLYPH_HEIGHT) / 2;
        text(&mut image, &label, 4, row_y, [0, 0, 0]);
    }
    for truth in 0..n {
        let row_total: usize = (0..n).map(|p| matrix.count(truth, p)).sum();
        for predicted in 0..n {
            let count = matrix.count(truth, predicted);
            let share = if row_total == 0 {
                0.0
            } else {
                count as f32 / row_total as f32
            };
            // Square root: a cell with 1% of its row still shows.
            let t = share.sqrt();
            let fill = FULL.map(|c| (255.0 + (c as f32 - 255.0) * t).round() as u8);
            let (x0, y0) = (label_width + predicted * CELL, top + truth * CELL);
            for y in y0..y0 + CELL - 1 {
                for x in x0..x0 + CELL - 1 {
                    image.put(x as i64, y as i64, fill);
                }
            }
            if count > 0 {
                let label = count.to_string();
                let ink = if t > 0.5 { [255, 255, 255] } else { [0, 0, 0] };
                let x = x0 + (CELL - 1).saturating_sub(text_width(&label, 1)) / 2;
                text(&mut image, &label, x, y0 + (CELL - GLYPH_HEIGHT) / 2, ink);
            }
        }
    }
    image.save_png(path)
}
