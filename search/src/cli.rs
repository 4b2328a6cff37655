//! Command-line interface of `qnas`. The only place that prints or chooses exit codes.
//!
//! Exit codes: 0 success, 1 a failure while working, 2 invalid input (a malformed file, an
//! impossible setting, a bad argument).

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use search::backend::BackendKind;
use search::bench::{self, BenchOptions, BenchProgress, BenchReport, Measurement, StepEvent};
use search::space_report::{self, CheckReport, CostedArch, SampleMode, SampleReport};
use spaces::{Space, SpaceError};

/// Exit code for invalid input.
const EXIT_INVALID: u8 = 2;

#[derive(Debug, Parser)]
#[command(
    name = "qnas",
    version,
    about = "One-shot search of neural-network architectures and per-layer number formats",
    long_about = "qnas trains one weight-sharing supernet, searches architectures and per-layer \
                  number formats (integer and floating point) in one shot, and reports the Pareto \
                  front of accuracy versus BitOps.",
    after_help = "Example:\n  qnas space check spaces/presets/mnist.ron"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Convolution and batch-norm kernels on the CPU (`flex`) backend: `qnas` (ours, NHWC;
    /// the default) or `burn` (burn's own, the portable path every backend takes).
    #[arg(long, value_enum, global = true, default_value_t = Kernels::Qnas)]
    kernels: Kernels,
}

/// The `--kernels` choice.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum Kernels {
    /// Our NHWC convolution and batch-norm kernels (on `flex`).
    Qnas,
    /// burn's own ops.
    Burn,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Validate, describe and sample search spaces.
    #[command(subcommand)]
    Space(SpaceCommand),
    /// Measure training and inference throughput of a space's largest member, in full
    /// precision and with int4 fake quantization.
    #[command(
        after_help = "Examples:\n  qnas bench\n  qnas bench --space spaces/presets/mnist.ron --batch 256 --steps 10 --json\n\n\
                      A training step is forward + cross-entropy + backward + SGD-momentum step over the\n\
                      supernet; an inference step is an evaluation forward without autodiff. Figures are\n\
                      medians over the measured steps; GFLOP/s count 2*MACs per image for inference and\n\
                      3*2*MACs for training."
    )]
    Bench(BenchArgs),
    /// Train the supernet of a space file on its data set (checkpointed, resumable).
    #[command(
        after_help = "Examples:\n  qnas train spaces/presets/mnist.ron\n  qnas train spaces/presets/mnist.ron --resume\n  qnas train spaces/presets/digits.ron --run runs/digits-test --steps 50 --json\n  qnas space sample spaces/presets/mnist.ron --seed 3 > member.ron\n  qnas train spaces/presets/mnist.ron --arch member.ron   # that member alone, from scratch"
    )]
    Train(crate::cli_train::TrainArgs),
    /// Search a trained supernet for the Pareto front of accuracy versus BitOps.
    #[command(
        after_help = "Examples:\n  qnas search spaces/presets/mnist.ron\n  qnas search spaces/presets/mnist.ron --strategy fliqs --target 0.1 --budget 200\n  qnas search spaces/presets/digits.ron --run runs/d --strategy random --budget 20 --json"
    )]
    Search(crate::cli_search::SearchArgs),
    /// Train the supernet, search it and export the Pareto front: the whole job in one
    /// command, each stage resumed where a previous run stopped.
    #[command(
        after_help = "Examples:\n  qnas run spaces/presets/mnist.ron\n  qnas run spaces/presets/digits.ron --run runs/digits --json\n  qnas run spaces/presets/mnist.ron --onnx\n\n\
                      Leaves in the run folder: checkpoints/, metrics.jsonl, train.json, search/ (pareto.svg,\n\
                      pareto.png, pareto.csv, pareto.json, evaluated.csv) and export/front-NN/ per front member."
    )]
    Run(crate::cli_run::RunArgs),
    /// Write members of a run's Pareto front as standalone models: real quantized weights
    /// (safetensors), a burn record, the architecture, and model.json with their accuracy
    /// and costs.
    #[command(
        after_help = "Examples:\n  qnas export runs/mnist\n  qnas export runs/mnist --pick 3\n  qnas export runs/mnist --max-bitops 2e7 --min-accuracy 95 --out models --json\n\n\
                      Positions are those of `qnas search`'s table (1 = cheapest). Each folder holds\n\
                      arch.ron, space.ron, weights.safetensors, model.bpk and model.json."
    )]
    Export(crate::cli_model::ExportArgs),
    /// Measure an exported model's accuracy on the validation split and the test files,
    /// without the supernet.
    #[command(
        after_help = "Examples:\n  qnas eval runs/mnist/export/front-03\n  qnas eval runs/mnist/export/front-03 --data data/mnist-5k --json"
    )]
    Eval(crate::cli_model::EvalArgs),
    /// Classify images (PNG files, IDX image files) with an exported model.
    #[command(
        after_help = "Examples:\n  qnas predict runs/mnist/export/front-03 digit.png\n  qnas predict runs/mnist/export/front-03 data/mnist-5k/t10k-images-idx3-ubyte.gz --top 3 --json\n\n\
                      Images are converted to the model's input (grey or RGB, resized when their size\n\
                      differs) and normalized like its training data."
    )]
    Predict(crate::cli_model::PredictArgs),
    /// Fine-tune an exported model with its weights quantized to its formats in the forward
    /// pass (quantization-aware training), without the supernet; writes a new model folder.
    #[command(
        after_help = "Examples:\n  qnas finetune runs/mnist/export/front-03 --steps 500\n  qnas finetune runs/mnist/export/front-03 --steps 200 --lr 0.005 --out models/front-03-qat --json\n\n\
                      The input folder is only read; the default output is <MODEL>-ft<STEPS> next to it."
    )]
    Finetune(crate::cli_finetune::FinetuneArgs),
    /// Measure how far a run's front can be trusted: train members of its search alone from
    /// scratch and compare their accuracy with the supernet's (Kendall tau-b, Spearman rho,
    /// top-k overlap, each member's gap, with bootstrap intervals).
    #[command(
        after_help = "Examples:\n  qnas correlate runs/mnist --members 16\n  qnas correlate runs/mnist --members 24 --jobs 2 --json\n  qnas correlate spaces/presets/digits.ron --run runs/d --members 6 --steps 100\n\n\
                      Every member of the search's front is trained, then members spread over cost and\n\
                      accuracy. Each trains in RUN/correlate/alone/<member>-s<steps>/ with the space's\n\
                      recipe (its formats fake-quantized from step 0, no distillation); run the same\n\
                      command again after an interruption and finished members are kept, started ones\n\
                      resume. Writes correlate.json, correlate.csv, correlate.svg and correlate.png."
    )]
    Correlate(crate::cli_correlate::CorrelateArgs),
}

#[derive(Debug, Subcommand)]
enum SpaceCommand {
    /// Validate a space file and report its decisions, its size, and the costs of its smallest
    /// and largest members.
    #[command(
        after_help = "Examples:\n  qnas space check spaces/presets/mnist.ron\n  qnas space check spaces/presets/resnet18.ron --json"
    )]
    Check(CheckArgs),
    /// Draw members of a space (seeded) and report their costs.
    #[command(
        after_help = "Examples:\n  qnas space sample spaces/presets/mnist.ron -n 5 --seed 1\n  qnas space sample spaces/presets/resnet20.ron -n 3 --json"
    )]
    Sample(SampleArgs),
}

#[derive(Debug, Args)]
struct CheckArgs {
    /// The space file (RON).
    file: PathBuf,
    /// Print the report as JSON (schema `qnas.space.check/1`, see docs/json.md).
    #[arg(long)]
    json: bool,
    /// Also list the layers of the largest member with their costs.
    #[arg(long)]
    layers: bool,
}

#[derive(Debug, Args)]
struct SampleArgs {
    /// The space file (RON).
    file: PathBuf,
    /// How many members to draw.
    #[arg(short = 'n', long, default_value_t = 1)]
    count: usize,
    /// Random seed.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// How to draw.
    #[arg(long, value_enum, default_value_t = SampleMode::Uniform)]
    mode: SampleMode,
    /// Print the samples as JSON (schema `qnas.space.sample/1`, see docs/json.md).
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
struct BenchArgs {
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
    #[arg(long, value_enum, default_value_t = BackendKind::Flex)]
    device: BackendKind,
    /// Print the report as JSON (schema `qnas.bench/1`, see docs/json.md).
    #[arg(long)]
    json: bool,
}

/// Runs the CLI.
pub fn main() -> ExitCode {
    supernet::kernels::tune_allocator();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return usage_error(e),
    };
    supernet::kernels::set_enabled(cli.kernels == Kernels::Qnas);
    match cli.command {
        Command::Space(SpaceCommand::Check(a)) => match space_report::check(&a.file) {
            Ok(report) => emit(a.json, &report, |r| print_check(r, a.layers)),
            Err(e) => space_error(a.json, e),
        },
        Command::Space(SpaceCommand::Sample(a)) => {
            match space_report::sample(&a.file, a.count, a.seed, a.mode) {
                Ok(report) => emit(a.json, &report, print_sample),
                Err(e) => space_error(a.json, e),
            }
        }
        Command::Bench(a) => run_bench(&a),
        Command::Train(a) => crate::cli_train::run(&a),
        Command::Search(a) => crate::cli_search::run(&a),
        Command::Run(a) => crate::cli_run::run(&a),
        Command::Export(a) => crate::cli_model::export(&a),
        Command::Eval(a) => crate::cli_model::eval(&a),
        Command::Predict(a) => crate::cli_model::predict(&a),
        Command::Finetune(a) => crate::cli_finetune::run(&a),
        Command::Correlate(a) => crate::cli_correlate::run(&a),
    }
}

fn run_bench(a: &BenchArgs) -> ExitCode {
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
        Err(e) => report_error(
            a.json,
            &file,
            &e.to_string(),
            if e.is_invalid_input() {
                EXIT_INVALID
            } else {
                1
            },
        ),
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

/// `[a%, b%]`: an accuracy interval in percent.
pub(crate) fn percent_interval(i: stats::Interval) -> String {
    format!("[{:.2}%, {:.2}%]", i.lo * 100.0, i.hi * 100.0)
}

/// `a% [lo%, hi%] (k of n)`: a measured accuracy with its interval and counts.
pub(crate) fn measured_cell(m: &evaluators::Measured) -> String {
    format!(
        "{:>6.2}% {}  ({} of {})",
        m.accuracy * 100.0,
        percent_interval(m.interval),
        m.correct,
        m.total
    )
}

/// Prints `report` as JSON (with `--json`) or as `text` made of it, and returns success.
pub(crate) fn emit<T: serde::Serialize>(
    json: bool,
    report: &T,
    text: impl FnOnce(&T) -> String,
) -> ExitCode {
    let out = if json {
        serde_json::to_string_pretty(report).unwrap_or_default() + "\n"
    } else {
        text(report)
    };
    let mut stdout = std::io::stdout().lock();
    // a closed pipe (`| head`) is not an error worth a panic
    let _ = stdout.write_all(out.as_bytes());
    ExitCode::SUCCESS
}

/// A command line clap rejects: clap's own message and exit code, or, when the command line
/// asks for `--json`, a `qnas.error/1` document (help and version requests print as usual).
fn usage_error(e: clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    let wants_json = std::env::args().any(|a| a == "--json");
    let help = matches!(
        e.kind(),
        ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    );
    if !wants_json || help {
        let _ = e.print();
        return ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(EXIT_INVALID));
    }
    let message = e.render().to_string();
    let first = message
        .lines()
        .next()
        .unwrap_or("")
        .trim_start_matches("error: ");
    report_error(true, "", first, EXIT_INVALID)
}

/// Reports an error about `file` (a `qnas.error/1` document on stdout with `--json`, a line on
/// stderr otherwise) and returns exit code `code`.
pub(crate) fn report_error(json: bool, file: &str, message: &str, code: u8) -> ExitCode {
    if json {
        let body = serde_json::json!({ "schema": "qnas.error/1", "ok": false,
            "errors": [{ "file": file, "line": null, "column": null, "field": null,
                         "message": message, "help": null }] });
        println!(
            "{}",
            serde_json::to_string_pretty(&body).unwrap_or_default()
        );
    } else {
        eprintln!("error: {message}");
    }
    ExitCode::from(code)
}

/// The device of `--device`, or the exit code after reporting why it is not available.
pub(crate) fn device(kind: BackendKind, json: bool) -> Result<burn::tensor::Device, ExitCode> {
    search::backend::device(kind)
        .map_err(|e| report_error(json, "--device", &e.to_string(), EXIT_INVALID))
}

pub(crate) fn space_error(json: bool, e: SpaceError) -> ExitCode {
    if json {
        let body =
            serde_json::json!({ "schema": "qnas.error/1", "ok": false, "errors": e.records() });
        println!(
            "{}",
            serde_json::to_string_pretty(&body).unwrap_or_default()
        );
    } else {
        eprintln!("{:?}", miette::Report::new(e));
    }
    ExitCode::from(EXIT_INVALID)
}

fn si(x: f64) -> String {
    let (v, unit) = match x {
        x if x >= 1e12 => (x / 1e12, "T"),
        x if x >= 1e9 => (x / 1e9, "G"),
        x if x >= 1e6 => (x / 1e6, "M"),
        x if x >= 1e3 => (x / 1e3, "k"),
        x => (x, ""),
    };
    format!("{v:.3}{unit}")
}

fn cost_row(label: &str, c: &CostedArch) -> String {
    let kib = |bits: u64| format!("{:.1} KiB", bits as f64 / 8.0 / 1024.0);
    format!(
        "  {label:<9} {:>10} {:>10} {:>11} {:>13} {:>13}\n",
        si(c.cost.macs as f64),
        si(c.cost.params as f64),
        si(c.cost.bitops as f64),
        kib(c.cost.weight_bits),
        kib(c.cost.peak_activation_bits)
    )
}

fn print_check(r: &CheckReport, layers: bool) -> String {
    let mut s = String::new();
    let sp = &r.space;
    s += &format!(
        "space `{}` ({}) is valid; fingerprint {}\n",
        r.name, r.file, r.fingerprint
    );
    s += &format!(
        "input {}x{}x{}, {} classes, {} stages\n\n",
        sp.input.channels,
        sp.input.height,
        sp.input.width,
        sp.classes,
        sp.stages.len()
    );
    s += &format!("decisions ({}):\n", r.decisions.len());
    for d in &r.decisions {
        s += &format!("  {:<22} {}\n", d.name, d.choices.join(", "));
    }
    let size = match &r.size.exact {
        Some(n) if n.len() <= 12 => n.clone(),
        _ => format!("about 10^{:.2}", r.size.log10),
    };
    s += &format!("\nsize: {size} distinct members\n\n");
    s += &format!(
        "  {:<9} {:>10} {:>10} {:>11} {:>13} {:>13}\n",
        "member", "MACs", "params", "BitOps", "weights", "peak act."
    );
    s += &cost_row("smallest", &r.smallest);
    s += &cost_row("largest", &r.largest);
    if layers {
        s += "\nlayers of the largest member:\n";
        s += &format!(
            "  {:<18} {:>10} {:>10} {:>11}  {:<6} {:<6}\n",
            "layer", "MACs", "params", "BitOps", "w", "a"
        );
        for l in &r.largest.layers {
            s += &format!(
                "  {:<18} {:>10} {:>10} {:>11}  {:<6} {:<6}\n",
                l.name,
                si(l.macs as f64),
                si(l.params as f64),
                si(l.bitops as f64),
                l.weights,
                l.activations
            );
        }
    }
    s
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
    s += &format!("GFLOP/s convention: {}\n", r.flop_convention);
    s += &format!(
        "peak: share of the machine's sgemm peak, measured now: {:.1} GFLOP/s ({})\n",
        r.sgemm_peak_gflop_per_s, r.sgemm_peak_method
    );
    s
}

fn print_sample(r: &SampleReport) -> String {
    let mut s = String::new();
    for (i, c) in r.archs.iter().enumerate() {
        s += &format!(
            "// sample {i} (seed {}): MACs {}, params {}, BitOps {}\n",
            r.seed,
            si(c.cost.macs as f64),
            si(c.cost.params as f64),
            si(c.cost.bitops as f64)
        );
        s += &c.arch.to_ron();
        s += "\n";
    }
    s
}
