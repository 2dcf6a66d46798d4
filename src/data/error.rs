//! `DataError`: everything that can go wrong while reading a dataset from disk.
//!
//! Files come from the outside world, so every failure is a value, not a panic, and
//! every message starts with the file (or folder) it is about and then says what was
//! wrong in the terms a user can check: the magic number found and the one expected,
//! the byte counts declared and present, the two counts that disagree.

use std::fmt::Write as _;
use std::io;
use std::path::{Path, PathBuf};

/// Which kind of IDX file a reader expected; used in messages and magic checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdxKind {
    /// Unsigned-byte images, 3 dimensions (`count, rows, cols`), magic 2051.
    Images,
    /// Unsigned-byte labels, 1 dimension (`count`), magic 2049.
    Labels,
}

impl IdxKind {
    /// The magic number that starts a file of this kind (`0x00000803` / `0x00000801`).
    pub fn magic(self) -> u32 {
        match self {
            IdxKind::Images => 2051,
            IdxKind::Labels => 2049,
        }
    }

    /// Bytes in the header: the magic plus one big-endian `u32` per dimension.
    pub fn header_len(self) -> u64 {
        match self {
            IdxKind::Images => 16,
            IdxKind::Labels => 8,
        }
    }

    fn noun(self) -> &'static str {
        match self {
            IdxKind::Images => "image",
            IdxKind::Labels => "label",
        }
    }
}

impl std::fmt::Display for IdxKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.noun())
    }
}

/// An error while reading or assembling a dataset.
///
/// Each variant carries the path(s) it is about; `Display` names them first.
#[derive(Debug)]
#[non_exhaustive]
pub enum DataError {
    /// The file does not exist.
    NotFound {
        /// The path that was opened.
        path: PathBuf,
    },

    /// The operating system reported an error while opening or reading the file.
    Io {
        /// The file being read.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },

    /// The file does not start with the magic number of the expected IDX kind.
    BadMagic {
        /// The file being read.
        path: PathBuf,
        /// What the caller asked for.
        kind: IdxKind,
        /// The first four bytes, big-endian.
        found: u32,
    },

    /// The file ends before its fixed-size header does.
    ShortHeader {
        /// The file being read.
        path: PathBuf,
        /// What the caller asked for.
        kind: IdxKind,
        /// Header length in bytes (16 for images, 8 for labels).
        expected: u64,
        /// Bytes present (after decompression, for gzip files).
        found: u64,
    },

    /// The header declares more data than the file holds.
    Truncated {
        /// The file being read.
        path: PathBuf,
        /// What the caller asked for.
        kind: IdxKind,
        /// Data bytes the header declares.
        expected: u64,
        /// Data bytes present (after decompression, for gzip files).
        found: u64,
    },

    /// The file holds bytes after the data its header declares.
    TrailingBytes {
        /// The file being read.
        path: PathBuf,
        /// What the caller asked for.
        kind: IdxKind,
        /// Data bytes the header declares.
        expected: u64,
        /// Data bytes present.
        found: u64,
        /// `found` is a lower bound (a gzip stream is not decompressed to its end).
        at_least: bool,
    },

    /// The header claims more data than this reader accepts (a corrupt or hostile file).
    TooLarge {
        /// The file being read.
        path: PathBuf,
        /// What the caller asked for.
        kind: IdxKind,
        /// The declared dimensions, e.g. `"4294967295 x 28 x 28"`.
        dims: String,
        /// Declared data bytes (saturating).
        declared: u64,
        /// The limit ([`crate::data::idx::MAX_DATA_BYTES`]).
        limit: u64,
    },

    /// The file starts like gzip but does not decompress.
    Gzip {
        /// The file being read.
        path: PathBuf,
        /// The decompressor's error.
        source: io::Error,
    },

    /// An image file and its label file disagree on the number of samples.
    CountMismatch {
        /// The image file.
        images_path: PathBuf,
        /// Images it holds.
        images: usize,
        /// The label file.
        labels_path: PathBuf,
        /// Labels it holds.
        labels: usize,
    },

    /// A label is not below the class count.
    LabelOutOfRange {
        /// The label file, when the labels came from one.
        path: Option<PathBuf>,
        /// Position of the offending label.
        index: usize,
        /// Its value.
        label: usize,
        /// The class count it violates.
        num_classes: usize,
    },

    /// A dataset folder lacks one of the files it needs.
    MissingFile {
        /// The folder searched.
        dir: PathBuf,
        /// What was missing, e.g. "training images".
        what: String,
        /// The file names tried, in order.
        tried: Vec<String>,
    },

    /// A CSV file's line (1-based) and, where it is about one value, column
    /// (1-based) does not hold what the layout needs.
    Csv {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// 1-based column (field), if the error is about one value.
        column: Option<usize>,
        /// What is wrong, and what was expected.
        reason: String,
    },

    /// An image file that cannot be decoded, or is not one this reader takes.
    Image {
        /// The image file.
        path: PathBuf,
        /// What was wrong.
        reason: String,
    },

    /// Arguments that do not describe a valid dataset (shape, sizes, split sizes).
    Invalid(String),
}

impl std::fmt::Display for DataError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DataError::NotFound { path } => write!(f, "{}: file not found", path.display()),
            DataError::Io { path, source } => write!(f, "{}: I/O error: {source}", path.display()),
            DataError::BadMagic { path, kind, found } => write!(
                f,
                "{}: not an IDX {kind} file: magic number {found} ({found:#010x}{}), expected {} ({:#010x})",
                path.display(),
                describe_magic(*found),
                kind.magic(),
                kind.magic()
            ),
            DataError::ShortHeader {
                path,
                kind,
                expected,
                found,
            } => write!(
                f,
                "{}: file too short for an IDX {kind} header: the header is {expected} bytes, the file holds {found}",
                path.display()
            ),
            DataError::Truncated {
                path,
                kind,
                expected,
                found,
            } => write!(
                f,
                "{}: truncated: the header declares {expected} bytes of {kind} data, the file holds {found} after the header",
                path.display()
            ),
            DataError::TrailingBytes {
                path,
                kind,
                expected,
                found,
                at_least,
            } => write!(
                f,
                "{}: trailing garbage: the header declares {expected} bytes of {kind} data, the file holds {}{found} after the header",
                path.display(),
                if *at_least { "at least " } else { "" }
            ),
            DataError::TooLarge {
                path,
                kind,
                dims,
                declared,
                limit,
            } => write!(
                f,
                "{}: the header declares {declared} bytes of {kind} data ({dims}), more than the limit of {limit}",
                path.display()
            ),
            DataError::Gzip { path, source } => write!(f, "{}: corrupt gzip stream: {source}", path.display()),
            DataError::CountMismatch {
                images_path,
                images,
                labels_path,
                labels,
            } => write!(
                f,
                "{} holds {images} images but {} holds {labels} labels",
                images_path.display(),
                labels_path.display()
            ),
            DataError::LabelOutOfRange {
                path,
                index,
                label,
                num_classes,
            } => write!(
                f,
                "{}label {label} at index {index} is not below the class count {num_classes}",
                origin(path)
            ),
            DataError::MissingFile { dir, what, tried } => write!(
                f,
                "{}: no {what} file found; looked for {}",
                dir.display(),
                tried.join(", ")
            ),
            DataError::Csv {
                path,
                line,
                column,
                reason,
            } => {
                write!(f, "{}:{line}", path.display())?;
                if let Some(column) = column {
                    write!(f, ":{column}")?;
                }
                write!(f, ": {reason}")
            }
            DataError::Image { path, reason } => write!(f, "{}: {reason}", path.display()),
            DataError::Invalid(reason) => f.write_str(reason),
        }
    }
}

impl std::error::Error for DataError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            DataError::Io { source, .. } | DataError::Gzip { source, .. } => Some(source),
            DataError::NotFound { .. }
            | DataError::BadMagic { .. }
            | DataError::ShortHeader { .. }
            | DataError::Truncated { .. }
            | DataError::TrailingBytes { .. }
            | DataError::TooLarge { .. }
            | DataError::CountMismatch { .. }
            | DataError::LabelOutOfRange { .. }
            | DataError::MissingFile { .. }
            | DataError::Csv { .. }
            | DataError::Image { .. }
            | DataError::Invalid(_) => None,
        }
    }
}

fn origin(path: &Option<PathBuf>) -> String {
    match path {
        Some(p) => format!("{}: ", p.display()),
        None => String::new(),
    }
}

/// A short hint about a wrong magic number: the usual confusions are a label file
/// passed for images (or the reverse) and a gzip file that was decompressed twice or
/// not at all.
fn describe_magic(found: u32) -> String {
    let mut s = String::new();
    match found {
        2049 => s.push_str(", an IDX label file"),
        2051 => s.push_str(", an IDX image file"),
        _ if found >> 16 == 0 => {
            let _ = write!(
                s,
                ", IDX type {:#04x} with {} dimensions",
                (found >> 8) & 0xff,
                found & 0xff
            );
        }
        _ => {}
    }
    s
}

impl DataError {
    /// Maps an `io::Error` from opening or reading `path` (not through gzip).
    pub(crate) fn io(path: &Path, source: io::Error) -> Self {
        if source.kind() == io::ErrorKind::NotFound {
            DataError::NotFound {
                path: path.to_path_buf(),
            }
        } else {
            DataError::Io {
                path: path.to_path_buf(),
                source,
            }
        }
    }
}
