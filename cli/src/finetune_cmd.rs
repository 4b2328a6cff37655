//! `qnas finetune`: quantization-aware fine-tuning of an exported model folder (see
//! [`crate::model_dir`]), without the supernet.
//!
//! The network is read from `weights.safetensors`, trained with SGD (momentum 0.9, Nesterov)
//! on the training part of its data set, with every weight fake-quantized to its layer's
//! format in the forward pass ([`StaticNet::forward_quantized`], straight-through gradients).
//! The activation quantizers keep their scales (they are module state, not parameters); the
//! batch norms use batch statistics while training and update their running statistics.
//! The trained weights are rounded onto their grids when the new folder is written, measured
//! on the validation split and the test files like `qnas eval` does, written as a new model
//! folder (never over the input), and read back to check that it gives the reported accuracy.

use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use burn::module::Module;
use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::decay::WeightDecayConfig;
use burn::optim::momentum::MomentumConfig;
use burn::optim::{GradientsParams, SgdConfig};
use burn::tensor::Device;
use evaluators::data::{BatchLoader, LoaderConfig};
use serde::Serialize;
use spaces::run::Optimizer;
use supernet::StaticNet;
use supernet::deploy::DeployError;

use crate::lock::{FolderLock, LockError};
use crate::model_dir::{
    self, AccuracyInfo, EvalData, INFO_FILE, ModelError, ModelInfo, SPACE_FILE,
};
use crate::setup::Stream;
use search::fsio::IoError;

/// `schema` of `qnas finetune --json`.
pub const FINETUNE_SCHEMA: &str = "qnas.finetune/1";

/// When `lr` is not given, the space's peak learning rate divided by this (a tenth).
pub const DEFAULT_LR_DIVISOR: f64 = 10.0;

/// What to fine-tune, and how.
#[derive(Clone, Debug)]
pub struct FinetuneOptions {
    /// The exported model folder (read only).
    pub model: PathBuf,
    /// Output folder (default: the sibling folder `<model>-ft<steps>`). Must not be the input
    /// folder, nor contain it or lie inside it; an existing folder is replaced only if it is a
    /// model folder (holds `model.json`) or empty.
    pub out: Option<PathBuf>,
    /// SGD steps (at least 1).
    pub steps: u64,
    /// Peak learning rate of the cosine schedule (default: a tenth, [`DEFAULT_LR_DIVISOR`], of
    /// the peak learning rate of the space's `train.optimizer`).
    pub lr: Option<f64>,
    /// Training batch size (default: the space's `train.batch_size`).
    pub batch_size: Option<usize>,
    /// Seed of the shuffling and augmentation of the training batches.
    pub seed: u64,
    /// Device (without autodiff; training wraps it).
    pub device: Device,
}

/// What `qnas finetune` reports.
#[derive(Clone, Debug, Serialize)]
pub struct FinetuneReport {
    /// [`FINETUNE_SCHEMA`].
    pub schema: &'static str,
    /// The input folder.
    pub model: PathBuf,
    /// The folder written.
    pub out: PathBuf,
    /// SGD steps run.
    pub steps: u64,
    /// Peak learning rate used.
    pub lr: f64,
    /// Batch size used.
    pub batch_size: usize,
    /// Mean training loss of the last `min(steps, 10)` steps.
    pub final_loss: f64,
    /// The input model, measured again (`search` from its `model.json`).
    pub before: AccuracyInfo,
    /// The written model (what `qnas eval` gives for it).
    pub after: AccuracyInfo,
    /// Wall-clock seconds, measurements and writing included.
    pub seconds: f64,
}

/// Why `qnas finetune` failed.
#[derive(Debug, thiserror::Error)]
pub enum FinetuneError {
    /// `steps` is 0.
    #[error("--steps must be at least 1")]
    NoSteps,
    /// The model folder does not exist.
    #[error("{}: no such model folder (export one with `qnas export`)", path.display())]
    NotFound {
        /// The folder.
        path: PathBuf,
    },
    /// The output folder cannot be used.
    #[error("--out {}: {message}", path.display())]
    BadOut {
        /// The folder.
        path: PathBuf,
        /// Why.
        message: String,
    },
    /// A learning rate or batch size that cannot be used.
    #[error("{0}")]
    BadSetting(String),
    /// The model folder or its data could not be read.
    #[error(transparent)]
    Model(#[from] ModelError),
    /// Another process writes the output folder.
    #[error(transparent)]
    Lock(#[from] LockError),
    /// The trained weights could not be encoded.
    #[error("{}: {source}", path.display())]
    Weights {
        /// The output folder.
        path: PathBuf,
        /// Why.
        source: DeployError,
    },
    /// Training diverged.
    #[error("step {step}: the training loss is {loss}; try a smaller --lr")]
    NonFinite {
        /// The step (from 1).
        step: u64,
        /// The loss.
        loss: f32,
    },
    /// The written folder does not give the measured accuracy.
    #[error(
        "{}: read back, the model gives validation {got_val} and test {got_test} correct, \
         fine-tuning measured {want_val} and {want_test}; the folder was removed",
        path.display()
    )]
    Mismatch {
        /// The output folder.
        path: PathBuf,
        /// Correct validation images measured before writing.
        want_val: usize,
        /// Correct validation images read back.
        got_val: usize,
        /// Correct test images measured before writing.
        want_test: usize,
        /// Correct test images read back.
        got_test: usize,
    },
    /// A file could not be read or written.
    #[error(transparent)]
    Io(#[from] IoError),
}

impl FinetuneError {
    /// True when the user's input is at fault (exit code 2).
    pub fn is_invalid_input(&self) -> bool {
        match self {
            FinetuneError::NoSteps
            | FinetuneError::NotFound { .. }
            | FinetuneError::BadOut { .. }
            | FinetuneError::BadSetting(_) => true,
            FinetuneError::Model(e) => e.is_invalid_input(),
            FinetuneError::Weights { .. }
            | FinetuneError::NonFinite { .. }
            | FinetuneError::Mismatch { .. }
            | FinetuneError::Lock(_)
            | FinetuneError::Io(_) => false,
        }
    }
}

/// Receives progress.
pub trait FinetuneProgress {
    /// Training starts; `total` steps.
    fn begin(&mut self, total: u64);
    /// Step `step` (from 1) finished with training loss `loss`.
    fn step(&mut self, step: u64, loss: f64);
    /// Something worth telling.
    fn note(&mut self, message: &str);
    /// Training ended (before the final measurements).
    fn end(&mut self);
}

/// A progress sink that drops everything.
#[derive(Debug, Default)]
pub struct Quiet;

impl FinetuneProgress for Quiet {
    fn begin(&mut self, _: u64) {}
    fn step(&mut self, _: u64, _: f64) {}
    fn note(&mut self, _: &str) {}
    fn end(&mut self) {}
}

/// The default output folder of `model` fine-tuned `steps` steps: `<model>-ft<steps>` next to
/// it.
pub fn default_out(model: &Path, steps: u64) -> PathBuf {
    let named = match model.file_name() {
        Some(_) => model.to_path_buf(),
        // `.`, `..` or a trailing `/..`: name it after the folder it is
        None => std::fs::canonicalize(model).unwrap_or_else(|_| model.to_path_buf()),
    };
    let name = named
        .file_name()
        .map_or_else(|| "model".into(), |n| n.to_string_lossy().to_string());
    named.with_file_name(format!("{name}-ft{steps}"))
}

/// `p` as an absolute path with `.` and `..` resolved and every existing part canonical
/// (symbolic links followed).
fn resolved(p: &Path) -> PathBuf {
    if let Ok(c) = std::fs::canonicalize(p) {
        return c;
    }
    let abs = std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
    let mut lexical = PathBuf::new();
    for c in abs.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                lexical.pop();
            }
            c => lexical.push(c),
        }
    }
    let mut rest = Vec::new();
    let mut base = lexical.as_path();
    loop {
        if let Ok(c) = std::fs::canonicalize(base) {
            return rest.iter().rev().fold(c, |acc, part| acc.join(part));
        }
        match (base.parent(), base.file_name()) {
            (Some(parent), Some(name)) => {
                rest.push(name.to_os_string());
                base = parent;
            }
            _ => return lexical,
        }
    }
}

/// Refuses an output folder that is, contains or lies inside the input folder, or that exists
/// and is neither a model folder nor empty.
fn check_out(model: &Path, out: &Path) -> Result<(), FinetuneError> {
    let bad = |message: &str| {
        Err(FinetuneError::BadOut {
            path: out.to_path_buf(),
            message: message.to_string(),
        })
    };
    let (m, o) = (resolved(model), resolved(out));
    if m == o {
        return bad("is the input model folder; fine-tuning never overwrites its input");
    }
    if m.starts_with(&o) {
        return bad("contains the input model folder, which writing it would replace");
    }
    if o.starts_with(&m) {
        return bad("lies inside the input model folder; choose a folder outside it");
    }
    if out.exists() {
        if !out.is_dir() {
            return bad("exists and is not a folder");
        }
        let empty = std::fs::read_dir(out).is_ok_and(|mut d| d.next().is_none());
        if !empty && !out.join(INFO_FILE).is_file() {
            return bad(
                "exists and is not a model folder (no model.json); remove it or choose another",
            );
        }
    }
    Ok(())
}

/// Validation and test accuracy of `net` on `eval`, with the search's number carried over.
fn accuracy(eval: &EvalData, net: &StaticNet, search: f64, device: &Device) -> AccuracyInfo {
    let (validation, test) = eval.measure(net, device);
    AccuracyInfo {
        search,
        validation,
        test,
    }
}

/// Cosine decay from `lr` at step 0 to 0 at step `steps`.
fn cosine(lr: f64, step: u64, steps: u64) -> f64 {
    let t = step as f64 / steps.max(1) as f64;
    0.5 * lr * (1.0 + (std::f64::consts::PI * t).cos())
}

/// Runs the fine-tuning; see the module docs.
pub fn finetune(
    opts: &FinetuneOptions,
    progress: &mut dyn FinetuneProgress,
) -> Result<FinetuneReport, FinetuneError> {
    let started = Instant::now();
    if opts.steps == 0 {
        return Err(FinetuneError::NoSteps);
    }
    if !opts.model.is_dir() {
        return Err(FinetuneError::NotFound {
            path: opts.model.clone(),
        });
    }
    let out = opts
        .out
        .clone()
        .unwrap_or_else(|| default_out(&opts.model, opts.steps));
    check_out(&opts.model, &out)?;
    let _lock = FolderLock::model_folder(&out, "qnas finetune")?;
    let device = &opts.device;
    let m = model_dir::load_model(&opts.model, device)?;
    let t = &m.space.train;
    let lr = opts.lr.unwrap_or(t.optimizer.lr() / DEFAULT_LR_DIVISOR);
    if !(lr.is_finite() && lr > 0.0) {
        return Err(FinetuneError::BadSetting(format!(
            "the learning rate must be a positive number, not {lr}"
        )));
    }
    let batch_size = opts.batch_size.unwrap_or(t.batch_size as usize);
    if batch_size == 0 {
        return Err(FinetuneError::BadSetting(
            "--batch-size must be at least 1".into(),
        ));
    }
    // L2 decay as the space trained with (AdamW's decoupled decay is of another scale)
    let weight_decay = match t.optimizer {
        Optimizer::Sgd { weight_decay, .. } => weight_decay,
        Optimizer::AdamW { .. } => 0.0,
    };

    // the data, split as the model was measured
    let info = &m.info;
    let eval = EvalData::load(info, None)?;
    let train = BatchLoader::new(
        Arc::clone(&eval.data.train),
        info.normalization.clone(),
        LoaderConfig::train(batch_size, eval.spec.augment(), opts.seed),
    )
    .map_err(ModelError::from)?;

    let before = accuracy(&eval, &m.net, info.accuracy.search, device);
    if (before.validation.correct, before.test.correct)
        != (info.accuracy.validation.correct, info.accuracy.test.correct)
    {
        progress.note(&format!(
            "{}: model.json reports validation {:.2}% and test {:.2}%, measured now {:.2}% and {:.2}%",
            opts.model.display(),
            info.accuracy.validation.accuracy * 100.0,
            info.accuracy.test.accuracy * 100.0,
            before.validation.accuracy * 100.0,
            before.test.accuracy * 100.0
        ));
    }

    // quantization-aware training on the autodiff device
    let ad = device.clone().autodiff();
    let mut net = m.net.clone().fork(&ad).train();
    let momentum = MomentumConfig::new()
        .with_momentum(0.9)
        .with_dampening(0.0)
        .with_nesterov(true);
    let mut optim = SgdConfig::new()
        .with_momentum(Some(momentum))
        .with_weight_decay(
            (weight_decay > 0.0).then(|| WeightDecayConfig::new(weight_decay as f32)),
        )
        .init();
    let ce = CrossEntropyLossConfig::new().init(&ad);
    let mut batches = Stream::starting_at(&train, &ad, 0);
    let mut recent = std::collections::VecDeque::new();
    progress.note(&format!(
        "fine-tuning {} for {} steps: batch {batch_size}, lr {lr} (cosine to 0), SGD momentum 0.9 (Nesterov){}",
        opts.model.display(),
        opts.steps,
        if weight_decay > 0.0 {
            format!(", weight decay {weight_decay}")
        } else {
            String::new()
        }
    ));
    progress.begin(opts.steps);
    for step in 0..opts.steps {
        let b = batches.next();
        let loss = ce.forward(net.forward_quantized(b.images), b.labels);
        let value = loss.clone().into_scalar::<f32>();
        if !value.is_finite() {
            progress.end();
            return Err(FinetuneError::NonFinite {
                step: step + 1,
                loss: value,
            });
        }
        let grads = GradientsParams::from_grads(loss.backward(), &net);
        net = optim.step(cosine(lr, step, opts.steps), net, grads);
        recent.push_back(f64::from(value));
        if recent.len() > 10 {
            recent.pop_front();
        }
        progress.step(step + 1, f64::from(value));
    }
    progress.end();
    let final_loss = recent.iter().sum::<f64>() / recent.len().max(1) as f64;

    // the weights rounded onto their grids: the network users get
    let trained = net.valid();
    let weights_err = |source| FinetuneError::Weights {
        path: out.clone(),
        source,
    };
    let bytes = trained.to_safetensors().map_err(weights_err)?;
    let model =
        StaticNet::from_safetensors(trained.plan.clone(), &bytes, device).map_err(weights_err)?;
    let after = accuracy(&eval, &model, info.accuracy.search, device);

    let name = resolved(&out)
        .file_name()
        .map_or_else(|| "model".into(), |n| n.to_string_lossy().to_string());
    let new_info = ModelInfo {
        name,
        accuracy: after.clone(),
        size: model_dir::sizes(&bytes).map_err(weights_err)?,
        max_logit_difference: 0.0,
        finetune_steps: info.finetune_steps + opts.steps,
        // the fine-tuned folder has no ONNX model (export one with `qnas export --onnx`)
        onnx: None,
        ..info.clone()
    };
    let space_path = m.dir.join(SPACE_FILE);
    let space_src = std::fs::read(&space_path).map_err(|e| IoError::new("read", &space_path, e))?;
    model_dir::write_model_dir(&out, &space_src, &m.arch, &model, &new_info, &bytes, &[])?;

    // the folder as `qnas eval` reads it, on the same data
    let check = match model_dir::load_model(&out, device) {
        Ok(w) => accuracy(&eval, &w.net, info.accuracy.search, device),
        Err(e) => {
            let _ = std::fs::remove_dir_all(&out);
            return Err(e.into());
        }
    };
    if (check.validation.correct, check.test.correct)
        != (after.validation.correct, after.test.correct)
    {
        let _ = std::fs::remove_dir_all(&out);
        return Err(FinetuneError::Mismatch {
            path: out,
            want_val: after.validation.correct,
            got_val: check.validation.correct,
            want_test: after.test.correct,
            got_test: check.test.correct,
        });
    }
    Ok(FinetuneReport {
        schema: FINETUNE_SCHEMA,
        model: m.dir.clone(),
        out,
        steps: opts.steps,
        lr,
        batch_size,
        final_loss,
        before,
        after,
        seconds: started.elapsed().as_secs_f64(),
    })
}
