//! `MnistFiles`: which files of an MNIST-style folder are read, and which are not.
//!
//! A folder may hold one file under several names: `x` beside `x.gz` (after a
//! `gunzip -k`, or a second download), or both spellings `train-images-idx3-ubyte`
//! and `train-images.idx3-ubyte`. One of them is read; the others need not hold the
//! same data, so the choice is kept, not made silently: each [`DataFile`] records
//! the path read and the paths passed over, and its `Display` says both, for a
//! program to print.
//!
//! Precedence, the first that exists wins: `{stem}-{type}`, `{stem}-{type}.gz`,
//! `{stem}.{type}`, `{stem}.{type}.gz`. A raw file wins over its `.gz` because a raw
//! file beside a `.gz` is almost always its decompressed copy, made on purpose (to
//! skip the decompression, or to edit it), and because it is the order ferrocnn has
//! always used: putting a `.gz` into a folder never changes what is read.

use std::fmt;
use std::path::{Path, PathBuf};

use super::error::DataError;

/// One file of a dataset folder: the path read, and the other names under which the
/// same file also exists in the folder, which were ignored.
///
/// `Display` shows the path, then the ignored names if there are any:
/// `datasets/mnist/train-images-idx3-ubyte (train-images-idx3-ubyte.gz also exists
/// and was ignored)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataFile {
    /// The file that is read.
    pub path: PathBuf,
    /// Files in the same folder under the other accepted names, not read.
    pub ignored: Vec<PathBuf>,
}

impl DataFile {
    /// Finds the file `name` (`t10k-images-idx3-ubyte`) in `dir` under the first of
    /// its accepted names that exists: `name`, `name.gz`, then the same with `.idx`
    /// for `-idx`. `what` ("test images") is for the error.
    ///
    /// # Errors
    /// [`DataError::MissingFile`] naming the folder, `what` and the names tried.
    pub fn find(dir: impl AsRef<Path>, name: &str, what: &str) -> Result<DataFile, DataError> {
        Self::find_at(dir.as_ref(), name, what)
    }

    // Not generic: compiled once here, not again in every crate that calls it.
    fn find_at(dir: &Path, name: &str, what: &str) -> Result<DataFile, DataError> {
        let mut spellings = vec![name.to_string()];
        if name.contains("-idx") {
            spellings.push(name.replacen("-idx", ".idx", 1));
        }
        let tried: Vec<String> = spellings
            .iter()
            .flat_map(|name| [name.clone(), format!("{name}.gz")])
            .collect();
        let mut present = tried.iter().map(|name| dir.join(name)).filter(|p| p.is_file());
        let path = present.next().ok_or_else(|| DataError::MissingFile {
            dir: dir.to_path_buf(),
            what: what.to_string(),
            tried: tried.clone(),
        })?;
        Ok(DataFile {
            path,
            ignored: present.collect(),
        })
    }
}

impl fmt::Display for DataFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.path.display())?;
        if self.ignored.is_empty() {
            return Ok(());
        }
        // Same folder as `path`: the file names are enough.
        let names: Vec<String> = self
            .ignored
            .iter()
            .map(|p| {
                p.file_name()
                    .unwrap_or(p.as_os_str())
                    .to_string_lossy()
                    .into_owned()
            })
            .collect();
        let (verb, was) = if names.len() == 1 {
            ("exists", "was")
        } else {
            ("exist", "were")
        };
        write!(f, " ({} also {verb} and {was} ignored)", names.join(" and "))
    }
}

/// The four files of an MNIST-style folder, as [`Mnist::load`](super::Mnist::load)
/// finds them (see the module docs for the precedence of names).
///
/// ```
/// use ferrocnn::data::{Mnist, MnistFiles};
/// let files = MnistFiles::find("datasets/mnist")?;
/// for file in files.with_ignored() {
///     println!("reading {file}"); // names the file read and the ones ignored
/// }
/// let mnist = Mnist::load_files(&files)?;
/// assert_eq!(mnist.test.len(), 10_000);
/// # Ok::<(), ferrocnn::data::DataError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MnistFiles {
    /// `train-images-idx3-ubyte` or one of its other names.
    pub train_images: DataFile,
    /// `train-labels-idx1-ubyte` or one of its other names.
    pub train_labels: DataFile,
    /// `t10k-images-idx3-ubyte` or one of its other names.
    pub test_images: DataFile,
    /// `t10k-labels-idx1-ubyte` or one of its other names.
    pub test_labels: DataFile,
}

impl MnistFiles {
    /// Finds the four files in `dir`.
    ///
    /// # Errors
    /// [`DataError::MissingFile`] naming the folder, what is missing and the names
    /// tried.
    pub fn find(dir: impl AsRef<Path>) -> Result<MnistFiles, DataError> {
        Self::find_at(dir.as_ref())
    }

    // Not generic: compiled once here, not again in every crate that calls it.
    fn find_at(dir: &Path) -> Result<MnistFiles, DataError> {
        Ok(MnistFiles {
            train_images: DataFile::find(dir, "train-images-idx3-ubyte", "training images")?,
            train_labels: DataFile::find(dir, "train-labels-idx1-ubyte", "training labels")?,
            test_images: DataFile::find(dir, "t10k-images-idx3-ubyte", "test images")?,
            test_labels: DataFile::find(dir, "t10k-labels-idx1-ubyte", "test labels")?,
        })
    }

    /// The four files: training images and labels, test images and labels.
    pub fn all(&self) -> [&DataFile; 4] {
        [
            &self.train_images,
            &self.train_labels,
            &self.test_images,
            &self.test_labels,
        ]
    }

    /// The files that exist under more than one name, whose choice a program should
    /// report (their `Display` says which was read and which were ignored).
    pub fn with_ignored(&self) -> impl Iterator<Item = &DataFile> {
        self.all().into_iter().filter(|f| !f.ignored.is_empty())
    }
}
