//! Elementwise kernels shared by the activations, arithmetic and dropout: plain
//! loops over contiguous slices (ndarray's generic `Zip` over dynamic-rank arrays
//! costs several times more per element), split over rayon's threads in fixed-size
//! chunks when the array is large. Chunks never change the result: each element is
//! computed on its own.

use ndarray::ArrayD;

use super::fresh::{fresh, Slots};

/// `v` if `keep`, else +0, by a bit mask. Written as an `if`, the compiler may emit
/// a branch, mispredicted on about half the elements of a ReLU or dropout mask
/// (dropout measured 3-7x slower that way).
#[inline(always)]
pub(crate) fn keep_if(keep: bool, v: f32) -> f32 {
    f32::from_bits(v.to_bits() & 0u32.wrapping_sub(keep as u32))
}

/// The sum of `xs` in 16 interleaved lanes: a single running sum is one long chain
/// of dependent additions, which the compiler may not reorder into vector code
/// (measured 4x slower on a conv's bias gradient).
pub(crate) fn sum(xs: &[f32]) -> f32 {
    sum_map(xs, |v| v)
}

/// `Σ f(x)`, in 16 interleaved lanes as [`sum`].
pub(crate) fn sum_map(xs: &[f32], f: impl Fn(f32) -> f32) -> f32 {
    let mut lanes = [0.0f32; 16];
    let chunks = xs.chunks_exact(16);
    let tail: f32 = chunks.remainder().iter().map(|&v| f(v)).sum();
    for chunk in chunks {
        lanes.iter_mut().zip(chunk).for_each(|(l, &v)| *l += f(v));
    }
    lanes.iter().sum::<f32>() + tail
}

/// `Σ f(a, b)` over pairs of elements, in 16 interleaved lanes as [`sum`].
pub(crate) fn sum_map2(a: &[f32], b: &[f32], f: impl Fn(f32, f32) -> f32) -> f32 {
    let mut lanes = [0.0f32; 16];
    let (ca, cb) = (a.chunks_exact(16), b.chunks_exact(16));
    let tail: f32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(&x, &y)| f(x, y))
        .sum();
    for (x, y) in ca.zip(cb) {
        for i in 0..16 {
            lanes[i] += f(x[i], y[i]);
        }
    }
    lanes.iter().sum::<f32>() + tail
}

/// `Σ f(a, b, c)` over triples of elements, in 16 interleaved lanes as [`sum`].
pub(crate) fn sum_map3(a: &[f32], b: &[f32], c: &[f32], f: impl Fn(f32, f32, f32) -> f32) -> f32 {
    let mut lanes = [0.0f32; 16];
    let (ca, cb, cc) = (a.chunks_exact(16), b.chunks_exact(16), c.chunks_exact(16));
    let tail: f32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .zip(cc.remainder())
        .map(|((&x, &y), &z)| f(x, y, z))
        .sum();
    for ((x, y), z) in ca.zip(cb).zip(cc) {
        for i in 0..16 {
            lanes[i] += f(x[i], y[i], z[i]);
        }
    }
    lanes.iter().sum::<f32>() + tail
}

/// Arrays shorter than this are processed on the calling thread.
const CHUNK: usize = 1 << 15;

/// The fewest pieces of `piece` elements one rayon task should take (for
/// `with_min_len`) so that no task covers fewer than [`CHUNK`] elements, and a
/// pass over fewer runs on the calling thread.
///
/// Why: handing work to a pool thread costs a wake-up and a wait (from a thread
/// outside the pool, such as a program's main thread, every split does), several
/// microseconds, about what one thread takes for 32k elements of a pass over
/// memory. One image's activations are smaller than that: a batch-1 forward pass
/// of the default net spent more time handing its batch norms and poolings to the
/// pool and waiting for them than computing them.
pub(crate) fn min_pieces(piece: usize) -> usize {
    CHUNK.div_ceil(piece.max(1))
}

fn build(shape: ndarray::IxDyn, len: usize, fill: impl Fn(usize, &mut Slots) + Sync) -> ArrayD<f32> {
    let out = fresh(len, CHUNK, len > CHUNK, fill);
    ArrayD::from_shape_vec(shape, out).expect("length matches shape")
}

/// `f(x)` for every element.
pub(crate) fn map(x: &ArrayD<f32>, f: impl Fn(f32) -> f32 + Sync) -> ArrayD<f32> {
    let x = x.as_standard_layout();
    let xs = x.as_slice().expect("standard layout");
    build(x.raw_dim(), xs.len(), |start, out| {
        let xs = &xs[start..start + out.len()];
        out.extend(xs.iter().map(|&v| f(v)));
    })
}

/// `f(a, b)` for every pair of elements of two arrays of the same shape.
pub(crate) fn map2(a: &ArrayD<f32>, b: &ArrayD<f32>, f: impl Fn(f32, f32) -> f32 + Sync) -> ArrayD<f32> {
    debug_assert_eq!(a.shape(), b.shape());
    let (a, b) = (a.as_standard_layout(), b.as_standard_layout());
    let (a_s, b_s) = (
        a.as_slice().expect("standard layout"),
        b.as_slice().expect("standard layout"),
    );
    build(a.raw_dim(), a_s.len(), |start, out| {
        let range = start..start + out.len();
        out.extend(a_s[range.clone()].iter().zip(&b_s[range]).map(|(&x, &y)| f(x, y)));
    })
}

/// `f(a, b, c)` for every triple of elements of three arrays of the same shape.
pub(crate) fn map3(
    a: &ArrayD<f32>,
    b: &ArrayD<f32>,
    c: &ArrayD<f32>,
    f: impl Fn(f32, f32, f32) -> f32 + Sync,
) -> ArrayD<f32> {
    debug_assert!(a.shape() == b.shape() && b.shape() == c.shape());
    let (a, b, c) = (
        a.as_standard_layout(),
        b.as_standard_layout(),
        c.as_standard_layout(),
    );
    let (a_s, b_s, c_s) = (
        a.as_slice().expect("standard"),
        b.as_slice().expect("standard"),
        c.as_slice().expect("standard"),
    );
    build(a.raw_dim(), a_s.len(), |start, out| {
        let range = start..start + out.len();
        let (a_s, b_s, c_s) = (&a_s[range.clone()], &b_s[range.clone()], &c_s[range]);
        out.extend(a_s.iter().zip(b_s).zip(c_s).map(|((&x, &y), &z)| f(x, y, z)));
    })
}
