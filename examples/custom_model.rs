//! A model of your own: written outside the library with its own `forward`, then
//! trained, saved, loaded back (both ways), fine-tuned and inspected like any
//! built-in one. `cargo run --example custom_model`.
//!
//! The model is a small residual net whose block scales its branch by a learned
//! factor (a "ReZero" block): a module with children *and* a parameter of its own.

use std::error::Error;

use ferrocnn::data::Mnist;
use ferrocnn::io::{load_model_with, load_weights, save_model};
use ferrocnn::nn::{
    BatchNorm2d, ConfigError, Conv2d, FromConfig, GlobalAvgPool, Linear, Mode, Module, ModuleConfig, Param,
    Registry,
};
use ferrocnn::optim::{Adam, AdamConfig};
use ferrocnn::serde_json::{json, Value};
use ferrocnn::train::{evaluate, fit, FitOptions};
use ferrocnn::{Padding, Tensor};
use rand::rngs::StdRng;
use rand::SeedableRng;

/// `x + α · conv2(relu(bn(conv1(x))))`, with α learned and starting at 0, so the
/// block starts as the identity.
#[derive(Clone)]
struct ReZeroBlock {
    conv1: Conv2d,
    bn: BatchNorm2d,
    conv2: Conv2d,
    alpha: Param,
}

impl ReZeroBlock {
    fn new(channels: usize, rng: &mut StdRng) -> Self {
        let conv =
            |rng: &mut StdRng| Conv2d::new(channels, channels, (3, 3), rng).with_padding(Padding::Same);
        ReZeroBlock {
            conv1: conv(rng).without_bias(),
            bn: BatchNorm2d::new(channels),
            conv2: conv(rng),
            alpha: Param::new(ndarray::arr1(&[0.0f32]).into_dyn()),
        }
    }
}

impl Module for ReZeroBlock {
    fn forward(&mut self, x: &Tensor, mode: Mode) -> Tensor {
        let h = self.bn.forward(&self.conv1.forward(x, mode), mode).relu();
        let branch = self.conv2.forward(&h, mode);
        x + &branch.mul(&self.alpha.bind(x))
    }

    // The name model files store it under (the registry's key).
    fn kind(&self) -> &str {
        Self::KIND
    }

    // What a model file needs to rebuild the block: its width.
    fn config(&self) -> Value {
        json!({ "channels": self.bn.channels() })
    }

    // Children and a parameter of its own (named after the fields).
    ferrocnn::module_children!(conv1, bn, conv2; params: alpha);

    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>, String> {
        self.conv1.output_shape(input)
    }
}

/// Registered so that `load_model_with` can rebuild it from a file (Keras's
/// custom objects); the children's weights come from the file.
impl FromConfig for ReZeroBlock {
    const KIND: &'static str = "ReZeroBlock";

    fn from_config(config: &ModuleConfig, _: &Registry) -> Result<Self, ConfigError> {
        let channels = config.config["channels"]
            .as_u64()
            .filter(|&c| c > 0)
            .ok_or_else(|| ConfigError::invalid(Self::KIND, "needs a positive \"channels\""))?;
        Ok(ReZeroBlock::new(channels as usize, &mut StdRng::seed_from_u64(0)))
    }
}

/// The whole net: a stem, two blocks, global average pooling, a classifier.
#[derive(Clone)]
struct TinyResNet {
    stem: Conv2d,
    block1: ReZeroBlock,
    block2: ReZeroBlock,
    head: Linear,
}

impl TinyResNet {
    fn new(classes: usize, seed: u64) -> Self {
        let rng = &mut StdRng::seed_from_u64(seed);
        TinyResNet {
            stem: Conv2d::new(1, 16, (3, 3), rng)
                .with_stride((2, 2))
                .with_padding(Padding::Same),
            block1: ReZeroBlock::new(16, rng),
            block2: ReZeroBlock::new(16, rng),
            head: Linear::new(16, classes, rng),
        }
    }
}

impl Module for TinyResNet {
    fn forward(&mut self, x: &Tensor, mode: Mode) -> Tensor {
        let h = self.stem.forward(x, mode).relu();
        let h = self.block2.forward(&self.block1.forward(&h, mode), mode);
        self.head.forward(&GlobalAvgPool.forward(&h, mode), mode)
    }

    fn kind(&self) -> &str {
        "TinyResNet"
    }

    ferrocnn::module_children!(stem, block1, block2, head);
}

fn main() -> Result<(), Box<dyn Error>> {
    let mnist = Mnist::load("datasets/mnist")?;
    let (train, test) = (mnist.train.take(6000), mnist.test.take(2000));

    // Train it with `fit`, like any model.
    let mut model = TinyResNet::new(10, 1);
    println!("{}", model.summary(&[1, 28, 28]));
    let mut adam = Adam::new(AdamConfig {
        lr: 3e-3,
        ..Default::default()
    });
    let options = FitOptions {
        epochs: 2,
        batch_size: 64,
        ..Default::default()
    };
    fit(&mut model, &mut adam, &train, Some(&test), &options, |_, _, _| {
        Ok(())
    })?;

    // Save it: the file names every module, `ReZeroBlock` included.
    let dir = std::env::temp_dir().join("ferrocnn-custom-model");
    let path = dir.join("tiny_resnet.bin");
    save_model(&model, &path)?;
    println!("saved {}", path.display());

    // Load it back, way 1 (PyTorch's): build the model in code, load the weights.
    let mut rebuilt = TinyResNet::new(10, 99);
    load_weights(&mut rebuilt, &path, true)?;
    // Way 2 (Keras's): register the custom block and load the whole model from the
    // file. The top-level struct is registered too, by a constructor function.
    let mut registry = Registry::new();
    registry.register::<ReZeroBlock>();
    registry.register_builder("TinyResNet", |config, registry| {
        let head = config.child("head")?;
        let classes = head.config["out_features"].as_u64().unwrap_or(10) as usize;
        let mut net = TinyResNet::new(classes, 0);
        net.block1 = ReZeroBlock::from_config(config.child("block1")?, registry)?;
        net.block2 = ReZeroBlock::from_config(config.child("block2")?, registry)?;
        Ok(Box::new(net))
    });
    let mut loaded = load_model_with(&path, &registry)?;
    let accuracy = |m: &mut dyn Module| evaluate(m, &test, 500).map(|e| 100.0 * e.accuracy);
    println!(
        "test accuracy: trained {:.2}%, weights loaded into code {:.2}%, loaded from the file {:.2}%",
        accuracy(&mut model)?,
        accuracy(&mut rebuilt)?,
        accuracy(loaded.as_mut())?
    );

    // Fine-tune: freeze the stem and the first block by name, new head for even/odd.
    let frozen = loaded.freeze("stem") + loaded.freeze("block1");
    let old = loaded.replace_head(2, 7)?;
    println!("froze {frozen} parameters; head {old} → 2 outputs");
    let even_odd = |d: &ferrocnn::data::Dataset| d.map_labels(|l| l % 2).with_num_classes(2);
    let (train2, test2) = (even_odd(&train.take(1000))?, even_odd(&test)?);
    let mut adam = Adam::new(AdamConfig {
        lr: 3e-3,
        ..Default::default()
    });
    fit(
        loaded.as_mut(),
        &mut adam,
        &train2,
        None,
        &FitOptions::default(),
        |_, _, _| Ok(()),
    )?;
    println!(
        "even/odd after one epoch: {:.2}%",
        100.0 * evaluate(loaded.as_mut(), &test2, 500)?.accuracy
    );

    // Inspect it: every conv's feature maps, named by their dotted names.
    let image = test.to_array(0..1);
    for written in ferrocnn::viz::save_feature_maps(&model, &image, &dir)? {
        println!("wrote {}", written.display());
    }
    Ok(())
}
