//! One parallel loop for the ops that fill a buffer chunk by chunk.
//!
//! A rayon pipeline (`par_chunks_mut(..).enumerate().map(..).collect()`) is generic
//! over its closure, so every op that wrote one compiled its own copy of rayon's
//! splitting, joining and job plumbing: through [`fresh`](super::fresh), one per
//! elementwise op, about a tenth of the library's LLVM time in a clean build.
//! [`for_each_index`] takes its body as a `&dyn Fn`, so the plumbing is compiled
//! once; the body stays a monomorphized loop over its chunk, called once per chunk
//! through a pointer (a call per thousands of elements).

use rayon::prelude::*;

/// Runs `body(i)` once for every `i` in `0..count`: on the calling thread in order
/// if `min_len` is `None`, else over rayon's pool, no task taking fewer than
/// `min_len` indices (for [`with_min_len`](IndexedParallelIterator::with_min_len)).
///
/// A panic in `body` is passed on once every task has stopped, as rayon does.
pub(crate) fn for_each_index(count: usize, min_len: Option<usize>, body: &(dyn Fn(usize) + Sync)) {
    match min_len {
        Some(min_len) => (0..count).into_par_iter().with_min_len(min_len).for_each(body),
        None => (0..count).for_each(body),
    }
}

/// Runs `body(i, piece)` on every `piece`-long piece of `out` (the last one
/// shorter), `i` counting from 0, over rayon's pool with no task taking fewer than
/// `min_len` pieces. Not generic, like [`for_each_index`]: for the ops that write
/// one plane per task and read their inputs by the plane's index.
pub(crate) fn for_each_piece_mut(
    out: &mut [f32],
    piece: usize,
    min_len: usize,
    body: &(dyn Fn(usize, &mut [f32]) + Sync),
) {
    out.par_chunks_mut(piece.max(1))
        .with_min_len(min_len)
        .enumerate()
        .for_each(|(i, piece)| body(i, piece));
}

/// Elements per task of [`add_assign`]: what one thread adds in a few
/// microseconds, about what handing a task to the pool costs.
const ADD_PIECE: usize = 1 << 15;

/// `acc += g`, elementwise, over rayon's pool when long. How the tape sums the
/// gradients of a value used twice (a residual block's input, by both branches):
/// on R3's 28×28 activations that addition ran on the main thread while the pool
/// waited (1.6% of a two-thread step's samples, perf). Each element is one
/// addition, so the result does not depend on the split.
pub(crate) fn add_assign(acc: &mut ndarray::ArrayD<f32>, g: &ndarray::ArrayD<f32>) {
    match (acc.as_slice_mut(), g.as_slice()) {
        (Some(a), Some(b)) if a.len() == b.len() && a.len() > ADD_PIECE => {
            for_each_piece_mut(a, ADD_PIECE, 1, &|i, piece| {
                for (a, &b) in piece.iter_mut().zip(&b[i * ADD_PIECE..]) {
                    *a += b;
                }
            });
        }
        _ => *acc += g,
    }
}

/// `(0..count).map(f).collect()`, over rayon's pool with no task taking fewer than
/// `min_len` indices: for per-channel or per-plane reductions. Only the vector
/// handling is compiled per `f`; the parallel loop is [`for_each_index`]'s.
pub(crate) fn map_indices<R: Send>(count: usize, min_len: usize, f: impl Fn(usize) -> R + Sync) -> Vec<R> {
    let mut out: Vec<R> = Vec::with_capacity(count);
    let slots = SharedMut::new(out.spare_capacity_mut().as_mut_ptr());
    for_each_index(count, Some(min_len), &|i| {
        // SAFETY: element `i < count` of `out`'s capacity (at least `count`);
        // `for_each_index` runs each `i` once, so no two tasks write the same one.
        unsafe { slots.slice(i, 1)[0].write(f(i)) };
    });
    // SAFETY: `for_each_index` returned, so every element was written (a panic in
    // `f` skips this line, leaking those written so far).
    unsafe { out.set_len(count) };
    out
}

/// A pointer that tasks on other threads may use, each on its own part of what it
/// points to (the user promises the parts do not overlap).
#[derive(Clone, Copy)]
pub(crate) struct SharedMut<T>(*mut T);

// SAFETY: `SharedMut` only carries the address across threads; every dereference
// is an `unsafe` call whose caller keeps the parts disjoint, and `T: Send` lets the
// values be written from another thread.
unsafe impl<T: Send> Send for SharedMut<T> {}
unsafe impl<T: Send> Sync for SharedMut<T> {}

impl<T> SharedMut<T> {
    pub(crate) fn new(ptr: *mut T) -> Self {
        SharedMut(ptr)
    }

    /// The `len` elements from `start` on, as a slice of their own.
    ///
    /// # Safety
    /// They lie inside the allocation, and nothing else reaches them while the slice
    /// lives (no other task's range overlaps).
    #[allow(clippy::mut_from_ref)]
    pub(crate) unsafe fn slice(&self, start: usize, len: usize) -> &mut [T] {
        // SAFETY: as the caller promises.
        unsafe { std::slice::from_raw_parts_mut(self.0.add(start), len) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn every_index_runs_once_serial_or_parallel() {
        for min_len in [None, Some(1), Some(7), Some(1000)] {
            let hits: Vec<AtomicUsize> = (0..100).map(|_| AtomicUsize::new(0)).collect();
            for_each_index(100, min_len, &|i| {
                hits[i].fetch_add(1, Ordering::Relaxed);
            });
            assert!(hits.iter().all(|h| h.load(Ordering::Relaxed) == 1), "{min_len:?}");
        }
    }

    #[test]
    fn every_piece_is_handed_out_once_with_its_index() {
        let mut out = vec![0.0f32; 10];
        for_each_piece_mut(&mut out, 4, 1, &|i, piece| {
            assert_eq!(piece.len(), if i == 2 { 2 } else { 4 });
            piece.iter_mut().for_each(|v| *v += i as f32 + 1.0);
        });
        assert_eq!(out, [1.0, 1.0, 1.0, 1.0, 2.0, 2.0, 2.0, 2.0, 3.0, 3.0]);
    }

    #[test]
    fn add_assign_adds_long_and_short_arrays_and_views() {
        let long = 3 * ADD_PIECE + 5;
        for len in [7, long] {
            let a: Vec<f32> = (0..len).map(|i| i as f32 * 0.5).collect();
            let b: Vec<f32> = (0..len).map(|i| 1.0 - i as f32).collect();
            let mut acc = ndarray::ArrayD::from_shape_vec(ndarray::IxDyn(&[len]), a.clone()).unwrap();
            let g = ndarray::ArrayD::from_shape_vec(ndarray::IxDyn(&[len]), b.clone()).unwrap();
            add_assign(&mut acc, &g);
            let want: Vec<f32> = a.iter().zip(&b).map(|(a, b)| a + b).collect();
            assert_eq!(acc.as_slice().unwrap(), &want[..], "{len}");
        }
        // A transposed gradient takes ndarray's path.
        let mut acc = ndarray::ArrayD::<f32>::zeros(ndarray::IxDyn(&[2, 3]));
        let g = ndarray::ArrayD::from_shape_vec(ndarray::IxDyn(&[3, 2]), (0..6).map(|i| i as f32).collect())
            .unwrap()
            .reversed_axes();
        add_assign(&mut acc, &g);
        assert_eq!(acc, g);
    }

    #[test]
    fn map_indices_collects_in_index_order() {
        for min_len in [1, 3, 100] {
            let squares = map_indices(10, min_len, |i| (i * i, i as f64));
            assert_eq!(squares, (0..10).map(|i| (i * i, i as f64)).collect::<Vec<_>>());
        }
    }

    #[test]
    fn serial_runs_in_order() {
        let seen = std::sync::Mutex::new(Vec::new());
        for_each_index(5, None, &|i| seen.lock().unwrap().push(i));
        assert_eq!(seen.into_inner().unwrap(), [0, 1, 2, 3, 4]);
    }
}
