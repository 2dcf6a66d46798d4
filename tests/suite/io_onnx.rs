//! ONNX export: the file read back with a protobuf reader of the test's own (opset,
//! names, shapes, operators), and the exported models run in onnxruntime on MNIST
//! test images, their outputs matched with ferrocnn's to 1e-4.
//!
//! onnxruntime is Python's (`tests/onnx/run_onnx.py`). The Python that has it comes
//! from `FERROCNN_ONNX_PYTHON` (which `.ci/run` sets to a venv it prepares), else
//! `python3` if it imports `onnxruntime`; without either the runtime check is
//! skipped with a loud message. When `FERROCNN_ONNX_PYTHON` is set, a check that
//! cannot run fails.

use crate::common;
use crate::temp_dir;

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use common::protobuf::Message;
use ferrocnn::data::Dataset;
use ferrocnn::io::onnx::EXPORTABLE_KINDS;
use ferrocnn::io::{export_onnx, load_model, to_onnx_bytes, IoError};
use ferrocnn::nn::{
    AvgPool2d, BatchNorm2d, Conv2d, Conv2dBlock, Dropout, Flatten, LeakyReLU, Linear, MaxPool2d, Mode,
    Module, ReLU, Registry, Residual, Sequential, Sigmoid, Tanh,
};
use ferrocnn::train::predict;
use ferrocnn::{zoo, Padding, Tensor};
use ndarray::{Array4, ArrayD};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Test images run through both runtimes.
const IMAGES: usize = 1000;
/// The largest difference allowed between ferrocnn's and onnxruntime's outputs.
const TOLERANCE: f32 = 1e-4;

// ---- The exported file, read back ----

/// An exported model's graph, as read back.
struct Exported<'a> {
    model: Message<'a>,
    graph: Message<'a>,
}

/// One node: name, operator, inputs, outputs, attributes by name.
#[derive(Debug)]
struct NodeView<'a> {
    name: &'a str,
    op: &'a str,
    inputs: Vec<&'a str>,
    outputs: Vec<&'a str>,
    attributes: BTreeMap<&'a str, Message<'a>>,
}

impl<'a> Exported<'a> {
    fn parse(bytes: &'a [u8]) -> Self {
        let model = Message::parse(bytes);
        // ModelProto.graph = 7.
        let graph = model.message(7);
        Exported { model, graph }
    }

    /// GraphProto.node = 1; NodeProto input = 1, output = 2, name = 3, op_type = 4,
    /// attribute = 5 (AttributeProto.name = 1).
    fn nodes(&self) -> Vec<NodeView<'a>> {
        self.graph
            .messages(1)
            .into_iter()
            .map(|n| NodeView {
                name: n.string(3),
                op: n.string(4),
                inputs: n.strings(1),
                outputs: n.strings(2),
                attributes: n.messages(5).into_iter().map(|a| (a.string(1), a)).collect(),
            })
            .collect()
    }

    /// GraphProto.initializer = 5; TensorProto dims = 1, data_type = 2, name = 8,
    /// raw_data = 9.
    fn initializers(&self) -> Vec<(String, Vec<usize>, Vec<f32>)> {
        self.graph
            .messages(5)
            .into_iter()
            .map(|t| {
                assert_eq!(t.int(2), 1, "{}: data type FLOAT", t.string(8));
                let values = t
                    .bytes(9)
                    .chunks_exact(4)
                    .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
                    .collect();
                let dims = t.ints(1).into_iter().map(|d| d as usize).collect();
                (t.string(8).to_string(), dims, values)
            })
            .collect()
    }

    /// GraphProto input = 11 / output = 12: name and dims (`Err` for a symbolic
    /// one). ValueInfoProto name = 1, type = 2 → TypeProto.tensor_type = 1 →
    /// elem_type = 1, shape = 2 → dim = 1 → dim_value = 1 | dim_param = 2.
    fn value_infos(&self, field: u32) -> Vec<(String, Vec<Result<usize, String>>)> {
        self.graph
            .messages(field)
            .into_iter()
            .map(|v| {
                let tensor = v.message(2).message(1);
                assert_eq!(tensor.int(1), 1, "{}: element type FLOAT", v.string(1));
                let dims = tensor
                    .message(2)
                    .messages(1)
                    .into_iter()
                    .map(|d| match d.strings(2).first() {
                        Some(name) => Err(name.to_string()),
                        None => Ok(d.int(1) as usize),
                    })
                    .collect();
                (v.string(1).to_string(), dims)
            })
            .collect()
    }
}

impl NodeView<'_> {
    /// AttributeProto.ints = 8, type INTS (7).
    fn ints(&self, name: &str) -> Vec<i64> {
        let a = &self.attributes[name];
        assert_eq!(a.int(20), 7, "{}.{name} is INTS", self.name);
        a.ints(8)
    }

    /// AttributeProto.i = 3, type INT (2).
    fn int(&self, name: &str) -> i64 {
        let a = &self.attributes[name];
        assert_eq!(a.int(20), 2, "{}.{name} is INT", self.name);
        a.int(3)
    }

    /// AttributeProto.f = 2, type FLOAT (1).
    fn float(&self, name: &str) -> f32 {
        let a = &self.attributes[name];
        assert_eq!(a.int(20), 1, "{}.{name} is FLOAT", self.name);
        a.float(2).expect("f")
    }
}

fn op_counts(nodes: &[NodeView]) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for n in nodes {
        *counts.entry(n.op.to_string()).or_insert(0) += 1;
    }
    counts
}

/// Checks what every export must hold: ONNX's versions, ferrocnn as producer,
/// `input [N, C, H, W]` and `logits [N, …]`, initializers that are the state dict
/// (names, order, shapes, values bit for bit), and nodes in topological order
/// reading only what exists, with unique names and outputs.
fn check_structure(model: &dyn Module, bytes: &[u8], input: [usize; 3], output: &[usize]) {
    let onnx = Exported::parse(bytes);
    // ModelProto: ir_version = 1, producer_name = 2, producer_version = 3,
    // opset_import = 8 (domain = 1, version = 2), metadata_props = 14.
    assert_eq!(onnx.model.int(1), 8, "ir_version");
    assert_eq!(onnx.model.string(2), "ferrocnn");
    assert_eq!(onnx.model.string(3), env!("CARGO_PKG_VERSION"));
    let opsets = onnx.model.messages(8);
    assert_eq!(opsets.len(), 1);
    assert_eq!((opsets[0].string(1), opsets[0].int(2)), ("", 17));
    let metadata: Vec<&str> = onnx.model.messages(14).iter().map(|e| e.string(1)).collect();
    assert_eq!(metadata, ["ferrocnn.architecture"]);

    let batch = || Err("N".to_string());
    let dims = |shape: &[usize]| {
        std::iter::once(batch())
            .chain(shape.iter().map(|&d| Ok(d)))
            .collect::<Vec<_>>()
    };
    assert_eq!(onnx.value_infos(11), [("input".to_string(), dims(&input))]);
    assert_eq!(onnx.value_infos(12), [("logits".to_string(), dims(output))]);

    let state = model.state_dict();
    let initializers = onnx.initializers();
    assert_eq!(initializers.len(), state.len());
    for ((name, dims, values), (state_name, value)) in initializers.iter().zip(&state) {
        assert_eq!(name, state_name);
        assert_eq!(dims.as_slice(), value.shape(), "{name}");
        assert!(
            values
                .iter()
                .zip(value.iter())
                .all(|(a, b)| a.to_bits() == b.to_bits()),
            "{name}"
        );
        assert_eq!(values.len(), value.len(), "{name}");
    }

    let mut known: HashSet<&str> = initializers.iter().map(|(n, _, _)| n.as_str()).collect();
    known.insert("input");
    let mut names = HashSet::new();
    for node in onnx.nodes() {
        for input in &node.inputs {
            assert!(
                known.contains(input),
                "node {} reads {input:?} before it exists",
                node.name
            );
        }
        assert_eq!(node.outputs.len(), 1, "{}", node.name);
        assert!(
            known.insert(node.outputs[0]),
            "{} is written twice",
            node.outputs[0]
        );
        assert!(names.insert(node.name), "two nodes named {}", node.name);
    }
    assert!(known.contains("logits"), "no node writes the output");
    // Every value between nodes has its shape recorded (GraphProto.value_info = 13).
    let infos: HashSet<String> = onnx.value_infos(13).into_iter().map(|(n, _)| n).collect();
    for node in onnx.nodes() {
        assert!(
            node.outputs[0] == "logits" || infos.contains(node.outputs[0]),
            "{}",
            node.outputs[0]
        );
    }
}

#[test]
fn r1_exports_its_layers_as_named_onnx_nodes() {
    let model = zoo::r1((1, 28, 28), 10, 0);
    let bytes = to_onnx_bytes(&model, (1, 28, 28)).expect("export");
    check_structure(&model, &bytes, [1, 28, 28], &[10]);
    let onnx = Exported::parse(&bytes);
    let nodes = onnx.nodes();
    let summary: Vec<(&str, &str)> = nodes.iter().map(|n| (n.name, n.op)).collect();
    // Dropout computes nothing in evaluation: no node.
    assert_eq!(
        summary,
        [
            ("conv1", "Conv"),
            ("conv1.relu", "Relu"),
            ("conv1.max_pool", "MaxPool"),
            ("conv2", "Conv"),
            ("conv2.relu", "Relu"),
            ("conv2.max_pool", "MaxPool"),
            ("flatten1", "Flatten"),
            ("fc1", "Gemm"),
        ]
    );
    assert_eq!(nodes[0].inputs, ["input", "conv1.weight", "conv1.bias"]);
    assert_eq!(nodes[0].ints("kernel_shape"), [3, 3]);
    assert_eq!(nodes[0].ints("pads"), [0, 0, 0, 0]);
    assert_eq!(nodes[2].ints("strides"), [2, 2]);
    assert_eq!(nodes[6].int("axis"), 1);
    assert_eq!(nodes[7].inputs, ["flatten1", "fc1.weight", "fc1.bias"]);
    assert_eq!(nodes[7].int("transB"), 1);
    assert_eq!(nodes[7].outputs, ["logits"]);
}

#[test]
fn a_models_data_spec_gives_the_input_shape_and_goes_into_the_metadata() {
    let model = zoo::r1((3, 28, 28), 2, 0);
    let spec = ferrocnn::io::DataSpec {
        input: (3, 28, 28),
        classes: vec!["cat".into(), "dog".into()],
        normalize: ferrocnn::data::Normalize::new(vec![0.4, 0.5, 0.6], vec![0.2, 0.2, 0.2]).unwrap(),
    };
    let bytes = ferrocnn::io::to_onnx_bytes_with_data(&model, &spec).expect("export");
    let onnx = Exported::parse(&bytes);
    // StringStringEntryProto: key = 1, value = 2.
    let metadata: Vec<(&str, &str)> = onnx
        .model
        .messages(14)
        .iter()
        .map(|e| (e.string(1), e.string(2)))
        .collect();
    assert_eq!(
        metadata[1..],
        [
            ("ferrocnn.classes", r#"["cat","dog"]"#),
            (
                "ferrocnn.normalize",
                r#"{"mean":[0.4,0.5,0.6],"std":[0.2,0.2,0.2]}"#
            ),
        ]
    );
    let input = &onnx.value_infos(11)[0];
    assert_eq!(input.1[1..], [Ok(3), Ok(28), Ok(28)]);
}

#[test]
fn r3_exports_residual_blocks_with_batch_norm_and_projections() {
    let model = zoo::r3((1, 28, 28), 10, 0);
    let bytes = to_onnx_bytes(&model, (1, 28, 28)).expect("export");
    check_structure(&model, &bytes, [1, 28, 28], &[10]);
    let onnx = Exported::parse(&bytes);
    let nodes = onnx.nodes();
    let expected: BTreeMap<String, usize> = [
        ("Conv", 1 + 6 * 2 + 2),
        ("BatchNormalization", 1 + 6 * 2 + 2),
        ("Relu", 1 + 6 * 2),
        ("Add", 6),
        ("GlobalAveragePool", 1),
        ("Flatten", 1),
        ("Gemm", 1),
    ]
    .into_iter()
    .map(|(op, n)| (op.to_string(), n))
    .collect();
    assert_eq!(op_counts(&nodes), expected);
    let node = |name: &str| {
        nodes
            .iter()
            .find(|n| n.name == name)
            .unwrap_or_else(|| panic!("no node {name}"))
    };
    let bn = node("blocks.2.main.bn1");
    assert_eq!(bn.op, "BatchNormalization");
    assert_eq!(
        bn.inputs,
        [
            "blocks.2.main.conv1",
            "blocks.2.main.bn1.weight",
            "blocks.2.main.bn1.bias",
            "blocks.2.main.bn1.running_mean",
            "blocks.2.main.bn1.running_var"
        ]
    );
    assert_eq!(bn.float("epsilon"), 1e-5);
    let stride2 = node("blocks.2.main.conv1");
    assert_eq!(
        (stride2.ints("strides"), stride2.ints("pads")),
        (vec![2, 2], vec![1, 1, 1, 1])
    );
    assert_eq!(
        node("blocks.2.add").inputs,
        ["blocks.2.main.bn2", "blocks.2.shortcut.bn1"]
    );
    assert_eq!(
        node("blocks.1.add").inputs,
        ["blocks.1.main.bn2", "blocks.0.relu"]
    );
    assert_eq!(node("blocks.1.relu").inputs, ["blocks.1.add"]);
    assert_eq!(node("gap1.flatten").inputs, ["gap1"]);
    let shapes: BTreeMap<String, Vec<Result<usize, String>>> = onnx.value_infos(13).into_iter().collect();
    assert_eq!(shapes["blocks.4.relu"][1..], [Ok(64), Ok(7), Ok(7)]);
    assert_eq!(shapes["gap1"][1..], [Ok(64), Ok(1), Ok(1)]);
}

#[test]
fn same_padding_is_written_as_the_pads_ferrocnn_uses() {
    let rng = &mut StdRng::seed_from_u64(0);
    let model = Sequential::new()
        .add(Conv2d::new(1, 4, (3, 3), rng).with_padding(Padding::Same))
        // TensorFlow's rule: 28 at stride 2 needs one row and column, at the end.
        .add(
            Conv2d::new(4, 4, (3, 3), rng)
                .with_stride((2, 2))
                .with_padding(Padding::Same),
        )
        .add(MaxPool2d::new((2, 2)).with_padding(Padding::Same))
        .add(
            Conv2d::new(4, 4, (3, 3), rng)
                .with_dilation((2, 2))
                .with_padding(Padding::Same),
        );
    let bytes = to_onnx_bytes(&model, (1, 28, 28)).expect("export");
    check_structure(&model, &bytes, [1, 28, 28], &[4, 7, 7]);
    let pads: Vec<Vec<i64>> = Exported::parse(&bytes)
        .nodes()
        .iter()
        .map(|n| n.ints("pads"))
        .collect();
    assert_eq!(
        pads,
        [
            vec![1, 1, 1, 1],
            vec![0, 0, 1, 1],
            vec![0, 0, 0, 0],
            vec![2, 2, 2, 2]
        ]
    );
}

#[test]
fn an_empty_model_passes_its_input_through_an_identity() {
    let model = Sequential::new().add(Dropout::new(0.5, &mut StdRng::seed_from_u64(0)));
    let bytes = to_onnx_bytes(&model, (1, 2, 2)).expect("export");
    check_structure(&model, &bytes, [1, 2, 2], &[1, 2, 2]);
    let nodes = Exported::parse(&bytes)
        .nodes()
        .into_iter()
        .map(|n| (n.op, n.inputs))
        .collect::<Vec<_>>();
    assert_eq!(nodes, [("Identity", vec!["input"])]);
}

/// A module of the user's own: the exporter cannot know what it computes.
#[derive(Clone)]
struct Doubler;

impl Module for Doubler {
    fn forward(&mut self, x: &Tensor, _: Mode) -> Tensor {
        x + x
    }
}

#[test]
fn a_module_of_an_unknown_kind_is_an_error_naming_it() {
    let rng = &mut StdRng::seed_from_u64(0);
    let mut blocks = Sequential::new();
    blocks.push_named("double", Doubler);
    let mut model = Sequential::new().add(Conv2d::new(1, 2, (3, 3), rng));
    model.push_named("blocks", blocks);
    let err = to_onnx_bytes(&model, (1, 8, 8)).unwrap_err();
    assert!(
        matches!(&err, IoError::NotExportable { module, kind, .. } if module == "blocks.double" && kind == "Doubler")
    );
    let message = err.to_string();
    for says in [
        "blocks.double",
        "Doubler",
        "Conv2dBlock",
        "Residual",
        "BatchNorm2d",
    ] {
        assert!(message.contains(says), "{message:?} does not say {says:?}");
    }
    let dir = temp_dir::tempdir().unwrap();
    let path = dir.path().join("model.onnx");
    assert!(export_onnx(&model, (1, 8, 8), &path).is_err());
    assert!(
        !path.exists(),
        "nothing is written for a model that cannot be exported"
    );
}

#[test]
fn a_module_named_as_the_graphs_input_or_output_is_an_error() {
    for name in ["input", "logits"] {
        let mut model = Sequential::new();
        model.push_named(name, ReLU);
        model.push(Tanh);
        let err = to_onnx_bytes(&model, (1, 4, 4)).unwrap_err();
        assert!(
            matches!(&err, IoError::NotExportable { module, kind, .. } if module == name && kind == "ReLU"),
            "{err}"
        );
        assert!(err.to_string().contains("rename the module"), "{err}");
    }
}

#[test]
fn an_input_the_model_does_not_take_is_an_error() {
    let model = zoo::r1((1, 28, 28), 10, 0);
    let err = to_onnx_bytes(&model, (3, 28, 28)).unwrap_err();
    let message = err.to_string();
    assert!(matches!(err, IoError::NotExportable { .. }), "{message}");
    assert!(
        message.contains("[3, 28, 28]") && message.contains("conv"),
        "{message}"
    );
}

#[test]
fn export_onnx_writes_the_bytes_atomically() {
    let model = zoo::r1((1, 28, 28), 10, 0);
    let dir = temp_dir::tempdir().unwrap();
    let path = dir.path().join("r1.onnx");
    export_onnx(&model, (1, 28, 28), &path).expect("export");
    assert_eq!(
        std::fs::read(&path).unwrap(),
        to_onnx_bytes(&model, (1, 28, 28)).unwrap()
    );
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["r1.onnx"]);
}

#[test]
fn every_built_in_kind_exports() {
    // A layer added to the registry must be taught to the exporter too.
    let registry = Registry::new();
    let mut built_in: Vec<&str> = registry.kinds().collect();
    let mut exportable = EXPORTABLE_KINDS.to_vec();
    built_in.sort_unstable();
    exportable.sort_unstable();
    assert_eq!(built_in, exportable);
}

// ---- The exported models in onnxruntime ----

/// The Python to run `run_onnx.py` with, or `None` (after saying so) when the
/// check cannot run and nobody asked for it.
fn onnx_python() -> Option<PathBuf> {
    if let Some(python) = std::env::var_os("FERROCNN_ONNX_PYTHON") {
        return Some(PathBuf::from(python));
    }
    let has_onnxruntime = Command::new("python3")
        .args(["-c", "import onnxruntime, numpy"])
        .output()
        .is_ok_and(|o| o.status.success());
    if has_onnxruntime {
        return Some(PathBuf::from("python3"));
    }
    eprintln!(
        "\n!!! SKIPPED: the onnxruntime check of the ONNX export: neither FERROCNN_ONNX_PYTHON nor \
         python3 has onnxruntime and numpy (`.ci/run` installs them into a venv; or \
         `pip install onnxruntime numpy`)\n"
    );
    None
}

/// MNIST's test set, normalised as in training.
fn mnist_test() -> Dataset {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("datasets/mnist");
    Dataset::from_idx(
        dir.join("t10k-images-idx3-ubyte.gz"),
        dir.join("t10k-labels-idx1-ubyte.gz"),
    )
    .expect("MNIST test set")
}

/// `model`'s outputs for `x` as onnxruntime computes them from its export.
fn onnxruntime_outputs(
    python: &Path,
    dir: &Path,
    name: &str,
    model: &dyn Module,
    x: &Array4<f32>,
) -> ArrayD<f32> {
    let (n, c, h, w) = x.dim();
    let onnx = dir.join(format!("{name}.onnx"));
    export_onnx(model, (c, h, w), &onnx).expect("export");
    let input = dir.join(format!("{name}.input.f32"));
    let output = dir.join(format!("{name}.output.f32"));
    let raw: Vec<u8> = x.iter().flat_map(|v| v.to_le_bytes()).collect();
    std::fs::write(&input, raw).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/onnx/run_onnx.py");
    let run = Command::new(python)
        .arg(&script)
        .arg(&onnx)
        .arg(&input)
        .arg(format!("{n},{c},{h},{w}"))
        .arg(&output)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", python.display()));
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(
        run.status.success(),
        "{name}: run_onnx.py failed ({}):\n{stderr}",
        run.status
    );
    eprint!("{name}: {stderr}");
    let values: Vec<f32> = std::fs::read(&output)
        .unwrap()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
        .collect();
    let classes = values.len() / n;
    ArrayD::from_shape_vec(vec![n, classes], values).expect("an output per image")
}

/// R3 with batch norm that does something: γ and β drawn at random, and running
/// statistics moved by training-mode passes over MNIST images the check does not use.
fn r3_with_trained_statistics(images: &Array4<f32>) -> Sequential {
    let mut model = zoo::r3((1, 28, 28), 10, 3);
    let rng = &mut StdRng::seed_from_u64(5);
    for (name, param) in model.named_parameters_mut() {
        if name.contains("bn") {
            let shift = if name.ends_with("weight") { 1.0 } else { 0.0 };
            param
                .value_mut()
                .mapv_inplace(|_| shift + rng.random_range(-0.5..0.5));
        }
    }
    for batch in images.axis_chunks_iter(ndarray::Axis(0), 100).take(3) {
        model.forward(&Tensor::new(batch.to_owned().into_dyn()), Mode::Train);
    }
    model
}

/// Every built-in layer kind in one small net, with the settings the zoo's nets do
/// not use: padding Same at stride 2, dilation, no bias, average pooling with and
/// without padded zeros, the other activations.
fn every_layer(seed: u64) -> Sequential {
    let rng = &mut StdRng::seed_from_u64(seed);
    let main = Sequential::new()
        .add(
            Conv2d::new(8, 8, (3, 3), rng)
                .with_padding(Padding::Same)
                .without_bias(),
        )
        .add(BatchNorm2d::new(8))
        .add(Tanh);
    Sequential::new()
        .add(
            Conv2d::new(1, 8, (5, 5), rng)
                .with_stride((2, 2))
                .with_padding(Padding::Same),
        )
        .add(LeakyReLU { negative_slope: 0.1 })
        .add(Residual::new(main))
        .add(
            Conv2dBlock::new(Conv2d::new(8, 8, (3, 3), rng).with_dilation((2, 2))).with_max_pool(
                MaxPool2d::new((3, 3))
                    .with_stride((2, 2))
                    .with_padding(Padding::Explicit(1, 1)),
            ),
        )
        .add(AvgPool2d::new((2, 2)).with_padding(Padding::Same, false))
        .add(Sigmoid)
        .add(AvgPool2d::new((2, 2)).with_padding(Padding::Explicit(1, 1), true))
        .add(Dropout::new(0.3, rng))
        .add(Flatten)
        .add(Linear::new(8 * 2 * 2, 16, rng).without_bias())
        .add(ReLU)
        .add(Linear::new(16, 10, rng))
}

#[test]
fn exported_models_match_ferrocnn_in_onnxruntime() {
    let Some(python) = onnx_python() else { return };
    let started = std::time::Instant::now();
    let test = mnist_test();
    let images = test.to_array(0..IMAGES);
    let holdout = test.to_array(IMAGES..IMAGES + 300);
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/mnist.bin");
    let models: Vec<(&str, Box<dyn Module>)> = vec![
        ("mnist", load_model(&shipped).expect("models/mnist.bin")),
        ("r1", Box::new(zoo::r1((1, 28, 28), 10, 1))),
        ("r3", Box::new(r3_with_trained_statistics(&holdout))),
        ("every_layer", Box::new(every_layer(2))),
    ];
    let dir = temp_dir::tempdir().unwrap();
    let mut worst = Vec::new();
    for (name, mut model) in models {
        let ours = predict(model.as_mut(), images.view().into_dyn());
        let theirs = onnxruntime_outputs(&python, dir.path(), name, model.as_ref(), &images);
        assert_eq!(ours.shape(), theirs.shape(), "{name}");
        let max_diff = ours
            .iter()
            .zip(&theirs)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        let scale = ours.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        eprintln!("{name}: max |ferrocnn − onnxruntime| = {max_diff:e} over {IMAGES} images (max |output| {scale:.3})");
        worst.push((name, max_diff));
    }
    eprintln!("onnxruntime check took {:.1} s", started.elapsed().as_secs_f64());
    for (name, diff) in worst {
        assert!(
            diff <= TOLERANCE,
            "{name}: outputs differ by {diff:e}, more than {TOLERANCE:e}"
        );
    }
}
