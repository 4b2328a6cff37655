//! Accuracy of a member of the supernet: BN recalibration on training batches, then top-1
//! accuracy on held-out batches.

use burn::tensor::{Int, Tensor};
use serde::{Deserialize, Serialize};
use spaces::{Arch, ArchError, Plan};
use supernet::{Phase, StaticNet, Supernet};

use crate::data::{Batch, BatchLoader};

/// Correct predictions out of a total.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Accuracy {
    /// Correct top-1 predictions.
    pub correct: usize,
    /// Samples seen.
    pub total: usize,
}

impl Accuracy {
    /// Top-1 accuracy in `[0, 1]` (0 for no samples).
    pub fn top1(self) -> f64 {
        if self.total == 0 {
            0.0
        } else {
            self.correct as f64 / self.total as f64
        }
    }

    /// Adds another count.
    pub fn merge(self, o: Accuracy) -> Accuracy {
        Accuracy {
            correct: self.correct + o.correct,
            total: self.total + o.total,
        }
    }
}

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
    batches.into_iter().fold(Accuracy::default(), |acc, b| {
        let total = b.labels.dims()[0];
        let logits = net.forward(b.images);
        acc.merge(Accuracy {
            correct: correct(logits, b.labels),
            total,
        })
    })
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
    let plan = net.space.plan(arch)?;
    let device = net.stem.bn.gamma.val().device();
    let recal = train
        .epoch(cfg.recalibration_epoch, &device)
        .take(cfg.recalibration_batches)
        .map(|b| b.images);
    net.recalibrate_plan(&plan, recal);
    Ok(evaluate_plan(net, &plan, held_out.epoch(0, &device)))
}
