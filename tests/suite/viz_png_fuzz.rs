//! Property tests of `read_grayscale_png`, the reader of users' images (`inspect
//! --predict`): random bytes, valid PNGs of every colour type and depth truncated,
//! bit-flipped, or with a chunk changed and its CRC made right again (which reaches
//! the decoder), and headers of any size and format. Each must be an image of the
//! size its header says or an error — never a panic — and none may allocate more
//! than the largest image the reader accepts.

use crate::common;
use crate::peak_alloc;
use crate::temp_dir;

use common::png::chunk;
use common::property::{self, Index};

use rand::rngs::StdRng;
use rand::Rng;

use ferrocnn::viz::{read_grayscale_png, MAX_PNG_SIDE};

/// The documented cap: a `MAX_PNG_SIDE`² image of 8-bit RGBA (the decoder's
/// buffer), its gray copy, and 1 MiB of decoder state.
const CAP: usize = (MAX_PNG_SIDE as usize).pow(2) * 5 + (1 << 20);

/// A valid PNG of `width`×`height` in `color` at `depth` bits, pixels from `seed`.
/// (The encoder writes no interlaced images; interlaced headers are in the last
/// property.)
fn valid_png(width: u32, height: u32, color: png::ColorType, depth: png::BitDepth, seed: u8) -> Vec<u8> {
    let mut out = Vec::new();
    let mut encoder = png::Encoder::new(&mut out, width, height);
    encoder.set_color(color);
    encoder.set_depth(depth);
    if color == png::ColorType::Indexed {
        encoder.set_palette((0..=255u8).flat_map(|i| [i, 255 - i, i / 2]).collect::<Vec<u8>>());
        encoder.set_trns(vec![200u8; 16]);
    }
    let samples = match color {
        png::ColorType::Grayscale | png::ColorType::Indexed => 1,
        png::ColorType::GrayscaleAlpha => 2,
        png::ColorType::Rgb => 3,
        png::ColorType::Rgba => 4,
    };
    let row_bytes = (width as usize * samples * depth as usize).div_ceil(8);
    let data: Vec<u8> = (0..row_bytes * height as usize)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect();
    let mut writer = encoder.write_header().expect("header");
    writer.write_image_data(&data).expect("data");
    writer.finish().expect("finish");
    out
}

/// Every colour type with the depths PNG allows for it: a colour type, each as
/// likely, then one of its depths.
fn format(rng: &mut StdRng) -> (png::ColorType, png::BitDepth) {
    use png::BitDepth::*;
    use png::ColorType::*;
    let color = property::pick(rng, &[Grayscale, Indexed, Rgb, GrayscaleAlpha, Rgba]);
    let depths: &[png::BitDepth] = match color {
        Grayscale => &[One, Two, Four, Eight, Sixteen],
        Indexed => &[One, Two, Four, Eight],
        Rgb | GrayscaleAlpha | Rgba => &[Eight, Sixteen],
    };
    (color, property::pick(rng, depths))
}

/// A side of a valid PNG.
fn side(rng: &mut StdRng) -> u32 {
    rng.random_range(1..40)
}

/// The chunks of a PNG as `(type, data)`, as far as they parse.
fn chunks(png: &[u8]) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut out = Vec::new();
    let mut at = 8;
    while at + 12 <= png.len() {
        let len = u32::from_be_bytes(png[at..at + 4].try_into().unwrap()) as usize;
        if at + 12 + len > png.len() {
            break;
        }
        out.push((png[at + 4..at + 8].to_vec(), png[at + 8..at + 8 + len].to_vec()));
        at += 12 + len;
    }
    out
}

/// Reads `bytes` as a PNG file; checks the answer and the allocation cap.
fn read(bytes: &[u8]) {
    let dir = temp_dir::tempdir().expect("temp dir");
    let path = dir.path().join("x.png");
    std::fs::write(&path, bytes).expect("write");
    let (result, peak) = peak_alloc::peak_during(|| read_grayscale_png(&path));
    assert!(
        peak <= CAP,
        "{peak} bytes allocated for a {}-byte file",
        bytes.len()
    );
    match result {
        Ok((pixels, height, width)) => {
            assert_eq!(pixels.len(), height * width);
            assert!(height.max(width) <= MAX_PNG_SIDE as usize && height.min(width) > 0);
        }
        Err(e) => assert!(e.to_string().contains("x.png"), "{e}"),
    }
}

/// As many cases as each property had under proptest: the file runs in seconds.
const CASES: u32 = 200;

#[test]
fn random_bytes_never_panic() {
    property::check(
        "random_bytes_never_panic",
        CASES,
        |rng| (property::bytes(rng, 0..200), rng.random::<bool>()),
        |(bytes, signed)| {
            // With the signature in front, the bytes reach the chunk parser.
            let bytes = if signed {
                [&b"\x89PNG\r\n\x1a\n"[..], &bytes].concat()
            } else {
                bytes
            };
            read(&bytes);
        },
    );
}

#[test]
fn valid_pngs_read_at_their_size() {
    property::check(
        "valid_pngs_read_at_their_size",
        CASES,
        |rng| (side(rng), side(rng), format(rng), rng.random::<u8>()),
        |(width, height, (color, depth), seed)| {
            let png = valid_png(width, height, color, depth, seed);
            let dir = temp_dir::tempdir().expect("temp dir");
            let path = dir.path().join("ok.png");
            std::fs::write(&path, &png).unwrap();
            let (pixels, h, w) = read_grayscale_png(&path).expect("a valid PNG reads");
            assert_eq!(
                (h, w, pixels.len()),
                (height as usize, width as usize, (height * width) as usize)
            );
        },
    );
}

#[test]
fn damaged_pngs_never_panic() {
    property::check(
        "damaged_pngs_never_panic",
        CASES,
        |rng| {
            (
                side(rng),
                side(rng),
                format(rng),
                Index::random(rng),
                Index::random(rng),
                property::bit(rng),
            )
        },
        |(width, height, (color, depth), cut, at, bit)| {
            let png = valid_png(width, height, color, depth, 7);
            read(&png[..cut.index(png.len())]);
            let mut flipped = png.clone();
            flipped[at.index(png.len())] ^= 1 << bit;
            read(&flipped);
        },
    );
}

#[test]
fn a_chunk_changed_behind_a_valid_crc_never_panics() {
    property::check(
        "a_chunk_changed_behind_a_valid_crc_never_panics",
        CASES,
        |rng| {
            (
                side(rng),
                side(rng),
                format(rng),
                Index::random(rng),
                Index::random(rng),
                rng.random::<u8>(),
            )
        },
        |(width, height, (color, depth), which, at, byte)| {
            // A byte of one chunk's data replaced and its CRC recomputed: the header's
            // fields, the palette, the compressed stream itself reach the decoder.
            let png = valid_png(width, height, color, depth, 9);
            let mut parts = chunks(&png);
            let which = which.index(parts.len());
            let data = &mut parts[which].1;
            if !data.is_empty() {
                let i = at.index(data.len());
                data[i] = byte;
            }
            let mut rebuilt = b"\x89PNG\r\n\x1a\n".to_vec();
            for (kind, data) in &parts {
                rebuilt.extend(chunk(kind, data));
            }
            read(&rebuilt);
        },
    );
}

#[test]
fn headers_of_any_size_and_format_never_panic() {
    property::check(
        "headers_of_any_size_and_format_never_panic",
        CASES,
        |rng| {
            // Each kind of value as likely: the edges would be rare among any u32.
            let width = match rng.random_range(0..4) {
                0 => rng.random_range(0u32..64),
                1 => MAX_PNG_SIDE,
                2 => MAX_PNG_SIDE + 1,
                _ => rng.random(),
            };
            let height = match rng.random_range(0..3) {
                0 => rng.random_range(0u32..64),
                1 => MAX_PNG_SIDE,
                _ => rng.random(),
            };
            let depth = match rng.random_range(0..6) {
                0..5 => property::pick(rng, &[1u8, 2, 4, 8, 16]),
                _ => rng.random(),
            };
            let color = match rng.random_range(0..6) {
                0..5 => property::pick(rng, &[0u8, 2, 3, 4, 6]),
                _ => rng.random(),
            };
            (
                width,
                height,
                depth,
                color,
                rng.random_range(0u8..3),
                property::bytes(rng, 0..64),
            )
        },
        |(width, height, depth, color, interlace, stream)| {
            let mut ihdr = width.to_be_bytes().to_vec();
            ihdr.extend_from_slice(&height.to_be_bytes());
            ihdr.extend_from_slice(&[depth, color, 0, 0, interlace]);
            let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
            png.extend(chunk(b"IHDR", &ihdr));
            if color == 3 {
                png.extend(chunk(b"PLTE", &[0, 0, 0, 255, 255, 255]));
            }
            // A zlib stream of random data: decodes to whatever it decodes to.
            let mut z = vec![0x78, 0x01, 0x01];
            z.extend_from_slice(&(stream.len() as u16).to_le_bytes());
            z.extend_from_slice(&(!(stream.len() as u16)).to_le_bytes());
            z.extend_from_slice(&stream);
            png.extend(chunk(b"IDAT", &z));
            png.extend(chunk(b"IEND", &[]));
            read(&png);
        },
    );
}
