//! The resolved network of an arch: every layer with its channels, kernel, stride, feature-map
//! sizes and formats. The cost model reads it, and the supernet follows it in `forward`.

use std::collections::BTreeSet;

use serde::Serialize;

use crate::arch::{Arch, ArchError, FormatPair};
use crate::raw::{BlockType, PoolOp, TieMode};
pub use crate::space::names::{
    FC, HEAD_CONV, STEM, all_layer_names, block_conv_names, may_have_shortcut,
};
use crate::space::{Space, StemPool};

/// The non-linearity after a conv's batch norm.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Act {
    /// None (linear).
    None,
    /// ReLU.
    Relu,
    /// ReLU6.
    Relu6,
}

/// One convolution (followed by batch norm and `act`).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ConvLayer {
    /// Layer name, e.g. `s1.b0.conv2`.
    pub name: String,
    /// Input channels.
    pub in_channels: u32,
    /// Output channels.
    pub out_channels: u32,
    /// Kernel size (square, odd; padding `kernel / 2`).
    pub kernel: u32,
    /// Stride.
    pub stride: u32,
    /// Groups (= channels for depthwise).
    pub groups: u32,
    /// Input (height, width).
    pub in_size: (u32, u32),
    /// Output (height, width).
    pub out_size: (u32, u32),
    /// Non-linearity after the batch norm.
    pub act: Act,
    /// Whether the input can be negative (decides signed/unsigned integer activations).
    pub input_signed: bool,
    /// Formats.
    pub formats: FormatPair,
}

/// The classifier.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LinearLayer {
    /// Layer name.
    pub name: String,
    /// Input features.
    pub in_features: u32,
    /// Output features (classes).
    pub out_features: u32,
    /// Whether the input can be negative.
    pub input_signed: bool,
    /// Formats.
    pub formats: FormatPair,
}

/// One block of the resolved network.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct BlockPlan {
    /// Stage index.
    pub stage: usize,
    /// Block index within the stage.
    pub index: u32,
    /// Global block position (at largest depths).
    pub position: u32,
    /// Block type.
    pub block: BlockType,
    /// A 2x2/2 pooling applied to the block input first.
    pub pool_before: Option<PoolOp>,
    /// Main-path convs in order.
    pub convs: Vec<ConvLayer>,
    /// Projection shortcut (1x1 conv + BN) when the shapes change.
    pub shortcut: Option<ConvLayer>,
    /// Whether the block adds its input (or the shortcut's output) to the main path.
    pub residual: bool,
    /// Non-linearity after the addition.
    pub post_act: Act,
}

/// The resolved network.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Plan {
    /// Stem conv.
    pub stem: ConvLayer,
    /// Pooling after the stem.
    pub stem_pool: Option<StemPool>,
    /// Blocks in order.
    pub blocks: Vec<BlockPlan>,
    /// Head conv.
    pub head_conv: Option<ConvLayer>,
    /// Spatial size entering global average pooling.
    pub pool_size: (u32, u32),
    /// Classifier.
    pub fc: LinearLayer,
}

impl Plan {
    /// Every conv in execution order (the shortcut after its block's main path).
    pub fn convs(&self) -> impl Iterator<Item = &ConvLayer> {
        std::iter::once(&self.stem)
            .chain(
                self.blocks
                    .iter()
                    .flat_map(|b| b.convs.iter().chain(b.shortcut.iter())),
            )
            .chain(self.head_conv.iter())
    }
}

/// The format decision a layer belongs to, or `None` when the layer is pinned. A shortcut
/// belongs to its block's first conv's decision.
pub fn group_of(space: &Space, layer: &str) -> Option<String> {
    let q = &space.quantization;
    let layer = shortcut_owner(space, layer);
    if q.pin(&layer).is_some() {
        return None;
    }
    let (stage_part, block_part) = match layer.split('.').collect::<Vec<_>>().as_slice() {
        [s, b, _] => (s.to_string(), format!("{s}.{b}")),
        _ if layer == STEM => (STEM.to_string(), STEM.to_string()),
        _ => ("head".to_string(), "head".to_string()),
    };
    Some(match q.tie {
        TieMode::Layer => layer,
        TieMode::Block => block_part,
        TieMode::Stage => stage_part,
        TieMode::Global => "all".to_string(),
    })
}

/// `s0.b1.shortcut` -> `s0.b1.conv1`; other names unchanged.
fn shortcut_owner(space: &Space, layer: &str) -> String {
    match layer.strip_suffix(".shortcut") {
        Some(prefix) => {
            let block = prefix
                .strip_prefix('s')
                .and_then(|r| r.split('.').next())
                .and_then(|s| s.parse::<usize>().ok())
                .and_then(|s| space.stages.get(s))
                .map(|st| st.block);
            let first = match block {
                Some(BlockType::ConvBnRelu) => "conv",
                _ => "conv1",
            };
            format!("{prefix}.{first}")
        }
        None => layer.to_string(),
    }
}

/// Names of the main-path layers an arch uses (no shortcuts), in order.
pub fn active_layer_names(space: &Space, arch: &Arch) -> Vec<String> {
    let mut out = vec![STEM.to_string()];
    for (s, (stage, sa)) in space.stages.iter().zip(&arch.stages).enumerate() {
        for (j, b) in sa.blocks.iter().enumerate() {
            for n in block_conv_names(stage.block, b.expand != 1.0) {
                out.push(format!("s{s}.b{j}.{n}"));
            }
        }
    }
    if arch.head.conv_width.is_some() {
        out.push(HEAD_CONV.to_string());
    }
    out.push(FC.to_string());
    out
}

/// The format decisions an arch uses, in network order, without repeats.
pub fn active_groups(space: &Space, arch: &Arch) -> Vec<String> {
    let mut seen = BTreeSet::new();
    active_layer_names(space, arch)
        .into_iter()
        .filter_map(|l| group_of(space, &l))
        .filter(|g| seen.insert(g.clone()))
        .collect()
}

/// Every format decision the space can produce, in network order.
pub fn all_groups(space: &Space) -> Vec<String> {
    let mut seen = BTreeSet::new();
    all_layer_names(space)
        .into_iter()
        .filter(|l| !l.ends_with(".shortcut"))
        .filter_map(|l| group_of(space, &l))
        .filter(|g| seen.insert(g.clone()))
        .collect()
}

/// Output size of a conv or pooling window with padding `kernel / 2`; in 64 bits, since a
/// space's sizes are limited only by their types.
fn conv_out(size: (u32, u32), kernel: u32, stride: u32) -> (u32, u32) {
    let (k, s) = (u64::from(kernel), u64::from(stride.max(1)));
    let f = |h: u32| {
        let out = (u64::from(h) + 2 * (k / 2)).saturating_sub(k) / s + 1;
        u32::try_from(out).unwrap_or(u32::MAX)
    };
    (f(size.0), f(size.1))
}

impl Space {
    /// Resolves a valid arch into its network. Validates `arch` first.
    pub fn plan(&self, arch: &Arch) -> Result<Plan, ArchError> {
        self.validate(arch)?;
        let q = &self.quantization;
        let formats = |layer: &str| -> FormatPair {
            let owner = shortcut_owner(self, layer);
            if let Some(p) = q.pin(&owner) {
                return FormatPair {
                    weights: p.weights,
                    activations: p.activations,
                };
            }
            let g = group_of(self, &owner).unwrap_or_default();
            arch.formats
                .get(&g)
                .copied()
                .unwrap_or(FormatPair::uniform(crate::Format::FP32))
        };
        let input_size = (self.input.height, self.input.width);
        let conv = |name: String,
                    cin: u32,
                    cout: u32,
                    k: u32,
                    stride: u32,
                    groups: u32,
                    size: (u32, u32),
                    act: Act,
                    signed: bool| ConvLayer {
            formats: formats(&name),
            name,
            in_channels: cin,
            out_channels: cout,
            kernel: k,
            stride,
            groups,
            in_size: size,
            out_size: conv_out(size, k, stride),
            act,
            input_signed: signed,
        };
        let stem = conv(
            STEM.into(),
            self.input.channels,
            arch.stem.width,
            arch.stem.kernel,
            self.stem.stride,
            1,
            input_size,
            Act::Relu,
            true,
        );
        let mut size = stem.out_size;
        if let Some(p) = self.stem.pool {
            size = conv_out(size, p.kernel, p.stride);
        }
        let mut channels = arch.stem.width;
        let mut signed = false;
        let mut blocks = Vec::new();
        for (s, (stage, sa)) in self.stages.iter().zip(&arch.stages).enumerate() {
            for (j, b) in sa.blocks.iter().enumerate() {
                let j = j as u32;
                let position = self.position_of(s, j);
                let pooled = arch
                    .pooling
                    .as_ref()
                    .filter(|p| p.positions.contains(&position))
                    .map(|p| p.op);
                let pool_before = pooled.filter(|op| *op != PoolOp::StridedConv);
                if pool_before.is_some() {
                    size = (size.0 / 2, size.1 / 2);
                }
                let stride = if j == 0 { stage.stride } else { 1 }
                    * if pooled == Some(PoolOp::StridedConv) {
                        2
                    } else {
                        1
                    };
                let (cin, cout, k) = (channels, sa.width, b.kernel);
                let name = |n: &str| format!("s{s}.b{j}.{n}");
                let mut convs = Vec::new();
                let (residual, post_act);
                match stage.block {
                    BlockType::ConvBnRelu => {
                        convs.push(conv(
                            name("conv"),
                            cin,
                            cout,
                            k,
                            stride,
                            1,
                            size,
                            Act::Relu,
                            signed,
                        ));
                        residual = false;
                        post_act = Act::None;
                    }
                    BlockType::ResidualBasic => {
                        let c1 = conv(
                            name("conv1"),
                            cin,
                            cout,
                            k,
                            stride,
                            1,
                            size,
                            Act::Relu,
                            signed,
                        );
                        let mid = c1.out_size;
                        convs.push(c1);
                        convs.push(conv(
                            name("conv2"),
                            cout,
                            cout,
                            k,
                            1,
                            1,
                            mid,
                            Act::None,
                            false,
                        ));
                        residual = true;
                        post_act = Act::Relu;
                    }
                    BlockType::Bottleneck => {
                        let mid_c = ((f64::from(cout) * b.expand).round() as u32).max(1);
                        convs.push(conv(
                            name("conv1"),
                            cin,
                            mid_c,
                            1,
                            1,
                            1,
                            size,
                            Act::Relu,
                            signed,
                        ));
                        let c2 = conv(
                            name("conv2"),
                            mid_c,
                            mid_c,
                            k,
                            stride,
                            1,
                            size,
                            Act::Relu,
                            false,
                        );
                        let mid = c2.out_size;
                        convs.push(c2);
                        convs.push(conv(
                            name("conv3"),
                            mid_c,
                            cout,
                            1,
                            1,
                            1,
                            mid,
                            Act::None,
                            false,
                        ));
                        residual = true;
                        post_act = Act::Relu;
                    }
                    BlockType::InvertedResidual => {
                        let mid_c = if b.expand != 1.0 {
                            ((f64::from(cin) * b.expand).round() as u32).max(1)
                        } else {
                            cin
                        };
                        if b.expand != 1.0 {
                            convs.push(conv(
                                name("expand"),
                                cin,
                                mid_c,
                                1,
                                1,
                                1,
                                size,
                                Act::Relu6,
                                signed,
                            ));
                        }
                        let dw = conv(
                            name("dw"),
                            mid_c,
                            mid_c,
                            k,
                            stride,
                            mid_c,
                            size,
                            Act::Relu6,
                            if b.expand != 1.0 { false } else { signed },
                        );
                        let mid = dw.out_size;
                        convs.push(dw);
                        convs.push(conv(
                            name("project"),
                            mid_c,
                            cout,
                            1,
                            1,
                            1,
                            mid,
                            Act::None,
                            false,
                        ));
                        residual = stride == 1 && cin == cout;
                        post_act = Act::None;
                    }
                }
                let needs_projection = matches!(
                    stage.block,
                    BlockType::ResidualBasic | BlockType::Bottleneck
                ) && (stride != 1 || cin != cout);
                let shortcut = needs_projection.then(|| {
                    conv(
                        name("shortcut"),
                        cin,
                        cout,
                        1,
                        stride,
                        1,
                        size,
                        Act::None,
                        signed,
                    )
                });
                size = convs.last().map_or(size, |c| c.out_size);
                channels = cout;
                signed = post_act == Act::None && stage.block == BlockType::InvertedResidual;
                blocks.push(BlockPlan {
                    stage: s,
                    index: j,
                    position,
                    block: stage.block,
                    pool_before,
                    convs,
                    shortcut,
                    residual,
                    post_act,
                });
            }
        }
        let head_conv = arch.head.conv_width.map(|w| {
            let c = conv(
                HEAD_CONV.into(),
                channels,
                w,
                1,
                1,
                1,
                size,
                Act::Relu,
                signed,
            );
            channels = w;
            signed = false;
            c
        });
        let fc = LinearLayer {
            formats: formats(FC),
            name: FC.into(),
            in_features: channels,
            out_features: self.classes,
            input_signed: signed,
        };
        Ok(Plan {
            stem,
            stem_pool: self.stem.pool,
            blocks,
            head_conv,
            pool_size: size,
            fc,
        })
    }
}
