//! What a forward pass is for, passed explicitly to every layer that keeps running state.

/// The phase of a forward pass.
///
/// Layers with running state (batch norm statistics, activation ranges) take the phase as an
/// argument instead of inferring it from the device or from a stored flag, so that the same
/// module can be trained, recalibrated for one sub-network and evaluated without toggling
/// hidden state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Training: normalize / quantize with the statistics of the current batch and update the
    /// running state with the layer's own momentum.
    Train,
    /// Recalibration pass number `n` (counting from 0): use the statistics of the current batch
    /// and update the running state with momentum `1 / (n + 1)`, so that after `N` passes it is
    /// the plain average over the `N` batches (pass 0 replaces whatever was stored).
    Recalibrate(usize),
    /// Evaluation: use the running state, update nothing.
    Eval,
}

impl Phase {
    /// The momentum used to update running state in this phase, given the layer's training
    /// momentum; `None` in [`Phase::Eval`].
    pub fn momentum(self, train_momentum: f64) -> Option<f64> {
        match self {
            Phase::Train => Some(train_momentum),
            Phase::Recalibrate(n) => Some(1.0 / (n as f64 + 1.0)),
            Phase::Eval => None,
        }
    }

    /// True when the current batch's statistics are used (every phase but [`Phase::Eval`]).
    pub fn uses_batch_statistics(self) -> bool {
        !matches!(self, Phase::Eval)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recalibration_momentum_is_a_cumulative_average() {
        assert_eq!(Phase::Recalibrate(0).momentum(0.1), Some(1.0));
        assert_eq!(Phase::Recalibrate(3).momentum(0.1), Some(0.25));
        assert_eq!(Phase::Train.momentum(0.1), Some(0.1));
        assert_eq!(Phase::Eval.momentum(0.1), None);
        assert!(!Phase::Eval.uses_batch_statistics());
        assert!(Phase::Recalibrate(0).uses_batch_statistics());
    }
}
