//! The clipping range of least squared error for a batch of activations at one format: the
//! per-format ranges of [`super::ActScaleMethod::Mse`].
//!
//! The search is the weights' ([`super::weight::mse_channel_scales`]): ratios `r` of the
//! largest `|x|` (20 ratios 0.05 apart, then 0.005 apart around the best), the scale `r *
//! max|x| / grid_max` with the least squared error taken (a smaller ratio only when strictly
//! better). It runs on the host over an evenly strided sample of at most [`MSE_SAMPLE`]
//! values, so that its cost does not grow with the batch.

use spaces::Format;

use super::grid::{Rounder, grid_max, grid_significant_bits};
use super::weight::channel_scale;

/// The most values of a batch the search looks at (evenly strided over the batch).
pub const MSE_SAMPLE: usize = 8192;

/// The range (in real units) whose scale, `range / grid_max(format, signed)`, quantizes
/// `values` to `format` with the least squared error (see the module docs); 0 when every value
/// is 0. Unsigned integer grids (`signed == false`) have codes `[0, 2^b - 1]`.
pub fn mse_range(values: &[f32], format: Format, signed: bool) -> f32 {
    let sample = strided_sample(values, MSE_SAMPLE);
    let top = grid_max(format, signed) as f32;
    let bits = grid_significant_bits(format, signed);
    let max = sample.iter().fold(0.0f32, |m, &x| m.max(x.abs()));
    if max == 0.0 || !max.is_finite() {
        return max;
    }
    channel_scale(&sample, top, bits, Rounder::new(format, signed)) * top
}

/// At most `limit` of `values`, evenly strided from the first (all of them when they fit).
fn strided_sample(values: &[f32], limit: usize) -> Vec<f32> {
    let n = values.len();
    if n <= limit {
        return values.to_vec();
    }
    (0..limit).map(|i| values[i * n / limit]).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quant::grid::round_scalar;

    /// Squared error of quantizing `values` with the scale of `range`.
    fn error(values: &[f32], format: Format, signed: bool, range: f32) -> f64 {
        let scale = range / grid_max(format, signed) as f32;
        values
            .iter()
            .map(|&x| {
                let q = round_scalar(x / scale, format, signed) * scale;
                f64::from(x - q).powi(2)
            })
            .sum()
    }

    /// A half-normal-like sample (post-ReLU activations) with a long tail, from a fixed
    /// sequence.
    fn relu_like(n: usize) -> Vec<f32> {
        let mut rng = spaces::Rng::new(3);
        (0..n)
            .map(|_| (rng.normal() as f32).max(0.0) * if rng.chance(0.01) { 6.0 } else { 1.0 })
            .collect()
    }

    #[test]
    fn narrow_formats_clip_tighter_and_err_less_than_the_maximum() {
        let x = relu_like(4000);
        let max = x.iter().fold(0.0f32, |m, &v| m.max(v));
        let mut previous = 0.0f32;
        for format in [Format::Int(2), Format::Int(4), Format::Int(8)] {
            let r = mse_range(&x, format, false);
            assert!(
                r > 0.0 && r <= max * 1.0001,
                "{format}: {r} against max {max}"
            );
            assert!(
                error(&x, format, false, r) <= error(&x, format, false, max),
                "{format}: the chosen range errs more than the maximum"
            );
            // wider grids afford wider ranges
            assert!(
                r >= previous,
                "{format}: {r} below the narrower grid's {previous}"
            );
            previous = r;
        }
        // 2 bits on a long-tailed sample: far inside the maximum, and strictly better
        let r2 = mse_range(&x, Format::Int(2), false);
        assert!(r2 < 0.5 * max, "int2 range {r2}, max {max}");
        assert!(error(&x, Format::Int(2), false, r2) < 0.5 * error(&x, Format::Int(2), false, max));
    }

    #[test]
    fn the_range_is_the_best_of_the_ratio_grid() {
        // no ratio of the maximum on the coarse grid does better than the chosen range
        let x: Vec<f32> = relu_like(3000).iter().map(|v| v - 0.4).collect();
        for format in [Format::Int(2), Format::Int(4), Format::E2M1, Format::E4M3] {
            let r = mse_range(&x, format, true);
            let max = x.iter().fold(0.0f32, |m, &v| m.max(v.abs()));
            let best = error(&x, format, true, r);
            for k in 1..=20 {
                let other = max * k as f32 / 20.0;
                assert!(
                    best <= error(&x, format, true, other) * (1.0 + 1e-6),
                    "{format}: ratio {} errs less than the chosen range",
                    k as f32 / 20.0
                );
            }
        }
    }

    #[test]
    fn zeros_give_a_zero_range_and_large_batches_are_sampled() {
        assert_eq!(mse_range(&[0.0; 100], Format::Int(4), false), 0.0);
        let x = relu_like(10 * MSE_SAMPLE);
        let s = strided_sample(&x, MSE_SAMPLE);
        assert_eq!(s.len(), MSE_SAMPLE);
        assert_eq!(s[1], x[10]);
        assert_eq!(strided_sample(&x[..5], MSE_SAMPLE), x[..5].to_vec());
    }
}
