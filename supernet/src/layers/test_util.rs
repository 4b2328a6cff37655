//! Helpers shared by the layer tests.

use burn::tensor::Tensor;

use crate::quant::test_util::values_of;

/// Largest absolute difference between two tensors of the same shape.
pub(crate) fn max_abs_diff<const D: usize>(a: Tensor<D>, b: Tensor<D>) -> f32 {
    assert_eq!(a.dims(), b.dims());
    values_of(a)
        .iter()
        .zip(values_of(b))
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// A direct (loop) 2D convolution with "same" padding `k / 2`, for checking the layers.
/// `x`: `[n, c_in, h, w]`; `weight`: `[c_out, c_in / groups, k, k]`.
pub(crate) fn naive_conv2d(
    x: &[f32],
    [n, c_in, h, w]: [usize; 4],
    weight: &[f32],
    [c_out, c_per_group, k, _]: [usize; 4],
    bias: Option<&[f32]>,
    stride: usize,
    groups: usize,
) -> Vec<f32> {
    assert_eq!(c_in / groups, c_per_group);
    let pad = (k / 2) as isize;
    let ho = (h + 2 * (k / 2) - k) / stride + 1;
    let wo = (w + 2 * (k / 2) - k) / stride + 1;
    let out_per_group = c_out / groups;
    let mut out = vec![0.0f32; n * c_out * ho * wo];
    for b in 0..n {
        for o in 0..c_out {
            let g = o / out_per_group;
            for i in 0..ho {
                for j in 0..wo {
                    let mut acc = bias.map_or(0.0, |bias| f64::from(bias[o]));
                    for ci in 0..c_per_group {
                        let c = g * c_per_group + ci;
                        for a in 0..k {
                            for bb in 0..k {
                                let y = (i * stride + a) as isize - pad;
                                let xx = (j * stride + bb) as isize - pad;
                                if y < 0 || xx < 0 || y >= h as isize || xx >= w as isize {
                                    continue;
                                }
                                let xv = x[((b * c_in + c) * h + y as usize) * w + xx as usize];
                                let wv = weight[((o * c_per_group + ci) * k + a) * k + bb];
                                acc += f64::from(xv) * f64::from(wv);
                            }
                        }
                    }
                    out[((b * c_out + o) * ho + i) * wo + j] = acc as f32;
                }
            }
        }
    }
    out
}
