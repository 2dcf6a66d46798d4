//! Copies of the short rows that the convolution moves around: output rows of
//! Winograd's tiles, im2col's taps, col2im's padded rows. On R3 these are 7, 14
//! or 28 floats, a million or so per training step.
//!
//! Through `copy_from_slice` each is a call to `memcpy`, which costs about 17
//! instructions in glibc plus the call for 7 floats (callgrind), dispatching on
//! the length every time. [`copy_row`] copies rows of 4 to 32 floats in fixed
//! blocks (two of 4, or two to four of 8, the last one overlapping the one before,
//! whose values it writes again, the same), which the compiler inlines as vector
//! moves. Longer rows, and shorter, keep the `memcpy`, which beats the loops the
//! compiler makes of a long copy.

use std::mem::MaybeUninit;

use crate::ops::fresh::as_slots;

/// `dst` ← `src` (the same length), for a short row (see the module doc), into
/// slots that need not be initialized.
#[inline]
pub(super) fn copy_row(dst: &mut [MaybeUninit<f32>], src: &[f32]) {
    let n = dst.len();
    assert_eq!(src.len(), n, "copy_row: rows of {n} and {} floats", src.len());
    let block = |dst: &mut [MaybeUninit<f32>], at: usize, len: usize| {
        for (d, &v) in dst[at..at + len].iter_mut().zip(&src[at..at + len]) {
            d.write(v);
        }
    };
    match n {
        4..=8 => {
            block(dst, 0, 4);
            block(dst, n - 4, 4);
        }
        9..=32 => {
            // Blocks from 0, 8 and 16 as far as they stay inside, then the last 8:
            // unrolled by hand, as a loop of them could be turned back into `memcpy`.
            block(dst, 0, 8);
            if n > 16 {
                block(dst, 8, 8);
            }
            if n > 24 {
                block(dst, 16, 8);
            }
            block(dst, n - 8, 8);
        }
        // `write_copy_of_slice`, which is newer than our MSRV: the same `memcpy`.
        _ => dst.iter_mut().zip(src).for_each(|(d, &v)| _ = d.write(v)),
    }
}

/// [`copy_row`] into initialized floats: `dst.copy_from_slice(src)`.
#[inline]
pub(super) fn copy_row_into(dst: &mut [f32], src: &[f32]) {
    // SAFETY: `copy_row` writes only values (copies of `src`).
    copy_row(unsafe { as_slots(dst) }, src);
}

/// `row.fill(0.0)` for the short runs of padding the transforms and im2col zero
/// (0 to 15 floats, thousands a call): as `fill`, each was a `memset` call (1.3% of
/// an R3 training step at two threads, perf), here a few fixed stores, the last
/// overlapping the one before.
#[inline]
pub(super) fn fill_zeros(row: &mut [f32]) {
    let n = row.len();
    match n {
        0 => {}
        1..=3 => (row[0], row[n / 2], row[n - 1]) = (0.0, 0.0, 0.0),
        4..=8 => {
            row[..4].fill(0.0);
            row[n - 4..].fill(0.0);
        }
        9..=16 => {
            row[..8].fill(0.0);
            row[n - 8..].fill(0.0);
        }
        _ => row.fill(0.0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_fills_of_every_length_write_the_row_and_nothing_past_it() {
        for n in 0..=40 {
            let mut row = vec![f32::NAN; n + 1];
            fill_zeros(&mut row[..n]);
            assert!(row[..n].iter().all(|&v| v == 0.0), "a row of {n}");
            assert!(row[n].is_nan(), "a row of {n} wrote past its end");
        }
    }

    #[test]
    fn rows_of_every_length_are_copied_and_nothing_past_them() {
        for n in 0..=40 {
            let src: Vec<f32> = (0..n).map(|v| v as f32 + 0.5).collect();
            let mut dst = vec![f32::NAN; n + 1];
            copy_row_into(&mut dst[..n], &src);
            assert_eq!(dst[..n], src[..], "a row of {n}");
            assert!(dst[n].is_nan(), "a row of {n} wrote past its end");
        }
    }
}
