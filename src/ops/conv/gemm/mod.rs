//! The one matrix product everything goes through: `C ← α·A·B + β·C` on ndarray
//! views (strided, so transposes are free), computed by our own kernels and split
//! over rayon's threads when the product is large enough to pay. Convolution calls
//! [`gemm_serial`] from inside its own parallel loop over images.
//!
//! The kernels, picked at run time by the CPU's features: AVX-512
//! (`kernel_avx512.rs`), else AVX2 + FMA (`kernel_avx2.rs`), else ndarray's
//! `matrixmultiply` (portable, with its own NEON and SSE code). They do not follow
//! [`Simd::Baseline`](crate::runtime::Simd), as the `gemm` crate before them did
//! not: the three round differently, and that setting promises the same results
//! bit for bit (the conv tests compare its two settings exactly). Their tests call
//! each kernel directly. Two ways of reading the operands ([`layout::Access`]):
//! - *broadcast*, when `B`'s rows are contiguous: vectors along `C`'s rows, one
//!   FMA chain per element of `C` (im2col and Winograd products, data gradients,
//!   dense layers);
//! - *dot*, when `A`'s rows and `B`'s columns are contiguous: vector dot products
//!   along `k` (weight gradients), where the broadcast way would first have to
//!   transpose one operand.
//!
//! Neither copies ("packs") its operands into panels, as BLIS-style libraries do:
//! the products here are small (a Winograd tile's is 16 × 16 × 160, an R3 step
//! runs 25,000 of them) and sit in L1 or L2, and packing the small conv products
//! was what cost 10% of a training step with the `gemm` crate (which packed below
//! its own threshold of 48 columns). Only a layout neither way can read (`B` with
//! no contiguous axis) is copied first (`pack.rs`).
//!
//! The split cuts C into row or column blocks. Each element is reduced over `k` in
//! an order that depends on the operands' strides and on `k` alone, never on `m`,
//! `n` or where the element falls in a tile, so the result does not depend on the
//! thread count. (It does depend on the kernel: AVX-512, AVX2 and the portable path
//! round differently.)

use ndarray::{ArrayView2, ArrayViewMut2, Axis};

use layout::{Access, Product};

#[cfg(target_arch = "x86_64")]
mod kernel_avx2;
#[cfg(target_arch = "x86_64")]
mod kernel_avx512;
mod layout;
mod pack;
#[cfg(test)]
mod tests;
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

/// `C ← α·A·B + β·C`. Panics naming the shapes if they do not chain. With β = 0,
/// `C` is written and never read: it may hold anything (NaN included, or memory
/// not yet initialised, behind a view made from a raw pointer).
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
    if m >= n {
        let (a1, a2) = a.split_at(Axis(0), m / 2);
        let (c1, c2) = c.split_at(Axis(0), m / 2);
        rayon::join(
            || split_gemm(alpha, a1, b, beta, c1, splits - 1),
            || split_gemm(alpha, a2, b, beta, c2, splits - 1),
        );
    } else {
        // On a multiple of 16 columns (an AVX-512 vector) when there are enough,
        // so that both halves run whole vectors.
        let half = if n >= 64 {
            (n / 2).next_multiple_of(16)
        } else {
            n / 2
        };
        let (b1, b2) = b.split_at(Axis(1), half);
        let (c1, c2) = c.split_at(Axis(1), half);
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
    product(Isa::detect(), alpha, a, b, beta, c);
}

/// The kernel family a product runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Isa {
    /// `kernel_avx512.rs`.
    Avx512,
    /// `kernel_avx2.rs`.
    Avx2,
    /// `matrixmultiply::sgemm`.
    Portable,
}

impl Isa {
    /// The best this CPU runs (its features are detected once).
    fn detect() -> Isa {
        #[cfg(target_arch = "x86_64")]
        {
            if super::super::cpu::has_avx512() {
                return Isa::Avx512;
            }
            if super::super::cpu::has_avx2_fma() {
                return Isa::Avx2;
            }
        }
        Isa::Portable
    }
}

/// `C ← α·A·B + β·C` on the calling thread with the kernels of `isa` (which the
/// CPU must have), shapes already checked and `m`, `n` ≥ 1.
fn product(
    isa: Isa,
    alpha: f32,
    a: &ArrayView2<f32>,
    b: &ArrayView2<f32>,
    beta: f32,
    c: &mut ArrayViewMut2<f32>,
) {
    let Some(p) = Product::new(alpha, a, b, beta, c).filter(|_| isa != Isa::Portable) else {
        portable(alpha, a, b, beta, c);
        return;
    };
    if p.k == 0 {
        // α·(empty sum) + β·C; β = 0 must not read C.
        if beta == 0.0 {
            c.fill(0.0);
        } else {
            c.mapv_inplace(|x| beta * x);
        }
        return;
    }
    let packed;
    let (p, access) = match p.access() {
        Access::PackB => {
            packed = pack::rows_of_b(&p);
            (
                Product {
                    b: packed.as_ptr(),
                    b_rs: p.n as isize,
                    b_cs: 1,
                    ..p
                },
                Access::Broadcast,
            )
        }
        access => (p, access),
    };
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY (both closures): `Isa::detect` (or a test that checked the CPU)
        // chose `isa` from the CPU's features; `p` describes the views (or `packed`,
        // alive until the end of this function, or a strip of it that `by_strips`
        // keeps alive during the call) with the strides its access needs, m, n, k ≥
        // 1, and `c` is borrowed mutably, so it overlaps neither `a` nor `b`.
        let broadcast = |p: &Product| unsafe {
            match isa {
                Isa::Avx512 => kernel_avx512::broadcast(p),
                _ => kernel_avx2::broadcast(p),
            }
        };
        let dot = |p: &Product| unsafe {
            match isa {
                Isa::Avx512 => kernel_avx512::dot(p),
                _ => kernel_avx2::dot(p),
            }
        };
        match access {
            Access::Dot => dot(&p),
            _ if p.k >= STRIPS_MIN_DEPTH && p.m >= STRIPS_MIN_ROWS => pack::by_strips(&p, broadcast),
            _ => broadcast(&p),
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    unreachable!("only x86-64 has kernels of its own: {isa:?}, {access:?}, {}", p.m);
}

/// The portable path: `matrixmultiply::sgemm`, which takes any strides (negative
/// ones included) and does not read `C` when β = 0.
fn portable(alpha: f32, a: &ArrayView2<f32>, b: &ArrayView2<f32>, beta: f32, c: &mut ArrayViewMut2<f32>) {
    let (m, k, n) = (a.nrows(), a.ncols(), b.ncols());
    let (cs, as_, bs) = (c.strides().to_owned(), a.strides(), b.strides());
    // SAFETY: each pointer with its strides addresses exactly its view's elements
    // (ndarray guarantees it, and the shapes were checked to chain); `c` is
    // borrowed mutably, so it overlaps neither `a` nor `b`.
    unsafe {
        matrixmultiply::sgemm(
            m,
            k,
            n,
            alpha,
            a.as_ptr(),
            as_[0],
            as_[1],
            b.as_ptr(),
            bs[0],
            bs[1],
            beta,
            c.as_mut_ptr(),
            cs[0],
            cs[1],
        );
    }
}

/// `B`'s row stride (floats) from which the broadcast kernels prefetch the next
/// strip of `B` (a 4 KiB page).
const FAR_ROWS: usize = 1024;

/// Depth from which a broadcast product copies `B` strip by strip
/// ([`pack::by_strips`]) when it has at least [`STRIPS_MIN_ROWS`] rows: each of
/// `k` rows of a strip of `B` is then a page or more from the next, and is read
/// again for every tile of 8 rows. (None of the nets' products is that long and
/// tall: their broadcast products have `k` ≤ 288, or one row at batch 1.)
const STRIPS_MIN_DEPTH: usize = 512;
/// See [`STRIPS_MIN_DEPTH`]: with fewer rows each element of `B` is read too few
/// times to repay its copy.
const STRIPS_MIN_ROWS: usize = 32;

/// How the dot kernels cut `k`: `(block, count)`. Up to [`DOT_BLOCK_MAX`] in one
/// block; beyond, blocks of [`DOT_BLOCK`], so that `B`'s block (64 columns: 256 KiB)
/// stays in L2 while the rows of `A` pass over it. A function of `k` alone, so
/// that splitting `m` or `n` keeps each element's order of additions.
fn dot_blocks(k: usize) -> (usize, usize) {
    let block = if k <= DOT_BLOCK_MAX { k } else { DOT_BLOCK };
    (block, k.div_ceil(block))
}

/// See [`dot_blocks`].
const DOT_BLOCK_MAX: usize = 2048;
/// See [`dot_blocks`]; a multiple of both kernels' vector widths.
const DOT_BLOCK: usize = 1024;
