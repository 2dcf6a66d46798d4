//! The ONNX messages an exported model is made of — model, graph, node, attribute,
//! tensor, value info — as plain structs, and their encoding.
//!
//! Field numbers are those of `onnx/onnx.proto3` in the ONNX repository (IR
//! version 8), given beside each field as `// = n`. Only the fields ferrocnn
//! writes are here; a reader skips the rest, as protobuf readers do.

use super::wire::Message;

/// `TensorProto.DataType.FLOAT`: every tensor ferrocnn writes is f32.
const FLOAT: i64 = 1;

/// `ModelProto`: the file.
#[derive(Clone, Debug)]
pub(crate) struct Model {
    /// `ir_version = 1`.
    pub ir_version: i64,
    /// `opset_import = 8`: the default domain's operator set version.
    pub opset: i64,
    /// `producer_name = 2`.
    pub producer_name: String,
    /// `producer_version = 3`.
    pub producer_version: String,
    /// `doc_string = 6`.
    pub doc_string: String,
    /// `graph = 7`.
    pub graph: Graph,
    /// `metadata_props = 14`: key/value pairs (`StringStringEntryProto`).
    pub metadata: Vec<(String, String)>,
}

/// `GraphProto`: nodes in topological order, weights, inputs and outputs.
#[derive(Clone, Debug)]
pub(crate) struct Graph {
    /// `name = 2`.
    pub name: String,
    /// `node = 1`.
    pub nodes: Vec<Node>,
    /// `initializer = 5`.
    pub initializers: Vec<Tensor>,
    /// `doc_string = 10`.
    pub doc_string: String,
    /// `input = 11`.
    pub inputs: Vec<ValueInfo>,
    /// `output = 12`.
    pub outputs: Vec<ValueInfo>,
    /// `value_info = 13`: shapes of the values between nodes.
    pub value_info: Vec<ValueInfo>,
}

/// `NodeProto`: one operator application.
#[derive(Clone, Debug)]
pub(crate) struct Node {
    /// `name = 3`.
    pub name: String,
    /// `op_type = 4` (in the default domain, `domain = 7` left out).
    pub op_type: &'static str,
    /// `input = 1`.
    pub inputs: Vec<String>,
    /// `output = 2`.
    pub outputs: Vec<String>,
    /// `attribute = 5`.
    pub attributes: Vec<Attribute>,
    /// `doc_string = 6`.
    pub doc_string: String,
}

/// `AttributeProto`: a named setting of a node.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Attribute {
    /// `name = 1`.
    pub name: &'static str,
    /// The value, with its `type = 20`.
    pub value: AttributeValue,
}

/// The kinds of attribute value ferrocnn writes.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum AttributeValue {
    /// `f = 2`, type `FLOAT` (1).
    Float(f32),
    /// `i = 3`, type `INT` (2).
    Int(i64),
    /// `ints = 8`, type `INTS` (7).
    Ints(Vec<i64>),
}

/// `TensorProto`: a named f32 tensor (an initializer).
#[derive(Clone, Debug)]
pub(crate) struct Tensor {
    /// `name = 8`.
    pub name: String,
    /// `dims = 1`.
    pub dims: Vec<usize>,
    /// `raw_data = 9`, little-endian f32s in row-major order; `data_type = 2` is FLOAT.
    pub values: Vec<f32>,
}

/// `ValueInfoProto`: a named f32 tensor type (`type = 2` → `TypeProto.tensor_type
/// = 1` → `elem_type = 1`, `shape = 2`).
#[derive(Clone, Debug)]
pub(crate) struct ValueInfo {
    /// `name = 1`.
    pub name: String,
    /// The dimensions (`TensorShapeProto.dim = 1`).
    pub dims: Vec<Dim>,
}

/// `TensorShapeProto.Dimension`.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Dim {
    /// `dim_value = 1`.
    Fixed(usize),
    /// `dim_param = 2`: a named size left open, such as the batch.
    Symbolic(&'static str),
}

impl Model {
    /// The model as the bytes of an `.onnx` file.
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut model = Message::new();
        model.int(1, self.ir_version);
        model.string(2, &self.producer_name);
        model.string(3, &self.producer_version);
        model.string(6, &self.doc_string);
        model.message(7, &self.graph.encode());
        let mut opset = Message::new();
        // OperatorSetIdProto: domain = 1 ("" is the default domain), version = 2.
        opset.string(1, "").int(2, self.opset);
        model.message(8, &opset);
        for (key, value) in &self.metadata {
            let mut entry = Message::new();
            // StringStringEntryProto: key = 1, value = 2.
            entry.string(1, key).string(2, value);
            model.message(14, &entry);
        }
        model.into_bytes()
    }
}

impl Graph {
    fn encode(&self) -> Message {
        let mut graph = Message::new();
        for node in &self.nodes {
            graph.message(1, &node.encode());
        }
        graph.string(2, &self.name);
        for tensor in &self.initializers {
            graph.message(5, &tensor.encode());
        }
        graph.string(10, &self.doc_string);
        for input in &self.inputs {
            graph.message(11, &input.encode());
        }
        for output in &self.outputs {
            graph.message(12, &output.encode());
        }
        for info in &self.value_info {
            graph.message(13, &info.encode());
        }
        graph
    }
}

impl Node {
    fn encode(&self) -> Message {
        let mut node = Message::new();
        for input in &self.inputs {
            node.string(1, input);
        }
        for output in &self.outputs {
            node.string(2, output);
        }
        node.string(3, &self.name).string(4, self.op_type);
        for attribute in &self.attributes {
            node.message(5, &attribute.encode());
        }
        if !self.doc_string.is_empty() {
            node.string(6, &self.doc_string);
        }
        node
    }
}

impl Attribute {
    fn encode(&self) -> Message {
        let mut attribute = Message::new();
        attribute.string(1, self.name);
        match &self.value {
            AttributeValue::Float(f) => attribute.float(2, *f).int(20, 1),
            AttributeValue::Int(i) => attribute.int(3, *i).int(20, 2),
            AttributeValue::Ints(ints) => {
                // Unpacked (one key per value), as proto2 writes `repeated int64`;
                // readers accept both forms.
                for &i in ints {
                    attribute.int(8, i);
                }
                attribute.int(20, 7)
            }
        };
        attribute
    }
}

impl Tensor {
    fn encode(&self) -> Message {
        let mut tensor = Message::new();
        for &d in &self.dims {
            tensor.int(1, d as i64);
        }
        tensor.int(2, FLOAT).string(8, &self.name);
        let raw: Vec<u8> = self.values.iter().flat_map(|v| v.to_le_bytes()).collect();
        tensor.bytes(9, &raw);
        tensor
    }
}

impl ValueInfo {
    fn encode(&self) -> Message {
        let mut shape = Message::new();
        for dim in &self.dims {
            let mut d = Message::new();
            match dim {
                Dim::Fixed(n) => d.int(1, *n as i64),
                Dim::Symbolic(name) => d.string(2, name),
            };
            shape.message(1, &d);
        }
        let mut tensor_type = Message::new();
        tensor_type.int(1, FLOAT).message(2, &shape);
        let mut type_proto = Message::new();
        type_proto.message(1, &tensor_type);
        let mut info = Message::new();
        info.string(1, &self.name).message(2, &type_proto);
        info
    }
}
