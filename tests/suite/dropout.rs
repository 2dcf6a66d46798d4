//! Dropout's mask: the definition in `ops::dropout`'s docs (SplitMix64 outputs by
//! element index), on any thread count and SIMD setting, forward and backward; the
//! kept fraction; p = 0 and p = 1; a layer's successive and resumed passes.

use ferrocnn::nn::{Dropout, Mode, Module};
use ferrocnn::{Tape, Tensor};
use ndarray::{ArrayD, IxDyn};

use crate::common::{with_simd, BOTH_SIMD};

const GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;

fn mix64(z: u64) -> u64 {
    let z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    let z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Whether element `i` survives, as the module docs define it: SplitMix64 started
/// at `mix64(seed)`, its output `i/2` split into the words of elements `i` (low
/// half, `i` even) and `i+1`, kept when the word is at least `p·2³²`.
fn kept(seed: u64, p: f32, i: usize) -> bool {
    let output = mix64(mix64(seed).wrapping_add((i as u64 / 2 + 1).wrapping_mul(GAMMA)));
    let word = (output >> (32 * (i % 2))) as u32;
    p < 1.0 && f64::from(word) >= (f64::from(p) * 4_294_967_296.0).floor()
}

/// `values` as dropout with `(p, seed)` must leave them, bit for bit.
fn expected(values: &[f32], p: f32, seed: u64) -> Vec<u32> {
    let scale = 1.0 / (1.0 - p);
    (0..values.len())
        .map(|i| (values[i] * if kept(seed, p, i) { scale } else { 0.0 }).to_bits())
        .collect()
}

fn bits(a: &ArrayD<f32>) -> Vec<u32> {
    a.iter().map(|v| v.to_bits()).collect()
}

fn ramp(len: usize, step: f32) -> Vec<f32> {
    (0..len).map(|i| (i % 1000) as f32 * step - 3.0).collect()
}

#[test]
fn the_mask_follows_its_definition_on_every_thread_count() {
    let p = 0.25;
    // Lengths around a vector block (64), a chunk (16384) and several chunks.
    for len in [1, 2, 3, 63, 64, 65, 16_383, 16_384, 16_385, 3 * 16_384 + 7] {
        let (x, g) = (ramp(len, 0.01), ramp(len, -0.003));
        for seed in [0, 42, u64::MAX] {
            let (want_y, want_dx) = (expected(&x, p, seed), expected(&g, p, seed));
            for threads in 1..=3 {
                let pool = rayon::ThreadPoolBuilder::new()
                    .num_threads(threads)
                    .build()
                    .unwrap();
                for simd in BOTH_SIMD {
                    let (y, dx) = with_simd(simd, || {
                        pool.install(|| {
                            let tape = Tape::new();
                            let input = tape
                                .input_with_grad(ArrayD::from_shape_vec(IxDyn(&[len]), x.clone()).unwrap());
                            let y = input.dropout(p, seed);
                            let g = ArrayD::from_shape_vec(IxDyn(&[len]), g.clone()).unwrap();
                            let dx = y.backward_with(g).wrt(&input).unwrap().clone();
                            (y.value().clone(), dx)
                        })
                    });
                    let case = format!("length {len}, seed {seed}, {threads} threads, {simd:?}");
                    assert_eq!(bits(&y), want_y, "values, {case}");
                    assert_eq!(bits(&dx), want_dx, "gradient, {case}");
                }
            }
        }
    }
}

/// The first 32 keep flags of two masks (bit `i` is element `i`), computed
/// separately (in Python) from the definition: a change of the definition on both
/// sides above would still be caught here.
#[test]
fn pinned_masks() {
    for (seed, p, flags) in [(42, 0.5, 0x86F2_5642u32), (7, 0.25, 0xFF67_EFAF)] {
        let y = Tensor::new(ArrayD::from_elem(IxDyn(&[32]), 1.0f32)).dropout(p, seed);
        let got = y
            .value()
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, &v)| acc | (u32::from(v != 0.0) << i));
        assert_eq!(got, flags, "seed {seed}, p {p}");
    }
}

#[test]
fn the_kept_fraction_is_one_minus_p() {
    let n = 1 << 20;
    let x = Tensor::new(ArrayD::from_elem(IxDyn(&[n]), 1.0f32));
    for (p, seed) in [(0.1, 1), (0.25, 2), (0.5, 3), (0.9, 4)] {
        let y = x.dropout(p, seed);
        let scale = 1.0 / (1.0 - p);
        assert!(
            y.value().iter().all(|&v| v == 0.0 || v == scale),
            "p {p}: survivors scaled"
        );
        let kept = y.value().iter().filter(|&&v| v != 0.0).count() as f64;
        let (mean, sd) = (
            n as f64 * f64::from(1.0 - p),
            (n as f64 * f64::from(p * (1.0 - p))).sqrt(),
        );
        assert!(
            (kept - mean).abs() < 5.0 * sd,
            "p {p}: kept {kept} of {n}, expected {mean:.0} ± {sd:.0}"
        );
    }
}

#[test]
fn p_zero_keeps_everything_and_p_one_drops_everything() {
    let x = ArrayD::from_shape_vec(IxDyn(&[40_000]), ramp(40_000, 0.02)).unwrap();
    let g = ArrayD::from_shape_vec(IxDyn(&[40_000]), ramp(40_000, 0.5)).unwrap();
    for p in [0.0, 1.0] {
        let tape = Tape::new();
        let input = tape.input_with_grad(x.clone());
        let y = input.dropout(p, 9);
        let dx = y.backward_with(g.clone()).wrt(&input).unwrap().clone();
        if p == 0.0 {
            assert_eq!((y.value(), &dx), (&x, &g), "p = 0 is the identity");
        } else {
            assert!(
                y.value().iter().chain(&dx).all(|&v| v == 0.0),
                "p = 1 zeroes values and gradient"
            );
        }
    }
}

/// Successive passes of a layer (seeds `seed ^ calls·γ`) draw unrelated masks,
/// also compared one and two elements apart (were the generator started at the
/// seed itself, a layer with seed 0 would draw each pass's mask as the previous
/// one shifted by two elements); a layer resumed at its counter draws what an
/// uninterrupted one draws.
#[test]
fn a_layers_passes_draw_unrelated_masks_and_resume_where_they_stopped() {
    let n = 1 << 16;
    let x = Tensor::new(ArrayD::from_elem(IxDyn(&[n]), 1.0f32));
    let mut layer = Dropout {
        p: 0.5,
        seed: 0,
        calls: 0,
    };
    let masks: Vec<Vec<bool>> = (0..4)
        .map(|_| {
            layer
                .forward(&x, Mode::Train)
                .value()
                .iter()
                .map(|&v| v != 0.0)
                .collect()
        })
        .collect();
    // Both kept: a quarter of the pairs, ± 5 standard deviations.
    let sd = (n as f64 * 0.25 * 0.75).sqrt();
    for a in 0..4 {
        for b in (0..4).filter(|&b| b != a) {
            for shift in 0..3 {
                let both = (0..n - shift)
                    .filter(|&i| masks[a][i + shift] && masks[b][i])
                    .count() as f64;
                assert!(
                    (both - n as f64 * 0.25).abs() < 5.0 * sd,
                    "passes {a} and {b}, {shift} apart: {both} of {n} kept in both"
                );
            }
        }
    }
    let mut resumed = Dropout {
        p: 0.5,
        seed: 0,
        calls: 3,
    };
    let last: Vec<bool> = resumed
        .forward(&x, Mode::Train)
        .value()
        .iter()
        .map(|&v| v != 0.0)
        .collect();
    assert_eq!(
        last, masks[3],
        "a layer resumed after three passes draws the fourth mask"
    );
}
