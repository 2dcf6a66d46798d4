//! The AVX2 + FMA kernels (8 floats a vector), for CPUs without AVX-512: the same
//! two ways as `kernel_avx512.rs` ([`broadcast`], [`dot`]) with tiles sized for 16
//! registers. [`store4`], the end of a dot tile, serves both.

use std::arch::x86_64::*;

use super::layout::Product;

/// Floats per vector.
const W: usize = 8;

/// Rows of `C` per [`broadcast`] tile: 6 rows × 2 vectors are 12 accumulators,
/// which leaves 4 registers for `B`'s 2 vectors and the broadcast element.
const ROWS: usize = 6;

/// `C ← α·A·B + β·C` with vectors along `C`'s and `B`'s rows and `A`'s elements
/// broadcast: each element of `C` is one lane's chain of FMAs over `k` in order,
/// whatever tile it falls in.
///
/// # Safety
/// The CPU has AVX2 and FMA; `p` describes valid, non-overlapping (except `A`
/// with `B`) matrices with `b_cs == 1`, and `m`, `n` ≥ 1.
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn broadcast(p: &Product) {
    debug_assert!(p.b_cs == 1);
    // One or two rows (a dense layer at batch 1): 4 vectors a row, so that 4 or 8
    // FMA chains hide the FMA latency.
    let (rows, vectors) = if p.m <= 2 { (p.m, 4) } else { (ROWS, 2) };
    let strip = vectors * W;
    let mut j = 0;
    while j < p.n {
        let cols = (p.n - j).min(strip);
        let mut i = 0;
        while i < p.m {
            let r = (p.m - i).min(rows);
            // SAFETY: row i < m and column j < n are inside A, B and C.
            let (a, b, c) = unsafe {
                (
                    p.a.offset(i as isize * p.a_rs),
                    p.b.add(j),
                    p.c.offset(i as isize * p.c_rs).add(j),
                )
            };
            // The vectors this strip needs (see the AVX-512 `broadcast`).
            let v = cols.div_ceil(W);
            // When B's rows are a page or more apart (R2's 9216 columns), the
            // first tile of a strip fetches the next strip's rows into cache as it
            // goes: the hardware prefetchers do not follow such strides, and every
            // later tile of the strip reads them from L1. (Not for closer rows: it
            // measured no gain on the conv products, and costs load slots.)
            let ahead = i == 0 && j + cols < p.n && p.b_rs.unsigned_abs() >= super::FAR_ROWS;
            // SAFETY: the tile's r rows and `cols` columns are inside the product.
            unsafe {
                match (r, v) {
                    (6, 2) => tile::<6, 2>(p, a, b, c, cols, ahead),
                    (5, 2) => tile::<5, 2>(p, a, b, c, cols, ahead),
                    (4, 2) => tile::<4, 2>(p, a, b, c, cols, ahead),
                    (3, 2) => tile::<3, 2>(p, a, b, c, cols, ahead),
                    (2, 2) => tile::<2, 2>(p, a, b, c, cols, ahead),
                    (1, 2) => tile::<1, 2>(p, a, b, c, cols, ahead),
                    (6, 1) => tile::<6, 1>(p, a, b, c, cols, ahead),
                    (5, 1) => tile::<5, 1>(p, a, b, c, cols, ahead),
                    (4, 1) => tile::<4, 1>(p, a, b, c, cols, ahead),
                    (3, 1) => tile::<3, 1>(p, a, b, c, cols, ahead),
                    (2, 1) => tile::<2, 1>(p, a, b, c, cols, ahead),
                    (1, 1) => tile::<1, 1>(p, a, b, c, cols, ahead),
                    (2, 3) => tile::<2, 3>(p, a, b, c, cols, ahead),
                    (1, 3) => tile::<1, 3>(p, a, b, c, cols, ahead),
                    (2, _) => tile::<2, 4>(p, a, b, c, cols, ahead),
                    _ => tile::<1, 4>(p, a, b, c, cols, ahead),
                }
            }
            i += r;
        }
        j += cols;
    }
}

/// A mask of the first `count` (at most 8) lanes, for `maskload`/`maskstore`.
#[inline]
#[target_feature(enable = "avx2,fma")]
fn lanes(count: usize) -> __m256i {
    let count = _mm256_set1_epi32(count.min(W) as i32);
    _mm256_cmpgt_epi32(count, _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7))
}

/// One `R × V·8` tile of [`broadcast`]; see the AVX-512 `tile`.
#[inline]
#[target_feature(enable = "avx2,fma")]
unsafe fn tile<const R: usize, const V: usize>(
    p: &Product,
    a: *const f32,
    b: *const f32,
    c: *mut f32,
    cols: usize,
    ahead: bool,
) {
    let mut masks = [_mm256_setzero_si256(); V];
    for (v, mask) in masks.iter_mut().enumerate() {
        *mask = lanes(cols.saturating_sub(v * W));
    }
    let mut acc = [[_mm256_setzero_ps(); V]; R];
    let (mut ap, mut bp) = (a, b);
    for _ in 0..p.k {
        let mut bv = [_mm256_setzero_ps(); V];
        for v in 0..V {
            // SAFETY: the masked lanes are columns < n of row p of B.
            bv[v] = unsafe { _mm256_maskload_ps(bp.add(v * W), masks[v]) };
        }
        if ahead {
            // The next strip's part of this row of B (see the AVX-512 `tile`).
            _mm_prefetch::<_MM_HINT_T0>(bp.wrapping_add(V * W) as *const i8);
        }
        for (r, acc) in acc.iter_mut().enumerate() {
            // SAFETY: row r < m of A, at the current p < k.
            let av = _mm256_set1_ps(unsafe { *ap.offset(r as isize * p.a_rs) });
            for v in 0..V {
                acc[v] = _mm256_fmadd_ps(av, bv[v], acc[v]);
            }
        }
        // One step along k; read again only while p < k.
        ap = ap.wrapping_offset(p.a_cs);
        bp = bp.wrapping_offset(p.b_rs);
    }
    let (alpha, beta) = (_mm256_set1_ps(p.alpha), _mm256_set1_ps(p.beta));
    for (r, acc) in acc.iter().enumerate() {
        // SAFETY: row r < m of C.
        let cr = unsafe { c.offset(r as isize * p.c_rs) };
        for v in 0..V {
            let mut out = _mm256_mul_ps(alpha, acc[v]);
            // β = 0 must not read C, which may hold anything (NaN included).
            if p.beta != 0.0 {
                // SAFETY: the masked lanes are columns < n of row r of C.
                let old = unsafe { _mm256_maskload_ps(cr.add(v * W), masks[v]) };
                out = _mm256_fmadd_ps(beta, old, out);
            }
            // SAFETY: as the load above; C is not aliased (borrowed mutably).
            unsafe { _mm256_maskstore_ps(cr.add(v * W), masks[v], out) };
        }
    }
}

/// Tile of [`dot`]: 2 rows × 4 columns, 8 accumulators (one [`sum8`]) and 6 loads
/// per 8 FMAs.
const DOT_ROWS: usize = 2;
const DOT_COLS: usize = 4;

/// `C ← α·A·B + β·C` as dot products along `k`, when `A`'s rows and `B`'s
/// columns are contiguous; see the AVX-512 `dot` (here lane `l` takes
/// `p ≡ l mod 8`).
///
/// # Safety
/// The CPU has AVX2 and FMA; `p` describes valid, non-overlapping (except `A`
/// with `B`) matrices with `a_cs == 1`, `b_rs == 1`, and `m`, `n`, `k` ≥ 1.
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn dot(p: &Product) {
    debug_assert!(p.a_cs == 1 && p.b_rs == 1);
    let (block, blocks) = super::dot_blocks(p.k);
    for kb in 0..blocks {
        let k0 = kb * block;
        let kc = block.min(p.k - k0);
        let beta = if kb == 0 { p.beta } else { 1.0 };
        for i in (0..p.m).step_by(DOT_ROWS) {
            for j in (0..p.n).step_by(DOT_COLS) {
                // SAFETY: the tile's rows and columns are inside the product, and
                // k0 + kc ≤ k.
                unsafe { dot_tile(p, i, j, k0, kc, beta) };
            }
        }
    }
}

/// One step of 8 (the `mask`ed lanes) along `k` of a [`dot_tile`], from `off`.
///
/// # Safety
/// The masked lanes from `off` on are inside each row of `a` and column of `b`.
#[inline]
#[target_feature(enable = "avx2,fma")]
unsafe fn dot_step(
    a: &[*const f32; DOT_ROWS],
    b: &[*const f32; DOT_COLS],
    off: usize,
    mask: __m256i,
    acc: &mut [[__m256; DOT_COLS]; DOT_ROWS],
) {
    let mut bv = [_mm256_setzero_ps(); DOT_COLS];
    for s in 0..DOT_COLS {
        // SAFETY: the caller's promise.
        bv[s] = unsafe { _mm256_maskload_ps(b[s].add(off), mask) };
    }
    for r in 0..DOT_ROWS {
        // SAFETY: the caller's promise.
        let av = unsafe { _mm256_maskload_ps(a[r].add(off), mask) };
        for s in 0..DOT_COLS {
            acc[r][s] = _mm256_fmadd_ps(av, bv[s], acc[r][s]);
        }
    }
}

/// One 2 × 4 tile of [`dot`] at row `i`, column `j`, over `k0 .. k0 + kc`; past
/// the edge of `C` it repeats its last row or column, whose sums are not stored.
#[inline]
#[target_feature(enable = "avx2,fma")]
unsafe fn dot_tile(p: &Product, i: usize, j: usize, k0: usize, kc: usize, beta: f32) {
    let (rows, cols) = ((p.m - i).min(DOT_ROWS), (p.n - j).min(DOT_COLS));
    let mut a = [p.a; DOT_ROWS];
    let mut b = [p.b; DOT_COLS];
    // SAFETY (both loops): rows < m of A and columns < n of B, from k0 < k on.
    for (t, a) in a.iter_mut().enumerate() {
        *a = unsafe { p.a.offset((i + t.min(rows - 1)) as isize * p.a_rs).add(k0) };
    }
    for (t, b) in b.iter_mut().enumerate() {
        *b = unsafe { p.b.offset((j + t.min(cols - 1)) as isize * p.b_cs).add(k0) };
    }
    let mut acc = [[_mm256_setzero_ps(); DOT_COLS]; DOT_ROWS];
    let full = kc / W * W;
    let all = _mm256_set1_epi32(-1);
    for off in (0..full).step_by(W) {
        // SAFETY: lanes off .. off + 8 ≤ kc of each row and column.
        unsafe { dot_step(&a, &b, off, all, &mut acc) };
    }
    if full < kc {
        // SAFETY: the masked lanes are below kc.
        unsafe { dot_step(&a, &b, full, lanes(kc - full), &mut acc) };
    }
    let sums = sum8(&[
        acc[0][0], acc[0][1], acc[0][2], acc[0][3], acc[1][0], acc[1][1], acc[1][2], acc[1][3],
    ]);
    for r in 0..rows {
        let lane = if r == 0 {
            _mm256_castps256_ps128(sums)
        } else {
            _mm256_extractf128_ps(sums, 1)
        };
        // SAFETY: row i + r < m, columns j .. j + cols of C.
        unsafe {
            store4(
                p.c.offset((i + r) as isize * p.c_rs).add(j),
                cols,
                lane,
                p.alpha,
                beta,
            )
        };
    }
}

/// The lane sums of 8 vectors, in their order, each by the same tree:
/// `((l0 + l1) + (l2 + l3)) + ((l4 + l5) + (l6 + l7))`.
#[inline]
#[target_feature(enable = "avx2,fma")]
fn sum8(x: &[__m256; 8]) -> __m256 {
    let h01 = _mm256_hadd_ps(x[0], x[1]);
    let h23 = _mm256_hadd_ps(x[2], x[3]);
    let h45 = _mm256_hadd_ps(x[4], x[5]);
    let h67 = _mm256_hadd_ps(x[6], x[7]);
    // Lanes 0-3: the low halves' sums of x0..x3; lanes 4-7: the high halves'.
    let g0 = _mm256_hadd_ps(h01, h23);
    let g1 = _mm256_hadd_ps(h45, h67);
    let low = _mm256_permute2f128_ps(g0, g1, 0x20);
    let high = _mm256_permute2f128_ps(g0, g1, 0x31);
    _mm256_add_ps(low, high)
}

/// `c[..cols] ← α·sums + β·c[..cols]` for up to 4 columns of one row; β = 0 does
/// not read `c`.
///
/// # Safety
/// `c .. c + cols` (`cols` ≤ 4) are elements of C.
#[inline]
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn store4(c: *mut f32, cols: usize, sums: __m128, alpha: f32, beta: f32) {
    let mask = _mm_cmpgt_epi32(_mm_set1_epi32(cols as i32), _mm_setr_epi32(0, 1, 2, 3));
    let mut out = _mm_mul_ps(_mm_set1_ps(alpha), sums);
    if beta != 0.0 {
        // SAFETY: the masked lanes are the caller's columns.
        let old = unsafe { _mm_maskload_ps(c, mask) };
        out = _mm_fmadd_ps(_mm_set1_ps(beta), old, out);
    }
    // SAFETY: as above; C is not aliased.
    unsafe { _mm_maskstore_ps(c, mask, out) };
}
