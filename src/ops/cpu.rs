//! What the CPU offers beyond the x86-64 baseline (SSE2), and what the kernels may
//! use of it.
//!
//! The kernels with an AVX2 version (Winograd's transforms, the 2×2 max pool, the
//! bias, shortcut and ReLU pass of the fused inference conv) pick it at run time,
//! unless [`runtime::set_simd`](crate::runtime::set_simd) asks for the baseline
//! versions (to test or time them on machines that have AVX2). The CPU's features
//! are detected once: they are a fact about the machine, not a setting.

/// Whether the AVX2 kernels may run: the CPU has AVX2 and the
/// [`Simd`](crate::runtime::Simd) setting allows it.
#[cfg(target_arch = "x86_64")]
pub(super) fn avx2() -> bool {
    static AVX2: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    crate::runtime::simd() == crate::runtime::Simd::Auto
        && *AVX2.get_or_init(|| std::arch::is_x86_feature_detected!("avx2"))
}

/// Whether the AVX-512 versions of elementwise loops may run (Adam's update): the
/// CPU has AVX-512F and the [`Simd`](crate::runtime::Simd) setting allows vectors
/// beyond the baseline. Those loops give the same values in every width.
#[cfg(target_arch = "x86_64")]
pub(crate) fn avx512() -> bool {
    avx2() && has_avx512()
}

/// Whether the CPU has AVX2 and FMA, for the matrix products' AVX2 kernels. Those
/// do not follow the [`Simd`](crate::runtime::Simd) setting: their portable
/// alternative rounds differently, and the setting promises the same results bit
/// for bit (see `ops::gemm`).
#[cfg(target_arch = "x86_64")]
pub(super) fn has_avx2_fma() -> bool {
    static AVX2_FMA: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *AVX2_FMA.get_or_init(|| {
        std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
    })
}

/// Whether the CPU has AVX-512F (and AVX2 and FMA), for the matrix products'
/// AVX-512 kernels; see [`has_avx2_fma`].
#[cfg(target_arch = "x86_64")]
pub(super) fn has_avx512() -> bool {
    static AVX512: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    has_avx2_fma() && *AVX512.get_or_init(|| std::arch::is_x86_feature_detected!("avx512f"))
}

/// Defines `fn $name(args)`, which runs `$body(args)` compiled for the first of the
/// listed vector extensions (`avx512`, `avx2`) that the CPU has and the
/// [`Simd`](crate::runtime::Simd) setting allows, else as the crate is compiled
/// (the baseline). `$body` should be `#[inline(always)]`, so that each version is
/// its own copy of the loop, vectorized for its extension. Each runs the same
/// operations in the same order, so the results are the same bit for bit.
///
/// For free functions of elementwise loops; Winograd's methods have their own
/// `multiversioned!`, Adam's update and dropout's mask hand out function pointers.
macro_rules! vectorized {
    ($(#[$doc:meta])* fn $name:ident($($arg:ident: $ty:ty),* $(,)?) => $body:path, [$($level:ident),+]) => {
        $(#[$doc])*
        fn $name($($arg: $ty),*) {
            vectorized!(@first [$($level),+] $body, ($($arg: $ty),*));
            $body($($arg),*)
        }
    };
    // The levels in turn: run the first one allowed and return.
    (@first [$level:ident $(, $rest:ident)*] $body:path, ($($arg:ident: $ty:ty),*)) => {
        #[cfg(target_arch = "x86_64")]
        if vectorized!(@allowed $level) {
            vectorized!(@run $level, $body, $($arg: $ty),*);
            return;
        }
        vectorized!(@first [$($rest),*] $body, ($($arg: $ty),*));
    };
    (@first [] $body:path, ($($arg:ident: $ty:ty),*)) => {};
    (@allowed avx512) => { $crate::ops::cpu::avx512() };
    (@allowed avx2) => { $crate::ops::cpu::avx2() };
    (@run avx512, $body:path, $($arg:ident: $ty:ty),*) => {{
        #[target_feature(enable = "avx512f")]
        unsafe fn run($($arg: $ty),*) {
            $body($($arg),*)
        }
        // SAFETY: `cpu::avx512()` found AVX-512F.
        unsafe { run($($arg),*) }
    }};
    (@run avx2, $body:path, $($arg:ident: $ty:ty),*) => {{
        #[target_feature(enable = "avx2")]
        unsafe fn run($($arg: $ty),*) {
            $body($($arg),*)
        }
        // SAFETY: `cpu::avx2()` found AVX2.
        unsafe { run($($arg),*) }
    }};
}

pub(crate) use vectorized;
