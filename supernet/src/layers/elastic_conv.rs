//! Elastic 2D convolution: output/input channels and kernel size chosen per call.

use burn::config::Config;
use burn::module::{Initializer, Module, Param};
use burn::nn::PaddingConfig2d;
use burn::nn::conv::Conv2d;
use burn::tensor::module::conv2d;
use burn::tensor::ops::ConvOptions;
use burn::tensor::{Device, Tensor};
use spaces::Format;

use crate::Phase;
use crate::quant::{
    ActQuantizer, ActQuantizerConfig, Precision, WeightQuant, fake_quantize_weight,
};

use super::{centre_offset, check_kernel};

/// The sub-layer chosen for one call of [`ElasticConv2d::forward`] (input channels are those of
/// the input tensor).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ConvChoice {
    /// Output channels: the first `out_channels` filters are used.
    pub out_channels: usize,
    /// Kernel size (odd): the centre `kernel x kernel` crop of the full kernel is used.
    pub kernel: usize,
    /// Stride (both dimensions).
    pub stride: usize,
}

impl ConvChoice {
    /// A choice of output channels, kernel size and stride.
    pub fn new(out_channels: usize, kernel: usize, stride: usize) -> ConvChoice {
        ConvChoice {
            out_channels,
            kernel,
            stride,
        }
    }
}

/// Configuration to create an [elastic 2D convolution](ElasticConv2d).
#[derive(Config, Debug)]
pub struct ElasticConv2dConfig {
    /// Largest number of input channels.
    pub max_in_channels: usize,
    /// Largest number of output channels.
    pub max_out_channels: usize,
    /// Largest (odd) kernel size.
    pub max_kernel: usize,
    /// Whether the layer has a bias (usually not: a batch norm follows).
    #[config(default = false)]
    pub bias: bool,
    /// Initializer of the full weight (and bias).
    #[config(default = "Initializer::KaimingUniform{gain:0.5773502691896258, fan_out_only:false}")]
    pub initializer: Initializer,
    /// How weights are quantized: which floating-point formats are scaled, and each output
    /// channel's range.
    #[config(default = "WeightQuant::default()")]
    pub weight_quant: WeightQuant,
    /// The input activation quantizer.
    #[config(default = "ActQuantizerConfig::new()")]
    pub input_quant: ActQuantizerConfig,
}

/// A 2D convolution whose output channels, input channels and kernel size are chosen per call
/// (Once-for-All style): the weight is stored at its largest shape and `forward` uses the first
/// output and input channels and the centre crop of the kernel, with "same" padding `k / 2`.
/// Weights and the input activation are fake-quantized to the formats passed to `forward`.
///
/// Should be created with [`ElasticConv2dConfig`].
#[derive(Module, Debug)]
pub struct ElasticConv2d {
    /// Full weight, shape `[max_out_channels, max_in_channels, max_kernel, max_kernel]`.
    pub weight: Param<Tensor<4>>,
    /// Full bias, shape `[max_out_channels]`.
    pub bias: Option<Param<Tensor<1>>>,
    /// Quantizer of the input activation.
    pub input_quant: ActQuantizer,
    /// How weights are quantized.
    #[module(skip)]
    pub weight_quant: WeightQuant,
}

impl ElasticConv2dConfig {
    /// Initializes a new [elastic convolution](ElasticConv2d). Fan-in and fan-out for the
    /// initializer are those of the largest configuration.
    ///
    /// # Panics
    /// Panics if a size is zero or `max_kernel` is even.
    pub fn init(&self, device: &Device) -> ElasticConv2d {
        assert!(
            self.max_in_channels > 0 && self.max_out_channels > 0,
            "channel counts must be positive"
        );
        assert!(
            self.max_kernel % 2 == 1,
            "the largest kernel must be odd, got {}",
            self.max_kernel
        );
        let k2 = self.max_kernel * self.max_kernel;
        let fan_in = self.max_in_channels * k2;
        let fan_out = self.max_out_channels * k2;
        let shape = [
            self.max_out_channels,
            self.max_in_channels,
            self.max_kernel,
            self.max_kernel,
        ];
        let weight = self
            .initializer
            .init_with(shape, Some(fan_in), Some(fan_out), device);
        let bias = self.bias.then(|| {
            self.initializer
                .init_with([self.max_out_channels], Some(fan_in), Some(fan_out), device)
        });
        ElasticConv2d {
            weight,
            bias,
            input_quant: self.input_quant.init(device),
            weight_quant: self.weight_quant,
        }
    }
}

impl ElasticConv2d {
    /// Applies the convolution chosen by `choice` to `input`, whose channel count selects the
    /// input channels. The input is fake-quantized to `precision.act` by the layer's
    /// [`ActQuantizer`] (which uses `phase`), the sliced weight to `precision.weight` (per
    /// output channel).
    ///
    /// # Shapes
    /// - `input`: `[batch_size, in_channels, height, width]`, `in_channels <= max_in_channels`
    /// - output: `[batch_size, out_channels, ceil(height / stride), ceil(width / stride)]`
    ///
    /// # Panics
    /// Panics if the input has more channels than the layer, `out_channels` is zero or too
    /// large, the kernel is even or larger than the layer's, or the stride is zero.
    pub fn forward(
        &self,
        input: Tensor<4>,
        choice: ConvChoice,
        precision: Precision,
        phase: Phase,
    ) -> Tensor<4> {
        let in_channels = input.dims()[1];
        let input = self.input_quant.forward(input, precision.act, phase);
        let weight = self.active_weight(in_channels, choice, precision.weight);
        let bias = self.active_bias(choice.out_channels);
        conv2d(input, weight, bias, conv_options(choice, 1))
    }

    /// [`ElasticConv2d::forward`] on an NHWC input, on our kernels
    /// ([`crate::kernels::ext::conv2d`]; the device must be `flex`). The weight stays in its
    /// stored layout: only its used slice is read.
    ///
    /// # Shapes
    /// - `input`: `[batch_size, height, width, in_channels]`, `in_channels <= max_in_channels`
    /// - output: `[batch_size, ceil(height / stride), ceil(width / stride), out_channels]`
    ///
    /// # Panics
    /// As [`ElasticConv2d::forward`], and on a device other than `flex`.
    pub fn forward_nhwc(
        &self,
        input: Tensor<4>,
        choice: ConvChoice,
        precision: Precision,
        phase: Phase,
    ) -> Tensor<4> {
        let in_channels = input.dims()[3];
        let input = self.input_quant.forward(input, precision.act, phase);
        let weight = self.active_weight(in_channels, choice, precision.weight);
        let bias = self.active_bias(choice.out_channels);
        crate::kernels::ext::conv2d(input, weight, bias, choice.stride, 1)
    }

    /// The weight `forward` uses: sliced, centre-cropped and fake-quantized.
    ///
    /// # Shapes
    /// - output: `[out_channels, in_channels, kernel, kernel]`
    pub fn active_weight(
        &self,
        in_channels: usize,
        choice: ConvChoice,
        format: Format,
    ) -> Tensor<4> {
        let [max_out, max_in, max_kernel, _] = self.weight.dims();
        assert!(
            (1..=max_in).contains(&in_channels),
            "{in_channels} input channels for a layer of {max_in}"
        );
        assert!(
            (1..=max_out).contains(&choice.out_channels),
            "{} output channels for a layer of {max_out}",
            choice.out_channels
        );
        assert!(choice.stride > 0, "the stride must be positive");
        check_kernel(choice.kernel, max_kernel);
        let off = centre_offset(choice.kernel, max_kernel);
        let k = choice.kernel;
        let weight = self.weight.val().slice([
            0..choice.out_channels,
            0..in_channels,
            off..off + k,
            off..off + k,
        ]);
        fake_quantize_weight(weight, format, 0, self.weight_quant)
    }

    fn active_bias(&self, out_channels: usize) -> Option<Tensor<1>> {
        self.bias.as_ref().map(|b| b.val().slice(0..out_channels))
    }

    /// A static [`Conv2d`] with the weights (fake-quantized to `weight_format`, detached) and
    /// bias `forward` would use for `in_channels` and `choice`. Its forward equals this layer's
    /// forward with `precision.act` = fp32 (for a quantized input, put
    /// [`ActQuantizer::frozen`] of [`ElasticConv2d::input_quant`] in front of it).
    pub fn extract(&self, in_channels: usize, choice: ConvChoice, weight_format: Format) -> Conv2d {
        let weight = self
            .active_weight(in_channels, choice, weight_format)
            .detach();
        let bias = self
            .active_bias(choice.out_channels)
            .map(|b| Param::from_tensor(b.detach()));
        let p = choice.kernel / 2;
        Conv2d {
            weight: Param::from_tensor(weight),
            bias,
            stride: [choice.stride; 2],
            kernel_size: [choice.kernel; 2],
            dilation: [1, 1],
            groups: 1,
            padding: PaddingConfig2d::Explicit(p, p, p, p),
        }
    }
}

/// Convolution options for a choice: stride, "same" padding `k / 2`, no dilation.
pub(crate) fn conv_options(choice: ConvChoice, groups: usize) -> ConvOptions<2> {
    let p = choice.kernel / 2;
    ConvOptions::new([choice.stride; 2], [p, p], [1, 1], groups)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layers::test_util::{max_abs_diff, naive_conv2d};
    use crate::quant::test_util::{pseudo_random, values_of};

    fn layer(device: &Device, bias: bool) -> ElasticConv2d {
        device.seed(3);
        ElasticConv2dConfig::new(6, 8, 5)
            .with_bias(bias)
            .init(device)
    }

    #[test]
    fn elastic_forward_equals_extracted_and_naive_conv() {
        let device = Device::flex();
        let conv = layer(&device, true);
        let full = values_of(conv.weight.val());
        let bias = values_of(conv.bias.as_ref().unwrap().val());
        for (cin, choice) in [
            (6, ConvChoice::new(8, 5, 1)),
            (3, ConvChoice::new(4, 3, 1)),
            (2, ConvChoice::new(5, 1, 2)),
            (6, ConvChoice::new(1, 3, 2)),
            (4, ConvChoice::new(7, 5, 2)),
        ] {
            let x = pseudo_random([2, cin, 7, 6], 1.0, cin as u64, &device);
            let y = conv.forward(x.clone(), choice, Precision::FULL, Phase::Eval);
            let static_conv = conv.extract(cin, choice, Format::FP32);
            let y_static = static_conv.forward(x.clone());
            assert_eq!(y.dims(), y_static.dims());
            assert!(max_abs_diff(y.clone(), y_static) <= 1e-5, "{choice:?}");

            // Independent reference: the centre crop read from the full weight by index.
            let k = choice.kernel;
            let off = (5 - k) / 2;
            let mut w = Vec::new();
            for o in 0..choice.out_channels {
                for i in 0..cin {
                    for a in 0..k {
                        for b in 0..k {
                            w.push(full[((o * 6 + i) * 5 + a + off) * 5 + b + off]);
                        }
                    }
                }
            }
            let want = naive_conv2d(
                &values_of(x),
                [2, cin, 7, 6],
                &w,
                [choice.out_channels, cin, k, k],
                Some(&bias[..choice.out_channels]),
                choice.stride,
                1,
            );
            let got = values_of(y);
            assert_eq!(got.len(), want.len());
            for (g, w) in got.iter().zip(&want) {
                assert!((g - w).abs() <= 1e-5, "{choice:?}: {g} vs {w}");
            }
        }
    }

    #[test]
    fn quantized_forward_equals_frozen_quantizer_then_extracted() {
        let device = Device::flex();
        let conv = ElasticConv2dConfig::new(4, 6, 3)
            .with_input_quant(ActQuantizerConfig::new().with_signed(false))
            .init(&device);
        let x = pseudo_random([2, 4, 5, 5], 2.0, 1, &device).clamp_min(0.0);
        // Observe the activation range once.
        let choice = ConvChoice::new(5, 3, 1);
        let precision = Precision::new(Format::Int(4), Format::Int(8));
        conv.forward(x.clone(), choice, precision, Phase::Train);
        for (precision, choice) in [
            (precision, choice),
            (
                Precision::new(Format::E2M1, Format::E4M3),
                ConvChoice::new(6, 1, 1),
            ),
            (
                Precision::new(Format::Int(2), Format::Int(3)),
                ConvChoice::new(2, 3, 2),
            ),
        ] {
            let x3 = x.clone().slice([0..2, 0..3, 0..5, 0..5]);
            let y = conv.forward(x3.clone(), choice, precision, Phase::Eval);
            let frozen = conv.input_quant.frozen(precision.act);
            let extracted = conv.extract(3, choice, precision.weight);
            let y_static = extracted.forward(frozen.forward(x3));
            assert!(max_abs_diff(y, y_static) <= 1e-5, "{precision:?}");
        }
    }

    #[test]
    fn gradients_reach_only_the_used_slice() {
        let device = Device::flex().autodiff();
        let conv = layer(&device, true);
        let x = pseudo_random([1, 3, 5, 5], 1.0, 2, &device);
        let choice = ConvChoice::new(4, 3, 1);
        let y = conv.forward(
            x,
            choice,
            Precision::new(Format::Int(4), Format::FP32),
            Phase::Train,
        );
        let grads = y.sum().backward();
        let g = conv.weight.grad(&grads).unwrap();
        assert_eq!(g.dims(), [8, 6, 5, 5]);
        let g = values_of(g);
        for o in 0..8 {
            for i in 0..6 {
                for a in 0..5 {
                    for b in 0..5 {
                        let used = o < 4 && i < 3 && (1..4).contains(&a) && (1..4).contains(&b);
                        let v = g[((o * 6 + i) * 5 + a) * 5 + b];
                        if !used {
                            assert_eq!(v, 0.0, "{o} {i} {a} {b}");
                        }
                    }
                }
            }
        }
        assert!(g.iter().any(|&v| v != 0.0));
        let gb = values_of(conv.bias.as_ref().unwrap().grad(&grads).unwrap());
        assert!(gb[..4].iter().all(|&v| v == 25.0));
        assert!(gb[4..].iter().all(|&v| v == 0.0));
    }

    #[test]
    #[should_panic(expected = "kernel")]
    fn even_kernels_are_rejected() {
        let device = Device::flex();
        let conv = layer(&device, false);
        let x = pseudo_random([1, 2, 4, 4], 1.0, 2, &device);
        conv.forward(x, ConvChoice::new(2, 2, 1), Precision::FULL, Phase::Eval);
    }
}
