//! `qnas bench`: training and inference throughput of one member of a space (by default the
//! largest), in full precision and with int4 fake quantization, on the chosen backend; and
//! the inference of the member exported at int8 on the `f32` path against the integer engine
//! (`int8.rs`, [`Int8Report`]).
//!
//! # What is measured
//! - **Training step**: a [`Phase::Train`] forward of the member through the supernet on the
//!   autodiff device, cross-entropy loss on seeded random labels, backward, and one SGD step with
//!   momentum 0.9 (dampening 0, as PyTorch) over every supernet parameter, then a device sync.
//! - **Inference step**: a [`Phase::Eval`] forward on the plain (non-autodiff) device, then a
//!   device sync. Before it, one untimed [`Phase::Recalibrate`] pass gives the batch norms and
//!   activation quantizers the statistics of the input.
//!
//! The two variants are the member as the space defines it (`fp32`: for the largest member of
//! `resnet20.ron` every layer is fp32 except the stem and classifier, which the space pins to
//! int8) and the member with every unpinned layer at int4 weights and int4 activations
//! (`int4`). Their steps alternate (fp32, int4, fp32, ...) so that a change of machine load hits
//! both alike. The input is one seeded batch of standard-normal images, reused every step.
//!
//! # What is reported
//! Per mode and variant, every measured step time, their median, `img_per_s = batch / median`
//! and the achieved GFLOP/s under the convention `FLOP = 2 x MACs` per image for inference and
//! `3 x 2 x MACs` for training (forward, input gradient and weight gradient each cost about one
//! forward). MACs are those of the cost model (convolutions and the classifier; batch norm,
//! activation, pooling and quantizer arithmetic are not counted). `fake_quant_overhead` is the
//! int4 median step time over the fp32 one. `peak_share` is the achieved GFLOP/s over the
//! machine's sgemm throughput, measured at the start of the run on the same thread pool
//! ([`supernet::kernels::sgemm_peak`]). Warm-up steps are run and reported to the progress
//! callback but excluded from the figures.

use std::collections::BTreeMap;
use std::time::Instant;

use burn::nn::loss::{CrossEntropyLoss, CrossEntropyLossConfig};
use burn::optim::momentum::MomentumConfig;
use burn::optim::{GradientsParams, SgdConfig};
use burn::tensor::{Device, Int, Tensor, TensorData};
use serde::Serialize;
use spaces::{Arch, ArchError, Format, Plan, Rng, Space};
use supernet::{Phase, Supernet};

use crate::backend::{self, BackendError, BackendKind};

mod int8;

pub use int8::Int8Report;

/// Schema tag of [`BenchReport`].
pub const BENCH_SCHEMA: &str = "qnas.bench/1";

/// The FLOP convention of the report, as written into it.
pub const FLOP_CONVENTION: &str = "inference 2*MACs per image, training 3*2*MACs per image";

/// Learning rate of the benchmark's SGD steps.
const LEARNING_RATE: f64 = 0.01;

/// Settings of a benchmark run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BenchOptions {
    /// Images per step (training and inference).
    pub batch: usize,
    /// Measured steps per mode and variant.
    pub steps: usize,
    /// Warm-up steps per mode and variant, run first and not measured.
    pub warmup: usize,
    /// Seed of the input batch and labels.
    pub seed: u64,
}

impl Default for BenchOptions {
    fn default() -> Self {
        BenchOptions {
            batch: 128,
            steps: 10,
            warmup: 2,
            seed: 0,
        }
    }
}

/// Training or inference.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Forward, loss, backward, optimizer step.
    Train,
    /// Evaluation forward.
    Infer,
}

/// The precision variant of the member.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Variant {
    /// The member's own formats (fp32 for the largest member, pins kept).
    Fp32,
    /// Every unpinned layer at int4 weights and activations.
    Int4,
    /// The member exported at int8, on the `f32` path (fake quantization).
    Int8Float,
    /// The member exported at int8, on the integer engine.
    Int8Int,
}

impl Variant {
    /// The name in reports.
    pub fn name(self) -> &'static str {
        match self {
            Variant::Fp32 => "fp32",
            Variant::Int4 => "int4",
            Variant::Int8Float => "int8-f32",
            Variant::Int8Int => "int8-int",
        }
    }
}

/// One finished step, reported to [`BenchProgress`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StepEvent {
    /// Training or inference.
    pub mode: Mode,
    /// The variant.
    pub variant: Variant,
    /// Whether this was a warm-up step (not measured).
    pub warmup: bool,
    /// Index of the step within its kind (warm-up or measured), from 0.
    pub index: usize,
    /// Number of steps of its kind.
    pub of: usize,
    /// Its wall-clock time in seconds.
    pub seconds: f64,
}

/// Receives the progress of a benchmark (the binary draws a progress bar).
pub trait BenchProgress {
    /// Called once before the first step with the number of steps to come.
    fn start(&mut self, total_steps: usize);
    /// Called after every step.
    fn step(&mut self, event: &StepEvent);
}

/// A [`BenchProgress`] that ignores everything.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoProgress;

impl BenchProgress for NoProgress {
    fn start(&mut self, _total_steps: usize) {}
    fn step(&mut self, _event: &StepEvent) {}
}

/// The figures of one mode and variant.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Measurement {
    /// Images per second: batch / median step time.
    pub img_per_s: f64,
    /// Median step time in seconds.
    pub median_s: f64,
    /// Every measured step time in seconds, in order.
    pub step_s: Vec<f64>,
    /// Achieved GFLOP/s under [`FLOP_CONVENTION`].
    pub gflop_per_s: f64,
    /// `gflop_per_s` over the machine's measured sgemm peak
    /// ([`BenchReport::sgemm_peak_gflop_per_s`]).
    pub peak_share: f64,
}

/// Both variants of one mode.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ModeReport {
    /// The member's own formats.
    pub fp32: Measurement,
    /// Int4 weights and activations.
    pub int4: Measurement,
    /// int4 median step time / fp32 median step time.
    pub fake_quant_overhead: f64,
}

/// What `qnas bench` reports (schema [`BENCH_SCHEMA`], see docs/json.md).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct BenchReport {
    /// [`BENCH_SCHEMA`].
    pub schema: &'static str,
    /// What ran: `qnas` with its burn version.
    pub implementation: String,
    /// The backend.
    pub device: BackendKind,
    /// Whose convolution and batch-norm kernels ran: `qnas` (ours, NHWC, on `flex`) or
    /// `burn`.
    pub kernels: &'static str,
    /// Worker threads of the CPU backend's pool (rayon).
    pub threads: usize,
    /// The machine's sgemm throughput measured before the steps (GFLOP/s), the yardstick of
    /// `peak_share`.
    pub sgemm_peak_gflop_per_s: f64,
    /// How the peak was measured.
    pub sgemm_peak_method: String,
    /// The space file.
    pub file: String,
    /// The space's name.
    pub space: String,
    /// Which member: `largest`.
    pub member: &'static str,
    /// Input `[channels, height, width]`.
    pub input: [u32; 3],
    /// Classes.
    pub classes: u32,
    /// MACs per image of the member.
    pub macs: u64,
    /// Parameters of the member.
    pub params: u64,
    /// The member's resolved network (the `fp32` variant's layers, formats included): what a
    /// reference implementation must build to measure the same network
    /// (`experiments/reference/torch_bench.py --plan REPORT`).
    pub plan: Plan,
    /// Per variant, how many layers (convs and the classifier) use each
    /// `weights/activations` format pair.
    pub formats: BTreeMap<&'static str, BTreeMap<String, usize>>,
    /// Images per step.
    pub batch: usize,
    /// Warm-up steps per mode and variant.
    pub warmup: usize,
    /// Measured steps per mode and variant.
    pub steps: usize,
    /// [`FLOP_CONVENTION`].
    pub flop_convention: &'static str,
    /// Training figures.
    pub train: ModeReport,
    /// Inference figures.
    pub infer: ModeReport,
    /// The member at uniform int8, exported: inference on the `f32` path against the integer
    /// engine; `null` when the space offers no `Int(8)` for weights and activations or the
    /// backend does not run our kernels.
    pub int8_inference: Option<Int8Report>,
}

/// Why a benchmark could not run.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// The backend is not available.
    #[error(transparent)]
    Backend(#[from] BackendError),
    /// A setting is out of range.
    #[error("invalid setting: {0}")]
    Setting(String),
    /// The space does not offer int4 for weights and activations.
    #[error(
        "space `{0}` does not offer Int(4) for both weights and activations, so the int4 variant \
         cannot be built"
    )]
    NoInt4(String),
    /// The member does not belong to the space.
    #[error(transparent)]
    Arch(#[from] ArchError),
    /// The backend failed while running.
    #[error("the backend failed: {0}")]
    Execution(String),
    /// A training step produced a loss that is not finite.
    #[error("the {variant} training loss is not finite ({loss})")]
    NonFiniteLoss {
        /// The variant.
        variant: &'static str,
        /// The loss.
        loss: f32,
    },
}

impl BenchError {
    /// Whether the error is the user's input (exit code 2) rather than a failure while running.
    pub fn is_invalid_input(&self) -> bool {
        if let BenchError::Backend(e) = self {
            return e.is_invalid_input();
        }
        matches!(self, BenchError::Setting(_) | BenchError::NoInt4(_))
    }
}

/// Median of `xs` (mean of the two middle values for an even count). `xs` must not be empty.
pub fn median(xs: &[f64]) -> f64 {
    let mut v = xs.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// Builds a [`Measurement`] from step times, the batch size, the FLOP per image and the sgemm
/// peak (GFLOP/s).
pub fn measurement(step_s: Vec<f64>, batch: usize, flop_per_image: f64, peak: f64) -> Measurement {
    let median_s = median(&step_s);
    let img_per_s = batch as f64 / median_s;
    let gflop_per_s = flop_per_image * img_per_s / 1e9;
    Measurement {
        img_per_s,
        median_s,
        step_s,
        gflop_per_s,
        peak_share: gflop_per_s / peak,
    }
}

fn mode_report(
    fp32: Vec<f64>,
    int4: Vec<f64>,
    batch: usize,
    flop_per_image: f64,
    peak: f64,
) -> ModeReport {
    let fp32 = measurement(fp32, batch, flop_per_image, peak);
    let int4 = measurement(int4, batch, flop_per_image, peak);
    ModeReport {
        fake_quant_overhead: int4.median_s / fp32.median_s,
        fp32,
        int4,
    }
}

/// `weights/activations` format pair → number of layers using it.
pub(crate) fn format_counts(plan: &Plan) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    let pairs = plan
        .convs()
        .map(|c| c.formats)
        .chain(std::iter::once(plan.fc.formats));
    for p in pairs {
        *out.entry(format!("{}/{}", p.weights.name(), p.activations.name()))
            .or_insert(0) += 1;
    }
    out
}

fn sync(device: &Device) -> Result<(), BenchError> {
    device
        .sync()
        .map_err(|e| BenchError::Execution(format!("{e:?}")))
}

/// The seeded input batch `[batch, c, h, w]` (standard normal) and labels `[batch]`.
fn inputs(space: &Space, batch: usize, seed: u64) -> (TensorData, TensorData) {
    let mut rng = Rng::new(seed);
    let (c, h, w) = (
        space.input.channels as usize,
        space.input.height as usize,
        space.input.width as usize,
    );
    let pixels: Vec<f32> = (0..batch * c * h * w)
        .map(|_| rng.normal() as f32)
        .collect();
    let labels: Vec<i64> = (0..batch)
        .map(|_| rng.below(space.classes as usize) as i64)
        .collect();
    (
        TensorData::new(pixels, [batch, c, h, w]),
        TensorData::new(labels, [batch]),
    )
}

/// One variant's training state.
struct Trainer {
    variant: Variant,
    net: Supernet,
    plan: Plan,
    optim: burn::optim::ModuleOptimizer,
}

impl Trainer {
    fn new(space: &Space, variant: Variant, plan: Plan, device: &Device) -> Trainer {
        let momentum = MomentumConfig::new().with_momentum(0.9).with_dampening(0.0);
        Trainer {
            variant,
            net: Supernet::new(space, device),
            plan,
            optim: SgdConfig::new().with_momentum(Some(momentum)).init(),
        }
    }

    /// One timed training step; returns the updated state and the step's seconds.
    fn step(
        self,
        x: &Tensor<4>,
        y: &Tensor<1, Int>,
        loss_fn: &CrossEntropyLoss,
        device: &Device,
    ) -> Result<(Trainer, f64), BenchError> {
        let Trainer {
            variant,
            net,
            plan,
            mut optim,
        } = self;
        let t = Instant::now();
        let logits = net.forward_plan(x.clone(), &plan, Phase::Train);
        let loss = loss_fn.forward(logits, y.clone());
        let grads = GradientsParams::from_grads(loss.backward(), &net);
        let net = optim.step(LEARNING_RATE, net, grads);
        sync(device)?;
        let seconds = t.elapsed().as_secs_f64();
        let loss = loss.into_scalar::<f32>();
        if !loss.is_finite() {
            return Err(BenchError::NonFiniteLoss {
                variant: variant.name(),
                loss,
            });
        }
        let trainer = Trainer {
            variant,
            net,
            plan,
            optim,
        };
        Ok((trainer, seconds))
    }
}

/// Benchmarks the largest member of `space` (read from `file`) on backend `kind`.
pub fn run(
    space: &Space,
    file: &str,
    kind: BackendKind,
    opts: &BenchOptions,
    progress: &mut dyn BenchProgress,
) -> Result<BenchReport, BenchError> {
    if opts.batch == 0 {
        return Err(BenchError::Setting("--batch must be at least 1".into()));
    }
    if opts.steps == 0 {
        return Err(BenchError::Setting("--steps must be at least 1".into()));
    }
    let device = backend::device(kind)?;
    let kernels = if supernet::kernels::active(&device) {
        "qnas"
    } else {
        "burn"
    };
    let peak = supernet::kernels::sgemm_peak();
    let largest = space.largest();
    let int4 = space
        .with_uniform_formats(&largest, Format::Int(4), Format::Int(4))
        .ok_or_else(|| BenchError::NoInt4(space.name.clone()))?;
    let members: [(Variant, &Arch); 2] = [(Variant::Fp32, &largest), (Variant::Int4, &int4)];
    let mut plans = Vec::with_capacity(2);
    for (_, arch) in members {
        plans.push(space.plan(arch)?);
    }
    let cost = spaces::cost::plan_cost(&plans[0]);
    let formats = members
        .iter()
        .zip(&plans)
        .map(|((v, _), p)| (v.name(), format_counts(p)))
        .collect();
    let (pixels, labels) = inputs(space, opts.batch, opts.seed);
    let per_mode = 2 * (opts.warmup + opts.steps);
    let int8_steps = if supernet::kernels::active(&device) {
        int8::steps(space, opts)
    } else {
        0
    };
    progress.start(2 * per_mode + int8_steps);

    // training, on the autodiff device
    let ad = device.clone().autodiff();
    let x = Tensor::<4>::from_data(pixels.clone(), &ad);
    let y = Tensor::<1, Int>::from_data(labels, &ad);
    let loss_fn = CrossEntropyLossConfig::new().init(&ad);
    let mut trainers: Vec<Option<Trainer>> = members
        .iter()
        .zip(&plans)
        .map(|((v, _), p)| Some(Trainer::new(space, *v, p.clone(), &ad)))
        .collect();
    let mut train_times = [Vec::new(), Vec::new()];
    for i in 0..opts.warmup + opts.steps {
        for (slot, times) in trainers.iter_mut().zip(train_times.iter_mut()) {
            let trainer = slot.take().expect("trainer present between steps");
            let variant = trainer.variant;
            let (trainer, seconds) = trainer.step(&x, &y, &loss_fn, &ad)?;
            *slot = Some(trainer);
            progress.step(&event(Mode::Train, variant, i, opts, seconds));
            if i >= opts.warmup {
                times.push(seconds);
            }
        }
    }
    drop(trainers);

    // inference, on the plain device
    let x = Tensor::<4>::from_data(pixels, &device);
    let nets: Vec<Supernet> = plans
        .iter()
        .map(|p| {
            let net = Supernet::new(space, &device);
            net.recalibrate_plan(p, [x.clone()]);
            net
        })
        .collect();
    sync(&device)?;
    let mut infer_times = [Vec::new(), Vec::new()];
    for i in 0..opts.warmup + opts.steps {
        for (((variant, _), (net, plan)), times) in members
            .iter()
            .zip(nets.iter().zip(&plans))
            .zip(infer_times.iter_mut())
        {
            let t = Instant::now();
            let logits = net.forward_plan(x.clone(), plan, Phase::Eval);
            sync(&device)?;
            let seconds = t.elapsed().as_secs_f64();
            drop(logits);
            progress.step(&event(Mode::Infer, *variant, i, opts, seconds));
            if i >= opts.warmup {
                times.push(seconds);
            }
        }
    }

    drop(nets);
    let int8_macs = match int8::member(space) {
        Some(arch) => space.cost(&arch)?.macs as f64,
        None => 0.0,
    };
    let int8_inference = int8::run(
        space,
        &x,
        &device,
        opts,
        2.0 * int8_macs,
        peak.gflop_per_s,
        progress,
    )?;

    let macs = cost.macs as f64;
    let [train_fp32, train_int4] = train_times;
    let [infer_fp32, infer_int4] = infer_times;
    Ok(BenchReport {
        schema: BENCH_SCHEMA,
        implementation: format!("qnas {} (burn 0.22.1)", env!("CARGO_PKG_VERSION")),
        device: kind,
        kernels,
        threads: rayon::current_num_threads(),
        sgemm_peak_gflop_per_s: peak.gflop_per_s,
        sgemm_peak_method: peak.method,
        file: file.to_string(),
        space: space.name.clone(),
        member: "largest",
        input: [space.input.channels, space.input.height, space.input.width],
        classes: space.classes,
        macs: cost.macs,
        params: cost.params,
        plan: plans.swap_remove(0),
        formats,
        batch: opts.batch,
        warmup: opts.warmup,
        steps: opts.steps,
        flop_convention: FLOP_CONVENTION,
        train: mode_report(
            train_fp32,
            train_int4,
            opts.batch,
            6.0 * macs,
            peak.gflop_per_s,
        ),
        infer: mode_report(
            infer_fp32,
            infer_int4,
            opts.batch,
            2.0 * macs,
            peak.gflop_per_s,
        ),
        int8_inference,
    })
}

pub(crate) fn event(
    mode: Mode,
    variant: Variant,
    i: usize,
    opts: &BenchOptions,
    seconds: f64,
) -> StepEvent {
    let warmup = i < opts.warmup;
    StepEvent {
        mode,
        variant,
        warmup,
        index: if warmup { i } else { i - opts.warmup },
        of: if warmup { opts.warmup } else { opts.steps },
        seconds,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), 2.5);
        assert_eq!(median(&[7.0]), 7.0);
    }

    #[test]
    fn measurement_uses_the_median_and_the_flop_convention() {
        let m = measurement(vec![0.5, 2.0, 1.0], 128, 6.0 * 40.0e6, 61.44);
        assert_eq!(m.median_s, 1.0);
        assert_eq!(m.img_per_s, 128.0);
        assert!((m.gflop_per_s - 128.0 * 240.0e6 / 1e9).abs() < 1e-9);
        assert!((m.peak_share - 0.5).abs() < 1e-9);
    }

    fn digits() -> Space {
        let path =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../spaces/presets/digits.ron");
        Space::load(&path).expect("digits preset loads")
    }

    #[derive(Default)]
    struct Recorder {
        total: usize,
        events: Vec<StepEvent>,
    }

    impl BenchProgress for Recorder {
        fn start(&mut self, total_steps: usize) {
            self.total = total_steps;
        }
        fn step(&mut self, event: &StepEvent) {
            self.events.push(*event);
        }
    }

    #[test]
    fn tiny_run_reports_every_step_and_alternates_variants() {
        let space = digits();
        let opts = BenchOptions {
            batch: 4,
            steps: 2,
            warmup: 1,
            seed: 3,
        };
        let mut rec = Recorder::default();
        let r = run(&space, "digits.ron", BackendKind::Flex, &opts, &mut rec).unwrap();
        // 6 training, 6 inference and 6 int8 inference steps
        assert_eq!(rec.total, 18);
        assert_eq!(rec.events.len(), 18);
        assert!(rec.events[0].warmup && rec.events[0].mode == Mode::Train);
        assert_eq!(rec.events[0].variant, Variant::Fp32);
        assert_eq!(rec.events[1].variant, Variant::Int4);
        assert_eq!(rec.events[11].mode, Mode::Infer);
        assert!(!rec.events[11].warmup && rec.events[11].index == 1 && rec.events[11].of == 2);
        for m in [&r.train.fp32, &r.train.int4, &r.infer.fp32, &r.infer.int4] {
            assert_eq!(m.step_s.len(), 2);
            assert!(m.img_per_s > 0.0 && m.gflop_per_s > 0.0);
        }
        assert_eq!(r.macs, space.cost(&space.largest()).unwrap().macs);
        // the network a reference implementation rebuilds: the fp32 member's plan
        assert_eq!(r.plan, space.plan(&space.largest()).unwrap());
        assert_eq!(spaces::cost::plan_cost(&r.plan).macs, r.macs);
        // digits ties weights and activations and pins nothing: every layer switches format
        assert_eq!(r.formats["int4"].keys().collect::<Vec<_>>(), ["int4/int4"]);
        assert_eq!(r.formats["fp32"].keys().collect::<Vec<_>>(), ["fp32/fp32"]);
        // the int8 section alternates its two engines after the other steps
        assert_eq!(rec.events[12].variant, Variant::Int8Float);
        assert_eq!(rec.events[13].variant, Variant::Int8Int);
        let int8 = r.int8_inference.expect("digits offers Int(8)");
        assert_eq!(int8.formats.keys().collect::<Vec<_>>(), ["int8/int8"]);
        assert_eq!(int8.int_layers, int8.layers);
        assert!(int8.int_layers > 0 && int8.weights_bytes > 0);
        for m in [&int8.float, &int8.int] {
            assert_eq!(m.step_s.len(), 2);
        }
        // the engines agree but for summation order and the codes it moves across a rounding
        // boundary (a few 1e-3 of the largest logit on random networks); a wrong scale, sign
        // or layout would be of the order of the logits themselves
        assert!(
            int8.max_logit_difference <= 5e-2,
            "{}",
            int8.max_logit_difference
        );
    }

    #[test]
    fn zero_steps_and_missing_int4_are_input_errors() {
        let space = digits();
        let opts = BenchOptions {
            steps: 0,
            ..BenchOptions::default()
        };
        let e = run(&space, "d", BackendKind::Flex, &opts, &mut NoProgress).unwrap_err();
        assert!(e.is_invalid_input(), "{e}");
        let src = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../spaces/presets/digits.ron"),
        )
        .unwrap()
        .replace("Int(4), ", "");
        let no_int4 = Space::parse(&src, "no-int4.ron", "no-int4").unwrap();
        let e = run(
            &no_int4,
            "d",
            BackendKind::Flex,
            &BenchOptions::default(),
            &mut NoProgress,
        )
        .unwrap_err();
        assert!(matches!(e, BenchError::NoInt4(_)), "{e}");
        assert!(e.is_invalid_input());
    }
}
