//! A small ONNX graph writer over tract-onnx's prost types (`tract_onnx::pb`): nodes, f32/i64
//! initializers, one f32 input and f32 outputs, encoded as an opset-13 `ModelProto`. Pure: builds
//! bytes in memory.
use prost::Message;
use tract_onnx::pb;

/// ONNX `TensorProto.DataType` values used here.
const FLOAT: i32 = 1;
const INT64: i32 = 7;

/// Builds one graph.
#[derive(Default)]
pub struct GraphBuilder {
    nodes: Vec<pb::NodeProto>,
    initializers: Vec<pb::TensorProto>,
    inputs: Vec<pb::ValueInfoProto>,
    outputs: Vec<pb::ValueInfoProto>,
    counter: usize,
}

/// A node attribute.
pub enum Attr {
    Int(i64),
    Ints(Vec<i64>),
    Float(f32),
    Str(&'static str),
}

fn value_info(name: &str, shape: &[usize]) -> pb::ValueInfoProto {
    use pb::tensor_shape_proto::{dimension, Dimension};
    let dims = shape
        .iter()
        .map(|&d| Dimension { denotation: String::new(), value: Some(dimension::Value::DimValue(d as i64)) })
        .collect();
    pb::ValueInfoProto {
        name: name.to_string(),
        r#type: Some(pb::TypeProto {
            denotation: String::new(),
            value: Some(pb::type_proto::Value::TensorType(pb::type_proto::Tensor {
                elem_type: FLOAT,
                shape: Some(pb::TensorShapeProto { dim: dims }),
            })),
        }),
        ..Default::default()
    }
}

impl GraphBuilder {
    pub fn input(&mut self, name: &str, shape: &[usize]) {
        self.inputs.push(value_info(name, shape));
    }

    pub fn output(&mut self, name: &str, shape: &[usize]) {
        self.outputs.push(value_info(name, shape));
    }

    /// A fresh tensor name with `stem`.
    pub fn fresh(&mut self, stem: &str) -> String {
        self.counter += 1;
        format!("{stem}_{}", self.counter)
    }

    pub fn f32_init(&mut self, stem: &str, dims: &[usize], values: &[f32]) -> String {
        let name = self.fresh(stem);
        self.initializers.push(pb::TensorProto {
            name: name.clone(),
            dims: dims.iter().map(|&d| d as i64).collect(),
            data_type: FLOAT,
            raw_data: values.iter().flat_map(|v| v.to_le_bytes()).collect(),
            ..Default::default()
        });
        name
    }

    pub fn i64_init(&mut self, stem: &str, values: &[i64]) -> String {
        let name = self.fresh(stem);
        self.initializers.push(pb::TensorProto {
            name: name.clone(),
            dims: vec![values.len() as i64],
            data_type: INT64,
            raw_data: values.iter().flat_map(|v| v.to_le_bytes()).collect(),
            ..Default::default()
        });
        name
    }

    /// Adds a node with one output called `output`; returns `output`.
    pub fn node_named(&mut self, op: &str, inputs: &[&str], output: String, attrs: Vec<(&str, Attr)>) -> String {
        use pb::attribute_proto::AttributeType;
        let attribute = attrs
            .into_iter()
            .map(|(name, a)| {
                let mut p = pb::AttributeProto { name: name.to_string(), ..Default::default() };
                match a {
                    Attr::Int(i) => {
                        p.i = i;
                        p.r#type = AttributeType::Int as i32;
                    }
                    Attr::Ints(v) => {
                        p.ints = v;
                        p.r#type = AttributeType::Ints as i32;
                    }
                    Attr::Float(f) => {
                        p.f = f;
                        p.r#type = AttributeType::Float as i32;
                    }
                    Attr::Str(s) => {
                        p.s = s.as_bytes().to_vec();
                        p.r#type = AttributeType::String as i32;
                    }
                }
                p
            })
            .collect();
        let name = format!("{op}_{}", self.nodes.len());
        self.nodes.push(pb::NodeProto {
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: vec![output.clone()],
            name,
            op_type: op.to_string(),
            attribute,
            ..Default::default()
        });
        output
    }

    /// Adds a node with a fresh output name derived from `op`.
    pub fn node(&mut self, op: &str, inputs: &[&str], attrs: Vec<(&str, Attr)>) -> String {
        let out = self.fresh(&op.to_ascii_lowercase());
        self.node_named(op, inputs, out, attrs)
    }

    /// The encoded `ModelProto`, opset 13.
    pub fn encode(self, graph_name: &str, producer: &str) -> Vec<u8> {
        let model = pb::ModelProto {
            ir_version: 7,
            opset_import: vec![pb::OperatorSetIdProto { domain: String::new(), version: 13 }],
            producer_name: producer.to_string(),
            producer_version: env!("CARGO_PKG_VERSION").to_string(),
            graph: Some(pb::GraphProto {
                node: self.nodes,
                name: graph_name.to_string(),
                initializer: self.initializers,
                input: self.inputs,
                output: self.outputs,
                ..Default::default()
            }),
            ..Default::default()
        };
        model.encode_to_vec()
    }
}
