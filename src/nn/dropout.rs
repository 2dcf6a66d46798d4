//! `Dropout`: inverted dropout in training, the identity in evaluation.

use rand::rngs::StdRng;
use rand::Rng;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::{ConfigError, FromConfig, Mode, Module, ModuleConfig, Registry};
use crate::observe::Probe;
use crate::tensor::Tensor;

/// Zeroes each element with probability `p` in training and scales the rest by
/// `1/(1−p)`; the identity in evaluation. Any shape.
///
/// Each training pass draws its mask from `(seed, calls)`, so runs are reproducible
/// and a resumed run (which restores `calls`) draws the masks an uninterrupted run
/// would have drawn.
#[derive(Clone, Debug, PartialEq)]
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

/// The settings of a `Dropout` (its seed and counter are extra state).
#[derive(Serialize, Deserialize)]
struct DropoutConfig {
    p: f32,
}

/// A dropout's mask stream: what a resumed run needs to draw the same masks.
#[derive(Serialize, Deserialize)]
struct DropoutState {
    seed: u64,
    calls: u64,
}

impl Module for Dropout {
    fn forward(&mut self, x: &Tensor, mode: Mode) -> Tensor {
        let probe = Probe::start(x);
        let y = self.drop(x, mode);
        probe.finish(self, &y);
        y
    }

    fn kind(&self) -> &str {
        Self::KIND
    }

    fn config(&self) -> Value {
        json!({ "p": self.p })
    }

    fn extra_state(&self) -> Option<Value> {
        Some(json!({ "seed": self.seed, "calls": self.calls }))
    }

    fn set_extra_state(&mut self, state: Value) -> Result<(), String> {
        let s: DropoutState = serde_json::from_value(state).map_err(|e| format!("dropout state: {e}"))?;
        (self.seed, self.calls) = (s.seed, s.calls);
        Ok(())
    }

    fn reset_own_parameters(&mut self, rng: &mut StdRng) {
        (self.seed, self.calls) = (rng.random(), 0);
    }

    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>, String> {
        Ok(input.to_vec())
    }
}

impl FromConfig for Dropout {
    const KIND: &'static str = "Dropout";

    fn from_config(config: &ModuleConfig, _: &Registry) -> Result<Self, ConfigError> {
        let c: DropoutConfig = config.settings()?;
        if !(0.0..=1.0).contains(&c.p) {
            return Err(ConfigError::invalid(Self::KIND, format!("probability {} not in [0, 1]", c.p)));
        }
        Ok(Dropout {
            p: c.p,
            seed: 0,
            calls: 0,
        })
    }
}

impl Dropout {
    /// The dropout itself (`forward` without the probe).
    fn drop(&mut self, x: &Tensor, mode: Mode) -> Tensor {
        match mode {
            Mode::Eval => x.clone(),
            Mode::Train => {
                // A seed per pass (the op hashes it before use, so these
                // neighbouring seeds start its generator at unrelated points).
                let seed = self.seed ^ self.calls.wrapping_mul(0x9E37_79B9_7F4A_7C15);
                self.calls += 1;
                x.dropout(self.p, seed)
            }
        }
    }
}
