//! Helpers shared by the test files that `mod common;` them.

use std::sync::Mutex;

use ferrocnn::runtime::{self, Simd};

/// Both kernel choices: every test that runs through [`with_simd`] checks the
/// baseline (SSE2) kernels too, on machines that have AVX2.
pub const BOTH_SIMD: [Simd; 2] = [Simd::Auto, Simd::Baseline];

/// Runs `f` with the process-wide [`Simd`] setting at `simd`, then restores `Auto`.
/// The tests of one file run on parallel threads of one process: a lock keeps two
/// of them from switching the setting under each other. Tests that do not take it
/// may run under either setting, which give the same results bit for bit.
pub fn with_simd<R>(simd: Simd, f: impl FnOnce() -> R) -> R {
    static LOCK: Mutex<()> = Mutex::new(());
    let _guard = LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    runtime::set_simd(simd);
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    runtime::set_simd(Simd::Auto);
    result.unwrap_or_else(|panic| std::panic::resume_unwind(panic))
}
