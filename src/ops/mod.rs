//! The differentiable operations, one family per file or folder (`conv/`), each
//! op's forward and backward side by side. Ops are methods on [`Tensor`](crate::Tensor).

mod activation;
mod arith;
mod batch_norm;
mod conv;
pub(crate) mod cpu;
mod dropout;
mod elementwise;
pub mod finite;
mod fresh;
mod loss;
mod matmul;
mod max_pool_backward;
mod max_pool_plane;
pub(crate) mod parallel;
mod penalty;
mod pool;
mod reduce;
pub(crate) mod shape;
mod softmax;

pub use batch_norm::BatchStats;
pub(crate) use batch_norm::PlaneMoments;
pub use conv::gemm;
pub use conv::{Conv2dOptions, ConvAlgorithm, ConvEpilogue, Padding, PoolWindow, ResolvedPadding};
pub(crate) use conv::{KernelCache, Unrecorded};
pub use loss::{argmax_rows, softmax_rows};
