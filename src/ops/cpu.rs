//! What the CPU offers beyond the x86-64 baseline (SSE2), detected once per process.
//!
//! The kernels with an AVX2 version (Winograd's transforms, the 2×2 max pool) pick it
//! at run time. Setting `FERROCNN_NO_AVX2` (to anything) makes them take their
//! baseline versions instead, so that those are tested too on machines that have
//! AVX2 (`.ci/run` runs the convolution and pooling tests both ways).

/// Whether the AVX2 kernels may run: the CPU has AVX2 and `FERROCNN_NO_AVX2` is
/// not set.
#[cfg(target_arch = "x86_64")]
pub(super) fn avx2() -> bool {
    static AVX2: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *AVX2.get_or_init(|| {
        std::env::var_os("FERROCNN_NO_AVX2").is_none() && std::arch::is_x86_feature_detected!("avx2")
    })
}
