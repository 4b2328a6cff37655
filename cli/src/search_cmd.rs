//! `qnas search`: from a trained supernet, the Pareto front of validation accuracy versus
//! BitOps. The search loop and its outputs are the `search` crate's
//! ([`search::driver::search`]); this driver opens the run, builds the one evaluator of members
//! ([`evaluators::SupernetEvaluator`]) and, for FLIQS training mode, the trainer of the policy's
//! members. Nothing here prints.

use std::path::PathBuf;

use burn::tensor::Device;
use evaluators::data::{BatchLoader, SearchData};
use evaluators::{HawqMeasurement, SupernetEvaluator, hawq_sensitivity};
use search::driver::{EvaluationError, PolicyTraining, SearchSetup};
use search::settings::{Overrides, settings};
use search::strategy::StrategyError;
use search::{Origin, SearchError, SearchProgress, SearchReport};
use spaces::{Arch, SearchStrategy, Space};
use stats::Accuracy;
use supernet::checkpoint;
use supernet::train::WeightBytes;
use supernet::{TrainState, Trainer};

use crate::lock::FolderLock;
use crate::run_dir::RunDir;
use crate::setup::{SetupError, Stream, checkpoint_contents, checkpoint_of, load_data};
use crate::worker_cmd::StoreOptions;

/// What to search and where.
#[derive(Clone, Debug)]
pub struct SearchOptions {
    /// The space file the supernet was trained on.
    pub file: PathBuf,
    /// Run folder (default `runs/<space name>`).
    pub run_dir: Option<PathBuf>,
    /// Overrides of the file's `search` section.
    pub overrides: Overrides,
    /// Continue a saved search.
    pub resume: bool,
    /// Device.
    pub device: Device,
    /// Where the search's files go (default `RUN/search`; `qnas experiment` keeps one folder
    /// per search of the same supernet).
    pub out_dir: Option<PathBuf>,
    /// The study's store (default `OUT/study.db`) and how members are shared with workers.
    pub store: StoreOptions,
    /// Members evaluated at once by this process (default: up to 4 on the CPU).
    pub parallel: Option<usize>,
    /// Evaluate on these devices, one worker each (`--devices`; the first is `device`);
    /// empty: `parallel` workers on `device`.
    pub devices: Vec<Device>,
}

/// Why `qnas search` failed.
#[derive(Debug, thiserror::Error)]
pub enum SearchCmdError {
    /// Loading the space, data or checkpoint failed.
    #[error(transparent)]
    Setup(#[from] SetupError),
    /// The search failed.
    #[error(transparent)]
    Search(#[from] SearchError),
    /// The HAWQ baseline's sensitivities could not be measured.
    #[error("measuring the layers' sensitivities for hawq: {0}")]
    Sensitivity(#[from] evaluators::SensitivityError),
}

impl From<StrategyError> for SearchCmdError {
    fn from(e: StrategyError) -> Self {
        SearchCmdError::Search(e.into())
    }
}

impl SearchCmdError {
    /// True when the user's input is at fault (exit code 2).
    pub fn is_invalid_input(&self) -> bool {
        match self {
            SearchCmdError::Setup(e) => e.is_invalid_input(),
            SearchCmdError::Search(e) => e.is_invalid_input(),
            SearchCmdError::Sensitivity(_) => false,
        }
    }
}

/// FLIQS training mode on the supernet: per target, a fresh copy of the trained supernet keeps
/// training (at a tenth of the peak learning rate, no distillation) on the members the policy
/// samples; the stage's weights are written to `search/fliqs-stage-K.qckpt` for export.
struct SupernetPolicyTraining<'a> {
    space: &'a Space,
    data: &'a SearchData,
    run: &'a RunDir,
    weights: Vec<WeightBytes>,
    state: TrainState,
    device: Device,
    /// The FLIQS targets, for notes.
    targets: Vec<f64>,
    loader: &'a BatchLoader,
    /// The stage's supernet copy and its batches (from the start of the training loader).
    tuner: Option<(Trainer, Stream<'a>)>,
}

impl SupernetPolicyTraining<'_> {
    fn failed(arch: &Arch, e: impl std::fmt::Display) -> EvaluationError {
        EvaluationError {
            arch: arch.clone(),
            message: e.to_string(),
        }
    }
}

impl PolicyTraining for SupernetPolicyTraining<'_> {
    fn begin_stage(&mut self, _stage: usize) -> Result<(), EvaluationError> {
        let failed = |e: &dyn std::fmt::Display| Self::failed(&self.space.largest(), e);
        let mut tuner = Trainer::new(self.space, &self.device).map_err(|e| failed(&e))?;
        tuner
            .restore(self.weights.clone(), self.state.clone())
            .map_err(|e| failed(&e))?;
        self.tuner = Some((tuner, Stream::starting_at(self.loader, &Device::flex(), 0)));
        Ok(())
    }

    fn train_step(
        &mut self,
        origin: &Origin,
        members: &[Arch],
    ) -> Result<Vec<f64>, EvaluationError> {
        let (tuner, stream) = self
            .tuner
            .as_mut()
            .ok_or_else(|| Self::failed(&members[0], "no stage begun"))?;
        let b = stream.next();
        // members by the supernet copy the mixture assigns them: one optimizer step of each
        // copy on its own members (all of them with dropout: the policy's samples are peers)
        let mut groups: Vec<(usize, Vec<usize>)> = Vec::new();
        for (i, a) in members.iter().enumerate() {
            let k = tuner.net_index_for(a);
            match groups.iter_mut().find(|(m, _)| *m == k) {
                Some((_, is)) => is.push(i),
                None => groups.push((k, vec![i])),
            }
        }
        let mut accuracies = vec![0.0; members.len()];
        for (model, is) in groups {
            let named: Vec<(String, Arch)> = is
                .iter()
                .map(|&i| (origin.to_string(), members[i].clone()))
                .collect();
            let choice = supernet::Choice {
                model,
                config: supernet::train::pooling_index(self.space, &members[is[0]]),
                distill: false,
                lr: self.space.train.optimizer.lr() * 0.1,
                dropout_on_every: true,
            };
            let report = tuner
                .train_members(b.images.clone(), b.labels.clone(), &named, choice, None)
                .map_err(|e| Self::failed(&members[is[0]], e))?;
            for (&i, acc) in is.iter().zip(report.member_accuracies) {
                accuracies[i] = acc;
            }
        }
        Ok(accuracies)
    }

    fn finish_stage(
        &mut self,
        stage: usize,
        arch: &Arch,
    ) -> Result<(Accuracy, String), EvaluationError> {
        let (tuner, _) = self
            .tuner
            .take()
            .ok_or_else(|| Self::failed(arch, "no stage begun"))?;
        let ev = SupernetEvaluator::new(self.space, &tuner, self.data, 1)
            .map_err(|e| Self::failed(arch, e))?;
        let acc = ev.accuracy(0, arch).map_err(|e| Self::failed(arch, e))?;
        let ck =
            checkpoint_of(&tuner, self.space.fingerprint()).map_err(|e| Self::failed(arch, e))?;
        let path = self.run.fliqs_stage_checkpoint(stage);
        checkpoint::write_checkpoint(&path, &ck).map_err(|e| Self::failed(arch, e))?;
        Ok((
            acc,
            format!(
                "weights of the target {} member: {}",
                self.targets.get(stage).copied().unwrap_or(f64::NAN),
                path.display()
            ),
        ))
    }
}

/// The HAWQ baseline's sensitivities: those saved in `OUT/hawq.json` when it was measured
/// with the same settings and seed (a resumed search), else measured now and saved there.
#[allow(clippy::too_many_arguments)]
fn hawq_measurement(
    space: &Space,
    out_dir: &std::path::Path,
    evaluator: &SupernetEvaluator<'_>,
    data: &SearchData,
    settings: &spaces::HawqSettings,
    seed: u64,
    opts: &SearchOptions,
    progress: &mut dyn SearchProgress,
) -> Result<HawqMeasurement, SearchCmdError> {
    let path = out_dir.join(crate::run_dir::HAWQ_FILE);
    if opts.resume {
        let saved = std::fs::read(&path)
            .ok()
            .and_then(|b| serde_json::from_slice::<HawqMeasurement>(&b).ok())
            .filter(|m| &m.settings == settings && m.seed == seed);
        if let Some(m) = saved {
            progress.note(&format!("layer sensitivities from {}", path.display()));
            return Ok(m);
        }
    }
    progress.note(&format!(
        "hawq: Hessian traces of the largest member's layers ({} random vectors on {} training images)",
        settings.samples, settings.images
    ));
    let m = hawq_sensitivity(space, evaluator, data, settings, seed, &opts.device)?;
    std::fs::create_dir_all(out_dir)
        .map_err(|e| SearchError::Io(search::fsio::IoError::new("create", out_dir, e)))?;
    search::fsio::write_json_atomic(&path, &m).map_err(SearchError::from)?;
    progress.note(&format!("layer sensitivities: {}", path.display()));
    Ok(m)
}

/// Runs the search; see the module docs.
pub fn search(
    opts: &SearchOptions,
    progress: &mut dyn SearchProgress,
) -> Result<SearchReport, SearchCmdError> {
    let space = Space::load(&opts.file).map_err(SetupError::from)?;
    let data = load_data(&space, &opts.file)?;
    let run = RunDir::for_space(opts.run_dir.as_deref(), &space);
    let ck_dir = run.checkpoints();
    if checkpoint::list_checkpoints(&ck_dir)
        .unwrap_or_default()
        .is_empty()
    {
        return Err(SetupError::NotTrained { dir: ck_dir }.into());
    }
    // the folder is a trained run: from here on nobody else writes into it (a training still
    // running holds it)
    let _lock = FolderLock::run_folder(run.path(), "qnas search").map_err(SetupError::from)?;
    let found =
        checkpoint::latest_good(&ck_dir, Some(space.fingerprint())).map_err(SetupError::from)?;
    let Some((ck_path, ck)) = found.found else {
        return Err(SetupError::NotTrained { dir: ck_dir }.into());
    };
    let mut trainer = Trainer::new(&space, &opts.device).map_err(SetupError::from)?;
    // the weights stay at hand: FLIQS training mode starts a fresh copy from them per target
    let (weights, state) = checkpoint_contents(&ck_path, &ck, trainer.nets.len())?;
    trainer
        .restore(weights.clone(), state.clone())
        .map_err(|e| SetupError::BadCheckpoint {
            path: ck_path.clone(),
            message: e.to_string(),
        })?;
    progress.note(&format!(
        "supernet from {} (step {})",
        ck_path.display(),
        ck.step
    ));
    let set = settings(&space, &opts.overrides)?;
    let out_dir = opts.out_dir.clone().unwrap_or_else(|| run.search_dir());
    let study = opts
        .store
        .config(&out_dir, &space)
        .map_err(SearchError::from)?;
    let workers = opts
        .parallel
        .unwrap_or_else(|| evaluators::parallel_workers(&opts.device))
        .max(1);
    let mut evaluator = if opts.devices.is_empty() {
        SupernetEvaluator::new(&space, &trainer, &data, workers)
    } else {
        SupernetEvaluator::on_devices(&space, &trainer, &data, &opts.devices)
    }
    .map_err(SetupError::from)?;
    let loader = data
        .train_loader(space.train.batch_size as usize)
        .map_err(SetupError::from)?;
    let mut policy = (set.strategy == SearchStrategy::Fliqs && set.fliqs_training).then(|| {
        SupernetPolicyTraining {
            space: &space,
            data: &data,
            run: &run,
            weights,
            state,
            device: opts.device.clone(),
            targets: set.targets.clone(),
            loader: &loader,
            tuner: None,
        }
    });
    let measured = match &set.hawq {
        Some(h) if set.strategy == SearchStrategy::Hawq => Some(hawq_measurement(
            &space, &out_dir, &evaluator, &data, h, set.seed, opts, progress,
        )?),
        _ => None,
    };
    let setup = SearchSetup {
        space: &space,
        settings: &set,
        out_dir: &out_dir,
        resume: opts.resume,
        sensitivity: measured.as_ref().map(|m| &m.sensitivity),
        study: Some(&study),
    };
    Ok(search::search(
        setup,
        &mut evaluator,
        policy.as_mut().map(|p| p as &mut dyn PolicyTraining),
        progress,
    )?)
}
