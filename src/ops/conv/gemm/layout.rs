//! A product as pointers and strides, re-described so that the kernels meet few
//! layouts: `C` always steps by one element along its rows (unit column stride),
//! and the other operands keep whatever strides they have.
//!
//! Every re-description names the same elements: transposing the whole product
//! (`Cᵀ = Bᵀ·Aᵀ`), walking an axis from its other end, or giving an axis of length 1
//! the stride the kernels prefer (it is never stepped along).

use ndarray::{ArrayView2, ArrayViewMut2};

/// `C ← α·A·B + β·C` as raw parts: element `[i, j]` of `C` is at
/// `c + i·c_rs + j` (unit column stride), `A[i, p]` at `a + i·a_rs + p·a_cs`,
/// `B[p, j]` at `b + p·b_rs + j·b_cs`.
#[derive(Clone, Copy)]
pub(super) struct Product {
    pub m: usize,
    pub n: usize,
    pub k: usize,
    pub a: *const f32,
    pub a_rs: isize,
    pub a_cs: isize,
    pub b: *const f32,
    pub b_rs: isize,
    pub b_cs: isize,
    pub c: *mut f32,
    pub c_rs: isize,
    pub alpha: f32,
    pub beta: f32,
}

/// How a kernel can read the product's operands, decided by their strides alone,
/// never by the sizes: a split over threads changes sizes, and each way reduces
/// over `k` in its own order (see the module comment in `mod.rs`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Access {
    /// `B`'s rows are contiguous: vectors of `B` and `C` along `n`, `A`'s elements
    /// broadcast, any strides of `A`.
    Broadcast,
    /// `A`'s rows and `B`'s columns are contiguous: vector dot products along `k`
    /// (a weight gradient, `dW = dYᵀ·X`).
    Dot,
    /// Neither: `B` is copied into rows first, then as [`Access::Broadcast`].
    PackB,
}

impl Product {
    /// The product of the views, or `None` when `C` has no unit stride at all (a
    /// strided slice of a bigger matrix): the portable path takes those. Shapes
    /// must already chain, and `m`, `n` be non-zero.
    pub fn new(
        alpha: f32,
        a: &ArrayView2<f32>,
        b: &ArrayView2<f32>,
        beta: f32,
        c: &mut ArrayViewMut2<f32>,
    ) -> Option<Product> {
        let (m, k, n) = (a.nrows(), a.ncols(), b.ncols());
        let mut p = Product {
            m,
            n,
            k,
            a: a.as_ptr(),
            a_rs: a.strides()[0],
            a_cs: a.strides()[1],
            b: b.as_ptr(),
            b_rs: b.strides()[0],
            b_cs: b.strides()[1],
            c: c.as_mut_ptr(),
            c_rs: c.strides()[0],
            alpha,
            beta,
        };
        let c_cs = c.strides()[1];
        let unit_columns = n == 1 || c_cs.unsigned_abs() == 1;
        let unit_rows = m == 1 || p.c_rs.unsigned_abs() == 1;
        let mut c_cs = if unit_columns {
            c_cs
        } else if unit_rows {
            // Cᵀ = Bᵀ·Aᵀ: C's rows become its columns.
            (p.m, p.n) = (n, m);
            (p.a, p.a_rs, p.a_cs, p.b, p.b_rs, p.b_cs) = (p.b, p.b_cs, p.b_rs, p.a, p.a_cs, p.a_rs);
            let c_rs = p.c_rs;
            p.c_rs = c_cs;
            c_rs
        } else {
            return None;
        };
        // Axes of length 1 are never stepped along: give them the strides that let
        // the fast kernels take the product.
        if p.n == 1 {
            (c_cs, p.b_cs) = (1, 1);
        }
        if p.k == 1 {
            (p.a_cs, p.b_rs) = (1, 1);
        }
        // SAFETY (pointer offsets): each moves a pointer to the other end of an axis
        // of length ≥ 1 of its own view, an element of that view.
        unsafe {
            if c_cs < 0 {
                p.c = p.c.offset((p.n - 1) as isize * c_cs);
                p.b = p.b.offset((p.n - 1) as isize * p.b_cs);
                p.b_cs = -p.b_cs;
            }
            if p.a_cs == -1 && p.b_rs == -1 {
                p.a = p.a.offset((p.k - 1) as isize * p.a_cs);
                p.b = p.b.offset((p.k - 1) as isize * p.b_rs);
                (p.a_cs, p.b_rs) = (1, 1);
            }
        }
        Some(p)
    }

    /// How the kernels read this product's operands.
    pub fn access(&self) -> Access {
        if self.b_cs == 1 {
            Access::Broadcast
        } else if self.a_cs == 1 && self.b_rs == 1 {
            Access::Dot
        } else {
            Access::PackB
        }
    }
}
