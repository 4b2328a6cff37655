//! `qnas train`: trains the supernet of a space file on its data set, with checkpoints, a
//! metrics log and exact resume. Progress goes through [`TrainProgress`]; nothing here prints.
//!
//! Run folder (default `runs/<space name>`):
//! - `space.ron`: the space file as given (the run describes itself);
//! - `config.json`: the validated space, with every default filled in;
//! - `checkpoints/step-NNNNNN.qckpt`: crash-safe checkpoints (the last few are kept);
//! - `metrics.jsonl`: one JSON object per step;
//! - `train.json`: the summary (schema `qnas.train/1`), written at the end;
//! - `train.svg`, `train.png`: the curves of the metrics log, written at the end (and by
//!   [`plot_finished_training`] for a finished training that has none).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::tensor::Device;
use evaluators::data::{DataError, SearchData};
use evaluators::{EvalConfig, recalibrate_and_evaluate};
use search::fsio::{IoError, write_atomic, write_json_atomic};
use search::plot::PlotError;
use search::plot::training::{TrainPoint, TrainingPlot};
use serde::{Deserialize, Serialize};
use spaces::{Arch, Format, Space, SpaceError};
use supernet::checkpoint::{self, CheckpointError};
use supernet::{StepReport, TrainError, Trainer};

use crate::lock::FolderLock;
use crate::run_dir::{
    AloneReport, MemberAccuracy, MixtureReport, RunDir, TRAIN_SCHEMA, TrainSummary,
};
use crate::setup::{
    SetupError, Source, Stream, checkpoint_of, load_data, restore_from, test_loader,
};

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
    /// Train data-parallel on these devices (`--devices`, overriding `train.devices`); the
    /// first replaces `device`. `None`: the space file's `train.devices`, or `device` alone.
    pub devices: Option<Vec<String>>,
}

/// Why `qnas train` failed.
#[derive(Debug, thiserror::Error)]
pub enum TrainCmdError {
    /// The space, data or checkpoints could not be read.
    #[error(transparent)]
    Setup(#[from] SetupError),
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
    /// The devices of data-parallel training cannot be used.
    #[error("{field}: {source}")]
    Devices {
        /// Where they were named: `--devices` or `train.devices`.
        field: String,
        /// What is wrong.
        source: crate::backend::BackendError,
    },
    /// Training failed.
    #[error(transparent)]
    Train(#[from] TrainError),
    /// A file could not be written.
    #[error(transparent)]
    Io(#[from] IoError),
    /// The training's plot could not be drawn or written.
    #[error(transparent)]
    Plot(#[from] PlotError),
}

impl From<SpaceError> for TrainCmdError {
    fn from(e: SpaceError) -> Self {
        TrainCmdError::Setup(e.into())
    }
}

impl From<DataError> for TrainCmdError {
    fn from(e: DataError) -> Self {
        TrainCmdError::Setup(e.into())
    }
}

impl From<CheckpointError> for TrainCmdError {
    fn from(e: CheckpointError) -> Self {
        TrainCmdError::Setup(e.into())
    }
}

impl TrainCmdError {
    /// True when the user's input is at fault (exit code 2).
    pub fn is_invalid_input(&self) -> bool {
        match self {
            TrainCmdError::Setup(e) => e.is_invalid_input(),
            TrainCmdError::Devices { source, .. } => source.is_invalid_input(),
            TrainCmdError::Train(_) | TrainCmdError::Io(_) | TrainCmdError::Plot(_) => false,
            _ => true,
        }
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

/// `arch.ron` of a stand-alone run folder: the member it trains.
pub const MEMBER_FILE: &str = "arch.ron";

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
    let (field, names) = match &opts.devices {
        Some(d) => ("--devices", d.clone()),
        None => ("train.devices", space.train.devices.clone()),
    };
    let replicas = if names.is_empty() {
        Vec::new()
    } else {
        crate::backend::devices(&names).map_err(|source| TrainCmdError::Devices {
            field: field.to_string(),
            source,
        })?
    };
    if replicas.len() as u64 > u64::from(space.train.batch_size) {
        return Err(TrainCmdError::Devices {
            field: field.to_string(),
            source: crate::backend::BackendError::BadDevice {
                index: replicas.len() - 1,
                message: format!(
                    "{} devices for batches of {} images (train.batch_size): every device \
                     needs at least one image",
                    replicas.len(),
                    space.train.batch_size
                ),
            },
        });
    }
    let data = load_data(&space, &opts.file)?;
    let member = match &opts.arch {
        Some(path) => Some(Arch::load(path, &space)?),
        None => None,
    };
    let dir = match (&opts.run_dir, &member) {
        (Some(d), _) => RunDir::new(d),
        (None, Some(a)) => {
            RunDir::for_member(&space, a).map_err(|e| TrainCmdError::Train(e.into()))?
        }
        (None, None) => RunDir::for_space(None, &space),
    };
    let job = Job {
        space: &space,
        file: &opts.file,
        data: &data,
        dir,
        resume: opts.resume,
        restart: opts.restart,
        device: replicas.first().unwrap_or(&opts.device).clone(),
        replicas,
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
    pub dir: RunDir,
    /// Continue from the last good checkpoint.
    pub resume: bool,
    /// Delete the checkpoints and metrics and start over.
    pub restart: bool,
    /// Device (autodiff is added).
    pub device: Device,
    /// The devices of data-parallel training, `device` first (see
    /// [`Trainer::set_replicas`]); empty or one device: `device` alone.
    pub replicas: Vec<Device>,
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
    let path = job.dir.member_file();
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
        dir: job.dir.path().to_path_buf(),
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
    let dir = &job.dir;
    let command = match job.member {
        Some(_) => "qnas train --arch",
        None => "qnas train",
    };
    std::fs::create_dir_all(dir.path())
        .map_err(|e| SetupError::from(IoError::new("create folder", dir.path(), e)))?;
    let _lock = FolderLock::run_folder(dir.path(), command).map_err(SetupError::from)?;
    let ck_dir = dir.checkpoints();
    let existing = checkpoint::list_checkpoints(&ck_dir).unwrap_or_default();
    if !existing.is_empty() && !job.resume && !job.restart {
        return Err(TrainCmdError::RunExists {
            dir: dir.path().to_path_buf(),
        });
    }
    if !existing.is_empty() && job.resume {
        check_member_file(job)?;
    }
    if job.restart {
        for (_, p) in &existing {
            std::fs::remove_file(p).map_err(|e| IoError::new("remove", p, e))?;
        }
        let _ = std::fs::remove_file(dir.metrics_file());
        let _ = std::fs::remove_file(dir.summary_file());
    }
    let (mut trainer, fingerprint) = trainer_of(job)?;
    if job.replicas.len() > 1 {
        trainer.set_replicas(&job.replicas)?;
        progress.note(&format!(
            "data-parallel training on {} replicas",
            job.replicas.len()
        ));
    }
    let metrics_path = dir.metrics_file();
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
        write_atomic(&dir.space_file(), &src)?;
        write_json_atomic(&dir.config_file(), trainer.space())?;
        let source = Source {
            space_file: std::fs::canonicalize(job.file).unwrap_or(job.file.to_path_buf()),
        };
        write_json_atomic(&dir.source_file(), &source)?;
        match &job.member {
            Some(a) => write_atomic(&dir.member_file(), a.to_ron().as_bytes())?,
            None => {
                let _ = std::fs::remove_file(dir.member_file());
            }
        }
    }
    let t = space.train.clone();
    // a mixture learns its assignment on a part of the training split held out from the
    // supernets' training, never on the validation split that ranks the members
    let (mixture_data, held_out) = match trainer.state.mixture {
        Some(_) => {
            let (rest, held) = job.data.hold_out(t.mixture.holdout_fraction)?;
            (Some(rest), Some(held))
        }
        None => (None, None),
    };
    let data = mixture_data.as_ref().unwrap_or(job.data);
    let train_loader = data.train_loader(t.batch_size as usize)?;
    let val_loader = data.validation_loader(t.batch_size as usize)?;
    let mixture_loader = match held_out {
        Some(h) => data.eval_loader(h, t.batch_size as usize)?,
        None => val_loader.clone(),
    };
    let host = Device::flex();
    let mut batches = Stream::starting_at(&train_loader, &host, trainer.state.step);
    let mut val = Stream::starting_at(&mixture_loader, &host, trainer.state.step);
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
        schema: TRAIN_SCHEMA.to_string(),
        run_dir: dir.path().to_path_buf(),
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
    // the plot before train.json, which marks the training finished: a training killed between
    // the two is trained again from its last checkpoint, never read back without its plot
    write_training_plot(dir, &space.name)?;
    write_json_atomic(&dir.summary_file(), &summary)?;
    Ok(summary)
}

/// The steps of a metrics log (lines that do not read, such as a torn last line, are skipped).
pub fn read_metrics(path: &Path) -> Result<Vec<TrainPoint>, IoError> {
    let text = std::fs::read_to_string(path).map_err(|e| IoError::new("read", path, e))?;
    Ok(text
        .lines()
        .filter_map(|l| serde_json::from_str::<MetricsLine>(l).ok())
        .map(|m| TrainPoint {
            step: m.report.step,
            lr: m.report.lr,
            loss: m.report.loss,
            largest_loss: m.report.largest_loss,
            largest_accuracy: m.report.largest_accuracy,
            smallest_accuracy: m.report.smallest_accuracy,
            members: m.report.members,
        })
        .collect())
}

/// Writes `train.svg` and `train.png` of the run folder from its metrics log.
fn write_training_plot(dir: &RunDir, space: &str) -> Result<(), TrainCmdError> {
    let points = read_metrics(&dir.metrics_file())?;
    let what = if dir.member_file().exists() {
        "one member alone"
    } else {
        "the supernet"
    };
    let title = format!("{space}: training of {what} ({} steps)", points.len());
    let figure = TrainingPlot {
        points: &points,
        title: &title,
    };
    search::plot::write(dir.path(), RunDir::TRAIN_PLOT, &figure)?;
    Ok(())
}

/// Writes the training plot of a finished training read back (`qnas run`, `qnas experiment`)
/// when the folder has none (trained before the plot was written), under the folder's lock.
pub fn plot_finished_training(dir: &RunDir, space: &str) -> Result<(), TrainCmdError> {
    if dir.train_plot_files().iter().all(|f| f.exists()) {
        return Ok(());
    }
    let _lock = FolderLock::run_folder(dir.path(), "qnas train").map_err(SetupError::from)?;
    write_training_plot(dir, space)
}
