//! The weight-sharing supernet: every layer of a space at its largest size, run for any member
//! of the space and cut out as a [`StaticNet`].

use std::convert::Infallible;

use burn::module::Module;
use burn::tensor::{Device, Tensor};
use spaces::plan::{Act, ConvLayer, LinearLayer, Plan, may_have_shortcut};
use spaces::{ActivationRange, Arch, ArchError, Space};

use super::signed::{fc_input_signed, input_signed_in_any};
use super::static_net::StaticNet;
use super::traversal::{LayerAt, PlanLayers, run_plan};
use crate::Phase;
use crate::layers::{ConvBn, ElasticLinear, ElasticLinearConfig, dropout};
use crate::quant::{ActQuantizer, ActQuantizerConfig, ActScaleMethod, Precision, WeightQuant};

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
    /// How every layer's weights are quantized.
    pub weight_quant: WeightQuant,
}

impl SupernetConfig {
    /// The configuration a space file asks for: its activation-range estimator
    /// (`quantization.activation_range`) and weight ranges (`quantization.weight_range`), the
    /// rest at the defaults.
    pub fn for_space(space: &Space) -> SupernetConfig {
        let default = SupernetConfig::default();
        let momentum = match default.act_quant.method {
            ActScaleMethod::RunningMax { momentum }
            | ActScaleMethod::Percentile { momentum, .. }
            | ActScaleMethod::Mse { momentum } => momentum,
            ActScaleMethod::Lsq { .. } => 0.1,
        };
        let mut act_quant = default.act_quant;
        act_quant.method = match space.quantization.activation_range {
            ActivationRange::Max => ActScaleMethod::RunningMax { momentum },
            ActivationRange::Percentile(percentile) => ActScaleMethod::Percentile {
                percentile,
                momentum,
            },
            ActivationRange::Lsq => {
                act_quant.formats = activation_formats(space);
                ActScaleMethod::Lsq { init_step: 1.0 }
            }
            ActivationRange::Mse => {
                act_quant.formats = activation_formats(space);
                ActScaleMethod::Mse { momentum }
            }
        };
        SupernetConfig {
            act_quant,
            weight_quant: WeightQuant::for_space(space),
            ..default
        }
    }
}

/// Every activation format a layer of `space` can take: the choices and the pins'.
fn activation_formats(space: &Space) -> Vec<spaces::Format> {
    let q = &space.quantization;
    let mut formats = q.activations.clone();
    for p in &q.pins {
        if !formats.contains(&p.activations) {
            formats.push(p.activations);
        }
    }
    formats
}

impl Default for SupernetConfig {
    fn default() -> Self {
        SupernetConfig {
            zero_init_residual: false,
            act_quant: ActQuantizerConfig::new(),
            weight_quant: WeightQuant::default(),
        }
    }
}

/// The layers of one block at its largest size.
#[derive(Module, Debug)]
pub struct SuperBlock {
    /// Main-path layers, in order.
    pub layers: Vec<ConvBn>,
    /// Projection shortcut, when some member needs one.
    pub shortcut: Option<ConvBn>,
}

/// The index in a block's layers of main-path layer `conv` of a member whose block has
/// `member_convs` of them. A member's main path is the last layers of the block's largest one
/// (an inverted residual without expansion drops only the first layer, `expand`).
fn main_layer_index(block_layers: usize, member_convs: usize, conv: usize) -> usize {
    block_layers
        .checked_sub(member_convs)
        .expect("a member's block has at most the layers of the supernet's")
        + conv
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

impl Supernet {
    /// A new supernet for `space` with default options.
    pub fn new(space: &Space, device: &Device) -> Supernet {
        Supernet::with_config(space, &SupernetConfig::for_space(space), device)
    }

    /// A new supernet for `space`.
    pub fn with_config(space: &Space, cfg: &SupernetConfig, device: &Device) -> Supernet {
        let largest = space.largest();
        let plan = space
            .plan(&largest)
            .expect("the largest member of a valid space is valid");
        let quant = |signed: bool| cfg.act_quant.clone().with_signed(signed);
        let wq = cfg.weight_quant;
        let stem = ConvBn::new(&plan.stem, quant(true), wq, device);
        let mut blocks = Vec::new();
        for b in &plan.blocks {
            let mut layers = Vec::new();
            for c in &b.convs {
                let signed = input_signed_in_any(space, &plan, Some(b), c);
                let mut layer = ConvBn::new(c, quant(signed), wq, device);
                if cfg.zero_init_residual && b.residual && Some(c) == b.convs.last() {
                    layer = layer.zero_gamma();
                }
                layers.push(layer);
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
                ConvBn::new(&layer, quant(signed), wq, device)
            });
            blocks.push(SuperBlock { layers, shortcut });
        }
        let head_conv = plan.head_conv.as_ref().map(|h| {
            let signed = input_signed_in_any(space, &plan, None, h);
            ConvBn::new(h, quant(signed), wq, device)
        });
        let fc_signed = fc_input_signed(space, &plan);
        let fc =
            ElasticLinearConfig::new(plan.fc.in_features as usize, plan.fc.out_features as usize)
                .with_input_quant(quant(fc_signed))
                .with_weight_quant(wq)
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
                plan,
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
                plan,
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
        let net = StaticNet::build(
            plan,
            self.fc.weight_quant,
            |plan, at, layer| Ok::<_, Infallible>(self.layer(plan, at).extract(layer)),
            |plan| {
                let fc = self.fc.extract(
                    plan.fc.in_features as usize,
                    plan.fc.out_features as usize,
                    plan.fc.formats.weights,
                );
                let fc_quant = self.fc.input_quant.frozen(plan.fc.formats.activations);
                Ok((fc, fc_quant))
            },
        );
        let Ok(net) = net;
        Ok(net)
    }

    /// The layer at `at` in `plan` (a plan of this supernet's space).
    fn layer(&self, plan: &Plan, at: LayerAt) -> &ConvBn {
        match at {
            LayerAt::Stem => &self.stem,
            LayerAt::Main { block, conv } => {
                let b = &plan.blocks[block];
                let layers = &self.blocks[b.position as usize].layers;
                &layers[main_layer_index(layers.len(), b.convs.len(), conv)]
            }
            LayerAt::Shortcut { block } => self.blocks[plan.blocks[block].position as usize]
                .shortcut
                .as_ref()
                .expect("shortcut allocated"),
            LayerAt::Head => self.head_conv.as_ref().expect("head conv allocated"),
        }
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

    /// This supernet with every activation quantizer passed through `f`, in traversal order.
    fn map_act_quantizers(self, f: &mut impl FnMut(ActQuantizer) -> ActQuantizer) -> Supernet {
        let Supernet {
            stem,
            blocks,
            head_conv,
            mut fc,
            space,
        } = self;
        let stem = stem.map_act_quantizer(f);
        let blocks = blocks
            .into_iter()
            .map(|b| SuperBlock {
                layers: b
                    .layers
                    .into_iter()
                    .map(|l| l.map_act_quantizer(f))
                    .collect(),
                shortcut: b.shortcut.map(|s| s.map_act_quantizer(f)),
            })
            .collect();
        let head_conv = head_conv.map(|h| h.map_act_quantizer(f));
        fc.input_quant = f(fc.input_quant);
        Supernet {
            stem,
            blocks,
            head_conv,
            fc,
            space,
        }
    }

    /// With learned activation steps (`activation_range: Lsq`), this supernet with every step
    /// initialized as the LSQ paper does, `2 * mean|x| / sqrt(Q_p)`, from one pass of the
    /// largest member over `images` (the first training batch); unchanged otherwise. Batch
    /// norm statistics are those of `images` afterwards.
    ///
    /// # Shapes
    /// - `images`: `[batch, channels, height, width]`
    pub fn init_lsq_steps(self, images: Tensor<4>) -> Supernet {
        if self.space.quantization.activation_range != ActivationRange::Lsq {
            return self;
        }
        let plan = self
            .space
            .plan(&self.space.largest())
            .expect("the largest member of a valid space is valid");
        self.reset_running_stats();
        let _ = self.forward_plan(images, &plan, Phase::Recalibrate(0));
        self.map_act_quantizers(&mut ActQuantizer::init_lsq_from_observed)
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

/// The layer calls of [`Supernet::forward_plan`].
struct SuperLayers<'a> {
    net: &'a Supernet,
    /// The plan being run.
    plan: &'a Plan,
    phase: Phase,
    dropout: f64,
    /// Activations NHWC on our kernels (see [`crate::kernels::active`]).
    nhwc: bool,
}

impl PlanLayers for SuperLayers<'_> {
    fn conv(&self, at: LayerAt, layer: &ConvLayer, x: Tensor<4>) -> Tensor<4> {
        let module = self.net.layer(self.plan, at);
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
        let x = dropout(x, self.dropout);
        self.net
            .fc
            .forward(x, layer.out_features as usize, precision, self.phase)
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use spaces::{Rng, Space};

    use super::main_layer_index;

    fn short(name: &str) -> &str {
        name.rsplit('.').next().unwrap_or("")
    }

    /// The supernet addresses a member's main-path layers by index: the index must land on the
    /// layer of the same name in the largest member's block (where the supernet's layers come
    /// from), as the lookup by name did.
    #[test]
    fn main_layers_by_index_are_the_layers_of_the_same_name() {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../spaces/presets");
        let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "ron"))
            .collect();
        paths.sort();
        let mut spaces: Vec<(String, Space)> = paths
            .iter()
            .map(|p| (p.display().to_string(), Space::load(p).unwrap()))
            .collect();
        // a stage whose expansion may vanish: its members drop the block's first layer
        let src = std::fs::read_to_string(dir.join("mobilenetv2.ron")).unwrap();
        let src = src.replacen("expand: [3.0, 4.0, 6.0]", "expand: [1.0, 4.0, 6.0]", 1);
        spaces.push((
            "mobilenetv2 with expand 1".into(),
            Space::parse(&src, "mobilenetv2-expand-1.ron", "m").unwrap(),
        ));
        let mut rng = Rng::new(3);
        let mut dropped_expand = false;
        for (name, space) in &spaces {
            let largest = space.plan(&space.largest()).unwrap();
            let mut archs = vec![space.smallest(), space.largest()];
            archs.extend((0..50).map(|_| space.sample_uniform(&mut rng)));
            for arch in &archs {
                for b in &space.plan(arch).unwrap().blocks {
                    let full = &largest.blocks[b.position as usize];
                    assert_eq!(full.position, b.position, "{name}");
                    dropped_expand |= full.convs.len() > b.convs.len();
                    for (j, c) in b.convs.iter().enumerate() {
                        let k = main_layer_index(full.convs.len(), b.convs.len(), j);
                        assert_eq!(
                            short(&full.convs[k].name),
                            short(&c.name),
                            "{name}: {}",
                            c.name
                        );
                    }
                }
            }
        }
        assert!(dropped_expand, "some member drops a block's first layer");
    }
}
