//! Convolution by hand, checked by ferrocnn's `conv2d`.
//!
//! ```text
//! cargo run --example conv_basics
//! ```
//!
//! A widely copied blog example convolves the input [[1,2],[3,4]] with the kernel
//! [[1,2],[3,4]]. This walks through what every framework computes for it, what the
//! mathematical convolution gives, and why the blog's answer cannot be right.

use ferrocnn::{Conv2dOptions, Padding, Tensor};
use ndarray::{Array4, Axis};

/// A 2×2 matrix as a one-image, one-channel NCHW tensor.
fn image(rows: [[f32; 2]; 2]) -> Tensor {
    let values: Vec<f32> = rows.iter().flatten().copied().collect();
    Tensor::new(
        Array4::from_shape_vec((1, 1, 2, 2), values)
            .expect("4 values")
            .into_dyn(),
    )
}

/// Prints the single plane of a `[1, 1, H, W]` tensor, one row per line.
fn show(label: &str, t: &Tensor) {
    println!("{label}");
    let plane = t.value().index_axis(Axis(0), 0).index_axis(Axis(0), 0).to_owned();
    for row in plane.rows() {
        let cells: Vec<String> = row.iter().map(|v| format!("{v:>4}")).collect();
        println!("    [{} ]", cells.join(""));
    }
}

fn with_padding(padding: Padding) -> Conv2dOptions {
    Conv2dOptions {
        padding,
        ..Conv2dOptions::default()
    }
}

fn main() {
    // 1. The data: one 2×2 image and one 2×2 kernel, the same numbers.
    let input = image([[1., 2.], [3., 4.]]);
    let kernel = image([[1., 2.], [3., 4.]]);
    show("input", &input);
    show("kernel", &kernel);

    // 2. What deep-learning frameworks call convolution is cross-correlation: slide
    //    the kernel as it is over the input, multiply overlapping entries, sum.
    //    SAME keeps the output 2×2. The kernel is 2 wide, so one row and one column
    //    of zeros are needed; TensorFlow's rule puts them bottom and right:
    //      top-left     1·1 + 2·2 + 3·3 + 4·4 = 30   (the kernel covers everything)
    //      top-right    2·1 + 4·3             = 14   (its right column hangs in the padding)
    //      bottom-left  3·1 + 4·2             = 11
    //      bottom-right 4·1                   = 4
    let same = input.conv2d(&kernel, None, &with_padding(Padding::Same));
    show("cross-correlation, SAME  (what conv2d computes)", &same);
    // VALID: no padding, only the one position where the kernel fits.
    let valid = input.conv2d(&kernel, None, &with_padding(Padding::Valid));
    show("cross-correlation, VALID", &valid);

    // 3. The convolution of mathematics flips the kernel by 180° before sliding it:
    //    (x * k)[i, j] = Σ x[m, n] · k[i − m, j − n]. Flipping [[1,2],[3,4]] gives
    //    [[4,3],[2,1]]; cross-correlating with the flipped kernel is convolution.
    let flipped = image([[4., 3.], [2., 1.]]);
    show("kernel rotated 180°", &flipped);
    let conv_same = input.conv2d(&flipped, None, &with_padding(Padding::Same));
    show(
        "true convolution, SAME (extra zero row/column bottom/right)",
        &conv_same,
    );
    let conv_valid = input.conv2d(&flipped, None, &with_padding(Padding::Valid));
    show("true convolution, VALID", &conv_valid);
    // "Full" convolution pads kernel size − 1 = 1 on every side: every position where
    // the kernel and the input overlap at all. Its 3×3 result is the product of the
    // polynomials (1 + 2a + 3b + 4ab)² laid out by powers of a and b.
    let conv_full = input.conv2d(&flipped, None, &with_padding(Padding::Explicit(1, 1)));
    show("true convolution, full (padding 1)", &conv_full);

    // 4. The blog's answer, [[25, 26], [66, 76]], is none of these. Every entry of a
    //    convolution or cross-correlation of these two matrices, with any zero
    //    padding, is a sum of products of distinct input entries with distinct kernel
    //    entries, at most 1·1 + 2·2 + 3·3 + 4·4 = 30; so no padding or flipping
    //    gives 66 or 76. Checked here over paddings 0 to 3:
    let mut largest = 0.0f32;
    for pad in 0..=3 {
        for k in [&kernel, &flipped] {
            let y = input.conv2d(k, None, &with_padding(Padding::Explicit(pad, pad)));
            largest = y.value().iter().fold(largest, |m, &v| m.max(v));
        }
    }
    println!("largest entry of any of them, paddings 0..=3, flipped or not: {largest}");
    // Nor is it the matrix product: [[1,2],[3,4]]·[[1,2],[3,4]] = [[7,10],[15,22]].
    let a = ndarray::arr2(&[[1.0f32, 2.], [3., 4.]]);
    println!(
        "matrix product, for comparison: {:?}",
        a.dot(&a).outer_iter().map(|r| r.to_vec()).collect::<Vec<_>>()
    );
    println!(
        "So [[25, 26], [66, 76]] is neither a convolution nor a cross-correlation of these two \
         matrices (with any zero padding), nor their matrix product."
    );
}
