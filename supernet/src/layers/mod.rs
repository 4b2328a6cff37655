//! Elastic layers: each stores the parameters of its largest configuration and, in `forward`,
//! slices the part a sub-network uses (a prefix of the channels, the centre crop of the
//! kernel). Every elastic layer has a static twin, a plain burn module filled by `extract`
//! with the sliced (and optionally quantized) parameters, whose forward gives the same output.
//!
//! Architectural choices (channels, kernel, stride) and number formats ([`Precision`]) are
//! arguments of `forward`; they are never stored in the layer.
//!
//! [`conv_bn`] pairs an elastic convolution with an elastic batch norm, the unit the supernet
//! is built of.
//!
//! [`Precision`]: crate::quant::Precision

pub mod conv_bn;
pub mod elastic_bn;
pub mod elastic_conv;
pub mod elastic_dwconv;
pub mod elastic_linear;

#[cfg(test)]
pub(crate) mod test_util;

use burn::tensor::{Distribution, Tensor};

pub use conv_bn::{ConvBn, ConvBnParts, StaticConvBn, SuperConv};
pub use elastic_bn::{ElasticBatchNorm, ElasticBatchNormConfig};
pub use elastic_conv::{ConvChoice, ElasticConv2d, ElasticConv2dConfig};
pub use elastic_dwconv::{ElasticDepthwiseConv2d, ElasticDepthwiseConv2dConfig};
pub use elastic_linear::{ElasticLinear, ElasticLinearConfig};

/// Offset of the centre `kernel x kernel` crop inside a `max_kernel x max_kernel` kernel.
pub(crate) fn centre_offset(kernel: usize, max_kernel: usize) -> usize {
    (max_kernel - kernel) / 2
}

/// Panics unless `kernel` is odd and at most `max_kernel`.
pub(crate) fn check_kernel(kernel: usize, max_kernel: usize) {
    assert!(
        kernel % 2 == 1 && kernel <= max_kernel,
        "kernel size {kernel} must be odd and at most {max_kernel}"
    );
}

/// Inverted dropout: zeroes each element with probability `p` and scales the rest by 1/(1-p).
///
/// # Shapes
/// - `x`: any, output: the same
pub fn dropout<const D: usize>(x: Tensor<D>, p: f64) -> Tensor<D> {
    if p <= 0.0 {
        return x;
    }
    let mask = Tensor::<D>::random(x.dims(), Distribution::Bernoulli(1.0 - p), &x.device());
    x * mask / (1.0 - p)
}
