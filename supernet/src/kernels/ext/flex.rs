//! [`NhwcBackend`] for `flex`: our kernels on the tensors' `f32` values.

use burn::backend::Flex;
use burn::backend::flex::FlexTensor;
use burn::tensor::{DType, Shape, TensorData};
use spaces::Format;

use super::NhwcBackend;
use crate::kernels::ConvShape;
use crate::kernels::conv;
use crate::kernels::norm::{self, NormAct, NormStats};
use crate::kernels::quant::{self, Grid};

/// The `f32` values of a flex tensor, made contiguous if needed.
pub(super) fn contiguous(t: FlexTensor, what: &str) -> FlexTensor {
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

pub(super) fn values(t: &FlexTensor) -> &[f32] {
    t.as_slice::<f32>().expect("contiguous f32 tensor")
}

/// `t` itself where nothing else holds it and it is laid out from the start of its buffer, else
/// a copy of it: a tensor whose values a kernel may overwrite ([`unique_values_mut`] then
/// returns them).
pub(super) fn into_unique(mut t: FlexTensor) -> FlexTensor {
    if unique_values_mut(&mut t).is_some() {
        return t;
    }
    let shape = t.layout().shape().clone();
    flex(crate::kernels::copied(values(&t)), shape)
}

/// `x` fake-quantized on `grid`: in its own buffer where nothing else holds it (no buffer to
/// allocate and clear), else into a new one.
pub(super) fn fake_quantize_owned(x: FlexTensor, grid: Grid) -> FlexTensor {
    let mut x = contiguous(x, "the quantizer input");
    if let Some(v) = unique_values_mut(&mut x) {
        quant::fake_quantize_in_place(v, grid);
        return x;
    }
    let shape = x.layout().shape().clone();
    flex(quant::fake_quantize(values(&x), grid), shape)
}

/// The `f32` values of a tensor held by nothing else and laid out contiguously from the start
/// of its buffer, to be overwritten in place; `None` if it is shared or a view.
pub(super) fn unique_values_mut(t: &mut FlexTensor) -> Option<&mut [f32]> {
    let n = t.layout().shape().num_elements();
    if t.dtype() != DType::F32 || t.layout().contiguous_offsets() != Some((0, n)) {
        return None;
    }
    t.try_storage_mut::<f32>().map(|s| &mut s[..n])
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

pub(super) fn flex(values: Vec<f32>, shape: impl Into<Shape>) -> FlexTensor {
    FlexTensor::from_data(TensorData::new(values, shape.into()))
}

pub(super) fn conv_shape(
    x: &FlexTensor,
    w: &FlexTensor,
    stride: usize,
    groups: usize,
) -> ConvShape {
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

pub(super) fn grid(scale: FlexTensor, format: Format, signed: bool) -> Grid {
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

    fn range_percentile(x: FlexTensor, signed: bool, percentile: f64) -> FlexTensor {
        let x = contiguous(x, "the quantizer input");
        flex(
            vec![quant::range_percentile(values(&x), signed, percentile)],
            [1],
        )
    }

    fn fake_quantize_nhwc(
        x: FlexTensor,
        scale: FlexTensor,
        format: Format,
        signed: bool,
    ) -> FlexTensor {
        fake_quantize_owned(x, grid(scale, format, signed))
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
pub(super) fn bn_forward(
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
