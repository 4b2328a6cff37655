//! `qnas report`: arguments and output (the binary's side of `qnas_cli::report`).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use qnas_cli::report;

use crate::common::{emit, fail};

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// A run folder (`qnas train`, `qnas run` or `qnas search` wrote it).
    pub run: PathBuf,
    /// Print the result as JSON (schema `qnas.report/1`, see docs/json.md).
    #[arg(long)]
    pub json: bool,
}

/// Runs `qnas report`.
pub fn run(a: &ReportArgs) -> ExitCode {
    match report::write_report(&a.run) {
        Ok(r) => emit(a.json, &r, text),
        Err(e) => fail(a.json, &a.run.display().to_string(), e),
    }
}

/// The report's one-line summary and its path.
pub(crate) fn text(r: &report::ReportSummary) -> String {
    format!(
        "report: {} ({} plots, {} front members, {} models{})\n",
        r.path.display(),
        r.plots.len(),
        r.front,
        r.models,
        if r.correlate { ", correlate" } else { "" }
    )
}
