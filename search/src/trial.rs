//! What a strategy is told of one evaluated member.

use serde::{Deserialize, Serialize};
use spaces::Arch;

/// What the evaluator measured of one member.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Evaluation {
    /// Validation top-1 accuracy in `[0, 1]` (after BN recalibration).
    pub accuracy: f64,
    /// BitOps of the member (cost model).
    pub bitops: u64,
}

/// One evaluated member.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Trial {
    /// The member.
    pub arch: Arch,
    /// Its scores.
    pub eval: Evaluation,
}
