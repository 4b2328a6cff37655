//! The effective settings of a search (the space file's `search` section with the command
//! line's overrides) and the strategy each stage runs.

use serde::{Deserialize, Serialize};
use spaces::{FliqsSettings, HawqSettings, SearchStrategy, Space};

use crate::strategy::exhaustive::Exhaustive;
use crate::strategy::fliqs::{CostTarget, Fliqs, FliqsConfig};
use crate::strategy::hawq::{Hawq, Sensitivity};
use crate::strategy::nsga2::{Nsga2, Nsga2Config};
use crate::strategy::random::RandomSearch;
use crate::strategy::{Strategy, StrategyError};

/// The effective settings of a search: the file's `search` section with the command line's
/// overrides.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Settings {
    /// Strategy.
    pub strategy: SearchStrategy,
    /// Members to evaluate besides the baselines; for FLIQS, members asked per target
    /// (`fliqs.steps` x `fliqs.samples_per_step`).
    pub budget: usize,
    /// Seed.
    pub seed: u64,
    /// FLIQS cost targets (fractions of the largest member's BitOps); one stage each. Other
    /// strategies run one stage.
    pub targets: Vec<f64>,
    /// FLIQS training mode (see [`spaces::SearchConfig::fliqs_training`]).
    pub fliqs_training: bool,
    /// The FLIQS controller's settings (FLIQS only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fliqs: Option<FliqsSettings>,
    /// How the HAWQ baseline's Hessian traces are estimated (HAWQ only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hawq: Option<HawqSettings>,
}

impl Settings {
    /// Where `self` (a saved search's settings) and `asked` differ, one `field (saved X,
    /// asked Y)` each; FLIQS's settings field by field (`fliqs.beta (saved 0.5, asked 1.0)`).
    pub fn differences(&self, asked: &Settings) -> Vec<String> {
        fn walk(prefix: &str, a: &serde_json::Value, b: &serde_json::Value, out: &mut Vec<String>) {
            use serde_json::Value;
            match (a, b) {
                (Value::Object(x), Value::Object(y)) => {
                    let mut keys: Vec<&String> = x.keys().chain(y.keys()).collect();
                    keys.sort();
                    keys.dedup();
                    for k in keys {
                        let null = Value::Null;
                        let name = if prefix.is_empty() {
                            k.clone()
                        } else {
                            format!("{prefix}.{k}")
                        };
                        walk(
                            &name,
                            x.get(k).unwrap_or(&null),
                            y.get(k).unwrap_or(&null),
                            out,
                        );
                    }
                }
                _ if a != b => {
                    let show = |v: &Value| match v {
                        Value::Null => "none".to_string(),
                        v => v.to_string(),
                    };
                    out.push(format!("{prefix} (saved {}, asked {})", show(a), show(b)));
                }
                _ => {}
            }
        }
        let mut out = Vec::new();
        walk(
            "",
            &serde_json::to_value(self).unwrap_or_default(),
            &serde_json::to_value(asked).unwrap_or_default(),
            &mut out,
        );
        out
    }

    /// The stages of the search: one per FLIQS target, else one.
    pub fn stages(&self) -> usize {
        if self.strategy == SearchStrategy::Fliqs {
            self.targets.len()
        } else {
            1
        }
    }
}

/// The strategy of stage `stage` (FLIQS: one per target, seeded `seed + stage`); HAWQ needs
/// the measured `sensitivity`.
pub fn make_strategy(
    space: &Space,
    s: &Settings,
    stage: usize,
    sensitivity: Option<&Sensitivity>,
) -> Result<Box<dyn Strategy>, StrategyError> {
    Ok(match s.strategy {
        SearchStrategy::Hawq => {
            let sens = sensitivity.ok_or_else(|| {
                StrategyError::Invalid(
                    "the hawq strategy needs the layers' measured sensitivities".into(),
                )
            })?;
            Box::new(Hawq::new(space, sens, s.budget)?)
        }
        SearchStrategy::Random => Box::new(RandomSearch::new(s.budget, s.seed)?),
        SearchStrategy::Exhaustive => Box::new(Exhaustive::new(space, s.budget.max(1))?),
        SearchStrategy::Nsga2 => {
            let population = s.budget.clamp(2, 16);
            let generations = (s.budget / population).max(1);
            Box::new(Nsga2::new(Nsga2Config {
                population,
                generations,
                budget: Some(s.budget),
                seed: s.seed,
                ..Nsga2Config::default()
            })?)
        }
        SearchStrategy::Fliqs => {
            // one ask of `samples_per_step` members per policy step
            let f = s.fliqs.clone().unwrap_or_default();
            let cfg = FliqsConfig {
                steps: u64::from(f.steps),
                delay: u64::from(f.warmup_steps()),
                samples_per_step: f.samples_per_step as usize,
                reward: f.reward,
                beta: f.beta,
                entropy_max: f.entropy,
                collapse_within: f.collapse_within,
                baseline: f.baseline,
                learning_rate: f.learning_rate,
                scope: f.scope,
                target: cost_target(s.targets[stage]),
                seed: s.seed.wrapping_add(stage as u64),
                ..FliqsConfig::default()
            };
            Box::new(Fliqs::new(space, cfg)?)
        }
    })
}

/// A target up to 1 is a fraction of the largest member's BitOps; above 1, a BitOps budget.
pub fn cost_target(t: f64) -> CostTarget {
    if t <= 1.0 {
        CostTarget::Fraction(t)
    } else {
        CostTarget::BitOps(t.round() as u64)
    }
}

/// Command-line overrides of a space file's `search` section; `None` keeps the file's value.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Overrides {
    /// Strategy.
    pub strategy: Option<SearchStrategy>,
    /// Members to evaluate besides the baselines, per target for FLIQS.
    pub budget: Option<usize>,
    /// Seed.
    pub seed: Option<u64>,
    /// FLIQS targets (fractions of the largest member's BitOps, or BitOps above 1).
    pub targets: Option<Vec<f64>>,
    /// FLIQS training mode (on when either this or the file says so).
    pub fliqs_training: bool,
    /// The HAWQ baseline's estimate settings instead of the file's.
    pub hawq: Option<HawqSettings>,
}

/// The file's search settings with `opts`' overrides.
pub fn settings(space: &Space, opts: &Overrides) -> Result<Settings, StrategyError> {
    let f = &space.search;
    let strategy = opts.strategy.unwrap_or(f.strategy);
    if opts.budget == Some(0) || (opts.budget.is_none() && f.budget == 0) {
        return Err(StrategyError::Invalid("--budget: at least 1 member".into()));
    }
    // FLIQS runs `fliqs.steps` policy updates of `fliqs.samples_per_step` members per target;
    // `--budget` on the command line sets the members per target instead (the updates follow)
    let fliqs = (strategy == SearchStrategy::Fliqs).then(|| {
        let mut fl = f.fliqs.clone();
        if let Some(b) = opts.budget {
            fl.steps = ((b / fl.samples_per_step.max(1) as usize).max(1)) as u32;
            if fl.warmup_steps() >= fl.steps {
                fl.warmup = None;
            }
        }
        fl
    });
    let budget = match &fliqs {
        Some(fl) => fl.steps as usize * fl.samples_per_step as usize,
        None => opts.budget.unwrap_or(f.budget as usize),
    };
    let s = Settings {
        strategy,
        budget,
        seed: opts.seed.unwrap_or(f.seed),
        targets: opts.targets.clone().unwrap_or_else(|| f.targets.clone()),
        fliqs_training: opts.fliqs_training || f.fliqs_training,
        fliqs,
        hawq: (strategy == SearchStrategy::Hawq)
            .then(|| opts.hawq.clone().unwrap_or_else(|| f.hawq.clone())),
    };
    if s.targets.is_empty() || s.targets.iter().any(|t| !(t.is_finite() && *t > 0.0)) {
        return Err(StrategyError::Invalid(format!(
            "--target: fractions of the largest member's BitOps in (0, 1] or BitOps budgets above 1, got {:?}",
            s.targets
        )));
    }
    Ok(s)
}

/// Members asked of the strategy at a time: one FLIQS policy step, else a batch that keeps the
/// evaluation workers busy.
pub fn ask_batch(settings: &Settings) -> usize {
    match (&settings.strategy, &settings.fliqs) {
        (SearchStrategy::Fliqs, Some(f)) => f.samples_per_step as usize,
        _ => 8,
    }
}

#[cfg(test)]
mod difference_tests {
    use super::*;

    #[test]
    fn differences_name_each_setting_that_changed() {
        let saved = Settings {
            strategy: SearchStrategy::Fliqs,
            budget: 1200,
            seed: 0,
            targets: vec![0.25],
            fliqs_training: false,
            fliqs: Some(spaces::FliqsSettings::default()),
            hawq: None,
        };
        assert!(saved.differences(&saved).is_empty());
        let mut asked = saved.clone();
        asked.budget = 24;
        asked.targets = vec![0.25, 0.5];
        if let Some(f) = asked.fliqs.as_mut() {
            f.beta = 1.0;
        }
        assert_eq!(
            saved.differences(&asked),
            vec![
                "budget (saved 1200, asked 24)".to_string(),
                "fliqs.beta (saved 0.5, asked 1.0)".to_string(),
                "targets (saved [0.25], asked [0.25,0.5])".to_string(),
            ]
        );
        asked.fliqs = None;
        assert!(
            saved
                .differences(&asked)
                .iter()
                .any(|d| d.starts_with("fliqs (saved {"))
        );
    }
}
