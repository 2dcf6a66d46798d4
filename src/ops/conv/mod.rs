//! The convolution family: the `conv2d` op, the fused conv block, and the
//! algorithms and helpers they are built from.
//!
//! - [`algorithm`](algorithm) — `ConvAlgorithm`, and the one `choose` that picks
//!   the algorithm of each pass,
//! - [`reference`](reference) — the direct convolution in seven loops, written to
//!   be read: `ConvAlgorithm::Direct`, and what every fast path is tested against,
//! - [`conv2d`](conv2d) — `Tensor::conv2d`, and the group-by-group driver of the
//!   products that the fused block shares,
//! - [`conv_block`](conv_block) — `Tensor::conv2d_block`: conv + bias, ReLU and max
//!   pooling in one pass,
//! - [`im2col`](im2col) — the data movement that turns a convolution into one
//!   matrix product,
//! - [`im2col_padded`](im2col_padded) — im2col of a dense kernel from each input
//!   plane copied once with its padding,
//! - [`col2im_stride2`](col2im_stride2) — the input gradient of stride-2 convs
//!   gathered from the column matrix, each pixel written once,
//! - [`copy_row`](copy_row) — the short row copies of im2col, col2im and
//!   Winograd's output, inlined,
//! - [`pooled_gradient`](pooled_gradient) — the weight gradient of a first layer
//!   that max-pools, summed from the pooling's winners alone,
//! - [`winograd`](winograd) — Winograd's F(4×4, 3×3) for 3×3 stride-1 kernels,
//! - [`kernel_cache`](kernel_cache) — its transformed kernels kept by a layer
//!   between inference calls,
//! - [`output_epilogue`](output_epilogue) — an inference conv's bias, shortcut
//!   and ReLU, applied as its outputs are written,
//! - [`gemm`] — the matrix product every path ends in (also `Linear`'s),
//! - [`padding`](padding) — `Same`/`Valid`/explicit padding resolved once (also the
//!   pools').

mod algorithm;
mod col2im_stride2;
mod conv2d;
mod conv_block;
mod copy_row;
pub mod gemm;
mod im2col;
mod im2col_padded;
mod kernel_cache;
mod output_epilogue;
mod padding;
mod pooled_gradient;
mod reference;
mod winograd;

pub use algorithm::ConvAlgorithm;
pub use conv2d::Conv2dOptions;
pub(crate) use conv2d::Unrecorded;
pub use conv_block::{ConvEpilogue, PoolWindow};
pub(crate) use kernel_cache::KernelCache;
pub use padding::{Padding, ResolvedPadding};
