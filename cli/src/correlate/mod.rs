//! `qnas correlate`: how far a run's front can be trusted. Members of the search's evaluated
//! set (every front member, the rest spread over cost and accuracy) are each trained alone
//! from scratch with the space's recipe, and their stand-alone accuracy is compared with the
//! supernet's: Kendall tau-b, Spearman rho, top-k overlap and each member's gap, with bootstrap
//! intervals. Nothing here prints.
//!
//! Both accuracies of a member are measured on the same images: the data set's test files
//! by default ([`EvalSplit::Test`]). The search chose its front on the validation split, so the
//! supernet's validation accuracies of front members carry the winner's curse (they were chosen
//! because they came out high on those images); the test files hold no such bias and are
//! usually larger. `--split validation` measures where the search measured.
//!
//! Outputs in `RUN/correlate/`: `alone/<member>-s<steps>/` (a normal run folder per member:
//! checkpoints, `train.json`; an interrupted correlate resumes them), `correlate.json`,
//! `correlate.csv`, `correlate.svg`, `correlate.png`.

mod alone;
pub mod analysis;
pub mod select;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::Instant;

use burn::tensor::Device;
use evaluators::data::{BatchLoader, DataError, SearchData};
use evaluators::{Accuracy, Measured, SupernetEvaluator};
use search::SearchError;
use search::driver::saved_rows;
use search::fsio::{IoError, write_atomic, write_json_atomic};
use search::row::{Row, front_of};
use serde::Serialize;
use spaces::{Arch, ArchError, Space};
use supernet::checkpoint;
use supernet::{StepReport, TrainError, Trainer};

pub use self::alone::recipe_key;
use self::alone::{finished, member_dir};
use crate::lock::FolderLock;
use crate::run_dir::RunDir;
use crate::setup::{SetupError, load_data, load_supernet, open_run, restore_from, test_loader};
use crate::train_cmd::{Job, TrainCmdError, TrainProgress, train_job};
pub use analysis::{Analysis, Estimate, Paired, analyse};
use search::plot::PlotError;
use search::plot::scatter::{ScatterPlot, ScatterPoint};
pub use select::{MIN_MEMBERS, SelectError, select};

/// Schema tag of [`CorrelateReport`].
pub const CORRELATE_SCHEMA: &str = "qnas.correlate/2";

/// The report's file in its output folder.
pub const REPORT_FILE: &str = "correlate.json";

/// Confidence of every interval `qnas correlate` reports.
pub use evaluators::CONFIDENCE;

/// The images both accuracies of every member are measured on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EvalSplit {
    /// The data set's test files, which neither training nor the search saw.
    Test,
    /// The validation split the search ranked its members on.
    Validation,
}

impl EvalSplit {
    /// Both, in the order the command line lists them.
    pub const ALL: [EvalSplit; 2] = [EvalSplit::Test, EvalSplit::Validation];

    /// The name used on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            EvalSplit::Test => "test",
            EvalSplit::Validation => "validation",
        }
    }
}

/// What to correlate and how.
#[derive(Clone, Debug)]
pub struct CorrelateOptions {
    /// A run folder, or the space file whose run folder it is.
    pub target: PathBuf,
    /// Run folder of a space file (default `runs/<space name>`).
    pub run_dir: Option<PathBuf>,
    /// Members to train alone (every front member among them).
    pub members: usize,
    /// Training steps of each member (default: the space's `train.steps`, the supernet's
    /// recipe).
    pub steps: Option<u64>,
    /// Trainings of each member alone, with initialization seeds `train.seed`,
    /// `train.seed + 1`, ...; its stand-alone accuracy is their mean.
    pub seeds: usize,
    /// Members trained at the same time (default: the cores, at most 4).
    pub jobs: Option<usize>,
    /// k of the top-k overlap (default: a quarter of the members, at least 1).
    pub top_k: Option<usize>,
    /// Bootstrap replicates.
    pub replicates: usize,
    /// Seed of the bootstrap.
    pub seed: u64,
    /// The images accuracies are measured on; `None`: the test files where the data set has
    /// them, else the validation split (with a note).
    pub split: Option<EvalSplit>,
    /// Device.
    pub device: Device,
    /// Where the other folders are kept (`qnas experiment`'s layout); `None` everywhere: the
    /// run folder's own.
    pub folders: CorrelateFolders,
}

/// Folders of a correlation other than the run folder's defaults.
#[derive(Clone, Debug, Default)]
pub struct CorrelateFolders {
    /// The finished search whose members are compared (default `RUN/search`).
    pub search: Option<PathBuf>,
    /// Where the report files go (default `RUN/correlate`).
    pub out: Option<PathBuf>,
    /// Where the stand-alone trainings are kept (default `RUN/correlate/alone`). Several runs
    /// can share it: a member's folder is named by its network's fingerprint, the stand-alone
    /// recipe and data, its steps and its seed, none of which depend on how a supernet is
    /// trained (sampling, distillation, mixture), so runs of the same recipe reuse each
    /// other's trainings and runs of another never do.
    pub alone: Option<PathBuf>,
}

/// Receives progress (from the calling thread only).
pub trait CorrelateProgress {
    /// Something worth telling.
    fn note(&mut self, message: &str);
    /// `trainings` stand-alone trainings (members times seeds) start; `done` of them are
    /// already finished.
    fn begin(&mut self, trainings: usize, done: usize, steps: u64);
    /// Training `index` (0-based; member `index / seeds`, seed `index % seeds`) reached `step`.
    fn step(&mut self, index: usize, step: u64);
    /// Training ended.
    fn end(&mut self);
}

/// Why `qnas correlate` failed.
#[derive(Debug, thiserror::Error)]
pub enum CorrelateError {
    /// Loading the space, data or checkpoints failed.
    #[error(transparent)]
    Setup(#[from] SetupError),
    /// The saved search could not be read.
    #[error(transparent)]
    Search(#[from] SearchError),
    /// The run has no finished search.
    #[error("{}: no finished search in this run folder; run `qnas search` (or `qnas run`) first", dir.display())]
    NoSearch {
        /// The search folder.
        dir: PathBuf,
    },
    /// The selection is impossible.
    #[error(transparent)]
    Select(#[from] SelectError),
    /// A setting is impossible.
    #[error("{0}")]
    Invalid(String),
    /// A member's training failed.
    #[error("{name} ({arch}): {source}")]
    Member {
        /// `member N` (its 1-based position in the selection), with the seed where there are
        /// several.
        name: String,
        /// The member's key.
        arch: String,
        /// Why.
        source: Box<TrainCmdError>,
    },
    /// Writing failed.
    #[error(transparent)]
    Io(#[from] IoError),
    /// The plot could not be drawn or written.
    #[error(transparent)]
    Plot(#[from] PlotError),
}

impl CorrelateError {
    /// True when the user's input is at fault (exit code 2).
    pub fn is_invalid_input(&self) -> bool {
        match self {
            CorrelateError::Setup(e) => e.is_invalid_input(),
            CorrelateError::Search(e) => e.is_invalid_input(),
            CorrelateError::Member { .. } | CorrelateError::Io(_) | CorrelateError::Plot(_) => {
                false
            }
            _ => true,
        }
    }
}

/// The accuracy of a per-image record, with its exact interval.
fn measured(correct: &[bool]) -> Measured {
    Measured::from(Accuracy {
        correct: correct.iter().filter(|&&c| c).count(),
        total: correct.len(),
    })
}

/// One member trained alone.
#[derive(Clone, Debug, Serialize)]
pub struct MemberResult {
    /// 1-based position in the selection (front members first).
    pub index: usize,
    /// Where the search found it.
    pub origin: search::Origin,
    /// On the search's front.
    pub front: bool,
    /// The member.
    pub arch: Arch,
    /// BitOps.
    pub bitops: u64,
    /// The accuracy the search recorded for it.
    pub search_accuracy: f64,
    /// Its accuracy on the supernet's weights, measured now as the search measured it (on the
    /// report's split).
    pub supernet: Measured,
    /// Its accuracy trained alone (on the report's split): the mean over the seeds, with its
    /// interval (exact Clopper-Pearson for one seed, else the bootstrap's over the images).
    pub alone: AloneAccuracy,
    /// Its test accuracy trained alone, per seed (from each training's `train.json`).
    pub alone_test: Vec<Option<Measured>>,
    /// Supernet minus stand-alone accuracy, with its paired bootstrap interval.
    pub gap: Estimate,
    /// Seconds its stand-alone training took (0 when it was trained before).
    pub seconds: f64,
    /// Its run folders, one per seed.
    pub run_dirs: Vec<PathBuf>,
}

/// A member's stand-alone accuracy over its trainings.
#[derive(Clone, Debug, Serialize)]
pub struct AloneAccuracy {
    /// Mean over the seeds.
    pub accuracy: f64,
    /// Its 95% interval.
    pub interval: stats::Interval,
    /// Each seed's, in seed order.
    pub seeds: Vec<Measured>,
    /// Largest minus smallest over the seeds: training noise, which the interval does not
    /// hold for one seed.
    pub spread: f64,
}

/// How well two stand-alone trainings (seeds 0 and 1) of the same members agree: the same
/// figures as the supernet's, with seed 0 in the supernet's place.
#[derive(Clone, Debug, Serialize, serde::Deserialize)]
pub struct SeedAgreement {
    /// Kendall's tau-b between the two seeds' accuracies.
    pub kendall_tau_b: Option<Estimate>,
    /// Spearman's rho.
    pub spearman_rho: Option<Estimate>,
    /// The largest |seed 0 - seed 1| over the members, a fraction.
    pub max_abs_difference: f64,
}

/// What `qnas correlate` reports.
#[derive(Clone, Debug, Serialize)]
pub struct CorrelateReport {
    /// [`CORRELATE_SCHEMA`].
    pub schema: &'static str,
    /// The run folder.
    pub run_dir: PathBuf,
    /// Output folder.
    pub out_dir: PathBuf,
    /// Space name.
    pub space: String,
    /// Members compared.
    pub members: usize,
    /// Members the search evaluated.
    pub evaluated: usize,
    /// Training steps of each member alone.
    pub steps: u64,
    /// Trainings of each member alone (initialization seeds).
    pub seeds: usize,
    /// The images every accuracy is measured on.
    pub split: EvalSplit,
    /// How many.
    pub images: usize,
    /// Bootstrap seed.
    pub seed: u64,
    /// The statistics.
    pub analysis: Analysis,
    /// With two seeds or more: how well the first two stand-alone trainings of the members
    /// agree with each other, the noise floor of the comparison (training noise and the images'
    /// sampling): the supernet can hardly agree better with the trainings than they agree with
    /// each other.
    pub seed_agreement: Option<SeedAgreement>,
    /// The members, in selection order.
    pub results: Vec<MemberResult>,
    /// Seconds of stand-alone training in this invocation.
    pub training_seconds: f64,
}

/// Messages from the training workers to the calling thread.
enum Event {
    Step(usize, u64),
    Note(String),
    Done(usize, Result<f64, TrainCmdError>),
}

/// Forwards a member's training progress to the calling thread.
struct Forward {
    /// Index of the training.
    index: usize,
    /// Its name in messages ([`Training::name`]).
    name: String,
    tx: mpsc::Sender<Event>,
}

impl TrainProgress for Forward {
    fn begin(&mut self, _: u64, _: u64) {}
    fn step(&mut self, r: &StepReport, _: f64) {
        let _ = self.tx.send(Event::Step(self.index, r.step));
    }
    fn note(&mut self, message: &str) {
        if message.starts_with("resumed") || message.starts_with("skipped") {
            let _ = self
                .tx
                .send(Event::Note(format!("{}: {message}", self.name)));
        }
    }
    fn end(&mut self) {}
}

/// A member that could not be measured, as a setup error naming it.
fn member_failed(e: ArchError) -> SetupError {
    SetupError::Supernet(TrainError::Member(e))
}

/// The trained stand-alone network of `arch` in `dir`.
fn load_alone(
    space: &Space,
    arch: &Arch,
    dir: &Path,
    device: &Device,
) -> Result<Trainer, SetupError> {
    let ck_dir = RunDir::new(dir).checkpoints();
    let fp = space.member_fingerprint(arch).map_err(member_failed)?;
    let found = checkpoint::latest_good(&ck_dir, Some(fp))?;
    let Some((path, ck)) = found.found else {
        return Err(SetupError::NotTrained { dir: ck_dir });
    };
    let mut trainer = Trainer::for_member(space, arch, device)?;
    restore_from(&mut trainer, &path, &ck)?;
    Ok(trainer)
}

/// The stand-alone test accuracy recorded in a member's `train.json`.
fn alone_test(dir: &Path) -> Option<Measured> {
    Some(RunDir::new(dir).read_summary().ok()??.alone?.test)
}

/// One stand-alone training: a member, the space with its seed, its run folder.
struct Training<'a> {
    /// 0-based position of the member in the selection.
    member: usize,
    /// Index of the initialization seed (`train.seed + seed`).
    seed: usize,
    arch: &'a Arch,
    space: &'a Space,
    dir: PathBuf,
}

impl Training<'_> {
    /// `member 3` or, with several seeds, `member 3, seed 1`, for messages.
    fn name(&self, seeds: usize) -> String {
        match seeds {
            1 => format!("member {}", self.member + 1),
            _ => format!("member {}, seed {}", self.member + 1, self.seed),
        }
    }
}

/// Runs the trainings of `todo` (indices into `trainings`) on `jobs` worker threads, each in
/// its run folder, resuming what an earlier invocation left; returns the seconds each took.
#[allow(clippy::too_many_arguments)]
fn train_members(
    file: &Path,
    data: &SearchData,
    trainings: &[Training<'_>],
    seeds: usize,
    todo: &[usize],
    jobs: usize,
    device: &Device,
    progress: &mut dyn CorrelateProgress,
) -> Result<Vec<f64>, CorrelateError> {
    let mut seconds = vec![0.0; trainings.len()];
    let next = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    let (tx, rx) = mpsc::channel::<Event>();
    let mut first_error: Option<CorrelateError> = None;
    std::thread::scope(|scope| {
        for _ in 0..jobs.min(todo.len()) {
            let tx = tx.clone();
            let (next, stop) = (&next, &stop);
            scope.spawn(move || {
                loop {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let n = next.fetch_add(1, Ordering::SeqCst);
                    let Some(&i) = todo.get(n) else { break };
                    let t = &trainings[i];
                    let resume = checkpoint::list_checkpoints(&RunDir::new(&t.dir).checkpoints())
                        .is_ok_and(|c| !c.is_empty());
                    let job = Job {
                        space: t.space,
                        file,
                        data,
                        dir: RunDir::new(&t.dir),
                        resume,
                        restart: !resume,
                        device: device.clone(),
                        replicas: Vec::new(),
                        member: Some(t.arch.clone()),
                    };
                    let t0 = Instant::now();
                    let mut fwd = Forward {
                        index: i,
                        name: t.name(seeds),
                        tx: tx.clone(),
                    };
                    let mut r = train_job(&job, &mut fwd);
                    if let Err(TrainCmdError::NothingToResume { .. }) = r {
                        // only damaged checkpoints: start this member over
                        let job = Job {
                            resume: false,
                            restart: true,
                            ..job
                        };
                        r = train_job(&job, &mut fwd);
                    }
                    let r = r.map(|_| t0.elapsed().as_secs_f64());
                    if r.is_err() {
                        stop.store(true, Ordering::SeqCst);
                    }
                    let _ = tx.send(Event::Done(i, r));
                }
            });
        }
        drop(tx);
        for e in rx {
            match e {
                Event::Step(i, step) => progress.step(i, step),
                Event::Note(m) => progress.note(&m),
                Event::Done(i, Ok(s)) => seconds[i] = s,
                Event::Done(i, Err(source)) => {
                    if first_error.is_none() {
                        let t = &trainings[i];
                        first_error = Some(CorrelateError::Member {
                            name: t.name(seeds),
                            arch: t.arch.key(),
                            source: Box::new(source),
                        });
                    }
                }
            }
        }
    });
    match first_error {
        Some(e) => Err(e),
        None => Ok(seconds),
    }
}

/// The images to measure on: `None` for the validation split (the evaluator's own), else a
/// loader over the test files. Without a split asked for, the test files where the data set
/// has them.
fn eval_images(
    space: &Space,
    data: &SearchData,
    wanted: Option<EvalSplit>,
    progress: &mut dyn CorrelateProgress,
) -> Result<(EvalSplit, Option<BatchLoader>), CorrelateError> {
    let bs = (space.train.batch_size as usize).max(100);
    match wanted {
        Some(EvalSplit::Validation) => Ok((EvalSplit::Validation, None)),
        Some(EvalSplit::Test) => Ok((EvalSplit::Test, Some(test_loader(space, data, bs)?))),
        None => match test_loader(space, data, bs) {
            Ok(loader) => Ok((EvalSplit::Test, Some(loader))),
            Err(SetupError::Data(e @ DataError::Missing { .. })) => {
                progress.note(&format!(
                    "{e}: measuring on the validation split the search ranked its members on \
                     (its front members' accuracies there are biased upwards by the choice)"
                ));
                Ok((EvalSplit::Validation, None))
            }
            Err(e) => Err(e.into()),
        },
    }
}

/// One worker's evaluator of `trainer`'s members, measuring on `images` (or the validation
/// split).
fn evaluator<'a>(
    space: &'a Space,
    trainer: &'a Trainer,
    data: &SearchData,
    images: &Option<BatchLoader>,
) -> Result<SupernetEvaluator<'a>, CorrelateError> {
    let ev = SupernetEvaluator::new(space, trainer, data, 1).map_err(SetupError::from)?;
    Ok(match images {
        Some(loader) => ev.measuring_on(loader.clone()),
        None => ev,
    })
}

/// Runs `qnas correlate`; see the module docs.
pub fn correlate(
    opts: &CorrelateOptions,
    progress: &mut dyn CorrelateProgress,
) -> Result<CorrelateReport, CorrelateError> {
    let run = open_run(&opts.target, &opts.run_dir)?;
    let _lock =
        FolderLock::run_folder(run.dir.path(), "qnas correlate").map_err(SetupError::from)?;
    let mut space = run.space.clone();
    let data = load_data(&space, &run.space_file)?;
    let (split, images) = eval_images(&space, &data, opts.split, progress)?;

    // the search's members and front
    let search_dir = opts
        .folders
        .search
        .clone()
        .unwrap_or_else(|| run.dir.search_dir());
    let rows: Vec<Row> = match saved_rows(&search_dir, &space)? {
        Some((rows, true)) => rows,
        _ => return Err(CorrelateError::NoSearch { dir: search_dir }),
    };
    let front = front_of(&rows);
    let chosen = select(&rows, &front, opts.members)?;
    let steps = opts.steps.unwrap_or(space.train.steps);
    if steps == 0 {
        return Err(CorrelateError::Invalid("--steps: at least 1".into()));
    }
    let top_k = opts.top_k.unwrap_or((opts.members / 4).max(1));
    if top_k == 0 || top_k > opts.members {
        return Err(CorrelateError::Invalid(format!(
            "--top-k {top_k}: between 1 and the number of members ({})",
            opts.members
        )));
    }
    if opts.seeds == 0 {
        return Err(CorrelateError::Invalid("--seeds: at least 1".into()));
    }
    if opts.replicates < 100 {
        return Err(CorrelateError::Invalid(format!(
            "--bootstrap {}: at least 100 replicates",
            opts.replicates
        )));
    }
    let mut jobs = opts
        .jobs
        .unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map_or(1, |n| n.get())
                .min(4)
        })
        .max(1);
    if space.head.dropout > 0.0 && jobs > 1 {
        // dropout masks come from the device's one generator: members trained side by side
        // would draw each other's masks, and the results would depend on the schedule
        progress.note("the space uses dropout: members are trained one at a time (--jobs 1) so that each training is reproducible");
        jobs = 1;
    }

    // the supernet's record of every chosen member, measured now as the search measured it
    let (trainer, ck_path, ck) = load_supernet(&run.dir, &space, &opts.device)?;
    let is_front: Vec<bool> = chosen
        .iter()
        .map(|&i| front.iter().any(|f| f.arch == rows[i].arch))
        .collect();
    progress.note(&format!(
        "supernet from {} (step {}); {} of {} evaluated members chosen ({} on the front)",
        ck_path.display(),
        ck.step,
        chosen.len(),
        rows.len(),
        is_front.iter().filter(|&&f| f).count()
    ));
    let ev = evaluator(&space, &trainer, &data, &images)?;
    let mut supernet_records = Vec::new();
    for &i in &chosen {
        supernet_records.push(ev.per_image(0, &rows[i].arch).map_err(member_failed)?);
    }
    drop(ev);
    drop(trainer);

    // stand-alone training, resumable training by training: member j, seed k is training
    // j * seeds + k
    let seeds = opts.seeds;
    space.train.steps = steps;
    let seeded_spaces: Vec<Space> = (0..seeds)
        .map(|k| {
            let mut s = space.clone();
            s.train.seed = space.train.seed.wrapping_add(k as u64);
            s
        })
        .collect();
    let out_dir = opts
        .folders
        .out
        .clone()
        .unwrap_or_else(|| run.dir.correlate_dir());
    let alone_root = opts
        .folders
        .alone
        .clone()
        .unwrap_or_else(|| run.dir.alone_dir());
    let archs: Vec<Arch> = chosen.iter().map(|&i| rows[i].arch.clone()).collect();
    let recipe = recipe_key(&space);
    let trainings: Vec<Training<'_>> = archs
        .iter()
        .enumerate()
        .flat_map(|(j, a)| {
            let (space, alone_root) = (&space, &alone_root);
            seeded_spaces
                .iter()
                .enumerate()
                .map(move |(k, sp)| Training {
                    member: j,
                    seed: k,
                    arch: a,
                    space: sp,
                    dir: member_dir(alone_root, space, recipe, a, steps, k),
                })
        })
        .collect();
    let todo: Vec<usize> = (0..trainings.len())
        .filter(|&i| !finished(&trainings[i].dir, steps))
        .collect();
    progress.begin(trainings.len(), trainings.len() - todo.len(), steps);
    let started = Instant::now();
    let seconds = train_members(
        &run.space_file,
        &data,
        &trainings,
        seeds,
        &todo,
        jobs,
        &opts.device,
        progress,
    );
    progress.end();
    let seconds = seconds?;
    let training_seconds = if todo.is_empty() {
        0.0
    } else {
        started.elapsed().as_secs_f64()
    };

    // the stand-alone records, from each training's last checkpoint
    let mut alone_records = Vec::new();
    for t in &trainings {
        let alone = load_alone(t.space, t.arch, &t.dir, &opts.device)?;
        let ev = evaluator(t.space, &alone, &data, &images)?;
        alone_records.push(ev.per_image(0, t.arch).map_err(member_failed)?);
    }
    let fraction = |records: &[Vec<bool>]| -> Vec<f64> {
        let n = records[0].len();
        (0..n)
            .map(|i| records.iter().filter(|r| r[i]).count() as f64 / records.len() as f64)
            .collect()
    };
    let paired = Paired {
        supernet: supernet_records
            .iter()
            .map(|r| r.iter().map(|&c| f64::from(u8::from(c))).collect())
            .collect(),
        alone: alone_records.chunks(seeds).map(fraction).collect(),
        front: is_front.clone(),
    };
    let analysis = analyse(&paired, top_k, opts.replicates, opts.seed, CONFIDENCE);
    let seed_agreement = (seeds >= 2).then(|| {
        let seed = |k: usize| -> Vec<Vec<f64>> {
            alone_records
                .chunks(seeds)
                .map(|c| c[k].iter().map(|&x| f64::from(u8::from(x))).collect())
                .collect()
        };
        let two = Paired {
            supernet: seed(0),
            alone: seed(1),
            front: is_front.clone(),
        };
        let a = analyse(&two, top_k, opts.replicates, opts.seed, CONFIDENCE);
        SeedAgreement {
            kendall_tau_b: a.kendall_tau_b,
            spearman_rho: a.spearman_rho,
            max_abs_difference: a.gaps.iter().map(|g| g.value.abs()).fold(0.0, f64::max),
        }
    });
    let mut results = Vec::new();
    for (j, &i) in chosen.iter().enumerate() {
        let row = &rows[i];
        let mine = &trainings[j * seeds..(j + 1) * seeds];
        let per_seed: Vec<Measured> = alone_records[j * seeds..(j + 1) * seeds]
            .iter()
            .map(|r| measured(r))
            .collect();
        let (lo, hi) = per_seed.iter().fold((f64::MAX, f64::MIN), |(a, b), m| {
            (a.min(m.accuracy), b.max(m.accuracy))
        });
        let alone = AloneAccuracy {
            accuracy: per_seed.iter().map(|m| m.accuracy).sum::<f64>() / seeds as f64,
            interval: match (seeds, analysis.alone[j].interval) {
                (1, _) | (_, None) => per_seed[0].interval,
                (_, Some(iv)) => iv,
            },
            seeds: per_seed,
            spread: hi - lo,
        };
        let r = MemberResult {
            index: j + 1,
            origin: row.origin.clone(),
            front: is_front[j],
            arch: row.arch.clone(),
            bitops: row.bitops,
            search_accuracy: row.accuracy,
            supernet: measured(&supernet_records[j]),
            alone,
            alone_test: mine.iter().map(|t| alone_test(&t.dir)).collect(),
            gap: analysis.gaps[j],
            seconds: seconds[j * seeds..(j + 1) * seeds].iter().sum(),
            run_dirs: mine.iter().map(|t| t.dir.clone()).collect(),
        };
        if split == EvalSplit::Validation && (r.supernet.accuracy - row.accuracy).abs() > 1e-9 {
            progress.note(&format!(
                "member {}: the search recorded {:.4}, the supernet now gives {:.4} ({})",
                j + 1,
                row.accuracy,
                r.supernet.accuracy,
                row.origin
            ));
        }
        results.push(r);
    }
    let report = CorrelateReport {
        schema: CORRELATE_SCHEMA,
        run_dir: run.dir.path().to_path_buf(),
        out_dir: out_dir.clone(),
        space: space.name.clone(),
        members: results.len(),
        evaluated: rows.len(),
        steps,
        seeds,
        split,
        images: paired.supernet.first().map_or(0, Vec::len),
        seed: opts.seed,
        analysis,
        seed_agreement,
        results,
        training_seconds,
    };
    write_outputs(&report)?;
    Ok(report)
}

fn csv(report: &CorrelateReport) -> String {
    let mut out = String::from(
        "index,front,origin,bitops,search_accuracy,supernet_accuracy,supernet_lo,supernet_hi,alone_accuracy,alone_lo,alone_hi,alone_seed_spread,alone_test_accuracy,gap,gap_lo,gap_hi,arch\n",
    );
    let q = |s: &str| format!("\"{}\"", s.replace('"', "\"\""));
    for r in &report.results {
        let (glo, ghi) = r
            .gap
            .interval
            .map_or((f64::NAN, f64::NAN), |i| (i.lo, i.hi));
        out += &format!(
            "{},{},{},{},{:.6},{:.6},{:.6},{:.6},{:.6},{:.6},{:.6},{:.6},{:.6},{:.6},{:.6},{:.6},{}\n",
            r.index,
            r.front,
            q(&r.origin.to_string()),
            r.bitops,
            r.search_accuracy,
            r.supernet.accuracy,
            r.supernet.interval.lo,
            r.supernet.interval.hi,
            r.alone.accuracy,
            r.alone.interval.lo,
            r.alone.interval.hi,
            r.alone.spread,
            {
                let t: Vec<f64> = r.alone_test.iter().flatten().map(|m| m.accuracy).collect();
                if t.is_empty() {
                    f64::NAN
                } else {
                    t.iter().sum::<f64>() / t.len() as f64
                }
            },
            r.gap.value,
            glo,
            ghi,
            q(&r.arch.key())
        );
    }
    out
}

/// A fraction as signed points with `unit` and its interval: `-2.13 points [-9.25, -0.50]`
/// (`unit` " points"); `None` when undefined.
pub fn signed_points(e: Option<&Estimate>, unit: &str) -> Option<String> {
    let e = e?;
    Some(match e.interval {
        Some(i) => format!(
            "{:+.2}{unit} [{:+.2}, {:+.2}]",
            e.value * 100.0,
            i.lo * 100.0,
            i.hi * 100.0
        ),
        None => format!("{:+.2}{unit}", e.value * 100.0),
    })
}

/// A figure with its interval, for titles: `0.74 [0.52, 0.90]`.
pub fn with_interval(e: Option<&Estimate>) -> String {
    match e {
        None => "undefined".to_string(),
        Some(Estimate {
            value,
            interval: Some(i),
        }) => format!("{value:.2} [{:.2}, {:.2}]", i.lo, i.hi),
        Some(Estimate { value, .. }) => format!("{value:.2}"),
    }
}

fn write_outputs(report: &CorrelateReport) -> Result<(), CorrelateError> {
    let dir = &report.out_dir;
    write_json_atomic(&dir.join(REPORT_FILE), report)?;
    write_atomic(&dir.join("correlate.csv"), csv(report).as_bytes())?;
    let points: Vec<ScatterPoint> = report
        .results
        .iter()
        .map(|r| ScatterPoint {
            standalone: r.alone.accuracy,
            standalone_ci: (r.alone.interval.lo, r.alone.interval.hi),
            supernet: r.supernet.accuracy,
            supernet_ci: (r.supernet.interval.lo, r.supernet.interval.hi),
            front: r.front,
            label: r.index.to_string(),
        })
        .collect();
    let a = &report.analysis;
    let title = format!(
        "{}: supernet vs stand-alone accuracy ({} members, {} steps alone{})",
        report.space,
        report.members,
        report.steps,
        if report.seeds > 1 {
            format!(", mean of {} seeds", report.seeds)
        } else {
            String::new()
        }
    );
    let subtitle = format!(
        "tau-b {}, rho {}, median gap {:+.1} pts; {} {} images, 95% intervals",
        with_interval(a.kendall_tau_b.as_ref()),
        with_interval(a.spearman_rho.as_ref()),
        a.median_gap.map_or(f64::NAN, |g| g.value * 100.0),
        report.images,
        report.split.name()
    );
    let figure = ScatterPlot {
        points: &points,
        title: &title,
        subtitle: &subtitle,
        split: report.split.name(),
    };
    search::plot::write(dir, "correlate", &figure)?;
    Ok(())
}
