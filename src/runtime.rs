//! The process-wide settings ferrocnn offers, and never applies on its own.
//!
//! A library should not change its host process behind the user's back (the
//! allocator, the kernels other code gets), so each setting here is a function that
//! a binary calls once at the start of `main`, or not at all:
//!
//! - [`tune_malloc`] keeps freed blocks in the process (glibc only);
//! - [`set_simd`] chooses between the AVX2 kernels and the baseline (SSE2) ones;
//!   the matrix products are not among them: they always run the best kernels the
//!   CPU has (AVX-512, AVX2 + FMA or portable), whose roundings differ (`ops::gemm`);
//! - [`tune_for_training`] applies what a training or benchmark binary wants
//!   (today: [`tune_malloc`]);
//! - [`AlignedAlloc`] is a global allocator that starts every large block on a
//!   cache line, for a binary to install with `#[global_allocator]`.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Once;

/// Applies the process-wide settings a training loop or a benchmark wants:
/// [`tune_malloc`]. Idempotent. Call it at the start of `main` of a binary that
/// trains or measures; a library that uses ferrocnn should leave the choice to its
/// own binary.
pub fn tune_for_training() {
    tune_malloc();
}

/// Raises glibc malloc's mmap and trim thresholds, once per process (a no-op on
/// other C libraries). Process-wide: it changes how every allocation of the process
/// is served.
///
/// Why: every step allocates activations and gradients of the same few sizes
/// (megabytes each) and frees them at the end of the step. glibc's malloc returns
/// such blocks to the OS — large ones through `munmap`, the top of the heap through
/// trimming — so the next step maps them again and takes a page fault on every
/// 4 KiB page it touches. Measured on R1 (one epoch, 2 threads): 16.5 s with the
/// defaults, 9.0 s with the thresholds below; a quarter of conv2d's time was page
/// faults.
///
/// Raising the mmap threshold to its maximum (32 MiB) and the trim threshold to
/// 1 GiB makes freed blocks stay in the process for reuse. The cost is a higher
/// resident peak (about +80 MiB on R1), memory the next step needs anyway.
///
/// It also keeps every thread on the main arena (`M_ARENA_MAX` 1). The trim
/// threshold holds for that arena alone: another thread's arena gives a heap back
/// as soon as it is free. [`fit`](crate::train::fit) runs its epochs on a thread of
/// rayon's pool, and with an arena of its own R3's epoch took 1.5 million page
/// faults instead of 58 thousand. The pool's threads allocate little, so sharing
/// one arena's lock costs nothing measurable.
pub fn tune_malloc() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        #[cfg(all(target_os = "linux", target_env = "gnu"))]
        // SAFETY: mallopt only sets allocator parameters; it is called once, before
        // the large allocations it affects, and with values glibc documents as valid.
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
            libc::mallopt(libc::M_TRIM_THRESHOLD, 1 << 30);
            libc::mallopt(libc::M_ARENA_MAX, 1);
        }
    });
}

/// Which vector instructions the kernels with several versions may use (Winograd's
/// transforms, the 2×2 max pool, Adam's update). Every version computes the same operations in the
/// same order, so the results are the same, bit for bit; only the speed differs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Simd {
    /// The best the CPU offers: AVX2 when it has it (AVX-512 for Adam's update),
    /// else the baseline.
    #[default]
    Auto,
    /// The x86-64 baseline (SSE2) everywhere, even on a CPU with AVX2: to test or
    /// time those versions.
    Baseline,
}

/// The [`Simd`] setting, as a `u8` (0 = `Auto`, 1 = `Baseline`).
static SIMD: AtomicU8 = AtomicU8::new(0);

/// Sets which vector instructions the kernels may use, for the whole process (the
/// default is [`Simd::Auto`]). Takes effect from the next kernel call on.
pub fn set_simd(simd: Simd) {
    SIMD.store(simd as u8, Ordering::Relaxed);
}

/// The current [`Simd`] setting.
pub fn simd() -> Simd {
    match SIMD.load(Ordering::Relaxed) {
        0 => Simd::Auto,
        _ => Simd::Baseline,
    }
}

/// The system allocator, with every block of [`ALIGNED_MIN_BYTES`] or more starting
/// on a 64-byte boundary (a cache line, an AVX-512 vector), as PyTorch's CPU
/// allocator does. A binary installs it for the whole process:
///
/// ```
/// #[global_allocator]
/// static ALLOC: ferrocnn::runtime::AlignedAlloc = ferrocnn::runtime::AlignedAlloc;
/// ```
///
/// Why: a tensor's data is a `Vec<f32>`, which the system allocator starts on a
/// 16-byte boundary only (glibc's malloc). Then most 64-byte vector loads of the
/// matrix products straddle two cache lines, and which ones do depends on where
/// each buffer happened to land, which varies with the allocations before it.
/// Measured (BENCHMARKS.md, session 13): R2's products at one thread ran at 84–102
/// GFLOP/s on buffers 16 bytes off a line and 118–151 on aligned ones; R2's
/// training step 42.4–42.8 ms with the system allocator, 38.3–39.5 ms with this
/// one. Smaller blocks (shapes, names, bookkeeping) keep the system's alignment:
/// a larger one would only waste memory there.
///
/// How: a large block is asked of the system 72 bytes longer, under the caller's
/// own layout, and handed out from its first cache line past 8 bytes, where the
/// system's pointer is kept for the release. Asking the system for the alignment
/// instead (`memalign`) raised R3's peak memory by 40%: a freed block then rarely
/// fits the next request of its size.
#[derive(Clone, Copy, Debug, Default)]
pub struct AlignedAlloc;

/// See [`AlignedAlloc`]: the smallest block it starts on a cache line (a page).
pub const ALIGNED_MIN_BYTES: usize = 4096;

/// A cache line, and the alignment [`AlignedAlloc`] gives large blocks.
const CACHE_LINE: usize = 64;

/// Bytes of the system's pointer, kept just before an aligned block.
const HEADER: usize = std::mem::size_of::<usize>();

/// What [`AlignedAlloc`] adds to a large block: room for the header and for the
/// shift to the next cache line.
const PADDING: usize = CACHE_LINE + HEADER;

impl AlignedAlloc {
    /// The layout the system allocator is asked for, if the block is one to align:
    /// a function of the caller's layout alone, the same at allocation and release.
    fn padded(layout: Layout) -> Option<Layout> {
        if layout.size() < ALIGNED_MIN_BYTES || layout.align() >= CACHE_LINE {
            return None;
        }
        Layout::from_size_align(layout.size().checked_add(PADDING)?, layout.align()).ok()
    }

    /// A block for `layout` from `system` (the system allocator's `alloc` or
    /// `alloc_zeroed`), placed on a cache line if [`padded`](Self::padded) says so.
    ///
    /// # Safety
    /// `layout` has a non-zero size (`GlobalAlloc::alloc`'s promise).
    unsafe fn allocate(layout: Layout, system: unsafe fn(&System, Layout) -> *mut u8) -> *mut u8 {
        // SAFETY: non-zero sizes (the caller's promise, and `padded` only adds).
        unsafe {
            match Self::padded(layout) {
                None => system(&System, layout),
                Some(padded) => {
                    let raw = system(&System, padded);
                    if raw.is_null() {
                        raw
                    } else {
                        Self::place(raw)
                    }
                }
            }
        }
    }

    /// The aligned block inside the system's block `raw` (not null, `PADDING`
    /// bytes longer than the caller's), with `raw` written in its header.
    ///
    /// # Safety
    /// `raw` is the start of a live system block of the caller's size + `PADDING`.
    unsafe fn place(raw: *mut u8) -> *mut u8 {
        let shift = Self::shift(raw);
        // SAFETY: HEADER ≤ shift < PADDING, so the block from `shift` on holds the
        // caller's size, and the header's 8 bytes before it lie in the system block.
        unsafe {
            let block = raw.add(shift);
            block.sub(HEADER).cast::<usize>().write_unaligned(raw as usize);
            block
        }
    }

    /// The aligned block inside `moved`, a system block that `realloc` returned
    /// with the first `shift + len` bytes of the old one: the caller's `len` bytes
    /// move when the new block's cache line is not as far into it as the old one's.
    ///
    /// # Safety
    /// `moved` is a live system block of at least `len + PADDING` bytes, holding
    /// the caller's bytes from `shift` on (`HEADER ≤ shift < PADDING`).
    unsafe fn replace(moved: *mut u8, shift: usize, len: usize) -> *mut u8 {
        let moved_shift = Self::shift(moved);
        // SAFETY: both ranges lie in `moved`'s first `len + PADDING` bytes.
        unsafe {
            if moved_shift != shift {
                // Before the header is written: it may lie in the old place.
                std::ptr::copy(moved.add(shift), moved.add(moved_shift), len);
            }
            Self::place(moved)
        }
    }

    /// How far into the system's block `raw` its aligned block starts: from
    /// `HEADER` to `PADDING - 1` bytes.
    fn shift(raw: *mut u8) -> usize {
        (raw as usize + HEADER).next_multiple_of(CACHE_LINE) - raw as usize
    }

    /// The system's block behind an aligned block made by [`place`](Self::place).
    ///
    /// # Safety
    /// `block` was returned by `place` and is live.
    unsafe fn raw(block: *mut u8) -> *mut u8 {
        // SAFETY: `place` wrote the system's pointer just before the block.
        unsafe { block.sub(HEADER).cast::<usize>().read_unaligned() as *mut u8 }
    }
}

// SAFETY: a block is either the system's own (`padded` is `None` for its layout)
// or one `place`d inside a system block `PADDING` bytes longer, which is released
// through its header; which of the two depends on the layout alone, the same at
// every call for a block. Each aligned block lies inside its system block.
unsafe impl GlobalAlloc for AlignedAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's promises, passed on.
        unsafe { Self::allocate(layout, <System as GlobalAlloc>::alloc) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as `alloc`; the header is written after the zeroing, outside
        // the caller's bytes.
        unsafe { Self::allocate(layout, <System as GlobalAlloc>::alloc_zeroed) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `alloc`, `alloc_zeroed` or `realloc` with this
        // layout, so `padded` tells how it was made.
        unsafe {
            match Self::padded(layout) {
                None => System.dealloc(ptr, layout),
                Some(padded) => System.dealloc(Self::raw(ptr), padded),
            }
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller promises `new_size` rounded up to `layout.align()`
        // does not overflow `isize`.
        let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        // SAFETY (all arms): `ptr` is live with `layout`; the copies are of the
        // bytes both blocks hold.
        unsafe {
            match (Self::padded(layout), Self::padded(new_layout)) {
                (None, None) => System.realloc(ptr, layout, new_size),
                (Some(padded), Some(_)) => {
                    // The system keeps the first bytes of its block, so the
                    // caller's bytes are where they were from its start; they move
                    // when the new block's cache line is not as far into it.
                    let raw = Self::raw(ptr);
                    let shift = ptr as usize - raw as usize;
                    let moved = System.realloc(raw, padded, new_size + PADDING);
                    if moved.is_null() {
                        return moved;
                    }
                    Self::replace(moved, shift, layout.size().min(new_size))
                }
                _ => {
                    let block = self.alloc(new_layout);
                    if !block.is_null() {
                        std::ptr::copy_nonoverlapping(ptr, block, layout.size().min(new_size));
                        self.dealloc(ptr, layout);
                    }
                    block
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aligned_alloc_starts_large_blocks_on_a_cache_line_and_keeps_contents() {
        let a = AlignedAlloc;
        for size in [ALIGNED_MIN_BYTES, ALIGNED_MIN_BYTES + 4, 40_000, 3 << 20] {
            let layout = Layout::from_size_align(size, 4).unwrap();
            // SAFETY: non-zero sizes; each block is freed with its own layout.
            unsafe {
                // Shift the heap by a small block, so that luck does not align it.
                let small = a.alloc(Layout::from_size_align(24, 4).unwrap());
                let p = a.alloc_zeroed(layout);
                assert_eq!(p as usize % CACHE_LINE, 0, "{size} bytes at {p:p}");
                assert!(std::slice::from_raw_parts(p, size).iter().all(|&b| b == 0));
                for i in 0..size {
                    *p.add(i) = i as u8;
                }
                // Down below the threshold and back up: the bytes kept are kept.
                let q = a.realloc(p, layout, 1000);
                let small_layout = Layout::from_size_align(1000, 4).unwrap();
                assert!((0..1000).all(|i| *q.add(i) == i as u8));
                let r = a.realloc(q, small_layout, size * 2);
                assert_eq!(r as usize % CACHE_LINE, 0);
                assert!((0..1000).all(|i| *r.add(i) == i as u8));
                let grown = Layout::from_size_align(size * 2, 4).unwrap();
                let s = a.realloc(r, grown, size * 3);
                assert_eq!(s as usize % CACHE_LINE, 0);
                assert!((0..1000).all(|i| *s.add(i) == i as u8));
                a.dealloc(s, Layout::from_size_align(size * 3, 4).unwrap());
                a.dealloc(small, Layout::from_size_align(24, 4).unwrap());
            }
        }
    }

    /// Growing a large block many times, among small ones, keeps its bytes and its
    /// alignment wherever the system moves it.
    #[test]
    fn aligned_alloc_realloc_keeps_contents_whatever_the_shift() {
        let a = AlignedAlloc;
        let mut size = ALIGNED_MIN_BYTES;
        // SAFETY: non-zero sizes; the block is always freed with its current layout.
        unsafe {
            let mut p = a.alloc(Layout::from_size_align(size, 4).unwrap());
            for i in 0..size {
                *p.add(i) = (i % 251) as u8;
            }
            let mut others = Vec::new();
            for round in 0..200 {
                // Small blocks in between, so that the heap is not one growing top.
                let other = Layout::from_size_align(48 + 16 * (round % 5), 4).unwrap();
                others.push((a.alloc(other), other));
                let new_size = size + 1 + 13 * (round % 7);
                p = a.realloc(p, Layout::from_size_align(size, 4).unwrap(), new_size);
                assert_eq!(p as usize % CACHE_LINE, 0);
                assert!(
                    (0..ALIGNED_MIN_BYTES).all(|i| *p.add(i) == (i % 251) as u8),
                    "round {round}"
                );
                size = new_size;
            }
            a.dealloc(p, Layout::from_size_align(size, 4).unwrap());
            for (q, l) in others {
                a.dealloc(q, l);
            }
        }
        // Whether glibc moves the block to a new shift depends on the heap around
        // it (a test thread's arena, what other tests freed), so the moves
        // themselves are checked on every pair of shifts in the next test.
    }

    /// A block `realloc` moved to an address with another offset to the next
    /// cache line: the caller's bytes follow it, for every old and new offset.
    #[test]
    fn aligned_alloc_replace_moves_the_bytes_for_every_pair_of_shifts() {
        let len = 300;
        for old_shift in (HEADER..PADDING).step_by(4) {
            for start in (0..CACHE_LINE).step_by(4) {
                // A stand-in for the system's block, `start` bytes past a line.
                let mut buffer = vec![0u64; (len + PADDING + 3 * CACHE_LINE) / 8];
                let base = buffer.as_mut_ptr().cast::<u8>();
                let moved = unsafe {
                    // SAFETY: inside `buffer`, which has `CACHE_LINE` spare bytes
                    // at each end.
                    base.add((CACHE_LINE - base as usize % CACHE_LINE) % CACHE_LINE + start)
                };
                // SAFETY: `moved` has `len + PADDING` bytes in `buffer`, and the
                // caller's bytes are written from `old_shift` on.
                let block = unsafe {
                    for i in 0..len {
                        *moved.add(old_shift + i) = (i % 251) as u8;
                    }
                    AlignedAlloc::replace(moved, old_shift, len)
                };
                assert_eq!(block as usize % CACHE_LINE, 0);
                // SAFETY: `block` lies in `buffer` with `len` bytes after it.
                let (bytes, raw) =
                    unsafe { (std::slice::from_raw_parts(block, len), AlignedAlloc::raw(block)) };
                assert!(
                    bytes.iter().enumerate().all(|(i, &b)| b == (i % 251) as u8),
                    "shift {old_shift} -> block at {start} past a line"
                );
                assert_eq!(raw, moved);
            }
        }
    }
}
