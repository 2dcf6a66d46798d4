//! Data: IDX files (raw or gzip'd), labelled image datasets, batching, augmentation.
//!
//! The path from files to a training step:
//!
//! ```no_run
//! use ferrocnn::data::{Augment, Mnist, Order};
//! let mnist = Mnist::load("datasets/mnist")?;
//! let (train, val) = mnist.train.split(5_000, 42)?;
//! let aug = Augment { max_shift: 2, max_rotation_degrees: 10.0 };
//! for epoch in 0..3 {
//!     for batch in train.batches(128, Order::Shuffle(42 + epoch), Some(&aug)) {
//!         // batch.x: Array4<f32> [n, 1, 28, 28], normalised; batch.y: labels
//!         let _ = (batch.x, batch.y);
//!     }
//! }
//! let x_val = val.to_array(0..val.len());
//! # let _ = x_val;
//! # Ok::<(), ferrocnn::data::DataError>(())
//! ```
//!
//! - [`idx`] reads IDX files and never trusts their headers (see its docs).
//! - [`Dataset`] keeps images as bytes and converts a batch at a time.
//! - [`Batches`] yields [`Batch`]es in a seeded [`Order`].
//! - [`Augment`] shifts and rotates, seeded per sample.
//! - [`Mnist`] loads a folder of the four MNIST files; [`MnistFiles`] finds them
//!   and says which were read where a folder holds a file twice (`x`, `x.gz`).
//! - [`read_csv`] and [`Dataset::from_csv`] read images in CSV, in Kaggle's
//!   digit-recognizer layout.
//! - [`TrainingData::load`] finds training and test data by what is at a path (an
//!   IDX folder, or a CSV file with a labelled `test.csv` beside it, or a
//!   validation split).
//! - [`frame_like_mnist`] frames a digit of any size as MNIST frames its own.
//! - Errors are [`DataError`], naming the file they are about.

mod augment;
mod batch;
mod csv;
mod dataset;
mod error;
mod files;
mod folder;
mod frame;
pub mod idx;
mod image_file;
mod mnist;
mod normalize;
mod resize;
mod source;

pub use augment::{shift_rotate, Augment};
pub use batch::{Batch, Batches, Order};
pub use csv::{read_csv, CsvImages, MAX_CSV_LABEL};
pub(crate) use dataset::check_class_names;
pub use dataset::Dataset;
pub use error::{DataError, IdxKind};
pub use files::{DataFile, MnistFiles};
pub use folder::{image_files, read_image_folder, FolderOptions, ImageFolder};
pub use frame::frame_like_mnist;
pub use idx::IdxImages;
pub use image_file::{read_image, Image, MAX_IMAGE_SIDE};
pub use mnist::Mnist;
pub use normalize::Normalize;
pub use resize::{fit_image, resize_gray, Filter, Fit};
pub use source::{EvalSplit, TrainingData, VALIDATION_SHARE};
