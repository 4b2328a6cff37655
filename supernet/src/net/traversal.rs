//! The one traversal of a [`Plan`] ([`run_plan`]) that the supernet and the static network
//! share: pooling, strides, residual additions and activations follow the plan, and the
//! layers are called through [`PlanLayers`], addressed by their index in the plan
//! ([`LayerAt`]).

use burn::tensor::Tensor;
use burn::tensor::module::{adaptive_avg_pool2d, avg_pool2d, max_pool2d};
use burn::tensor::ops::{AvgPoolOptions, MaxPoolOptions};
use spaces::PoolOp;
use spaces::plan::{BlockPlan, ConvLayer, LinearLayer, Plan};
use spaces::space::StemPool;

use crate::layers::conv_bn::{activate, norm_act};

/// Where a conv-BN layer sits in a [`Plan`], by index.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LayerAt {
    /// The stem, [`Plan::stem`].
    Stem,
    /// A main-path layer of a block.
    Main {
        /// The block's index in [`Plan::blocks`].
        block: usize,
        /// The layer's index in the block's [`BlockPlan::convs`].
        conv: usize,
    },
    /// The projection shortcut of a block, [`BlockPlan::shortcut`].
    Shortcut {
        /// The block's index in [`Plan::blocks`].
        block: usize,
    },
    /// The head conv, [`Plan::head_conv`].
    Head,
}

impl LayerAt {
    /// The block of `plan` this layer belongs to (`None` for the stem and the head conv).
    pub fn block(self, plan: &Plan) -> Option<&BlockPlan> {
        match self {
            LayerAt::Stem | LayerAt::Head => None,
            LayerAt::Main { block, .. } | LayerAt::Shortcut { block } => Some(&plan.blocks[block]),
        }
    }
}

/// The layer calls of a traversal.
pub trait PlanLayers {
    /// The conv-BN-activation `layer`, at `at` in the plan.
    fn conv(&self, at: LayerAt, layer: &ConvLayer, x: Tensor<4>) -> Tensor<4>;
    /// The classifier on pooled features.
    fn fc(&self, layer: &LinearLayer, x: Tensor<2>) -> Tensor<2>;
    /// Whether [`PlanLayers::conv`] takes and returns NHWC activations (`[batch, height,
    /// width, channels]`) instead of NCHW; [`run_plan`] converts its input once.
    fn nhwc(&self) -> bool {
        false
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
    let mut x = layers.conv(LayerAt::Stem, &plan.stem, x);
    if let Some(p) = plan.stem_pool {
        x = stem_pool(p, x, nhwc);
    }
    for (i, b) in plan.blocks.iter().enumerate() {
        x = block_pool(b.pool_before, x, nhwc);
        let input = x.clone();
        let mut y = x;
        for (j, c) in b.convs.iter().enumerate() {
            y = layers.conv(LayerAt::Main { block: i, conv: j }, c, y);
        }
        x = if b.residual {
            let skip = match &b.shortcut {
                Some(s) => layers.conv(LayerAt::Shortcut { block: i }, s, input),
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
        x = layers.conv(LayerAt::Head, h, x);
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

/// The pooling after the stem, on `x` (NHWC when `nhwc`).
pub(crate) fn stem_pool(p: StemPool, x: Tensor<4>, nhwc: bool) -> Tensor<4> {
    let (k, s, pad) = (
        p.kernel as usize,
        p.stride as usize,
        (p.kernel / 2) as usize,
    );
    in_nchw(nhwc, x, |x| {
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
    })
}

/// The pooling before a block (`pool_before`), on `x` (NHWC when `nhwc`).
pub(crate) fn block_pool(op: Option<PoolOp>, x: Tensor<4>, nhwc: bool) -> Tensor<4> {
    match op {
        Some(PoolOp::MaxPool) => in_nchw(nhwc, x, |x| {
            max_pool2d(x, MaxPoolOptions::new([2, 2]).with_stride([2, 2]))
        }),
        Some(PoolOp::AvgPool) => in_nchw(nhwc, x, |x| {
            avg_pool2d(x, AvgPoolOptions::new([2, 2]).with_stride([2, 2]))
        }),
        _ => x,
    }
}

/// Applies an NCHW-only op (pooling) to `x`, which is NHWC when `nhwc`.
fn in_nchw(nhwc: bool, x: Tensor<4>, op: impl FnOnce(Tensor<4>) -> Tensor<4>) -> Tensor<4> {
    if nhwc {
        op(x.permute([0, 3, 1, 2])).permute([0, 2, 3, 1])
    } else {
        op(x)
    }
}
