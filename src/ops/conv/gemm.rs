//! The one matrix product everything goes through: `C ← α·A·B + β·C` on ndarray
//! views (strided, so transposes are free), computed by the `gemm-f32` crate (the
//! `gemm` family's f32 kernels) with its AVX-512 kernels (`x86-v4`; it picks
//! AVX2/FMA or scalar code at run time on other CPUs) and split over rayon's threads
//! when the product is large enough to pay.
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

/// The widest product `gemm-f32` runs without copying ("packing") its left
/// operand first, when that operand's layout would do: its kernels are 6 columns
/// wide (`NR`, AVX-512 and AVX2 alike) and its single-thread threshold is 8 kernels
/// (`DEFAULT_LHS_PACKING_THRESHOLD_SINGLE_THREAD`), so 48 columns of the crate's
/// destination. The crate sees our `C` transposed when `C` is row-major, so its
/// columns are our rows: output channels, in the conv products.
///
/// Why it matters: packing the 64-channel Winograd and im2col products on every
/// call (they are small and many) cost 10% of an R1 and an R2 training step. A
/// threshold of 16 (96 columns) measured faster, but that is a process-wide setting
/// of the crate; splitting a product of 49 to 96 such columns into two calls of at
/// most 48 gives the same unpacked kernels without touching it. Each element is
/// still reduced over `k` in the same order (the crate's `k` blocking depends on
/// `k` alone), so the result is the same, bit for bit.
///
/// The split is made only where the threshold decides: where the crate's left
/// operand has unit row stride and a multiple of 16 rows (its vector width, 16 or
/// 8 floats). Otherwise the crate packs it anyway, and two calls would pack it
/// twice (im2col's weight gradient, whose column matrix is read transposed).
const UNPACKED_COLUMNS: usize = 8 * KERNEL_COLUMNS;

/// `gemm-f32`'s kernel width (`NR`): a split lands on a multiple of it, so
/// that two calls use as many full-width kernels as one would.
const KERNEL_COLUMNS: usize = 6;

/// Below this many multiply-adds a product runs on the calling thread.
const PARALLEL_MIN_MACS: usize = 1 << 18;

/// A product with at most this many rows (a dense layer on a few images: a
/// matrix–vector product) runs on the calling thread below [`THIN_PARALLEL_MIN_MACS`].
/// It reads each weight once and does little arithmetic per byte, so two threads
/// barely shorten it, while `rayon::join` from a thread outside the pool (the
/// program's, which runs `predict`) hands the whole product to the pool and sleeps
/// until it is done. Measured on the default net's 3136 → 128 layer at batch 1
/// (400k multiply-adds): split over 2 threads it was ~13% of the net's latency and
/// made 2 threads slower than 1 (BENCHMARKS.md, "Batch-1 latency", second pass).
const THIN_ROWS: usize = 8;

/// See [`THIN_ROWS`]: R2's 9216 → 128 layer at batch 1 (1.2M) stays below it too.
const THIN_PARALLEL_MIN_MACS: usize = 1 << 21;

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
    let macs = m * k * n;
    let thin = m <= THIN_ROWS && macs < THIN_PARALLEL_MIN_MACS;
    if splits == 0 || macs < PARALLEL_MIN_MACS || (m < 16 && n < 16) || thin {
        gemm_serial(alpha, &a, &b, beta, &mut c);
        return;
    }
    if m >= n && !(packs_b(&b, &c) && n >= PACKED_SPLIT_MIN_COLUMNS) {
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

/// Whether `gemm-f32` copies ("packs") all of `b` before multiplying: when it sees
/// the product transposed (`c` row-major, see [`crate_gemm`]), `b` is its left
/// operand, which it packs unless `b`'s rows are contiguous. Splitting `a`'s rows
/// then makes every thread pack the whole of `b`; splitting `b`'s columns gives each
/// thread its own part to pack (a dense layer's `yᵀ = W·xᵀ`, where `b` is `xᵀ`).
fn packs_b(b: &ArrayView2<f32>, c: &ArrayViewMut2<f32>) -> bool {
    let c_row_major = c.strides()[1].unsigned_abs() < c.strides()[0].unsigned_abs();
    c_row_major && b.strides()[1].unsigned_abs() != 1
}

/// Columns of a packed `b` from which a split goes by `b`'s columns whatever the
/// shape (see [`packs_b`]): below it, two halves would leave the crate's kernels,
/// 16 floats tall, mostly empty (R1's 1600 → 10 layer keeps splitting its batch).
const PACKED_SPLIT_MIN_COLUMNS: usize = 32;

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
    // The crate's view (see `UNPACKED_COLUMNS`): it transposes the product when
    // `c`'s rows are longer strides than its columns, and then its columns are our
    // rows, its rows our columns, and its left operand our `b`.
    let transposed = c.strides()[1].unsigned_abs() < c.strides()[0].unsigned_abs();
    let (columns, rows, lhs_row_stride) = if transposed {
        (m, n, b.strides()[1])
    } else {
        (n, m, a.strides()[0])
    };
    let unpacked_if_split = lhs_row_stride.unsigned_abs() == 1 && rows % 16 == 0;
    if unpacked_if_split && columns > UNPACKED_COLUMNS && columns <= 2 * UNPACKED_COLUMNS {
        let half = columns.div_ceil(2).next_multiple_of(KERNEL_COLUMNS);
        if transposed {
            let (a1, a2) = a.view().split_at(Axis(0), half);
            let (mut c1, mut c2) = c.view_mut().split_at(Axis(0), half);
            crate_gemm(alpha, &a1, b, beta, &mut c1);
            crate_gemm(alpha, &a2, b, beta, &mut c2);
        } else {
            let (b1, b2) = b.view().split_at(Axis(1), half);
            let (mut c1, mut c2) = c.view_mut().split_at(Axis(1), half);
            crate_gemm(alpha, a, &b1, beta, &mut c1);
            crate_gemm(alpha, a, &b2, beta, &mut c2);
        }
    } else {
        crate_gemm(alpha, a, b, beta, c);
    }
}

/// One call of `gemm-f32`: `C ← α·A·B + β·C` on the calling thread, shapes
/// already checked.
fn crate_gemm(alpha: f32, a: &ArrayView2<f32>, b: &ArrayView2<f32>, beta: f32, c: &mut ArrayViewMut2<f32>) {
    let (m, k, n) = (a.nrows(), a.ncols(), b.ncols());
    // Copied out (no allocation: this runs for every small product).
    let strides = |s: &[isize]| [s[0], s[1]];
    let (cs, as_, bs) = (strides(c.strides()), strides(a.strides()), strides(b.strides()));
    // As `[row stride, column stride]`, with a pointer to element [0, 0].
    let (mut dst, mut lhs, mut rhs) = (
        (c.as_mut_ptr(), cs[0], cs[1]),
        (a.as_ptr(), as_[0], as_[1]),
        (b.as_ptr(), bs[0], bs[1]),
    );
    // What `gemm::gemm` does before it calls these kernels, which prefer a
    // column-major destination: a row-major C = A·B is computed as Cᵀ = Bᵀ·Aᵀ.
    // Calling the kernels on a row-major C directly ran R1's inference 1.5× slower.
    let (m, n) = if cs[1].abs() < cs[0].abs() {
        dst = (dst.0, dst.2, dst.1);
        (lhs, rhs) = ((rhs.0, rhs.2, rhs.1), (lhs.0, lhs.2, lhs.1));
        (n, m)
    } else {
        (m, n)
    };
    // The kernels take positive strides (ndarray views may step backwards).
    // SAFETY (pointer offsets): each moves to the other end of an axis of its view.
    unsafe {
        if dst.1 < 0 && m > 0 {
            dst.0 = dst.0.offset((m - 1) as isize * dst.1);
            dst.1 = -dst.1;
            lhs.0 = lhs.0.offset((m - 1) as isize * lhs.1);
            lhs.1 = -lhs.1;
        }
        if dst.2 < 0 && n > 0 {
            dst.0 = dst.0.offset((n - 1) as isize * dst.2);
            dst.2 = -dst.2;
            rhs.0 = rhs.0.offset((n - 1) as isize * rhs.2);
            rhs.2 = -rhs.2;
        }
        if lhs.2 < 0 && k > 0 {
            lhs.0 = lhs.0.offset((k - 1) as isize * lhs.2);
            lhs.2 = -lhs.2;
            rhs.0 = rhs.0.offset((k - 1) as isize * rhs.1);
            rhs.1 = -rhs.1;
        }
    }
    // SAFETY: each pointer with its strides addresses exactly its view's elements
    // (ndarray guarantees it, the shapes were checked to chain, and the swaps above
    // only re-describe the same elements); `c` is borrowed mutably, so it overlaps
    // neither `a` nor `b`.
    unsafe {
        // What `gemm::gemm::<f32>` calls: the kernel picked for this CPU (AVX-512,
        // AVX2+FMA or scalar) at the first call, then cached.
        gemm_f32::gemm::f32::get_gemm_fn()(
            m,
            n,
            k,
            dst.0,
            dst.2,
            dst.1,
            beta != 0.0, // read the old `c` only when it is scaled in
            lhs.0 as *mut f32,
            lhs.2,
            lhs.1,
            rhs.0 as *mut f32,
            rhs.2,
            rhs.1,
            beta,  // the crate's "alpha": scale of the old `c`
            alpha, // the crate's "beta": scale of `a·b`
            false,
            false,
            false,
            gemm_common::Parallelism::None,
        );
    }
}

#[cfg(test)]
mod tests {
    use ndarray::{s, Array2, ShapeBuilder};

    use super::gemm_serial;

    fn naive(a: &Array2<f32>, b: &Array2<f32>) -> Array2<f32> {
        Array2::from_shape_fn((a.nrows(), b.ncols()), |(i, j)| {
            (0..a.ncols()).map(|p| a[[i, p]] * b[[p, j]]).sum()
        })
    }

    /// Row- and column-major outputs, transposed operands and backward strides all
    /// give the product: the layouts `crate_gemm` re-describes for the kernels.
    #[test]
    fn every_layout_and_stride_sign_gives_the_product() {
        let a = Array2::from_shape_fn((7, 5), |(i, j)| (i * 5 + j) as f32 * 0.25 - 3.0);
        let b = Array2::from_shape_fn((5, 9), |(i, j)| (i as f32 - j as f32) * 0.5);
        let want = naive(&a, &b);
        let a_f = Array2::from_shape_vec((7, 5).f(), a.t().iter().copied().collect()).unwrap();
        let b_rev = b.slice(s![..;-1, ..;-1]).to_owned();
        for c_column_major in [false, true] {
            for case in 0..3 {
                let mut c = match c_column_major {
                    true => Array2::<f32>::zeros((7, 9).f()),
                    false => Array2::<f32>::zeros((7, 9)),
                };
                match case {
                    0 => gemm_serial(1.0, &a.view(), &b.view(), 0.0, &mut c.view_mut()),
                    1 => gemm_serial(1.0, &a_f.view(), &b.view(), 0.0, &mut c.view_mut()),
                    // Both operands stepping backwards: b reversed twice is b.
                    _ => gemm_serial(
                        1.0,
                        &a.view(),
                        &b_rev.slice(s![..;-1, ..;-1]),
                        0.0,
                        &mut c.view_mut(),
                    ),
                }
                let err = (&c - &want).iter().fold(0f32, |m, v| m.max(v.abs()));
                assert!(
                    err < 1e-4,
                    "case {case}, column-major C {c_column_major}: off by {err}"
                );
            }
        }
        // A backward output view.
        let mut c = Array2::<f32>::zeros((7, 9));
        gemm_serial(2.0, &a.view(), &b.view(), 0.0, &mut c.slice_mut(s![..;-1, ..;-1]));
        let err = (&c.slice(s![..;-1, ..;-1]) - &(2.0 * &want))
            .iter()
            .fold(0f32, |m, v| m.max(v.abs()));
        assert!(err < 1e-4, "backward C: off by {err}");
    }
}
