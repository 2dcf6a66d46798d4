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
//!   (today: [`tune_malloc`]).

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
