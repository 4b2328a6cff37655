//! The run folder: [`RunDir`] owns the path of every file a run keeps, and [`TrainSummary`]
//! is `train.json`, typed.
//!
//! ```text
//! runs/<space name>/
//!   space.ron         the space file as given (the run describes itself)
//!   source.json       where that file came from (resolves its relative paths)
//!   config.json       the validated space, every default filled in
//!   arch.ron          the member a stand-alone run trains (`qnas train --arch`)
//!   checkpoints/      crash-safe checkpoints, step-NNNNNN.qckpt
//!   metrics.jsonl     one JSON object per training step
//!   train.json        the training's summary (qnas.train/1)
//!   train.{svg,png}   the training's curves (loss, batch accuracies, learning rate)
//!   search/           `qnas search`: study.db (the study), evaluated.csv, pareto.{json,csv},
//!                     the plots pareto, hypervolume and formats (.svg, .png),
//!                     fliqs-stage-K.qckpt (FLIQS training mode)
//!   export/           `qnas export`: one model folder per exported member
//!   correlate/        `qnas correlate`: its report and alone/<member>/ trainings
//! ```

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use spaces::{Arch, Space};
use stats::Measured;
use supernet::checkpoint;

/// Schema tag of [`TrainSummary`].
pub const TRAIN_SCHEMA: &str = "qnas.train/1";

/// The HAWQ baseline's measured layer sensitivities, in a search's output folder.
pub const HAWQ_FILE: &str = "hawq.json";

/// `train.json` could not be read.
#[derive(Debug, thiserror::Error)]
#[error("{}: {message}", path.display())]
pub struct SummaryError {
    /// The file.
    pub path: PathBuf,
    /// Why.
    pub message: String,
}

/// A run folder and the paths of everything in it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunDir {
    root: PathBuf,
}

impl RunDir {
    /// The run folder at `root`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        RunDir { root: root.into() }
    }

    /// The run folder of a space: `dir` when given, else `runs/<space name>`.
    pub fn for_space(dir: Option<&Path>, space: &Space) -> Self {
        RunDir::new(dir.map_or_else(
            || PathBuf::from("runs").join(&space.name),
            Path::to_path_buf,
        ))
    }

    /// The default run folder of `arch` trained alone: `runs/<space>-alone-<fingerprint>`.
    pub fn for_member(space: &Space, arch: &Arch) -> Result<Self, spaces::ArchError> {
        let f = space.member_fingerprint(arch)?;
        Ok(RunDir::new(
            PathBuf::from("runs").join(format!("{}-alone-{:08x}", space.name, f as u32)),
        ))
    }

    /// The folder itself.
    pub fn path(&self) -> &Path {
        &self.root
    }

    /// `space.ron`: the space file as given.
    pub fn space_file(&self) -> PathBuf {
        self.root.join("space.ron")
    }

    /// `source.json`: where the space file came from ([`Source`]).
    pub fn source_file(&self) -> PathBuf {
        self.root.join("source.json")
    }

    /// `config.json`: the validated space.
    pub fn config_file(&self) -> PathBuf {
        self.root.join("config.json")
    }

    /// `arch.ron`: the member a stand-alone run trains.
    pub fn member_file(&self) -> PathBuf {
        self.root.join("arch.ron")
    }

    /// `checkpoints/`.
    pub fn checkpoints(&self) -> PathBuf {
        self.root.join("checkpoints")
    }

    /// `metrics.jsonl`.
    pub fn metrics_file(&self) -> PathBuf {
        self.root.join("metrics.jsonl")
    }

    /// `train.json`: the [`TrainSummary`].
    pub fn summary_file(&self) -> PathBuf {
        self.root.join("train.json")
    }

    /// `train`: the name of the training's plot (`train.svg`, `train.png`).
    pub const TRAIN_PLOT: &'static str = "train";

    /// `train.svg` and `train.png`.
    pub fn train_plot_files(&self) -> [PathBuf; 2] {
        ["svg", "png"].map(|ext| self.root.join(format!("{}.{ext}", Self::TRAIN_PLOT)))
    }

    /// `search/`: the search's outputs and saved state.
    pub fn search_dir(&self) -> PathBuf {
        self.root.join("search")
    }

    /// `search/fliqs-stage-K.qckpt`: the weights FLIQS training mode trained for target `stage`.
    pub fn fliqs_stage_checkpoint(&self, stage: usize) -> PathBuf {
        self.search_dir()
            .join(format!("fliqs-stage-{stage}.{}", checkpoint::EXTENSION))
    }

    /// `export/`: the default folder of exported models.
    pub fn export_dir(&self) -> PathBuf {
        self.root.join("export")
    }

    /// `correlate/`: `qnas correlate`'s report and its stand-alone trainings.
    pub fn correlate_dir(&self) -> PathBuf {
        self.root.join("correlate")
    }

    /// `correlate/alone/`: one run folder per member (and seed) trained alone.
    pub fn alone_dir(&self) -> PathBuf {
        self.correlate_dir().join("alone")
    }

    /// The summary of the finished training in this folder; `None` when there is none (not
    /// trained, or a training in progress).
    pub fn read_summary(&self) -> Result<Option<TrainSummary>, SummaryError> {
        let path = self.summary_file();
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => {
                return Err(SummaryError {
                    path,
                    message: e.to_string(),
                });
            }
        };
        serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| SummaryError {
                path,
                message: format!("not a training summary: {e}"),
            })
    }
}

/// Accuracy of one named member after recalibration.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
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
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
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
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainSummary {
    /// [`TRAIN_SCHEMA`].
    pub schema: String,
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
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alone: Option<AloneReport>,
}

/// The accuracy of a member trained alone, after BN recalibration as the search evaluates
/// members.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
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
