//! The supernet: every layer of a space at its largest size, run for any member with
//! `forward(x, &arch, phase)`, and cut out as a static network with `extract(&arch)`.
//!
//! Both networks follow the [`Plan`] that `spaces` resolves for an arch, through one traversal
//! ([`run_plan`]), so they cannot disagree on the wiring (pooling, strides, residuals,
//! activations); they differ only in the layers they call.

use burn::module::{Module, Param, RunningState};
use burn::nn::conv::Conv2d;
use burn::nn::{BatchNorm, Linear, PaddingConfig2d};
use burn::tensor::activation::relu;
use burn::tensor::module::{adaptive_avg_pool2d, avg_pool2d, max_pool2d};
use burn::tensor::ops::{AvgPoolOptions, MaxPoolOptions};
use burn::tensor::{Device, Tensor};
use spaces::plan::{Act, BlockPlan, ConvLayer, LinearLayer, Plan, may_have_shortcut};
use spaces::{Arch, ArchError, BlockType, PoolOp, Space};

use crate::Phase;
use crate::kernels::norm::NormAct;
use crate::layers::elastic_conv::conv_options;
use crate::layers::{
    ConvChoice, ElasticBatchNorm, ElasticBatchNormConfig, ElasticConv2d, ElasticConv2dConfig,
    ElasticDepthwiseConv2d, ElasticDepthwiseConv2dConfig, ElasticLinear, ElasticLinearConfig,
};
use crate::quant::{ActQuantizerConfig, FloatScaling, FrozenActQuant, Precision};

/// Options of a new supernet.
#[derive(Clone, Debug)]
pub struct SupernetConfig {
    /// Initialize the last batch norm's scale of every residual block to zero (BigNAS), so that
    /// each block starts as the identity. Off by default: it pays off in long runs, but slows
    /// short ones (on the synthetic task of `tests/train.rs`, 60 steps reach 70% with it and
    /// 99% without).
    pub zero_init_residual: bool,
    /// Configuration of every activation quantizer (its `signed` flag is set per layer).
    pub act_quant: ActQuantizerConfig,
}

impl Default for SupernetConfig {
    fn default() -> Self {
        SupernetConfig {
            zero_init_residual: false,
            act_quant: ActQuantizerConfig::new(),
        }
    }
}

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
    fn new(layer: &ConvLayer, signed: bool, cfg: &SupernetConfig, device: &Device) -> ConvBn {
        let quant = cfg.act_quant.clone().with_signed(signed);
        let conv = if layer.groups > 1 {
            SuperConv::Depthwise(
                ElasticDepthwiseConv2dConfig::new(
                    layer.out_channels as usize,
                    layer.kernel as usize,
                )
                .with_input_quant(quant)
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

    fn reset_running_stats(&self) {
        self.bn.reset_running_stats();
        match &self.conv {
            SuperConv::Dense(c) => c.input_quant.reset_range(),
            SuperConv::Depthwise(c) => c.input_quant.reset_range(),
        }
    }

    fn zero_gamma(self) -> Self {
        let ConvBn { conv, mut bn } = self;
        // a fresh parameter (not `Param::map`, whose result a loaded record does not overwrite)
        bn.gamma = burn::module::Param::from_tensor(bn.gamma.val().zeros_like().detach());
        ConvBn { conv, bn }
    }
}

/// The layers of one block at its largest size.
#[derive(Module, Debug)]
pub struct SuperBlock {
    /// Main-path layers, in order.
    pub layers: Vec<ConvBn>,
    /// Their short names (`conv1`, `expand`, `dw`, ...).
    pub names: Vec<String>,
    /// Projection shortcut, when some member needs one.
    pub shortcut: Option<ConvBn>,
}

impl SuperBlock {
    fn layer(&self, name: &str) -> &ConvBn {
        let short = name.rsplit('.').next().unwrap_or(name);
        let i = self
            .names
            .iter()
            .position(|n| n == short)
            .unwrap_or_else(|| panic!("the supernet has no layer `{name}`"));
        &self.layers[i]
    }
}

/// The weight-sharing supernet of a space.
#[derive(Module, Debug)]
pub struct Supernet {
    /// Stem conv-BN.
    pub stem: ConvBn,
    /// Every block at the largest depths, by global position.
    pub blocks: Vec<SuperBlock>,
    /// Head conv-BN.
    pub head_conv: Option<ConvBn>,
    /// Classifier.
    pub fc: ElasticLinear,
    /// The space this supernet belongs to.
    #[module(skip)]
    pub space: Space,
}

/// Whether the input of `layer` (a layer of the largest plan) can be negative in some member:
/// then its activation quantizer is signed.
fn input_signed_in_any(
    space: &Space,
    plan: &Plan,
    block: Option<&BlockPlan>,
    layer: &ConvLayer,
) -> bool {
    // a block's output is signed only for inverted residuals (no activation after the add)
    let out_signed = |s: usize| space.stages[s].block == BlockType::InvertedResidual;
    let block_input_signed = |b: &BlockPlan| {
        if b.index > 0 {
            out_signed(b.stage)
        } else if b.stage > 0 {
            out_signed(b.stage - 1)
        } else {
            false
        }
    };
    match block {
        None if layer.name == spaces::plan::STEM => true,
        None => out_signed(space.stages.len() - 1), // head conv
        Some(b) => {
            let first = b.convs.first().map(|c| c.name.as_str()) == Some(layer.name.as_str());
            let short = layer.name.rsplit('.').next().unwrap_or("");
            let expand_may_vanish = space.stages[b.stage].expands.contains(&1.0);
            if first || short == "shortcut" || (short == "dw" && expand_may_vanish) {
                block_input_signed(b)
            } else {
                let _ = plan;
                false
            }
        }
    }
}

/// Whether the classifier's input can be negative: only after an inverted-residual stage with
/// no head conv.
fn fc_input_signed(space: &Space, plan: &Plan) -> bool {
    plan.head_conv.is_none()
        && space
            .stages
            .last()
            .is_some_and(|s| s.block == BlockType::InvertedResidual)
}

impl Supernet {
    /// A new supernet for `space` with default options.
    pub fn new(space: &Space, device: &Device) -> Supernet {
        Supernet::with_config(space, &SupernetConfig::default(), device)
    }

    /// A new supernet for `space`.
    pub fn with_config(space: &Space, cfg: &SupernetConfig, device: &Device) -> Supernet {
        let largest = space.largest();
        let plan = space
            .plan(&largest)
            .expect("the largest member of a valid space is valid");
        let stem = ConvBn::new(&plan.stem, true, cfg, device);
        let mut blocks = Vec::new();
        for b in &plan.blocks {
            let mut layers = Vec::new();
            let mut names = Vec::new();
            for c in &b.convs {
                let mut layer = ConvBn::new(
                    c,
                    input_signed_in_any(space, &plan, Some(b), c),
                    cfg,
                    device,
                );
                if cfg.zero_init_residual && b.residual && Some(c) == b.convs.last() {
                    layer = layer.zero_gamma();
                }
                layers.push(layer);
                names.push(c.name.rsplit('.').next().unwrap_or("").to_string());
            }
            let first = &b.convs[0];
            let shortcut = may_have_shortcut(space, b.stage, b.index).then(|| {
                let in_channels = match &b.shortcut {
                    Some(s) => s.in_channels,
                    None => first.in_channels,
                };
                let layer = ConvLayer {
                    name: format!("s{}.b{}.shortcut", b.stage, b.index),
                    in_channels,
                    out_channels: b
                        .convs
                        .last()
                        .map_or(first.out_channels, |c| c.out_channels),
                    kernel: 1,
                    stride: 1,
                    groups: 1,
                    act: Act::None,
                    ..first.clone()
                };
                let signed = input_signed_in_any(space, &plan, Some(b), &layer);
                ConvBn::new(&layer, signed, cfg, device)
            });
            blocks.push(SuperBlock {
                layers,
                names,
                shortcut,
            });
        }
        let head_conv = plan
            .head_conv
            .as_ref()
            .map(|h| ConvBn::new(h, input_signed_in_any(space, &plan, None, h), cfg, device));
        let fc_signed = fc_input_signed(space, &plan);
        let fc =
            ElasticLinearConfig::new(plan.fc.in_features as usize, plan.fc.out_features as usize)
                .with_input_quant(cfg.act_quant.clone().with_signed(fc_signed))
                .init(device);
        Supernet {
            stem,
            blocks,
            head_conv,
            fc,
            space: space.clone(),
        }
    }

    /// The logits of member `arch` (validated first).
    ///
    /// # Shapes
    /// - `x`: `[batch, channels, height, width]` of the space's input
    /// - output: `[batch, classes]`
    pub fn forward(&self, x: Tensor<4>, arch: &Arch, phase: Phase) -> Result<Tensor<2>, ArchError> {
        let plan = self.space.plan(arch)?;
        Ok(self.forward_plan(x, &plan, phase))
    }

    /// The logits of the member whose plan is `plan` (from [`Space::plan`] of this supernet's
    /// space).
    ///
    /// # Shapes
    /// - `x`: `[batch, channels, height, width]`
    /// - output: `[batch, classes]`
    pub fn forward_plan(&self, x: Tensor<4>, plan: &Plan, phase: Phase) -> Tensor<2> {
        let x_device = x.device();
        run_plan(
            plan,
            x,
            &SuperLayers {
                net: self,
                phase,
                dropout: 0.0,
                nhwc: crate::kernels::active(&x_device),
            },
        )
    }

    /// [`Supernet::forward_plan`] with dropout of probability `p` on the pooled features before
    /// the classifier (BigNAS regularizes only the largest member this way).
    ///
    /// # Shapes
    /// - `x`: `[batch, channels, height, width]`
    /// - output: `[batch, classes]`
    pub fn forward_plan_dropout(
        &self,
        x: Tensor<4>,
        plan: &Plan,
        phase: Phase,
        p: f64,
    ) -> Tensor<2> {
        let x_device = x.device();
        run_plan(
            plan,
            x,
            &SuperLayers {
                net: self,
                phase,
                dropout: p,
                nhwc: crate::kernels::active(&x_device),
            },
        )
    }

    /// The static network of member `arch`: sliced weights (fake-quantized to the arch's
    /// formats), batch norms with their running statistics, frozen activation quantizers.
    pub fn extract(&self, arch: &Arch) -> Result<StaticNet, ArchError> {
        let plan = self.space.plan(arch)?;
        let stem = self.stem.extract(&plan.stem);
        let blocks = plan
            .blocks
            .iter()
            .map(|b| {
                let sb = &self.blocks[b.position as usize];
                StaticBlock {
                    convs: b
                        .convs
                        .iter()
                        .map(|c| sb.layer(&c.name).extract(c))
                        .collect(),
                    shortcut: b
                        .shortcut
                        .as_ref()
                        .map(|s| sb.shortcut.as_ref().expect("shortcut allocated").extract(s)),
                }
            })
            .collect();
        let head_conv = plan.head_conv.as_ref().map(|h| {
            self.head_conv
                .as_ref()
                .expect("head conv allocated")
                .extract(h)
        });
        let fc = self.fc.extract(
            plan.fc.in_features as usize,
            plan.fc.out_features as usize,
            plan.fc.formats.weights,
        );
        let fc_quant = self.fc.input_quant.frozen(plan.fc.formats.activations);
        Ok(StaticNet {
            stem,
            blocks,
            head_conv,
            fc,
            fc_quant,
            plan,
            weight_scaling: self.fc.weight_float_scaling,
        })
    }

    /// BN recalibration of member `arch`: resets every running statistic and activation range,
    /// then runs the batches through the member with [`Phase::Recalibrate`], so that the
    /// running statistics become the average over the batches of this member's own batch
    /// statistics. Returns the number of batches used. Run it on a network without autodiff
    /// (`net.valid()`), and evaluate that same copy.
    ///
    /// # Shapes
    /// - each batch: `[batch, channels, height, width]`
    pub fn recalibrate(
        &self,
        arch: &Arch,
        batches: impl IntoIterator<Item = Tensor<4>>,
    ) -> Result<usize, ArchError> {
        let plan = self.space.plan(arch)?;
        Ok(self.recalibrate_plan(&plan, batches))
    }

    /// [`Supernet::recalibrate`] for a resolved plan.
    pub fn recalibrate_plan(
        &self,
        plan: &Plan,
        batches: impl IntoIterator<Item = Tensor<4>>,
    ) -> usize {
        self.reset_running_stats();
        let mut n = 0;
        for x in batches {
            let _ = self.forward_plan(x, plan, Phase::Recalibrate(n));
            n += 1;
        }
        n
    }

    /// Resets every batch-norm statistic and activation range (before recalibrating a member).
    pub fn reset_running_stats(&self) {
        self.stem.reset_running_stats();
        for b in &self.blocks {
            b.layers.iter().for_each(ConvBn::reset_running_stats);
            if let Some(s) = &b.shortcut {
                s.reset_running_stats();
            }
        }
        if let Some(h) = &self.head_conv {
            h.reset_running_stats();
        }
        self.fc.input_quant.reset_range();
    }
}

/// The layer calls of a traversal.
pub trait PlanLayers {
    /// A conv-BN-activation of block `block` (global position; `None` for the stem and head).
    fn conv(&self, block: Option<u32>, layer: &ConvLayer, x: Tensor<4>) -> Tensor<4>;
    /// The classifier on pooled features.
    fn fc(&self, layer: &LinearLayer, x: Tensor<2>) -> Tensor<2>;
    /// Whether [`PlanLayers::conv`] takes and returns NHWC activations (`[batch, height,
    /// width, channels]`) instead of NCHW; [`run_plan`] converts its input once.
    fn nhwc(&self) -> bool {
        false
    }
}

struct SuperLayers<'a> {
    net: &'a Supernet,
    phase: Phase,
    dropout: f64,
    /// Activations NHWC on our kernels (see [`crate::kernels::active`]).
    nhwc: bool,
}

impl PlanLayers for SuperLayers<'_> {
    fn conv(&self, block: Option<u32>, layer: &ConvLayer, x: Tensor<4>) -> Tensor<4> {
        let module = match block {
            None if layer.name == spaces::plan::STEM => &self.net.stem,
            None => self.net.head_conv.as_ref().expect("head conv allocated"),
            Some(p) => {
                let b = &self.net.blocks[p as usize];
                if layer.name.ends_with(".shortcut") {
                    b.shortcut.as_ref().expect("shortcut allocated")
                } else {
                    b.layer(&layer.name)
                }
            }
        };
        if self.nhwc {
            module.forward_nhwc(x, layer, self.phase)
        } else {
            module.forward(x, layer, self.phase)
        }
    }

    fn nhwc(&self) -> bool {
        self.nhwc
    }

    fn fc(&self, layer: &LinearLayer, x: Tensor<2>) -> Tensor<2> {
        let precision = Precision::new(layer.formats.weights, layer.formats.activations);
        let x = crate::train::dropout(x, self.dropout);
        self.net
            .fc
            .forward(x, layer.out_features as usize, precision, self.phase)
    }
}

fn activate(x: Tensor<4>, act: Act) -> Tensor<4> {
    match act {
        Act::None => x,
        Act::Relu => relu(x),
        Act::Relu6 => x.clamp(0.0, 6.0),
    }
}

/// Runs `plan` on `x`, calling `layers` for every conv and the classifier.
///
/// # Shapes
/// - `x`: `[batch, channels, height, width]`
/// - output: `[batch, classes]`
pub fn run_plan(plan: &Plan, x: Tensor<4>, layers: &impl PlanLayers) -> Tensor<2> {
    let nhwc = layers.nhwc();
    let x = if nhwc { x.permute([0, 2, 3, 1]) } else { x };
    let mut x = layers.conv(None, &plan.stem, x);
    if let Some(p) = plan.stem_pool {
        let (k, s, pad) = (
            p.kernel as usize,
            p.stride as usize,
            (p.kernel / 2) as usize,
        );
        x = in_nchw(nhwc, x, |x| {
            if p.max {
                max_pool2d(
                    x,
                    MaxPoolOptions::new([k, k])
                        .with_stride([s, s])
                        .with_padding([pad, pad]),
                )
            } else {
                avg_pool2d(
                    x,
                    AvgPoolOptions::new([k, k])
                        .with_stride([s, s])
                        .with_padding([pad, pad]),
                )
            }
        });
    }
    for b in &plan.blocks {
        x = match b.pool_before {
            Some(PoolOp::MaxPool) => in_nchw(nhwc, x, |x| {
                max_pool2d(x, MaxPoolOptions::new([2, 2]).with_stride([2, 2]))
            }),
            Some(PoolOp::AvgPool) => in_nchw(nhwc, x, |x| {
                avg_pool2d(x, AvgPoolOptions::new([2, 2]).with_stride([2, 2]))
            }),
            _ => x,
        };
        let input = x.clone();
        let mut y = x;
        for c in &b.convs {
            y = layers.conv(Some(b.position), c, y);
        }
        x = if b.residual {
            let skip = match &b.shortcut {
                Some(s) => layers.conv(Some(b.position), s, input),
                None => input,
            };
            if nhwc {
                crate::kernels::ext::add_act(y, skip, norm_act(b.post_act))
            } else {
                activate(y + skip, b.post_act)
            }
        } else {
            activate(y, b.post_act)
        };
    }
    if let Some(h) = &plan.head_conv {
        x = layers.conv(None, h, x);
    }
    let pooled = if nhwc {
        let [n, h, w, c] = x.dims();
        x.reshape([n, h * w, c]).mean_dim(1).reshape([n, c])
    } else {
        let [n, c, _, _] = x.dims();
        adaptive_avg_pool2d(x, [1, 1]).reshape([n, c])
    };
    layers.fc(&plan.fc, pooled)
}

/// Applies an NCHW-only op (pooling) to `x`, which is NHWC when `nhwc`.
fn in_nchw(nhwc: bool, x: Tensor<4>, op: impl FnOnce(Tensor<4>) -> Tensor<4>) -> Tensor<4> {
    if nhwc {
        op(x.permute([0, 3, 1, 2])).permute([0, 2, 3, 1])
    } else {
        op(x)
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

fn norm_act(act: Act) -> NormAct {
    match act {
        Act::None => NormAct::None,
        Act::Relu => NormAct::Relu,
        Act::Relu6 => NormAct::Relu6,
    }
}

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
    /// How floating-point weight formats were scaled (to read the weights' codes back).
    #[module(skip)]
    pub weight_scaling: FloatScaling,
}

/// The layer calls of [`StaticNet::forward`]; NHWC on our kernels when `nhwc`.
struct StaticLayers<'a> {
    net: &'a StaticNet,
    nhwc: bool,
}

impl PlanLayers for StaticLayers<'_> {
    fn conv(&self, block: Option<u32>, layer: &ConvLayer, x: Tensor<4>) -> Tensor<4> {
        let module = self.net.layer_module(block, layer);
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

/// Renumbers the parameter ids of a static network in traversal order, so that its record
/// (whose bytes include the ids, random by default) is the same for the same weights.
struct StableIds(u64);

impl StableIds {
    fn id(&mut self) -> burn::module::ParamId {
        self.0 += 1;
        burn::module::ParamId::from(self.0)
    }

    fn param<const D: usize>(&mut self, p: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let t = p.val();
        let (device, shape) = (t.device(), t.shape());
        Param::uninitialized(
            self.id(),
            move |d: &Device, grad: bool| t.to_device(d).set_require_grad(grad),
            device,
            true,
            shape,
        )
    }

    fn state<const D: usize>(&mut self, s: RunningState<Tensor<D>>) -> RunningState<Tensor<D>> {
        RunningState::with_id(self.id(), s.value())
    }

    fn conv_bn(&mut self, l: StaticConvBn) -> StaticConvBn {
        let StaticConvBn {
            quant,
            mut conv,
            mut bn,
            act,
        } = l;
        conv.weight = self.param(conv.weight);
        conv.bias = conv.bias.map(|b| self.param(b));
        bn.gamma = self.param(bn.gamma);
        bn.beta = self.param(bn.beta);
        bn.running_mean = self.state(bn.running_mean);
        bn.running_var = self.state(bn.running_var);
        let quant = FrozenActQuant {
            scale: self.state(quant.scale),
            ..quant
        };
        StaticConvBn {
            quant,
            conv,
            bn,
            act,
        }
    }
}

impl StaticNet {
    /// This network with its parameter ids numbered in traversal order: its record is then
    /// reproducible (the same weights give the same bytes). For writing records; train the
    /// network as it was.
    pub fn with_stable_ids(self) -> StaticNet {
        let mut ids = StableIds(0);
        let StaticNet {
            stem,
            blocks,
            head_conv,
            mut fc,
            fc_quant,
            plan,
            weight_scaling,
        } = self;
        let stem = ids.conv_bn(stem);
        let blocks = blocks
            .into_iter()
            .map(|b| StaticBlock {
                convs: b.convs.into_iter().map(|c| ids.conv_bn(c)).collect(),
                shortcut: b.shortcut.map(|s| ids.conv_bn(s)),
            })
            .collect();
        let head_conv = head_conv.map(|h| ids.conv_bn(h));
        fc.weight = ids.param(fc.weight);
        fc.bias = fc.bias.map(|b| ids.param(b));
        let fc_quant = FrozenActQuant {
            scale: ids.state(fc_quant.scale),
            ..fc_quant
        };
        StaticNet {
            stem,
            blocks,
            head_conv,
            fc,
            fc_quant,
            plan,
            weight_scaling,
        }
    }

    /// The module of `layer` of block `block` (global position; `None` for the stem and
    /// head), as a traversal of [`StaticNet::plan`] asks for it.
    fn layer_module(&self, block: Option<u32>, layer: &ConvLayer) -> &StaticConvBn {
        match block {
            None if layer.name == spaces::plan::STEM => &self.stem,
            None => self.head_conv.as_ref().expect("head conv extracted"),
            Some(p) => {
                let i = self
                    .plan
                    .blocks
                    .iter()
                    .position(|b| b.position == p)
                    .expect("block extracted");
                let (bp, sb) = (&self.plan.blocks[i], &self.blocks[i]);
                if layer.name.ends_with(".shortcut") {
                    sb.shortcut.as_ref().expect("shortcut extracted")
                } else {
                    let j = bp
                        .convs
                        .iter()
                        .position(|c| c.name == layer.name)
                        .expect("layer extracted");
                    &sb.convs[j]
                }
            }
        }
    }

    /// The network of member `arch` with zero weights and unit scales: the skeleton to load a
    /// saved record (`model.bpk` of an exported model) into, e.g.
    /// `StaticNet::init(&space, &arch, &device)?.load_file("model.bpk")`. Activation quantizers
    /// are signed where the supernet's are (a property of the space).
    pub fn init(space: &Space, arch: &Arch, device: &Device) -> Result<StaticNet, ArchError> {
        let plan = space.plan(arch)?;
        let conv = |b: Option<&BlockPlan>, l: &ConvLayer| {
            let signed = input_signed_in_any(space, &plan, b, l);
            StaticConvBn::from_parts(l, ConvBnParts::zeros(l, signed, device))
        };
        let stem = conv(None, &plan.stem);
        let blocks = plan
            .blocks
            .iter()
            .map(|b| StaticBlock {
                convs: b.convs.iter().map(|c| conv(Some(b), c)).collect(),
                shortcut: b.shortcut.as_ref().map(|s| conv(Some(b), s)),
            })
            .collect();
        let head_conv = plan.head_conv.as_ref().map(|h| conv(None, h));
        let (i, o) = (plan.fc.in_features as usize, plan.fc.out_features as usize);
        let fc = Linear {
            weight: Param::from_tensor(Tensor::zeros([i, o], device)),
            bias: Some(Param::from_tensor(Tensor::zeros([o], device))),
        };
        let fc_quant = FrozenActQuant::new(
            plan.fc.formats.activations,
            1.0,
            fc_input_signed(space, &plan),
            device,
        );
        Ok(StaticNet {
            stem,
            blocks,
            head_conv,
            fc,
            fc_quant,
            plan,
            weight_scaling: FloatScaling::default(),
        })
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
        scaling: FloatScaling,
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
            scaling,
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

/// The layer calls of [`StaticNet::forward_quantized`].
struct QuantizedStaticLayers<'a> {
    net: &'a StaticNet,
    nhwc: bool,
}

impl PlanLayers for QuantizedStaticLayers<'_> {
    fn conv(&self, block: Option<u32>, layer: &ConvLayer, x: Tensor<4>) -> Tensor<4> {
        self.net.layer_module(block, layer).forward_quantized(
            x,
            layer,
            self.net.weight_scaling,
            self.nhwc,
        )
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
            net.weight_scaling,
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
    /// the fly (`fake_quantize_weight` with [`StaticNet::weight_scaling`], straight-through
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
