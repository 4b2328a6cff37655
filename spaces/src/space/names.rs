//! The names of a space's layers: `stem`, `s<stage>.b<block>.<conv>` (and `.shortcut`),
//! `head.conv`, `head.fc`. Quantization pins, format decisions and plans refer to layers by
//! these names.

use crate::raw::{BlockType, PoolOp};
use crate::space::Space;

/// Name of the stem conv.
pub const STEM: &str = "stem";
/// Name of the head's 1x1 conv.
pub const HEAD_CONV: &str = "head.conv";
/// Name of the classifier.
pub const FC: &str = "head.fc";

/// Main-path conv names of a block type (`expand` only when the expand ratio is not 1).
pub fn block_conv_names(block: BlockType, has_expand: bool) -> Vec<&'static str> {
    match block {
        BlockType::ConvBnRelu => vec!["conv"],
        BlockType::ResidualBasic => vec!["conv1", "conv2"],
        BlockType::Bottleneck => vec!["conv1", "conv2", "conv3"],
        BlockType::InvertedResidual if has_expand => vec!["expand", "dw", "project"],
        BlockType::InvertedResidual => vec!["dw", "project"],
    }
}

/// Whether block `j` of stage `s` may need a projection shortcut in some arch.
pub fn may_have_shortcut(space: &Space, s: usize, j: u32) -> bool {
    let stage = &space.stages[s];
    if !matches!(
        stage.block,
        BlockType::ResidualBasic | BlockType::Bottleneck
    ) {
        return false;
    }
    let strided_pool = space.downsampling.as_ref().is_some_and(|d| {
        d.ops.contains(&PoolOp::StridedConv)
            && d.configs
                .iter()
                .any(|c| c.contains(&space.position_of(s, j)))
    });
    if j > 0 {
        return strided_pool;
    }
    let ins: &[u32] = if s == 0 {
        &space.stem.widths
    } else {
        &space.stages[s - 1].widths
    };
    let same = ins.len() == 1 && stage.widths.len() == 1 && ins[0] == stage.widths[0];
    stage.stride == 2 || strided_pool || !same
}

/// Every layer name the space can produce, in network order.
pub fn all_layer_names(space: &Space) -> Vec<String> {
    let mut out = vec![STEM.to_string()];
    for (s, stage) in space.stages.iter().enumerate() {
        let has_expand = stage.expands.iter().any(|e| *e != 1.0);
        for j in 0..stage.max_depth() {
            for n in block_conv_names(stage.block, has_expand) {
                out.push(format!("s{s}.b{j}.{n}"));
            }
            if may_have_shortcut(space, s, j) {
                out.push(format!("s{s}.b{j}.shortcut"));
            }
        }
    }
    if !space.head.conv_widths.is_empty() {
        out.push(HEAD_CONV.to_string());
    }
    out.push(FC.to_string());
    out
}
