//! The transforms of Winograd's F(4×4, 3×3): each tile is a 4×4 block of outputs computed from
//! a 6×6 patch, with 36 products per tile where F(2×2, 3×3) needs 64 for the same
//! 16 outputs (2.25 multiplications per output instead of 4, against 9 for the
//! direct form). The matrices are Lavin & Gray's, from the interpolation points
//! 0, ±1, ±2 and ∞:
//!
//! ```text
//! Bᵀ = [4  0 −5  0  1  0]    G = [ 1/4     0     0]    Aᵀ = [1  1  1  1  1  0]
//!      [0 −4 −4  1  1  0]        [−1/6  −1/6  −1/6]         [0  1 −1  2 −2  0]
//!      [0  4 −4 −1  1  0]        [−1/6   1/6  −1/6]         [0  1  1  4  4  0]
//!      [0 −2 −1  2  1  0]        [1/24  1/12   1/6]         [0  1 −1  8 −8  1]
//!      [0  2 −1 −2  1  0]        [1/24 −1/12   1/6]
//!      [0  4  0 −5  0  1]        [   0     0     1]
//! ```
//!
//! The larger coefficients cost some rounding: the results differ from the direct
//! form by a few units in the 6th significant digit on unit-scale data (the conv
//! tests hold them to 1e-4 of the largest output).
//!
//! The weight gradient's transforms are the transposes: `Ĝ = A·dY·Aᵀ` of the output
//! gradient and `Gᵀ·Û·G` on the way back.

use std::ops::{Div, Mul, Neg};

use super::super::copy_row::fill_zeros;
use super::lanes::{Lanes, Number, LANES};
#[cfg(target_arch = "x86_64")]
use super::phases::avx2;
use super::phases::phases4;
use super::{PlaneLayout, Winograd};

impl Winograd {
    /// Zeroes what the column passes of [`input_transform`](Self::input_transform)
    /// (with `(x_lo, cols)` from [`input_columns`](Self::input_columns)) or
    /// [`grad_transform`](Self::grad_transform) (with
    /// [`grad_columns`](Self::grad_columns)) do not write in `columns` for `images`
    /// images: the padding columns outside `x_lo .. x_lo + cols` of each image's
    /// part of every row of tiles and past the last image, and the two floats after
    /// each plane that the last tile reads; and
    /// `zero_row`, the padding rows the column passes read. The transforms write the
    /// rest, so this runs once before a loop over channels instead of once per row:
    /// as small fills in the transforms, they were a `memset` call each (5% of R2's
    /// conv backward, profiled).
    pub(super) fn prepare_columns(
        &self,
        columns: &mut [f32],
        zero_row: &mut [f32],
        images: usize,
        (x_lo, cols): (usize, usize),
    ) {
        zero_row[..cols].fill(0.0);
        let (period, width) = (self.period(), self.row_width(images));
        let total = self.tiles_y * width;
        for plane in columns[..6 * (total + 2)].chunks_exact_mut(total + 2) {
            for row in plane[..total].chunks_exact_mut(width) {
                let (images_part, tail) = row.split_at_mut(images * period);
                for image in images_part.chunks_exact_mut(period) {
                    fill_zeros(&mut image[..x_lo]);
                    fill_zeros(&mut image[x_lo + cols..]);
                }
                fill_zeros(tail);
            }
            fill_zeros(&mut plane[total..]);
        }
    }

    /// The columns of a padded input row that hold pixels: `(first, count)`.
    /// (An image's period holds them: see [`period`](Self::period).)
    pub(super) fn input_columns(&self) -> (usize, usize) {
        (self.left, self.w)
    }

    /// The columns of a padded output-gradient row that hold pixels.
    pub(super) fn grad_columns(&self) -> (usize, usize) {
        (0, self.ow)
    }

    /// `V = Bᵀ·d·B` of every 6×6 patch of channel `channel` of `images` images
    /// (planes of `input` laid out as `layout`): with `(v, first, stride)` as
    /// `target`, `V_ξ` of slot `s` (counting on from one image to the next) goes to
    /// `v[ξ · stride + first + s]`.
    ///
    /// Why slots: each row of tiles is read as a zero-padded row of width
    /// `W` ([`row_width`](Self::row_width)), the images of the group side by side
    /// in it ([`period`](Self::period) columns each), so that tile `x` of row `ty`
    /// starts at padded column `4·x`, and slot `s = ty·W/4 + x` at flat position
    /// `4·s` of a column-transformed plane (slots past an image's outputs are
    /// computed and never read). The rows of tiles lie end to end, so each pass is
    /// one long loop over the whole group, which the compiler vectorizes; per-tile
    /// loops over a row of 6 or 12 tiles were mostly loop overhead, and a loop per
    /// plane was slower than one per group of images (measured).
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    pub(super) fn input_transform(
        &self,
        input: &[f32],
        layout: PlaneLayout,
        channel: usize,
        images: usize,
        (v, first, stride): (&mut [f32], usize, usize),
        zero_row: &[f32],
        columns: &mut [f32],
    ) {
        let total = self.tiles_y * self.row_width(images);
        let slots = self.slots(images);
        let (mut c, phases) = column_planes(columns, total);
        // Column transform Bᵀ·d of each tile row's six padded rows.
        let source = (input, layout, channel);
        self.column_pass(
            source,
            (self.h, self.w, self.top, self.in_row),
            self.input_columns(),
            images,
            zero_row,
            &mut c,
            Bt,
        );
        // Row transform ·B along each plane, slot by slot (a step of 4 columns).
        // Slot `s` reads columns 4s .. 4s + 6: each plane is first split into its
        // four phases (`e_k[s]` = column 4s + k), so that the transform reads six
        // contiguous rows (`e_0..e_3` at `s`, `e_0, e_1` at `s + 1`) and is
        // vectorized; reading the six columns directly it ran one slot at a time.
        // With AVX2 the phases stay in registers (`avx2::row_pass`).
        for (i, ci) in c.iter().enumerate() {
            let mut rows = rows_mut(&mut v[6 * i * stride + first..], stride, slots);
            #[cfg(target_arch = "x86_64")]
            if slots >= 8 && crate::ops::cpu::avx2() {
                // SAFETY: the CPU has AVX2.
                unsafe { avx2::row_pass(&ci[..4 * slots + 2], slots, &mut rows, Bt) };
                continue;
            }
            let (e0, rest) = phases.split_at_mut(slots + 1);
            let (e1, rest) = rest.split_at_mut(slots + 1);
            let (e2, rest) = rest.split_at_mut(slots + 1);
            let e3 = &mut rest[..slots + 1];
            phases4(&ci[..4 * slots], e0, e1, e2, e3);
            (e0[slots], e1[slots]) = (ci[4 * slots], ci[4 * slots + 1]);
            let [v0, v1, v2, v3, v4, v5] = rows;
            let d = [
                &e0[..slots],
                &e1[..slots],
                &e2[..slots],
                &e3[..slots],
                &e0[1..],
                &e1[1..],
            ];
            map_to_6(d, v0, v1, v2, v3, v4, v5, Bt);
        }
    }

    /// `Y = Aᵀ·M·A` of every slot's 36 products `M_ξ` (at `m[ξ · stride + first +
    /// s]`) of one output channel of `images` images, into `out_rows`: the four
    /// output rows of each tile row, interleaved, of every image (`16 · slots`
    /// floats), through `columns`, the 24 rows of the first pass.
    /// [`copy_output`](Self::copy_output) takes an image's plane from there.
    ///
    /// Two passes, each a loop over the slots the compiler vectorizes: a single pass
    /// reading all 36 products of a slot at once was not vectorized (measured).
    /// With AVX2, one pass written with vector types instead (`avx2::output_pass`).
    #[inline(always)]
    pub(super) fn output_transform(
        &self,
        m: &[f32],
        images: usize,
        first: usize,
        stride: usize,
        out_rows: &mut [f32],
        columns: &mut [f32],
    ) {
        let slots = self.slots(images);
        let out_rows = &mut out_rows[..16 * slots];
        #[cfg(target_arch = "x86_64")]
        if slots >= 8 && crate::ops::cpu::avx2() {
            // SAFETY: the CPU has AVX2.
            unsafe { avx2::output_pass(m, (first, stride), slots, out_rows) };
            return;
        }
        // Aᵀ·M down each column j: six products in, four rows out.
        for j in 0..6 {
            let ms: [&[f32]; 6] = std::array::from_fn(|i| &m[(i * 6 + j) * stride + first..][..slots]);
            let [t0, t1, t2, t3] = rows_mut(&mut columns[4 * j * slots..], slots, slots);
            map6x4(ms, t0, t1, t2, t3, at_times);
        }
        // The same along each of the four rows, four outputs per slot.
        for (r, row) in out_rows.chunks_exact_mut(4 * slots).enumerate() {
            let t: [&[f32]; 6] = std::array::from_fn(|j| &columns[(4 * j + r) * slots..][..slots]);
            map6_interleaved(t, row, at_times);
        }
    }
}

impl Winograd {
    /// `Ĝ = A·dY·Aᵀ` (6×6) of every 4×4 tile of output channel `channel` of `images`
    /// output-gradient planes (`grad`, laid out as `layout`), zero beyond the
    /// planes' edges and in the spare slots: with `(m, first, stride)` as `target`,
    /// `Ĝ_ξ` of slot `s` goes to `m[ξ · stride + first + s]`, as
    /// [`input_transform`](Self::input_transform) writes `V`.
    ///
    /// As there, a column pass over whole rows of every image, then a row pass over
    /// the four column phases of all their slots: both loops are long and
    /// vectorized, where a row pass over each row's quadruples and a column pass
    /// per tile row (7 slots on R2) ran one element at a time (profiled).
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    pub(super) fn grad_transform(
        &self,
        grad: &[f32],
        layout: PlaneLayout,
        channel: usize,
        images: usize,
        (m, first, stride): (&mut [f32], usize, usize),
        zero_row: &[f32],
        columns: &mut [f32],
    ) {
        let slots = self.slots(images);
        let (mut c, phases) = column_planes(columns, self.tiles_y * self.row_width(images));
        // Column transform A·dY of each tile row's four rows.
        let source = (grad, layout, channel);
        self.column_pass(
            source,
            (self.oh, self.ow, 0, self.out_row),
            self.grad_columns(),
            images,
            zero_row,
            &mut c,
            A,
        );
        // Row transform ·Aᵀ along each plane, slot by slot, from its four phases.
        for (i, ci) in c.iter().enumerate() {
            let mut rows = rows_mut(&mut m[6 * i * stride + first..], stride, slots);
            #[cfg(target_arch = "x86_64")]
            if slots >= 8 && crate::ops::cpu::avx2() {
                // SAFETY: the CPU has AVX2.
                unsafe { avx2::row_pass(&ci[..4 * slots], slots, &mut rows, A) };
                continue;
            }
            let (e0, rest) = phases.split_at_mut(slots);
            let (e1, rest) = rest.split_at_mut(slots);
            let (e2, rest) = rest.split_at_mut(slots);
            let e3 = &mut rest[..slots];
            phases4(&ci[..4 * slots], e0, e1, e2, e3);
            let [m0, m1, m2, m3, m4, m5] = rows;
            map_to_6([&*e0, &*e1, &*e2, &*e3], m0, m1, m2, m3, m4, m5, A);
        }
    }

    /// The column pass of the input and output-gradient transforms: `f` of the `N`
    /// rows under each tile row of every image's plane `channel` of `source` (planes
    /// of `h × w`, rows `stride` apart, with `top` rows of padding above, zeros
    /// beyond), into the column planes `c`, at the columns `(x_lo, cols)` of the
    /// padded row that hold pixels (the others were zeroed by
    /// [`prepare_columns`](Self::prepare_columns)).
    ///
    /// The padded plane is read in place: copying each row into a padded plane first
    /// cost a `memcpy` call per row, 5% of R2's conv forward and backward (profiled).
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    fn column_pass<const N: usize>(
        &self,
        (source, layout, channel): (&[f32], PlaneLayout, usize),
        (h, w, top, stride): (usize, usize, usize, usize),
        (x_lo, cols): (usize, usize),
        images: usize,
        zero_row: &[f32],
        c: &mut [&mut [f32]; 6],
        f: impl ToSix<N>,
    ) {
        let (period, width) = (self.period(), self.row_width(images));
        let zeros = &zero_row[..cols];
        let plane_len = if h == 0 { 0 } else { (h - 1) * stride + w };
        for image in 0..images {
            let at = image * layout.image_stride + channel * layout.channel_stride;
            let plane = &source[at..at + plane_len];
            let row = |pr: usize| match pr.checked_sub(top) {
                Some(r) if r < h => &plane[r * stride..r * stride + cols],
                _ => zeros,
            };
            for ty in 0..self.tiles_y {
                // A loop, not `array::from_fn`, which was left as a call per row
                // of tiles in some builds (callgrind: 154 instructions a call).
                let mut d: [&[f32]; N] = [zeros; N];
                for (a, d) in d.iter_mut().enumerate() {
                    *d = row(4 * ty + a);
                }
                let start = ty * width + image * period + x_lo;
                let span = start..start + cols;
                let [c0, c1, c2, c3, c4, c5] = c;
                let (c0, c1, c2) = (
                    &mut c0[span.clone()],
                    &mut c1[span.clone()],
                    &mut c2[span.clone()],
                );
                let (c3, c4, c5) = (&mut c3[span.clone()], &mut c4[span.clone()], &mut c5[span]);
                map_to_6(d, c0, c1, c2, c3, c4, c5, f);
            }
        }
    }

    /// `Gᵀ·Û·G` (6×6 → 3×3) for every kernel: the `[O, C, 3, 3]` weight gradient
    /// from its sum in the transformed domain, `uw` `[36][O][C]`, as
    /// [`weight_gradient`](Self::weight_gradient) accumulated it.
    pub(in crate::ops) fn weight_from_transformed(&self, uw: &[f32]) -> Vec<f32> {
        let (o, c) = (self.out_channels, self.channels);
        let mut dw = vec![0.0f32; o * c * 9];
        let mut gu = vec![0.0f32; 6 * 3 * c];
        for oc in 0..o {
            self.transform_back(uw, oc, &mut gu, &mut dw[oc * c * 9..(oc + 1) * c * 9]);
        }
        dw
    }

    /// Output channel `oc`'s kernels of [`weight_from_transformed`](Self::weight_from_transformed)
    /// into `dw` (`[C, 3, 3]`), through `gu` (`[6][3][C]`, `Gᵀ·Û` column by column),
    /// eight input channels at a time as [`Lanes`]: one kernel at a time, its 36
    /// divisions (by 6 and 24) were a float each, 1.2% of an R3 training step
    /// (perf). The same operations on each kernel, so the same bits.
    #[inline(always)]
    pub(super) fn kernel_gradient_block(&self, uw: &[f32], oc: usize, gu: &mut [f32], dw: &mut [f32]) {
        let (o, c) = (self.out_channels, self.channels);
        let u = |i: usize, j: usize| &uw[((i * 6 + j) * o + oc) * c..][..c];
        let whole = c - c % LANES;
        // Gᵀ·Û column by column: gu[j][r] = (Gᵀ·Û[·, j])[r].
        for j in 0..6 {
            let column: [&[f32]; 6] = std::array::from_fn(|i| u(i, j));
            for at in (0..whole).step_by(LANES) {
                let x: [Lanes; 6] = std::array::from_fn(|i| Lanes::load(&column[i][at..]));
                for (r, v) in gt_times(x).into_iter().enumerate() {
                    v.store(&mut gu[(j * 3 + r) * c + at..]);
                }
            }
            for ic in whole..c {
                let x: [f32; 6] = std::array::from_fn(|i| column[i][ic]);
                for (r, v) in gt_times(x).into_iter().enumerate() {
                    gu[(j * 3 + r) * c + ic] = v;
                }
            }
        }
        // (Gᵀ·Û)·G row by row: kernel row i from gu[·][i].
        for i in 0..3 {
            let row: [&[f32]; 6] = std::array::from_fn(|j| &gu[(j * 3 + i) * c..][..c]);
            for at in (0..whole).step_by(LANES) {
                let x: [Lanes; 6] = std::array::from_fn(|j| Lanes::load(&row[j][at..]));
                let taps = gt_times(x);
                for lane in 0..LANES {
                    let kernel = &mut dw[(at + lane) * 9 + i * 3..][..3];
                    for (k, v) in kernel.iter_mut().zip(&taps) {
                        *k = v.0[lane];
                    }
                }
            }
            for ic in whole..c {
                let x: [f32; 6] = std::array::from_fn(|j| row[j][ic]);
                dw[ic * 9 + i * 3..][..3].copy_from_slice(&gt_times(x));
            }
        }
    }
}

/// `A·[a, b, c, d]ᵀ` (`A = (Aᵀ)ᵀ`, 6×4) for the output-gradient transform.
#[inline(always)]
fn a_times<T: Number>(q: [T; 4]) -> [T; 6]
where
    f32: Mul<T, Output = T>,
{
    let (even, odd) = (q[0] + q[2], q[1] + q[3]);
    let (even4, odd2) = (q[0] + 4.0 * q[2], 2.0 * q[1] + 8.0 * q[3]);
    [q[0], even + odd, even - odd, even4 + odd2, even4 - odd2, q[3]]
}

/// `Gᵀ·x` (3×6) for the weight gradient's way back from the transformed domain
/// (floats, or [`Lanes`] of eight kernels).
#[inline(always)]
fn gt_times<T: Number + Div<f32, Output = T> + Neg<Output = T>>(x: [T; 6]) -> [T; 3]
where
    f32: Mul<T, Output = T>,
{
    let (s12, d12) = (x[1] + x[2], x[1] - x[2]);
    let (s34, d34) = (x[3] + x[4], x[3] - x[4]);
    [
        0.25 * x[0] - s12 / 6.0 + s34 / 24.0,
        -d12 / 6.0 + d34 / 12.0,
        (s34 - s12) / 6.0 + x[5],
    ]
}

// The loops of the transforms, each over whole rows, with every output row its own
// argument: the compiler then knows they do not overlap and vectorizes without
// run-time overlap checks between every pair of rows (15% of the input transform,
// profiled). Each row is as long as the shortest one given.

/// A transform of `N` values into six ([`bt_times`], [`a_times`]), on floats or
/// on [`Lanes`]: what [`map_to_6`] applies.
pub(super) trait ToSix<const N: usize>: Copy {
    fn apply<T: Number>(self, d: [T; N]) -> [T; 6]
    where
        f32: Mul<T, Output = T>;
}

/// `Bᵀ·d`: [`bt_times`].
#[derive(Clone, Copy)]
pub(super) struct Bt;

impl ToSix<6> for Bt {
    #[inline(always)]
    fn apply<T: Number>(self, d: [T; 6]) -> [T; 6]
    where
        f32: Mul<T, Output = T>,
    {
        bt_times(d)
    }
}

/// `A·q`: [`a_times`].
#[derive(Clone, Copy)]
pub(super) struct A;

impl ToSix<4> for A {
    #[inline(always)]
    fn apply<T: Number>(self, q: [T; 4]) -> [T; 6]
    where
        f32: Mul<T, Output = T>,
    {
        a_times(q)
    }
}

/// `r_j[x] = f(d_0[x], …, d_{N−1}[x])_j` for six output rows.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn map_to_6<const N: usize>(
    d: [&[f32]; N],
    r0: &mut [f32],
    r1: &mut [f32],
    r2: &mut [f32],
    r3: &mut [f32],
    r4: &mut [f32],
    r5: &mut [f32],
    f: impl ToSix<N>,
) {
    let n = r0.len();
    let mut r = [r0, r1, r2, r3, r4, r5];
    // Whole vectors as [`Lanes`]; the rest as one more vector that overlaps the
    // last one (its first columns are computed again, to the same values), because
    // the column passes' rows are short (14 or 28 columns on R3) and their scalar
    // remainders took more time than the vectorized loop (perf). Rows of 4 to 7
    // (R3's 7×7 planes) take vectors of four the same way: a float at a time they
    // were a sixth of the input transform's samples (perf, 2 threads). (Written as
    // a loop over columns left for the compiler to vectorize, this was vectorized
    // or left scalar depending on how the crate was cut into codegen units: an
    // unrelated change elsewhere left it scalar, +40% instructions in the input
    // transform of an R3 step, callgrind.) The same operations on each float in
    // the same order either way, so the same bits.
    if n >= LANES {
        map_blocks::<LANES, N>(&d, &mut r, n, f);
    } else if n >= 4 {
        map_blocks::<4, N>(&d, &mut r, n, f);
    } else {
        for x in 0..n {
            let y = f.apply(column(&d, x));
            for (r, y) in r.iter_mut().zip(y) {
                r[x] = y;
            }
        }
    }
}

/// [`map_to_6`] on rows of `n ≥ L` columns, `L` at a time, the last block
/// overlapping the one before it when `L` does not divide `n`.
#[inline(always)]
fn map_blocks<const L: usize, const N: usize>(
    d: &[&[f32]; N],
    r: &mut [&mut [f32]; 6],
    n: usize,
    f: impl ToSix<N>,
) {
    let last = (!n.is_multiple_of(L)).then_some(n - L);
    for at in (0..n / L).map(|b| b * L).chain(last) {
        let mut v = [Lanes([0.0; L]); N];
        for (v, d) in v.iter_mut().zip(d) {
            *v = Lanes::load(&d[at..]);
        }
        for (r, y) in r.iter_mut().zip(f.apply(v)) {
            y.store(&mut r[at..]);
        }
    }
}

/// `[d_0[x], …, d_{N−1}[x]]`, as a plain loop (see [`map_to_6`]).
#[inline(always)]
fn column<T: AsRef<[f32]>, const N: usize>(d: &[T; N], x: usize) -> [f32; N] {
    let mut v = [0.0f32; N];
    for (v, d) in v.iter_mut().zip(d) {
        *v = d.as_ref()[x];
    }
    v
}

/// `r_j[x] = f(d_0[x], …, d_5[x])_j` for four output rows.
#[inline(always)]
fn map6x4(
    d: [&[f32]; 6],
    r0: &mut [f32],
    r1: &mut [f32],
    r2: &mut [f32],
    r3: &mut [f32],
    f: impl Fn([f32; 6]) -> [f32; 4],
) {
    let n = r0.len();
    let (r1, r2, r3) = (&mut r1[..n], &mut r2[..n], &mut r3[..n]);
    let d: [&[f32]; 6] = std::array::from_fn(|k| &d[k][..n]);
    for x in 0..n {
        let y = f([d[0][x], d[1][x], d[2][x], d[3][x], d[4][x], d[5][x]]);
        (r0[x], r1[x], r2[x], r3[x]) = (y[0], y[1], y[2], y[3]);
    }
}

/// `out[4x .. 4x + 4] = f(d_0[x], …, d_5[x])`.
#[inline(always)]
fn map6_interleaved(d: [&[f32]; 6], out: &mut [f32], f: impl Fn([f32; 6]) -> [f32; 4]) {
    let n = out.len() / 4;
    let d: [&[f32]; 6] = std::array::from_fn(|k| &d[k][..n]);
    for (x, y) in out.chunks_exact_mut(4).enumerate() {
        y.copy_from_slice(&f([d[0][x], d[1][x], d[2][x], d[3][x], d[4][x], d[5][x]]));
    }
}

/// The six column planes (`len` floats each, then the two the last tile reads)
/// at the start of `columns`, and the rest of it (for the four column phases).
fn column_planes(columns: &mut [f32], len: usize) -> ([&mut [f32]; 6], &mut [f32]) {
    let (planes, phases) = columns.split_at_mut(6 * (len + 2));
    let mut parts = planes.chunks_exact_mut(len + 2);
    (
        std::array::from_fn(|_| parts.next().expect("six column planes")),
        phases,
    )
}

/// `N` rows of `len` floats, `stride` apart, from the start of `buffer`.
fn rows_mut<const N: usize>(mut buffer: &mut [f32], stride: usize, len: usize) -> [&mut [f32]; N] {
    std::array::from_fn(|_| {
        let rest = std::mem::take(&mut buffer);
        let (row, rest) = rest.split_at_mut(stride.min(rest.len()));
        buffer = rest;
        &mut row[..len]
    })
}

/// `Bᵀ·d` for six values along a column or row of a patch: floats, or the
/// [`Lanes`](super::lanes::Lanes) of eight channels in the channel form.
#[inline(always)]
pub(super) fn bt_times<T: Number>(d: [T; 6]) -> [T; 6]
where
    f32: Mul<T, Output = T>,
{
    let (a, b) = (d[4] - d[2], 2.0 * (d[3] - d[1]));
    [
        4.0 * d[0] - 5.0 * d[2] + d[4],
        (d[3] + d[4]) - 4.0 * (d[1] + d[2]),
        (d[4] - d[3]) + 4.0 * (d[1] - d[2]),
        a + b,
        a - b,
        4.0 * d[1] - 5.0 * d[3] + d[5],
    ]
}

/// `Aᵀ·m` for six products along a column or row of a tile (floats, or
/// [`Lanes`](super::lanes::Lanes)).
#[inline(always)]
pub(super) fn at_times<T: Number>(m: [T; 6]) -> [T; 4]
where
    f32: Mul<T, Output = T>,
{
    let (a, b) = (m[1] + m[2], m[1] - m[2]);
    let (c, d) = (m[3] + m[4], m[3] - m[4]);
    [m[0] + a + c, b + 2.0 * d, a + 4.0 * c, b + 8.0 * d + m[5]]
}

/// `G·[a, b, d]ᵀ` for the kernel transform.
///
/// Divides by 6 rather than multiplying by ⅙, which would be faster but rounds
/// differently: the shipped model's logits are pinned bit for bit
/// (`tests/suite/io_model.rs`). The kernel transform runs this compiled for AVX2, 8
/// divisions at a time.
pub(super) fn g_times(a: f32, b: f32, d: f32) -> [f32; 6] {
    let s = a + d;
    [
        0.25 * a,
        -(s + b) / 6.0,
        -(s - b) / 6.0,
        (0.25 * a + 0.5 * b + d) / 6.0,
        (0.25 * a - 0.5 * b + d) / 6.0,
        d,
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gradient_transforms_are_the_transposes() {
        // <A·q, y> = <q, Aᵀ·y> and <Gᵀ·x, g> = <x, G·g>.
        let (q, y) = ([0.5f32, -1.0, 2.0, 0.25], [1.0f32, -0.5, 0.75, 2.0, -1.5, 0.3]);
        let lhs: f32 = a_times(q).iter().zip(&y).map(|(a, b)| a * b).sum();
        let rhs: f32 = q.iter().zip(&at_times(y)).map(|(a, b)| a * b).sum();
        assert!((lhs - rhs).abs() < 1e-5, "{lhs} vs {rhs}");
        let (x, g) = ([0.4f32, -1.2, 0.7, 1.9, -0.3, 0.8], [1.5f32, -0.25, 0.6]);
        let lhs: f32 = gt_times(x).iter().zip(&g).map(|(a, b)| a * b).sum();
        let rhs: f32 = x.iter().zip(&g_times(g[0], g[1], g[2])).map(|(a, b)| a * b).sum();
        assert!((lhs - rhs).abs() < 1e-5, "{lhs} vs {rhs}");
    }

    #[test]
    fn weight_gradient_back_transform_is_gt_u_g_per_kernel_bit_for_bit() {
        // Eight kernels at a time and a remainder (19 input channels): each kernel
        // as `Gᵀ·Û·G` one at a time, the same bits.
        let (o, c) = (3, 19);
        let wg = Winograd::new(c, o, (6, 6), (0, 0), (4, 4));
        let uw: Vec<f32> = (0..36 * o * c)
            .map(|v| ((v * 7919) % 1013) as f32 / 97.0 - 5.0)
            .collect();
        let dw = wg.weight_from_transformed(&uw);
        for oc in 0..o {
            for ic in 0..c {
                let u = |i: usize, j: usize| uw[((i * 6 + j) * o + oc) * c + ic];
                let gu: [[f32; 3]; 6] = std::array::from_fn(|j| gt_times(std::array::from_fn(|i| u(i, j))));
                for i in 0..3 {
                    let want = gt_times(std::array::from_fn(|j| gu[j][i]));
                    let got = &dw[(oc * c + ic) * 9 + i * 3..][..3];
                    assert!(
                        got.iter().zip(&want).all(|(a, b)| a.to_bits() == b.to_bits()),
                        "kernel ({oc}, {ic}) row {i}: {got:?}, want {want:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn rows_of_any_length_get_f_of_each_column_bit_for_bit() {
        // Whole vectors, a remainder shorter than a vector, and the overlapping last
        // vector: each column's values are `f` of that column, the same bits.
        for n in 0..=41 {
            let d: Vec<Vec<f32>> = (0..6)
                .map(|k| {
                    (0..n)
                        .map(|x| ((x * 7 + k * 13) % 11) as f32 / 3.0 - 1.7)
                        .collect()
                })
                .collect();
            let mut r: [Vec<f32>; 6] = std::array::from_fn(|_| vec![f32::NAN; n]);
            let [r0, r1, r2, r3, r4, r5] = &mut r;
            let rows: [&[f32]; 6] = std::array::from_fn(|k| &d[k][..]);
            map_to_6(rows, r0, r1, r2, r3, r4, r5, Bt);
            for x in 0..n {
                let want = bt_times(std::array::from_fn(|k| d[k][x]));
                for (j, row) in r.iter().enumerate() {
                    assert_eq!(row[x].to_bits(), want[j].to_bits(), "n {n}, column {x}, row {j}");
                }
            }
        }
    }

    #[test]
    fn one_dimensional_f4_3_is_a_correlation() {
        // y = Aᵀ·[(G·g) ⊙ (Bᵀ·d)]: four outputs of the 3-tap correlation of six inputs.
        let d = [0.5f32, -1.25, 2.0, 0.75, -0.5, 1.5];
        let g = [0.3f32, -0.7, 1.1];
        let (u, v) = (g_times(g[0], g[1], g[2]), bt_times(d));
        let y = at_times(std::array::from_fn(|i| u[i] * v[i]));
        for (i, y) in y.into_iter().enumerate() {
            let want: f32 = (0..3).map(|k| d[i + k] * g[k]).sum();
            assert!((y - want).abs() < 1e-5, "y[{i}] = {y}, want {want}");
        }
    }
}
