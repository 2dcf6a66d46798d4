//! Weight initializers, seeded through the caller's RNG so the same seed gives the
//! same network bit for bit.
//!
//! `fan_in` is `in_channels · kh · kw` for a conv kernel and `in` for a linear weight,
//! `fan_out` likewise with the output side, as in PyTorch.

use ndarray::{ArrayD, IxDyn};
use ndarray_rand::rand_distr::{Normal, Uniform};
use ndarray_rand::RandomExt;
use rand::rngs::StdRng;
use serde::{Deserialize, Serialize};

/// How to fill a weight tensor.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub enum Init {
    /// He/Kaiming uniform for ReLU: U(±√(6/fan_in)). The default for conv and linear.
    KaimingUniform,
    /// He/Kaiming normal for ReLU: N(0, 2/fan_in).
    KaimingNormal,
    /// PyTorch's default for `nn.Conv2d`/`nn.Linear` weights (kaiming_uniform with
    /// a = √5): U(±1/√fan_in). Also PyTorch's rule for biases.
    PyTorchDefault,
    /// Xavier/Glorot uniform: U(±√(6/(fan_in+fan_out))). Keras's default.
    XavierUniform,
    /// Xavier/Glorot normal: N(0, 2/(fan_in+fan_out)).
    XavierNormal,
    /// All zeros.
    Zeros,
    /// Every element equal to the value.
    Constant(f32),
}

impl Init {
    /// `Init::KaimingUniform` (a function, for serde defaults).
    pub(crate) fn kaiming_uniform() -> Init {
        Init::KaimingUniform
    }

    /// A tensor of `shape` filled by this rule.
    pub fn tensor(self, shape: &[usize], fan_in: usize, fan_out: usize, rng: &mut StdRng) -> ArrayD<f32> {
        let (fi, fo) = (fan_in.max(1) as f32, fan_out.max(1) as f32);
        let shape = IxDyn(shape);
        let uniform = |bound: f32, rng: &mut StdRng| {
            let dist = Uniform::new(-bound, bound).expect("bound is positive and finite");
            ArrayD::random_using(shape.clone(), dist, rng)
        };
        let normal = |std: f32, rng: &mut StdRng| {
            let dist = Normal::new(0.0, std).expect("std is positive and finite");
            ArrayD::random_using(shape.clone(), dist, rng)
        };
        match self {
            Init::KaimingUniform => uniform((6.0 / fi).sqrt(), rng),
            Init::KaimingNormal => normal((2.0 / fi).sqrt(), rng),
            Init::PyTorchDefault => uniform(1.0 / fi.sqrt(), rng),
            Init::XavierUniform => uniform((6.0 / (fi + fo)).sqrt(), rng),
            Init::XavierNormal => normal((2.0 / (fi + fo)).sqrt(), rng),
            Init::Zeros => ArrayD::zeros(shape),
            Init::Constant(v) => ArrayD::from_elem(shape, v),
        }
    }
}
