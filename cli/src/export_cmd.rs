//! `qnas export`: members of a run's Pareto front as standalone model folders (see
//! [`crate::model_dir`]).
//!
//! Each member is recalibrated on the supernet exactly as the search evaluated it (same
//! supernet copy, batches and validation images), cut out with `extract`, and measured again
//! as a static network on the validation split and the test files.

use std::path::{Path, PathBuf};

use burn::tensor::Device;
use evaluators::data::{BatchLoader, Normalization};
use evaluators::{SupernetEvaluator, evaluate_static};
use search::fsio::IoError;
use search::{Origin, Row, Settings};
use serde::{Deserialize, Serialize};
use spaces::Plan;
use spaces::{Arch, Space};
use supernet::{Phase, StaticNet, Supernet};

use crate::lock::FolderLock;
use crate::model_dir::{
    AccuracyInfo, CostInfo, DataInfo, InputInfo, MODEL_SCHEMA, Measured, ModelError, ModelInfo,
    ONNX_FILE, OnnxInfo, read_info, sizes, write_model_dir,
};
use crate::run_dir::RunDir;
use crate::setup::{SetupError, load_data, load_supernet, load_weights, open_run};

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
    /// Also write `model.onnx` (Q/DQ nodes; see `supernet::onnx`).
    pub onnx: bool,
    /// Export this member (an arch file, validated against the space) instead of members of
    /// the front; its folder is named after the file.
    pub arch: Option<PathBuf>,
    /// Device.
    pub device: Device,
}

/// One exported model.
#[derive(Clone, Debug, Serialize)]
pub struct ExportedModel {
    /// Its folder.
    pub dir: PathBuf,
    /// Position in the front (from 1; 0 for a member given with `--arch`).
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
    Setup(#[from] SetupError),
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
pub fn read_front(space: &Space, run: &RunDir) -> Result<(Settings, Vec<Row>), ExportError> {
    let path = run.search_dir().join(search::driver::REPORT_FILE);
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

/// The FLIQS stage whose training-mode weights a member needs, if it was trained with the
/// policy.
fn fliqs_stage(origin: &Origin, settings: &Settings) -> Option<usize> {
    let t = origin.trained_with_policy()?;
    settings.targets.iter().position(|x| *x == t)
}

/// What every export of one run shares.
struct Ctx<'a> {
    space: &'a Space,
    front: &'a [Row],
    out_dir: &'a Path,
    space_src: &'a [u8],
    test: BatchLoader,
    data_info: DataInfo,
    normalization: Normalization,
    onnx: bool,
    /// Folder name of an `--arch` export.
    arch_name: Option<String>,
}

/// One exported model and an optional note about it.
struct Done {
    model: ExportedModel,
    note: Option<String>,
}

impl Ctx<'_> {
    /// Recalibrates member `p` on worker `worker` of `ev` as the search did, extracts it,
    /// writes its folder, reads the weights back and measures that network.
    fn export_one(
        &self,
        ev: &SupernetEvaluator<'_>,
        worker: usize,
        p: usize,
    ) -> Result<Done, ExportError> {
        let row = &self.front[p - 1];
        let bad_front = |message: String| ExportError::BadFront {
            path: self.out_dir.to_path_buf(),
            message,
        };
        ev.with_member(worker, &row.arch, |net, plan| {
            self.write_member(ev.images(), net, plan, p)
        })
        .map_err(|e| bad_front(e.to_string()))?
    }

    /// Writes member `p`, recalibrated on `net` (its plan `plan`), and measures the written
    /// network on `val` and the test files.
    fn write_member(
        &self,
        val: &BatchLoader,
        net: &Supernet,
        plan: &Plan,
        p: usize,
    ) -> Result<Done, ExportError> {
        let row = &self.front[p - 1];
        let name = self.arch_name.clone().unwrap_or_else(|| model_dir_name(p));
        let dir = self.out_dir.join(&name);
        let bad_front = |message: String| ExportError::BadFront {
            path: self.out_dir.to_path_buf(),
            message,
        };
        let weights_err = |source| ModelError::Weights {
            path: dir.join(crate::model_dir::WEIGHTS_FILE),
            source,
        };
        let device = net.stem.bn.gamma.val().device();
        let model = net
            .extract(&row.arch)
            .map_err(|e| bad_front(e.to_string()))?;
        // the exported network, read back from its own file: what users get
        let weights_bytes = model.to_safetensors().map_err(weights_err)?;
        let exported = StaticNet::from_safetensors(plan.clone(), &weights_bytes, &device)
            .map_err(weights_err)?;
        let max_logit_difference = match val.epoch(0, &device).next() {
            Some(b) => {
                let a = net.forward_plan(b.images.clone(), plan, Phase::Eval);
                let e = exported.forward(b.images);
                (a - e).abs().max().into_scalar::<f32>()
            }
            None => 0.0,
        };
        let validation = Measured::from(evaluate_static(&exported, val.epoch(0, &device)));
        let test = Measured::from(evaluate_static(&exported, self.test.epoch(0, &device)));
        // pareto.json holds the accuracy as a decimal fraction: compare with a tolerance
        let searched = if row.accuracy.is_nan() {
            validation.accuracy
        } else {
            row.accuracy
        };
        let note = ((validation.accuracy - searched).abs() > 1e-9).then(|| {
            format!(
                "member {p}: the search reported {:.4}, the exported model gives {:.4} (was the supernet trained further after the search?)",
                row.accuracy, validation.accuracy
            )
        });
        let cost = self.space.cost(&row.arch).unwrap_or_default();
        let i = self.space.input;
        let info = ModelInfo {
            schema: MODEL_SCHEMA.to_string(),
            name,
            space: self.space.name.clone(),
            origin: row.origin.clone(),
            input: InputInfo {
                channels: i.channels as usize,
                height: i.height as usize,
                width: i.width as usize,
            },
            classes: self.space.classes as usize,
            normalization: self.normalization.clone(),
            data: self.data_info.clone(),
            accuracy: AccuracyInfo {
                search: searched,
                validation,
                test,
            },
            cost: CostInfo {
                macs: cost.macs,
                bitops: cost.bitops,
                params: cost.params,
                weight_bits: cost.weight_bits,
            },
            size: sizes(&weights_bytes).map_err(weights_err)?,
            max_logit_difference,
            finetune_steps: 0,
            onnx: None,
        };
        let mut info = info;
        let onnx = if self.onnx {
            let doc = format!(
                "qnas {} member {} of space {}: {}",
                env!("CARGO_PKG_VERSION"),
                info.name,
                self.space.name,
                row.arch.key()
            );
            let o = exported.to_onnx(&doc).map_err(weights_err)?;
            info.onnx = Some(OnnxInfo {
                file: ONNX_FILE.to_string(),
                opset: supernet::onnx::OPSET,
                fallbacks: o.fallbacks,
            });
            Some(o.bytes)
        } else {
            None
        };
        let extra: Vec<(&str, &[u8])> = onnx
            .as_deref()
            .map(|b| vec![(ONNX_FILE, b)])
            .unwrap_or_default();
        write_model_dir(
            &dir,
            self.space_src,
            &row.arch,
            &exported,
            &info,
            &weights_bytes,
            &extra,
        )?;
        Ok(Done {
            model: ExportedModel {
                dir,
                // 0: a member given with --arch, not a position in the front
                position: if self.arch_name.is_some() { 0 } else { p },
                kept: false,
                info,
            },
            note,
        })
    }
}

/// Runs the export; see the module docs.
pub fn export(
    opts: &ExportOptions,
    progress: &mut dyn ExportProgress,
) -> Result<ExportReport, ExportError> {
    let run = open_run(&opts.target, &opts.run_dir)?;
    let _lock = FolderLock::run_folder(run.dir.path(), "qnas export").map_err(SetupError::from)?;
    let space = &run.space;
    let (settings, front, chosen, arch_name) = match &opts.arch {
        Some(path) => {
            let arch = Arch::load(path, space).map_err(SetupError::from)?;
            let cost = space.cost(&arch).unwrap_or_default();
            // measured at export
            let row = Row::new(
                Origin::ArchFile(path.display().to_string()),
                arch,
                &cost,
                None,
            );
            let name = path
                .file_stem()
                .and_then(|n| n.to_str())
                .unwrap_or("member")
                .to_string();
            let settings = Settings {
                strategy: spaces::SearchStrategy::Random,
                budget: 1,
                seed: 0,
                targets: Vec::new(),
                fliqs_training: false,
                fliqs: None,
                hawq: None,
            };
            (settings, vec![row], vec![1], Some(name))
        }
        None => {
            let (settings, front) = read_front(space, &run.dir)?;
            let chosen = opts
                .selection
                .select(&front)
                .map_err(ExportError::Selection)?;
            (settings, front, chosen, None)
        }
    };
    let out_dir = opts.out_dir.clone().unwrap_or_else(|| run.dir.export_dir());
    let space_src =
        std::fs::read(&run.space_file).map_err(|e| IoError::new("read", &run.space_file, e))?;

    // members already exported (resumed `qnas run`)
    let mut models = Vec::new();
    let mut todo = Vec::new();
    for &p in &chosen {
        let dir = out_dir.join(arch_name.clone().unwrap_or_else(|| model_dir_name(p)));
        let row = &front[p - 1];
        let kept = (opts.skip_existing && (!opts.onnx || dir.join(ONNX_FILE).exists()))
            .then(|| read_info(&dir).ok())
            .flatten()
            .filter(|i| {
                i.origin == row.origin
                    && Arch::load(&dir.join(crate::model_dir::ARCH_FILE), space)
                        .is_ok_and(|a| a == row.arch)
            });
        if let Some(info) = kept {
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
        let (trained, ck_path, ck) = load_supernet(&run.dir, space, &opts.device)?;
        progress.note(&format!(
            "supernet from {} (step {})",
            ck_path.display(),
            ck.step
        ));
        let no_data = || SetupError::NoData {
            file: run.space_file.display().to_string(),
        };
        let data_cfg = space.data.clone().ok_or_else(no_data)?;
        let bs = space.train.batch_size as usize;
        let eval_bs = bs.max(100);
        let test_set = std::sync::Arc::new(
            evaluators::data::DataSpec::from(&data_cfg)
                .load_test(Path::new(""))
                .map_err(SetupError::from)?,
        );
        let ctx = Ctx {
            space,
            front: &front,
            out_dir: &out_dir,
            space_src: &space_src,
            test: data
                .eval_loader(test_set, eval_bs)
                .map_err(SetupError::from)?,
            data_info: DataInfo {
                kind: evaluators::data::DataSpec::from(&data_cfg).kind,
                path: std::fs::canonicalize(&data_cfg.path).unwrap_or(data_cfg.path.clone()),
                validation_fraction: data_cfg.validation_fraction,
                seed: data_cfg.seed,
                batch_size: eval_bs,
            },
            normalization: data.normalization.clone(),
            onnx: opts.onnx,
            arch_name: arch_name.clone(),
        };
        // members by the weights they need: the trained supernet, or a FLIQS stage's copy
        let mut groups: Vec<(Option<usize>, Vec<usize>)> = Vec::new();
        for p in todo {
            let stage = fliqs_stage(&front[p - 1].origin, &settings);
            match groups.iter_mut().find(|(s, _)| *s == stage) {
                Some((_, ps)) => ps.push(p),
                None => groups.push((stage, vec![p])),
            }
        }
        let total_models = total;
        for (stage, positions) in groups {
            let stage_weights = match stage {
                Some(s) => Some(load_weights(
                    space,
                    &run.dir.fliqs_stage_checkpoint(s),
                    &opts.device,
                )?),
                None => None,
            };
            let weights = stage_weights.as_ref().unwrap_or(&trained);
            // parallel workers on the CPU backend, each with its own copy of the supernet,
            // since recalibration writes running statistics
            let threads = evaluators::parallel_workers(&opts.device).min(positions.len());
            let ev =
                SupernetEvaluator::new(space, weights, &data, threads).map_err(SetupError::from)?;
            let (tx, rx) = std::sync::mpsc::channel();
            let ctx = &ctx;
            let ev = &ev;
            let result: Result<(), ExportError> = std::thread::scope(|scope| {
                for w in 0..threads {
                    let mine: Vec<usize> =
                        positions.iter().skip(w).step_by(threads).copied().collect();
                    let tx = tx.clone();
                    scope.spawn(move || {
                        for p in mine {
                            let r = ctx.export_one(ev, w, p);
                            let failed = r.is_err();
                            if tx.send(r).is_err() || failed {
                                break;
                            }
                        }
                    });
                }
                drop(tx);
                for r in rx {
                    let m = r?;
                    if m.note.is_some() {
                        progress.note(m.note.as_deref().unwrap_or_default());
                    }
                    models.push(m.model);
                    progress.exported(
                        models.len(),
                        total_models,
                        models.last().expect("just pushed"),
                    );
                }
                Ok(())
            });
            result?;
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
