//! `qnas experiment`: arguments, progress and the summary (the binary's side).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use qnas_cli::backend::BackendKind;
use qnas_cli::correlate::CorrelateProgress;
use qnas_cli::experiment::{self, ExperimentOptions, ExperimentProgress, ExperimentReport};
use qnas_cli::train_cmd::TrainProgress;
use search::SearchProgress;

#[derive(Debug, Args)]
pub struct ExperimentArgs {
    /// The experiment file (`experiments/NAME/experiment.ron`).
    pub file: PathBuf,
    /// Run the file's small version (its `quick` section): a check that the experiment runs,
    /// not a result.
    #[arg(long)]
    pub quick: bool,
    /// Folder of the experiment's runs (default `runs/experiments/NAME`, `NAME-quick` with
    /// `--quick`).
    #[arg(long)]
    pub runs: Option<PathBuf>,
    /// Folder of `report.md`, `fronts.svg`, `fronts.png` and `results.json` (default: the
    /// experiment file's folder; with `--quick`, the runs folder).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Backend; `wgpu` and `cuda` need a binary built with the cargo feature of that name.
    #[arg(long, value_parser = crate::common::named(&BackendKind::ALL, BackendKind::name), default_value_t = BackendKind::Flex)]
    pub device: BackendKind,
    /// Print the results as JSON (schema `qnas.experiment/1`, see docs/json.md).
    #[arg(long)]
    pub json: bool,
}

/// Progress on stderr: a line per stage, the training bar, a line per evaluated member.
#[derive(Default)]
struct Progress {
    bar: crate::cli_train::Bar,
    lines: crate::cli_search::Lines,
    alone: crate::cli_correlate::Progress,
}

impl ExperimentProgress for Progress {
    fn stage(&mut self, message: &str) {
        eprintln!("== {message}");
    }

    fn training(&mut self) -> &mut dyn TrainProgress {
        &mut self.bar
    }

    fn searching(&mut self) -> &mut dyn SearchProgress {
        &mut self.lines
    }

    fn correlating(&mut self) -> &mut dyn CorrelateProgress {
        &mut self.alone
    }
}

fn summary(r: &ExperimentReport) -> String {
    let mut s = format!(
        "experiment {}{}: {}\n",
        r.name,
        if r.quick { " (quick)" } else { "" },
        r.verdict.map_or("no checks", |v| v.text())
    );
    for c in &r.correlations {
        s += &format!(
            "  {}: Kendall tau-b {} over {} members trained alone\n",
            c.label,
            qnas_cli::correlate::with_interval(c.analysis.kendall_tau_b.as_ref()),
            c.members
        );
    }
    for c in &r.checks {
        s += &format!(
            "  {} ({} of {}): {}\n",
            c.verdict.text(),
            c.wins,
            c.outcomes.len(),
            c.claim
        );
    }
    s += &format!(
        "report: {}\nplot: {}\n",
        r.report.display(),
        r.plot.display()
    );
    s
}

/// Runs `qnas experiment`.
pub fn run(a: &ExperimentArgs) -> ExitCode {
    let device = match crate::common::device(a.device, a.json) {
        Ok(d) => d,
        Err(code) => return code,
    };
    let opts = ExperimentOptions {
        file: a.file.clone(),
        quick: a.quick,
        runs: a.runs.clone(),
        out: a.out.clone(),
        device,
    };
    match experiment::run_experiment(&opts, &mut Progress::default()) {
        Ok(r) => crate::common::emit(a.json, &r, summary),
        Err(e) => crate::common::fail(a.json, &a.file.display().to_string(), e),
    }
}
