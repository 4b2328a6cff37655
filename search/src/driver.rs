//! The search loop: baselines first, then each stage's strategy asks for members, an
//! [`Evaluator`] measures them (cached by arch), the strategy is told the results, and the
//! state is saved after every batch so that a resumed search continues exactly. FLIQS training
//! mode hands the policy's samples to a [`PolicyTraining`] instead. No tensors here: the
//! evaluator is a trait, so the loop and the strategies can be tested against a table of known
//! accuracies.
//!
//! Outputs in the output folder: `state.json` (settings, strategy state and every evaluation),
//! `evaluated.csv`, `pareto.json`, `pareto.csv`, and the plots, each as SVG and PNG:
//! `pareto` (the front), `hypervolume` (against the members evaluated) and `formats` (the
//! front members' formats).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use spaces::{Arch, SearchStrategy, Space};
use stats::Accuracy;

use crate::fsio::{IoError, write_atomic, write_json_atomic};
use crate::origin::{FliqsMember, Origin};
use crate::pareto::{HvReference, Point, hypervolume};
use crate::plot::formats::{FormatGrid, FormatsPlot};
use crate::plot::hypervolume::{HypervolumePlot, hypervolume_curve};
use crate::plot::pareto::ParetoPlot;
use crate::plot::{self, PlotError};
use crate::row::{Row, baselines, front_of, rows_csv};
use crate::settings::{Settings, ask_batch, make_strategy};
use crate::strategy::hawq::Sensitivity;
use crate::strategy::{Evaluation, Strategy, StrategyError, Trial};

/// Schema tag of [`SearchReport`].
pub const SEARCH_SCHEMA: &str = "qnas.search/1";

/// The saved search's file in the output folder.
pub const STATE_FILE: &str = "state.json";
/// The finished search's report in the output folder.
pub const REPORT_FILE: &str = "pareto.json";

/// Measures members: the one thing the search needs of the supernet.
pub trait Evaluator {
    /// The validation accuracy of each of `archs`, in order (an evaluator may measure them in
    /// parallel). Every member is distinct and valid for the space.
    fn evaluate(&mut self, archs: &[Arch]) -> Result<Vec<Accuracy>, EvaluationError>;
}

/// FLIQS training mode: the supernet keeps training on the members the policy samples, one
/// fresh copy of the trained supernet per cost target.
pub trait PolicyTraining {
    /// Starts stage `stage` on a fresh copy of the trained supernet.
    fn begin_stage(&mut self, stage: usize) -> Result<(), EvaluationError>;
    /// One training step on `members` (sampled by the policy of `origin`); their accuracies on
    /// the step's batch, in order.
    fn train_step(
        &mut self,
        origin: &Origin,
        members: &[Arch],
    ) -> Result<Vec<f64>, EvaluationError>;
    /// The validation accuracy of the stage's chosen member on the stage's weights, which are
    /// kept for export. Returns a note for the user (where the weights went).
    fn finish_stage(
        &mut self,
        stage: usize,
        arch: &Arch,
    ) -> Result<(Accuracy, String), EvaluationError>;
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

/// Receives progress.
pub trait SearchProgress {
    /// `done` of `total` members evaluated.
    fn evaluated(&mut self, done: usize, total: usize, last: &Row);
    /// A note.
    fn note(&mut self, message: &str);
}

/// What `qnas search` reports.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SearchReport {
    /// [`SEARCH_SCHEMA`].
    pub schema: String,
    /// Output folder.
    pub out_dir: PathBuf,
    /// The settings used.
    pub settings: Settings,
    /// Members evaluated (baselines included).
    pub evaluated: usize,
    /// Hypervolume of the front (normalized log-BitOps and accuracy axes, reference at the
    /// space's largest BitOps and accuracy 0; see `pareto.rs`).
    pub hypervolume: f64,
    /// The non-dominated members, cheapest first.
    pub front: Vec<Row>,
    /// The uniform-precision baselines.
    pub baselines: Vec<Row>,
    /// FLIQS: how each target's policy ended.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub policies: Vec<PolicySummary>,
}

/// How one FLIQS target's policy ended: its entropy, its argmax against the target, and
/// whether the argmax had settled.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PolicySummary {
    /// The cost target as given (a fraction of the largest member's BitOps, or BitOps).
    pub target: f64,
    /// The target in BitOps.
    pub target_bitops: f64,
    /// The policy's final argmax (its arch key).
    pub argmax: String,
    /// Its BitOps.
    pub argmax_bitops: u64,
    /// `argmax_bitops / target_bitops`.
    pub cost_ratio: f64,
    /// The policy's final entropy over its searched decisions, in nats.
    pub entropy: f64,
    /// The uniform policy's entropy over the same decisions (where it started).
    pub max_entropy: f64,
    /// Policy updates (tells) done.
    pub steps: u64,
    /// The last updates over which the argmax did not change.
    pub stable_steps: u64,
    /// Whether the argmax was the same over the last tenth of the updates (at least 10).
    pub stable: bool,
}

/// The argmax of the policy being learned and the update since which it has been the argmax.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Track {
    argmax: String,
    since: u64,
}

impl Track {
    /// Follows the strategy's policy after a tell.
    fn follow(track: &mut Option<Track>, strategy: &dyn Strategy, space: &Space) {
        if let Some(p) = strategy.policy(space) {
            let key = p.argmax.key();
            if track.as_ref().is_none_or(|t| t.argmax != key) {
                *track = Some(Track {
                    argmax: key,
                    since: p.step,
                });
            }
        }
    }
}

/// The summary of a finished stage's policy, if the strategy learns one.
fn policy_summary(
    space: &Space,
    strategy: &dyn Strategy,
    track: Option<&Track>,
    target: f64,
) -> Option<PolicySummary> {
    let p = strategy.policy(space)?;
    let bitops = space.cost(&p.argmax).ok()?.bitops;
    let since = track
        .filter(|t| t.argmax == p.argmax.key())
        .map_or(p.step, |t| t.since);
    let stable_steps = p.step - since.min(p.step);
    Some(PolicySummary {
        target,
        target_bitops: p.target_bitops,
        argmax: p.argmax.key(),
        argmax_bitops: bitops,
        cost_ratio: bitops as f64 / p.target_bitops,
        entropy: p.entropy,
        max_entropy: p.max_entropy,
        steps: p.step,
        stable_steps,
        stable: stable_steps >= (p.step / 10).max(10),
    })
}

/// Why a search failed.
#[derive(Debug, thiserror::Error)]
pub enum SearchError {
    /// The strategy cannot run.
    #[error(transparent)]
    Strategy(#[from] StrategyError),
    /// The saved search does not fit.
    #[error("{}: {message}", path.display())]
    BadState {
        /// The state file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A saved search exists.
    #[error("{}: a search was already saved here; pass --resume to continue it, or delete the folder", dir.display())]
    Exists {
        /// The folder.
        dir: PathBuf,
    },
    /// A member could not be evaluated.
    #[error("evaluating member {arch} ({origin}) failed: {message}")]
    Evaluation {
        /// Where it came from.
        origin: Origin,
        /// The member's key.
        arch: String,
        /// Why.
        message: String,
    },
    /// FLIQS training mode was asked for without a trainer.
    #[error("FLIQS training mode needs a supernet to train")]
    NoPolicyTraining,
    /// Writing failed.
    #[error(transparent)]
    Io(#[from] IoError),
    /// A plot could not be drawn or written.
    #[error(transparent)]
    Plot(#[from] PlotError),
}

impl SearchError {
    /// True when the user's input is at fault (exit code 2).
    pub fn is_invalid_input(&self) -> bool {
        matches!(
            self,
            SearchError::Strategy(_) | SearchError::BadState { .. } | SearchError::Exists { .. }
        )
    }
}

/// The saved search.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct SearchState {
    fingerprint: String,
    settings: Settings,
    /// Stage (FLIQS target) in progress.
    stage: usize,
    strategy_state: serde_json::Value,
    rows: Vec<Row>,
    /// The argmax of the stage's policy (FLIQS).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    track: Option<Track>,
    /// The policies of the finished stages (FLIQS).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    policies: Vec<PolicySummary>,
}

/// The members a saved search evaluated (`OUT/state.json`, baselines included, in the order
/// they were evaluated), and whether it finished (it wrote `pareto.json`); `None` when no
/// search was saved there.
pub fn saved_rows(out_dir: &Path, space: &Space) -> Result<Option<(Vec<Row>, bool)>, SearchError> {
    let path = out_dir.join(STATE_FILE);
    if !path.exists() {
        return Ok(None);
    }
    let saved = read_state(&path, space)?;
    Ok(Some((saved.rows, out_dir.join(REPORT_FILE).exists())))
}

/// The saved search in `path`, checked to belong to `space`.
fn read_state(path: &Path, space: &Space) -> Result<SearchState, SearchError> {
    // bytes, not text: a file that is not UTF-8 is a bad state (located by serde_json), not an
    // I/O failure
    let bytes = std::fs::read(path).map_err(|e| IoError::new("read", path, e))?;
    let bad = |message: String| SearchError::BadState {
        path: path.to_path_buf(),
        message,
    };
    let saved: SearchState =
        serde_json::from_slice(&bytes).map_err(|e| bad(format!("not a saved search: {e}")))?;
    if saved.fingerprint != format!("{:016x}", space.fingerprint()) {
        return Err(bad("the saved search belongs to another space".into()));
    }
    // the rows are trusted from here on (plots, fronts, the cache of measured members)
    for (i, r) in saved.rows.iter().enumerate() {
        let cost = space
            .cost(&r.arch)
            .map_err(|e| bad(format!("rows[{i}]: {e}")))?;
        if (r.bitops, r.macs, r.params, r.weight_bits)
            != (cost.bitops, cost.macs, cost.params, cost.weight_bits)
        {
            return Err(bad(format!(
                "rows[{i}]: its costs are not those of its member in this space"
            )));
        }
        if !(r.accuracy.is_nan() || (0.0..=1.0).contains(&r.accuracy)) {
            return Err(bad(format!(
                "rows[{i}]: accuracy {} is not between 0 and 1",
                r.accuracy
            )));
        }
    }
    Ok(saved)
}

/// Measures members through an [`Evaluator`], each arch once.
struct Cache<'a> {
    space: &'a Space,
    evaluator: &'a mut dyn Evaluator,
    measured: HashMap<String, Accuracy>,
}

impl Cache<'_> {
    /// The rows of `archs` in order, with `origin`; members not measured yet go to the
    /// evaluator together.
    fn rows(&mut self, archs: &[Arch], origin: &Origin) -> Result<Vec<Row>, SearchError> {
        let mut todo: Vec<Arch> = Vec::new();
        for a in archs {
            if !self.measured.contains_key(&a.key()) && !todo.iter().any(|t| t.key() == a.key()) {
                todo.push(a.clone());
            }
        }
        if !todo.is_empty() {
            let accs = self
                .evaluator
                .evaluate(&todo)
                .map_err(|e| evaluation_failed(origin, &e.arch, e.message))?;
            for (a, acc) in todo.iter().zip(accs) {
                self.measured.insert(a.key(), acc);
            }
        }
        archs
            .iter()
            .map(|a| row_of(self.space, a, origin, self.measured[&a.key()]))
            .collect()
    }
}

fn evaluation_failed(origin: &Origin, arch: &Arch, message: String) -> SearchError {
    SearchError::Evaluation {
        origin: origin.clone(),
        arch: arch.key(),
        message,
    }
}

/// The row of a measured member; an evaluation on no images or of a member without costs is
/// an error naming the member, never a row of 0%.
fn row_of(space: &Space, arch: &Arch, origin: &Origin, acc: Accuracy) -> Result<Row, SearchError> {
    let failed = |message: String| evaluation_failed(origin, arch, message);
    if acc.total == 0 {
        return Err(failed("the validation split has no images".to_string()));
    }
    let cost = space.cost(arch).map_err(|e| failed(e.to_string()))?;
    Ok(Row::new(origin.clone(), arch.clone(), &cost, Some(acc)))
}

/// Where and how to search.
#[derive(Clone, Copy, Debug)]
pub struct SearchSetup<'a> {
    /// The space.
    pub space: &'a Space,
    /// The effective settings.
    pub settings: &'a Settings,
    /// The output folder (`RUN/search`).
    pub out_dir: &'a Path,
    /// Continue the search saved there (else a saved search is an error).
    pub resume: bool,
    /// The measured layer sensitivities the HAWQ strategy allocates formats by (HAWQ only).
    pub sensitivity: Option<&'a Sensitivity>,
}

/// The origin of a stage's members.
fn stage_origin(settings: &Settings, stage: usize) -> Origin {
    match settings.strategy {
        SearchStrategy::Fliqs => Origin::Fliqs {
            target: settings.targets[stage],
            member: FliqsMember::Sampled,
        },
        s => Origin::Strategy(s),
    }
}

/// The same origin with another FLIQS member kind.
fn fliqs_member(origin: &Origin, member: FliqsMember) -> Origin {
    match origin {
        Origin::Fliqs { target, .. } => Origin::Fliqs {
            target: *target,
            member,
        },
        other => other.clone(),
    }
}

/// Runs the search; see the module docs. `policy` is needed only for FLIQS training mode.
pub fn search(
    setup: SearchSetup<'_>,
    evaluator: &mut dyn Evaluator,
    mut policy: Option<&mut dyn PolicyTraining>,
    progress: &mut dyn SearchProgress,
) -> Result<SearchReport, SearchError> {
    let SearchSetup {
        space,
        settings: set,
        out_dir,
        resume,
        sensitivity,
    } = setup;
    let state_path = out_dir.join(STATE_FILE);
    let mut stage = 0;
    let mut strategy = make_strategy(space, set, 0, sensitivity)?;
    let mut rows: Vec<Row> = Vec::new();
    let mut track: Option<Track> = None;
    let mut policies: Vec<PolicySummary> = Vec::new();
    if state_path.exists() {
        if !resume {
            return Err(SearchError::Exists {
                dir: out_dir.to_path_buf(),
            });
        }
        let saved = read_state(&state_path, space)?;
        if &saved.settings != set {
            return Err(SearchError::BadState {
                path: state_path.clone(),
                message: format!(
                    "the saved search differs in {}; pass the same settings to continue it, or \
                     delete the folder to start over",
                    saved.settings.differences(set).join(", ")
                ),
            });
        }
        stage = saved.stage;
        if stage < set.stages() {
            strategy = make_strategy(space, set, stage, sensitivity)?;
            strategy
                .restore(saved.strategy_state)
                .map_err(|e| SearchError::BadState {
                    path: state_path.clone(),
                    message: e.to_string(),
                })?;
        }
        rows = saved.rows;
        track = saved.track;
        policies = saved.policies;
        progress.note(&format!(
            "resumed a search of {} evaluated members",
            rows.len()
        ));
    }
    let training_mode = set.strategy == SearchStrategy::Fliqs && set.fliqs_training;
    if training_mode && policy.is_none() {
        return Err(SearchError::NoPolicyTraining);
    }

    let mut cache = Cache {
        space,
        evaluator,
        measured: rows
            .iter()
            .filter_map(|r| Some((r.arch.key(), accuracy_of(r)?)))
            .collect(),
    };
    let base = baselines(space);
    let total = set.budget * set.stages() + base.len();
    let save = |strategy: &dyn Strategy,
                stage: usize,
                rows: &[Row],
                track: &Option<Track>,
                policies: &[PolicySummary]|
     -> Result<(), IoError> {
        let st = SearchState {
            fingerprint: format!("{:016x}", space.fingerprint()),
            settings: set.clone(),
            stage,
            strategy_state: strategy.save(),
            rows: rows.to_vec(),
            track: track.clone(),
            policies: policies.to_vec(),
        };
        write_json_atomic(&state_path, &st)
    };
    let missing: Vec<&(Origin, Arch)> = base
        .iter()
        .filter(|(origin, _)| !rows.iter().any(|r| &r.origin == origin))
        .collect();
    // measured together, so that the evaluator's workers share them
    let archs: Vec<Arch> = missing.iter().map(|(_, a)| a.clone()).collect();
    if !archs.is_empty() {
        let first = &missing[0].0;
        let measured = cache.rows(&archs, first)?;
        for ((origin, _), r) in missing.iter().zip(measured) {
            let r = Row {
                origin: origin.clone(),
                ..r
            };
            rows.push(r.clone());
            progress.evaluated(rows.len(), total, &r);
        }
        save(strategy.as_ref(), stage, &rows, &track, &policies)?;
    }
    let batch = ask_batch(set);
    while stage < set.stages() {
        let origin = stage_origin(set, stage);
        if let (true, Some(trainer)) = (training_mode, policy.as_deref_mut()) {
            // a fresh copy of the trained supernet keeps training on the policy's members; a
            // stage interrupted in the middle starts over when resumed
            strategy = make_strategy(space, set, stage, sensitivity)?;
            track = None;
            let failed = |e: EvaluationError| evaluation_failed(&origin, &e.arch, e.message);
            trainer.begin_stage(stage).map_err(failed)?;
            while !strategy.finished() {
                let asked = strategy.ask(space, batch);
                if asked.is_empty() {
                    break;
                }
                let accuracies = trainer.train_step(&origin, &asked).map_err(failed)?;
                let trials: Vec<Trial> = asked
                    .iter()
                    .zip(&accuracies)
                    .map(|(a, acc)| Trial {
                        arch: a.clone(),
                        eval: Evaluation {
                            accuracy: *acc,
                            bitops: space.cost(a).map(|c| c.bitops).unwrap_or(0),
                        },
                    })
                    .collect();
                strategy.tell(space, &trials);
                Track::follow(&mut track, strategy.as_ref(), space);
            }
            policies.extend(policy_summary(
                space,
                strategy.as_ref(),
                track.as_ref(),
                set.targets[stage],
            ));
            track = None;
            if let Some(a) = strategy.recommendation(space) {
                let name = fliqs_member(&origin, FliqsMember::TrainedWithPolicy);
                let (acc, note) = trainer
                    .finish_stage(stage, &a)
                    .map_err(|e| evaluation_failed(&name, &e.arch, e.message))?;
                let r = row_of(space, &a, &name, acc)?;
                progress.evaluated(rows.len() + 1, total, &r);
                rows.push(r);
                progress.note(&note);
            }
            stage += 1;
            if stage < set.stages() {
                strategy = make_strategy(space, set, stage, sensitivity)?;
            }
            save(strategy.as_ref(), stage, &rows, &track, &policies)?;
            continue;
        }
        while !strategy.finished() {
            let asked = strategy.ask(space, batch);
            if asked.is_empty() {
                break;
            }
            let mut trials = Vec::new();
            for r in cache.rows(&asked, &origin)? {
                trials.push(Trial {
                    arch: r.arch.clone(),
                    eval: Evaluation {
                        accuracy: r.accuracy,
                        bitops: r.bitops,
                    },
                });
                if !rows.iter().any(|x| x.arch == r.arch) {
                    rows.push(r.clone());
                }
                progress.evaluated(rows.len(), total, &r);
            }
            strategy.tell(space, &trials);
            Track::follow(&mut track, strategy.as_ref(), space);
            save(strategy.as_ref(), stage, &rows, &track, &policies)?;
        }
        if set.strategy == SearchStrategy::Fliqs {
            policies.extend(policy_summary(
                space,
                strategy.as_ref(),
                track.as_ref(),
                set.targets[stage],
            ));
            track = None;
        }
        if let Some(a) = strategy.recommendation(space) {
            let name = fliqs_member(&origin, FliqsMember::Argmax);
            let r = cache.rows(std::slice::from_ref(&a), &name)?.remove(0);
            if !rows.iter().any(|x| x.arch == r.arch) {
                rows.push(r);
            }
        }
        stage += 1;
        if stage < set.stages() {
            strategy = make_strategy(space, set, stage, sensitivity)?;
        }
        save(strategy.as_ref(), stage, &rows, &track, &policies)?;
    }
    write_outputs(space, set, out_dir, &rows, policies)
}

/// The counts behind a saved row's accuracy (rows saved before intervals were recorded have
/// none and are measured again).
fn accuracy_of(r: &Row) -> Option<Accuracy> {
    (r.samples > 0).then(|| Accuracy {
        correct: (r.accuracy * r.samples as f64).round() as usize,
        total: r.samples,
    })
}

/// Writes the report, the CSV files and the plots of a finished search.
fn write_outputs(
    space: &Space,
    set: &Settings,
    out_dir: &Path,
    rows: &[Row],
    policies: Vec<PolicySummary>,
) -> Result<SearchReport, SearchError> {
    let front = front_of(rows);
    let reference = HvReference::for_space(space).ok();
    let hv = reference
        .map(|r| {
            hypervolume(
                &front
                    .iter()
                    .map(|x| Point::new(x.accuracy, x.bitops))
                    .collect::<Vec<_>>(),
                &r,
            )
        })
        .unwrap_or(0.0);
    let baselines_rows: Vec<Row> = rows
        .iter()
        .filter(|r| r.origin.is_baseline())
        .cloned()
        .collect();
    write_atomic(&out_dir.join("evaluated.csv"), rows_csv(rows).as_bytes())?;
    write_atomic(&out_dir.join("pareto.csv"), rows_csv(&front).as_bytes())?;
    let report = SearchReport {
        schema: SEARCH_SCHEMA.to_string(),
        out_dir: out_dir.to_path_buf(),
        settings: set.clone(),
        evaluated: rows.len(),
        hypervolume: hv,
        front,
        baselines: baselines_rows,
        policies,
    };
    write_json_atomic(&out_dir.join(REPORT_FILE), &report)?;
    let title = format!(
        "{}: accuracy vs BitOps ({} members, {:?})",
        space.name,
        rows.len(),
        set.strategy
    );
    let pareto = ParetoPlot {
        rows,
        front: &report.front,
        baselines: &report.baselines,
        title: &title,
    };
    plot::write(out_dir, "pareto", &pareto)?;
    let curve = reference.map(|r| hypervolume_curve(rows, &r));
    let title = format!(
        "{}: hypervolume of the front as members were evaluated ({:?})",
        space.name, set.strategy
    );
    let hv_plot = HypervolumePlot {
        curve: curve.as_deref(),
        baselines: rows.iter().take_while(|r| r.origin.is_baseline()).count(),
        title: &title,
    };
    plot::write(out_dir, "hypervolume", &hv_plot)?;
    let grid = FormatGrid::of(space, &report.front);
    let title = format!("{}: number formats of the front members", space.name);
    plot::write(
        out_dir,
        "formats",
        &FormatsPlot {
            grid: &grid,
            title: &title,
        },
    )?;
    Ok(report)
}
