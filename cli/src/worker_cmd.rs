//! `qnas worker`: evaluates members of a search's study on this machine, next to `qnas search`
//! and other workers sharing its store (the run's SQLite file, or a PostgreSQL database many
//! machines reach). It needs the run's trained supernet (its `checkpoints/`) and the data
//! set; it takes no lock on the run folder (the search holds it) and writes only to the store.
//! The loop is the `search` crate's ([`search::worker::work`]). Also home of the storage
//! options `qnas search` and `qnas worker` share ([`StoreOptions`]).

use std::path::{Path, PathBuf};
use std::time::Duration;

use burn::tensor::Device;
use evaluators::SupernetEvaluator;
use search::worker::{WorkReport, WorkerError, WorkerProgress};
use search::{Storage, StoreError, StudyConfig};
use spaces::Space;

use crate::setup::{SetupError, load_data, load_supernet, open_run};

/// Where a study is kept and how members are shared, as given on the command line.
#[derive(Clone, Debug, Default)]
pub struct StoreOptions {
    /// `--storage`: a SQLite file or a `postgres://` address (default: `RUN/search/study.db`,
    /// or the search's output folder's `study.db`).
    pub storage: Option<String>,
    /// `--study`: the study's name (default: the space's name).
    pub study: Option<String>,
    /// `--stale-after`: how long without a heartbeat before a member is handed over.
    pub stale_after: Option<Duration>,
}

impl StoreOptions {
    /// The study's configuration for a search writing into `out_dir` on `space`.
    pub fn config(&self, out_dir: &Path, space: &Space) -> Result<StudyConfig, StoreError> {
        let mut c = match &self.storage {
            Some(url) => StudyConfig::new(Storage::parse(url)?, &space.name),
            None => StudyConfig::sqlite_in(out_dir, space),
        };
        if let Some(name) = &self.study {
            c.name = name.clone();
        }
        if let Some(s) = self.stale_after {
            c.stale_after = s;
        }
        Ok(c)
    }
}

/// What to work for.
#[derive(Clone, Debug)]
pub struct WorkerOptions {
    /// A run folder, or the space file it was trained from.
    pub target: PathBuf,
    /// The run folder when `target` is a space file (default `runs/<space name>`).
    pub run_dir: Option<PathBuf>,
    /// The study's store.
    pub store: StoreOptions,
    /// Members evaluated at once (default: as `qnas search`, up to 4 on the CPU).
    pub parallel: Option<usize>,
    /// Device.
    pub device: Device,
}

/// Why `qnas worker` failed.
#[derive(Debug, thiserror::Error)]
pub enum WorkerCmdError {
    /// Loading the space, data or checkpoint failed.
    #[error(transparent)]
    Setup(#[from] SetupError),
    /// The study could not be used.
    #[error(transparent)]
    Worker(#[from] WorkerError),
}

impl From<StoreError> for WorkerCmdError {
    fn from(e: StoreError) -> Self {
        WorkerCmdError::Worker(e.into())
    }
}

impl WorkerCmdError {
    /// True when the user's input is at fault (exit code 2).
    pub fn is_invalid_input(&self) -> bool {
        match self {
            WorkerCmdError::Setup(e) => e.is_invalid_input(),
            WorkerCmdError::Worker(e) => e.is_invalid_input(),
        }
    }
}

/// Works for the study until it has finished; see the module docs.
pub fn work(
    opts: &WorkerOptions,
    progress: &mut dyn WorkerProgress,
) -> Result<WorkReport, WorkerCmdError> {
    let run = open_run(&opts.target, &opts.run_dir)?;
    let space = &run.space;
    // the address is checked before the supernet is loaded
    let config = opts.store.config(&run.dir.search_dir(), space)?;
    let data = load_data(space, &run.space_file)?;
    let (trainer, ck_path, ck) = load_supernet(&run.dir, space, &opts.device)?;
    progress.note(&format!(
        "supernet from {} (step {}); study {:?} in {}",
        ck_path.display(),
        ck.step,
        config.name,
        config.storage.display()
    ));
    let workers = opts
        .parallel
        .unwrap_or_else(|| evaluators::parallel_workers(&opts.device))
        .max(1);
    let mut evaluator =
        SupernetEvaluator::new(space, &trainer, &data, workers).map_err(SetupError::from)?;
    let id = search::worker::worker_id("worker");
    Ok(search::worker::work(
        space,
        &config,
        &id,
        &mut evaluator,
        progress,
    )?)
}
