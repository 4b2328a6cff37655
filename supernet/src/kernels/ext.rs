//! The backend extension that plugs [`conv`](super::conv) and [`norm`](super::norm) into burn:
//! NHWC ops on `flex` tensors, with their backward passes registered in burn's autodiff graph.
//!
//! Use the tensor-level functions ([`conv2d`], [`batch_norm_train`], [`channel_affine`]); they
//! need a `flex` device (with or without autodiff), see [`super::enabled`].

use burn::backend::autodiff::NodeId;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::backend::ops::{ActivationOps, FloatTensorOps};
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Backend, Dispatch, Flex, backend_extension};
use burn::tensor::{DType, Shape, Tensor, TensorData};

use super::ConvShape;
use super::conv;
use super::norm::{self, NormAct, NormStats};
use super::quant::{self, Grid};
use spaces::Format;

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

/// The `f32` values of a flex tensor, made contiguous if needed.
fn contiguous(t: FlexTensor, what: &str) -> FlexTensor {
    assert_eq!(
        t.dtype(),
        DType::F32,
        "the NHWC kernels take f32 tensors, got {:?} for {what}",
        t.dtype()
    );
    if t.layout().contiguous_offsets().is_some() {
        t
    } else {
        t.to_contiguous()
    }
}

fn values(t: &FlexTensor) -> &[f32] {
    t.as_slice::<f32>().expect("contiguous f32 tensor")
}

fn dims<const D: usize>(t: &FlexTensor, what: &str) -> [usize; D] {
    let shape = t.layout().shape();
    assert_eq!(
        shape.num_dims(),
        D,
        "{what} must have {D} dimensions, got {shape:?}"
    );
    shape.dims::<D>()
}

fn flex(values: Vec<f32>, shape: impl Into<Shape>) -> FlexTensor {
    FlexTensor::from_data(TensorData::new(values, shape.into()))
}

fn conv_shape(x: &FlexTensor, w: &FlexTensor, stride: usize, groups: usize) -> ConvShape {
    let [batch, height, width, in_channels] = dims::<4>(x, "the convolution input");
    let [out_channels, per_group, kernel, kernel_w] = dims::<4>(w, "the convolution weight");
    assert_eq!(
        kernel, kernel_w,
        "square kernels only, got {kernel}x{kernel_w}"
    );
    assert!(groups > 0, "zero groups");
    assert_eq!(
        per_group * groups,
        in_channels,
        "weight of {per_group} channels per group x {groups} groups for {in_channels} input channels"
    );
    let shape = ConvShape {
        batch,
        height,
        width,
        in_channels,
        out_channels,
        kernel,
        stride,
        groups,
    };
    shape.check();
    shape
}

fn grid(scale: FlexTensor, format: Format, signed: bool) -> Grid {
    let scale = contiguous(scale, "the quantization scale");
    let values = values(&scale);
    assert_eq!(
        values.len(),
        1,
        "fused fake quantization takes one scale, got {}",
        values.len()
    );
    Grid::new(format, signed, values[0])
}

impl NhwcBackend for Flex {
    fn conv2d_nhwc(x: FlexTensor, weight: FlexTensor, stride: usize, groups: usize) -> FlexTensor {
        let x = contiguous(x, "the convolution input");
        let w = contiguous(weight, "the convolution weight");
        let s = conv_shape(&x, &w, stride, groups);
        let y = conv::forward(&s, values(&x), values(&w));
        flex(y, [s.batch, s.out_height(), s.out_width(), s.out_channels])
    }

    fn batch_norm_nhwc(
        x: FlexTensor,
        gamma: FlexTensor,
        beta: FlexTensor,
        epsilon: f64,
        act: NormAct,
    ) -> (FlexTensor, FlexTensor, FlexTensor) {
        let (y, stats) = bn_forward(&x, gamma, beta, epsilon, act);
        let c = stats.mean.len();
        (y, flex(stats.mean, [c]), flex(stats.var, [c]))
    }

    fn add_act_nhwc(a: FlexTensor, b: FlexTensor, act: NormAct) -> FlexTensor {
        let shape = a.layout().shape().clone();
        assert_eq!(
            &shape,
            b.layout().shape(),
            "a residual connection of two shapes"
        );
        let a = contiguous(a, "the residual input");
        let b = contiguous(b, "the residual input");
        flex(norm::add_act(values(&a), values(&b), act), shape)
    }

    fn range_max(x: FlexTensor, signed: bool) -> FlexTensor {
        let x = contiguous(x, "the quantizer input");
        flex(vec![quant::range_max(values(&x), signed)], [1])
    }

    fn fake_quantize_nhwc(
        x: FlexTensor,
        scale: FlexTensor,
        format: Format,
        signed: bool,
    ) -> FlexTensor {
        let shape = x.layout().shape().clone();
        let x = contiguous(x, "the quantizer input");
        let q = quant::fake_quantize(values(&x), grid(scale, format, signed));
        flex(q, shape)
    }

    fn channel_affine_nhwc(
        x: FlexTensor,
        scale: FlexTensor,
        shift: FlexTensor,
        act: NormAct,
    ) -> FlexTensor {
        let shape = x.layout().shape().clone();
        let x = contiguous(x, "the batch norm input");
        let scale = contiguous(scale, "the batch norm scale");
        let shift = contiguous(shift, "the batch norm shift");
        let c = values(&scale).len();
        let y = norm::affine(values(&x), c, values(&scale), values(&shift), act);
        flex(y, shape)
    }
}

/// The training forward on flex tensors: the output and the statistics the backward needs.
fn bn_forward(
    x: &FlexTensor,
    gamma: FlexTensor,
    beta: FlexTensor,
    epsilon: f64,
    act: NormAct,
) -> (FlexTensor, NormStats) {
    let shape = x.layout().shape().clone();
    let x = contiguous(x.clone(), "the batch norm input");
    let gamma = contiguous(gamma, "the batch norm gamma");
    let beta = contiguous(beta, "the batch norm beta");
    let c = values(&gamma).len();
    assert_eq!(
        shape.as_slice().last(),
        Some(&c),
        "batch norm of {c} channels over an input of shape {shape:?}"
    );
    let (y, stats) = norm::batch_norm_train(
        values(&x),
        c,
        values(&gamma),
        values(&beta),
        epsilon as f32,
        act,
    );
    (flex(y, shape), stats)
}

#[derive(Debug)]
struct ConvBackward;

impl Backward<Flex, 2> for ConvBackward {
    type State = (NodeId, NodeId, usize, usize);

    fn backward(
        self,
        ops: Ops<Self::State, 2>,
        grads: &mut Gradients,
        checkpointer: &mut Checkpointer,
    ) {
        let [node_x, node_w] = ops.parents;
        let dy = contiguous(grads.consume::<Flex>(&ops.node), "the output gradient");
        let (x_id, w_id, stride, groups) = ops.state;
        let x = contiguous(
            checkpointer.retrieve_node_output::<FlexTensor>(x_id),
            "the convolution input",
        );
        let w = contiguous(
            checkpointer.retrieve_node_output::<FlexTensor>(w_id),
            "the convolution weight",
        );
        let s = conv_shape(&x, &w, stride, groups);
        if let Some(node) = node_x {
            let dx = conv::backward_data(&s, values(&dy), values(&w));
            grads.register::<Flex>(
                node.id,
                flex(dx, [s.batch, s.height, s.width, s.in_channels]),
            );
        }
        if let Some(node) = node_w {
            let dw = conv::backward_weight(&s, values(&x), values(&dy));
            grads.register::<Flex>(node.id, flex(dw, w.layout().shape().clone()));
        }
    }
}

/// What the batch-norm backward keeps: input, output, gamma and the batch statistics.
#[derive(Clone, Debug)]
struct BnState {
    x: FlexTensor,
    y: FlexTensor,
    gamma: FlexTensor,
    stats: std::sync::Arc<NormStats>,
    act: NormAct,
}

#[derive(Debug)]
struct BnBackward;

impl Backward<Flex, 3> for BnBackward {
    type State = BnState;

    fn backward(
        self,
        ops: Ops<Self::State, 3>,
        grads: &mut Gradients,
        _checkpointer: &mut Checkpointer,
    ) {
        let [node_x, node_gamma, node_beta] = ops.parents;
        let dy = contiguous(grads.consume::<Flex>(&ops.node), "the output gradient");
        let st = ops.state;
        let c = st.stats.mean.len();
        let (dx, dgamma, dbeta) = norm::batch_norm_train_backward(
            values(&st.x),
            values(&st.y),
            values(&dy),
            c,
            values(&st.gamma),
            &st.stats,
            st.act,
        );
        if let Some(node) = node_x {
            grads.register::<Flex>(node.id, flex(dx, st.x.layout().shape().clone()));
        }
        if let Some(node) = node_gamma {
            grads.register::<Flex>(node.id, flex(dgamma, [c]));
        }
        if let Some(node) = node_beta {
            grads.register::<Flex>(node.id, flex(dbeta, [c]));
        }
    }
}

#[derive(Debug)]
struct AddActBackward;

impl Backward<Flex, 2> for AddActBackward {
    type State = (FlexTensor, NormAct);

    fn backward(
        self,
        ops: Ops<Self::State, 2>,
        grads: &mut Gradients,
        _checkpointer: &mut Checkpointer,
    ) {
        let [node_a, node_b] = ops.parents;
        let dy = contiguous(grads.consume::<Flex>(&ops.node), "the output gradient");
        let (y, act) = ops.state;
        let g = flex(
            norm::act_backward(values(&y), values(&dy), act),
            y.layout().shape().clone(),
        );
        if let Some(node) = node_a {
            grads.register::<Flex>(node.id, g.clone());
        }
        if let Some(node) = node_b {
            grads.register::<Flex>(node.id, g);
        }
    }
}

#[derive(Debug)]
struct QuantBackward;

impl Backward<Flex, 1> for QuantBackward {
    type State = (FlexTensor, Grid);

    fn backward(
        self,
        ops: Ops<Self::State, 1>,
        grads: &mut Gradients,
        _checkpointer: &mut Checkpointer,
    ) {
        let [node_x] = ops.parents;
        let dy = contiguous(grads.consume::<Flex>(&ops.node), "the output gradient");
        let (x, grid) = ops.state;
        if let Some(node) = node_x {
            let dx = quant::fake_quantize_backward(values(&x), values(&dy), grid);
            grads.register::<Flex>(node.id, flex(dx, x.layout().shape().clone()));
        }
    }
}

impl<C: CheckpointStrategy> NhwcBackend for Autodiff<Flex, C> {
    fn conv2d_nhwc(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        stride: usize,
        groups: usize,
    ) -> FloatTensor<Self> {
        match ConvBackward
            .prepare::<C>([x.node(), weight.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(mut prep) => {
                let x_id = prep.checkpoint(&x);
                let w_id = prep.checkpoint(&weight);
                let y =
                    Flex::conv2d_nhwc(x.into_primitive(), weight.into_primitive(), stride, groups);
                prep.finish((x_id, w_id, stride, groups), y)
            }
            OpsKind::UnTracked(prep) => prep.finish(Flex::conv2d_nhwc(
                x.into_primitive(),
                weight.into_primitive(),
                stride,
                groups,
            )),
        }
    }

    fn batch_norm_nhwc(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        epsilon: f64,
        act: NormAct,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        let prep = BnBackward
            .prepare::<C>([x.node(), gamma.node(), beta.node()])
            .compute_bound()
            .stateful();
        let x = x.into_primitive();
        let gamma = gamma.into_primitive();
        let (y, stats) = bn_forward(&x, gamma.clone(), beta.into_primitive(), epsilon, act);
        let c = stats.mean.len();
        let mean = FloatTensor::<Self>::new(flex(stats.mean.clone(), [c]));
        let var = FloatTensor::<Self>::new(flex(stats.var.clone(), [c]));
        let out = match prep {
            OpsKind::Tracked(prep) => {
                let state = BnState {
                    x: contiguous(x, "the batch norm input"),
                    y: y.clone(),
                    gamma: contiguous(gamma, "the batch norm gamma"),
                    stats: std::sync::Arc::new(stats),
                    act,
                };
                prep.finish(state, y)
            }
            OpsKind::UnTracked(prep) => prep.finish(y),
        };
        (out, mean, var)
    }

    fn add_act_nhwc(a: FloatTensor<Self>, b: FloatTensor<Self>, act: NormAct) -> FloatTensor<Self> {
        let prep = AddActBackward
            .prepare::<C>([a.node(), b.node()])
            .compute_bound()
            .stateful();
        let y = Flex::add_act_nhwc(a.into_primitive(), b.into_primitive(), act);
        match prep {
            OpsKind::Tracked(prep) => prep.finish((y.clone(), act), y),
            OpsKind::UnTracked(prep) => prep.finish(y),
        }
    }

    fn range_max(x: FloatTensor<Self>, signed: bool) -> FloatTensor<Self> {
        FloatTensor::<Self>::new(Flex::range_max(x.into_primitive(), signed))
    }

    fn fake_quantize_nhwc(
        x: FloatTensor<Self>,
        scale: FloatTensor<Self>,
        format: Format,
        signed: bool,
    ) -> FloatTensor<Self> {
        let prep = QuantBackward
            .prepare::<C>([x.node()])
            .compute_bound()
            .stateful();
        let grid = grid(scale.into_primitive(), format, signed);
        let x = contiguous(x.into_primitive(), "the quantizer input");
        let shape = x.layout().shape().clone();
        let q = flex(quant::fake_quantize(values(&x), grid), shape);
        match prep {
            OpsKind::Tracked(prep) => prep.finish((x, grid), q),
            OpsKind::UnTracked(prep) => prep.finish(q),
        }
    }

    fn channel_affine_nhwc(
        x: FloatTensor<Self>,
        scale: FloatTensor<Self>,
        shift: FloatTensor<Self>,
        act: NormAct,
    ) -> FloatTensor<Self> {
        // Inference only in practice; with gradients, compose autodiff's own ops.
        let c = scale.primitive().layout().shape().num_elements();
        let rank = x.primitive().layout().shape().num_dims();
        let mut bshape = vec![1; rank];
        bshape[rank - 1] = c;
        let scale = Self::float_reshape(scale, Shape::from(bshape.clone()));
        let shift = Self::float_reshape(shift, Shape::from(bshape));
        let y = Self::float_add(Self::float_mul(x, scale), shift);
        match act {
            NormAct::None => y,
            NormAct::Relu => Self::relu(y),
            NormAct::Relu6 => Self::float_clamp(y, 0.0.into(), 6.0.into()),
        }
    }
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

#[cfg(test)]
mod tests {
    use burn::tensor::module::{batch_norm_train as burn_bn, conv2d as burn_conv2d};
    use burn::tensor::ops::ConvOptions;
    use burn::tensor::{Device, Distribution, Tensor};

    use super::*;

    fn device() -> Device {
        Device::flex().autodiff()
    }

    fn random<const D: usize>(shape: [usize; D], device: &Device) -> Tensor<D> {
        Tensor::random(shape, Distribution::Normal(0.0, 1.0), device)
    }

    fn max_rel_diff<const D: usize>(a: Tensor<D>, b: Tensor<D>) -> f32 {
        let scale = b.clone().abs().max().into_scalar::<f32>().max(1e-3);
        (a - b).abs().max().into_scalar::<f32>() / scale
    }

    fn nhwc(x: Tensor<4>) -> Tensor<4> {
        x.permute([0, 2, 3, 1])
    }

    /// Output and both gradients of our convolution against burn's NCHW `conv2d`.
    fn check_conv(
        [n, c, h, w]: [usize; 4],
        out: usize,
        kernel: usize,
        stride: usize,
        depthwise: bool,
    ) {
        let device = device();
        let groups = if depthwise { c } else { 1 };
        let out = if depthwise { c } else { out };
        let x0 = random([n, c, h, w], &device);
        let w0 = random([out, c / groups, kernel, kernel], &device);
        let p = kernel / 2;
        let options = ConvOptions::new([stride, stride], [p, p], [1, 1], groups);

        let (x, wt) = (x0.clone().require_grad(), w0.clone().require_grad());
        let reference = burn_conv2d(x.clone(), wt.clone(), None, options);
        let r = random(reference.dims(), &device);
        let grads = (reference.clone() * r.clone()).sum().backward();
        let (gx, gw) = (x.grad(&grads).unwrap(), wt.grad(&grads).unwrap());

        let (x, wt) = (x0.require_grad(), w0.require_grad());
        let ours = conv2d(nhwc(x.clone()), wt.clone(), None, stride, groups);
        let grads = (ours.clone() * nhwc(r)).sum().backward();
        let what = format!("{n}x{c}x{h}x{w} -> {out}, k{kernel} s{stride} g{groups}");
        let d = max_rel_diff(ours.inner(), nhwc(reference.inner()));
        assert!(d < 1e-4, "output differs by {d} for {what}");
        let d = max_rel_diff(x.grad(&grads).unwrap(), gx);
        assert!(d < 1e-4, "input gradient differs by {d} for {what}");
        let d = max_rel_diff(wt.grad(&grads).unwrap(), gw);
        assert!(d < 1e-4, "weight gradient differs by {d} for {what}");
    }

    #[test]
    fn conv_matches_burn_with_gradients() {
        check_conv([2, 3, 9, 7], 5, 3, 1, false);
        check_conv([3, 16, 8, 8], 16, 3, 1, false);
        check_conv([2, 8, 9, 9], 12, 3, 2, false);
        check_conv([2, 6, 7, 5], 4, 5, 3, false);
        check_conv([2, 10, 6, 6], 7, 1, 1, false);
        check_conv([2, 10, 7, 7], 7, 1, 2, false);
        check_conv([1, 4, 2, 2], 3, 7, 1, false);
        check_conv([2, 9, 7, 7], 9, 3, 1, true);
        check_conv([2, 17, 9, 8], 17, 5, 2, true);
        check_conv([1, 4, 3, 3], 4, 7, 1, true);
    }

    #[test]
    fn conv_matches_burn_on_random_shapes() {
        // a seeded splitmix64 walk over batch, channels, sizes, kernel, stride and groups
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = |n: u64| {
            state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            ((z ^ (z >> 31)) % n) as usize
        };
        for _ in 0..16 {
            let shape = [1 + next(3), 1 + next(20), 1 + next(12), 1 + next(12)];
            let out = 1 + next(40);
            let kernel = [1, 3, 5, 7][next(4)];
            let stride = 1 + next(3);
            check_conv(shape, out, kernel, stride, next(3) == 0);
        }
    }

    #[test]
    fn conv_works_on_strided_views() {
        // A sliced, permuted input and a centre-cropped weight: not contiguous in memory.
        let device = Device::flex();
        let x = random([2, 6, 8, 8], &device);
        let w = random([8, 6, 5, 5], &device);
        let crop = w.clone().slice([0..4, 0..3, 1..4, 1..4]);
        let options = ConvOptions::new([1, 1], [1, 1], [1, 1], 1);
        let reference = burn_conv2d(x.clone().slice([0..2, 0..3]), crop.clone(), None, options);
        let ours = conv2d(nhwc(x).slice([0..2, 0..8, 0..8, 0..3]), crop, None, 1, 1);
        assert!(max_rel_diff(ours, nhwc(reference)) < 1e-4);
    }

    fn check_bn([n, c, h, w]: [usize; 4], act: NormAct, offset: f32) {
        let device = device();
        let x0 = random([n, c, h, w], &device) + offset;
        let g0 = random([c], &device);
        let b0 = random([c], &device);
        let eps = 1e-5;

        let (x, g, b) = (
            x0.clone().require_grad(),
            g0.clone().require_grad(),
            b0.clone().require_grad(),
        );
        let out = burn_bn(x.clone(), g.clone(), b.clone(), eps);
        let reference = match act {
            NormAct::None => out.output,
            NormAct::Relu => burn::tensor::activation::relu(out.output),
            NormAct::Relu6 => out.output.clamp(0.0, 6.0),
        };
        let r = random(reference.dims(), &device);
        let grads = (reference.clone() * r.clone()).sum().backward();
        let (gx, gg, gb) = (
            x.grad(&grads).unwrap(),
            g.grad(&grads).unwrap(),
            b.grad(&grads).unwrap(),
        );

        let (x, g, b) = (x0.require_grad(), g0.require_grad(), b0.require_grad());
        let ours = batch_norm_train(nhwc(x.clone()), g.clone(), b.clone(), eps, act);
        let grads = (ours.output.clone() * nhwc(r)).sum().backward();
        let what = format!("{n}x{c}x{h}x{w} {act:?} offset {offset}");
        let d = max_rel_diff(ours.output.inner(), nhwc(reference.inner()));
        assert!(d < 1e-4, "output differs by {d} for {what}");
        let d = max_rel_diff(ours.mean.inner(), out.mean.inner());
        assert!(d < 1e-5, "mean differs by {d} for {what}");
        let d = max_rel_diff(ours.variance.inner(), out.variance.inner());
        assert!(d < 1e-3, "variance differs by {d} for {what}");
        for (name, ours, reference, tol) in [
            ("gamma", g.grad(&grads).unwrap(), gg, 1e-3),
            ("beta", b.grad(&grads).unwrap(), gb, 1e-4),
        ] {
            let d = max_rel_diff(ours, reference);
            assert!(d < tol, "{name} gradient differs by {d} for {what}");
        }
        let d = max_rel_diff(x.grad(&grads).unwrap(), gx);
        assert!(d < 1e-3, "input gradient differs by {d} for {what}");
    }

    #[test]
    fn batch_norm_matches_burn_with_gradients() {
        check_bn([4, 3, 5, 5], NormAct::None, 0.0);
        check_bn([8, 16, 4, 4], NormAct::Relu, 0.5);
        check_bn([2, 17, 3, 5], NormAct::Relu6, 2.0);
        check_bn([3, 5, 6, 6], NormAct::None, 30.0);
    }

    #[test]
    fn channel_affine_matches_broadcast_ops() {
        for device in [Device::flex(), device()] {
            let x = random([2, 4, 3, 5], &device);
            let scale = random([5], &device);
            let shift = random([5], &device);
            let reference = x.clone() * scale.clone().reshape([1, 1, 1, 5])
                + shift.clone().reshape([1, 1, 1, 5]);
            for act in [NormAct::None, NormAct::Relu, NormAct::Relu6] {
                let expected = match act {
                    NormAct::None => reference.clone(),
                    NormAct::Relu => reference.clone().clamp_min(0.0),
                    NormAct::Relu6 => reference.clone().clamp(0.0, 6.0),
                };
                let ours = channel_affine(x.clone(), scale.clone(), shift.clone(), act);
                assert!(max_rel_diff(ours, expected) < 1e-6);
            }
        }
    }

    #[test]
    fn fused_fake_quantization_equals_the_tensor_ops_with_gradients() {
        let device = device();
        for (format, signed, range) in [
            (Format::Int(4), false, 3.0),
            (Format::Int(4), true, 2.0),
            (Format::Int(2), true, 1.0),
            (Format::Int(8), false, 5.0),
            (Format::E4M3, true, 3.0),
            (Format::E2M1, true, 2.0),
            (Format::E5M2, true, 1.0),
        ] {
            // values on and between grid points, ties included, some saturating
            let x0 = random([2, 5, 7, 3], &device).mul_scalar(range);
            let grid_max = crate::quant::grid::grid_max(format, signed) as f32;
            let scale = Tensor::<1>::from_floats([range / grid_max], &device);
            let ties = Tensor::<1>::from_floats([0.5, 1.5, -2.5, 3.5], &device)
                .mul(scale.clone())
                .reshape([1, 1, 4, 1]);
            let x0 = x0.slice_assign([0..1, 0..1, 0..4, 0..1], ties);
            let r = random([2, 5, 7, 3], &device);

            let x = x0.clone().require_grad();
            let reference = crate::quant::fake_quantize_ops(
                x.clone(),
                format,
                Some(scale.clone().reshape([1, 1, 1, 1])),
                signed,
            );
            let grads = (reference.clone() * r.clone()).sum().backward();
            let expected_grad = x.grad(&grads).unwrap();

            let x = x0.require_grad();
            let ours = fake_quantize(x.clone(), scale, format, signed);
            let grads = (ours.clone() * r).sum().backward();
            assert_eq!(
                ours.inner().into_data().try_to_vec::<f32>().unwrap(),
                reference.inner().into_data().try_to_vec::<f32>().unwrap(),
                "{} signed {signed}",
                format.name()
            );
            assert_eq!(
                x.grad(&grads)
                    .unwrap()
                    .into_data()
                    .try_to_vec::<f32>()
                    .unwrap(),
                expected_grad.into_data().try_to_vec::<f32>().unwrap(),
                "{} signed {signed}",
                format.name()
            );
        }
    }

    #[test]
    fn add_act_matches_burn_with_gradients() {
        let device = device();
        for act in [NormAct::None, NormAct::Relu, NormAct::Relu6] {
            let a0 = random([2, 3, 4, 5], &device).mul_scalar(4.0);
            let b0 = random([2, 3, 4, 5], &device).mul_scalar(4.0);
            let r = random([2, 3, 4, 5], &device);
            let (a, b) = (a0.clone().require_grad(), b0.clone().require_grad());
            let sum = a.clone() + b.clone();
            let reference = match act {
                NormAct::None => sum,
                NormAct::Relu => burn::tensor::activation::relu(sum),
                NormAct::Relu6 => sum.clamp(0.0, 6.0),
            };
            let grads = (reference.clone() * r.clone()).sum().backward();
            let (ga, gb) = (a.grad(&grads).unwrap(), b.grad(&grads).unwrap());
            let (a, b) = (a0.require_grad(), b0.require_grad());
            let ours = add_act(a.clone(), b.clone(), act);
            let grads = (ours.clone() * r).sum().backward();
            assert!(
                max_rel_diff(ours.inner(), reference.inner()) == 0.0,
                "{act:?}"
            );
            assert!(max_rel_diff(a.grad(&grads).unwrap(), ga) == 0.0, "{act:?}");
            assert!(max_rel_diff(b.grad(&grads).unwrap(), gb) == 0.0, "{act:?}");
        }
    }
}
