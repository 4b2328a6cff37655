//! Search strategies: ask/tell over the members of a space, with serializable state so that a
//! search resumes. Strategies never touch tensors: they see a [`Space`] (its decisions,
//! encoding, mutation and crossover) and the scores the evaluator reports.

pub mod exhaustive;
pub mod fliqs;
pub mod hawq;
pub mod nsga2;
pub mod random;

use spaces::{Arch, Space};

pub use crate::trial::{Evaluation, Trial};

/// Where a learned policy (FLIQS) stands: how spread out it still is and what it would choose.
#[derive(Clone, Debug, PartialEq)]
pub struct PolicyState {
    /// Entropy of the policy over its searched decisions, in nats (the sum over decisions).
    pub entropy: f64,
    /// The entropy of the uniform policy over the same decisions (its start).
    pub max_entropy: f64,
    /// The policy's argmax.
    pub argmax: Arch,
    /// The cost target the policy learns towards, in BitOps.
    pub target_bitops: f64,
    /// Tells so far.
    pub step: u64,
}

/// Why a strategy cannot run.
#[derive(Debug, thiserror::Error)]
pub enum StrategyError {
    /// An impossible setting (the message names the field).
    #[error("{0}")]
    Invalid(String),
    /// Saved state that does not fit this strategy or space.
    #[error("cannot restore the search state: {0}")]
    State(String),
    /// The space is too large for this strategy.
    #[error(transparent)]
    TooLarge(#[from] spaces::TooLarge),
}

/// An ask/tell search strategy.
///
/// The driver repeatedly calls [`Strategy::ask`], evaluates the members it gets (possibly in
/// parallel, in any order), and hands the results back with [`Strategy::tell`], until
/// [`Strategy::finished`]. [`Strategy::save`] and [`Strategy::restore`] let an interrupted
/// search continue exactly: restoring the state saved after the k-th `tell` and continuing gives
/// the same members as an uninterrupted run.
pub trait Strategy {
    /// A short name (`random`, `exhaustive`, `nsga2`, `fliqs`).
    fn name(&self) -> &'static str;
    /// Up to `n` members to evaluate next; empty when the strategy has nothing more to ask.
    fn ask(&mut self, space: &Space, n: usize) -> Vec<Arch>;
    /// The results of members returned by `ask`.
    fn tell(&mut self, space: &Space, trials: &[Trial]);
    /// Whether the strategy is done (its budget is spent or it has converged).
    fn finished(&self) -> bool;
    /// The strategy's full state.
    fn save(&self) -> serde_json::Value;
    /// Restores a state written by [`Strategy::save`].
    fn restore(&mut self, state: serde_json::Value) -> Result<(), StrategyError>;
    /// The member the strategy itself recommends (e.g. the FLIQS policy's argmax), if any.
    fn recommendation(&self, _space: &Space) -> Option<Arch> {
        None
    }
    /// Where the strategy's learned policy stands, if it learns one.
    fn policy(&self, _space: &Space) -> Option<PolicyState> {
        None
    }
}
