//! The explorer's server, shared by the `explore` example (a saved model) and
//! `mnist --explore` (the model being trained): what the page is sent, and how.
//!
//! - [`analysis`]: what the page shows for one input — the image the model sees
//!   (gray or RGB), class probabilities, every layer's output, the saliency — and
//!   the filters, as JSON;
//! - [`encode`]: arrays as bytes for the page (base64), the compact form that keeps
//!   a response to a few hundred kilobytes;
//! - [`http`]: the routes, the embedded page, one log line per request;
//! - [`live`]: the figures and first-layer filters of a training run, as it runs.

pub mod analysis;
pub mod encode;
pub mod http;
pub mod live;

use std::sync::{Arc, Mutex};

use ferrocnn::data::{Dataset, Normalize};
use ferrocnn::nn::Module;

/// What the server answers from: the model, its classes, the test images, the run
/// if one is live.
pub struct App {
    /// Shown in the page's title (the model file, or "training").
    pub title: String,
    /// The model the page explores; `mnist --explore` replaces it with a fresh copy
    /// of the one in training every few hundred milliseconds.
    pub model: Mutex<Box<dyn Module>>,
    /// Input shape `(channels, height, width)`: 1 channel (gray) or 3 (RGB).
    pub input: (usize, usize, usize),
    /// How pixels become model inputs (the dataset's normalization, per channel).
    pub normalize: Normalize,
    /// The name of each class the model scores, by label.
    pub classes: Vec<String>,
    /// Test images to pick from, if a dataset was found.
    pub test: Option<Dataset>,
    /// The training run, for `mnist --explore`.
    pub live: Option<Arc<live::Live>>,
}

impl App {
    /// An app for `model`, checking that it takes gray or RGB images of `input`'s
    /// size and gives one score per class. Classes past `class_names` (all of
    /// them without names) are named by their number.
    pub fn new(
        title: String,
        model: Box<dyn Module>,
        input: (usize, usize, usize),
        normalize: Normalize,
        class_names: Option<Vec<String>>,
        test: Option<Dataset>,
    ) -> Result<App, String> {
        let (c, h, w) = input;
        if c != 1 && c != 3 {
            return Err(format!(
                "the page shows gray (1 channel) or RGB (3) images, but the model takes {c} channels"
            ));
        }
        if !normalize.fits(c) {
            return Err(format!(
                "{} normalisation statistics for {c} channels",
                normalize.mean().len()
            ));
        }
        let output = model
            .output_shape(&[c, h, w])
            .map_err(|e| format!("the model does not take {c}×{h}×{w} images: {e}"))?;
        if output.len() != 1 {
            return Err(format!(
                "the model outputs {output:?} per image, not one score per class"
            ));
        }
        let names = class_names.unwrap_or_default();
        let classes = (0..output[0])
            .map(|k| names.get(k).cloned().unwrap_or_else(|| k.to_string()))
            .collect();
        Ok(App {
            title,
            model: Mutex::new(model),
            input,
            normalize,
            classes,
            test,
            live: None,
        })
    }

    /// A copy of the current model to run outside the lock (parameter values are
    /// shared, not copied).
    pub fn model(&self) -> Box<dyn Module> {
        self.model
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone_module()
    }
}
