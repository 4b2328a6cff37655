//! `qnas space check` and `qnas space sample`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use qnas_cli::space_report::{self, CheckReport, CostedArch, SampleMode, SampleReport};

use crate::common::{emit, si, space_error};

#[derive(Debug, Subcommand)]
pub(crate) enum SpaceCommand {
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
pub(crate) struct CheckArgs {
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
pub(crate) struct SampleArgs {
    /// The space file (RON).
    file: PathBuf,
    /// How many members to draw.
    #[arg(short = 'n', long, default_value_t = 1)]
    count: usize,
    /// Random seed.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// How to draw.
    #[arg(long, value_parser = crate::common::named(&SampleMode::ALL, SampleMode::name), default_value_t = SampleMode::Uniform)]
    mode: SampleMode,
    /// Print the samples as JSON (schema `qnas.space.sample/1`, see docs/json.md).
    #[arg(long)]
    json: bool,
}

/// Runs a `qnas space` command.
pub(crate) fn run(cmd: &SpaceCommand) -> ExitCode {
    match cmd {
        SpaceCommand::Check(a) => match space_report::check(&a.file) {
            Ok(report) => emit(a.json, &report, |r| print_check(r, a.layers)),
            Err(e) => space_error(a.json, e),
        },
        SpaceCommand::Sample(a) => match space_report::sample(&a.file, a.count, a.seed, a.mode) {
            Ok(report) => emit(a.json, &report, print_sample),
            Err(e) => space_error(a.json, e),
        },
    }
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
