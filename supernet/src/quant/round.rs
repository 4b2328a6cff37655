//! Rounding of whole tensors onto the grids defined in [`super::grid`]. These functions compute
//! values only: their results are detached from the autodiff graph. The straight-through
//! estimator is added by [`super::fake_quantize`].

use std::f64::consts::LN_2;

use burn::tensor::Tensor;
use spaces::Format;

use super::grid::{MAX_SNAPPED_GRID_BITS, int_code_range, pow2};

/// Rounds every element of `y` to the nearest value of a floating-point format: ties to even,
/// subnormals included, saturating at `±max_finite` (infinities saturate too, NaN stays NaN).
/// Matches [`super::grid::round_scalar`] bit for bit. Full precision (fp32) returns `y`
/// unchanged; integer formats are rounded as signed integer codes.
///
/// The binade of each element is `floor(log2 |y|)`, computed as `floor(ln|y| / ln 2)` and then
/// corrected by comparing with the exact power of two (`powf` on a tensor of 2.0 is exact), so
/// a last-bit error of `ln` cannot move a value into the wrong binade. Every other step
/// (division and multiplication by a power of two, rounding an integer-valued significand) is
/// exact in `f32`.
///
/// # Shapes
/// - `y`: any shape
/// - output: the shape of `y`
pub fn round_to_float<const D: usize>(y: Tensor<D>, format: Format) -> Tensor<D> {
    let y = y.detach();
    let (man, bias, max) = match format {
        Format::Int(bits) => return round_to_int(y, bits, true),
        Format::Float { .. } if format.is_full_precision() => return y,
        Format::Float { man, .. } => (
            i32::from(man),
            format.exponent_bias().unwrap_or(0),
            format.max_finite().unwrap_or(f64::from(f32::MAX)),
        ),
    };
    let emin = 1 - bias;
    let min_normal = pow2(emin) as f32;
    // Anything at or above 2 * max saturates; capping first also turns inf into a finite value.
    let cap = (2.0 * max).min(f64::from(f32::MAX)) as f32;

    let sign = y.clone().sign();
    let a = y.abs().clamp_max(cap);
    let a_normal = a.clone().clamp_min(min_normal);
    let two = a.ones_like().mul_scalar(2.0);

    let e0 = a_normal.clone().log().div_scalar(LN_2).floor();
    let p = two.clone().powf(e0.clone());
    let too_big = p.clone().greater(a_normal.clone()).float();
    let too_small = p.mul_scalar(2.0).lower_equal(a_normal).float();
    let e = e0.sub(too_big).add(too_small);

    let ulp = two.powf(e.sub_scalar(man as f32));
    let r = a.div(ulp.clone()).round();
    r.mul(ulp).clamp_max(max as f32).mul(sign)
}

/// Rounds every element of `y` to the nearest integer code (ties to even) and clamps it to the
/// code range of [`int_code_range`]`(bits, signed)`. The result is in code units (not scaled).
///
/// # Shapes
/// - `y`: any shape
/// - output: the shape of `y`
pub fn round_to_int<const D: usize>(y: Tensor<D>, bits: u8, signed: bool) -> Tensor<D> {
    let (lo, hi) = int_code_range(bits, signed);
    y.detach().round().clamp(lo as f32, hi as f32)
}

/// Rounds positive scales to `24 - significant_bits` significant bits, like
/// [`super::grid::snap_scale_scalar`] (unchanged above
/// [`super::grid::MAX_SNAPPED_GRID_BITS`]), so that `value * scale` is exact in `f32`. The
/// result is detached.
///
/// # Shapes
/// - `scale`: any shape
/// - output: the shape of `scale`
pub fn snap_scale<const D: usize>(scale: Tensor<D>, significant_bits: u32) -> Tensor<D> {
    if significant_bits > MAX_SNAPPED_GRID_BITS {
        return scale.detach();
    }
    let format = Format::Float {
        exp: 8,
        man: (23 - significant_bits) as u8,
    };
    round_to_float(scale, format)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quant::grid::{round_scalar, snap_scale_scalar};
    use crate::quant::test_util::{float_probe_values, small_float_formats, values_of};
    use burn::tensor::{Device, TensorData, bf16, f16};

    fn round_vec(values: &[f32], format: Format) -> Vec<f32> {
        let device = Device::flex();
        let t = Tensor::<1>::from_data(TensorData::new(values.to_vec(), [values.len()]), &device);
        values_of(round_to_float(t, format))
    }

    fn assert_bits_eq(got: &[f32], want: &[f32], inputs: &[f32], what: &str) {
        for ((g, w), x) in got.iter().zip(want).zip(inputs) {
            // Compare values (so that -0 == +0); NaN only where expected.
            assert!(
                g == w || (g.is_nan() && w.is_nan()),
                "{what}: input {x:e} ({:#010x}) gave {g:e}, expected {w:e}",
                x.to_bits()
            );
        }
    }

    /// Nearest value of the sorted grid, ties to the neighbour that is an even multiple of the
    /// spacing between the two neighbours; beyond the largest value, saturate. An independent
    /// brute-force reference.
    fn nearest_on_grid(x: f64, grid: &[f64]) -> f64 {
        let max = *grid.last().unwrap();
        if x >= max {
            return max;
        }
        if x <= -max {
            return -max;
        }
        let i = grid.partition_point(|&v| v <= x);
        let (lo, hi) = (grid[i - 1], grid[i]);
        if x == lo {
            return lo;
        }
        let (dl, dh) = (x - lo, hi - x);
        if dl < dh {
            lo
        } else if dh < dl {
            hi
        } else {
            let spacing = hi - lo;
            if (lo / spacing).rem_euclid(2.0) == 0.0 {
                lo
            } else {
                hi
            }
        }
    }

    #[test]
    fn minifloat_rounding_matches_brute_force_for_every_format_up_to_8_bits() {
        for format in small_float_formats() {
            let grid = format.float_values().unwrap();
            let probes = float_probe_values(&grid);
            let got = round_vec(&probes, format);
            let want: Vec<f32> = probes
                .iter()
                .map(|&x| nearest_on_grid(f64::from(x), &grid) as f32)
                .collect();
            assert_bits_eq(&got, &want, &probes, &format.to_string());
            // The scalar encoder agrees too.
            let scalar: Vec<f32> = probes
                .iter()
                .map(|&x| round_scalar(x, format, true))
                .collect();
            assert_bits_eq(&scalar, &want, &probes, &format!("scalar {format}"));
            // Every output lies on the grid.
            for v in &got {
                let v = f64::from(*v);
                assert!(
                    grid.binary_search_by(|g| g.partial_cmp(&v).unwrap())
                        .is_ok(),
                    "{format}: {v} not on the grid"
                );
            }
        }
    }

    #[test]
    fn fp16_and_bf16_rounding_match_the_half_crate() {
        // Probes: grid points, midpoints and their neighbours around a spread of binades,
        // subnormals of both formats, and pseudo-random values.
        let mut probes: Vec<f32> = Vec::new();
        for &base in &[
            1.0f32, 3.0e-8, 6.0e-8, 1.0e-5, 6.1e-5, 0.1, 0.3, 1.5, 7.0, 1000.0, 65000.0, 1.0e-38,
            1.0e-39, 9.2e-41, 3.0e30, 1.0e38,
        ] {
            let mut x = base;
            for _ in 0..64 {
                probes.extend([x, -x, x.next_up(), x.next_down()]);
                x = f32::from_bits(x.to_bits() + 4096 + 17);
            }
        }
        // Exact ties: odd and even halfway points of fp16 and bf16.
        for k in 0..2048u32 {
            let h = f16::from_bits(0x3C00 + k as u16).to_f32();
            let h2 = f16::from_bits(0x3C00 + k as u16 + 1).to_f32();
            probes.push((h + h2) / 2.0);
            let b = bf16::from_bits(0x0001 + k as u16).to_f32();
            let b2 = bf16::from_bits(0x0001 + k as u16 + 1).to_f32();
            probes.push((b + b2) / 2.0);
        }
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        for _ in 0..4096 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let x = f32::from_bits((state >> 32) as u32);
            if x.is_finite() {
                probes.push(x);
            }
        }

        let got = round_vec(&probes, Format::FP16);
        let want: Vec<f32> = probes
            .iter()
            .map(|&x| {
                let h = f16::from_f32(x).to_f32();
                // half overflows to inf; our quantizers saturate.
                if h.is_infinite() {
                    65504.0f32.copysign(x)
                } else {
                    h
                }
            })
            .collect();
        assert_bits_eq(&got, &want, &probes, "fp16");

        let got = round_vec(&probes, Format::BF16);
        let bmax = bf16::MAX.to_f32();
        let want: Vec<f32> = probes
            .iter()
            .map(|&x| {
                let b = bf16::from_f32(x).to_f32();
                if b.is_infinite() { bmax.copysign(x) } else { b }
            })
            .collect();
        assert_bits_eq(&got, &want, &probes, "bf16");
    }

    #[test]
    fn fp32_passes_through_and_saturation_and_nan() {
        let xs = [1.0f32 + f32::EPSILON, -3.3e-40, 1.0e30, f32::MAX];
        assert_eq!(round_vec(&xs, Format::FP32), xs.to_vec());
        let got = round_vec(
            &[
                f32::INFINITY,
                f32::NEG_INFINITY,
                1e30,
                464.0,
                465.0,
                f32::NAN,
            ],
            Format::E4M3,
        );
        assert_eq!(&got[..5], &[448.0, -448.0, 448.0, 448.0, 448.0]);
        assert!(got[5].is_nan());
    }

    #[test]
    fn integer_rounding_clamps_and_ties_to_even() {
        let device = Device::flex();
        let t =
            Tensor::<1>::from_floats([-9.0, -2.5, -0.5, 0.5, 1.5, 2.5, 7.4, 7.6, 300.0], &device);
        assert_eq!(
            values_of(round_to_int(t.clone(), 4, true)),
            vec![-7.0, -2.0, -0.0, 0.0, 2.0, 2.0, 7.0, 7.0, 7.0]
        );
        assert_eq!(
            values_of(round_to_int(t, 4, false)),
            vec![0.0, 0.0, 0.0, 0.0, 2.0, 2.0, 7.0, 8.0, 15.0]
        );
    }

    #[test]
    fn tensor_scale_snapping_matches_scalar() {
        let mut scales = Vec::new();
        let mut s = 1.0e-6_f32;
        while s < 1.0e6 {
            scales.push(s);
            s *= 1.37;
        }
        let device = Device::flex();
        let t = Tensor::<1>::from_data(TensorData::new(scales.clone(), [scales.len()]), &device);
        for k in [1, 3, 4, 7, 8, 11] {
            let got = values_of(snap_scale(t.clone(), k));
            let want: Vec<f32> = scales.iter().map(|&s| snap_scale_scalar(s, k)).collect();
            assert_eq!(got, want, "k = {k}");
        }
        for k in [12, 15, 24] {
            assert_eq!(values_of(snap_scale(t.clone(), k)), scales);
            let scalar: Vec<f32> = scales.iter().map(|&s| snap_scale_scalar(s, k)).collect();
            assert_eq!(scalar, scales);
        }
    }
}
