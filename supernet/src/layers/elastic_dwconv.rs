//! Elastic depthwise 2D convolution: channels and kernel size chosen per call.

use burn::config::Config;
use burn::module::{Initializer, Module, Param};
use burn::nn::PaddingConfig2d;
use burn::nn::conv::Conv2d;
use burn::tensor::module::conv2d;
use burn::tensor::{Device, Tensor};
use spaces::Format;

use crate::Phase;
use crate::quant::{
    ActQuantizer, ActQuantizerConfig, Precision, WeightQuant, fake_quantize_weight,
};

use super::elastic_conv::{ConvChoice, conv_options};
use super::{centre_offset, check_kernel};

/// Configuration to create an [elastic depthwise convolution](ElasticDepthwiseConv2d).
#[derive(Config, Debug)]
pub struct ElasticDepthwiseConv2dConfig {
    /// Largest number of channels.
    pub max_channels: usize,
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

/// A depthwise 2D convolution (one filter per channel, `groups = channels`) whose channel
/// count and kernel size are chosen per call: `forward` uses the first channels of the full
/// weight and the centre crop of the kernel, with "same" padding `k / 2`. Weights and the input
/// activation are fake-quantized to the formats passed to `forward`.
///
/// Should be created with [`ElasticDepthwiseConv2dConfig`].
#[derive(Module, Debug)]
pub struct ElasticDepthwiseConv2d {
    /// Full weight, shape `[max_channels, 1, max_kernel, max_kernel]`.
    pub weight: Param<Tensor<4>>,
    /// Full bias, shape `[max_channels]`.
    pub bias: Option<Param<Tensor<1>>>,
    /// Quantizer of the input activation.
    pub input_quant: ActQuantizer,
    /// How weights are quantized.
    #[module(skip)]
    pub weight_quant: WeightQuant,
}

impl ElasticDepthwiseConv2dConfig {
    /// Initializes a new [elastic depthwise convolution](ElasticDepthwiseConv2d).
    ///
    /// # Panics
    /// Panics if `max_channels` is zero or `max_kernel` is even.
    pub fn init(&self, device: &Device) -> ElasticDepthwiseConv2d {
        assert!(self.max_channels > 0, "the channel count must be positive");
        assert!(
            self.max_kernel % 2 == 1,
            "the largest kernel must be odd, got {}",
            self.max_kernel
        );
        let k2 = self.max_kernel * self.max_kernel;
        let shape = [self.max_channels, 1, self.max_kernel, self.max_kernel];
        let weight = self
            .initializer
            .init_with(shape, Some(k2), Some(k2), device);
        let bias = self.bias.then(|| {
            self.initializer
                .init_with([self.max_channels], Some(k2), Some(k2), device)
        });
        ElasticDepthwiseConv2d {
            weight,
            bias,
            input_quant: self.input_quant.init(device),
            weight_quant: self.weight_quant,
        }
    }
}

impl ElasticDepthwiseConv2d {
    /// Applies the depthwise convolution with the given kernel size and stride to `input`,
    /// whose channel count selects the channels. The input is fake-quantized to
    /// `precision.act` (using `phase`), the sliced weight to `precision.weight` (per channel).
    ///
    /// # Shapes
    /// - `input`: `[batch_size, channels, height, width]`, `channels <= max_channels`
    /// - output: `[batch_size, channels, ceil(height / stride), ceil(width / stride)]`
    ///
    /// # Panics
    /// Panics if the input has more channels than the layer, the kernel is even or larger than
    /// the layer's, or the stride is zero.
    pub fn forward(
        &self,
        input: Tensor<4>,
        kernel: usize,
        stride: usize,
        precision: Precision,
        phase: Phase,
    ) -> Tensor<4> {
        let channels = input.dims()[1];
        let choice = ConvChoice::new(channels, kernel, stride);
        let input = self.input_quant.forward(input, precision.act, phase);
        let weight = self.active_weight(channels, kernel, precision.weight);
        let bias = self.active_bias(channels);
        conv2d(input, weight, bias, conv_options(choice, channels))
    }

    /// [`ElasticDepthwiseConv2d::forward`] on an NHWC input, on our kernels
    /// ([`crate::kernels::ext::conv2d`]; the device must be `flex`).
    ///
    /// # Shapes
    /// - `input`: `[batch_size, height, width, channels]`, `channels <= max_channels`
    /// - output: `[batch_size, ceil(height / stride), ceil(width / stride), channels]`
    ///
    /// # Panics
    /// As [`ElasticDepthwiseConv2d::forward`], and on a device other than `flex`.
    pub fn forward_nhwc(
        &self,
        input: Tensor<4>,
        kernel: usize,
        stride: usize,
        precision: Precision,
        phase: Phase,
    ) -> Tensor<4> {
        let channels = input.dims()[3];
        let input = self.input_quant.forward(input, precision.act, phase);
        let weight = self.active_weight(channels, kernel, precision.weight);
        let bias = self.active_bias(channels);
        crate::kernels::ext::conv2d(input, weight, bias, stride, channels)
    }

    /// The weight `forward` uses: the first `channels` filters, centre-cropped to `kernel`,
    /// fake-quantized.
    ///
    /// # Shapes
    /// - output: `[channels, 1, kernel, kernel]`
    pub fn active_weight(&self, channels: usize, kernel: usize, format: Format) -> Tensor<4> {
        let [max_channels, _, max_kernel, _] = self.weight.dims();
        assert!(
            (1..=max_channels).contains(&channels),
            "{channels} channels for a layer of {max_channels}"
        );
        check_kernel(kernel, max_kernel);
        let off = centre_offset(kernel, max_kernel);
        let weight =
            self.weight
                .val()
                .slice([0..channels, 0..1, off..off + kernel, off..off + kernel]);
        fake_quantize_weight(weight, format, 0, self.weight_quant)
    }

    fn active_bias(&self, channels: usize) -> Option<Tensor<1>> {
        self.bias.as_ref().map(|b| b.val().slice(0..channels))
    }

    /// A static depthwise [`Conv2d`] (`groups = channels`) with the weights (fake-quantized to
    /// `weight_format`, detached) and bias `forward` would use. Its forward equals this layer's
    /// forward with `precision.act` = fp32.
    ///
    /// # Panics
    /// Panics if the stride is zero (and as [`ElasticDepthwiseConv2d::active_weight`]).
    pub fn extract(
        &self,
        channels: usize,
        kernel: usize,
        stride: usize,
        weight_format: Format,
    ) -> Conv2d {
        assert!(stride > 0, "the stride must be positive");
        let weight = self.active_weight(channels, kernel, weight_format).detach();
        let bias = self
            .active_bias(channels)
            .map(|b| Param::from_tensor(b.detach()));
        let p = kernel / 2;
        Conv2d {
            weight: Param::from_tensor(weight),
            bias,
            stride: [stride; 2],
            kernel_size: [kernel; 2],
            dilation: [1, 1],
            groups: channels,
            padding: PaddingConfig2d::Explicit(p, p, p, p),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layers::test_util::{max_abs_diff, naive_conv2d};
    use crate::quant::test_util::{pseudo_random, values_of};

    #[test]
    fn elastic_forward_equals_extracted_and_naive_conv() {
        let device = Device::flex();
        device.seed(5);
        let conv = ElasticDepthwiseConv2dConfig::new(6, 7)
            .with_bias(true)
            .init(&device);
        let full = values_of(conv.weight.val());
        let bias = values_of(conv.bias.as_ref().unwrap().val());
        for (channels, kernel, stride) in [(6, 7, 1), (3, 5, 1), (4, 3, 2), (1, 1, 1), (5, 7, 2)] {
            let x = pseudo_random([2, channels, 6, 5], 1.0, kernel as u64, &device);
            let y = conv.forward(x.clone(), kernel, stride, Precision::FULL, Phase::Eval);
            let y_static = conv
                .extract(channels, kernel, stride, Format::FP32)
                .forward(x.clone());
            assert!(max_abs_diff(y.clone(), y_static) <= 1e-5);

            let off = (7 - kernel) / 2;
            let mut w = Vec::new();
            for c in 0..channels {
                for a in 0..kernel {
                    for b in 0..kernel {
                        w.push(full[(c * 7 + a + off) * 7 + b + off]);
                    }
                }
            }
            let want = naive_conv2d(
                &values_of(x),
                [2, channels, 6, 5],
                &w,
                [channels, 1, kernel, kernel],
                Some(&bias[..channels]),
                stride,
                channels,
            );
            for (g, w) in values_of(y).iter().zip(&want) {
                assert!(
                    (g - w).abs() <= 1e-5,
                    "{channels} {kernel} {stride}: {g} vs {w}"
                );
            }
        }
    }

    #[test]
    fn quantized_forward_equals_frozen_quantizer_then_extracted() {
        let device = Device::flex();
        let conv = ElasticDepthwiseConv2dConfig::new(4, 5).init(&device);
        let x = pseudo_random([2, 4, 6, 6], 3.0, 4, &device);
        conv.forward(x.clone(), 5, 1, Precision::FULL, Phase::Train);
        for (precision, channels, kernel) in [
            (Precision::new(Format::Int(4), Format::Int(8)), 4, 5),
            (Precision::new(Format::E3M2, Format::E5M2), 3, 3),
            (Precision::new(Format::Int(8), Format::BF16), 2, 1),
        ] {
            let xc = x.clone().slice([0..2, 0..channels, 0..6, 0..6]);
            let y = conv.forward(xc.clone(), kernel, 2, precision, Phase::Eval);
            let frozen = conv.input_quant.frozen(precision.act);
            let y_static = conv
                .extract(channels, kernel, 2, precision.weight)
                .forward(frozen.forward(xc));
            assert!(max_abs_diff(y, y_static) <= 1e-5, "{precision:?}");
        }
    }

    #[test]
    fn gradients_reach_only_the_used_slice() {
        let device = Device::flex().autodiff();
        let conv = ElasticDepthwiseConv2dConfig::new(5, 5).init(&device);
        let x = pseudo_random([1, 2, 4, 4], 1.0, 8, &device);
        let y = conv.forward(
            x,
            3,
            1,
            Precision::new(Format::E4M3, Format::Int(8)),
            Phase::Train,
        );
        let g = values_of(conv.weight.grad(&y.sum().backward()).unwrap());
        for c in 0..5 {
            for a in 0..5 {
                for b in 0..5 {
                    let used = c < 2 && (1..4).contains(&a) && (1..4).contains(&b);
                    let v = g[(c * 5 + a) * 5 + b];
                    assert_eq!(v != 0.0, used, "{c} {a} {b}: {v}");
                }
            }
        }
    }
}
