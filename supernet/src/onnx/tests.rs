use std::collections::{BTreeSet, HashSet};

use prost::Message;

use super::proto::*;
use super::*;

/// Written by `experiments/reference/onnx_proto_fixture.py` with the `onnx` package 1.16.2.
const HELPER_MODEL: &[u8] = include_bytes!("testdata/helper_model.onnx");

fn attr<'a>(node: &'a NodeProto, name: &str) -> &'a AttributeProto {
    node.attribute
        .iter()
        .find(|a| a.name.as_deref() == Some(name))
        .unwrap_or_else(|| panic!("{:?} has no attribute {name}", node.op_type))
}

fn data_type(t: &TensorProto) -> DataType {
    DataType::try_from(t.data_type.expect("a data type")).expect("a known data type")
}

#[test]
fn a_model_of_the_onnx_package_decodes_and_encodes_to_the_same_bytes() {
    let m = ModelProto::decode(HELPER_MODEL).unwrap();
    assert_eq!(m.ir_version, Some(10));
    assert_eq!(
        m.opset_import,
        vec![OperatorSetIdProto {
            domain: Some(String::new()),
            version: Some(21),
        }]
    );
    assert_eq!(m.producer_name.as_deref(), Some("qnas"));
    assert_eq!(m.producer_version.as_deref(), Some("0.1.0"));
    assert_eq!(
        m.doc_string.as_deref(),
        Some("a model written by onnx.helper")
    );
    let g = m.graph.as_ref().unwrap();
    assert_eq!(g.name.as_deref(), Some("qnas"));
    let ops: Vec<&str> = g.node.iter().filter_map(|n| n.op_type.as_deref()).collect();
    assert_eq!(
        ops,
        [
            "DequantizeLinear",
            "Conv",
            "LeakyRelu",
            "GlobalAveragePool",
            "Flatten",
            "Softmax"
        ]
    );
    let conv = &g.node[1];
    assert_eq!(conv.input, ["input", "wf"]);
    assert_eq!(conv.output, ["c"]);
    assert_eq!(conv.name.as_deref(), Some("c"));
    let kernel = attr(conv, "kernel_shape");
    assert_eq!(kernel.ints, [3, 3]);
    assert_eq!(kernel.r#type, Some(AttributeType::Ints as i32));
    assert_eq!(attr(conv, "pads").ints, [1, 1, 1, 1]);
    let alpha = attr(&g.node[2], "alpha");
    assert_eq!(alpha.f, Some(0.125));
    assert_eq!(alpha.r#type, Some(AttributeType::Float as i32));
    // a zero is present (proto2), a negative int64 takes ten bytes
    let axis = attr(&g.node[0], "axis");
    assert_eq!(axis.i, Some(0));
    assert_eq!(axis.r#type, Some(AttributeType::Int as i32));
    assert_eq!(attr(&g.node[5], "axis").i, Some(-1));

    let [w, s] = &g.initializer[..] else {
        panic!("{:?}", g.initializer)
    };
    assert_eq!(w.name.as_deref(), Some("w"));
    assert_eq!(w.dims, [2, 1, 3, 3]);
    assert_eq!(data_type(w), DataType::Int8);
    let codes: Vec<u8> = (-9i8..9).map(|v| v as u8).collect();
    assert_eq!(w.raw_data.as_deref(), Some(&codes[..]));
    assert_eq!(s.dims, [2]);
    assert_eq!(data_type(s), DataType::Float);
    let scales: Vec<u8> = [0.5f32, 0.25]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    assert_eq!(s.raw_data.as_deref(), Some(&scales[..]));

    let batch = || DimensionValue::DimParam("batch".into());
    assert_eq!(
        g.input,
        [value_info(
            "input",
            DataType::Float,
            vec![
                batch(),
                DimensionValue::DimValue(1),
                DimensionValue::DimValue(4),
                DimensionValue::DimValue(4)
            ]
        )]
    );
    assert_eq!(
        g.output,
        [value_info(
            "logits",
            DataType::Float,
            vec![batch(), DimensionValue::DimValue(2)]
        )]
    );
    // every field of the file is declared here, in ONNX's field numbers and wire types
    assert_eq!(m.encode_to_vec(), HELPER_MODEL);
}

/// Decodes an exported model and checks that it is a well-formed graph: the bytes are the
/// encoding of what they decode to, every node's inputs are defined before it (graph input,
/// initializer or an earlier node's output), every name is defined once, each initializer holds
/// as many bytes as its type and dimensions say, and the last node makes the graph's one output
/// `logits`.
fn well_formed(bytes: &[u8]) -> GraphProto {
    let m = ModelProto::decode(bytes).unwrap();
    assert_eq!(m.encode_to_vec(), bytes);
    assert_eq!(m.ir_version, Some(IR_VERSION));
    assert_eq!(m.opset_import.len(), 1);
    assert_eq!(m.opset_import[0].version, Some(OPSET));
    let g = m.graph.unwrap();
    let mut defined: HashSet<&str> = g.input.iter().filter_map(|v| v.name.as_deref()).collect();
    assert_eq!(defined, HashSet::from(["input"]));
    for t in &g.initializer {
        let name = t.name.as_deref().unwrap();
        assert!(defined.insert(name), "{name} defined twice");
        let n: usize = t.dims.iter().map(|&d| d as usize).product();
        let size = match data_type(t) {
            DataType::Float => 4 * n,
            DataType::Int16 | DataType::Uint16 | DataType::Float16 | DataType::Bfloat16 => 2 * n,
            DataType::Int8 | DataType::Uint8 | DataType::Float8e4m3fn | DataType::Float8e5m2 => n,
            DataType::Int4 => n.div_ceil(2),
            DataType::Undefined => panic!("{name}: undefined type"),
        };
        assert_eq!(t.raw_data.as_ref().map(Vec::len), Some(size), "{name}");
    }
    for node in &g.node {
        let op = node.op_type.as_deref().unwrap();
        for i in &node.input {
            assert!(
                defined.contains(i.as_str()),
                "{op}: {i} is not defined before"
            );
        }
        for o in &node.output {
            assert!(defined.insert(o), "{op}: {o} defined twice");
        }
        for a in &node.attribute {
            let set = match AttributeType::try_from(a.r#type.unwrap()).unwrap() {
                AttributeType::Int => a.i.is_some(),
                AttributeType::Float => a.f.is_some(),
                AttributeType::Ints => !a.ints.is_empty(),
                AttributeType::Undefined => false,
            };
            assert!(set, "{op}: attribute {:?} without its value", a.name);
        }
    }
    assert_eq!(g.node.last().unwrap().output, ["logits"]);
    let outputs: Vec<_> = g.output.iter().filter_map(|v| v.name.as_deref()).collect();
    assert_eq!(outputs, ["logits"]);
    g
}

/// The type of the weight initializer of `layer`.
fn weight_type(g: &GraphProto, layer: &str) -> DataType {
    let prefix = format!("{layer}.weight_");
    let t = g
        .initializer
        .iter()
        .find(|t| {
            t.name
                .as_deref()
                .and_then(|n| n.strip_prefix(&prefix))
                .is_some_and(|rest| rest.bytes().all(|b| b.is_ascii_digit()))
        })
        .unwrap_or_else(|| panic!("no weight of {layer}"));
    data_type(t)
}

/// The types of the zero points of the graph's QuantizeLinear nodes.
fn quantizer_types(g: &GraphProto) -> BTreeSet<DataType> {
    g.node
        .iter()
        .filter(|n| n.op_type.as_deref() == Some("QuantizeLinear"))
        .map(|n| {
            let zp = &n.input[2];
            data_type(
                g.initializer
                    .iter()
                    .find(|t| t.name.as_ref() == Some(zp))
                    .unwrap(),
            )
        })
        .collect()
}

#[test]
fn every_format_becomes_an_onnx_type_or_a_listed_fallback() {
    use burn::tensor::Device;
    let src = r#"(
        version: 1,
        input: (channels: 1, height: 8, width: 8),
        classes: 10,
        stem: (width: [8]),
        stages: [(block: ResidualBasic, depth: [1], width: [8], stride: 1)],
        quantization: (
            weights: [Int(2), Int(4), Int(8), Int(12), Int(24), E4M3, E5M2, E2M1, Fp16, Bf16, Fp32],
            activations: [Int(2), Int(4), Int(8), E4M3, E2M1, Fp16, Fp32],
            tie: Global,
        ),
    )"#;
    let space = spaces::Space::parse(src, "onnx.ron", "onnx").unwrap();
    let device = Device::flex();
    let net = crate::Supernet::new(&space, &device);
    for w in &space.quantization.weights {
        for a in &space.quantization.activations {
            let arch = space
                .with_uniform_formats(&space.largest(), *w, *a)
                .unwrap();
            let o = net.extract(&arch).unwrap().to_onnx("test").unwrap();
            let g = well_formed(&o.bytes);
            let weight_fallback = matches!(w, Format::Int(24)) || *w == Format::E2M1;
            let act_fallback = *a == Format::E2M1;
            assert_eq!(
                o.fallbacks.iter().any(|f| f.contains("weights")),
                weight_fallback,
                "{w}/{a}: {:?}",
                o.fallbacks
            );
            assert_eq!(
                o.fallbacks.iter().any(|f| f.contains("activations")),
                act_fallback,
                "{w}/{a}: {:?}",
                o.fallbacks
            );
            let expected = match *w {
                Format::Int(4) => DataType::Int4,
                Format::Int(b) if b <= 8 => DataType::Int8,
                Format::Int(b) if b <= 16 => DataType::Int16,
                f if f == Format::E4M3 => DataType::Float8e4m3fn,
                f if f == Format::E5M2 => DataType::Float8e5m2,
                f if f == Format::FP16 => DataType::Float16,
                f if f == Format::BF16 => DataType::Bfloat16,
                _ => DataType::Float,
            };
            for layer in ["stem", "s0.b0.conv1", "s0.b0.conv2", "head.fc"] {
                assert_eq!(weight_type(&g, layer), expected, "{w}/{a}: {layer}");
            }
            let quantizers = quantizer_types(&g);
            match *a {
                Format::Int(_) => assert!(
                    !quantizers.is_empty()
                        && quantizers.is_subset(&BTreeSet::from([DataType::Int8, DataType::Uint8])),
                    "{w}/{a}: {quantizers:?}"
                ),
                f if f == Format::E4M3 => {
                    assert_eq!(quantizers, BTreeSet::from([DataType::Float8e4m3fn]));
                }
                _ => assert!(quantizers.is_empty(), "{w}/{a}: {quantizers:?}"),
            }
            // fp16 activations are a Cast to FLOAT16 and back; fp16 weights are stored as
            // FLOAT16 and only cast to FLOAT
            let casts_to_fp16 = g
                .node
                .iter()
                .filter(|n| n.op_type.as_deref() == Some("Cast"))
                .any(|n| attr(n, "to").i == Some(DataType::Float16 as i64));
            assert_eq!(casts_to_fp16, *a == Format::FP16, "{w}/{a}");
        }
    }
}
