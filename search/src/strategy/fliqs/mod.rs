//! FLIQS-style REINFORCE controller (Dotzel et al., 2023; the policy and rewards of TuNAS and
//! MnasNet): one categorical policy per decision of the space, trained with REINFORCE, an EMA
//! baseline and Adam on the logits, with a cosine-scheduled entropy penalty that collapses the
//! policy onto one member. Pure Rust: no tensors.
//!
//! # The algorithm, as implemented
//!
//! - **Policy.** One vector of logits per searched decision (the space's decisions already
//!   reflect its tie groups), initialized to 0; `π_d = softmax(logits_d / temperature)`. With
//!   [`FliqsScope::FormatsOnly`] only the number-format decisions are searched and every other
//!   decision is fixed to the choice of the space's largest member.
//! - **Steps.** A step is one [`Strategy::tell`] (one batch of trials, normally the members of
//!   one [`Strategy::ask`]). The budget is [`FliqsConfig::steps`] tells, after which the
//!   controller is finished. The steps `t < delay` are the warm-up: `ask` samples every searched
//!   decision uniformly and `tell` leaves the policy (logits and Adam moments) untouched.
//! - **Reward** of a trial: [`RewardKind::reward`] of its accuracy `Q` and its BitOps `C` (both
//!   as the evaluator reported them) against the target `C_T` ([`CostTarget`]).
//! - **Baseline** ([`FliqsBaseline`]). `Ema` (FLIQS's): an exponential moving average of the
//!   batch-mean reward: `R̄ ← d·R̄ + (1 − d)·mean(R)`, updated after every tell *including the
//!   warm-up tells*. The policy is uniform until the first update (its logits are 0), so the
//!   warm-up's uniform samples estimate exactly the baseline the first policy update needs.
//!   Before the first tell there is no baseline; the first batch's mean reward initializes it
//!   (so the first batch's advantages are centred on its own mean). Advantages `A_i = R_i − R̄`
//!   use the baseline from before the batch's own update. `LeaveOneOut` (a qnas extension):
//!   `A_i = R_i − mean_{j≠i} R_j = n/(n−1)·(R_i − mean(R))` over the batch's `n` trials
//!   (Kool, van Hoof and Welling, 2019), unbiased and without the EMA's lag (over a few hundred
//!   updates the EMA trails a rising reward by several points, so every sample of the policy
//!   is reinforced and the policy collapses onto whatever it happens to sample). A batch of one
//!   trial falls back to the EMA, which is kept up to date either way.
//! - **Loss and gradient.** For one trial `i` with active decisions `D_i` (per
//!   [`Space::active_mask`], searched decisions only):
//!   `L_i = −A_i·Σ_{d∈D_i} log π_d(a_{i,d}) + β_H(t)·Σ_{d∈D_i} H(π_d)`, i.e. the log-probability
//!   of the member (summed over its decisions) and the entropy of the decisions it uses. One
//!   tell makes **one** update with the average `(1/n)·Σ_i ∇L_i` over its `n` trials (a
//!   decision inactive in trial `i` contributes zero to that trial's term). methods.md writes
//!   "mean log π(a)": the mean is over the batch here, the sum over a member's decisions.
//!   The gradients are analytic: `∂ log π_a/∂z_k = (1[k = a] − π_k)/τ` and
//!   `∂H/∂z_k = −π_k (log π_k + H)/τ`.
//! - **Entropy schedule** ([`entropy_weight`]): `β_H(t) = 0` for `t < t_d`, then
//!   `β_max·(1 − cos(π·(t − t_d)/(T − t_d)))/2`. The entropy is *added* to the loss, so the
//!   growing coefficient minimizes it and the policy collapses. With
//!   [`FliqsConfig::collapse_within`] `= Some(tol)` (a qnas extension) the coefficient is 0 on
//!   every update whose argmax (before the update) misses the target by more than `tol` (see
//!   [`RewardKind::within`]): Adam turns even a small, steady entropy gradient into full-size
//!   steps, so FLIQS's schedule collapses a policy of a few hundred updates wherever its argmax
//!   is, and a collapsed policy samples only its argmax, whose advantage is 0, so the cost term
//!   can no longer move it. Held off, the policy keeps sampling other members until its argmax
//!   is on target; where no member is, the schedule never applies.
//! - **Adam** per decision (β1, β2, ε, bias correction), with its own step counter. A decision
//!   that no trial of a batch uses has no gradient in that batch and is skipped entirely, as
//!   PyTorch skips a parameter without a gradient: its logits, moments and step counter stay
//!   as they are (its momentum does not keep moving it).
//! - **Recommendation**: the argmax of every searched decision (ties to the cheaper choice).
//!
//! # State
//!
//! [`Strategy::save`] writes the whole controller (config, resolved target, decision
//! fingerprint, logits, Adam moments, baseline, step, RNG) as JSON in which every
//! floating-point number is written as `{"f64": "<shortest round-trip decimal>"}`: serde_json
//! parses plain JSON numbers with up to one ulp of error, and a resumed search must continue bit
//! for bit. Restoring the state saved after the k-th tell into a fresh controller and continuing
//! gives the same members and the same logits as an uninterrupted run.

mod config;
#[cfg(test)]
mod dynamics_tests;
mod policy;
mod reward;
mod state;
#[cfg(test)]
mod tests;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use spaces::{Arch, Rng, Space};

use super::{PolicyState, Strategy, StrategyError, Trial};
pub use config::{CostTarget, FliqsBaseline, FliqsConfig, FliqsScope};
pub use policy::entropy_weight;
use policy::{Head, Policy, adam_step, policy_gradient, softmax};
pub use reward::RewardKind;
use state::{exact_floats, plain_floats};

fn invalid(msg: impl Into<String>) -> StrategyError {
    StrategyError::Invalid(msg.into())
}

/// A decision's name and number of choices: what the state must match to be restored.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct DecisionId {
    name: String,
    choices: usize,
}

/// The FLIQS REINFORCE controller.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fliqs {
    version: u32,
    config: FliqsConfig,
    target_bitops: f64,
    decisions: Vec<DecisionId>,
    heads: Vec<Head>,
    baseline: Option<f64>,
    step: u64,
    rng: Rng,
}

const STATE_VERSION: u32 = 1;

impl Fliqs {
    /// A controller for `space`, with every logit 0. Errors on impossible settings.
    pub fn new(space: &Space, config: FliqsConfig) -> Result<Self, StrategyError> {
        config.validate()?;
        let target_bitops = config.target.resolve(space)?;
        let decisions = space.decisions();
        let largest = space.encode(&space.largest());
        let heads: Vec<Head> = decisions
            .iter()
            .zip(&largest)
            .map(|(d, &fixed)| {
                if config.scope == FliqsScope::FormatsOnly && !d.kind.is_format() {
                    Head::Fixed(fixed)
                } else {
                    let k = d.choices.len();
                    Head::Learned(Policy {
                        logits: vec![0.0; k],
                        m: vec![0.0; k],
                        v: vec![0.0; k],
                        adam_steps: 0,
                    })
                }
            })
            .collect();
        if !heads.iter().any(|h| matches!(h, Head::Learned(_))) {
            return Err(invalid(format!(
                "scope: {:?}: the space has no decision to search",
                config.scope
            )));
        }
        Ok(Fliqs {
            version: STATE_VERSION,
            rng: Rng::new(config.seed),
            decisions: decisions
                .iter()
                .map(|d| DecisionId {
                    name: d.name.clone(),
                    choices: d.choices.len(),
                })
                .collect(),
            config,
            target_bitops,
            heads,
            baseline: None,
            step: 0,
        })
    }

    /// The settings.
    pub fn config(&self) -> &FliqsConfig {
        &self.config
    }

    /// The resolved cost target `C_T` in BitOps.
    pub fn target_bitops(&self) -> f64 {
        self.target_bitops
    }

    /// Tells done so far (warm-up included).
    pub fn step(&self) -> u64 {
        self.step
    }

    /// Whether the next tell is still in the warm-up (no policy update).
    pub fn in_warmup(&self) -> bool {
        self.step < self.config.delay
    }

    /// The EMA reward baseline, `None` before the first tell.
    pub fn baseline(&self) -> Option<f64> {
        self.baseline
    }

    /// The entropy coefficient the next tell uses.
    pub fn entropy_coefficient(&self) -> f64 {
        entropy_weight(
            self.config.entropy_max,
            self.config.delay,
            self.config.steps,
            self.step,
        )
    }

    /// The logits of every decision in encoding order; `None` for a decision the scope fixes.
    pub fn logits(&self) -> Vec<Option<Vec<f64>>> {
        self.heads
            .iter()
            .map(|h| match h {
                Head::Fixed(_) => None,
                Head::Learned(p) => Some(p.logits.clone()),
            })
            .collect()
    }

    /// The policy's probabilities of every decision in encoding order (a fixed decision puts
    /// probability 1 on its choice).
    pub fn probabilities(&self) -> Vec<Vec<f64>> {
        self.heads
            .iter()
            .zip(&self.decisions)
            .map(|(h, d)| match h {
                Head::Fixed(c) => (0..d.choices).map(|i| f64::from(i == *c)).collect(),
                Head::Learned(p) => softmax(&p.logits, self.config.temperature),
            })
            .collect()
    }

    /// Whether the next update applies the entropy term: always without
    /// [`FliqsConfig::collapse_within`], else when the policy's argmax meets the target within
    /// it.
    pub fn collapse_allowed(&self, space: &Space) -> Result<bool, StrategyError> {
        let Some(tolerance) = self.config.collapse_within else {
            return Ok(true);
        };
        let argmax = self
            .recommendation(space)
            .ok_or_else(|| invalid("the policy's argmax is not a member of the space"))?;
        let bitops = space
            .cost(&argmax)
            .map_err(|e| invalid(format!("cannot cost the policy's argmax: {e}")))?
            .bitops;
        Ok(self
            .config
            .reward
            .within(tolerance, bitops as f64, self.target_bitops))
    }

    /// The reward of one evaluated member under this controller's settings.
    pub fn reward(&self, accuracy: f64, bitops: u64) -> f64 {
        self.config.reward.reward(
            self.config.beta,
            accuracy,
            bitops as f64,
            self.target_bitops,
        )
    }

    /// The probability that the current policy samples `arch` (the product over its active
    /// decisions). Warm-up sampling is uniform whatever this says.
    pub fn probability(&self, space: &Space, arch: &Arch) -> Result<f64, StrategyError> {
        self.check_space(space)?;
        space
            .validate(arch)
            .map_err(|e| invalid(format!("not a member of the space: {e}")))?;
        let enc = space.encode(arch);
        let mask = space.active_mask(&enc);
        let probs = self.probabilities();
        Ok(enc
            .iter()
            .zip(&mask)
            .zip(&probs)
            .filter(|((_, active), _)| **active)
            .map(|((&c, _), p)| p[c])
            .product())
    }

    fn check_space(&self, space: &Space) -> Result<(), StrategyError> {
        let decisions = space.decisions();
        let same = decisions.len() == self.decisions.len()
            && decisions
                .iter()
                .zip(&self.decisions)
                .all(|(d, id)| d.name == id.name && d.choices.len() == id.choices);
        if same {
            Ok(())
        } else {
            Err(invalid(
                "the space's decisions differ from those the controller was built for",
            ))
        }
    }

    /// [`Strategy::ask`] with an error when `space` is not the controller's space.
    pub fn try_ask(&mut self, space: &Space, n: usize) -> Result<Vec<Arch>, StrategyError> {
        self.check_space(space)?;
        if self.finished() {
            return Ok(Vec::new());
        }
        let warmup = self.in_warmup();
        let probs = self.probabilities();
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            let choices: Vec<usize> = self
                .heads
                .iter()
                .zip(&probs)
                .map(|(h, p)| match h {
                    Head::Fixed(c) => *c,
                    Head::Learned(_) if warmup => self.rng.below(p.len()),
                    Head::Learned(_) => self.rng.weighted(p),
                })
                .collect();
            let arch = space
                .decode(&choices)
                .map_err(|e| invalid(format!("cannot decode a sample: {e}")))?;
            out.push(arch);
        }
        Ok(out)
    }

    /// [`Strategy::tell`] with errors: a space that is not the controller's, a trial that is
    /// not a member of the space, a non-finite accuracy or reward, or a tell after the budget.
    /// On error nothing changes. An empty batch is no step.
    pub fn try_tell(&mut self, space: &Space, trials: &[Trial]) -> Result<(), StrategyError> {
        self.check_space(space)?;
        if trials.is_empty() {
            return Ok(());
        }
        if self.finished() {
            return Err(invalid(format!(
                "the budget of {} steps is spent",
                self.config.steps
            )));
        }
        let mut samples = Vec::with_capacity(trials.len());
        for (i, t) in trials.iter().enumerate() {
            space
                .validate(&t.arch)
                .map_err(|e| invalid(format!("trial {i} is not a member of the space: {e}")))?;
            if !t.eval.accuracy.is_finite() {
                return Err(invalid(format!(
                    "trial {i}: accuracy {} is not finite",
                    t.eval.accuracy
                )));
            }
            let r = self.reward(t.eval.accuracy, t.eval.bitops);
            if !r.is_finite() {
                return Err(invalid(format!(
                    "trial {i}: reward {r} is not finite (accuracy {}, {} BitOps)",
                    t.eval.accuracy, t.eval.bitops
                )));
            }
            let enc = space.encode(&t.arch);
            let mask = space.active_mask(&enc);
            samples.push((enc, mask, r));
        }
        let n = samples.len() as f64;
        let mean = samples.iter().map(|s| s.2).sum::<f64>() / n;
        let baseline = self.baseline.unwrap_or(mean);
        if !self.in_warmup() {
            let beta_h = if self.collapse_allowed(space)? {
                self.entropy_coefficient()
            } else {
                0.0
            };
            let leave_one_out =
                self.config.baseline == FliqsBaseline::LeaveOneOut && samples.len() > 1;
            let advantage = |r: f64| {
                if leave_one_out {
                    (r - mean) * n / (n - 1.0)
                } else {
                    r - baseline
                }
            };
            let cfg = self.config.clone();
            for (d, head) in self.heads.iter_mut().enumerate() {
                let Head::Learned(policy) = head else {
                    continue;
                };
                let grad = policy_gradient(
                    policy,
                    &cfg,
                    beta_h,
                    samples
                        .iter()
                        .filter(|s| s.1[d])
                        .map(|s| (s.0[d], advantage(s.2))),
                    n,
                );
                if let Some(g) = grad {
                    adam_step(policy, &cfg, &g);
                }
            }
        }
        let decay = self.config.baseline_decay;
        self.baseline = Some(decay * baseline + (1.0 - decay) * mean);
        self.step += 1;
        Ok(())
    }
}

impl Strategy for Fliqs {
    fn name(&self) -> &'static str {
        "fliqs"
    }

    /// `n` members from the current policy (uniform during the warm-up); empty when the
    /// budget is spent or `space` is not the controller's space (see [`Fliqs::try_ask`]).
    fn ask(&mut self, space: &Space, n: usize) -> Vec<Arch> {
        self.try_ask(space, n).unwrap_or_default()
    }

    /// One REINFORCE step on the batch; a batch [`Fliqs::try_tell`] refuses is ignored.
    fn tell(&mut self, space: &Space, trials: &[Trial]) {
        // The trait cannot return the error; `try_tell` leaves the state unchanged on error.
        let _ = self.try_tell(space, trials);
    }

    fn finished(&self) -> bool {
        self.step >= self.config.steps
    }

    fn save(&self) -> Value {
        // Serializing plain data (no maps with non-string keys) cannot fail.
        exact_floats(serde_json::to_value(self).unwrap_or(Value::Null))
    }

    fn restore(&mut self, state: Value) -> Result<(), StrategyError> {
        let back: Fliqs = serde_json::from_value(plain_floats(state)?)
            .map_err(|e| StrategyError::State(e.to_string()))?;
        if back.version != STATE_VERSION {
            return Err(StrategyError::State(format!(
                "state version {} (this qnas reads {STATE_VERSION})",
                back.version
            )));
        }
        back.config
            .validate()
            .map_err(|e| StrategyError::State(e.to_string()))?;
        if back.decisions != self.decisions {
            return Err(StrategyError::State(
                "it was saved for a space with other decisions".into(),
            ));
        }
        let consistent = back.heads.len() == back.decisions.len()
            && back
                .heads
                .iter()
                .zip(&back.decisions)
                .all(|(h, d)| match h {
                    Head::Fixed(c) => *c < d.choices,
                    Head::Learned(p) => {
                        p.logits.len() == d.choices
                            && p.m.len() == d.choices
                            && p.v.len() == d.choices
                    }
                });
        if !consistent {
            return Err(StrategyError::State(
                "its policy does not match its decisions".into(),
            ));
        }
        *self = back;
        Ok(())
    }

    fn recommendation(&self, space: &Space) -> Option<Arch> {
        self.check_space(space).ok()?;
        let choices: Vec<usize> = self
            .heads
            .iter()
            .map(|h| match h {
                Head::Fixed(c) => *c,
                // First maximum: ties go to the cheaper choice.
                Head::Learned(p) => {
                    p.logits
                        .iter()
                        .enumerate()
                        .fold((0, f64::NEG_INFINITY), |best, (i, &z)| {
                            if z > best.1 { (i, z) } else { best }
                        })
                        .0
                }
            })
            .collect();
        space.decode(&choices).ok()
    }

    fn policy(&self, space: &Space) -> Option<PolicyState> {
        let argmax = self.recommendation(space)?;
        let (mut entropy, mut max_entropy) = (0.0, 0.0);
        for h in &self.heads {
            if let Head::Learned(p) = h {
                let probs = softmax(&p.logits, self.config.temperature);
                entropy -= probs
                    .iter()
                    .filter(|q| **q > 0.0)
                    .map(|q| q * q.ln())
                    .sum::<f64>();
                max_entropy += (probs.len() as f64).ln();
            }
        }
        Some(PolicyState {
            entropy,
            max_entropy,
            argmax,
            target_bitops: self.target_bitops,
            step: self.step,
        })
    }
}
