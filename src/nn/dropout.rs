//! `Dropout`: inverted dropout in training, the identity in evaluation.

use rand::rngs::StdRng;
use rand::Rng;
use serde::{Deserialize, Serialize};

use super::{Mode, Module};
use crate::tensor::Tensor;

/// Zeroes each element with probability `p` in training and scales the rest by
/// `1/(1−p)`; the identity in evaluation. Any shape.
///
/// Each training pass draws its mask from `(seed, calls)`, so runs are reproducible
/// and a resumed run (which restores `calls`) draws the masks an uninterrupted run
/// would have drawn.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Dropout {
    /// Drop probability.
    pub p: f32,
    /// Seed of this layer's masks.
    pub seed: u64,
    /// Training passes so far.
    pub calls: u64,
}

impl Dropout {
    /// Dropout with probability `p`, its seed drawn from `rng`.
    pub fn new(p: f32, rng: &mut StdRng) -> Self {
        assert!((0.0..=1.0).contains(&p), "Dropout: probability {p} not in [0, 1]");
        Dropout {
            p,
            seed: rng.random(),
            calls: 0,
        }
    }
}

impl Module for Dropout {
    fn forward(&mut self, x: &Tensor, mode: Mode) -> Tensor {
        match mode {
            Mode::Eval => x.clone(),
            Mode::Train => {
                // Mix the counter into the seed (splitmix64 constant) so consecutive
                // passes get unrelated masks.
                let seed = self.seed ^ self.calls.wrapping_mul(0x9E37_79B9_7F4A_7C15);
                self.calls += 1;
                x.dropout(self.p, seed)
            }
        }
    }
}
