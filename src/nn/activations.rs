//! [`activations`]: every module's output for one input, by dotted name — what an
//! explorer page draws layer by layer, and what CNN Explainer shows.
//!
//! It is the traced pass behind `summary()` and the feature-map pictures, made
//! public: a copy of the model runs in evaluation on a tape that keeps each module's
//! output, so modules of your own are covered as the built-in ones are.

use std::sync::Arc;

use ndarray::ArrayD;

use super::Module;

/// One module's output for the input given to [`activations`].
#[derive(Clone, Debug)]
pub struct Activation {
    /// Dotted name (`conv1`, `blocks.0.main.conv1`).
    pub name: String,
    /// Module kind (`Conv2d`).
    pub kind: String,
    /// Nesting depth: 0 for the model's direct children.
    pub depth: usize,
    /// Whether the module contains others (a container's output is usually its last
    /// child's, which is listed too).
    pub is_container: bool,
    /// The output, batch axis first (`[N, C, H, W]` after a convolution, `[N, F]`
    /// after a `Linear`). Shared with the pass, not copied: a layer that returns its
    /// input unchanged (`Dropout` in evaluation) shares its input's array, which
    /// `Arc::ptr_eq` tells.
    pub output: Arc<ArrayD<f32>>,
}

/// Runs `model` in evaluation mode on `input` (with its batch axis, e.g.
/// `[1, 1, 28, 28]`) and returns the output of every module below the root, parents
/// before children, in the model's order. The model is not changed (a clone runs;
/// parameter values are shared, not copied) and nothing is recorded for a
/// backward pass afterwards.
///
/// A module whose output the pass could not see is left out: a parameterless layer
/// (`ReLU`) inside a module of your own that calls it without reporting it (the
/// built-in containers report all their children).
///
/// # Errors
/// If the model does not take inputs of this shape, the layer that cannot take it,
/// as [`Module::output_shape`] says.
///
/// ```
/// use ferrocnn::nn::{activations, Conv2d, Flatten, Linear, ReLU, Sequential};
/// use rand::SeedableRng;
///
/// let rng = &mut rand::rngs::StdRng::seed_from_u64(0);
/// let net = Sequential::new()
///     .add(Conv2d::new(1, 4, (3, 3), rng))
///     .add(ReLU)
///     .add(Flatten)
///     .add(Linear::new(4 * 6 * 6, 10, rng));
/// let image = ndarray::Array4::<f32>::ones((1, 1, 8, 8)).into_dyn();
/// let layers = activations(&net, image)?;
/// let names: Vec<&str> = layers.iter().map(|a| a.name.as_str()).collect();
/// assert_eq!(names, ["conv1", "relu1", "flatten1", "fc1"]);
/// assert_eq!(layers[0].output.shape(), &[1, 4, 6, 6]);
/// assert_eq!(layers[3].output.shape(), &[1, 10]);
/// # Ok::<(), String>(())
/// ```
pub fn activations(model: &dyn Module, input: ArrayD<f32>) -> Result<Vec<Activation>, String> {
    if input.ndim() == 0 {
        return Err("activations: the input has no batch axis".into());
    }
    model.output_shape(&input.shape()[1..])?;
    let mut layers = Vec::new();
    super::trace(model, input, &mut |name, depth, module, output| {
        if let Some(output) = output {
            layers.push(Activation {
                name: name.to_string(),
                kind: module.kind().to_string(),
                depth,
                is_container: !module.children().is_empty(),
                output: output.clone(),
            });
        }
    });
    Ok(layers)
}

#[cfg(test)]
mod tests {
    use ndarray::{Array4, ArrayD};
    use rand::SeedableRng;

    use super::activations;
    use crate::nn::{Conv2d, Flatten, Linear, MaxPool2d, Mode, Module, ReLU, Sequential};
    use crate::tape::Tape;
    use crate::zoo;

    fn image(seed: u64) -> ArrayD<f32> {
        use ndarray_rand::rand_distr::Uniform;
        use ndarray_rand::RandomExt;
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        Array4::random_using((1, 1, 28, 28), Uniform::new(-1.0f32, 1.0).unwrap(), &mut rng).into_dyn()
    }

    #[test]
    fn activations_equal_running_the_layers_one_by_one() {
        let rng = &mut rand::rngs::StdRng::seed_from_u64(1);
        let mut layers: Vec<Box<dyn Module>> = vec![
            Box::new(Conv2d::new(1, 3, (3, 3), rng)),
            Box::new(ReLU),
            Box::new(MaxPool2d::new((2, 2))),
            Box::new(Flatten),
            Box::new(Linear::new(3 * 13 * 13, 5, rng)),
        ];
        let mut net = Sequential::new();
        for layer in &layers {
            net.push_boxed(layer.clone_module());
        }
        let traced = activations(&net, image(2)).unwrap();
        assert_eq!(traced.len(), layers.len());
        // On a tape, as the trace runs: `Linear` without one multiplies by a cached
        // transposed weight, equal only within rounding.
        let tape = Tape::new();
        let mut x = tape.input(image(2));
        for (layer, traced) in layers.iter_mut().zip(&traced) {
            x = layer.forward(&x, Mode::Eval);
            assert_eq!(**traced.output, *x.value(), "{}", traced.name);
            assert!(!traced.is_container);
        }
    }

    #[test]
    fn activations_reach_nested_modules_and_end_with_the_models_output() {
        let mut net = zoo::r3((1, 28, 28), 10, 0);
        let traced = activations(&net, image(3)).unwrap();
        let find = |name: &str| {
            traced
                .iter()
                .find(|a| a.name == name)
                .unwrap_or_else(|| panic!("{name}"))
        };
        assert_eq!(find("blocks.2.main.conv1").output.shape(), &[1, 32, 14, 14]);
        assert_eq!(find("blocks.2.shortcut").kind, "Sequential");
        assert!(find("blocks.2").is_container);
        assert_eq!(find("blocks.2").depth, 1);
        let last = traced.last().unwrap();
        let logits = net.forward(&Tape::new().input(image(3)), Mode::Eval);
        assert_eq!(**last.output, *logits.value());
    }

    #[test]
    fn activations_refuse_an_input_the_model_cannot_take() {
        let net = zoo::r1((1, 28, 28), 10, 0);
        let err = activations(&net, Array4::<f32>::zeros((1, 3, 28, 28)).into_dyn()).unwrap_err();
        assert!(err.contains("conv"), "{err}");
        assert!(activations(&net, ArrayD::zeros(ndarray::IxDyn(&[]))).is_err());
    }
}
