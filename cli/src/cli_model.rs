//! `qnas export`, `qnas eval`, `qnas predict`: arguments and printing (the binary's side).

use std::path::PathBuf;
use std::process::ExitCode;

use crate::common::Outcome;
use clap::Args;
use qnas_cli::backend::BackendKind;
use qnas_cli::export_cmd::{
    self, ExportOptions, ExportProgress, ExportReport, ExportedModel, Selection,
};
use qnas_cli::model_dir::{self, EngineInfo, EvalReport, ModelError, PredictReport};
use supernet::int::Engine;

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// A run folder (`runs/<name>`) or the space file it was trained from.
    pub run: PathBuf,
    /// Run folder, when RUN is a space file (default `runs/<space name>`).
    #[arg(long = "run")]
    pub run_dir: Option<PathBuf>,
    /// Members to export by their position in the front (from 1, cheapest first, as `qnas
    /// search` lists them); repeat or separate with commas.
    #[arg(long, value_delimiter = ',')]
    pub pick: Vec<usize>,
    /// Export every member of the front (the default when nothing else is chosen).
    #[arg(long, conflicts_with = "pick")]
    pub all: bool,
    /// Only members of at most this many BitOps (e.g. 2e7).
    #[arg(long)]
    pub max_bitops: Option<f64>,
    /// Only members of at least this validation accuracy (0.97 or 97).
    #[arg(long)]
    pub min_accuracy: Option<f64>,
    /// Output folder (default `<run>/export`); one `front-NN` folder per model.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Also write `model.onnx`: weights in their quantized ONNX types with
    /// DequantizeLinear, activations in QuantizeLinear/DequantizeLinear pairs (opset 21; see
    /// docs/export.md for the formats ONNX has no type for).
    #[arg(long)]
    pub onnx: bool,
    /// Export this member (an arch file, e.g. from `qnas space sample`) instead of members of
    /// the front; the folder is named after the file.
    #[arg(long, conflicts_with_all = ["pick", "all", "max_bitops", "min_accuracy"])]
    pub arch: Option<PathBuf>,
    /// Backend; `wgpu` and `cuda` need a binary built with the cargo feature of that name.
    #[arg(long, value_parser = crate::common::named(&BackendKind::ALL, BackendKind::name), default_value_t = BackendKind::Flex)]
    pub device: BackendKind,
    /// Print the report as JSON (schema `qnas.export/1`, see docs/json.md).
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct EvalArgs {
    /// An exported model folder (`qnas export`).
    pub model: PathBuf,
    /// Data folder to evaluate on instead of the one the model was exported with (same
    /// format; the validation part is held out with the model's seed and fraction).
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Which arithmetic runs the model: `int` runs its dense layers whose weights and inputs
    /// are integers of at most 8 bits on integers (i32 sums of the codes) and the others in
    /// f32; `float` runs every layer with f32 fake quantization (what `qnas export` measured).
    #[arg(long, value_parser = crate::common::named(&Engine::ALL, Engine::name), default_value_t = Engine::Int)]
    pub engine: Engine,
    /// Backend; `wgpu` and `cuda` need a binary built with the cargo feature of that name.
    #[arg(long, value_parser = crate::common::named(&BackendKind::ALL, BackendKind::name), default_value_t = BackendKind::Flex)]
    pub device: BackendKind,
    /// Print the report as JSON (schema `qnas.eval/1`, see docs/json.md).
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct PredictArgs {
    /// An exported model folder (`qnas export`).
    pub model: PathBuf,
    /// PNG files or IDX image files (raw or gzipped; every image in them).
    #[arg(required = true)]
    pub images: Vec<PathBuf>,
    /// Show this many most probable classes per image.
    #[arg(long, default_value_t = 1)]
    pub top: usize,
    /// Which arithmetic runs the model: `int` runs its dense layers whose weights and inputs
    /// are integers of at most 8 bits on integers (i32 sums of the codes) and the others in
    /// f32; `float` runs every layer with f32 fake quantization (what `qnas export` measured).
    #[arg(long, value_parser = crate::common::named(&Engine::ALL, Engine::name), default_value_t = Engine::Int)]
    pub engine: Engine,
    /// Backend; `wgpu` and `cuda` need a binary built with the cargo feature of that name.
    #[arg(long, value_parser = crate::common::named(&BackendKind::ALL, BackendKind::name), default_value_t = BackendKind::Flex)]
    pub device: BackendKind,
    /// Print the predictions as JSON (schema `qnas.predict/1`, see docs/json.md).
    #[arg(long)]
    pub json: bool,
}

/// Progress: one line per exported model on stderr.
pub struct ExportLines;

impl ExportProgress for ExportLines {
    fn exported(&mut self, done: usize, total: usize, m: &ExportedModel) {
        eprintln!(
            "[{done}/{total}] {} {}: validation {:.2}%, test {:.2}%, {:.3e} BitOps, {} bytes of weights{}",
            m.dir.display(),
            m.info.origin,
            m.info.accuracy.validation.accuracy * 100.0,
            m.info.accuracy.test.accuracy * 100.0,
            m.info.cost.bitops as f64,
            m.info.size.weight_code_bytes,
            if m.kept { " (kept)" } else { "" }
        );
    }

    fn note(&mut self, message: &str) {
        eprintln!("{message}");
    }
}

fn fail_model(json: bool, model: &std::path::Path, e: ModelError) -> ExitCode {
    crate::common::fail(json, &model.display().to_string(), e)
}

/// The exported models as a table.
pub fn export_table(r: &ExportReport) -> String {
    let mut s = format!(
        "exported {} models to {}:\n",
        r.models.len(),
        r.out_dir.display()
    );
    s += &format!(
        "  {:>3}  {:>9}  {:>9} {:>17}  {:>9} {:>17}  {:>12}  {:>10}  {}\n",
        "#",
        "search",
        "valid.",
        "95% interval",
        "test",
        "95% interval",
        "BitOps",
        "weights",
        "folder"
    );
    for m in &r.models {
        let a = &m.info.accuracy;
        s += &format!(
            "  {:>3}  {:>8.2}%  {:>8.2}% {:>17}  {:>8.2}% {:>17}  {:>12.4e}  {:>8} B  {}\n",
            m.position,
            a.search * 100.0,
            a.validation.accuracy * 100.0,
            crate::common::percent_interval(a.validation.interval),
            a.test.accuracy * 100.0,
            crate::common::percent_interval(a.test.interval),
            m.info.cost.bitops as f64,
            m.info.size.weight_code_bytes,
            m.dir.display()
        );
    }
    s += &format!(
        "  (95% Clopper-Pearson intervals from the image counts: {} validation, {} test images)\n",
        r.models
            .first()
            .map_or(0, |m| m.info.accuracy.validation.total),
        r.models.first().map_or(0, |m| m.info.accuracy.test.total)
    );
    s
}

/// Runs `qnas export`.
pub fn export(a: &ExportArgs) -> ExitCode {
    let device = match crate::common::device(a.device, a.json) {
        Ok(d) => d,
        Err(code) => return code,
    };
    let opts = ExportOptions {
        target: a.run.clone(),
        run_dir: a.run_dir.clone(),
        selection: Selection {
            pick: a.pick.clone(),
            all: a.all,
            max_bitops: a.max_bitops,
            min_accuracy: a.min_accuracy,
        },
        out_dir: a.out.clone(),
        skip_existing: false,
        onnx: a.onnx,
        arch: a.arch.clone(),
        device,
    };
    match export_cmd::export(&opts, &mut ExportLines) {
        Ok(r) => {
            if a.json {
                println!("{}", serde_json::to_string_pretty(&r).unwrap_or_default());
            } else {
                print!("{}", export_table(&r));
            }
            Outcome::Success.into()
        }
        Err(e) => crate::common::fail(a.json, &a.run.display().to_string(), e),
    }
}

fn print_eval(r: &EvalReport) -> String {
    let line = |name: &str, m: &model_dir::Measured, reported: &model_dir::Measured| {
        format!(
            "  {name:<10} {:>7.2}%  95% interval {}  ({} of {}){}\n",
            m.accuracy * 100.0,
            crate::common::percent_interval(m.interval),
            m.correct,
            m.total,
            if (m.correct, m.total) == (reported.correct, reported.total) {
                "  = model.json".to_string()
            } else {
                format!("  model.json: {:.2}%", reported.accuracy * 100.0)
            }
        )
    };
    let mut s = format!("{} on {}:\n", r.model.display(), r.data.display());
    s += &line("validation", &r.validation, &r.reported.validation);
    s += &line("test", &r.test, &r.reported.test);
    s += &format!(
        "  search     {:>7.2}%  (supernet member, validation)\n",
        r.reported.search * 100.0
    );
    s += &format!("  engine     {}\n", engine_line(&r.engine));
    s
}

/// The engine that ran, for people.
fn engine_line(e: &EngineInfo) -> String {
    match e.name {
        Engine::Int => format!(
            "int: {} of {} conv layers on integers, the others in f32",
            e.int_layers, e.layers
        ),
        Engine::Float => format!("float: f32 fake quantization, {} conv layers", e.layers),
    }
}

/// Runs `qnas eval`.
pub fn eval(a: &EvalArgs) -> ExitCode {
    let device = match crate::common::device(a.device, a.json) {
        Ok(d) => d,
        Err(code) => return code,
    };
    let result = model_dir::load_model(&a.model, &device)
        .and_then(|m| model_dir::evaluate_model(&m, a.data.as_deref(), &device, a.engine));
    match result {
        Ok(r) => {
            if a.json {
                println!("{}", serde_json::to_string_pretty(&r).unwrap_or_default());
            } else {
                print!("{}", print_eval(&r));
            }
            Outcome::Success.into()
        }
        Err(e) => fail_model(a.json, &a.model, e),
    }
}

fn print_predictions(r: &PredictReport, top: usize) -> String {
    let mut s = format!("engine {}\n", engine_line(&r.engine));
    for p in &r.predictions {
        let mut order: Vec<usize> = (0..p.probabilities.len()).collect();
        order.sort_by(|&a, &b| p.probabilities[b].total_cmp(&p.probabilities[a]));
        let best: Vec<String> = order
            .iter()
            .take(top.max(1))
            .map(|&c| format!("{c} ({:.1}%)", p.probabilities[c] * 100.0))
            .collect();
        s += &format!("{}: {}\n", p.source, best.join(", "));
    }
    s
}

/// Runs `qnas predict`.
pub fn predict(a: &PredictArgs) -> ExitCode {
    let device = match crate::common::device(a.device, a.json) {
        Ok(d) => d,
        Err(code) => return code,
    };
    let result = model_dir::load_model(&a.model, &device)
        .and_then(|m| model_dir::predict(&m, &a.images, &device, a.engine));
    match result {
        Ok(r) => {
            if a.json {
                println!("{}", serde_json::to_string_pretty(&r).unwrap_or_default());
            } else {
                print!("{}", print_predictions(&r, a.top));
            }
            Outcome::Success.into()
        }
        Err(e) => fail_model(a.json, &a.model, e),
    }
}
