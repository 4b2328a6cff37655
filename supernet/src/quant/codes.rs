//! The integer or floating-point codes of a quantized tensor and their scales, for export.
//!
//! The encoder works on plain `f32` slices with the scalar grid functions of [`super::grid`],
//! independently of the tensor quantizers; `dequantize` reproduces the fake-quantized tensor
//! bit for bit (checked in the tests).

use burn::tensor::Tensor;
use spaces::{Format, WeightRange};

use super::grid::{
    float_code, float_code_value, grid_max, grid_significant_bits, int_code, int_code_range,
    snap_scale_scalar,
};
use super::weight::{WeightQuant, mse_channel_scales};

/// Why a tensor could not be encoded.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum QuantError {
    /// The number of values does not match the shape.
    #[error("{values} values do not fill a tensor of shape {shape:?}")]
    Shape {
        /// Number of values given.
        values: usize,
        /// The shape.
        shape: Vec<usize>,
    },
    /// The scale axis is not an axis of the tensor.
    #[error("axis {axis} is out of range for a tensor of rank {rank}")]
    Axis {
        /// The axis.
        axis: usize,
        /// The tensor's rank.
        rank: usize,
    },
    /// Wrong number of scales (one per index of the axis, or one per tensor).
    #[error("{got} scales given, expected {expected}")]
    ScaleCount {
        /// Scales given.
        got: usize,
        /// Scales expected.
        expected: usize,
    },
    /// A scale is zero, negative or not finite.
    #[error("scale {0} is not positive and finite")]
    Scale(f32),
    /// A value is NaN, which no format has a code for.
    #[error("the value at index {0} is NaN")]
    NaN(usize),
    /// The tensor's data could not be read as `f32`.
    #[error("tensor data: {0}")]
    Data(String),
}

/// The codes of a quantized tensor, in row-major order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Codes {
    /// Integer codes, within [`int_code_range`] of the format.
    Int(Vec<i64>),
    /// Floating-point bit patterns (`sign | exponent | mantissa` in the low `format.bits()`
    /// bits; see [`super::grid::float_code`]).
    Float(Vec<u32>),
}

/// A quantized tensor: codes, scales and what is needed to read them back.
#[derive(Clone, Debug, PartialEq)]
pub struct QuantCodes {
    /// The format.
    pub format: Format,
    /// Signed or unsigned integer codes (floating-point codes are always signed).
    pub signed: bool,
    /// Shape of the tensor.
    pub shape: Vec<usize>,
    /// The axis the scales run along (the output channel), or `None` for one scale per tensor.
    pub axis: Option<usize>,
    /// The scales: one per index of `axis`, or a single one. Unscaled formats have scale 1.
    pub scales: Vec<f32>,
    /// The codes.
    pub codes: Codes,
}

impl QuantCodes {
    /// Encodes `values` (row-major, of `shape`) with the given scales: element `x` with scale
    /// `s` gets the code of `x / s` (computed in `f32`, as the tensor quantizers do). fp32
    /// gives its own bit patterns.
    ///
    /// # Errors
    /// [`QuantError`] if the shape, axis or number of scales do not fit, a scale is not
    /// positive and finite, or a value is NaN.
    pub fn encode(
        values: &[f32],
        shape: &[usize],
        format: Format,
        scales: Vec<f32>,
        axis: Option<usize>,
        signed: bool,
    ) -> Result<QuantCodes, QuantError> {
        let n: usize = shape.iter().product();
        if values.len() != n {
            return Err(QuantError::Shape {
                values: values.len(),
                shape: shape.to_vec(),
            });
        }
        let (channels, stride) = channel_layout(shape, axis)?;
        if scales.len() != channels {
            return Err(QuantError::ScaleCount {
                got: scales.len(),
                expected: channels,
            });
        }
        if let Some(&bad) = scales.iter().find(|s| !(s.is_finite() && **s > 0.0)) {
            return Err(QuantError::Scale(bad));
        }
        let scale_of = |i: usize| scales[(i / stride) % channels];
        let codes = match format {
            Format::Int(bits) => {
                let (lo, hi) = int_code_range(bits, signed);
                let mut codes = Vec::with_capacity(n);
                for (i, &x) in values.iter().enumerate() {
                    if x.is_nan() {
                        return Err(QuantError::NaN(i));
                    }
                    codes.push(int_code(x / scale_of(i), lo, hi));
                }
                Codes::Int(codes)
            }
            Format::Float { .. } => {
                let mut codes = Vec::with_capacity(n);
                for (i, &x) in values.iter().enumerate() {
                    let code = float_code(x / scale_of(i), format).ok_or(QuantError::NaN(i))?;
                    codes.push(code);
                }
                Codes::Float(codes)
            }
        };
        Ok(QuantCodes {
            format,
            signed,
            shape: shape.to_vec(),
            axis,
            scales,
            codes,
        })
    }

    /// The values the codes stand for, `code value * scale` in `f32`, row-major.
    pub fn dequantize(&self) -> Vec<f32> {
        let channels = self.scales.len();
        let stride = match self.axis {
            Some(axis) => self.shape[axis + 1..].iter().product(),
            None => 1,
        };
        let scale_of = |i: usize| self.scales[(i / stride) % channels];
        match &self.codes {
            Codes::Int(codes) => codes
                .iter()
                .enumerate()
                .map(|(i, &c)| c as f32 * scale_of(i))
                .collect(),
            Codes::Float(codes) => codes
                .iter()
                .enumerate()
                .map(|(i, &c)| {
                    let v = float_code_value(c, self.format).unwrap_or(f64::NAN) as f32;
                    v * scale_of(i)
                })
                .collect(),
        }
    }

    /// The codes as bytes, for formats of at most 8 bits: integer codes as `u8` (unsigned) or
    /// two's complement `i8` bits (signed), floating-point bit patterns as they are. `None` for
    /// wider formats.
    pub fn to_bytes(&self) -> Option<Vec<u8>> {
        if self.format.bits() > 8 {
            return None;
        }
        Some(match &self.codes {
            Codes::Int(codes) => codes.iter().map(|&c| c as i8 as u8).collect(),
            Codes::Float(codes) => codes.iter().map(|&c| c as u8).collect(),
        })
    }
}

/// Number of scales and the row-major stride of `axis`.
fn channel_layout(shape: &[usize], axis: Option<usize>) -> Result<(usize, usize), QuantError> {
    match axis {
        None => Ok((1, 1)),
        Some(axis) if axis < shape.len() => {
            Ok((shape[axis], shape[axis + 1..].iter().product::<usize>()))
        }
        Some(axis) => Err(QuantError::Axis {
            axis,
            rank: shape.len(),
        }),
    }
}

/// Encodes a weight tensor exactly as [`super::fake_quantize_weight`] quantizes it: signed,
/// per output channel along `axis` (under [`WeightRange::Max`] `scale_c = max|w_c| / grid_max`,
/// at least `f32::MIN_POSITIVE`, snapped as by [`super::grid::snap_scale_scalar`]; under
/// [`WeightRange::Mse`] the scales of [`super::weight::mse_channel_scales`]), or one scale of 1
/// for unscaled formats. The max scales are computed here from the data, independently of the
/// tensor code.
///
/// # Errors
/// [`QuantError`] if `axis` is not an axis of the tensor, a value is NaN, or the data is not
/// readable as `f32`.
pub fn quantize_codes<const D: usize>(
    weight: Tensor<D>,
    format: Format,
    axis: usize,
    quant: WeightQuant,
) -> Result<QuantCodes, QuantError> {
    let shape = weight.dims().to_vec();
    let values = weight
        .into_data()
        .convert::<f32>()
        .try_to_vec::<f32>()
        .map_err(|e| QuantError::Data(format!("{e:?}")))?;
    if !quant.scales(format) {
        return QuantCodes::encode(&values, &shape, format, vec![1.0], None, true);
    }
    let (channels, stride) = channel_layout(&shape, Some(axis))?;
    if quant.range == WeightRange::Mse {
        let scales = mse_channel_scales(&values, channels, stride, format);
        return QuantCodes::encode(&values, &shape, format, scales, Some(axis), true);
    }
    let mut max = vec![0.0f32; channels];
    for (i, &x) in values.iter().enumerate() {
        let c = (i / stride) % channels;
        max[c] = max[c].max(x.abs());
    }
    let top = grid_max(format, true) as f32;
    let bits = grid_significant_bits(format, true);
    let scales = max
        .iter()
        .map(|&m| snap_scale_scalar((m / top).max(f32::MIN_POSITIVE), bits))
        .collect();
    QuantCodes::encode(&values, &shape, format, scales, Some(axis), true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quant::test_util::{pseudo_random, small_float_formats, values_of};
    use crate::quant::{FloatScaling, fake_quantize_weight};
    use burn::tensor::Device;

    #[test]
    fn weight_codes_dequantize_to_the_fake_quantized_weights() {
        let device = Device::flex();
        let gains = Tensor::<4>::from_floats([[[[0.01f32]]], [[[1.0]]], [[[300.0]]]], &device);
        let w = pseudo_random([3, 2, 3, 3], 1.0, 3, &device).mul(gains);
        let mut formats: Vec<Format> = (2..=8).map(Format::Int).collect();
        formats.extend(small_float_formats());
        formats.extend([Format::Int(16), Format::FP16, Format::BF16, Format::FP32]);
        for format in formats {
            for scaling in [
                FloatScaling::Minifloats,
                FloatScaling::All,
                FloatScaling::None,
            ]
            .into_iter()
            .flat_map(|s| [WeightRange::Max, WeightRange::Mse].map(|r| WeightQuant::new(s, r)))
            {
                let fake = values_of(fake_quantize_weight(w.clone(), format, 0, scaling));
                let codes = quantize_codes(w.clone(), format, 0, scaling).unwrap();
                assert_eq!(codes.dequantize(), fake, "{format} {scaling:?}");
                match &codes.codes {
                    Codes::Int(c) => {
                        let Format::Int(bits) = format else { panic!() };
                        let (lo, hi) = int_code_range(bits, true);
                        assert!(c.iter().all(|&c| (lo..=hi).contains(&c)));
                        // Every channel reaches its top code.
                        for ch in 0..3 {
                            let top = c[ch * 18..(ch + 1) * 18].iter().map(|c| c.abs()).max();
                            assert_eq!(top, Some(hi), "{format}");
                        }
                    }
                    Codes::Float(c) => {
                        assert!(c.iter().all(|&c| u64::from(c) < (1u64 << format.bits())));
                    }
                }
                assert_eq!(codes.to_bytes().is_some(), format.bits() <= 8);
            }
        }
    }

    #[test]
    fn bytes_and_errors() {
        let q = QuantCodes::encode(
            &[-1.0, 0.5, 1.0],
            &[3],
            Format::Int(4),
            vec![0.5],
            None,
            true,
        )
        .unwrap();
        assert_eq!(q.codes, Codes::Int(vec![-2, 1, 2]));
        assert_eq!(q.to_bytes(), Some(vec![0xFE, 0x01, 0x02]));
        let q =
            QuantCodes::encode(&[448.0, -0.5], &[2], Format::E4M3, vec![1.0], None, true).unwrap();
        assert_eq!(q.to_bytes(), Some(vec![0x7E, 0xB0]));
        assert_eq!(
            QuantCodes::encode(&[1.0], &[2], Format::Int(4), vec![1.0], None, true),
            Err(QuantError::Shape {
                values: 1,
                shape: vec![2]
            })
        );
        assert_eq!(
            QuantCodes::encode(&[1.0, 2.0], &[2], Format::Int(4), vec![1.0], Some(1), true),
            Err(QuantError::Axis { axis: 1, rank: 1 })
        );
        assert_eq!(
            QuantCodes::encode(&[1.0, 2.0], &[2], Format::Int(4), vec![1.0], Some(0), true),
            Err(QuantError::ScaleCount {
                got: 1,
                expected: 2
            })
        );
        assert_eq!(
            QuantCodes::encode(&[1.0], &[1], Format::Int(4), vec![0.0], None, true),
            Err(QuantError::Scale(0.0))
        );
        assert_eq!(
            QuantCodes::encode(&[f32::NAN], &[1], Format::E2M1, vec![1.0], None, true),
            Err(QuantError::NaN(0))
        );
    }
}
