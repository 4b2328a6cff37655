//! Tests of the extension against burn's own ops, values and gradients.

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
fn check_conv([n, c, h, w]: [usize; 4], out: usize, kernel: usize, stride: usize, depthwise: bool) {
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
    // a seeded walk over batch, channels, sizes, kernel, stride and groups
    let mut rng = spaces::Rng::new(1);
    let mut next = |n: usize| rng.below(n);
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
        let reference =
            x.clone() * scale.clone().reshape([1, 1, 1, 5]) + shift.clone().reshape([1, 1, 1, 5]);
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

/// Without gradients (plain flex, and autodiff on an input that needs none) a quantizer input
/// held by nothing else is quantized in place; one still held elsewhere is left as it was.
#[test]
fn fake_quantization_in_place_leaves_shared_inputs_alone() {
    for device in [Device::flex(), device()] {
        let values = |t: Tensor<4>| t.into_data().try_to_vec::<f32>().unwrap();
        let x = random([2, 5, 7, 3], &device).mul_scalar(3.0);
        let before = values(x.clone());
        let scale = Tensor::<1>::from_floats([3.0 / 7.0], &device);
        let reference = values(crate::quant::fake_quantize_ops(
            x.clone(),
            Format::Int(4),
            Some(scale.clone().reshape([1, 1, 1, 1])),
            true,
        ));
        assert_ne!(reference, before, "quantization changes the values");
        let shared = fake_quantize(x.clone(), scale.clone(), Format::Int(4), true);
        assert_eq!(values(x.clone()), before, "{device:?}: shared input kept");
        assert_eq!(values(shared), reference, "{device:?}");
        let unique = fake_quantize(x, scale, Format::Int(4), true);
        assert_eq!(values(unique), reference, "{device:?}: in place");
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
