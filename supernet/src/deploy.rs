//! The deployable weights of a [`StaticNet`]: real quantized codes in a safetensors file, and
//! the network rebuilt from such a file without a supernet.
//!
//! # The file (`qnas.weights/1`)
//! For every layer `L` of the plan (`stem`, `s0.b0.conv1`, ..., `head.conv`, `head.fc`):
//! - `L.weight`: the weight codes in the layer's weight format (see [`Encoding`]);
//! - `L.weight_scale`: `f32`, one scale per output channel (one `1.0` for unscaled formats);
//!   a weight is `code value * scale`;
//! - `L.bias`: `f32`, when the layer has a bias;
//! - `L.input_scale`: `f32` `[1]`, the scale of the layer's input activation quantizer;
//! - `L.bn.weight`, `L.bn.bias`, `L.bn.running_mean`, `L.bn.running_var`: `f32`, the batch
//!   norm after a convolution (PyTorch's names).
//!
//! The header's `__metadata__` has one entry, `qnas`: a JSON [`Header`] with `schema`
//! (`qnas.weights/1`) and `layers`, a list of [`LayerMeta`]: each layer's weight format,
//! logical shape, scale axis and encoding, its input format and signedness, and its batch
//! norm's epsilon and momentum.
//!
//! Weight codes use the native safetensors type where the format has one (`int8` → `I8`,
//! `int16` → `I16`, `int32` → `I32`, `e4m3` → `F8_E4M3`, `e5m2` → `F8_E5M2`, `fp16` → `F16`,
//! `bf16` → `BF16`, `fp32` → `F32`), with the logical shape. Every other format is packed:
//! a `U8` tensor of `ceil(n * bits / 8)` bytes holding the `bits`-bit codes back to back in
//! row-major order, least significant bit first (code `i` occupies bits `i*bits ..
//! (i+1)*bits` of the little-endian bit stream); integer codes in two's complement, float codes
//! as `sign | exponent | mantissa`. So the weights take exactly `bits` bits per value.

use std::collections::HashMap;

use burn::module::Param;
use burn::nn::Linear;
use burn::tensor::{Device, Tensor, TensorData};
use safetensors::Dtype;
use safetensors::tensor::TensorView;
use serde::{Deserialize, Serialize};
use spaces::Format;
use spaces::plan::{ConvLayer, Plan};

use crate::net::{ConvBnParts, StaticConvBn, StaticNet};
use crate::quant::grid::int_code_range;
use crate::quant::{Codes, FrozenActQuant, QuantCodes, QuantError, WeightQuant, quantize_codes};

/// The `schema` of the weights file.
pub const WEIGHTS_SCHEMA: &str = "qnas.weights/1";

/// Why weights could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    /// A tensor could not be quantized.
    #[error("layer `{layer}`: {source}")]
    Quant {
        /// The layer.
        layer: String,
        /// Why.
        source: QuantError,
    },
    /// The bytes are not a safetensors file.
    #[error("not a safetensors file: {0}")]
    Format(String),
    /// The header metadata is missing or wrong.
    #[error("metadata: {0}")]
    Metadata(String),
    /// A tensor the network needs is not in the file.
    #[error("tensor `{0}` is missing")]
    Missing(String),
    /// A tensor does not fit the network.
    #[error("tensor `{name}`: {message}")]
    Tensor {
        /// The tensor.
        name: String,
        /// What is wrong.
        message: String,
    },
}

/// How a weight tensor's codes are stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Encoding {
    /// A native safetensors type with the logical shape.
    Native,
    /// `U8` bit stream, `bits` per code, least significant bit first.
    Packed,
}

/// A weight tensor's description in the metadata.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WeightMeta {
    /// Number format.
    pub format: Format,
    /// Logical shape (`[out, in / groups, k, k]` for convolutions, `[in, out]` for the
    /// classifier, burn's layout).
    pub shape: Vec<usize>,
    /// Axis of the per-channel scales (`None`: one scale).
    pub axis: Option<usize>,
    /// How the codes are stored.
    pub encoding: Encoding,
}

/// A layer's description in the metadata.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LayerMeta {
    /// Layer name (as in the plan).
    pub name: String,
    /// Weights.
    pub weight: WeightMeta,
    /// Format of the input activation (quantized with `input_scale`).
    pub input_format: Format,
    /// Whether the input's integer codes are signed.
    pub input_signed: bool,
    /// Whether a bias is stored.
    pub bias: bool,
    /// The batch norm's epsilon and momentum (`None` for the classifier).
    pub batch_norm: Option<(f64, f64)>,
}

/// The key of the one `__metadata__` entry, a JSON [`Header`].
pub const META_KEY: &str = "qnas";

/// The header metadata.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Header {
    /// [`WEIGHTS_SCHEMA`].
    pub schema: String,
    /// Every layer, in plan order.
    pub layers: Vec<LayerMeta>,
}

/// The tensors of a weights file and its layers' descriptions.
fn open(bytes: &[u8]) -> Result<(safetensors::SafeTensors<'_>, Vec<LayerMeta>), DeployError> {
    let st = safetensors::SafeTensors::deserialize(bytes)
        .map_err(|e| DeployError::Format(e.to_string()))?;
    // the tensors' view keeps its header private: read it once more for the metadata
    let (_, header) = safetensors::SafeTensors::read_metadata(bytes)
        .map_err(|e| DeployError::Format(e.to_string()))?;
    Ok((st, read_header(&header)?.layers))
}

fn read_header(meta: &safetensors::tensor::Metadata) -> Result<Header, DeployError> {
    let text = meta
        .metadata()
        .as_ref()
        .and_then(|m| m.get(META_KEY))
        .ok_or_else(|| DeployError::Metadata(format!("no `{META_KEY}` entry in __metadata__")))?;
    let h: Header = serde_json::from_str(text)
        .map_err(|e| DeployError::Metadata(format!("`{META_KEY}`: {e}")))?;
    if h.schema != WEIGHTS_SCHEMA {
        return Err(DeployError::Metadata(format!(
            "schema {:?}, expected {WEIGHTS_SCHEMA:?}",
            h.schema
        )));
    }
    Ok(h)
}

/// One tensor to write: dtype, shape, little-endian bytes.
struct Stored {
    dtype: Dtype,
    shape: Vec<usize>,
    bytes: Vec<u8>,
}

impl Stored {
    fn f32(t: Vec<f32>) -> Stored {
        Stored {
            dtype: Dtype::F32,
            shape: vec![t.len()],
            bytes: t.iter().flat_map(|v| v.to_le_bytes()).collect(),
        }
    }
}

/// The native safetensors type of a format, if it has one.
fn native_dtype(format: Format) -> Option<Dtype> {
    Some(match format {
        Format::Int(8) => Dtype::I8,
        Format::Int(16) => Dtype::I16,
        Format::Int(32) => Dtype::I32,
        f if f == Format::E4M3 => Dtype::F8_E4M3,
        f if f == Format::E5M2 => Dtype::F8_E5M2,
        f if f == Format::FP16 => Dtype::F16,
        f if f == Format::BF16 => Dtype::BF16,
        f if f == Format::FP32 => Dtype::F32,
        _ => return None,
    })
}

/// The raw `bits`-bit patterns of the codes.
fn patterns(q: &QuantCodes) -> Vec<u64> {
    let bits = q.format.bits();
    let mask = if bits >= 64 {
        u64::MAX
    } else {
        (1u64 << bits) - 1
    };
    match &q.codes {
        Codes::Int(c) => c.iter().map(|&v| (v as u64) & mask).collect(),
        Codes::Float(c) => c.iter().map(|&v| u64::from(v) & mask).collect(),
    }
}

/// Packs `bits`-bit patterns into a little-endian, least-significant-bit-first byte stream.
pub fn pack_bits(values: &[u64], bits: u32) -> Vec<u8> {
    let total = values.len() * bits as usize;
    let mut out = vec![0u8; total.div_ceil(8)];
    let mut pos = 0usize;
    for &v in values {
        for b in 0..bits as usize {
            if (v >> b) & 1 == 1 {
                out[(pos + b) / 8] |= 1 << ((pos + b) % 8);
            }
        }
        pos += bits as usize;
    }
    out
}

/// Unpacks `n` patterns of `bits` bits (see [`pack_bits`]); `None` if `bytes` has the wrong
/// length.
pub fn unpack_bits(bytes: &[u8], bits: u32, n: usize) -> Option<Vec<u64>> {
    if bytes.len() != (n * bits as usize).div_ceil(8) {
        return None;
    }
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let start = i * bits as usize;
        let mut v = 0u64;
        for b in 0..bits as usize {
            let p = start + b;
            if (bytes[p / 8] >> (p % 8)) & 1 == 1 {
                v |= 1 << b;
            }
        }
        out.push(v);
    }
    Some(out)
}

/// Bytes of a weight tensor's codes in the layer's encoding.
fn encode_weight(q: &QuantCodes) -> (WeightMeta, Stored) {
    let bits = q.format.bits();
    let pats = patterns(q);
    let (encoding, stored) = match native_dtype(q.format) {
        Some(dtype) => {
            let width = (bits / 8) as usize;
            let bytes = pats
                .iter()
                .flat_map(|&p| p.to_le_bytes().into_iter().take(width))
                .collect();
            (
                Encoding::Native,
                Stored {
                    dtype,
                    shape: q.shape.clone(),
                    bytes,
                },
            )
        }
        None => {
            let bytes = pack_bits(&pats, bits);
            (
                Encoding::Packed,
                Stored {
                    dtype: Dtype::U8,
                    shape: vec![bytes.len()],
                    bytes,
                },
            )
        }
    };
    (
        WeightMeta {
            format: q.format,
            shape: q.shape.clone(),
            axis: q.axis,
            encoding,
        },
        stored,
    )
}

/// Reads a weight tensor's codes back (the inverse of [`encode_weight`]).
fn decode_weight(
    name: &str,
    meta: &WeightMeta,
    view: &TensorView<'_>,
    scales: Vec<f32>,
) -> Result<QuantCodes, DeployError> {
    let bad = |message: String| DeployError::Tensor {
        name: name.to_string(),
        message,
    };
    let n: usize = meta.shape.iter().product();
    let bits = meta.format.bits();
    let pats = match meta.encoding {
        Encoding::Native => {
            let dtype = native_dtype(meta.format).ok_or_else(|| {
                bad(format!(
                    "{} has no native encoding; expected a packed tensor",
                    meta.format
                ))
            })?;
            if view.dtype() != dtype || view.shape() != meta.shape.as_slice() {
                return Err(bad(format!(
                    "expected {dtype:?} of shape {:?}, found {:?} of shape {:?}",
                    meta.shape,
                    view.dtype(),
                    view.shape()
                )));
            }
            let width = (bits / 8) as usize;
            view.data()
                .chunks_exact(width)
                .map(|c| {
                    let mut b = [0u8; 8];
                    b[..width].copy_from_slice(c);
                    u64::from_le_bytes(b)
                })
                .collect()
        }
        Encoding::Packed => {
            if view.dtype() != Dtype::U8 {
                return Err(bad(format!("expected packed U8, found {:?}", view.dtype())));
            }
            unpack_bits(view.data(), bits, n).ok_or_else(|| {
                bad(format!(
                    "{} bytes do not hold {n} codes of {bits} bits",
                    view.data().len()
                ))
            })?
        }
    };
    let codes = match meta.format {
        Format::Int(b) => {
            let (lo, hi) = int_code_range(b, true);
            let shift = 64 - u32::from(b);
            let mut out = Vec::with_capacity(n);
            for p in pats {
                // sign-extend the b-bit two's complement pattern
                let v = ((p << shift) as i64) >> shift;
                if !(lo..=hi).contains(&v) {
                    return Err(bad(format!("code {v} is outside [{lo}, {hi}]")));
                }
                out.push(v);
            }
            Codes::Int(out)
        }
        Format::Float { .. } => Codes::Float(pats.into_iter().map(|p| p as u32).collect()),
    };
    let channels = match meta.axis {
        Some(a) if a < meta.shape.len() => meta.shape[a],
        Some(a) => return Err(bad(format!("scale axis {a} is not an axis"))),
        None => 1,
    };
    if scales.len() != channels {
        return Err(bad(format!(
            "{} scales for {channels} channels",
            scales.len()
        )));
    }
    if let Some(s) = scales.iter().find(|s| !(s.is_finite() && **s > 0.0)) {
        return Err(bad(format!("scale {s} is not positive and finite")));
    }
    Ok(QuantCodes {
        format: meta.format,
        signed: true,
        shape: meta.shape.clone(),
        axis: meta.axis,
        scales,
        codes,
    })
}

/// A layer of a static network, by reference.
enum LayerRef<'a> {
    Conv(&'a StaticConvBn),
    Fc(&'a Linear, &'a FrozenActQuant),
}

/// The values of a tensor as `f32`, row-major.
pub fn tensor_values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data()
        .convert::<f32>()
        .try_into_vec::<f32>()
        .unwrap_or_default()
}

impl StaticNet {
    /// Every layer with its plan name and weight format, in plan order.
    fn named_layers(&self) -> Vec<(String, Format, LayerRef<'_>)> {
        let conv = |c: &ConvLayer, l| (c.name.clone(), c.formats.weights, LayerRef::Conv(l));
        let mut out = vec![conv(&self.plan.stem, &self.stem)];
        for (bp, sb) in self.plan.blocks.iter().zip(&self.blocks) {
            for (c, l) in bp.convs.iter().zip(&sb.convs) {
                out.push(conv(c, l));
            }
            if let (Some(s), Some(l)) = (&bp.shortcut, &sb.shortcut) {
                out.push(conv(s, l));
            }
        }
        if let (Some(h), Some(l)) = (&self.plan.head_conv, &self.head_conv) {
            out.push(conv(h, l));
        }
        let fc = &self.plan.fc;
        out.push((
            fc.name.clone(),
            fc.formats.weights,
            LayerRef::Fc(&self.fc, &self.fc_quant),
        ));
        out
    }

    /// The weight codes of every layer, in plan order: each weight tensor quantized to its
    /// layer's format (per output channel, as the fake quantizers do). The weights of an
    /// extracted network already lie on their grids, so this gives back exactly the codes
    /// the supernet's quantizers produced; weights moved off the grid (fine-tuning) are
    /// rounded onto it.
    ///
    /// # Errors
    /// [`DeployError::Quant`] if a weight is NaN.
    pub fn weight_codes(&self) -> Result<Vec<(String, QuantCodes)>, DeployError> {
        self.named_layers()
            .into_iter()
            .map(|(name, format, layer)| {
                let q = match layer {
                    LayerRef::Conv(l) => {
                        quantize_codes(l.conv.weight.val(), format, 0, self.weight_quant)
                    }
                    // burn's Linear weight is [in, out]: the output channels are axis 1
                    LayerRef::Fc(fc, _) => {
                        quantize_codes(fc.weight.val(), format, 1, self.weight_quant)
                    }
                };
                q.map(|q| (name.clone(), q))
                    .map_err(|source| DeployError::Quant {
                        layer: name,
                        source,
                    })
            })
            .collect()
    }

    /// The safetensors file of this network (see the module docs).
    ///
    /// # Errors
    /// [`DeployError`] if a weight is NaN or serialization fails.
    pub fn to_safetensors(&self) -> Result<Vec<u8>, DeployError> {
        let codes = self.weight_codes()?;
        let mut tensors: Vec<(String, Stored)> = Vec::new();
        let mut metas = Vec::new();
        // weight_codes lists the layers in the same order
        for ((name, _, layer), (_, q)) in self.named_layers().into_iter().zip(&codes) {
            let (wmeta, stored) = encode_weight(q);
            tensors.push((format!("{name}.weight"), stored));
            tensors.push((
                format!("{name}.weight_scale"),
                Stored::f32(q.scales.clone()),
            ));
            let (quant, bias, bn) = match layer {
                LayerRef::Conv(l) => (&l.quant, l.conv.bias.as_ref(), Some(&l.bn)),
                LayerRef::Fc(fc, quant) => (quant, fc.bias.as_ref(), None),
            };
            if let Some(b) = bias {
                tensors.push((format!("{name}.bias"), Stored::f32(tensor_values(b.val()))));
            }
            tensors.push((
                format!("{name}.input_scale"),
                Stored::f32(vec![quant.scale_value()]),
            ));
            if let Some(bn) = bn {
                for (suffix, v) in [
                    ("weight", tensor_values(bn.gamma.val())),
                    ("bias", tensor_values(bn.beta.val())),
                    ("running_mean", tensor_values(bn.running_mean.value())),
                    ("running_var", tensor_values(bn.running_var.value())),
                ] {
                    tensors.push((format!("{name}.bn.{suffix}"), Stored::f32(v)));
                }
            }
            metas.push(LayerMeta {
                name: name.clone(),
                weight: wmeta,
                input_format: quant.format,
                input_signed: quant.signed,
                bias: bias.is_some(),
                batch_norm: bn.map(|b| (b.epsilon, b.momentum)),
            });
        }
        let views = tensors
            .iter()
            .map(|(n, s)| {
                TensorView::new(s.dtype, s.shape.clone(), &s.bytes)
                    .map(|v| (n.clone(), v))
                    .map_err(|e| DeployError::Format(format!("{n}: {e}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        // one metadata entry: safetensors writes its metadata map in hash order, so two entries
        // would make the file's bytes vary from run to run
        let header = serde_json::to_string(&Header {
            schema: WEIGHTS_SCHEMA.to_string(),
            layers: metas,
        })
        .map_err(|e| DeployError::Format(e.to_string()))?;
        let meta = HashMap::from([(META_KEY.to_string(), header)]);
        safetensors::serialize(views, Some(meta)).map_err(|e| DeployError::Format(e.to_string()))
    }

    /// Rebuilds the network of `plan` from a safetensors file written by
    /// [`StaticNet::to_safetensors`]: weights are the decoded codes times their scales (exactly
    /// the values the supernet's quantizers produced). The file's formats and shapes must be
    /// the plan's. The network's [`StaticNet::weight_quant`] is the default (max ranges, which
    /// give back the stored weights whatever policy produced them); set the space's with
    /// [`StaticNet::with_weight_quant`] before training it further.
    ///
    /// # Errors
    /// [`DeployError`] naming the tensor or metadata entry that is missing or does not fit.
    pub fn from_safetensors(
        plan: Plan,
        bytes: &[u8],
        device: &Device,
    ) -> Result<StaticNet, DeployError> {
        let (st, layers) = open(bytes)?;
        let file = WeightsFile {
            st: &st,
            layers: layers.into_iter().map(|l| (l.name.clone(), l)).collect(),
            device,
        };
        StaticNet::build(
            plan,
            WeightQuant::default(),
            |_, _, layer| file.conv(layer),
            |plan| file.fc(plan),
        )
    }
}

/// A safetensors file being read.
struct WeightsFile<'a> {
    st: &'a safetensors::SafeTensors<'a>,
    layers: HashMap<String, LayerMeta>,
    device: &'a Device,
}

impl WeightsFile<'_> {
    fn view(&self, name: &str) -> Result<TensorView<'_>, DeployError> {
        self.st
            .tensor(name)
            .map_err(|_| DeployError::Missing(name.to_string()))
    }

    /// An `f32` vector of `len` values (`None`: any length).
    fn f32s(&self, name: &str, len: Option<usize>) -> Result<Vec<f32>, DeployError> {
        let v = self.view(name)?;
        let bad = |message: String| DeployError::Tensor {
            name: name.to_string(),
            message,
        };
        if v.dtype() != Dtype::F32 || v.shape().len() != 1 {
            return Err(bad(format!(
                "expected a vector of F32, found {:?} of shape {:?}",
                v.dtype(),
                v.shape()
            )));
        }
        if let Some(n) = len
            && v.shape()[0] != n
        {
            return Err(bad(format!("expected {n} values, found {}", v.shape()[0])));
        }
        Ok(v.data()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect())
    }

    fn meta(&self, name: &str, weights: Format, acts: Format) -> Result<&LayerMeta, DeployError> {
        let m = self
            .layers
            .get(name)
            .ok_or_else(|| DeployError::Metadata(format!("no layer `{name}` in `layers`")))?;
        if m.weight.format != weights || m.input_format != acts {
            return Err(DeployError::Metadata(format!(
                "layer `{name}` is stored as weights {} / activations {}, the architecture says {weights} / {acts}",
                m.weight.format, m.input_format
            )));
        }
        Ok(m)
    }

    /// The weight tensor of a layer, dequantized, with its expected shape checked.
    fn weight<const D: usize>(
        &self,
        name: &str,
        meta: &LayerMeta,
        shape: [usize; D],
    ) -> Result<Tensor<D>, DeployError> {
        let wname = format!("{name}.weight");
        if meta.weight.shape != shape {
            return Err(DeployError::Tensor {
                name: wname,
                message: format!(
                    "shape {:?}, the architecture needs {shape:?}",
                    meta.weight.shape
                ),
            });
        }
        let scales = self.f32s(&format!("{name}.weight_scale"), None)?;
        let q = decode_weight(&wname, &meta.weight, &self.view(&wname)?, scales)?;
        Ok(Tensor::from_data(
            TensorData::new(q.dequantize(), shape),
            self.device,
        ))
    }

    fn input_quant(&self, name: &str, meta: &LayerMeta) -> Result<FrozenActQuant, DeployError> {
        let scale = self.f32s(&format!("{name}.input_scale"), Some(1))?[0];
        if !(scale.is_finite() && scale > 0.0) {
            return Err(DeployError::Tensor {
                name: format!("{name}.input_scale"),
                message: format!("scale {scale} is not positive and finite"),
            });
        }
        Ok(FrozenActQuant::new(
            meta.input_format,
            scale,
            meta.input_signed,
            self.device,
        ))
    }

    fn vector(&self, name: &str, len: usize) -> Result<Tensor<1>, DeployError> {
        let v = self.f32s(name, Some(len))?;
        Ok(Tensor::from_data(TensorData::new(v, [len]), self.device))
    }

    fn conv(&self, layer: &ConvLayer) -> Result<StaticConvBn, DeployError> {
        let name = &layer.name;
        let meta = self.meta(name, layer.formats.weights, layer.formats.activations)?;
        let (cin, cout, k, g) = (
            layer.in_channels as usize,
            layer.out_channels as usize,
            layer.kernel as usize,
            layer.groups as usize,
        );
        let weight = self.weight(name, meta, [cout, cin / g, k, k])?;
        let bias = if meta.bias {
            Some(self.vector(&format!("{name}.bias"), cout)?)
        } else {
            None
        };
        let (epsilon, momentum) = meta.batch_norm.ok_or_else(|| {
            DeployError::Metadata(format!("layer `{name}` has no batch norm settings"))
        })?;
        let bn = |s: &str| self.vector(&format!("{name}.bn.{s}"), cout);
        Ok(StaticConvBn::from_parts(
            layer,
            ConvBnParts {
                weight,
                bias,
                gamma: bn("weight")?,
                beta: bn("bias")?,
                running_mean: bn("running_mean")?,
                running_var: bn("running_var")?,
                epsilon,
                momentum,
                quant: self.input_quant(name, meta)?,
            },
        ))
    }

    fn fc(&self, plan: &Plan) -> Result<(Linear, FrozenActQuant), DeployError> {
        let l = &plan.fc;
        let name = &l.name;
        let meta = self.meta(name, l.formats.weights, l.formats.activations)?;
        let (i, o) = (l.in_features as usize, l.out_features as usize);
        let weight = self.weight(name, meta, [i, o])?;
        let bias = if meta.bias {
            Some(Param::from_tensor(self.vector(&format!("{name}.bias"), o)?))
        } else {
            None
        };
        Ok((
            Linear {
                weight: Param::from_tensor(weight),
                bias,
            },
            self.input_quant(name, meta)?,
        ))
    }
}

/// The size of one weight tensor in a weights file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WeightSize {
    /// The layer.
    pub layer: String,
    /// Number of weights.
    pub values: usize,
    /// Bytes of their codes.
    pub bytes: usize,
}

/// Every weight tensor's size in a file written by [`StaticNet::to_safetensors`] (its codes
/// are the part of the file that scales with the formats), by layer.
///
/// # Errors
/// [`DeployError`] if the file or its metadata cannot be read.
pub fn weight_sizes(bytes: &[u8]) -> Result<Vec<WeightSize>, DeployError> {
    let (st, layers) = open(bytes)?;
    layers
        .iter()
        .map(|l| {
            let name = format!("{}.weight", l.name);
            let v = st
                .tensor(&name)
                .map_err(|_| DeployError::Missing(name.clone()))?;
            Ok(WeightSize {
                layer: l.name.clone(),
                values: l.weight.shape.iter().product(),
                bytes: v.data().len(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bits_pack_least_significant_first_and_unpack() {
        // 2-bit codes 1, 2, 3 -> 0b11_10_01
        assert_eq!(pack_bits(&[1, 2, 3], 2), vec![0b0011_1001]);
        // 4-bit codes: low nibble first
        assert_eq!(pack_bits(&[0xA, 0x5, 0xF], 4), vec![0x5A, 0x0F]);
        // 3-bit codes straddle bytes
        assert_eq!(pack_bits(&[7, 0, 7], 3), vec![0b1100_0111, 0b0000_0001]);
        for bits in 1..=32u32 {
            let mask = (1u64 << bits) - 1;
            let v: Vec<u64> = (0..37u64)
                .map(|i| i.wrapping_mul(0x9E37_79B9_7F4A_7C15) & mask)
                .collect();
            let packed = pack_bits(&v, bits);
            assert_eq!(packed.len(), (37 * bits as usize).div_ceil(8));
            assert_eq!(unpack_bits(&packed, bits, 37), Some(v));
            assert_eq!(unpack_bits(&packed[1..], bits, 37), None);
        }
    }
}
