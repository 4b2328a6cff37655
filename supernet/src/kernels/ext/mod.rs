//! The backend extension that plugs [`conv`](super::conv) and [`norm`](super::norm) into burn:
//! NHWC ops on `flex` tensors, with their backward passes registered in burn's autodiff graph.
//!
//! Use the tensor-level functions ([`conv2d`], [`batch_norm_train`], [`channel_affine`]); they
//! need a `flex` device (with or without autodiff), see [`super::enabled`].
//!
//! The code: this file has the extension trait and the tensor-level functions, `flex.rs` its
//! implementation for `flex` on our kernels, `autodiff.rs` the one for `Autodiff<Flex>` with
//! the backward passes.

use burn::backend::tensor::FloatTensor;
use burn::backend::{Backend, Dispatch, backend_extension};
use burn::tensor::Tensor;
use spaces::Format;

use super::norm::NormAct;

mod autodiff;
mod flex;
#[cfg(test)]
mod tests;

/// NHWC convolution and batch norm, implemented for `flex` by our kernels and for autodiff by
/// hand-written backward passes.
#[backend_extension(Flex, Autodiff)]
pub trait NhwcBackend: Backend {
    /// Convolution with "same" padding `kernel / 2`, no bias.
    ///
    /// # Shapes
    /// - `x`: `[batch, height, width, in_channels]`
    /// - `weight`: `[out_channels, in_channels / groups, kernel, kernel]`
    /// - output: `[batch, out_height, out_width, out_channels]`
    fn conv2d_nhwc(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        stride: usize,
        groups: usize,
    ) -> FloatTensor<Self>;

    /// Batch norm over the last dimension with the batch statistics (biased variance), then
    /// `act`. Returns the output, the batch mean and the batch variance.
    ///
    /// # Shapes
    /// - `x`: `[..., channels]`; `gamma`, `beta`: `[channels]`
    /// - outputs: the shape of `x`, `[channels]`, `[channels]`
    fn batch_norm_nhwc(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        epsilon: f64,
        act: NormAct,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>);

    /// Fake quantization to `format` with one scale (`scale` has one element; it gets no
    /// gradient): see [`super::quant`].
    ///
    /// # Shapes
    /// - `x`: any; `scale`: one element
    /// - output: the shape of `x`
    fn fake_quantize_nhwc(
        x: FloatTensor<Self>,
        scale: FloatTensor<Self>,
        format: Format,
        signed: bool,
    ) -> FloatTensor<Self>;

    /// The observed range of an activation: `max |x|` (`signed`) or `max(max x, 0)`, as a
    /// one-element tensor without gradient.
    ///
    /// # Shapes
    /// - `x`: any
    /// - output: `[1]`
    fn range_max(x: FloatTensor<Self>, signed: bool) -> FloatTensor<Self>;

    /// The observed range of an activation under a percentile rule: the `percentile`-th
    /// percentile (nearest rank) of `|x|` (`signed`) or `max(x, 0)`, as a one-element tensor
    /// without gradient (see [`super::quant::range_percentile`]).
    ///
    /// # Shapes
    /// - `x`: any
    /// - output: `[1]`
    fn range_percentile(x: FloatTensor<Self>, signed: bool, percentile: f64) -> FloatTensor<Self>;

    /// `act(a + b)`: a residual connection and the activation after it.
    ///
    /// # Shapes
    /// - `a`, `b`: the same shape
    /// - output: that shape
    fn add_act_nhwc(a: FloatTensor<Self>, b: FloatTensor<Self>, act: NormAct) -> FloatTensor<Self>;

    /// `act(x * scale + shift)` per channel (the last dimension): batch norm in inference.
    ///
    /// # Shapes
    /// - `x`: `[..., channels]`; `scale`, `shift`: `[channels]`
    /// - output: the shape of `x`
    fn channel_affine_nhwc(
        x: FloatTensor<Self>,
        scale: FloatTensor<Self>,
        shift: FloatTensor<Self>,
        act: NormAct,
    ) -> FloatTensor<Self>;
}

/// Convolution of an NHWC input with an OIHW weight and an optional bias, "same" padding
/// `kernel / 2`, on our kernels (differentiable on an autodiff device).
///
/// # Shapes
/// - `x`: `[batch, height, width, in_channels]`
/// - `weight`: `[out_channels, in_channels / groups, kernel, kernel]`
/// - `bias`: `[out_channels]`
/// - output: `[batch, ceil(height / stride), ceil(width / stride), out_channels]`
///
/// # Panics
/// Panics on a device other than `flex`, or on inconsistent shapes.
pub fn conv2d(
    x: Tensor<4>,
    weight: Tensor<4>,
    bias: Option<Tensor<1>>,
    stride: usize,
    groups: usize,
) -> Tensor<4> {
    let y = Tensor::from_dispatch(<Dispatch as NhwcBackend>::conv2d_nhwc(
        x.into_dispatch(),
        weight.into_dispatch(),
        stride,
        groups,
    ));
    match bias {
        Some(b) => {
            let c = b.dims()[0];
            y + b.reshape([1, 1, 1, c])
        }
        None => y,
    }
}

/// Fake quantization of `x` to `format` with the one-element `scale` (which gets no
/// gradient), fused: see [`super::quant`]. Its values equal
/// [`crate::quant::fake_quantize`]'s.
///
/// # Shapes
/// - `x`: any; `scale`: one element
/// - output: the shape of `x`
///
/// # Panics
/// Panics on a device other than `flex`, if `scale` has more than one element, for fp32 or
/// for integers wider than 24 bits.
pub fn fake_quantize<const D: usize>(
    x: Tensor<D>,
    scale: Tensor<1>,
    format: Format,
    signed: bool,
) -> Tensor<D> {
    Tensor::from_dispatch(<Dispatch as NhwcBackend>::fake_quantize_nhwc(
        x.into_dispatch(),
        scale.into_dispatch(),
        format,
        signed,
    ))
}

/// The observed range of an activation, `max |x|` (`signed`) or `max(max x, 0)`, in one
/// pass; no gradient.
///
/// # Shapes
/// - `x`: any
/// - output: `[1]`
///
/// # Panics
/// Panics on a device other than `flex`.
pub fn range_max<const D: usize>(x: Tensor<D>, signed: bool) -> Tensor<1> {
    Tensor::from_dispatch(<Dispatch as NhwcBackend>::range_max(
        x.into_dispatch(),
        signed,
    ))
}

/// The observed range of an activation under a percentile rule, the `percentile`-th
/// percentile (nearest rank) of `|x|` (`signed`) or `max(x, 0)`, exactly and without a copy of
/// `x`; no gradient.
///
/// # Shapes
/// - `x`: any
/// - output: `[1]`
///
/// # Panics
/// Panics on a device other than `flex`, or if `percentile` is not in `(0, 100]`.
pub fn range_percentile<const D: usize>(x: Tensor<D>, signed: bool, percentile: f64) -> Tensor<1> {
    Tensor::from_dispatch(<Dispatch as NhwcBackend>::range_percentile(
        x.into_dispatch(),
        signed,
        percentile,
    ))
}

/// `act(a + b)` in one pass (a residual connection and the activation after it).
///
/// # Shapes
/// - `a`, `b`: the same shape
/// - output: that shape
///
/// # Panics
/// Panics on a device other than `flex`, or if the shapes differ.
pub fn add_act<const D: usize>(a: Tensor<D>, b: Tensor<D>, act: NormAct) -> Tensor<D> {
    Tensor::from_dispatch(<Dispatch as NhwcBackend>::add_act_nhwc(
        a.into_dispatch(),
        b.into_dispatch(),
        act,
    ))
}

/// The output of [`batch_norm_train`].
#[derive(Debug)]
pub struct BatchNormOutput<const D: usize> {
    /// The normalized, activated output.
    pub output: Tensor<D>,
    /// The batch mean per channel.
    pub mean: Tensor<1>,
    /// The biased batch variance per channel.
    pub variance: Tensor<1>,
}

/// Batch norm over the last dimension with the batch statistics, then `act`, on our kernels.
///
/// # Shapes
/// - `x`: `[..., channels]`; `gamma`, `beta`: `[channels]`
/// - output: the shape of `x`; mean and variance `[channels]`
///
/// # Panics
/// Panics on a device other than `flex`, or on inconsistent shapes.
pub fn batch_norm_train<const D: usize>(
    x: Tensor<D>,
    gamma: Tensor<1>,
    beta: Tensor<1>,
    epsilon: f64,
    act: NormAct,
) -> BatchNormOutput<D> {
    let (y, mean, var) = <Dispatch as NhwcBackend>::batch_norm_nhwc(
        x.into_dispatch(),
        gamma.into_dispatch(),
        beta.into_dispatch(),
        epsilon,
        act,
    );
    BatchNormOutput {
        output: Tensor::from_dispatch(y),
        mean: Tensor::from_dispatch(mean),
        variance: Tensor::from_dispatch(var),
    }
}

/// `act(x * scale + shift)` over the last dimension, on our kernels.
///
/// # Shapes
/// - `x`: `[..., channels]`; `scale`, `shift`: `[channels]`
/// - output: the shape of `x`
///
/// # Panics
/// Panics on a device other than `flex`, or on inconsistent shapes.
pub fn channel_affine<const D: usize>(
    x: Tensor<D>,
    scale: Tensor<1>,
    shift: Tensor<1>,
    act: NormAct,
) -> Tensor<D> {
    Tensor::from_dispatch(<Dispatch as NhwcBackend>::channel_affine_nhwc(
        x.into_dispatch(),
        scale.into_dispatch(),
        shift.into_dispatch(),
        act,
    ))
}
