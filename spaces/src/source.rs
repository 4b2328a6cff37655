//! The text of a space or arch file as diagnostics see it: [`Excerpt`], the trimmed window of
//! the file that a diagnostic carries, so that a renderer never receives a megabyte line while
//! its spans, line numbers and columns stay those of the whole file; and [`line_col`].

use miette::{MietteError, MietteSpanContents, SourceCode, SourceSpan, SpanContents};

/// Bytes of a line kept on each side of a span.
const SIDE: usize = 160;
/// Bytes of a span kept (a longer span is shortened to its start).
const MAX_SPAN: usize = 240;
/// Whole lines kept before and after the span's lines (miette shows one by default).
const CONTEXT_LINES: usize = 2;
/// Marks text left out at either end of an excerpt.
const ELLIPSIS: &str = "…";

/// A window of a file around one span: whole lines where they are short, cut to [`SIDE`] bytes
/// on either side of the span (marked by an ellipsis) where they are long. Read as a miette
/// [`SourceCode`], it reports the line and column numbers of the whole file.
#[derive(Clone, Debug)]
pub struct Excerpt {
    name: String,
    text: String,
    /// 0-based line of the file that the excerpt's first line is.
    first_line: usize,
    /// Characters of that line left out before the excerpt's first character.
    first_column: usize,
}

impl Excerpt {
    /// The excerpt of `src` (the text of `file`) around the `len` bytes at `offset`, and that
    /// span within it.
    pub fn new(file: &str, src: &str, offset: usize, len: usize) -> (Excerpt, SourceSpan) {
        let offset = floor_char(src, offset.min(src.len()));
        let end = floor_char(src, (offset + len.min(MAX_SPAN)).min(src.len()));
        // whole lines around the span, then cut to SIDE bytes beyond it on each side
        let mut lo = line_start(src, offset);
        for _ in 0..CONTEXT_LINES {
            if lo == 0 {
                break;
            }
            lo = line_start(src, lo - 1);
        }
        let mut hi = line_end(src, end);
        for _ in 0..CONTEXT_LINES {
            if hi == src.len() {
                break;
            }
            hi = line_end(src, hi + 1);
        }
        let lo = ceil_char(src, lo.max(offset.saturating_sub(SIDE)));
        let hi = floor_char(src, hi.min(end + SIDE));
        let cut_before = lo > 0 && !src[..lo].ends_with('\n');
        let cut_after = hi < src.len() && !src[hi..].starts_with(['\n', '\r']);
        let mut text = String::with_capacity(hi - lo + 2 * ELLIPSIS.len());
        let (first_line, column) = line_col(src, lo);
        let mut first_column = column - 1;
        if cut_before {
            text.push_str(ELLIPSIS);
            // the ellipsis stands in the column of the last character left out
            first_column -= 1;
        }
        let shift = text.len();
        text.push_str(&src[lo..hi]);
        if cut_after {
            text.push_str(ELLIPSIS);
        }
        let span = (offset - lo + shift, end - offset).into();
        let excerpt = Excerpt {
            name: file.to_string(),
            text,
            first_line: first_line - 1,
            first_column,
        };
        (excerpt, span)
    }

    /// The excerpt's text.
    pub fn text(&self) -> &str {
        &self.text
    }
}

impl SourceCode for Excerpt {
    fn read_span<'a>(
        &'a self,
        span: &SourceSpan,
        context_lines_before: usize,
        context_lines_after: usize,
    ) -> Result<Box<dyn SpanContents<'a> + 'a>, MietteError> {
        let inner = self
            .text
            .read_span(span, context_lines_before, context_lines_after)?;
        let start = floor_char(&self.text, inner.span().offset().min(self.text.len()));
        let line_begin = line_start(&self.text, start);
        let mut column = self.text[line_begin..start].chars().count();
        if line_begin == 0 {
            column += self.first_column;
        }
        Ok(Box::new(MietteSpanContents::new_named(
            self.name.clone(),
            inner.data(),
            *inner.span(),
            inner.line() + self.first_line,
            column,
            inner.line_count(),
        )))
    }
}

/// 1-based (line, column in characters) of a byte offset.
pub fn line_col(src: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(src.len());
    let before = &src[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, src[line_start..offset].chars().count() + 1)
}

/// Start of the line holding byte `at`.
fn line_start(src: &str, at: usize) -> usize {
    src[..at].rfind('\n').map_or(0, |i| i + 1)
}

/// End of the line holding byte `at` (its `\n`, or the end of the text).
fn line_end(src: &str, at: usize) -> usize {
    src[at..].find('\n').map_or(src.len(), |i| at + i)
}

/// The largest character boundary at or before `at`.
fn floor_char(src: &str, mut at: usize) -> usize {
    while !src.is_char_boundary(at) {
        at -= 1;
    }
    at
}

/// The smallest character boundary at or after `at`.
fn ceil_char(src: &str, mut at: usize) -> usize {
    while !src.is_char_boundary(at) {
        at += 1;
    }
    at
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_files_are_kept_whole_around_the_span() {
        let src = "a\nbb\nccc\ndddd\neeeee\nf\n";
        let at = src.find("ccc").unwrap();
        let (ex, span) = Excerpt::new("f.ron", src, at, 3);
        assert_eq!(ex.text(), "a\nbb\nccc\ndddd\neeeee");
        assert_eq!(&ex.text()[span.offset()..span.offset() + span.len()], "ccc");
        let contents = ex.read_span(&span, 0, 0).unwrap();
        assert_eq!((contents.line(), contents.column()), (2, 0));
        assert_eq!(contents.name(), Some("f.ron"));
    }

    #[test]
    fn long_lines_are_cut_around_the_span_keeping_file_positions() {
        let src = format!(
            "x\n{}é{}bad{}\ny",
            " ".repeat(5_000),
            "a".repeat(3_000),
            "z".repeat(9_000)
        );
        let at = src.find("bad").unwrap();
        let (ex, span) = Excerpt::new("f.ron", &src, at, 3);
        assert!(
            ex.text().len() <= 2 * SIDE + 3 + 2 * ELLIPSIS.len(),
            "{}",
            ex.text().len()
        );
        assert!(ex.text().starts_with(ELLIPSIS) && ex.text().ends_with(ELLIPSIS));
        assert_eq!(&ex.text()[span.offset()..span.offset() + span.len()], "bad");
        let contents = ex.read_span(&span, 0, 0).unwrap();
        let (line, column) = line_col(&src, at);
        assert_eq!((contents.line() + 1, contents.column() + 1), (line, column));
        assert_eq!((line, column), (2, 5_000 + 1 + 3_000 + 1));
    }

    #[test]
    fn spans_are_cut_at_character_boundaries() {
        let src = "é".repeat(400);
        for (at, len) in [(1, 1), (3, 500), (799, 9), (800, 0)] {
            let (ex, span) = Excerpt::new("f.ron", &src, at, len);
            assert!(ex.text().is_char_boundary(span.offset()));
            assert!(ex.text().is_char_boundary(span.offset() + span.len()));
            assert!(span.len() <= MAX_SPAN);
        }
    }
}
