//! The effective settings of a search (the space file's `search` section with the command
//! line's overrides) and the strategy each stage runs.

use serde::{Deserialize, Serialize};
use spaces::{SearchStrategy, Space};

use crate::strategy::exhaustive::Exhaustive;
use crate::strategy::fliqs::{CostTarget, Fliqs, FliqsConfig};
use crate::strategy::nsga2::{Nsga2, Nsga2Config};
use crate::strategy::random::RandomSearch;
use crate::strategy::{Strategy, StrategyError};

/// The effective settings of a search: the file's `search` section with the command line's
/// overrides.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Settings {
    /// Strategy.
    pub strategy: SearchStrategy,
    /// Budget (per target for FLIQS).
    pub budget: usize,
    /// Seed.
    pub seed: u64,
    /// FLIQS cost targets (fractions of the largest member's BitOps); one stage each. Other
    /// strategies run one stage.
    pub targets: Vec<f64>,
    /// FLIQS training mode (see [`spaces::SearchConfig::fliqs_training`]).
    pub fliqs_training: bool,
}

impl Settings {
    /// The stages of the search: one per FLIQS target, else one.
    pub fn stages(&self) -> usize {
        if self.strategy == SearchStrategy::Fliqs {
            self.targets.len()
        } else {
            1
        }
    }
}

/// The strategy of stage `stage` (FLIQS: one per target, seeded `seed + stage`).
pub fn make_strategy(
    space: &Space,
    s: &Settings,
    stage: usize,
) -> Result<Box<dyn Strategy>, StrategyError> {
    Ok(match s.strategy {
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
            // one ask of FLIQS_BATCH members per policy step
            let steps = (s.budget / FLIQS_BATCH).max(1) as u64;
            let cfg = FliqsConfig {
                steps,
                delay: steps / 5,
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

/// Members sampled per FLIQS policy step.
pub const FLIQS_BATCH: usize = 4;

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
}

/// The file's search settings with `opts`' overrides.
pub fn settings(space: &Space, opts: &Overrides) -> Result<Settings, StrategyError> {
    let f = &space.search;
    let s = Settings {
        strategy: opts.strategy.unwrap_or(f.strategy),
        budget: opts.budget.unwrap_or(f.budget as usize),
        seed: opts.seed.unwrap_or(f.seed),
        targets: opts.targets.clone().unwrap_or_else(|| f.targets.clone()),
        fliqs_training: opts.fliqs_training || f.fliqs_training,
    };
    if s.budget == 0 {
        return Err(StrategyError::Invalid("--budget: at least 1 member".into()));
    }
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
    if settings.strategy == SearchStrategy::Fliqs {
        FLIQS_BATCH
    } else {
        8
    }
}
