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
pub fn tune_malloc() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        #[cfg(all(target_os = "linux", target_env = "gnu"))]
        // SAFETY: mallopt only sets allocator parameters; it is called once, before
        // the large allocations it affects, and with values glibc documents as valid.
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
            libc::mallopt(libc::M_TRIM_THRESHOLD, 1 << 30);
        }
    });
}

/// Which vector instructions the kernels with several versions may use (Winograd's
/// transforms, the 2×2 max pool). Every version computes the same operations in the
/// same order, so the results are the same, bit for bit; only the speed differs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Simd {
    /// The best the CPU offers: AVX2 when it has it, else the baseline.
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
#[derive(Clone, Copy, Debug, Default)]
pub struct AlignedAlloc;

/// See [`AlignedAlloc`]: the smallest block it starts on a cache line (a page).
pub const ALIGNED_MIN_BYTES: usize = 4096;

/// A cache line, and the alignment [`AlignedAlloc`] gives large blocks.
const CACHE_LINE: usize = 64;

impl AlignedAlloc {
    /// The layout the system allocator is asked for: `layout`, on a cache line if
    /// it is large. A function of the layout alone, so that freeing a block asks
    /// for the same alignment as allocating it did.
    fn system_layout(layout: Layout) -> Layout {
        if layout.size() >= ALIGNED_MIN_BYTES {
            layout.align_to(CACHE_LINE).unwrap_or(layout)
        } else {
            layout
        }
    }
}

// SAFETY: every call forwards to `System` with `system_layout` of the caller's
// layout, the same function of the layout for a block's allocation and its
// release; `realloc` moves a block between the two alignments by hand.
unsafe impl GlobalAlloc for AlignedAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's promises hold for the adjusted layout (non-zero
        // size: the same size).
        unsafe { System.alloc(Self::system_layout(layout)) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as `alloc`.
        unsafe { System.alloc_zeroed(Self::system_layout(layout)) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` was allocated by `System` with this same adjusted layout.
        unsafe { System.dealloc(ptr, Self::system_layout(layout)) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let old = Self::system_layout(layout);
        // SAFETY: the caller promises `new_size` rounded up to `layout.align()`
        // does not overflow `isize`.
        let new = Self::system_layout(unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) });
        if old.align() == new.align() {
            // SAFETY: `ptr` was allocated by `System` with `old`.
            return unsafe { System.realloc(ptr, old, new_size) };
        }
        // SAFETY: `new` has a non-zero size (the caller's promise); the copy is of
        // the bytes both blocks hold, and `ptr` was allocated with `old`.
        unsafe {
            let moved = System.alloc(new);
            if !moved.is_null() {
                std::ptr::copy_nonoverlapping(ptr, moved, layout.size().min(new_size));
                System.dealloc(ptr, old);
            }
            moved
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
}
