//! The direct convolution, written to be read: the definition in seven nested loops,
//! forward and backward side by side. It is [`ConvAlgorithm::Direct`], selectable
//! through the same [`Tensor::conv2d`] and [`Tensor::conv2d_block`] as the fast
//! algorithms, and the reference every fast path is tested against
//! (`tests/suite/conv_algorithms.rs`); the finite-difference checks of
//! `tests/suite/gradcheck_ops.rs` in turn check it.
//!
//! For a batch `x` `[N, C, H, W]` and a kernel `w` `[O, C, kh, kw]`:
//!
//! ```text
//! out[n, o, y, x] = b[o] + Σ_{c, i, j} w[o, c, i, j] · x[n, c, y·sh + i·dh − top, x·sw + j·dw − left]
//! ```
//!
//! where `(sh, sw)` is the stride, `(dh, dw)` the dilation, `top` and `left` the
//! padding before the first row and column, and a tap that lands in the padding
//! reads 0. Each backward function runs the same loops and sends every product's
//! share of the output gradient back along the same tap, accumulating (`+=`) into
//! its gradient, as micrograd does.
//!
//! No blocking, no vectorization, no threads, on purpose: `N·O·OH·OW·C·kh·kw`
//! multiply-adds, each spelled out.
//!
//! [`ConvAlgorithm::Direct`]: super::ConvAlgorithm::Direct
//! [`Tensor::conv2d`]: crate::Tensor::conv2d
//! [`Tensor::conv2d_block`]: crate::Tensor::conv2d_block

use super::im2col::ConvGeometry;

/// The input pixel `(row, column)` that output pixel `(oy, ox)` sees through kernel
/// tap `(i, j)`, or `None` if the tap lands in the padding.
fn input_pixel(g: &ConvGeometry, (oy, ox): (usize, usize), (i, j): (usize, usize)) -> Option<(usize, usize)> {
    let row = (oy * g.stride.0 + i * g.dilation.0).checked_sub(g.top)?;
    let column = (ox * g.stride.1 + j * g.dilation.1).checked_sub(g.left)?;
    (row < g.h && column < g.w).then_some((row, column))
}

/// Flat indices into the row-major arrays of a convolution with `o` output channels.
struct Index<'a> {
    g: &'a ConvGeometry,
    o: usize,
}

impl Index<'_> {
    /// `x[n, c, row, column]` of `[N, C, H, W]`.
    fn input(&self, n: usize, c: usize, row: usize, column: usize) -> usize {
        ((n * self.g.channels + c) * self.g.h + row) * self.g.w + column
    }

    /// `w[oc, c, i, j]` of `[O, C, kh, kw]`.
    fn weight(&self, oc: usize, c: usize, i: usize, j: usize) -> usize {
        ((oc * self.g.channels + c) * self.g.kh + i) * self.g.kw + j
    }

    /// `out[n, oc, oy, ox]` of `[N, O, OH, OW]`.
    fn output(&self, n: usize, oc: usize, oy: usize, ox: usize) -> usize {
        ((n * self.o + oc) * self.g.oh + oy) * self.g.ow + ox
    }
}

/// The forward pass: `out` `[N, O, OH, OW]` (overwritten) from `x` `[N, C, H, W]`,
/// `w` `[O, C, kh, kw]` and an optional `bias` `[O]`.
pub(crate) fn forward(
    g: &ConvGeometry,
    batch: usize,
    o: usize,
    x: &[f32],
    w: &[f32],
    bias: Option<&[f32]>,
    out: &mut [f32],
) {
    let at = Index { g, o };
    for n in 0..batch {
        for oc in 0..o {
            for oy in 0..g.oh {
                for ox in 0..g.ow {
                    let mut sum = bias.map_or(0.0, |b| b[oc]);
                    for c in 0..g.channels {
                        for i in 0..g.kh {
                            for j in 0..g.kw {
                                if let Some((row, column)) = input_pixel(g, (oy, ox), (i, j)) {
                                    sum += w[at.weight(oc, c, i, j)] * x[at.input(n, c, row, column)];
                                }
                            }
                        }
                    }
                    out[at.output(n, oc, oy, ox)] = sum;
                }
            }
        }
    }
}

/// The input gradient: adds to `dx` `[N, C, H, W]` what each output's gradient
/// (`grad` `[N, O, OH, OW]`) sends back through each tap of `w`.
pub(crate) fn input_gradient(
    g: &ConvGeometry,
    batch: usize,
    o: usize,
    w: &[f32],
    grad: &[f32],
    dx: &mut [f32],
) {
    let at = Index { g, o };
    for n in 0..batch {
        for oc in 0..o {
            for oy in 0..g.oh {
                for ox in 0..g.ow {
                    let gradient = grad[at.output(n, oc, oy, ox)];
                    for c in 0..g.channels {
                        for i in 0..g.kh {
                            for j in 0..g.kw {
                                if let Some((row, column)) = input_pixel(g, (oy, ox), (i, j)) {
                                    dx[at.input(n, c, row, column)] += gradient * w[at.weight(oc, c, i, j)];
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// The weight gradient: adds to `dw` `[O, C, kh, kw]` each output's gradient
/// (`grad` `[N, O, OH, OW]`) times the input pixel each tap saw in `x`.
pub(crate) fn weight_gradient(
    g: &ConvGeometry,
    batch: usize,
    o: usize,
    x: &[f32],
    grad: &[f32],
    dw: &mut [f32],
) {
    let at = Index { g, o };
    for n in 0..batch {
        for oc in 0..o {
            for oy in 0..g.oh {
                for ox in 0..g.ow {
                    let gradient = grad[at.output(n, oc, oy, ox)];
                    for c in 0..g.channels {
                        for i in 0..g.kh {
                            for j in 0..g.kw {
                                if let Some((row, column)) = input_pixel(g, (oy, ox), (i, j)) {
                                    dw[at.weight(oc, c, i, j)] += gradient * x[at.input(n, c, row, column)];
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// The bias gradient: adds to `db` `[O]` the sum of each output channel's gradient
/// (`grad` `[N, O, OH, OW]`), as the bias is added to every output pixel.
pub(crate) fn bias_gradient(g: &ConvGeometry, batch: usize, o: usize, grad: &[f32], db: &mut [f32]) {
    let at = Index { g, o };
    for n in 0..batch {
        for (oc, db) in db.iter_mut().enumerate() {
            for oy in 0..g.oh {
                for ox in 0..g.ow {
                    *db += grad[at.output(n, oc, oy, ox)];
                }
            }
        }
    }
}
