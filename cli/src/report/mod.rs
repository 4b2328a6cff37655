//! `qnas report RUN`: one self-contained HTML page of a run folder (no server, no external
//! assets, no script it needs to render): the run's settings, its plots inlined as SVG, the
//! front with 95% intervals and links to the exported model folders, the uniform baselines,
//! FLIQS's policies and `qnas correlate`'s verdict when those exist. It is built only from the
//! files the other commands wrote, so it can be made again at any time (`qnas run` writes it at
//! its end).

mod html;

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::model_dir::{self, ModelInfo};
use crate::run_dir::RunDir;
use html::{Page, escape};

/// Schema of `qnas report --json`.
pub const REPORT_SCHEMA: &str = "qnas.report/1";

/// The report's file name in the run folder.
pub const REPORT_FILE: &str = "report.html";

/// The plots a report shows when their files exist: path in the run folder, heading and
/// caption.
pub const PLOTS: &[(&str, &str, &str)] = &[
    (
        "search/pareto.svg",
        "Pareto front",
        "Validation accuracy against BitOps (log scale): every evaluated member, the front as a \
         step line, the uniform-precision baselines labelled, 95% Clopper-Pearson intervals as \
         error bars.",
    ),
    (
        "search/hypervolume.svg",
        "Hypervolume",
        "The front's hypervolume (log BitOps and accuracy, normalized) against the number of \
         members evaluated, in the order the search measured them.",
    ),
    (
        "search/formats.svg",
        "Formats of the front",
        "Per-layer number formats of each front member (columns, cheapest first): weights and \
         activations.",
    ),
    (
        "train.svg",
        "Training",
        "The supernet's training loss and batch accuracies against the step (metrics.jsonl).",
    ),
    (
        "correlate/correlate.svg",
        "Supernet against stand-alone training",
        "Each compared member's supernet accuracy against its accuracy trained alone with the \
         same recipe, with both intervals; the diagonal is agreement.",
    ),
];

/// What `qnas report` reports.
#[derive(Clone, Debug, Serialize)]
pub struct ReportSummary {
    /// [`REPORT_SCHEMA`].
    pub schema: &'static str,
    /// The page written.
    pub path: PathBuf,
    /// The run folder.
    pub run_dir: PathBuf,
    /// Plots inlined (paths in the run folder).
    pub plots: Vec<String>,
    /// Front members listed.
    pub front: usize,
    /// Exported model folders linked.
    pub models: usize,
    /// Whether `qnas correlate`'s results are included.
    pub correlate: bool,
}

/// Why a report could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// The folder is not a run folder.
    #[error("{}: not a run folder (no space.ron); give the folder `qnas train` or `qnas run` wrote", path.display())]
    NotARun {
        /// The folder given.
        path: PathBuf,
    },
    /// A file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A results file is malformed.
    #[error("{}: {message}", path.display())]
    Malformed {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// An exported model folder could not be read.
    #[error(transparent)]
    Model(#[from] model_dir::ModelError),
    /// The page could not be written.
    #[error(transparent)]
    Write(#[from] search::fsio::IoError),
}

impl ReportError {
    /// Whether the user's input is at fault (a folder that is not a run, a malformed file).
    pub fn is_invalid_input(&self) -> bool {
        matches!(
            self,
            ReportError::NotARun { .. } | ReportError::Malformed { .. }
        ) || matches!(self, ReportError::Model(e) if e.is_invalid_input())
    }
}

/// Builds the report of `run_dir` and writes it atomically to `RUN/report.html`.
pub fn write_report(run_dir: &Path) -> Result<ReportSummary, ReportError> {
    let (page, summary) = render(run_dir)?;
    search::fsio::write_atomic(&summary.path, page.as_bytes())?;
    Ok(summary)
}

/// The report of `run_dir` as an HTML document, and what it holds (`path`: where
/// [`write_report`] puts it).
pub fn render(run_dir: &Path) -> Result<(String, ReportSummary), ReportError> {
    let run = RunDir::new(run_dir);
    let space_text = read_text(&run.space_file())?.ok_or_else(|| ReportError::NotARun {
        path: run_dir.to_path_buf(),
    })?;
    let config_text = read_text(&run.config_file())?;
    let train = run.read_summary().map_err(|e| ReportError::Malformed {
        path: run.summary_file(),
        message: e.to_string(),
    })?;
    let pareto_path = run.search_dir().join(search::driver::REPORT_FILE);
    let search: Option<search::SearchReport> = read_json(&pareto_path)?;
    let correlate_path = run.correlate_dir().join(crate::correlate::REPORT_FILE);
    let correlate: Option<serde_json::Value> = read_json(&correlate_path)?;
    let models = exported_models(&run.export_dir())?;

    let name = train
        .as_ref()
        .map(|t| t.space.clone())
        .or_else(|| space_name(&space_text))
        .unwrap_or_else(|| run_dir.display().to_string());
    let mut page = Page::new(&format!("qnas report: {name}"));
    page.para(&format!(
        "Run folder <code>{}</code>, made by qnas {} from the run's files; every accuracy is \
         measured on the validation split the search ranks on unless the table says otherwise, \
         with its 95% Clopper-Pearson interval.",
        escape(&run_dir.display().to_string()),
        env!("CARGO_PKG_VERSION")
    ));
    page.overview(
        train.as_ref(),
        search.as_ref(),
        models.len(),
        correlate.as_ref(),
    );

    let mut plots = Vec::new();
    for (file, heading, caption) in PLOTS {
        let path = run_dir.join(file);
        if let Some(svg) = read_text(&path)? {
            page.figure(heading, caption, file, &svg);
            plots.push((*file).to_string());
        }
    }
    if let Some(s) = &search {
        page.front_table(s, &models);
        page.baseline_table(s);
        page.policies(s);
        page.search_settings(s);
    } else {
        page.para("No search yet: run <code>qnas search</code> (or <code>qnas run</code>).");
    }
    page.models_table(&models);
    if let Some(t) = &train {
        page.training(t);
    }
    if let Some(c) = &correlate {
        page.correlate(c);
    }
    page.source("Space file", "space.ron", &space_text);
    if let Some(c) = &config_text {
        page.source("Settings with every default filled in", "config.json", c);
    }
    let summary = ReportSummary {
        schema: REPORT_SCHEMA,
        path: run_dir.join(REPORT_FILE),
        run_dir: run_dir.to_path_buf(),
        plots,
        front: search.as_ref().map_or(0, |s| s.front.len()),
        models: models.len(),
        correlate: correlate.is_some(),
    };
    Ok((page.finish(), summary))
}

/// An exported model folder: its name (relative to the run folder, for links) and its
/// `model.json`.
#[derive(Debug)]
pub(crate) struct Exported {
    pub(crate) link: String,
    pub(crate) info: ModelInfo,
}

/// The model folders under `export/`, by name.
fn exported_models(dir: &Path) -> Result<Vec<Exported>, ReportError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(ReportError::Read {
                path: dir.to_path_buf(),
                source,
            });
        }
    };
    let mut names: Vec<String> = entries
        .filter_map(Result::ok)
        .filter(|e| e.path().join(model_dir::INFO_FILE).is_file())
        .filter_map(|e| e.file_name().to_str().map(str::to_string))
        .filter(|n| !n.starts_with('.'))
        .collect();
    names.sort();
    names
        .into_iter()
        .map(|n| {
            let info = model_dir::read_info(&dir.join(&n))?;
            Ok(Exported {
                link: format!("export/{n}/"),
                info,
            })
        })
        .collect()
}

/// A file's text, or `None` when it does not exist.
fn read_text(path: &Path) -> Result<Option<String>, ReportError> {
    match std::fs::read_to_string(path) {
        Ok(t) => Ok(Some(t)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(ReportError::Read {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// A JSON file, or `None` when it does not exist.
fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<Option<T>, ReportError> {
    let Some(text) = read_text(path)? else {
        return Ok(None);
    };
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|e| ReportError::Malformed {
            path: path.to_path_buf(),
            message: e.to_string(),
        })
}

/// The `name: "..."` of a space file, without parsing the whole space.
fn space_name(text: &str) -> Option<String> {
    let rest = &text[text.find("name:")? + 5..];
    let start = rest.find('"')? + 1;
    let end = start + rest[start..].find('"')?;
    Some(rest[start..end].to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_folder_without_a_space_is_not_a_run() {
        let dir = std::env::temp_dir().join(format!("qnas-report-empty-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let e = render(&dir).unwrap_err();
        assert!(matches!(e, ReportError::NotARun { .. }), "{e}");
        assert!(e.is_invalid_input());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn space_name_is_read_from_the_file() {
        assert_eq!(
            space_name("// c\n(\n    name: \"mnist\",\n").as_deref(),
            Some("mnist")
        );
        assert_eq!(space_name("(stem: ())"), None);
    }
}
