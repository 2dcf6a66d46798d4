//! Arrays for the page: quantized to bytes and base64-encoded inside the JSON.
//!
//! The default net's layers hold about 130,000 values for one image. As JSON numbers
//! that is about 1 MB to write, send and parse; as one byte each in base64, 170 kB,
//! which the page decodes straight into the pixels it draws. A byte per value is
//! all a picture shows; the exact range of every map travels beside it.

use ndarray::ArrayViewD;

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard base64 (RFC 4648, with padding), what the browser's `atob` reads.
pub fn base64(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Each `plane`-sized run of `values` stretched to its own min..max as 0..=255 (a
/// flat run is 0), with the ranges: what a feature map's picture needs.
pub fn stretch(values: &ArrayViewD<f32>, plane: usize) -> (Vec<u8>, Vec<[f32; 2]>) {
    let flat: Vec<f32> = values.iter().copied().collect();
    let mut bytes = Vec::with_capacity(flat.len());
    let mut ranges = Vec::new();
    for run in flat.chunks(plane.max(1)) {
        let (lo, hi) = run
            .iter()
            .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &v| {
                (lo.min(v), hi.max(v))
            });
        let span = hi - lo;
        let scale = if span > 0.0 { 255.0 / span } else { 0.0 };
        bytes.extend(run.iter().map(|&v| ((v - lo) * scale).round() as u8));
        ranges.push([lo, hi]);
    }
    (bytes, ranges)
}

/// Each `plane`-sized run of `values` as 128 ± 127·v/max|v| (zero stays 128, the
/// sign is kept), with each run's max|v|: what a picture of weights needs, where a
/// negative weight means something else than a positive one.
pub fn signed(values: &ArrayViewD<f32>, plane: usize) -> (Vec<u8>, Vec<f32>) {
    let flat: Vec<f32> = values.iter().copied().collect();
    let mut bytes = Vec::with_capacity(flat.len());
    let mut peaks = Vec::new();
    for run in flat.chunks(plane.max(1)) {
        let peak = run.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        let scale = if peak > 0.0 { 127.0 / peak } else { 0.0 };
        bytes.extend(
            run.iter()
                .map(|&v| (128.0 + v * scale).round().clamp(1.0, 255.0) as u8),
        );
        peaks.push(peak);
    }
    (bytes, peaks)
}
