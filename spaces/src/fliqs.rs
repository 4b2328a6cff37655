//! The FLIQS settings of a space file's `search` section (`search: (strategy: Fliqs, fliqs:
//! (...))`): how long and how the REINFORCE policy learns, its reward, and what it searches.
//! The controller itself is the search crate's; these are its settings as a user writes them,
//! validated with located errors like the rest of the file.

use serde::{Deserialize, Serialize};

use crate::error::Problem;
use crate::locate::FieldPath;

/// Which decisions the FLIQS policy searches.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum FliqsScope {
    /// Every decision, architecture and formats (FLIQNAS).
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
/// refused.
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

/// The baseline subtracted from each member's reward in the policy gradient.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum FliqsBaseline {
    /// FLIQS / TuNAS: an exponential moving average of the batch-mean reward (decay 0.99),
    /// updated after every update.
    Ema,
    /// A qnas extension: each member's reward against the mean reward of the *other* members of
    /// its batch (REINFORCE with a leave-one-out baseline, Kool et al. 2019), scaled by
    /// `n/(n−1)`. Unbiased and without lag; needs at least 2 samples per update.
    LeaveOneOut,
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

    /// Whether `β` is a penalty weight (≥ 0) rather than an exponent (≤ 0).
    pub fn penalty_weight(self) -> bool {
        matches!(self, RewardKind::Absolute | RewardKind::OneSided)
    }

    /// Whether the reward penalizes only exceeding the target (a cost below it is free).
    pub fn one_sided(self) -> bool {
        matches!(self, RewardKind::OneSided | RewardKind::HardExponential)
    }

    /// Whether a member at `bitops` meets `target` within the fraction `tolerance` as this
    /// reward sees the target: `|C/C_T − 1| ≤ tolerance` for the two-sided rewards, `C/C_T ≤ 1 +
    /// tolerance` for the one-sided ones.
    pub fn within(self, tolerance: f64, bitops: f64, target: f64) -> bool {
        let ratio = bitops / target;
        if self.one_sided() {
            ratio <= 1.0 + tolerance
        } else {
            (ratio - 1.0).abs() <= tolerance
        }
    }
}

/// `search.fliqs`: the FLIQS controller's settings. Every field has a default; unknown fields
/// are errors.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FliqsSettings {
    /// Policy updates per cost target (≥ 1). Default 300 (with the defaults below the policy
    /// settles on the default space's format decisions; `experiments/fliqs-defaults`).
    #[serde(default = "default_steps")]
    pub steps: u32,
    /// Members sampled (and measured) per policy update (≥ 1). Default 4.
    #[serde(default = "default_samples")]
    pub samples_per_step: u32,
    /// Warm-up updates: members are drawn uniformly and the policy does not learn (`< steps`).
    /// Default: a fifth of `steps`.
    #[serde(default)]
    pub warmup: Option<u32>,
    /// The reward. Default `Absolute` (FLIQS's).
    #[serde(default = "default_reward")]
    pub reward: RewardKind,
    /// Weight (≥ 0) or exponent (≤ 0) of the cost term, see [`RewardKind`]. Default 0.5.
    #[serde(default = "default_beta")]
    pub beta: f64,
    /// Largest weight of the entropy penalty (≥ 0), which collapses the policy onto one member:
    /// the cosine schedule raises it from 0 after the warm-up to this value at the last step.
    /// Default 0.1.
    #[serde(default = "default_entropy")]
    pub entropy: f64,
    /// A qnas extension: the entropy penalty applies only on updates where the policy's argmax
    /// meets the cost target within this fraction (`|C/C_T − 1| ≤ collapse_within`; for the
    /// one-sided rewards `C/C_T ≤ 1 + collapse_within`), so that the policy does not collapse
    /// before its cost is on target; `None` applies it on every update, as FLIQS does.
    /// Default `Some(0.1)`.
    #[serde(default = "default_collapse_within")]
    pub collapse_within: Option<f64>,
    /// The baseline of the policy gradient. Default `LeaveOneOut` (a qnas extension); `Ema` is
    /// FLIQS's.
    #[serde(default = "default_baseline")]
    pub baseline: FliqsBaseline,
    /// Adam learning rate on the policy's logits (> 0). Default 0.2.
    #[serde(default = "default_learning_rate")]
    pub learning_rate: f64,
    /// What the policy searches. Default `FormatsOnly` (FLIQS); `All` searches architecture
    /// and formats together (FLIQNAS).
    #[serde(default = "default_scope")]
    pub scope: FliqsScope,
}

fn default_steps() -> u32 {
    300
}
fn default_samples() -> u32 {
    4
}
fn default_reward() -> RewardKind {
    RewardKind::Absolute
}
fn default_beta() -> f64 {
    0.5
}
fn default_entropy() -> f64 {
    0.1
}
fn default_collapse_within() -> Option<f64> {
    Some(0.1)
}
fn default_baseline() -> FliqsBaseline {
    FliqsBaseline::LeaveOneOut
}
fn default_learning_rate() -> f64 {
    0.2
}
fn default_scope() -> FliqsScope {
    FliqsScope::FormatsOnly
}

impl Default for FliqsSettings {
    fn default() -> Self {
        FliqsSettings {
            steps: default_steps(),
            samples_per_step: default_samples(),
            warmup: None,
            reward: default_reward(),
            beta: default_beta(),
            entropy: default_entropy(),
            collapse_within: default_collapse_within(),
            baseline: default_baseline(),
            learning_rate: default_learning_rate(),
            scope: default_scope(),
        }
    }
}

impl FliqsSettings {
    /// The warm-up updates: as given, else a fifth of the steps.
    pub fn warmup_steps(&self) -> u32 {
        self.warmup.unwrap_or(self.steps / 5)
    }
}

/// Checks `search.fliqs`, reporting each problem at its field.
pub(crate) fn check_fliqs(f: &FliqsSettings, p: &FieldPath, problems: &mut Vec<Problem>) {
    let p = p.field("fliqs");
    if f.steps == 0 {
        problems.push(
            Problem::new(p.field("steps"), "0 policy updates")
                .help("expected at least 1, e.g. 300"),
        );
    }
    if f.samples_per_step == 0 {
        problems.push(
            Problem::new(p.field("samples_per_step"), "0 members per update")
                .help("expected at least 1, e.g. 4"),
        );
    }
    if f.steps > 0 && f.warmup_steps() >= f.steps {
        problems.push(
            Problem::new(
                p.field("warmup"),
                format!("{} warm-up updates of {} steps", f.warmup_steps(), f.steps),
            )
            .help("the warm-up must be shorter than `steps`, or the policy never learns"),
        );
    }
    if !f.beta.is_finite() {
        problems.push(Problem::new(p.field("beta"), format!("beta {}", f.beta)));
    } else if f.reward.penalty_weight() && f.beta < 0.0 {
        problems.push(
            Problem::new(
                p.field("beta"),
                format!("beta {} with the {:?} reward", f.beta, f.reward),
            )
            .help("it weighs a penalty: expected >= 0, e.g. 0.5"),
        );
    } else if !f.reward.penalty_weight() && f.beta > 0.0 {
        problems.push(
            Problem::new(
                p.field("beta"),
                format!("beta {} with the {:?} reward", f.beta, f.reward),
            )
            .help("it is MnasNet's exponent: expected <= 0, e.g. -0.07"),
        );
    }
    if !(f.entropy.is_finite() && f.entropy >= 0.0) {
        problems.push(
            Problem::new(p.field("entropy"), format!("entropy weight {}", f.entropy))
                .help("expected a number >= 0, e.g. 0.1"),
        );
    }
    if let Some(t) = f.collapse_within
        && !(t.is_finite() && t > 0.0)
    {
        problems.push(
            Problem::new(
                p.field("collapse_within"),
                format!("a cost tolerance of {t}"),
            )
            .help("expected a fraction of the target > 0, e.g. 0.1, or None for FLIQS's schedule"),
        );
    }
    if f.baseline == FliqsBaseline::LeaveOneOut && f.samples_per_step == 1 {
        problems.push(
            Problem::new(
                p.field("baseline"),
                "a leave-one-out baseline with 1 member per update",
            )
            .help("it needs samples_per_step >= 2; use Ema with one member per update"),
        );
    }
    if !(f.learning_rate.is_finite() && f.learning_rate > 0.0) {
        problems.push(
            Problem::new(
                p.field("learning_rate"),
                format!("learning rate {}", f.learning_rate),
            )
            .help("expected a number > 0, e.g. 0.05"),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_pass_and_each_bad_field_is_named() {
        let root = FieldPath::root().field("search");
        let mut problems = Vec::new();
        check_fliqs(&FliqsSettings::default(), &root, &mut problems);
        assert!(problems.is_empty(), "{problems:?}");
        let bad = [
            FliqsSettings {
                steps: 0,
                ..Default::default()
            },
            FliqsSettings {
                samples_per_step: 0,
                ..Default::default()
            },
            FliqsSettings {
                warmup: Some(300),
                ..Default::default()
            },
            FliqsSettings {
                beta: -0.1,
                ..Default::default()
            },
            FliqsSettings {
                reward: RewardKind::SoftExponential,
                beta: 0.07,
                ..Default::default()
            },
            FliqsSettings {
                entropy: f64::NAN,
                ..Default::default()
            },
            FliqsSettings {
                learning_rate: 0.0,
                ..Default::default()
            },
            FliqsSettings {
                collapse_within: Some(0.0),
                ..Default::default()
            },
            FliqsSettings {
                samples_per_step: 1,
                ..Default::default()
            },
        ];
        for (f, field) in bad.iter().zip([
            "steps",
            "samples_per_step",
            "warmup",
            "beta",
            "beta",
            "entropy",
            "learning_rate",
            "collapse_within",
            "baseline",
        ]) {
            let mut problems = Vec::new();
            check_fliqs(f, &root, &mut problems);
            assert!(
                problems
                    .iter()
                    .any(|p| format!("{:?}", p.path).contains(field)),
                "{field}: {problems:?}"
            );
        }
    }

    #[test]
    fn the_dynamics_settings_parse_and_round_trip() {
        let space = |fliqs: &str| {
            let src = format!(
                "(version: 1, input: (channels: 1, height: 8, width: 8), classes: 2,
                  stem: (width: [4]), stages: [(block: ConvBnRelu, depth: [1], width: [8])],
                  quantization: (weights: [Int(4), Int(8)], activations: [Int(4), Int(8)]),
                  search: (strategy: Fliqs, fliqs: ({fliqs})))"
            );
            crate::Space::parse(&src, "fliqs.ron", "fliqs").map(|s| s.search.fliqs)
        };
        let defaults = space("").unwrap();
        assert_eq!(defaults, FliqsSettings::default());
        assert_eq!(defaults.collapse_within, Some(0.1));
        assert_eq!(defaults.baseline, FliqsBaseline::LeaveOneOut);
        let fliqs = space("collapse_within: None, baseline: Ema").unwrap();
        assert_eq!(fliqs.collapse_within, None);
        assert_eq!(fliqs.baseline, FliqsBaseline::Ema);
        let tight = space("collapse_within: 0.05").unwrap();
        assert_eq!(tight.collapse_within, Some(0.05));
        for f in [fliqs, tight] {
            let json = serde_json::to_string(&f).unwrap();
            assert_eq!(serde_json::from_str::<FliqsSettings>(&json).unwrap(), f);
            let ron = ron::to_string(&f).unwrap();
            assert_eq!(
                ron::Options::default()
                    .with_default_extension(ron::extensions::Extensions::IMPLICIT_SOME)
                    .from_str::<FliqsSettings>(&ron)
                    .unwrap(),
                f
            );
        }
        assert!(space("collapse_within: -0.1").is_err());
        assert!(space("baseline: Mean").is_err());
    }

    #[test]
    fn within_is_two_sided_for_the_two_sided_rewards() {
        for kind in [RewardKind::Absolute, RewardKind::SoftExponential] {
            assert!(kind.within(0.1, 109.0, 100.0));
            assert!(kind.within(0.1, 91.0, 100.0));
            assert!(!kind.within(0.1, 111.0, 100.0));
            assert!(!kind.within(0.1, 89.0, 100.0));
        }
        for kind in [RewardKind::OneSided, RewardKind::HardExponential] {
            assert!(kind.within(0.1, 109.0, 100.0));
            assert!(kind.within(0.1, 10.0, 100.0));
            assert!(!kind.within(0.1, 111.0, 100.0));
        }
    }

    #[test]
    fn rewards_follow_their_formulas() {
        let r = RewardKind::Absolute.reward(0.5, 0.9, 150.0, 100.0);
        assert!((r - (0.9 - 0.25)).abs() < 1e-12);
        assert_eq!(RewardKind::OneSided.reward(0.5, 0.9, 50.0, 100.0), 0.9);
        let r = RewardKind::SoftExponential.reward(-0.07, 0.9, 200.0, 100.0);
        assert!((r - 0.9 * 2f64.powf(-0.07)).abs() < 1e-12);
        assert_eq!(
            RewardKind::HardExponential.reward(-0.07, 0.9, 50.0, 100.0),
            0.9
        );
    }
}
