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

use burn::module::Param;
use burn::tensor::Tensor;
use spaces::Format;
use spaces::plan::{Act, ConvLayer};

use crate::deploy::{DeployError, pack_bits, tensor_values};
use crate::net::{StaticConvBn, StaticNet};
use crate::quant::grid::int_code_range;
use crate::quant::{Codes, FrozenActQuant, QuantCodes};

/// The opset the graph uses.
pub const OPSET: i64 = 21;
/// The ONNX IR version of that opset.
pub const IR_VERSION: i64 = 10;

// ONNX TensorProto data types
const FLOAT: i32 = 1;
const UINT8: i32 = 2;
const INT8: i32 = 3;
const UINT16: i32 = 4;
const INT16: i32 = 5;
const FLOAT16: i32 = 10;
const BFLOAT16: i32 = 16;
const FLOAT8E4M3FN: i32 = 17;
const FLOAT8E5M2: i32 = 19;
const INT4: i32 = 22;

/// An exported graph.
#[derive(Clone, Debug)]
pub struct OnnxExport {
    /// The serialized `ModelProto`.
    pub bytes: Vec<u8>,
    /// What was not expressed with ONNX types: `"layer: weights e2m1 stored as float"` etc.
    pub fallbacks: Vec<String>,
}

/// A protobuf message being written.
#[derive(Default)]
struct Pb(Vec<u8>);

impl Pb {
    fn varint(&mut self, mut v: u64) {
        loop {
            let byte = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                self.0.push(byte);
                return;
            }
            self.0.push(byte | 0x80);
        }
    }

    fn key(&mut self, field: u32, wire: u32) {
        self.varint(u64::from((field << 3) | wire));
    }

    fn int(&mut self, field: u32, v: i64) {
        self.key(field, 0);
        self.varint(v as u64);
    }

    fn bytes(&mut self, field: u32, b: &[u8]) {
        self.key(field, 2);
        self.varint(b.len() as u64);
        self.0.extend_from_slice(b);
    }

    fn string(&mut self, field: u32, s: &str) {
        self.bytes(field, s.as_bytes());
    }

    fn msg(&mut self, field: u32, m: &Pb) {
        self.bytes(field, &m.0);
    }

    fn float(&mut self, field: u32, f: f32) {
        self.key(field, 5);
        self.0.extend_from_slice(&f.to_le_bytes());
    }
}

/// A node attribute.
enum Attr {
    Int(&'static str, i64),
    Ints(&'static str, Vec<i64>),
    Float(&'static str, f32),
}

impl Attr {
    fn proto(&self) -> Pb {
        let mut p = Pb::default();
        match self {
            Attr::Int(name, v) => {
                p.string(1, name);
                p.int(3, *v);
                p.int(20, 2);
            }
            Attr::Ints(name, vs) => {
                p.string(1, name);
                for v in vs {
                    p.int(8, *v);
                }
                p.int(20, 7);
            }
            Attr::Float(name, v) => {
                p.string(1, name);
                p.float(2, *v);
                p.int(20, 1);
            }
        }
        p
    }
}

/// A graph under construction: nodes in order, initializers, unique names.
#[derive(Default)]
struct Graph {
    nodes: Vec<Pb>,
    inits: Vec<Pb>,
    count: usize,
    fallbacks: Vec<String>,
}

impl Graph {
    fn fresh(&mut self, base: &str) -> String {
        self.count += 1;
        format!("{base}_{}", self.count)
    }

    /// An initializer of raw little-endian bytes.
    fn init(&mut self, base: &str, dims: &[usize], dtype: i32, raw: Vec<u8>) -> String {
        let name = self.fresh(base);
        let mut t = Pb::default();
        for &d in dims {
            t.int(1, d as i64);
        }
        t.int(2, i64::from(dtype));
        t.string(8, &name);
        t.bytes(9, &raw);
        self.inits.push(t);
        name
    }

    fn f32s(&mut self, base: &str, dims: &[usize], values: &[f32]) -> String {
        let raw = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.init(base, dims, FLOAT, raw)
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
        let mut n = Pb::default();
        for i in inputs {
            n.string(1, i);
        }
        n.string(2, &out);
        n.string(3, &out);
        n.string(4, op);
        for a in attrs {
            n.msg(5, &a.proto());
        }
        self.nodes.push(n);
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
    fn qdq(&mut self, x: &str, scale: f32, dtype: i32) -> String {
        let s = self.scalar("act_scale", scale);
        let width = match dtype {
            INT16 | UINT16 => 2,
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
                    (..=8, true) => (INT8, -128, 127),
                    (..=8, false) => (UINT8, 0, 255),
                    (_, true) => (INT16, -32768, 32767),
                    (_, false) => (UINT16, 0, 65535),
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
                    FLOAT8E4M3FN
                } else {
                    FLOAT8E5M2
                };
                self.qdq(&guarded, s, dtype)
            }
            f if f == Format::FP16 || f == Format::BF16 => {
                let max = f.max_finite().unwrap_or(f64::MAX) as f32;
                let to = if f == Format::FP16 { FLOAT16 } else { BFLOAT16 };
                let mut y = x.to_string();
                if s != 1.0 {
                    let sv = self.scalar("act_scale", s);
                    y = self.node("Div", &[&y, &sv], &[]);
                }
                let y = self.clip(&y, -max, max);
                let c = self.node("Cast", &[&y], &[Attr::Int("to", i64::from(to))]);
                let mut y = self.node("Cast", &[&c], &[Attr::Int("to", i64::from(FLOAT))]);
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
        let native: Option<(i32, Vec<u8>)> = match (&q.codes, f) {
            (Codes::Int(c), Format::Int(b)) if b <= 16 => Some(if b == 4 {
                let pats: Vec<u64> = c.iter().map(|&v| (v as u64) & 0xf).collect();
                (INT4, pack_bits(&pats, 4))
            } else if b <= 8 {
                (INT8, c.iter().map(|&v| v as i8 as u8).collect())
            } else {
                (
                    INT16,
                    c.iter().flat_map(|&v| (v as i16).to_le_bytes()).collect(),
                )
            }),
            (Codes::Float(c), f) if f == Format::E4M3 => {
                Some((FLOAT8E4M3FN, c.iter().map(|&v| v as u8).collect()))
            }
            (Codes::Float(c), f) if f == Format::E5M2 => {
                Some((FLOAT8E5M2, c.iter().map(|&v| v as u8).collect()))
            }
            (Codes::Float(c), f) if f == Format::FP16 || f == Format::BF16 => {
                let t = if f == Format::FP16 { FLOAT16 } else { BFLOAT16 };
                Some((
                    t,
                    c.iter().flat_map(|&v| (v as u16).to_le_bytes()).collect(),
                ))
            }
            _ => None,
        };
        match native {
            Some((dtype @ (FLOAT16 | BFLOAT16), raw)) if scales_are_one => {
                let w = self.init(&format!("{layer}.weight"), dims, dtype, raw);
                self.node("Cast", &[&w], &[Attr::Int("to", i64::from(FLOAT))])
            }
            Some((dtype, raw)) if !matches!(dtype, FLOAT16 | BFLOAT16) => {
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

fn value_info(name: &str, elem_type: i32, dims: &[Result<i64, &str>]) -> Pb {
    let mut shape = Pb::default();
    for d in dims {
        let mut dim = Pb::default();
        match d {
            Ok(v) => dim.int(1, *v),
            Err(param) => dim.string(2, param),
        }
        shape.msg(1, &dim);
    }
    let mut tensor = Pb::default();
    tensor.int(1, i64::from(elem_type));
    tensor.msg(2, &shape);
    let mut ty = Pb::default();
    ty.msg(1, &tensor);
    let mut vi = Pb::default();
    vi.string(1, name);
    vi.msg(2, &ty);
    vi
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

        let mut graph = Pb::default();
        for n in &g.nodes {
            graph.msg(1, n);
        }
        graph.string(2, "qnas");
        for t in &g.inits {
            graph.msg(5, t);
        }
        let first = &plan.stem;
        graph.msg(
            11,
            &value_info(
                "input",
                FLOAT,
                &[
                    Err("batch"),
                    Ok(i64::from(first.in_channels)),
                    Ok(i64::from(first.in_size.0)),
                    Ok(i64::from(first.in_size.1)),
                ],
            ),
        );
        graph.msg(
            12,
            &value_info(
                &logits,
                FLOAT,
                &[Err("batch"), Ok(i64::from(fc.out_features))],
            ),
        );
        let mut opset = Pb::default();
        opset.string(1, "");
        opset.int(2, OPSET);
        let mut model = Pb::default();
        model.int(1, IR_VERSION);
        model.string(2, "qnas");
        model.string(3, env!("CARGO_PKG_VERSION"));
        model.string(6, doc);
        model.msg(7, &graph);
        model.msg(8, &opset);
        Ok(OnnxExport {
            bytes: model.0,
            fallbacks: g.fallbacks,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protobuf_encoding() {
        let mut p = Pb::default();
        p.varint(300);
        assert_eq!(p.0, vec![0xAC, 0x02]);
        let mut p = Pb::default();
        p.int(1, 10);
        p.string(2, "ab");
        p.float(3, 1.0);
        assert_eq!(
            p.0,
            vec![0x08, 10, 0x12, 2, b'a', b'b', 0x1D, 0x00, 0x00, 0x80, 0x3F]
        );
        // negative int64 values take ten bytes (two's complement as u64)
        let mut p = Pb::default();
        p.int(1, -1);
        assert_eq!(p.0.len(), 11);
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
                assert_eq!(&o.bytes[..2], &[0x08, IR_VERSION as u8]);
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
            }
        }
    }
}
