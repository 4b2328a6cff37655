//! The reward of an evaluated member against the cost target.

use serde::{Deserialize, Serialize};

/// The reward of a member of accuracy `Q` and BitOps `C` against the target `C_T`.
///
/// Sign convention: `β` is written exactly as in each formula. For [`RewardKind::Absolute`]
/// and [`RewardKind::OneSided`] it is a penalty weight, `β ≥ 0`; for
/// [`RewardKind::SoftExponential`] and [`RewardKind::HardExponential`] it is the exponent in
/// MnasNet's convention, `β ≤ 0` (e.g. `−0.07`). The other sign would reward cost, and is
/// refused by [`Fliqs::new`](super::Fliqs::new).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum RewardKind {
    /// TuNAS / FLIQS: `R = Q − β·|C/C_T − 1|` (penalizes missing the target either way).
    Absolute,
    /// `R = Q − β·|1 − max(1, C/C_T)|`: penalizes only exceeding the target.
    OneSided,
    /// MnasNet soft constraint: `R = Q·(C/C_T)^β`.
    SoftExponential,
    /// MnasNet hard constraint: `R = Q·max(1, C/C_T)^β` (only exceeding the target costs).
    HardExponential,
}

impl RewardKind {
    /// The reward of accuracy `accuracy` at `bitops` against `target` BitOps, with weight or
    /// exponent `beta` (see the type's sign convention).
    pub fn reward(self, beta: f64, accuracy: f64, bitops: f64, target: f64) -> f64 {
        let ratio = bitops / target;
        match self {
            RewardKind::Absolute => accuracy - beta * (ratio - 1.0).abs(),
            RewardKind::OneSided => accuracy - beta * (1.0 - ratio.max(1.0)).abs(),
            RewardKind::SoftExponential => accuracy * ratio.powf(beta),
            RewardKind::HardExponential => accuracy * ratio.max(1.0).powf(beta),
        }
    }

    pub(super) fn penalty_weight(self) -> bool {
        matches!(self, RewardKind::Absolute | RewardKind::OneSided)
    }
}
