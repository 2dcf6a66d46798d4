//! The differentiable operations, one family per file, each op's forward and
//! backward side by side. Ops are methods on [`Tensor`](crate::Tensor).

mod activation;
mod arith;
mod batch_norm;
mod dropout;
pub mod gemm;
mod loss;
mod matmul;
mod penalty;
mod reduce;
mod shape;

pub use loss::{argmax_rows, softmax_rows};
pub use batch_norm::BatchStats;
