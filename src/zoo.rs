//! Ready-made networks: the reference nets R1, R2 and R3 of the design notes and the
//! default MNIST net, each sized from the data (image shape and class count), so any
//! MNIST-style dataset trains without code changes. They are written with the
//! public API alone, as you would write your own.
//!
//! R1, R2 and R3 use PyTorch's default initialization (`Init::PyTorchDefault`), as
//! the reference runs they are compared with do; the default net uses He (Kaiming)
//! initialization, which suits its batch-normalized ReLU blocks. R1 and R2 write
//! their `Conv2d → ReLU → MaxPool2d` runs as [`Conv2dBlock`]s, which compute the
//! same as the separate layers in one fused op.

use rand::rngs::StdRng;
use rand::SeedableRng;

use crate::nn::{
    BatchNorm2d, Conv2d, Conv2dBlock, Dropout, Flatten, GlobalAvgPool, Init, Linear, MaxPool2d, ReLU,
    Residual, Sequential,
};
use crate::ops::Padding;

/// Appends `Flatten` and a `Linear` sized to the flattened features of `net`, or says
/// why the images are too small for `net`.
fn add_head(
    mut net: Sequential,
    input: (usize, usize, usize),
    hidden: &[usize],
    dropout: f32,
    init: Init,
    classes: usize,
    rng: &mut StdRng,
) -> Result<Sequential, String> {
    let (c, h, w) = input;
    net = net.add(Flatten);
    let mut features: usize = net
        .try_output_shapes(&[c, h, w])?
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
    Ok(net.add(Linear::with_init(features, classes, init, rng)))
}

/// Images with no channel or no pixel, or no class, fit no net.
fn check_sizes(input: (usize, usize, usize), classes: usize) -> Result<(), String> {
    if input.0 == 0 || input.1 == 0 || input.2 == 0 || classes == 0 {
        return Err(format!(
            "images of {}×{}×{} and {classes} classes: every size must be at least 1",
            input.0, input.1, input.2
        ));
    }
    Ok(())
}

/// R1, the classic Keras MNIST convnet: conv 32 k3 · ReLU · pool 2 · conv 64 k3 ·
/// ReLU · pool 2 · flatten · dropout 0.5 · linear. Panics if the images are too
/// small for it (at least 10×10); [`try_r1`] returns that as an error.
pub fn r1(input: (usize, usize, usize), classes: usize, seed: u64) -> Sequential {
    try_r1(input, classes, seed).unwrap_or_else(|e| panic!("zoo::r1: {e}"))
}

/// [`r1`], or why it cannot take these images.
pub fn try_r1(input: (usize, usize, usize), classes: usize, seed: u64) -> Result<Sequential, String> {
    check_sizes(input, classes)?;
    let rng = &mut StdRng::seed_from_u64(seed);
    let conv = |i, o, rng: &mut StdRng| {
        Conv2dBlock::new(Conv2d::with_init(i, o, (3, 3), Init::PyTorchDefault, rng))
            .with_relu()
            .with_max_pool(MaxPool2d::new((2, 2)))
    };
    let net = Sequential::new()
        .add(conv(input.0, 32, rng))
        .add(conv(32, 64, rng));
    add_head(net, input, &[], 0.5, Init::PyTorchDefault, classes, rng)
}

/// R2, the net of PyTorch's examples/mnist: conv 32 k3 · ReLU · conv 64 k3 · ReLU ·
/// pool 2 · dropout 0.25 · flatten · linear 128 · ReLU · dropout 0.5 · linear.
/// Panics if the images are too small for it (at least 6×6); [`try_r2`] returns
/// that as an error.
pub fn r2(input: (usize, usize, usize), classes: usize, seed: u64) -> Sequential {
    try_r2(input, classes, seed).unwrap_or_else(|e| panic!("zoo::r2: {e}"))
}

/// [`r2`], or why it cannot take these images.
pub fn try_r2(input: (usize, usize, usize), classes: usize, seed: u64) -> Result<Sequential, String> {
    check_sizes(input, classes)?;
    let rng = &mut StdRng::seed_from_u64(seed);
    let net = Sequential::new()
        .add(Conv2dBlock::new(Conv2d::with_init(input.0, 32, (3, 3), Init::PyTorchDefault, rng)).with_relu())
        .add(
            Conv2dBlock::new(Conv2d::with_init(32, 64, (3, 3), Init::PyTorchDefault, rng))
                .with_relu()
                .with_max_pool(MaxPool2d::new((2, 2))),
        )
        .add(Dropout::new(0.25, rng))
        .add(Flatten);
    let features: usize = net
        .try_output_shapes(&[input.0, input.1, input.2])?
        .last()
        .map_or(0, |s| s.iter().product());
    Ok(net
        .add(Linear::with_init(features, 128, Init::PyTorchDefault, rng))
        .add(ReLU)
        .add(Dropout::new(0.5, rng))
        .add(Linear::with_init(128, classes, Init::PyTorchDefault, rng)))
}

/// The default net of `cargo run --example mnist`: two blocks of
/// conv 3×3 (same) · batch norm · ReLU · max-pool 2, then dropout and a 128-unit
/// hidden layer. Batch norm lets it train at a high learning rate, which is what
/// reaches 99.3%+ in a few epochs on a CPU. Panics if the images are too small for
/// it (at least 4×4); [`try_mnist_default`] returns that as an error.
pub fn mnist_default(input: (usize, usize, usize), classes: usize, seed: u64) -> Sequential {
    try_mnist_default(input, classes, seed).unwrap_or_else(|e| panic!("zoo::mnist_default: {e}"))
}

/// [`mnist_default`], or why it cannot take these images.
pub fn try_mnist_default(
    input: (usize, usize, usize),
    classes: usize,
    seed: u64,
) -> Result<Sequential, String> {
    check_sizes(input, classes)?;
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

/// A 3×3 convolution without bias (batch norm follows), padding 1.
fn conv3x3(cin: usize, cout: usize, stride: usize, rng: &mut StdRng) -> Conv2d {
    Conv2d::with_init(cin, cout, (3, 3), Init::PyTorchDefault, rng)
        .with_stride((stride, stride))
        .with_padding(Padding::Explicit(1, 1))
        .without_bias()
}

/// A ResNet basic block: conv 3×3 (stride `s`) · BN · ReLU · conv 3×3 · BN, plus the
/// shortcut — the identity, or conv 1×1 (stride `s`) · BN when the shape changes —
/// then ReLU.
pub fn basic_block(cin: usize, cout: usize, stride: usize, rng: &mut StdRng) -> Residual {
    let main = Sequential::new()
        .add(conv3x3(cin, cout, stride, rng))
        .add(BatchNorm2d::new(cout))
        .add(ReLU)
        .add(conv3x3(cout, cout, 1, rng))
        .add(BatchNorm2d::new(cout));
    let block = Residual::new(main).with_relu();
    if stride == 1 && cin == cout {
        return block;
    }
    let projection = Sequential::new()
        .add(
            Conv2d::with_init(cin, cout, (1, 1), Init::PyTorchDefault, rng)
                .with_stride((stride, stride))
                .without_bias(),
        )
        .add(BatchNorm2d::new(cout));
    block.with_projection(projection)
}

/// R3, a small ResNet: stem conv 3×3 (16, no bias) · BN · ReLU; six basic blocks
/// (16→16, 16→16, 16→32 stride 2, 32→32, 32→64 stride 2, 64→64), named `blocks.0`
/// to `blocks.5`; global average pooling · linear. Planes 28×28 → 14×14 → 7×7. Any
/// image size fits (the convs are padded); panics only for a size or class count of
/// 0, which [`try_r3`] returns as an error.
pub fn r3(input: (usize, usize, usize), classes: usize, seed: u64) -> Sequential {
    try_r3(input, classes, seed).unwrap_or_else(|e| panic!("zoo::r3: {e}"))
}

/// [`r3`], or why it cannot take these images.
pub fn try_r3(input: (usize, usize, usize), classes: usize, seed: u64) -> Result<Sequential, String> {
    check_sizes(input, classes)?;
    let rng = &mut StdRng::seed_from_u64(seed);
    let mut blocks = Sequential::new();
    for (i, (cin, cout, stride)) in [
        (16, 16, 1),
        (16, 16, 1),
        (16, 32, 2),
        (32, 32, 1),
        (32, 64, 2),
        (64, 64, 1),
    ]
    .into_iter()
    .enumerate()
    {
        blocks.push_named(&i.to_string(), basic_block(cin, cout, stride, rng));
    }
    let mut net = Sequential::new()
        .add(conv3x3(input.0, 16, 1, rng))
        .add(BatchNorm2d::new(16))
        .add(ReLU);
    net.push_named("blocks", blocks);
    Ok(net
        .add(GlobalAvgPool)
        .add(Linear::with_init(64, classes, Init::PyTorchDefault, rng)))
}
