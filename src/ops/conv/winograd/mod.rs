//! Winograd's minimal filtering F(4×4, 3×3) for 3×3, stride-1 convolutions, with
//! the transforms of Lavin & Gray, "Fast Algorithms for Convolutional Neural
//! Networks" (2016) (see [`transforms`]). Each 4×4 block of outputs ("tile")
//! depends on a 6×6 patch `d` of each input channel:
//!
//! - kernel: `U = G·g·Gᵀ` (6×6, once per call),
//! - input: `V = Bᵀ·d·B` (6×6 per tile and channel),
//! - then for each of the 36 positions `ξ` a matrix product over channels:
//!   `M_ξ[O, T] = U_ξ[O, C] · V_ξ[C, T]` (`T` tiles of a group of images),
//! - output: `Y = Aᵀ·M·A` (4×4 per tile and output channel).
//!
//! That is 36 products of `O·C·T` multiply-adds per 16 outputs, where im2col does
//! `O·9C·16T`: 4x fewer multiplications (F(2×2, 3×3), which this replaced, saves
//! 2.25x).
//!
//! Used (where [`choose`](super::algorithm::choose) says so) for the forward pass;
//! for the input gradient, which is itself a 3×3
//! stride-1 convolution: of the output gradient with the kernel rotated by 180° and
//! its channel axes swapped, padded by `2 − padding`; and for the weight gradient,
//! summed over tiles in the transformed domain (see
//! [`weight_gradient`](Winograd::weight_gradient)). On R2's second conv, forward
//! and backward took 9.6 ms against 10.6 ms with F(2×2, 3×3) and 13.9 ms with
//! im2col (measured).
//!
//! The transforms are additions and multiplications by small constants over long
//! rows of tile "slots" of all the images of a group, which the compiler
//! vectorizes, with AVX2 when the CPU has it (see `multiversioned!`). A forward
//! pass with few tiles (a batch of one on small planes) runs in the channel form
//! instead, eight channels a step and nothing padded (see [`channels`]; which form,
//! [`winograd_forward_form`](super::algorithm::winograd_forward_form)).

use std::mem::MaybeUninit;

use ndarray::{ArrayView2, ArrayViewMut2, ShapeBuilder};
use rayon::prelude::*;

use super::copy_row::{copy_row, fill_zeros};
use super::gemm::gemm_serial;
use super::im2col::ConvGeometry;
use super::output_epilogue::OutputEpilogue;

mod channels;
mod lanes;
mod phases;
mod transforms;

use transforms::g_times;

/// Outputs per tile side: F(4×4, 3×3).
const TILE: usize = 4;

/// The scratch of one Winograd call (see [`Winograd::scratch_len`]), taken from the
/// conv's per-thread buffer so that no call allocates.
pub(super) struct Scratch<'a> {
    pub v: &'a mut [f32],
    pub m: &'a mut [f32],
    pub work: &'a mut [f32],
}

/// Where the planes of a group of images lie in a buffer: plane `(image, channel)`
/// starts at `image · image_stride + channel · channel_stride`, rows contiguous.
#[derive(Clone, Copy, Debug)]
pub(super) struct PlaneLayout {
    pub image_stride: usize,
    pub channel_stride: usize,
}

impl PlaneLayout {
    /// Whole images `[C, H, W]` of `plane = H·W` pixels per channel, end to end.
    pub fn images(channels: usize, plane: usize) -> PlaneLayout {
        PlaneLayout {
            image_stride: channels * plane,
            channel_stride: plane,
        }
    }

    /// The images of a group side by side in a product matrix `[C, B·P]` with row
    /// stride `ld`: image `i`'s plane of channel `c` at `c·ld + i·P`.
    pub fn side_by_side(p: usize, ld: usize) -> PlaneLayout {
        PlaneLayout {
            image_stride: p,
            channel_stride: ld,
        }
    }
}

/// One 3×3, stride-1 convolution computed the Winograd way.
#[derive(Clone, Copy, Debug)]
pub(super) struct Winograd {
    channels: usize,
    out_channels: usize,
    h: usize,
    w: usize,
    top: usize,
    left: usize,
    oh: usize,
    ow: usize,
    /// Floats from one row of an input plane to the next: `w`, unless the
    /// convolution reads only the top-left `h × w` of wider planes (see
    /// [`forward_over`](Self::forward_over) and [`input_gradient`](Self::input_gradient)).
    in_row: usize,
    /// The same for the output planes: `ow`, unless it writes only their top-left
    /// `oh × ow`.
    out_row: usize,
    tiles_y: usize,
}

impl Winograd {
    /// The forward pass of `g` with `o` output channels. The caller has checked that
    /// Winograd applies (see [`choose`](super::algorithm::choose)).
    pub fn forward(g: &ConvGeometry, o: usize) -> Winograd {
        Winograd::forward_over(g, o, (g.oh, g.ow))
    }

    /// [`forward`](Self::forward) computing only the top-left `rows × cols` of each
    /// output plane (`extent`: all of it unless a pooling after the conv reads
    /// less), from the input pixels those read; [`run`](Self::run) leaves the rest
    /// of the output planes as they were. R1's second conv: its pooling reads 10×10
    /// of the 11×11 output, which read 12×12 of the 13×13 input, so each image
    /// takes 3 tiles of 4 columns instead of 13 columns' worth (see
    /// [`period`](Self::period)).
    pub fn forward_over(g: &ConvGeometry, o: usize, (rows, cols): (usize, usize)) -> Winograd {
        let (oh, ow) = (rows.min(g.oh), cols.min(g.ow));
        // Output `y` reads padded rows `y ..= y + 2`, input rows up to `y + 2 − top`.
        let read = |n: usize, pad: usize, size: usize| match n {
            0 => 0,
            n => (n + 2).saturating_sub(pad).min(size),
        };
        let (h, w) = (read(oh, g.top, g.h), read(ow, g.left, g.w));
        Winograd {
            in_row: g.w,
            out_row: g.ow,
            ..Winograd::new(g.channels, o, (h, w), (g.top, g.left), (oh, ow))
        }
    }

    /// The input gradient of `g`: a convolution of the `o` output-gradient planes
    /// into the `C` input planes, padded by `2 − padding` (so `padding ≤ 2`, checked
    /// by [`choose`](super::algorithm::choose)), when the output gradient may be
    /// non-zero only in its top-left `rows × cols` (`extent`; all of it, `(OH, OW)`,
    /// unless a pooling after the conv reads less).
    ///
    /// Then only those rows and columns are read, and only the input pixels they
    /// reach are computed: the top-left [`extent`](Self::extent) of each input
    /// plane; the rest of the input gradient is zero, for the caller to write. R1's
    /// second conv has an 11×11 output of which its 2×2 pooling reads 10×10, so its
    /// 13×13 input gradient is 12×12 and zeros: 3×3 tiles of 4 instead of 4×4.
    pub fn input_gradient(g: &ConvGeometry, o: usize, (rows, cols): (usize, usize)) -> Winograd {
        let (top, left) = (2 - g.top, 2 - g.left);
        let (rows, cols) = (rows.min(g.oh), cols.min(g.ow));
        // Input pixel `r` reaches output-gradient rows `r − top ..= r − top + 2`
        // (padded by `top`), so the first `rows + top` pixels reach the non-zero ones.
        let reached = |rows: usize, top: usize, h: usize| if rows == 0 { 0 } else { (rows + top).min(h) };
        let (dh, dw) = (reached(rows, top, g.h), reached(cols, left, g.w));
        Winograd {
            in_row: g.ow,
            out_row: g.w,
            ..Winograd::new(o, g.channels, (rows, cols), (top, left), (dh, dw))
        }
    }

    /// The top-left `rows × cols` of each output plane that [`run`](Self::run)
    /// writes.
    pub fn extent(&self) -> (usize, usize) {
        (self.oh, self.ow)
    }

    /// The weight gradient of `g` with `o` output channels when the output
    /// gradient may be non-zero only in its top-left `extent` (the forward pass's
    /// tiles over it, see [`forward_over`](Self::forward_over) and
    /// [`weight_gradient`](Self::weight_gradient)).
    pub fn for_weight_gradient(g: &ConvGeometry, o: usize, extent: (usize, usize)) -> Winograd {
        Winograd::forward_over(g, o, extent)
    }

    fn new(
        channels: usize,
        out_channels: usize,
        (h, w): (usize, usize),
        (top, left): (usize, usize),
        (oh, ow): (usize, usize),
    ) -> Winograd {
        Winograd {
            channels,
            out_channels,
            h,
            w,
            top,
            left,
            oh,
            ow,
            in_row: w,
            out_row: ow,
            tiles_y: oh.div_ceil(TILE),
        }
    }

    /// Tile slots of a group of `images` images: those of each row of tiles (see
    /// [`row_width`](Self::row_width)), some of them spare: computed and never read.
    pub fn slots(&self, images: usize) -> usize {
        self.tiles_y * self.row_width(images) / TILE
    }

    /// Positions `ξ` of a transformed tile: `(TILE + 2)²`.
    pub const POSITIONS: usize = (TILE + 2) * (TILE + 2);

    /// Images per product group: at least `group`, and enough for 160 slots, since
    /// 4×4 tiles make few slots per image (12 on an 11×11 output), and the products
    /// of fewer columns ran at a fraction of the GEMM's speed (measured).
    pub fn group(&self, group: usize) -> usize {
        group.max(160usize.div_ceil(self.slots(1)))
    }

    /// Floats of the three parts of [`Scratch`] for `images` images: the transformed
    /// inputs, the products, and the transforms' work space.
    pub fn scratch_len(&self, images: usize) -> [usize; 3] {
        let t = columns(self.slots(images));
        let [zero_row, columns, rows] = self.work_lens(images);
        [
            Self::POSITIONS * self.channels * t,
            Self::POSITIONS * self.out_channels * t,
            zero_row + columns + rows,
        ]
    }

    /// The work space of the transforms of `images` images: a row of zeros (the
    /// padding's rows), the column transforms of one channel of every image (six
    /// planes of all the rows of tiles, then the two floats the last tile reads) with
    /// their four column phases, and the output transform's rows: the 24 rows of
    /// its first pass, then the four output rows of every tile row. In that order:
    /// with the output rows first (and one slice for both), callgrind counted 2.3
    /// times the instructions in the output transform (R3 inference, 185M against
    /// 81M); why was not pinned down (presumably the vectorized loops' run-time
    /// overlap checks sent them down their scalar path).
    fn work_lens(&self, images: usize) -> [usize; 3] {
        let (width, slots) = (self.row_width(images), self.slots(images));
        [
            self.period(),
            6 * (self.tiles_y * width + 2) + 4 * (slots + 1),
            (16 + 24) * slots,
        ]
    }

    /// Columns per image in a row of tiles: the images of a group lie side by side
    /// in each row of tiles, image `i`'s pixels from padded column `period·i + left`,
    /// and the rows of tiles one after another (see
    /// [`input_transform`](Self::input_transform)).
    ///
    /// So a tile may cover the end of one image and the start of the next, and the
    /// last tiles of a row read on into the next row, whose first `left` columns
    /// are zeros. That is sound as long as no output reads another image's pixels:
    /// output `x` reads padded columns `x .. x + 2`, so the last one, `ow − 1`, must
    /// not reach the next image's first pixel at `period + left`. The outputs past
    /// `ow` in each period are computed and never read. Before, each image's rows
    /// were 4 columns per tile plus a spare tile: 12 columns for a 7×7 plane where
    /// 8 are enough, 20 for 14×14 (15), 32 for 28×28 (29).
    fn period(&self) -> usize {
        (self.left + self.w)
            .max((self.ow + 2).saturating_sub(self.left))
            .max(self.ow)
    }

    /// Width of a row of tiles of `images` images side by side (see
    /// [`period`](Self::period)): whole tiles of 4 columns, tile `x` from column `4·x`.
    fn row_width(&self, images: usize) -> usize {
        (images * self.period()).next_multiple_of(TILE)
    }

    /// `work` cut into the parts [`work_lens`](Self::work_lens) describes.
    fn split_work<'a>(&self, images: usize, work: &'a mut [f32]) -> [&'a mut [f32]; 3] {
        let [zero_row, columns, _] = self.work_lens(images);
        let (first, rest) = work.split_at_mut(zero_row);
        let (second, third) = rest.split_at_mut(columns);
        [first, second, third]
    }

    /// `U = G·g·Gᵀ` for every kernel, laid out `[O][ξ][C]`, from `weight`
    /// `[O, C, 3, 3]`. With `swapped`, `weight` is the forward kernel `[C', O', 3, 3]`
    /// of the convolution whose input gradient this is: its channel axes are swapped
    /// and each kernel is rotated by 180°.
    pub fn transform_kernel(&self, weight: &[f32], swapped: bool) -> Vec<f32> {
        const N: usize = TILE + 2;
        let (o, c) = (self.out_channels, self.channels);
        let mut u = vec![0.0f32; Self::POSITIONS * o * c];
        // One output channel per task, on all threads (it ran on one while the other
        // waited: 2% of R1's inference, profiled), its kernels gathered tap-major
        // (`[9][C]`) so that each step is a loop over input channels that the
        // compiler vectorizes and each row of its `[ξ][C]` block is written whole.
        // The gathered taps and `G·g` are per-thread buffers, not one per channel.
        // A bank of up to `SERIAL_KERNELS` kernels stays on the calling thread.
        let buffers = || (vec![0.0f32; 9 * c], vec![0.0f32; 3 * N * c]);
        u.par_chunks_mut(Self::POSITIONS * c)
            .enumerate()
            .with_min_len(SERIAL_KERNELS.div_ceil(c.max(1)))
            .for_each_init(buffers, |(taps, gg), (oc, block)| {
                self.transform_kernel_block(weight, swapped, oc, taps, gg, block)
            });
        u
    }

    /// Output channel `oc`'s kernels into its `[ξ][C]` block of `U` (see
    /// [`transform_kernel`](Self::transform_kernel)), through the buffers `taps`
    /// (`[9][C]`) and `gg` (`[6][3][C]`).
    #[inline(always)]
    fn kernel_block(
        &self,
        weight: &[f32],
        swapped: bool,
        oc: usize,
        taps: &mut [f32],
        gg: &mut [f32],
        block: &mut [f32],
    ) {
        const N: usize = TILE + 2;
        let (o, c) = (self.out_channels, self.channels);
        if swapped {
            for ic in 0..c {
                let kernel = &weight[(ic * o + oc) * 9..][..9];
                for t in 0..9 {
                    taps[t * c + ic] = kernel[8 - t];
                }
            }
        } else {
            for (ic, kernel) in weight[oc * c * 9..(oc + 1) * c * 9].chunks_exact(9).enumerate() {
                for t in 0..9 {
                    taps[t * c + ic] = kernel[t];
                }
            }
        }
        // G·g column by column into `gg` `[N][3][C]`, then G·(G·g)ᵀ row by row.
        for j in 0..3 {
            for ic in 0..c {
                let column = g_times(taps[j * c + ic], taps[(3 + j) * c + ic], taps[(6 + j) * c + ic]);
                for (i, v) in column.into_iter().enumerate() {
                    gg[(i * 3 + j) * c + ic] = v;
                }
            }
        }
        for i in 0..N {
            let row = |j: usize| &gg[(i * 3 + j) * c..(i * 3 + j + 1) * c];
            let (a, b, d) = (row(0), row(1), row(2));
            for ic in 0..c {
                for (j, v) in g_times(a[ic], b[ic], d[ic]).into_iter().enumerate() {
                    block[(i * N + j) * c + ic] = v;
                }
            }
        }
    }

    /// The convolution of `images` images: planes of `input` (`h × w`, rows `in_row`
    /// apart, laid out as `input_layout`) into planes of `out` (`oh × ow`, rows
    /// `out_row` apart, laid out as `out_layout`), writing every one of those pixels
    /// (so `out` need not be initialized, nor zeroed: the input gradient's share of
    /// `dx` is not), finished by `epilogue` if there is one (its shortcut laid out
    /// as `out`). `u` comes from [`transform_kernel`](Self::transform_kernel);
    /// `scratch` has the sizes [`scratch_len`](Self::scratch_len) gives.
    #[allow(clippy::too_many_arguments)]
    pub fn run(
        &self,
        u: &[f32],
        images: usize,
        input: &[f32],
        input_layout: PlaneLayout,
        out: &mut [MaybeUninit<f32>],
        out_layout: PlaneLayout,
        epilogue: Option<&OutputEpilogue>,
        scratch: Scratch,
    ) {
        let Scratch { v, m, work } = scratch;
        let [zero_row, column_work, rows] = self.split_work(images, work);
        let (c, o, slots) = (self.channels, self.out_channels, self.slots(images));
        let t = columns(slots);
        if t > slots {
            // The padding columns: their products are never read, but keep them finite.
            for row in v[..Self::POSITIONS * c * t].chunks_exact_mut(t) {
                fill_zeros(&mut row[slots..]);
            }
        }
        self.prepare_columns(column_work, zero_row, images, self.input_columns());
        for ic in 0..c {
            let target = (&mut *v, ic * t, c * t);
            self.transform_input(input, input_layout, ic, images, target, zero_row, column_work);
        }
        for xi in 0..Self::POSITIONS {
            let u = ArrayView2::from_shape((o, c).strides((Self::POSITIONS * c, 1)), &u[xi * c..])
                .expect("U fits");
            let v = ArrayView2::from_shape((c, t), &v[xi * c * t..(xi + 1) * c * t]).expect("V fits");
            let mut m =
                ArrayViewMut2::from_shape((o, t).strides((t, 1)), &mut m[xi * o * t..(xi + 1) * o * t])
                    .expect("M fits");
            gemm_serial(1.0, &u, &v, 0.0, &mut m);
        }
        let (first_pass, out_rows) = rows.split_at_mut(24 * slots);
        for oc in 0..o {
            self.transform_output(m, images, oc * t, o * t, out_rows, first_pass);
            let rows = &out_rows[..TILE * TILE * slots];
            self.write_outputs(rows, images, oc, out, out_layout, epilogue);
        }
    }

    /// Adds to `uw` (`[36][O][C]`, the weight gradient in the transformed domain)
    /// the contribution of `images` images: their input planes (`input`, as in
    /// [`run`](Self::run)) and output-gradient planes (`grad`, `oh × ow`, laid out as
    /// `grad_layout`). [`weight_from_transformed`](Self::weight_from_transformed)
    /// turns the sum into the `[O, C, 3, 3]` gradient.
    ///
    /// The forward pass is `Y = Aᵀ·[(G·g·Gᵀ) ⊙ V]·A` per tile, so the gradient of the
    /// kernel is `Gᵀ·[(A·dY·Aᵀ) ⊙ V]·G` summed over tiles: the 36 positions `ξ` give
    /// products `Û_ξ[O, C] += Ĝ_ξ[O, T] · V_ξ[C, T]ᵀ` with `Ĝ = A·dY·Aᵀ`.
    #[allow(clippy::too_many_arguments)]
    pub fn weight_gradient(
        &self,
        images: usize,
        input: &[f32],
        input_layout: PlaneLayout,
        grad: &[f32],
        grad_layout: PlaneLayout,
        uw: &mut [f32],
        scratch: Scratch,
    ) {
        let Scratch { v, m, work } = scratch;
        let [zero_row, column_work, _] = self.split_work(images, work);
        let (c, o, slots) = (self.channels, self.out_channels, self.slots(images));
        let t = columns(slots);
        // Padding columns: zero in both operands, so they add nothing.
        let positions = Self::POSITIONS;
        for row in v[..positions * c * t]
            .chunks_exact_mut(t)
            .chain(m[..positions * o * t].chunks_exact_mut(t))
        {
            fill_zeros(&mut row[slots..]);
        }
        self.prepare_columns(column_work, zero_row, images, self.input_columns());
        for ic in 0..c {
            let target = (&mut *v, ic * t, c * t);
            self.transform_input(input, input_layout, ic, images, target, zero_row, column_work);
        }
        self.prepare_columns(column_work, zero_row, images, self.grad_columns());
        for oc in 0..o {
            let target = (&mut *m, oc * t, o * t);
            self.transform_grad(grad, grad_layout, oc, images, target, zero_row, column_work);
        }
        for xi in 0..positions {
            let g = ArrayView2::from_shape((o, t), &m[xi * o * t..(xi + 1) * o * t]).expect("Ĝ fits");
            let vt = ArrayView2::from_shape((t, c).strides((1, t)), &v[xi * c * t..(xi + 1) * c * t])
                .expect("V fits");
            let mut u =
                ArrayViewMut2::from_shape((o, c), &mut uw[xi * o * c..(xi + 1) * o * c]).expect("Û fits");
            gemm_serial(1.0, &g, &vt, 1.0, &mut u);
        }
    }

    /// Channel `oc`'s output plane of every image of a group of `images`, from the
    /// `rows` that [`transform_output`](Self::transform_output) wrote, into `out`
    /// (laid out as `layout`), through `epilogue` if there is one.
    #[inline(always)]
    fn output_planes(
        &self,
        rows: &[f32],
        images: usize,
        oc: usize,
        out: &mut [MaybeUninit<f32>],
        layout: PlaneLayout,
        epilogue: Option<&OutputEpilogue>,
    ) {
        let width = self.row_width(images);
        for image in 0..images {
            let plane = image * layout.image_stride + oc * layout.channel_stride;
            let base = image * self.period();
            // The tiles' rows, dropping the spare slots and the outputs past the
            // plane's bottom or right edge.
            for ty in 0..self.tiles_y {
                for (a, source) in rows.chunks_exact(rows.len() / TILE).enumerate() {
                    let oy = TILE * ty + a;
                    if oy < self.oh {
                        let at = plane + oy * self.out_row;
                        let (dst, src) = (&mut out[at..at + self.ow], &source[base + ty * width..]);
                        match epilogue {
                            Some(epilogue) => epilogue.write_row(dst, &src[..self.ow], oc, at),
                            None => copy_row(dst, &src[..self.ow]),
                        }
                    }
                }
            }
        }
    }
}

/// Defines method `$name` to run `$body` (an `#[inline(always)]` transform)
/// compiled for AVX2 when the CPU has it (see [`cpu`](crate::ops::cpu)): the transforms
/// are additions over long rows, which then run 8 floats at a time instead of
/// SSE2's 4. The same operations in the same order, so the same results, bit for
/// bit.
/// Each version is a function of its own: inlined into its caller, the compiler
/// left the output transform's loop scalar (measured).
macro_rules! multiversioned {
    ($(#[$doc:meta])* fn $name:ident(&self, $($arg:ident: $ty:ty),* $(,)?) => $body:ident) => {
        $(#[$doc])*
        #[allow(clippy::too_many_arguments)]
        fn $name(&self, $($arg: $ty),*) {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx2")]
                #[allow(clippy::too_many_arguments)]
                unsafe fn avx2(this: &Winograd, $($arg: $ty),*) {
                    this.$body($($arg),*)
                }
                if crate::ops::cpu::avx2() {
                    // SAFETY: the CPU has AVX2.
                    return unsafe { avx2(self, $($arg),*) };
                }
            }
            #[inline(never)]
            #[allow(clippy::too_many_arguments)]
            fn baseline(this: &Winograd, $($arg: $ty),*) {
                this.$body($($arg),*)
            }
            baseline(self, $($arg),*)
        }
    };
}

impl Winograd {
    multiversioned!(
        /// See [`input_transform`](Self::input_transform).
        fn transform_input(
            &self,
            input: &[f32],
            layout: PlaneLayout,
            channel: usize,
            images: usize,
            target: (&mut [f32], usize, usize),
            zero_row: &[f32],
            columns: &mut [f32],
        ) => input_transform
    );
    multiversioned!(
        /// See [`grad_transform`](Self::grad_transform).
        fn transform_grad(
            &self,
            grad: &[f32],
            layout: PlaneLayout,
            channel: usize,
            images: usize,
            target: (&mut [f32], usize, usize),
            zero_row: &[f32],
            columns: &mut [f32],
        ) => grad_transform
    );
    multiversioned!(
        /// See [`kernel_block`](Self::kernel_block).
        fn transform_kernel_block(
            &self,
            weight: &[f32],
            swapped: bool,
            oc: usize,
            taps: &mut [f32],
            gg: &mut [f32],
            block: &mut [f32],
        ) => kernel_block
    );
    multiversioned!(
        /// See [`kernel_gradient_block`](Self::kernel_gradient_block).
        fn transform_back(&self, uw: &[f32], oc: usize, gu: &mut [f32], dw: &mut [f32]) => kernel_gradient_block
    );
    multiversioned!(
        /// See [`input_transform_channels`](Self::input_transform_channels).
        fn transform_input_channels(&self, padded: &[f32], images: usize, v: &mut [f32]) => input_transform_channels
    );
    multiversioned!(
        /// See [`output_transform_channels`](Self::output_transform_channels).
        fn transform_output_channels(
            &self,
            m: &[f32],
            images: usize,
            out: &mut [f32],
            layout: PlaneLayout,
        ) => output_transform_channels
    );
    multiversioned!(
        /// See [`output_planes`](Self::output_planes): the copies of short rows are
        /// vector moves of 8 floats instead of 4 (R2's second conv, forward and input
        /// gradient: 3.7M floats a step).
        fn write_outputs(
            &self,
            rows: &[f32],
            images: usize,
            oc: usize,
            out: &mut [MaybeUninit<f32>],
            layout: PlaneLayout,
            epilogue: Option<&OutputEpilogue>,
        ) => output_planes
    );
    multiversioned!(
        /// See [`output_transform`](Self::output_transform).
        fn transform_output(
            &self,
            m: &[f32],
            images: usize,
            first: usize,
            stride: usize,
            out_rows: &mut [f32],
            columns: &mut [f32],
        ) => output_transform
    );
}

/// Kernels (output × input channels) up to which [`Winograd::transform_kernel`]
/// runs on the calling thread: R3's largest bank, 64 × 64, takes a few microseconds
/// there, about what handing it to the pool costs, and with one image per call it is
/// most of a layer's work besides the products.
const SERIAL_KERNELS: usize = 64 * 64;

/// Columns of the products for `slots` tile slots: rounded up to a multiple of 16,
/// whole AVX-512 vectors of [`gemm`](super::gemm)'s broadcast kernels. (Chosen for
/// the `gemm` crate, which copied an operand whose rows were not a multiple of its
/// vector width; our kernels mask a short vector instead. Without the rounding,
/// measured 2026-12-02 on the release bench, alternated, idle: one thread R1, R2
/// and R3 steps 1-2% faster, two threads R3 1-3% slower. Kept.)
fn columns(slots: usize) -> usize {
    slots.next_multiple_of(16)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_transform_of_a_delta_is_g_column_times_row() {
        // g = δ at the centre: G·g·Gᵀ = G[:,1]·G[:,1]ᵀ with G[:,1] = [0, −⅙, ⅙, 1/12, −1/12, 0].
        let wg = Winograd::new(1, 1, (6, 6), (0, 0), (4, 4));
        let mut k = [0.0f32; 9];
        k[4] = 1.0;
        let u = wg.transform_kernel(&k, false);
        let col = [0.0, -1.0 / 6.0, 1.0 / 6.0, 1.0 / 12.0, -1.0 / 12.0, 0.0];
        for i in 0..6 {
            for j in 0..6 {
                let want: f32 = col[i] * col[j];
                assert!(
                    (u[i * 6 + j] - want).abs() < 1e-7,
                    "U[{i}][{j}] = {}, want {want}",
                    u[i * 6 + j]
                );
            }
        }
        // Swapped and rotated: the delta stays at the centre.
        assert_eq!(wg.transform_kernel(&k, true), u);
    }

    #[test]
    fn kernel_transform_is_g_g_gt_per_kernel_in_its_slot() {
        // U_ξ[oc][ic] = (G·g·Gᵀ)[ξ] with matrices, for every kernel; swapped, g is
        // the forward kernel [ic][oc] rotated by 180°.
        let (o, c) = (3, 5);
        let weight: Vec<f32> = (0..o * c * 9)
            .map(|i| ((i * 37 % 23) as f32 - 11.0) / 7.0)
            .collect();
        let g: [[f32; 3]; 6] = [
            [0.25, 0.0, 0.0],
            [-1.0 / 6.0, -1.0 / 6.0, -1.0 / 6.0],
            [-1.0 / 6.0, 1.0 / 6.0, -1.0 / 6.0],
            [1.0 / 24.0, 1.0 / 12.0, 1.0 / 6.0],
            [1.0 / 24.0, -1.0 / 12.0, 1.0 / 6.0],
            [0.0, 0.0, 1.0],
        ];
        let wg = Winograd::new(c, o, (6, 6), (0, 0), (4, 4));
        for swapped in [false, true] {
            let u = wg.transform_kernel(&weight, swapped);
            assert_eq!(u.len(), 36 * o * c);
            for oc in 0..o {
                for ic in 0..c {
                    let tap = |i: usize, j: usize| {
                        if swapped {
                            weight[(ic * o + oc) * 9 + (2 - i) * 3 + (2 - j)]
                        } else {
                            weight[(oc * c + ic) * 9 + i * 3 + j]
                        }
                    };
                    for xi in 0..36 {
                        let (i, j) = (xi / 6, xi % 6);
                        let want: f32 = (0..3)
                            .flat_map(|a| (0..3).map(move |b| (a, b)))
                            .map(|(a, b)| g[i][a] * tap(a, b) * g[j][b])
                            .sum();
                        let got = u[(oc * 36 + xi) * c + ic];
                        assert!(
                            (got - want).abs() < 1e-5,
                            "swapped {swapped} U[{xi}][{oc}][{ic}] = {got}, want {want}"
                        );
                    }
                }
            }
        }
    }
}
