//! 2-d convolution (cross-correlation, as in every framework), forward and backward.
//!
//! Algorithm: im2col + GEMM (see [`im2col`](super::im2col)). For a group of images,
//! the column matrix `col[K, B·P]` (`K = C·kh·kw` taps, `P = OH·OW` output pixels,
//! `B` images side by side) turns all three products into one matrix product each:
//!
//! - forward: `out[O, B·P] = W[O, K] · col`
//! - weight gradient: `dW[O, K] += G[O, B·P] · colᵀ`
//! - input gradient: `dcol[K, B·P] = Wᵀ · G`, then col2im adds `dcol` back into `dx`.
//!
//! Where it applies and pays, a product runs as Winograd's F(4×4, 3×3) instead
//! (see [`winograd`](super::winograd)): 4× fewer multiplications; and on request as
//! the direct loops of [`reference`](super::reference). Which one, for each of the
//! three products, is decided in one place: [`choose`](super::algorithm::choose).
//!
//! [`forward_with`] and [`backward_with`] run the products group by group and leave
//! what happens around them to the caller: each image's raw products go to a
//! `finish` hook (the plain conv adds the bias; the fused block of
//! [`conv_block`](super::conv_block) also pools and applies ReLU there, while the
//! products are in cache), and the backward pass asks a `gradient` hook for each
//! image's output gradient.
//!
//! Why this split: the batch is cut into one contiguous run of images per rayon
//! task; each task runs its products single-threaded ([`gemm_serial`]'s AVX-512
//! kernels, see [`matmul`]), so the two levels of parallelism never fight, and reuses
//! its thread's column buffers from call to call. Each task accumulates its own
//! `dW`/`db`, and the partial sums are added in task order, so the result is the
//! same, bit for bit, on every run with the same thread count.
//!
//! Images are grouped until a group has about [`TARGET_COLUMNS`] columns, because a
//! small layer has few output pixels per image (R1's second conv: 11×11 = 121). With
//! matrixmultiply this was a small gain; with the `gemm` crate it measured neutral
//! (13.4 vs 13.5 ms one thread on R1's conv), and it is kept as harmless.
//!
//! Measured lessons (2 cores, AVX-512): fresh large allocations cost page faults, so
//! the column buffers are per-thread and reused, and `dx` is written (zeroed) before
//! col2im reads it — reading fresh zeroed pages first maps the shared zero page, and
//! the write after it then costs a copy-on-write fault plus a TLB shootdown on every
//! core (this alone was half of the backward time).

use std::cell::RefCell;
use std::mem::MaybeUninit;
use std::sync::Mutex;

use ndarray::{ArrayD, ArrayView2, ArrayViewMut2, IxDyn, ShapeBuilder};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::algorithm::{winograd_forward_form, ConvAlgorithm, ConvAlgorithms, WinogradForm};
use super::gemm::gemm_serial;
use super::im2col::ConvGeometry;
use super::kernel_cache::{forward_kernel, forward_kernels, KernelCache};
use super::output_epilogue::OutputEpilogue;
use super::padding::Padding;
use super::reference;
use super::winograd::{PlaneLayout, Scratch, Winograd};
use crate::ops::batch_norm::{plane_moments, PlaneMoments};
use crate::ops::elementwise::sum;
use crate::ops::fresh::{as_slots, fresh, fresh_with, Slots};
use crate::ops::parallel::SharedMut;
use crate::tensor::Tensor;

/// Columns (images × output pixels) a group of images should fill before its
/// products run: fewer makes the GEMM inefficient, more costs cache.
const TARGET_COLUMNS: usize = 512;

/// Rayon tasks per thread: more than one lets a thread that was slowed down (by
/// another process) be caught up by the others.
pub(super) const TASKS_PER_THREAD: usize = 2;

/// Stride, padding and dilation of a [`Tensor::conv2d`], and the algorithm that
/// computes it. The default is PyTorch's: stride 1, no padding ([`Padding::Valid`]),
/// dilation 1; and [`ConvAlgorithm::Auto`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Conv2dOptions {
    /// Step of the window `(rows, columns)`.
    pub stride: (usize, usize),
    /// Padding of the input.
    pub padding: Padding,
    /// Spacing of the kernel taps `(rows, columns)`; 1 is a dense kernel.
    pub dilation: (usize, usize),
    /// How the convolution is computed; `Auto` (the default) picks the fastest.
    /// Model files store it by name (a layer forced to `Direct` loads forced), and
    /// files that lack it get `Auto`.
    #[serde(default)]
    pub algorithm: ConvAlgorithm,
}

impl Default for Conv2dOptions {
    fn default() -> Self {
        Conv2dOptions {
            stride: (1, 1),
            padding: Padding::Valid,
            dilation: (1, 1),
            algorithm: ConvAlgorithm::Auto,
        }
    }
}

impl Tensor {
    /// 2-d cross-correlation of a batch of images with a bank of filters, plus an
    /// optional bias per output channel.
    ///
    /// # Shapes
    /// input `[N, C, H, W]`, `weight` `[O, C, kh, kw]`, `bias` `[O]`
    /// → output `[N, O, OH, OW]`, where `OH, OW` follow from `opts.padding`
    /// (see [`Padding::resolve`]).
    ///
    /// Panics, naming `conv2d` and the shapes, if they do not fit together or the
    /// kernel does not fit in the padded input; and, naming the algorithm, if
    /// `opts.algorithm` forces one that cannot compute this geometry.
    ///
    /// ```
    /// use ferrocnn::{Conv2dOptions, Padding, Tensor};
    /// use ndarray::Array4;
    ///
    /// let x = Tensor::new(Array4::from_shape_vec((1, 1, 2, 2), vec![1.0f32, 2., 3., 4.]).unwrap().into_dyn());
    /// let k = Tensor::new(Array4::from_shape_vec((1, 1, 2, 2), vec![1.0f32, 2., 3., 4.]).unwrap().into_dyn());
    /// let same = Conv2dOptions { padding: Padding::Same, ..Default::default() };
    /// let y = x.conv2d(&k, None, &same);
    /// assert_eq!(y.value().as_slice().unwrap(), &[30.0, 14.0, 11.0, 4.0]);
    /// ```
    pub fn conv2d(&self, weight: &Tensor, bias: Option<&Tensor>, opts: &Conv2dOptions) -> Tensor {
        self.conv2d_keeping(weight, bias, opts, None)
    }

    /// [`conv2d`](Tensor::conv2d), taking Winograd's transformed kernels from
    /// `kernels` (and keeping them there) when the forward pass runs by Winograd: what
    /// [`Conv2d`](crate::nn::Conv2d) uses when nothing is recorded (see
    /// [`KernelCache`]).
    pub(crate) fn conv2d_keeping(
        &self,
        weight: &Tensor,
        bias: Option<&Tensor>,
        opts: &Conv2dOptions,
        kernels: Option<&mut KernelCache>,
    ) -> Tensor {
        let (value, Unrecorded { inputs, backward }) =
            self.conv2d_unrecorded(weight, bias, opts, kernels, None);
        let (o, p) = (value.shape()[1], value.shape()[2] * value.shape()[3]);
        Tensor::record("conv2d", &inputs, value, move |grad, needs| {
            let grad = grad.as_standard_layout();
            let grad = grad.as_slice().expect("standard layout");
            backward(needs, &|image, oc, plane| {
                plane.copy_from_slice(&grad[(image * o + oc) * p..][..p]);
            })
        })
    }

    /// The conv2d's output `[N, O, OH, OW]`, computed but not recorded, and its
    /// backward pass, which takes the output gradient plane by plane from whoever
    /// records the op: the plain conv from its own output gradient; batch norm, which
    /// records the two as one op, by computing its input gradient into the conv's
    /// planes while they are in cache (see
    /// [`batch_norm2d_then_from`](Tensor::batch_norm2d_then_from)). With `moments`, also each
    /// output plane's [`plane_moments`], `N·O` of them in memory order, taken while
    /// the plane is in cache: what the batch norm after the conv would read the
    /// output again for. `kernels` as in [`conv2d_keeping`](Self::conv2d_keeping).
    pub(crate) fn conv2d_unrecorded<'t>(
        &'t self,
        weight: &'t Tensor,
        bias: Option<&'t Tensor>,
        opts: &Conv2dOptions,
        kernels: Option<&mut KernelCache>,
        moments: Option<&mut Vec<PlaneMoments>>,
    ) -> (ArrayD<f32>, Unrecorded<'t>) {
        let (geometry, n, o, algorithms) = conv2d_geometry("conv2d", self, weight, bias, opts);
        let (channels, h, w, kh, kw) = (
            geometry.channels,
            geometry.h,
            geometry.w,
            geometry.kh,
            geometry.kw,
        );
        let pad = (geometry.oh, geometry.ow);

        let x_value = self.shared_value();
        let w_value = weight.shared_value();
        let out = {
            let x = x_value.as_standard_layout();
            let wv = w_value.as_standard_layout();
            let b = bias.map(|b| b.value().as_standard_layout().into_owned());
            let wv = wv.as_slice().expect("standard layout");
            let u = forward_kernels(kernels, algorithms.forward, &geometry, o, n, &w_value, wv);
            forward(
                &geometry,
                algorithms.forward,
                n,
                o,
                x.as_slice().expect("standard layout"),
                wv,
                u.as_deref().map(Vec::as_slice),
                b.as_ref().map(|b| b.as_slice().expect("standard layout")),
                moments,
            )
        };
        let value = ArrayD::from_shape_vec(IxDyn(&[n, o, pad.0, pad.1]), out).expect("output size");

        let inputs: Vec<&Tensor> = [self, weight].into_iter().chain(bias).collect();
        let backward = move |needs: &[bool], gradient: PlaneGradient| {
            let x = x_value.as_standard_layout();
            let wv = w_value.as_standard_layout();
            let need_bias = needs.get(2).copied().unwrap_or(false);
            let grads = backward_with(
                &geometry,
                &algorithms,
                n,
                o,
                x.as_slice().expect("standard layout"),
                wv.as_slice().expect("standard layout"),
                [needs[0], needs[1], need_bias],
                (geometry.oh, geometry.ow),
                |image, planes| {
                    for oc in 0..o {
                        gradient(image, oc, planes.plane(oc));
                    }
                },
            );
            let shape =
                |s: &[usize], v: Vec<f32>| ArrayD::from_shape_vec(IxDyn(s), v).expect("gradient size");
            let mut out = vec![
                grads.dx.map(|v| shape(&[n, channels, h, w], v)),
                grads.dw.map(|v| shape(&[o, channels, kh, kw], v)),
            ];
            if needs.len() == 3 {
                out.push(grads.db.map(|v| shape(&[o], v)));
            }
            out
        };
        let backward: UnrecordedBackward = Box::new(backward);
        (value, Unrecorded { inputs, backward })
    }
}

/// A conv's output gradient, given plane by plane: `gradient(image, channel, plane)`
/// writes the gradient of that output plane (`OH·OW` values) into `plane`.
pub(crate) type PlaneGradient<'a> = &'a (dyn Fn(usize, usize, &mut [f32]) + Sync);

/// The backward pass of an [`Unrecorded`] conv: given which of its inputs need a
/// gradient and its output gradient, the gradients of its inputs, in their order.
pub(crate) type UnrecordedBackward = Box<dyn Fn(&[bool], PlaneGradient) -> Vec<Option<ArrayD<f32>>>>;

/// What recording a conv2d computed by
/// [`conv2d_unrecorded`](Tensor::conv2d_unrecorded) needs.
pub(crate) struct Unrecorded<'t> {
    /// The input, the weight and the bias if any: the op's inputs on the tape.
    pub inputs: Vec<&'t Tensor>,
    /// Its backward pass.
    pub backward: UnrecordedBackward,
}

/// Checks the shapes of a conv2d (panicking with a message that names `op` and the
/// shapes) and returns its geometry, the batch size, the output channels and the
/// algorithm of each pass (panicking if `opts.algorithm` cannot apply).
pub(super) fn conv2d_geometry(
    op: &str,
    x: &Tensor,
    weight: &Tensor,
    bias: Option<&Tensor>,
    opts: &Conv2dOptions,
) -> (ConvGeometry, usize, usize, ConvAlgorithms) {
    let (xs, ws) = (x.shape(), weight.shape());
    assert!(
        xs.len() == 4 && ws.len() == 4 && xs[1] == ws[1],
        "{op}: input {xs:?} and weight {ws:?} do not fit (expects input [N, C, H, W] \
         and weight [O, C, kh, kw] with the same C)"
    );
    let (n, channels, h, w) = (xs[0], xs[1], xs[2], xs[3]);
    let (o, kh, kw) = (ws[0], ws[2], ws[3]);
    if let Some(b) = bias {
        assert!(
            b.shape() == [o],
            "{op}: bias {:?} does not match weight {ws:?} (expects [{o}])",
            b.shape()
        );
    }
    let pad = opts
        .padding
        .resolve((h, w), (kh, kw), opts.stride, opts.dilation)
        .unwrap_or_else(|| {
            panic!(
                "{op}: kernel of weight {ws:?} (dilation {:?}) does not fit input {xs:?} \
             with padding {:?} and stride {:?}",
                opts.dilation, opts.padding, opts.stride
            )
        });
    let geometry = ConvGeometry {
        channels,
        h,
        w,
        kh,
        kw,
        stride: opts.stride,
        dilation: opts.dilation,
        top: pad.top,
        left: pad.left,
        oh: pad.out_h,
        ow: pad.out_w,
    };
    let algorithms = ConvAlgorithms::new(opts.algorithm, &geometry, o, n);
    (geometry, n, o, algorithms)
}

/// How a batch is cut: images per rayon task, images per product.
#[derive(Clone, Copy)]
struct Split {
    per_task: usize,
    group: usize,
}

impl Split {
    fn new(n: usize, p: usize) -> Split {
        let tasks = rayon::current_num_threads() * TASKS_PER_THREAD;
        let per_task = n.div_ceil(tasks).max(1);
        let group = TARGET_COLUMNS.div_ceil(p.max(1)).clamp(1, per_task);
        Split { per_task, group }
    }

    /// The split for a Winograd product, which may want larger groups.
    fn for_winograd(self, winograd: Option<&Winograd>) -> Split {
        let group = winograd.map_or(self.group, |wg| wg.group(self.group).min(self.per_task));
        Split { group, ..self }
    }

    /// The split for the direct loops with `direct`: one image per product, so that
    /// its `[O, P]` planes are a plain array for [`reference`].
    fn for_direct(self, direct: bool) -> Split {
        Split {
            group: if direct { 1 } else { self.group },
            ..self
        }
    }
}

thread_local! {
    /// Each thread's column and product buffers, kept between calls: allocating
    /// them fresh costs a page fault per 4 KiB on every call (about 10% of the
    /// layer's time, measured). Holds `(K + O) · group · P` floats per thread.
    static SCRATCH: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// Runs `f` on scratch slices of the given lengths (uninitialized: stale values from
/// earlier calls), from the thread's reusable buffer.
fn with_scratch<const N: usize, R>(lengths: [usize; N], f: impl FnOnce([&mut [f32]; N]) -> R) -> R {
    let total = lengths.iter().sum();
    SCRATCH.with(|scratch| match scratch.try_borrow_mut() {
        Ok(mut buffer) => {
            if buffer.len() < total {
                buffer.resize(total, 0.0);
            }
            f(split_scratch(&mut buffer, lengths))
        }
        // Re-entered on this thread (a nested conv, which we never issue): fresh memory.
        Err(_) => f(split_scratch(&mut vec![0.0f32; total], lengths)),
    })
}

fn split_scratch<const N: usize>(mut buffer: &mut [f32], lengths: [usize; N]) -> [&mut [f32]; N] {
    lengths.map(|len| {
        let (first, rest) = std::mem::take(&mut buffer).split_at_mut(len);
        buffer = rest;
        first
    })
}

/// `c ← a·b`, or `c += a·b` with `accumulate`, on the calling thread (the caller
/// already runs one task per thread).
fn matmul(a: &ArrayView2<f32>, b: &ArrayView2<f32>, accumulate: bool, c: &mut ArrayViewMut2<f32>) {
    gemm_serial(1.0, a, b, if accumulate { 1.0 } else { 0.0 }, c);
}

/// A `rows × cols` matrix in `data` with row stride `ld` (or, `transposed`, the
/// transpose of the `cols × rows` matrix with row stride `ld`).
fn mat(data: &[f32], rows: usize, cols: usize, ld: usize, transposed: bool) -> ArrayView2<'_, f32> {
    let strides = if transposed { (1, ld) } else { (ld, 1) };
    ArrayView2::from_shape((rows, cols).strides(strides), data).expect("matrix fits its slice")
}

fn mat_mut(data: &mut [f32], rows: usize, cols: usize, ld: usize) -> ArrayViewMut2<'_, f32> {
    ArrayViewMut2::from_shape((rows, cols).strides((ld, 1)), data).expect("matrix fits its slice")
}

/// One image's `O` result planes of `P` pixels inside a group's product matrix
/// `[O, B·P]` (row stride `ld`, this image's first column at `offset`).
pub(super) struct Planes<'a> {
    data: &'a mut [f32],
    ld: usize,
    offset: usize,
    p: usize,
}

impl Planes<'_> {
    /// Output channel `oc`'s plane of `P` pixels.
    pub(super) fn plane(&mut self, oc: usize) -> &mut [f32] {
        &mut self.data[oc * self.ld + self.offset..][..self.p]
    }
}

/// The forward pass on raw slices, by `algorithm`: `x` `[N, C, H, W]`, `w` `[O, K]`,
/// `bias` `[O]` → `[N, O, P]`; `transformed` as in [`forward_with`]; `moments`, if
/// given, is filled with each output plane's [`plane_moments`] (`N·O`, in memory
/// order).
#[allow(clippy::too_many_arguments)]
fn forward(
    g: &ConvGeometry,
    algorithm: ConvAlgorithm,
    n: usize,
    o: usize,
    x: &[f32],
    w: &[f32],
    transformed: Option<&[f32]>,
    bias: Option<&[f32]>,
    moments: Option<&mut Vec<PlaneMoments>>,
) -> Vec<f32> {
    let p = g.p();
    let mut planes_moments: Vec<PlaneMoments> = Vec::new();
    let wants_moments = moments.is_some();
    if wants_moments {
        planes_moments.reserve_exact(n * o);
    }
    // Each image's `O` entries are written by the one task that finishes the image.
    let moment_slots = SharedMut::new(planes_moments.spare_capacity_mut().as_mut_ptr());
    let out = forward_with(
        g,
        algorithm,
        n,
        o,
        x,
        w,
        transformed,
        o * p,
        &mut [],
        (None, (g.oh, g.ow)),
        |image, planes, out, _| {
            // SAFETY: entries `image·O ..` lie in the reserved capacity (`image < n`),
            // and only this call, the one for `image`, touches them.
            let mut slots = wants_moments.then(|| unsafe { moment_slots.slice(image * o, o) });
            for oc in 0..o {
                let b = bias.map_or(0.0, |b| b[oc]);
                out.extend(planes.plane(oc).iter().map(|&v| v + b));
                if let Some(slots) = &mut slots {
                    // The plane just written, read back from cache.
                    slots[oc].write(plane_moments(&out.written()[oc * p..]));
                }
            }
        },
    );
    if let Some(moments) = moments {
        if n * o * p > 0 {
            // SAFETY: `forward_with` called `finish` once for every image `0..n` (it
            // returns early only when `n·O·P == 0`), and each call wrote its `O`
            // entries.
            unsafe { planes_moments.set_len(n * o) };
        }
        *moments = planes_moments;
    }
    out
}

/// The products of the forward pass by `algorithm` (Direct, Im2col or Winograd),
/// group by group, each image's `[O, P]` result handed to `finish(image, planes,
/// out, argmax)` with that image's share of the outputs: `out_len` slots that
/// `finish` must fill, and of `argmax` (what the backward needs from a fused max
/// pooling; may be empty) an `n`th. `finish` turns the raw products (no bias yet)
/// into the op's output: the plain conv adds the bias, a fused block also pools and
/// applies ReLU (`conv_block`). `transformed`, if given, is Winograd's `U` of `w`
/// (kept by the caller, see [`KernelCache`]), used instead of transforming `w` again.
/// Returns the `n · out_len` outputs.
///
/// With an `epilogue` (whose outputs are the conv's own: `out_len = O·P`), Winograd
/// in its slot form writes each group's outputs through it straight into the
/// output, and `finish` is called only for the images of other algorithms: it must
/// then do what `epilogue` does ([`OutputEpilogue::write_plane`]).
///
/// `finish` reads only the top-left `extent` of each plane (a pooling that reads
/// less than the whole output): the slot-form Winograd then computes only that
/// part ([`Winograd::forward_over`]), and the rest of the planes holds whatever the
/// scratch buffer held.
#[allow(clippy::too_many_arguments)]
pub(super) fn forward_with<F>(
    g: &ConvGeometry,
    algorithm: ConvAlgorithm,
    n: usize,
    o: usize,
    x: &[f32],
    w: &[f32],
    transformed: Option<&[f32]>,
    out_len: usize,
    argmax: &mut [u32],
    (epilogue, extent): (Option<&OutputEpilogue>, (usize, usize)),
    finish: F,
) -> Vec<f32>
where
    F: Fn(usize, &mut Planes, &mut Slots, &mut [u32]) + Sync,
{
    let (k, p, image) = (g.k(), g.p(), g.channels * g.h * g.w);
    assert!(
        epilogue.is_none() || (out_len == o * p && extent == (g.oh, g.ow)),
        "forward_with: an epilogue writes the conv's {o}×{p} outputs an image, not {out_len} of {extent:?}"
    );
    if n * o * p == 0 {
        return vec![0.0; n * out_len];
    }
    let split = Split::new(n, p);
    let argmax_len = argmax.len() / n;
    let tasks = n.div_ceil(split.per_task);
    // Each task takes its own share (one lock per task, never contended).
    let argmax: Vec<Mutex<&mut [u32]>> = if argmax_len == 0 {
        (0..tasks).map(|_| Mutex::new(<&mut [u32]>::default())).collect()
    } else {
        argmax
            .chunks_mut(split.per_task * argmax_len)
            .map(Mutex::new)
            .collect()
    };
    let winograd = (algorithm == ConvAlgorithm::Winograd).then(|| Winograd::forward(g, o));
    let form = winograd_forward_form(g, o, n);
    let channel_form = winograd.is_some() && form == WinogradForm::Channels;
    // The channel form takes the groups as they come: it pads nothing.
    let slot_form = winograd
        .filter(|_| !channel_form)
        .map(|_| Winograd::forward_over(g, o, extent));
    let split = split
        .for_winograd(slot_form.as_ref())
        .for_direct(algorithm == ConvAlgorithm::Direct);
    let u = winograd.map(|_| match transformed {
        Some(u) => std::borrow::Cow::Borrowed(u),
        None => std::borrow::Cow::Owned(forward_kernel(g, o, form, w)),
    });
    let [v_len, m_len, work_len] = match (winograd, slot_form) {
        (_, Some(wg)) => wg.scratch_len(split.group),
        (Some(wg), None) => wg.channel_scratch_len(split.group),
        (None, None) => [0; 3],
    };
    let col_len = if algorithm == ConvAlgorithm::Im2col && !g.is_pointwise() {
        k * split.group * p
    } else {
        0
    };
    let kernel = w;
    let w = mat(w, o, k, k, false);
    let chunk = split.per_task * out_len;
    fresh(n * out_len, chunk, true, |at, out| {
        let task = at / chunk;
        let mut argmax = argmax[task].lock().expect("one task per share");
        let images = out.len() / out_len;
        let x = &x[task * split.per_task * image..];
        with_scratch(
            [col_len, o * split.group * p, v_len, m_len, work_len],
            |[col, product, v, m, work]| {
                for first in (0..images).step_by(split.group) {
                    let b = split.group.min(images - first);
                    let ld = b * p;
                    if let (Some(wg), Some(u), true) = (&winograd, &u, channel_form) {
                        let output = PlaneLayout::side_by_side(p, ld);
                        let scratch = Scratch { v, m, work };
                        let x = &x[first * image..(first + b) * image];
                        wg.run_channels(u, b, x, product, output, scratch);
                    } else if let (Some(wg), Some(u)) = (&slot_form, &u) {
                        let input = PlaneLayout::images(g.channels, g.h * g.w);
                        let x = &x[first * image..];
                        let scratch = Scratch { v, m, work };
                        if let Some(epilogue) = epilogue {
                            let epilogue = epilogue.for_images_from(task * split.per_task + first, out_len);
                            out.part(b * out_len, |group| {
                                let output = PlaneLayout::images(o, p);
                                wg.run(
                                    u,
                                    b,
                                    x,
                                    input,
                                    group.unwritten(),
                                    output,
                                    Some(&epilogue),
                                    scratch,
                                );
                                // SAFETY: `run` wrote every pixel of the group's planes.
                                unsafe { group.assume_written() };
                            });
                            continue;
                        }
                        let output = PlaneLayout::side_by_side(p, ld);
                        // SAFETY: `run` writes only values into `product`.
                        let product = unsafe { as_slots(product) };
                        wg.run(u, b, x, input, product, output, None, scratch);
                    } else if algorithm == ConvAlgorithm::Direct {
                        // One image (`for_direct`): `product` is its `[O, P]`.
                        let x = &x[first * image..(first + 1) * image];
                        reference::forward(g, 1, o, x, kernel, None, &mut product[..o * p]);
                    } else if g.is_pointwise() {
                        // A 1×1 kernel, stride 1, no padding: an image's `[C, P]`
                        // planes are its column matrix already.
                        for i in 0..b {
                            let x = mat(&x[(first + i) * image..], k, p, p, false);
                            matmul(&w, &x, false, &mut mat_mut(&mut product[i * p..], o, p, ld));
                        }
                    } else {
                        for i in 0..b {
                            g.im2col(&x[(first + i) * image..], col, ld, i * p);
                        }
                        matmul(
                            &w,
                            &mat(col, k, ld, ld, false),
                            false,
                            &mut mat_mut(product, o, ld, ld),
                        );
                    }
                    for i in 0..b {
                        let mut planes = Planes {
                            data: &mut product[..],
                            ld,
                            offset: i * p,
                            p,
                        };
                        let image = first + i;
                        let argmax = &mut argmax[image * argmax_len..(image + 1) * argmax_len];
                        out.part(out_len, |out| {
                            finish(task * split.per_task + image, &mut planes, out, argmax)
                        });
                    }
                }
            },
        );
    })
}

/// Zeros in every `h × w` plane of `planes` outside its top-left `rows × cols`,
/// which the Winograd input gradient wrote (see [`Winograd::input_gradient`]).
fn zero_outside(planes: &mut [MaybeUninit<f32>], (h, w): (usize, usize), (rows, cols): (usize, usize)) {
    if (rows, cols) == (h, w) || h * w == 0 {
        return;
    }
    for plane in planes.chunks_exact_mut(h * w) {
        let (inside, below) = plane.split_at_mut(rows * w);
        for row in inside.chunks_exact_mut(w) {
            row[cols..].fill(MaybeUninit::new(0.0));
        }
        below.fill(MaybeUninit::new(0.0));
    }
}

/// A backward task's share of the input gradient `dx`.
enum DxShare<'a> {
    /// Not initialized: Winograd, or im2col's `col2im_written` (stride 2), writes
    /// every pixel.
    Overwrite(&'a mut [MaybeUninit<f32>]),
    /// Zeroed: col2im and the direct loops add into it (the pointwise product
    /// overwrites it, and takes it zeroed for simplicity).
    Accumulate(&'a mut [f32]),
}

/// Gradients of one conv2d; `None` where not asked for.
pub(super) struct ConvGrads {
    pub dx: Option<Vec<f32>>,
    pub dw: Option<Vec<f32>>,
    pub db: Option<Vec<f32>>,
}

/// The backward pass given `gradient(image, planes)`, which writes the gradient
/// with respect to the raw products (the conv output before any fused epilogue) of
/// image `image` into its `O` planes, non-zero only in their top-left `extent`
/// (`(OH, OW)` unless a fused pooling reads less of the output). The input gradient
/// and the weight gradient each run by their algorithm in `algorithms`; the bias
/// gradient goes with the weight gradient's (the direct loops, or a sum per row).
#[allow(clippy::too_many_arguments)]
pub(super) fn backward_with<F>(
    g: &ConvGeometry,
    algorithms: &ConvAlgorithms,
    n: usize,
    o: usize,
    x: &[f32],
    w: &[f32],
    needs: [bool; 3],
    extent: (usize, usize),
    gradient: F,
) -> ConvGrads
where
    F: Fn(usize, &mut Planes) + Sync,
{
    let [need_x, need_w, need_b] = needs;
    let (k, p, image) = (g.k(), g.p(), g.channels * g.h * g.w);
    let split = Split::new(n, p);
    let wt = mat(w, k, o, k, true);
    // The algorithm of each gradient asked for; `None` where not asked for.
    let x_algorithm = need_x.then_some(algorithms.input_gradient);
    let w_algorithm = need_w.then_some(algorithms.weight_gradient);
    let b_direct = need_b && algorithms.weight_gradient == ConvAlgorithm::Direct;
    let uses = |algorithm| x_algorithm == Some(algorithm) || w_algorithm == Some(algorithm);
    let winograd =
        (x_algorithm == Some(ConvAlgorithm::Winograd)).then(|| Winograd::input_gradient(g, o, extent));
    let winograd_w =
        (w_algorithm == Some(ConvAlgorithm::Winograd)).then(|| Winograd::for_weight_gradient(g, o, extent));
    let split = split
        .for_winograd(winograd.as_ref())
        .for_winograd(winograd_w.as_ref())
        .for_direct(uses(ConvAlgorithm::Direct) || b_direct);
    let u = winograd.map(|wg| wg.transform_kernel(w, true));
    let [v_len, m_len, work_len] = [winograd, winograd_w]
        .iter()
        .flatten()
        .map(|wg| wg.scratch_len(split.group))
        .fold([0; 3], |most, lens| std::array::from_fn(|i| most[i].max(lens[i])));

    // One task: images `first_image..` (`x` and, if asked, `dx` hold exactly its
    // images), returning its partial dW, db.
    let task = |first_image: usize, x: &[f32], mut dx: Option<DxShare>| -> (Vec<f32>, Vec<f32>) {
        let images = x.len() / image;
        let mut dw = vec![0.0f32; if need_w { o * k } else { 0 }];
        // The weight gradient in Winograd's domain, `[ξ][O][C]`, summed over the task.
        let mut uw = vec![0.0f32; winograd_w.map_or(0, |_| Winograd::POSITIONS * o * g.channels)];
        let mut db = vec![0.0f32; if need_b { o } else { 0 }];
        let col_len = if uses(ConvAlgorithm::Im2col) && !g.is_pointwise() {
            k * split.group * p
        } else {
            0
        };
        with_scratch(
            [col_len, o * split.group * p, v_len, m_len, work_len],
            |[col, gathered, v, m, work]| {
                for first in (0..images).step_by(split.group) {
                    let b = split.group.min(images - first);
                    let ld = b * p;
                    // G[O, B·P]: the group's output gradients side by side.
                    for i in 0..b {
                        let mut planes = Planes {
                            data: &mut gathered[..],
                            ld,
                            offset: i * p,
                            p,
                        };
                        gradient(first_image + first + i, &mut planes);
                    }
                    let gmat = mat(gathered, o, ld, ld, false);
                    // With the direct loops, one image (`for_direct`): its planes are
                    // `gathered[..O·P]`, its input `x_image`.
                    let x_image = &x[first * image..(first + 1) * image];
                    if b_direct {
                        reference::bias_gradient(g, 1, o, &gathered[..o * p], &mut db);
                    } else if need_b {
                        for (db, row) in db.iter_mut().zip(gathered.chunks_exact(ld)) {
                            *db += sum(row);
                        }
                    }
                    if let Some(wg) = &winograd_w {
                        let input = PlaneLayout::images(g.channels, g.h * g.w);
                        let grad = PlaneLayout::side_by_side(p, ld);
                        let scratch = Scratch {
                            v: &mut *v,
                            m: &mut *m,
                            work: &mut *work,
                        };
                        wg.weight_gradient(b, &x[first * image..], input, gathered, grad, &mut uw, scratch);
                    } else if w_algorithm == Some(ConvAlgorithm::Direct) {
                        reference::weight_gradient(g, 1, o, x_image, &gathered[..o * p], &mut dw);
                    } else if need_w && g.is_pointwise() {
                        for i in 0..b {
                            let g_image = mat(&gathered[i * p..], o, p, ld, false);
                            let xt = mat(&x[(first + i) * image..], p, k, p, true);
                            matmul(&g_image, &xt, true, &mut mat_mut(&mut dw, o, k, k));
                        }
                    } else if need_w {
                        for i in 0..b {
                            g.im2col(&x[(first + i) * image..], col, ld, i * p);
                        }
                        let colt = mat(col, ld, k, ld, true);
                        matmul(&gmat, &colt, true, &mut mat_mut(&mut dw, o, k, k));
                    }
                    match dx.as_mut() {
                        Some(DxShare::Overwrite(dx)) if x_algorithm == Some(ConvAlgorithm::Im2col) => {
                            matmul(&wt, &gmat, false, &mut mat_mut(col, k, ld, ld));
                            for i in 0..b {
                                let dx = &mut dx[(first + i) * image..(first + i + 1) * image];
                                g.col2im_written(col, ld, i * p, dx);
                            }
                        }
                        Some(DxShare::Overwrite(dx)) => {
                            let (wg, u) = (winograd.as_ref(), u.as_ref());
                            let (wg, u) = (wg.expect("Winograd"), u.expect("transformed kernels"));
                            let input = PlaneLayout::side_by_side(p, ld);
                            let output = PlaneLayout::images(g.channels, g.h * g.w);
                            let scratch = Scratch {
                                v: &mut *v,
                                m: &mut *m,
                                work: &mut *work,
                            };
                            let dx = &mut dx[first * image..(first + b) * image];
                            wg.run(u, b, gathered, input, dx, output, None, scratch);
                            zero_outside(dx, (g.h, g.w), wg.extent());
                        }
                        Some(DxShare::Accumulate(dx)) if x_algorithm == Some(ConvAlgorithm::Direct) => {
                            let dx = &mut dx[first * image..(first + 1) * image];
                            reference::input_gradient(g, 1, o, w, &gathered[..o * p], dx);
                        }
                        Some(DxShare::Accumulate(dx)) if g.is_pointwise() => {
                            // Wᵀ·G of an image is its input gradient, written in place.
                            for i in 0..b {
                                let g_image = mat(&gathered[i * p..], o, p, ld, false);
                                let dx = &mut dx[(first + i) * image..(first + i + 1) * image];
                                matmul(&wt, &g_image, false, &mut mat_mut(dx, k, p, p));
                            }
                        }
                        Some(DxShare::Accumulate(dx)) => {
                            matmul(&wt, &gmat, false, &mut mat_mut(col, k, ld, ld));
                            for i in 0..b {
                                let dx = &mut dx[(first + i) * image..(first + i + 1) * image];
                                g.col2im(col, ld, i * p, dx);
                            }
                        }
                        None => {}
                    }
                }
            },
        );
        if let Some(wg) = &winograd_w {
            dw = wg.weight_from_transformed(&uw);
        }
        (dw, db)
    };

    let chunk = split.per_task * image;
    let (dx, partials) = if n * o * p == 0 || !(need_x || need_w || need_b) {
        (need_x.then(|| vec![0.0f32; n * image]), Vec::new())
    } else if need_x {
        // Each task's share of dx. Winograd writes every pixel of it, so it is left
        // as it comes (zeroing it was a pass over R3's largest activations for
        // nothing). col2im and the direct loops add into it, so the task zeroes it
        // first, which also spares fresh pages a copy-on-write fault each (they map
        // to the shared zero page on a read; that was a quarter of the backward
        // time, measured).
        let overwrites = x_algorithm == Some(ConvAlgorithm::Winograd)
            || (x_algorithm == Some(ConvAlgorithm::Im2col) && g.col2im_writes());
        let (dx, partials) = fresh_with(n * image, chunk, true, |at, dx| {
            let x = &x[at..at + dx.len()];
            if !overwrites {
                return task(at / image, x, Some(DxShare::Accumulate(dx.zeroed())));
            }
            let partial = task(at / image, x, Some(DxShare::Overwrite(dx.unwritten())));
            // SAFETY: the task ran Winograd's `run`, or `col2im_written`, on every
            // group of its images, which write every pixel of every plane of each
            // image (their docs).
            unsafe { dx.assume_written() };
            partial
        });
        (Some(dx), partials)
    } else {
        let partials = x
            .par_chunks(chunk.max(1))
            .enumerate()
            .map(|(t, x)| task(t * split.per_task, x, None))
            .collect();
        (None, partials)
    };
    // Fixed-order reduction: deterministic for a given thread count.
    let mut dw = need_w.then(|| vec![0.0f32; o * k]);
    let mut db = need_b.then(|| vec![0.0f32; o]);
    for (pdw, pdb) in &partials {
        if let Some(dw) = dw.as_mut() {
            dw.iter_mut().zip(pdw).for_each(|(a, b)| *a += b);
        }
        if let Some(db) = db.as_mut() {
            db.iter_mut().zip(pdb).for_each(|(a, b)| *a += b);
        }
    }
    ConvGrads { dx, dw, db }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gradcheck::random_like;

    /// The moments a conv takes of its output planes are those of the planes it
    /// returns, bit for bit, by every algorithm, with a bias and without, on one
    /// thread and on three (whose tasks split the batch unevenly).
    #[test]
    fn moments_taken_in_the_epilogue_are_those_of_the_output_planes() {
        let cases = [
            ([5, 8, 7, 7], 16, Padding::Explicit(1, 1)),
            ([3, 16, 14, 14], 8, Padding::Explicit(1, 1)),
            ([4, 3, 9, 11], 5, Padding::Valid),
        ];
        for (case, (input, o, padding)) in cases.into_iter().enumerate() {
            let seed = 10 * case as u64;
            let x = Tensor::new(random_like(&input, seed));
            let w = Tensor::new(random_like(&[o, input[1], 3, 3], seed + 1));
            let b = Tensor::new(random_like(&[o], seed + 2));
            for algorithm in [
                ConvAlgorithm::Direct,
                ConvAlgorithm::Im2col,
                ConvAlgorithm::Winograd,
            ] {
                for bias in [None, Some(&b)] {
                    let opts = Conv2dOptions {
                        padding,
                        algorithm,
                        ..Conv2dOptions::default()
                    };
                    for threads in [1, 3] {
                        let pool = rayon::ThreadPoolBuilder::new()
                            .num_threads(threads)
                            .build()
                            .expect("thread pool");
                        let (g, n, _, algorithms) = conv2d_geometry("test", &x, &w, bias, &opts);
                        let (xs, ws) = (x.value(), w.value());
                        let slice = |t: &Tensor| t.value().as_slice().expect("standard layout").to_vec();
                        let bs = bias.map(slice);
                        let mut moments = Vec::new();
                        let y = pool.install(|| {
                            let (xs, ws) = (xs.as_slice().unwrap(), ws.as_slice().unwrap());
                            let (f, bs) = (algorithms.forward, bs.as_deref());
                            forward(&g, f, n, o, xs, ws, None, bs, Some(&mut moments))
                        });
                        assert_eq!(y.len(), x.conv2d(&w, bias, &opts).value().len());
                        let want: Vec<PlaneMoments> = y.chunks_exact(g.p()).map(plane_moments).collect();
                        assert_eq!(want.len(), n * o);
                        assert_eq!(
                            moments,
                            want,
                            "{algorithm:?} on {input:?}, bias {}, {threads} threads",
                            bias.is_some()
                        );
                    }
                }
            }
        }
    }
}
