//! The search loop: baselines first, then each stage's strategy asks for members, the
//! members are measured (each arch once), the strategy is told the results in the order it
//! asked, and the state is saved after every batch so that a resumed search continues exactly.
//! FLIQS training mode hands the policy's samples to a [`PolicyTraining`] instead. No tensors
//! here: the evaluator is a trait, so the loop and the strategies can be tested against a
//! table of known accuracies.
//!
//! The search's study store (`study.rs`, by default `OUT/study.db`) is its only saved state:
//! settings, the strategy's state, every member asked with its status and result, the table
//! and, at the end, the report. Members are asked in the store and measured by whoever claims
//! them: this process through its [`Evaluator`] (`worker.rs`) and any `qnas worker` sharing the
//! store; the search waits for its batch's results, so the members asked and the front are the
//! same whatever the number of workers.
//!
//! Outputs in the output folder, written from the study: `evaluated.csv`, `pareto.json`,
//! `pareto.csv`, and the plots, each as SVG and PNG: `pareto` (the front), `hypervolume`
//! (against the members evaluated) and `formats` (the front members' formats).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use spaces::{Arch, SearchStrategy, Space};
use stats::Accuracy;

pub use crate::evaluator::{EvaluationError, Evaluator};
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
use crate::study::{self, LEGACY_STATE_FILE, StudyConfig, StudyError};
use crate::worker::{Participant, worker_id};
use store::{NewMember, Status, Store, StoreError};

/// Schema tag of [`SearchReport`].
pub const SEARCH_SCHEMA: &str = "qnas.search/1";

pub use crate::study::STUDY_FILE;
/// The finished search's report in the output folder.
pub const REPORT_FILE: &str = "pareto.json";

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
        /// The study's store (its file, or its address without the password).
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A saved search exists.
    #[error("{}: a search was already saved here; pass --resume to continue it, or delete it to start over", dir.display())]
    Exists {
        /// The study's store.
        dir: PathBuf,
    },
    /// The study's store could not be reached or written.
    #[error(transparent)]
    Store(StoreError),
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
        ) || matches!(self, SearchError::Store(e) if e.is_invalid_input())
    }
}

impl From<StudyError> for SearchError {
    fn from(e: StudyError) -> Self {
        match e {
            StudyError::Bad { path, message } => SearchError::BadState { path, message },
            StudyError::Store(e) => SearchError::Store(e),
        }
    }
}

impl From<StoreError> for SearchError {
    fn from(e: StoreError) -> Self {
        StudyError::from(e).into()
    }
}

/// The search's state in its study (the settings, rows and members are the study's own).
#[derive(Clone, Debug, Serialize, Deserialize)]
struct SearchState {
    /// Stage (FLIQS target) in progress.
    stage: usize,
    strategy_state: serde_json::Value,
    /// The argmax of the stage's policy (FLIQS).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    track: Option<Track>,
    /// The policies of the finished stages (FLIQS).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    policies: Vec<PolicySummary>,
}

/// The members a saved search evaluated (`OUT/study.db`, baselines included, in the order
/// they were evaluated), and whether it finished; `None` when no search was saved there.
pub fn saved_rows(out_dir: &Path, space: &Space) -> Result<Option<(Vec<Row>, bool)>, SearchError> {
    Ok(study::saved_rows(out_dir, space)?)
}

/// Measures members, each arch once: asked in the study, evaluated by whoever claims them
/// (this process among them), their results read back.
struct Cache<'a> {
    space: &'a Space,
    evaluator: &'a mut dyn Evaluator,
    participant: Participant<'a>,
    poll: std::time::Duration,
    measured: HashMap<String, Accuracy>,
}

impl Cache<'_> {
    /// The rows of `archs` in order, with `origin`; members not measured yet are asked
    /// together and measured here or by other workers.
    fn rows(&mut self, archs: &[Arch], origin: &Origin) -> Result<Vec<Row>, SearchError> {
        let mut todo: Vec<&Arch> = Vec::new();
        for a in archs {
            if !self.measured.contains_key(&a.key()) && !todo.iter().any(|t| t.key() == a.key()) {
                todo.push(a);
            }
        }
        if !todo.is_empty() {
            self.measure(&todo, origin)?;
        }
        archs
            .iter()
            .map(|a| row_of(self.space, a, origin, self.measured[&a.key()]))
            .collect()
    }

    /// Asks `todo` in the study and waits for their results, evaluating what this process
    /// can claim in the meantime.
    fn measure(&mut self, todo: &[&Arch], origin: &Origin) -> Result<(), SearchError> {
        let mut asked = Vec::new();
        for a in todo {
            let arch = serde_json::to_string(a).map_err(|e| {
                evaluation_failed(origin, a, format!("cannot serialize the member: {e}"))
            })?;
            asked.push(NewMember {
                key: a.key(),
                arch,
                origin: origin.to_string(),
            });
        }
        let keys: Vec<String> = asked.iter().map(|m| m.key.clone()).collect();
        self.participant.store().ask(&asked)?;
        loop {
            for m in self.participant.store().members(&keys)? {
                match (m.status, m.outcome) {
                    (Status::Done, Some(o)) => {
                        self.measured.insert(
                            m.key.clone(),
                            Accuracy {
                                correct: o.correct as usize,
                                total: o.total as usize,
                            },
                        );
                    }
                    (Status::Failed, _) => {
                        let arch = todo
                            .iter()
                            .find(|a| a.key() == m.key)
                            .map_or_else(|| self.space.smallest(), |a| (*a).clone());
                        let mut message = m.error.clone().unwrap_or_default();
                        if let Some(w) = m.worker.as_deref().filter(|w| *w != self.participant.id())
                        {
                            message = format!("{message} (on {w})");
                        }
                        return Err(evaluation_failed(origin, &arch, message));
                    }
                    _ => {}
                }
            }
            if keys.iter().all(|k| self.measured.contains_key(k)) {
                return Ok(());
            }
            let done = self
                .participant
                .evaluate_some(self.space, &mut *self.evaluator)?;
            if done.is_empty() {
                std::thread::sleep(self.poll);
            }
        }
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
    /// Where the study is kept and how members are shared (default: `OUT/study.db`).
    pub study: Option<&'a StudyConfig>,
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
        study: config,
    } = setup;
    let default_config;
    let config = match config {
        Some(c) => c,
        None => {
            default_config = StudyConfig::sqlite_in(out_dir, space);
            &default_config
        }
    };
    let legacy = out_dir.join(LEGACY_STATE_FILE);
    if legacy.exists() && !out_dir.join(study::STUDY_FILE).exists() {
        return Err(SearchError::BadState {
            path: legacy,
            message: "a search saved by an earlier qnas, before the study store; delete the \
                      folder (or this file) to search again"
                .to_string(),
        });
    }
    let mut store = config.open()?;
    let location = PathBuf::from(store.location());
    progress.note(&format!(
        "study {:?} in {} (qnas worker processes with the same storage evaluate members too)",
        config.name,
        store.location()
    ));
    let mut stage = 0;
    let mut strategy = make_strategy(space, set, 0, sensitivity)?;
    let mut rows: Vec<Row> = Vec::new();
    let mut track: Option<Track> = None;
    let mut policies: Vec<PolicySummary> = Vec::new();
    match study::load::<SearchState>(store.as_mut(), space)? {
        Some(_) if !resume => {
            return Err(SearchError::Exists { dir: location });
        }
        Some(saved) => {
            if &saved.settings != set {
                return Err(SearchError::BadState {
                    path: location,
                    message: format!(
                        "the saved search differs in {}; pass the same settings to continue it, \
                         or delete it to start over",
                        saved.settings.differences(set).join(", ")
                    ),
                });
            }
            stage = saved.state.stage;
            if stage < set.stages() {
                strategy = make_strategy(space, set, stage, sensitivity)?;
                strategy.restore(saved.state.strategy_state).map_err(|e| {
                    SearchError::BadState {
                        path: location.clone(),
                        message: e.to_string(),
                    }
                })?;
            }
            rows = saved.rows;
            track = saved.state.track;
            policies = saved.state.policies;
            progress.note(&format!(
                "resumed a search of {} evaluated members",
                rows.len()
            ));
        }
        None => {
            let first = SearchState {
                stage,
                strategy_state: strategy.save(),
                track: None,
                policies: Vec::new(),
            };
            study::create(store.as_mut(), space, set, &first)?;
        }
    }
    let training_mode = set.strategy == SearchStrategy::Fliqs && set.fliqs_training;
    if training_mode && policy.is_none() {
        return Err(SearchError::NoPolicyTraining);
    }

    // the members measured so far, by whichever process measured them
    let measured: HashMap<String, Accuracy> = store
        .all_members()?
        .into_iter()
        .filter(|m| m.status == Status::Done)
        .filter_map(|m| {
            let o = m.outcome?;
            Some((
                m.key,
                Accuracy {
                    correct: o.correct as usize,
                    total: o.total as usize,
                },
            ))
        })
        .collect();
    let mut saved_rows = rows.len();
    let mut cache = Cache {
        space,
        evaluator,
        participant: Participant::new(store.as_mut(), config, worker_id("search")),
        poll: config.poll,
        measured,
    };
    let base = baselines(space);
    let total = set.budget * set.stages() + base.len();
    // the state after a batch and the rows added since the last save, in one transaction
    let save = |store: &mut dyn Store,
                saved_rows: &mut usize,
                strategy: &dyn Strategy,
                stage: usize,
                rows: &[Row],
                track: &Option<Track>,
                policies: &[PolicySummary]|
     -> Result<(), SearchError> {
        let st = SearchState {
            stage,
            strategy_state: strategy.save(),
            track: track.clone(),
            policies: policies.to_vec(),
        };
        let state = study::to_json(store, &st)?;
        let new: Vec<String> = rows[*saved_rows..]
            .iter()
            .map(|r| study::to_json(store, r))
            .collect::<Result<_, _>>()?;
        store.save(&state, *saved_rows, &new)?;
        *saved_rows = rows.len();
        Ok(())
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
        save(
            cache.participant.store(),
            &mut saved_rows,
            strategy.as_ref(),
            stage,
            &rows,
            &track,
            &policies,
        )?;
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
            save(
                cache.participant.store(),
                &mut saved_rows,
                strategy.as_ref(),
                stage,
                &rows,
                &track,
                &policies,
            )?;
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
            save(
                cache.participant.store(),
                &mut saved_rows,
                strategy.as_ref(),
                stage,
                &rows,
                &track,
                &policies,
            )?;
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
        save(
            cache.participant.store(),
            &mut saved_rows,
            strategy.as_ref(),
            stage,
            &rows,
            &track,
            &policies,
        )?;
    }
    let report = write_outputs(space, set, out_dir, &rows, policies)?;
    let text = study::to_json(cache.participant.store(), &report)?;
    cache.participant.store().finish(&text)?;
    Ok(report)
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
