//! Images in CSV, as Kaggle's digit-recognizer ships MNIST: one image per line,
//! `label,pixel0,…,pixelN` (a test file has the pixels only), pixel values 0–255,
//! square gray images, and an optional header line (`label,pixel0,…`).
//!
//! Read streaming, a line at a time, straight into bytes, with a parser of its own:
//! the layout is plain unquoted integers, and a general CSV parser would build a
//! string per field (42,000 × 785 of them). Every error names the line and column.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use super::{DataError, Dataset};

/// Largest label accepted: a class count past this is a column of something else.
pub const MAX_CSV_LABEL: usize = 9_999;

/// What a CSV file held.
#[derive(Clone, Debug, PartialEq)]
pub struct CsvImages {
    /// Pixels of every image, row-major, `rows × side × side` bytes.
    pub pixels: Vec<u8>,
    /// One label per image, or `None` for a file of pixels only.
    pub labels: Option<Vec<usize>>,
    /// Side of the square images.
    pub side: usize,
    /// Number of images.
    pub rows: usize,
}

/// Where a line's fields go.
struct Layout {
    labelled: bool,
    columns: usize,
    side: usize,
}

/// `n` if it is a perfect square `side²`, as `side`.
fn square_side(n: usize) -> Option<usize> {
    let side = (n as f64).sqrt().round() as usize;
    (side > 0 && side * side == n).then_some(side)
}

/// Parses a field as a whole number, without allocating.
fn number(field: &[u8]) -> Option<u64> {
    let field = field.trim_ascii();
    if field.is_empty() || field.len() > 12 {
        return None;
    }
    field.iter().try_fold(0u64, |n, &b| {
        b.is_ascii_digit().then(|| n * 10 + u64::from(b - b'0'))
    })
}

/// Reads a CSV file of images (see the module docs for the layout).
///
/// Whether the first column is a label comes from the header (`label` first), or
/// without one from the column count: `1 + side²` columns are labelled, `side²`
/// columns are pixels only.
///
/// # Errors
/// [`DataError::Csv`] naming the line and column: a row with another number of
/// columns than the first, a value that is not a whole number, a pixel above 255, a
/// label above [`MAX_CSV_LABEL`], an empty file, a column count that is no square
/// image. [`DataError::NotFound`]/[`DataError::Io`] for the file itself.
pub fn read_csv(path: impl AsRef<Path>) -> Result<CsvImages, DataError> {
    read_csv_at(path.as_ref())
}

// Not generic: compiled once here, not again in every crate that calls it.
fn read_csv_at(path: &Path) -> Result<CsvImages, DataError> {
    let file = File::open(path).map_err(|e| DataError::io(path, e))?;
    let mut reader = BufReader::with_capacity(1 << 16, file);
    let fail = |line: usize, column: Option<usize>, reason: String| DataError::Csv {
        path: PathBuf::from(path),
        line,
        column,
        reason,
    };
    let (mut line, mut number_of_line) = (Vec::new(), 0);
    let (mut layout, mut pixels, mut labels): (Option<Layout>, Vec<u8>, Vec<usize>) =
        (None, Vec::new(), Vec::new());
    let mut rows = 0;
    loop {
        line.clear();
        let read = reader
            .read_until(b'\n', &mut line)
            .map_err(|e| DataError::io(path, e))?;
        if read == 0 {
            break;
        }
        number_of_line += 1;
        let text = line.trim_ascii_end();
        if text.is_empty() {
            return Err(fail(number_of_line, None, "an empty line".into()));
        }
        if layout.is_none() {
            // The first line: a header, or the first image.
            let fields: Vec<&[u8]> = text.split(|&b| b == b',').collect();
            let header = fields.iter().any(|f| number(f).is_none());
            let labelled = match header {
                true => fields[0].trim_ascii().eq_ignore_ascii_case(b"label"),
                false => square_side(fields.len() - 1).is_some(),
            };
            let pixels_per_row = fields.len() - usize::from(labelled);
            let Some(side) = square_side(pixels_per_row) else {
                return Err(fail(
                    number_of_line,
                    None,
                    format!(
                        "{} columns are not {}a square gray image",
                        fields.len(),
                        if labelled { "a label and " } else { "" }
                    ),
                ));
            };
            layout = Some(Layout {
                labelled,
                columns: fields.len(),
                side,
            });
            if header {
                continue;
            }
        }
        let shape = layout.as_ref().expect("set by the first line");
        line_into(text.split(|&b| b == b','), shape, (&mut pixels, &mut labels))
            .map_err(|(column, reason)| fail(number_of_line, column, reason))?;
        rows += 1;
    }
    let Some(layout) = layout else {
        return Err(fail(1, None, "the file is empty".into()));
    };
    Ok(CsvImages {
        pixels,
        labels: layout.labelled.then_some(labels),
        side: layout.side,
        rows,
    })
}

/// Appends one line's label and pixels; on error, the 1-based column and why.
fn line_into<'a>(
    fields: impl Iterator<Item = &'a [u8]>,
    layout: &Layout,
    (pixels, labels): (&mut Vec<u8>, &mut Vec<usize>),
) -> Result<(), (Option<usize>, String)> {
    let (start, labels_before) = (pixels.len(), labels.len());
    let mut count = 0;
    for (i, field) in fields.enumerate() {
        count += 1;
        if count > layout.columns {
            continue; // counted, reported below
        }
        let value = number(field).ok_or_else(|| {
            (
                Some(i + 1),
                format!("{:?} is not a whole number", String::from_utf8_lossy(field)),
            )
        })?;
        if layout.labelled && i == 0 {
            if value > MAX_CSV_LABEL as u64 {
                return Err((Some(1), format!("label {value} is above {MAX_CSV_LABEL}")));
            }
            labels.push(value as usize);
        } else if value > 255 {
            return Err((Some(i + 1), format!("pixel value {value} is above 255")));
        } else {
            pixels.push(value as u8);
        }
    }
    if count != layout.columns {
        pixels.truncate(start);
        labels.truncate(labels_before);
        return Err((
            None,
            format!("{count} columns where the first line has {}", layout.columns),
        ));
    }
    Ok(())
}

impl Dataset {
    /// A labelled dataset from a CSV file in Kaggle's layout ([`read_csv`]).
    ///
    /// # Errors
    /// Those of [`read_csv`], and [`DataError::Csv`] if the file holds no labels
    /// (a test file: read it with [`read_csv`] to predict its images).
    pub fn from_csv(path: impl AsRef<Path>) -> Result<Dataset, DataError> {
        Self::from_csv_at(path.as_ref())
    }

    // Not generic: compiled once here, not again in every crate that calls it.
    fn from_csv_at(path: &Path) -> Result<Dataset, DataError> {
        let csv = read_csv(path)?;
        let Some(labels) = csv.labels else {
            return Err(DataError::Csv {
                path: path.to_path_buf(),
                line: 1,
                column: None,
                reason: "the file holds no labels (pixels only): a test file to predict, not to train on"
                    .into(),
            });
        };
        Dataset::from_raw(csv.pixels, labels, 1, csv.side, csv.side)
    }
}
