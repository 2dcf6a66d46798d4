//! What an inference convolution does to each output value on its way out: add
//! the channel's bias, then a residual block's shortcut, then ReLU.
//!
//! Two paths apply it. Winograd's forward writes each output row through
//! [`OutputEpilogue::write_row`] straight into the op's output, so the finished
//! values are written once; the other algorithms leave each image's planes in
//! their product buffer, and [`OutputEpilogue::write_plane`] finishes them from
//! there (im2col, and Winograd's channel form). Winograd's rows used to go into
//! the product buffer and the epilogue over it after: 12.8% of R3's inference
//! samples for the two passes, 12.1% now (perf). Most of what the second pass
//! cost moved into the first: its rows now go to the output in memory, where
//! before they went to the buffer in cache.
//!
//! Both compute `relu((v + b) + s)` in that order, so both give the same bits.

use std::mem::MaybeUninit;

use crate::ops::activation::relu as relu_of;
use crate::ops::fresh::Slots;

/// The bias, shortcut and ReLU of an inference convolution's output.
#[derive(Clone, Copy, Debug)]
pub(crate) struct OutputEpilogue<'a> {
    /// One per output channel.
    pub bias: &'a [f32],
    /// Added after the bias: laid out as the output (`[N, O, H, W]`, from the
    /// first image this epilogue is handed), or none.
    pub skip: Option<&'a [f32]>,
    /// ReLU last.
    pub relu: bool,
}

impl<'a> OutputEpilogue<'a> {
    /// The same epilogue for the images from `first` on, of `image_len` outputs each.
    pub fn for_images_from(&self, first: usize, image_len: usize) -> OutputEpilogue<'a> {
        OutputEpilogue {
            skip: self.skip.map(|skip| &skip[first * image_len..]),
            ..*self
        }
    }

    /// Writes to `dst` the finished values of `src`, a row of output channel
    /// `oc`'s products that starts at `at` in the output (and so in the
    /// shortcut). Rows of 4 or more go in
    /// fixed blocks of 8 or 4, the last one overlapping the one before: a plane's
    /// rows are 7 to 28 floats in R3, too short for a loop's vector body to pay.
    #[inline(always)]
    pub fn write_row(&self, dst: &mut [MaybeUninit<f32>], src: &[f32], oc: usize, at: usize) {
        let b = self.bias[oc];
        match (self.skip, self.relu) {
            (Some(skip), true) => map_row(dst, src, &skip[at..], move |v, s| relu_of((v + b) + s)),
            (Some(skip), false) => map_row(dst, src, &skip[at..], move |v, s| (v + b) + s),
            (None, true) => map_row(dst, src, src, move |v, _| relu_of(v + b)),
            (None, false) => map_row(dst, src, src, move |v, _| v + b),
        }
    }

    /// Appends to `out` output channel `oc`'s finished plane of image `image` (the
    /// image's position in the shortcut), from its products `plane`: with AVX2
    /// when the CPU has it, 8 floats at a time instead of SSE2's 4, the same
    /// operations in the same order.
    pub fn write_plane(&self, plane: &[f32], oc: usize, image: usize, out: &mut Slots) {
        let (b, relu, p) = (self.bias[oc], self.relu, plane.len());
        let skip = self.skip.map(|skip| {
            let at = (image * self.bias.len() + oc) * p;
            &skip[at..at + p]
        });
        #[cfg(target_arch = "x86_64")]
        if crate::ops::cpu::avx2() {
            // SAFETY: the CPU has AVX2.
            unsafe { write_plane_avx2(plane, b, skip, relu, out) };
            return;
        }
        write_plane(plane, b, skip, relu, out);
    }
}

/// `dst[j] = f(src[j], other[j])` for every `j` of `dst`, in blocks (see
/// [`OutputEpilogue::write_row`]). `f` must give the same value when a block
/// overlapping the one before writes an element again.
#[inline(always)]
fn map_row(dst: &mut [MaybeUninit<f32>], src: &[f32], other: &[f32], f: impl Fn(f32, f32) -> f32) {
    let n = dst.len();
    let (src, other) = (&src[..n], &other[..n]);
    match n {
        0..=3 => {
            for ((d, &v), &s) in dst.iter_mut().zip(src).zip(other) {
                d.write(f(v, s));
            }
        }
        4..=7 => {
            map_block::<4>(dst, src, other, 0, &f);
            map_block::<4>(dst, src, other, n - 4, &f);
        }
        _ => {
            for at in (0..n - 8).step_by(8) {
                map_block::<8>(dst, src, other, at, &f);
            }
            map_block::<8>(dst, src, other, n - 8, &f);
        }
    }
}

/// `N` elements of [`map_row`] from `at`, as arrays: with a length known at
/// compile time they become one vector operation each. Both inputs are read into
/// registers before anything is written: the shortcut comes from a struct, so the
/// compiler could not rule out that `dst` overlaps it, and element-by-element
/// reads and writes stayed scalar (measured).
#[inline(always)]
fn map_block<const N: usize>(
    dst: &mut [MaybeUninit<f32>],
    src: &[f32],
    other: &[f32],
    at: usize,
    f: &impl Fn(f32, f32) -> f32,
) {
    let src: [f32; N] = src[at..at + N].try_into().expect("N elements");
    let other: [f32; N] = other[at..at + N].try_into().expect("N elements");
    let values: [f32; N] = std::array::from_fn(|i| f(src[i], other[i]));
    for (d, v) in dst[at..at + N].iter_mut().zip(values) {
        d.write(v);
    }
}

/// One plane's epilogue, one loop per case, each without a branch inside. The
/// same four cases as [`OutputEpilogue::write_row`], kept apart: a plane written
/// through `write_row` as one long row (blocks of 8, or a plain loop past 32) made
/// R2's step 1.5–2% slower or R3's inference 3% slower (`bench`, 4 alternated
/// pairs each, session 17).
#[inline(always)]
fn write_plane(plane: &[f32], b: f32, skip: Option<&[f32]>, relu: bool, out: &mut Slots) {
    match skip {
        Some(skip) if relu => out.extend(plane.iter().zip(skip).map(move |(&v, &s)| relu_of((v + b) + s))),
        Some(skip) => out.extend(plane.iter().zip(skip).map(move |(&v, &s)| (v + b) + s)),
        None if relu => out.extend(plane.iter().map(move |&v| relu_of(v + b))),
        None => out.extend(plane.iter().map(move |&v| v + b)),
    }
}

/// [`write_plane`] compiled for AVX2. At batch 1 this pass was 3% of R3's forward
/// instructions (callgrind).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn write_plane_avx2(plane: &[f32], b: f32, skip: Option<&[f32]>, relu: bool, out: &mut Slots) {
    write_plane(plane, b, skip, relu, out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `relu((v + b) + s)` by the definition, for channel `oc` at output `at`.
    fn want(e: &OutputEpilogue, v: f32, oc: usize, at: usize) -> f32 {
        let y = e.skip.map_or(v + e.bias[oc], |s| (v + e.bias[oc]) + s[at]);
        if e.relu {
            y.max(0.0)
        } else {
            y
        }
    }

    #[test]
    fn rows_of_every_length_get_every_case_of_the_epilogue() {
        let src: Vec<f32> = (0..40).map(|i| ((i * 7 % 11) as f32 - 5.0) / 3.0).collect();
        let skip: Vec<f32> = (0..80).map(|i| ((i * 5 % 13) as f32 - 6.0) / 4.0).collect();
        let bias = [0.5, -1.25];
        for n in 0..=33 {
            for (with_skip, relu) in [(false, false), (false, true), (true, false), (true, true)] {
                let e = OutputEpilogue {
                    bias: &bias,
                    skip: with_skip.then_some(&skip[..]),
                    relu,
                };
                let mut dst = vec![MaybeUninit::new(f32::NAN); n];
                e.write_row(&mut dst, &src[..n], 1, 3);
                for (j, d) in dst.iter().enumerate() {
                    // SAFETY: initialized above, and overwritten or not.
                    let got = unsafe { d.assume_init() };
                    assert_eq!(
                        got,
                        want(&e, src[j], 1, 3 + j),
                        "n {n}, skip {with_skip}, relu {relu}, j {j}"
                    );
                }
            }
        }
    }

    #[test]
    fn planes_take_the_shortcut_of_their_image_and_channel() {
        let (o, p) = (3, 10);
        let plane: Vec<f32> = (0..p).map(|i| i as f32 - 4.5).collect();
        let skip: Vec<f32> = (0..2 * o * p).map(|i| (i % 7) as f32 - 3.0).collect();
        let bias = [0.0, 1.0, -2.0];
        let e = OutputEpilogue {
            bias: &bias,
            skip: Some(&skip),
            relu: true,
        };
        let values = crate::ops::fresh::fresh(p, p, false, |_, out| e.write_plane(&plane, 2, 1, out));
        let at = (o + 2) * p;
        for (j, &got) in values.iter().enumerate() {
            assert_eq!(got, want(&e, plane[j], 2, at + j), "j {j}");
        }
        // From image 1 on, the same plane is image 0's.
        let later = e.for_images_from(1, o * p);
        let values = crate::ops::fresh::fresh(p, p, false, |_, out| later.write_plane(&plane, 2, 0, out));
        for (j, &got) in values.iter().enumerate() {
            assert_eq!(got, want(&e, plane[j], 2, at + j), "from image 1, j {j}");
        }
    }
}
