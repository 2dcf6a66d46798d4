//! From a module tree to an ONNX graph: each built-in layer becomes the ONNX
//! operators that compute what its evaluation-mode `forward` computes, and each
//! container wires its children's graphs together.
//!
//! Names are kept, so that a node in Netron or an onnxruntime error leads back to
//! the module: initializers are the state dict's tensors under their dotted names
//! (`blocks.0.main.bn1.running_mean`), a node is named by its module's path
//! (`conv1`), and a module that needs several operators names the ones after the
//! first by their part (`conv1.relu`, `blocks.0.add`). Each node's output carries
//! its node's name.
//!
//! What changes between training and evaluation is written in evaluation form:
//! batch norm normalizes with its running statistics; dropout, the identity then,
//! writes no node. Padding is written as explicit amounts per side, resolved for
//! the input shape by the same code the ops use ([`Padding::resolve`]): ONNX's
//! `auto_pad = SAME_UPPER` would agree with ferrocnn's `Same` today, but explicit
//! pads leave no rule for a reader to get wrong.

use std::collections::HashSet;

use crate::io::format::IoError;
use crate::nn::{
    join, AvgPool2d, BatchNorm2d, Conv2d, Conv2dBlock, Dropout, Flatten, GlobalAvgPool, LeakyReLU, Linear,
    MaxPool2d, Module, ReLU, Residual, Sequential, Sigmoid, Tanh,
};
use crate::ops::Padding;

use super::proto::{Attribute, AttributeValue, Dim, Graph, Node, Tensor, ValueInfo};

/// The module kinds the exporter writes: every built-in layer and container.
pub const EXPORTABLE_KINDS: &[&str] = &[
    "Sequential",
    "Residual",
    "Conv2d",
    "Conv2dBlock",
    "BatchNorm2d",
    "Linear",
    "MaxPool2d",
    "AvgPool2d",
    "GlobalAvgPool",
    "Flatten",
    "Dropout",
    "ReLU",
    "LeakyReLU",
    "Sigmoid",
    "Tanh",
];

/// The graph input's name.
pub(crate) const INPUT: &str = "input";
/// The graph output's name.
pub(crate) const OUTPUT: &str = "logits";
/// The batch dimension's name: left open, so any batch size runs.
const BATCH: &str = "N";

/// A value flowing between nodes: its name and its shape without the batch axis.
#[derive(Clone, Debug)]
struct Value {
    name: String,
    shape: Vec<usize>,
}

/// The nodes written so far and the shapes of their outputs.
#[derive(Default)]
struct Builder {
    nodes: Vec<Node>,
    shapes: Vec<(String, Vec<usize>)>,
}

/// The graph of `model` for inputs of `(channels, height, width)`, its weights
/// named as in its state dict.
pub(crate) fn graph(model: &dyn Module, (c, h, w): (usize, usize, usize)) -> Result<Graph, IoError> {
    let input = Value {
        name: INPUT.into(),
        shape: vec![c, h, w],
    };
    // The whole model first: its error names the first layer that cannot take the
    // input, rather than whichever container the walk is in.
    model.output_shape(&input.shape).map_err(|reason| {
        not_exportable(
            "",
            model,
            format!("it does not take inputs of [{c}, {h}, {w}]: {reason}"),
        )
    })?;
    let mut builder = Builder::default();
    let output = builder.module("", model, input.clone())?;
    builder.name_output(&output);
    let initializers: Vec<Tensor> = model
        .state_dict()
        .into_iter()
        .map(|(name, value)| Tensor {
            name,
            dims: value.shape().to_vec(),
            values: value.iter().copied().collect(),
        })
        .collect();
    check_unique_names(&builder.nodes, &initializers)?;
    let between = builder
        .shapes
        .iter()
        .map(|(name, shape)| value_info(name, shape))
        .collect();
    Ok(Graph {
        name: model.kind().to_string(),
        nodes: builder.nodes,
        initializers,
        doc_string: format!(
            "{} in evaluation mode; input [{BATCH}, {c}, {h}, {w}] as the model was trained on (normalised)",
            model.kind()
        ),
        inputs: vec![value_info(INPUT, &input.shape)],
        outputs: vec![value_info(OUTPUT, &output.shape)],
        value_info: between,
    })
}

impl Builder {
    /// Appends a node with one output, named as the node, of `shape`.
    fn node(
        &mut self,
        name: String,
        op_type: &'static str,
        inputs: Vec<String>,
        attributes: Vec<Attribute>,
        module: &dyn Module,
        shape: Vec<usize>,
    ) -> Value {
        self.nodes.push(Node {
            name: name.clone(),
            op_type,
            inputs,
            outputs: vec![name.clone()],
            attributes,
            doc_string: module.kind().to_string(),
        });
        self.shapes.push((name.clone(), shape.clone()));
        Value { name, shape }
    }

    /// Renames the model's output to [`OUTPUT`]: the last node's output when it is
    /// that node's (nothing else reads it then), else through an `Identity` (for a
    /// model that computes nothing, whose output is its input).
    fn name_output(&mut self, output: &Value) {
        match self.nodes.last_mut() {
            Some(last) if last.outputs[0] == output.name => {
                last.outputs[0] = OUTPUT.into();
                self.shapes.retain(|(name, _)| *name != output.name);
            }
            _ => {
                let node = Node {
                    name: OUTPUT.into(),
                    op_type: "Identity",
                    inputs: vec![output.name.clone()],
                    outputs: vec![OUTPUT.into()],
                    attributes: Vec::new(),
                    doc_string: String::new(),
                };
                self.nodes.push(node);
            }
        }
    }

    /// Appends a node whose output has its input's shape (an activation).
    fn elementwise(
        &mut self,
        name: String,
        op_type: &'static str,
        attributes: Vec<Attribute>,
        x: Value,
        module: &dyn Module,
    ) -> Value {
        let shape = x.shape.clone();
        self.node(name, op_type, vec![x.name], attributes, module, shape)
    }

    /// Writes the nodes of `module` (at dotted `path`) applied to `x`; returns its
    /// output. Containers wire their children; everything else is a layer.
    fn module(&mut self, path: &str, module: &dyn Module, x: Value) -> Result<Value, IoError> {
        if module.is::<Sequential>() {
            let mut x = x;
            for (child, layer) in module.children() {
                x = self.module(&join(path, &child), layer, x)?;
            }
            return Ok(x);
        }
        let Some(residual) = module.downcast_ref::<Residual>() else {
            return self.layer(path, module, x);
        };
        let shape = output_shape(path, module, &x.shape)?;
        let main = self.module(&join(path, "main"), residual.main.as_ref(), x.clone())?;
        let skip = match &residual.shortcut {
            Some(shortcut) => self.module(&join(path, "shortcut"), shortcut.as_ref(), x)?,
            None => x,
        };
        let name = node_name(path, module);
        let inputs = vec![main.name, skip.name];
        let sum = self.node(format!("{name}.add"), "Add", inputs, vec![], module, shape);
        Ok(match residual.relu {
            true => self.elementwise(format!("{name}.relu"), "Relu", vec![], sum, module),
            false => sum,
        })
    }

    /// Writes the nodes of the layer `module` (at dotted `path`) applied to `x`.
    fn layer(&mut self, path: &str, module: &dyn Module, x: Value) -> Result<Value, IoError> {
        let name = node_name(path, module);
        let weight = |part: &str| join(path, part);
        if let Some(conv) = module.downcast_ref::<Conv2d>() {
            let shape = output_shape(path, module, &x.shape)?;
            Ok(self.conv(name, path, conv, x, module, shape))
        } else if let Some(block) = module.downcast_ref::<Conv2dBlock>() {
            let block_shape = output_shape(path, module, &x.shape)?;
            let conv_shape = output_shape(path, &block.conv, &x.shape)?;
            let mut y = self.conv(name.clone(), path, &block.conv, x, module, conv_shape);
            // The fused op orders bias, pooling and ReLU as is fastest; every order
            // gives the same values (max commutes with a shift and with ReLU), and
            // this one reads as the block is written.
            if block.relu {
                y = self.elementwise(format!("{name}.relu"), "Relu", vec![], y, module);
            }
            if let Some(pool) = &block.max_pool {
                let attributes = window(pool.kernel, pool.stride, pool.padding, (1, 1), &y.shape);
                let pool_name = format!("{name}.max_pool");
                y = self.node(
                    pool_name,
                    "MaxPool",
                    vec![y.name],
                    attributes,
                    module,
                    block_shape,
                );
            }
            Ok(y)
        } else if let Some(bn) = module.downcast_ref::<BatchNorm2d>() {
            let shape = output_shape(path, module, &x.shape)?;
            let stats = ["weight", "bias", "running_mean", "running_var"].map(weight);
            let inputs = std::iter::once(x.name).chain(stats).collect();
            let epsilon = vec![float("epsilon", bn.eps)];
            Ok(self.node(name, "BatchNormalization", inputs, epsilon, module, shape))
        } else if let Some(linear) = module.downcast_ref::<Linear>() {
            let shape = output_shape(path, module, &x.shape)?;
            // Gemm computes A·Bᵀ + C with transB: the weight stays [out, in], as stored.
            let mut inputs = vec![x.name, weight("weight")];
            inputs.extend(linear.bias.as_ref().map(|_| weight("bias")));
            Ok(self.node(name, "Gemm", inputs, vec![int("transB", 1)], module, shape))
        } else if let Some(pool) = module.downcast_ref::<MaxPool2d>() {
            let shape = output_shape(path, module, &x.shape)?;
            let attributes = window(pool.kernel, pool.stride, pool.padding, (1, 1), &x.shape);
            Ok(self.node(name, "MaxPool", vec![x.name], attributes, module, shape))
        } else if let Some(pool) = module.downcast_ref::<AvgPool2d>() {
            let shape = output_shape(path, module, &x.shape)?;
            let mut attributes = window(pool.kernel, pool.stride, pool.padding, (1, 1), &x.shape);
            attributes.push(int("count_include_pad", i64::from(pool.count_include_pad)));
            Ok(self.node(name, "AveragePool", vec![x.name], attributes, module, shape))
        } else if module.is::<GlobalAvgPool>() {
            let shape = output_shape(path, module, &x.shape)?;
            // GlobalAveragePool keeps a 1×1 plane, which ferrocnn's layer drops.
            let plane = vec![shape[0], 1, 1];
            let pooled = self.node(
                name.clone(),
                "GlobalAveragePool",
                vec![x.name],
                vec![],
                module,
                plane,
            );
            let axis = vec![int("axis", 1)];
            Ok(self.node(
                format!("{name}.flatten"),
                "Flatten",
                vec![pooled.name],
                axis,
                module,
                shape,
            ))
        } else if module.is::<Flatten>() {
            let shape = output_shape(path, module, &x.shape)?;
            Ok(self.node(name, "Flatten", vec![x.name], vec![int("axis", 1)], module, shape))
        } else if module.is::<Dropout>() {
            Ok(x)
        } else if module.is::<ReLU>() {
            Ok(self.elementwise(name, "Relu", vec![], x, module))
        } else if module.is::<Sigmoid>() {
            Ok(self.elementwise(name, "Sigmoid", vec![], x, module))
        } else if module.is::<Tanh>() {
            Ok(self.elementwise(name, "Tanh", vec![], x, module))
        } else if let Some(leaky) = module.downcast_ref::<LeakyReLU>() {
            let alpha = vec![float("alpha", leaky.negative_slope)];
            Ok(self.elementwise(name, "LeakyRelu", alpha, x, module))
        } else {
            let reason = format!(
                "ONNX export knows the built-in layers and containers ({}), and cannot tell what \
                 a module of another kind computes",
                EXPORTABLE_KINDS.join(", ")
            );
            Err(not_exportable(path, module, reason))
        }
    }

    /// A `Conv` node for `conv` (its weights under `path`) on `x`.
    fn conv(
        &mut self,
        name: String,
        path: &str,
        conv: &Conv2d,
        x: Value,
        module: &dyn Module,
        shape: Vec<usize>,
    ) -> Value {
        let (_, _, kh, kw) = conv.kernel_shape();
        let o = conv.options;
        let mut attributes = window((kh, kw), o.stride, o.padding, o.dilation, &x.shape);
        attributes.push(ints("dilations", [o.dilation.0, o.dilation.1]));
        let mut inputs = vec![x.name, join(path, "weight")];
        inputs.extend(conv.bias.as_ref().map(|_| join(path, "bias")));
        self.node(name, "Conv", inputs, attributes, module, shape)
    }
}

/// `kernel_shape`, `strides` and `pads` of a windowed op on `[C, H, W]` input, the
/// pads resolved as the op resolves them (ONNX's order: top, left, bottom, right).
fn window(
    kernel: (usize, usize),
    stride: (usize, usize),
    padding: Padding,
    dilation: (usize, usize),
    input: &[usize],
) -> Vec<Attribute> {
    // The caller has checked the module's output shape, which resolves the same way.
    let r = padding
        .resolve((input[1], input[2]), kernel, stride, dilation)
        .expect("padding resolves for a shape the module accepted");
    vec![
        ints("kernel_shape", [kernel.0, kernel.1]),
        ints("strides", [stride.0, stride.1]),
        ints("pads", [r.top, r.left, r.bottom, r.right]),
    ]
}

fn ints<const N: usize>(name: &'static str, values: [usize; N]) -> Attribute {
    Attribute {
        name,
        value: AttributeValue::Ints(values.iter().map(|&v| v as i64).collect()),
    }
}

fn int(name: &'static str, value: i64) -> Attribute {
    Attribute {
        name,
        value: AttributeValue::Int(value),
    }
}

fn float(name: &'static str, value: f32) -> Attribute {
    Attribute {
        name,
        value: AttributeValue::Float(value),
    }
}

/// ONNX values are named once: a module named as the graph's input or output, or as
/// a weight (a layer `input`, or `fc1.weight` beside `fc1`'s own weight), would
/// make a second value of the same name.
fn check_unique_names(nodes: &[Node], initializers: &[Tensor]) -> Result<(), IoError> {
    let mut seen: HashSet<&str> = initializers.iter().map(|t| t.name.as_str()).collect();
    seen.insert(INPUT);
    let Some(clash) = nodes
        .iter()
        .map(|n| n.outputs[0].as_str())
        .find(|o| !seen.insert(o))
    else {
        return Ok(());
    };
    // Blame the module named so: the last node's output was renamed to `logits`.
    let node = nodes.iter().find(|n| n.name == clash).unwrap_or_else(|| {
        nodes
            .iter()
            .rfind(|n| n.outputs[0] == clash)
            .expect("a node writes it")
    });
    Err(IoError::NotExportable {
        module: node.name.clone(),
        kind: node.doc_string.clone(),
        reason: format!(
            "its output would be named {clash:?}, as another value of the graph is; rename the module"
        ),
    })
}

/// A value's name and type: f32 of `[N, shape…]`, the batch size left open.
fn value_info(name: &str, shape: &[usize]) -> ValueInfo {
    ValueInfo {
        name: name.to_string(),
        dims: std::iter::once(Dim::Symbolic(BATCH))
            .chain(shape.iter().map(|&d| Dim::Fixed(d)))
            .collect(),
    }
}

/// The name of the (first) node of the module at `path`: its path, or for the
/// model itself, which has none, its kind's usual prefix (`conv`).
fn node_name(path: &str, module: &dyn Module) -> String {
    match path {
        "" => module.name_prefix(),
        _ => path.to_string(),
    }
}

/// The output shape of `module` (at `path`) for `input`, or the error naming it.
fn output_shape(path: &str, module: &dyn Module, input: &[usize]) -> Result<Vec<usize>, IoError> {
    module.output_shape(input).map_err(|reason| {
        not_exportable(
            path,
            module,
            format!("it does not take inputs of {input:?}: {reason}"),
        )
    })
}

/// The error for `module` at `path`.
fn not_exportable(path: &str, module: &dyn Module, reason: String) -> IoError {
    IoError::NotExportable {
        module: path.to_string(),
        kind: module.kind().to_string(),
        reason,
    }
}
