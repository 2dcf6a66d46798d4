//! The backward pass of a 2×2, stride-2 max pool, written row by row.
//!
//! [`max_pool_plane_backward`] zeroes the input plane's gradient, then adds each
//! window's gradient at its winner: a `memset` and one scalar read-modify-write per
//! window at a data-dependent address. Disjoint 2×2 windows allow a pass that writes
//! every pixel once instead: pixel `k` of a window (0 and 1 on its top row, `w` and
//! `w + 1` below) gets the window's gradient if the winner's offset in the window is
//! `k`, else 0, a compare and a mask per pixel, four or eight windows at a time.
//! The result is the scatter's, bit for bit (`0 + g` there, `g + 0` here).
//!
//! In a conv block the gradient first goes through ReLU's mask, `g · (1 or 0)` with
//! the 0 where the pooled output is not positive (as in `relu`'s backward, so a NaN
//! or infinite gradient stays NaN under a zero mask): applied here on the pooled
//! gradient, in the same pass.

use super::elementwise::keep_if;
use super::max_pool_plane::max_pool_plane_backward;
use super::pool::PoolGeometry;

/// The gradient `dx` of a max pool's input plane (old contents ignored) from the
/// pooled gradient `g` and the winners `argmax` of each window, with ReLU's mask of
/// the pooled output `relu_of` applied first if given: as
/// `max_pool_plane_backward(argmax, |j| g[j] · (relu_of[j] > 0 ? 1 : 0), dx)`, the
/// same values, in one pass for 2×2 windows at stride 2 (four windows a row or more).
pub(super) fn max_pool_plane_backward_masked(
    geometry: &PoolGeometry,
    argmax: &[u32],
    g: &[f32],
    relu_of: Option<&[f32]>,
    dx: &mut [f32],
) {
    let (w, oh, ow) = (geometry.w, geometry.pad.out_h, geometry.pad.out_w);
    #[cfg(target_arch = "x86_64")]
    if geometry.is_2x2_stride_2_valid() && ow >= 4 {
        route_2x2(w, (oh, ow), argmax, g, relu_of, dx);
        // What no window covers: the last column and row of an odd-sized plane.
        for row in dx[..2 * oh * w].chunks_exact_mut(w) {
            row[2 * ow..].fill(0.0);
        }
        dx[2 * oh * w..].fill(0.0);
        return;
    }
    match relu_of {
        Some(y) => max_pool_plane_backward(argmax, |j| g[j] * keep_if(y[j] > 0.0, 1.0), dx),
        None => max_pool_plane_backward(argmax, |j| g[j], dx),
    }
}

/// The first `2·ow` columns of the first `2·oh` rows of `dx`, eight windows at a
/// time with AVX2 where the rows have eight, else four with SSE2.
#[cfg(target_arch = "x86_64")]
fn route_2x2(
    w: usize,
    (oh, ow): (usize, usize),
    argmax: &[u32],
    g: &[f32],
    relu_of: Option<&[f32]>,
    dx: &mut [f32],
) {
    let q = oh * ow;
    assert!(
        ow >= 4
            && 2 * ow <= w
            && argmax.len() >= q
            && g.len() >= q
            && relu_of.is_none_or(|y| y.len() >= q)
            && dx.len() >= 2 * oh * w,
        "max_pool2d backward: 2x2 kernel on {oh}x{ow} windows of width {w} with {} winners, \
         {} gradients and a plane of {}",
        argmax.len(),
        g.len(),
        dx.len()
    );
    let avx2 = ow >= 8 && super::cpu::avx2();
    // SAFETY: the bounds the kernels rely on are asserted above (see each), and the
    // AVX2 kernel runs only on a CPU with AVX2.
    unsafe {
        match (avx2, relu_of) {
            (true, Some(y)) => kernels::route_avx2::<true>(w, (oh, ow), argmax, g, y, dx),
            (true, None) => kernels::route_avx2::<false>(w, (oh, ow), argmax, g, g, dx),
            (false, Some(y)) => kernels::route_sse2::<true>(w, (oh, ow), argmax, g, y, dx),
            (false, None) => kernels::route_sse2::<false>(w, (oh, ow), argmax, g, g, dx),
        }
    }
}

/// The kernels of [`route_2x2`]. Both walk each row of windows in blocks, the last
/// block overlapping the one before (it writes the same values again), and write
/// the block's two rows of pixels from four selections of its gradients: pixel `k`
/// of a window keeps the gradient where `winner − (window's top-left index)` is `k`.
#[cfg(target_arch = "x86_64")]
mod kernels {
    use std::arch::x86_64::*;

    /// Four windows at a time (SSE2, every x86-64 CPU).
    ///
    /// # Safety
    /// `ow ≥ 4`, `2·ow ≤ w`; `argmax`, `g` and, with `MASK`, `y` hold `oh·ow`
    /// values; `dx` holds `2·oh` rows of `w`.
    pub(super) unsafe fn route_sse2<const MASK: bool>(
        w: usize,
        (oh, ow): (usize, usize),
        argmax: &[u32],
        g: &[f32],
        y: &[f32],
        dx: &mut [f32],
    ) {
        // SAFETY: the block at window `(oy, ox)`, `ox + 4 ≤ ow`, reads `argmax`,
        // `g`, `y` at `oy·ow + ox .. + 4` (below `oh·ow`) and writes rows `2·oy`
        // and `2·oy + 1` of `dx` at columns `2·ox .. 2·ox + 8` (below `2·ow ≤ w`).
        unsafe {
            let (argmax, g, y, dx) = (argmax.as_ptr(), g.as_ptr(), y.as_ptr(), dx.as_mut_ptr());
            let (zero, one) = (_mm_setzero_ps(), _mm_set1_ps(1.0));
            let columns = _mm_setr_epi32(0, 2, 4, 6);
            let (below, below_right) = (_mm_set1_epi32(w as i32), _mm_set1_epi32(w as i32 + 1));
            for oy in 0..oh {
                let (t, u) = (2 * oy * w, (2 * oy + 1) * w);
                let mut ox = 0;
                loop {
                    let j = oy * ow + ox;
                    let top_left = _mm_add_epi32(_mm_set1_epi32((t + 2 * ox) as i32), columns);
                    let at = _mm_sub_epi32(_mm_loadu_si128(argmax.add(j) as *const __m128i), top_left);
                    let mut v = _mm_loadu_ps(g.add(j));
                    if MASK {
                        let keep = _mm_and_ps(_mm_cmpgt_ps(_mm_loadu_ps(y.add(j)), zero), one);
                        v = _mm_mul_ps(v, keep);
                    }
                    // −0 becomes +0, as the scatter's `0 + v` makes it.
                    let v = _mm_add_ps(v, zero);
                    let pick = |k: __m128i| _mm_and_ps(v, _mm_castsi128_ps(_mm_cmpeq_epi32(at, k)));
                    let (a, b) = (pick(_mm_setzero_si128()), pick(_mm_set1_epi32(1)));
                    let (c, d) = (pick(below), pick(below_right));
                    _mm_storeu_ps(dx.add(t + 2 * ox), _mm_unpacklo_ps(a, b));
                    _mm_storeu_ps(dx.add(t + 2 * ox + 4), _mm_unpackhi_ps(a, b));
                    _mm_storeu_ps(dx.add(u + 2 * ox), _mm_unpacklo_ps(c, d));
                    _mm_storeu_ps(dx.add(u + 2 * ox + 4), _mm_unpackhi_ps(c, d));
                    if ox + 4 == ow {
                        break;
                    }
                    ox = (ox + 4).min(ow - 4);
                }
            }
        }
    }

    /// Eight windows at a time: as [`route_sse2`], with the two halves of each
    /// interleaved row put in order across the 128-bit lanes.
    ///
    /// # Safety
    /// As [`route_sse2`], with `ow ≥ 8`; the CPU has AVX2.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn route_avx2<const MASK: bool>(
        w: usize,
        (oh, ow): (usize, usize),
        argmax: &[u32],
        g: &[f32],
        y: &[f32],
        dx: &mut [f32],
    ) {
        // SAFETY: as in `route_sse2`, with blocks of eight windows and sixteen
        // columns.
        unsafe {
            let (argmax, g, y, dx) = (argmax.as_ptr(), g.as_ptr(), y.as_ptr(), dx.as_mut_ptr());
            let (zero, one) = (_mm256_setzero_ps(), _mm256_set1_ps(1.0));
            let columns = _mm256_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14);
            let (below, below_right) = (_mm256_set1_epi32(w as i32), _mm256_set1_epi32(w as i32 + 1));
            // Pairs of windows' pixels `[a0 b0 a1 b1 | a4 b4 a5 b5]` and
            // `[a2 b2 a3 b3 | a6 b6 a7 b7]` into two rows of eight in order.
            let store_row = |to: *mut f32, a: __m256, b: __m256| {
                let (lo, hi) = (_mm256_unpacklo_ps(a, b), _mm256_unpackhi_ps(a, b));
                _mm256_storeu_ps(to, _mm256_permute2f128_ps::<0x20>(lo, hi));
                _mm256_storeu_ps(to.add(8), _mm256_permute2f128_ps::<0x31>(lo, hi));
            };
            for oy in 0..oh {
                let (t, u) = (2 * oy * w, (2 * oy + 1) * w);
                let mut ox = 0;
                loop {
                    let j = oy * ow + ox;
                    let top_left = _mm256_add_epi32(_mm256_set1_epi32((t + 2 * ox) as i32), columns);
                    let winners = _mm256_loadu_si256(argmax.add(j) as *const __m256i);
                    let at = _mm256_sub_epi32(winners, top_left);
                    let mut v = _mm256_loadu_ps(g.add(j));
                    if MASK {
                        let positive = _mm256_cmp_ps::<_CMP_GT_OQ>(_mm256_loadu_ps(y.add(j)), zero);
                        v = _mm256_mul_ps(v, _mm256_and_ps(positive, one));
                    }
                    let v = _mm256_add_ps(v, zero);
                    let pick = |k: __m256i| _mm256_and_ps(v, _mm256_castsi256_ps(_mm256_cmpeq_epi32(at, k)));
                    store_row(
                        dx.add(t + 2 * ox),
                        pick(_mm256_setzero_si256()),
                        pick(_mm256_set1_epi32(1)),
                    );
                    store_row(dx.add(u + 2 * ox), pick(below), pick(below_right));
                    if ox + 8 == ow {
                        break;
                    }
                    ox = (ox + 8).min(ow - 8);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::max_pool_plane_backward_masked;
    use crate::ops::elementwise::keep_if;
    use crate::ops::max_pool_plane::{max_pool_plane, max_pool_plane_backward};
    use crate::ops::pool::PoolGeometry;
    use crate::ops::Padding;
    use crate::runtime::{set_simd, simd, Simd};

    /// A plane of `h × w` values from a seed, with ties, zeros of both signs and
    /// negative values (so ReLU's mask drops some windows).
    fn plane(h: usize, w: usize, seed: u32) -> Vec<f32> {
        (0..h * w)
            .map(|i| {
                let r = (i as u32)
                    .wrapping_mul(2_654_435_761)
                    .wrapping_add(seed.wrapping_mul(40_503))
                    >> 20;
                match r % 7 {
                    0 => 0.0,
                    1 => -0.0,
                    _ => (r % 23) as f32 / 4.0 - 2.0,
                }
            })
            .collect()
    }

    #[test]
    fn the_row_pass_is_the_scatter_bit_for_bit() {
        let saved = simd();
        for simd_setting in [Simd::Auto, Simd::Baseline] {
            set_simd(simd_setting);
            for (h, w) in [
                (8, 8),
                (9, 11),
                (24, 24),
                (26, 26),
                (11, 11),
                (16, 17),
                (13, 36),
                (2, 40),
                (7, 3),
            ] {
                let geometry = PoolGeometry::new("test", &[1, 1, h, w], (2, 2), (2, 2), Padding::Valid);
                let (oh, ow) = (h / 2, w / 2);
                for seed in 0..4 {
                    let x = plane(h, w, seed);
                    let (mut y, mut argmax) = (vec![0.0; oh * ow], vec![0; oh * ow]);
                    max_pool_plane(&geometry, &x, &mut y, &mut argmax);
                    let mut g = plane(oh, ow, seed + 100);
                    if let Some(first) = g.first_mut() {
                        *first = f32::NAN;
                    }
                    for relu in [false, true] {
                        let mut expected = vec![f32::NAN; h * w];
                        match relu {
                            true => max_pool_plane_backward(
                                &argmax,
                                |j| g[j] * keep_if(y[j] > 0.0, 1.0),
                                &mut expected,
                            ),
                            false => max_pool_plane_backward(&argmax, |j| g[j], &mut expected),
                        }
                        let mut dx = vec![7.0; h * w];
                        max_pool_plane_backward_masked(
                            &geometry,
                            &argmax,
                            &g,
                            relu.then_some(&y[..]),
                            &mut dx,
                        );
                        let bits = |v: &[f32]| v.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
                        assert_eq!(
                            bits(&dx),
                            bits(&expected),
                            "{h}x{w}, seed {seed}, relu {relu}, {simd_setting:?}"
                        );
                    }
                }
            }
        }
        set_simd(saved);
    }
}
