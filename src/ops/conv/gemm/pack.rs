//! The copies the kernels make of `B`, in two cases only (the products of the
//! nets are read where they lie):
//! - a layout neither way of reading takes as it lies (`B` with no unit stride and
//!   `A` with no contiguous rows, e.g. a strided slice): [`rows_of_b`];
//! - a long, tall broadcast product (a 2048³ one): each strip of `B`'s columns that
//!   the kernels pass over once per tile of rows is copied into one contiguous
//!   block first ([`by_strips`]), so that it is read from L2 in order rather than
//!   from rows a page or more apart. Copying changes no arithmetic.

use super::layout::Product;

/// `B` (`k × n`) copied into a row-major buffer: element `[p, j]` at `p·n + j`.
pub(super) fn rows_of_b(p: &Product) -> Vec<f32> {
    let mut rows = Vec::with_capacity(p.k * p.n);
    for i in 0..p.k as isize {
        for j in 0..p.n as isize {
            // SAFETY: p < k and j < n address an element of B.
            rows.push(unsafe { *p.b.offset(i * p.b_rs + j * p.b_cs) });
        }
    }
    rows
}

/// Columns of `B` per copied strip: a multiple of both kernels' strips (32 and 16
/// columns), and `k` rows of it (256 KiB at k = 2048) stay in L2.
pub(super) const STRIP: usize = 32;

/// Runs `kernel` on the product one strip of [`STRIP`] columns at a time, each
/// with its strip of `B` (`b_cs == 1`) copied into a contiguous block.
pub(super) fn by_strips(p: &Product, kernel: impl Fn(&Product)) {
    let mut strip = vec![0.0f32; p.k * STRIP];
    for j in (0..p.n).step_by(STRIP) {
        let cols = STRIP.min(p.n - j);
        for (i, row) in strip.chunks_exact_mut(STRIP).enumerate() {
            // SAFETY: row i < k, columns j .. j + cols < n of B, which has unit
            // column stride (the caller's access is `Broadcast`).
            let from = unsafe { std::slice::from_raw_parts(p.b.offset(i as isize * p.b_rs).add(j), cols) };
            row[..cols].copy_from_slice(from);
        }
        // SAFETY: column j < n of C.
        let c = unsafe { p.c.add(j) };
        kernel(&Product {
            n: cols,
            b: strip.as_ptr(),
            b_rs: STRIP as isize,
            c,
            ..*p
        });
    }
}
