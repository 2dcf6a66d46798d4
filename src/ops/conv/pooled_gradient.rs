//! The weight and bias gradients of a conv block that max-pools, from the pooled
//! gradient and the pooling's winners alone: how a first layer's backward pass runs.
//!
//! Behind a max pool, the gradient of the conv output is zero except at each window's
//! winner. The im2col path builds that mostly-zero gradient all the same (`[O, P]`
//! planes, zeroed, then scattered into) and multiplies it with the column matrix.
//! For a first layer (one input channel, a 3×3 kernel: `K = 9` taps) that product
//! is thin and its arithmetic small, so the planes it writes and reads cost more
//! than the multiplications: in R1's first conv, building the planes, the bias sums
//! and the thin product were most of the backward pass. Here each window's gradient
//! times its winner's column (the `K` inputs the kernel saw at that pixel) is added
//! to its channel's row of `dW` directly: `O·Q·K` multiply-adds per image (`Q`
//! pooled outputs, a quarter of `P` for 2×2 windows) and no plane at all.
//!
//! The sums are those of the im2col path up to rounding (its zeros add nothing; the
//! order of the other terms differs), and the same on every run with the same thread
//! count. When the block uses it — its input needs no gradient, so the planes would
//! serve nothing else — is decided in [`algorithm`](super::algorithm).

use super::conv2d::TASKS_PER_THREAD;
use super::im2col::ConvGeometry;
use crate::ops::cpu::vectorized;
use crate::ops::elementwise::sum;
use crate::ops::max_pool_backward::DROPPED;
use crate::ops::parallel::map_indices;

/// Floats of a `dW` row summed at a time: two AVX2 vectors, which the sums of the
/// even and the odd windows keep in registers.
const BLOCK: usize = 16;

/// The weight gradient `dW` `[O, K]` (and, if `need_b`, the bias gradient `db` `[O]`)
/// of a conv block with geometry `g` on the `n` images `x` (`[N, C, H, W]`), whose
/// max pooling into `q` outputs a plane kept the winners `argmax` (`[N, O, Q]`: the
/// index of each window's winner within its `[OH, OW]` plane). `grad(image, oc, out)` writes the gradient at
/// each of the `Q` pooled outputs of a plane (ReLU's mask applied) into `out`.
#[allow(clippy::too_many_arguments)]
pub(super) fn pooled_weight_gradient<F>(
    g: &ConvGeometry,
    n: usize,
    o: usize,
    x: &[f32],
    q: usize,
    argmax: &[u32],
    need_b: bool,
    grad: F,
) -> (Vec<f32>, Option<Vec<f32>>)
where
    F: Fn(usize, usize, &mut [f32]) + Sync,
{
    let (k, p, image) = (g.k(), g.p(), g.channels * g.h * g.w);
    // Each pixel's column as a row of `kp` floats, the tail zero: whole blocks.
    let kp = k.next_multiple_of(BLOCK);
    let per_task = n.div_ceil(rayon::current_num_threads() * TASKS_PER_THREAD).max(1);
    let task = |images: std::ops::Range<usize>| {
        let mut col = vec![0.0f32; k * p];
        let mut rows = vec![0.0f32; p * kp];
        let mut masked = vec![0.0f32; q];
        let mut dw = vec![0.0f32; o * kp];
        let mut db = vec![0.0f32; if need_b { o } else { 0 }];
        for i in images {
            pixel_rows(g, &x[i * image..(i + 1) * image], &mut col, &mut rows, kp);
            for oc in 0..o {
                grad(i, oc, &mut masked);
                let winners = &argmax[(i * o + oc) * q..(i * o + oc + 1) * q];
                accumulate(&rows, kp, winners, &masked, &mut dw[oc * kp..(oc + 1) * kp]);
                if need_b {
                    db[oc] += sum(&masked);
                }
            }
        }
        (dw, db)
    };
    let partials = map_indices(n.div_ceil(per_task), 1, |t| {
        task(t * per_task..((t + 1) * per_task).min(n))
    });
    // Fixed-order reduction: deterministic for a given thread count.
    let mut dw = vec![0.0f32; o * k];
    let mut db = need_b.then(|| vec![0.0f32; o]);
    for (pdw, pdb) in &partials {
        for (row, prow) in dw.chunks_exact_mut(k).zip(pdw.chunks_exact(kp)) {
            row.iter_mut().zip(prow).for_each(|(a, b)| *a += b);
        }
        if let Some(db) = db.as_mut() {
            db.iter_mut().zip(pdb).for_each(|(a, b)| *a += b);
        }
    }
    (dw, db)
}

/// Each output pixel's column (the `K` inputs the kernel sees there) as a row of
/// `kp` floats of `rows`, whose tails are left as they are (zero); `col` (`K × P`)
/// is work space. An unpadded 3×3 kernel on one channel (R1's first conv) copies
/// its three runs of three straight from `x`; otherwise through im2col, then
/// pixel by pixel so that the writes run in order (tap by tap, through
/// `step_by(kp)`, that was half of the task's own time in R1, perf).
fn pixel_rows(g: &ConvGeometry, x: &[f32], col: &mut [f32], rows: &mut [f32], kp: usize) {
    let (k, p) = (g.k(), g.p());
    let valid_3x3 = g.channels == 1
        && (g.kh, g.kw) == (3, 3)
        && g.stride == (1, 1)
        && g.dilation == (1, 1)
        && (g.top, g.left) == (0, 0)
        && (g.oh + 2, g.ow + 2) == (g.h, g.w);
    if valid_3x3 {
        for (oy, rows) in rows.chunks_exact_mut(g.ow * kp).enumerate() {
            for (ox, row) in rows.chunks_exact_mut(kp).enumerate() {
                for ky in 0..3 {
                    let at = (oy + ky) * g.w + ox;
                    row[ky * 3..ky * 3 + 3].copy_from_slice(&x[at..at + 3]);
                }
            }
        }
        return;
    }
    g.im2col(x, col, p, 0);
    for (px, row) in rows.chunks_exact_mut(kp).enumerate() {
        for (tap, slot) in row[..k].iter_mut().enumerate() {
            *slot = col[tap * p + px];
        }
    }
}

vectorized!(
    /// `dw += Σ_j grad[j] · rows[winners[j]]`, where `rows` holds rows of `kp` floats
    /// and `dw` is one such row (a winner's [`DROPPED`] mark, ReLU's, is not part of
    /// its index; its gradient comes masked already). With AVX-512 a block is one
    /// vector instead of two AVX2 ones (R1's first layer: 4.5% of an epoch's samples
    /// with AVX2, perf).
    fn accumulate(rows: &[f32], kp: usize, winners: &[u32], grad: &[f32], dw: &mut [f32])
        => accumulate_blocks, [avx512, avx2]
);

/// [`accumulate`] a block of [`BLOCK`] floats at a time, in two sums (the even and
/// the odd windows), so that each addition need not wait for the one before.
#[inline(always)]
fn accumulate_blocks(rows: &[f32], kp: usize, winners: &[u32], grad: &[f32], dw: &mut [f32]) {
    for (b, dw) in dw.chunks_exact_mut(BLOCK).enumerate() {
        let row = |j: usize| -> &[f32; BLOCK] {
            let at = (winners[j] & !DROPPED) as usize * kp + b * BLOCK;
            rows[at..at + BLOCK].try_into().expect("a block")
        };
        let (mut even, mut odd) = ([0.0f32; BLOCK], [0.0f32; BLOCK]);
        for j in (1..winners.len()).step_by(2) {
            let (r0, r1, g0, g1) = (row(j - 1), row(j), grad[j - 1], grad[j]);
            for l in 0..BLOCK {
                even[l] += g0 * r0[l];
                odd[l] += g1 * r1[l];
            }
        }
        if winners.len() % 2 == 1 {
            let j = winners.len() - 1;
            let (r, gj) = (row(j), grad[j]);
            for l in 0..BLOCK {
                even[l] += gj * r[l];
            }
        }
        for l in 0..BLOCK {
            dw[l] += even[l] + odd[l];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pixel_rows_of_an_unpadded_3x3_kernel_are_im2cols_columns() {
        // R1's first conv (28×28 → 26×26), and a non-square plane.
        for (h, w) in [(28, 28), (7, 11)] {
            let g = ConvGeometry {
                channels: 1,
                h,
                w,
                kh: 3,
                kw: 3,
                stride: (1, 1),
                dilation: (1, 1),
                top: 0,
                left: 0,
                oh: h - 2,
                ow: w - 2,
            };
            let (k, p, kp) = (g.k(), g.p(), BLOCK);
            let x: Vec<f32> = (0..h * w).map(|i| i as f32 * 0.5 - 3.0).collect();
            let mut col = vec![0.0f32; k * p];
            let mut rows = vec![0.0f32; p * kp];
            pixel_rows(&g, &x, &mut col, &mut rows, kp);
            g.im2col(&x, &mut col, p, 0);
            for px in 0..p {
                for tap in 0..kp {
                    let want = if tap < k { col[tap * p + px] } else { 0.0 };
                    assert_eq!(rows[px * kp + tap], want, "{h}×{w}: pixel {px}, tap {tap}");
                }
            }
        }
    }
}
