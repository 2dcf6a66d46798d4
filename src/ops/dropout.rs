//! Inverted dropout: in training, each element is zeroed with probability `p` and
//! the survivors are scaled by `1/(1−p)`, so evaluation needs no rescaling and is the
//! identity (the `Dropout` layer simply does not call this op in evaluation).
//!
//! The mask is a function of `(seed, element index)` alone, so it does not depend
//! on the number of threads or on how the elements are split among them, a run is
//! reproducible, and a resumed run draws the same masks as an uninterrupted one.
//! Element `i` is kept when its 32-bit word is at least `p·2³²`; the words come
//! from SplitMix64 (Steele, Lea and Flood, "Fast splittable pseudorandom number
//! generators", 2014; Vigna's `splitmix64.c`) started at `mix64(seed)`: output `k`
//! of that generator, `mix64(mix64(seed) + (k+1)·γ)`, gives element `2k` its low
//! half and element `2k+1` its high half.
//!
//! Why SplitMix64: its sequence passes BigCrush, and output `k` is computed from
//! `k` directly (a Weyl sequence through a mixing function), so every element's
//! word is computed in place, in vector registers, with no generator state to
//! carry from one element or chunk to the next. ChaCha12 (`StdRng`, before) drew
//! the words into a buffer: R2's dropout forward took 0.66 ms at two threads, 4.6%
//! of its training time, where this takes 0.17 ms, as long as reading `x` and
//! writing the output take. Philox (PyTorch's GPU dropout) is also counter-based
//! but takes ten rounds of multiplications per four words, SplitMix64 two per two.
//! Starting at `mix64(seed)` rather than at `seed` puts nearby seeds (a layer's
//! successive passes, `seed ^ calls·γ`) at unrelated points of the sequence:
//! started at the seed, a layer with seed 0 would draw each pass's mask as the
//! last one shifted by two elements. Two masks' streams now overlap only if their
//! starts fall within a mask's length of each other, a chance of about 2⁻⁴⁵ for
//! two of R2's.
//!
//! The backward pass draws the mask again from the seed instead of keeping it:
//! computing the words costs less than writing and reading back a byte per element
//! (590 KB on R2's step).

use std::mem::MaybeUninit;

use ndarray::{ArrayD, IxDyn};

use super::elementwise::keep_if;
use super::fresh::{fresh, Slots};
use crate::tensor::Tensor;

/// Elements per chunk of the parallel loop.
const CHUNK: usize = 1 << 14;

/// Elements per block of the mask loop: 32 outputs of the generator, four AVX-512
/// vectors of them.
const BLOCK: usize = 64;

/// SplitMix64's increment, the golden ratio's fraction in 64 bits (an odd number,
/// so the sequence visits every 64-bit state).
const GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;

/// SplitMix64's output function (Stafford's "Mix13" variant of MurmurHash3's
/// 64-bit finalizer): a bijection whose every output bit depends on every input bit.
#[inline(always)]
fn mix64(z: u64) -> u64 {
    let z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    let z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// `(j+1)·γ` for each output `j` of a block: the states of its outputs, from
/// the state before it, without a 64-bit multiplication each.
const STEPS: [u64; BLOCK / 2] = {
    let mut steps = [0; BLOCK / 2];
    let mut j = 0;
    while j < BLOCK / 2 {
        steps[j] = (j as u64 + 1).wrapping_mul(GAMMA);
        j += 1;
    }
    steps
};

/// The generator outputs as the 32-bit words of their elements in order, the low
/// half of each first: on a little-endian machine, their bytes as they are.
#[inline(always)]
fn words(pairs: [u64; BLOCK / 2]) -> [u32; BLOCK] {
    if cfg!(target_endian = "little") {
        // SAFETY: both arrays are `BLOCK·4` bytes, and every bit pattern is a
        // `u32`; in little-endian memory a `u64`'s low half comes first.
        unsafe { std::mem::transmute::<[u64; BLOCK / 2], [u32; BLOCK]>(pairs) }
    } else {
        std::array::from_fn(|i| (pairs[i / 2] >> (32 * (i % 2))) as u32)
    }
}

/// A dropout mask: which elements are kept, and what the kept ones are scaled by.
#[derive(Clone, Copy)]
struct Mask {
    /// The generator's state before its first output, `mix64(seed)`.
    start: u64,
    /// Elements whose word is below this are dropped.
    threshold: u32,
    /// `1/(1−p)`; 0 for `p` = 1, which then drops everything whatever the words.
    scale: f32,
}

impl Mask {
    fn new(p: f32, seed: u64) -> Mask {
        Mask {
            start: mix64(seed),
            threshold: (f64::from(p) * 4_294_967_296.0).min(u32::MAX as f64) as u32,
            scale: if p < 1.0 { 1.0 / (1.0 - p) } else { 0.0 },
        }
    }

    /// Output `k` of the generator: the words of elements `2k` and `2k+1`.
    #[inline(always)]
    fn pair(&self, k: u64) -> u64 {
        mix64(self.start.wrapping_add(k.wrapping_add(1).wrapping_mul(GAMMA)))
    }

    /// The 32-bit word of element `i`.
    #[inline(always)]
    fn word(&self, i: usize) -> u32 {
        (self.pair(i as u64 / 2) >> (32 * (i % 2))) as u32
    }

    /// `x` masked as element `i`: `x·scale` if kept, else `x·0` (as PyTorch's
    /// `x·mask·scale`, an infinite or NaN `x` gives NaN either way).
    #[inline(always)]
    fn apply(&self, i: usize, x: f32) -> f32 {
        x * keep_if(self.word(i) >= self.threshold, self.scale)
    }

    /// `x` masked as the elements from `first` (even) on, into `out`, as long.
    ///
    /// Block by block: the block's generator outputs, then its elements, two loops
    /// of fixed length over contiguous lanes that the compiler turns into vector
    /// code. (With each output's two words written to two elements in the first
    /// loop, it vectorized across blocks instead, and shuffled the words back into
    /// order.)
    #[inline(always)]
    fn apply_run(&self, first: usize, x: &[f32], out: &mut [MaybeUninit<f32>]) {
        debug_assert!(first.is_multiple_of(2) && x.len() == out.len());
        let (xs, outs) = (x.chunks_exact(BLOCK), out.chunks_exact_mut(BLOCK));
        let done = xs.len() * BLOCK;
        // The state before the block's first output.
        let mut state = self.start.wrapping_add((first as u64 / 2).wrapping_mul(GAMMA));
        for (x, out) in xs.zip(outs) {
            let mut pairs = [0u64; BLOCK / 2];
            for (w, step) in pairs.iter_mut().zip(&STEPS) {
                *w = mix64(state.wrapping_add(*step));
            }
            state = state.wrapping_add(STEPS[BLOCK / 2 - 1]);
            for ((out, &x), &w) in out.iter_mut().zip(x).zip(&words(pairs)) {
                out.write(x * keep_if(w >= self.threshold, self.scale));
            }
        }
        for (j, (out, &x)) in out[done..].iter_mut().zip(&x[done..]).enumerate() {
            out.write(self.apply(first + done + j, x));
        }
    }

    /// `x` masked, as a new vector: chunks over rayon's pool, each with the widest
    /// vectors the CPU offers and the [`Simd`](crate::runtime::Simd) setting
    /// allows. The words are integer arithmetic and each element one product, so
    /// every version gives the same values bit for bit.
    fn applied(&self, x: &[f32]) -> Vec<f32> {
        let run = pick_run();
        fresh(x.len(), CHUNK, true, |at, out: &mut Slots| {
            run(self, at, &x[at..at + out.len()], out.unwritten());
            // SAFETY: `run` wrote every element of the chunk's unwritten rest,
            // which is the whole chunk (nothing was written before).
            unsafe { out.assume_written() };
        })
    }
}

/// One run of elements masked, as [`Mask::apply_run`] computes it.
type Run = fn(&Mask, usize, &[f32], &mut [MaybeUninit<f32>]);

/// [`Mask::apply_run`] compiled for the widest vectors allowed (see [`Mask::applied`]).
fn pick_run() -> Run {
    #[cfg(target_arch = "x86_64")]
    {
        if super::cpu::avx512() {
            return run_avx512;
        }
        if super::cpu::avx2() {
            return run_avx2;
        }
    }
    run_baseline
}

/// [`Mask::apply_run`] for the x86-64 baseline (or any other architecture).
#[inline(never)]
fn run_baseline(mask: &Mask, first: usize, x: &[f32], out: &mut [MaybeUninit<f32>]) {
    mask.apply_run(first, x, out)
}

/// [`Mask::apply_run`] compiled for AVX2.
#[cfg(target_arch = "x86_64")]
fn run_avx2(mask: &Mask, first: usize, x: &[f32], out: &mut [MaybeUninit<f32>]) {
    #[target_feature(enable = "avx2")]
    unsafe fn run(mask: &Mask, first: usize, x: &[f32], out: &mut [MaybeUninit<f32>]) {
        mask.apply_run(first, x, out)
    }
    // SAFETY: `pick_run` returns this function only when `cpu::avx2()` found AVX2.
    unsafe { run(mask, first, x, out) }
}

/// [`Mask::apply_run`] compiled for AVX-512.
#[cfg(target_arch = "x86_64")]
fn run_avx512(mask: &Mask, first: usize, x: &[f32], out: &mut [MaybeUninit<f32>]) {
    #[target_feature(enable = "avx512f")]
    unsafe fn run(mask: &Mask, first: usize, x: &[f32], out: &mut [MaybeUninit<f32>]) {
        mask.apply_run(first, x, out)
    }
    // SAFETY: `pick_run` returns this function only when `cpu::avx512()` found
    // AVX-512F.
    unsafe { run(mask, first, x, out) }
}

impl Tensor {
    /// Applies inverted dropout with drop probability `p` and a mask drawn from `seed`.
    ///
    /// The mask depends on `(seed, element index)` only, so the same seed drops the
    /// same elements on any number of threads: element `i` is kept when its 32-bit
    /// word is at least `p·2³²`, the words being those of SplitMix64 started at
    /// `mix64(seed)` (output `k` gives element `2k` its low half, `2k+1` its high
    /// half).
    pub fn dropout(&self, p: f32, seed: u64) -> Tensor {
        assert!((0.0..=1.0).contains(&p), "dropout: probability {p} not in [0, 1]");
        if p == 0.0 {
            return self.clone();
        }
        let mask = Mask::new(p, seed);
        let x = self.value().as_standard_layout();
        let out = mask.applied(x.as_slice().expect("standard layout"));
        let shape = IxDyn(self.shape());
        let value = ArrayD::from_shape_vec(shape.clone(), out).expect("length matches shape");
        Tensor::record("dropout", &[self], value, move |g, _| {
            let g = g.as_standard_layout();
            let dx = mask.applied(g.as_slice().expect("standard layout"));
            vec![Some(
                ArrayD::from_shape_vec(shape.clone(), dx).expect("length matches shape"),
            )]
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The first outputs of `splitmix64.c` seeded with 1477776061723855037, as
    /// published with rand_xoshiro's `SplitMix64` (its `reference` test), and the
    /// first output for seed 0 (xoshiro's seeding examples).
    #[test]
    fn the_generator_is_splitmix64() {
        let expected: [u64; 6] = [
            1985237415132408290,
            2979275885539914483,
            13511426838097143398,
            8488337342461049707,
            15141737807933549159,
            17093170987380407015,
        ];
        // `Mask::pair` with `mix64(seed)` replaced by the seed itself.
        let mask = Mask {
            start: 1477776061723855037,
            threshold: 0,
            scale: 1.0,
        };
        for (k, &e) in expected.iter().enumerate() {
            assert_eq!(mask.pair(k as u64), e, "output {k}");
        }
        let zero = Mask { start: 0, ..mask };
        assert_eq!(zero.pair(0), 0xE220_A839_7B1D_CDAF);
        assert_eq!(mask.pair(49), 15419692541594102413, "output 49");
    }

    /// Every version of the mask loop gives the same values bit for bit, on every
    /// length around a block, from an even start inside the stream.
    #[test]
    fn every_simd_version_gives_the_same_values() {
        let mask = Mask::new(0.3, 12345);
        let x: Vec<f32> = (0..200).map(|i| (i as f32 - 90.5) * 0.37).collect();
        let mut runs: Vec<Run> = vec![run_baseline];
        #[cfg(target_arch = "x86_64")]
        {
            if crate::ops::cpu::avx2() {
                runs.push(run_avx2);
            }
            if crate::ops::cpu::avx512() {
                runs.push(run_avx512);
            }
        }
        for len in (0..=2 * BLOCK + 3).chain([199]) {
            for first in [0, 2, 1 << 40] {
                let expected: Vec<u32> = (0..len).map(|j| mask.apply(first + j, x[j]).to_bits()).collect();
                for run in &runs {
                    let mut out = vec![MaybeUninit::uninit(); len];
                    run(&mask, first, &x[..len], &mut out);
                    // SAFETY: `run` writes every element of `out`.
                    let got: Vec<u32> = out.iter().map(|v| unsafe { v.assume_init() }.to_bits()).collect();
                    assert_eq!(got, expected, "length {len} from {first}");
                }
            }
        }
    }
}
