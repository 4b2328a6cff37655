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
//! - **Baseline.** An exponential moving average of the batch-mean reward:
//!   `R̄ ← d·R̄ + (1 − d)·mean(R)`, updated after every tell *including the warm-up tells*. The
//!   policy is uniform until the first update (its logits are 0), so the warm-up's uniform
//!   samples estimate exactly the baseline the first policy update needs. Before the first tell
//!   there is no baseline; the first batch's mean reward initializes it (so the first batch's
//!   advantages are centred on its own mean). Advantages `A_i = R_i − R̄` use the baseline from
//!   before the batch's own update.
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
//!   growing coefficient minimizes it and the policy collapses.
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

use serde::{Deserialize, Serialize};
use serde_json::{Map, Number, Value};
use spaces::{Arch, Rng, Space};

use super::{Strategy, StrategyError, Trial};

/// Which decisions the controller searches.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum FliqsScope {
    /// Every decision (architecture and formats: FLIQNAS).
    All,
    /// Only the number-format decisions (FLIQS); the others take the largest member's choice.
    FormatsOnly,
}

/// The reward of a member of accuracy `Q` and BitOps `C` against the target `C_T`.
///
/// Sign convention: `β` is written exactly as in each formula. For [`RewardKind::Absolute`]
/// and [`RewardKind::OneSided`] it is a penalty weight, `β ≥ 0`; for
/// [`RewardKind::SoftExponential`] and [`RewardKind::HardExponential`] it is the exponent in
/// MnasNet's convention, `β ≤ 0` (e.g. `−0.07`). The other sign would reward cost, and is
/// refused by [`Fliqs::new`].
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

    fn penalty_weight(self) -> bool {
        matches!(self, RewardKind::Absolute | RewardKind::OneSided)
    }
}

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
    /// `β_max` of the entropy schedule (≥ 0). Default 0.1 (a qnas choice, not from the paper).
    #[serde(default = "default_entropy_max")]
    pub entropy_max: f64,
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
            entropy_max: default_entropy_max(),
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

fn invalid(msg: impl Into<String>) -> StrategyError {
    StrategyError::Invalid(msg.into())
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

/// The entropy coefficient `β_H(t)` at step `t`: 0 before `delay`, then
/// `β_max·(1 − cos(π·(t − delay)/(steps − delay)))/2`, which is `β_max` at `t = steps`.
pub fn entropy_weight(entropy_max: f64, delay: u64, steps: u64, t: u64) -> f64 {
    if t < delay || steps <= delay {
        return 0.0;
    }
    let progress = ((t - delay) as f64 / (steps - delay) as f64).min(1.0);
    entropy_max * (1.0 - (std::f64::consts::PI * progress).cos()) / 2.0
}

/// `softmax(logits / temperature)`, numerically stable.
fn softmax(logits: &[f64], temperature: f64) -> Vec<f64> {
    let max = logits.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let exps: Vec<f64> = logits
        .iter()
        .map(|z| ((z - max) / temperature).exp())
        .collect();
    let total: f64 = exps.iter().sum();
    exps.into_iter().map(|e| e / total).collect()
}

/// The learned part of one decision: logits and Adam state.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Policy {
    logits: Vec<f64>,
    m: Vec<f64>,
    v: Vec<f64>,
    adam_steps: u64,
}

/// One decision as the controller sees it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
enum Head {
    /// Not searched: always this choice.
    Fixed(usize),
    /// Searched.
    Learned(Policy),
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
            let beta_h = self.entropy_coefficient();
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
                        .map(|s| (s.0[d], s.2 - baseline)),
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

/// The gradient of the batch loss with respect to one decision's logits: the average over
/// `n` trials of `−A·∇log π(a) + β_H·∇H(π)`, summed over the trials where the decision is
/// active (`(choice, advantage)` pairs). `None` when no trial uses the decision.
fn policy_gradient(
    policy: &Policy,
    cfg: &FliqsConfig,
    beta_h: f64,
    active: impl Iterator<Item = (usize, f64)>,
    n: f64,
) -> Option<Vec<f64>> {
    let tau = cfg.temperature;
    let pi = softmax(&policy.logits, tau);
    let log_pi: Vec<f64> = pi
        .iter()
        .map(|&p| if p > 0.0 { p.ln() } else { 0.0 })
        .collect();
    let entropy: f64 = -pi.iter().zip(&log_pi).map(|(p, l)| p * l).sum::<f64>();
    // ∂H/∂z_k = −π_k (log π_k + H) / τ, the same for every trial.
    let d_entropy: Vec<f64> = pi
        .iter()
        .zip(&log_pi)
        .map(|(p, l)| -p * (l + entropy) / tau)
        .collect();
    let mut grad = vec![0.0; pi.len()];
    let mut used = false;
    for (choice, advantage) in active {
        used = true;
        for (k, g) in grad.iter_mut().enumerate() {
            let d_log_pi = (f64::from(k == choice) - pi[k]) / tau;
            *g += -advantage * d_log_pi + beta_h * d_entropy[k];
        }
    }
    used.then(|| grad.into_iter().map(|g| g / n).collect())
}

/// One Adam step (with bias correction) on a decision's logits.
fn adam_step(policy: &mut Policy, cfg: &FliqsConfig, grad: &[f64]) {
    policy.adam_steps += 1;
    let t = policy.adam_steps as i32;
    let (b1, b2) = (cfg.adam_beta1, cfg.adam_beta2);
    let c1 = 1.0 - b1.powi(t);
    let c2 = 1.0 - b2.powi(t);
    for (k, &g) in grad.iter().enumerate() {
        policy.m[k] = b1 * policy.m[k] + (1.0 - b1) * g;
        policy.v[k] = b2 * policy.v[k] + (1.0 - b2) * g * g;
        let m_hat = policy.m[k] / c1;
        let v_hat = policy.v[k] / c2;
        policy.logits[k] -= cfg.learning_rate * m_hat / (v_hat.sqrt() + cfg.adam_epsilon);
    }
}

/// Replaces every floating-point number by `{"f64": "<shortest round-trip decimal>"}`.
fn exact_floats(v: Value) -> Value {
    match v {
        Value::Number(n) if !n.is_u64() && !n.is_i64() => {
            let f = n.as_f64().unwrap_or(f64::NAN);
            let mut m = Map::new();
            m.insert("f64".into(), Value::String(format!("{f:?}")));
            Value::Object(m)
        }
        Value::Array(a) => Value::Array(a.into_iter().map(exact_floats).collect()),
        Value::Object(o) => {
            Value::Object(o.into_iter().map(|(k, v)| (k, exact_floats(v))).collect())
        }
        other => other,
    }
}

/// The inverse of [`exact_floats`].
fn plain_floats(v: Value) -> Result<Value, StrategyError> {
    Ok(match v {
        Value::Object(o) if o.len() == 1 && o.contains_key("f64") => {
            let text = o["f64"]
                .as_str()
                .ok_or_else(|| StrategyError::State("an `f64` entry is not a string".into()))?;
            let f: f64 = text
                .parse()
                .map_err(|_| StrategyError::State(format!("`{text}` is not a number")))?;
            Value::Number(
                Number::from_f64(f)
                    .ok_or_else(|| StrategyError::State(format!("`{text}` is not finite")))?,
            )
        }
        Value::Array(a) => Value::Array(a.into_iter().map(plain_floats).collect::<Result<_, _>>()?),
        Value::Object(o) => Value::Object(
            o.into_iter()
                .map(|(k, v)| Ok((k, plain_floats(v)?)))
                .collect::<Result<_, StrategyError>>()?,
        ),
        other => other,
    })
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::strategy::Evaluation;
    use spaces::DecisionKind;

    const SPACE: &str = r#"(
        version: 1,
        input: (channels: 1, height: 8, width: 8),
        classes: 2,
        stem: (width: [4, 8]),
        stages: [(block: ConvBnRelu, depth: [1, 2], width: [8, 16], kernel: [1, 3], stride: 1)],
        quantization: (
            weights: [Int(2), Int(4), Int(8)],
            activations: [Int(2), Int(4), Int(8)],
            tie: Block,
            tie_weights_activations: true,
        ),
    )"#;

    fn space() -> Space {
        Space::parse(SPACE, "fliqs-test.ron", "fliqs-test").unwrap()
    }

    /// A synthetic accuracy: 0.5 plus a bonus per active decision and choice.
    fn quality(space: &Space, arch: &Arch) -> f64 {
        let enc = space.encode(arch);
        let mask = space.active_mask(&enc);
        let decisions = space.decisions();
        let mut q = 0.2;
        for ((d, &c), &active) in decisions.iter().zip(&enc).zip(&mask) {
            if !active {
                continue;
            }
            q += match (&d.kind, c) {
                (k, _) if k.is_format() => [0.0, 0.06, 0.09][c],
                (DecisionKind::Width { .. } | DecisionKind::StemWidth, 1) => 0.08,
                (DecisionKind::Kernel { .. }, 1) => 0.08,
                (DecisionKind::Depth { .. }, 1) => 0.08,
                _ => 0.0,
            };
        }
        q
    }

    fn evaluate(space: &Space, archs: Vec<Arch>) -> Vec<Trial> {
        archs
            .into_iter()
            .map(|arch| Trial {
                eval: Evaluation {
                    accuracy: quality(space, &arch).clamp(0.0, 1.0),
                    bitops: space.cost(&arch).unwrap().bitops,
                },
                arch,
            })
            .collect()
    }

    fn config() -> FliqsConfig {
        FliqsConfig {
            delay: 10,
            steps: 300,
            samples_per_step: 8,
            entropy_max: 0.05,
            reward: RewardKind::Absolute,
            beta: 0.1,
            target: CostTarget::Fraction(0.3),
            seed: 7,
            ..FliqsConfig::default()
        }
    }

    /// Runs `f` to the end of its budget; returns every batch it asked.
    fn run(space: &Space, f: &mut Fliqs) -> Vec<Vec<Arch>> {
        let mut asked = Vec::new();
        while !f.finished() {
            let archs = f.ask(space, f.config().samples_per_step);
            asked.push(archs.clone());
            f.try_tell(space, &evaluate(space, archs)).unwrap();
        }
        asked
    }

    fn policy(f: &Fliqs, name: &str) -> Policy {
        let d = f.decisions.iter().position(|d| d.name == name).unwrap();
        match &f.heads[d] {
            Head::Learned(p) => p.clone(),
            Head::Fixed(_) => panic!("{name} is fixed"),
        }
    }

    #[test]
    fn converges_to_the_unique_best_member() {
        let space = space();
        // The target: the largest architecture with int4 everywhere.
        let int4 = spaces::Format::Int(4);
        let all_int4 = space
            .with_uniform_formats(&space.largest(), int4, int4)
            .unwrap();
        let cfg = FliqsConfig {
            learning_rate: 0.03,
            entropy_max: 0.02,
            steps: 400,
            samples_per_step: 16,
            target: CostTarget::BitOps(space.cost(&all_int4).unwrap().bitops),
            ..config()
        };
        let mut f = Fliqs::new(&space, cfg.clone()).unwrap();
        // The best member by brute force, with a margin so that it is unambiguous.
        let mut scored: Vec<(f64, Arch)> = space
            .enumerate(100_000)
            .unwrap()
            .into_iter()
            .map(|a| {
                let r = f.reward(quality(&space, &a), space.cost(&a).unwrap().bitops);
                (r, a)
            })
            .collect();
        scored.sort_by(|a, b| b.0.total_cmp(&a.0));
        assert!(scored.len() > 100, "{}", scored.len());
        assert!(scored[0].0 - scored[1].0 > 0.01, "{:?}", &scored[..2]);
        let best = scored[0].1.clone();
        // Not a trivial corner: neither the largest nor the smallest member.
        assert_ne!(best, space.largest());
        assert_ne!(best, space.smallest());

        let asked = run(&space, &mut f);
        assert_eq!(asked.len(), 400);
        assert!(f.finished());
        assert!(f.ask(&space, 3).is_empty());
        assert_eq!(f.recommendation(&space), Some(best.clone()));
        let p = f.probability(&space, &best).unwrap();
        assert!(p > 0.9, "probability of the best member {p}");

        // Deterministic with the seed; another seed samples differently.
        let mut again = Fliqs::new(&space, cfg.clone()).unwrap();
        assert_eq!(run(&space, &mut again), asked);
        assert_eq!(again, f);
        let mut other = Fliqs::new(&space, FliqsConfig { seed: 8, ..cfg }).unwrap();
        assert_ne!(other.ask(&space, 16), asked[0]);
    }

    #[test]
    fn reward_formulas_match_hand_values() {
        let (q, t) = (0.8, 100.0);
        let close = |a: f64, b: f64| assert!((a - b).abs() < 1e-9, "{a} vs {b}");
        // Over the target: C/C_T = 1.5.
        close(RewardKind::Absolute.reward(0.2, q, 150.0, t), 0.7);
        close(RewardKind::OneSided.reward(0.2, q, 150.0, t), 0.7);
        close(
            RewardKind::SoftExponential.reward(-0.07, q, 150.0, t),
            0.7776131547347975,
        );
        close(
            RewardKind::HardExponential.reward(-0.07, q, 150.0, t),
            0.7776131547347975,
        );
        // Under the target: C/C_T = 0.5; only the two-sided rewards care.
        close(RewardKind::Absolute.reward(0.2, q, 50.0, t), 0.7);
        close(RewardKind::OneSided.reward(0.2, q, 50.0, t), 0.8);
        close(
            RewardKind::SoftExponential.reward(-0.07, q, 50.0, t),
            0.839773346898454,
        );
        close(RewardKind::HardExponential.reward(-0.07, q, 50.0, t), 0.8);
        // On target every reward is Q.
        for k in [
            RewardKind::Absolute,
            RewardKind::OneSided,
            RewardKind::SoftExponential,
            RewardKind::HardExponential,
        ] {
            close(
                k.reward(if k.penalty_weight() { 0.2 } else { -0.07 }, q, t, t),
                q,
            );
        }

        // The controller resolves a fraction against the largest member's BitOps.
        let space = space();
        let largest = space.cost(&space.largest()).unwrap().bitops;
        let f = Fliqs::new(&space, config()).unwrap();
        close(f.target_bitops(), 0.3 * largest as f64);
        close(f.reward(0.9, largest), 0.9 - 0.1 * (1.0 / 0.3 - 1.0));
        let g = Fliqs::new(
            &space,
            FliqsConfig {
                target: CostTarget::BitOps(1000),
                reward: RewardKind::HardExponential,
                beta: -0.07,
                ..config()
            },
        )
        .unwrap();
        close(g.target_bitops(), 1000.0);
        close(g.reward(0.8, 1500), 0.7776131547347975);
    }

    #[test]
    fn entropy_schedule() {
        let close = |a: f64, b: f64| assert!((a - b).abs() < 1e-12, "{a} vs {b}");
        close(entropy_weight(0.4, 100, 300, 0), 0.0);
        close(entropy_weight(0.4, 100, 300, 99), 0.0);
        close(entropy_weight(0.4, 100, 300, 100), 0.0);
        close(entropy_weight(0.4, 100, 300, 150), 0.05857864376269049);
        close(entropy_weight(0.4, 100, 300, 200), 0.2);
        close(entropy_weight(0.4, 100, 300, 300), 0.4);
        // The controller uses it at its step.
        let space = space();
        let mut f = Fliqs::new(
            &space,
            FliqsConfig {
                delay: 2,
                steps: 6,
                entropy_max: 0.4,
                ..config()
            },
        )
        .unwrap();
        let mut seen = Vec::new();
        while !f.finished() {
            seen.push(f.entropy_coefficient());
            let archs = f.ask(&space, 2);
            f.try_tell(&space, &evaluate(&space, archs)).unwrap();
        }
        let want = [
            0.0,
            0.0,
            0.0,
            0.05857864376269049,
            0.2,
            0.4 * (1.0 - (0.75 * std::f64::consts::PI).cos()) / 2.0,
        ];
        assert_eq!(seen.len(), want.len());
        for (a, b) in seen.iter().zip(want) {
            close(*a, b);
        }
    }

    #[test]
    fn warmup_samples_uniformly_and_leaves_the_policy_alone() {
        let space = space();
        let cfg = FliqsConfig {
            delay: 5,
            steps: 10,
            ..config()
        };
        let mut f = Fliqs::new(&space, cfg.clone()).unwrap();
        let fresh = f.clone();
        let mut ema: Option<f64> = None;
        for _ in 0..5 {
            assert!(f.in_warmup());
            let trials = evaluate(&space, f.ask(&space, 8));
            let mean = trials
                .iter()
                .map(|t| f.reward(t.eval.accuracy, t.eval.bitops))
                .sum::<f64>()
                / 8.0;
            f.try_tell(&space, &trials).unwrap();
            let b = ema.unwrap_or(mean);
            ema = Some(0.99 * b + (1.0 - 0.99) * mean);
        }
        assert_eq!(f.heads, fresh.heads, "warm-up changed the policy");
        assert_eq!(
            f.baseline(),
            ema,
            "the baseline follows the warm-up rewards"
        );
        assert!(!f.in_warmup());
        let trials = evaluate(&space, f.ask(&space, 8));
        f.try_tell(&space, &trials).unwrap();
        assert_ne!(
            f.heads, fresh.heads,
            "the first step after the warm-up learns"
        );

        // Warm-up samples are uniform even when the logits are not zero.
        let mut g = Fliqs::new(&space, FliqsConfig { delay: 1, ..cfg }).unwrap();
        for h in &mut g.heads {
            if let Head::Learned(p) = h {
                p.logits[0] = 50.0;
            }
        }
        let archs = g.ask(&space, 400);
        let width = space
            .decisions()
            .iter()
            .position(|d| d.name == "s0.width")
            .unwrap();
        let wide = archs.iter().filter(|a| space.encode(a)[width] == 1).count();
        assert!((150..250).contains(&wide), "{wide} of 400 wide");
        // After the warm-up the same logits put almost everything on choice 0.
        g.try_tell(&space, &evaluate(&space, archs)).unwrap();
        let archs = g.ask(&space, 400);
        assert!(archs.iter().all(|a| space.encode(a)[width] == 0));
    }

    #[test]
    fn resume_is_exact() {
        let space = space();
        let cfg = FliqsConfig {
            delay: 3,
            steps: 40,
            samples_per_step: 4,
            // Not short decimals, so that a lossy float round trip would show.
            temperature: 1.0 / 3.0 + 0.5,
            learning_rate: 0.1 / 3.0,
            ..config()
        };
        let mut whole = Fliqs::new(&space, cfg.clone()).unwrap();
        let all = run(&space, &mut whole);

        let mut first = Fliqs::new(&space, cfg.clone()).unwrap();
        let mut asked = Vec::new();
        for _ in 0..17 {
            let archs = first.ask(&space, 4);
            asked.push(archs.clone());
            first.tell(&space, &evaluate(&space, archs));
        }
        let text = serde_json::to_string(&first.save()).unwrap();
        let mut resumed = Fliqs::new(&space, cfg).unwrap();
        resumed
            .restore(serde_json::from_str(&text).unwrap())
            .unwrap();
        assert_eq!(resumed, first);
        asked.extend(run(&space, &mut resumed));
        assert_eq!(asked, all);
        assert_eq!(resumed.logits(), whole.logits());
        assert_eq!(resumed, whole);
        assert_eq!(resumed.save(), whole.save());
    }

    #[test]
    fn inactive_decisions_get_no_gradient() {
        let space = space();
        let mut f = Fliqs::new(
            &space,
            FliqsConfig {
                delay: 0,
                entropy_max: 1.0,
                ..config()
            },
        )
        .unwrap();
        let depth = space
            .decisions()
            .iter()
            .position(|d| d.name == "s0.depth")
            .unwrap();
        let with_depth = |f: &mut Fliqs, d: usize| -> Vec<Arch> {
            let mut out = Vec::new();
            while out.len() < 8 {
                out.extend(
                    f.ask(&space, 8)
                        .into_iter()
                        .filter(|a| space.encode(a)[depth] == d),
                );
            }
            out.truncate(8);
            out
        };
        // One-block members: the second block's kernel and formats are inactive.
        let archs = with_depth(&mut f, 0);
        f.try_tell(&space, &evaluate(&space, archs)).unwrap();
        for name in ["s0.b1.kernel", "fmt[s0.b1]"] {
            let p = policy(&f, name);
            assert_eq!(p.logits, vec![0.0; p.logits.len()], "{name}");
            assert_eq!(p.adam_steps, 0, "{name}");
            assert!(p.m.iter().chain(&p.v).all(|x| *x == 0.0), "{name}");
        }
        for name in ["s0.b0.kernel", "fmt[s0.b0]", "s0.width", "s0.depth"] {
            assert_eq!(policy(&f, name).adam_steps, 1, "{name}");
            assert!(policy(&f, name).logits.iter().any(|z| *z != 0.0), "{name}");
        }
        // Two-block members move the second block; a later one-block batch leaves it where it
        // is, momentum included.
        let archs = with_depth(&mut f, 1);
        f.try_tell(&space, &evaluate(&space, archs)).unwrap();
        let moved = policy(&f, "fmt[s0.b1]");
        assert_eq!(moved.adam_steps, 1);
        assert!(moved.logits.iter().any(|z| *z != 0.0));
        let archs = with_depth(&mut f, 0);
        f.try_tell(&space, &evaluate(&space, archs)).unwrap();
        assert_eq!(policy(&f, "fmt[s0.b1]"), moved);
        assert_eq!(policy(&f, "fmt[s0.b0]").adam_steps, 3);
    }

    #[test]
    fn gradient_matches_finite_differences() {
        // The analytic gradient of one decision against central differences of the loss.
        let cfg = FliqsConfig {
            temperature: 0.7,
            ..config()
        };
        let policy = Policy {
            logits: vec![0.3, -0.2, 0.9],
            m: vec![0.0; 3],
            v: vec![0.0; 3],
            adam_steps: 0,
        };
        let batch = [(0, 0.4), (2, -0.1), (2, 0.25)];
        let (beta_h, n) = (0.3, 4.0);
        let loss = |z: &[f64]| {
            let pi = softmax(z, cfg.temperature);
            let h: f64 = -pi.iter().map(|p| p * p.ln()).sum::<f64>();
            batch
                .iter()
                .map(|&(a, adv)| -adv * pi[a].ln() + beta_h * h)
                .sum::<f64>()
                / n
        };
        let g = policy_gradient(&policy, &cfg, beta_h, batch.iter().copied(), n).unwrap();
        for k in 0..3 {
            let mut hi = policy.logits.clone();
            let mut lo = policy.logits.clone();
            hi[k] += 1e-6;
            lo[k] -= 1e-6;
            let fd = (loss(&hi) - loss(&lo)) / 2e-6;
            assert!((g[k] - fd).abs() < 1e-7, "{k}: {} vs {fd}", g[k]);
        }
        assert!(policy_gradient(&policy, &cfg, beta_h, std::iter::empty(), n).is_none());
    }

    #[test]
    fn formats_only_fixes_the_architecture() {
        let space = space();
        let mut f = Fliqs::new(
            &space,
            FliqsConfig {
                scope: FliqsScope::FormatsOnly,
                delay: 0,
                ..config()
            },
        )
        .unwrap();
        let largest = space.encode(&space.largest());
        let decisions = space.decisions();
        for (d, l) in decisions.iter().zip(f.logits()) {
            assert_eq!(l.is_some(), d.kind.is_format(), "{}", d.name);
        }
        for _ in 0..5 {
            let archs = f.ask(&space, 8);
            for a in &archs {
                let enc = space.encode(a);
                for (i, d) in decisions.iter().enumerate() {
                    if !d.kind.is_format() {
                        assert_eq!(enc[i], largest[i], "{}", d.name);
                    }
                }
            }
            f.try_tell(&space, &evaluate(&space, archs)).unwrap();
        }
        assert!(
            f.logits()
                .iter()
                .flatten()
                .any(|l| l.iter().any(|z| *z != 0.0))
        );
        let rec = f.recommendation(&space).unwrap();
        assert_eq!(rec.stages, space.largest().stages);
    }

    #[test]
    fn impossible_settings_are_errors() {
        let space = space();
        let bad = [
            FliqsConfig {
                learning_rate: -0.05,
                ..config()
            },
            FliqsConfig {
                learning_rate: f64::NAN,
                ..config()
            },
            FliqsConfig {
                temperature: 0.0,
                ..config()
            },
            FliqsConfig {
                target: CostTarget::BitOps(0),
                ..config()
            },
            FliqsConfig {
                target: CostTarget::Fraction(0.0),
                ..config()
            },
            FliqsConfig {
                target: CostTarget::Fraction(-0.5),
                ..config()
            },
            FliqsConfig {
                steps: 0,
                delay: 0,
                ..config()
            },
            FliqsConfig {
                delay: 300,
                ..config()
            },
            FliqsConfig {
                samples_per_step: 0,
                ..config()
            },
            FliqsConfig {
                baseline_decay: 1.0,
                ..config()
            },
            FliqsConfig {
                adam_beta2: 1.0,
                ..config()
            },
            FliqsConfig {
                entropy_max: -0.1,
                ..config()
            },
            FliqsConfig {
                beta: -0.5,
                ..config()
            },
            FliqsConfig {
                reward: RewardKind::SoftExponential,
                beta: 0.07,
                ..config()
            },
        ];
        for cfg in bad {
            match Fliqs::new(&space, cfg.clone()) {
                Err(StrategyError::Invalid(msg)) => assert!(!msg.is_empty()),
                other => panic!("{cfg:?} gave {other:?}"),
            }
        }

        // Unknown fields are refused; every field has a default.
        assert!(serde_json::from_str::<FliqsConfig>(r#"{"learning_rat": 0.1}"#).is_err());
        assert_eq!(
            serde_json::from_str::<FliqsConfig>("{}").unwrap(),
            FliqsConfig::default()
        );
        assert!(FliqsConfig::default().validate().is_ok());
        let ron_cfg: FliqsConfig =
            ron::from_str("(reward: OneSided, target: BitOps(5000), steps: 20, delay: 2)").unwrap();
        assert_eq!(ron_cfg.target, CostTarget::BitOps(5000));

        // Bad tells and restores are errors that change nothing.
        let mut f = Fliqs::new(&space, config()).unwrap();
        let mut trials = evaluate(&space, f.ask(&space, 2));
        let before = f.clone();
        trials[1].eval.accuracy = f64::NAN;
        assert!(f.try_tell(&space, &trials).is_err());
        f.tell(&space, &trials);
        assert_eq!(f, before);
        let mut state = f.save();
        state["decisions"][0]["choices"] = 99.into();
        assert!(matches!(f.restore(state), Err(StrategyError::State(_))));
        assert!(matches!(
            f.restore(serde_json::json!({"step": 3})),
            Err(StrategyError::State(_))
        ));
        let other = Space::parse(
            &SPACE.replace("width: [4, 8]", "width: [4, 8, 12]"),
            "o.ron",
            "o",
        )
        .unwrap();
        assert!(f.try_ask(&other, 1).is_err());
        assert!(f.ask(&other, 1).is_empty());
        assert!(f.recommendation(&other).is_none());
        assert_eq!(f, before);

        // A spent budget refuses more tells.
        let mut g = Fliqs::new(
            &space,
            FliqsConfig {
                steps: 1,
                delay: 0,
                ..config()
            },
        )
        .unwrap();
        let trials = evaluate(&space, g.ask(&space, 2));
        g.try_tell(&space, &trials).unwrap();
        assert!(g.finished());
        assert!(g.try_tell(&space, &trials).is_err());
    }
}
