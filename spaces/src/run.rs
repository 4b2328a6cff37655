//! The `data` and `train` sections of a space file: where the data set is and how the
//! supernet is trained. Raw serde types (as written) and validated types.

use crate::fliqs::FliqsSettings;
use crate::hawq::HawqSettings;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::Problem;
use crate::locate::FieldPath;

/// Which file layout a data set has.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum DataKind {
    /// MNIST IDX files (`train-images-idx3-ubyte[.gz]`, ...), any 10-class grey set.
    Mnist,
    /// CIFAR-10 binary batches (`data_batch_1.bin`, ..., `test_batch.bin`).
    Cifar10,
}

/// Training augmentation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAugment {
    /// Zero padding before a random crop back to the input size (0: no crop).
    pub crop_padding: u32,
    /// Random horizontal flips.
    pub horizontal_flip: bool,
}

/// The `data` section.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawData {
    /// File layout.
    pub kind: DataKind,
    /// Folder of the files, relative to the space file's folder.
    pub path: String,
    /// Share of the training files held out for validation (search never sees the test files).
    /// Default: 0.1.
    #[serde(default = "default_validation_fraction")]
    pub validation_fraction: f64,
    /// Seed of the split, shuffling and augmentation. Default: 0.
    #[serde(default)]
    pub seed: u64,
    /// Augmentation. Default: crop (padding 4) and flip for colour sets, none for grey ones.
    #[serde(default)]
    pub augment: Option<RawAugment>,
}

fn default_validation_fraction() -> f64 {
    0.1
}

/// How sub-networks are drawn at each training step.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub enum Sampling {
    /// BigNAS sandwich rule: the largest member (largest architecture at the most expensive
    /// formats, the distillation teacher), the smallest architecture at formats chosen by
    /// `smallest`, and `random` uniform members; gradients accumulated into one step.
    Sandwich {
        /// Uniformly drawn members per step besides the largest and the smallest.
        random: u32,
        /// The formats of the smallest architecture. Default: `Alternate`.
        #[serde(default)]
        smallest: SmallestFormats,
        /// How the `random` members are drawn. Default: `LogBitOps`.
        #[serde(default)]
        draw: RandomDraw,
    },
    /// SortedNet: `levels` nested members from smallest to largest (level l takes the choice at
    /// fraction l/(levels-1) of every sorted choice list); each step trains the largest and
    /// `per_step - 1` other levels drawn at random; gradients accumulated.
    Sorted {
        /// Number of nested levels.
        levels: u32,
        /// Levels trained per step (the largest included).
        per_step: u32,
    },
    /// One uniformly drawn member per step (single path).
    Uniform,
}

/// How the sandwich rule draws its random members.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum RandomDraw {
    /// A uniform choice for every decision: the members' BitOps pile up around the space's
    /// median (a product of many choices), and the cheap end, where the front's mixed-precision
    /// members lie, is rarely trained (in the default MNIST space about 1% of uniform members
    /// cost under 30 MBitOps, 2% of the largest's).
    Uniform,
    /// BitOps drawn log-uniformly between the smallest and the largest member's, then a member
    /// of about that cost (see [`crate::Space::sample_log_bitops`]): every decade of cost is
    /// trained about equally often, as AttentiveNAS draws its members by FLOPs. Measured
    /// against stand-alone training it halves the spread of the supernet's errors on the
    /// bundled MNIST and UCI digits spaces (`experiments/rank-correlation`), hence the default.
    #[default]
    LogBitOps,
}

/// The formats the sandwich rule trains its smallest architecture at.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum SmallestFormats {
    /// A uniform draw per format decision at every step: the small architecture at the formats
    /// users deploy (int8, fp8) is trained too, the cheapest formats rarely (with 6 choices and
    /// 8 decisions, int2 everywhere about once in 6^8 steps). The default until 2026-12-03.
    RandomFormats,
    /// Every decision at its cheapest format, as BigNAS's smallest child is the smallest in
    /// every dimension: the cheapest member of the space is trained at every step.
    Cheapest,
    /// `Cheapest` at even steps and `RandomFormats` at odd ones: the default (measured in
    /// `experiments/rank-correlation`, fourth round: the median gap to stand-alone training over
    /// all members halved, every front member within 3 points).
    #[default]
    Alternate,
}

/// Optimizer.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub enum Optimizer {
    /// SGD with momentum (dampening 0, as PyTorch).
    Sgd {
        /// Peak learning rate.
        lr: f64,
        /// Momentum.
        momentum: f64,
        /// Nesterov momentum.
        nesterov: bool,
        /// L2 weight decay.
        weight_decay: f64,
    },
    /// AdamW.
    AdamW {
        /// Peak learning rate.
        lr: f64,
        /// Decoupled weight decay.
        weight_decay: f64,
    },
}

impl Optimizer {
    /// Peak learning rate.
    pub fn lr(&self) -> f64 {
        match *self {
            Optimizer::Sgd { lr, .. } | Optimizer::AdamW { lr, .. } => lr,
        }
    }
}

/// Learning-rate schedule.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub enum Schedule {
    /// Linear warm-up, then constant.
    Constant {
        /// Warm-up steps.
        warmup_steps: u64,
    },
    /// Linear warm-up, then cosine decay to `min_lr` at the last step.
    Cosine {
        /// Warm-up steps.
        warmup_steps: u64,
        /// Final learning rate.
        min_lr: f64,
    },
}

impl Schedule {
    /// The learning rate at `step` (0-based) of `total` for peak `lr`.
    pub fn lr_at(&self, lr: f64, step: u64, total: u64) -> f64 {
        let warmup = match *self {
            Schedule::Constant { warmup_steps } | Schedule::Cosine { warmup_steps, .. } => {
                warmup_steps
            }
        };
        if step < warmup {
            return lr * (step + 1) as f64 / warmup as f64;
        }
        match *self {
            Schedule::Constant { .. } => lr,
            Schedule::Cosine { min_lr, .. } => {
                let span = total.saturating_sub(warmup).max(1) as f64;
                let t = ((step - warmup) as f64 / span).min(1.0);
                min_lr + 0.5 * (lr - min_lr) * (1.0 + (std::f64::consts::PI * t).cos())
            }
        }
    }
}

/// Balanced mixture of supernets ("Balanced Mixture of SuperNets").
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MixtureConfig {
    /// Number of supernet copies M (1: a single supernet).
    pub supernets: u32,
    /// Temperature T of p(model | config) = softmax(T * W).
    #[serde(default = "default_temperature")]
    pub temperature: f64,
    /// Decay of the EMA of held-out accuracy in W.
    #[serde(default = "default_ema")]
    pub ema_decay: f64,
    /// Share of the training split held out to learn the assignment W on (stratified, with
    /// the data seed); the supernets train on the rest. Never the validation split, which
    /// ranks the members. Default 0.1.
    #[serde(default = "default_holdout")]
    pub holdout_fraction: f64,
}

fn default_holdout() -> f64 {
    0.1
}

fn default_temperature() -> f64 {
    5.0
}

fn default_ema() -> f64 {
    0.9
}

impl Default for MixtureConfig {
    fn default() -> Self {
        MixtureConfig {
            supernets: 1,
            temperature: default_temperature(),
            ema_decay: default_ema(),
            holdout_fraction: default_holdout(),
        }
    }
}

/// The `train` section.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainConfig {
    /// Optimizer steps. Default: 1000.
    #[serde(default = "default_steps")]
    pub steps: u64,
    /// Images per step. Default: 64.
    #[serde(default = "default_batch")]
    pub batch_size: u32,
    /// Sub-network sampling. Default: `Sandwich(random: 2)`.
    #[serde(default = "default_sampling")]
    pub sampling: Sampling,
    /// In-place distillation: members other than the largest learn from the largest's detached
    /// soft targets. Default: true.
    #[serde(default = "default_true")]
    pub distill: bool,
    /// Optimizer. Default: `Sgd(lr: 0.05, momentum: 0.9, nesterov: true, weight_decay: 5e-5)`.
    #[serde(default = "default_optimizer")]
    pub optimizer: Optimizer,
    /// Schedule. Default: `Cosine(warmup_steps: 0, min_lr: 0.0)`.
    #[serde(default = "default_schedule")]
    pub schedule: Schedule,
    /// Balanced mixture of supernets. Default: one supernet.
    #[serde(default)]
    pub mixture: MixtureConfig,
    /// Checkpoint every this many steps (and at the end). Default: 100.
    #[serde(default = "default_checkpoint_every")]
    pub checkpoint_every: u64,
    /// Checkpoints kept. Default: 3.
    #[serde(default = "default_keep")]
    pub keep_checkpoints: u32,
    /// Training batches for BN recalibration before any evaluation. Default: 16.
    #[serde(default = "default_recal")]
    pub recalibration_batches: u32,
    /// Seed of sampling and initialization. Default: 0.
    #[serde(default)]
    pub seed: u64,
    /// BigNAS zero-init of the last batch norm's scale of each residual block. Default: false
    /// (it slows the short runs qnas is mostly used for).
    #[serde(default)]
    pub zero_init_residual: bool,
    /// How the members' losses of one step combine into the loss the step descends: `Sum` (the
    /// sandwich rule's accumulated gradients, as BigNAS and Once-for-All) or `Mean` (the sum
    /// divided by the members per step, so that weights every member shares move as fast as
    /// in a training alone with the same learning rate). Default: `Sum`.
    #[serde(default)]
    pub member_loss: MemberLoss,
    /// Devices that train data-parallel, one replica each, each step's batch split over them
    /// (see [`DeviceName`]), e.g. `["cuda:0", "cuda:1"]`; the first keeps the supernet and the
    /// optimizer. `qnas train --devices` overrides it. Default: empty (the one device of
    /// `--device`).
    #[serde(default)]
    pub devices: Vec<String>,
}

/// How the members' losses of one training step combine.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum MemberLoss {
    /// Their sum.
    #[default]
    Sum,
    /// Their mean.
    Mean,
}

/// Backends a device can be named after, in the order they are listed.
pub const DEVICE_BACKENDS: [&str; 3] = ["flex", "wgpu", "cuda"];

/// One device of a `train.devices` list or of `--devices`: `BACKEND` or `BACKEND:INDEX`, the
/// backend one of [`DEVICE_BACKENDS`]. `flex` has one device (`flex:0`), which may be named
/// several times (several replicas on the CPU); `wgpu:N` is the N-th discrete GPU, `cuda:N`
/// the N-th CUDA device, and without an index each backend's default device.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceName {
    /// One of [`DEVICE_BACKENDS`].
    pub backend: &'static str,
    /// The device's index; `None` for the backend's default device.
    pub index: Option<usize>,
}

impl std::str::FromStr for DeviceName {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        let (name, index) = match s.split_once(':') {
            Some((n, i)) => (n, Some(i)),
            None => (s, None),
        };
        let Some(backend) = DEVICE_BACKENDS.iter().copied().find(|b| *b == name) else {
            return Err(format!(
                "unknown backend `{name}` in device `{s}` (expected one of {})",
                DEVICE_BACKENDS.join(", ")
            ));
        };
        let index = match index {
            None => None,
            Some(i) => Some(i.parse::<usize>().map_err(|_| {
                format!("device `{s}`: the index `{i}` is not a non-negative integer")
            })?),
        };
        if backend == "flex" && index.is_some_and(|i| i > 0) {
            return Err(format!(
                "device `{s}`: flex has one device (flex or flex:0; name it several times for \
                 several replicas)"
            ));
        }
        Ok(DeviceName { backend, index })
    }
}

/// A list of devices (`train.devices`, or `--devices` split at commas): every entry a
/// [`DeviceName`], all of one backend. The error names the offending entry.
pub fn parse_devices<S: AsRef<str>>(names: &[S]) -> Result<Vec<DeviceName>, (usize, String)> {
    let devices = names
        .iter()
        .enumerate()
        .map(|(i, n)| n.as_ref().parse::<DeviceName>().map_err(|e| (i, e)))
        .collect::<Result<Vec<_>, _>>()?;
    if let Some(first) = devices.first()
        && let Some(i) = devices.iter().position(|d| d.backend != first.backend)
    {
        return Err((
            i,
            format!(
                "devices of two backends (`{}` and `{}`); data-parallel training runs on one \
                 backend",
                first.backend, devices[i].backend
            ),
        ));
    }
    Ok(devices)
}

fn default_steps() -> u64 {
    1000
}
fn default_batch() -> u32 {
    64
}
fn default_sampling() -> Sampling {
    Sampling::Sandwich {
        random: 2,
        smallest: SmallestFormats::Alternate,
        draw: RandomDraw::LogBitOps,
    }
}
fn default_true() -> bool {
    true
}
fn default_optimizer() -> Optimizer {
    Optimizer::Sgd {
        lr: 0.05,
        momentum: 0.9,
        nesterov: true,
        weight_decay: 5e-5,
    }
}
fn default_schedule() -> Schedule {
    Schedule::Cosine {
        warmup_steps: 0,
        min_lr: 0.0,
    }
}
fn default_checkpoint_every() -> u64 {
    100
}
fn default_keep() -> u32 {
    3
}
fn default_recal() -> u32 {
    16
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            steps: default_steps(),
            batch_size: default_batch(),
            sampling: default_sampling(),
            distill: true,
            optimizer: default_optimizer(),
            schedule: default_schedule(),
            mixture: MixtureConfig::default(),
            checkpoint_every: default_checkpoint_every(),
            keep_checkpoints: default_keep(),
            recalibration_batches: default_recal(),
            seed: 0,
            zero_init_residual: false,
            member_loss: MemberLoss::Sum,
            devices: Vec::new(),
        }
    }
}

/// Which search strategy `qnas search` runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SearchStrategy {
    /// Uniform random members.
    Random,
    /// NSGA-II multi-objective evolution.
    Nsga2,
    /// Every member (small spaces).
    Exhaustive,
    /// The FLIQS REINFORCE controller, one run per cost target.
    Fliqs,
    /// HAWQ-V3's baseline: layers ranked by Hessian trace x weight quantization error, the
    /// formats under each BitOps budget allocated exactly.
    Hawq,
}

/// The `search` section.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SearchConfig {
    /// Strategy. Default: `Nsga2`.
    #[serde(default = "default_search_strategy")]
    pub strategy: SearchStrategy,
    /// Members evaluated (per cost target for FLIQS), besides the baselines. Default: 64.
    #[serde(default = "default_budget")]
    pub budget: u32,
    /// FLIQS cost targets, one search each: a value up to 1 is a fraction of the largest
    /// member's BitOps, a larger one an absolute BitOps budget. Default: `[0.25]`.
    #[serde(default = "default_targets")]
    pub targets: Vec<f64>,
    /// Seed. Default: 0.
    #[serde(default)]
    pub seed: u64,
    /// FLIQS training mode: the supernet keeps training (fine-tuning, at a tenth of the peak
    /// learning rate) on the members the policy samples while the policy converges, one copy per
    /// cost target, so the chosen member needs no retraining. Default: false (the policy is
    /// trained on the frozen supernet's validation accuracies).
    #[serde(default)]
    pub fliqs_training: bool,
    /// The FLIQS controller's settings (used when the strategy is `Fliqs`). Default: see
    /// [`FliqsSettings`].
    #[serde(default)]
    pub fliqs: FliqsSettings,
    /// The HAWQ-V3 baseline's settings (used when the strategy is `Hawq`). Default: see
    /// [`HawqSettings`].
    #[serde(default)]
    pub hawq: HawqSettings,
}

fn default_search_strategy() -> SearchStrategy {
    SearchStrategy::Nsga2
}
fn default_budget() -> u32 {
    64
}
fn default_targets() -> Vec<f64> {
    vec![0.25]
}

impl Default for SearchConfig {
    fn default() -> Self {
        SearchConfig {
            strategy: default_search_strategy(),
            budget: default_budget(),
            targets: default_targets(),
            seed: 0,
            fliqs_training: false,
            fliqs: FliqsSettings::default(),
            hawq: HawqSettings::default(),
        }
    }
}

pub(crate) fn check_search(s: &SearchConfig, problems: &mut Vec<Problem>) {
    let p = FieldPath::root().field("search");
    if s.budget == 0 {
        problems.push(
            Problem::new(p.field("budget"), "a search budget of 0")
                .help("expected at least 1 member"),
        );
    }
    if s.targets.is_empty() {
        problems.push(
            Problem::new(p.field("targets"), "the list of cost targets is empty")
                .help("e.g. targets: [0.1, 0.25, 0.5]"),
        );
    }
    for (i, t) in s.targets.iter().enumerate() {
        if !(t.is_finite() && *t > 0.0) {
            problems.push(
                Problem::new(p.field("targets").index(i), format!("cost target {t}"))
                    .help("a fraction of the largest member's BitOps in (0, 1], or a BitOps budget above 1"),
            );
        }
    }
    crate::fliqs::check_fliqs(&s.fliqs, &p, problems);
    crate::hawq::check_hawq(&s.hawq, &p, problems);
}

/// A validated `data` section.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DataConfig {
    /// File layout.
    pub kind: DataKind,
    /// Folder, resolved against the space file's folder.
    pub path: PathBuf,
    /// Validation share.
    pub validation_fraction: f64,
    /// Seed.
    pub seed: u64,
    /// Augmentation, `None` for the kind's default.
    pub augment: Option<RawAugment>,
}

pub(crate) fn check_data(raw: &RawData, base: &Path, problems: &mut Vec<Problem>) -> DataConfig {
    let p = FieldPath::root().field("data");
    if raw.path.trim().is_empty() {
        problems.push(Problem::new(p.field("path"), "the data path is empty"));
    }
    if !(raw.validation_fraction > 0.0 && raw.validation_fraction < 1.0) {
        problems.push(
            Problem::new(
                p.field("validation_fraction"),
                format!(
                    "validation fraction {} is not allowed",
                    raw.validation_fraction
                ),
            )
            .help("expected a share strictly between 0 and 1, e.g. 0.1"),
        );
    }
    DataConfig {
        kind: raw.kind,
        path: base.join(&raw.path),
        validation_fraction: raw.validation_fraction,
        seed: raw.seed,
        augment: raw.augment,
    }
}

pub(crate) fn check_train(t: &TrainConfig, problems: &mut Vec<Problem>) {
    let p = FieldPath::root().field("train");
    let mut bad = |path: FieldPath, msg: String, help: &str| {
        problems.push(Problem::new(path, msg).help(help))
    };
    if t.steps == 0 {
        bad(
            p.field("steps"),
            "0 training steps".into(),
            "expected at least 1 step",
        );
    }
    if t.batch_size == 0 {
        bad(
            p.field("batch_size"),
            "a batch size of 0".into(),
            "expected at least 1 image per step",
        );
    }
    match t.sampling {
        Sampling::Sorted { levels, per_step } => {
            if levels < 2 {
                bad(
                    p.field("sampling").field("levels"),
                    format!("{levels} levels"),
                    "SortedNet needs at least 2 nested levels",
                );
            }
            if per_step < 1 || per_step > levels {
                bad(
                    p.field("sampling").field("per_step"),
                    format!("{per_step} levels per step of {levels}"),
                    "expected 1..=levels",
                );
            }
        }
        Sampling::Sandwich { random, .. } if random > 64 => bad(
            p.field("sampling").field("random"),
            format!("{random} random members per step"),
            "expected at most 64",
        ),
        _ => {}
    }
    let lr = t.optimizer.lr();
    let op = p.field("optimizer");
    if !(lr.is_finite() && lr > 0.0) {
        bad(
            op.field("lr"),
            format!("learning rate {lr}"),
            "expected a positive learning rate",
        );
    }
    match t.optimizer {
        Optimizer::Sgd {
            momentum,
            weight_decay,
            ..
        } => {
            if !(0.0..1.0).contains(&momentum) {
                bad(
                    op.field("momentum"),
                    format!("momentum {momentum}"),
                    "expected 0 <= momentum < 1",
                );
            }
            if !(weight_decay.is_finite() && weight_decay >= 0.0) {
                bad(
                    op.field("weight_decay"),
                    format!("weight decay {weight_decay}"),
                    "expected a non-negative weight decay",
                );
            }
        }
        Optimizer::AdamW { weight_decay, .. } => {
            if !(weight_decay.is_finite() && weight_decay >= 0.0) {
                bad(
                    op.field("weight_decay"),
                    format!("weight decay {weight_decay}"),
                    "expected a non-negative weight decay",
                );
            }
        }
    }
    let sp = p.field("schedule");
    match t.schedule {
        Schedule::Constant { warmup_steps } | Schedule::Cosine { warmup_steps, .. }
            if warmup_steps >= t.steps && t.steps > 0 =>
        {
            bad(
                sp.field("warmup_steps"),
                format!("{warmup_steps} warm-up steps of {} steps", t.steps),
                "the warm-up must be shorter than training",
            );
        }
        Schedule::Cosine { min_lr, .. }
            if !(min_lr.is_finite() && min_lr >= 0.0 && min_lr <= lr) =>
        {
            bad(
                sp.field("min_lr"),
                format!("final learning rate {min_lr}"),
                "expected 0 <= min_lr <= lr",
            );
        }
        _ => {}
    }
    let mp = p.field("mixture");
    if t.mixture.supernets == 0 || t.mixture.supernets > 16 {
        bad(
            mp.field("supernets"),
            format!("{} supernets", t.mixture.supernets),
            "expected 1 to 16",
        );
    }
    if !(t.mixture.temperature.is_finite() && t.mixture.temperature > 0.0) {
        bad(
            mp.field("temperature"),
            format!("temperature {}", t.mixture.temperature),
            "expected a positive temperature",
        );
    }
    if !(t.mixture.ema_decay >= 0.0 && t.mixture.ema_decay < 1.0) {
        bad(
            mp.field("ema_decay"),
            format!("EMA decay {}", t.mixture.ema_decay),
            "expected 0 <= decay < 1",
        );
    }
    let h = t.mixture.holdout_fraction;
    if !(h > 0.0 && h <= 0.5) {
        bad(
            mp.field("holdout_fraction"),
            format!("holdout fraction {h}"),
            "expected a share of the training split in (0, 0.5], e.g. 0.1",
        );
    }
    if t.checkpoint_every == 0 {
        bad(
            p.field("checkpoint_every"),
            "checkpoints every 0 steps".into(),
            "expected at least 1",
        );
    }
    if t.keep_checkpoints == 0 {
        bad(
            p.field("keep_checkpoints"),
            "keeping 0 checkpoints".into(),
            "keep at least 1, or a crash loses the run",
        );
    }
    if let Err((i, message)) = parse_devices(&t.devices) {
        bad(
            p.field("devices").index(i),
            message,
            "expected e.g. [\"flex\"], [\"flex\", \"flex\"] or [\"cuda:0\", \"cuda:1\"]",
        );
    }
    if t.devices.len() as u64 > u64::from(t.batch_size) && t.batch_size > 0 {
        bad(
            p.field("devices"),
            format!(
                "{} devices for batches of {} images",
                t.devices.len(),
                t.batch_size
            ),
            "every device needs at least one image of each batch",
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_names() {
        let d = |s: &str| s.parse::<DeviceName>();
        assert_eq!(
            d("cuda:1"),
            Ok(DeviceName {
                backend: "cuda",
                index: Some(1)
            })
        );
        assert_eq!(
            d("flex"),
            Ok(DeviceName {
                backend: "flex",
                index: None
            })
        );
        assert!(d("flex:1").unwrap_err().contains("one device"));
        assert!(d("tpu").unwrap_err().contains("unknown backend `tpu`"));
        assert!(d("cuda:x").unwrap_err().contains("index `x`"));
        assert!(d("cuda:-1").is_err());
        let mixed = parse_devices(&["flex", "wgpu:0"]).unwrap_err();
        assert_eq!(mixed.0, 1);
        assert!(mixed.1.contains("two backends"), "{}", mixed.1);
        assert_eq!(parse_devices(&["flex", "flex"]).unwrap().len(), 2);
    }

    #[test]
    fn schedules() {
        let c = Schedule::Cosine {
            warmup_steps: 10,
            min_lr: 0.0,
        };
        assert!((c.lr_at(1.0, 0, 110) - 0.1).abs() < 1e-12);
        assert!((c.lr_at(1.0, 9, 110) - 1.0).abs() < 1e-12);
        assert!((c.lr_at(1.0, 10, 110) - 1.0).abs() < 1e-12);
        assert!((c.lr_at(1.0, 60, 110) - 0.5).abs() < 1e-12);
        assert!(c.lr_at(1.0, 110, 110).abs() < 1e-12);
        assert_eq!(
            Schedule::Constant { warmup_steps: 0 }.lr_at(0.3, 5, 10),
            0.3
        );
    }
}
