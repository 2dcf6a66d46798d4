//! Pictures of what the network sees, on top of `attribution` and `channels`:
//! attribution maps beside their images, the inputs that maximise channels, and
//! the images that excite a channel most. Each tile is labelled and enlarged so a
//! person can read it.

use std::path::Path;

use ndarray::{Array2, Array3, Array4, ArrayView3, ArrayView4, Axis};

use super::attribution::{gradient_times_input, integrated_gradients, saliency};
use super::channels::{maximize_channels, top_activating, Maximize};
use super::grid::{auto_columns, Grid};
use super::VizError;
use crate::nn::Module;

/// Enlargement that brings a `side`-pixel tile to about 112 pixels.
fn scale_for(side: usize) -> usize {
    (112 / side.max(1)).max(1)
}

/// Image `i` of `images` as a tile: in colour if it has three channels, else its
/// first channel.
fn shown(images: ArrayView4<f32>, i: usize) -> ArrayView3<f32> {
    let image = images.index_axis_move(Axis(0), i);
    match image.len_of(Axis(0)) {
        3 => image,
        _ => image.slice_move(ndarray::s![0..1, .., ..]),
    }
}

/// Each pixel's attribution summed over channels, as a magnitude: where the
/// model looks, whichever way the pixel pushes.
fn magnitude(maps: ArrayView4<f32>, i: usize) -> Array2<f32> {
    maps.index_axis(Axis(0), i).map_axis(Axis(0), |px| px.sum().abs())
}

/// Writes one row per image: the image (captioned `captions[i]`, e.g. `7→7`; in
/// colour for 3-channel images), then the magnitude of its saliency, of gradient ×
/// input and of integrated gradients (32 steps from a uniform image of
/// `baseline`, one value per channel or one for all, usually the input values of a
/// black pixel) for `classes[i]`, each stretched to its own range (white: most
/// attribution).
///
/// # Errors
/// [`VizError::Shape`] for a caption count or baseline length that does not match
/// the images; the errors of the attribution functions.
pub fn save_attributions(
    model: &dyn Module,
    images: ArrayView4<f32>,
    classes: &[usize],
    captions: &[String],
    baseline: &[f32],
    path: impl AsRef<Path>,
) -> Result<(), VizError> {
    save_attributions_at(model, images, classes, captions, baseline, path.as_ref())
}

// Not generic: compiled once here, not again in every crate that calls it.
fn save_attributions_at(
    model: &dyn Module,
    images: ArrayView4<f32>,
    classes: &[usize],
    captions: &[String],
    baseline: &[f32],
    path: &Path,
) -> Result<(), VizError> {
    let (n, c, _, _) = images.dim();
    if captions.len() != n {
        return Err(VizError::Shape(format!(
            "{} captions for {n} images",
            captions.len()
        )));
    }
    if baseline.len() != 1 && baseline.len() != c {
        return Err(VizError::Shape(format!(
            "a baseline of {} values for {c}-channel images",
            baseline.len()
        )));
    }
    let sal = saliency(model, images, classes)?;
    let gxi = gradient_times_input(model, images, classes)?;
    let black = Array4::from_shape_fn(images.raw_dim(), |(_, ch, _, _)| {
        baseline[ch.min(baseline.len() - 1)]
    });
    let ig = integrated_gradients(model, images, classes, Some(black.view()), 32)?;
    let maps: Vec<Array3<f32>> = (0..n)
        .flat_map(|i| {
            [
                shown(images, i).to_owned(),
                magnitude(sal.view(), i).insert_axis(Axis(0)),
                magnitude(gxi.view(), i).insert_axis(Axis(0)),
                magnitude(ig.view(), i).insert_axis(Axis(0)),
            ]
        })
        .collect();
    let tiles: Vec<ArrayView3<f32>> = maps.iter().map(|m| m.view()).collect();
    let labels: Vec<&str> = captions
        .iter()
        .flat_map(|c| [c.as_str(), "SALIENCY", "GRAD X INPUT", "INTEGRATED"])
        .collect();
    let side = images.shape()[2].max(images.shape()[3]);
    Grid::new(4)
        .with_scale(scale_for(side))
        .render_colour_with_captions(&tiles, &labels)?
        .save_png(path)
}

/// Runs [`maximize_channels`] for `channels` of `layer` and writes the results as
/// one tile per channel (in colour for 3-channel inputs), captioned with its
/// index, stretched to their own range.
pub fn save_maximized(
    model: &dyn Module,
    layer: &str,
    channels: &[usize],
    input_shape: (usize, usize, usize),
    opts: &Maximize,
    path: impl AsRef<Path>,
) -> Result<(), VizError> {
    save_maximized_at(model, layer, channels, input_shape, opts, path.as_ref())
}

// Not generic: compiled once here, not again in every crate that calls it.
fn save_maximized_at(
    model: &dyn Module,
    layer: &str,
    channels: &[usize],
    input_shape: (usize, usize, usize),
    opts: &Maximize,
    path: &Path,
) -> Result<(), VizError> {
    let images = maximize_channels(model, layer, channels, input_shape, opts)?;
    let tiles: Vec<ArrayView3<f32>> = (0..channels.len()).map(|i| shown(images.view(), i)).collect();
    let captions: Vec<String> = channels.iter().map(|c| c.to_string()).collect();
    let captions: Vec<&str> = captions.iter().map(String::as_str).collect();
    Grid::new(auto_columns(channels.len()))
        .with_scale(scale_for(input_shape.1.max(input_shape.2)) / if channels.len() > 16 { 2 } else { 1 })
        .render_colour_with_captions(&tiles, &captions)?
        .save_png(path)
}

/// Writes the `k` images of `images` that excite `channel` of `layer` most
/// ([`top_activating`]), largest first, each captioned with its mean activation;
/// returns their indices.
pub fn save_top_images(
    model: &dyn Module,
    layer: &str,
    channel: usize,
    images: ArrayView4<f32>,
    k: usize,
    path: impl AsRef<Path>,
) -> Result<Vec<usize>, VizError> {
    save_top_images_at(model, layer, channel, images, k, path.as_ref())
}

// Not generic: compiled once here, not again in every crate that calls it.
fn save_top_images_at(
    model: &dyn Module,
    layer: &str,
    channel: usize,
    images: ArrayView4<f32>,
    k: usize,
    path: &Path,
) -> Result<Vec<usize>, VizError> {
    let top = top_activating(model, layer, channel, images, k)?;
    if top.is_empty() {
        return Err(VizError::Empty("no images to rank".into()));
    }
    let tiles: Vec<ArrayView3<f32>> = top.iter().map(|&(i, _)| shown(images, i)).collect();
    let captions: Vec<String> = top.iter().map(|(_, a)| format!("{a:.2}")).collect();
    let captions: Vec<&str> = captions.iter().map(String::as_str).collect();
    let side = images.shape()[2].max(images.shape()[3]);
    Grid::new(auto_columns(top.len()))
        .with_scale(scale_for(side) / 2)
        .render_colour_with_captions(&tiles, &captions)?
        .save_png(path)?;
    Ok(top.into_iter().map(|(i, _)| i).collect())
}
