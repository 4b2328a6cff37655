//! Weight fake quantization: symmetric, per output channel, scale from the channel's maximum
//! magnitude. A pure function of the weight tensor and the format; no state.

use burn::tensor::Tensor;
use spaces::Format;

use super::grid::{grid_max, grid_significant_bits};
use super::round::snap_scale;
use super::{FloatScaling, fake_quantize};

/// The per-channel scale used to quantize a weight tensor to `format`, or `None` when the
/// format is not scaled (fp32; floating point when `scaling` does not apply).
///
/// `scale_c = max|w_c| / grid_max`, where `w_c` is the slice at index `c` of `axis` (the
/// output-channel axis: 0 for a conv weight `[c_out, c_in, k, k]`, 1 for a burn `Linear`
/// weight `[d_in, d_out]`) and `grid_max` is `2^(b-1) - 1` for integers and `max_finite` for
/// floats. The scale is at least `f32::MIN_POSITIVE` (an all-zero channel stays zero) and is
/// snapped to `24 - k` significant bits ([`super::grid::snap_scale_scalar`]) so that codes times
/// scale are exact. The result is detached.
///
/// # Shapes
/// - `weight`: any shape of rank `D`
/// - output: `weight`'s shape with every axis but `axis` reduced to 1
///
/// # Panics
/// Panics if `axis >= D`.
pub fn weight_scale<const D: usize>(
    weight: Tensor<D>,
    format: Format,
    axis: usize,
    scaling: FloatScaling,
) -> Option<Tensor<D>> {
    assert!(axis < D, "channel axis {axis} out of range for rank {D}");
    let scaled = match format {
        Format::Int(_) => true,
        Format::Float { .. } => scaling.applies(format),
    };
    if !scaled {
        return None;
    }
    let mut max = weight.detach();
    for dim in (0..D).filter(|&d| d != axis) {
        max = max.max_abs_dim(dim);
    }
    let scale = max
        .div_scalar(grid_max(format, true) as f32)
        .clamp_min(f32::MIN_POSITIVE);
    Some(snap_scale(scale, grid_significant_bits(format, true)))
}

/// Fake-quantizes a weight tensor to `format`: signed, symmetric, per output channel along
/// `axis` (see [`weight_scale`]), with the straight-through estimator. Since the scale maps each
/// channel's maximum onto the grid's maximum nothing saturates, and the gradient is passed
/// unchanged to every element. Unscaled floating-point formats saturate at `max_finite` and
/// block the gradient there. fp32 returns `weight` unchanged.
///
/// # Shapes
/// - `weight`: any shape of rank `D`
/// - output: the shape of `weight`
///
/// # Panics
/// Panics if `axis >= D`.
pub fn fake_quantize_weight<const D: usize>(
    weight: Tensor<D>,
    format: Format,
    axis: usize,
    scaling: FloatScaling,
) -> Tensor<D> {
    if format.is_full_precision() {
        return weight;
    }
    let scale = weight_scale(weight.clone(), format, axis, scaling);
    fake_quantize(weight, format, scale, true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quant::grid::int_code_range;
    use crate::quant::test_util::{grad_of, pseudo_random, small_float_formats, values_of};
    use burn::tensor::Device;

    /// Checks that every element of `q` is `code * scale_c` for a code of the grid, exactly.
    fn assert_on_grid(q: &[f32], scales: &[f32], per_channel: usize, format: Format) {
        for (i, &v) in q.iter().enumerate() {
            let s = scales[i / per_channel];
            let code = f64::from(v) / f64::from(s);
            match format {
                Format::Int(bits) => {
                    let (lo, hi) = int_code_range(bits, true);
                    assert_eq!(code, code.round(), "{format}: {v} / {s} is not an integer");
                    assert!(
                        (lo as f64..=hi as f64).contains(&code),
                        "{format}: code {code}"
                    );
                }
                Format::Float { .. } => {
                    let grid = format.float_values().unwrap();
                    assert!(
                        grid.binary_search_by(|g| g.partial_cmp(&code).unwrap())
                            .is_ok(),
                        "{format}: {v} / {s} = {code} is not a value of the format"
                    );
                }
            }
        }
    }

    fn formats_up_to_8_bits() -> Vec<Format> {
        let mut formats: Vec<Format> = (2..=8).map(Format::Int).collect();
        formats.extend(small_float_formats());
        formats
    }

    #[test]
    fn weights_land_on_the_grid_and_requantize_to_themselves() {
        let device = Device::flex();
        // Channels of very different magnitudes, one all-zero channel.
        let w = pseudo_random([4, 3, 3, 3], 1.0, 7, &device);
        let gains =
            Tensor::<4>::from_floats([[[[0.02f32]]], [[[1.0]]], [[[37.0]]], [[[0.0]]]], &device);
        let w = w.mul(gains);
        for format in formats_up_to_8_bits() {
            for scaling in [FloatScaling::Minifloats, FloatScaling::None] {
                let q = fake_quantize_weight(w.clone(), format, 0, scaling);
                let qv = values_of(q.clone());
                let scales = match weight_scale(w.clone(), format, 0, scaling) {
                    Some(s) => values_of(s),
                    None => vec![1.0; 4],
                };
                assert_on_grid(&qv, &scales, 27, format);
                // Quantizing twice equals quantizing once, bit for bit.
                let qq = values_of(fake_quantize_weight(q, format, 0, scaling));
                assert_eq!(qq, qv, "{format} {scaling:?}");
                // The all-zero channel stays zero.
                assert!(qv[81..].iter().all(|&v| v == 0.0));
            }
        }
    }

    #[test]
    fn int_weights_use_the_full_symmetric_code_range_per_channel() {
        let device = Device::flex();
        let w = Tensor::<2>::from_floats([[0.55f32, -1.0, 0.26], [3.0, 1.4, -0.1]], &device);
        // Per output channel along axis 0, int3: codes ±3.
        let q = values_of(fake_quantize_weight(
            w.clone(),
            Format::Int(3),
            0,
            FloatScaling::None,
        ));
        let (s0, s1) = (1.0f32 / 3.0, 1.0f32);
        let want = [2.0 * s0, -3.0 * s0, s0, 3.0 * s1, 1.0 * s1, -0.0 * s1];
        for (g, w) in q.iter().zip(want) {
            assert!((g - w).abs() <= 1e-6 * w.abs().max(1.0), "{q:?}");
        }
        // Along axis 1 (burn Linear layout [d_in, d_out]): channel maxima 3, 1.4, 0.26.
        let s = values_of(weight_scale(w, Format::Int(3), 1, FloatScaling::None).unwrap());
        for (g, w) in s.iter().zip([1.0f32, 1.4 / 3.0, 0.26 / 3.0]) {
            assert!((g / w - 1.0).abs() < 1e-5, "{s:?}");
        }
    }

    #[test]
    fn weight_gradients_pass_straight_through() {
        let device = Device::flex().autodiff();
        for format in [
            Format::Int(2),
            Format::Int(4),
            Format::E2M1,
            Format::E4M3,
            Format::BF16,
        ] {
            let w = pseudo_random([3, 2, 3, 3], 2.0, 11, &device).require_grad();
            let y = fake_quantize_weight(w.clone(), format, 0, FloatScaling::Minifloats);
            let g = grad_of(&w, y);
            assert!(g.iter().all(|&v| v == 1.0), "{format}: {g:?}");
        }
        // Unscaled e2m1 saturates beyond ±7 and blocks the gradient there.
        let w = Tensor::<2>::from_floats([[1.0f32, 6.5, 7.5, -20.0]], &device).require_grad();
        let y = fake_quantize_weight(w.clone(), Format::E2M1, 0, FloatScaling::None);
        assert_eq!(values_of(y.clone()), vec![1.0, 6.0, 6.0, -6.0]);
        assert_eq!(grad_of(&w, y), vec![1.0, 1.0, 0.0, 0.0]);
    }
}
