//! `qnas bench`: training and inference throughput of a space's largest member.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use qnas_cli::backend::BackendKind;
use qnas_cli::bench::{self, BenchOptions, BenchProgress, BenchReport, Measurement, StepEvent};
use spaces::Space;

use crate::common::{emit, fail, si, space_error};

#[derive(Debug, Args)]
pub(crate) struct BenchArgs {
    /// The space file (RON) whose largest member is measured.
    #[arg(long, default_value = "spaces/presets/resnet20.ron")]
    space: PathBuf,
    /// Images per step (training and inference).
    #[arg(long, default_value_t = BenchOptions::default().batch)]
    batch: usize,
    /// Measured steps per mode and variant (the median is reported).
    #[arg(long, default_value_t = BenchOptions::default().steps)]
    steps: usize,
    /// Warm-up steps per mode and variant, run first and not measured.
    #[arg(long, default_value_t = BenchOptions::default().warmup)]
    warmup: usize,
    /// Seed of the random input batch and labels.
    #[arg(long, default_value_t = BenchOptions::default().seed)]
    seed: u64,
    /// Backend; `wgpu` and `cuda` need a binary built with the cargo feature of that name.
    #[arg(long, value_parser = crate::common::named(&BackendKind::ALL, BackendKind::name), default_value_t = BackendKind::Flex)]
    device: BackendKind,
    /// Print the report as JSON (schema `qnas.bench/1`, see docs/json.md).
    #[arg(long)]
    json: bool,
}

/// Runs `qnas bench`.
pub(crate) fn run(a: &BenchArgs) -> ExitCode {
    let space = match Space::load(&a.space) {
        Ok(s) => s,
        Err(e) => return space_error(a.json, e),
    };
    let opts = BenchOptions {
        batch: a.batch,
        steps: a.steps,
        warmup: a.warmup,
        seed: a.seed,
    };
    let file = a.space.display().to_string();
    let mut progress = StepProgress::new();
    let result = bench::run(&space, &file, a.device, &opts, &mut progress);
    progress.finish();
    match result {
        Ok(report) => emit(a.json, &report, print_bench),
        Err(e) => fail(a.json, &file, e),
    }
}

/// Benchmark progress on stderr: a bar on a terminal, one line per step otherwise (logs).
struct StepProgress {
    bar: Option<ProgressBar>,
}

impl StepProgress {
    fn new() -> StepProgress {
        use std::io::IsTerminal;
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::new(0);
            let style = ProgressStyle::with_template(
                "{spinner} {msg:<28} [{bar:30}] {pos}/{len} steps, {elapsed}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
            bar.set_style(style);
            bar
        });
        StepProgress { bar }
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

impl BenchProgress for StepProgress {
    fn start(&mut self, total_steps: usize) {
        if let Some(bar) = &self.bar {
            bar.set_length(total_steps as u64);
            bar.set_message("first step");
        }
    }

    fn step(&mut self, e: &StepEvent) {
        let kind = if e.warmup { "warm-up" } else { "step" };
        let mode = match e.mode {
            bench::Mode::Train => "train",
            bench::Mode::Infer => "infer",
        };
        let line = format!(
            "{mode} {} {kind} {}/{}: {:.3} s",
            e.variant.name(),
            e.index + 1,
            e.of,
            e.seconds
        );
        match &self.bar {
            Some(bar) => {
                bar.inc(1);
                bar.set_message(line);
            }
            None => eprintln!("{line}"),
        }
    }
}

fn print_bench(r: &BenchReport) -> String {
    let mut s = String::new();
    s += &format!(
        "qnas bench: largest member of `{}` ({}) on {} with {} kernels, {} threads\n",
        r.space, r.file, r.device, r.kernels, r.threads
    );
    s += &format!(
        "member: {} MACs, {} params per image; batch {}, {} warm-up + {} measured steps (median)\n",
        si(r.macs as f64),
        si(r.params as f64),
        r.batch,
        r.warmup,
        r.steps
    );
    for (variant, counts) in &r.formats {
        let list: Vec<String> = counts.iter().map(|(f, n)| format!("{f} x{n}")).collect();
        s += &format!(
            "  {variant} layers (weights/activations): {}\n",
            list.join(", ")
        );
    }
    s += &format!(
        "\n  {:<6} {:<7} {:>10} {:>10} {:>9} {:>6}\n",
        "mode", "variant", "img/s", "median s", "GFLOP/s", "peak"
    );
    let row = |mode: &str, variant: &str, m: &Measurement| {
        format!(
            "  {mode:<6} {variant:<7} {:>10.1} {:>10.4} {:>9.2} {:>5.1}%\n",
            m.img_per_s,
            m.median_s,
            m.gflop_per_s,
            100.0 * m.peak_share
        )
    };
    s += &row("train", "fp32", &r.train.fp32);
    s += &row("train", "int4", &r.train.int4);
    s += &row("infer", "fp32", &r.infer.fp32);
    s += &row("infer", "int4", &r.infer.int4);
    s += &format!(
        "\nfake-quant overhead (int4 / fp32 step time): train {:.2}x, infer {:.2}x\n",
        r.train.fake_quant_overhead, r.infer.fake_quant_overhead
    );
    match &r.int8_inference {
        Some(q) => {
            let list: Vec<String> = q.formats.iter().map(|(f, n)| format!("{f} x{n}")).collect();
            s += &format!(
                "\nint8 inference of the member exported at int8 ({}; {} of {} conv layers on integers, {} B of weights):\n",
                list.join(", "),
                q.int_layers,
                q.layers,
                q.weights_bytes
            );
            s += &format!(
                "  {:<14} {:>10} {:>10} {:>10} {:>10}\n",
                "engine", "img/s", "median s", "min s", "max s"
            );
            let row = |name: &str, m: &Measurement| {
                let min = m.step_s.iter().copied().fold(f64::INFINITY, f64::min);
                let max = m.step_s.iter().copied().fold(0.0, f64::max);
                format!(
                    "  {name:<14} {:>10.1} {:>10.4} {min:>10.4} {max:>10.4}\n",
                    m.img_per_s, m.median_s
                )
            };
            s += &row("f32 fake-quant", &q.float);
            s += &row("integer", &q.int);
            s += &format!(
                "  integer engine speed-up: {:.2}x (median over median); logits differ by {:.1e} of their largest magnitude, {} of {} predicted classes differ\n",
                q.speedup, q.max_logit_difference, q.class_flips, r.batch
            );
        }
        None => {
            s += "\nint8 inference: not measured (the space offers no Int(8) for weights and activations, or the backend does not run qnas kernels)\n";
        }
    }
    s += &format!("GFLOP/s convention: {}\n", r.flop_convention);
    s += &format!(
        "peak: share of the machine's sgemm peak, measured now: {:.1} GFLOP/s ({})\n",
        r.sgemm_peak_gflop_per_s, r.sgemm_peak_method
    );
    s
}
