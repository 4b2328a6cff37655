//! The static network: a member cut out of the supernet (or read back from a file), plain burn
//! modules that run the member's plan through the shared traversal.

use std::convert::Infallible;

use burn::module::{Module, Param};
use burn::nn::Linear;
use burn::tensor::{Device, Tensor};
use spaces::plan::{ConvLayer, LinearLayer, Plan};
use spaces::{Arch, ArchError, Space};

use super::signed::{fc_input_signed, input_signed_in_any};
use super::traversal::{LayerAt, PlanLayers, run_plan};
use crate::layers::{ConvBnParts, StaticConvBn};
use crate::quant::{FrozenActQuant, WeightQuant};

/// A static block.
#[derive(Module, Debug)]
pub struct StaticBlock {
    /// Main-path layers.
    pub convs: Vec<StaticConvBn>,
    /// Projection shortcut.
    pub shortcut: Option<StaticConvBn>,
}

/// A member cut out of the supernet: plain burn modules, no supernet needed to run it.
#[derive(Module, Debug)]
pub struct StaticNet {
    /// Stem.
    pub stem: StaticConvBn,
    /// Blocks, in order.
    pub blocks: Vec<StaticBlock>,
    /// Head conv.
    pub head_conv: Option<StaticConvBn>,
    /// Classifier.
    pub fc: Linear,
    /// Classifier input quantizer.
    pub fc_quant: FrozenActQuant,
    /// The resolved network this model implements.
    #[module(skip)]
    pub plan: Plan,
    /// How the weights were quantized (to read their codes back, and to quantize them again
    /// in [`StaticNet::forward_quantized`]).
    #[module(skip)]
    pub weight_quant: WeightQuant,
}

/// The layer calls of [`StaticNet::forward`]; NHWC on our kernels when `nhwc`.
struct StaticLayers<'a> {
    net: &'a StaticNet,
    nhwc: bool,
}

impl PlanLayers for StaticLayers<'_> {
    fn conv(&self, at: LayerAt, _layer: &ConvLayer, x: Tensor<4>) -> Tensor<4> {
        let module = self.net.layer_module(at);
        if self.nhwc {
            module.forward_nhwc(x)
        } else {
            module.forward(x)
        }
    }

    fn nhwc(&self) -> bool {
        self.nhwc
    }

    fn fc(&self, _layer: &LinearLayer, x: Tensor<2>) -> Tensor<2> {
        self.net.fc.forward(self.net.fc_quant.forward(x))
    }
}

impl StaticNet {
    /// The network of `plan`, its layers made in traversal order: `conv` for the stem, each
    /// block's main-path layers then its shortcut, and the head conv, then `fc` for the
    /// classifier and its input quantizer. Every way of making a static network (extracting a
    /// member, a skeleton to load a record into, reading a weights file) goes through here.
    ///
    /// # Errors
    /// The first error of `conv` or `fc`.
    pub(crate) fn build<E>(
        plan: Plan,
        weight_quant: WeightQuant,
        mut conv: impl FnMut(&Plan, LayerAt, &ConvLayer) -> Result<StaticConvBn, E>,
        fc: impl FnOnce(&Plan) -> Result<(Linear, FrozenActQuant), E>,
    ) -> Result<StaticNet, E> {
        let stem = conv(&plan, LayerAt::Stem, &plan.stem)?;
        let mut blocks = Vec::with_capacity(plan.blocks.len());
        for (i, b) in plan.blocks.iter().enumerate() {
            let mut convs = Vec::with_capacity(b.convs.len());
            for (j, c) in b.convs.iter().enumerate() {
                convs.push(conv(&plan, LayerAt::Main { block: i, conv: j }, c)?);
            }
            let shortcut = match &b.shortcut {
                Some(s) => Some(conv(&plan, LayerAt::Shortcut { block: i }, s)?),
                None => None,
            };
            blocks.push(StaticBlock { convs, shortcut });
        }
        let head_conv = match &plan.head_conv {
            Some(h) => Some(conv(&plan, LayerAt::Head, h)?),
            None => None,
        };
        let (fc, fc_quant) = fc(&plan)?;
        Ok(StaticNet {
            stem,
            blocks,
            head_conv,
            fc,
            fc_quant,
            plan,
            weight_quant,
        })
    }

    /// This network with weight quantization policy `quant` (that of the space it belongs to,
    /// [`WeightQuant::for_space`]), used when its weights are quantized again: by
    /// [`StaticNet::forward_quantized`] and [`StaticNet::to_safetensors`].
    pub fn with_weight_quant(self, quant: WeightQuant) -> StaticNet {
        StaticNet {
            weight_quant: quant,
            ..self
        }
    }

    /// The module at `at` in [`StaticNet::plan`], as a traversal of it asks for it.
    pub(crate) fn layer_module(&self, at: LayerAt) -> &StaticConvBn {
        match at {
            LayerAt::Stem => &self.stem,
            LayerAt::Main { block, conv } => &self.blocks[block].convs[conv],
            LayerAt::Shortcut { block } => self.blocks[block]
                .shortcut
                .as_ref()
                .expect("shortcut extracted"),
            LayerAt::Head => self.head_conv.as_ref().expect("head conv extracted"),
        }
    }

    /// The module at `at` in [`StaticNet::plan`], to change its weights.
    pub(crate) fn layer_module_mut(&mut self, at: LayerAt) -> &mut StaticConvBn {
        match at {
            LayerAt::Stem => &mut self.stem,
            LayerAt::Main { block, conv } => &mut self.blocks[block].convs[conv],
            LayerAt::Shortcut { block } => self.blocks[block]
                .shortcut
                .as_mut()
                .expect("shortcut extracted"),
            LayerAt::Head => self.head_conv.as_mut().expect("head conv extracted"),
        }
    }

    /// The network of member `arch` with zero weights and unit scales: the skeleton to load a
    /// saved record (`model.bpk` of an exported model) into, e.g.
    /// `StaticNet::init(&space, &arch, &device)?.load_file("model.bpk")`. Activation quantizers
    /// are signed where the supernet's are (a property of the space).
    pub fn init(space: &Space, arch: &Arch, device: &Device) -> Result<StaticNet, ArchError> {
        let plan = space.plan(arch)?;
        let fc_signed = fc_input_signed(space, &plan);
        let net = StaticNet::build(
            plan,
            WeightQuant::for_space(space),
            |plan, at, l| {
                let signed = input_signed_in_any(space, plan, at.block(plan), l);
                Ok::<_, Infallible>(StaticConvBn::from_parts(
                    l,
                    ConvBnParts::zeros(l, signed, device),
                ))
            },
            |plan| {
                let (i, o) = (plan.fc.in_features as usize, plan.fc.out_features as usize);
                let fc = Linear {
                    weight: Param::from_tensor(Tensor::zeros([i, o], device)),
                    bias: Some(Param::from_tensor(Tensor::zeros([o], device))),
                };
                let fc_quant =
                    FrozenActQuant::new(plan.fc.formats.activations, 1.0, fc_signed, device);
                Ok((fc, fc_quant))
            },
        );
        let Ok(net) = net;
        Ok(net)
    }

    /// The logits.
    ///
    /// # Shapes
    /// - `x`: `[batch, channels, height, width]`
    /// - output: `[batch, classes]`
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        // Inference runs on our kernels where the supernet does, with the same arithmetic, so
        // that an extracted member computes exactly what the supernet computed for it. With
        // gradients (batch statistics in the batch norms) it takes burn's path.
        let nhwc = self.inference_on_kernels(&x.device());
        run_plan(&self.plan, x, &StaticLayers { net: self, nhwc })
    }

    /// Whether inference on `device` runs on our kernels: where the supernet's does, except
    /// with gradients (the batch norms then use batch statistics, on burn's path).
    fn inference_on_kernels(&self, device: &Device) -> bool {
        crate::kernels::active(device) && !device.is_autodiff()
    }
}

/// The layer calls of [`StaticNet::forward_quantized`].
struct QuantizedStaticLayers<'a> {
    net: &'a StaticNet,
    nhwc: bool,
}

impl PlanLayers for QuantizedStaticLayers<'_> {
    fn conv(&self, at: LayerAt, layer: &ConvLayer, x: Tensor<4>) -> Tensor<4> {
        self.net
            .layer_module(at)
            .forward_quantized(x, layer, self.net.weight_quant, self.nhwc)
    }

    fn nhwc(&self) -> bool {
        self.nhwc
    }

    fn fc(&self, layer: &LinearLayer, x: Tensor<2>) -> Tensor<2> {
        let net = self.net;
        // burn's Linear weight is [in, out]: the output channels are axis 1
        let weight = crate::quant::fake_quantize_weight(
            net.fc.weight.val(),
            layer.formats.weights,
            1,
            net.weight_quant,
        );
        burn::tensor::module::linear(
            net.fc_quant.forward(x),
            weight,
            net.fc.bias.as_ref().map(Param::val),
        )
    }
}

impl StaticNet {
    /// The logits with every conv and classifier weight fake-quantized to its plan format on
    /// the fly (`fake_quantize_weight` with [`StaticNet::weight_quant`], straight-through
    /// gradients): quantization-aware training of a static network. Same plan, layers and
    /// frozen activation quantizers as [`StaticNet::forward`]; batch norms use batch
    /// statistics on an autodiff device. For weights already on their grids (an extracted or
    /// loaded network) and a device without autodiff it equals `forward`.
    ///
    /// # Shapes
    /// - `x`: `[batch, channels, height, width]`
    /// - output: `[batch, classes]`
    pub fn forward_quantized(&self, x: Tensor<4>) -> Tensor<2> {
        let nhwc = self.inference_on_kernels(&x.device());
        run_plan(&self.plan, x, &QuantizedStaticLayers { net: self, nhwc })
    }
}
