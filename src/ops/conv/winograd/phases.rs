//! The four column phases of a row: `e_k[s] = c[4s + k]`, the deinterleave the
//! row passes of Winograd's input and output-gradient transforms read from (see
//! [`input_transform`](super::Winograd::input_transform)).
//!
//! Written as a plain loop, the compiler left it scalar (four loads and four stores
//! per slot): about 4% of an R3 training step's instructions (callgrind), more than
//! the row transform it feeds. With AVX2 (when [`cpu::avx2`](crate::ops::cpu::avx2)
//! allows it) eight slots take four loads, eight shuffles, four permutes and four
//! stores. It only moves values, so both versions give the same bits.
//!
//! With AVX2 the row passes do not write the phases out at all: `avx2::row_pass`
//! transforms each block of eight slots from its phases in registers (writing
//! them and reading them back was a third of the input transform's samples on R2,
//! perf), and `avx2::output_pass` does both passes of the output transform per
//! block, interleaving each slot's outputs in registers, the inverse of the
//! deinterleave. Without AVX2, `phases4` and the transforms' loops.

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
pub(super) mod avx2 {
    use std::arch::x86_64::*;

    use std::ops::{Add, Mul, Sub};

    use super::super::lanes::Number;
    use super::super::transforms::{at_times, ToSix};

    /// The four phases of eight slots from the 32 floats at `at`, in slot order.
    ///
    /// # Safety
    /// The CPU has AVX2; `at .. at + 32` is readable.
    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn phases8(at: *const f32) -> [__m256; 4] {
        // SAFETY: the caller's promise.
        let (a, b, c, d) = unsafe {
            (
                _mm256_loadu_ps(at),
                _mm256_loadu_ps(at.add(8)),
                _mm256_loadu_ps(at.add(16)),
                _mm256_loadu_ps(at.add(24)),
            )
        };
        // Slots s, s+1 per register: [s.0 s.1 s.2 s.3 | s+1.0 … s+1.3]; then
        // [s0.0 s2.0 s0.1 s2.1 | s1.0 s3.0 s1.1 s3.1] and the .2/.3 halves.
        let (lo_ab, hi_ab) = (_mm256_unpacklo_ps(a, b), _mm256_unpackhi_ps(a, b));
        let (lo_cd, hi_cd) = (_mm256_unpacklo_ps(c, d), _mm256_unpackhi_ps(c, d));
        // Lanes [s0 s2 s4 s6 | s1 s3 s5 s7] back in slot order.
        let order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
        [
            _mm256_shuffle_ps::<0b01_00_01_00>(lo_ab, lo_cd),
            _mm256_shuffle_ps::<0b11_10_11_10>(lo_ab, lo_cd),
            _mm256_shuffle_ps::<0b01_00_01_00>(hi_ab, hi_cd),
            _mm256_shuffle_ps::<0b11_10_11_10>(hi_ab, hi_cd),
        ]
        .map(|phase| _mm256_permutevar8x32_ps(phase, order))
    }

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
            let dst = [e0.as_mut_ptr(), e1.as_mut_ptr(), e2.as_mut_ptr(), e3.as_mut_ptr()];
            for b in 0..blocks {
                for (k, phase) in phases8(c.as_ptr().add(32 * b)).into_iter().enumerate() {
                    _mm256_storeu_ps(dst[k].add(8 * b), phase);
                }
            }
        }
        8 * blocks
    }

    /// Eight floats in an AVX2 register, as a [`Number`] for the transforms (`bt_times`,
    /// `a_times`) to run on: each operation one instruction, the same operation on
    /// each lane as on a float. ([`Lanes`](super::super::lanes::Lanes), an array the
    /// compiler vectorizes, was turned into 128-bit halves and stack traffic when
    /// built from registers here: slower than the pass it replaced, perf.)
    ///
    /// Only [`row_pass`] and [`output_pass`] make one, on a CPU with AVX2: that is
    /// what makes its operations sound.
    #[derive(Clone, Copy)]
    struct V8(__m256);

    impl Add for V8 {
        type Output = V8;
        #[inline(always)]
        fn add(self, other: V8) -> V8 {
            // SAFETY: a `V8` exists only on a CPU with AVX2 (see the type).
            V8(unsafe { _mm256_add_ps(self.0, other.0) })
        }
    }

    impl Sub for V8 {
        type Output = V8;
        #[inline(always)]
        fn sub(self, other: V8) -> V8 {
            // SAFETY: as in `add`.
            V8(unsafe { _mm256_sub_ps(self.0, other.0) })
        }
    }

    impl Mul<V8> for f32 {
        type Output = V8;
        #[inline(always)]
        fn mul(self, v: V8) -> V8 {
            // SAFETY: as in `add`.
            V8(unsafe { _mm256_mul_ps(_mm256_set1_ps(self), v.0) })
        }
    }

    impl Number for V8 {}

    /// A row pass from the phases kept in registers: `out_j[s] = f(c[4s], …,
    /// c[4s + N − 1])_j` for the `slots ≥ 8` slots, eight at a time, the last block
    /// overlapping the one before when eight do not divide `slots` (it writes the
    /// same values again). `N` is 4 (the output gradient's `A`) or 6 (the input's
    /// `Bᵀ`, whose slots also read the first two phases of the next slot: the
    /// phases shifted by one lane, the last lane from `c[4s + 32]`, `c[4s + 33]`).
    /// The same operations on the same values as `map_to_6` on the phases, so the
    /// same bits, without writing the phases out and reading them back.
    ///
    /// # Safety
    /// The CPU has AVX2.
    #[target_feature(enable = "avx2")]
    pub(in super::super) unsafe fn row_pass<const N: usize>(
        c: &[f32],
        slots: usize,
        out: &mut [&mut [f32]; 6],
        f: impl ToSix<N>,
    ) {
        assert!(
            slots >= 8 && c.len() >= 4 * slots + (N - 4) && out.iter().all(|r| r.len() >= slots),
            "row_pass: {slots} slots from {} floats",
            c.len()
        );
        let next = _mm256_setr_epi32(1, 2, 3, 4, 5, 6, 7, 7);
        let last = (!slots.is_multiple_of(8)).then_some(slots - 8);
        for s in (0..slots / 8).map(|b| 8 * b).chain(last) {
            // SAFETY: slots `s .. s + 8 ≤ slots` read `c[4s .. 4s + 32]`, and the
            // shifted phases `c[4s + 32]`, `c[4s + 33]` (below `4·slots + 2`) for
            // `N = 6`, as asserted.
            let e = unsafe { phases8(c.as_ptr().add(4 * s)) };
            let d: [V8; N] = std::array::from_fn(|k| match k {
                0..4 => V8(e[k]),
                _ => V8(_mm256_blend_ps::<0x80>(
                    _mm256_permutevar8x32_ps(e[k - 4], next),
                    _mm256_set1_ps(c[4 * s + 32 + (k - 4)]),
                )),
            });
            for (r, y) in out.iter_mut().zip(f.apply(d)) {
                let r = &mut r[s..s + 8];
                // SAFETY: `r` holds eight floats.
                unsafe { _mm256_storeu_ps(r.as_mut_ptr(), y.0) };
            }
        }
    }

    /// `Y = Aᵀ·M·A` of eight slots at a time into `out_rows`, as
    /// `Winograd::output_transform` computes it in two passes through a buffer: for
    /// each block of slots, the six columns' `Aᵀ·M[·, j]` stay in registers (some
    /// spilled: 24 vectors), then each output row's `·A`, and the four outputs of
    /// each slot are interleaved in registers (the inverse of [`phases8`]). `m`
    /// holds the 36 products of slot `s` at `m[ξ·stride + first + s]`; `out_rows`
    /// the four output rows of each tile row, `4·slots` floats each, slot `s`'s four
    /// outputs at `4s`. The last block overlaps the one before when eight do not
    /// divide `slots ≥ 8`. The same operations as the two passes, so the same bits.
    ///
    /// # Safety
    /// The CPU has AVX2.
    #[target_feature(enable = "avx2")]
    pub(in super::super) unsafe fn output_pass(
        m: &[f32],
        (first, stride): (usize, usize),
        slots: usize,
        out_rows: &mut [f32],
    ) {
        assert!(
            slots >= 8 && m.len() >= 35 * stride + first + slots && out_rows.len() >= 16 * slots,
            "output_pass: {slots} slots from {} products (stride {stride}) into {} outputs",
            m.len(),
            out_rows.len()
        );
        let last = (!slots.is_multiple_of(8)).then_some(slots - 8);
        for s in (0..slots / 8).map(|b| 8 * b).chain(last) {
            // `Aᵀ·M[·, j]` of each column `j`, then row `r` across the columns.
            let columns: [[V8; 4]; 6] = std::array::from_fn(|j| {
                // SAFETY: product `ξ = 6i + j < 36` of slots `s .. s + 8 ≤ slots`,
                // within `m` as asserted.
                at_times(std::array::from_fn(|i| {
                    V8(unsafe { _mm256_loadu_ps(m.as_ptr().add((i * 6 + j) * stride + first + s)) })
                }))
            });
            for r in 0..4 {
                let t: [V8; 6] = std::array::from_fn(|j| columns[j][r]);
                let [c0, c1, c2, c3] = at_times(t).map(|y| y.0);
                // [s0.0 s0.1 s1.0 s1.1 | s4.0 s4.1 s5.0 s5.1] and the .2/.3 halves,
                // then whole slots: [s0 | s4], [s1 | s5], [s2 | s6], [s3 | s7].
                let (lo01, hi01) = (_mm256_unpacklo_ps(c0, c1), _mm256_unpackhi_ps(c0, c1));
                let (lo23, hi23) = (_mm256_unpacklo_ps(c2, c3), _mm256_unpackhi_ps(c2, c3));
                let s04 = _mm256_shuffle_ps::<0b01_00_01_00>(lo01, lo23);
                let s15 = _mm256_shuffle_ps::<0b11_10_11_10>(lo01, lo23);
                let s26 = _mm256_shuffle_ps::<0b01_00_01_00>(hi01, hi23);
                let s37 = _mm256_shuffle_ps::<0b11_10_11_10>(hi01, hi23);
                let row = &mut out_rows[r * 4 * slots + 4 * s..][..32];
                // SAFETY: `row` holds 32 floats.
                unsafe {
                    let at = row.as_mut_ptr();
                    _mm256_storeu_ps(at, _mm256_permute2f128_ps::<0x20>(s04, s15));
                    _mm256_storeu_ps(at.add(8), _mm256_permute2f128_ps::<0x20>(s26, s37));
                    _mm256_storeu_ps(at.add(16), _mm256_permute2f128_ps::<0x31>(s04, s15));
                    _mm256_storeu_ps(at.add(24), _mm256_permute2f128_ps::<0x31>(s26, s37));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::{set_simd, Simd};

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn the_fused_row_pass_is_the_transform_of_each_slot_bit_for_bit() {
        use super::super::transforms::{Bt, ToSix, A};
        if !crate::ops::cpu::avx2() {
            return;
        }
        fn check<const N: usize>(f: impl ToSix<N>, slots: usize) {
            // Values of mixed signs and magnitudes, two floats past the slots for
            // the input transform's shifted phases.
            let c: Vec<f32> = (0..4 * slots + 2)
                .map(|i| ((i * 37 % 101) as f32 - 50.0) / 7.0)
                .collect();
            let mut rows: [Vec<f32>; 6] = std::array::from_fn(|_| vec![f32::NAN; slots + 1]);
            let mut out: [&mut [f32]; 6] = {
                let mut it = rows.iter_mut();
                std::array::from_fn(|_| &mut it.next().unwrap()[..slots])
            };
            // SAFETY: the CPU has AVX2 (checked above).
            unsafe { avx2::row_pass(&c, slots, &mut out, f) };
            for s in 0..slots {
                let want = f.apply::<f32>(std::array::from_fn(|k| c[4 * s + k]));
                for (j, row) in rows.iter().enumerate() {
                    assert_eq!(
                        row[s].to_bits(),
                        want[j].to_bits(),
                        "N {N}, {slots} slots: slot {s}, row {j}"
                    );
                }
            }
            assert!(
                rows.iter().all(|r| r[slots].is_nan()),
                "N {N}, {slots} slots: wrote past the slots"
            );
        }
        for slots in [8, 9, 15, 16, 17, 40, 163] {
            check(Bt, slots);
            check(A, slots);
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn the_fused_output_pass_is_each_slots_transform_bit_for_bit() {
        use super::super::transforms::at_times;
        if !crate::ops::cpu::avx2() {
            return;
        }
        for slots in [8, 13, 16, 41, 160] {
            let (first, stride) = (3, slots + 5);
            let m: Vec<f32> = (0..36 * stride + first)
                .map(|i| ((i * 53 % 97) as f32 - 48.0) / 5.0)
                .collect();
            let mut out = vec![f32::NAN; 16 * slots + 1];
            // SAFETY: the CPU has AVX2 (checked above).
            unsafe { avx2::output_pass(&m, (first, stride), slots, &mut out[..16 * slots]) };
            for s in 0..slots {
                let t: [[f32; 4]; 6] = std::array::from_fn(|j| {
                    at_times(std::array::from_fn(|i| m[(i * 6 + j) * stride + first + s]))
                });
                for r in 0..4 {
                    let want = at_times(std::array::from_fn(|j| t[j][r]));
                    for (c, want) in want.iter().enumerate() {
                        let got = out[r * 4 * slots + 4 * s + c];
                        assert_eq!(
                            got.to_bits(),
                            want.to_bits(),
                            "{slots} slots: slot {s}, output ({r}, {c})"
                        );
                    }
                }
            }
            assert!(out[16 * slots].is_nan(), "{slots} slots: wrote past the rows");
        }
    }

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
