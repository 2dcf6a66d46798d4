//! The backward pass of a max pool over single `[H, W]` planes, from the winners
//! the forward pass kept (`max_pool_plane`).
//!
//! Any geometry: zero the input plane's gradient, then add each window's gradient
//! at its winner (summed where overlapping windows share one). Disjoint 2×2 windows
//! at stride 2, the common case, allow a pass that writes every pixel once instead
//! of a `memset` and a scalar read-modify-write per window at a data-dependent
//! address: pixel `k` of a window (0 and 1 on its top row, `w` and `w + 1` below)
//! gets the window's gradient if the winner's offset in the window is `k`, else 0,
//! a compare and a mask per pixel, four or eight windows at a time. The values are
//! the scatter's, bit for bit (`0 + g` there, `g + 0` here).
//!
//! A conv block whose ReLU precedes the pool (in value: `relu(max(·))`) marks the
//! winners of the windows ReLU zeroed with [`DROPPED`] instead of keeping its
//! output for the backward's mask: their gradient is `g · 0`, as in `relu`'s
//! backward (a NaN or infinite `g` stays NaN), and the output can go to the next op
//! (`Flatten` reshapes a buffer no one else holds in place).

use super::activation::relu as relu_of;
use super::elementwise::keep_if;
use super::pool::PoolGeometry;

/// The bit of a winner index (`max_pool_plane`'s `argmax`, an index within a
/// plane, which stays below 2³¹) that marks a window whose pooled output ReLU
/// zeroed: its gradient is multiplied by 0 (see [`relu_marking_winners`]).
pub(crate) const DROPPED: u32 = 1 << 31;

/// ReLU on the pooled values `out` of one plane, marking the winner of each window
/// it does not keep (the output not positive, NaN included) with [`DROPPED`].
pub(crate) fn relu_marking_winners(out: &mut [f32], argmax: &mut [u32]) {
    for (v, winner) in out.iter_mut().zip(argmax) {
        *v = relu_of(*v);
        let kept = *v > 0.0;
        *winner |= if kept { 0 } else { DROPPED };
    }
}

/// `g` where its window's winner is not [`DROPPED`], else `g · 0`, into `out`: the
/// pooled gradient of a conv block after ReLU's mask.
pub(crate) fn masked_by_winners(g: &[f32], argmax: &[u32], out: &mut [f32]) {
    for ((out, &g), &winner) in out.iter_mut().zip(g).zip(argmax) {
        *out = g * keep_if(winner & DROPPED == 0, 1.0);
    }
}

/// The gradient `dx` of a max pool's input plane (old contents ignored) from the
/// pooled gradient `g` and the winner `argmax[j]` of each window `j`: `g[j]` at the
/// winner (`g[j] · 0` if it is marked [`DROPPED`]), summed where overlapping
/// windows share a winner, zero elsewhere. In one pass for 2×2 windows at stride 2
/// (four windows a row or more).
pub(super) fn max_pool_plane_backward(geometry: &PoolGeometry, argmax: &[u32], g: &[f32], dx: &mut [f32]) {
    let (w, oh, ow) = (geometry.w, geometry.pad.out_h, geometry.pad.out_w);
    #[cfg(target_arch = "x86_64")]
    if geometry.is_2x2_stride_2_valid() && ow >= 4 {
        route_2x2(w, (oh, ow), argmax, g, dx);
        // What no window covers: the last column and row of an odd-sized plane.
        for row in dx[..2 * oh * w].chunks_exact_mut(w) {
            row[2 * ow..].fill(0.0);
        }
        dx[2 * oh * w..].fill(0.0);
        return;
    }
    dx.fill(0.0);
    for (&winner, &g) in argmax.iter().zip(g) {
        dx[(winner & !DROPPED) as usize] += g * keep_if(winner & DROPPED == 0, 1.0);
    }
}

/// The first `2·ow` columns of the first `2·oh` rows of `dx`, eight windows at a
/// time with AVX2 where the rows have eight, else four with SSE2.
#[cfg(target_arch = "x86_64")]
fn route_2x2(w: usize, (oh, ow): (usize, usize), argmax: &[u32], g: &[f32], dx: &mut [f32]) {
    let q = oh * ow;
    assert!(
        ow >= 4 && 2 * ow <= w && argmax.len() >= q && g.len() >= q && dx.len() >= 2 * oh * w,
        "max_pool2d backward: 2x2 kernel on {oh}x{ow} windows of width {w} with {} winners, \
         {} gradients and a plane of {}",
        argmax.len(),
        g.len(),
        dx.len()
    );
    // SAFETY: the bounds the kernels rely on are asserted above (see each), and the
    // AVX2 kernel runs only on a CPU with AVX2.
    unsafe {
        if ow >= 8 && super::cpu::avx2() {
            kernels::route_avx2(w, (oh, ow), argmax, g, dx)
        } else {
            kernels::route_sse2(w, (oh, ow), argmax, g, dx)
        }
    }
}

/// The kernels of [`route_2x2`]. Both walk each row of windows in blocks, the last
/// block overlapping the one before (it writes the same values again), and write
/// the block's two rows of pixels from four selections of its gradients: pixel `k`
/// of a window keeps the gradient where `winner − (window's top-left index)` is `k`
/// (a [`DROPPED`](super::DROPPED) winner keeps it too, times 0).
#[cfg(target_arch = "x86_64")]
mod kernels {
    use std::arch::x86_64::*;

    use super::DROPPED;

    /// Four windows at a time (SSE2, every x86-64 CPU).
    ///
    /// # Safety
    /// `ow ≥ 4`, `2·ow ≤ w`; `argmax` and `g` hold `oh·ow` values; `dx` holds
    /// `2·oh` rows of `w`.
    pub(super) unsafe fn route_sse2(
        w: usize,
        (oh, ow): (usize, usize),
        argmax: &[u32],
        g: &[f32],
        dx: &mut [f32],
    ) {
        // SAFETY: the block at window `(oy, ox)`, `ox + 4 ≤ ow`, reads `argmax` and
        // `g` at `oy·ow + ox .. + 4` (below `oh·ow`) and writes rows `2·oy` and
        // `2·oy + 1` of `dx` at columns `2·ox .. 2·ox + 8` (below `2·ow ≤ w`).
        unsafe {
            let (argmax, g, dx) = (argmax.as_ptr(), g.as_ptr(), dx.as_mut_ptr());
            let (zero, one) = (_mm_setzero_ps(), _mm_set1_ps(1.0));
            let index = _mm_set1_epi32(!DROPPED as i32);
            let columns = _mm_setr_epi32(0, 2, 4, 6);
            let (below, below_right) = (_mm_set1_epi32(w as i32), _mm_set1_epi32(w as i32 + 1));
            for oy in 0..oh {
                let (t, u) = (2 * oy * w, (2 * oy + 1) * w);
                let mut ox = 0;
                loop {
                    let j = oy * ow + ox;
                    let winners = _mm_loadu_si128(argmax.add(j) as *const __m128i);
                    let top_left = _mm_add_epi32(_mm_set1_epi32((t + 2 * ox) as i32), columns);
                    let at = _mm_sub_epi32(_mm_and_si128(winners, index), top_left);
                    // `g · 1`, or `g · 0` where the winner is marked (its sign bit).
                    let dropped = _mm_castsi128_ps(_mm_srai_epi32::<31>(winners));
                    let v = _mm_mul_ps(_mm_loadu_ps(g.add(j)), _mm_andnot_ps(dropped, one));
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
    pub(super) unsafe fn route_avx2(
        w: usize,
        (oh, ow): (usize, usize),
        argmax: &[u32],
        g: &[f32],
        dx: &mut [f32],
    ) {
        // SAFETY: as in `route_sse2`, with blocks of eight windows and sixteen
        // columns.
        unsafe {
            let (argmax, g, dx) = (argmax.as_ptr(), g.as_ptr(), dx.as_mut_ptr());
            let (zero, one) = (_mm256_setzero_ps(), _mm256_set1_ps(1.0));
            let index = _mm256_set1_epi32(!DROPPED as i32);
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
                    let winners = _mm256_loadu_si256(argmax.add(j) as *const __m256i);
                    let top_left = _mm256_add_epi32(_mm256_set1_epi32((t + 2 * ox) as i32), columns);
                    let at = _mm256_sub_epi32(_mm256_and_si256(winners, index), top_left);
                    let dropped = _mm256_castsi256_ps(_mm256_srai_epi32::<31>(winners));
                    let v = _mm256_mul_ps(_mm256_loadu_ps(g.add(j)), _mm256_andnot_ps(dropped, one));
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
    use super::{masked_by_winners, max_pool_plane_backward, relu_marking_winners};
    use crate::ops::activation::relu as relu_of;
    use crate::ops::elementwise::keep_if;
    use crate::ops::max_pool_plane::max_pool_plane;
    use crate::ops::pool::PoolGeometry;
    use crate::ops::Padding;
    use crate::runtime::{set_simd, simd, Simd};

    /// A plane of `h × w` values from a seed, with ties, zeros of both signs and
    /// negative values (so ReLU drops some windows).
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

    /// The definition: zero the plane, add each window's gradient at its winner,
    /// times ReLU's mask of the pooled output `y` if given.
    fn scatter(argmax: &[u32], g: &[f32], y: Option<&[f32]>, dx: &mut [f32]) {
        dx.fill(0.0);
        for (j, &winner) in argmax.iter().enumerate() {
            dx[winner as usize] += y.map_or(g[j], |y| g[j] * keep_if(y[j] > 0.0, 1.0));
        }
    }

    #[test]
    fn the_backward_is_the_scatter_bit_for_bit_with_and_without_relu() {
        let saved = simd();
        let bits = |v: &[f32]| v.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
        for simd_setting in [Simd::Auto, Simd::Baseline] {
            set_simd(simd_setting);
            // 3×3 windows at stride 2 overlap: the scatter's sums.
            for (h, w, k) in [
                (8, 8, 2),
                (9, 11, 2),
                (24, 24, 2),
                (26, 26, 2),
                (11, 11, 2),
                (16, 17, 2),
                (13, 36, 2),
                (2, 40, 2),
                (7, 3, 2),
                (9, 9, 3),
            ] {
                let geometry = PoolGeometry::new("test", &[1, 1, h, w], (k, k), (2, 2), Padding::Valid);
                let (oh, ow) = (geometry.pad.out_h, geometry.pad.out_w);
                for seed in 0..4 {
                    let x = plane(h, w, seed);
                    let (mut pooled, mut argmax) = (vec![0.0; oh * ow], vec![0; oh * ow]);
                    max_pool_plane(&geometry, &x, &mut pooled, &mut argmax);
                    let mut g = plane(oh, ow, seed + 100);
                    g[0] = f32::NAN;
                    g[oh * ow - 1] = f32::INFINITY;
                    for relu in [false, true] {
                        let (mut y, mut marked) = (pooled.clone(), argmax.clone());
                        if relu {
                            relu_marking_winners(&mut y, &mut marked);
                            assert_eq!(y, pooled.iter().map(|&v| relu_of(v)).collect::<Vec<_>>());
                        }
                        let mut expected = vec![f32::NAN; h * w];
                        scatter(&argmax, &g, relu.then_some(&y[..]), &mut expected);
                        let mut dx = vec![7.0; h * w];
                        max_pool_plane_backward(&geometry, &marked, &g, &mut dx);
                        let case = format!("{h}x{w} k{k}, seed {seed}, relu {relu}, {simd_setting:?}");
                        assert_eq!(bits(&dx), bits(&expected), "{case}");
                        // The pooled gradient the first layers' weight gradient uses.
                        let mut masked = vec![0.0; oh * ow];
                        masked_by_winners(&g, &marked, &mut masked);
                        let want: Vec<f32> = match relu {
                            true => g
                                .iter()
                                .zip(&y)
                                .map(|(&g, &y)| g * keep_if(y > 0.0, 1.0))
                                .collect(),
                            false => g.clone(),
                        };
                        assert_eq!(bits(&masked), bits(&want), "{case}");
                    }
                }
            }
        }
        set_simd(saved);
    }
}
