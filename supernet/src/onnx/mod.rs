//! ONNX export of a [`StaticNet`] with QuantizeLinear / DequantizeLinear nodes (opset 21).
//!
//! # The graph
//! Input `input` `[batch, channels, height, width]` (float, normalized as the model's
//! `model.json` says), output `logits` `[batch, classes]`. Each conv layer is
//! `[activation Q/DQ] -> Conv -> BatchNormalization -> Relu | Clip`, blocks add their
//! shortcut, the head is `GlobalAveragePool -> Flatten -> [Q/DQ] -> MatMul -> Add`; pools and
//! residual additions follow the plan exactly as [`crate::net::run_plan`] does.
//!
//! # Weights
//! Stored in their quantized type, followed by a `DequantizeLinear` with the per-output-channel
//! scales (`axis` 0 for convolutions, 1 for the classifier's `[in, out]` matrix):
//! int4 as `INT4`, other integers of up to 8 bits as `INT8` (their codes fit), up to 16 bits as
//! `INT16`, e4m3 as `FLOAT8E4M3FN`, e5m2 as `FLOAT8E5M2`; fp16 and bf16 as `FLOAT16` /
//! `BFLOAT16` followed by a `Cast`; fp32 as `FLOAT`. **Fallback**: formats with no ONNX type
//! (wider integers, and the minifloats e2m1, e3m2, e2m3 and other exponent/mantissa splits)
//! are stored as `FLOAT` holding the fake-quantized values, which compute the same.
//!
//! # Activations
//! Integer formats of up to 16 bits become `QuantizeLinear -> DequantizeLinear` with a zero
//! point of the smallest ONNX integer type of at least 8 bits that holds the codes (`INT8`/`UINT8`,
//! `INT16`/`UINT16`; onnxruntime 1.32 mishandles 4-bit activation types), preceded by a `Clip`
//! to the code range where the type's range is wider
//! (qnas's signed codes are symmetric, `±(2^(b-1) - 1)`). e4m3 and e5m2 use `FLOAT8E4M3FN` /
//! `FLOAT8E5M2` (saturating), fp16 and bf16 a `Cast` there and back after a saturating `Clip`.
//! **Fallback**: activation formats with no ONNX type (integers above 16 bits, the other
//! minifloats) are left unquantized in the graph and listed in [`OnnxExport::fallbacks`].
//!
//! # Encoding
//! The graph is built as the `prost` messages of [`proto`] (ONNX's `onnx.proto`, the fields used
//! here) and serialized by prost.

use burn::module::Param;
use burn::tensor::Tensor;
use prost::Message;
use spaces::Format;
use spaces::plan::{Act, ConvLayer};

use crate::deploy::{DeployError, pack_bits, tensor_values};
use crate::net::{StaticConvBn, StaticNet};
use crate::quant::grid::int_code_range;
use crate::quant::{Codes, FrozenActQuant, QuantCodes};

pub mod proto;

use proto::{
    AttributeProto, AttributeType, DataType, Dimension, DimensionValue, GraphProto, ModelProto,
    NodeProto, OperatorSetIdProto, TensorProto, TensorShapeProto, TensorTypeProto, TypeProto,
    TypeValue, ValueInfoProto,
};

/// The opset the graph uses.
pub const OPSET: i64 = 21;
/// The ONNX IR version of that opset.
pub const IR_VERSION: i64 = 10;

/// An exported graph.
#[derive(Clone, Debug)]
pub struct OnnxExport {
    /// The serialized `ModelProto`.
    pub bytes: Vec<u8>,
    /// What was not expressed with ONNX types: `"layer: weights e2m1 stored as float"` etc.
    pub fallbacks: Vec<String>,
}

/// A node attribute.
enum Attr {
    Int(&'static str, i64),
    Ints(&'static str, Vec<i64>),
    Float(&'static str, f32),
}

impl Attr {
    fn proto(&self) -> AttributeProto {
        let (name, r#type) = match self {
            Attr::Int(name, _) => (name, AttributeType::Int),
            Attr::Ints(name, _) => (name, AttributeType::Ints),
            Attr::Float(name, _) => (name, AttributeType::Float),
        };
        let mut a = AttributeProto {
            name: Some(name.to_string()),
            r#type: Some(r#type as i32),
            ..AttributeProto::default()
        };
        match self {
            Attr::Int(_, v) => a.i = Some(*v),
            Attr::Ints(_, vs) => a.ints.clone_from(vs),
            Attr::Float(_, v) => a.f = Some(*v),
        }
        a
    }
}

/// A graph under construction: nodes in order, initializers, unique names.
#[derive(Default)]
struct Graph {
    nodes: Vec<NodeProto>,
    inits: Vec<TensorProto>,
    count: usize,
    fallbacks: Vec<String>,
}

impl Graph {
    fn fresh(&mut self, base: &str) -> String {
        self.count += 1;
        format!("{base}_{}", self.count)
    }

    /// An initializer of raw little-endian bytes.
    fn init(&mut self, base: &str, dims: &[usize], dtype: DataType, raw: Vec<u8>) -> String {
        let name = self.fresh(base);
        self.inits.push(TensorProto {
            dims: dims.iter().map(|&d| d as i64).collect(),
            data_type: Some(dtype as i32),
            name: Some(name.clone()),
            raw_data: Some(raw),
        });
        name
    }

    fn f32s(&mut self, base: &str, dims: &[usize], values: &[f32]) -> String {
        let raw = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.init(base, dims, DataType::Float, raw)
    }

    fn scalar(&mut self, base: &str, v: f32) -> String {
        self.f32s(base, &[], &[v])
    }

    /// Appends a node with one output and returns the output's name.
    fn node(&mut self, op: &str, inputs: &[&str], attrs: &[Attr]) -> String {
        let out = self.fresh(&op.to_lowercase());
        self.node_named(op, inputs, attrs, out)
    }

    /// [`Graph::node`] with a given output name.
    fn node_named(&mut self, op: &str, inputs: &[&str], attrs: &[Attr], out: String) -> String {
        self.nodes.push(NodeProto {
            input: inputs.iter().map(|i| i.to_string()).collect(),
            output: vec![out.clone()],
            name: Some(out.clone()),
            op_type: Some(op.to_string()),
            attribute: attrs.iter().map(Attr::proto).collect(),
        });
        out
    }

    fn clip(&mut self, x: &str, lo: f32, hi: f32) -> String {
        let lo = self.scalar("clip_min", lo);
        let hi = self.scalar("clip_max", hi);
        self.node("Clip", &[x, &lo, &hi], &[])
    }

    /// `Max(x, lowest float)`: the identity, which onnxruntime's optimizer does not fold into
    /// the QuantizeLinear that follows (it folds a Relu or Clip there as if every quantizer
    /// clamped like an integer one with the Clip's range).
    fn guard(&mut self, x: &str) -> String {
        let lowest = self.scalar("lowest", f32::MIN);
        self.node("Max", &[x, &lowest], &[])
    }

    /// `Q -> DQ` with a scalar scale and a zero point of type `dtype` (zero).
    fn qdq(&mut self, x: &str, scale: f32, dtype: DataType) -> String {
        let s = self.scalar("act_scale", scale);
        let width = match dtype {
            DataType::Int16 | DataType::Uint16 => 2,
            _ => 1,
        };
        let zp = self.init("act_zero_point", &[], dtype, vec![0u8; width]);
        let q = self.node("QuantizeLinear", &[x, &s, &zp], &[]);
        self.node("DequantizeLinear", &[&q, &s, &zp], &[])
    }

    /// The activation quantizer `q` applied to `x`, as Q/DQ nodes.
    fn activation(&mut self, layer: &str, x: &str, q: &FrozenActQuant) -> String {
        let f = q.format;
        if f.is_full_precision() {
            return x.to_string();
        }
        let s = q.scale_value();
        match f {
            Format::Int(b) if b <= 16 => {
                let (lo, hi) = int_code_range(b, q.signed);
                // codes of 2 to 4 bits use 8-bit types behind a Clip: onnxruntime 1.32 cannot
                // fold a Clip into a QuantizeLinear with a 4-bit unsigned zero point, and its
                // QDQ fusion turns a 4-bit Q/DQ before a Conv into a QLinearConv that it then
                // rejects ("Type 'tensor(uint4)' ... of operator (QLinearConv) is invalid",
                // measured with an int4 input to a conv with fp32 weights)
                let (dtype, tlo, thi) = match (b, q.signed) {
                    (..=8, true) => (DataType::Int8, -128, 127),
                    (..=8, false) => (DataType::Uint8, 0, 255),
                    (_, true) => (DataType::Int16, -32768, 32767),
                    (_, false) => (DataType::Uint16, 0, 65535),
                };
                let x = if (lo, hi) != (tlo, thi) {
                    // onnxruntime 1.32 drops a Clip that feeds a QuantizeLinear (measured: a
                    // 2-bit activation then takes 8-bit codes); the guard keeps it
                    let c = self.clip(x, lo as f32 * s, hi as f32 * s);
                    self.guard(&c)
                } else {
                    x.to_string()
                };
                self.qdq(&x, s, dtype)
            }
            f if f == Format::E4M3 || f == Format::E5M2 => {
                // onnxruntime 1.32 folds a Relu (or Clip) into the QuantizeLinear that follows
                // it as if every zero point were an integer, which drops the Relu before a
                // float8 quantizer (whose grid is signed): a no-op Max keeps them apart
                let guarded = self.guard(x);
                let dtype = if f == Format::E4M3 {
                    DataType::Float8e4m3fn
                } else {
                    DataType::Float8e5m2
                };
                self.qdq(&guarded, s, dtype)
            }
            f if f == Format::FP16 || f == Format::BF16 => {
                let max = f.max_finite().unwrap_or(f64::MAX) as f32;
                let to = if f == Format::FP16 {
                    DataType::Float16
                } else {
                    DataType::Bfloat16
                };
                let mut y = x.to_string();
                if s != 1.0 {
                    let sv = self.scalar("act_scale", s);
                    y = self.node("Div", &[&y, &sv], &[]);
                }
                let y = self.clip(&y, -max, max);
                let c = self.node("Cast", &[&y], &[Attr::Int("to", to as i64)]);
                let mut y = self.node("Cast", &[&c], &[Attr::Int("to", DataType::Float as i64)]);
                if s != 1.0 {
                    let sv = self.scalar("act_scale", s);
                    y = self.node("Mul", &[&y, &sv], &[]);
                }
                y
            }
            f => {
                self.fallbacks.push(format!(
                    "{layer}: activations {f} left unquantized (no ONNX type)"
                ));
                x.to_string()
            }
        }
    }

    /// The weight codes `q` as an initializer in their ONNX type and the nodes that turn them
    /// into float; returns the float tensor's name.
    fn weight(&mut self, layer: &str, q: &QuantCodes) -> String {
        let f = q.format;
        let dims = &q.shape;
        let scales_are_one = q.scales.iter().all(|&s| s == 1.0);
        let native: Option<(DataType, Vec<u8>)> = match (&q.codes, f) {
            (Codes::Int(c), Format::Int(b)) if b <= 16 => Some(if b == 4 {
                let pats: Vec<u64> = c.iter().map(|&v| (v as u64) & 0xf).collect();
                (DataType::Int4, pack_bits(&pats, 4))
            } else if b <= 8 {
                (DataType::Int8, c.iter().map(|&v| v as i8 as u8).collect())
            } else {
                (
                    DataType::Int16,
                    c.iter().flat_map(|&v| (v as i16).to_le_bytes()).collect(),
                )
            }),
            (Codes::Float(c), f) if f == Format::E4M3 => {
                Some((DataType::Float8e4m3fn, c.iter().map(|&v| v as u8).collect()))
            }
            (Codes::Float(c), f) if f == Format::E5M2 => {
                Some((DataType::Float8e5m2, c.iter().map(|&v| v as u8).collect()))
            }
            (Codes::Float(c), f) if f == Format::FP16 || f == Format::BF16 => {
                let t = if f == Format::FP16 {
                    DataType::Float16
                } else {
                    DataType::Bfloat16
                };
                Some((
                    t,
                    c.iter().flat_map(|&v| (v as u16).to_le_bytes()).collect(),
                ))
            }
            _ => None,
        };
        match native {
            Some((dtype @ (DataType::Float16 | DataType::Bfloat16), raw)) if scales_are_one => {
                let w = self.init(&format!("{layer}.weight"), dims, dtype, raw);
                self.node("Cast", &[&w], &[Attr::Int("to", DataType::Float as i64)])
            }
            Some((dtype, raw)) if !matches!(dtype, DataType::Float16 | DataType::Bfloat16) => {
                let w = self.init(&format!("{layer}.weight"), dims, dtype, raw);
                match q.axis {
                    Some(axis) => {
                        let s = self.f32s(
                            &format!("{layer}.weight_scale"),
                            &[q.scales.len()],
                            &q.scales,
                        );
                        self.node(
                            "DequantizeLinear",
                            &[&w, &s],
                            &[Attr::Int("axis", axis as i64)],
                        )
                    }
                    None => {
                        let s = self.scalar(&format!("{layer}.weight_scale"), q.scales[0]);
                        self.node("DequantizeLinear", &[&w, &s], &[])
                    }
                }
            }
            _ => {
                if !f.is_full_precision() {
                    self.fallbacks.push(format!(
                        "{layer}: weights {f} stored as fake-quantized float"
                    ));
                }
                self.f32s(&format!("{layer}.weight"), dims, &q.dequantize())
            }
        }
    }

    fn conv_bn(&mut self, x: &str, layer: &ConvLayer, m: &StaticConvBn, q: &QuantCodes) -> String {
        let name = &layer.name;
        let x = self.activation(name, x, &m.quant);
        let w = self.weight(name, q);
        let k = layer.kernel as i64;
        let p = k / 2;
        let s = i64::from(layer.stride);
        let mut inputs = vec![x, w];
        if let Some(b) = &m.conv.bias {
            inputs.push(self.f32s(
                &format!("{name}.bias"),
                &[layer.out_channels as usize],
                &values(b),
            ));
        }
        let refs: Vec<&str> = inputs.iter().map(String::as_str).collect();
        let y = self.node(
            "Conv",
            &refs,
            &[
                Attr::Ints("kernel_shape", vec![k, k]),
                Attr::Ints("strides", vec![s, s]),
                Attr::Ints("pads", vec![p, p, p, p]),
                Attr::Ints("dilations", vec![1, 1]),
                Attr::Int("group", i64::from(layer.groups)),
            ],
        );
        let c = layer.out_channels as usize;
        let gamma = self.f32s(&format!("{name}.bn.weight"), &[c], &values(&m.bn.gamma));
        let beta = self.f32s(&format!("{name}.bn.bias"), &[c], &values(&m.bn.beta));
        let mean = self.f32s(
            &format!("{name}.bn.running_mean"),
            &[c],
            &tensor_values(m.bn.running_mean.value()),
        );
        let var = self.f32s(
            &format!("{name}.bn.running_var"),
            &[c],
            &tensor_values(m.bn.running_var.value()),
        );
        let y = self.node(
            "BatchNormalization",
            &[&y, &gamma, &beta, &mean, &var],
            &[Attr::Float("epsilon", m.bn.epsilon as f32)],
        );
        self.act(&y, layer.act)
    }

    fn act(&mut self, x: &str, act: Act) -> String {
        match act {
            Act::None => x.to_string(),
            Act::Relu => self.node("Relu", &[x], &[]),
            Act::Relu6 => self.clip(x, 0.0, 6.0),
        }
    }

    fn pool(&mut self, x: &str, max: bool, k: i64, s: i64, p: i64) -> String {
        let mut attrs = vec![
            Attr::Ints("kernel_shape", vec![k, k]),
            Attr::Ints("strides", vec![s, s]),
            Attr::Ints("pads", vec![p, p, p, p]),
        ];
        if max {
            self.node("MaxPool", &[x], &attrs)
        } else {
            // burn's average pools count the padding
            attrs.push(Attr::Int("count_include_pad", 1));
            self.node("AveragePool", &[x], &attrs)
        }
    }
}

fn values<const D: usize>(p: &Param<Tensor<D>>) -> Vec<f32> {
    tensor_values(p.val())
}

/// A graph input or output: a tensor of `elem_type` with dimensions `dims`.
fn value_info(name: &str, elem_type: DataType, dims: Vec<DimensionValue>) -> ValueInfoProto {
    let shape = TensorShapeProto {
        dim: dims
            .into_iter()
            .map(|d| Dimension { value: Some(d) })
            .collect(),
    };
    ValueInfoProto {
        name: Some(name.to_string()),
        r#type: Some(TypeProto {
            value: Some(TypeValue::TensorType(TensorTypeProto {
                elem_type: Some(elem_type as i32),
                shape: Some(shape),
            })),
        }),
    }
}

impl StaticNet {
    /// The network as an ONNX model (see the module docs); `doc` is stored as the model's
    /// description.
    ///
    /// # Errors
    /// [`DeployError`] if a weight cannot be quantized (NaN).
    pub fn to_onnx(&self, doc: &str) -> Result<OnnxExport, DeployError> {
        let codes = self.weight_codes()?;
        let code = |name: &str| -> &QuantCodes {
            &codes
                .iter()
                .find(|(n, _)| n == name)
                .expect("every layer has codes")
                .1
        };
        let plan = &self.plan;
        let mut g = Graph::default();
        let mut x = g.conv_bn("input", &plan.stem, &self.stem, code(&plan.stem.name));
        if let Some(p) = plan.stem_pool {
            let (k, s) = (i64::from(p.kernel), i64::from(p.stride));
            x = g.pool(&x, p.max, k, s, k / 2);
        }
        for (bp, sb) in plan.blocks.iter().zip(&self.blocks) {
            x = match bp.pool_before {
                Some(spaces::PoolOp::MaxPool) => g.pool(&x, true, 2, 2, 0),
                Some(spaces::PoolOp::AvgPool) => g.pool(&x, false, 2, 2, 0),
                _ => x,
            };
            let input = x.clone();
            let mut y = x;
            for (c, m) in bp.convs.iter().zip(&sb.convs) {
                y = g.conv_bn(&y, c, m, code(&c.name));
            }
            if bp.residual {
                let skip = match (&bp.shortcut, &sb.shortcut) {
                    (Some(s), Some(m)) => g.conv_bn(&input, s, m, code(&s.name)),
                    _ => input,
                };
                y = g.node("Add", &[&y, &skip], &[]);
            }
            x = g.act(&y, bp.post_act);
        }
        if let (Some(h), Some(m)) = (&plan.head_conv, &self.head_conv) {
            x = g.conv_bn(&x, h, m, code(&h.name));
        }
        let pooled = g.node("GlobalAveragePool", &[&x], &[]);
        let flat = g.node("Flatten", &[&pooled], &[Attr::Int("axis", 1)]);
        let fc = &plan.fc;
        let a = g.activation(&fc.name, &flat, &self.fc_quant);
        let w = g.weight(&fc.name, code(&fc.name));
        let mut y = g.node("MatMul", &[&a, &w], &[]);
        if let Some(b) = &self.fc.bias {
            let b = g.f32s(
                &format!("{}.bias", fc.name),
                &[fc.out_features as usize],
                &values(b),
            );
            y = g.node("Add", &[&y, &b], &[]);
        }
        // name the output
        let logits = g.node_named("Identity", &[&y], &[], "logits".to_string());

        let first = &plan.stem;
        let batch = || DimensionValue::DimParam("batch".to_string());
        let fixed = |v: u32| DimensionValue::DimValue(i64::from(v));
        let input = value_info(
            "input",
            DataType::Float,
            vec![
                batch(),
                fixed(first.in_channels),
                fixed(first.in_size.0),
                fixed(first.in_size.1),
            ],
        );
        let output = value_info(
            &logits,
            DataType::Float,
            vec![batch(), fixed(fc.out_features)],
        );
        let model = ModelProto {
            ir_version: Some(IR_VERSION),
            opset_import: vec![OperatorSetIdProto {
                // the default (ai.onnx) operator set, named explicitly
                domain: Some(String::new()),
                version: Some(OPSET),
            }],
            producer_name: Some("qnas".to_string()),
            producer_version: Some(env!("CARGO_PKG_VERSION").to_string()),
            doc_string: Some(doc.to_string()),
            graph: Some(GraphProto {
                node: g.nodes,
                name: Some("qnas".to_string()),
                initializer: g.inits,
                input: vec![input],
                output: vec![output],
            }),
        };
        Ok(OnnxExport {
            bytes: model.encode_to_vec(),
            fallbacks: g.fallbacks,
        })
    }
}

#[cfg(test)]
mod tests;
