//! Fake quantization with straight-through gradients, for every [`Format`] of a search space.
//!
//! # Number formats
//! - **Integers** ([`Format::Int`]): a value `x` becomes `code * scale` with
//!   `code = clamp(round(x / scale))`, rounding ties to even. Weights are signed and symmetric
//!   per output channel (`scale = max|w| / (2^(b-1) - 1)`, codes in `±(2^(b-1) - 1)`);
//!   activations are unsigned after a ReLU (codes `[0, 2^b - 1]`) and signed otherwise, with a
//!   per-tensor scale from an [`ActScaleMethod`].
//! - **Floating point** ([`Format::Float`], minifloats such as e4m3, e2m1, and fp16, bf16):
//!   round to the nearest value of the format (ties to even, subnormals included) and saturate
//!   at `±max_finite`; no infinities or NaNs are produced. Optionally (see [`FloatScaling`]) the
//!   tensor is scaled first so that its maximum magnitude (weights: per output channel;
//!   activations: the running range or learned step) maps onto `max_finite`. Floating-point
//!   formats are always signed.
//! - **fp32** is full precision: the quantizers return their input unchanged.
//!
//! # Exact grids
//! Max-derived scales are rounded to `24 - k` significant bits, where `k` is the number of
//! significant bits of the grid's largest value ([`grid::grid_significant_bits`]): then every
//! `code * scale` is exact in `f32`, the output lies exactly on `codes × scale`, and quantizing
//! an already quantized tensor gives it back unchanged (the recomputed scale is the same). The
//! scale changes by less than `2^-(24-k)` relative. This is done for grids of up to
//! [`grid::MAX_SNAPPED_GRID_BITS`] significant bits (integers up to 12 bits, every minifloat,
//! fp16, bf16); wider integer grids keep their scale as computed (snapping would move their
//! largest value by whole codes) and are exact only up to `f32` rounding.
//!
//! # Gradients
//! The forward value is the quantized tensor; the backward pass is the *clipped*
//! straight-through estimator: the gradient passes unchanged where `x / scale` lies inside the
//! grid's rounding range ([`grid::saturation_bounds`]: integer codes `[lo - 1/2, hi + 1/2]`,
//! floats `±(max_finite + ulp/2)`) and is zero where the value saturates. With max-derived
//! scales (weights) nothing saturates, so weight gradients pass straight through. Scales derived
//! from data are constants for autodiff; the LSQ step of [`ActScaleMethod::Lsq`] is the one
//! scale that is learned.
//!
//! # State
//! Weight quantization is a pure function of the weight tensor and the format. Activation
//! quantizers ([`ActQuantizer`]) keep one running range per layer (format independent, since the
//! scale for a format is that range divided by the format's [`grid::grid_max`]) or one learned
//! step per layer and candidate format. The format is always an argument of `forward`.

pub mod act;
pub mod act_mse;
pub mod codes;
pub mod grid;
pub mod round;
pub mod weight;

#[cfg(test)]
pub(crate) mod test_util;

use burn::tensor::{Bool, Tensor};
use serde::{Deserialize, Serialize};
use spaces::Format;

pub use act::{ActQuantizer, ActQuantizerConfig, ActScaleMethod, FrozenActQuant};
pub use codes::{Codes, QuantCodes, QuantError, quantize_codes};
pub use weight::{WeightQuant, fake_quantize_weight, mse_channel_scales, weight_scale};

use grid::saturation_bounds;
use round::{round_to_float, round_to_int};

/// Whether floating-point formats are scaled before rounding.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum FloatScaling {
    /// Round onto the format's own grid, unscaled.
    None,
    /// Scale formats of at most 8 bits (fp8, fp6, fp4 minifloats); round wider formats
    /// (fp16, bf16) unscaled. Scaling bf16 by `range / max_finite` would push the scale into
    /// the subnormals of `f32`.
    #[default]
    Minifloats,
    /// Scale every floating-point format.
    All,
}

impl FloatScaling {
    /// True when a tensor quantized to `format` gets a scale: always for integer formats,
    /// for floating-point formats when [`FloatScaling::applies`], never for fp32.
    pub fn scales(self, format: Format) -> bool {
        match format {
            Format::Int(_) => true,
            Format::Float { .. } => self.applies(format),
        }
    }

    /// True when a tensor quantized to `format` is scaled first. Never for integer formats
    /// (which are always scaled) or fp32 (which is not quantized).
    pub fn applies(self, format: Format) -> bool {
        if !format.is_float() || format.is_full_precision() {
            return false;
        }
        match self {
            FloatScaling::None => false,
            FloatScaling::Minifloats => format.bits() <= 8,
            FloatScaling::All => true,
        }
    }
}

/// The number formats of one layer in one forward pass: passed to every elastic layer's
/// `forward`, never stored in the layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Precision {
    /// Format of the layer's weights.
    pub weight: Format,
    /// Format of the layer's input activation.
    pub act: Format,
}

impl Precision {
    /// Full precision: nothing is quantized.
    pub const FULL: Precision = Precision {
        weight: Format::FP32,
        act: Format::FP32,
    };

    /// Weights and input activations in the given formats.
    pub fn new(weight: Format, act: Format) -> Precision {
        Precision { weight, act }
    }
}

/// Fake-quantizes `x` to `format` with a given scale, with the clipped straight-through
/// estimator (see the module docs).
///
/// `scale` (positive, broadcastable to `x`) is treated as a constant; `None` means a scale of
/// 1 (for floating point: the format's own grid). `signed` chooses the integer code range
/// ([`grid::int_code_range`]); floating-point formats are always signed. fp32 returns `x`.
///
/// # Shapes
/// - `x`: any shape
/// - `scale`: broadcastable to `x` (e.g. `[1; D]` per tensor, `[c, 1, 1, 1]` per channel)
/// - output: the shape of `x`
pub fn fake_quantize<const D: usize>(
    x: Tensor<D>,
    format: Format,
    scale: Option<Tensor<D>>,
    signed: bool,
) -> Tensor<D> {
    if format.is_full_precision() {
        return x;
    }
    // One fused pass on our kernels for a per-tensor scale (or none); the same values and
    // gradient as the tensor ops below.
    let narrow = !matches!(format, Format::Int(bits) if bits > 24);
    if narrow && crate::kernels::active(&x.device()) {
        match &scale {
            Some(s) if s.shape().num_elements() == 1 => {
                let s = s.clone().reshape([1]);
                return crate::kernels::ext::fake_quantize(x, s, format, signed);
            }
            None => {
                let one = Tensor::<1>::ones([1], &x.device());
                return crate::kernels::ext::fake_quantize(x, one, format, signed);
            }
            Some(_) => {}
        }
    }
    fake_quantize_ops(x, format, scale, signed)
}

/// [`fake_quantize`] on burn's tensor ops, whatever the device (the reference of the fused
/// kernel).
pub(crate) fn fake_quantize_ops<const D: usize>(
    x: Tensor<D>,
    format: Format,
    scale: Option<Tensor<D>>,
    signed: bool,
) -> Tensor<D> {
    if format.is_full_precision() {
        return x;
    }
    let (q, inside) = quantize_with_mask(x.clone(), format, scale, signed);
    straight_through(x, q, inside)
}

/// The values of [`fake_quantize`] without any gradient (detached).
///
/// # Shapes
/// - `x`: any shape
/// - `scale`: broadcastable to `x`
/// - output: the shape of `x`
pub fn quantize_values<const D: usize>(
    x: Tensor<D>,
    format: Format,
    scale: Option<Tensor<D>>,
    signed: bool,
) -> Tensor<D> {
    if format.is_full_precision() {
        return x.detach();
    }
    quantize_with_mask(x, format, scale, signed).0
}

/// The quantized values and the mask of elements inside the grid's rounding range.
fn quantize_with_mask<const D: usize>(
    x: Tensor<D>,
    format: Format,
    scale: Option<Tensor<D>>,
    signed: bool,
) -> (Tensor<D>, Tensor<D, Bool>) {
    let x = x.detach();
    let scale = scale.map(Tensor::detach);
    let y = match &scale {
        Some(s) => x.div(s.clone()),
        None => x,
    };
    let (lo, hi) = saturation_bounds(format, signed);
    let inside = y
        .clone()
        .greater_equal_elem(lo as f32)
        .bool_and(y.clone().lower_equal_elem(hi as f32));
    let codes = match format {
        Format::Int(bits) => round_to_int(y, bits, signed),
        Format::Float { .. } => round_to_float(y, format),
    };
    let q = match scale {
        Some(s) => codes.mul(s),
        None => codes,
    };
    (q, inside)
}

/// `x_in + (q - x_in).detach()` with `x_in = x` inside the mask and 0 outside: the value is `q`
/// (exactly: `q` and `x` are within a factor of two wherever the mask is set, so the difference
/// is exact), the gradient is the mask.
fn straight_through<const D: usize>(
    x: Tensor<D>,
    q: Tensor<D>,
    inside: Tensor<D, Bool>,
) -> Tensor<D> {
    let pass = x.mask_fill(inside.bool_not(), 0.0);
    pass.clone().add(q.sub(pass).detach())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quant::test_util::{grad_of, values_of};
    use burn::tensor::Device;

    #[test]
    fn float_scaling_policy() {
        assert!(FloatScaling::Minifloats.applies(Format::E4M3));
        assert!(!FloatScaling::Minifloats.applies(Format::BF16));
        assert!(FloatScaling::All.applies(Format::FP16));
        assert!(!FloatScaling::All.applies(Format::FP32));
        assert!(!FloatScaling::All.applies(Format::Int(4)));
        assert!(!FloatScaling::None.applies(Format::E2M1));
    }

    #[test]
    fn clipped_ste_passes_inside_and_blocks_saturated_values() {
        let device = Device::flex().autodiff();
        // Unsigned int4 with scale 0.5: the rounding range is [-0.25, 7.75].
        let xs = [-1.0f32, -0.2, 0.0, 0.3, 3.0, 7.7, 7.8, 100.0];
        let x = Tensor::<1>::from_floats(xs, &device).require_grad();
        let scale = Tensor::<1>::from_floats([0.5], &device);
        let y = fake_quantize(x.clone(), Format::Int(4), Some(scale), false);
        assert_eq!(
            values_of(y.clone()),
            vec![0.0, -0.0, 0.0, 0.5, 3.0, 7.5, 7.5, 7.5]
        );
        let g = grad_of(&x, y);
        assert_eq!(g, vec![0.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.0, 0.0]);

        // e2m1 unscaled: max 6, rounding range ±7.
        let x = Tensor::<1>::from_floats([-8.0, -6.9, 0.2, 6.5, 7.0, 9.0], &device).require_grad();
        let y = fake_quantize(x.clone(), Format::E2M1, None, true);
        assert_eq!(values_of(y.clone()), vec![-6.0, -6.0, 0.0, 6.0, 6.0, 6.0]);
        assert_eq!(grad_of(&x, y), vec![0.0, 1.0, 1.0, 1.0, 1.0, 0.0]);

        // fp32 is the identity, gradient included.
        let x = Tensor::<1>::from_floats([1.0e-3, 7.0], &device).require_grad();
        let y = fake_quantize(x.clone(), Format::FP32, None, true);
        assert_eq!(values_of(y.clone()), vec![1.0e-3, 7.0]);
        assert_eq!(grad_of(&x, y), vec![1.0, 1.0]);
    }
}
