//! What every command of the binary shares: how it ends (one exit-code type, [`Outcome`]),
//! how a failure is reported ([`Failure`], [`fail`]: a `qnas.error/1` document on stdout with
//! `--json`, a line or a located diagnostic on stderr otherwise), and small formatting helpers.

use std::io::Write;
use std::process::ExitCode;

use qnas_cli::backend::BackendKind;
use spaces::SpaceError;

/// How a command ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// It did its work (exit code 0).
    Success,
    /// It failed while working: a training diverged, a file could not be written (exit
    /// code 1).
    Failure,
    /// The user's input is at fault: a malformed file, an impossible setting, a bad argument
    /// (exit code 2).
    InvalidInput,
}

impl From<Outcome> for ExitCode {
    fn from(o: Outcome) -> Self {
        ExitCode::from(match o {
            Outcome::Success => 0,
            Outcome::Failure => 1,
            Outcome::InvalidInput => 2,
        })
    }
}

/// An error a command can end with.
pub(crate) trait Failure: std::fmt::Display {
    /// Whether the user's input is at fault.
    fn is_invalid_input(&self) -> bool;

    /// The space file's located diagnostics, when that is what failed (else the error back).
    fn into_space_error(self) -> Result<SpaceError, Self>
    where
        Self: Sized,
    {
        Err(self)
    }

    /// The outcome this error ends a command with.
    fn outcome(&self) -> Outcome {
        if self.is_invalid_input() {
            Outcome::InvalidInput
        } else {
            Outcome::Failure
        }
    }
}

/// Reports `e`, a failure about `file` (the file or argument it concerns), and returns its
/// exit code.
pub(crate) fn fail(json: bool, file: &str, e: impl Failure) -> ExitCode {
    match e.into_space_error() {
        Ok(s) => space_error(json, s),
        Err(e) => report(json, file, &e.to_string(), e.outcome()),
    }
}

/// `[a%, b%]`: an accuracy interval in percent.
pub(crate) fn percent_interval(i: stats::Interval) -> String {
    format!("[{:.2}%, {:.2}%]", i.lo * 100.0, i.hi * 100.0)
}

/// `a% [lo%, hi%] (k of n)`: a measured accuracy with its interval and counts.
pub(crate) fn measured_cell(m: &stats::Measured) -> String {
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
    Outcome::Success.into()
}

/// A command line clap rejects: clap's own message and exit code, or, when the command line
/// asks for `--json`, a `qnas.error/1` document (help and version requests print as usual).
pub(crate) fn usage_error(e: clap::Error) -> ExitCode {
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
        return ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(2));
    }
    let message = e.render().to_string();
    let first = message
        .lines()
        .next()
        .unwrap_or("")
        .trim_start_matches("error: ");
    report(true, "", first, Outcome::InvalidInput)
}

/// Reports an error about `file` (a `qnas.error/1` document on stdout with `--json`, a line on
/// stderr otherwise) and returns the exit code of `outcome`.
pub(crate) fn report(json: bool, file: &str, message: &str, outcome: Outcome) -> ExitCode {
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
    outcome.into()
}

/// The device of `--device`, or the exit code after reporting why it is not available.
pub(crate) fn device(kind: BackendKind, json: bool) -> Result<burn::tensor::Device, ExitCode> {
    qnas_cli::backend::device(kind).map_err(|e| {
        let outcome = if e.is_invalid_input() {
            Outcome::InvalidInput
        } else {
            Outcome::Failure
        };
        report(json, "--device", &e.to_string(), outcome)
    })
}

/// The devices of a `--devices` list (comma separated; none without the flag), or the exit
/// code after reporting why they cannot be used.
pub(crate) fn device_list(
    list: Option<&str>,
    json: bool,
) -> Result<Vec<burn::tensor::Device>, ExitCode> {
    let Some(list) = list else {
        return Ok(Vec::new());
    };
    let names: Vec<&str> = list.split(',').collect();
    qnas_cli::backend::devices(&names).map_err(|e| {
        let outcome = if e.is_invalid_input() {
            Outcome::InvalidInput
        } else {
            Outcome::Failure
        };
        report(json, "--devices", &format!("--devices: {e}"), outcome)
    })
}

/// Parses a positive number of seconds (`--stale-after`).
pub(crate) fn positive_seconds(s: &str) -> Result<std::time::Duration, String> {
    match s.parse::<f64>() {
        Ok(x) if x.is_finite() && x > 0.0 && x < 1e9 => Ok(std::time::Duration::from_secs_f64(x)),
        _ => Err(format!("{s:?} is not a positive number of seconds")),
    }
}

/// Runs the kernels' thread pool (rayon's global pool) on `n` threads; called before any
/// work starts (a pool already built keeps its size).
pub(crate) fn set_threads(n: usize) {
    let _ = rayon::ThreadPoolBuilder::new()
        .num_threads(n)
        .build_global();
}

/// Reports a space or arch file's located diagnostics and returns exit code 2.
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
    Outcome::InvalidInput.into()
}

/// `x` with an SI prefix (k, M, G, T).
pub(crate) fn si(x: f64) -> String {
    let (v, unit) = match x {
        x if x >= 1e12 => (x / 1e12, "T"),
        x if x >= 1e9 => (x / 1e9, "G"),
        x if x >= 1e6 => (x / 1e6, "M"),
        x if x >= 1e3 => (x / 1e3, "k"),
        x => (x, ""),
    };
    format!("{v:.3}{unit}")
}

/// A command-line value parser for a library enum: its values are `all`'s names (listed in
/// `--help` and in the error for any other value), so the library needs no clap types.
pub(crate) fn named<T: Copy + Send + Sync + 'static>(
    all: &'static [T],
    name: fn(T) -> &'static str,
) -> impl clap::builder::TypedValueParser<Value = T> {
    use clap::builder::TypedValueParser;
    clap::builder::PossibleValuesParser::new(all.iter().map(|t| name(*t))).map(move |given| {
        *all.iter()
            .find(|t| name(**t) == given)
            .expect("a possible value names one of them")
    })
}

/// Implements [`Failure`] for library errors that classify themselves with
/// `is_invalid_input`, with a pattern that extracts a space file's diagnostics when present.
macro_rules! failure {
    ($t:ty $(, $p:pat => $s:expr)*) => {
        impl Failure for $t {
            fn is_invalid_input(&self) -> bool {
                <$t>::is_invalid_input(self)
            }

            #[allow(unreachable_patterns)]
            fn into_space_error(self) -> Result<SpaceError, Self> {
                match self {
                    $($p => Ok($s),)*
                    other => Err(other),
                }
            }
        }
    };
}

use qnas_cli::bench::BenchError;
use qnas_cli::correlate::CorrelateError;
use qnas_cli::experiment::ExperimentError;
use qnas_cli::export_cmd::ExportError;
use qnas_cli::finetune_cmd::FinetuneError;
use qnas_cli::model_dir::ModelError;
use qnas_cli::report::ReportError;
use qnas_cli::search_cmd::SearchCmdError;
use qnas_cli::setup::SetupError;
use qnas_cli::train_cmd::TrainCmdError;
use qnas_cli::worker_cmd::WorkerCmdError;

failure!(SetupError, SetupError::Space(e) => *e);
failure!(TrainCmdError, TrainCmdError::Setup(SetupError::Space(e)) => *e);
failure!(SearchCmdError, SearchCmdError::Setup(SetupError::Space(e)) => *e);
failure!(ModelError, ModelError::Space(e) => e);
failure!(
    ExportError,
    ExportError::Setup(SetupError::Space(e)) => *e,
    ExportError::Model(ModelError::Space(e)) => e
);
failure!(FinetuneError, FinetuneError::Model(ModelError::Space(e)) => e);
failure!(CorrelateError, CorrelateError::Setup(SetupError::Space(e)) => *e);
failure!(BenchError);
failure!(WorkerCmdError, WorkerCmdError::Setup(SetupError::Space(e)) => *e);
failure!(ReportError, ReportError::Model(ModelError::Space(e)) => e);
failure!(
    ExperimentError,
    ExperimentError::Spec(e) => *e,
    ExperimentError::Setup(SetupError::Space(e)) => *e
);
