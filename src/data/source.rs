//! Training data found by what is at a path: a folder of MNIST's IDX files, an
//! image folder (`DIR/train/<class>/…` beside `DIR/test/<class>/…` or `val/`, or a
//! single `DIR/<class>/…`), or a CSV file in Kaggle's layout with, where there is
//! one, a labelled `test.csv` beside it. Without a labelled test set, a seeded
//! tenth of the training images is held out for validation, so a run still
//! reports figures on unseen images.
//!
//! The normalisation statistics are computed from the training images (never the
//! test images) and set on both sets.

use std::fmt;
use std::path::{Path, PathBuf};

use super::csv::read_csv;
use super::files::MnistFiles;
use super::folder::{has_class_folders, FolderOptions, ImageFolder};
use super::mnist::Mnist;
use super::{DataError, Dataset, Normalize};

/// The names a test split's folder goes by beside `train/`, in the order looked for.
const TEST_FOLDERS: [&str; 4] = ["test", "val", "validation", "valid"];

/// Share of the training images held out for validation when there is no
/// labelled test set.
pub const VALIDATION_SHARE: f64 = 0.1;

/// What [`TrainingData::test`] holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EvalSplit {
    /// A labelled test set from its own file(s).
    Test(PathBuf),
    /// Training images held out (no labelled test set was found; the reason).
    Validation(String),
}

/// Training and evaluation data, and where they came from.
#[derive(Clone, Debug)]
pub struct TrainingData {
    /// The images to train on.
    pub train: Dataset,
    /// The images to report figures on.
    pub test: Dataset,
    /// Whether `test` is a test set or held-out training images.
    pub evaluation: EvalSplit,
    /// What was found, for a program to print: `"MNIST IDX files in datasets/mnist"`.
    pub found: String,
    /// Notes for a program to print, e.g. which of `x` / `x.gz` was read.
    pub notes: Vec<String>,
}

impl fmt::Display for EvalSplit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EvalSplit::Test(path) => write!(f, "test images from {}", path.display()),
            EvalSplit::Validation(why) => {
                write!(
                    f,
                    "validation images ({:.0}% held out: {why})",
                    100.0 * VALIDATION_SHARE
                )
            }
        }
    }
}

impl TrainingData {
    /// [`load_with`](Self::load_with) with the default [`FolderOptions`].
    ///
    /// # Errors
    /// Those of `load_with`.
    pub fn load(path: impl AsRef<Path>, seed: u64) -> Result<TrainingData, DataError> {
        Self::load_at(path.as_ref(), seed)
    }

    // Not generic: compiled once here, not again in every crate that calls it.
    fn load_at(path: &Path, seed: u64) -> Result<TrainingData, DataError> {
        Self::load_with(path, seed, &FolderOptions::default())
    }

    /// Loads what `path` holds:
    /// - an image folder: `path/train/<class>/…` with `path/test/<class>/…` (or
    ///   `val`, `validation`, `valid`) as its test set, or `path/<class>/…` alone;
    ///   images are brought to one shape by `options`;
    /// - a folder with MNIST's four IDX files (raw or `.gz`);
    /// - a `.csv` file of labelled images ([`Dataset::from_csv`]), with `test.csv`
    ///   in the same folder as its test set when that file is labelled (Kaggle's
    ///   `test.csv` is not: it is for predictions).
    ///
    /// Without a labelled test set, a tenth of the training images, drawn with
    /// `seed`, is held out for validation.
    ///
    /// # Errors
    /// The reading errors of the files, naming them; [`DataError::Invalid`] for a
    /// path that is neither, or a training set too small to hold images out.
    pub fn load_with(
        path: impl AsRef<Path>,
        seed: u64,
        options: &FolderOptions,
    ) -> Result<TrainingData, DataError> {
        Self::load_with_at(path.as_ref(), seed, options)
    }

    // Not generic: compiled once here, not again in every crate that calls it.
    fn load_with_at(path: &Path, seed: u64, options: &FolderOptions) -> Result<TrainingData, DataError> {
        Ok(Self::read(path, seed, options)?.normalized())
    }

    /// The statistics of the training images, set on both sets.
    fn normalized(mut self) -> TrainingData {
        if let Ok(stats) = Normalize::of(&self.train) {
            self.train = self.train.with_normalization(stats.clone());
            self.test = self.test.with_normalization(stats);
        }
        self
    }

    fn read(path: &Path, seed: u64, options: &FolderOptions) -> Result<TrainingData, DataError> {
        if path.is_dir() && has_class_folders(path) {
            return Self::image_folder(path, seed, options);
        }
        if path.is_dir() {
            let files = MnistFiles::find(path)?;
            let notes = files.with_ignored().map(|f| format!("reading {f}")).collect();
            let Mnist { train, test } = Mnist::load_files(&files)?;
            return Ok(TrainingData {
                train,
                test,
                evaluation: EvalSplit::Test(files.test_images.path.clone()),
                found: format!("MNIST IDX files in {}", path.display()),
                notes,
            });
        }
        let is_csv = path.extension().is_some_and(|e| e.eq_ignore_ascii_case("csv"));
        if !is_csv {
            if !path.exists() {
                return Err(DataError::NotFound {
                    path: path.to_path_buf(),
                });
            }
            return Err(DataError::Invalid(format!(
                "{}: neither a folder of MNIST IDX files nor a .csv file",
                path.display()
            )));
        }
        let train = Dataset::from_csv(path)?;
        let beside = path.with_file_name("test.csv");
        let found = format!("images in CSV, {}", path.display());
        if beside != path && beside.exists() {
            let test = read_csv(&beside)?;
            if let Some(labels) = test.labels {
                let test = Dataset::from_raw(test.pixels, labels, 1, test.side, test.side)?;
                return Ok(TrainingData {
                    train,
                    test,
                    evaluation: EvalSplit::Test(beside),
                    found,
                    notes: Vec::new(),
                });
            }
            let why = format!("{} holds no labels (it is for predictions)", beside.display());
            return Self::held_out(train, why, found, seed);
        }
        let why = format!("no test.csv beside {}", path.display());
        Self::held_out(train, why, found, seed)
    }

    /// An image folder: `train/` with `test/` (or `val/`…), `train/` alone, or the
    /// class folders themselves; validation images are held out where there is no
    /// test split.
    fn image_folder(path: &Path, seed: u64, options: &FolderOptions) -> Result<TrainingData, DataError> {
        let train_dir = path.join("train");
        if !has_class_folders(&train_dir) {
            let folder = ImageFolder::scan(path)?;
            let train = folder.load(options)?;
            let found = describe(&folder, &train);
            let why = format!("no train/ and test/ (or val/) folders in {}", path.display());
            return Self::held_out(train, why, found, seed);
        }
        let test_dir = TEST_FOLDERS
            .iter()
            .map(|t| path.join(t))
            .find(|t| has_class_folders(t));
        let folder = ImageFolder::scan(&train_dir)?;
        let train = folder.load(options)?;
        let Some(test_dir) = test_dir else {
            let found = describe(&folder, &train);
            let why = format!("no test/ or val/ folder beside {}", train_dir.display());
            return Self::held_out(train, why, found, seed);
        };
        let (c, h, w) = train.image_shape();
        // The test images take the training images' shape and labels.
        let test_options = FolderOptions {
            size: Some((h, w)),
            channels: Some(c),
            ..options.clone()
        };
        let test = ImageFolder::scan(&test_dir)?.load_as(folder.classes(), &test_options)?;
        Ok(TrainingData {
            found: describe(&folder, &train),
            train,
            test,
            evaluation: EvalSplit::Test(test_dir),
            notes: Vec::new(),
        })
    }

    /// `train` split into training and validation images.
    fn held_out(train: Dataset, why: String, found: String, seed: u64) -> Result<TrainingData, DataError> {
        let validation = (train.len() as f64 * VALIDATION_SHARE).round() as usize;
        if validation == 0 || validation == train.len() {
            return Err(DataError::Invalid(format!(
                "{found}: {} training images are too few to hold {:.0}% out for validation ({why}); \
                 give a test set",
                train.len(),
                100.0 * VALIDATION_SHARE
            )));
        }
        let (train, test) = train.split(validation, seed)?;
        Ok(TrainingData {
            train,
            test,
            evaluation: EvalSplit::Validation(why),
            found,
            notes: Vec::new(),
        })
    }
}

/// `"an image folder, pets/train: 2 classes (cat, dog), 3×64×64"`.
fn describe(folder: &ImageFolder, data: &Dataset) -> String {
    let (c, h, w) = data.image_shape();
    let classes = folder.classes();
    let names = if classes.len() <= 12 {
        classes.join(", ")
    } else {
        format!("{}, …, {}", classes[..10].join(", "), classes[classes.len() - 1])
    };
    format!(
        "an image folder, {}: {} classes ({names}), {}, {h}×{w}",
        folder.root().display(),
        classes.len(),
        if c == 1 { "gray" } else { "RGB" }
    )
}
