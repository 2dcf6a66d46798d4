//! A module written outside the crate, with its own `forward`, goes everywhere a
//! built-in one does: inside a `Sequential`, through `fit`, into a model file and
//! back (registered, or into a model built in code), through fine-tuning, the
//! summary, the feature maps and the gradient check.

use crate::temp_dir;

use ferrocnn::data::Mnist;
use ferrocnn::io::{load_model, load_model_with, load_weights, save_model, IoError};
use ferrocnn::nn::{
    ConfigError, Conv2d, Flatten, FromConfig, Linear, MaxPool2d, Mode, Module, ModuleConfig, Registry,
    Sequential,
};
use ferrocnn::optim::{Adam, AdamConfig};
use ferrocnn::serde_json::{json, Value};
use ferrocnn::train::{evaluate, fit, predict, FitOptions, Progress};
use ferrocnn::{GradCheck, Padding, Tensor};
use rand::rngs::StdRng;
use rand::SeedableRng;

/// A gated convolution: `conv(x) · σ(gate(x))`.
#[derive(Clone)]
struct GatedConv {
    conv: Conv2d,
    gate: Conv2d,
}

impl GatedConv {
    fn new(cin: usize, cout: usize, rng: &mut StdRng) -> Self {
        let conv = |rng: &mut StdRng| Conv2d::new(cin, cout, (3, 3), rng).with_padding(Padding::Same);
        GatedConv {
            conv: conv(rng),
            gate: conv(rng),
        }
    }
}

impl Module for GatedConv {
    fn forward(&mut self, x: &Tensor, mode: Mode) -> Tensor {
        self.conv
            .forward(x, mode)
            .mul(&self.gate.forward(x, mode).sigmoid())
    }

    fn config(&self) -> Value {
        let (cout, cin, _, _) = self.conv.kernel_shape();
        json!({ "in": cin, "out": cout })
    }

    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>, String> {
        self.conv.output_shape(input)
    }

    ferrocnn::module_children!(conv, gate);
}

impl FromConfig for GatedConv {
    const KIND: &'static str = "GatedConv";

    fn from_config(config: &ModuleConfig, _: &Registry) -> Result<Self, ConfigError> {
        let size = |key: &str| {
            config.config[key]
                .as_u64()
                .filter(|&n| n > 0)
                .map(|n| n as usize)
                .ok_or_else(|| ConfigError::invalid(Self::KIND, format!("{key} must be a positive integer")))
        };
        Ok(GatedConv::new(
            size("in")?,
            size("out")?,
            &mut StdRng::seed_from_u64(0),
        ))
    }
}

fn net(seed: u64) -> Sequential {
    let rng = &mut StdRng::seed_from_u64(seed);
    Sequential::new()
        .add(GatedConv::new(1, 8, rng))
        .add(MaxPool2d::new((4, 4)))
        .add(Flatten)
        .add(Linear::new(8 * 7 * 7, 10, rng))
}

fn quiet(epochs: usize) -> FitOptions {
    FitOptions {
        epochs,
        batch_size: 32,
        progress: Progress::Silent,
        ..Default::default()
    }
}

fn adam() -> Adam {
    Adam::new(AdamConfig {
        lr: 3e-3,
        ..Default::default()
    })
}

#[test]
fn a_custom_module_trains_saves_loads_fine_tunes_and_is_inspected() {
    let mnist = Mnist::load("datasets/mnist").expect("shipped MNIST");
    let (train, test) = (mnist.train.take(1024), mnist.test.take(256));
    let mut model = net(1);
    assert_eq!(
        model
            .named_parameters()
            .into_iter()
            .map(|(n, _)| n)
            .collect::<Vec<_>>(),
        [
            "gatedconv1.conv.weight",
            "gatedconv1.conv.bias",
            "gatedconv1.gate.weight",
            "gatedconv1.gate.bias",
            "fc1.weight",
            "fc1.bias"
        ]
    );

    // Trains with `fit`.
    let before = evaluate(&mut model, &test, 128).unwrap().accuracy;
    let history = fit(
        &mut model,
        &mut adam(),
        &train,
        Some(&test),
        &quiet(2),
        |_, _, _| Ok(()),
    )
    .expect("fit");
    let after = history[1].eval.expect("evaluated").1;
    assert!(after > 0.6 && after > before + 0.3, "accuracy {before} → {after}");

    // Saves; without its constructor the file names what is missing.
    let dir = temp_dir::tempdir().expect("temp dir");
    let path = dir.path().join("gated.bin");
    save_model(&model, &path).expect("save");
    let err = load_model(&path).expect_err("GatedConv is not a built-in");
    assert!(
        matches!(err, IoError::Invalid { .. }) && err.to_string().contains("\"GatedConv\""),
        "{err}"
    );

    // Loads the Keras way (a registered constructor) and the PyTorch way (weights into
    // a model built in code): both compute what the trained model computes.
    let x = test.to_array(0..16).into_dyn();
    let expected = predict(&mut model, x.view());
    let mut registry = Registry::new();
    registry.register::<GatedConv>();
    let mut loaded = load_model_with(&path, &registry).expect("registered");
    assert_eq!(predict(loaded.as_mut(), x.view()), expected);
    let mut rebuilt = net(2);
    assert_ne!(predict(&mut rebuilt, x.view()), expected);
    load_weights(&mut rebuilt, &path, true).expect("same architecture");
    assert_eq!(predict(&mut rebuilt, x.view()), expected);

    // Fine-tunes: the custom module frozen by its name, a new head.
    assert_eq!(loaded.freeze("gatedconv1"), 4);
    assert_eq!(loaded.replace_head(2, 5), Ok(10));
    let frozen_before = loaded.state_dict()[..4].to_vec();
    let even_odd =
        |d: &ferrocnn::data::Dataset| d.map_labels(|l| l % 2).with_num_classes(2).expect("2 classes");
    fit(
        loaded.as_mut(),
        &mut adam(),
        &even_odd(&train),
        None,
        &quiet(1),
        |_, _, _| Ok(()),
    )
    .expect("fine-tune");
    assert_eq!(
        loaded.state_dict()[..4],
        frozen_before[..],
        "frozen by name, unchanged"
    );
    assert!(evaluate(loaded.as_mut(), &even_odd(&test), 128).unwrap().accuracy > 0.7);

    // Is inspected: the summary reaches inside it, the feature maps name its convs.
    let summary = model.summary(&[1, 28, 28]);
    let rows: Vec<(&str, &str, Option<Vec<usize>>)> = summary
        .rows
        .iter()
        .map(|r| (r.name.as_str(), r.kind.as_str(), r.output_shape.clone()))
        .collect();
    assert_eq!(rows[0], ("gatedconv1", "GatedConv", Some(vec![8, 28, 28])));
    assert_eq!(rows[1], ("gatedconv1.conv", "Conv2d", Some(vec![8, 28, 28])));
    assert_eq!(rows[2], ("gatedconv1.gate", "Conv2d", Some(vec![8, 28, 28])));
    assert_eq!(summary.total_params(), 2 * (72 + 8) + 392 * 10 + 10);
    let written = ferrocnn::viz::save_feature_maps(&model, &test.to_array(0..1), dir.path()).expect("maps");
    let names: Vec<String> = written
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        ["features_gatedconv1.conv.png", "features_gatedconv1.gate.png"]
    );
}

#[test]
fn gradients_of_a_custom_module_match_finite_differences() {
    let rng = &mut StdRng::seed_from_u64(3);
    let module = GatedConv::new(2, 3, rng);
    let x = ferrocnn::gradcheck::random_like(&[2, 2, 5, 5], 4);
    GradCheck::default()
        .check_module(&module, &x, Mode::Train)
        .expect("gradients");

    // A wrong backward is caught: a module whose forward hides a bad derivative.
    #[derive(Clone)]
    struct Bad;
    impl Module for Bad {
        fn forward(&mut self, x: &Tensor, _: Mode) -> Tensor {
            x.unary("bad_square", |v| v * v, |v, _| 3.0 * v)
        }
    }
    assert!(GradCheck::default().check_module(&Bad, &x, Mode::Train).is_err());
}

#[test]
fn r3_is_built_from_residual_blocks_and_round_trips() {
    // R3 is written with the public API alone: a Sequential of Residual blocks.
    let model = ferrocnn::zoo::r3((1, 28, 28), 10, 0);
    assert_eq!(model.num_parameters(), 174_970);
    let names: Vec<String> = model.named_parameters().into_iter().map(|(n, _)| n).collect();
    assert!(names.contains(&"blocks.2.main.conv1.weight".to_string()));
    assert!(names.contains(&"blocks.2.shortcut.conv1.weight".to_string()));
    assert!(
        !names.iter().any(|n| n.starts_with("blocks.1.shortcut")),
        "identity shortcut"
    );
    let x = ferrocnn::gradcheck::random_like(&[3, 1, 28, 28], 1);
    let dir = temp_dir::tempdir().expect("temp dir");
    let path = dir.path().join("r3.bin");
    save_model(&model, &path).expect("save");
    let mut loaded = load_model(&path).expect("built-ins only");
    assert_eq!(
        predict(loaded.as_mut(), x.view()),
        predict(&mut model.clone(), x.view())
    );
    let summary = model.summary(&[1, 28, 28]);
    let block = summary.rows.iter().find(|r| r.name == "blocks.4").expect("row");
    assert_eq!(
        (block.kind.as_str(), block.output_shape.clone()),
        ("Residual", Some(vec![64, 7, 7]))
    );
}
