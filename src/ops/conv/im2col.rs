//! im2col and col2im: the data movement that turns a convolution into a matrix
//! product.
//!
//! For one image `[C, H, W]`, the column matrix has one row per kernel tap
//! `(c, i, j)` (`K = C·kh·kw` rows) and one column per output pixel (`P = OH·OW`);
//! row `(c, i, j)` holds the input pixel each output pixel sees through that tap (0 in
//! the padding). Then `out[O, P] = W[O, K] · col[K, P]`.
//!
//! Both directions walk a row of the column matrix one output row at a time: for a
//! fixed tap and output row, the pixels come from one input row, so with stride 1 the
//! copy is a contiguous `copy_from_slice` (a `memcpy`), and the padding is a run of
//! zeros at either end. No per-element index arithmetic or bounds check in the inner
//! loop. A dense kernel's im2col goes further and pads each input plane once
//! ([`im2col_padded`](super::im2col_padded)). Several images can share one column
//! matrix (`ld` is the row stride, `offset` the first column of this image), so small
//! images can be batched into one product.

use super::copy_row::{copy_row_into, fill_zeros};

/// The geometry of one conv2d: input plane, kernel, stride, dilation, padding and
/// output plane.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ConvGeometry {
    pub channels: usize,
    pub h: usize,
    pub w: usize,
    pub kh: usize,
    pub kw: usize,
    pub stride: (usize, usize),
    pub dilation: (usize, usize),
    pub top: usize,
    pub left: usize,
    pub oh: usize,
    pub ow: usize,
}

/// For one kernel column offset `j`: output columns `[lo, hi)` read the input
/// (starting at input column `first`), the rest read padding.
#[derive(Clone, Copy)]
struct ColumnRange {
    lo: usize,
    hi: usize,
    first: usize,
}

impl ConvGeometry {
    /// Rows of the column matrix: `C·kh·kw`.
    pub fn k(&self) -> usize {
        self.channels * self.kh * self.kw
    }

    /// Output pixels per image: `OH·OW`.
    pub fn p(&self) -> usize {
        self.oh * self.ow
    }

    /// A 1×1 kernel with stride 1 and no padding: the column matrix of an image is
    /// the image itself, `[C, H·W]`.
    pub fn is_pointwise(&self) -> bool {
        (self.kh, self.kw) == (1, 1)
            && self.stride == (1, 1)
            && (self.top, self.left) == (0, 0)
            && (self.oh, self.ow) == (self.h, self.w)
    }

    /// Input row read by output row `oy` through kernel row `i`, if not padding.
    #[inline]
    fn input_row(&self, oy: usize, i: usize) -> Option<usize> {
        (oy * self.stride.0 + i * self.dilation.0)
            .checked_sub(self.top)
            .filter(|&r| r < self.h)
    }

    fn column_range(&self, j: usize) -> ColumnRange {
        let (s, offset) = (self.stride.1, j * self.dilation.1);
        // Input column of output column x is x·s + offset − left; in bounds when
        // left − offset ≤ x·s < W + left − offset.
        let lo = self.left.saturating_sub(offset).div_ceil(s).min(self.ow);
        let hi = (self.w + self.left)
            .saturating_sub(offset)
            .div_ceil(s)
            .clamp(lo, self.ow);
        ColumnRange {
            lo,
            hi,
            first: (lo * s + offset).saturating_sub(self.left),
        }
    }

    /// Writes image `x` (`[C, H, W]`, contiguous) into columns
    /// `offset .. offset + P` of `col` (`K` rows of stride `ld`).
    pub fn im2col(&self, x: &[f32], col: &mut [f32], ld: usize, offset: usize) {
        if self.is_valid_3_wide() {
            self.im2col_valid_3_wide(x, col, ld, offset);
        } else if self.dilation == (1, 1) && self.kw == 1 && self.left == 0 {
            self.im2col_one_wide(x, col, ld, offset);
        } else if self.dilation == (1, 1) {
            self.im2col_padded(x, col, ld, offset);
        } else {
            self.im2col_general(x, col, ld, offset);
        }
    }

    /// [`im2col`](Self::im2col) for any geometry: tap row by tap row.
    fn im2col_general(&self, x: &[f32], col: &mut [f32], ld: usize, offset: usize) {
        let (ow, sw) = (self.ow, self.stride.1);
        let mut row = 0;
        for c in 0..self.channels {
            let plane = &x[c * self.h * self.w..(c + 1) * self.h * self.w];
            for i in 0..self.kh {
                for j in 0..self.kw {
                    let range = self.column_range(j);
                    let dst_row = &mut col[row * ld + offset..row * ld + offset + self.p()];
                    for (oy, dst) in dst_row.chunks_exact_mut(ow).enumerate() {
                        let Some(r) = self.input_row(oy, i) else {
                            dst.fill(0.0);
                            continue;
                        };
                        let src = &plane[r * self.w..(r + 1) * self.w];
                        dst[..range.lo].fill(0.0);
                        dst[range.hi..].fill(0.0);
                        if range.lo == range.hi {
                            continue;
                        }
                        let dst = &mut dst[range.lo..range.hi];
                        if sw == 1 {
                            dst.copy_from_slice(&src[range.first..range.first + dst.len()]);
                        } else {
                            for (d, s) in dst.iter_mut().zip(src[range.first..].iter().step_by(sw)) {
                                *d = *s;
                            }
                        }
                    }
                    row += 1;
                }
            }
        }
    }

    /// The adjoint of [`im2col`](Self::im2col): adds columns `offset .. offset + P`
    /// of `col` back into image `dx` (`[C, H, W]`), each tap onto the pixel it read.
    pub fn col2im(&self, col: &[f32], ld: usize, offset: usize, dx: &mut [f32]) {
        if self.is_valid_3_wide() {
            self.col2im_valid_3_wide(col, ld, offset, dx);
        } else if self.dilation == (1, 1) {
            self.col2im_dense(col, ld, offset, dx);
        } else {
            self.col2im_general(col, ld, offset, dx);
        }
    }

    /// [`col2im`](Self::col2im) for any geometry: tap row by tap row.
    fn col2im_general(&self, col: &[f32], ld: usize, offset: usize, dx: &mut [f32]) {
        let (ow, sw) = (self.ow, self.stride.1);
        let mut row = 0;
        for c in 0..self.channels {
            let plane = &mut dx[c * self.h * self.w..(c + 1) * self.h * self.w];
            for i in 0..self.kh {
                for j in 0..self.kw {
                    let range = self.column_range(j);
                    let src_row = &col[row * ld + offset..row * ld + offset + self.p()];
                    for (oy, src) in src_row.chunks_exact(ow).enumerate() {
                        let Some(r) = self.input_row(oy, i).filter(|_| range.lo < range.hi) else {
                            continue;
                        };
                        let dst = &mut plane[r * self.w..(r + 1) * self.w];
                        let src = &src[range.lo..range.hi];
                        if sw == 1 {
                            let dst = &mut dst[range.first..range.first + src.len()];
                            for (d, s) in dst.iter_mut().zip(src) {
                                *d += *s;
                            }
                        } else {
                            for (d, s) in dst[range.first..].iter_mut().step_by(sw).zip(src) {
                                *d += *s;
                            }
                        }
                    }
                    row += 1;
                }
            }
        }
    }
}

impl ConvGeometry {
    /// Stride 1, dilation 1, no padding, kernel 3 wide: each output row reads three
    /// neighbouring pixels of an input row.
    fn is_valid_3_wide(&self) -> bool {
        self.kw == 3
            && self.stride == (1, 1)
            && self.dilation == (1, 1)
            && (self.top, self.left) == (0, 0)
            && self.ow + 2 == self.w
            && self.oh + self.kh - 1 == self.h
    }

    /// [`im2col`](Self::im2col) for [`is_valid_3_wide`](Self::is_valid_3_wide): the
    /// three taps of a kernel row are filled from an input row in one pass, where
    /// the general loop makes a `memcpy` call per tap and output row (rows of 11–26
    /// pixels here).
    fn im2col_valid_3_wide(&self, x: &[f32], col: &mut [f32], ld: usize, offset: usize) {
        let (w, ow, p) = (self.w, self.ow, self.p());
        for c in 0..self.channels {
            let plane = &x[c * self.h * w..(c + 1) * self.h * w];
            for i in 0..self.kh {
                let at = ((c * self.kh + i) * 3) * ld + offset;
                let (t0, rest) = col[at..].split_at_mut(ld);
                let (t1, rest) = rest.split_at_mut(ld);
                let (t0, t1, t2) = (&mut t0[..p], &mut t1[..p], &mut rest[..p]);
                for oy in 0..self.oh {
                    let src = &plane[(oy + i) * w..(oy + i + 1) * w];
                    let span = oy * ow..(oy + 1) * ow;
                    let (d0, d1, d2) = (&mut t0[span.clone()], &mut t1[span.clone()], &mut t2[span]);
                    for x in 0..ow {
                        (d0[x], d1[x], d2[x]) = (src[x], src[x + 1], src[x + 2]);
                    }
                }
            }
        }
    }

    /// [`col2im`](Self::col2im) for [`is_valid_3_wide`](Self::is_valid_3_wide):
    /// the three taps of a kernel row are added to an input row in one pass, in
    /// the order of the general loop (so the sums are the same, bit for bit), where
    /// it makes three passes over rows of 11–26 pixels that are mostly loop set-up
    /// (7% of an R1 training step, profiled).
    fn col2im_valid_3_wide(&self, col: &[f32], ld: usize, offset: usize, dx: &mut [f32]) {
        let (w, ow, p) = (self.w, self.ow, self.p());
        for c in 0..self.channels {
            let plane = &mut dx[c * self.h * w..(c + 1) * self.h * w];
            for i in 0..self.kh {
                let row = |j: usize| {
                    let at = ((c * self.kh + i) * 3 + j) * ld + offset;
                    &col[at..at + p]
                };
                let (t0, t1, t2) = (row(0), row(1), row(2));
                for oy in 0..self.oh {
                    let dst = &mut plane[(oy + i) * w..(oy + i + 1) * w];
                    let span = oy * ow..(oy + 1) * ow;
                    let (s0, s1, s2) = (&t0[span.clone()], &t1[span.clone()], &t2[span]);
                    // Pixel x gets s0[x], s1[x − 1], s2[x − 2], where those exist.
                    dst[0] += s0[0];
                    if ow > 1 {
                        dst[1] = (dst[1] + s0[1]) + s1[0];
                    }
                    for x in 2..ow {
                        dst[x] = ((dst[x] + s0[x]) + s1[x - 1]) + s2[x - 2];
                    }
                    if ow > 1 {
                        dst[ow] = (dst[ow] + s1[ow - 1]) + s2[ow - 2];
                    } else {
                        dst[ow] += s1[0];
                    }
                    dst[ow + 1] += s2[ow - 1];
                }
            }
        }
    }
}

/// A padded input row: the pixels output columns `0..OW` read through the taps of
/// a dense (dilation 1) kernel row, `(OW − 1)·stride + kw` of them, column `q`
/// holding input column `q − left` or 0 in the padding. Tap `j` of output column
/// `x` is then `row[x·stride + j]`, with no bounds to check per pixel. (The
/// forward direction pads whole planes: [`im2col_padded`](super::im2col_padded).)
struct PaddedRow {
    values: Vec<f32>,
    /// The part of `values` that holds input pixels, and the input columns it holds.
    inside: std::ops::Range<usize>,
    columns: std::ops::Range<usize>,
}

impl PaddedRow {
    fn new(g: &ConvGeometry) -> PaddedRow {
        let len = (g.ow - 1) * g.stride.1 + g.kw;
        let start = g.left.min(len);
        let end = (g.left + g.w).min(len);
        PaddedRow {
            values: vec![0.0; len],
            inside: start..end.max(start),
            columns: 0..end.max(start) - start,
        }
    }
}

impl ConvGeometry {
    /// [`im2col`](Self::im2col) for a kernel one column wide with no left padding
    /// (R3's 1×1 stride-2 projections): one strided gather per tap and output row,
    /// zeros where a Same padding's right edge is read. Copying the plane into a
    /// padded one first ([`im2col_padded`](Self::im2col_padded)) would move every
    /// input pixel where a stride of 2 reads a quarter of them.
    fn im2col_one_wide(&self, x: &[f32], col: &mut [f32], ld: usize, offset: usize) {
        let (ow, sw) = (self.ow, self.stride.1);
        if self.p() == 0 {
            return;
        }
        for c in 0..self.channels {
            let plane = &x[c * self.h * self.w..(c + 1) * self.h * self.w];
            for i in 0..self.kh {
                let dst_row = &mut col[(c * self.kh + i) * ld + offset..][..self.p()];
                for (oy, dst) in dst_row.chunks_exact_mut(ow).enumerate() {
                    let Some(r) = self.input_row(oy, i) else {
                        dst.fill(0.0);
                        continue;
                    };
                    let src = &plane[r * self.w..(r + 1) * self.w];
                    let taken = dst
                        .iter_mut()
                        .zip(src.iter().step_by(sw))
                        .map(|(d, &v)| *d = v)
                        .count();
                    fill_zeros(&mut dst[taken..]);
                }
            }
        }
    }

    /// [`col2im`](Self::col2im) for a dense kernel, the adjoint of
    /// [`im2col_padded`](Self::im2col_padded): each input row is copied into a padded
    /// row, the taps of a kernel row added there (what lands in the padding is
    /// dropped), and the row copied back. Each pixel receives its taps in the order
    /// of the general loop, so the sums are the same, bit for bit.
    fn col2im_dense(&self, col: &[f32], ld: usize, offset: usize, dx: &mut [f32]) {
        let (ow, sw, p) = (self.ow, self.stride.1, self.p());
        if p == 0 {
            return;
        }
        let mut row = PaddedRow::new(self);
        for c in 0..self.channels {
            let plane = &mut dx[c * self.h * self.w..(c + 1) * self.h * self.w];
            for i in 0..self.kh {
                let first_tap = (c * self.kh + i) * self.kw;
                for oy in 0..self.oh {
                    let Some(r) = self.input_row(oy, i) else {
                        continue;
                    };
                    let dst = &mut plane[r * self.w..(r + 1) * self.w];
                    if self.kw == 1 && self.left == 0 {
                        // As in im2col: what lands in a right padding is dropped.
                        let src = &col[first_tap * ld + offset + oy * ow..][..ow];
                        dst.iter_mut().step_by(sw).zip(src).for_each(|(d, &v)| *d += v);
                        continue;
                    }
                    copy_row_into(&mut row.values[row.inside.clone()], &dst[row.columns.clone()]);
                    for j in 0..self.kw {
                        let src = &col[(first_tap + j) * ld + offset + oy * ow..][..ow];
                        if sw == 1 {
                            let sums = &mut row.values[j..j + ow];
                            sums.iter_mut().zip(src).for_each(|(d, &v)| *d += v);
                        } else {
                            let sums = row.values[j..].iter_mut().step_by(sw);
                            sums.zip(src).for_each(|(d, &v)| *d += v);
                        }
                    }
                    copy_row_into(&mut dst[row.columns.clone()], &row.values[row.inside.clone()]);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Naive im2col with explicit index arithmetic, to pin the fast one down.
    fn naive(g: &ConvGeometry, x: &[f32]) -> Vec<f32> {
        let mut col = vec![0.0; g.k() * g.p()];
        for c in 0..g.channels {
            for i in 0..g.kh {
                for j in 0..g.kw {
                    let row = (c * g.kh + i) * g.kw + j;
                    for oy in 0..g.oh {
                        for ox in 0..g.ow {
                            let r = (oy * g.stride.0 + i * g.dilation.0) as isize - g.top as isize;
                            let q = (ox * g.stride.1 + j * g.dilation.1) as isize - g.left as isize;
                            if r >= 0 && q >= 0 && (r as usize) < g.h && (q as usize) < g.w {
                                col[row * g.p() + oy * g.ow + ox] =
                                    x[(c * g.h + r as usize) * g.w + q as usize];
                            }
                        }
                    }
                }
            }
        }
        col
    }

    #[test]
    fn im2col_matches_naive_and_col2im_is_its_adjoint() {
        let cases = [
            // (c, h, w, kh, kw, stride, dilation, top, left, bottom, right)
            (1, 4, 4, 3, 3, (1, 1), (1, 1), 0, 0, 0, 0),
            (2, 5, 6, 2, 3, (2, 1), (1, 1), 1, 0, 1, 2),
            (3, 7, 5, 3, 2, (2, 3), (2, 1), 2, 1, 0, 3),
            (1, 3, 3, 3, 3, (1, 1), (1, 1), 2, 2, 2, 2),
        ];
        for (channels, h, w, kh, kw, stride, dilation, top, left, bottom, right) in cases {
            let oh = (h + top + bottom - (kh - 1) * dilation.0 - 1) / stride.0 + 1;
            let ow = (w + left + right - (kw - 1) * dilation.1 - 1) / stride.1 + 1;
            let g = ConvGeometry {
                channels,
                h,
                w,
                kh,
                kw,
                stride,
                dilation,
                top,
                left,
                oh,
                ow,
            };
            let x: Vec<f32> = (0..channels * h * w).map(|v| v as f32 + 1.0).collect();
            let expected = naive(&g, &x);
            // Placed as the second image of a two-image column matrix.
            let ld = 2 * g.p();
            let mut col = vec![f32::NAN; g.k() * ld];
            g.im2col(&x, &mut col, ld, g.p());
            for row in 0..g.k() {
                assert_eq!(
                    &col[row * ld + g.p()..(row + 1) * ld],
                    &expected[row * g.p()..(row + 1) * g.p()]
                );
            }
            // <im2col(x), y> = <x, col2im(y)> for y = the column matrix of ones·index.
            let y: Vec<f32> = (0..g.k() * ld).map(|v| (v % 7) as f32).collect();
            let mut back = vec![0.0; x.len()];
            g.col2im(&y, ld, g.p(), &mut back);
            let lhs: f32 = (0..g.k())
                .flat_map(|row| (0..g.p()).map(move |p| (row, p)))
                .map(|(row, p)| col[row * ld + g.p() + p] * y[row * ld + g.p() + p])
                .sum();
            let rhs: f32 = x.iter().zip(&back).map(|(a, b)| a * b).sum();
            assert_eq!(lhs, rhs);
        }
    }

    fn start_of(g: &ConvGeometry) -> Vec<f32> {
        (0..g.channels * g.h * g.w)
            .map(|v| (v % 13) as f32 / 7.0)
            .collect()
    }

    #[test]
    fn valid_3_wide_kernels_move_data_as_the_general_loops_do() {
        // Bit for bit, on values whose sums round: rows of 1, 2 and 11 outputs.
        for (channels, h, w, kh) in [(2, 5, 3, 3), (1, 4, 4, 2), (3, 13, 13, 3)] {
            let (oh, ow) = (h - kh + 1, w - 2);
            let g = ConvGeometry {
                channels,
                h,
                w,
                kh,
                kw: 3,
                stride: (1, 1),
                dilation: (1, 1),
                top: 0,
                left: 0,
                oh,
                ow,
            };
            assert!(g.is_valid_3_wide());
            let ld = 3 * g.p();
            let col: Vec<f32> = (0..g.k() * ld)
                .map(|v| ((v * 7919) % 1013) as f32 / 97.0 - 5.0)
                .collect();
            let start = start_of(&g);
            let (mut fast, mut general) = (start.clone(), start);
            g.col2im_valid_3_wide(&col, ld, g.p(), &mut fast);
            g.col2im_general(&col, ld, g.p(), &mut general);
            assert_eq!(fast, general, "{channels}x{h}x{w} k{kh}x3");
            let (mut fast, mut general) = (vec![f32::NAN; g.k() * ld], vec![f32::NAN; g.k() * ld]);
            g.im2col_valid_3_wide(&start_of(&g), &mut fast, ld, g.p());
            g.im2col_general(&start_of(&g), &mut general, ld, g.p());
            assert!(
                fast.iter().zip(&general).all(|(a, b)| a.to_bits() == b.to_bits()),
                "im2col {channels}x{h}x{w}"
            );
        }
    }
    #[test]
    fn dense_kernels_move_data_as_the_general_loops_do() {
        // Bit for bit: 1×1 and 3×3 with stride 1 and 2, padding on either side or
        // none, odd planes, a kernel wider than tall, a window that skips the last
        // input column.
        let cases = [
            // (c, h, w, kh, kw, stride, top, left, bottom, right)
            (3, 7, 7, 3, 3, (1, 1), 1, 1, 1, 1),
            (2, 14, 14, 3, 3, (2, 2), 1, 1, 1, 1),
            (2, 9, 9, 3, 3, (2, 2), 1, 1, 1, 1),
            (4, 14, 14, 1, 1, (2, 2), 0, 0, 0, 0),
            (2, 7, 6, 1, 1, (1, 1), 0, 0, 0, 0),
            (1, 5, 8, 2, 5, (1, 2), 0, 2, 1, 2),
            (2, 6, 7, 3, 3, (1, 3), 2, 0, 0, 1),
            (1, 4, 4, 3, 3, (1, 1), 2, 2, 2, 2),
            // Through the padded plane: a window that skips the last input row and
            // column, 1×1 with padding, Same's odd padding on the bottom and right
            // only, padding wider than the kernel, a 5×5 with stride 3, rows of one
            // output pixel.
            (3, 8, 8, 3, 3, (2, 2), 0, 0, 0, 0),
            (2, 5, 6, 1, 1, (2, 2), 1, 1, 1, 1),
            (2, 6, 5, 3, 3, (2, 2), 0, 0, 1, 1),
            (1, 5, 7, 3, 3, (2, 1), 3, 4, 3, 4),
            (2, 11, 12, 5, 5, (3, 3), 2, 1, 2, 1),
            (2, 3, 1, 3, 3, (2, 2), 1, 1, 1, 1),
            // 3-wide at stride 2, four outputs at a time: rows of 14 (three blocks,
            // the last overlapping) and of 8 (two whole ones).
            (2, 28, 28, 3, 3, (2, 2), 1, 1, 1, 1),
            (1, 16, 16, 3, 3, (2, 2), 1, 1, 1, 1),
            (1, 7, 7, 3, 3, (1, 1), 1, 1, 1, 1),
            // Stride-1 rows of 3, 4, 8 and 9 pixels: either side of the two fixed
            // moves that copy a row of 4 to 8 (`copy_row`).
            (1, 5, 5, 3, 3, (1, 1), 0, 0, 0, 0),
            (2, 6, 6, 3, 3, (1, 1), 0, 0, 0, 0),
            (2, 8, 8, 3, 3, (1, 1), 1, 1, 1, 1),
            (1, 9, 9, 3, 3, (1, 1), 1, 1, 1, 1),
        ];
        for (channels, h, w, kh, kw, stride, top, left, bottom, right) in cases {
            let oh = (h + top + bottom - kh) / stride.0 + 1;
            let ow = (w + left + right - kw) / stride.1 + 1;
            let g = ConvGeometry {
                channels,
                h,
                w,
                kh,
                kw,
                stride,
                dilation: (1, 1),
                top,
                left,
                oh,
                ow,
            };
            let what =
                format!("{channels}x{h}x{w} k{kh}x{kw} stride {stride:?} pad {top},{left},{bottom},{right}");
            let ld = 2 * g.p() + 3;
            let (mut fast, mut general) = (vec![f32::NAN; g.k() * ld], vec![f32::NAN; g.k() * ld]);
            g.im2col_general(&start_of(&g), &mut general, ld, g.p());
            g.im2col(&start_of(&g), &mut fast, ld, g.p());
            assert!(
                fast.iter().zip(&general).all(|(a, b)| a.to_bits() == b.to_bits()),
                "im2col {what}"
            );
            // The padded plane on its own, also where `im2col` sends a 1×1 elsewhere.
            let mut padded = vec![f32::NAN; g.k() * ld];
            g.im2col_padded(&start_of(&g), &mut padded, ld, g.p());
            for row in 0..g.k() {
                let (got, want) = (
                    &padded[row * ld + g.p()..][..g.p()],
                    &general[row * ld + g.p()..][..g.p()],
                );
                assert!(
                    got.iter().zip(want).all(|(a, b)| a.to_bits() == b.to_bits()),
                    "im2col_padded {what}, tap row {row}"
                );
            }
            let col: Vec<f32> = (0..g.k() * ld)
                .map(|v| ((v * 7919) % 1013) as f32 / 97.0 - 5.0)
                .collect();
            let (mut fast, mut general) = (start_of(&g), start_of(&g));
            g.col2im_dense(&col, ld, g.p(), &mut fast);
            g.col2im_general(&col, ld, g.p(), &mut general);
            assert_eq!(fast, general, "col2im {what}");
        }
    }
}
