//! The controller's settings ([`FliqsConfig`], [`CostTarget`]) and their validation.

use serde::{Deserialize, Serialize};
use spaces::Space;

use super::invalid;
use super::reward::RewardKind;
use crate::strategy::StrategyError;

pub use spaces::{FliqsBaseline, FliqsScope};

/// The cost target `C_T`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub enum CostTarget {
    /// An absolute number of BitOps (> 0).
    BitOps(u64),
    /// A fraction (> 0) of the BitOps of the space's largest member.
    Fraction(f64),
}

impl CostTarget {
    /// The target in BitOps for `space`.
    pub fn resolve(self, space: &Space) -> Result<f64, StrategyError> {
        match self {
            CostTarget::BitOps(0) => Err(invalid("target: BitOps(0): the cost target must be > 0")),
            CostTarget::BitOps(b) => Ok(b as f64),
            CostTarget::Fraction(f) if !(f.is_finite() && f > 0.0) => Err(invalid(format!(
                "target: Fraction({f}): the fraction of the largest member's BitOps must be > 0"
            ))),
            CostTarget::Fraction(f) => {
                let largest = space
                    .cost(&space.largest())
                    .map_err(|e| invalid(format!("target: cannot cost the largest member: {e}")))?
                    .bitops;
                let t = f * largest as f64;
                if t > 0.0 && t.is_finite() {
                    Ok(t)
                } else {
                    Err(invalid(format!(
                        "target: Fraction({f}) of the largest member's {largest} BitOps is not > 0"
                    )))
                }
            }
        }
    }
}

/// Settings of the FLIQS controller. Every field has a default; unknown fields are errors.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FliqsConfig {
    /// Which decisions are searched. Default `All`.
    #[serde(default = "default_scope")]
    pub scope: FliqsScope,
    /// Softmax temperature `τ` of the policy (> 0). Default 1.0.
    #[serde(default = "default_temperature")]
    pub temperature: f64,
    /// Adam learning rate on the logits (> 0). Default 0.05.
    #[serde(default = "default_learning_rate")]
    pub learning_rate: f64,
    /// Adam β1, in `[0, 1)`. Default 0.9.
    #[serde(default = "default_adam_beta1")]
    pub adam_beta1: f64,
    /// Adam β2, in `[0, 1)`. Default 0.999.
    #[serde(default = "default_adam_beta2")]
    pub adam_beta2: f64,
    /// Adam ε (> 0). Default 1e-8.
    #[serde(default = "default_adam_epsilon")]
    pub adam_epsilon: f64,
    /// Decay of the EMA reward baseline, in `[0, 1)`. Default 0.99.
    #[serde(default = "default_baseline_decay")]
    pub baseline_decay: f64,
    /// The baseline of the advantages: FLIQS's EMA, or (a qnas extension) the leave-one-out
    /// mean of the other members of the batch. Default `Ema`, also for a state saved before
    /// the setting existed.
    #[serde(default = "default_baseline")]
    pub baseline: FliqsBaseline,
    /// `β_max` of the entropy schedule (≥ 0). Default 0.1 (a qnas choice, not from the paper).
    #[serde(default = "default_entropy_max")]
    pub entropy_max: f64,
    /// A qnas extension: the entropy term applies only on updates whose argmax (before the
    /// update) meets the target within this fraction (see [`RewardKind::within`]); `None`
    /// (the default, also for a state saved before the setting existed) applies it always, as
    /// FLIQS does.
    #[serde(default)]
    pub collapse_within: Option<f64>,
    /// Warm-up tells `t_d` (uniform samples, no policy update), `< steps`. Default 500 (the
    /// public FLIQS code's default).
    #[serde(default = "default_delay")]
    pub delay: u64,
    /// Budget `T`: the number of tells (≥ 1). Default 5000.
    #[serde(default = "default_steps")]
    pub steps: u64,
    /// Members a driver should ask (and tell) per step (≥ 1); `ask(n)` honours any `n`.
    /// Default 1 (FLIQS samples one configuration per training step).
    #[serde(default = "default_samples_per_step")]
    pub samples_per_step: usize,
    /// The reward. Default `Absolute`.
    #[serde(default = "default_reward")]
    pub reward: RewardKind,
    /// Weight or exponent of the cost term (sign convention: [`RewardKind`]). Default 0.5.
    #[serde(default = "default_beta")]
    pub beta: f64,
    /// The cost target. Default `Fraction(0.5)` of the largest member's BitOps.
    #[serde(default = "default_target")]
    pub target: CostTarget,
    /// Seed of the sampler. Default 0.
    #[serde(default)]
    pub seed: u64,
}

fn default_scope() -> FliqsScope {
    FliqsScope::All
}
fn default_temperature() -> f64 {
    1.0
}
fn default_learning_rate() -> f64 {
    0.05
}
fn default_adam_beta1() -> f64 {
    0.9
}
fn default_adam_beta2() -> f64 {
    0.999
}
fn default_adam_epsilon() -> f64 {
    1e-8
}
fn default_baseline_decay() -> f64 {
    0.99
}
fn default_baseline() -> FliqsBaseline {
    FliqsBaseline::Ema
}
fn default_entropy_max() -> f64 {
    0.1
}
fn default_delay() -> u64 {
    500
}
fn default_steps() -> u64 {
    5000
}
fn default_samples_per_step() -> usize {
    1
}
fn default_reward() -> RewardKind {
    RewardKind::Absolute
}
fn default_beta() -> f64 {
    0.5
}
fn default_target() -> CostTarget {
    CostTarget::Fraction(0.5)
}

impl Default for FliqsConfig {
    fn default() -> Self {
        FliqsConfig {
            scope: default_scope(),
            temperature: default_temperature(),
            learning_rate: default_learning_rate(),
            adam_beta1: default_adam_beta1(),
            adam_beta2: default_adam_beta2(),
            adam_epsilon: default_adam_epsilon(),
            baseline_decay: default_baseline_decay(),
            baseline: default_baseline(),
            entropy_max: default_entropy_max(),
            collapse_within: None,
            delay: default_delay(),
            steps: default_steps(),
            samples_per_step: default_samples_per_step(),
            reward: default_reward(),
            beta: default_beta(),
            target: default_target(),
            seed: 0,
        }
    }
}

impl FliqsConfig {
    /// Checks every setting that does not need the space.
    pub fn validate(&self) -> Result<(), StrategyError> {
        let positive = |name: &str, v: f64| {
            if v.is_finite() && v > 0.0 {
                Ok(())
            } else {
                Err(invalid(format!("{name}: {v} must be a finite number > 0")))
            }
        };
        let unit = |name: &str, v: f64| {
            if (0.0..1.0).contains(&v) {
                Ok(())
            } else {
                Err(invalid(format!("{name}: {v} must be in [0, 1)")))
            }
        };
        positive("temperature", self.temperature)?;
        positive("learning_rate", self.learning_rate)?;
        unit("adam_beta1", self.adam_beta1)?;
        unit("adam_beta2", self.adam_beta2)?;
        positive("adam_epsilon", self.adam_epsilon)?;
        unit("baseline_decay", self.baseline_decay)?;
        if !(self.entropy_max.is_finite() && self.entropy_max >= 0.0) {
            return Err(invalid(format!(
                "entropy_max: {} must be a finite number >= 0",
                self.entropy_max
            )));
        }
        if let Some(t) = self.collapse_within
            && !(t.is_finite() && t > 0.0)
        {
            return Err(invalid(format!(
                "collapse_within: {t} must be a finite fraction > 0"
            )));
        }
        if self.steps == 0 {
            return Err(invalid("steps: 0: the budget must be at least one step"));
        }
        if self.delay >= self.steps {
            return Err(invalid(format!(
                "delay: {} must be smaller than steps ({}), or the policy never learns",
                self.delay, self.steps
            )));
        }
        if self.samples_per_step == 0 {
            return Err(invalid("samples_per_step: 0: must be at least 1"));
        }
        if !self.beta.is_finite() {
            return Err(invalid(format!("beta: {} must be finite", self.beta)));
        }
        if self.reward.penalty_weight() && self.beta < 0.0 {
            return Err(invalid(format!(
                "beta: {} must be >= 0 for the {:?} reward (it is the weight of a penalty)",
                self.beta, self.reward
            )));
        }
        if !self.reward.penalty_weight() && self.beta > 0.0 {
            return Err(invalid(format!(
                "beta: {} must be <= 0 for the {:?} reward (MnasNet's exponent, e.g. -0.07)",
                self.beta, self.reward
            )));
        }
        if let CostTarget::Fraction(f) = self.target
            && !(f.is_finite() && f > 0.0)
        {
            return Err(invalid(format!("target: Fraction({f}) must be > 0")));
        }
        if self.target == CostTarget::BitOps(0) {
            return Err(invalid("target: BitOps(0): the cost target must be > 0"));
        }
        Ok(())
    }
}
