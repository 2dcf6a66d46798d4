//! Pictures of a model: its convolution kernels, the feature maps one input
//! produces, and a captioned grid of input images (e.g. the misclassified ones).

use std::path::{Path, PathBuf};

use ndarray::{Array3, Array4, ArrayView2, ArrayView3, Axis, Ix4};

use super::grid::{auto_columns, Grid, TileRange};
use super::VizError;
use crate::nn::{conv_of, Conv2d, Module};

/// Writes a convolution's kernels as one PNG, each kernel slice stretched to its
/// own range and enlarged `scale` times (with a 2 px border from scale 6 up, else
/// 1 px).
///
/// A layer with one input channel (the first layer of a gray-image net) gets one
/// tile per output channel, about √out per row: these are the edge and blob
/// detectors the net learned. A layer with three (the first layer of a colour
/// net) gets the same, each tile in colour, its red, green and blue kernels as the
/// three colours: the colour each filter looks for. A deeper layer gets one row
/// per output channel and one tile per input channel, so row `o` shows how filter
/// `o` combines the previous layer's maps.
///
/// # Errors
/// [`VizError::Io`]/[`VizError::Encode`] if the file cannot be written.
pub fn save_conv_filters(conv: &Conv2d, path: impl AsRef<Path>, scale: usize) -> Result<(), VizError> {
    save_conv_filters_at(conv, path.as_ref(), scale)
}

// Not generic: compiled once here, not again in every crate that calls it.
fn save_conv_filters_at(conv: &Conv2d, path: &Path, scale: usize) -> Result<(), VizError> {
    let (out_c, in_c, _, _) = conv.kernel_shape();
    let weight = conv
        .weight
        .value()
        .view()
        .into_dimensionality::<Ix4>()
        .map_err(|e| VizError::Shape(format!("conv weight {:?}: {e}", conv.weight.shape())))?;
    // A 1 px line vanishes between large tiles; 2 px stays visible.
    let border = if scale >= 6 { 2 } else { 1 };
    let grid = |columns| Grid::new(columns).with_scale(scale).with_border(border);
    if in_c == 3 {
        let tiles: Vec<_> = weight.outer_iter().collect();
        return grid(auto_columns(out_c)).render_colour(&tiles)?.save_png(path);
    }
    let tiles: Vec<ArrayView2<f32>> = weight
        .outer_iter()
        .flat_map(|filter| filter.into_outer_iter())
        .collect();
    let columns = if in_c == 1 { auto_columns(out_c) } else { in_c };
    grid(columns).render(&tiles)?.save_png(path)
}

/// Runs `model` on one normalized input `[1, c, h, w]` in evaluation mode and
/// writes, for every convolution in it (a [`Conv2d`] or a
/// [`Conv2dBlock`](crate::nn::Conv2dBlock), at any depth, in modules of your own
/// too), the grid of its output channels as `dir/features_<name>.png`, named by the
/// conv's dotted name (each map stretched to its own range, enlarged so a map is
/// about 64 px wide). Returns the paths written, in the model's order. Creates
/// `dir` if needed.
///
/// The model is not changed (a clone runs; parameter values are shared, not
/// copied).
///
/// # Errors
/// [`VizError::Shape`] if `input` is not one image or does not fit the model;
/// I/O errors naming the file.
pub fn save_feature_maps(
    model: &dyn Module,
    input: &Array4<f32>,
    dir: impl AsRef<Path>,
) -> Result<Vec<PathBuf>, VizError> {
    save_feature_maps_at(model, input, dir.as_ref())
}

// Not generic: compiled once here, not again in every crate that calls it.
fn save_feature_maps_at(
    model: &dyn Module,
    input: &Array4<f32>,
    dir: &Path,
) -> Result<Vec<PathBuf>, VizError> {
    let n = input.dim().0;
    if n != 1 {
        return Err(VizError::Shape(format!(
            "feature maps: input {:?} holds {n} images; expected [1, c, h, w]",
            input.shape()
        )));
    }
    model.output_shape(&input.shape()[1..]).map_err(|e| {
        VizError::Shape(format!(
            "feature maps: the model does not take input {:?}: {e}",
            input.shape()
        ))
    })?;
    std::fs::create_dir_all(dir).map_err(|source| VizError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    let mut convs = Vec::new();
    crate::nn::trace(model, input.clone().into_dyn(), &mut |name, _, module, output| {
        if let (Some(_), Some(output)) = (conv_of(module), output) {
            convs.push((name.to_string(), output.clone()));
        }
    });
    let mut written = Vec::new();
    for (name, output) in convs {
        let maps = output
            .view()
            .into_dimensionality::<Ix4>()
            .map_err(|e| VizError::Shape(format!("{name} output {:?}: {e}", output.shape())))?;
        let maps = maps.index_axis_move(Axis(0), 0);
        let (channels, h, w) = maps.dim();
        let tiles: Vec<ArrayView2<f32>> = maps.outer_iter().collect();
        let scale = (64 / h.max(w).max(1)).max(1);
        let path = dir.join(format!("features_{name}.png"));
        Grid::new(auto_columns(channels))
            .with_scale(scale)
            .render(&tiles)?
            .save_png(&path)?;
        written.push(path);
    }
    Ok(written)
}

/// Writes raw images with a caption under each — for example true→predicted
/// labels of misclassified test images, `"7→1"` — shown as they are, not stretched.
/// Each image is `height × width` bytes (gray) or `3 × height × width` (RGB
/// planes, as a dataset keeps them), all of one kind. `columns` images per row,
/// enlarged `scale` times.
///
/// # Errors
/// [`VizError::Empty`] for no images, [`VizError::Shape`] if an image is neither
/// size or the images are not all one kind, I/O errors naming the file.
pub fn save_image_grid(
    images: &[(&[u8], &str)],
    (height, width): (usize, usize),
    columns: usize,
    scale: usize,
    path: impl AsRef<Path>,
) -> Result<(), VizError> {
    save_image_grid_at(images, (height, width), columns, scale, path.as_ref())
}

// Not generic: compiled once here, not again in every crate that calls it.
fn save_image_grid_at(
    images: &[(&[u8], &str)],
    (height, width): (usize, usize),
    columns: usize,
    scale: usize,
    path: &Path,
) -> Result<(), VizError> {
    let plane = height * width;
    let planes = images.first().map_or(1, |(px, _)| px.len() / plane.max(1));
    if let Some((i, (px, _))) = images
        .iter()
        .enumerate()
        .find(|(_, (px, _))| px.len() != planes * plane || !matches!(planes, 1 | 3))
    {
        return Err(VizError::Shape(format!(
            "image grid: image {i} has {} bytes, expected {height}×{width} (gray) or 3×{height}×{width} (RGB), as image 0",
            px.len()
        )));
    }
    let arrays: Vec<Array3<f32>> = images
        .iter()
        .map(|(px, _)| {
            Array3::from_shape_fn((planes, height, width), |(c, y, x)| {
                px[c * plane + y * width + x] as f32
            })
        })
        .collect();
    let tiles: Vec<ArrayView3<f32>> = arrays.iter().map(|a| a.view()).collect();
    let captions: Vec<&str> = images.iter().map(|(_, c)| *c).collect();
    Grid::new(columns)
        .with_scale(scale)
        .with_range(TileRange::Fixed { min: 0.0, max: 255.0 })
        .render_colour_with_captions(&tiles, &captions)?
        .save_png(path)
}
