//! im2col of a dense kernel (dilation 1) through a padded plane: each input channel
//! is copied once into a plane with its padding written out as zeros, and every
//! tap is then gathered from there with no bounds or padding to check per pixel.
//!
//! Why: the planes where im2col runs at all are small (Winograd takes the rest):
//! R3's 7×7 and its stride-2 layers, rows of 7 to 14 output pixels. Gathering
//! straight from the input, each row had to find where the padding ends, check the
//! edge pixels one by one and index the interior with bounds checks: about 13
//! instructions per column entry, 19% of R3's batch-1 forward pass (callgrind).
//! Copying the plane costs one more pass over the input (`H·W` against the column
//! matrix's `kh·kw·OH·OW` entries per channel), and leaves loops the compiler can
//! run without checks: a copy per tap and output row with stride 1 (see
//! [`copy_row`](super::copy_row)), and fixed pairs with stride 2.
//!
//! The values are the input's, moved, so the column matrix is the same, bit for bit,
//! as the tap-by-tap loop of [`im2col`](super::im2col) writes.

use super::copy_row::copy_row_into;
use super::im2col::ConvGeometry;

/// One input channel with its padding: the `(OH − 1)·stride + kh` rows and
/// `(OW − 1)·stride + kw` columns (rounded up to even with stride 2, see
/// [`ConvGeometry::im2col_padded`]) that the output pixels read, row `r`, column `q`
/// holding input pixel `(r − top, q − left)` or 0.
struct PaddedPlane {
    values: Vec<f32>,
    width: usize,
    /// The input rows and columns that land inside the plane (a window that skips
    /// the last ones leaves them out).
    rows: usize,
    columns: usize,
}

impl PaddedPlane {
    fn new(g: &ConvGeometry) -> PaddedPlane {
        let height = (g.oh - 1) * g.stride.0 + g.kh;
        let mut width = (g.ow - 1) * g.stride.1 + g.kw;
        if g.stride.1 == 2 {
            width += width % 2;
        }
        PaddedPlane {
            values: vec![0.0; height * width],
            width,
            rows: g.h.min(height.saturating_sub(g.top)),
            columns: g.w.min(width.saturating_sub(g.left)),
        }
    }

    /// Writes input channel `plane` (`[H, W]`) inside the zeros, which stay as the
    /// first call left them: only the inside is ever written.
    fn fill(&mut self, g: &ConvGeometry, plane: &[f32]) {
        let columns = self.columns;
        if columns == 0 {
            return;
        }
        for r in 0..self.rows {
            let at = (r + g.top) * self.width + g.left;
            copy_row_into(
                &mut self.values[at..at + columns],
                &plane[r * g.w..r * g.w + columns],
            );
        }
    }

    fn row(&self, r: usize) -> &[f32] {
        &self.values[r * self.width..(r + 1) * self.width]
    }
}

impl ConvGeometry {
    /// [`im2col`](Self::im2col) for a dense kernel (dilation 1) of any size, stride
    /// and padding, through a [`PaddedPlane`] per channel (see the module doc).
    pub(super) fn im2col_padded(&self, x: &[f32], col: &mut [f32], ld: usize, offset: usize) {
        debug_assert_eq!(self.dilation, (1, 1));
        let (ow, (sh, sw), p) = (self.ow, self.stride, self.p());
        if p == 0 {
            return;
        }
        let mut padded = PaddedPlane::new(self);
        for c in 0..self.channels {
            padded.fill(self, &x[c * self.h * self.w..(c + 1) * self.h * self.w]);
            for i in 0..self.kh {
                let first_tap = (c * self.kh + i) * self.kw;
                let taps = &mut col[first_tap * ld + offset..];
                for oy in 0..self.oh {
                    let row = padded.row(oy * sh + i);
                    let span = oy * ow..(oy + 1) * ow;
                    if self.kw == 3 && sw == 2 {
                        let (t0, rest) = taps.split_at_mut(ld);
                        let (t1, t2) = rest.split_at_mut(ld);
                        let (d0, d1, d2) = (&mut t0[span.clone()], &mut t1[span.clone()], &mut t2[span]);
                        three_taps_stride_2(row, d0, d1, d2);
                        continue;
                    }
                    for j in 0..self.kw {
                        let dst = &mut taps[j * ld..][span.clone()];
                        if sw == 1 {
                            copy_row_into(dst, &row[j..j + ow]);
                            continue;
                        }
                        let src = row[j..].iter().step_by(sw);
                        dst.iter_mut().zip(src).for_each(|(d, &v)| *d = v);
                    }
                }
            }
        }
    }
}

/// One output row of a 3-wide kernel at stride 2: output `x` reads columns `2x`,
/// `2x + 1` and `2x + 2` of the padded `row` (whose even width, `2·ow + 2`, makes
/// room for the last one) into `d0`, `d1` and `d2`.
///
/// Four outputs at a time: four loads of four floats and three shuffles of their
/// even and odd lanes, where the loop of pairs before moved one float at a time
/// (three loads and three stores an output, 28% of im2col's samples in R3's
/// inference, perf). A short row's last block overlaps the one before, writing
/// the same values again.
#[inline(always)]
fn three_taps_stride_2(row: &[f32], d0: &mut [f32], d1: &mut [f32], d2: &mut [f32]) {
    let n = d0.len();
    assert!(
        row.len() >= 2 * n + 2 && d1.len() == n && d2.len() == n,
        "im2col: a stride-2 row of {n} outputs from {} columns",
        row.len()
    );
    #[cfg(target_arch = "x86_64")]
    if n >= 4 {
        use std::arch::x86_64::{_mm_loadu_ps, _mm_shuffle_ps, _mm_storeu_ps};
        const EVEN: i32 = 0b10_00_10_00;
        const ODD: i32 = 0b11_01_11_01;
        let mut block = |x: usize| {
            let (src, d0, d1, d2) = (
                &row[2 * x..2 * x + 10],
                &mut d0[x..x + 4],
                &mut d1[x..x + 4],
                &mut d2[x..x + 4],
            );
            // SAFETY: SSE is part of x86_64; the loads read floats 0..8 and 2..10 of
            // `src`'s 10, the stores write the 4 of each destination.
            unsafe {
                let (a, b) = (_mm_loadu_ps(src.as_ptr()), _mm_loadu_ps(src.as_ptr().add(4)));
                let (c, d) = (
                    _mm_loadu_ps(src.as_ptr().add(2)),
                    _mm_loadu_ps(src.as_ptr().add(6)),
                );
                _mm_storeu_ps(d0.as_mut_ptr(), _mm_shuffle_ps::<EVEN>(a, b));
                _mm_storeu_ps(d1.as_mut_ptr(), _mm_shuffle_ps::<ODD>(a, b));
                _mm_storeu_ps(d2.as_mut_ptr(), _mm_shuffle_ps::<EVEN>(c, d));
            }
        };
        for x in (0..n - 4).step_by(4) {
            block(x);
        }
        block(n - 4);
        return;
    }
    for x in 0..n {
        (d0[x], d1[x], d2[x]) = (row[2 * x], row[2 * x + 1], row[2 * x + 2]);
    }
}
