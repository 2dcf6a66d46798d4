//! Inverted dropout: in training, each element is zeroed with probability `p` and
//! the survivors are scaled by `1/(1−p)`, so evaluation needs no rescaling and is the
//! identity (the `Dropout` layer simply does not call this op in evaluation).
//!
//! The mask comes from `StdRng`s seeded by the caller, so a run is reproducible and a
//! resumed run draws the same masks as an uninterrupted one. Each chunk of 16K
//! elements draws from its own generator, seeded from `(seed, chunk)`, so chunks fill
//! in parallel and the mask does not depend on the number of threads; random words
//! are drawn in bulk and compared with an integer threshold.

use ndarray::ArrayD;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rayon::prelude::*;

use super::elementwise::map2;
use crate::tensor::Tensor;

const CHUNK: usize = 1 << 14;

/// The scaled keep-mask: `1/(1−p)` where kept, 0 where dropped.
fn mask(len: usize, p: f32, seed: u64, shape: ndarray::IxDyn) -> ArrayD<f32> {
    let scale = if p < 1.0 { 1.0 / (1.0 - p) } else { 0.0 };
    // Keep when a uniform u32 is at or above p·2³²; p = 1 drops everything.
    let threshold = (f64::from(p) * 4_294_967_296.0).min(u32::MAX as f64) as u32;
    let mut out = vec![0.0f32; len];
    out.par_chunks_mut(CHUNK).enumerate().for_each(|(chunk, out)| {
        let mut rng = StdRng::seed_from_u64(seed ^ (chunk as u64).wrapping_mul(0xD1B5_4A32_D192_ED03));
        let mut words = vec![0u32; out.len()];
        rng.fill(&mut words[..]);
        for (o, &w) in out.iter_mut().zip(&words) {
            *o = if p < 1.0 && w >= threshold { scale } else { 0.0 };
        }
    });
    ArrayD::from_shape_vec(shape, out).expect("length matches shape")
}

impl Tensor {
    /// Applies inverted dropout with drop probability `p` and a mask drawn from `seed`.
    pub fn dropout(&self, p: f32, seed: u64) -> Tensor {
        assert!((0.0..=1.0).contains(&p), "dropout: probability {p} not in [0, 1]");
        if p == 0.0 {
            return self.clone();
        }
        let mask = mask(self.len(), p, seed, self.value().raw_dim());
        let value = map2(self.value(), &mask, |x, m| x * m);
        Tensor::record("dropout", &[self], value, move |g, _| {
            vec![Some(map2(g, &mask, |g, m| g * m))]
        })
    }
}
