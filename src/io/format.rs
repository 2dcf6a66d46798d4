//! The file format shared by models and checkpoints: a fixed header, then a payload
//! encoded with serde + bincode 2.
//!
//! Layout: `b"FERROCNN"` · format version (u32 LE) · kind (u8: 1 model, 2 checkpoint)
//! · payload length (u64 LE) · CRC-32 of the payload (u32 LE) · payload.
//!
//! Loading checks each field before trusting the next: a file that is not ours, from
//! a newer format, truncated, or bit-flipped is rejected with an error that says
//! which. The payload is decoded under a size limit, so a corrupt length prefix
//! cannot make us allocate more than a gigabyte (2 MiB for a small file), and
//! ndarray's decoder checks that every tensor's element count matches its shape.
//! Writes go to a temporary file in the same folder, are synced, then renamed over
//! the target: a crash mid-save leaves the previous file intact.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::Serialize;

/// First bytes of every ferrocnn file.
pub const MAGIC: &[u8; 8] = b"FERROCNN";
/// The newest format version this build reads. Version 1 (up to ferrocnn 0.1's
/// first release) stored a `Sequential` of a closed set of layers; version 2 stores
/// the architecture by name (see `io::model`); version 3 changed checkpoints only
/// (training hyperparameters became `f64`). All are read. Model files are still
/// written as version 2, their payload being unchanged, so that older builds read
/// them ([`FileKind::written_version`]).
pub const FORMAT_VERSION: u32 = 3;
/// Largest payload we decode (1 GiB): far above any small CNN, far below harm.
pub const MAX_PAYLOAD: u64 = 1 << 30;
const HEADER_LEN: usize = 8 + 4 + 1 + 8 + 4;

/// What a file holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileKind {
    /// A model: architecture and weights.
    Model = 1,
    /// A training checkpoint: model, optimizer state and position.
    Checkpoint = 2,
}

impl FileKind {
    /// The format version this build writes for this kind of file.
    pub fn written_version(self) -> u32 {
        match self {
            FileKind::Model => 2,
            FileKind::Checkpoint => 3,
        }
    }
}

/// Why a file could not be saved or loaded.
#[derive(Debug)]
pub enum IoError {
    /// The file could not be read or written.
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The file does not start with ferrocnn's magic bytes.
    NotFerrocnn {
        /// The file.
        path: PathBuf,
    },
    /// Written by a newer ferrocnn.
    NewerVersion {
        /// The file.
        path: PathBuf,
        /// Version in the file.
        found: u32,
        /// Newest version this build reads.
        supported: u32,
    },
    /// A model where a checkpoint was expected, or the reverse.
    WrongKind {
        /// The file.
        path: PathBuf,
        /// What it holds.
        found: FileKind,
        /// What was asked for.
        expected: FileKind,
    },
    /// Shorter than its header says.
    Truncated {
        /// The file.
        path: PathBuf,
        /// Bytes the header promises.
        expected: u64,
        /// Bytes present.
        found: u64,
    },
    /// The content is damaged or inconsistent.
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A tensor does not fit the architecture it is loaded into.
    ShapeMismatch {
        /// Parameter name (`conv1.weight`).
        name: String,
        /// Shape in the file.
        found: Vec<usize>,
        /// Shape in the model.
        expected: Vec<usize>,
    },
    /// A parameter is missing from the file or from the model (strict loading).
    KeyMismatch(String),
    /// The file decodes, but what it describes cannot be built or does not hold
    /// together (an unknown layer kind, a weight that does not fit its layer).
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A module cannot be written as ONNX: a kind the exporter does not know, or an
    /// input shape the model does not take.
    NotExportable {
        /// The module's dotted path (`blocks.0.main`); empty for the model itself.
        module: String,
        /// Its kind.
        kind: String,
        /// Why.
        reason: String,
    },
    /// Encoding failed (should not happen for our types).
    Encode(String),
}

impl std::fmt::Display for IoError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            IoError::Io { path, source } => write!(f, "{}: {source}", path.display()),
            IoError::NotFerrocnn { path } => write!(
                f,
                "{}: not a ferrocnn file (it does not start with \"FERROCNN\")",
                path.display()
            ),
            IoError::NewerVersion {
                path,
                found,
                supported,
            } => write!(
                f,
                "{}: format version {found} is newer than this build reads (up to {supported}); upgrade ferrocnn",
                path.display()
            ),
            IoError::WrongKind {
                path,
                found,
                expected,
            } => write!(f, "{}: holds a {found:?}, expected a {expected:?}", path.display()),
            IoError::Truncated {
                path,
                expected,
                found,
            } => write!(
                f,
                "{}: truncated: {expected} bytes expected, {found} present",
                path.display()
            ),
            IoError::Corrupt { path, reason } => write!(f, "{}: corrupt: {reason}", path.display()),
            IoError::ShapeMismatch {
                name,
                found,
                expected,
            } => write!(
                f,
                "shape mismatch at {name}: the file has {found:?}, the model expects {expected:?}"
            ),
            IoError::KeyMismatch(message) => f.write_str(message),
            IoError::Invalid { path, reason } => write!(f, "{}: {reason}", path.display()),
            IoError::NotExportable {
                module,
                kind,
                reason,
            } => {
                let module = if module.is_empty() { "the model" } else { module };
                write!(f, "cannot export {module} ({kind}) to ONNX: {reason}")
            }
            IoError::Encode(reason) => write!(f, "encoding failed: {reason}"),
        }
    }
}

impl std::error::Error for IoError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            IoError::Io { source, .. } => Some(source),
            IoError::NotFerrocnn { .. }
            | IoError::NewerVersion { .. }
            | IoError::WrongKind { .. }
            | IoError::Truncated { .. }
            | IoError::Corrupt { .. }
            | IoError::ShapeMismatch { .. }
            | IoError::KeyMismatch(_)
            | IoError::Invalid { .. }
            | IoError::NotExportable { .. }
            | IoError::Encode(_) => None,
        }
    }
}

pub(crate) fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> IoError + '_ {
    move |source| IoError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Encodes `value` with the header for `kind`.
pub(crate) fn encode<T: Serialize>(value: &T, kind: FileKind) -> Result<Vec<u8>, IoError> {
    let payload = bincode::serde::encode_to_vec(value, bincode::config::standard())
        .map_err(|e| IoError::Encode(e.to_string()))?;
    let mut bytes = Vec::with_capacity(HEADER_LEN + payload.len());
    bytes.extend_from_slice(MAGIC);
    bytes.extend_from_slice(&kind.written_version().to_le_bytes());
    bytes.push(kind as u8);
    bytes.extend_from_slice(&(payload.len() as u64).to_le_bytes());
    bytes.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
    bytes.extend_from_slice(&payload);
    Ok(bytes)
}

/// Checks the header of `bytes` (read from `path`) and returns the format version
/// and the payload.
pub(crate) fn open<'a>(bytes: &'a [u8], kind: FileKind, path: &Path) -> Result<(u32, &'a [u8]), IoError> {
    let path_buf = || path.to_path_buf();
    if bytes.len() < MAGIC.len() || &bytes[..MAGIC.len()] != MAGIC {
        return Err(IoError::NotFerrocnn { path: path_buf() });
    }
    if bytes.len() < HEADER_LEN {
        return Err(IoError::Truncated {
            path: path_buf(),
            expected: HEADER_LEN as u64,
            found: bytes.len() as u64,
        });
    }
    let u32_at = |at: usize| u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]);
    let version = u32_at(8);
    if version > FORMAT_VERSION {
        return Err(IoError::NewerVersion {
            path: path_buf(),
            found: version,
            supported: FORMAT_VERSION,
        });
    }
    if version == 0 {
        return Err(IoError::Corrupt {
            path: path_buf(),
            reason: "format version 0 does not exist".into(),
        });
    }
    let found = match bytes[12] {
        1 => FileKind::Model,
        2 => FileKind::Checkpoint,
        other => {
            return Err(IoError::Corrupt {
                path: path_buf(),
                reason: format!("unknown content kind {other}"),
            })
        }
    };
    if found != kind {
        return Err(IoError::WrongKind {
            path: path_buf(),
            found,
            expected: kind,
        });
    }
    let mut len = [0u8; 8];
    len.copy_from_slice(&bytes[13..21]);
    let len = u64::from_le_bytes(len);
    if len > MAX_PAYLOAD {
        return Err(IoError::Corrupt {
            path: path_buf(),
            reason: format!("payload length {len} exceeds the {MAX_PAYLOAD}-byte limit"),
        });
    }
    let present = (bytes.len() - HEADER_LEN) as u64;
    if present < len {
        return Err(IoError::Truncated {
            path: path_buf(),
            expected: HEADER_LEN as u64 + len,
            found: bytes.len() as u64,
        });
    }
    if present > len {
        return Err(IoError::Corrupt {
            path: path_buf(),
            reason: format!("{} bytes of trailing data", present - len),
        });
    }
    let payload = &bytes[HEADER_LEN..];
    if crc32fast::hash(payload) != u32_at(21) {
        return Err(IoError::Corrupt {
            path: path_buf(),
            reason: "checksum mismatch (the file was damaged)".into(),
        });
    }
    Ok((version, payload))
}

/// Decodes a payload (of the file at `path`) as a `T`, all of it.
///
/// bincode allocates a string or byte buffer at the length its prefix declares,
/// before reading it, within the decoder's limit. The limit is a constant of the
/// decoder's type, and each one compiles the whole decoder of every `T` again (six
/// limits were a tenth of the library's LLVM time), so there are two: 2 MiB for a
/// payload under 1 MiB (architectures, small models), which a damaged prefix in a
/// 30-byte file cannot get past, and [`MAX_PAYLOAD`] above, where a damaged prefix
/// can claim at most that (zeroed pages the kernel maps lazily, freed when the
/// read then fails).
pub(crate) fn decode_payload<T: DeserializeOwned>(payload: &[u8], path: &Path) -> Result<T, IoError> {
    let path_buf = || path.to_path_buf();
    let decoded = if payload.len() < 1 << 20 {
        decode_within::<T, { 1 << 21 }>(payload)
    } else {
        decode_within::<T, { MAX_PAYLOAD as usize }>(payload)
    };
    let (value, used) = decoded.map_err(|e| IoError::Corrupt {
        path: path_buf(),
        reason: describe(&e),
    })?;
    if used != payload.len() {
        return Err(IoError::Corrupt {
            path: path_buf(),
            reason: format!("{} undecoded bytes", payload.len() - used),
        });
    }
    Ok(value)
}

/// A decoder error in words (bincode's `Display` is its `Debug`).
fn describe(e: &bincode::error::DecodeError) -> String {
    use bincode::error::DecodeError::*;
    match e {
        LimitExceeded => "a length in it claims more data than the file holds".into(),
        UnexpectedEnd { .. } => "its content ends early (a length or a count in it is wrong)".into(),
        Utf8 { .. } => "a name in it is not valid UTF-8".into(),
        e => e.to_string(),
    }
}

/// `decode_payload` with bincode's allocation limit at `LIMIT` bytes.
fn decode_within<T: DeserializeOwned, const LIMIT: usize>(
    payload: &[u8],
) -> Result<(T, usize), bincode::error::DecodeError> {
    bincode::serde::decode_from_slice(payload, bincode::config::standard().with_limit::<LIMIT>())
}

/// Writes `bytes` to `path` atomically: a temporary file in the same folder,
/// flushed and synced, then renamed over `path`.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), IoError> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    fs::create_dir_all(&dir).map_err(io_err(&dir))?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let result = (|| {
        let mut file = File::create(&tmp).map_err(io_err(&tmp))?;
        file.write_all(bytes).map_err(io_err(&tmp))?;
        file.sync_all().map_err(io_err(&tmp))?;
        fs::rename(&tmp, path).map_err(io_err(path))
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result?;
    remove_stale_temp_files(&dir, &name);
    // Persist the rename itself; not every platform lets a directory be opened.
    if let Ok(d) = File::open(&dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// Removes `.{name}.{pid}.tmp` files that saves killed mid-write left in `dir`: those
/// of processes that no longer run (on Linux, where `/proc` says; elsewhere none is
/// removed, as a live save's file cannot be told from a dead one's).
fn remove_stale_temp_files(dir: &Path, name: &str) {
    if !Path::new("/proc/self").exists() {
        return;
    }
    let Ok(entries) = fs::read_dir(dir) else { return };
    let prefix = format!(".{name}.");
    for entry in entries.flatten() {
        let file = entry.file_name();
        let Some(pid) = file
            .to_str()
            .and_then(|f| f.strip_prefix(&prefix))
            .and_then(|f| f.strip_suffix(".tmp"))
            .and_then(|pid| pid.parse::<u32>().ok())
        else {
            continue;
        };
        if pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = fs::remove_file(entry.path());
        }
    }
}

/// Reads a whole file of at most `limit` bytes; a larger one (or a device that does
/// not end) is [`IoError::Corrupt`] after reading `limit + 1` bytes at most.
pub(crate) fn read_at_most(path: &Path, limit: u64) -> Result<Vec<u8>, IoError> {
    use std::io::Read;
    let too_large = || IoError::Corrupt {
        path: path.to_path_buf(),
        reason: format!("larger than the {limit}-byte limit"),
    };
    if fs::metadata(path).map_err(io_err(path))?.len() > limit {
        return Err(too_large());
    }
    let mut bytes = Vec::new();
    File::open(path)
        .map_err(io_err(path))?
        .take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(io_err(path))?;
    if bytes.len() as u64 > limit {
        return Err(too_large());
    }
    Ok(bytes)
}

/// Reads a file: its header first, then no more than the payload its header declares
/// (within the payload limit) and one byte beyond, so that a device or pipe given as
/// a file (`/dev/zero` reports no size and never ends) costs no more memory than a
/// real file. A header that is not ours is returned as read, for [`open`] to name.
pub(crate) fn read_limited(path: &Path) -> Result<Vec<u8>, IoError> {
    use std::io::Read;
    let len = fs::metadata(path).map_err(io_err(path))?.len();
    if len > MAX_PAYLOAD + HEADER_LEN as u64 {
        return Err(IoError::Corrupt {
            path: path.to_path_buf(),
            reason: format!("{len} bytes is larger than any ferrocnn file may be"),
        });
    }
    let mut file = File::open(path).map_err(io_err(path))?;
    let mut bytes = Vec::with_capacity(HEADER_LEN);
    (&mut file)
        .take(HEADER_LEN as u64)
        .read_to_end(&mut bytes)
        .map_err(io_err(path))?;
    if bytes.len() < HEADER_LEN || &bytes[..MAGIC.len()] != MAGIC {
        return Ok(bytes);
    }
    let declared = u64::from_le_bytes(bytes[13..21].try_into().expect("8 bytes"));
    if declared > MAX_PAYLOAD {
        return Ok(bytes); // `open` says the declared length is over the limit
    }
    file.take(declared + 1)
        .read_to_end(&mut bytes)
        .map_err(io_err(path))?;
    Ok(bytes)
}
