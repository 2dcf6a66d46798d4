//! A photo or drawing of a digit made to look like MNIST's, as `inspect --predict`
//! and `predict` show it to a 28×28 digit model.

use ferrocnn::data::{frame_like_mnist, Image};

/// `image` as MNIST's digits are: gray (a transparent canvas read as white paper),
/// white on black (inverted if its mean is above 127) and, with `frame`, its ink
/// scaled into 20×20 and centred by mass in `(height, width)`. Returns the pixels
/// and the mean brightness if the image was inverted.
pub fn like_mnist(image: &Image, (height, width): (usize, usize), frame: bool) -> (Vec<u8>, Option<f64>) {
    let mut pixels = image.over_background(255).to_planes(1);
    let mean = pixels.iter().map(|&p| p as f64).sum::<f64>() / pixels.len().max(1) as f64;
    let inverted = mean > 127.0;
    if inverted {
        pixels.iter_mut().for_each(|p| *p = 255 - *p);
    }
    let pixels = match frame {
        true => frame_like_mnist(&pixels, (image.height, image.width), (height, width)),
        false => pixels,
    };
    (pixels, inverted.then_some(mean))
}
