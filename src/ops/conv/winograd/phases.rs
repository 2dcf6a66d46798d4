//! The four column phases of a row: `e_k[s] = c[4s + k]`, the deinterleave the
//! row passes of Winograd's input and output-gradient transforms read from (see
//! [`input_transform`](super::Winograd::input_transform)).
//!
//! Written as a plain loop, the compiler left it scalar (four loads and four stores
//! per slot): about 4% of an R3 training step's instructions (callgrind), more than
//! the row transform it feeds. With AVX2 (when [`cpu::avx2`](crate::ops::cpu::avx2)
//! allows it) eight slots take four loads, eight shuffles, four permutes and four
//! stores. It only moves values, so both versions give the same bits.

/// `e_k[s] = c[4s + k]` for every whole quadruple of `c`.
#[inline(always)]
pub(super) fn phases4(c: &[f32], e0: &mut [f32], e1: &mut [f32], e2: &mut [f32], e3: &mut [f32]) {
    let n = c.len() / 4;
    let (e0, e1, e2, e3) = (&mut e0[..n], &mut e1[..n], &mut e2[..n], &mut e3[..n]);
    #[cfg(target_arch = "x86_64")]
    let done = if crate::ops::cpu::avx2() {
        // SAFETY: the CPU has AVX2.
        unsafe { avx2::phases4(&c[..4 * n], [e0, e1, e2, e3]) }
    } else {
        0
    };
    #[cfg(not(target_arch = "x86_64"))]
    let done = 0;
    for (s, q) in c.chunks_exact(4).enumerate().skip(done) {
        (e0[s], e1[s], e2[s], e3[s]) = (q[0], q[1], q[2], q[3]);
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    /// The phases of the first slots of `c` (four floats each), eight at a time, into
    /// `e` (each as long as `c` has slots); returns how many slots it did (a
    /// multiple of eight), leaving the rest to the caller.
    ///
    /// # Safety
    /// The CPU has AVX2.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn phases4(c: &[f32], e: [&mut [f32]; 4]) -> usize {
        let n = c.len() / 4;
        assert!(
            e.iter().all(|e| e.len() == n),
            "phases4: {n} slots, rows of other lengths"
        );
        let blocks = n / 8;
        let [e0, e1, e2, e3] = e;
        // SAFETY: block `b` reads `c[32b .. 32b + 32]` and writes `e_k[8b .. 8b + 8]`,
        // within `4n` and `n` floats for `b < n / 8`.
        unsafe {
            let src = c.as_ptr();
            let dst = [e0.as_mut_ptr(), e1.as_mut_ptr(), e2.as_mut_ptr(), e3.as_mut_ptr()];
            // Lanes [s0 s2 s4 s6 | s1 s3 s5 s7] back in slot order.
            let order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
            for b in 0..blocks {
                let at = src.add(32 * b);
                // Slots s, s+1 per register: [s.0 s.1 s.2 s.3 | s+1.0 … s+1.3].
                let (a, bb) = (_mm256_loadu_ps(at), _mm256_loadu_ps(at.add(8)));
                let (cc, d) = (_mm256_loadu_ps(at.add(16)), _mm256_loadu_ps(at.add(24)));
                // [s0.0 s2.0 s0.1 s2.1 | s1.0 s3.0 s1.1 s3.1] and the .2/.3 halves.
                let (lo_ab, hi_ab) = (_mm256_unpacklo_ps(a, bb), _mm256_unpackhi_ps(a, bb));
                let (lo_cd, hi_cd) = (_mm256_unpacklo_ps(cc, d), _mm256_unpackhi_ps(cc, d));
                let phases = [
                    _mm256_shuffle_ps::<0b01_00_01_00>(lo_ab, lo_cd),
                    _mm256_shuffle_ps::<0b11_10_11_10>(lo_ab, lo_cd),
                    _mm256_shuffle_ps::<0b01_00_01_00>(hi_ab, hi_cd),
                    _mm256_shuffle_ps::<0b11_10_11_10>(hi_ab, hi_cd),
                ];
                for (k, phase) in phases.into_iter().enumerate() {
                    _mm256_storeu_ps(dst[k].add(8 * b), _mm256_permutevar8x32_ps(phase, order));
                }
            }
        }
        8 * blocks
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::{set_simd, Simd};

    #[test]
    fn phases_are_every_fourth_value_with_and_without_avx2() {
        // Lengths around the blocks of eight slots, and a trailing partial quadruple.
        for len in [0, 3, 4, 28, 31, 32, 36, 60, 64, 100, 131, 4 * 51, 4 * 160 + 2] {
            let c: Vec<f32> = (0..len).map(|i| i as f32 * 0.5 - 7.0).collect();
            let n = len / 4;
            for simd in [Simd::Auto, Simd::Baseline] {
                set_simd(simd);
                let mut e: [Vec<f32>; 4] = std::array::from_fn(|_| vec![f32::NAN; n + 1]);
                let [e0, e1, e2, e3] = &mut e;
                phases4(&c, e0, e1, e2, e3);
                set_simd(Simd::Auto);
                for (k, e) in e.iter().enumerate() {
                    let want: Vec<f32> = (0..n).map(|s| c[4 * s + k]).collect();
                    assert_eq!(&e[..n], &want[..], "len {len}, phase {k}, {simd:?}");
                    assert!(e[n].is_nan(), "len {len}, phase {k}: wrote past the slots");
                }
            }
        }
    }
}
