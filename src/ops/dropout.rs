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
use super::parallel::{for_each_piece_mut, SharedMut};
use crate::tensor::Tensor;

const CHUNK: usize = 1 << 14;

thread_local! {
    /// Each thread's buffer of random words for one chunk, kept between calls.
    static WORDS: RefCell<Vec<u32>> = const { RefCell::new(Vec::new()) };
}

/// `x` with the mask applied, and the mask (1 where kept), in one pass: each chunk
/// draws its words, then writes `x·scale` or `x·0` and the keep flag.
fn apply(x: &[f32], p: f32, seed: u64) -> (Vec<f32>, Vec<u8>) {
    let scale = if p < 1.0 { 1.0 / (1.0 - p) } else { 0.0 };
    // Keep when a uniform u32 is at or above p·2³²; p = 1 drops everything.
    let threshold = (f64::from(p) * 4_294_967_296.0).min(u32::MAX as f64) as u32;
    let mut out = vec![0.0f32; x.len()];
    let mut keep = vec![0u8; x.len()];
    // Over `for_each_piece_mut`, whose rayon plumbing is compiled once for the
    // library, rather than a pipeline of its own; the mask's piece is reached by
    // the same index.
    let keep_at = SharedMut::new(keep.as_mut_ptr());
    for_each_piece_mut(&mut out, CHUNK, 1, &|chunk, out| {
        let at = chunk * CHUNK;
        let x = &x[at..at + out.len()];
        // SAFETY: `keep` is as long as `out`, so this piece's elements lie inside it,
        // and each piece (`chunk`) is handed out once: no other task reaches them.
        let keep = unsafe { keep_at.slice(at, out.len()) };
        let mut rng = StdRng::seed_from_u64(seed ^ (chunk as u64).wrapping_mul(0xD1B5_4A32_D192_ED03));
        WORDS.with(|words| {
            let mut words = words.borrow_mut();
            words.resize(CHUNK, 0);
            let words = &mut words[..x.len()];
            rng.fill(words);
            for (((o, k), &x), &w) in out.iter_mut().zip(keep.iter_mut()).zip(x).zip(words.iter()) {
                let kept = (p < 1.0) & (w >= threshold);
                *o = x * keep_if(kept, scale);
                *k = kept as u8;
            }
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
            let mut dx = vec![0.0f32; g.len()];
            for_each_piece_mut(&mut dx, CHUNK, 1, &|i, dx| {
                let at = i * CHUNK..i * CHUNK + dx.len();
                for ((d, &g), &k) in dx.iter_mut().zip(&g[at.clone()]).zip(&keep[at]) {
                    *d = g * keep_if(k != 0, scale);
                }
            });
            vec![Some(
                ArrayD::from_shape_vec(shape.clone(), dx).expect("length matches shape"),
            )]
        })
    }
}
