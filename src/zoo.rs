//! Ready-made networks: the reference nets R1 and R2 of the design notes and the
//! default MNIST net, each sized from the data (image shape and class count), so any
//! MNIST-style dataset trains without code changes.
//!
//! R1 and R2 use PyTorch's default initialization (`Init::PyTorchDefault`), as the
//! reference runs they are compared with do; the default net uses He (Kaiming)
//! initialization, which suits its batch-normalized ReLU blocks.

use rand::rngs::StdRng;
use rand::SeedableRng;

use crate::nn::{BatchNorm2d, Conv2d, Dropout, Flatten, Init, Linear, MaxPool2d, ReLU, Sequential};
use crate::ops::Padding;

/// Appends `Flatten` and a `Linear` sized to the flattened features of `net`.
fn add_head(
    mut net: Sequential,
    input: (usize, usize, usize),
    hidden: &[usize],
    dropout: f32,
    init: Init,
    classes: usize,
    rng: &mut StdRng,
) -> Sequential {
    let (c, h, w) = input;
    net = net.add(Flatten);
    let mut features: usize = net
        .output_shapes(&[c, h, w])
        .last()
        .map_or(c * h * w, |s| s.iter().product());
    for &units in hidden {
        net = net.add(Linear::with_init(features, units, init, rng)).add(ReLU);
        if dropout > 0.0 {
            net = net.add(Dropout::new(dropout, rng));
        }
        features = units;
    }
    if hidden.is_empty() && dropout > 0.0 {
        net = net.add(Dropout::new(dropout, rng));
    }
    net.add(Linear::with_init(features, classes, init, rng))
}

/// R1, the classic Keras MNIST convnet: conv 32 k3 · ReLU · pool 2 · conv 64 k3 ·
/// ReLU · pool 2 · flatten · dropout 0.5 · linear.
pub fn r1(input: (usize, usize, usize), classes: usize, seed: u64) -> Sequential {
    let rng = &mut StdRng::seed_from_u64(seed);
    let net = Sequential::new()
        .add(Conv2d::with_init(input.0, 32, (3, 3), Init::PyTorchDefault, rng))
        .add(ReLU)
        .add(MaxPool2d::new((2, 2)))
        .add(Conv2d::with_init(32, 64, (3, 3), Init::PyTorchDefault, rng))
        .add(ReLU)
        .add(MaxPool2d::new((2, 2)));
    add_head(net, input, &[], 0.5, Init::PyTorchDefault, classes, rng)
}

/// R2, the net of PyTorch's examples/mnist: conv 32 k3 · ReLU · conv 64 k3 · ReLU ·
/// pool 2 · dropout 0.25 · flatten · linear 128 · ReLU · dropout 0.5 · linear.
pub fn r2(input: (usize, usize, usize), classes: usize, seed: u64) -> Sequential {
    let rng = &mut StdRng::seed_from_u64(seed);
    let net = Sequential::new()
        .add(Conv2d::with_init(input.0, 32, (3, 3), Init::PyTorchDefault, rng))
        .add(ReLU)
        .add(Conv2d::with_init(32, 64, (3, 3), Init::PyTorchDefault, rng))
        .add(ReLU)
        .add(MaxPool2d::new((2, 2)))
        .add(Dropout::new(0.25, rng))
        .add(Flatten);
    let features: usize = net
        .output_shapes(&[input.0, input.1, input.2])
        .last()
        .map_or(0, |s| s.iter().product());
    net.add(Linear::with_init(features, 128, Init::PyTorchDefault, rng))
        .add(ReLU)
        .add(Dropout::new(0.5, rng))
        .add(Linear::with_init(128, classes, Init::PyTorchDefault, rng))
}

/// The default net of `cargo run --example mnist`: two blocks of
/// conv 3×3 (same) · batch norm · ReLU · max-pool 2, then dropout and a 128-unit
/// hidden layer. Batch norm lets it train at a high learning rate, which is what
/// reaches 99.3%+ in a few epochs on a CPU.
pub fn mnist_default(input: (usize, usize, usize), classes: usize, seed: u64) -> Sequential {
    let rng = &mut StdRng::seed_from_u64(seed);
    let net = Sequential::new()
        .add(
            Conv2d::new(input.0, 32, (3, 3), rng)
                .with_padding(Padding::Same)
                .without_bias(),
        )
        .add(BatchNorm2d::new(32))
        .add(ReLU)
        .add(MaxPool2d::new((2, 2)))
        .add(
            Conv2d::new(32, 64, (3, 3), rng)
                .with_padding(Padding::Same)
                .without_bias(),
        )
        .add(BatchNorm2d::new(64))
        .add(ReLU)
        .add(MaxPool2d::new((2, 2)))
        .add(Dropout::new(0.1, rng));
    add_head(net, input, &[128], 0.25, Init::KaimingUniform, classes, rng)
}
