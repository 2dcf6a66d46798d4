//! Training data found by what is at a path: a folder of MNIST's IDX files, or a
//! CSV file in Kaggle's layout with, where there is one, a labelled `test.csv`
//! beside it. Without a labelled test set, a seeded tenth of the training images
//! is held out for validation, so a run still reports figures on unseen images.

use std::fmt;
use std::path::{Path, PathBuf};

use super::csv::read_csv;
use super::files::MnistFiles;
use super::mnist::Mnist;
use super::{DataError, Dataset};

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
    /// Loads what `path` holds:
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
    pub fn load(path: impl AsRef<Path>, seed: u64) -> Result<TrainingData, DataError> {
        let path = path.as_ref();
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

    /// `train` split into training and validation images.
    fn held_out(train: Dataset, why: String, found: String, seed: u64) -> Result<TrainingData, DataError> {
        let validation = (train.len() as f64 * VALIDATION_SHARE).round() as usize;
        if validation == 0 || validation == train.len() {
            return Err(DataError::Invalid(format!(
                "{found}: {} training images are too few to hold {:.0}% out for validation ({why}); \
                 give a labelled test.csv beside it",
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
