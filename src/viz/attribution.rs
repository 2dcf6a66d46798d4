//! What in an image drives a prediction: saliency (the gradient of a class score
//! with respect to the pixels, and gradient × input) and integrated gradients —
//! Captum's basics, built on the tape's input gradients.
//!
//! Every function runs a copy of the model in evaluation mode (batch norm uses its
//! running statistics, dropout is off), so the model is not changed, and scores a
//! class by its logit (before the softmax, whose gradient vanishes on confident
//! predictions).

use ndarray::{Array2, Array4, ArrayView4, Zip};

use super::VizError;
use crate::nn::{Mode, Module};
use crate::tape::Tape;

/// Checks that `model` takes `images` and has a logit for every class asked for;
/// returns the number of logits.
pub(crate) fn check_classes(
    model: &dyn Module,
    images: ArrayView4<f32>,
    classes: &[usize],
) -> Result<usize, VizError> {
    let (n, c, h, w) = images.dim();
    if classes.len() != n {
        return Err(VizError::Shape(format!(
            "{} classes for {n} images: give one class per image",
            classes.len()
        )));
    }
    let output = model
        .output_shape(&[c, h, w])
        .map_err(|e| VizError::Shape(format!("the model does not take {c}×{h}×{w} images: {e}")))?;
    let logits = match output[..] {
        [logits] => logits,
        _ => {
            return Err(VizError::Shape(format!(
                "the model's output per image is {output:?}, not a vector of class scores"
            )))
        }
    };
    if let Some(&bad) = classes.iter().find(|&&k| k >= logits) {
        return Err(VizError::Shape(format!(
            "class {bad} is out of range for a model with {logits} outputs"
        )));
    }
    Ok(logits)
}

/// `∂ logit[i, classes[i]] / ∂ images[i]` for every image `i`, from one backward
/// pass over the batch (images do not interact in evaluation mode).
fn class_gradient(model: &dyn Module, images: Array4<f32>, classes: &[usize], logits: usize) -> Array4<f32> {
    let shape = images.raw_dim();
    let mut copy = model.clone_module();
    let tape = Tape::new();
    let input = tape.input_with_grad(images.into_dyn());
    let output = copy.forward(&input, Mode::Eval);
    let mut pick = Array2::<f32>::zeros((classes.len(), logits));
    for (row, &k) in classes.iter().enumerate() {
        pick[[row, k]] = 1.0;
    }
    let grads = output.backward_with(pick.into_dyn());
    match grads.wrt(&input) {
        Some(g) => g
            .clone()
            .into_dimensionality()
            .expect("an input's gradient has its shape"),
        // No path from the input to the output (a model that ignores it).
        None => Array4::zeros(shape),
    }
}

/// Saliency: the gradient of each image's class score with respect to its pixels
/// (Simonyan et al., 2013). Large magnitude: a small change of that pixel changes
/// the score most. `images` is `[N, C, H, W]`, `classes` one class per image.
///
/// ```
/// use ferrocnn::nn::{Flatten, Linear, Module, Sequential};
/// use ferrocnn::viz::saliency;
/// use rand::SeedableRng;
///
/// let mut rng = rand::rngs::StdRng::seed_from_u64(0);
/// let model = Sequential::new().add(Flatten).add(Linear::new(4, 3, &mut rng));
/// let images = ndarray::Array4::<f32>::ones((1, 1, 2, 2));
/// // For a linear model, the saliency of class 2 is row 2 of the weight.
/// let map = saliency(&model, images.view(), &[2])?;
/// let weight = model.parameters()[0].value().clone(); // [3 outputs, 4 inputs]
/// let row: Vec<f32> = weight.index_axis(ndarray::Axis(0), 2).iter().copied().collect();
/// assert_eq!(map.iter().copied().collect::<Vec<_>>(), row);
/// # Ok::<(), ferrocnn::viz::VizError>(())
/// ```
pub fn saliency(
    model: &dyn Module,
    images: ArrayView4<f32>,
    classes: &[usize],
) -> Result<Array4<f32>, VizError> {
    let logits = check_classes(model, images, classes)?;
    Ok(class_gradient(model, images.to_owned(), classes, logits))
}

/// Gradient × input: the saliency weighted by the pixel's value, so that pixels
/// that are off (0) get no credit. For a linear model it is each pixel's exact
/// contribution to the score.
pub fn gradient_times_input(
    model: &dyn Module,
    images: ArrayView4<f32>,
    classes: &[usize],
) -> Result<Array4<f32>, VizError> {
    Ok(saliency(model, images, classes)? * images)
}

/// Integrated gradients (Sundararajan et al., 2017): the gradient averaged along
/// the straight path from `baseline` (all zeros if `None`) to the image, times
/// `image − baseline`, by the midpoint rule with `steps` points. The attributions
/// of an image add up to `score(image) − score(baseline)` (completeness), up to
/// the rule's error, which shrinks with more steps; 32 to 64 are usual.
///
/// # Errors
/// As [`saliency`], and if `steps` is 0 or the baseline's shape differs.
pub fn integrated_gradients(
    model: &dyn Module,
    images: ArrayView4<f32>,
    classes: &[usize],
    baseline: Option<ArrayView4<f32>>,
    steps: usize,
) -> Result<Array4<f32>, VizError> {
    let logits = check_classes(model, images, classes)?;
    if steps == 0 {
        return Err(VizError::Shape(
            "integrated gradients need at least 1 step".into(),
        ));
    }
    let baseline = match baseline {
        Some(b) if b.dim() != images.dim() => {
            return Err(VizError::Shape(format!(
                "the baseline's shape {:?} differs from the images' {:?}",
                b.shape(),
                images.shape()
            )))
        }
        Some(b) => b.to_owned(),
        None => Array4::zeros(images.raw_dim()),
    };
    let delta = &images - &baseline;
    let mut total = Array4::<f32>::zeros(images.raw_dim());
    for step in 0..steps {
        let alpha = (step as f32 + 0.5) / steps as f32;
        let point = &baseline + &(&delta * alpha);
        total += &class_gradient(model, point, classes, logits);
    }
    Zip::from(&mut total)
        .and(&delta)
        .for_each(|t, &d| *t = *t / steps as f32 * d);
    Ok(total)
}
