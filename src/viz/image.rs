//! In-memory images (8-bit gray and RGB), PNG writing and reading, resizing.
//!
//! Reading converts whatever the PNG holds — gray, gray+alpha, RGB, RGBA, palette,
//! 1–16 bits — to 8-bit gray, because that is what an MNIST-style model eats.
//! Transparent pixels are composited over white, as an image viewer shows them, so
//! a black digit drawn on a transparent canvas reads as black on white (which
//! `inspect --predict` then inverts to MNIST's white on black).

use std::fs::File;
use std::io::{BufReader, BufWriter};
use std::path::Path;

use super::VizError;

/// An 8-bit grayscale image, row-major, one byte per pixel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GrayImage {
    /// Width in pixels.
    pub width: usize,
    /// Height in pixels.
    pub height: usize,
    /// `height × width` bytes, row after row.
    pub pixels: Vec<u8>,
}

impl GrayImage {
    /// A `width × height` image filled with `value`.
    pub fn new(width: usize, height: usize, value: u8) -> Self {
        GrayImage {
            width,
            height,
            pixels: vec![value; width * height],
        }
    }

    /// The pixel at column `x`, row `y`.
    ///
    /// # Panics
    /// If `(x, y)` is outside the image.
    pub fn get(&self, x: usize, y: usize) -> u8 {
        assert!(
            x < self.width && y < self.height,
            "GrayImage::get: ({x}, {y}) outside"
        );
        self.pixels[y * self.width + x]
    }

    /// Sets a pixel; coordinates outside the image are ignored (so drawing may clip).
    pub fn put(&mut self, x: usize, y: usize, value: u8) {
        if x < self.width && y < self.height {
            self.pixels[y * self.width + x] = value;
        }
    }

    /// Writes the image as an 8-bit grayscale PNG, creating missing parent folders.
    pub fn save_png(&self, path: impl AsRef<Path>) -> Result<(), VizError> {
        self.save_png_at(path.as_ref())
    }

    // Not generic: compiled once here, not again in every crate that calls it.
    fn save_png_at(&self, path: &Path) -> Result<(), VizError> {
        write_png(
            path,
            self.width,
            self.height,
            png::ColorType::Grayscale,
            &self.pixels,
        )
    }
}

/// An 8-bit RGB image, row-major, three bytes per pixel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RgbImage {
    /// Width in pixels.
    pub width: usize,
    /// Height in pixels.
    pub height: usize,
    /// `height × width × 3` bytes.
    pub pixels: Vec<u8>,
}

impl RgbImage {
    /// A `width × height` image filled with `color`.
    pub fn new(width: usize, height: usize, color: [u8; 3]) -> Self {
        RgbImage {
            width,
            height,
            pixels: color.repeat(width * height),
        }
    }

    /// Sets a pixel; coordinates outside the image are ignored.
    pub fn put(&mut self, x: i64, y: i64, color: [u8; 3]) {
        if x >= 0 && y >= 0 && (x as usize) < self.width && (y as usize) < self.height {
            let i = 3 * (y as usize * self.width + x as usize);
            self.pixels[i..i + 3].copy_from_slice(&color);
        }
    }

    /// The pixel at column `x`, row `y`.
    ///
    /// # Panics
    /// If `(x, y)` is outside the image.
    pub fn get(&self, x: usize, y: usize) -> [u8; 3] {
        assert!(
            x < self.width && y < self.height,
            "RgbImage::get: ({x}, {y}) outside"
        );
        let i = 3 * (y * self.width + x);
        [self.pixels[i], self.pixels[i + 1], self.pixels[i + 2]]
    }

    /// Writes the image as an 8-bit RGB PNG, creating missing parent folders.
    pub fn save_png(&self, path: impl AsRef<Path>) -> Result<(), VizError> {
        self.save_png_at(path.as_ref())
    }

    // Not generic: compiled once here, not again in every crate that calls it.
    fn save_png_at(&self, path: &Path) -> Result<(), VizError> {
        write_png(path, self.width, self.height, png::ColorType::Rgb, &self.pixels)
    }
}

fn write_png(
    path: &Path,
    width: usize,
    height: usize,
    color: png::ColorType,
    data: &[u8],
) -> Result<(), VizError> {
    if width == 0 || height == 0 {
        return Err(VizError::Empty(format!(
            "{}: a {width}×{height} image",
            path.display()
        )));
    }
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|source| VizError::Io {
            path: parent.to_path_buf(),
            source,
        })?;
    }
    let io_err = |source| VizError::Io {
        path: path.to_path_buf(),
        source,
    };
    let enc_err = |source| VizError::Encode {
        path: path.to_path_buf(),
        source,
    };
    let file = File::create(path).map_err(io_err)?;
    let mut encoder = png::Encoder::new(BufWriter::new(file), width as u32, height as u32);
    encoder.set_color(color);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header().map_err(enc_err)?;
    writer.write_image_data(data).map_err(enc_err)?;
    writer.finish().map_err(enc_err)
}

/// The largest side [`read_grayscale_png`] accepts, in pixels (8192: 256 MiB of RGBA
/// at most, far above any digit photo).
pub const MAX_PNG_SIDE: u32 = 8192;

/// Reads a PNG as 8-bit gray: `(pixels, height, width)`, pixels row-major.
///
/// Accepts gray, gray+alpha, RGB, RGBA and palette images of any bit depth. Colour
/// becomes luma (Rec. 601: 0.299 R + 0.587 G + 0.114 B); 16-bit samples keep their
/// high byte; transparent pixels are composited over white. Only the first frame
/// of an animated PNG is read.
///
/// # Errors
/// [`VizError::Io`] if the file cannot be opened, [`VizError::Decode`] if it is not
/// a PNG or is truncated or corrupt, [`VizError::Unsupported`] for what the decoder
/// reads but this function cannot convert, or an image larger than [`MAX_PNG_SIDE`]
/// a side (checked from the header, before anything is allocated).
pub fn read_grayscale_png(path: impl AsRef<Path>) -> Result<(Vec<u8>, usize, usize), VizError> {
    read_grayscale_png_at(path.as_ref())
}

// Not generic: compiled once here, not again in every crate that calls it.
fn read_grayscale_png_at(path: &Path) -> Result<(Vec<u8>, usize, usize), VizError> {
    let file = File::open(path).map_err(|source| VizError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let decode_err = |source| VizError::Decode {
        path: path.to_path_buf(),
        source,
    };
    let mut decoder = png::Decoder::new(BufReader::new(file));
    // EXPAND: palette → RGB(A), 1/2/4-bit gray → 8-bit, tRNS → alpha. STRIP_16: 16 → 8 bits.
    decoder.set_transformations(png::Transformations::EXPAND | png::Transformations::STRIP_16);
    let mut reader = decoder.read_info().map_err(decode_err)?;
    // The header's size is checked before anything is allocated: a 69-byte file may
    // claim 1,000,000 × 1,000,000 pixels.
    let (width, height) = (reader.info().width, reader.info().height);
    if width > MAX_PNG_SIDE || height > MAX_PNG_SIDE {
        return Err(VizError::Unsupported {
            path: path.to_path_buf(),
            what: format!("a {width}×{height} image (the limit is {MAX_PNG_SIDE} pixels a side)"),
        });
    }
    let size = reader.output_buffer_size().ok_or_else(|| VizError::Unsupported {
        path: path.to_path_buf(),
        what: "image too large for memory".into(),
    })?;
    let mut buf = vec![0u8; size];
    let info = reader.next_frame(&mut buf).map_err(decode_err)?;
    let (width, height) = (info.width as usize, info.height as usize);
    if info.bit_depth != png::BitDepth::Eight {
        return Err(VizError::Unsupported {
            path: path.to_path_buf(),
            what: format!("{:?}-bit samples after expansion", info.bit_depth),
        });
    }
    let channels = match info.color_type {
        png::ColorType::Grayscale => 1,
        png::ColorType::GrayscaleAlpha => 2,
        png::ColorType::Rgb => 3,
        png::ColorType::Rgba => 4,
        png::ColorType::Indexed => {
            return Err(VizError::Unsupported {
                path: path.to_path_buf(),
                what: "palette image was not expanded".into(),
            })
        }
    };
    let mut gray = Vec::with_capacity(width * height);
    for row in buf[..height * info.line_size].chunks_exact(info.line_size) {
        for px in row[..width * channels].chunks_exact(channels) {
            let (value, alpha) = match channels {
                1 => (px[0] as f32, 255.0),
                2 => (px[0] as f32, px[1] as f32),
                3 => (luma(px), 255.0),
                _ => (luma(px), px[3] as f32),
            };
            let a = alpha / 255.0;
            gray.push((value * a + 255.0 * (1.0 - a)).round().clamp(0.0, 255.0) as u8);
        }
    }
    Ok((gray, height, width))
}

fn luma(rgb: &[u8]) -> f32 {
    0.299 * rgb[0] as f32 + 0.587 * rgb[1] as f32 + 0.114 * rgb[2] as f32
}
