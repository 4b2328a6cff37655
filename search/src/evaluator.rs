//! What the search needs of the supernet: an [`Evaluator`] of members, and why one could
//! not be evaluated.

use spaces::Arch;
use stats::Accuracy;

/// Measures members: the one thing the search needs of the supernet.
pub trait Evaluator {
    /// The validation accuracy of each of `archs`, in order (an evaluator may measure them in
    /// parallel). Every member is distinct and valid for the space.
    fn evaluate(&mut self, archs: &[Arch]) -> Result<Vec<Accuracy>, EvaluationError>;
    /// How many members it measures at once (its parallel workers): a study's participant
    /// claims this many.
    fn capacity(&self) -> usize {
        1
    }
}

/// Why a member could not be evaluated.
#[derive(Clone, Debug, thiserror::Error)]
#[error("{message}")]
pub struct EvaluationError {
    /// The member.
    pub arch: Arch,
    /// Why.
    pub message: String,
}
