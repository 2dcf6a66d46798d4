//! col2im that writes: the input gradient of R3's stride-2 convolutions (3×3
//! padded by 1, and the 1×1 projections) gathered pixel by pixel from the column
//! matrix, each pixel written once.
//!
//! [`col2im`](super::im2col) adds every tap into its pixel, so the task's share of
//! `dx` has to be zeroed first, and each pixel is read and written once per tap:
//! with stride 2 the taps land on every other pixel, in loops of one float at a
//! time. Those convolutions' `col2im` and the zeroing were 3.5% of an R3 training
//! step at two threads (perf). With stride 2, which taps reach a pixel depends only
//! on the parity of its row and column, so each output row is a fixed sum of at
//! most two kernel rows' taps: even columns take the middle tap, odd ones the
//! right tap of the output column to their left and the left tap of the one to
//! their right. Each pixel gets its taps in the order `col2im` adds them (kernel
//! row, then column), so the values are the same, bit for bit (up to the sign of
//! a zero: `col2im` starts from `+0`).

use std::mem::MaybeUninit;

use super::copy_row::copy_row;
use super::im2col::ConvGeometry;

impl ConvGeometry {
    /// Whether [`col2im_written`](Self::col2im_written) computes this geometry: a
    /// 3×3 kernel padded by 1 (top and left) or a 1×1 kernel with no padding, with
    /// stride 2, on planes of exactly twice the output's height and width.
    pub(crate) fn col2im_writes(&self) -> bool {
        let shape = (self.stride, self.dilation) == ((2, 2), (1, 1))
            && (self.h, self.w) == (2 * self.oh, 2 * self.ow)
            && self.ow > 0
            && self.oh > 0;
        let three = (self.kh, self.kw, self.top, self.left) == (3, 3, 1, 1);
        let one = (self.kh, self.kw, self.top, self.left) == (1, 1, 0, 0);
        shape && (three || one)
    }

    /// The input gradient of one image, `[C, H, W]`, from columns `offset .. offset
    /// + P` of `col` (`K` rows of stride `ld`): what [`col2im`](Self::col2im) adds
    /// into a zeroed `dx`, written into `dx` (which need not be initialized). Only
    /// where [`col2im_writes`](Self::col2im_writes).
    pub(crate) fn col2im_written(&self, col: &[f32], ld: usize, offset: usize, dx: &mut [MaybeUninit<f32>]) {
        assert!(self.col2im_writes(), "col2im_written: geometry {self:?}");
        let (h, w, ow) = (self.h, self.w, self.ow);
        let mut row = vec![0.0f32; w];
        for c in 0..self.channels {
            let plane = &mut dx[c * h * w..(c + 1) * h * w];
            // Tap `(i, j)` of output row `oy`, as a row of `OW` values.
            let taps = |i: usize, j: usize, oy: usize| {
                let tap = (c * self.kh + i) * self.kw + j;
                &col[tap * ld + offset + oy * ow..][..ow]
            };
            for (r, out) in plane.chunks_exact_mut(w).enumerate() {
                if self.kh == 1 {
                    // Even rows and columns take their pixel's tap; the rest nothing.
                    if r % 2 == 0 {
                        for (pair, &v) in row.chunks_exact_mut(2).zip(taps(0, 0, r / 2)) {
                            (pair[0], pair[1]) = (v, 0.0);
                        }
                    } else {
                        row.fill(0.0);
                    }
                } else if r % 2 == 0 {
                    // Input row r = 2·oy + i − 1: only the middle kernel row.
                    row_taps(
                        &mut row,
                        [taps(1, 0, r / 2), taps(1, 1, r / 2), taps(1, 2, r / 2)],
                        false,
                    );
                } else {
                    // The top kernel row of the output row below (none past the
                    // last), then the bottom kernel row of the one above.
                    let below = r.div_ceil(2);
                    let first = below < self.oh;
                    if first {
                        row_taps(
                            &mut row,
                            [taps(0, 0, below), taps(0, 1, below), taps(0, 2, below)],
                            false,
                        );
                    }
                    let above = (r - 1) / 2;
                    row_taps(
                        &mut row,
                        [taps(2, 0, above), taps(2, 1, above), taps(2, 2, above)],
                        first,
                    );
                }
                copy_row(out, &row);
            }
        }
    }
}

/// One kernel row's three taps `[s0, s1, s2]` (each `OW` long) gathered onto an
/// input row of `2·OW` pixels, padded by 1 on the left: pixel `2m` is `s1[m]`,
/// pixel `2m + 1` is `s0[m + 1] + s2[m]` (no `s0` past the last). Written into
/// `row`, or added to it with `add`, tap by tap in the order of `col2im`.
#[inline]
fn row_taps(row: &mut [f32], [s0, s1, s2]: [&[f32]; 3], add: bool) {
    let ow = s1.len();
    let (pairs, _) = row.as_chunks_mut::<2>();
    let (body, last) = pairs.split_at_mut(ow - 1);
    if add {
        for (m, pair) in body.iter_mut().enumerate() {
            pair[0] += s1[m];
            pair[1] = (pair[1] + s0[m + 1]) + s2[m];
        }
        last[0][0] += s1[ow - 1];
        last[0][1] += s2[ow - 1];
    } else {
        for (m, pair) in body.iter_mut().enumerate() {
            *pair = [s1[m], s0[m + 1] + s2[m]];
        }
        last[0] = [s1[ow - 1], s2[ow - 1]];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_gradients_are_what_col2im_adds_into_zeros() {
        // R3's stride-2 convs (3×3 padded by 1, 1×1), on planes of one and several
        // output columns, as the second image of a two-image column matrix; bit for
        // bit, on values whose sums round.
        let cases = [
            // (c, oh, ow, k, pad)
            (2, 7, 7, 3, 1),
            (3, 14, 14, 3, 1),
            (1, 1, 1, 3, 1),
            (2, 2, 3, 3, 1),
            (2, 7, 7, 1, 0),
            (1, 1, 2, 1, 0),
        ];
        for (channels, oh, ow, k, pad) in cases {
            let g = ConvGeometry {
                channels,
                h: 2 * oh,
                w: 2 * ow,
                kh: k,
                kw: k,
                stride: (2, 2),
                dilation: (1, 1),
                top: pad,
                left: pad,
                oh,
                ow,
            };
            assert!(g.col2im_writes());
            let ld = 2 * g.p() + 5;
            let col: Vec<f32> = (0..g.k() * ld)
                .map(|v| ((v * 7919) % 1013) as f32 / 97.0 - 5.0)
                .collect();
            let mut added = vec![0.0f32; channels * g.h * g.w];
            g.col2im(&col, ld, g.p(), &mut added);
            let mut written = vec![MaybeUninit::new(f32::NAN); added.len()];
            g.col2im_written(&col, ld, g.p(), &mut written);
            for (at, (w, a)) in written.iter().zip(&added).enumerate() {
                // SAFETY: initialized above (NaN), then written.
                let w = unsafe { w.assume_init() };
                assert!(
                    w.to_bits() == a.to_bits() || (w == 0.0 && *a == 0.0),
                    "{channels}x{oh}x{ow} k{k}: pixel {at} is {w}, col2im gives {a}"
                );
            }
        }
    }

    #[test]
    fn only_stride_2_planes_twice_the_output_are_written() {
        let g = ConvGeometry {
            channels: 1,
            h: 15,
            w: 14,
            kh: 3,
            kw: 3,
            stride: (2, 2),
            dilation: (1, 1),
            top: 1,
            left: 1,
            oh: 8,
            ow: 7,
        };
        assert!(!g.col2im_writes());
        assert!(!ConvGeometry { stride: (1, 1), ..g }.col2im_writes());
        assert!(!ConvGeometry { top: 0, ..g }.col2im_writes());
    }
}
