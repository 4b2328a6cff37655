//! `qnas export`: members of a run's Pareto front as standalone model folders (see
//! [`crate::model_dir`]).
//!
//! Each member is recalibrated on the supernet exactly as the search evaluated it (same
//! supernet copy, batches and validation images), cut out with `extract`, and measured again
//! as a static network on the validation split and the test files.

use std::path::{Path, PathBuf};

use burn::tensor::Device;
use evaluators::{EvalConfig, evaluate_static, recalibrate_and_evaluate};
use serde::{Deserialize, Serialize};
use spaces::{Arch, Space};
use supernet::checkpoint;
use supernet::{Phase, StaticNet, Trainer};

use crate::fsio::IoError;
use crate::model_dir::{
    AccuracyInfo, CostInfo, DataInfo, INFO_FILE, InputInfo, MODEL_SCHEMA, Measured, ModelError,
    ModelInfo, read_info, sizes, write_model_dir,
};
use crate::search_cmd::{Row, Settings};
use crate::train_cmd::{TrainCmdError, checkpoint_contents, load_data, open_run};

/// `schema` of `qnas export --json`.
pub const EXPORT_SCHEMA: &str = "qnas.export/1";

/// Which members of the front to export. With nothing set, the whole front.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Selection {
    /// Positions in the front, from 1 (cheapest first, as `qnas search` lists it).
    pub pick: Vec<usize>,
    /// Every member (the default).
    pub all: bool,
    /// Only members of at most this many BitOps.
    pub max_bitops: Option<f64>,
    /// Only members of at least this validation accuracy (a fraction, or a percentage when
    /// above 1).
    pub min_accuracy: Option<f64>,
}

impl Selection {
    /// Positions (from 1) of the selected members of `front`.
    ///
    /// # Errors
    /// A message if a pick is out of range or nothing is selected.
    pub fn select(&self, front: &[Row]) -> Result<Vec<usize>, String> {
        for &p in &self.pick {
            if p == 0 || p > front.len() {
                return Err(format!(
                    "--pick {p}: the front has members 1 to {}",
                    front.len()
                ));
            }
        }
        let min_acc = self
            .min_accuracy
            .map(|a| if a > 1.0 { a / 100.0 } else { a });
        let chosen: Vec<usize> = (1..=front.len())
            .filter(|i| self.all || self.pick.is_empty() || self.pick.contains(i))
            .filter(|&i| {
                let r = &front[i - 1];
                self.max_bitops.is_none_or(|m| r.bitops as f64 <= m)
                    && min_acc.is_none_or(|a| r.accuracy >= a - 1e-12)
            })
            .collect();
        if chosen.is_empty() {
            return Err("no member of the front fits --max-bitops / --min-accuracy".into());
        }
        Ok(chosen)
    }
}

/// What to export.
#[derive(Clone, Debug)]
pub struct ExportOptions {
    /// A run folder (`runs/<name>`), or the space file it was trained from.
    pub target: PathBuf,
    /// Run folder, when `target` is a space file (default `runs/<space name>`).
    pub run_dir: Option<PathBuf>,
    /// Members.
    pub selection: Selection,
    /// Output folder (default `<run>/export`).
    pub out_dir: Option<PathBuf>,
    /// Keep a model folder that already holds the same member (for resumed `qnas run`).
    pub skip_existing: bool,
    /// Device.
    pub device: Device,
}

/// One exported model.
#[derive(Clone, Debug, Serialize)]
pub struct ExportedModel {
    /// Its folder.
    pub dir: PathBuf,
    /// Position in the front (from 1).
    pub position: usize,
    /// Whether an existing folder was kept.
    pub kept: bool,
    /// Its `model.json`.
    pub info: ModelInfo,
}

/// What `qnas export` reports.
#[derive(Clone, Debug, Serialize)]
pub struct ExportReport {
    /// [`EXPORT_SCHEMA`].
    pub schema: &'static str,
    /// Output folder.
    pub out_dir: PathBuf,
    /// The models, cheapest first.
    pub models: Vec<ExportedModel>,
}

/// Why `qnas export` failed.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// Loading the run failed.
    #[error(transparent)]
    Setup(#[from] TrainCmdError),
    /// No search results.
    #[error("{}: no search results; run `qnas search` first", path.display())]
    NotSearched {
        /// The missing file.
        path: PathBuf,
    },
    /// The search results do not fit the run.
    #[error("{}: {message}", path.display())]
    BadFront {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The selection is empty or out of range.
    #[error("{0}")]
    Selection(String),
    /// Writing or measuring a model failed.
    #[error(transparent)]
    Model(#[from] ModelError),
    /// A file could not be written.
    #[error(transparent)]
    Io(#[from] IoError),
}

impl ExportError {
    /// True when the user's input is at fault (exit code 2).
    pub fn is_invalid_input(&self) -> bool {
        match self {
            ExportError::Setup(e) => e.is_invalid_input(),
            ExportError::Model(e) => e.is_invalid_input(),
            ExportError::Io(_) => false,
            _ => true,
        }
    }
}

/// Receives progress.
pub trait ExportProgress {
    /// A model was written (or kept).
    fn exported(&mut self, done: usize, total: usize, model: &ExportedModel);
    /// A note.
    fn note(&mut self, message: &str);
}

/// The part of `pareto.json` export reads.
#[derive(Deserialize)]
struct SavedFront {
    settings: Settings,
    front: Vec<Row>,
}

/// Reads a run's front, every member validated against the space.
pub fn read_front(space: &Space, run: &Path) -> Result<(Settings, Vec<Row>), ExportError> {
    let path = run.join("search").join("pareto.json");
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(ExportError::NotSearched { path });
        }
        Err(e) => return Err(IoError::new("read", &path, e).into()),
    };
    let saved: SavedFront = serde_json::from_str(&text).map_err(|e| ExportError::BadFront {
        path: path.clone(),
        message: format!("not a search report: {e}"),
    })?;
    for (i, r) in saved.front.iter().enumerate() {
        space.validate(&r.arch).map_err(|e| ExportError::BadFront {
            path: path.clone(),
            message: format!("member {} does not fit the space: {e}", i + 1),
        })?;
    }
    Ok((saved.settings, saved.front))
}

/// The folder name of front position `p`.
pub fn model_dir_name(p: usize) -> String {
    format!("front-{p:02}")
}

/// Supernet weights: the trained checkpoint, or a FLIQS stage's fine-tuned copy.
struct Weights {
    trainer: Trainer,
    /// FLIQS stage the weights belong to (`None`: the trained supernet).
    stage: Option<usize>,
}

/// The FLIQS stage of a member trained with the policy (`fliqs target T (trained with the
/// policy)`).
fn fliqs_stage(origin: &str, settings: &Settings) -> Option<usize> {
    let t = origin
        .strip_prefix("fliqs target ")?
        .strip_suffix(" (trained with the policy)")?;
    settings.targets.iter().position(|x| x.to_string() == t)
}

fn load_weights(
    space: &Space,
    path: &Path,
    device: &Device,
    stage: Option<usize>,
) -> Result<Weights, ExportError> {
    let ck = checkpoint::read_checkpoint(path, Some(space.fingerprint()))
        .map_err(TrainCmdError::from)?;
    let mut trainer = Trainer::new(space, device).map_err(TrainCmdError::from)?;
    let (w, s) = checkpoint_contents(path, &ck, trainer.nets.len())?;
    trainer
        .restore(w, s)
        .map_err(|e| TrainCmdError::BadCheckpoint {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
    Ok(Weights { trainer, stage })
}

/// Runs the export; see the module docs.
pub fn export(
    opts: &ExportOptions,
    progress: &mut dyn ExportProgress,
) -> Result<ExportReport, ExportError> {
    let run = open_run(&opts.target, &opts.run_dir)?;
    let space = &run.space;
    let (settings, front) = read_front(space, &run.dir)?;
    let chosen = opts
        .selection
        .select(&front)
        .map_err(ExportError::Selection)?;
    let out_dir = opts
        .out_dir
        .clone()
        .unwrap_or_else(|| run.dir.join("export"));
    let space_src =
        std::fs::read(&run.space_file).map_err(|e| IoError::new("read", &run.space_file, e))?;

    // members already exported (resumed `qnas run`)
    let mut models = Vec::new();
    let mut todo = Vec::new();
    for &p in &chosen {
        let dir = out_dir.join(model_dir_name(p));
        let row = &front[p - 1];
        let same = opts.skip_existing
            && dir.join(INFO_FILE).exists()
            && read_info(&dir).is_ok_and(|i| i.origin == row.origin)
            && spaces::Arch::load(&dir.join(crate::model_dir::ARCH_FILE), space)
                .is_ok_and(|a| a == row.arch);
        if same {
            let info = read_info(&dir)?;
            models.push(ExportedModel {
                dir,
                position: p,
                kept: true,
                info,
            });
        } else {
            todo.push(p);
        }
    }
    let total = chosen.len();
    for m in &models {
        progress.exported(models.len(), total, m);
    }
    if !todo.is_empty() {
        let data = load_data(space, &run.space_file)?;
        let ck_dir = run.dir.join("checkpoints");
        let found = checkpoint::latest_good(&ck_dir, Some(space.fingerprint()))
            .map_err(TrainCmdError::from)?;
        let Some((ck_path, ck)) = found.found else {
            return Err(crate::train_cmd::TrainCmdError::NothingToResume {
                dir: ck_dir,
                skipped: Vec::new(),
            }
            .into());
        };
        progress.note(&format!(
            "supernet from {} (step {})",
            ck_path.display(),
            ck.step
        ));
        let mut weights = load_weights(space, &ck_path, &opts.device, None)?;
        let bs = space.train.batch_size as usize;
        let eval_bs = bs.max(100);
        let train = data.train_loader(bs).map_err(TrainCmdError::from)?;
        let val = data
            .validation_loader(eval_bs)
            .map_err(TrainCmdError::from)?;
        let test_set = std::sync::Arc::new(
            space
                .data
                .as_ref()
                .map(evaluators::data::DataSpec::from)
                .ok_or_else(|| TrainCmdError::NoData {
                    file: run.space_file.display().to_string(),
                })?
                .load_test(Path::new(""))
                .map_err(TrainCmdError::from)?,
        );
        let test = data
            .eval_loader(test_set, eval_bs)
            .map_err(TrainCmdError::from)?;
        let cfg = EvalConfig {
            recalibration_batches: space.train.recalibration_batches as usize,
            recalibration_epoch: 0,
        };
        let data_cfg = space.data.clone().ok_or_else(|| TrainCmdError::NoData {
            file: run.space_file.display().to_string(),
        })?;
        let data_path = std::fs::canonicalize(&data_cfg.path).unwrap_or(data_cfg.path.clone());
        for p in todo {
            let row = &front[p - 1];
            let stage = fliqs_stage(&row.origin, &settings);
            if weights.stage != stage {
                weights = match stage {
                    Some(s) => {
                        let path = run
                            .dir
                            .join("search")
                            .join(format!("fliqs-stage-{s}.{}", checkpoint::EXTENSION));
                        load_weights(space, &path, &opts.device, Some(s))?
                    }
                    None => load_weights(space, &ck_path, &opts.device, None)?,
                };
            }
            let nets = weights.trainer.eval_nets();
            let net = &nets[weights.trainer.net_index_for(&row.arch)];
            let device = net.stem.bn.gamma.val().device();
            let searched =
                recalibrate_and_evaluate(net, &row.arch, &train, &val, cfg).map_err(|e| {
                    ExportError::BadFront {
                        path: run.dir.join("search").join("pareto.json"),
                        message: e.to_string(),
                    }
                })?;
            let model = net.extract(&row.arch).map_err(|e| ExportError::BadFront {
                path: run.dir.join("search").join("pareto.json"),
                message: e.to_string(),
            })?;
            // the exported network, read back from its own file: what users get
            let weights_bytes = model
                .to_safetensors()
                .map_err(|source| ModelError::Weights {
                    path: out_dir.join(model_dir_name(p)),
                    source,
                })?;
            let plan = model.plan.clone();
            let exported =
                StaticNet::from_safetensors(plan, &weights_bytes, &device).map_err(|source| {
                    ModelError::Weights {
                        path: out_dir.join(model_dir_name(p)),
                        source,
                    }
                })?;
            let max_logit_difference = match val.epoch(0, &device).next() {
                Some(b) => {
                    let a = net.forward_plan(b.images.clone(), &model.plan, Phase::Eval);
                    let e = exported.forward(b.images);
                    (a - e).abs().max().into_scalar::<f32>()
                }
                None => 0.0,
            };
            let validation = Measured::from(evaluate_static(&exported, val.epoch(0, &device)));
            let test_acc = Measured::from(evaluate_static(&exported, test.epoch(0, &device)));
            // pareto.json holds the accuracy as a decimal fraction: compare with a tolerance
            let differs = |a: f64| (a - row.accuracy).abs() > 1e-9;
            if differs(validation.accuracy) || differs(searched.top1()) {
                progress.note(&format!(
                    "member {p}: the search reported {:.4}, the supernet now gives {:.4} and the exported model {:.4}",
                    row.accuracy,
                    searched.top1(),
                    validation.accuracy
                ));
            }
            let cost = space.cost(&row.arch).unwrap_or_default();
            let i = space.input;
            let name = model_dir_name(p);
            let mut info = ModelInfo {
                schema: MODEL_SCHEMA.to_string(),
                name: name.clone(),
                space: space.name.clone(),
                origin: row.origin.clone(),
                input: InputInfo {
                    channels: i.channels as usize,
                    height: i.height as usize,
                    width: i.width as usize,
                },
                classes: space.classes as usize,
                normalization: data.normalization.clone(),
                data: DataInfo {
                    kind: evaluators::data::DataSpec::from(&data_cfg).kind,
                    path: data_path.clone(),
                    validation_fraction: data_cfg.validation_fraction,
                    seed: data_cfg.seed,
                    batch_size: eval_bs,
                },
                accuracy: AccuracyInfo {
                    search: row.accuracy,
                    validation,
                    test: test_acc,
                },
                cost: CostInfo {
                    macs: cost.macs,
                    bitops: cost.bitops,
                    params: cost.params,
                    weight_bits: cost.weight_bits,
                },
                size: sizes(&exported, &weights_bytes).map_err(|source| ModelError::Weights {
                    path: out_dir.join(&name),
                    source,
                })?,
                max_logit_difference,
                finetune_steps: 0,
            };
            info.size.weights_file_bytes = weights_bytes.len() as u64;
            let dir = out_dir.join(&name);
            write_model_dir(
                &dir,
                &space_src,
                &row.arch,
                &exported,
                &info,
                &weights_bytes,
            )?;
            let m = ExportedModel {
                dir,
                position: p,
                kept: false,
                info,
            };
            models.push(m);
            progress.exported(models.len(), total, models.last().expect("just pushed"));
        }
    }
    models.sort_by_key(|m| m.position);
    Ok(ExportReport {
        schema: EXPORT_SCHEMA,
        out_dir,
        models,
    })
}

/// An arch's formats in one line, e.g. `int4/int8 x3, e4m3/e4m3` (weights/activations per
/// group, runs collapsed).
pub fn formats_summary(arch: &Arch) -> String {
    let mut runs: Vec<(String, usize)> = Vec::new();
    for f in arch.formats.values() {
        let s = format!("{}/{}", f.weights, f.activations);
        match runs.last_mut() {
            Some((last, n)) if *last == s => *n += 1,
            _ => runs.push((s, 1)),
        }
    }
    runs.into_iter()
        .map(|(s, n)| if n > 1 { format!("{s} x{n}") } else { s })
        .collect::<Vec<_>>()
        .join(", ")
}
