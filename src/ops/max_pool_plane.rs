//! Max pooling of single `[H, W]` planes: the kernels behind [`Tensor::max_pool2d`]
//! and the fused conv block's forward pass, with or without the winners' positions
//! (the backward pass, from the winners, is `max_pool_backward`).
//!
//! Training needs each window's winner (`argmax`, the index of its first maximum
//! within the plane) to route the gradient; inference needs only the maxima, which
//! take a third of the instructions (one `max` per pair of inputs instead of
//! compares, selects and index arithmetic). The values are the same either way.
//!
//! [`Tensor::max_pool2d`]: crate::Tensor::max_pool2d

use super::pool::PoolGeometry;

/// Max pooling of one `[H, W]` plane `x` into `out`, with the index of each window's
/// first maximum in `argmax` (a NaN wins, as in PyTorch). An empty `argmax` asks for
/// the maxima alone, as a forward pass that records no backward does.
pub(super) fn max_pool_plane(geometry: &PoolGeometry, x: &[f32], out: &mut [f32], argmax: &mut [u32]) {
    let nan = match (geometry.is_2x2_stride_2_valid(), argmax.is_empty()) {
        (true, false) => max_plane_2x2::<true>(geometry, x, out, argmax),
        (true, true) => max_plane_2x2::<false>(geometry, x, out, argmax),
        (false, _) => max_plane(geometry, x, out, argmax),
    };
    if nan {
        max_plane_nan(geometry, x, out, argmax);
    }
}

/// Max pooling of one plane, any geometry; `argmax` may be empty (values only).
/// Returns whether the plane holds a NaN, which this pass ignores (see
/// [`max_plane_nan`]).
///
/// In two passes per window, both free of data-dependent branches: the maximum by
/// `f32::max`, then the first position holding it by a chain of selects. On real
/// data "is this one larger?" is a coin flip, and a compare-and-branch loop (or
/// LLVM's branchy lowering of a compare-and-select one) was 7x slower (measured).
fn max_plane(geometry: &PoolGeometry, x: &[f32], out: &mut [f32], argmax: &mut [u32]) -> bool {
    let w = geometry.w;
    let (mut i, mut nan) = (0, false);
    for oy in 0..geometry.pad.out_h {
        for ox in 0..geometry.pad.out_w {
            let (rows, cols) = geometry.window(oy, ox);
            let mut best = f32::NEG_INFINITY;
            for r in rows.clone() {
                for &v in &x[r * w + cols.start..r * w + cols.end] {
                    best = best.max(v);
                    nan |= v.is_nan();
                }
            }
            let mut at = (rows.start * w + cols.start) as u32;
            for r in rows.clone().rev() {
                for c in cols.clone().rev() {
                    at = if x[r * w + c] == best {
                        (r * w + c) as u32
                    } else {
                        at
                    };
                }
            }
            out[i] = best;
            if let Some(slot) = argmax.get_mut(i) {
                *slot = at;
            }
            i += 1;
        }
    }
    nan
}

/// Max pooling of one plane with the ubiquitous 2×2 window, stride 2, no padding,
/// with the winners (`WINNERS`, into `argmax`) or without. The same two passes as
/// [`max_plane`], unrolled; 7x faster than a compare-and-branch loop on R1's first
/// pool (measured). Returns whether the plane holds a NaN.
fn max_plane_2x2<const WINNERS: bool>(
    geometry: &PoolGeometry,
    x: &[f32],
    out: &mut [f32],
    argmax: &mut [u32],
) -> bool {
    let (w, oh, ow) = (geometry.w, geometry.pad.out_h, geometry.pad.out_w);
    #[cfg(target_arch = "x86_64")]
    if ow >= 8 && super::cpu::avx2() {
        // SAFETY: the CPU has AVX2.
        return unsafe {
            if WINNERS {
                avx2::max_winners_2x2(w, (oh, ow), x, out, argmax)
            } else {
                avx2::max_values_2x2(w, (oh, ow), x, out)
            }
        };
    }
    #[cfg(target_arch = "x86_64")]
    if ow >= 4 {
        return sse::max_plane_2x2::<WINNERS>(w, (oh, ow), x, out, argmax);
    }
    let mut nan = false;
    for oy in 0..oh {
        let (t, u) = (2 * oy * w, (2 * oy + 1) * w);
        for ox in 0..ow {
            let (t, u) = (t + 2 * ox, u + 2 * ox);
            let (a0, a1, b0, b1) = (x[t], x[t + 1], x[u], x[u + 1]);
            let m = a0.max(a1).max(b0.max(b1));
            nan |= a0.is_nan() | a1.is_nan() | b0.is_nan() | b1.is_nan();
            out[oy * ow + ox] = m;
            if WINNERS {
                let mut at = u + 1;
                at = if b0 == m { u } else { at };
                at = if a1 == m { t + 1 } else { at };
                at = if a0 == m { t } else { at };
                argmax[oy * ow + ox] = at as u32;
            }
        }
    }
    nan
}

/// The 2×2 max pool of a plane, four outputs at a time with SSE2 (part of every
/// x86-64 CPU). Written with intrinsics because the compiler's vectorization of the
/// plain loop (NaN-aware `f32::max`, 64-bit index arithmetic) was 10–20% slower on
/// the pooling benchmarks, and a select form of it was turned into branches, 3x
/// slower (measured).
#[cfg(target_arch = "x86_64")]
mod sse {
    use std::arch::x86_64::*;

    /// Pools the `2·oh` first rows of a plane `x` of width `w` into `out` (`oh × ow`)
    /// and, with `WINNERS`, `argmax`, in blocks of four outputs along a row. A row
    /// whose width is not a multiple of four ends with a block that overlaps the one
    /// before: it writes the same values again, so no scalar tail is needed (one
    /// output in 13 on R1's first pool, and it was a quarter of the time).
    ///
    /// The first maximum in reading order wins: left unless right is larger, then
    /// top unless bottom is larger (the scalar loop's choice when no NaN). Returns
    /// whether the plane holds a NaN, which the maxima here ignore.
    pub(super) fn max_plane_2x2<const WINNERS: bool>(
        w: usize,
        (oh, ow): (usize, usize),
        x: &[f32],
        out: &mut [f32],
        argmax: &mut [u32],
    ) -> bool {
        assert!(
            ow >= 4
                && 2 * ow <= w
                && (oh == 0 || x.len() >= (2 * oh - 1) * w + 2 * ow)
                && out.len() >= oh * ow
                && (!WINNERS || argmax.len() >= oh * ow),
            "max_pool2d: 2x2 plane kernel on {oh}x{ow} outputs from width {w} with {} inputs",
            x.len()
        );
        // SAFETY: SSE2 is part of x86-64. The block at output `(oy, ox)`, with
        // `ox + 4 ≤ ow`, reads rows `2·oy` and `2·oy + 1` at columns `2·ox .. 2·ox + 8`
        // (within the first `2·ow ≤ w` columns, the rows within `x` as asserted)
        // and writes `out`/`argmax` at `oy·ow + ox .. + 4`, within `oh·ow`.
        unsafe {
            let (x, out, argmax) = (x.as_ptr(), out.as_mut_ptr(), argmax.as_mut_ptr());
            let offsets = _mm_set_epi32(6, 4, 2, 0);
            let mut nan = _mm_setzero_ps();
            for oy in 0..oh {
                let (t, u) = (2 * oy * w, (2 * oy + 1) * w);
                let mut ox = 0;
                loop {
                    let (ta, tb) = (
                        _mm_loadu_ps(x.add(t + 2 * ox)),
                        _mm_loadu_ps(x.add(t + 2 * ox + 4)),
                    );
                    let (ba, bb) = (
                        _mm_loadu_ps(x.add(u + 2 * ox)),
                        _mm_loadu_ps(x.add(u + 2 * ox + 4)),
                    );
                    let at = oy * ow + ox;
                    if WINNERS {
                        // Even (left) and odd (right) columns of the four windows.
                        let (a0, a1) = (
                            _mm_shuffle_ps::<0b10_00_10_00>(ta, tb),
                            _mm_shuffle_ps::<0b11_01_11_01>(ta, tb),
                        );
                        let (b0, b1) = (
                            _mm_shuffle_ps::<0b10_00_10_00>(ba, bb),
                            _mm_shuffle_ps::<0b11_01_11_01>(ba, bb),
                        );
                        nan = _mm_or_ps(nan, _mm_or_ps(_mm_cmpunord_ps(a0, a1), _mm_cmpunord_ps(b0, b1)));
                        let right_top = _mm_cmpgt_ps(a1, a0);
                        let right_bottom = _mm_cmpgt_ps(b1, b0);
                        let top_max = select(right_top, a1, a0);
                        let bottom_max = select(right_bottom, b1, b0);
                        let lower = _mm_cmpgt_ps(bottom_max, top_max);
                        _mm_storeu_ps(out.add(at), select(lower, bottom_max, top_max));
                        // Indices: row start + 2·ox + (1 if the right column won).
                        let column = _mm_add_epi32(_mm_set1_epi32((2 * ox) as i32), offsets);
                        let one = |mask: __m128| _mm_srli_epi32::<31>(_mm_castps_si128(mask));
                        let top_at =
                            _mm_add_epi32(_mm_add_epi32(_mm_set1_epi32(t as i32), column), one(right_top));
                        let bottom_at =
                            _mm_add_epi32(_mm_add_epi32(_mm_set1_epi32(u as i32), column), one(right_bottom));
                        let winner = select(lower, _mm_castsi128_ps(bottom_at), _mm_castsi128_ps(top_at));
                        _mm_storeu_si128(argmax.add(at) as *mut __m128i, _mm_castps_si128(winner));
                    } else {
                        // The column maxima, then the larger of each even/odd pair
                        // (`maxps` drops a NaN in its first operand: counted apart).
                        nan = _mm_or_ps(nan, _mm_or_ps(_mm_cmpunord_ps(ta, ba), _mm_cmpunord_ps(tb, bb)));
                        let (ma, mb) = (_mm_max_ps(ta, ba), _mm_max_ps(tb, bb));
                        let pairs = _mm_max_ps(
                            _mm_shuffle_ps::<0b10_00_10_00>(ma, mb),
                            _mm_shuffle_ps::<0b11_01_11_01>(ma, mb),
                        );
                        _mm_storeu_ps(out.add(at), pairs);
                    }
                    if ox + 4 == ow {
                        break;
                    }
                    ox = (ox + 4).min(ow - 4);
                }
            }
            _mm_movemask_ps(nan) != 0
        }
    }

    /// `mask ? a : b`, lane by lane.
    #[inline(always)]
    unsafe fn select(mask: __m128, a: __m128, b: __m128) -> __m128 {
        // SAFETY: SSE2 is part of x86-64.
        unsafe { _mm_or_ps(_mm_and_ps(mask, a), _mm_andnot_ps(mask, b)) }
    }
}

/// The 2×2 maxima of a plane, without or with the winners, eight outputs at a time
/// with AVX2 (when [`cpu::avx2`](super::cpu::avx2) allows it): half the
/// instructions of the SSE2 kernel, on what was 7% of R1's inference (profiled)
/// and, with the winners, its first pool in training. The same maxima and winners.
#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    /// What both kernels' blocks read and write, checked before any of it: blocks
    /// of eight outputs from rows `2·oy`, `2·oy + 1` at columns below `2·ow ≤ w`,
    /// into `oh·ow` outputs (and winners).
    fn check_bounds(w: usize, (oh, ow): (usize, usize), inputs: usize, outputs: usize) {
        assert!(
            ow >= 8 && 2 * ow <= w && (oh == 0 || inputs >= (2 * oh - 1) * w + 2 * ow) && outputs >= oh * ow,
            "max_pool2d: 2x2 plane kernel on {oh}x{ow} outputs from width {w} with {inputs} inputs"
        );
    }

    /// As `sse::max_plane_2x2::<false>`, in blocks of eight outputs, the last block
    /// of a row overlapping the one before.
    ///
    /// # Safety
    /// The CPU has AVX2.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn max_values_2x2(
        w: usize,
        (oh, ow): (usize, usize),
        x: &[f32],
        out: &mut [f32],
    ) -> bool {
        check_bounds(w, (oh, ow), x.len(), out.len());
        // SAFETY: the block at output `(oy, ox)`, with `ox + 8 ≤ ow`, reads rows
        // `2·oy` and `2·oy + 1` at columns `2·ox .. 2·ox + 16` (within the first
        // `2·ow ≤ w` columns, the rows within `x` as asserted) and writes `out` at
        // `oy·ow + ox .. + 8`, within `oh·ow`.
        unsafe {
            let (x, out) = (x.as_ptr(), out.as_mut_ptr());
            let mut nan = _mm256_setzero_ps();
            for oy in 0..oh {
                let (t, u) = (2 * oy * w, (2 * oy + 1) * w);
                let mut ox = 0;
                loop {
                    let (ta, tb) = (
                        _mm256_loadu_ps(x.add(t + 2 * ox)),
                        _mm256_loadu_ps(x.add(t + 2 * ox + 8)),
                    );
                    let (ba, bb) = (
                        _mm256_loadu_ps(x.add(u + 2 * ox)),
                        _mm256_loadu_ps(x.add(u + 2 * ox + 8)),
                    );
                    let unordered = _mm256_or_ps(
                        _mm256_cmp_ps::<_CMP_UNORD_Q>(ta, ba),
                        _mm256_cmp_ps::<_CMP_UNORD_Q>(tb, bb),
                    );
                    nan = _mm256_or_ps(nan, unordered);
                    let (ma, mb) = (_mm256_max_ps(ta, ba), _mm256_max_ps(tb, bb));
                    // Even and odd columns, in lane order [0 2 8 10 | 4 6 12 14], then
                    // the 64-bit quarters put back in order.
                    let pairs = _mm256_max_ps(
                        _mm256_shuffle_ps::<0b10_00_10_00>(ma, mb),
                        _mm256_shuffle_ps::<0b11_01_11_01>(ma, mb),
                    );
                    let ordered = _mm256_permute4x64_pd::<0b11_01_10_00>(_mm256_castps_pd(pairs));
                    _mm256_storeu_ps(out.add(oy * ow + ox), _mm256_castpd_ps(ordered));
                    if ox + 8 == ow {
                        break;
                    }
                    ox = (ox + 8).min(ow - 8);
                }
            }
            _mm256_movemask_ps(nan) != 0
        }
    }

    /// As `sse::max_plane_2x2::<true>`, the maxima and their winners in blocks of
    /// eight outputs, the last block of a row overlapping the one before: the same
    /// comparisons and selects, so the same maxima and winners, bit for bit. The
    /// SSE2 kernel was R1's largest cost in a training step's forward pass after the
    /// products (18.6M instructions a step, callgrind).
    ///
    /// # Safety
    /// The CPU has AVX2.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn max_winners_2x2(
        w: usize,
        (oh, ow): (usize, usize),
        x: &[f32],
        out: &mut [f32],
        argmax: &mut [u32],
    ) -> bool {
        check_bounds(w, (oh, ow), x.len(), out.len().min(argmax.len()));
        // SAFETY: the block at output `(oy, ox)`, with `ox + 8 ≤ ow`, reads rows
        // `2·oy` and `2·oy + 1` at columns `2·ox .. 2·ox + 16` (within the first
        // `2·ow ≤ w` columns, the rows within `x` as asserted) and writes `out` and
        // `argmax` at `oy·ow + ox .. + 8`, within `oh·ow`.
        unsafe {
            let (x, out, argmax) = (x.as_ptr(), out.as_mut_ptr(), argmax.as_mut_ptr());
            // The even columns of the eight windows, in the shuffles' lane order
            // (windows 0 1 4 5 | 2 3 6 7); the results are put back in order at the end.
            let offsets = _mm256_setr_epi32(0, 2, 8, 10, 4, 6, 12, 14);
            let in_order =
                |v: __m256| _mm256_castpd_ps(_mm256_permute4x64_pd::<0b11_01_10_00>(_mm256_castps_pd(v)));
            let select = |mask: __m256, a: __m256, b: __m256| _mm256_blendv_ps(b, a, mask);
            let one = |mask: __m256| _mm256_srli_epi32::<31>(_mm256_castps_si256(mask));
            let mut nan = _mm256_setzero_ps();
            for oy in 0..oh {
                let (t, u) = (2 * oy * w, (2 * oy + 1) * w);
                let mut ox = 0;
                loop {
                    let (ta, tb) = (
                        _mm256_loadu_ps(x.add(t + 2 * ox)),
                        _mm256_loadu_ps(x.add(t + 2 * ox + 8)),
                    );
                    let (ba, bb) = (
                        _mm256_loadu_ps(x.add(u + 2 * ox)),
                        _mm256_loadu_ps(x.add(u + 2 * ox + 8)),
                    );
                    // Left (even) and right (odd) columns of the windows, top and bottom.
                    let (a0, a1) = (
                        _mm256_shuffle_ps::<0b10_00_10_00>(ta, tb),
                        _mm256_shuffle_ps::<0b11_01_11_01>(ta, tb),
                    );
                    let (b0, b1) = (
                        _mm256_shuffle_ps::<0b10_00_10_00>(ba, bb),
                        _mm256_shuffle_ps::<0b11_01_11_01>(ba, bb),
                    );
                    let unordered = _mm256_or_ps(
                        _mm256_cmp_ps::<_CMP_UNORD_Q>(a0, a1),
                        _mm256_cmp_ps::<_CMP_UNORD_Q>(b0, b1),
                    );
                    nan = _mm256_or_ps(nan, unordered);
                    let right_top = _mm256_cmp_ps::<_CMP_GT_OQ>(a1, a0);
                    let right_bottom = _mm256_cmp_ps::<_CMP_GT_OQ>(b1, b0);
                    let top_max = select(right_top, a1, a0);
                    let bottom_max = select(right_bottom, b1, b0);
                    let lower = _mm256_cmp_ps::<_CMP_GT_OQ>(bottom_max, top_max);
                    let at = oy * ow + ox;
                    _mm256_storeu_ps(out.add(at), in_order(select(lower, bottom_max, top_max)));
                    // Indices: row start + 2·ox + (1 if the right column won).
                    let column = _mm256_add_epi32(_mm256_set1_epi32((2 * ox) as i32), offsets);
                    let top_at = _mm256_add_epi32(
                        _mm256_add_epi32(_mm256_set1_epi32(t as i32), column),
                        one(right_top),
                    );
                    let bottom_at = _mm256_add_epi32(
                        _mm256_add_epi32(_mm256_set1_epi32(u as i32), column),
                        one(right_bottom),
                    );
                    let winner = select(lower, _mm256_castsi256_ps(bottom_at), _mm256_castsi256_ps(top_at));
                    _mm256_storeu_si256(
                        argmax.add(at) as *mut __m256i,
                        _mm256_castps_si256(in_order(winner)),
                    );
                    if ox + 8 == ow {
                        break;
                    }
                    ox = (ox + 8).min(ow - 8);
                }
            }
            _mm256_movemask_ps(nan) != 0
        }
    }
}

/// Max pooling of one plane that holds a NaN (rare, so simple): a window with a NaN
/// gives NaN and points at its first NaN, as in PyTorch; others as usual. `argmax`
/// may be empty (values only).
fn max_plane_nan(geometry: &PoolGeometry, x: &[f32], out: &mut [f32], argmax: &mut [u32]) {
    let w = geometry.w;
    let mut i = 0;
    for oy in 0..geometry.pad.out_h {
        for ox in 0..geometry.pad.out_w {
            let (rows, cols) = geometry.window(oy, ox);
            let (mut best, mut at) = (f32::NEG_INFINITY, rows.start * w + cols.start);
            'window: for r in rows {
                for c in cols.clone() {
                    let v = x[r * w + c];
                    if v > best || v.is_nan() {
                        (best, at) = (v, r * w + c);
                        if v.is_nan() {
                            break 'window;
                        }
                    }
                }
            }
            out[i] = best;
            if let Some(slot) = argmax.get_mut(i) {
                *slot = at as u32;
            }
            i += 1;
        }
    }
}
