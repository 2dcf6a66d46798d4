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
