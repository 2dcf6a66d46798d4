//! Pooling: max, average and global average, forward and backward.
//!
//! Every `[H, W]` plane of an `[N, C, H, W]` tensor is pooled independently, so the
//! work is split over the `N·C` planes with rayon, and each plane is a plain loop
//! over slices. Windows may overlap (kernel > stride) and may hang over the padding:
//! the backward passes *scatter-add* into the input gradient window by window, so an
//! input pixel shared by several windows receives the sum of their contributions
//! (candle's pooling backward assumes kernel == stride and gets this wrong).
//!
//! The input gradients are zeroed plane by plane before the scatter-add reads them:
//! reading a fresh zeroed allocation first maps the shared zero page, and the write
//! after it then costs a copy-on-write fault plus a TLB shootdown on every core.
//!
//! Max pooling records, for each output, the index of the winning input within its
//! plane (`u32`), and the backward routes the gradient there. Padding never wins: it
//! counts as −∞, and every window holds at least one real pixel because the padding
//! on each side is required to be smaller than the kernel.

use ndarray::{ArrayD, IxDyn};
use rayon::prelude::*;

use super::padding::{Padding, ResolvedPadding};
use crate::tensor::Tensor;

/// The geometry of one pooling: input plane, window, stride, padding, output plane.
#[derive(Clone, Copy, Debug)]
pub(super) struct PoolGeometry {
    h: usize,
    w: usize,
    kernel: (usize, usize),
    stride: (usize, usize),
    pad: ResolvedPadding,
}

impl PoolGeometry {
    /// The geometry for input `shape` `[N, C, H, W]`; panics naming `op` if the
    /// window does not fit.
    pub(super) fn new(
        op: &str,
        shape: &[usize],
        kernel: (usize, usize),
        stride: (usize, usize),
        padding: Padding,
    ) -> Self {
        assert!(
            shape.len() == 4,
            "{op}: expects a 4-d NCHW tensor, got shape {shape:?}"
        );
        let (h, w) = (shape[2], shape[3]);
        let pad = padding.resolve((h, w), kernel, stride, (1, 1)).unwrap_or_else(|| {
            panic!("{op}: kernel {kernel:?} with stride {stride:?} and padding {padding:?} does not fit input {shape:?}")
        });
        assert!(
            pad.top.max(pad.bottom) < kernel.0 && pad.left.max(pad.right) < kernel.1,
            "{op}: padding {padding:?} must be smaller than the kernel {kernel:?} on every side (input {shape:?})"
        );
        PoolGeometry {
            h,
            w,
            kernel,
            stride,
            pad,
        }
    }

    /// Pixels of one output plane.
    pub(super) fn out_len(&self) -> usize {
        self.pad.out_h * self.pad.out_w
    }

    /// The in-bounds part of output `(oy, ox)`'s window: input rows and columns.
    #[inline]
    fn window(&self, oy: usize, ox: usize) -> (std::ops::Range<usize>, std::ops::Range<usize>) {
        let (y0, x0) = (oy * self.stride.0, ox * self.stride.1);
        let rows = y0.saturating_sub(self.pad.top)..(y0 + self.kernel.0 - self.pad.top).min(self.h);
        let cols = x0.saturating_sub(self.pad.left)..(x0 + self.kernel.1 - self.pad.left).min(self.w);
        (rows, cols)
    }

    fn is_2x2_stride_2_valid(&self) -> bool {
        let p = self.pad;
        self.kernel == (2, 2) && self.stride == (2, 2) && p.top + p.bottom + p.left + p.right == 0
    }

    /// Output shape for input shape `[N, C, H, W]`.
    pub(super) fn out_shape(&self, shape: &[usize]) -> [usize; 4] {
        [shape[0], shape[1], self.pad.out_h, self.pad.out_w]
    }
}

/// Max pooling of one `[H, W]` plane `x` into `out`, with the index of each window's
/// first maximum in `argmax` (a NaN wins, as in PyTorch).
pub(super) fn max_pool_plane(geometry: &PoolGeometry, x: &[f32], out: &mut [f32], argmax: &mut [u32]) {
    let nan = if geometry.is_2x2_stride_2_valid() {
        max_plane_2x2(geometry.w, x, out, argmax)
    } else {
        max_plane(geometry, x, out, argmax)
    };
    if nan {
        max_plane_nan(geometry, x, out, argmax);
    }
}

/// The backward pass of [`max_pool_plane`]: `dx` (the input plane's gradient, whose
/// old contents are ignored) gets `grad(j)` at the winner `argmax[j]` of each window
/// `j`, summed where overlapping windows share a winner, and zero elsewhere.
///
/// (A one-pass form for disjoint 2×2 windows, writing each pixel its window's
/// gradient or 0 by a select, measured 1.3 ms slower per R1 step than this zeroing
/// plus scatter.)
#[inline]
pub(super) fn max_pool_plane_backward(argmax: &[u32], grad: impl Fn(usize) -> f32, dx: &mut [f32]) {
    // Write before the scatter-add reads (see the module docs).
    dx.fill(0.0);
    for (j, &winner) in argmax.iter().enumerate() {
        dx[winner as usize] += grad(j);
    }
}

/// Max pooling of one plane, any geometry. Returns whether the plane holds a NaN,
/// which this pass ignores (see [`max_plane_nan`]).
///
/// In two passes per window, both free of data-dependent branches: the maximum by
/// `f32::max`, then the first position holding it by a chain of selects. On real
/// data "is this one larger?" is a coin flip, and a compare-and-branch loop (or
/// LLVM's branchy lowering of a compare-and-select one) was 7x slower (measured).
fn max_plane(geometry: &PoolGeometry, x: &[f32], out: &mut [f32], argmax: &mut [u32]) -> bool {
    let w = geometry.w;
    let (mut i, mut nan) = (0, false);
    for oy in 0..geometry.pad.out_h {
        for ox in 0..geometry.pad.out_w {
            let (rows, cols) = geometry.window(oy, ox);
            let mut best = f32::NEG_INFINITY;
            for r in rows.clone() {
                for &v in &x[r * w + cols.start..r * w + cols.end] {
                    best = best.max(v);
                    nan |= v.is_nan();
                }
            }
            let mut at = (rows.start * w + cols.start) as u32;
            for r in rows.clone().rev() {
                for c in cols.clone().rev() {
                    at = if x[r * w + c] == best {
                        (r * w + c) as u32
                    } else {
                        at
                    };
                }
            }
            out[i] = best;
            argmax[i] = at;
            i += 1;
        }
    }
    nan
}

/// Max pooling of one plane with the ubiquitous 2×2 window, stride 2, no padding:
/// the same two passes as [`max_plane`], unrolled; 7x faster than a compare-and-
/// branch loop on R1's first pool (measured). Returns whether the plane holds a NaN.
fn max_plane_2x2(w: usize, x: &[f32], out: &mut [f32], argmax: &mut [u32]) -> bool {
    let out_w = w / 2;
    let mut nan = false;
    for (oy, (out, argmax)) in out
        .chunks_exact_mut(out_w)
        .zip(argmax.chunks_exact_mut(out_w))
        .enumerate()
    {
        let (t, u) = (2 * oy * w, (2 * oy + 1) * w);
        let (top, bottom) = (&x[t..t + 2 * out_w], &x[u..u + 2 * out_w]);
        #[cfg(target_arch = "x86_64")]
        let done = {
            let (done, has_nan) = sse::max_row_2x2(top, bottom, (t as u32, u as u32), out, argmax);
            nan |= has_nan;
            done
        };
        #[cfg(not(target_arch = "x86_64"))]
        let done = 0;
        for ox in done..out_w {
            let (a0, a1, b0, b1) = (top[2 * ox], top[2 * ox + 1], bottom[2 * ox], bottom[2 * ox + 1]);
            let (t, u) = ((t + 2 * ox) as u32, (u + 2 * ox) as u32);
            let m = a0.max(a1).max(b0.max(b1));
            nan |= a0.is_nan() | a1.is_nan() | b0.is_nan() | b1.is_nan();
            let mut at = u + 1;
            at = if b0 == m { u } else { at };
            at = if a1 == m { t + 1 } else { at };
            at = if a0 == m { t } else { at };
            out[ox] = m;
            argmax[ox] = at;
        }
    }
    nan
}

/// The 2×2 max pool of one pair of rows, four outputs at a time with SSE2 (part of
/// every x86-64 CPU). Written with intrinsics because the compiler's vectorization
/// of the plain loop (NaN-aware `f32::max`, 64-bit index arithmetic) was 10–20%
/// slower on the pooling benchmarks, and a select form of it was turned into
/// branches, 3x slower (measured).
#[cfg(target_arch = "x86_64")]
mod sse {
    use std::arch::x86_64::*;

    /// Pools `top`/`bottom` (`2·n` floats each) into `out`/`argmax` (`n` each), whose
    /// rows start at plane offsets `(t, u)`, in blocks of four. Returns how many
    /// outputs it wrote (the rest is left to the scalar loop) and whether it saw a
    /// NaN. The first maximum in reading order wins: left unless right is larger,
    /// then top unless bottom is larger (the scalar loop's choice when no NaN).
    pub(super) fn max_row_2x2(
        top: &[f32],
        bottom: &[f32],
        (t, u): (u32, u32),
        out: &mut [f32],
        argmax: &mut [u32],
    ) -> (usize, bool) {
        let n = out
            .len()
            .min(argmax.len())
            .min(top.len() / 2)
            .min(bottom.len() / 2);
        let blocks = n / 4;
        // SAFETY: SSE2 is part of x86-64. Block `b` reads `top`/`bottom` at
        // `8b .. 8b + 8` and writes `out`/`argmax` at `4b .. 4b + 4`, in bounds
        // because `4·blocks ≤ n` and `top`, `bottom` hold at least `2n` floats.
        unsafe {
            let mut nan = _mm_setzero_ps();
            let offsets = _mm_set_epi32(6, 4, 2, 0);
            for b in 0..blocks {
                let (ta, tb) = (
                    _mm_loadu_ps(top.as_ptr().add(8 * b)),
                    _mm_loadu_ps(top.as_ptr().add(8 * b + 4)),
                );
                let (ba, bb) = (
                    _mm_loadu_ps(bottom.as_ptr().add(8 * b)),
                    _mm_loadu_ps(bottom.as_ptr().add(8 * b + 4)),
                );
                // Even (left) and odd (right) columns of the four windows.
                let (a0, a1) = (
                    _mm_shuffle_ps::<0b10_00_10_00>(ta, tb),
                    _mm_shuffle_ps::<0b11_01_11_01>(ta, tb),
                );
                let (b0, b1) = (
                    _mm_shuffle_ps::<0b10_00_10_00>(ba, bb),
                    _mm_shuffle_ps::<0b11_01_11_01>(ba, bb),
                );
                nan = _mm_or_ps(nan, _mm_or_ps(_mm_cmpunord_ps(a0, a1), _mm_cmpunord_ps(b0, b1)));
                let right_top = _mm_cmpgt_ps(a1, a0);
                let right_bottom = _mm_cmpgt_ps(b1, b0);
                let top_max = select(right_top, a1, a0);
                let bottom_max = select(right_bottom, b1, b0);
                let lower = _mm_cmpgt_ps(bottom_max, top_max);
                _mm_storeu_ps(out.as_mut_ptr().add(4 * b), select(lower, bottom_max, top_max));
                // Indices: row start + 2·ox + (1 if the right column won).
                let column = _mm_add_epi32(_mm_set1_epi32((8 * b) as i32), offsets);
                let one = |mask: __m128| _mm_srli_epi32::<31>(_mm_castps_si128(mask));
                let top_at = _mm_add_epi32(_mm_add_epi32(_mm_set1_epi32(t as i32), column), one(right_top));
                let bottom_at =
                    _mm_add_epi32(_mm_add_epi32(_mm_set1_epi32(u as i32), column), one(right_bottom));
                let at = select(lower, _mm_castsi128_ps(bottom_at), _mm_castsi128_ps(top_at));
                _mm_storeu_si128(
                    argmax.as_mut_ptr().add(4 * b) as *mut __m128i,
                    _mm_castps_si128(at),
                );
            }
            (4 * blocks, _mm_movemask_ps(nan) != 0)
        }
    }

    /// `mask ? a : b`, lane by lane.
    #[inline(always)]
    unsafe fn select(mask: __m128, a: __m128, b: __m128) -> __m128 {
        // SAFETY: SSE2 is part of x86-64.
        unsafe { _mm_or_ps(_mm_and_ps(mask, a), _mm_andnot_ps(mask, b)) }
    }
}

/// Max pooling of one plane that holds a NaN (rare, so simple): a window with a NaN
/// gives NaN and points at its first NaN, as in PyTorch; others as usual.
fn max_plane_nan(geometry: &PoolGeometry, x: &[f32], out: &mut [f32], argmax: &mut [u32]) {
    let w = geometry.w;
    let mut i = 0;
    for oy in 0..geometry.pad.out_h {
        for ox in 0..geometry.pad.out_w {
            let (rows, cols) = geometry.window(oy, ox);
            let (mut best, mut at) = (f32::NEG_INFINITY, rows.start * w + cols.start);
            'window: for r in rows {
                for c in cols.clone() {
                    let v = x[r * w + c];
                    if v > best || v.is_nan() {
                        (best, at) = (v, r * w + c);
                        if v.is_nan() {
                            break 'window;
                        }
                    }
                }
            }
            out[i] = best;
            argmax[i] = at as u32;
            i += 1;
        }
    }
}

impl Tensor {
    /// Max pooling over `kernel` windows moved by `stride`. Padding counts as −∞ (it
    /// never wins); each side's padding must be smaller than the kernel.
    ///
    /// # Shapes
    /// `[N, C, H, W]` → `[N, C, OH, OW]`, with `OH, OW` from [`Padding::resolve`].
    pub fn max_pool2d(&self, kernel: (usize, usize), stride: (usize, usize), padding: Padding) -> Tensor {
        let geometry = PoolGeometry::new("max_pool2d", self.shape(), kernel, stride, padding);
        let x = self.value().as_standard_layout();
        let x = x.as_slice().expect("standard layout");
        let (plane, out_plane) = (geometry.h * geometry.w, geometry.out_len());
        let planes = x.len() / plane.max(1);
        let mut out = vec![0.0f32; planes * out_plane];
        let mut argmax = vec![0u32; planes * out_plane];
        if !out.is_empty() {
            out.par_chunks_mut(out_plane)
                .zip(argmax.par_chunks_mut(out_plane))
                .zip(x.par_chunks(plane))
                .for_each(|((out, argmax), x)| max_pool_plane(&geometry, x, out, argmax));
        }
        self.record_pool("max_pool2d", &geometry, out, move |p, g, dx| {
            max_pool_plane_backward(&argmax[p * out_plane..(p + 1) * out_plane], |j| g[j], dx)
        })
    }

    /// Average pooling over `kernel` windows moved by `stride`, with zero padding.
    /// With `count_include_pad` the sum is divided by the kernel area (PyTorch's
    /// default), otherwise by the number of real (non-padding) pixels in the window.
    ///
    /// # Shapes
    /// `[N, C, H, W]` → `[N, C, OH, OW]`, with `OH, OW` from [`Padding::resolve`].
    pub fn avg_pool2d(
        &self,
        kernel: (usize, usize),
        stride: (usize, usize),
        padding: Padding,
        count_include_pad: bool,
    ) -> Tensor {
        let geometry = PoolGeometry::new("avg_pool2d", self.shape(), kernel, stride, padding);
        let divisor = move |rows: &std::ops::Range<usize>, cols: &std::ops::Range<usize>| -> f32 {
            if count_include_pad {
                (kernel.0 * kernel.1) as f32
            } else {
                (rows.len() * cols.len()) as f32
            }
        };
        let x = self.value().as_standard_layout();
        let x = x.as_slice().expect("standard layout");
        let (plane, out_plane) = (geometry.h * geometry.w, geometry.out_len());
        let planes = x.len() / plane.max(1);
        let mut out = vec![0.0f32; planes * out_plane];
        if !out.is_empty() {
            out.par_chunks_mut(out_plane)
                .zip(x.par_chunks(plane))
                .for_each(|(out, x)| {
                    let mut i = 0;
                    for oy in 0..geometry.pad.out_h {
                        for ox in 0..geometry.pad.out_w {
                            let (rows, cols) = geometry.window(oy, ox);
                            let d = divisor(&rows, &cols);
                            let sum: f32 = rows
                                .map(|r| {
                                    x[r * geometry.w + cols.start..r * geometry.w + cols.end]
                                        .iter()
                                        .sum::<f32>()
                                })
                                .sum();
                            out[i] = sum / d;
                            i += 1;
                        }
                    }
                });
        }
        self.record_pool("avg_pool2d", &geometry, out, move |_, g, dx| {
            // Write before the scatter-add reads (see the module docs).
            dx.fill(0.0);
            let mut i = 0;
            for oy in 0..geometry.pad.out_h {
                for ox in 0..geometry.pad.out_w {
                    let (rows, cols) = geometry.window(oy, ox);
                    let share = g[i] / divisor(&rows, &cols);
                    for r in rows {
                        dx[r * geometry.w + cols.start..r * geometry.w + cols.end]
                            .iter_mut()
                            .for_each(|v| *v += share);
                    }
                    i += 1;
                }
            }
        })
    }

    /// Records a pooling of `self` whose output planes are `out`. Its backward pass
    /// runs `plane_backward(p, g, dx)` on all planes `p` in parallel: `g` is the
    /// plane's output gradient, `dx` its input gradient (old contents to be ignored).
    fn record_pool(
        &self,
        op: &'static str,
        geometry: &PoolGeometry,
        out: Vec<f32>,
        plane_backward: impl Fn(usize, &[f32], &mut [f32]) + Sync + 'static,
    ) -> Tensor {
        let (plane, out_plane) = (geometry.h * geometry.w, geometry.out_len());
        let shape = geometry.out_shape(self.shape());
        let value = ArrayD::from_shape_vec(IxDyn(&shape), out).expect("output size");
        let input_shape = self.shape().to_vec();
        Tensor::record(op, &[self], value, move |g, _| {
            let g = g.as_standard_layout();
            let g = g.as_slice().expect("standard layout");
            let mut dx = ArrayD::zeros(IxDyn(&input_shape));
            if !g.is_empty() {
                dx.as_slice_mut()
                    .expect("standard layout")
                    .par_chunks_mut(plane)
                    .zip(g.par_chunks(out_plane))
                    .enumerate()
                    .for_each(|(p, (dx, g))| plane_backward(p, g, dx));
            }
            vec![Some(dx)]
        })
    }

    /// The mean of each plane: global average pooling, as before a classifier head.
    ///
    /// # Shapes
    /// `[N, C, H, W]` → `[N, C]`.
    pub fn global_avg_pool2d(&self) -> Tensor {
        let shape = self.shape().to_vec();
        assert!(
            shape.len() == 4 && shape[2] * shape[3] > 0,
            "global_avg_pool2d: expects a 4-d NCHW tensor with non-empty planes, got shape {shape:?}"
        );
        let plane = shape[2] * shape[3];
        let x = self.value().as_standard_layout();
        let x = x.as_slice().expect("standard layout");
        let out: Vec<f32> = x
            .par_chunks(plane)
            .map(|p| p.iter().sum::<f32>() / plane as f32)
            .collect();
        let value = ArrayD::from_shape_vec(IxDyn(&shape[..2]), out).expect("output size");
        Tensor::record("global_avg_pool2d", &[self], value, move |g, _| {
            let g = g.as_standard_layout();
            let g = g.as_slice().expect("standard layout");
            let mut dx = ArrayD::zeros(IxDyn(&shape));
            dx.as_slice_mut()
                .expect("standard layout")
                .par_chunks_mut(plane)
                .zip(g.par_iter())
                .for_each(|(dx, &g)| dx.fill(g / plane as f32));
            vec![Some(dx)]
        })
    }
}
