//! Which activation quantizers are signed: those whose input can be negative in some member
//! of the space (a property of the space, shared by the supernet and every static network).

use spaces::plan::{BlockPlan, ConvLayer, Plan};
use spaces::{BlockType, Space};

/// Whether the input of `layer` (a layer of the largest plan) can be negative in some member:
/// then its activation quantizer is signed.
pub(super) fn input_signed_in_any(
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
pub(super) fn fc_input_signed(space: &Space, plan: &Plan) -> bool {
    plan.head_conv.is_none()
        && space
            .stages
            .last()
            .is_some_and(|s| s.block == BlockType::InvertedResidual)
}
