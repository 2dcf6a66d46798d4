//! The one matrix product everything dense goes through: `C ← α·A·B + β·C` on
//! ndarray views (strided, so transposes are free), computed by `matrixmultiply`
//! (which picks AVX-512/AVX2/FMA kernels at run time) and split over rayon's threads
//! when the product is large enough to pay for it.
//!
//! The split cuts C into row or column blocks; each element is still reduced over
//! `k` in the same order, so the result does not depend on the thread count.

use ndarray::linalg::general_mat_mul;
use ndarray::{ArrayView2, ArrayViewMut2, Axis};

/// Below this many multiply-adds a product runs on the calling thread.
const PARALLEL_MIN_MACS: usize = 1 << 18;

/// `C ← α·A·B + β·C`. Panics naming the shapes if they do not chain.
pub fn gemm(alpha: f32, a: ArrayView2<f32>, b: ArrayView2<f32>, beta: f32, c: ArrayViewMut2<f32>) {
    assert!(
        a.ncols() == b.nrows() && c.nrows() == a.nrows() && c.ncols() == b.ncols(),
        "gemm: cannot multiply {:?} by {:?} into {:?}",
        a.shape(),
        b.shape(),
        c.shape()
    );
    let splits = rayon::current_num_threads().next_power_of_two().trailing_zeros();
    split_gemm(alpha, a, b, beta, c, splits);
}

fn split_gemm(
    alpha: f32,
    a: ArrayView2<f32>,
    b: ArrayView2<f32>,
    beta: f32,
    mut c: ArrayViewMut2<f32>,
    splits: u32,
) {
    let (m, k, n) = (a.nrows(), a.ncols(), b.ncols());
    if splits == 0 || m * k * n < PARALLEL_MIN_MACS || (m < 16 && n < 16) {
        general_mat_mul(alpha, &a, &b, beta, &mut c);
        return;
    }
    if m >= n {
        let (a1, a2) = a.split_at(Axis(0), m / 2);
        let (c1, c2) = c.split_at(Axis(0), m / 2);
        rayon::join(
            || split_gemm(alpha, a1, b, beta, c1, splits - 1),
            || split_gemm(alpha, a2, b, beta, c2, splits - 1),
        );
    } else {
        let (b1, b2) = b.split_at(Axis(1), n / 2);
        let (c1, c2) = c.split_at(Axis(1), n / 2);
        rayon::join(
            || split_gemm(alpha, a, b1, beta, c1, splits - 1),
            || split_gemm(alpha, a, b2, beta, c2, splits - 1),
        );
    }
}
