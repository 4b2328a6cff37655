//! `qnas run`: train, then search, each stage resumed where a previous run stopped.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use clap::Args;
use qnas_cli::backend::BackendKind;
use qnas_cli::export_cmd::{self, ExportOptions, Selection};
use qnas_cli::run_dir::{RunDir, TrainSummary};
use qnas_cli::search_cmd::{self, SearchOptions};
use qnas_cli::setup::SetupError;
use qnas_cli::train_cmd::{self, TrainOptions};
use search::settings::Overrides;
use supernet::checkpoint;

use crate::common::{Outcome, fail};

#[derive(Debug, Args)]
pub struct RunArgs {
    /// The space file (RON) with its `data`, `train` and `search` sections.
    pub file: PathBuf,
    /// Run folder (default `runs/<space name>`).
    #[arg(long)]
    pub run: Option<PathBuf>,
    /// Backend; `wgpu` and `cuda` need a binary built with the cargo feature of that name.
    #[arg(long, value_parser = crate::common::named(&BackendKind::ALL, BackendKind::name), default_value_t = BackendKind::Flex)]
    pub device: BackendKind,
    /// Print the results as JSON (schema `qnas.run/1`, see docs/json.md).
    #[arg(long)]
    pub json: bool,
    /// Also write `model.onnx` for every exported model (see `qnas export --onnx`).
    #[arg(long)]
    pub onnx: bool,
}

/// What `qnas run --json` prints.
#[derive(Debug, serde::Serialize)]
struct RunReport<'a> {
    schema: &'static str,
    run_dir: PathBuf,
    train: Option<TrainSummary>,
    search: &'a search::SearchReport,
    export: &'a export_cmd::ExportReport,
    /// The run's HTML report.
    report: &'a std::path::Path,
    /// How long each stage of this invocation took.
    stages: &'a StageTimes,
}

/// Wall-clock time of each stage of one `qnas run` (a stage already done takes about 0 s).
#[derive(Debug, serde::Serialize)]
struct StageTimes {
    /// Training the supernet (or continuing it); about 0 when it was already done.
    train_seconds: f64,
    /// Whether training was already done before this invocation.
    train_skipped: bool,
    /// The search, baselines and front included.
    search_seconds: f64,
    /// Whether the search resumed a saved study (then `search_seconds` covers only the members
    /// evaluated now, and no time per member is given).
    search_resumed: bool,
    /// Members in the study at the end (baselines included).
    search_members: usize,
    /// `search_seconds / search_members` for a search that started in this invocation.
    search_seconds_per_member: Option<f64>,
    /// Exporting the front (folders already written are kept, not timed again).
    export_seconds: f64,
    /// Writing the HTML report.
    report_seconds: f64,
}

impl StageTimes {
    /// One line for the text output.
    fn line(&self) -> String {
        let train = if self.train_skipped {
            "training already done".to_string()
        } else {
            format!("training {:.1} s", self.train_seconds)
        };
        let per = self
            .search_seconds_per_member
            .map_or_else(String::new, |s| format!(", {s:.2} s each"));
        format!(
            "time: {train}, search {:.1} s ({} members{}{}), export {:.1} s, report {:.1} s",
            self.search_seconds,
            self.search_members,
            if self.search_resumed { ", resumed" } else { "" },
            per,
            self.export_seconds,
            self.report_seconds
        )
    }
}

/// Runs `qnas run`.
pub fn run(a: &RunArgs) -> ExitCode {
    let file = a.file.display().to_string();
    let device = match crate::common::device(a.device, a.json) {
        Ok(d) => d,
        Err(code) => return code,
    };
    let space = match spaces::Space::load(&a.file) {
        Ok(s) => s,
        Err(e) => return crate::common::space_error(a.json, e),
    };
    let run = RunDir::for_space(a.run.as_deref(), &space);
    let dir = run.path().to_path_buf();
    // stage 1: train, or continue an unfinished training, or skip a finished one
    let summary = match run.read_summary() {
        Ok(s) => s,
        Err(e) => return fail(a.json, &file, SetupError::from(e)),
    };
    let done = summary.is_some_and(|s| s.steps >= space.train.steps);
    let t_train = Instant::now();
    if done {
        eprintln!(
            "[1/3] training: already done ({})",
            run.summary_file().display()
        );
        if let Err(e) = train_cmd::plot_finished_training(&run, &space.name) {
            return fail(a.json, &file, e);
        }
    } else {
        let resume = checkpoint::list_checkpoints(&run.checkpoints()).is_ok_and(|c| !c.is_empty());
        eprintln!("[1/3] training{}", if resume { " (resuming)" } else { "" });
        let opts = TrainOptions {
            file: a.file.clone(),
            run_dir: a.run.clone(),
            resume,
            restart: false,
            steps: None,
            device: device.clone(),
            arch: None,
            devices: None,
        };
        let mut bar = crate::cli_train::Bar::default();
        if let Err(e) = train_cmd::train(&opts, &mut bar) {
            return fail(a.json, &file, e);
        }
    }
    let train_seconds = t_train.elapsed().as_secs_f64();
    // stage 2: search, resuming a saved search
    let resume = run.search_dir().join(search::driver::STUDY_FILE).exists();
    let t_search = Instant::now();
    eprintln!("[2/3] search{}", if resume { " (resuming)" } else { "" });
    let opts = SearchOptions {
        file: a.file.clone(),
        run_dir: a.run.clone(),
        overrides: Overrides::default(),
        resume,
        device: device.clone(),
        out_dir: None,
        store: Default::default(),
        parallel: None,
        devices: Vec::new(),
    };
    let device_for_export = device;
    let report = match search_cmd::search(&opts, &mut crate::cli_search::Lines) {
        Ok(r) => r,
        Err(e) => return fail(a.json, &file, e),
    };
    let search_seconds = t_search.elapsed().as_secs_f64();
    // stage 3: export every member of the front, keeping folders already written
    eprintln!("[3/3] export of the front");
    let t_export = Instant::now();
    let opts = ExportOptions {
        target: dir.clone(),
        run_dir: None,
        selection: Selection {
            all: true,
            ..Selection::default()
        },
        out_dir: None,
        skip_existing: true,
        onnx: a.onnx,
        arch: None,
        device: device_for_export,
    };
    let exported = match export_cmd::export(&opts, &mut crate::cli_model::ExportLines) {
        Ok(r) => r,
        Err(e) => return fail(a.json, &file, e),
    };
    let export_seconds = t_export.elapsed().as_secs_f64();
    let train = match run.read_summary() {
        Ok(s) => s,
        Err(e) => return fail(a.json, &file, SetupError::from(e)),
    };
    let t_report = Instant::now();
    let page = match qnas_cli::report::write_report(&dir) {
        Ok(r) => r,
        Err(e) => return fail(a.json, &file, e),
    };
    let stages = StageTimes {
        train_seconds,
        train_skipped: done,
        search_seconds,
        search_resumed: resume,
        search_members: report.evaluated,
        search_seconds_per_member: (!resume && report.evaluated > 0)
            .then(|| search_seconds / report.evaluated as f64),
        export_seconds,
        report_seconds: t_report.elapsed().as_secs_f64(),
    };
    if a.json {
        let r = RunReport {
            schema: "qnas.run/1",
            run_dir: dir.clone(),
            train,
            search: &report,
            export: &exported,
            report: &page.path,
            stages: &stages,
        };
        println!("{}", serde_json::to_string_pretty(&r).unwrap_or_default());
        return Outcome::Success.into();
    }
    println!("run folder: {}", dir.display());
    if let Some(t) = train {
        println!(
            "supernet: {} steps, checkpoint {}",
            t.steps,
            t.checkpoint.display()
        );
    }
    print!("\n{}", crate::cli_search::table(&report));
    print!("\n{}", crate::cli_model::export_table(&exported));
    println!(
        "\ncheck a model: qnas eval {}",
        exported.models.first().map_or_else(
            || "<model folder>".to_string(),
            |m| m.dir.display().to_string()
        )
    );
    println!("{}", stages.line());
    println!("report: {}", page.path.display());
    Outcome::Success.into()
}
