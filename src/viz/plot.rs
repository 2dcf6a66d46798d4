//! Training curves: loss and accuracy per epoch, train and test, as two line charts
//! side by side in one PNG, drawn with a small line rasterizer and the built-in
//! font.

use std::path::Path;

use super::font;
use super::image::RgbImage;
use super::VizError;
use crate::train::EpochStats;

/// Width of the picture [`save_training_curves`] writes.
pub const CURVES_WIDTH: usize = 960;
/// Height of the picture [`save_training_curves`] writes.
pub const CURVES_HEIGHT: usize = 400;

const WHITE: [u8; 3] = [255, 255, 255];
const BLACK: [u8; 3] = [0, 0, 0];
const GRID: [u8; 3] = [225, 225, 225];
const TRAIN: [u8; 3] = [31, 119, 180]; // blue
const TEST: [u8; 3] = [230, 115, 0]; // orange

/// Writes loss (left panel) and accuracy in percent (right panel) per epoch, for
/// training (blue) and the evaluation set (orange, where `eval` is set), as a
/// [`CURVES_WIDTH`] × [`CURVES_HEIGHT`] RGB PNG. Each point is marked, so a
/// single epoch still shows.
///
/// The training figures are those `fit` reports: averaged over the epoch in
/// training mode (dropout on), so early in training they sit below the test
/// figures measured at the epoch's end.
///
/// # Errors
/// [`VizError::Empty`] for an empty history, I/O errors naming the file.
pub fn save_training_curves(history: &[EpochStats], path: impl AsRef<Path>) -> Result<(), VizError> {
    save_training_curves_at(history, path.as_ref())
}

// Not generic: compiled once here, not again in every crate that calls it.
fn save_training_curves_at(history: &[EpochStats], path: &Path) -> Result<(), VizError> {
    if history.is_empty() {
        return Err(VizError::Empty("training curves: no epochs".into()));
    }
    let mut image = RgbImage::new(CURVES_WIDTH, CURVES_HEIGHT, WHITE);
    let point = |s: &EpochStats, v: f64| (s.epoch as f64, v);
    let train_loss: Vec<_> = history.iter().map(|s| point(s, s.train_loss)).collect();
    let test_loss: Vec<_> = history
        .iter()
        .filter_map(|s| s.eval.map(|e| point(s, e.0)))
        .collect();
    let train_acc: Vec<_> = history
        .iter()
        .map(|s| point(s, 100.0 * s.train_accuracy))
        .collect();
    let test_acc: Vec<_> = history
        .iter()
        .filter_map(|s| s.eval.map(|e| point(s, 100.0 * e.1)))
        .collect();
    let half = CURVES_WIDTH / 2;
    let loss_max = train_loss
        .iter()
        .chain(&test_loss)
        .map(|p| p.1)
        .fold(0.0, f64::max);
    let panel = |x0: usize, title: &'static str| Panel {
        left: x0 + 62,
        right: x0 + half - 20,
        top: 48,
        bottom: CURVES_HEIGHT - 50,
        title,
    };
    panel(0, "LOSS").draw(&mut image, &train_loss, &test_loss, (0.0, loss_max));
    let acc = train_acc.iter().chain(&test_acc).map(|p| p.1);
    let (acc_lo, acc_hi) = acc.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
        (lo.min(v), hi.max(v))
    });
    panel(half, "ACCURACY (%)").draw(&mut image, &train_acc, &test_acc, (acc_lo, acc_hi.min(100.0)));
    image.save_png(path)
}

/// One chart: the plot area in image pixels and its title.
struct Panel {
    left: usize,
    right: usize,
    top: usize,
    bottom: usize,
    title: &'static str,
}

impl Panel {
    fn draw(&self, img: &mut RgbImage, train: &[(f64, f64)], test: &[(f64, f64)], (lo, hi): (f64, f64)) {
        let (l, r, t, b) = (
            self.left as f64,
            self.right as f64,
            self.top as f64,
            self.bottom as f64,
        );
        let last_epoch = train.iter().chain(test).map(|p| p.0).fold(1.0, f64::max);
        let (x_lo, x_hi) = if last_epoch > 1.0 {
            (1.0, last_epoch)
        } else {
            (0.0, 2.0)
        };
        let (y_lo, y_hi, y_step) = nice_range(lo, hi);
        let px = |x: f64| l + (x - x_lo) / (x_hi - x_lo) * (r - l);
        let py = |y: f64| b - (y - y_lo) / (y_hi - y_lo) * (b - t);

        // Horizontal grid lines with value labels.
        let decimals = (-y_step.log10().floor()).max(0.0) as usize;
        let mut y = y_lo;
        while y <= y_hi + y_step * 1e-6 {
            let yy = py(y).round() as i64;
            line(img, (l, yy as f64), (r, yy as f64), GRID, 1);
            let label = format!("{y:.decimals$}");
            let w = font::text_width(&label, 1) as i64;
            text(img, &label, self.left as i64 - 6 - w, yy - 3, 1, BLACK);
            y += y_step;
        }
        // Epoch ticks: every epoch, or a 1-2-5 step when there are many.
        let x_step = nice_step((x_hi - x_lo) / 10.0).max(1.0);
        let mut x = if x_lo == 0.0 { 1.0 } else { x_lo };
        while x <= last_epoch + 1e-9 {
            let xx = px(x).round();
            line(img, (xx, b), (xx, b + 4.0), BLACK, 1);
            let label = format!("{x:.0}");
            let w = font::text_width(&label, 1) as i64;
            text(img, &label, xx as i64 - w / 2, self.bottom as i64 + 8, 1, BLACK);
            x += x_step;
        }
        // Axes.
        line(img, (l, t), (l, b), BLACK, 1);
        line(img, (l, b), (r, b), BLACK, 1);
        let label = "EPOCH";
        let w = font::text_width(label, 2) as f64;
        text(
            img,
            label,
            ((l + r - w) / 2.0) as i64,
            self.bottom as i64 + 22,
            2,
            BLACK,
        );
        text(img, self.title, self.left as i64, 14, 2, BLACK);

        // Legend in the title row, right-aligned, outside the data.
        let mut entries = vec![("TRAIN", TRAIN)];
        if !test.is_empty() {
            entries.push(("TEST", TEST));
        }
        let mut lx = self.right as i64;
        for (name, color) in entries.iter().rev() {
            lx -= font::text_width(name, 2) as i64;
            text(img, name, lx, 14, 2, BLACK);
            lx -= 26;
            line(img, (lx as f64, 21.0), (lx as f64 + 18.0, 21.0), *color, 3);
            lx -= 16;
        }

        for (series, color) in [(train, TRAIN), (test, TEST)] {
            let points: Vec<(f64, f64)> = series.iter().map(|&(x, y)| (px(x), py(y))).collect();
            for pair in points.windows(2) {
                line(img, pair[0], pair[1], color, 2);
            }
            for &(x, y) in &points {
                fill_rect(img, x.round() as i64 - 3, y.round() as i64 - 3, 7, 7, color);
            }
        }
    }
}

/// A 1-2-5 step near `raw` (e.g. 0.23 → 0.2, 3.4 → 5).
fn nice_step(raw: f64) -> f64 {
    if raw <= 0.0 || !raw.is_finite() {
        return 1.0;
    }
    let magnitude = 10f64.powf(raw.log10().floor());
    let f = raw / magnitude;
    let nice = if f <= 1.0 {
        1.0
    } else if f <= 2.0 {
        2.0
    } else if f <= 5.0 {
        5.0
    } else {
        10.0
    };
    nice * magnitude
}

/// Axis bounds on multiples of a 1-2-5 step, about five intervals, covering
/// `lo..hi` (widened when flat).
fn nice_range(lo: f64, hi: f64) -> (f64, f64, f64) {
    let (lo, hi) = if hi - lo < 1e-9 {
        (lo - 0.5, hi + 0.5)
    } else {
        (lo, hi)
    };
    let step = nice_step((hi - lo) / 5.0);
    let y_lo = (lo / step).floor() * step;
    let mut y_hi = (hi / step).ceil() * step;
    if y_hi <= y_lo {
        y_hi = y_lo + step;
    }
    (y_lo, y_hi, step)
}

fn text(img: &mut RgbImage, s: &str, x: i64, y: i64, scale: usize, color: [u8; 3]) {
    font::draw_text(s, x, y, scale, |x, y| img.put(x, y, color));
}

fn fill_rect(img: &mut RgbImage, x: i64, y: i64, w: i64, h: i64, color: [u8; 3]) {
    for yy in y..y + h {
        for xx in x..x + w {
            img.put(xx, yy, color);
        }
    }
}

/// A straight line `width` pixels thick (a square brush stepped along the longer
/// axis, one step per pixel — no gaps, no anti-aliasing).
fn line(img: &mut RgbImage, (x0, y0): (f64, f64), (x1, y1): (f64, f64), color: [u8; 3], width: i64) {
    let steps = (x1 - x0).abs().max((y1 - y0).abs()).ceil().max(1.0) as i64;
    let offset = (width - 1) / 2;
    for i in 0..=steps {
        let t = i as f64 / steps as f64;
        let x = (x0 + t * (x1 - x0)).round() as i64 - offset;
        let y = (y0 + t * (y1 - y0)).round() as i64 - offset;
        fill_rect(img, x, y, width, width, color);
    }
}
