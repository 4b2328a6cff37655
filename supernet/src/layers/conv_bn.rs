//! The conv-BN-activation pair of the supernet ([`ConvBn`]: a dense or depthwise elastic
//! convolution and an elastic batch norm) and its static twin ([`StaticConvBn`]: burn's
//! `Conv2d` and `BatchNorm` with a frozen input quantizer), which `extract` fills.

use burn::module::{Module, Param, RunningState};
use burn::nn::conv::Conv2d;
use burn::nn::{BatchNorm, PaddingConfig2d};
use burn::tensor::activation::relu;
use burn::tensor::{Device, Tensor};
use spaces::plan::{Act, ConvLayer};

use super::elastic_conv::conv_options;
use super::{
    ConvChoice, ElasticBatchNorm, ElasticBatchNormConfig, ElasticConv2d, ElasticConv2dConfig,
    ElasticDepthwiseConv2d, ElasticDepthwiseConv2dConfig,
};
use crate::Phase;
use crate::kernels::norm::NormAct;
use crate::quant::{ActQuantizer, ActQuantizerConfig, FrozenActQuant, Precision, WeightQuant};

/// A dense or depthwise elastic convolution.
#[derive(Module, Debug)]
pub enum SuperConv {
    /// Dense (groups = 1).
    Dense(ElasticConv2d),
    /// Depthwise (groups = channels).
    Depthwise(ElasticDepthwiseConv2d),
}

/// An elastic convolution followed by an elastic batch norm.
#[derive(Module, Debug)]
pub struct ConvBn {
    /// The convolution.
    pub conv: SuperConv,
    /// The batch norm.
    pub bn: ElasticBatchNorm,
}

impl ConvBn {
    /// A new layer at the size of `layer`, its input quantized as `quant` says (signed where
    /// the layer's input can be negative), its weights as `weight_quant` says.
    pub(crate) fn new(
        layer: &ConvLayer,
        quant: ActQuantizerConfig,
        weight_quant: WeightQuant,
        device: &Device,
    ) -> ConvBn {
        let conv = if layer.groups > 1 {
            SuperConv::Depthwise(
                ElasticDepthwiseConv2dConfig::new(
                    layer.out_channels as usize,
                    layer.kernel as usize,
                )
                .with_input_quant(quant)
                .with_weight_quant(weight_quant)
                .init(device),
            )
        } else {
            SuperConv::Dense(
                ElasticConv2dConfig::new(
                    layer.in_channels as usize,
                    layer.out_channels as usize,
                    layer.kernel as usize,
                )
                .with_input_quant(quant)
                .with_weight_quant(weight_quant)
                .init(device),
            )
        };
        ConvBn {
            conv,
            bn: ElasticBatchNormConfig::new(layer.out_channels as usize).init(device),
        }
    }

    /// Conv, batch norm and activation of `layer`.
    ///
    /// # Shapes
    /// - `x`: `[batch, layer.in_channels, h, w]`
    /// - output: `[batch, layer.out_channels, layer.out_size.0, layer.out_size.1]`
    pub fn forward(&self, x: Tensor<4>, layer: &ConvLayer, phase: Phase) -> Tensor<4> {
        let y = self.conv_forward(x, layer, phase, false);
        activate(self.bn.forward(y, phase), layer.act)
    }

    /// [`ConvBn::forward`] on NHWC activations, on our kernels (the device must be `flex`):
    /// the activation is fused into the batch norm.
    ///
    /// # Shapes
    /// - `x`: `[batch, h, w, layer.in_channels]`
    /// - output: `[batch, layer.out_size.0, layer.out_size.1, layer.out_channels]`
    pub fn forward_nhwc(&self, x: Tensor<4>, layer: &ConvLayer, phase: Phase) -> Tensor<4> {
        let y = self.conv_forward(x, layer, phase, true);
        self.bn.forward_nhwc(y, phase, norm_act(layer.act))
    }

    /// The convolution of `layer`, NCHW on burn's ops or NHWC on our kernels.
    fn conv_forward(&self, x: Tensor<4>, layer: &ConvLayer, phase: Phase, nhwc: bool) -> Tensor<4> {
        let precision = Precision::new(layer.formats.weights, layer.formats.activations);
        let (kernel, stride) = (layer.kernel as usize, layer.stride as usize);
        match &self.conv {
            SuperConv::Dense(c) => {
                let choice = ConvChoice::new(layer.out_channels as usize, kernel, stride);
                if nhwc {
                    c.forward_nhwc(x, choice, precision, phase)
                } else {
                    c.forward(x, choice, precision, phase)
                }
            }
            SuperConv::Depthwise(c) if nhwc => c.forward_nhwc(x, kernel, stride, precision, phase),
            SuperConv::Depthwise(c) => c.forward(x, kernel, stride, precision, phase),
        }
    }

    /// The static twin of this layer as `layer` uses it.
    pub fn extract(&self, layer: &ConvLayer) -> StaticConvBn {
        let (quant, conv) = match &self.conv {
            SuperConv::Dense(c) => (
                c.input_quant.frozen(layer.formats.activations),
                c.extract(
                    layer.in_channels as usize,
                    ConvChoice::new(
                        layer.out_channels as usize,
                        layer.kernel as usize,
                        layer.stride as usize,
                    ),
                    layer.formats.weights,
                ),
            ),
            SuperConv::Depthwise(c) => (
                c.input_quant.frozen(layer.formats.activations),
                c.extract(
                    layer.in_channels as usize,
                    layer.kernel as usize,
                    layer.stride as usize,
                    layer.formats.weights,
                ),
            ),
        };
        StaticConvBn {
            quant,
            conv,
            bn: self.bn.extract(layer.out_channels as usize),
            act: layer.act,
        }
    }

    /// Resets the batch norm's running statistics and the input quantizer's range.
    pub(crate) fn reset_running_stats(&self) {
        self.bn.reset_running_stats();
        match &self.conv {
            SuperConv::Dense(c) => c.input_quant.reset_range(),
            SuperConv::Depthwise(c) => c.input_quant.reset_range(),
        }
    }

    /// This layer with its input quantizer passed through `f`.
    pub(crate) fn map_act_quantizer(
        self,
        f: &mut impl FnMut(ActQuantizer) -> ActQuantizer,
    ) -> Self {
        let ConvBn { conv, bn } = self;
        let conv = match conv {
            SuperConv::Dense(mut c) => {
                c.input_quant = f(c.input_quant);
                SuperConv::Dense(c)
            }
            SuperConv::Depthwise(mut c) => {
                c.input_quant = f(c.input_quant);
                SuperConv::Depthwise(c)
            }
        };
        ConvBn { conv, bn }
    }

    /// This layer with the batch norm's scale zeroed: its block starts as the identity.
    pub(crate) fn zero_gamma(self) -> Self {
        let ConvBn { conv, mut bn } = self;
        // a fresh parameter (not `Param::map`, whose result a loaded record does not overwrite)
        bn.gamma = burn::module::Param::from_tensor(bn.gamma.val().zeros_like().detach());
        ConvBn { conv, bn }
    }
}

/// The activation `act` on burn's ops.
pub(crate) fn activate(x: Tensor<4>, act: Act) -> Tensor<4> {
    match act {
        Act::None => x,
        Act::Relu => relu(x),
        Act::Relu6 => x.clamp(0.0, 6.0),
    }
}

/// The activation `act` as our kernels fuse it.
pub(crate) fn norm_act(act: Act) -> NormAct {
    match act {
        Act::None => NormAct::None,
        Act::Relu => NormAct::Relu,
        Act::Relu6 => NormAct::Relu6,
    }
}

/// A static conv-BN-activation with a frozen input quantizer.
#[derive(Module, Debug)]
pub struct StaticConvBn {
    /// Input quantizer.
    pub quant: FrozenActQuant,
    /// Convolution with the sliced, quantized weights.
    pub conv: Conv2d,
    /// Batch norm with the running statistics.
    pub bn: BatchNorm,
    /// Activation after the batch norm.
    #[module(skip)]
    pub act: Act,
}

/// The tensors of a [`StaticConvBn`].
#[derive(Debug)]
pub struct ConvBnParts {
    /// Weight, `[out, in / groups, k, k]`.
    pub weight: Tensor<4>,
    /// Bias, `[out]`.
    pub bias: Option<Tensor<1>>,
    /// Batch norm scale, `[out]`.
    pub gamma: Tensor<1>,
    /// Batch norm shift, `[out]`.
    pub beta: Tensor<1>,
    /// Running mean, `[out]`.
    pub running_mean: Tensor<1>,
    /// Running variance, `[out]`.
    pub running_var: Tensor<1>,
    /// Batch norm epsilon.
    pub epsilon: f64,
    /// Batch norm momentum.
    pub momentum: f64,
    /// Input quantizer.
    pub quant: FrozenActQuant,
}

impl ConvBnParts {
    /// Zeros (unit variance) of the shapes of `layer`, scale 1: a skeleton to load a record
    /// into.
    pub fn zeros(layer: &ConvLayer, signed: bool, device: &Device) -> ConvBnParts {
        let (cin, cout, k, g) = (
            layer.in_channels as usize,
            layer.out_channels as usize,
            layer.kernel as usize,
            layer.groups as usize,
        );
        let bn = ElasticBatchNormConfig::new(cout);
        ConvBnParts {
            weight: Tensor::zeros([cout, cin / g, k, k], device),
            bias: None,
            gamma: Tensor::ones([cout], device),
            beta: Tensor::zeros([cout], device),
            running_mean: Tensor::zeros([cout], device),
            running_var: Tensor::ones([cout], device),
            // not in records: the supernet's batch-norm settings
            epsilon: bn.epsilon,
            momentum: bn.momentum,
            quant: FrozenActQuant::new(layer.formats.activations, 1.0, signed, device),
        }
    }
}

impl StaticConvBn {
    /// The layer `layer` (stride, groups, padding `kernel / 2`, activation) with the given
    /// tensors.
    pub fn from_parts(layer: &ConvLayer, p: ConvBnParts) -> StaticConvBn {
        let k = layer.kernel as usize;
        let pad = k / 2;
        StaticConvBn {
            quant: p.quant,
            conv: Conv2d {
                weight: Param::from_tensor(p.weight),
                bias: p.bias.map(Param::from_tensor),
                stride: [layer.stride as usize; 2],
                kernel_size: [k; 2],
                dilation: [1, 1],
                groups: layer.groups as usize,
                padding: PaddingConfig2d::Explicit(pad, pad, pad, pad),
            },
            bn: BatchNorm {
                gamma: Param::from_tensor(p.gamma),
                beta: Param::from_tensor(p.beta),
                training: Param::from_bool(true),
                running_mean: RunningState::new(p.running_mean),
                running_var: RunningState::new(p.running_var),
                momentum: p.momentum,
                epsilon: p.epsilon,
            },
            act: layer.act,
        }
    }

    /// # Shapes
    /// - `x`: `[batch, in_channels, h, w]`
    /// - output: `[batch, out_channels, h / stride, w / stride]`
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        activate(
            self.bn.forward(self.conv.forward(self.quant.forward(x))),
            self.act,
        )
    }

    /// [`StaticConvBn::forward`] in inference on NHWC activations, on our kernels (the device
    /// must be `flex`), with the arithmetic of [`ConvBn::forward_nhwc`] in [`Phase::Eval`].
    ///
    /// # Shapes
    /// - `x`: `[batch, h, w, in_channels]`
    /// - output: `[batch, h / stride, w / stride, out_channels]`
    pub fn forward_nhwc(&self, x: Tensor<4>) -> Tensor<4> {
        self.forward_nhwc_with(x, self.conv.weight.val())
    }

    /// [`StaticConvBn::forward_nhwc`] with `weight` in place of the stored weight.
    fn forward_nhwc_with(&self, x: Tensor<4>, weight: Tensor<4>) -> Tensor<4> {
        let x = self.quant.forward(x);
        let y = crate::kernels::ext::conv2d(
            x,
            weight,
            self.conv.bias.as_ref().map(Param::val),
            self.conv.stride[0],
            self.conv.groups,
        );
        let device = y.device();
        let (scale, shift) = crate::layers::elastic_bn::inference_affine(
            self.bn.gamma.val(),
            self.bn.beta.val(),
            self.bn.running_mean.value_sync().to_device(&device),
            self.bn.running_var.value_sync().to_device(&device),
            self.bn.epsilon,
        );
        crate::kernels::ext::channel_affine(y, scale, shift, norm_act(self.act))
    }
}

impl StaticConvBn {
    /// [`StaticConvBn::forward`] with the weight fake-quantized to `layer`'s weight format on
    /// the fly (per output channel, axis 0; straight-through gradient): input quantizer, the
    /// convolution of `layer` (stride, padding `kernel / 2`, groups, as the elastic layers
    /// run it), batch norm (batch statistics on an autodiff device, running statistics
    /// otherwise), activation.
    ///
    /// # Shapes
    /// - `x`: `[batch, layer.in_channels, h, w]`
    /// - output: `[batch, layer.out_channels, layer.out_size.0, layer.out_size.1]`
    ///
    /// With `nhwc` (inference only), `x` and the output are NHWC and the layer runs on our
    /// kernels as [`StaticConvBn::forward_nhwc`] does.
    pub fn forward_quantized(
        &self,
        x: Tensor<4>,
        layer: &ConvLayer,
        quant: WeightQuant,
        nhwc: bool,
    ) -> Tensor<4> {
        let options = conv_options(
            ConvChoice::new(
                layer.out_channels as usize,
                layer.kernel as usize,
                layer.stride as usize,
            ),
            layer.groups as usize,
        );
        let weight = crate::quant::fake_quantize_weight(
            self.conv.weight.val(),
            layer.formats.weights,
            0,
            quant,
        );
        if nhwc {
            return self.forward_nhwc_with(x, weight);
        }
        let y = burn::tensor::module::conv2d(
            self.quant.forward(x),
            weight,
            self.conv.bias.as_ref().map(Param::val),
            options,
        );
        activate(self.bn.forward(y), self.act)
    }
}
