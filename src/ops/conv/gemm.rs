//! The one matrix product everything goes through: `C ← α·A·B + β·C` on ndarray
//! views (strided, so transposes are free), computed by the `gemm` crate with its
//! AVX-512 kernels (`x86-v4`; it picks AVX2/FMA or scalar code at run time on other
//! CPUs) and split over rayon's threads when the product is large enough to pay.
//!
//! Why `gemm` rather than ndarray's `matrixmultiply`: on conv- and dense-layer shapes
//! here it measured 10-25% faster per product, most of all when both operands are
//! read across their contiguous axis (a weight gradient), which matrixmultiply packs
//! element by element. Convolution calls [`gemm_serial`] from inside its own
//! parallel loop over images.
//!
//! The split cuts C into row or column blocks; each element is still reduced over
//! `k` in the same order, so the result does not depend on the thread count.

use ndarray::{ArrayView2, ArrayViewMut2, Axis};

/// The `gemm` crate's threshold for copying ("packing") the left operand of a
/// single-threaded product into its kernel's layout even when the operand's layout
/// would do: above `LHS_PACKING · 6` output columns. Its default, 8, packed the
/// Winograd products (64 output channels) on every call, and they are small and
/// many; with 16 (and their rows padded to a multiple of 16 floats) an R1 training
/// step measured 10% faster, R2's too, R2 inference 7% faster but R1 inference 8%
/// slower. The setting is process-wide, like the crate's; it is made once, on the
/// first product.
const LHS_PACKING: usize = 16;

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
        gemm_serial(alpha, &a, &b, beta, &mut c);
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

/// `C ← α·A·B + β·C` on the calling thread. Panics naming the shapes if they do not
/// chain.
pub fn gemm_serial(
    alpha: f32,
    a: &ArrayView2<f32>,
    b: &ArrayView2<f32>,
    beta: f32,
    c: &mut ArrayViewMut2<f32>,
) {
    let (m, k, n) = (a.nrows(), a.ncols(), b.ncols());
    assert!(
        b.nrows() == k && c.nrows() == m && c.ncols() == n,
        "gemm: cannot multiply {:?} by {:?} into {:?}",
        a.shape(),
        b.shape(),
        c.shape()
    );
    if m == 0 || n == 0 {
        return;
    }
    static TUNE: std::sync::Once = std::sync::Once::new();
    TUNE.call_once(|| ::gemm::set_lhs_packing_threshold_single_thread(LHS_PACKING));
    let (cs, as_, bs) = (c.strides().to_vec(), a.strides().to_vec(), b.strides().to_vec());
    // SAFETY: each pointer with its view's strides addresses exactly that view's
    // elements (ndarray guarantees it, and the shapes were checked to chain); `c` is
    // borrowed mutably, so it overlaps neither `a` nor `b`.
    unsafe {
        ::gemm::gemm(
            m,
            n,
            k,
            c.as_mut_ptr(),
            cs[1],
            cs[0],
            beta != 0.0, // read the old `c` only when it is scaled in
            a.as_ptr(),
            as_[1],
            as_[0],
            b.as_ptr(),
            bs[1],
            bs[0],
            beta,  // the crate's "alpha": scale of the old `c`
            alpha, // the crate's "beta": scale of `a·b`
            false,
            false,
            false,
            ::gemm::Parallelism::None,
        );
    }
}
