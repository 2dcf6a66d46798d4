//! The differentiable operations, one family per file, each op's forward and
//! backward side by side. Ops are methods on [`Tensor`](crate::Tensor).

mod activation;
mod arith;
mod batch_norm;
mod conv2d;
mod conv_block;
mod cpu;
mod dropout;
mod elementwise;
pub mod gemm;
mod im2col;
mod loss;
mod matmul;
mod max_pool_plane;
mod padding;
mod penalty;
mod pool;
mod reduce;
mod shape;
mod winograd;

pub use batch_norm::BatchStats;
pub use conv2d::Conv2dOptions;
pub use conv_block::{ConvEpilogue, PoolWindow};
pub use loss::{argmax_rows, softmax_rows};
pub use padding::{Padding, ResolvedPadding};
