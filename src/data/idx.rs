//! Reader for IDX files, the format of MNIST and its cousins (Fashion-MNIST, KMNIST).
//!
//! An IDX file is a big-endian header (a magic number, then one `u32` per dimension)
//! followed by the data, here unsigned bytes: images are magic 2051 with
//! `count, rows, cols`, labels magic 2049 with `count`. Files may be gzip'd; gzip is
//! recognised by its magic bytes `1f 8b`, not by the file name.
//!
//! The header is read as a claim to be checked, never trusted: a raw file's declared
//! size is compared with the file's length before any buffer is allocated, and a gzip
//! stream is read through `Read::take(declared + 1)` into a growing buffer, so neither
//! a lying header nor a gzip bomb can make the reader allocate more than the data that
//! actually arrives (and never more than [`MAX_DATA_BYTES`]). Every failure is a
//! [`DataError`] naming the file.

use std::fs::File;
use std::io::{self, BufReader, Cursor, Read};
use std::path::Path;

use flate2::read::MultiGzDecoder;

use super::error::{DataError, IdxKind};

/// The most data bytes a header may declare (4 GiB); a larger claim is refused with
/// [`DataError::TooLarge`] before anything is read.
pub const MAX_DATA_BYTES: u64 = 1 << 32;

/// At most this many decompressed bytes past the declared data are counted when
/// reporting trailing garbage in a gzip file; beyond that the count is a lower bound.
const MAX_TRAILING_COUNT: u64 = 1 << 20;

/// The contents of an IDX image file: `count` images of `rows × cols` bytes, row-major.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdxImages {
    /// Number of images.
    pub count: usize,
    /// Rows per image (height).
    pub rows: usize,
    /// Columns per image (width).
    pub cols: usize,
    /// `count * rows * cols` pixel bytes, image after image.
    pub pixels: Vec<u8>,
}

/// Reads an IDX image file (magic 2051), raw or gzip'd.
///
/// # Errors
/// Any [`DataError`] about the file: missing, unreadable, wrong magic, short header,
/// truncated, trailing bytes, too large, corrupt gzip.
pub fn read_images(path: impl AsRef<Path>) -> Result<IdxImages, DataError> {
    read_images_at(path.as_ref())
}

// Not generic: compiled once here, not again in every crate that calls it.
fn read_images_at(path: &Path) -> Result<IdxImages, DataError> {
    let (dims, pixels) = read_file(path, IdxKind::Images)?;
    Ok(images_from(dims, pixels))
}

/// Reads an IDX label file (magic 2049), raw or gzip'd: one byte per label.
///
/// # Errors
/// As for [`read_images`].
pub fn read_labels(path: impl AsRef<Path>) -> Result<Vec<u8>, DataError> {
    read_labels_at(path.as_ref())
}

// Not generic: compiled once here, not again in every crate that calls it.
fn read_labels_at(path: &Path) -> Result<Vec<u8>, DataError> {
    Ok(read_file(path, IdxKind::Labels)?.1)
}

/// Parses an IDX image file already in memory (raw or gzip'd); `path` is only used in
/// error messages.
///
/// # Errors
/// As for [`read_images`], except the file-system ones.
pub fn parse_images(bytes: &[u8], path: impl AsRef<Path>) -> Result<IdxImages, DataError> {
    parse_images_at(bytes, path.as_ref())
}

// Not generic: compiled once here, not again in every crate that calls it.
fn parse_images_at(bytes: &[u8], path: &Path) -> Result<IdxImages, DataError> {
    let (dims, pixels) = read_source(Cursor::new(bytes), bytes.len() as u64, path, IdxKind::Images)?;
    Ok(images_from(dims, pixels))
}

/// Parses an IDX label file already in memory (raw or gzip'd); `path` is only used in
/// error messages.
///
/// # Errors
/// As for [`read_labels`], except the file-system ones.
pub fn parse_labels(bytes: &[u8], path: impl AsRef<Path>) -> Result<Vec<u8>, DataError> {
    parse_labels_at(bytes, path.as_ref())
}

// Not generic: compiled once here, not again in every crate that calls it.
fn parse_labels_at(bytes: &[u8], path: &Path) -> Result<Vec<u8>, DataError> {
    Ok(read_source(Cursor::new(bytes), bytes.len() as u64, path, IdxKind::Labels)?.1)
}

fn images_from(dims: [usize; 3], pixels: Vec<u8>) -> IdxImages {
    IdxImages {
        count: dims[0],
        rows: dims[1],
        cols: dims[2],
        pixels,
    }
}

fn read_file(path: &Path, kind: IdxKind) -> Result<([usize; 3], Vec<u8>), DataError> {
    let file = File::open(path).map_err(|e| DataError::io(path, e))?;
    let len = file.metadata().map_err(|e| DataError::io(path, e))?.len();
    read_source(BufReader::new(file), len, path, kind)
}

/// Where bytes come from, so one error mapping serves both kinds of file: through
/// gzip, a decoder failure is a corrupt stream, not an I/O error.
#[derive(Clone, Copy)]
enum Encoding {
    Raw { len: u64 },
    Gzip,
}

fn read_source<R: Read>(
    mut reader: R,
    len: u64,
    path: &Path,
    kind: IdxKind,
) -> Result<([usize; 3], Vec<u8>), DataError> {
    let mut prefix = [0u8; 2];
    let n = read_up_to(&mut reader, &mut prefix, path, Encoding::Raw { len })?;
    let reader = Cursor::new(prefix).take(n as u64).chain(reader);
    if n == 2 && prefix == [0x1f, 0x8b] {
        parse(MultiGzDecoder::new(reader), path, kind, Encoding::Gzip)
    } else {
        parse(reader, path, kind, Encoding::Raw { len })
    }
}

fn map_read_error(path: &Path, encoding: Encoding, e: io::Error) -> DataError {
    match encoding {
        Encoding::Gzip
            if matches!(
                e.kind(),
                io::ErrorKind::InvalidInput | io::ErrorKind::InvalidData | io::ErrorKind::UnexpectedEof
            ) =>
        {
            DataError::Gzip {
                path: path.to_path_buf(),
                source: e,
            }
        }
        _ => DataError::io(path, e),
    }
}

/// Fills `buf` as far as the stream allows; returns how many bytes arrived.
fn read_up_to<R: Read>(
    reader: &mut R,
    buf: &mut [u8],
    path: &Path,
    encoding: Encoding,
) -> Result<usize, DataError> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(k) => filled += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(map_read_error(path, encoding, e)),
        }
    }
    Ok(filled)
}

fn parse<R: Read>(
    mut reader: R,
    path: &Path,
    kind: IdxKind,
    encoding: Encoding,
) -> Result<([usize; 3], Vec<u8>), DataError> {
    let header_len = kind.header_len();
    let mut header = [0u8; 16];
    let header = &mut header[..header_len as usize];

    // The magic first: a wrong file is better reported as "not an IDX image file"
    // than as "too short", whenever there are four bytes to look at.
    let got = read_up_to(&mut reader, &mut header[..4], path, encoding)?;
    let short = |found: usize| DataError::ShortHeader {
        path: path.to_path_buf(),
        kind,
        expected: header_len,
        found: found as u64,
    };
    if got < 4 {
        return Err(short(got));
    }
    let magic = u32::from_be_bytes([header[0], header[1], header[2], header[3]]);
    if magic != kind.magic() {
        return Err(DataError::BadMagic {
            path: path.to_path_buf(),
            kind,
            found: magic,
        });
    }
    let got = 4 + read_up_to(&mut reader, &mut header[4..], path, encoding)?;
    if got < header.len() {
        return Err(short(got));
    }

    let mut dims = [1usize; 3];
    let mut declared: u64 = 1;
    let mut overflow = false;
    let n_dims = (header_len as usize - 4) / 4;
    let mut dims_u64 = [0u64; 3];
    for (d, chunk) in header[4..].chunks_exact(4).enumerate() {
        let v = u64::from(u32::from_be_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]));
        dims_u64[d] = v;
        match declared.checked_mul(v) {
            Some(p) => declared = p,
            None => overflow = true,
        }
    }
    if overflow || declared > MAX_DATA_BYTES {
        let dims = dims_u64[..n_dims]
            .iter()
            .map(u64::to_string)
            .collect::<Vec<_>>()
            .join(" x ");
        return Err(DataError::TooLarge {
            path: path.to_path_buf(),
            kind,
            dims,
            declared: if overflow { u64::MAX } else { declared },
            limit: MAX_DATA_BYTES,
        });
    }
    // Each dimension is at most `declared` (unless another is 0) and `declared` fits in
    // usize if the total does; on a 32-bit target a 4 GiB claim is refused here.
    let too_large_for_target = || DataError::TooLarge {
        path: path.to_path_buf(),
        kind,
        dims: format!("{declared} bytes on a {}-bit target", usize::BITS),
        declared,
        limit: usize::MAX as u64,
    };
    let declared_usize = usize::try_from(declared).map_err(|_| too_large_for_target())?;
    for (d, &v) in dims_u64[..n_dims].iter().enumerate() {
        dims[d] = usize::try_from(v).map_err(|_| too_large_for_target())?;
    }

    let truncated = |found: u64| DataError::Truncated {
        path: path.to_path_buf(),
        kind,
        expected: declared,
        found,
    };
    let data = match encoding {
        Encoding::Raw { len } => {
            // The file length is known: check the claim before allocating for it.
            let found = len.saturating_sub(header_len);
            if found < declared {
                return Err(truncated(found));
            }
            if found > declared {
                return Err(DataError::TrailingBytes {
                    path: path.to_path_buf(),
                    kind,
                    expected: declared,
                    found,
                    at_least: false,
                });
            }
            let mut data = vec![0u8; declared_usize];
            let got = read_up_to(&mut reader, &mut data, path, encoding)?;
            if got < declared_usize {
                // The file shrank between the length check and the read.
                return Err(truncated(got as u64));
            }
            data
        }
        Encoding::Gzip => {
            // The decompressed size is unknown until it is decompressed: let the buffer
            // grow with what arrives, never past one byte more than the claim.
            let mut data = Vec::new();
            let mut limited = (&mut reader).take(declared + 1);
            loop {
                match limited.read_to_end(&mut data) {
                    Ok(_) => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(map_read_error(path, encoding, e)),
                }
            }
            let got = data.len() as u64;
            if got < declared {
                return Err(truncated(got));
            }
            if got > declared {
                // Count a bounded amount of the excess for the message; a decoder
                // error in the garbage does not change the verdict.
                let (more, complete) =
                    match io::copy(&mut (&mut reader).take(MAX_TRAILING_COUNT), &mut io::sink()) {
                        Ok(more) => (more, more < MAX_TRAILING_COUNT),
                        Err(_) => (0, false),
                    };
                return Err(DataError::TrailingBytes {
                    path: path.to_path_buf(),
                    kind,
                    expected: declared,
                    found: got + more,
                    at_least: !complete,
                });
            }
            data
        }
    };
    Ok((dims, data))
}
