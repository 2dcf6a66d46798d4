//! Image folders, as `torchvision.datasets.ImageFolder` and Keras's
//! `image_dataset_from_directory` read them: `root/<class name>/…/*.png|jpg`, one
//! subfolder per class, classes sorted by name.
//!
//! Every image is decoded once, in parallel, brought to one size and channel count
//! and kept as bytes in a [`Dataset`]: that dataset is the cache, so no epoch
//! decodes again.
//!
//! Choices where the data does not decide:
//! - size: [`FolderOptions::size`], or else the most common size among the images
//!   (for a folder of MNIST digits, 28×28: nothing is resampled);
//! - shape: [`Fit::Crop`] (scale to cover, cut the centre) unless told otherwise;
//! - channels: [`FolderOptions::channels`], or else gray (1) if every image is
//!   gray and RGB (3) if any is in colour.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};

use super::image_file::{read_header, read_image, Header, MAX_IMAGE_SIDE};
use super::resize::{fit_image, Fit};
use super::{DataError, Dataset};
use crate::ops::parallel::{map_indices, SharedMut};

/// The extensions read (case-insensitive).
const IMAGE_EXTENSIONS: [&str; 3] = ["png", "jpg", "jpeg"];

/// The most bytes a decoded image folder may take (as the examples' batch limit).
const MAX_DATASET_BYTES: usize = 16 << 30;

/// Image formats people keep that this reader does not decode: refused by name
/// rather than skipped, so no image is silently left out.
const OTHER_IMAGE_EXTENSIONS: [&str; 9] = ["bmp", "gif", "webp", "tif", "tiff", "ppm", "pgm", "pbm", "heic"];

/// How to bring an image folder's images to one shape.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FolderOptions {
    /// `(height, width)` for every image; `None`: the most common size found.
    pub size: Option<(usize, usize)>,
    /// How an image of another shape is brought to the size.
    pub fit: Fit,
    /// 1 (gray) or 3 (RGB); `None`: 1 if every image is gray, else 3.
    pub channels: Option<usize>,
}

/// The files of an image folder and their classes, before decoding.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageFolder {
    root: PathBuf,
    classes: Vec<String>,
    files: Vec<(PathBuf, usize)>,
}

impl ImageFolder {
    /// Lists `root`'s class folders (sorted by name; hidden ones skipped) and the
    /// PNG and JPEG files in each, at any depth, sorted.
    ///
    /// # Errors
    /// [`DataError::NotFound`] for a missing root; [`DataError::Invalid`] naming
    /// the folder if it has no class folders or a class folder holds no image;
    /// [`DataError::Image`] naming an image in a format this reader does not decode
    /// (BMP, GIF, WebP, TIFF…).
    pub fn scan(root: impl AsRef<Path>) -> Result<ImageFolder, DataError> {
        Self::scan_at(root.as_ref())
    }

    // Not generic: compiled once here, not again in every crate that calls it.
    fn scan_at(root: &Path) -> Result<ImageFolder, DataError> {
        let root = root.to_path_buf();
        let classes = class_folders(&root)?;
        if classes.is_empty() {
            return Err(DataError::Invalid(format!(
                "{}: no class folders (expected {}/<class name>/<images>)",
                root.display(),
                root.display()
            )));
        }
        let mut files = Vec::new();
        for (label, class) in classes.iter().enumerate() {
            let dir = root.join(class);
            let before = files.len();
            collect_images(&dir, &mut |path| files.push((path, label)))?;
            if files.len() == before {
                return Err(DataError::Invalid(format!(
                    "{}: no PNG or JPEG images in this class folder; remove it, or add its images",
                    dir.display()
                )));
            }
        }
        Ok(ImageFolder { root, classes, files })
    }

    /// The folder scanned.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Class names, sorted: label `i` is `classes()[i]`.
    pub fn classes(&self) -> &[String] {
        &self.classes
    }

    /// Every image file with its label, class by class.
    pub fn files(&self) -> &[(PathBuf, usize)] {
        &self.files
    }

    /// Decodes every image in parallel into a [`Dataset`] named by these classes.
    ///
    /// # Errors
    /// [`DataError::Image`] naming the first file (in [`files`](Self::files) order)
    /// that cannot be decoded; [`DataError::Invalid`] for options out of range.
    pub fn load(&self, options: &FolderOptions) -> Result<Dataset, DataError> {
        self.load_as(&self.classes, options)
    }

    /// As [`load`](Self::load), labelling by `classes` (a training set's), so a
    /// test folder that lacks a class keeps the training set's labels.
    ///
    /// # Errors
    /// Those of `load`, and [`DataError::Invalid`] naming a class folder that is
    /// not among `classes`.
    pub fn load_as(&self, classes: &[String], options: &FolderOptions) -> Result<Dataset, DataError> {
        let relabel: Vec<usize> = self
            .classes
            .iter()
            .map(|name| {
                classes.iter().position(|c| c == name).ok_or_else(|| {
                    DataError::Invalid(format!(
                        "{}: class {name:?} is not one of the training classes ({})",
                        self.root.display(),
                        classes.join(", ")
                    ))
                })
            })
            .collect::<Result<_, _>>()?;
        let (size, channels) = self.shape(options)?;
        let (h, w) = size;
        let image_len = channels * h * w;
        let total = self
            .files
            .len()
            .checked_mul(image_len)
            .filter(|&n| n <= MAX_DATASET_BYTES);
        let Some(total) = total else {
            return Err(DataError::Invalid(format!(
                "{}: {} images of {channels}×{h}×{w} would take more than {} GiB in memory; \
                 choose a smaller size (--image-size)",
                self.root.display(),
                self.files.len(),
                MAX_DATASET_BYTES >> 30
            )));
        };
        let mut pixels = vec![0u8; total];
        // Over `map_indices` (rayon's plumbing compiled once for the library); the
        // first failure in file order is the one reported.
        let pixels_at = SharedMut::new(pixels.as_mut_ptr());
        let failures = map_indices(self.files.len(), 1, |i| {
            let image = read_image(&self.files[i].0)?;
            let planes = image.to_planes(channels);
            let fitted = fit_image(&planes, (channels, image.height, image.width), size, options.fit);
            // SAFETY: `pixels` holds `files.len()` images of `image_len` bytes, and
            // each index `i` runs once, so no other task reaches image `i`'s bytes.
            unsafe { pixels_at.slice(i * image_len, image_len) }.copy_from_slice(&fitted);
            Ok(())
        });
        if let Some(e) = failures.into_iter().find_map(Result::err) {
            return Err(e);
        }
        let labels = self.files.iter().map(|&(_, label)| relabel[label]).collect();
        Dataset::from_raw(pixels, labels, channels, h, w)?
            .with_num_classes(classes.len())?
            .with_class_names(classes.to_vec())
    }

    /// The size and channel count the options give, reading image headers where
    /// they leave a choice to the data.
    fn shape(&self, options: &FolderOptions) -> Result<((usize, usize), usize), DataError> {
        if let Some(c) = options.channels.filter(|c| *c != 1 && *c != 3) {
            return Err(DataError::Invalid(format!(
                "images have 1 or 3 channels, not {c}"
            )));
        }
        if let Some((h, w)) = options.size
            && (h == 0 || w == 0 || h > MAX_IMAGE_SIDE || w > MAX_IMAGE_SIDE)
        {
            return Err(DataError::Invalid(format!(
                "image size {h}×{w}: sides must be 1 to {MAX_IMAGE_SIDE} pixels"
            )));
        }
        if let (Some(size), Some(channels)) = (options.size, options.channels) {
            return Ok((size, channels));
        }
        let headers: Vec<Header> = map_indices(self.files.len(), 1, |i| read_header(&self.files[i].0))
            .into_iter()
            .collect::<Result<_, _>>()?;
        let size = options.size.unwrap_or_else(|| most_common_size(&headers));
        // A header may claim any size: the decoder refuses such an image, but the
        // size chosen from it must be refused before anything is allocated.
        if size.0 > MAX_IMAGE_SIDE || size.1 > MAX_IMAGE_SIDE || size.0 == 0 || size.1 == 0 {
            return Err(DataError::Invalid(format!(
                "{}: the most common image size is {}×{}, past the limit of {MAX_IMAGE_SIDE} pixels a side; \
                 choose a size (--image-size)",
                self.root.display(),
                size.0,
                size.1
            )));
        }
        let channels = options
            .channels
            .unwrap_or(if headers.iter().all(|h| h.gray) { 1 } else { 3 });
        Ok((size, channels))
    }
}

/// Reads `root` as an image folder with `options`: [`ImageFolder::scan`] then
/// [`ImageFolder::load`].
///
/// ```no_run
/// use ferrocnn::data::{read_image_folder, FolderOptions};
/// let pets = read_image_folder("pets/train", &FolderOptions { size: Some((64, 64)), ..Default::default() })?;
/// println!("{} images of {:?}", pets.len(), pets.class_names());
/// # Ok::<(), ferrocnn::data::DataError>(())
/// ```
///
/// # Errors
/// Those of `scan` and `load`.
pub fn read_image_folder(root: impl AsRef<Path>, options: &FolderOptions) -> Result<Dataset, DataError> {
    read_image_folder_at(root.as_ref(), options)
}

// Not generic: compiled once here, not again in every crate that calls it.
fn read_image_folder_at(root: &Path, options: &FolderOptions) -> Result<Dataset, DataError> {
    ImageFolder::scan(root)?.load(options)
}

/// True if `dir` looks like an image folder: it has a subfolder that is not hidden.
pub(crate) fn has_class_folders(dir: &Path) -> bool {
    class_folders(dir).is_ok_and(|c| !c.is_empty())
}

/// The non-hidden subfolders of `root`, sorted by name.
fn class_folders(root: &Path) -> Result<Vec<String>, DataError> {
    let io_err = |source: std::io::Error| match source.kind() {
        std::io::ErrorKind::NotFound => DataError::NotFound {
            path: root.to_path_buf(),
        },
        _ => DataError::Io {
            path: root.to_path_buf(),
            source,
        },
    };
    let mut classes = Vec::new();
    for entry in fs::read_dir(root).map_err(io_err)? {
        let entry = entry.map_err(io_err)?;
        let name = entry.file_name().to_string_lossy().into_owned();
        // `is_dir` follows symlinks, as torchvision does.
        if !name.starts_with('.') && entry.path().is_dir() {
            classes.push(name);
        }
    }
    classes.sort();
    Ok(classes)
}

/// The PNG and JPEG files under `dir`, at any depth, sorted by path (depth first,
/// by name within a folder); hidden files and folders (`.name`) are skipped. What
/// [`ImageFolder::scan`] reads in each class folder, and what `predict` reads from a
/// folder of unlabelled images.
///
/// # Errors
/// [`DataError::Io`] naming a folder that cannot be listed; [`DataError::Image`]
/// naming a file in a format this reader does not decode (BMP, GIF, WebP, TIFF…),
/// rather than leaving it out silently.
pub fn image_files(dir: impl AsRef<Path>) -> Result<Vec<PathBuf>, DataError> {
    let mut files = Vec::new();
    collect_images(dir.as_ref(), &mut |path| files.push(path))?;
    Ok(files)
}

/// Calls `found` with every image file under `dir`, depth first, sorted by name.
fn collect_images(dir: &Path, found: &mut dyn FnMut(PathBuf)) -> Result<(), DataError> {
    let io_err = |source| DataError::Io {
        path: dir.to_path_buf(),
        source,
    };
    let mut entries: Vec<PathBuf> = fs::read_dir(dir)
        .map_err(io_err)?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()
        .map_err(io_err)?;
    entries.sort();
    for path in entries {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if name.starts_with('.') {
            continue;
        }
        if path.is_dir() {
            collect_images(&path, found)?;
            continue;
        }
        let ext = path
            .extension()
            .map(|e| e.to_string_lossy().to_ascii_lowercase())
            .unwrap_or_default();
        if IMAGE_EXTENSIONS.contains(&ext.as_str()) {
            found(path);
        } else if OTHER_IMAGE_EXTENSIONS.contains(&ext.as_str()) {
            return Err(DataError::Image {
                path,
                reason: format!(".{ext} images are not read (PNG and JPEG are); convert them to PNG"),
            });
        }
    }
    Ok(())
}

/// The most common `(height, width)`; ties go to the larger image.
fn most_common_size(headers: &[Header]) -> (usize, usize) {
    let mut counts: HashMap<(usize, usize), usize> = HashMap::new();
    for h in headers {
        *counts.entry((h.height, h.width)).or_default() += 1;
    }
    counts
        .into_iter()
        .max_by_key(|&((h, w), n)| (n, h * w, h))
        .map_or((1, 1), |(size, _)| size)
}
