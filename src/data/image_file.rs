//! Reading one image file, PNG or JPEG, as 8-bit samples: what an image folder
//! holds.
//!
//! The format is told by the file's first bytes, not its name. Sizes are checked
//! from the header before anything is allocated, so a 69-byte file claiming a
//! million pixels a side is refused, not obeyed.

use std::io::Read;
use std::path::Path;

use zune_jpeg::zune_core::bytestream::ZCursor;
use zune_jpeg::zune_core::colorspace::ColorSpace;
use zune_jpeg::zune_core::options::DecoderOptions;

use super::DataError;

/// The largest side accepted, in pixels (as `viz::MAX_PNG_SIDE`).
pub const MAX_IMAGE_SIDE: usize = 8192;

const PNG_SIGNATURE: &[u8] = b"\x89PNG\r\n\x1a\n";
const JPEG_SIGNATURE: &[u8] = &[0xFF, 0xD8, 0xFF];

/// A decoded image: interleaved 8-bit samples, row-major.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Image {
    /// `height × width × channels` samples, interleaved (`RGBRGB…`).
    pub pixels: Vec<u8>,
    /// Rows.
    pub height: usize,
    /// Columns.
    pub width: usize,
    /// 1 gray, 2 gray + alpha, 3 RGB, 4 RGBA.
    pub channels: usize,
}

impl Image {
    /// True for gray images (with or without alpha).
    pub fn is_gray(&self) -> bool {
        self.channels <= 2
    }

    /// The image with its transparency composited over a `background` gray (255:
    /// white, as a viewer shows a drawing on a transparent canvas); an opaque image
    /// is returned as it is.
    pub fn over_background(&self, background: u8) -> Image {
        if self.channels % 2 == 1 {
            return self.clone();
        }
        let colour = self.channels - 1;
        let bg = f32::from(background);
        let pixels = self
            .pixels
            .chunks_exact(self.channels)
            .flat_map(|px| {
                let a = f32::from(px[colour]) / 255.0;
                px[..colour]
                    .iter()
                    .map(move |&v| (f32::from(v) * a + bg * (1.0 - a)).round() as u8)
            })
            .collect();
        Image {
            pixels,
            channels: colour,
            ..*self
        }
    }

    /// The image as `[channels, height, width]` planes of gray (`channels == 1`)
    /// or RGB (`3`). Alpha is dropped, as PIL's `convert("RGB")` and so
    /// torchvision's `ImageFolder` drop it; colour becomes gray by Rec. 601 luma,
    /// as PIL's `convert("L")`; gray becomes RGB by repeating it.
    ///
    /// # Panics
    /// If `channels` is not 1 or 3.
    pub fn to_planes(&self, channels: usize) -> Vec<u8> {
        assert!(
            channels == 1 || channels == 3,
            "Image::to_planes: {channels} channels"
        );
        let plane = self.height * self.width;
        let mut out = vec![0u8; channels * plane];
        let samples = self.pixels.chunks_exact(self.channels);
        match (self.is_gray(), channels) {
            (true, _) => {
                for (i, px) in samples.enumerate() {
                    for c in 0..channels {
                        out[c * plane + i] = px[0];
                    }
                }
            }
            (false, 3) => {
                for (i, px) in samples.enumerate() {
                    for c in 0..3 {
                        out[c * plane + i] = px[c];
                    }
                }
            }
            (false, _) => {
                for (o, px) in out.iter_mut().zip(samples) {
                    // PIL's integer luma: (R·299 + G·587 + B·114) / 1000, rounded.
                    let l = u32::from(px[0]) * 299 + u32::from(px[1]) * 587 + u32::from(px[2]) * 114;
                    *o = ((l + 500) / 1000) as u8;
                }
            }
        }
        out
    }
}

/// Reads a PNG (any colour type and bit depth; 16-bit samples keep their high
/// byte, palettes are expanded, only an animation's first frame) or a baseline or
/// progressive JPEG.
///
/// # Errors
/// [`DataError::Io`]/[`DataError::NotFound`] if it cannot be read,
/// [`DataError::Image`] naming the file if it is neither format, is corrupt or
/// truncated, or is larger than [`MAX_IMAGE_SIDE`] a side.
pub fn read_image(path: impl AsRef<Path>) -> Result<Image, DataError> {
    read_image_at(path.as_ref())
}

// Not generic: compiled once here, not again in every crate that calls it.
fn read_image_at(path: &Path) -> Result<Image, DataError> {
    let bytes = std::fs::read(path).map_err(|source| match source.kind() {
        std::io::ErrorKind::NotFound => DataError::NotFound {
            path: path.to_path_buf(),
        },
        _ => DataError::Io {
            path: path.to_path_buf(),
            source,
        },
    })?;
    let fail = |reason: String| DataError::Image {
        path: path.to_path_buf(),
        reason,
    };
    if bytes.starts_with(PNG_SIGNATURE) {
        decode_png(&bytes).map_err(|e| fail(format!("not a readable PNG: {e}")))
    } else if bytes.starts_with(JPEG_SIGNATURE) {
        decode_jpeg(&bytes).map_err(fail)
    } else {
        Err(fail(
            "not a PNG or JPEG file (its first bytes are neither's signature)".into(),
        ))
    }
}

/// What an image's header says: its size and whether it is gray.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Header {
    pub height: usize,
    pub width: usize,
    pub gray: bool,
}

/// The size and colour of an image without decoding its pixels: a PNG's first 33
/// bytes (signature and IHDR), a JPEG's headers.
pub(crate) fn read_header(path: &Path) -> Result<Header, DataError> {
    let io_err = |source| DataError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut start = Vec::with_capacity(33);
    std::fs::File::open(path)
        .and_then(|f| f.take(33).read_to_end(&mut start))
        .map_err(io_err)?;
    if start.len() == 33 && start.starts_with(PNG_SIGNATURE) && &start[12..16] == b"IHDR" {
        let be = |i: usize| u32::from_be_bytes([start[i], start[i + 1], start[i + 2], start[i + 3]]) as usize;
        // Colour types 0 (gray) and 4 (gray + alpha); the decoder checks the rest.
        return Ok(Header {
            width: be(16),
            height: be(20),
            gray: start[25] == 0 || start[25] == 4,
        });
    }
    if start.starts_with(JPEG_SIGNATURE) {
        let bytes = std::fs::read(path).map_err(io_err)?;
        let (decoder, gray) = jpeg_headers(&bytes).map_err(|reason| DataError::Image {
            path: path.to_path_buf(),
            reason,
        })?;
        let info = decoder.info().expect("headers decoded");
        return Ok(Header {
            height: usize::from(info.height),
            width: usize::from(info.width),
            gray,
        });
    }
    // Anything else fails here with the decoder's message.
    let image = read_image(path)?;
    Ok(Header {
        height: image.height,
        width: image.width,
        gray: image.is_gray(),
    })
}

fn check_side(width: usize, height: usize) -> Result<(), String> {
    if width == 0 || height == 0 || width > MAX_IMAGE_SIDE || height > MAX_IMAGE_SIDE {
        return Err(format!(
            "a {width}×{height} image (the limit is 1 to {MAX_IMAGE_SIDE} pixels a side)"
        ));
    }
    Ok(())
}

fn decode_png(bytes: &[u8]) -> Result<Image, String> {
    let mut decoder = png::Decoder::new(std::io::Cursor::new(bytes));
    // EXPAND: palette → RGB(A), 1/2/4-bit gray → 8-bit, tRNS → alpha. STRIP_16: 16 → 8 bits.
    decoder.set_transformations(png::Transformations::EXPAND | png::Transformations::STRIP_16);
    let mut reader = decoder.read_info().map_err(|e| e.to_string())?;
    let (width, height) = (reader.info().width as usize, reader.info().height as usize);
    check_side(width, height)?;
    let size = reader.output_buffer_size().ok_or("image too large for memory")?;
    let mut buf = vec![0u8; size];
    let info = reader.next_frame(&mut buf).map_err(|e| e.to_string())?;
    let channels = match info.color_type {
        png::ColorType::Grayscale => 1,
        png::ColorType::GrayscaleAlpha => 2,
        png::ColorType::Rgb => 3,
        png::ColorType::Rgba => 4,
        png::ColorType::Indexed => return Err("palette image was not expanded".into()),
    };
    if info.bit_depth != png::BitDepth::Eight {
        return Err(format!("{:?}-bit samples after expansion", info.bit_depth));
    }
    let (width, height) = (info.width as usize, info.height as usize);
    let row = width * channels;
    let mut pixels = Vec::with_capacity(height * row);
    for line in buf.chunks_exact(info.line_size).take(height) {
        pixels.extend_from_slice(&line[..row]);
    }
    Ok(Image {
        pixels,
        height,
        width,
        channels,
    })
}

type JpegDecoder<'a> = zune_jpeg::JpegDecoder<ZCursor<&'a [u8]>>;

/// A JPEG decoder past the headers, set to decode gray as gray and everything else
/// (YCbCr, CMYK, …) as RGB; and whether it is gray.
fn jpeg_headers(bytes: &[u8]) -> Result<(JpegDecoder<'_>, bool), String> {
    let options = DecoderOptions::default()
        .set_max_width(MAX_IMAGE_SIDE)
        .set_max_height(MAX_IMAGE_SIDE);
    let mut decoder = zune_jpeg::JpegDecoder::new_with_options(ZCursor::new(bytes), options);
    decoder
        .decode_headers()
        .map_err(|e| format!("not a readable JPEG: {e:?}"))?;
    let info = decoder.info().ok_or("no JPEG header")?;
    check_side(usize::from(info.width), usize::from(info.height))?;
    let gray = decoder.input_colorspace() == Some(ColorSpace::Luma);
    let out = if gray { ColorSpace::Luma } else { ColorSpace::RGB };
    decoder.set_options(options.jpeg_set_out_colorspace(out));
    Ok((decoder, gray))
}

fn decode_jpeg(bytes: &[u8]) -> Result<Image, String> {
    let (mut decoder, gray) = jpeg_headers(bytes)?;
    let pixels = decoder.decode().map_err(|e| format!("corrupt JPEG: {e:?}"))?;
    let info = decoder.info().ok_or("no JPEG header")?;
    let (width, height) = (usize::from(info.width), usize::from(info.height));
    let channels = if gray { 1 } else { 3 };
    if pixels.len() != width * height * channels {
        return Err(format!(
            "decoded {} samples for a {width}×{height} image",
            pixels.len()
        ));
    }
    Ok(Image {
        pixels,
        height,
        width,
        channels,
    })
}
