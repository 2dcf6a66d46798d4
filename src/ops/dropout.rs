//! Inverted dropout: in training, each element is zeroed with probability `p` and
//! the survivors are scaled by `1/(1−p)`, so evaluation needs no rescaling and is the
//! identity (the `Dropout` layer simply does not call this op in evaluation).
//!
//! The mask comes from a `StdRng` seeded by the caller, so a run is reproducible
//! and a resumed run draws the same masks as an uninterrupted one.

use ndarray::ArrayD;

use super::elementwise::map2;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::tensor::Tensor;

impl Tensor {
    /// Applies inverted dropout with drop probability `p` and a mask drawn from `seed`.
    pub fn dropout(&self, p: f32, seed: u64) -> Tensor {
        assert!((0.0..=1.0).contains(&p), "dropout: probability {p} not in [0, 1]");
        if p == 0.0 {
            return self.clone();
        }
        let mut rng = StdRng::seed_from_u64(seed);
        let scale = if p < 1.0 { 1.0 / (1.0 - p) } else { 0.0 };
        let mask: ArrayD<f32> = self
            .value()
            .mapv(|_| if rng.random::<f32>() < p { 0.0 } else { scale });
        let value = map2(self.value(), &mask, |x, m| x * m);
        Tensor::record("dropout", &[self], value, move |g, _| {
            vec![Some(map2(g, &mask, |g, m| g * m))]
        })
    }
}
