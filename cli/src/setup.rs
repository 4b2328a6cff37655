//! What every command that reads a run needs before it works: the run opened from its folder
//! or its space file ([`open_run`]), the space's data set, the trained supernet from its
//! checkpoint, and [`SetupError`], why that failed.

use std::path::{Path, PathBuf};

use burn::tensor::Device;
use evaluators::data::{BatchLoader, DataError, DataSpec, SearchData};
use search::fsio::IoError;
use serde::{Deserialize, Serialize};
use spaces::{Space, SpaceError};
use supernet::checkpoint::{self, Checkpoint, CheckpointError};
use supernet::{TrainError, TrainState, Trainer};

use crate::lock::LockError;
use crate::run_dir::{RunDir, SummaryError};

/// Why a command could not set itself up: its space, data, run folder or checkpoint.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
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
    /// No trained supernet in the run folder.
    #[error("{}: no trained supernet; run `qnas train` first", dir.display())]
    NotTrained {
        /// Checkpoint folder.
        dir: PathBuf,
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
    /// `train.json` could not be read.
    #[error(transparent)]
    Summary(#[from] SummaryError),
    /// The supernet could not be built for the space.
    #[error(transparent)]
    Supernet(#[from] TrainError),
    /// A file could not be read or written.
    #[error(transparent)]
    Io(#[from] IoError),
    /// Another process writes into the folder.
    #[error(transparent)]
    Lock(#[from] LockError),
}

impl From<SpaceError> for SetupError {
    fn from(e: SpaceError) -> Self {
        SetupError::Space(Box::new(e))
    }
}

impl SetupError {
    /// True when the user's input is at fault (exit code 2).
    pub fn is_invalid_input(&self) -> bool {
        !matches!(
            self,
            SetupError::Supernet(_) | SetupError::Io(_) | SetupError::Lock(_)
        )
    }
}

/// Loads a space file's data set and checks it fits the space.
pub fn load_data(space: &Space, file: &Path) -> Result<SearchData, SetupError> {
    let cfg = space.data.as_ref().ok_or_else(|| SetupError::NoData {
        file: file.display().to_string(),
    })?;
    let data = DataSpec::from(cfg).load(Path::new(""))?;
    let s = data.train.shape();
    let i = space.input;
    if (s.channels, s.height, s.width) != (i.channels as usize, i.height as usize, i.width as usize)
        || data.train.classes() != space.classes as usize
    {
        return Err(SetupError::Shape {
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
) -> Result<BatchLoader, SetupError> {
    let cfg = space.data.as_ref().ok_or_else(|| SetupError::NoData {
        file: space.name.clone(),
    })?;
    let test = DataSpec::from(cfg).load_test(Path::new(""))?;
    Ok(data.eval_loader(std::sync::Arc::new(test), batch_size)?)
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
pub fn checkpoint_of(trainer: &Trainer, fingerprint: u64) -> Result<Checkpoint, SetupError> {
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
pub fn checkpoint_contents(
    path: &Path,
    ck: &Checkpoint,
    supernets: usize,
) -> Result<(Vec<supernet::train::WeightBytes>, TrainState), SetupError> {
    let bad = |message: String| SetupError::BadCheckpoint {
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
pub fn restore_from(trainer: &mut Trainer, path: &Path, ck: &Checkpoint) -> Result<(), SetupError> {
    let (weights, state) = checkpoint_contents(path, ck, trainer.nets.len())?;
    trainer
        .restore(weights, state)
        .map_err(|e| SetupError::BadCheckpoint {
            path: path.to_path_buf(),
            message: e.to_string(),
        })
}

/// The trained supernet of a run: the latest good checkpoint in its `checkpoints/` restored
/// into a trainer of `space`, with the checkpoint's path and step.
pub fn load_supernet(
    run: &RunDir,
    space: &Space,
    device: &Device,
) -> Result<(Trainer, PathBuf, Checkpoint), SetupError> {
    let ck_dir = run.checkpoints();
    let found = checkpoint::latest_good(&ck_dir, Some(space.fingerprint()))?;
    let Some((path, ck)) = found.found else {
        return Err(SetupError::NotTrained { dir: ck_dir });
    };
    let mut trainer = Trainer::new(space, device)?;
    restore_from(&mut trainer, &path, &ck)?;
    Ok((trainer, path, ck))
}

/// The supernet weights of one checkpoint file (the trained supernet, or a FLIQS stage's
/// copy) restored into a trainer of `space`.
pub fn load_weights(space: &Space, path: &Path, device: &Device) -> Result<Trainer, SetupError> {
    let ck = checkpoint::read_checkpoint(path, Some(space.fingerprint()))?;
    let mut trainer = Trainer::new(space, device)?;
    restore_from(&mut trainer, path, &ck)?;
    Ok(trainer)
}

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
    pub dir: RunDir,
}

/// Opens a run: `target` is a run folder (holding `space.ron`) or a space file (its run
/// folder is `run_dir`, default `runs/<name>`). The copy in a run folder resolves relative
/// paths against the original file's folder (from `source.json`), else against the run
/// folder.
pub fn open_run(target: &Path, run_dir_opt: &Option<PathBuf>) -> Result<Run, SetupError> {
    if !target.exists() {
        return Err(SetupError::NoRun {
            path: target.to_path_buf(),
        });
    }
    if target.is_dir() {
        let file = RunDir::new(target).space_file();
        let src = spaces::read_source(&file)?;
        let source: Option<Source> = std::fs::read_to_string(RunDir::new(target).source_file())
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
            dir: RunDir::new(target),
        })
    } else {
        let space = Space::load(target)?;
        let dir = RunDir::for_space(run_dir_opt.as_deref(), &space);
        Ok(Run {
            space,
            space_file: target.to_path_buf(),
            dir,
        })
    }
}
