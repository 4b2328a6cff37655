//! `qnas train`: trains the supernet of a space file on its data set, with checkpoints, a
//! metrics log and exact resume. Progress goes through [`TrainProgress`]; nothing here prints.
//!
//! Run folder (default `runs/<space name>`):
//! - `space.ron`: the space file as given (the run describes itself);
//! - `config.json`: the validated space, with every default filled in;
//! - `checkpoints/step-NNNNNN.qckpt`: crash-safe checkpoints (the last few are kept);
//! - `metrics.jsonl`: one JSON object per step;
//! - `train.json`: the summary (schema `qnas.train/1`), written at the end.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::tensor::Device;
use evaluators::data::{BatchLoader, DataError, DataSpec, SearchData};
use evaluators::{EvalConfig, Measured, recalibrate_and_evaluate};
use serde::{Deserialize, Serialize};
use spaces::{Arch, Format, Space, SpaceError};
use supernet::checkpoint::{self, Checkpoint, CheckpointError};
use supernet::{StepReport, TrainError, TrainState, Trainer};

use crate::fsio::{IoError, write_atomic, write_json_atomic};

/// Schema tag of [`TrainSummary`].
pub const TRAIN_SCHEMA: &str = "qnas.train/1";

/// What to train and where.
#[derive(Clone, Debug)]
pub struct TrainOptions {
    /// The space file.
    pub file: PathBuf,
    /// Run folder; default `runs/<space name>`.
    pub run_dir: Option<PathBuf>,
    /// Continue from the last good checkpoint of the run folder.
    pub resume: bool,
    /// Delete the run folder's checkpoints and start over.
    pub restart: bool,
    /// Overrides `train.steps`.
    pub steps: Option<u64>,
    /// Device to train on (autodiff is added).
    pub device: Device,
    /// Train this member alone, from scratch (an arch file of the space), instead of the
    /// supernet; default run folder `runs/<space name>-alone-<member fingerprint>`.
    pub arch: Option<PathBuf>,
}

/// Why `qnas train` failed.
#[derive(Debug, thiserror::Error)]
pub enum TrainCmdError {
    /// The space file is invalid.
    #[error(transparent)]
    Space(#[from] Box<SpaceError>),
    /// The space file names no data set.
    #[error(
        "{file}: the space has no `data` section; add e.g. `data: (kind: Mnist, path: \"data/mnist-5k\")`"
    )]
    NoData {
        /// The file.
        file: String,
    },
    /// The data files are unusable.
    #[error(transparent)]
    Data(#[from] DataError),
    /// The data does not fit the space.
    #[error("{file}: the data set has {found} images but the space expects {expected}")]
    Shape {
        /// The space file.
        file: String,
        /// Image shape of the data.
        found: String,
        /// Input shape of the space.
        expected: String,
    },
    /// The path given is neither a run folder nor a space file.
    #[error("{}: no such run folder or space file (a run folder is what `qnas run` or `qnas train` writes, runs/<name> by default)", path.display())]
    NoRun {
        /// The path.
        path: PathBuf,
    },
    /// The run folder trains another member, or the supernet.
    #[error("{}: {message}; pass --restart to train {wanted} there from scratch, or another --run", dir.display())]
    OtherMember {
        /// The run folder.
        dir: PathBuf,
        /// What the folder holds.
        message: String,
        /// What was asked for.
        wanted: String,
    },
    /// The run folder already has checkpoints.
    #[error("{}: the run folder already has checkpoints; pass --resume to continue or --restart to start over", dir.display())]
    RunExists {
        /// The run folder.
        dir: PathBuf,
    },
    /// `--resume` found no checkpoint.
    #[error("{}: no good checkpoint to resume from{}", dir.display(), if skipped.is_empty() { String::new() } else { format!(" (skipped: {})", skipped.join("; ")) })]
    NothingToResume {
        /// The checkpoint folder.
        dir: PathBuf,
        /// Damaged checkpoints that were skipped, with why.
        skipped: Vec<String>,
    },
    /// A checkpoint could not be read or written.
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    /// A checkpoint's content does not fit.
    #[error("{}: {message}", path.display())]
    BadCheckpoint {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// Training failed.
    #[error(transparent)]
    Train(#[from] TrainError),
    /// A file could not be written.
    #[error(transparent)]
    Io(#[from] IoError),
}

impl From<SpaceError> for TrainCmdError {
    fn from(e: SpaceError) -> Self {
        TrainCmdError::Space(Box::new(e))
    }
}

impl TrainCmdError {
    /// True when the user's input is at fault (exit code 2).
    pub fn is_invalid_input(&self) -> bool {
        !matches!(self, TrainCmdError::Train(_) | TrainCmdError::Io(_))
    }
}

/// Receives progress.
pub trait TrainProgress {
    /// Training starts at `start` of `total` steps.
    fn begin(&mut self, total: u64, start: u64);
    /// A step finished.
    fn step(&mut self, report: &StepReport, images_per_second: f64);
    /// Something worth telling (a checkpoint, a resume, a skipped file).
    fn note(&mut self, message: &str);
    /// Training ended (before the final evaluation).
    fn end(&mut self);
}

/// A progress sink that drops everything.
#[derive(Debug, Default)]
pub struct Quiet;

impl TrainProgress for Quiet {
    fn begin(&mut self, _: u64, _: u64) {}
    fn step(&mut self, _: &StepReport, _: f64) {}
    fn note(&mut self, _: &str) {}
    fn end(&mut self) {}
}

/// One line of `metrics.jsonl`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MetricsLine {
    /// The step's report.
    #[serde(flatten)]
    pub report: StepReport,
    /// Training throughput of the step (images through the step's members per second).
    pub images_per_second: f64,
}

/// Accuracy of one named member after recalibration.
#[derive(Clone, Debug, Serialize)]
pub struct MemberAccuracy {
    /// What it is.
    pub name: String,
    /// The member.
    pub arch: Arch,
    /// Validation top-1 accuracy.
    pub validation_accuracy: f64,
    /// The same with its counts and 95% interval.
    pub validation: Measured,
    /// Supernet copy that evaluated it.
    pub supernet: usize,
}

/// The balanced-mixture assignment at the end of training.
#[derive(Clone, Debug, Serialize)]
pub struct MixtureReport {
    /// EMA of validation accuracy per (pooling configuration, supernet).
    pub matrix: Vec<Vec<f64>>,
    /// Balanced p(supernet | configuration).
    pub conditional: Vec<Vec<f64>>,
    /// Marginal over supernets (uniform after balancing).
    pub marginal: Vec<f64>,
    /// Supernet that evaluates each configuration.
    pub assignments: Vec<usize>,
    /// Readable names of the configurations.
    pub configurations: Vec<String>,
}

/// What `qnas train` reports.
#[derive(Clone, Debug, Serialize)]
pub struct TrainSummary {
    /// [`TRAIN_SCHEMA`].
    pub schema: &'static str,
    /// Run folder.
    pub run_dir: PathBuf,
    /// Space name.
    pub space: String,
    /// Steps done in total.
    pub steps: u64,
    /// Step this invocation started from.
    pub resumed_from: u64,
    /// Seconds spent training in this invocation.
    pub seconds: f64,
    /// Mean throughput of this invocation.
    pub images_per_second: f64,
    /// Final checkpoint.
    pub checkpoint: PathBuf,
    /// Accuracy of reference members after recalibration.
    pub members: Vec<MemberAccuracy>,
    /// The mixture, when training used one.
    pub mixture: Option<MixtureReport>,
    /// The member trained alone (`qnas train --arch`), with its validation and test accuracy.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alone: Option<AloneReport>,
}

/// The accuracy of a member trained alone, after BN recalibration as the search evaluates
/// members.
#[derive(Clone, Debug, Serialize)]
pub struct AloneReport {
    /// The member.
    pub arch: Arch,
    /// Its fingerprint ([`Space::member_fingerprint`]), in hex.
    pub fingerprint: String,
    /// Validation split (the images the search ranks members on).
    pub validation: Measured,
    /// The data set's test files.
    pub test: Measured,
}

/// `train.json` of a run folder: the summary of its finished training.
pub const SUMMARY_FILE: &str = "train.json";

/// The summary a finished training left in run folder `dir` (`train.json`, as JSON), or `None`
/// when there is none or it cannot be read.
pub fn read_summary(dir: &Path) -> Option<serde_json::Value> {
    let text = std::fs::read_to_string(dir.join(SUMMARY_FILE)).ok()?;
    serde_json::from_str(&text).ok()
}

/// `arch.ron` of a stand-alone run folder: the member it trains.
pub const MEMBER_FILE: &str = "arch.ron";

/// The default run folder of `arch` trained alone.
pub fn member_run_dir(space: &Space, arch: &Arch) -> Result<PathBuf, TrainCmdError> {
    let f = space
        .member_fingerprint(arch)
        .map_err(|e| TrainCmdError::Train(e.into()))?;
    Ok(PathBuf::from("runs").join(format!("{}-alone-{:08x}", space.name, f as u32)))
}

/// Loads a space file's data set and checks it fits the space.
pub fn load_data(space: &Space, file: &Path) -> Result<SearchData, TrainCmdError> {
    let cfg = space.data.as_ref().ok_or_else(|| TrainCmdError::NoData {
        file: file.display().to_string(),
    })?;
    let data = DataSpec::from(cfg).load(Path::new(""))?;
    let s = data.train.shape();
    let i = space.input;
    if (s.channels, s.height, s.width) != (i.channels as usize, i.height as usize, i.width as usize)
        || data.train.classes() != space.classes as usize
    {
        return Err(TrainCmdError::Shape {
            file: file.display().to_string(),
            found: format!(
                "{}x{}x{} in {} classes",
                s.channels,
                s.height,
                s.width,
                data.train.classes()
            ),
            expected: format!(
                "{}x{}x{} in {} classes",
                i.channels, i.height, i.width, space.classes
            ),
        });
    }
    Ok(data)
}

/// An in-order loader over the test files of `space`'s data set.
pub fn test_loader(
    space: &Space,
    data: &SearchData,
    batch_size: usize,
) -> Result<BatchLoader, TrainCmdError> {
    let cfg = space.data.as_ref().ok_or_else(|| TrainCmdError::NoData {
        file: space.name.clone(),
    })?;
    let test = DataSpec::from(cfg).load_test(Path::new(""))?;
    Ok(data.eval_loader(std::sync::Arc::new(test), batch_size)?)
}

/// `source.json` of a run folder: where its space file came from, so that the copy
/// `space.ron` resolves relative paths (the data folder) as the original did.
pub const SOURCE_FILE: &str = "source.json";

/// `source.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Source {
    /// The space file the run was trained from (absolute).
    pub space_file: PathBuf,
}

/// A run opened from its folder or from its space file.
#[derive(Clone, Debug)]
pub struct Run {
    /// The space.
    pub space: Space,
    /// The space file read (`<run>/space.ron`, or the file given).
    pub space_file: PathBuf,
    /// The run folder.
    pub dir: PathBuf,
}

/// Opens a run: `target` is a run folder (holding `space.ron`) or a space file (its run
/// folder is `run_dir`, default `runs/<name>`). The copy in a run folder resolves relative
/// paths against the original file's folder (from `source.json`), else against the run
/// folder.
pub fn open_run(target: &Path, run_dir_opt: &Option<PathBuf>) -> Result<Run, TrainCmdError> {
    if !target.exists() {
        return Err(TrainCmdError::NoRun {
            path: target.to_path_buf(),
        });
    }
    if target.is_dir() {
        let file = target.join("space.ron");
        let src = std::fs::read_to_string(&file).map_err(|source| SpaceError::Io {
            path: file.clone(),
            source,
        })?;
        let source: Option<Source> = std::fs::read_to_string(target.join(SOURCE_FILE))
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok());
        let (base, default_name) = match &source {
            Some(s) => (
                s.space_file
                    .parent()
                    .map_or_else(|| target.to_path_buf(), Path::to_path_buf),
                s.space_file
                    .file_stem()
                    .and_then(|n| n.to_str())
                    .unwrap_or("space")
                    .to_string(),
            ),
            None => (
                target.to_path_buf(),
                target
                    .file_name()
                    .and_then(|n| n.to_str())
                    .unwrap_or("space")
                    .to_string(),
            ),
        };
        let space = Space::parse_in(&src, &file.display().to_string(), &default_name, &base)?;
        Ok(Run {
            space,
            space_file: file,
            dir: target.to_path_buf(),
        })
    } else {
        let space = Space::load(target)?;
        let dir = run_dir(run_dir_opt, &space);
        Ok(Run {
            space,
            space_file: target.to_path_buf(),
            dir,
        })
    }
}

/// The run folder of a space file.
pub fn run_dir(opts_dir: &Option<PathBuf>, space: &Space) -> PathBuf {
    opts_dir
        .clone()
        .unwrap_or_else(|| PathBuf::from("runs").join(&space.name))
}

/// An endless stream of batches of a loader from a given global batch index.
pub(crate) struct Stream<'a> {
    loader: &'a BatchLoader,
    device: Device,
    epoch: u64,
    it: Option<evaluators::data::Batches>,
}

impl<'a> Stream<'a> {
    pub(crate) fn starting_at(loader: &'a BatchLoader, device: &Device, index: u64) -> Self {
        let per = loader.batches_per_epoch().max(1) as u64;
        let mut s = Stream {
            loader,
            device: device.clone(),
            epoch: index / per,
            it: None,
        };
        let skip = (index % per) as usize;
        let mut it = loader.epoch(s.epoch, device);
        for _ in 0..skip {
            it.next();
        }
        s.it = Some(it);
        s
    }

    pub(crate) fn next(&mut self) -> evaluators::data::Batch {
        loop {
            if let Some(b) = self.it.as_mut().and_then(Iterator::next) {
                return b;
            }
            self.epoch += 1;
            self.it = Some(self.loader.epoch(self.epoch, &self.device));
        }
    }
}

/// A checkpoint of `trainer`, tied to `fingerprint` (the space's, or a member's trained
/// alone).
pub(crate) fn checkpoint_of(
    trainer: &Trainer,
    fingerprint: u64,
) -> Result<Checkpoint, TrainCmdError> {
    let mut ck = Checkpoint::new(
        fingerprint,
        trainer.state.step,
        serde_json::json!({ "space": trainer.space().name, "state": trainer.state }),
    )
    .with_created_now();
    for (i, (model, optim)) in trainer.weights_bytes()?.into_iter().enumerate() {
        ck = ck
            .with_section(format!("model-{i}"), model)
            .with_section(format!("optim-{i}"), optim);
    }
    Ok(ck)
}

/// The training state and the weights of `supernets` copies stored in checkpoint `ck` (read
/// from `path`).
pub(crate) fn checkpoint_contents(
    path: &Path,
    ck: &Checkpoint,
    supernets: usize,
) -> Result<(Vec<supernet::train::WeightBytes>, TrainState), TrainCmdError> {
    let bad = |message: String| TrainCmdError::BadCheckpoint {
        path: path.to_path_buf(),
        message,
    };
    let state: TrainState =
        serde_json::from_value(ck.metadata.get("state").cloned().unwrap_or_default())
            .map_err(|e| bad(format!("training state: {e}")))?;
    let mut weights = Vec::new();
    for i in 0..supernets {
        let model = ck.section(&format!("model-{i}")).ok_or_else(|| bad(format!("no weights of supernet {i} (is `train.mixture.supernets` the same as when it was written?)")))?;
        let optim = ck
            .section(&format!("optim-{i}"))
            .ok_or_else(|| bad(format!("no optimizer state of supernet {i}")))?;
        weights.push((model.to_vec(), optim.to_vec()));
    }
    Ok((weights, state))
}

/// Restores `trainer` from checkpoint `ck` (read from `path`).
pub(crate) fn restore_from(
    trainer: &mut Trainer,
    path: &Path,
    ck: &Checkpoint,
) -> Result<(), TrainCmdError> {
    let (weights, state) = checkpoint_contents(path, ck, trainer.nets.len())?;
    trainer
        .restore(weights, state)
        .map_err(|e| TrainCmdError::BadCheckpoint {
            path: path.to_path_buf(),
            message: e.to_string(),
        })
}

/// Keeps the first `step` lines of the metrics log (after a resume).
fn truncate_metrics(path: &Path, step: u64) -> Result<(), IoError> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Ok(());
    };
    let kept: String = text
        .lines()
        .filter(|l| serde_json::from_str::<MetricsLine>(l).is_ok_and(|m| m.report.step <= step))
        .map(|l| format!("{l}\n"))
        .collect();
    write_atomic(path, kept.as_bytes())
}

/// Trains; see the module docs.
pub fn train(
    opts: &TrainOptions,
    progress: &mut dyn TrainProgress,
) -> Result<TrainSummary, TrainCmdError> {
    let mut space = Space::load(&opts.file)?;
    if let Some(steps) = opts.steps {
        space.train.steps = steps.max(1);
    }
    let data = load_data(&space, &opts.file)?;
    let member = match &opts.arch {
        Some(path) => Some(Arch::load(path, &space)?),
        None => None,
    };
    let dir = match (&opts.run_dir, &member) {
        (Some(d), _) => d.clone(),
        (None, Some(a)) => member_run_dir(&space, a)?,
        (None, None) => run_dir(&None, &space),
    };
    let job = Job {
        space: &space,
        file: &opts.file,
        data: &data,
        dir,
        resume: opts.resume,
        restart: opts.restart,
        device: opts.device.clone(),
        member,
    };
    train_job(&job, progress)
}

/// One training: the supernet of a space, or one member of it alone.
#[derive(Debug)]
pub struct Job<'a> {
    /// The space (with any override of its settings applied).
    pub space: &'a Space,
    /// The space file (copied into the run folder; relative paths resolve from it).
    pub file: &'a Path,
    /// Its data.
    pub data: &'a SearchData,
    /// The run folder.
    pub dir: PathBuf,
    /// Continue from the last good checkpoint.
    pub resume: bool,
    /// Delete the checkpoints and metrics and start over.
    pub restart: bool,
    /// Device (autodiff is added).
    pub device: Device,
    /// The member to train alone; `None` trains the supernet.
    pub member: Option<Arch>,
}

/// The trainer of `job` (the supernet, or its member alone) and the fingerprint its
/// checkpoints carry.
fn trainer_of(job: &Job<'_>) -> Result<(Trainer, u64), TrainCmdError> {
    Ok(match &job.member {
        Some(a) => (
            Trainer::for_member(job.space, a, &job.device)?,
            job.space
                .member_fingerprint(a)
                .map_err(|e| TrainCmdError::Train(e.into()))?,
        ),
        None => (
            Trainer::new(job.space, &job.device)?,
            job.space.fingerprint(),
        ),
    })
}

/// Checks that a run folder being resumed trains what `job` asks for.
fn check_member_file(job: &Job<'_>) -> Result<(), TrainCmdError> {
    let path = job.dir.join(MEMBER_FILE);
    let held = std::fs::read_to_string(&path)
        .ok()
        .and_then(|t| Arch::parse(&t, &path.display().to_string(), job.space).ok());
    let wanted = match &job.member {
        Some(_) => "this member".to_string(),
        None => "the supernet".to_string(),
    };
    let message = match (&held, &job.member) {
        (Some(h), Some(m)) if h == m => return Ok(()),
        (None, None) => return Ok(()),
        (Some(_), Some(_)) => "the folder trains another member alone (arch.ron)",
        (Some(_), None) => "the folder trains one member alone (arch.ron), not the supernet",
        (None, Some(_)) => "the folder trains the supernet, not a member alone",
    };
    Err(TrainCmdError::OtherMember {
        dir: job.dir.clone(),
        message: message.to_string(),
        wanted,
    })
}

/// Runs one training job; see the module docs.
pub fn train_job(
    job: &Job<'_>,
    progress: &mut dyn TrainProgress,
) -> Result<TrainSummary, TrainCmdError> {
    let space = job.space;
    let dir = job.dir.clone();
    let ck_dir = dir.join("checkpoints");
    let existing = checkpoint::list_checkpoints(&ck_dir).unwrap_or_default();
    if !existing.is_empty() && !job.resume && !job.restart {
        return Err(TrainCmdError::RunExists { dir });
    }
    if !existing.is_empty() && job.resume {
        check_member_file(job)?;
    }
    if job.restart {
        for (_, p) in &existing {
            std::fs::remove_file(p).map_err(|e| IoError::new("remove", p, e))?;
        }
        let _ = std::fs::remove_file(dir.join("metrics.jsonl"));
        let _ = std::fs::remove_file(dir.join(SUMMARY_FILE));
    }
    let (mut trainer, fingerprint) = trainer_of(job)?;
    let metrics_path = dir.join("metrics.jsonl");
    if job.resume {
        let found = checkpoint::latest_good(&ck_dir, Some(fingerprint))?;
        let skipped: Vec<String> = found
            .skipped
            .iter()
            .map(|(p, e)| format!("{}: {e}", p.display()))
            .collect();
        for s in &skipped {
            progress.note(&format!("skipped damaged checkpoint {s}"));
        }
        let Some((path, ck)) = found.found else {
            return Err(TrainCmdError::NothingToResume {
                dir: ck_dir,
                skipped,
            });
        };
        restore_from(&mut trainer, &path, &ck)?;
        truncate_metrics(&metrics_path, trainer.state.step)?;
        progress.note(&format!(
            "resumed from {} (step {})",
            path.display(),
            trainer.state.step
        ));
    } else {
        let src = std::fs::read(job.file).map_err(|e| IoError::new("read", job.file, e))?;
        write_atomic(&dir.join("space.ron"), &src)?;
        write_json_atomic(&dir.join("config.json"), trainer.space())?;
        let source = Source {
            space_file: std::fs::canonicalize(job.file).unwrap_or(job.file.to_path_buf()),
        };
        write_json_atomic(&dir.join(SOURCE_FILE), &source)?;
        match &job.member {
            Some(a) => write_atomic(&dir.join(MEMBER_FILE), a.to_ron().as_bytes())?,
            None => {
                let _ = std::fs::remove_file(dir.join(MEMBER_FILE));
            }
        }
    }
    let data = job.data;

    let t = space.train.clone();
    let train_loader = data.train_loader(t.batch_size as usize)?;
    let val_loader = data.validation_loader(t.batch_size as usize)?;
    let host = Device::flex();
    let mut batches = Stream::starting_at(&train_loader, &host, trainer.state.step);
    let mut val = Stream::starting_at(&val_loader, &host, trainer.state.step);
    let start_step = trainer.state.step;
    progress.begin(t.steps, start_step);
    let mut metrics = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&metrics_path)
        .map_err(|e| IoError::new("open", &metrics_path, e))?;
    let started = Instant::now();
    let mut images = 0u64;
    let mut last_ck = ck_dir.join(checkpoint::checkpoint_file_name(trainer.state.step));
    while trainer.state.step < t.steps {
        let b = batches.next();
        let v = trainer.state.mixture.is_some().then(|| {
            let vb = val.next();
            (vb.images, vb.labels)
        });
        let n = b.labels.dims()[0];
        let t0 = Instant::now();
        let report = trainer.step(b.images, b.labels, v)?;
        let ips = (n * report.members) as f64 / t0.elapsed().as_secs_f64().max(1e-9);
        images += (n * report.members) as u64;
        let line = serde_json::to_string(&MetricsLine {
            report: report.clone(),
            images_per_second: ips,
        })
        .unwrap_or_default();
        writeln!(metrics, "{line}").map_err(|e| IoError::new("append to", &metrics_path, e))?;
        progress.step(&report, ips);
        if report.step % t.checkpoint_every == 0 || report.step == t.steps {
            metrics
                .flush()
                .map_err(|e| IoError::new("flush", &metrics_path, e))?;
            let saved = checkpoint::save(
                &ck_dir,
                &checkpoint_of(&trainer, fingerprint)?,
                t.keep_checkpoints as usize,
            )?;
            progress.note(&format!("checkpoint {}", saved.path.display()));
            last_ck = saved.path;
        }
    }
    // the loop saved at the last step; a resume that had nothing left to do saves one here
    if !last_ck.exists() {
        let saved = checkpoint::save(
            &ck_dir,
            &checkpoint_of(&trainer, fingerprint)?,
            t.keep_checkpoints as usize,
        )?;
        last_ck = saved.path;
    }
    let seconds = started.elapsed().as_secs_f64();
    progress.end();

    // evaluate after recalibration: the member trained alone (validation and test), or
    // reference members of the supernet (validation)
    let eval_nets = trainer.eval_nets();
    let cfg = EvalConfig {
        recalibration_batches: t.recalibration_batches as usize,
        recalibration_epoch: 0,
    };
    let recal_loader = data.train_loader(t.batch_size as usize)?;
    let eval_error = |e: spaces::ArchError| TrainCmdError::Train(TrainError::Member(e));
    let mut members = Vec::new();
    let mut alone = None;
    if let Some(arch) = &job.member {
        let validation =
            recalibrate_and_evaluate(&eval_nets[0], arch, &recal_loader, &val_loader, cfg)
                .map_err(eval_error)?;
        let test_loader = test_loader(space, data, t.batch_size as usize)?;
        let plan = trainer.space().plan(arch).map_err(eval_error)?;
        let test = evaluators::evaluate_plan(&eval_nets[0], &plan, test_loader.epoch(0, &host));
        progress.note(&format!(
            "member alone: validation accuracy {:.2}%, test accuracy {:.2}%",
            validation.top1() * 100.0,
            test.top1() * 100.0
        ));
        members.push(MemberAccuracy {
            name: "member alone".to_string(),
            arch: arch.clone(),
            validation_accuracy: validation.top1(),
            validation: validation.into(),
            supernet: 0,
        });
        alone = Some(AloneReport {
            arch: arch.clone(),
            fingerprint: format!("{fingerprint:016x}"),
            validation: validation.into(),
            test: test.into(),
        });
    } else {
        let mut reference = vec![("largest".to_string(), space.largest())];
        if let Some(a) = space.with_uniform_formats(&space.largest(), Format::FP32, Format::FP32) {
            reference[0] = ("largest at fp32".to_string(), a);
        }
        reference.push(("smallest".to_string(), space.smallest()));
        if let Some(a) =
            space.with_uniform_formats(&space.smallest(), Format::Int(8), Format::Int(8))
        {
            reference.push(("smallest at int8".to_string(), a));
        }
        for (name, arch) in reference {
            let k = trainer.net_index_for(&arch);
            let acc =
                recalibrate_and_evaluate(&eval_nets[k], &arch, &recal_loader, &val_loader, cfg)
                    .map_err(eval_error)?;
            progress.note(&format!(
                "{name}: validation accuracy {:.2}%",
                acc.top1() * 100.0
            ));
            members.push(MemberAccuracy {
                name,
                arch,
                validation_accuracy: acc.top1(),
                validation: acc.into(),
                supernet: k,
            });
        }
    }
    let mixture = trainer.state.mixture.as_ref().map(|m| {
        let names = match &space.downsampling {
            Some(d) => d
                .configs
                .iter()
                .flat_map(|c| d.ops.iter().map(move |o| format!("{c:?} {o:?}")))
                .collect(),
            None => vec!["fixed".to_string()],
        };
        MixtureReport {
            matrix: m.matrix().to_vec(),
            conditional: m.conditional(),
            marginal: m.marginal(),
            assignments: m.assignments(),
            configurations: names,
        }
    });
    let summary = TrainSummary {
        schema: TRAIN_SCHEMA,
        run_dir: dir.clone(),
        space: space.name.clone(),
        steps: trainer.state.step,
        resumed_from: start_step,
        seconds,
        images_per_second: images as f64 / seconds.max(1e-9),
        checkpoint: last_ck,
        members,
        mixture,
        alone,
    };
    write_json_atomic(&dir.join(SUMMARY_FILE), &summary)?;
    Ok(summary)
}
