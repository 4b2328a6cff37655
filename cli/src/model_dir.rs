//! An exported model folder: what `qnas export` writes and `qnas eval`, `qnas predict` and
//! `qnas finetune` read. No supernet is involved in reading one.
//!
//! # Files
//! - `arch.ron`: the member (architecture and per-layer formats), validated against
//!   `space.ron` when read;
//! - `space.ron`: the space file of the run (it defines the layer names and wiring);
//! - `weights.safetensors`: the real quantized codes with their scales, batch norms and
//!   activation scales (`qnas.weights/1`, see [`supernet::deploy`]);
//! - `model.bpk`: the same network as a burn record, for Rust programs:
//!   `StaticNet::init(&space, &arch, &device)?.load_file("model.bpk")`;
//! - `model.json`: [`ModelInfo`] (`qnas.model/1`): accuracies, costs, sizes, the input
//!   normalization and the data split it was measured on.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use burn::module::Module;
use burn::tensor::activation::softmax;
use burn::tensor::{Device, Tensor, TensorData};
use evaluators::data::{
    BatchLoader, DataError, DataKind, DataSpec, ImageShape, LoaderConfig, Normalization,
    SearchData, load_images,
};
use evaluators::evaluate_with;
use serde::{Deserialize, Serialize};
use spaces::{Arch, Space, SpaceError};
use supernet::StaticNet;
use supernet::deploy::{DeployError, tensor_values, weight_sizes};
use supernet::int::{Engine, Inference};
use supernet::quant::WeightQuant;

use search::fsio::IoError;

/// `schema` of `model.json`.
pub const MODEL_SCHEMA: &str = "qnas.model/1";
/// `schema` of `qnas eval --json`.
pub const EVAL_SCHEMA: &str = "qnas.eval/1";
/// `schema` of `qnas predict --json`.
pub const PREDICT_SCHEMA: &str = "qnas.predict/1";

/// File names in a model folder.
pub const ARCH_FILE: &str = "arch.ron";
/// The space file.
pub const SPACE_FILE: &str = "space.ron";
/// The quantized weights.
pub const WEIGHTS_FILE: &str = "weights.safetensors";
/// The burn record.
pub const RECORD_FILE: &str = "model.bpk";
/// The description.
pub const INFO_FILE: &str = "model.json";
/// The ONNX model (`qnas export --onnx`).
pub const ONNX_FILE: &str = "model.onnx";

/// Input image shape.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputInfo {
    /// Channels.
    pub channels: usize,
    /// Height.
    pub height: usize,
    /// Width.
    pub width: usize,
}

/// The data set a model was measured on, and how its validation part was held out.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataInfo {
    /// File format.
    pub kind: DataKind,
    /// Data folder (absolute when it was exported).
    pub path: PathBuf,
    /// Held-out share of the training files.
    pub validation_fraction: f64,
    /// Split seed.
    pub seed: u64,
    /// Batch size of the evaluations.
    pub batch_size: usize,
}

pub use evaluators::Measured;

/// Accuracies of an exported model.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccuracyInfo {
    /// The search's validation accuracy of this member (on the supernet's weights).
    pub search: f64,
    /// This model's validation accuracy (same split and images as the search).
    pub validation: Measured,
    /// This model's accuracy on the test files (never seen by training or search).
    pub test: Measured,
}

/// Costs from the analytic cost model.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CostInfo {
    /// Multiply-accumulates per image.
    pub macs: u64,
    /// BitOps per image (MACs x weight bits x activation bits).
    pub bitops: u64,
    /// Parameters.
    pub params: u64,
    /// Weight memory in bits.
    pub weight_bits: u64,
}

/// Sizes of the written files.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SizeInfo {
    /// `weights.safetensors` in bytes.
    pub weights_file_bytes: u64,
    /// Bytes of the weight codes in it (`ceil(n * bits / 8)` per layer).
    pub weight_code_bytes: u64,
    /// The same weights in fp32, for comparison.
    pub fp32_weight_bytes: u64,
}

/// `model.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelInfo {
    /// [`MODEL_SCHEMA`].
    pub schema: String,
    /// The folder's name.
    pub name: String,
    /// The space's name.
    pub space: String,
    /// Where the member came from (strategy or baseline).
    pub origin: search::Origin,
    /// Input images.
    pub input: InputInfo,
    /// Classes.
    pub classes: usize,
    /// Per-channel normalization of `[0, 1]` pixels, `(x - mean) / std`.
    pub normalization: Normalization,
    /// The data it was measured on.
    pub data: DataInfo,
    /// Accuracies.
    pub accuracy: AccuracyInfo,
    /// Costs.
    pub cost: CostInfo,
    /// File sizes.
    pub size: SizeInfo,
    /// Largest difference between this model's logits and the supernet member's on the first
    /// validation batch, when exported.
    pub max_logit_difference: f32,
    /// Fine-tuning steps applied after export (0 for a model cut from the supernet).
    #[serde(default)]
    pub finetune_steps: u64,
    /// The ONNX model written next to the weights (`qnas export --onnx`), if any.
    #[serde(default)]
    pub onnx: Option<OnnxInfo>,
}

/// `model.onnx` of a model folder.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OnnxInfo {
    /// The file name.
    pub file: String,
    /// ONNX opset.
    pub opset: i64,
    /// What was not expressed with ONNX types (see `docs/export.md`).
    pub fallbacks: Vec<String>,
}

/// Why a model folder could not be read or used.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// The folder does not exist.
    #[error("{}: no such model folder (export one with `qnas export`)", dir.display())]
    NotFound {
        /// The folder.
        dir: PathBuf,
    },
    /// A file could not be read or written.
    #[error(transparent)]
    Io(#[from] IoError),
    /// `model.json` is not valid.
    #[error("{}: {message}", path.display())]
    Info {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// `space.ron` or `arch.ron` is not valid.
    #[error(transparent)]
    Space(#[from] SpaceError),
    /// The weights file does not fit.
    #[error("{}: {source}", path.display())]
    Weights {
        /// The file.
        path: PathBuf,
        /// Why.
        source: DeployError,
    },
    /// The data could not be read.
    #[error(transparent)]
    Data(#[from] DataError),
    /// The data does not fit the model.
    #[error("{}: {message}", path.display())]
    DataShape {
        /// The data folder or file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

impl ModelError {
    /// True when the user's input is at fault (exit code 2).
    pub fn is_invalid_input(&self) -> bool {
        !matches!(self, ModelError::Io(_))
    }
}

/// A model folder, read.
#[derive(Debug)]
pub struct LoadedModel {
    /// The folder.
    pub dir: PathBuf,
    /// `model.json`.
    pub info: ModelInfo,
    /// The space.
    pub space: Space,
    /// The member.
    pub arch: Arch,
    /// The network, rebuilt from `weights.safetensors`.
    pub net: StaticNet,
}

fn read(path: &Path) -> Result<Vec<u8>, ModelError> {
    std::fs::read(path).map_err(|e| IoError::new("read", path, e).into())
}

/// Reads `model.json` of a folder.
pub fn read_info(dir: &Path) -> Result<ModelInfo, ModelError> {
    let path = dir.join(INFO_FILE);
    let text = String::from_utf8(read(&path)?).map_err(|e| ModelError::Info {
        path: path.clone(),
        message: e.to_string(),
    })?;
    let info: ModelInfo = serde_json::from_str(&text).map_err(|e| ModelError::Info {
        path: path.clone(),
        // serde_json's message ends with the line and column
        message: e.to_string(),
    })?;
    if info.schema != MODEL_SCHEMA {
        return Err(ModelError::Info {
            path,
            message: format!("schema {:?}, this qnas reads {MODEL_SCHEMA:?}", info.schema),
        });
    }
    check_info(&info).map_err(|message| ModelError::Info { path, message })?;
    Ok(info)
}

/// The values of `model.json` that its readers rely on: an input shape with pixels, a
/// normalization of its channels, classes, a validation fraction that splits.
fn check_info(info: &ModelInfo) -> Result<(), String> {
    let i = info.input;
    let pixels = i
        .channels
        .checked_mul(i.height)
        .and_then(|n| n.checked_mul(i.width));
    if !matches!(pixels, Some(n) if n > 0) {
        return Err(format!(
            "input {}x{}x{} has no pixels or too many",
            i.channels, i.height, i.width
        ));
    }
    info.normalization.check(i.channels).map_err(|e| match e {
        DataError::Invalid(m) => m,
        other => other.to_string(),
    })?;
    if info.classes == 0 {
        return Err("classes is 0".into());
    }
    let f = info.data.validation_fraction;
    if !(f.is_finite() && f > 0.0 && f < 1.0) {
        return Err(format!(
            "data.validation_fraction must be strictly between 0 and 1, got {f}"
        ));
    }
    Ok(())
}

/// Reads a model folder: `model.json`, the space, the arch (validated against the space) and
/// the network from `weights.safetensors`.
pub fn load_model(dir: &Path, device: &Device) -> Result<LoadedModel, ModelError> {
    if !dir.is_dir() {
        return Err(ModelError::NotFound {
            dir: dir.to_path_buf(),
        });
    }
    let info = read_info(dir)?;
    let space_path = dir.join(SPACE_FILE);
    let src = spaces::decode_source(read(&space_path)?, &space_path.display().to_string())?;
    let space = Space::parse(&src, &space_path.display().to_string(), &info.space)?;
    // the network is built from the space; what predict and eval feed it, from model.json
    let (si, i) = (space.input, info.input);
    let space_input = (si.channels as usize, si.height as usize, si.width as usize);
    if (i.channels, i.height, i.width) != space_input || info.classes != space.classes as usize {
        return Err(ModelError::Info {
            path: dir.join(INFO_FILE),
            message: format!(
                "input {}x{}x{} with {} classes, but {} defines {}x{}x{} with {} classes",
                i.channels,
                i.height,
                i.width,
                info.classes,
                space_path.display(),
                space_input.0,
                space_input.1,
                space_input.2,
                space.classes
            ),
        });
    }
    let arch = Arch::load(&dir.join(ARCH_FILE), &space)?;
    let plan = space.plan(&arch).map_err(|e| ModelError::Info {
        path: dir.join(ARCH_FILE),
        message: e.to_string(),
    })?;
    let weights_path = dir.join(WEIGHTS_FILE);
    let bytes = read(&weights_path)?;
    let net = StaticNet::from_safetensors(plan, &bytes, device)
        .map_err(|source| ModelError::Weights {
            path: weights_path,
            source,
        })?
        .with_weight_quant(WeightQuant::for_space(&space));
    Ok(LoadedModel {
        dir: dir.to_path_buf(),
        info,
        space,
        arch,
        net,
    })
}

/// Sizes of a weights file.
pub fn sizes(weights: &[u8]) -> Result<SizeInfo, DeployError> {
    let w = weight_sizes(weights)?;
    Ok(SizeInfo {
        weights_file_bytes: weights.len() as u64,
        weight_code_bytes: w.iter().map(|s| s.bytes as u64).sum(),
        fp32_weight_bytes: w.iter().map(|s| 4 * s.values as u64).sum(),
    })
}

/// The folder that holds the model folder `dir` (created if missing) and `dir`'s name: where
/// its temporary folders and its lock file go.
pub fn parent_and_name(dir: &Path) -> Result<(PathBuf, String), IoError> {
    let parent = dir
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).map_err(|e| IoError::new("create folder", parent, e))?;
    let name = dir
        .file_name()
        .map_or_else(|| "model".into(), |n| n.to_string_lossy().into_owned());
    Ok((parent.to_path_buf(), name))
}

/// Whether process `pid` is alive; without a way to tell (other than Linux), assumed alive.
fn alive(pid: u32) -> bool {
    if cfg!(target_os = "linux") {
        Path::new("/proc").join(pid.to_string()).exists()
    } else {
        true
    }
}

/// What a writer of the model folder `dir` (named `name`, in `parent`) killed mid-way left
/// behind: its temporary folder `.NAME.tmp-PID`, removed; and the previous model moved aside as
/// `.NAME.old-PID` when it was killed between the two renames, moved back if nothing took its
/// place, else removed. Only folders of dead processes are touched.
fn clear_leftovers(parent: &Path, name: &str, dir: &Path) {
    let Ok(entries) = std::fs::read_dir(parent) else {
        return;
    };
    for e in entries.flatten() {
        let file = e.file_name().to_string_lossy().into_owned();
        let Some(rest) = file.strip_prefix(&format!(".{name}.")) else {
            continue;
        };
        let Some((kind, pid)) = rest.split_once('-') else {
            continue;
        };
        let dead = pid
            .parse::<u32>()
            .is_ok_and(|p| p != std::process::id() && !alive(p));
        if !dead {
            continue;
        }
        match kind {
            "tmp" => {
                let _ = std::fs::remove_dir_all(e.path());
            }
            "old" if !dir.exists() => {
                let _ = std::fs::rename(e.path(), dir);
            }
            "old" => {
                let _ = std::fs::remove_dir_all(e.path());
            }
            _ => {}
        }
    }
}

/// Writes a model folder atomically: into a temporary folder next to `dir`, renamed into
/// place (an existing folder is replaced only once the new one is complete). `extra` are
/// further files (e.g. `model.onnx`) written into it.
pub fn write_model_dir(
    dir: &Path,
    space_src: &[u8],
    arch: &Arch,
    net: &StaticNet,
    info: &ModelInfo,
    weights: &[u8],
    extra: &[(&str, &[u8])],
) -> Result<(), ModelError> {
    let (parent, name) = parent_and_name(dir)?;
    let parent = parent.as_path();
    clear_leftovers(parent, &name, dir);
    let tmp = parent.join(format!(".{name}.tmp-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).map_err(|e| IoError::new("create folder", &tmp, e))?;
    let record = net
        .clone()
        .with_stable_ids()
        .into_record()
        .into_bytes()
        .map_err(|e| ModelError::Info {
            path: tmp.join(RECORD_FILE),
            message: format!("burn record: {e:?}"),
        })?;
    let info_text = serde_json::to_string_pretty(info).map_err(|e| ModelError::Info {
        path: tmp.join(INFO_FILE),
        message: e.to_string(),
    })? + "\n";
    let arch_ron = arch.to_ron();
    let files: [(&str, &[u8]); 5] = [
        (SPACE_FILE, space_src),
        (ARCH_FILE, arch_ron.as_bytes()),
        (WEIGHTS_FILE, weights),
        (RECORD_FILE, &record),
        (INFO_FILE, info_text.as_bytes()),
    ];
    let result = (|| -> Result<(), IoError> {
        for (file, bytes) in files.iter().chain(extra) {
            // named as the user will look for it: the folder's final name, not the temporary one
            search::fsio::write_atomic(&tmp.join(file), bytes).map_err(|e| IoError {
                path: dir.join(file),
                ..e
            })?;
        }
        let old = parent.join(format!(".{name}.old-{}", std::process::id()));
        let had_old = dir.exists();
        if had_old {
            std::fs::rename(dir, &old).map_err(|e| IoError::new("move aside", dir, e))?;
        }
        std::fs::rename(&tmp, dir).map_err(|e| IoError::new("rename into", dir, e))?;
        if had_old {
            let _ = std::fs::remove_dir_all(&old);
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_dir_all(&tmp);
    }
    Ok(result?)
}

/// The data a model is measured on: its data set (or another folder of the same format) split
/// as when it was exported, with loaders over the validation part and the test files that use
/// the model's own normalization and evaluation batch size.
#[derive(Debug)]
pub struct EvalData {
    /// The data description (the model's, with `data_dir` if given).
    pub spec: DataSpec,
    /// The training files, split.
    pub data: SearchData,
    /// The validation part.
    pub validation: BatchLoader,
    /// The test files.
    pub test: BatchLoader,
}

impl EvalData {
    /// Loads the data of `info` (from `data_dir` instead of its folder when given) and checks
    /// that its images fit the model.
    pub fn load(info: &ModelInfo, data_dir: Option<&Path>) -> Result<EvalData, ModelError> {
        let spec = DataSpec {
            kind: info.data.kind,
            path: data_dir.map_or_else(|| info.data.path.clone(), Path::to_path_buf),
            validation_fraction: info.data.validation_fraction,
            seed: info.data.seed,
            augment: None,
        };
        let data = spec.load(Path::new(""))?;
        let shape = data.train.shape();
        let i = info.input;
        if (shape.channels, shape.height, shape.width) != (i.channels, i.height, i.width) {
            return Err(ModelError::DataShape {
                path: spec.path.clone(),
                message: format!(
                    "images are {}x{}x{}, the model takes {}x{}x{}",
                    shape.channels, shape.height, shape.width, i.channels, i.height, i.width
                ),
            });
        }
        let bs = info.data.batch_size.max(1);
        let loader = |d| BatchLoader::new(d, info.normalization.clone(), LoaderConfig::eval(bs));
        let validation = loader(Arc::clone(&data.validation))?;
        let test = loader(Arc::new(spec.load_test(Path::new(""))?))?;
        Ok(EvalData {
            spec,
            data,
            validation,
            test,
        })
    }

    /// Validation and test accuracy of `net`.
    pub fn measure(&self, net: &StaticNet, device: &Device) -> (Measured, Measured) {
        self.measure_with(|x| net.forward(x), device)
    }

    /// Validation and test accuracy of `net` on the engine it was prepared for.
    pub fn measure_on(&self, net: &Inference, device: &Device) -> (Measured, Measured) {
        self.measure_with(|x| net.forward(x), device)
    }

    /// Validation and test accuracy of the logits `forward` gives.
    fn measure_with(
        &self,
        forward: impl Fn(Tensor<4>) -> Tensor<2>,
        device: &Device,
    ) -> (Measured, Measured) {
        (
            Measured::from(evaluate_with(&forward, self.validation.epoch(0, device))),
            Measured::from(evaluate_with(&forward, self.test.epoch(0, device))),
        )
    }
}

/// Which engine ran a model's inference (`qnas eval`, `qnas predict`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct EngineInfo {
    /// `int`: the integer engine ran the layers counted in `int_layers`, `f32` fake
    /// quantization the others; `float`: fake quantization everywhere.
    pub name: Engine,
    /// Conv layers that ran on integers.
    pub int_layers: usize,
    /// Conv layers of the model.
    pub layers: usize,
}

impl EngineInfo {
    /// What `net` runs on.
    pub fn of(net: &Inference) -> EngineInfo {
        EngineInfo {
            name: net.engine(),
            int_layers: net.int_layers(),
            layers: net.layers(),
        }
    }
}

/// What `qnas eval` reports.
#[derive(Clone, Debug, Serialize)]
pub struct EvalReport {
    /// [`EVAL_SCHEMA`].
    pub schema: &'static str,
    /// The model folder.
    pub model: PathBuf,
    /// The data folder.
    pub data: PathBuf,
    /// Accuracy on the validation part of the training files (the search's split).
    pub validation: Measured,
    /// Accuracy on the test files.
    pub test: Measured,
    /// What `model.json` reports.
    pub reported: AccuracyInfo,
    /// Whether validation and test match `model.json` exactly.
    pub matches_report: bool,
    /// The engine that ran.
    pub engine: EngineInfo,
}

/// Evaluates a loaded model on the validation split and the test files of its data set (or of
/// `data_dir`), with the model's own normalization, on `engine` where the model's layers
/// allow ([`Inference::new`]).
pub fn evaluate_model(
    m: &LoadedModel,
    data_dir: Option<&Path>,
    device: &Device,
    engine: Engine,
) -> Result<EvalReport, ModelError> {
    let eval = EvalData::load(&m.info, data_dir)?;
    let net = Inference::new(m.net.clone(), engine, device);
    let (validation, test) = eval.measure_on(&net, device);
    let reported = m.info.accuracy.clone();
    Ok(EvalReport {
        schema: EVAL_SCHEMA,
        model: m.dir.clone(),
        data: eval.spec.path,
        // counts, not the f64 fractions (which a JSON round trip may move by an ulp)
        matches_report: (validation.correct, validation.total)
            == (reported.validation.correct, reported.validation.total)
            && (test.correct, test.total) == (reported.test.correct, reported.test.total),
        validation,
        test,
        reported,
        engine: EngineInfo::of(&net),
    })
}

/// One classified image.
#[derive(Clone, Debug, Serialize)]
pub struct Prediction {
    /// The file (and index, for IDX files).
    pub source: String,
    /// The most probable class.
    pub class: usize,
    /// Its probability.
    pub probability: f32,
    /// Every class's probability (softmax of the logits).
    pub probabilities: Vec<f32>,
    /// The logits.
    pub logits: Vec<f32>,
}

/// What `qnas predict` reports.
#[derive(Clone, Debug, Serialize)]
pub struct PredictReport {
    /// [`PREDICT_SCHEMA`].
    pub schema: &'static str,
    /// The model folder.
    pub model: PathBuf,
    /// One line per image, in input order.
    pub predictions: Vec<Prediction>,
    /// The engine that ran.
    pub engine: EngineInfo,
}

/// Classifies the images of `files` (PNG files or IDX image files; see
/// [`evaluators::data::load_images`]): converted to the model's input shape, normalized
/// like its training data, on `engine` where the model's layers allow.
pub fn predict(
    m: &LoadedModel,
    files: &[PathBuf],
    device: &Device,
    engine: Engine,
) -> Result<PredictReport, ModelError> {
    let net = Inference::new(m.net.clone(), engine, device);
    let i = m.info.input;
    let shape = ImageShape {
        channels: i.channels,
        height: i.height,
        width: i.width,
    };
    let mut images = Vec::new();
    for f in files {
        images.extend(load_images(f, shape)?);
    }
    let per = i.channels * i.height * i.width;
    let mut predictions = Vec::new();
    for chunk in images.chunks(256) {
        let mut buf = vec![0f32; chunk.len() * per];
        for (img, out) in chunk.iter().zip(buf.chunks_mut(per)) {
            m.info.normalization.apply(&img.pixels, shape, out);
        }
        let x = Tensor::<4>::from_data(
            TensorData::new(buf, [chunk.len(), i.channels, i.height, i.width]),
            device,
        );
        let logits = net.forward(x);
        let probs = tensor_values(softmax(logits.clone(), 1));
        let logits = tensor_values(logits);
        let classes = m.info.classes.max(1);
        for ((img, p), l) in chunk
            .iter()
            .zip(probs.chunks(classes))
            .zip(logits.chunks(classes))
        {
            let (class, probability) = p
                .iter()
                .copied()
                .enumerate()
                .fold((0, f32::MIN), |b, (c, v)| if v > b.1 { (c, v) } else { b });
            predictions.push(Prediction {
                source: img.source.clone(),
                class,
                probability,
                probabilities: p.to_vec(),
                logits: l.to_vec(),
            });
        }
    }
    Ok(PredictReport {
        schema: PREDICT_SCHEMA,
        model: m.dir.clone(),
        predictions,
        engine: EngineInfo::of(&net),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[cfg(target_os = "linux")]
    fn a_dead_writers_leftovers_are_cleared_and_a_model_moved_aside_comes_back() {
        let parent = std::env::temp_dir().join(format!("qnas-leftovers-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&parent);
        // above the kernel's largest process id: never alive
        let dead = 4_194_305u32;
        let tmp = parent.join(format!(".m.tmp-{dead}"));
        let old = parent.join(format!(".m.old-{dead}"));
        let mine = parent.join(format!(".m.tmp-{}", std::process::id()));
        let other = parent.join(format!(".other.tmp-{dead}"));
        for d in [&tmp, &old, &mine, &other] {
            std::fs::create_dir_all(d).unwrap();
        }
        std::fs::write(old.join(INFO_FILE), "{}").unwrap();
        let dir = parent.join("m");
        clear_leftovers(&parent, "m", &dir);
        assert!(!tmp.exists(), "a dead writer's temporary folder is removed");
        assert!(
            !old.exists() && dir.join(INFO_FILE).exists(),
            "the model moved aside is back"
        );
        assert!(mine.exists(), "this process's own folder is its business");
        assert!(
            other.exists(),
            "another model's leftovers are not this writer's"
        );
        // with the model in place, a dead writer's moved-aside copy is removed
        std::fs::create_dir_all(&old).unwrap();
        clear_leftovers(&parent, "m", &dir);
        assert!(!old.exists() && dir.exists());
        std::fs::remove_dir_all(&parent).unwrap();
    }
}
