//! `nn::footprint`: what one image costs a forward pass, from shapes alone — known
//! values for each kind of layer it looks inside, and a padding of 100 000 counted
//! (not allocated).

use ferrocnn::nn::{
    footprint, Conv2d, Conv2dBlock, Flatten, GlobalAvgPool, Linear, MaxPool2d, ReLU, Residual, Sequential,
};
use ferrocnn::Padding;
use rand::SeedableRng;

fn rng() -> rand::rngs::StdRng {
    rand::rngs::StdRng::seed_from_u64(0)
}

#[test]
fn each_layer_counts_its_padded_input_and_its_output() {
    let rng = &mut rng();
    let net = Sequential::new()
        .add(Conv2d::new(1, 2, (3, 3), rng).with_padding(Padding::Explicit(1, 1))) // 1·10·10 + 2·8·8
        .add(ReLU) // 2·8·8
        .add(MaxPool2d::new((2, 2))) // 2·4·4
        .add(Flatten) // 32
        .add(Linear::new(32, 5, rng)); // 5
    let f = footprint(&net, &[1, 8, 8]).unwrap();
    assert_eq!(f.largest, 100 + 128);
    assert_eq!(f.largest_at, "conv1");
    assert_eq!(f.total, 228 + 128 + 32 + 32 + 5);
}

#[test]
fn blocks_and_residuals_are_followed_inside() {
    let rng = &mut rng();
    let block = Conv2dBlock::new(Conv2d::new(1, 2, (3, 3), rng).with_padding(Padding::Same))
        .with_relu()
        .with_max_pool(MaxPool2d::new((2, 2)));
    let residual = Residual::new(Conv2d::new(2, 2, (1, 1), rng));
    let net = Sequential::new().add(block).add(residual).add(GlobalAvgPool);
    let f = footprint(&net, &[1, 4, 4]).unwrap();
    // Block: padded 1·6·6 + conv 2·4·4, then its pool 2·2·2. Residual: the 1×1
    // convolution's output 2·2·2 and the sum 2·2·2. Pooling: 2.
    assert_eq!(f.largest, 36 + 32);
    assert_eq!(f.total, 68 + 8 + 8 + 8 + 2);
}

#[test]
fn a_huge_padding_is_counted_not_allocated() {
    let rng = &mut rng();
    let net = Sequential::new()
        .add(Conv2d::new(1, 4, (3, 3), rng).with_padding(Padding::Explicit(100_000, 100_000)))
        .add(GlobalAvgPool);
    let f = footprint(&net, &[1, 8, 8]).unwrap();
    assert!(f.largest > 160_000_000_000, "{f:?}");
}

#[test]
fn a_layer_that_does_not_take_its_input_is_named() {
    let rng = &mut rng();
    let net = Sequential::new().add(Flatten).add(Linear::new(10, 2, rng));
    let err = footprint(&net, &[1, 3, 3]).unwrap_err();
    assert!(err.starts_with("fc1: "), "{err}");
}
