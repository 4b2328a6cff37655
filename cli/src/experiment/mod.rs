//! `qnas experiment FILE [--quick]`: runs what an experiment file describes (its spaces, each
//! supernet trained once; its searches over seeds, each into its own folder of the run) and
//! writes `report.md` with the measured tables, the checks and the verdict, and the plot of the
//! fronts (`fronts.svg`, `fronts.png`).
//! Every stage resumes like `qnas run`: a finished training or search is read back, an
//! unfinished one continued.
//!
//! - [`spec`]: the experiment file, validated with located errors;
//! - [`report`]: the figures (hypervolume, its curve over evaluations, checks), the report and
//!   the plot of the fronts (the search crate's `plot::fronts`);
//! - [`correlation`]: members of a search trained alone, ranked against the supernet.

pub mod correlation;
pub mod report;
pub mod spec;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::tensor::Device;
use search::driver::{REPORT_FILE, STUDY_FILE, saved_rows};
use search::fsio::{IoError, write_atomic, write_json_atomic};
use search::plot::PlotError;
use search::settings::Overrides;
use search::{Row, SearchProgress, SearchReport};
use serde::{Deserialize, Serialize};
use spaces::{Space, SpaceError};
use supernet::checkpoint;

use crate::correlate::{CorrelateError, CorrelateProgress};
use crate::run_dir::RunDir;
use crate::search_cmd::{self, SearchCmdError, SearchOptions};
use crate::setup::SetupError;
use crate::train_cmd::{self, TrainCmdError, TrainOptions, TrainProgress};

pub use correlation::CorrelationResult;
pub use report::{CheckResult, SearchResult, Verdict};
pub use spec::Experiment;

/// Schema tag of [`ExperimentReport`].
pub const EXPERIMENT_SCHEMA: &str = "qnas.experiment/1";

/// What to run and where.
#[derive(Clone, Debug)]
pub struct ExperimentOptions {
    /// The experiment file.
    pub file: PathBuf,
    /// Run the file's small version.
    pub quick: bool,
    /// Folder of the runs (default `runs/experiments/NAME`, `NAME-quick` for `--quick`).
    pub runs: Option<PathBuf>,
    /// Folder of `report.md`, `fronts.svg` and `fronts.png` (default: the experiment file's
    /// folder; for `--quick`, the runs folder, so that the committed report stays as measured).
    pub out: Option<PathBuf>,
    /// Device.
    pub device: Device,
}

/// Receives progress.
pub trait ExperimentProgress {
    /// A stage starts or is skipped.
    fn stage(&mut self, message: &str);
    /// The progress of a training.
    fn training(&mut self) -> &mut dyn TrainProgress;
    /// The progress of a search.
    fn searching(&mut self) -> &mut dyn SearchProgress;
    /// The progress of a correlation's stand-alone trainings.
    fn correlating(&mut self) -> &mut dyn CorrelateProgress;
}

/// Why an experiment failed.
#[derive(Debug, thiserror::Error)]
pub enum ExperimentError {
    /// The experiment file is invalid.
    #[error(transparent)]
    Spec(#[from] Box<SpaceError>),
    /// A space could not be read.
    #[error(transparent)]
    Setup(#[from] SetupError),
    /// A training failed.
    #[error("training space {space}: {source}")]
    Train {
        /// The space's name in the experiment.
        space: String,
        /// Why.
        source: TrainCmdError,
    },
    /// A search failed.
    #[error("search {label} (seed {seed}): {source}")]
    Search {
        /// Its label.
        label: String,
        /// Its seed.
        seed: u64,
        /// Why.
        source: SearchCmdError,
    },
    /// A finished search of the run was run with other settings than the file now asks for.
    #[error("search {label} (seed {seed}) in {} was run with other settings than the experiment file asks for: {}; remove that folder to run it again with the file's", dir.display(), changes.join(", "))]
    Changed {
        /// Its label.
        label: String,
        /// Its seed.
        seed: u64,
        /// Its folder.
        dir: PathBuf,
        /// `field (saved X, asked Y)` each.
        changes: Vec<String>,
    },
    /// A correlation failed.
    #[error("correlation of {label}: {source}")]
    Correlate {
        /// The search's label.
        label: String,
        /// Why.
        source: CorrelateError,
    },
    /// Writing failed.
    #[error(transparent)]
    Io(#[from] IoError),
    /// The plot could not be drawn or written.
    #[error(transparent)]
    Plot(#[from] PlotError),
}

impl ExperimentError {
    /// True when the user's input is at fault (exit code 2).
    pub fn is_invalid_input(&self) -> bool {
        match self {
            ExperimentError::Spec(_) => true,
            ExperimentError::Setup(e) => e.is_invalid_input(),
            ExperimentError::Train { source, .. } => source.is_invalid_input(),
            ExperimentError::Search { source, .. } => source.is_invalid_input(),
            ExperimentError::Correlate { source, .. } => source.is_invalid_input(),
            ExperimentError::Changed { .. } => true,
            ExperimentError::Io(_) | ExperimentError::Plot(_) => false,
        }
    }
}

/// One comparison of a check (one seed, or one pair of seeds).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Outcome {
    /// Whether the claim held here.
    pub held: bool,
    /// What was measured, in words.
    pub detail: String,
}

/// One trained supernet of the experiment.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TrainResult {
    /// The space's name in the experiment.
    pub space: String,
    /// The space file.
    pub file: PathBuf,
    /// Steps trained.
    pub steps: u64,
    /// Its run folder.
    pub run_dir: PathBuf,
    /// Wall time of the training, when this experiment ran it (seconds).
    pub seconds: Option<f64>,
}

/// What `qnas experiment` reports (`--json`).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ExperimentReport {
    /// [`EXPERIMENT_SCHEMA`].
    pub schema: String,
    /// The experiment's name.
    pub name: String,
    /// Whether it was the quick version.
    pub quick: bool,
    /// The report written.
    pub report: PathBuf,
    /// The plot written.
    pub plot: PathBuf,
    /// The supernets.
    pub trainings: Vec<TrainResult>,
    /// Every search, per seed.
    pub searches: Vec<SearchResult>,
    /// The correlations against stand-alone training.
    #[serde(default)]
    pub correlations: Vec<CorrelationResult>,
    /// The checks.
    pub checks: Vec<CheckResult>,
    /// The verdict over the checks (`None` without checks).
    pub verdict: Option<Verdict>,
}

/// Wall times of the stages this experiment ran, kept in the runs folder across resumes.
type Times = BTreeMap<String, f64>;

fn read_times(path: &Path) -> Times {
    std::fs::read(path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

/// Adds the time since `started` to stage `key` and saves the times.
fn add_time(times: &mut Times, path: &Path, key: &str, started: Instant) -> Result<(), IoError> {
    *times.entry(key.to_string()).or_default() += started.elapsed().as_secs_f64();
    write_json_atomic(path, times)
}

/// The folder of search `label`'s run with `seed` in its space's run folder.
fn search_dir(run_dir: &Path, label: &str, seed: u64) -> PathBuf {
    run_dir.join("searches").join(format!("{label}-seed{seed}"))
}

/// What a search of the experiment overrides in its space file's `search` section.
fn overrides(exp: &Experiment, planned: &spec::PlannedSearch, seed: u64) -> Overrides {
    Overrides {
        strategy: Some(planned.spec.strategy),
        budget: Some(planned.budget as usize),
        seed: Some(seed),
        targets: planned.spec.targets.clone(),
        fliqs_training: false,
        hawq: exp.quick.then_some(spaces::HawqSettings {
            samples: exp.spec.quick.hawq_samples,
            images: exp.spec.quick.hawq_images,
        }),
    }
}

/// Runs the experiment; see the module docs.
pub fn run_experiment(
    opts: &ExperimentOptions,
    progress: &mut dyn ExperimentProgress,
) -> Result<ExperimentReport, ExperimentError> {
    let exp = Experiment::load(&opts.file, opts.quick)?;
    let name = exp.spec.name.clone();
    let runs = opts.runs.clone().unwrap_or_else(|| {
        PathBuf::from("runs/experiments").join(if opts.quick {
            format!("{name}-quick")
        } else {
            name.clone()
        })
    });
    let out = opts.out.clone().unwrap_or_else(|| {
        if opts.quick {
            runs.clone()
        } else {
            exp.file.parent().unwrap_or(Path::new(".")).to_path_buf()
        }
    });
    std::fs::create_dir_all(&runs).map_err(|e| IoError::new("create", &runs, e))?;
    std::fs::create_dir_all(&out).map_err(|e| IoError::new("create", &out, e))?;
    let times_path = runs.join("times.json");
    let mut times = read_times(&times_path);

    // the supernets
    let mut spaces: Vec<Space> = Vec::new();
    let mut trainings = Vec::new();
    for (label, file) in &exp.spaces {
        let space = Space::load(file).map_err(SetupError::from)?;
        let run_dir = runs.join(label);
        let run = RunDir::for_space(Some(&run_dir), &space);
        let wanted = exp.train_steps.unwrap_or(space.train.steps);
        let done = run
            .read_summary()
            .map_err(SetupError::from)?
            .is_some_and(|s| s.steps >= wanted);
        let key = format!("train {label}");
        if done {
            progress.stage(&format!("training {label}: already done"));
            train_cmd::plot_finished_training(&run, &space.name).map_err(|source| {
                ExperimentError::Train {
                    space: label.clone(),
                    source,
                }
            })?;
        } else {
            let resume =
                checkpoint::list_checkpoints(&run.checkpoints()).is_ok_and(|c| !c.is_empty());
            progress.stage(&format!(
                "training {label} ({wanted} steps{})",
                if resume { ", resuming" } else { "" }
            ));
            let started = Instant::now();
            train_cmd::train(
                &TrainOptions {
                    file: file.clone(),
                    run_dir: Some(run_dir.clone()),
                    resume,
                    restart: false,
                    steps: exp.train_steps,
                    device: opts.device.clone(),
                    arch: None,
                    devices: None,
                },
                progress.training(),
            )
            .map_err(|source| ExperimentError::Train {
                space: label.clone(),
                source,
            })?;
            add_time(&mut times, &times_path, &key, started)?;
        }
        trainings.push(TrainResult {
            space: label.clone(),
            file: file.clone(),
            steps: wanted,
            run_dir,
            seconds: times.get(&key).copied(),
        });
        spaces.push(space);
    }

    // the searches
    let mut results = Vec::new();
    for planned in &exp.searches {
        let (label, file) = &exp.spaces[planned.space];
        let space = &spaces[planned.space];
        let run_dir = runs.join(label);
        for &seed in &planned.seeds {
            let s = &planned.spec;
            let out_dir = search_dir(&run_dir, &s.label, seed);
            let asked = overrides(&exp, planned, seed);
            let key = format!("search {} seed {seed}", s.label);
            if !out_dir.join(REPORT_FILE).exists() {
                let resume = out_dir.join(STUDY_FILE).exists();
                progress.stage(&format!(
                    "search {} ({}, budget {}, seed {seed}{})",
                    s.label,
                    search::origin::strategy_name(s.strategy),
                    planned.budget,
                    if resume { ", resuming" } else { "" }
                ));
                let started = Instant::now();
                search_cmd::search(
                    &SearchOptions {
                        file: file.clone(),
                        run_dir: Some(run_dir.clone()),
                        overrides: asked.clone(),
                        resume,
                        device: opts.device.clone(),
                        out_dir: Some(out_dir.clone()),
                        store: Default::default(),
                        parallel: None,
                        devices: Vec::new(),
                    },
                    progress.searching(),
                )
                .map_err(|source| ExperimentError::Search {
                    label: s.label.clone(),
                    seed,
                    source,
                })?;
                add_time(&mut times, &times_path, &key, started)?;
            } else {
                progress.stage(&format!("search {} seed {seed}: already done", s.label));
            }
            let search_failed = |source| ExperimentError::Search {
                label: s.label.clone(),
                seed,
                source,
            };
            let read = read_search(&out_dir, space).map_err(search_failed)?;
            // the settings this search would run with now, against those it ran with
            let now =
                search::settings::settings(space, &asked).map_err(|e| search_failed(e.into()))?;
            if read.0.settings != now {
                return Err(ExperimentError::Changed {
                    label: s.label.clone(),
                    seed,
                    dir: out_dir,
                    changes: read.0.settings.differences(&now),
                });
            }
            results.push(report::search_result(
                space,
                planned,
                label,
                seed,
                &read.0,
                &read.1,
                out_dir,
                times.get(&key).copied(),
            ));
        }
    }

    // the correlations
    let mut correlations = Vec::new();
    for c in &exp.correlations {
        let planned = &exp.searches[c.search];
        let (label, file) = &exp.spaces[planned.space];
        let space = &spaces[planned.space];
        let seed = planned.seeds[0];
        let run_dir = runs.join(label);
        let search_dir = search_dir(&run_dir, &planned.spec.label, seed);
        let steps = c.steps.or(exp.train_steps).unwrap_or(space.train.steps);
        let key = format!("correlate {}", planned.spec.label);
        let job = correlation::CorrelationJob {
            planned: c,
            label: &planned.spec.label,
            seed,
            file,
            space,
            run_dir: &run_dir,
            search_dir: &search_dir,
            runs: &runs,
            steps,
        };
        progress.stage(&format!(
            "correlation of {} (seed {seed}): {} members trained alone, {steps} steps{}",
            planned.spec.label,
            c.members,
            if c.seeds > 1 {
                format!(", {} seeds", c.seeds)
            } else {
                String::new()
            }
        ));
        let started = Instant::now();
        let (mut r, read_back) = correlation::run(&job, &opts.device, progress.correlating())
            .map_err(|source| ExperimentError::Correlate {
                label: planned.spec.label.clone(),
                source,
            })?;
        if !read_back {
            add_time(&mut times, &times_path, &key, started)?;
            r.seconds = times.get(&key).copied();
            correlation::save(&r)?;
        }
        correlations.push(r);
    }

    let checks = report::checks(&exp, &results, &correlations);
    let verdict = report::verdict(&checks);
    report::plot(&exp, &results, &out)?;
    let plot_path = out.join("fronts.svg");
    let report_path = out.join("report.md");
    let text = report::markdown(
        &exp,
        &trainings,
        &results,
        &correlations,
        &checks,
        verdict,
        &plot_path,
        &out,
    );
    write_atomic(&report_path, text.as_bytes())?;
    let r = ExperimentReport {
        schema: EXPERIMENT_SCHEMA.into(),
        name,
        quick: opts.quick,
        report: report_path,
        plot: plot_path,
        trainings,
        searches: results,
        correlations,
        checks,
        verdict,
    };
    write_json_atomic(&out.join("results.json"), &r)?;
    Ok(r)
}

/// A finished search's report and its rows in the order they were evaluated.
fn read_search(out_dir: &Path, space: &Space) -> Result<(SearchReport, Vec<Row>), SearchCmdError> {
    let rows = saved_rows(out_dir, space)?
        .map(|(rows, _)| rows)
        .unwrap_or_default();
    let path = out_dir.join(REPORT_FILE);
    let bytes = std::fs::read(&path)
        .map_err(|e| SearchCmdError::Search(IoError::new("read", &path, e).into()))?;
    let rep: SearchReport = serde_json::from_slice(&bytes).map_err(|e| {
        SearchCmdError::Search(search::SearchError::BadState {
            path: path.clone(),
            message: format!("not a search report: {e}"),
        })
    })?;
    Ok((rep, rows))
}
