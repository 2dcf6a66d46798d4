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
use crate::ops::elementwise::sum;
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
            g.im2col(&x[i * image..(i + 1) * image], &mut col, p, 0);
            // Pixel by pixel, so that the writes run in order: tap by tap, through
            // `step_by(kp)`, this was half of the task's own time (R1, perf).
            for (px, row) in rows.chunks_exact_mut(kp).enumerate() {
                for (tap, slot) in row[..k].iter_mut().enumerate() {
                    *slot = col[tap * p + px];
                }
            }
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

/// `dw += Σ_j grad[j] · rows[winners[j]]`, where `rows` holds rows of `kp` floats
/// and `dw` is one such row.
fn accumulate(rows: &[f32], kp: usize, winners: &[u32], grad: &[f32], dw: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if crate::ops::cpu::avx2() {
        // SAFETY: the CPU has AVX2.
        unsafe { accumulate_avx2(rows, kp, winners, grad, dw) };
        return;
    }
    accumulate_blocks(rows, kp, winners, grad, dw);
}

/// [`accumulate`] a block of [`BLOCK`] floats at a time, in two sums (the even and
/// the odd windows), so that each addition need not wait for the one before.
#[inline(always)]
fn accumulate_blocks(rows: &[f32], kp: usize, winners: &[u32], grad: &[f32], dw: &mut [f32]) {
    for (b, dw) in dw.chunks_exact_mut(BLOCK).enumerate() {
        let row = |j: usize| -> &[f32; BLOCK] {
            let at = winners[j] as usize * kp + b * BLOCK;
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

/// [`accumulate_blocks`] compiled for AVX2: the same multiplications and additions
/// in the same order, so the same results bit for bit.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn accumulate_avx2(rows: &[f32], kp: usize, winners: &[u32], grad: &[f32], dw: &mut [f32]) {
    accumulate_blocks(rows, kp, winners, grad, dw)
}
