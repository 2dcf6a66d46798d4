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

use super::elementwise::min_pieces;
use super::max_pool_backward::max_pool_plane_backward;
use super::max_pool_plane::max_pool_plane;
use super::parallel::{for_each_piece_mut, map_indices, SharedMut};
use super::{Padding, ResolvedPadding};
use crate::tensor::Tensor;

/// The geometry of one pooling: input plane, window, stride, padding, output plane.
#[derive(Clone, Copy, Debug)]
pub(super) struct PoolGeometry {
    h: usize,
    pub(super) w: usize,
    kernel: (usize, usize),
    stride: (usize, usize),
    pub(super) pad: ResolvedPadding,
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
    pub(super) fn window(&self, oy: usize, ox: usize) -> (std::ops::Range<usize>, std::ops::Range<usize>) {
        let (y0, x0) = (oy * self.stride.0, ox * self.stride.1);
        let rows = y0.saturating_sub(self.pad.top)..(y0 + self.kernel.0 - self.pad.top).min(self.h);
        let cols = x0.saturating_sub(self.pad.left)..(x0 + self.kernel.1 - self.pad.left).min(self.w);
        (rows, cols)
    }

    /// The top-left rows and columns of the input that some window reads: all
    /// of it unless the windows stop short of the bottom or right edge (a 2×2
    /// pooling at stride 2 of an odd size). The gradient is zero past them.
    pub(super) fn covered(&self) -> (usize, usize) {
        if self.out_len() == 0 {
            return (0, 0);
        }
        let (rows, cols) = self.window(self.pad.out_h - 1, self.pad.out_w - 1);
        (rows.end, cols.end)
    }

    pub(super) fn is_2x2_stride_2_valid(&self) -> bool {
        let p = self.pad;
        self.kernel == (2, 2) && self.stride == (2, 2) && p.top + p.bottom + p.left + p.right == 0
    }

    /// Output shape for input shape `[N, C, H, W]`.
    pub(super) fn out_shape(&self, shape: &[usize]) -> [usize; 4] {
        [shape[0], shape[1], self.pad.out_h, self.pad.out_w]
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
        if !self.requires_grad() {
            // Nothing will be recorded: the maxima alone.
            for_each_piece_mut(&mut out, out_plane, min_pieces(plane), &|p, out| {
                max_pool_plane(&geometry, &x[p * plane..(p + 1) * plane], out, &mut [])
            });
            return self.record_pool("max_pool2d", &geometry, out, |_, _, _| {});
        }
        let mut argmax = vec![0u32; planes * out_plane];
        if !out.is_empty() {
            // Through `for_each_piece_mut` as above (its rayon plumbing is compiled
            // once), each plane's argmax reached by the plane's index.
            let argmax_at = SharedMut::new(argmax.as_mut_ptr());
            for_each_piece_mut(&mut out, out_plane, min_pieces(plane), &|p, out| {
                // SAFETY: `argmax` is as long as `out`, so plane `p`'s elements lie
                // inside it, and each plane is handed out once: no other task
                // reaches them.
                let argmax = unsafe { argmax_at.slice(p * out_plane, out_plane) };
                max_pool_plane(&geometry, &x[p * plane..(p + 1) * plane], out, argmax)
            });
        }
        self.record_pool("max_pool2d", &geometry, out, move |p, g, dx| {
            let argmax = &argmax[p * out_plane..(p + 1) * out_plane];
            max_pool_plane_backward(&geometry, argmax, g, dx)
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
            for_each_piece_mut(&mut out, out_plane, min_pieces(plane), &|p, out| {
                let x = &x[p * plane..(p + 1) * plane];
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
                let dx_planes = dx.as_slice_mut().expect("standard layout");
                for_each_piece_mut(dx_planes, plane, min_pieces(plane), &|p, dx| {
                    plane_backward(p, &g[p * out_plane..(p + 1) * out_plane], dx)
                });
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
        // Split as every pass here, by `min_pieces`: at batch 1 (R3's 64 planes of
        // 7×7) a split by plane handed them to a sleeping pool thread and waited, a
        // tenth of R3's batch-1 latency (perf); the backward passes, which attribution
        // runs on one image, split the same way.
        let out: Vec<f32> = map_indices(x.len() / plane, min_pieces(plane), |p| {
            x[p * plane..(p + 1) * plane].iter().sum::<f32>() / plane as f32
        });
        let value = ArrayD::from_shape_vec(IxDyn(&shape[..2]), out).expect("output size");
        Tensor::record("global_avg_pool2d", &[self], value, move |g, _| {
            let g = g.as_standard_layout();
            let g = g.as_slice().expect("standard layout");
            let mut dx = ArrayD::zeros(IxDyn(&shape));
            let dx_planes = dx.as_slice_mut().expect("standard layout");
            for_each_piece_mut(dx_planes, plane, min_pieces(plane), &|p, dx| {
                dx.fill(g[p] / plane as f32)
            });
            vec![Some(dx)]
        })
    }
}
