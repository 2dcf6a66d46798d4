//! Output buffers written once, without zeroing them first.
//!
//! `vec![0.0; n]` for an op's output costs a pass over memory before the op writes
//! it: glibc's `calloc` hands back freed heap memory and clears it with `memset`.
//! On an R3 training step that was 8% of the time (perf), for buffers the op then
//! overwrites entirely. [`fresh`] hands out the uninitialized buffer chunk by chunk
//! as [`Slots`], which can only be written, and returns the vector once every
//! chunk has been filled, and checked to be.

use std::mem::MaybeUninit;

use super::elementwise::min_pieces;
use super::parallel::{for_each_index, SharedMut};

/// One chunk of a buffer being filled: written front to back, each element once.
pub(crate) struct Slots<'a> {
    slots: &'a mut [MaybeUninit<f32>],
    filled: usize,
}

impl<'a> Slots<'a> {
    /// Elements in the chunk.
    pub(crate) fn len(&self) -> usize {
        self.slots.len()
    }

    /// Writes `values` after what is already written (at most the rest of the chunk).
    #[inline]
    pub(crate) fn extend(&mut self, values: impl IntoIterator<Item = f32>) {
        let mut written = 0;
        for (slot, v) in self.slots[self.filled..].iter_mut().zip(values) {
            slot.write(v);
            written += 1;
        }
        self.filled += written;
    }

    /// What has been written so far, to read back while it is in cache.
    pub(crate) fn written(&self) -> &[f32] {
        let written: *const [MaybeUninit<f32>] = &self.slots[..self.filled];
        // SAFETY: the first `filled` elements were written (by `extend`, `zeroed`,
        // `part` or as `assume_written`'s caller promised), and `MaybeUninit<f32>`
        // has the layout of `f32`.
        unsafe { &*(written as *const [f32]) }
    }

    /// Fills the rest of the chunk with zeros and returns the whole chunk, for a
    /// kernel that accumulates into its output.
    pub(crate) fn zeroed(&mut self) -> &mut [f32] {
        for slot in &mut self.slots[self.filled..] {
            slot.write(0.0);
        }
        self.filled = self.slots.len();
        let slots: *mut [MaybeUninit<f32>] = &mut *self.slots;
        // SAFETY: every element is initialized (the first `filled` by `extend`, the
        // rest just now), and `MaybeUninit<f32>` has the layout of `f32`.
        unsafe { &mut *(slots as *mut [f32]) }
    }

    /// The chunk's unwritten rest, for a kernel that writes it in its own order
    /// rather than front to back (Winograd's input gradient, plane by plane across
    /// a group of images); [`assume_written`](Self::assume_written) then counts it
    /// as written.
    pub(crate) fn unwritten(&mut self) -> &mut [MaybeUninit<f32>] {
        &mut self.slots[self.filled..]
    }

    /// Counts the whole chunk as written.
    ///
    /// # Safety
    /// Every element of [`unwritten`](Self::unwritten) has been written since.
    pub(crate) unsafe fn assume_written(&mut self) {
        self.filled = self.slots.len();
    }

    /// Runs `f` on the next `len` elements as a chunk of their own, which `f` must
    /// fill; they then count as written here.
    pub(crate) fn part<R>(&mut self, len: usize, f: impl FnOnce(&mut Slots) -> R) -> R {
        let end = self.filled + len;
        let mut part = Slots {
            slots: &mut self.slots[self.filled..end],
            filled: 0,
        };
        let result = f(&mut part);
        part.check_full(self.filled);
        self.filled = end;
        result
    }

    fn check_full(&self, at: usize) {
        assert!(
            self.is_full(),
            "fresh: a chunk of {} elements at {at} was left with {} unwritten",
            self.len(),
            self.len() - self.filled
        );
    }

    fn is_full(&self) -> bool {
        self.filled == self.slots.len()
    }
}

/// `values` as slots, for a kernel that writes its output through
/// [`Slots::unwritten`]'s type and is handed an initialized buffer instead.
///
/// # Safety
/// Nothing uninitialized (`MaybeUninit::uninit()`) may be written through the
/// result: `values` would then hold it.
pub(crate) unsafe fn as_slots(values: &mut [f32]) -> &mut [MaybeUninit<f32>] {
    let values: *mut [f32] = values;
    // SAFETY: `MaybeUninit<f32>` has the layout of `f32`, and every value in it is
    // initialized; the caller writes only initialized values back.
    unsafe { &mut *(values as *mut [MaybeUninit<f32>]) }
}

/// A vector of `len` floats whose chunks of `chunk` elements (the last one shorter)
/// are filled by `fill(first_index, slots)`, in parallel if `parallel` (with no
/// task taking fewer than [`min_pieces`] chunks).
///
/// Panics if `fill` leaves an element of its chunk unwritten (a bug in the op).
pub(crate) fn fresh(
    len: usize,
    chunk: usize,
    parallel: bool,
    fill: impl Fn(usize, &mut Slots) + Sync,
) -> Vec<f32> {
    fill_fresh(len, chunk, parallel, &fill)
}

/// [`fresh`], with what each chunk's `fill` returns, in chunk order.
pub(crate) fn fresh_with<R: Send>(
    len: usize,
    chunk: usize,
    parallel: bool,
    fill: impl Fn(usize, &mut Slots) -> R + Sync,
) -> (Vec<f32>, Vec<R>) {
    let chunk = chunk.max(1);
    let count = len.div_ceil(chunk);
    let mut results: Vec<R> = Vec::with_capacity(count);
    let returned = SharedMut::new(results.spare_capacity_mut().as_mut_ptr());
    let out = fill_fresh(len, chunk, parallel, &|first, slots| {
        let result = fill(first, slots);
        // SAFETY: result `first / chunk` is element `first / chunk < count` of
        // `results`' capacity; `fill_fresh` fills each chunk once, so no two tasks
        // write the same one.
        unsafe { returned.slice(first / chunk, 1)[0].write(result) };
    });
    // SAFETY: `fill_fresh` returned, so it ran the closure above on every chunk,
    // which wrote every result (a panic skips this line, leaking those written).
    unsafe { results.set_len(count) };
    (out, results)
}

/// The body of [`fresh`] and [`fresh_with`], taking `fill` as a `&dyn Fn` so that it
/// is compiled once rather than once per op (37 copies of it before, each with its
/// own vector handling): `fill` stays a monomorphized loop over its chunk, called
/// once per chunk through a pointer, as [`for_each_index`] calls this function's.
fn fill_fresh(
    len: usize,
    chunk: usize,
    parallel: bool,
    fill: &(dyn Fn(usize, &mut Slots) + Sync),
) -> Vec<f32> {
    let chunk = chunk.max(1);
    let count = len.div_ceil(chunk);
    let mut out: Vec<f32> = Vec::with_capacity(len);
    let slots = SharedMut::new(out.spare_capacity_mut().as_mut_ptr());
    let run = |i: usize| {
        let first = i * chunk;
        // SAFETY: chunk `i` is elements `first..min(first + chunk, len)` of `out`'s
        // capacity (at least `len`); `for_each_index` runs each `i` once, so no two
        // overlap.
        let slots = unsafe { slots.slice(first, chunk.min(len - first)) };
        let mut slots = Slots { slots, filled: 0 };
        fill(first, &mut slots);
        slots.check_full(first);
    };
    for_each_index(count, parallel.then(|| min_pieces(chunk)), &run);
    // SAFETY: every chunk of the first `len` elements was checked to be fully
    // written (a panic above skips this line). `fill` cannot have swapped its
    // `Slots` for others: it gets them for a lifetime of its caller's, which no
    // other `Slots` it could reach has.
    unsafe { out.set_len(len) };
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fresh_fills_every_chunk_in_order() {
        for parallel in [false, true] {
            let v = fresh(10, 4, parallel, |first, slots| {
                let n = slots.len();
                slots.extend((first..first + n).map(|i| i as f32));
            });
            assert_eq!(v, (0..10).map(|i| i as f32).collect::<Vec<_>>());
        }
    }

    #[test]
    fn zeroed_keeps_what_was_written_and_zeroes_the_rest() {
        let (v, sums) = fresh_with(6, 3, true, |_, slots| {
            slots.extend([1.0, 2.0]);
            slots.zeroed().iter().sum::<f32>()
        });
        assert_eq!(v, [1.0, 2.0, 0.0, 1.0, 2.0, 0.0]);
        assert_eq!(sums, [3.0, 3.0]);
    }

    #[test]
    fn written_is_what_extend_wrote() {
        let v = fresh(6, 3, false, |first, slots| {
            slots.extend([first as f32, 1.0]);
            assert_eq!(slots.written(), [first as f32, 1.0]);
            slots.extend([2.0]);
            assert_eq!(slots.written().len(), 3);
        });
        assert_eq!(v, [0.0, 1.0, 2.0, 3.0, 1.0, 2.0]);
    }

    #[test]
    fn parts_fill_their_chunk_in_turn() {
        let v = fresh(6, 6, false, |_, slots| {
            slots.part(2, |p| p.extend([1.0, 2.0]));
            slots.part(4, |p| p.zeroed()[3] = 4.0);
        });
        assert_eq!(v, [1.0, 2.0, 0.0, 0.0, 0.0, 4.0]);
    }

    #[test]
    #[should_panic(expected = "at 2 was left with 1 unwritten")]
    fn a_short_part_panics() {
        fresh(4, 4, false, |_, slots| {
            slots.part(2, |p| p.extend([1.0, 2.0]));
            slots.part(2, |p| p.extend([3.0]));
        });
    }

    #[test]
    #[should_panic(expected = "left with 1 unwritten")]
    fn fresh_panics_on_a_short_write() {
        fresh(4, 4, false, |_, slots| slots.extend([1.0, 2.0, 3.0]));
    }
}
