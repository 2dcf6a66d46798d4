//! Inverted dropout: in training, each element is zeroed with probability `p` and
//! the survivors are scaled by `1/(1−p)`, so evaluation needs no rescaling and is the
//! identity (the `Dropout` layer simply does not call this op in evaluation).
//!
//! The mask comes from `StdRng`s seeded by the caller, so a run is reproducible and a
//! resumed run draws the same masks as an uninterrupted one. Each chunk of 16K
//! elements draws from its own generator, seeded from `(seed, chunk)`, so chunks fill
//! in parallel and the mask does not depend on the number of threads; random words
//! are drawn in bulk and compared with an integer threshold.

use std::cell::RefCell;

use ndarray::{ArrayD, IxDyn};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::elementwise::keep_if;
use super::fresh::fresh;
use super::parallel::SharedMut;
use crate::tensor::Tensor;

const CHUNK: usize = 1 << 14;

thread_local! {
    /// Each thread's buffer of random words for one chunk, kept between calls.
    static WORDS: RefCell<Vec<u32>> = const { RefCell::new(Vec::new()) };
}

/// `x` with the mask applied, and the mask (1 where kept), in one pass: each chunk
/// draws its words, then writes `x·scale` or `x·0` and the keep flag. The output
/// is written once, never zeroed first (`fresh`).
fn apply(x: &[f32], p: f32, seed: u64) -> (Vec<f32>, Vec<u8>) {
    let scale = if p < 1.0 { 1.0 / (1.0 - p) } else { 0.0 };
    // Keep when a uniform u32 is at or above p·2³²; p = 1 drops everything.
    let threshold = (f64::from(p) * 4_294_967_296.0).min(u32::MAX as f64) as u32;
    let mut keep = vec![0u8; x.len()];
    // The mask's chunk is reached by the same index as the output's.
    let keep_at = SharedMut::new(keep.as_mut_ptr());
    let out = fresh(x.len(), CHUNK, true, |at, out| {
        let chunk = at / CHUNK;
        let x = &x[at..at + out.len()];
        // SAFETY: `keep` is as long as the output, so this chunk's elements lie
        // inside it, and each chunk is handed out once: no other task reaches them.
        let keep = unsafe { keep_at.slice(at, out.len()) };
        let mut rng = StdRng::seed_from_u64(seed ^ (chunk as u64).wrapping_mul(0xD1B5_4A32_D192_ED03));
        WORDS.with(|words| {
            let mut words = words.borrow_mut();
            words.resize(CHUNK, 0);
            let words = &mut words[..x.len()];
            rng.fill(words);
            out.extend(keep.iter_mut().zip(x).zip(words.iter()).map(|((k, &x), &w)| {
                let kept = (p < 1.0) & (w >= threshold);
                *k = kept as u8;
                x * keep_if(kept, scale)
            }));
        });
    });
    (out, keep)
}

impl Tensor {
    /// Applies inverted dropout with drop probability `p` and a mask drawn from `seed`.
    pub fn dropout(&self, p: f32, seed: u64) -> Tensor {
        assert!((0.0..=1.0).contains(&p), "dropout: probability {p} not in [0, 1]");
        if p == 0.0 {
            return self.clone();
        }
        let scale = if p < 1.0 { 1.0 / (1.0 - p) } else { 0.0 };
        let x = self.value().as_standard_layout();
        let (out, keep) = apply(x.as_slice().expect("standard layout"), p, seed);
        let shape = IxDyn(self.shape());
        let value = ArrayD::from_shape_vec(shape.clone(), out).expect("length matches shape");
        Tensor::record("dropout", &[self], value, move |g, _| {
            let g = g.as_standard_layout();
            let g = g.as_slice().expect("standard layout");
            let dx = fresh(g.len(), CHUNK, true, |at, dx| {
                let at = at..at + dx.len();
                dx.extend(
                    g[at.clone()]
                        .iter()
                        .zip(&keep[at])
                        .map(|(&g, &k)| g * keep_if(k != 0, scale)),
                );
            });
            vec![Some(
                ArrayD::from_shape_vec(shape.clone(), dx).expect("length matches shape"),
            )]
        })
    }
}
