//! Accuracy of a member of the supernet: BN recalibration on training batches, then top-1
//! accuracy on held-out batches.

use burn::tensor::{Int, Tensor};
use serde::{Deserialize, Serialize};
use spaces::{Arch, ArchError, Plan};
use stats::Accuracy;
use supernet::{Phase, StaticNet, Supernet};

use crate::data::{Batch, BatchLoader};

/// Number of correct top-1 predictions of `logits` for `labels`.
///
/// # Shapes
/// - `logits`: `[batch, classes]`
/// - `labels`: `[batch]`
pub fn correct(logits: Tensor<2>, labels: Tensor<1, Int>) -> usize {
    let pred = logits.argmax(1).squeeze_dim::<1>(1);
    pred.equal(labels).int().sum().into_scalar::<i64>() as usize
}

/// How to evaluate a member.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvalConfig {
    /// Training batches used for BN recalibration (BigNAS uses about 64).
    pub recalibration_batches: usize,
    /// Epoch number of the training loader whose batches recalibrate (fixed, so every member
    /// is recalibrated on the same images).
    pub recalibration_epoch: u64,
}

impl Default for EvalConfig {
    fn default() -> Self {
        EvalConfig {
            recalibration_batches: 16,
            recalibration_epoch: 0,
        }
    }
}

/// Top-1 accuracy of the member `plan` on every batch of `batches` (Phase::Eval).
pub fn evaluate_plan(
    net: &Supernet,
    plan: &Plan,
    batches: impl IntoIterator<Item = Batch>,
) -> Accuracy {
    batches.into_iter().fold(Accuracy::default(), |acc, b| {
        let total = b.labels.dims()[0];
        let logits = net.forward_plan(b.images, plan, Phase::Eval);
        acc.merge(Accuracy {
            correct: correct(logits, b.labels),
            total,
        })
    })
}

/// Top-1 accuracy of an extracted (or exported) network on every batch of `batches`.
pub fn evaluate_static(net: &StaticNet, batches: impl IntoIterator<Item = Batch>) -> Accuracy {
    evaluate_with(|x| net.forward(x), batches)
}

/// Top-1 accuracy of the logits `forward` gives for every batch of `batches` (a network on
/// the integer engine, `supernet::int`).
pub fn evaluate_with(
    forward: impl Fn(Tensor<4>) -> Tensor<2>,
    batches: impl IntoIterator<Item = Batch>,
) -> Accuracy {
    batches.into_iter().fold(Accuracy::default(), |acc, b| {
        let total = b.labels.dims()[0];
        let logits = forward(b.images);
        acc.merge(Accuracy {
            correct: correct(logits, b.labels),
            total,
        })
    })
}

/// Recalibrates `net` for `arch` on the first batches of `train` (see [`EvalConfig`]) and
/// returns the member's plan. `net` must be on a device without autodiff
/// (`supernet.valid()`); its running statistics are left as this member's.
pub fn recalibrate(
    net: &Supernet,
    arch: &Arch,
    train: &BatchLoader,
    cfg: EvalConfig,
) -> Result<Plan, ArchError> {
    let plan = net.space.plan(arch)?;
    let device = net.stem.bn.gamma.val().device();
    let recal = train
        .epoch(cfg.recalibration_epoch, &device)
        .take(cfg.recalibration_batches)
        .map(|b| b.images);
    net.recalibrate_plan(&plan, recal);
    Ok(plan)
}

/// Recalibrates `net` for `arch` on the first batches of `train` (see [`EvalConfig`]), then
/// measures its top-1 accuracy on every batch of `held_out`. `net` must be on a device without
/// autodiff (`supernet.valid()`); its running statistics are left as this member's.
pub fn recalibrate_and_evaluate(
    net: &Supernet,
    arch: &Arch,
    train: &BatchLoader,
    held_out: &BatchLoader,
    cfg: EvalConfig,
) -> Result<Accuracy, ArchError> {
    let plan = recalibrate(net, arch, train, cfg)?;
    let device = net.stem.bn.gamma.val().device();
    Ok(evaluate_plan(net, &plan, held_out.epoch(0, &device)))
}

/// Whether the member `plan` classifies each image of `batches` correctly, in the loader's
/// order (Phase::Eval): the per-image record that paired comparisons and bootstraps need.
pub fn correct_per_image(
    net: &Supernet,
    plan: &Plan,
    batches: impl IntoIterator<Item = Batch>,
) -> Vec<bool> {
    let mut out = Vec::new();
    for b in batches {
        let logits = net.forward_plan(b.images, plan, Phase::Eval);
        let pred = logits.argmax(1).squeeze_dim::<1>(1);
        let hits = pred.equal(b.labels).float().into_data().convert::<f32>();
        out.extend(
            hits.try_to_vec::<f32>()
                .unwrap_or_default()
                .into_iter()
                .map(|v| v != 0.0),
        );
    }
    out
}

/// [`recalibrate`], then [`correct_per_image`] on every batch of `held_out`.
pub fn recalibrate_and_score(
    net: &Supernet,
    arch: &Arch,
    train: &BatchLoader,
    held_out: &BatchLoader,
    cfg: EvalConfig,
) -> Result<Vec<bool>, ArchError> {
    let plan = recalibrate(net, arch, train, cfg)?;
    let device = net.stem.bn.gamma.val().device();
    Ok(correct_per_image(net, &plan, held_out.epoch(0, &device)))
}
