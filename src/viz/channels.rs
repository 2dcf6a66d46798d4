//! What a channel responds to: activation maximisation (an input optimised from
//! noise to excite one channel, as Lucid does) and the dataset images that excite
//! it most.
//!
//! A channel is named by its module's dotted name (`conv1`, `blocks.0.main.conv1`,
//! or `fc2` for a class logit) and its index. What is maximised is its value at the
//! centre of the map or its mean over the map ([`Objective`]); a layer with vector
//! outputs has one value per channel.

use ndarray::{s, Array4, ArrayD, ArrayView4, Axis, IxDyn};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use super::VizError;
use crate::data::Normalize;
use crate::nn::{walk, Mode, Module};
use crate::tape::Tape;
use crate::tensor::Tensor;

/// What [`maximize_channels`] maximises of a channel's map.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Objective {
    /// The value at the centre of the map (Lucid's "neuron"): the pattern its
    /// receptive field responds to. For a first-layer filter this is the filter
    /// itself, drawn as an image.
    #[default]
    Centre,
    /// The mean over the map (Lucid's "channel"): a texture that excites it
    /// everywhere. For a linear filter that is a flat image (its mean is the
    /// filter's sum times the image's), so it is for layers after a nonlinearity.
    Mean,
}

/// Settings of [`maximize_channels`]. The defaults are Lucid's recipe scaled to
/// MNIST-sized inputs: a few hundred normalised gradient-ascent steps with an L2
/// penalty, random jitter and periodic blur, which keep the image from becoming
/// high-frequency noise that excites the channel without looking like anything.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Maximize {
    /// Gradient-ascent steps.
    pub steps: usize,
    /// Step size at the start, in input units per step (RMS over the image); it
    /// decays linearly to 0 so that the image settles.
    pub lr: f32,
    /// Weight of the L2 penalty `l2 · Σ x²`, which keeps pixels that do not help
    /// the channel at 0.
    pub l2: f32,
    /// Each step shifts the image by up to this many pixels in each direction
    /// (with wrap-around), so that it must excite the channel wherever it is.
    pub jitter: usize,
    /// Blur the image with a 3×3 binomial kernel every this many steps (0: never).
    pub blur_every: usize,
    /// Clamp every pixel into this range after each step (default: the range of
    /// MNIST-normalised pixels, black to white).
    pub range: Option<(f32, f32)>,
    /// What to maximise of each channel's map.
    pub objective: Objective,
    /// Seed of the starting noise and of the jitter.
    pub seed: u64,
}

impl Default for Maximize {
    fn default() -> Self {
        Maximize {
            steps: 256,
            lr: 0.1,
            l2: 1e-3,
            jitter: 1,
            blur_every: 16,
            range: Some(Normalize::MNIST.range(0)),
            objective: Objective::Centre,
            seed: 0,
        }
    }
}

/// The output tensor of the module named `layer` in a traced forward pass of
/// `model` (which must be the instance that ran) on `input`.
fn layer_output(model: &mut dyn Module, input: &Tensor, layer: &str) -> Result<Tensor, VizError> {
    model.forward(input, Mode::Eval);
    let trace = input.tape().map(Tape::take_trace).unwrap_or_default();
    let (mut found, mut names) = (None, Vec::new());
    walk(model, "", 0, &mut |name, _, parent, module| {
        if name == layer {
            found = Some(trace.output_of(parent, name, module).map(|(_, t)| t.clone()));
        }
        names.push(name.to_string());
    });
    match found {
        Some(Some(output)) => Ok(output),
        Some(None) => Err(VizError::Shape(format!(
            "the output of `{layer}` is not observed (a parameterless layer inside a module of your own); pick its container"
        ))),
        None => Err(VizError::Shape(format!(
            "the model has no module named `{layer}`; its modules are: {}",
            names.join(", ")
        ))),
    }
}

/// Checks `channels` against the layer's output shape `[N, C, …]`.
fn check_channels(layer: &str, shape: &[usize], channels: &[usize]) -> Result<(), VizError> {
    let count = shape.get(1).copied().unwrap_or(0);
    match channels.iter().find(|&&c| c >= count) {
        Some(bad) => Err(VizError::Shape(format!(
            "`{layer}` has {count} channels (output {:?}); channel {bad} is out of range",
            &shape[1..]
        ))),
        None => Ok(()),
    }
}

/// The upstream gradient that makes `backward_with` compute, for each image `i`,
/// the gradient of `objective` of channel `channels[i]` of `shape` (`[N, C, …]`).
fn objective_gradient(shape: &[usize], channels: &[usize], objective: Objective) -> ArrayD<f32> {
    let positions: usize = shape[2..].iter().product();
    let centre: Vec<usize> = shape[2..].iter().map(|&len| len / 2).collect();
    let mut upstream = ArrayD::zeros(IxDyn(shape));
    for (i, &c) in channels.iter().enumerate() {
        let mut map = upstream.index_axis_mut(Axis(0), i);
        let mut map = map.index_axis_mut(Axis(0), c);
        match objective {
            Objective::Mean => map.fill(1.0 / positions as f32),
            Objective::Centre => map[IxDyn(&centre)] = 1.0,
        }
    }
    upstream
}

/// Images `[len(channels), C, H, W]` of input shape `(C, H, W)`, image `i`
/// optimised to excite channel `channels[i]` of module `layer` (all at once, in
/// one batch). See [`Maximize`] for the recipe.
///
/// # Errors
/// If `layer` is not a module of the model (the message lists them), a channel is
/// out of range, or the model does not take inputs of that shape.
pub fn maximize_channels(
    model: &dyn Module,
    layer: &str,
    channels: &[usize],
    (c, h, w): (usize, usize, usize),
    opts: &Maximize,
) -> Result<Array4<f32>, VizError> {
    model
        .output_shape(&[c, h, w])
        .map_err(|e| VizError::Shape(format!("the model does not take {c}×{h}×{w} inputs: {e}")))?;
    let n = channels.len();
    let mut rng = StdRng::seed_from_u64(opts.seed);
    let mut x = Array4::from_shape_fn((n, c, h, w), |_| rng.random_range(-0.01f32..0.01));
    let mut copy = model.clone_module();
    let jitter = opts.jitter.min(h.min(w) / 2) as i64;
    for step in 0..opts.steps {
        let (dy, dx) = (
            rng.random_range(-jitter..=jitter),
            rng.random_range(-jitter..=jitter),
        );
        let tape = Tape::traced();
        let input = tape.input_with_grad(roll(x.view(), dy, dx).into_dyn());
        let output = layer_output(copy.as_mut(), &input, layer)?;
        if step == 0 {
            check_channels(layer, output.shape(), channels)?;
        }
        let grads = output.backward_with(objective_gradient(output.shape(), channels, opts.objective));
        let Some(g) = grads.wrt(&input) else {
            return Err(VizError::Shape(format!("`{layer}` does not depend on the input")));
        };
        let g = roll(g.view().into_dimensionality().expect("4-d input"), -dy, -dx);
        let lr = opts.lr * (1.0 - step as f32 / opts.steps as f32);
        for (mut image, g) in x.outer_iter_mut().zip(g.outer_iter()) {
            // Ascent on the channel minus the penalty, normalised per image: layers
            // deep in a net have gradients orders of magnitude smaller than the first.
            let ascent = &g - &(&image * (2.0 * opts.l2));
            let rms = (ascent.iter().map(|v| v * v).sum::<f32>() / ascent.len() as f32).sqrt();
            if rms > 0.0 {
                image.scaled_add(lr / rms, &ascent);
            }
        }
        if opts.blur_every > 0 && (step + 1) % opts.blur_every == 0 {
            x = blur(&x);
        }
        if let Some((lo, hi)) = opts.range {
            x.mapv_inplace(|v| v.clamp(lo, hi));
        }
    }
    Ok(x)
}

/// The `k` images of `images` (`[N, C, H, W]`) with the largest mean activation of
/// `channel` of module `layer`, as `(index, activation)`, largest first.
pub fn top_activating(
    model: &dyn Module,
    layer: &str,
    channel: usize,
    images: ArrayView4<f32>,
    k: usize,
) -> Result<Vec<(usize, f32)>, VizError> {
    let (_, c, h, w) = images.dim();
    model
        .output_shape(&[c, h, w])
        .map_err(|e| VizError::Shape(format!("the model does not take {c}×{h}×{w} images: {e}")))?;
    let mut copy = model.clone_module();
    let mut scores = Vec::with_capacity(images.len_of(Axis(0)));
    for slice in images.axis_chunks_iter(Axis(0), 256) {
        let tape = Tape::traced();
        let output = layer_output(copy.as_mut(), &tape.input(slice.to_owned().into_dyn()), layer)?;
        check_channels(layer, output.shape(), &[channel])?;
        let per_image = output.value().index_axis(Axis(1), channel).to_owned();
        for image in per_image.outer_iter() {
            scores.push(image.mean().unwrap_or(0.0));
        }
    }
    let mut ranked: Vec<(usize, f32)> = scores.into_iter().enumerate().collect();
    ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    ranked.truncate(k);
    Ok(ranked)
}

/// `x` shifted by `dy` rows and `dx` columns, wrapping around.
fn roll(x: ArrayView4<f32>, dy: i64, dx: i64) -> Array4<f32> {
    let (_, _, h, w) = x.dim();
    let (dy, dx) = (dy.rem_euclid(h as i64) as usize, dx.rem_euclid(w as i64) as usize);
    let mut out = Array4::zeros(x.raw_dim());
    for r in 0..h {
        for col in 0..w {
            out.slice_mut(s![.., .., (r + dy) % h, (col + dx) % w])
                .assign(&x.slice(s![.., .., r, col]));
        }
    }
    out
}

/// Each plane of `x` blurred by the 3×3 binomial kernel `[1 2 1]ᵀ[1 2 1] / 16`,
/// edges repeated.
fn blur(x: &Array4<f32>) -> Array4<f32> {
    let (_, _, h, w) = x.dim();
    let mut out = Array4::zeros(x.raw_dim());
    for ((i, ch, r, col), v) in out.indexed_iter_mut() {
        let mut sum = 0.0;
        for (dr, wr) in [(-1i64, 1.0f32), (0, 2.0), (1, 1.0)] {
            for (dc, wc) in [(-1i64, 1.0f32), (0, 2.0), (1, 1.0)] {
                let rr = (r as i64 + dr).clamp(0, h as i64 - 1) as usize;
                let cc = (col as i64 + dc).clamp(0, w as i64 - 1) as usize;
                sum += wr * wc * x[[i, ch, rr, cc]];
            }
        }
        *v = sum / 16.0;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roll_wraps_and_blur_keeps_constants() {
        let x = Array4::from_shape_fn((1, 1, 3, 4), |(_, _, r, c)| (r * 4 + c) as f32);
        let rolled = roll(x.view(), 1, -1);
        assert_eq!(rolled[[0, 0, 1, 0]], x[[0, 0, 0, 1]]);
        assert_eq!(rolled[[0, 0, 0, 3]], x[[0, 0, 2, 0]]);
        assert_eq!(roll(rolled.view(), -1, 1), x);
        let flat = Array4::from_elem((2, 1, 5, 5), 3.0f32);
        assert_eq!(blur(&flat), flat);
    }
}
