//! The reward of an evaluated member against the cost target: [`RewardKind`], defined with the
//! space file's FLIQS settings in `spaces` (a pure function of accuracy and cost).

pub use spaces::RewardKind;
