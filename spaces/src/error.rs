//! Errors of the space language, carrying the file, line, column and source span of every
//! problem so that the binary can render them (miette) or print them as JSON. A diagnostic
//! carries an [`Excerpt`] of its file around the span, never the whole file, and the texts it
//! quotes from the file are shortened, so that it renders in short lines whatever the file.

use std::path::{Path, PathBuf};

use miette::{Diagnostic, SourceSpan};

use crate::locate::{FieldPath, Locator};
use crate::source::Excerpt;
pub use crate::source::line_col;

/// One semantic problem found while validating a parsed file, before spans are attached.
#[derive(Clone, Debug, PartialEq)]
pub struct Problem {
    /// The offending field.
    pub path: FieldPath,
    /// What is wrong.
    pub message: String,
    /// What was expected, or how to fix it.
    pub help: Option<String>,
}

impl Problem {
    /// A problem at `path`.
    pub fn new(path: FieldPath, message: impl Into<String>) -> Self {
        Problem {
            path,
            message: message.into(),
            help: None,
        }
    }

    /// Adds a hint.
    pub fn help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }
}

/// A problem located in a file.
#[derive(Debug, thiserror::Error, Diagnostic)]
#[error("{file}:{line}:{column}: {field}: {message}")]
#[diagnostic(code(qnas::space::invalid_field))]
pub struct FieldError {
    /// File name as given.
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// 1-based column (in characters).
    pub column: usize,
    /// The offending field, e.g. `stages[1].kernel[0]`.
    pub field: String,
    /// What is wrong.
    pub message: String,
    /// What was expected.
    #[help]
    pub help: Option<String>,
    #[source_code]
    src: Excerpt,
    #[label("{label}")]
    span: SourceSpan,
    label: String,
}

/// A syntax or schema error reported by the parser, with its position.
#[derive(Debug, thiserror::Error, Diagnostic)]
#[error("{file}:{line}:{column}: {message}")]
#[diagnostic(code(qnas::space::syntax))]
pub struct SyntaxError {
    /// File name as given.
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
    /// The parser's description, including what was expected.
    pub message: String,
    /// The offending text.
    pub token: String,
    #[source_code]
    pub(crate) src: Excerpt,
    #[label("{message}")]
    pub(crate) span: SourceSpan,
}

/// Errors of loading a space (or an architecture) file.
#[derive(Debug, thiserror::Error, Diagnostic)]
pub enum SpaceError {
    /// The file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    #[diagnostic(code(qnas::space::io))]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid RON (or JSON) for the schema.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Syntax(Box<SyntaxError>),
    /// The file parsed but describes an invalid space or arch.
    #[error("{file}: {} problem{} found", errors.len(), if errors.len() == 1 { "" } else { "s" })]
    #[diagnostic(code(qnas::space::invalid))]
    Invalid {
        /// File name as given.
        file: String,
        /// Every problem, in file order.
        #[related]
        errors: Vec<FieldError>,
    },
}

impl SpaceError {
    /// Locates `problems` in `src` (the RON text of `file`).
    pub fn invalid(file: &str, src: &str, mut problems: Vec<Problem>) -> SpaceError {
        let locator = Locator::new(src);
        let mut errors: Vec<(usize, FieldError)> = problems
            .drain(..)
            .map(|p| {
                let (offset, len) = locator.span(&p.path);
                let (line, column) = line_col(src, offset);
                let message = shorten(&p.message, MAX_MESSAGE);
                let (excerpt, span) = Excerpt::new(file, src, offset, len);
                (
                    offset,
                    FieldError {
                        file: file.to_string(),
                        line,
                        column,
                        field: shorten(&p.path.to_string(), MAX_QUOTE),
                        label: first_line(&message),
                        message,
                        help: p.help,
                        src: excerpt,
                        span,
                    },
                )
            })
            .collect();
        errors.sort_by_key(|(o, _)| *o);
        SpaceError::Invalid {
            file: file.to_string(),
            errors: errors.into_iter().map(|(_, e)| e).collect(),
        }
    }

    /// Wraps ron's spanned error.
    pub fn syntax(file: &str, src: &str, err: &ron::error::SpannedError) -> SpaceError {
        let mut start = offset_of(src, err.span.start.line, err.span.start.col);
        // ron's span may start at the whitespace before the offending token
        start += src[start..].len() - src[start..].trim_start().len();
        if start == src.len() {
            start = offset_of(src, err.span.start.line, err.span.start.col);
        }
        let mut end = offset_of(src, err.span.end.line, err.span.end.col).max(start);
        if end == start {
            end = next_token_end(src, start);
        }
        let (line, column) = line_col(src, start);
        let (excerpt, span) = Excerpt::new(file, src, start, end - start);
        SpaceError::Syntax(Box::new(SyntaxError {
            file: file.to_string(),
            line,
            column,
            message: shorten(&err.code.to_string(), MAX_MESSAGE),
            token: shorten(&src[start..end], MAX_QUOTE),
            src: excerpt,
            span,
        }))
    }

    /// Every located problem as plain records (for `--json` output and tests).
    pub fn records(&self) -> Vec<ErrorRecord> {
        match self {
            SpaceError::Io { path, source } => vec![ErrorRecord {
                file: path.display().to_string(),
                line: None,
                column: None,
                field: None,
                message: source.to_string(),
                help: None,
            }],
            SpaceError::Syntax(e) => vec![ErrorRecord {
                file: e.file.clone(),
                line: Some(e.line),
                column: Some(e.column),
                field: None,
                message: if e.token.is_empty() {
                    e.message.clone()
                } else {
                    format!("{} (at `{}`)", e.message, e.token)
                },
                help: None,
            }],
            SpaceError::Invalid { errors, .. } => errors
                .iter()
                .map(|e| ErrorRecord {
                    file: e.file.clone(),
                    line: Some(e.line),
                    column: Some(e.column),
                    field: Some(e.field.clone()),
                    message: e.message.clone(),
                    help: e.help.clone(),
                })
                .collect(),
        }
    }
}

/// Reads `path` as UTF-8 text; an unreadable file is [`SpaceError::Io`], bytes that are not
/// UTF-8 a [`SpaceError::Syntax`] at the first of them.
pub fn read_source(path: &Path) -> Result<String, SpaceError> {
    let bytes = std::fs::read(path).map_err(|source| SpaceError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    decode_source(bytes, &path.display().to_string())
}

/// `bytes` as text; bytes that are not UTF-8 are a syntax error of `file` located at the first
/// of them.
pub fn decode_source(bytes: impl Into<Vec<u8>>, file: &str) -> Result<String, SpaceError> {
    String::from_utf8(bytes.into()).map_err(|e| {
        let at = e.utf8_error().valid_up_to();
        let bytes = e.as_bytes();
        let bad = e.utf8_error().error_len().unwrap_or(bytes.len() - at);
        let shown: Vec<String> = bytes[at..at + bad]
            .iter()
            .map(|b| format!("0x{b:02x}"))
            .collect();
        // the valid prefix is the same text in the lossy form, so `at` is its offset there
        let text = String::from_utf8_lossy(bytes);
        let (line, column) = line_col(&text, at);
        let end = text[at..].chars().next().map_or(at, |c| at + c.len_utf8());
        let (src, span) = Excerpt::new(file, &text, at, end - at);
        SpaceError::Syntax(Box::new(SyntaxError {
            file: file.to_string(),
            line,
            column,
            message: format!("the file is not UTF-8 text (byte {})", shown.join(" ")),
            token: String::new(),
            src,
            span,
        }))
    })
}

/// A located problem as plain data: the `--json` error schema.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct ErrorRecord {
    /// File name.
    pub file: String,
    /// 1-based line, when known.
    pub line: Option<usize>,
    /// 1-based column, when known.
    pub column: Option<usize>,
    /// The offending field, for semantic errors.
    pub field: Option<String>,
    /// What is wrong.
    pub message: String,
    /// What was expected.
    pub help: Option<String>,
}

/// Characters kept of a message.
const MAX_MESSAGE: usize = 600;
/// Characters kept of a token or a field path quoted from the file.
const MAX_QUOTE: usize = 120;

/// `s` cut to `max` characters, the cut marked by an ellipsis.
pub(crate) fn shorten(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((at, _)) => format!("{}… ({} characters in all)", &s[..at], s.chars().count()),
        None => s.to_string(),
    }
}

fn first_line(s: &str) -> String {
    s.lines().next().unwrap_or("").to_string()
}

/// Byte offset of a 1-based (line, column in characters) position.
fn offset_of(src: &str, line: usize, col: usize) -> usize {
    let mut offset = 0;
    for (i, l) in src.split_inclusive('\n').enumerate() {
        if i + 1 == line {
            let in_line: usize = l
                .chars()
                .take(col.saturating_sub(1))
                .map(char::len_utf8)
                .sum();
            return offset + in_line;
        }
        offset += l.len();
    }
    src.len()
}

fn next_token_end(src: &str, start: usize) -> usize {
    let rest = &src[start..];
    let n = rest
        .char_indices()
        .find(|(_, c)| c.is_whitespace() || matches!(c, ',' | ')' | ']' | '}' | '(' | '[' | ':'))
        .map_or(rest.len(), |(i, _)| i);
    start + n.max(rest.chars().next().map_or(0, char::len_utf8))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_that_are_not_utf8_are_located() {
        let err = decode_source(b"(\n  ab\xffc\n)".to_vec(), "bad.ron").unwrap_err();
        let r = &err.records()[0];
        assert_eq!((r.line, r.column), (Some(2), Some(5)));
        assert!(r.message.contains("0xff"), "{}", r.message);
        assert_eq!(decode_source(b"(ok)".to_vec(), "ok.ron").unwrap(), "(ok)");
        // a file cut inside a character
        let err = decode_source("(é".as_bytes()[..2].to_vec(), "cut.ron").unwrap_err();
        assert_eq!(err.records()[0].column, Some(2));
    }
}
