//! Winograd's forward pass in the channel form: the same F(4×4, 3×3) as the slot
//! form of [`run`](Winograd::run), with the channels innermost everywhere, for
//! convolutions with few tiles (a batch of one on small planes).
//!
//! Why: the slot form vectorizes its transforms along rows of tile slots and puts
//! the slots on the products' vector axis. With a handful of tiles that axis is
//! mostly padding: R3's 7×7 planes at batch 1 are 4 tiles, padded to 16 product
//! columns, so its 64 → 64 products did 4× the work they need (which is why those
//! layers ran as im2col), and its transforms ran over rows of 7 to 28 pixels that
//! end in scalar loops. Here each step of a transform takes eight channels at once
//! ([`Lanes`]), whatever the plane's size, and the products are
//! `M_ξ[O, T] = U_ξ[O, C] · V_ξ[C, T]` with the output channels on the products' vector
//! axis (16 floats with AVX-512, 8 with AVX2) and the `T` tiles as their kernel's
//! rows (up to 8), nothing padded.
//!
//! The layouts, all with the channel innermost:
//!
//! - the input, copied with its padding into `[image][row][column][C]` (the patch of
//!   every tile read in place, no edge checks),
//! - `U` `[ξ][C][O]`, from the slot form's `[O][ξ][C]` (see
//!   [`channel_kernel`](Winograd::channel_kernel); a layer keeps it),
//! - `V` `[ξ][T][C]` and `M` `[ξ][T][O]`,
//! - the output, written to the caller's planes, as the slot form's.
//!
//! Both transforms take the slot form's steps in the slot form's order (Bᵀ down the
//! columns of the patch, then along its rows; Aᵀ likewise). The products are the
//! crate's with other shapes, so the outputs may round differently from the slot
//! form's (bit for bit the same on R3's and R1's layers, not on a group of three
//! 6×5 planes of 8 channels: tested within rounding of both).

use ndarray::{ArrayView2, ArrayViewMut2, ShapeBuilder};

use super::super::gemm::gemm_serial;
use super::lanes::{Lanes, LANES};
use super::transforms::{at_times, bt_times};
use super::{PlaneLayout, Scratch, Winograd, TILE};

/// Side of a transformed tile.
const N: usize = TILE + 2;

impl Winograd {
    /// Whether the channel form can compute this convolution: whole [`Lanes`] of
    /// channels each way.
    pub fn channel_form_applies(&self) -> bool {
        Self::channel_form_fits(self.channels, self.out_channels)
    }

    /// Whether `channels` in and `out_channels` out are whole [`Lanes`] each way:
    /// the channel form's condition on the layer, also asked by the algorithm choice.
    pub(crate) fn channel_form_fits(channels: usize, out_channels: usize) -> bool {
        channels.is_multiple_of(LANES) && out_channels.is_multiple_of(LANES)
    }

    fn tiles_x(&self) -> usize {
        self.ow.div_ceil(TILE)
    }

    /// Tiles of `images` images: the product columns `T`.
    fn tiles(&self, images: usize) -> usize {
        images * self.tiles_y * self.tiles_x()
    }

    /// Rows and columns of an image's padded copy: the 6×6 patches of all its tiles.
    fn padded_shape(&self) -> (usize, usize) {
        (TILE * self.tiles_y + 2, TILE * self.tiles_x() + 2)
    }

    /// Floats of the three parts of [`Scratch`] for `images` images: `V`, `M`, and
    /// the padded copy of the input.
    pub fn channel_scratch_len(&self, images: usize) -> [usize; 3] {
        let (t, (ph, pw)) = (self.tiles(images), self.padded_shape());
        [
            Self::POSITIONS * t * self.channels,
            Self::POSITIONS * t * self.out_channels,
            images * ph * pw * self.channels,
        ]
    }

    /// `U = G·g·Gᵀ` of every kernel of `weight` `[O, C, 3, 3]`, laid out `[ξ][C][O]`.
    pub fn channel_kernel(&self, weight: &[f32]) -> Vec<f32> {
        let u = self.transform_kernel(weight, false);
        let (o, c) = (self.out_channels, self.channels);
        let mut t = vec![0.0f32; u.len()];
        for (oc, block) in u.chunks_exact(Self::POSITIONS * c).enumerate() {
            for (xi, kernels) in block.chunks_exact(c).enumerate() {
                for (ic, &value) in kernels.iter().enumerate() {
                    t[(xi * c + ic) * o + oc] = value;
                }
            }
        }
        t
    }

    /// The convolution of `images` images `[C, H, W]` (end to end in `input`) into
    /// planes of `out` (`oh × ow`, laid out as `out_layout`), overwriting them, with
    /// `u` from [`channel_kernel`](Self::channel_kernel) and `scratch` of the sizes
    /// [`channel_scratch_len`](Self::channel_scratch_len) gives. The caller has
    /// checked [`channel_form_applies`](Self::channel_form_applies).
    pub fn run_channels(
        &self,
        u: &[f32],
        images: usize,
        input: &[f32],
        out: &mut [f32],
        out_layout: PlaneLayout,
        scratch: Scratch,
    ) {
        debug_assert!(self.channel_form_applies());
        let Scratch { v, m, work } = scratch;
        let (c, o, t) = (self.channels, self.out_channels, self.tiles(images));
        let [_, _, padded_len] = self.channel_scratch_len(images);
        let padded = &mut work[..padded_len];
        self.pad_channels_last(input, padded);
        self.transform_input_channels(padded, images, v);
        for xi in 0..Self::POSITIONS {
            let u = ArrayView2::from_shape((o, c).strides((1, o)), &u[xi * c * o..(xi + 1) * c * o])
                .expect("U fits");
            let v = ArrayView2::from_shape((c, t).strides((1, c)), &v[xi * t * c..(xi + 1) * t * c])
                .expect("V fits");
            let mut m =
                ArrayViewMut2::from_shape((o, t).strides((1, o)), &mut m[xi * t * o..(xi + 1) * t * o])
                    .expect("M fits");
            gemm_serial(1.0, &u, &v, 0.0, &mut m);
        }
        self.transform_output_channels(m, images, out, out_layout);
    }

    /// Copies the images `[C, H, W]` of `input` into `padded` `[image][row][column][C]`
    /// ([`padded_shape`](Self::padded_shape) rows and columns), with zeros where the
    /// padding is and past the input's edges.
    fn pad_channels_last(&self, input: &[f32], padded: &mut [f32]) {
        let (c, h, w, top, left) = (self.channels, self.h, self.w, self.top, self.left);
        let (ph, pw) = self.padded_shape();
        // The input rows and columns that land inside the copy.
        let rows = h.min(ph.saturating_sub(top));
        let cols = w.min(pw.saturating_sub(left));
        for (image, copy) in padded.chunks_exact_mut(ph * pw * c).enumerate() {
            // Zeros around the pixels only (a whole `fill` was a `memset` of the copy
            // per call, which callgrind counts byte by byte).
            copy[..top * pw * c].fill(0.0);
            copy[(top + rows) * pw * c..].fill(0.0);
            for row in copy[top * pw * c..(top + rows) * pw * c].chunks_exact_mut(pw * c) {
                row[..left * c].fill(0.0);
                row[(left + cols) * c..].fill(0.0);
            }
            // Eight planes at a time: a pixel's eight channels gathered into one
            // `Lanes` and stored whole (a float at a time, this copy cost as much
            // as the transform).
            let planes = &input[image * c * h * w..(image + 1) * c * h * w];
            for (group, eight) in planes.chunks_exact(LANES * h * w).enumerate() {
                for y in 0..rows {
                    let rows: [&[f32]; LANES] = std::array::from_fn(|k| &eight[(k * h + y) * w..][..cols]);
                    let at = ((y + top) * pw + left) * c + group * LANES;
                    for (x, to) in copy[at..].chunks_mut(c).take(cols).enumerate() {
                        Lanes::<LANES>(std::array::from_fn(|k| rows[k][x])).store(to);
                    }
                }
            }
        }
    }

    /// `V = Bᵀ·d·B` of every tile's 6×6 patch of `padded` (see
    /// [`pad_channels_last`](Self::pad_channels_last)), eight channels at a time:
    /// `V_ξ` of tile `s` and channel `ic` to `v[(ξ·T + s)·C + ic]`.
    #[inline(always)]
    pub(super) fn input_transform_channels(&self, padded: &[f32], images: usize, v: &mut [f32]) {
        let c = self.channels;
        let (t, (ph, pw)) = (self.tiles(images), self.padded_shape());
        let mut tile = 0;
        for copy in padded.chunks_exact(ph * pw * c).take(images) {
            for ty in 0..self.tiles_y {
                for tx in 0..self.tiles_x() {
                    for c0 in (0..c).step_by(LANES) {
                        // The patch's column j: six pixels, `pw · c` apart.
                        let first = (TILE * ty * pw + TILE * tx) * c + c0;
                        let (patch, s) = (&copy[first..], pw * c);
                        // Bᵀ·d down each column j (`columns[j][i]`), then ·B along each
                        // row i. (Written out: closures and `array::from_fn` were left
                        // as calls.)
                        let columns = [
                            bt_times(column6(patch, s)),
                            bt_times(column6(&patch[c..], s)),
                            bt_times(column6(&patch[2 * c..], s)),
                            bt_times(column6(&patch[3 * c..], s)),
                            bt_times(column6(&patch[4 * c..], s)),
                            bt_times(column6(&patch[5 * c..], s)),
                        ];
                        for i in 0..N {
                            let row = [
                                columns[0][i],
                                columns[1][i],
                                columns[2][i],
                                columns[3][i],
                                columns[4][i],
                                columns[5][i],
                            ];
                            for (j, value) in bt_times(row).into_iter().enumerate() {
                                value.store(&mut v[((i * N + j) * t + tile) * c + c0..]);
                            }
                        }
                    }
                    tile += 1;
                }
            }
        }
    }

    /// `Y = Aᵀ·M·A` of every tile's 36 products (`m` `[ξ][T][O]`), eight output
    /// channels at a time, into the planes of `out` (laid out as `layout`), dropping
    /// the outputs past the planes' bottom and right edges.
    #[inline(always)]
    pub(super) fn output_transform_channels(
        &self,
        m: &[f32],
        images: usize,
        out: &mut [f32],
        layout: PlaneLayout,
    ) {
        let (o, t) = (self.out_channels, self.tiles(images));
        let mut tile = 0;
        for image in 0..images {
            for ty in 0..self.tiles_y {
                for tx in 0..self.tiles_x() {
                    for o0 in (0..o).step_by(LANES) {
                        // Column j of the tile's products: `M_ξ` for ξ = j, j + 6, …
                        let first = tile * o + o0;
                        let (products, s) = (&m[first..], t * o);
                        // Aᵀ·M down each column j (`columns[j][r]`), then ·A along each of
                        // the four rows r.
                        let columns = [
                            at_times(column6(products, N * s)),
                            at_times(column6(&products[s..], N * s)),
                            at_times(column6(&products[2 * s..], N * s)),
                            at_times(column6(&products[3 * s..], N * s)),
                            at_times(column6(&products[4 * s..], N * s)),
                            at_times(column6(&products[5 * s..], N * s)),
                        ];
                        // `r` picks the row from each column's results, and the output row.
                        #[allow(clippy::needless_range_loop)]
                        for r in 0..TILE {
                            let row = [
                                columns[0][r],
                                columns[1][r],
                                columns[2][r],
                                columns[3][r],
                                columns[4][r],
                                columns[5][r],
                            ];
                            let oy = TILE * ty + r;
                            if oy >= self.oh {
                                break;
                            }
                            for (x, value) in at_times(row).into_iter().enumerate() {
                                let ox = TILE * tx + x;
                                if ox >= self.ow {
                                    break;
                                }
                                // Eight planes, one float each.
                                let at = image * layout.image_stride + o0 * layout.channel_stride;
                                let pixels = out[at + oy * self.ow + ox..]
                                    .iter_mut()
                                    .step_by(layout.channel_stride);
                                for (pixel, value) in pixels.zip(value.0) {
                                    *pixel = value;
                                }
                            }
                        }
                    }
                    tile += 1;
                }
            }
        }
    }
}

/// Six [`Lanes`] `stride` floats apart from the start of `s`.
#[inline(always)]
fn column6(s: &[f32], stride: usize) -> [Lanes; 6] {
    let s = &s[..5 * stride + LANES];
    [
        Lanes::load(s),
        Lanes::load(&s[stride..]),
        Lanes::load(&s[2 * stride..]),
        Lanes::load(&s[3 * stride..]),
        Lanes::load(&s[4 * stride..]),
        Lanes::load(&s[5 * stride..]),
    ]
}

#[cfg(test)]
mod tests {
    use super::super::super::im2col::ConvGeometry;
    use super::super::super::reference;
    use super::*;
    use crate::gradcheck::random_like;

    /// The channel form against the direct loops and the slot form (within
    /// rounding: the same steps, products of other shapes), over one image
    /// and groups of several: R3's 7×7 and 14×14 planes, R1's 11×11 valid output,
    /// odd planes whose last tiles stick out past the bottom and right edges, and
    /// padding that differs between the sides (none on top, 2 on the left).
    #[test]
    fn channel_form_matches_the_direct_loops_and_the_slot_form() {
        // (images, C, O, (H, W), (top, left), (OH, OW))
        let cases = [
            (1, 64, 64, (7, 7), (1, 1), (7, 7)),
            (1, 32, 32, (14, 14), (1, 1), (14, 14)),
            (1, 32, 64, (13, 13), (0, 0), (11, 11)),
            (3, 8, 16, (6, 5), (1, 1), (6, 5)),
            (2, 16, 8, (9, 10), (0, 2), (9, 11)),
        ];
        for (case, (images, c, o, (h, w), (top, left), (oh, ow))) in cases.into_iter().enumerate() {
            let g = ConvGeometry {
                channels: c,
                h,
                w,
                kh: 3,
                kw: 3,
                stride: (1, 1),
                dilation: (1, 1),
                top,
                left,
                oh,
                ow,
            };
            let seed = 10 * case as u64;
            let x = random_like(&[images, c, h, w], seed).into_raw_vec_and_offset().0;
            let weight = random_like(&[o, c, 3, 3], seed + 1).into_raw_vec_and_offset().0;
            let mut direct = vec![0.0f32; images * o * oh * ow];
            reference::forward(&g, images, o, &x, &weight, None, &mut direct);

            let wg = Winograd::forward(&g, o);
            assert!(wg.channel_form_applies());
            let out_layout = PlaneLayout::images(o, oh * ow);
            let mut channels = vec![f32::NAN; direct.len()];
            let [v, m, work] = wg.channel_scratch_len(images);
            let (mut v, mut m, mut work) = (vec![f32::NAN; v], vec![f32::NAN; m], vec![f32::NAN; work]);
            let scratch = Scratch {
                v: &mut v,
                m: &mut m,
                work: &mut work,
            };
            let u = wg.channel_kernel(&weight);
            wg.run_channels(&u, images, &x, &mut channels, out_layout, scratch);

            let mut slots = vec![f32::NAN; direct.len()];
            let [v, m, work] = wg.scratch_len(images);
            let (mut v, mut m, mut work) = (vec![0.0f32; v], vec![0.0f32; m], vec![0.0f32; work]);
            let scratch = Scratch {
                v: &mut v,
                m: &mut m,
                work: &mut work,
            };
            let u = wg.transform_kernel(&weight, false);
            let in_layout = PlaneLayout::images(c, h * w);
            // SAFETY: `run` writes only values.
            let out = unsafe { crate::ops::fresh::as_slots(&mut slots) };
            wg.run(&u, images, &x, in_layout, out, out_layout, None, scratch);

            let scale = direct.iter().fold(1.0f32, |m, v| m.max(v.abs()));
            for (i, ((&got, &slot), &want)) in channels.iter().zip(&slots).zip(&direct).enumerate() {
                assert!(
                    (got - slot).abs() <= 1e-5 * scale,
                    "case {case}, output {i}: {got} against the slot form's {slot}"
                );
                assert!(
                    (got - want).abs() <= 1e-4 * scale,
                    "case {case}, output {i}: {got}, want {want}"
                );
            }
        }
    }
}
