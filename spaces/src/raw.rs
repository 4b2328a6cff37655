//! The raw serde form of a space file: exactly what the user writes, before validation.
//!
//! Every struct rejects unknown fields; every optional field has an explicit default below.
//! [`crate::Space::from_raw`] turns a [`RawSpace`] into a validated [`crate::Space`].

use serde::{Deserialize, Serialize};

use crate::format::RawFormat;

/// The current version of the space language.
pub const SPACE_VERSION: u32 = 1;

/// A whole space file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSpace {
    /// Version of the space language; must be [`SPACE_VERSION`].
    pub version: u32,
    /// A name for reports. Default: the file name.
    #[serde(default)]
    pub name: Option<String>,
    /// Shape of one input image.
    pub input: RawInput,
    /// Number of classes of the classifier.
    pub classes: u32,
    /// The first convolution (conv-BN-ReLU), optionally followed by a pooling layer.
    pub stem: RawStem,
    /// The stages, in order.
    pub stages: Vec<RawStage>,
    /// What follows the last stage. Default: global average pooling and a linear classifier.
    #[serde(default)]
    pub head: RawHead,
    /// Searchable placement of extra downsampling steps ("Balanced Mixture of SuperNets").
    /// Default: none; only the fixed strides of the stem and stages downsample.
    #[serde(default)]
    pub downsampling: Option<RawDownsampling>,
    /// Number formats. Default: fp32 everywhere.
    #[serde(default)]
    pub quantization: RawQuantization,
    /// The data set to train and search on. Default: none (`qnas space` needs none).
    #[serde(default)]
    pub data: Option<crate::run::RawData>,
    /// How the supernet is trained. Default: see [`crate::run::TrainConfig`].
    #[serde(default)]
    pub train: crate::run::TrainConfig,
    /// How `qnas search` searches. Default: see [`crate::run::SearchConfig`].
    #[serde(default)]
    pub search: crate::run::SearchConfig,
}

/// Input shape.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawInput {
    /// Colour channels.
    pub channels: u32,
    /// Height in pixels.
    pub height: u32,
    /// Width in pixels.
    pub width: u32,
}

/// The stem.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStem {
    /// Output-channel choices.
    pub width: Vec<u32>,
    /// Kernel-size choices (odd). Default: `[3]`.
    #[serde(default = "default_kernel")]
    pub kernel: Vec<u32>,
    /// Stride (1 or 2). Default: 1.
    #[serde(default = "default_stride")]
    pub stride: u32,
    /// A pooling layer after the stem (ResNet-18's 3x3/2 max pool). Default: none.
    #[serde(default)]
    pub pool: Option<RawStemPool>,
}

/// A pooling layer after the stem; padding is `kernel / 2`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub enum RawStemPool {
    /// Max pooling.
    MaxPool {
        /// Window size.
        kernel: u32,
        /// Stride.
        stride: u32,
    },
    /// Average pooling.
    AvgPool {
        /// Window size.
        kernel: u32,
        /// Stride.
        stride: u32,
    },
}

/// The kind of block a stage repeats.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum BlockType {
    /// conv(k) - BN - ReLU.
    ConvBnRelu,
    /// ResNet basic block: two k x k conv-BN, identity or 1x1 projection shortcut, ReLU.
    ResidualBasic,
    /// ResNet bottleneck: 1x1 reduce to `round(out * expand)`, k x k, 1x1 to `out`, shortcut.
    Bottleneck,
    /// MobileNetV2 inverted residual: 1x1 expand to `round(in * expand)` (absent when expand is
    /// 1), depthwise k x k, linear 1x1 projection, identity shortcut when shapes allow. ReLU6.
    InvertedResidual,
}

impl BlockType {
    /// Whether this block type has an expand ratio.
    pub fn uses_expand(self) -> bool {
        matches!(self, BlockType::Bottleneck | BlockType::InvertedResidual)
    }
}

/// A stage: `depth` blocks of one type; the first block carries the stage's stride.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStage {
    /// Block type.
    pub block: BlockType,
    /// Depth choices (number of blocks; elastic depth keeps the first d).
    pub depth: Vec<u32>,
    /// Output-channel choices of the stage.
    pub width: Vec<u32>,
    /// Kernel-size choices (odd), chosen per block. Default: `[3]`.
    #[serde(default = "default_kernel")]
    pub kernel: Vec<u32>,
    /// Expand-ratio choices, chosen per block; required for `Bottleneck` and
    /// `InvertedResidual`, not allowed otherwise.
    #[serde(default)]
    pub expand: Option<Vec<f64>>,
    /// Stride of the first block (1 or 2). Default: 1.
    #[serde(default = "default_stride")]
    pub stride: u32,
}

/// The head.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHead {
    /// Width choices of a 1x1 conv-BN-ReLU before pooling (MobileNetV2's 1280). Default: `[]`,
    /// no such conv.
    #[serde(default)]
    pub conv_width: Vec<u32>,
    /// Dropout before the classifier, used only when training the largest net. Default: 0.
    #[serde(default)]
    pub dropout: f64,
}

/// Searchable downsampling placement.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDownsampling {
    /// Which blocks carry a downsampling step. Positions index the blocks of the whole network
    /// at their stages' largest depth, from 0; a position must be a block that every depth
    /// choice keeps.
    pub configs: RawPoolConfigs,
    /// How a step downsamples. Default: `[StridedConv]`.
    #[serde(default = "default_pool_ops")]
    pub ops: Vec<PoolOp>,
}

/// The allowed sets of downsampling positions.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub enum RawPoolConfigs {
    /// Every set of `count` positions taken from `from`.
    Choose {
        /// Number of downsampling steps.
        count: u32,
        /// Candidate positions.
        from: Vec<u32>,
    },
    /// An explicit list of position sets.
    List(Vec<Vec<u32>>),
}

/// How a searchable downsampling step is done.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum PoolOp {
    /// A 2x2 max pool with stride 2 before the block.
    MaxPool,
    /// A 2x2 average pool with stride 2 before the block.
    AvgPool,
    /// The block's strided convolution (and its shortcut) gets stride 2.
    StridedConv,
}

/// Number-format choices.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawQuantization {
    /// Weight-format choices. Default: `[Fp32]`.
    #[serde(default = "default_formats")]
    pub weights: Vec<RawFormat>,
    /// Activation-format choices (the format of each layer's input). Default: `[Fp32]`.
    #[serde(default = "default_formats")]
    pub activations: Vec<RawFormat>,
    /// Which layers share one format decision. Default: `Layer`.
    #[serde(default)]
    pub tie: TieMode,
    /// One decision sets both the weight and the activation format (as FLIQS by default); then
    /// `weights` and `activations` must list the same formats. Default: false.
    #[serde(default)]
    pub tie_weights_activations: bool,
    /// Layers whose formats are fixed (they leave the search and their tie group). Default: `[]`.
    #[serde(default)]
    pub pins: Vec<RawPin>,
    /// How each activation quantizer estimates the range its scale comes from. Default:
    /// `Percentile(99.9)`.
    #[serde(default)]
    pub activation_range: ActivationRange,
    /// How each weight quantizer chooses its per-channel scale. Default: `Mse`.
    #[serde(default)]
    pub weight_range: WeightRange,
}

/// How an activation quantizer estimates its range (the scale is `range / grid maximum`).
///
/// The default is `Percentile(99.9)`: measured against stand-alone training
/// (`experiments/rank-correlation`, third and fourth rounds), `Max` left the all-int2 member 33
/// points low on the default space and members with int2 weights 15-24 points low on the digits
/// space, where the percentile with `WeightRange::Mse` keeps them within a few points.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub enum ActivationRange {
    /// The moving average of each batch's largest `|x|` (the default until 2026-12-03).
    Max,
    /// The moving average of each batch's `p`-th percentile of `|x|` (in `(0, 100]`, e.g.
    /// `Percentile(99.9)`): rare outliers no longer stretch the grid of low-bit formats.
    Percentile(f64),
    /// Learned step sizes (LSQ, Esser et al. 2020): one step per layer input and candidate
    /// format, trained with the weights from the paper's initialization (`2 * mean|x| /
    /// sqrt(Q_p)` on the first training batch) and carried into the exported model.
    Lsq,
    /// One range per layer input and candidate format: the clipping range that minimizes the
    /// squared quantization error of each batch's values at that format (searched over ratios of
    /// the batch's largest `|x|`, as the MSE calibration of AIMET and TensorRT), its moving
    /// average kept per format. A 2-bit grid then clips far tighter than an 8-bit one instead
    /// of every format sharing one range.
    Mse,
}

impl Default for ActivationRange {
    fn default() -> Self {
        ActivationRange::Percentile(99.9)
    }
}

/// How a weight quantizer chooses the per-output-channel range its scale comes from (the scale
/// is `range / grid maximum`). The default is `Mse` (see [`ActivationRange`] for the measurement).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum WeightRange {
    /// The channel's largest `|w|`: nothing saturates, but at 2 to 4 bits most weights round
    /// to zero (a max-scaled int2 channel is ternary with a threshold at half its maximum). The
    /// default until 2026-12-03.
    Max,
    /// The clipped range that minimizes the channel's squared quantization error, found by a
    /// search over clipping ratios of the maximum (as the MSE range setting of AIMET and
    /// Brevitas); the largest weights saturate. Weights already on such a grid quantize to
    /// themselves.
    #[default]
    Mse,
}

impl Default for RawQuantization {
    fn default() -> Self {
        RawQuantization {
            weights: default_formats(),
            activations: default_formats(),
            tie: TieMode::default(),
            tie_weights_activations: false,
            activation_range: ActivationRange::default(),
            weight_range: WeightRange::default(),
            pins: Vec::new(),
        }
    }
}

/// Granularity of format decisions.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum TieMode {
    /// One decision per layer (a shortcut conv shares its block's first conv's decision, since
    /// both read the same input).
    #[default]
    Layer,
    /// One decision per block (the stem and the head count as blocks).
    Block,
    /// One decision per stage (the stem and the head are stages of their own).
    Stage,
    /// One decision for the whole network.
    Global,
}

/// A fixed format for one layer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPin {
    /// Which layer.
    pub layer: LayerRef,
    /// Its weight format.
    pub weights: RawFormat,
    /// Its activation (input) format.
    pub activations: RawFormat,
}

/// A reference to a layer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum LayerRef {
    /// The stem convolution.
    First,
    /// The classifier.
    Last,
    /// A layer by name, e.g. `"s0.b1.conv2"` (see `qnas space check` for the names).
    Named(String),
}

fn default_kernel() -> Vec<u32> {
    vec![3]
}

fn default_stride() -> u32 {
    1
}

fn default_pool_ops() -> Vec<PoolOp> {
    vec![PoolOp::StridedConv]
}

fn default_formats() -> Vec<RawFormat> {
    vec![RawFormat::Fp32]
}
