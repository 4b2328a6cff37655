//! Weight fake quantization: symmetric, per output channel, with the channel's range chosen by
//! a [`WeightRange`]: its maximum magnitude, or the clipped range of least squared error. A pure
//! function of the weight tensor, the format and the [`WeightQuant`] policy; no state.

use std::cell::RefCell;
use std::collections::HashMap;

use burn::tensor::{Tensor, TensorData};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use spaces::{Format, Space, WeightRange};

use super::grid::{Rounder, grid_max, grid_significant_bits, snap_scale_scalar};
use super::round::snap_scale;
use super::{FloatScaling, fake_quantize};

/// How weights are fake-quantized: which floating-point formats are scaled, and how each
/// output channel's range (and so its scale) is chosen. Part of a layer's configuration and of
/// an extracted network, never of a forward call.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct WeightQuant {
    /// Which floating-point formats get a scale.
    pub float_scaling: FloatScaling,
    /// How the range of a channel is chosen.
    pub range: WeightRange,
}

impl WeightQuant {
    /// A policy from its two parts.
    pub fn new(float_scaling: FloatScaling, range: WeightRange) -> WeightQuant {
        WeightQuant {
            float_scaling,
            range,
        }
    }

    /// The policy a space file asks for (`quantization.weight_range`), with the default float
    /// scaling.
    pub fn for_space(space: &Space) -> WeightQuant {
        WeightQuant::new(FloatScaling::default(), space.quantization.weight_range)
    }

    /// Whether `format` gets a scale under this policy (integers always; fp32 never).
    pub fn scales(self, format: Format) -> bool {
        self.float_scaling.scales(format)
    }
}

/// The per-channel scale used to quantize a weight tensor to `format`, or `None` when the
/// format is not scaled (fp32; floating point when the policy's float scaling does not apply).
///
/// With [`WeightRange::Max`], `scale_c = max|w_c| / grid_max`, where `w_c` is the slice at index
/// `c` of `axis` (the output-channel axis: 0 for a conv weight `[c_out, c_in, k, k]`, 1 for a
/// burn `Linear` weight `[d_in, d_out]`) and `grid_max` is `2^(b-1) - 1` for integers and
/// `max_finite` for floats. With [`WeightRange::Mse`] the scales are those of
/// [`mse_channel_scales`] (computed on the host from the tensor's values). The scale is at least
/// `f32::MIN_POSITIVE` (an all-zero channel stays zero) and is snapped to `24 - k` significant
/// bits ([`super::grid::snap_scale_scalar`]) so that codes times scale are exact. The result is
/// detached.
///
/// # Shapes
/// - `weight`: any shape of rank `D`
/// - output: `weight`'s shape with every axis but `axis` reduced to 1
///
/// # Panics
/// Panics if `axis >= D`, or under [`WeightRange::Mse`] if the values cannot be read as `f32`.
pub fn weight_scale<const D: usize>(
    weight: Tensor<D>,
    format: Format,
    axis: usize,
    quant: WeightQuant,
) -> Option<Tensor<D>> {
    assert!(axis < D, "channel axis {axis} out of range for rank {D}");
    if !quant.scales(format) {
        return None;
    }
    if quant.range == WeightRange::Mse {
        let dims = weight.dims();
        let device = weight.device();
        let values = weight
            .detach()
            .into_data()
            .convert::<f32>()
            .try_to_vec::<f32>()
            .expect("a float tensor's values read as f32");
        let stride = dims[axis + 1..].iter().product::<usize>();
        let scales = mse_channel_scales(&values, dims[axis], stride, format);
        let mut shape = [1usize; D];
        shape[axis] = dims[axis];
        return Some(Tensor::from_data(TensorData::new(scales, shape), &device));
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

/// The clipping ratios of a channel's maximum that [`mse_channel_scales`] tries first, largest
/// first: 1, 0.95, ..., 0.05.
const COARSE_RATIOS: usize = 20;
/// Then this many ratios on each side of the best coarse one, 0.005 apart.
const FINE_RATIOS: usize = 9;

/// The scale of each output channel that minimizes the squared error of quantizing its weights
/// to `format` (signed, symmetric; saturating beyond the grid), among scales `r * max|w_c| /
/// grid_max` for clipping ratios `r` in `(0, 1]`: a coarse pass over 20 ratios 0.05 apart, then
/// a fine one 0.005 apart around the best. A smaller ratio is taken only when its error is
/// strictly smaller, so weights that are already on a max-scaled grid (an extracted network's)
/// keep their scale: quantizing twice equals quantizing once. Scales are snapped as those of
/// [`weight_scale`].
///
/// `values` is the weight tensor in row-major order; element `i` belongs to channel
/// `(i / stride) % channels`.
///
/// # Panics
/// Panics if `channels` or `stride` is zero while `values` is not empty.
pub fn mse_channel_scales(
    values: &[f32],
    channels: usize,
    stride: usize,
    format: Format,
) -> Vec<f32> {
    let key = MemoKey {
        hash: hash_values(values),
        format,
        channels,
        stride,
    };
    if let Some(scales) = MEMO.with(|m| m.borrow().get(&key, values)) {
        return scales;
    }
    let mut per_channel: Vec<Vec<f32>> = vec![Vec::new(); channels];
    for (i, &w) in values.iter().enumerate() {
        per_channel[(i / stride) % channels].push(w);
    }
    let top = grid_max(format, true) as f32;
    let bits = grid_significant_bits(format, true);
    let rounder = Rounder::new(format, true);
    let search = |w: &Vec<f32>| channel_scale(w, top, bits, rounder);
    // channels are independent: split them over the threads when there is enough work
    let scales: Vec<f32> = if values.len() >= PARALLEL_VALUES {
        per_channel.par_iter().map(search).collect()
    } else {
        per_channel.iter().map(search).collect()
    };
    MEMO.with(|m| m.borrow_mut().insert(key, values, scales.clone()));
    scales
}

/// Tensors of at least this many values search their channels on several threads.
const PARALLEL_VALUES: usize = 4_096;

/// The least-squared-error scale of the values `w` (one channel's weights, see
/// [`mse_channel_scales`], or a sample of activations, see [`super::act_mse`]): `top` is the
/// grid's largest value, `bits` its significant bits, `rounder` its rounding.
pub(crate) fn channel_scale(w: &[f32], top: f32, bits: u32, rounder: Rounder) -> f32 {
    let max = w.iter().fold(0.0f32, |m, &x| m.max(x.abs()));
    let scale_at = |ratio: f64| {
        snap_scale_scalar(
            ((ratio * f64::from(max)) as f32 / top).max(f32::MIN_POSITIVE),
            bits,
        )
    };
    // the grid's rounding in f32 where it has one (it vectorizes), else the rounder's own
    let f32_grid = rounder.f32_grid();
    let error = |scale: f32| -> f64 {
        match (rounder, f32_grid) {
            (Rounder::Int(lo, hi), _) => squared_error(w, scale, int_round(lo as f32, hi as f32)),
            (_, Some(grid)) => squared_error(w, scale, move |y| grid.round(y)),
            (_, None) => squared_error(w, scale, |y| rounder.round(y)),
        }
    };
    let mut best = (1.0f64, scale_at(1.0));
    let mut best_error = error(best.1);
    if max == 0.0 || best_error == 0.0 {
        return best.1;
    }
    let mut consider = |ratio: f64, best: &mut (f64, f32)| {
        let scale = scale_at(ratio);
        let e = error(scale);
        if e < best_error {
            *best = (ratio, scale);
            best_error = e;
        }
    };
    for k in 1..COARSE_RATIOS {
        consider(1.0 - 0.05 * k as f64, &mut best);
    }
    let centre = best.0;
    for k in 1..=FINE_RATIOS {
        for ratio in [centre + 0.005 * k as f64, centre - 0.005 * k as f64] {
            if ratio > 0.0 && ratio < 1.0 {
                consider(ratio, &mut best);
            }
        }
    }
    best.1
}

/// The squared error of quantizing `w` with `scale` onto a grid: per value `x`, the difference
/// between `x` and `round(x / scale) * scale`, where `round` is the grid's rounding in f32 (an
/// integer grid's nearest code, ties to even, clamped; or
/// [`F32Grid::round`](super::grid::F32Grid::round)), summed in f64 over 8 interleaved partial
/// sums so that the loop vectorizes (AVX2 / AVX-512 through pulp's dispatch, which `round` is
/// inlined into).
struct SquaredError<'a, R> {
    w: &'a [f32],
    scale: f32,
    round: R,
}

impl<R: Fn(f32) -> f32> pulp::WithSimd for SquaredError<'_, R> {
    type Output = f64;

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _simd: S) -> f64 {
        let SquaredError { w, scale, round } = self;
        let sq = |x: f32| {
            let d = f64::from(x) - f64::from(round(x / scale) * scale);
            d * d
        };
        let mut acc = [0.0f64; 8];
        let chunks = w.chunks_exact(8);
        for &x in chunks.remainder() {
            acc[0] += sq(x);
        }
        for c in chunks {
            for (a, &x) in acc.iter_mut().zip(c) {
                *a += sq(x);
            }
        }
        acc.iter().sum()
    }
}

/// [`SquaredError`] on the best SIMD instruction set of this CPU.
fn squared_error(w: &[f32], scale: f32, round: impl Fn(f32) -> f32) -> f64 {
    pulp::Arch::new().dispatch(SquaredError { w, scale, round })
}

/// The rounding of the integer grid `lo..=hi` in f32: what [`Rounder::round`] gives (the codes
/// are integers exact in f32).
#[inline(always)]
fn int_round(lo: f32, hi: f32) -> impl Fn(f32) -> f32 + Copy {
    move |y: f32| y.round_ties_even().clamp(lo, hi)
}

/// A 64-bit FNV-1a hash of the values' bits (the memo's key; a hit also compares the values).
fn hash_values(values: &[f32]) -> u64 {
    values.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, v| {
        (h ^ u64::from(v.to_bits())).wrapping_mul(0x0100_0000_01b3)
    })
}

/// What a memo entry was computed for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct MemoKey {
    hash: u64,
    format: Format,
    channels: usize,
    stride: usize,
}

/// Values held by the memo of one thread before it is emptied (16 MiB).
const MEMO_VALUES: usize = 1 << 22;

/// Recent results of [`mse_channel_scales`], per thread. The function is pure; the memo only
/// spares recomputing it for weights that did not change between forward passes (evaluating a
/// member recalibrates and measures it over many batches with the same weights). Each entry
/// keeps its values, so a hit is an exact match, never a hash collision.
#[derive(Default)]
struct Memo {
    entries: HashMap<MemoKey, (Vec<f32>, Vec<f32>)>,
    held: usize,
}

impl Memo {
    fn get(&self, key: &MemoKey, values: &[f32]) -> Option<Vec<f32>> {
        self.entries
            .get(key)
            .filter(|(v, _)| v.as_slice() == values)
            .map(|(_, s)| s.clone())
    }

    fn insert(&mut self, key: MemoKey, values: &[f32], scales: Vec<f32>) {
        if values.len() > MEMO_VALUES {
            return;
        }
        if self.held + values.len() > MEMO_VALUES {
            self.entries.clear();
            self.held = 0;
        }
        self.held += values.len();
        if let Some((old, _)) = self.entries.insert(key, (values.to_vec(), scales)) {
            self.held -= old.len();
        }
    }
}

thread_local! {
    static MEMO: RefCell<Memo> = RefCell::new(Memo::default());
}

/// Fake-quantizes a weight tensor to `format`: signed, symmetric, per output channel along
/// `axis` (see [`weight_scale`]), with the straight-through estimator. Under
/// [`WeightRange::Max`] nothing saturates, and the gradient is passed unchanged to every
/// element; under [`WeightRange::Mse`] the weights beyond the clipped range saturate and get no
/// gradient. Unscaled floating-point formats saturate at `max_finite` and block the gradient
/// there. fp32 returns `weight` unchanged.
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
    quant: WeightQuant,
) -> Tensor<D> {
    if format.is_full_precision() {
        return weight;
    }
    let scale = weight_scale(weight.clone(), format, axis, quant);
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

    fn max(scaling: FloatScaling) -> WeightQuant {
        WeightQuant::new(scaling, WeightRange::Max)
    }

    fn mse(scaling: FloatScaling) -> WeightQuant {
        WeightQuant::new(scaling, WeightRange::Mse)
    }

    fn formats_up_to_8_bits() -> Vec<Format> {
        let mut formats: Vec<Format> = (2..=8).map(Format::Int).collect();
        formats.extend(small_float_formats());
        formats
    }

    /// Four channels of 27 weights of very different magnitudes, the last all zero.
    fn gained_weights(device: &Device) -> Tensor<4> {
        let w = pseudo_random([4, 3, 3, 3], 1.0, 7, device);
        let gains =
            Tensor::<4>::from_floats([[[[0.02f32]]], [[[1.0]]], [[[37.0]]], [[[0.0]]]], device);
        w.mul(gains)
    }

    /// `w` (from [`gained_weights`]) quantized under `quant`, checked to lie on the grid of
    /// its scales, to quantize to itself again, bit for bit, and to keep the all-zero channel
    /// zero.
    fn quantized_on_grid(w: &Tensor<4>, format: Format, quant: WeightQuant) -> Vec<f32> {
        let qv = values_of(fake_quantize_weight(w.clone(), format, 0, quant));
        let scales = match weight_scale(w.clone(), format, 0, quant) {
            Some(s) => values_of(s),
            None => vec![1.0; 4],
        };
        assert_on_grid(&qv, &scales, 27, format);
        let q = Tensor::<4>::from_data(TensorData::new(qv.clone(), [4, 3, 3, 3]), &w.device());
        let qq = values_of(fake_quantize_weight(q, format, 0, quant));
        assert_eq!(qq, qv, "{format} {quant:?}");
        assert!(qv[81..].iter().all(|&v| v == 0.0));
        qv
    }

    #[test]
    fn weights_land_on_the_grid_and_requantize_to_themselves() {
        let w = gained_weights(&Device::flex());
        for format in formats_up_to_8_bits() {
            for scaling in [FloatScaling::Minifloats, FloatScaling::None] {
                quantized_on_grid(&w, format, max(scaling));
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
            max(FloatScaling::None),
        ));
        let (s0, s1) = (1.0f32 / 3.0, 1.0f32);
        let want = [2.0 * s0, -3.0 * s0, s0, 3.0 * s1, 1.0 * s1, -0.0 * s1];
        for (g, w) in q.iter().zip(want) {
            assert!((g - w).abs() <= 1e-6 * w.abs().max(1.0), "{q:?}");
        }
        // Along axis 1 (burn Linear layout [d_in, d_out]): channel maxima 3, 1.4, 0.26.
        let s = values_of(weight_scale(w, Format::Int(3), 1, max(FloatScaling::None)).unwrap());
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
            let y = fake_quantize_weight(w.clone(), format, 0, max(FloatScaling::Minifloats));
            let g = grad_of(&w, y);
            assert!(g.iter().all(|&v| v == 1.0), "{format}: {g:?}");
        }
        // Unscaled e2m1 saturates beyond ±7 and blocks the gradient there.
        let w = Tensor::<2>::from_floats([[1.0f32, 6.5, 7.5, -20.0]], &device).require_grad();
        let y = fake_quantize_weight(w.clone(), Format::E2M1, 0, max(FloatScaling::None));
        assert_eq!(values_of(y.clone()), vec![1.0, 6.0, 6.0, -6.0]);
        assert_eq!(grad_of(&w, y), vec![1.0, 1.0, 0.0, 0.0]);
    }

    #[test]
    fn mse_scales_solve_a_small_case_exactly() {
        // int2 codes are -1, 0, 1. At the max scale (1) the four 0.5s round to 0: error 1.01.
        // Scale s <= 1 maps 1 to s and each 0.5 to s (0.5 / s >= 0.5; ties at s = 1 go to 0):
        // error (1 - s)^2 + 4 (0.5 - s)^2 + 0.1^2, least at s = 0.6 (0.21).
        let w = [1.0f32, 0.5, 0.5, 0.5, -0.5, 0.1];
        let s = mse_channel_scales(&w, 1, 6, Format::Int(2));
        assert!((s[0] - 0.6).abs() < 1e-3, "{s:?}");
        // The memo gives the same answer, and does not answer for other values, formats or
        // layouts: the largest weight at 2 moves the scale.
        assert_eq!(mse_channel_scales(&w, 1, 6, Format::Int(2)), s);
        let mut moved = w;
        moved[0] = 2.0;
        assert_ne!(mse_channel_scales(&moved, 1, 6, Format::Int(2)), s);
        assert_ne!(mse_channel_scales(&w, 1, 6, Format::Int(3)), s);
        assert_eq!(mse_channel_scales(&w, 2, 3, Format::Int(2)).len(), 2);
        assert_eq!(mse_channel_scales(&w, 1, 6, Format::Int(2)), s);
        // A channel already on its max-scaled grid, and an all-zero one, keep their scales.
        let on_grid = [0.75f32, -0.25, 0.5, 0.0, 0.0, 0.0];
        let s = mse_channel_scales(&on_grid, 2, 3, Format::Int(3));
        assert_eq!(s[0], 0.25);
        assert_eq!(s[1], f32::MIN_POSITIVE);
    }

    #[test]
    fn mse_weights_land_on_the_grid_requantize_to_themselves_and_err_less() {
        let device = Device::flex();
        let w = gained_weights(&device);
        let wv = values_of(w.clone());
        let sq_error = |q: &[f32]| -> f64 {
            wv.iter()
                .zip(q)
                .map(|(&a, &b)| (f64::from(a) - f64::from(b)).powi(2))
                .sum()
        };
        let mut strictly_better = 0;
        for format in formats_up_to_8_bits() {
            for scaling in [FloatScaling::Minifloats, FloatScaling::None] {
                let qv = quantized_on_grid(&w, format, mse(scaling));
                // Max-scaling the MSE grid gives it back too (an exported model's weights read
                // by a tool that only knows max scaling).
                let q = Tensor::<4>::from_data(TensorData::new(qv.clone(), [4, 3, 3, 3]), &device);
                let qm = values_of(fake_quantize_weight(q, format, 0, max(scaling)));
                assert_eq!(qm, qv, "{format} {scaling:?}");
                let at_max = values_of(fake_quantize_weight(w.clone(), format, 0, max(scaling)));
                let (e_mse, e_max) = (sq_error(&qv), sq_error(&at_max));
                assert!(e_mse <= e_max * (1.0 + 1e-9), "{format}: {e_mse} > {e_max}");
                if e_mse < 0.9 * e_max {
                    strictly_better += 1;
                }
            }
        }
        assert!(strictly_better > 0);
        // int2 on a bell-shaped channel (a sum of three uniforms): max scaling zeroes most
        // weights, MSE far fewer.
        let w = pseudo_random([1, 512], 1.0, 3, &device)
            .add(pseudo_random([1, 512], 1.0, 4, &device))
            .add(pseudo_random([1, 512], 1.0, 5, &device));
        let zeros = |quant| {
            values_of(fake_quantize_weight(w.clone(), Format::Int(2), 0, quant))
                .iter()
                .filter(|&&v| v == 0.0)
                .count()
        };
        let (z_max, z_mse) = (
            zeros(max(FloatScaling::None)),
            zeros(mse(FloatScaling::None)),
        );
        assert!(z_max > 350 && z_mse < z_max * 2 / 3, "{z_max} {z_mse}");
    }

    #[test]
    fn mse_weights_saturate_and_block_the_gradient_beyond_the_clipped_range() {
        let device = Device::flex().autodiff();
        let w =
            Tensor::<2>::from_floats([[1.0f32, 0.5, 0.5, 0.5, -0.5, 0.1]], &device).require_grad();
        let y = fake_quantize_weight(w.clone(), Format::Int(2), 0, mse(FloatScaling::None));
        let g = grad_of(&w, y);
        // the scale is 0.6: 1.0 is 1.67 codes, beyond the saturation bound 1.5
        assert_eq!(g, vec![0.0, 1.0, 1.0, 1.0, 1.0, 1.0]);
    }

    #[test]
    fn the_vectorized_integer_error_is_the_scalar_rounding_error() {
        let mut rng = spaces::Rng::new(3);
        // 77 values: the 8-wide loop and its remainder; an outlier that saturates
        let w: Vec<f32> = (0..77)
            .map(|i| {
                if i == 40 {
                    9.0
                } else {
                    rng.normal() as f32 * 0.3
                }
            })
            .collect();
        for (bits, scale) in [(2u8, 0.4f32), (4, 0.11), (8, 0.013)] {
            let rounder = Rounder::new(Format::Int(bits), true);
            let Rounder::Int(lo, hi) = rounder else {
                panic!("an integer rounder")
            };
            let scalar: f64 = w
                .iter()
                .map(|&x| {
                    let d = f64::from(x) - f64::from(rounder.round(x / scale) * scale);
                    d * d
                })
                .sum();
            let vector = squared_error(&w, scale, int_round(lo as f32, hi as f32));
            assert!(
                (vector - scalar).abs() <= 1e-12 * scalar,
                "int{bits}: {vector} vs {scalar}"
            );
        }
    }
}
