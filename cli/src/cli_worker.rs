//! `qnas worker`: arguments and progress (the binary's side).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use qnas_cli::backend::BackendKind;
use qnas_cli::worker_cmd::{self, WorkerOptions};
use search::worker::{Evaluated, WorkReport, WorkerProgress};

use crate::cli_search::StoreArgs;

#[derive(Debug, Args)]
pub struct WorkerArgs {
    /// The run folder (with its trained supernet), or the space file it was trained from.
    pub target: PathBuf,
    /// Run folder when TARGET is a space file (default `runs/<space name>`).
    #[arg(long)]
    pub run: Option<PathBuf>,
    #[command(flatten)]
    pub store: StoreArgs,
    /// Backend; `wgpu` and `cuda` need a binary built with the cargo feature of that name.
    #[arg(long, value_parser = crate::common::named(&BackendKind::ALL, BackendKind::name), default_value_t = BackendKind::Flex)]
    pub device: BackendKind,
    /// Print what the worker did as JSON when the study finishes (schema `qnas.worker/1`, see
    /// docs/json.md).
    #[arg(long)]
    pub json: bool,
}

/// Progress: one line per member on stderr.
struct Lines;

impl WorkerProgress for Lines {
    fn evaluated(&mut self, e: &Evaluated) {
        match &e.result {
            Ok(acc) => eprintln!(
                "member {} {:<24} accuracy {:>6.2}%",
                e.member.idx,
                e.member.origin,
                acc.top1() * 100.0
            ),
            Err(message) => eprintln!(
                "member {} {:<24} FAILED: {message}",
                e.member.idx, e.member.origin
            ),
        }
    }

    fn note(&mut self, message: &str) {
        eprintln!("{message}");
    }
}

fn summary(r: &WorkReport) -> String {
    format!(
        "study {:?} in {} finished: {} members evaluated here ({} failed), {:.1} s busy of {:.1} s\n",
        r.study, r.storage, r.evaluated, r.failed, r.busy_seconds, r.seconds
    )
}

/// Runs `qnas worker`.
pub fn run(a: &WorkerArgs) -> ExitCode {
    let device = match crate::common::device(a.device, a.json) {
        Ok(d) => d,
        Err(code) => return code,
    };
    let opts = WorkerOptions {
        target: a.target.clone(),
        run_dir: a.run.clone(),
        store: a.store.options(),
        parallel: a.store.parallel(),
        device,
    };
    match worker_cmd::work(&opts, &mut Lines) {
        Ok(report) => crate::common::emit(a.json, &report, summary),
        Err(e) => crate::common::fail(a.json, &a.target.display().to_string(), e),
    }
}
