//! The `qnas` binary: parses the command line and hands each command to its module
//! (`cli_*.rs`). The binary is the only code that prints or chooses exit codes, through
//! `common.rs`: exit code 0 success, 1 a failure while working, 2 invalid input (a malformed
//! file, an impossible setting, a bad argument), and with `--json` a `qnas.error/1` document
//! for every failure.
#![allow(clippy::print_stdout, clippy::print_stderr)]

mod cli_bench;
mod cli_correlate;
mod cli_experiment;
mod cli_finetune;
mod cli_model;
mod cli_report;
mod cli_run;
mod cli_search;
mod cli_space;
mod cli_train;
mod cli_worker;
mod common;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

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
    Space(crate::cli_space::SpaceCommand),
    /// Measure training and inference throughput of a space's largest member, in full
    /// precision and with int4 fake quantization.
    #[command(
        after_help = "Examples:\n  qnas bench\n  qnas bench --space spaces/presets/mnist.ron --batch 256 --steps 10 --json\n\n\
                      A training step is forward + cross-entropy + backward + SGD-momentum step over the\n\
                      supernet; an inference step is an evaluation forward without autodiff. Figures are\n\
                      medians over the measured steps; GFLOP/s count 2*MACs per image for inference and\n\
                      3*2*MACs for training."
    )]
    Bench(crate::cli_bench::BenchArgs),
    /// Train the supernet of a space file on its data set (checkpointed, resumable).
    #[command(
        after_help = "Examples:\n  qnas train spaces/presets/mnist.ron\n  qnas train spaces/presets/mnist.ron --resume\n  qnas train spaces/presets/digits.ron --run runs/digits-test --steps 50 --json\n  qnas space sample spaces/presets/mnist.ron --seed 3 > member.ron\n  qnas train spaces/presets/mnist.ron --arch member.ron   # that member alone, from scratch\n  qnas train spaces/presets/mnist.ron --devices cuda:0,cuda:1   # data-parallel, two replicas"
    )]
    Train(crate::cli_train::TrainArgs),
    /// Search a trained supernet for the Pareto front of accuracy versus BitOps.
    #[command(
        after_help = "Examples:\n  qnas search spaces/presets/mnist.ron\n  qnas search spaces/presets/mnist.ron --strategy fliqs --target 0.1 --budget 200\n  qnas search spaces/presets/digits.ron --run runs/d --strategy random --budget 20 --json\n  qnas search spaces/presets/mnist.ron --storage postgres://qnas@db.lan:5432/qnas   # with `qnas worker`s elsewhere\n\n\
                      The study (settings, the strategy's state, every member asked with its result) is\n\
                      kept in RUN/search/study.db (SQLite) or the --storage database; --resume continues\n\
                      it. `qnas worker RUN` processes beside it (or on other machines, with PostgreSQL)\n\
                      evaluate members too; the front does not depend on how many there are."
    )]
    Search(crate::cli_search::SearchArgs),
    /// Evaluate members of a search's study on this machine, beside `qnas search` and other
    /// workers sharing its store; exits when the search has finished.
    #[command(
        after_help = "Examples:\n  qnas worker runs/mnist                       # beside `qnas search` on this machine (RUN/search/study.db)\n  qnas worker runs/mnist --threads 1 --json\n  qnas worker runs/mnist --storage postgres://qnas@db.lan:5432/qnas   # any machine with the run folder and data\n\n\
                      The worker needs the run's trained supernet (checkpoints/) and the data set; it\n\
                      claims members the search asked, evaluates them and writes their results to the\n\
                      store. A worker killed mid-way loses only the members it was evaluating: they go\n\
                      to another process (at once on the same machine, after --stale-after seconds\n\
                      without heartbeats elsewhere). Start `qnas search` with the same --storage."
    )]
    Worker(crate::cli_worker::WorkerArgs),
    /// Train the supernet, search it and export the Pareto front: the whole job in one
    /// command, each stage resumed where a previous run stopped.
    #[command(
        after_help = "Examples:\n  qnas run spaces/presets/mnist.ron\n  qnas run spaces/presets/digits.ron --run runs/digits --json\n  qnas run spaces/presets/mnist.ron --onnx\n\n\
                      Leaves in the run folder: checkpoints/, metrics.jsonl, train.json, train.svg and .png,\n\
                      search/ (pareto.csv, pareto.json, evaluated.csv; the plots pareto, hypervolume and\n\
                      formats, each .svg and .png), export/front-NN/ per front member and report.html."
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
        after_help = "Examples:\n  qnas correlate runs/mnist --members 16\n  qnas correlate runs/mnist --members 24 --jobs 2 --json\n  qnas correlate spaces/presets/digits.ron --run runs/d --members 6 --steps 100\n  qnas correlate runs/mnist --split validation\n\n\
                      Every member of the search's front is trained, then members spread over cost and\n\
                      accuracy. Each trains in RUN/correlate/alone/<member>-r<recipe>-s<steps>/ with the space's\n\
                      recipe (its formats fake-quantized from step 0, no distillation); run the same\n\
                      command again after an interruption and finished members are kept, started ones\n\
                      resume. Both accuracies of a member are measured on the data set's test files\n\
                      (the search ranked on the validation split, which favours its front there).\n\
                      Writes correlate.json, correlate.csv, correlate.svg and correlate.png."
    )]
    Correlate(crate::cli_correlate::CorrelateArgs),
    /// Run an experiment (a claim of the papers: spaces trained once, searches over seeds) and
    /// write its report with the measured tables, the checks and the verdict.
    #[command(
        after_help = "Examples:\n  qnas experiment experiments/mixed-vs-uniform/experiment.ron\n  qnas experiment experiments/strategies/experiment.ron --quick --json\n\n\
                      Each space is trained once into RUNS/<space>/ and each search of each seed runs\n\
                      into RUNS/<space>/searches/<label>-seed<k>/; a correlation trains its search's\n\
                      members alone into RUNS/alone/ and reports into RUNS/<space>/correlations/<label>/.\n\
                      Run the same command again after an interruption and finished stages are read\n\
                      back, unfinished ones resume. Writes report.md, fronts.svg, fronts.png and\n\
                      results.json (experiments/README.md describes the file)."
    )]
    Experiment(crate::cli_experiment::ExperimentArgs),
    /// Write RUN/report.html: one self-contained page with the run's settings, its plots, the
    /// front with intervals and links to the exported models (no server, no external assets).
    #[command(
        after_help = "Examples:\n  qnas report runs/mnist\n  qnas report runs/mnist --json\n\n\
                      Made from the files the other commands wrote (train.json, search/pareto.json, the\n\
                      plots, export/*/model.json, correlate/correlate.json), so it can be made again at\n\
                      any time; `qnas run` writes it at its end. Open it in any browser."
    )]
    Report(crate::cli_report::ReportArgs),
}

/// A write beyond the file-size limit (`ulimit -f`) would kill the process with SIGXFSZ,
/// leaving no message; ignored, the write fails with EFBIG and the command reports the file it
/// could not write, as it reports a full disk.
fn write_errors_not_signals() {
    #[cfg(unix)]
    #[allow(unsafe_code)]
    // SAFETY: setting a signal's disposition to SIG_IGN installs no handler code and has no
    // memory-safety preconditions; it happens once, before any thread starts.
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
    }
}

fn main() -> ExitCode {
    write_errors_not_signals();
    supernet::kernels::tune_allocator();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return common::usage_error(e),
    };
    supernet::kernels::set_enabled(cli.kernels == Kernels::Qnas);
    // searches evaluate members on threads of their own and size the pool themselves
    // (`--threads`); every other command computes on this thread
    if !matches!(cli.command, Command::Search(_) | Command::Worker(_)) {
        supernet::kernels::pool_with_main_thread();
    }
    match cli.command {
        Command::Space(c) => crate::cli_space::run(&c),
        Command::Bench(a) => crate::cli_bench::run(&a),
        Command::Train(a) => crate::cli_train::run(&a),
        Command::Search(a) => crate::cli_search::run(&a),
        Command::Worker(a) => crate::cli_worker::run(&a),
        Command::Run(a) => crate::cli_run::run(&a),
        Command::Export(a) => crate::cli_model::export(&a),
        Command::Eval(a) => crate::cli_model::eval(&a),
        Command::Predict(a) => crate::cli_model::predict(&a),
        Command::Finetune(a) => crate::cli_finetune::run(&a),
        Command::Correlate(a) => crate::cli_correlate::run(&a),
        Command::Experiment(a) => crate::cli_experiment::run(&a),
        Command::Report(a) => crate::cli_report::run(&a),
    }
}
