//! The AVX-512 kernels (16 floats a vector): [`broadcast`] when `B`'s rows are
//! contiguous, [`dot`] when `A`'s rows and `B`'s columns are (a weight gradient).
//! Both read the operands where they lie: the products here are mostly small (a
//! Winograd tile's 16 × 16 × 160) and sit in L1 or L2, so copying them into
//! panels first costs more than it saves (see `mod.rs`).

use std::arch::x86_64::*;

use super::layout::Product;

/// Floats per vector.
const W: usize = 16;

/// Rows of `C` per [`broadcast`] tile: 8 rows × 2 vectors are 16 accumulators of
/// the 32 registers, and each step of `k` loads 2 vectors of `B` for 16 FMAs.
const ROWS: usize = 8;

/// `C ← α·A·B + β·C` with vectors along `C`'s and `B`'s rows and `A`'s elements
/// broadcast: each element of `C` is one lane's chain of FMAs over `k` in order,
/// whatever tile it falls in.
///
/// # Safety
/// The CPU has AVX-512F, AVX2 and FMA; `p` describes valid, non-overlapping
/// (except `A` with `B`) matrices with `b_cs == 1`, and `m`, `n` ≥ 1.
#[target_feature(enable = "avx512f,avx2,fma")]
pub(super) unsafe fn broadcast(p: &Product) {
    debug_assert!(p.b_cs == 1);
    // A product with one or two rows (a dense layer at batch 1) gets tiles 8 or 4
    // vectors wide instead, so that 8 FMA chains hide the FMA latency: with one
    // row and 4 vectors, the default net's 3136 → 128 layer ran 4 chains, half the
    // FMA rate, and read each row of B in two strips.
    let (rows, vectors) = match p.m {
        1 => (1, 8),
        2 => (2, 4),
        _ => (ROWS, 2),
    };
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
            // The vectors this strip needs: a last strip of 16 columns or fewer
            // runs one vector a row, not one and an empty one.
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
                    (8, 2) => tile::<8, 2>(p, a, b, c, cols, ahead),
                    (7, 2) => tile::<7, 2>(p, a, b, c, cols, ahead),
                    (6, 2) => tile::<6, 2>(p, a, b, c, cols, ahead),
                    (5, 2) => tile::<5, 2>(p, a, b, c, cols, ahead),
                    (4, 2) => tile::<4, 2>(p, a, b, c, cols, ahead),
                    (3, 2) => tile::<3, 2>(p, a, b, c, cols, ahead),
                    (2, 2) => tile::<2, 2>(p, a, b, c, cols, ahead),
                    (1, 2) => tile::<1, 2>(p, a, b, c, cols, ahead),
                    (8, 1) => tile::<8, 1>(p, a, b, c, cols, ahead),
                    (7, 1) => tile::<7, 1>(p, a, b, c, cols, ahead),
                    (6, 1) => tile::<6, 1>(p, a, b, c, cols, ahead),
                    (5, 1) => tile::<5, 1>(p, a, b, c, cols, ahead),
                    (4, 1) => tile::<4, 1>(p, a, b, c, cols, ahead),
                    (3, 1) => tile::<3, 1>(p, a, b, c, cols, ahead),
                    (2, 1) => tile::<2, 1>(p, a, b, c, cols, ahead),
                    (1, 1) => tile::<1, 1>(p, a, b, c, cols, ahead),
                    (2, 3) => tile::<2, 3>(p, a, b, c, cols, ahead),
                    (1, 3) => tile::<1, 3>(p, a, b, c, cols, ahead),
                    (2, _) => tile::<2, 4>(p, a, b, c, cols, ahead),
                    (1, 4) => tile::<1, 4>(p, a, b, c, cols, ahead),
                    _ => tile::<1, 8>(p, a, b, c, cols, ahead),
                }
            }
            i += r;
        }
        j += cols;
    }
}

/// The lanes of a vector that hold one of `count` remaining columns.
#[inline]
fn lanes(count: usize) -> __mmask16 {
    if count >= W {
        !0
    } else {
        (1u16 << count) - 1
    }
}

/// One `R × V·16` tile of [`broadcast`] at `a` (row 0 of its `A` rows), `b` (column
/// 0 of its `B` columns) and `c`, of which the first `cols` columns exist; `ahead`:
/// prefetch the next strip's rows of `B`. Masked
/// loads and stores cover a short last tile, with the same arithmetic per element.
#[inline]
#[target_feature(enable = "avx512f,avx2,fma")]
unsafe fn tile<const R: usize, const V: usize>(
    p: &Product,
    a: *const f32,
    b: *const f32,
    c: *mut f32,
    cols: usize,
    ahead: bool,
) {
    let mut masks = [0; V];
    for (v, mask) in masks.iter_mut().enumerate() {
        *mask = lanes(cols.saturating_sub(v * W));
    }
    let mut acc = [[_mm512_setzero_ps(); V]; R];
    let (mut ap, mut bp) = (a, b);
    for _ in 0..p.k {
        let mut bv = [_mm512_setzero_ps(); V];
        for v in 0..V {
            // SAFETY: the masked lanes are columns < n of row p of B; the others
            // are not touched.
            bv[v] = unsafe { _mm512_maskz_loadu_ps(masks[v], bp.add(v * W)) };
        }
        if ahead {
            // The next strip's part of this row of B: two cache lines. A prefetch
            // never faults, even past the end of B.
            let next = bp.wrapping_add(V * W);
            _mm_prefetch::<_MM_HINT_T0>(next as *const i8);
            _mm_prefetch::<_MM_HINT_T0>(next.wrapping_add(W) as *const i8);
        }
        for (r, acc) in acc.iter_mut().enumerate() {
            // SAFETY: row r < m of A, at the current p < k.
            let av = _mm512_set1_ps(unsafe { *ap.offset(r as isize * p.a_rs) });
            for v in 0..V {
                acc[v] = _mm512_fmadd_ps(av, bv[v], acc[v]);
            }
        }
        // SAFETY (both): one step along k, at most one past the last element
        // read, and only read again while p < k.
        ap = ap.wrapping_offset(p.a_cs);
        bp = bp.wrapping_offset(p.b_rs);
    }
    let (alpha, beta) = (_mm512_set1_ps(p.alpha), _mm512_set1_ps(p.beta));
    for (r, acc) in acc.iter().enumerate() {
        // SAFETY: row r < m of C.
        let cr = unsafe { c.offset(r as isize * p.c_rs) };
        for v in 0..V {
            let mut out = _mm512_mul_ps(alpha, acc[v]);
            // β = 0 must not read C, which may hold anything (NaN included).
            if p.beta != 0.0 {
                // SAFETY: the masked lanes are columns < n of row r of C.
                let old = unsafe { _mm512_maskz_loadu_ps(masks[v], cr.add(v * W)) };
                out = _mm512_fmadd_ps(beta, old, out);
            }
            // SAFETY: as the load above; C is not aliased (borrowed mutably).
            unsafe { _mm512_mask_storeu_ps(cr.add(v * W), masks[v], out) };
        }
    }
}

/// Tile of [`dot`]: 4 rows × 4 columns, 16 accumulators and 8 loads per 16 FMAs.
const DOT: usize = 4;

/// `C ← α·A·B + β·C` as dot products along `k`, when `A`'s rows and `B`'s
/// columns are contiguous. Each element of `C` sums its products lane by lane
/// (lane `l` takes `p ≡ l mod 16`), then adds its lanes in one fixed tree, the
/// same in every tile, so that the result depends on `k` alone.
///
/// Long products are cut into blocks of `k` (see [`super::dot_blocks`]) so that
/// `B`'s block stays in L2 while the tiles of `A` pass over it; each block's sum
/// is added to `C` in turn.
///
/// # Safety
/// The CPU has AVX-512F, AVX2 and FMA; `p` describes valid, non-overlapping
/// (except `A` with `B`) matrices with `a_cs == 1`, `b_rs == 1`, and `m`, `n`,
/// `k` ≥ 1.
#[target_feature(enable = "avx512f,avx2,fma")]
pub(super) unsafe fn dot(p: &Product) {
    debug_assert!(p.a_cs == 1 && p.b_rs == 1);
    let (block, blocks) = super::dot_blocks(p.k);
    for kb in 0..blocks {
        let k0 = kb * block;
        let kc = block.min(p.k - k0);
        let beta = if kb == 0 { p.beta } else { 1.0 };
        for i in (0..p.m).step_by(DOT) {
            for j in (0..p.n).step_by(DOT) {
                // SAFETY: the tile's rows and columns are inside the product, and
                // k0 + kc ≤ k.
                unsafe { dot_tile(p, i, j, k0, kc, beta) };
            }
        }
    }
}

/// One step of 16 (the `mask`ed lanes) along `k` of a [`dot_tile`], from offset `off`.
///
/// # Safety
/// The masked lanes from `off` on are inside each row of `a` and column of `b`.
#[inline]
#[target_feature(enable = "avx512f,avx2,fma")]
unsafe fn dot_step(
    a: &[*const f32; DOT],
    b: &[*const f32; DOT],
    off: usize,
    mask: __mmask16,
    acc: &mut [[__m512; DOT]; DOT],
) {
    let mut av = [_mm512_setzero_ps(); DOT];
    let mut bv = [_mm512_setzero_ps(); DOT];
    for t in 0..DOT {
        // SAFETY: the caller's promise.
        unsafe {
            av[t] = _mm512_maskz_loadu_ps(mask, a[t].add(off));
            bv[t] = _mm512_maskz_loadu_ps(mask, b[t].add(off));
        }
    }
    for r in 0..DOT {
        for s in 0..DOT {
            acc[r][s] = _mm512_fmadd_ps(av[r], bv[s], acc[r][s]);
        }
    }
}

/// One 4 × 4 tile of [`dot`] at row `i`, column `j`, over `k0 .. k0 + kc`. A tile
/// past the edge of `C` repeats its last row or column: the extra sums are not
/// stored, and each element's lanes are added apart from the others'.
#[inline]
#[target_feature(enable = "avx512f,avx2,fma")]
unsafe fn dot_tile(p: &Product, i: usize, j: usize, k0: usize, kc: usize, beta: f32) {
    let (rows, cols) = ((p.m - i).min(DOT), (p.n - j).min(DOT));
    let mut a = [p.a; DOT];
    let mut b = [p.b; DOT];
    for t in 0..DOT {
        // SAFETY: rows i + t.min(rows - 1) < m of A and columns < n of B, from
        // k0 < k on.
        unsafe {
            a[t] = p.a.offset((i + t.min(rows - 1)) as isize * p.a_rs).add(k0);
            b[t] = p.b.offset((j + t.min(cols - 1)) as isize * p.b_cs).add(k0);
        }
    }
    let mut acc = [[_mm512_setzero_ps(); DOT]; DOT];
    let full = kc / W * W;
    for off in (0..full).step_by(W) {
        // SAFETY: lanes off .. off + 16 ≤ kc of each row and column.
        unsafe { dot_step(&a, &b, off, !0, &mut acc) };
    }
    if full < kc {
        // SAFETY: the masked lanes are below kc.
        unsafe { dot_step(&a, &b, full, lanes(kc - full), &mut acc) };
    }
    // The 16 sums of lanes, in one vector: a fixed tree of 128-bit, then 32-bit
    // pairs (see `sum16`), whose lanes 4r .. 4r + 4 are row r's four columns.
    let mut x = [_mm512_setzero_ps(); DOT * DOT];
    for (e, x) in x.iter_mut().enumerate() {
        *x = acc[e % DOT][e / DOT];
    }
    let sums = sum16(&x);
    for r in 0..rows {
        let row = match r {
            0 => _mm512_extractf32x4_ps::<0>(sums),
            1 => _mm512_extractf32x4_ps::<1>(sums),
            2 => _mm512_extractf32x4_ps::<2>(sums),
            _ => _mm512_extractf32x4_ps::<3>(sums),
        };
        // SAFETY: row i + r < m, columns j .. j + cols of C.
        unsafe {
            let c = p.c.offset((i + r) as isize * p.c_rs).add(j);
            super::kernel_avx2::store4(c, cols, row, p.alpha, beta);
        }
    }
}

/// The lane sums of 16 vectors: lane `4t + l` of the result is the sum of
/// `x[4l + t]`'s lanes, each by the same tree — 128-bit quarters
/// `(q0 + q2) + (q1 + q3)`, then within the quarter `(l0 + l2) + (l1 + l3)`.
#[inline]
#[target_feature(enable = "avx512f,avx2,fma")]
fn sum16(x: &[__m512; 16]) -> __m512 {
    // Pairs of quarters: u[i] = [x(2i) q0+q2, x(2i) q1+q3, x(2i+1) q0+q2, x(2i+1) q1+q3].
    let mut u = [_mm512_setzero_ps(); 8];
    for (i, u) in u.iter_mut().enumerate() {
        let (a, b) = (x[2 * i], x[2 * i + 1]);
        *u = _mm512_add_ps(
            _mm512_shuffle_f32x4::<0x44>(a, b),
            _mm512_shuffle_f32x4::<0xEE>(a, b),
        );
    }
    // Quarter j of v[w]: x(4w + j) reduced to one quarter.
    let mut v = [_mm512_setzero_ps(); 4];
    for (w, v) in v.iter_mut().enumerate() {
        let (a, b) = (u[2 * w], u[2 * w + 1]);
        *v = _mm512_add_ps(
            _mm512_shuffle_f32x4::<0x88>(a, b),
            _mm512_shuffle_f32x4::<0xDD>(a, b),
        );
    }
    // Within each quarter l: [x(8h + l) l0+l2, x(8h + 4 + l) l0+l2, … l1+l3, … l1+l3].
    let mut y = [_mm512_setzero_ps(); 2];
    for (h, y) in y.iter_mut().enumerate() {
        let (a, b) = (v[2 * h], v[2 * h + 1]);
        *y = _mm512_add_ps(_mm512_unpacklo_ps(a, b), _mm512_unpackhi_ps(a, b));
    }
    let (a, b) = (_mm512_castps_pd(y[0]), _mm512_castps_pd(y[1]));
    _mm512_add_ps(
        _mm512_castpd_ps(_mm512_unpacklo_pd(a, b)),
        _mm512_castpd_ps(_mm512_unpackhi_pd(a, b)),
    )
}
