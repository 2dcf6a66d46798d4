//! Pictures of a network: learned filters, feature maps, misclassified images and
//! training curves, written as PNG files.
//!
//! Everything here is drawn by hand into byte buffers and encoded with the `png`
//! crate. Plotting libraries were considered and left out: `plotters` needs either
//! the system's fontconfig/freetype (a build that breaks on machines without them)
//! or an embedded TrueType font for its labels, and the only text these pictures
//! need — digits, a few words, an arrow — fits a 5×7 bitmap font of a few hundred
//! bytes ([`font`]). A line chart is a few dozen lines of rasterizing on top of it.
//!
//! - [`Grid`] tiles many 2-d maps into one image, each tile stretched to its own
//!   min..max (a 3×3 kernel with weights ±0.05 is as readable as one with ±0.5) and
//!   enlarged by nearest neighbour (so a 3×3 kernel is a 3×3 block pattern, not a
//!   blur).
//! - [`save_conv_filters`], [`save_feature_maps`], [`save_image_grid`] and
//!   [`save_training_curves`] build the usual pictures on top of it.
//! - [`read_grayscale_png`] and [`resize_gray`] bring a user's PNG to the model's
//!   input size.
//!
//! ```
//! use ferrocnn::viz::Grid;
//! use ndarray::array;
//!
//! let kernels = [array![[0.0f32, 1.0], [2.0, 3.0]], array![[-1.0f32, 1.0], [1.0, -1.0]]];
//! let views: Vec<_> = kernels.iter().map(|k| k.view()).collect();
//! // Two 2×2 tiles side by side, each enlarged 4×, 1 px border around every tile.
//! let image = Grid::new(2).with_scale(4).with_border(1).render(&views)?;
//! assert_eq!((image.width, image.height), (2 * 8 + 3, 8 + 2));
//! # Ok::<(), ferrocnn::viz::VizError>(())
//! ```

mod attribution;
mod channels;
mod confusion;
pub mod font;
mod grid;
mod image;
mod insight;
mod model;
mod plot;

use std::path::PathBuf;

pub use crate::data::{resize_gray, Filter};
pub use attribution::{gradient_times_input, integrated_gradients, saliency};
pub use channels::{maximize_channels, top_activating, Maximize, Objective};
pub use confusion::save_confusion_matrix;
pub use grid::{auto_columns, normalize_tile, Grid, TileRange};
pub use image::{read_grayscale_png, GrayImage, RgbImage, MAX_PNG_SIDE};
pub use insight::{save_attributions, save_maximized, save_top_images};
pub use model::{save_conv_filters, save_feature_maps, save_image_grid};
pub use plot::{save_training_curves, CURVES_HEIGHT, CURVES_WIDTH};

/// Why a picture could not be written, or a PNG not read.
#[derive(Debug)]
pub enum VizError {
    /// The file or folder could not be read, written or created.
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The file is not a PNG, or is truncated or corrupt.
    Decode {
        /// The file.
        path: PathBuf,
        /// What the decoder found wrong.
        source: png::DecodingError,
    },
    /// The PNG encoder failed (usually an I/O error while writing).
    Encode {
        /// The file.
        path: PathBuf,
        /// The encoder's error.
        source: png::EncodingError,
    },
    /// A PNG this reader does not handle (e.g. zero-sized).
    Unsupported {
        /// The file.
        path: PathBuf,
        /// What is unsupported.
        what: String,
    },
    /// The data to draw does not fit together (e.g. tiles of different shapes, an
    /// image buffer of the wrong length, an input that is not one image).
    Shape(String),
    /// Nothing to draw (no tiles, no epochs).
    Empty(String),
}

impl std::fmt::Display for VizError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            VizError::Io { path, source } => write!(f, "{}: {source}", path.display()),
            VizError::Decode { path, source } => {
                write!(f, "{}: not a readable PNG image: {source}", path.display())
            }
            VizError::Encode { path, source } => write!(f, "{}: cannot write PNG: {source}", path.display()),
            VizError::Unsupported { path, what } => write!(f, "{}: unsupported PNG: {what}", path.display()),
            VizError::Shape(reason) => f.write_str(reason),
            VizError::Empty(what) => write!(f, "nothing to draw: {what}"),
        }
    }
}

impl std::error::Error for VizError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            VizError::Io { source, .. } => Some(source),
            VizError::Decode { source, .. } => Some(source),
            VizError::Encode { source, .. } => Some(source),
            VizError::Unsupported { .. } | VizError::Shape(_) | VizError::Empty(_) => None,
        }
    }
}
