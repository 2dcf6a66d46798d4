//! What the page shows for one input, as JSON: the image the model sees, the class
//! probabilities, every layer's output and the saliency; and, once per page, the
//! model's filters.
//!
//! A drawing goes in as `inspect --predict` and `predict` take a picture, so the
//! same drawing gets the same numbers in all three. For a gray model it is framed
//! as MNIST frames its digits (`data::frame_like_mnist`: a 20×20 box, centred by
//! mass); for an RGB model its pixels (a gray pen's strokes repeated into the
//! three planes) are scaled to cover the input and cut to it, as
//! `DataSpec::input_of` does with `Fit::Crop`. Each channel is then normalized
//! with its own statistics. A test image is already at the model's size and goes
//! in as it is.
//!
//! The saliency comes from `viz::saliency`, one backward pass from the class's
//! logit to the pixels; for RGB it is summed over the three planes, one map per
//! pixel.

use std::time::Instant;

use ferrocnn::data::{fit_image, frame_like_mnist, Fit, Image};
use ferrocnn::nn::{activations, conv_of, Activation, Module};
use ferrocnn::ops::softmax_rows;
use ferrocnn::train::predict;
use ferrocnn::viz::saliency;
use ndarray::{Array2, Array4, Axis, Ix4};
use serde_json::{json, Value};

use super::encode::{base64, signed, stretch};
use super::App;

/// The largest drawing accepted, per side (the page sends 280×280).
pub const MAX_DRAWING_SIDE: usize = 2048;

/// The analysis of a drawing of `height × width` pixels of `channels` bytes each
/// (1 gray or 3 RGB, interleaved as a canvas gives them), light on black, with the
/// saliency of class `explain` (the predicted class if `None`).
pub fn drawing(
    app: &App,
    pixels: &[u8],
    (height, width, channels): (usize, usize, usize),
    explain: Option<usize>,
) -> Result<Value, String> {
    if height == 0 || width == 0 || height > MAX_DRAWING_SIDE || width > MAX_DRAWING_SIDE {
        return Err(format!(
            "a drawing of {width}×{height}: each side must be 1 to {MAX_DRAWING_SIDE}"
        ));
    }
    if channels != 1 && channels != 3 {
        return Err(format!("a drawing of {channels} channels: 1 (gray) or 3 (RGB)"));
    }
    if pixels.len() != height * width * channels {
        return Err(format!(
            "{} bytes are not a {width}×{height} drawing of {channels} channel(s)",
            pixels.len()
        ));
    }
    let start = Instant::now();
    let (c, h, w) = app.input;
    let image = Image {
        pixels: pixels.to_vec(),
        height,
        width,
        channels,
    };
    let planes = image.to_planes(c);
    let framed = match c {
        1 => frame_like_mnist(&planes, (height, width), (h, w)),
        _ => fit_image(&planes, (c, height, width), (h, w), Fit::Crop),
    };
    let frame_ms = ms(start);
    let mut value = analyze(app, &framed, None, explain)?;
    value["server_ms"]["frame"] = json!(frame_ms);
    Ok(value)
}

/// The analysis of test image `index`, with its label.
pub fn test_image(app: &App, index: usize, explain: Option<usize>) -> Result<Value, String> {
    let test = app
        .test
        .as_ref()
        .ok_or("no test images were loaded (see --data)")?;
    if index >= test.len() {
        return Err(format!(
            "test image {index}: there are {} (0..{})",
            test.len(),
            test.len()
        ));
    }
    let (c, h, w) = app.input;
    let pixels = &test.image(index)[..c * h * w];
    let mut value = analyze(app, pixels, Some(test.label(index)), explain)?;
    value["test_index"] = json!(index);
    Ok(value)
}

/// Runs the model on framed pixels (`c × h × w` bytes, one plane per channel).
fn analyze(app: &App, pixels: &[u8], label: Option<usize>, explain: Option<usize>) -> Result<Value, String> {
    let start = Instant::now();
    let mut model = app.model();
    let (c, h, w) = app.input;
    let x = Array4::from_shape_fn((1, c, h, w), |(_, ch, y, x)| {
        app.normalize.apply(ch, f32::from(pixels[(ch * h + y) * w + x]))
    });

    let t = Instant::now();
    let logits = predict(model.as_mut(), x.view().into_dyn());
    let probabilities: Vec<f32> = softmax_rows(&logits).row(0).to_vec();
    let predicted = (0..probabilities.len())
        .max_by(|&a, &b| probabilities[a].total_cmp(&probabilities[b]))
        .unwrap_or(0);
    let predict_ms = ms(t);

    let t = Instant::now();
    let traced = activations(model.as_ref(), x.clone().into_dyn())?;
    let layers_ms = ms(t);

    let t = Instant::now();
    let class = explain.unwrap_or(predicted);
    let black: Vec<f32> = (0..c).map(|ch| app.normalize.apply(ch, 0.0)).collect();
    let saliency = saliency_json(model.as_ref(), &x, class, &black)?;
    let saliency_ms = ms(t);

    let t = Instant::now();
    let layers: Vec<Value> = shown(&traced).into_iter().map(layer_json).collect();
    let value = json!({
        "input": {"channels": c, "height": h, "width": w, "pixels": base64(pixels)},
        "label": label,
        "probabilities": probabilities,
        "predicted": predicted,
        "layers": layers,
        "saliency": saliency,
        "server_ms": {
            "predict": predict_ms,
            "layers": layers_ms,
            "saliency": saliency_ms,
            "encode": ms(t),
            "total": ms(start),
        },
    });
    Ok(value)
}

/// The saliency of `class` for input `x`: the gradient of its score (logit) with
/// respect to each pixel, as magnitudes (where a change of ink moves the score
/// most), and gradient × ink, signed (which ink speaks for the class, and which
/// against it). Ink is the input less a blank pad's (`black`, the normalized value
/// of a 0 pixel in each channel, −0.42 for MNIST): `viz::gradient_times_input`
/// multiplies by the normalized input itself, which would credit the empty
/// background too. Both are summed over the channels, so an RGB pixel is one
/// value: how much it matters, not which of its colours.
fn saliency_json(model: &dyn Module, x: &Array4<f32>, class: usize, black: &[f32]) -> Result<Value, String> {
    let gradient = saliency(model, x.view(), &[class]).map_err(|e| e.to_string())?;
    let (_, _, h, w) = gradient.dim();
    let mut magnitude = Array2::<f32>::zeros((h, w));
    let mut times_input = Array2::<f32>::zeros((h, w));
    for (ch, plane) in gradient.index_axis(Axis(0), 0).outer_iter().enumerate() {
        let ink = x
            .index_axis(Axis(0), 0)
            .index_axis(Axis(0), ch)
            .mapv(|v| v - black[ch]);
        magnitude += &plane.mapv(f32::abs);
        times_input += &(&plane * &ink);
    }
    let peak = magnitude.iter().fold(0.0f32, |m, &v| m.max(v));
    let scale = if peak > 0.0 { 255.0 / peak } else { 0.0 };
    let magnitude: Vec<u8> = magnitude.iter().map(|&v| (v * scale).round() as u8).collect();
    let (times_input, times_input_peak) = signed(&times_input.into_dyn().view(), h * w);
    Ok(json!({
        "class": class,
        "height": h,
        "width": w,
        "magnitude": base64(&magnitude),
        "magnitude_peak": peak,
        "times_input": base64(&times_input),
        "times_input_peak": times_input_peak[0],
    }))
}

/// The layers worth a picture: every module's output once. A container whose output
/// is its last child's (a `Sequential`), and a layer that returns its input
/// unchanged (`Dropout` in evaluation), share that array; it is shown under the
/// first layer that made it. A container that computes its own output (a residual
/// block's sum) is shown too.
fn shown(traced: &[Activation]) -> Vec<&Activation> {
    let maker = |a: &Activation| {
        traced
            .iter()
            .position(|b| !b.is_container && std::sync::Arc::ptr_eq(&a.output, &b.output))
    };
    traced
        .iter()
        .enumerate()
        .filter(|&(i, a)| maker(a).is_none_or(|m| m == i))
        .map(|(_, a)| a)
        .collect()
}

/// One layer's output as planes of bytes, each stretched to its own range: the
/// channels of a `[1, C, H, W]` map, or one row of a `[1, F]` vector.
fn layer_json(layer: &Activation) -> Value {
    let shape = &layer.output.shape()[1..];
    let (planes, plane) = match *shape {
        [c, h, w] => (c, [h, w]),
        _ => (1, [1, shape.iter().product()]),
    };
    let (bytes, ranges) = stretch(&layer.output.view(), plane[0] * plane[1]);
    json!({
        "name": layer.name,
        "kind": layer.kind,
        "depth": layer.depth,
        "container": layer.is_container,
        "shape": shape,
        "planes": planes,
        "plane": plane,
        "bytes": base64(&bytes),
        "ranges": ranges,
    })
}

/// Every convolution's filters (at any depth): one `kh × kw` plane per (output,
/// input) channel pair, each filter (all its input channels) scaled by its largest
/// weight so that zero stays zero and signs show.
pub fn filters(model: &dyn Module) -> Vec<Value> {
    model
        .named_modules()
        .into_iter()
        .filter_map(|(name, module)| {
            let conv = conv_of(module)?;
            let weight = conv.weight.value().view().into_dimensionality::<Ix4>().ok()?;
            let (out_c, in_c, kh, kw) = weight.dim();
            let (bytes, peaks) = signed(&weight.into_dyn(), in_c * kh * kw);
            Some(json!({
                "name": name,
                "kind": module.kind(),
                "shape": [out_c, in_c, kh, kw],
                "bytes": base64(&bytes),
                "peaks": peaks,
            }))
        })
        .collect()
}

/// What the page loads once: the model's title, input shape, class names, layer
/// table and filters, and what it can ask for.
pub fn model_info(app: &App) -> Value {
    let model = app.model();
    let (c, h, w) = app.input;
    let summary = model
        .try_summary(&[c, h, w])
        .map(|s| s.to_string())
        .unwrap_or_else(|e| e);
    json!({
        "title": app.title,
        "input": [c, h, w],
        "classes": app.classes.len(),
        "class_names": app.classes,
        "parameters": model.num_parameters(),
        "summary": summary,
        "filters": filters(model.as_ref()),
        "test_images": app.test.as_ref().map_or(0, |t| t.len()),
        "live": app.live.is_some(),
    })
}

/// Milliseconds since `t`.
pub fn ms(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1e3
}
