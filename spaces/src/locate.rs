//! Finding where a value sits in a RON source text.
//!
//! `ron` reports syntax errors with a position, but a successfully parsed value carries no spans.
//! Semantic errors are found on the parsed value and name the offending field by a
//! [`FieldPath`]; [`Locator`] maps such a path back to a byte range of the source by walking a
//! light-weight syntax tree of the (already known to be valid) RON text.

use std::fmt;

/// One step of a path into a RON value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Seg {
    /// A named field of a struct.
    Field(String),
    /// An element of a list or tuple.
    Index(usize),
    /// The value of a map entry with this string key.
    Key(String),
}

/// A path from the root of a file to one value, e.g. `stages[1].kernel[0]`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FieldPath(pub Vec<Seg>);

impl FieldPath {
    /// The root.
    pub fn root() -> Self {
        FieldPath(Vec::new())
    }

    /// This path extended by a field.
    pub fn field(&self, name: &str) -> Self {
        let mut p = self.clone();
        p.0.push(Seg::Field(name.to_string()));
        p
    }

    /// This path extended by an index.
    pub fn index(&self, i: usize) -> Self {
        let mut p = self.clone();
        p.0.push(Seg::Index(i));
        p
    }

    /// This path extended by a map key.
    pub fn key(&self, k: &str) -> Self {
        let mut p = self.clone();
        p.0.push(Seg::Key(k.to_string()));
        p
    }
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("(file)");
        }
        for (i, seg) in self.0.iter().enumerate() {
            match seg {
                Seg::Field(name) if i == 0 => write!(f, "{name}")?,
                Seg::Field(name) => write!(f, ".{name}")?,
                Seg::Index(idx) => write!(f, "[{idx}]")?,
                Seg::Key(k) => write!(f, "[{k:?}]")?,
            }
        }
        Ok(())
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Tok {
    Ident,
    Str,
    Other,
    Open(u8),
    Close(u8),
    Comma,
    Colon,
}

#[derive(Debug)]
struct Token {
    kind: Tok,
    start: usize,
    end: usize,
}

#[derive(Debug)]
enum Kind {
    Leaf,
    /// `Name(a: 1, b: 2)` or `(a: 1)`.
    Fields(Vec<(String, Node)>),
    /// `[1, 2]`, `(1, 2)`, `Name(1)`.
    Seq {
        tag: Option<String>,
        items: Vec<Node>,
    },
    /// `{ "k": v }`.
    Map(Vec<(Option<String>, Node)>),
}

#[derive(Debug)]
struct Node {
    start: usize,
    end: usize,
    kind: Kind,
}

/// Maps [`FieldPath`]s to byte ranges of a RON source.
#[derive(Debug)]
pub struct Locator {
    root: Option<Node>,
    len: usize,
}

impl Locator {
    /// Builds the syntax tree of `src`. Text that is not valid RON gives a locator that answers
    /// every query with the start of the file.
    pub fn new(src: &str) -> Self {
        let tokens = lex(src);
        let mut p = Parser {
            src,
            tokens: &tokens,
            pos: 0,
        };
        p.skip_attributes();
        let root = p.value();
        Locator {
            root,
            len: src.len(),
        }
    }

    /// The byte range `(offset, length)` of the value at `path`, or of its nearest ancestor that
    /// exists in the text (a field left to its default is not in the text).
    pub fn span(&self, path: &FieldPath) -> (usize, usize) {
        let Some(mut node) = self.root.as_ref() else {
            return (0, self.len.min(1));
        };
        for seg in &path.0 {
            match step(node, seg) {
                Some(next) => node = next,
                None => break,
            }
        }
        (node.start, node.end - node.start)
    }
}

fn step<'a>(node: &'a Node, seg: &Seg) -> Option<&'a Node> {
    // `Some(x)` and newtype variants such as `List([...])` are transparent.
    if let Kind::Seq {
        tag: Some(_),
        items,
    } = &node.kind
        && items.len() == 1
        && !matches!(items[0].kind, Kind::Leaf)
        && let Some(found) = step(&items[0], seg)
    {
        return Some(found);
    }
    match (&node.kind, seg) {
        (Kind::Fields(fields), Seg::Field(name)) => {
            fields.iter().find(|(n, _)| n == name).map(|(_, v)| v)
        }
        (Kind::Seq { items, .. }, Seg::Index(i)) => items.get(*i),
        (Kind::Map(entries), Seg::Key(k)) => entries
            .iter()
            .find(|(key, _)| key.as_deref() == Some(k))
            .map(|(_, v)| v),
        _ => None,
    }
}

fn lex(src: &str) -> Vec<Token> {
    let b = src.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        let start = i;
        match c {
            b' ' | b'\t' | b'\r' | b'\n' => i += 1,
            b'/' if b.get(i + 1) == Some(&b'/') => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                let mut depth = 0usize;
                while i < b.len() {
                    if b[i] == b'/' && b.get(i + 1) == Some(&b'*') {
                        depth += 1;
                        i += 2;
                    } else if b[i] == b'*' && b.get(i + 1) == Some(&b'/') {
                        depth -= 1;
                        i += 2;
                        if depth == 0 {
                            break;
                        }
                    } else {
                        i += 1;
                    }
                }
            }
            b'"' => {
                i += 1;
                while i < b.len() && b[i] != b'"' {
                    i += if b[i] == b'\\' { 2 } else { 1 };
                }
                i = (i + 1).min(b.len());
                out.push(Token {
                    kind: Tok::Str,
                    start,
                    end: i,
                });
            }
            b'r' if matches!(b.get(i + 1), Some(b'"') | Some(b'#'))
                && raw_string_end(b, i).is_some() =>
            {
                i = raw_string_end(b, i).unwrap_or(b.len());
                out.push(Token {
                    kind: Tok::Str,
                    start,
                    end: i,
                });
            }
            b'\'' => {
                i += 1;
                while i < b.len() && b[i] != b'\'' {
                    i += if b[i] == b'\\' { 2 } else { 1 };
                }
                i = (i + 1).min(b.len());
                out.push(Token {
                    kind: Tok::Other,
                    start,
                    end: i,
                });
            }
            b'(' | b'[' | b'{' => {
                i += 1;
                out.push(Token {
                    kind: Tok::Open(c),
                    start,
                    end: i,
                });
            }
            b')' | b']' | b'}' => {
                i += 1;
                out.push(Token {
                    kind: Tok::Close(c),
                    start,
                    end: i,
                });
            }
            b',' => {
                i += 1;
                out.push(Token {
                    kind: Tok::Comma,
                    start,
                    end: i,
                });
            }
            b':' => {
                i += 1;
                out.push(Token {
                    kind: Tok::Colon,
                    start,
                    end: i,
                });
            }
            c if c.is_ascii_alphabetic() || c == b'_' => {
                if c == b'r' && b.get(i + 1) == Some(&b'#') {
                    i += 2;
                }
                while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
                    i += 1;
                }
                out.push(Token {
                    kind: Tok::Ident,
                    start,
                    end: i,
                });
            }
            _ => {
                // numbers, signs, `#`, `!`, non-ASCII: one opaque token up to a delimiter
                i += 1;
                while i < b.len()
                    && !matches!(
                        b[i],
                        b' ' | b'\t'
                            | b'\r'
                            | b'\n'
                            | b','
                            | b':'
                            | b'('
                            | b')'
                            | b'['
                            | b']'
                            | b'{'
                            | b'}'
                            | b'"'
                    )
                {
                    i += 1;
                }
                out.push(Token {
                    kind: Tok::Other,
                    start,
                    end: i,
                });
            }
        }
    }
    out
}

fn raw_string_end(b: &[u8], start: usize) -> Option<usize> {
    let mut i = start + 1;
    let mut hashes = 0;
    while b.get(i) == Some(&b'#') {
        hashes += 1;
        i += 1;
    }
    if b.get(i) != Some(&b'"') {
        return None;
    }
    i += 1;
    while i < b.len() {
        if b[i] == b'"' && (0..hashes).all(|h| b.get(i + 1 + h) == Some(&b'#')) {
            return Some(i + 1 + hashes);
        }
        i += 1;
    }
    Some(b.len())
}

struct Parser<'a> {
    src: &'a str,
    tokens: &'a [Token],
    pos: usize,
}

impl<'a> Parser<'a> {
    fn peek(&self, k: usize) -> Option<&'a Token> {
        self.tokens.get(self.pos + k)
    }

    fn text(&self, t: &Token) -> String {
        self.src[t.start..t.end].to_string()
    }

    /// Skips `#![enable(...)]` attributes.
    fn skip_attributes(&mut self) {
        while let Some(t) = self.peek(0) {
            if t.kind == Tok::Other && self.src[t.start..t.end].starts_with('#') {
                self.pos += 1;
                if matches!(
                    self.peek(0),
                    Some(Token {
                        kind: Tok::Open(b'['),
                        ..
                    })
                ) {
                    self.skip_group();
                }
            } else {
                break;
            }
        }
    }

    fn skip_group(&mut self) {
        let mut depth = 0usize;
        while let Some(t) = self.peek(0) {
            self.pos += 1;
            match t.kind {
                Tok::Open(_) => depth += 1,
                Tok::Close(_) => {
                    depth = depth.saturating_sub(1);
                    if depth == 0 {
                        return;
                    }
                }
                _ => {}
            }
        }
    }

    fn value(&mut self) -> Option<Node> {
        let t = self.peek(0)?;
        let start = t.start;
        match t.kind {
            Tok::Ident => {
                let tag = self.text(t);
                self.pos += 1;
                if let Some(Token {
                    kind: Tok::Open(b'('),
                    ..
                }) = self.peek(0)
                {
                    let mut node = self.parens(Some(tag))?;
                    node.start = start;
                    Some(node)
                } else {
                    Some(Node {
                        start,
                        end: t.end,
                        kind: Kind::Leaf,
                    })
                }
            }
            Tok::Open(b'(') => self.parens(None),
            Tok::Open(b'[') => {
                self.pos += 1;
                let mut items = Vec::new();
                loop {
                    match self.peek(0) {
                        None => return None,
                        Some(Token {
                            kind: Tok::Close(_),
                            end,
                            ..
                        }) => {
                            let end = *end;
                            self.pos += 1;
                            return Some(Node {
                                start,
                                end,
                                kind: Kind::Seq { tag: None, items },
                            });
                        }
                        Some(Token {
                            kind: Tok::Comma, ..
                        }) => self.pos += 1,
                        Some(_) => items.push(self.value()?),
                    }
                }
            }
            Tok::Open(_) => {
                self.pos += 1;
                let mut entries = Vec::new();
                loop {
                    match self.peek(0) {
                        None => return None,
                        Some(Token {
                            kind: Tok::Close(_),
                            end,
                            ..
                        }) => {
                            let end = *end;
                            self.pos += 1;
                            return Some(Node {
                                start,
                                end,
                                kind: Kind::Map(entries),
                            });
                        }
                        Some(Token {
                            kind: Tok::Comma, ..
                        }) => self.pos += 1,
                        Some(k) => {
                            let key = (k.kind == Tok::Str).then(|| {
                                let raw = self.text(k);
                                raw.trim_start_matches('r')
                                    .trim_matches('#')
                                    .trim_matches('"')
                                    .to_string()
                            });
                            self.value()?;
                            if let Some(Token {
                                kind: Tok::Colon, ..
                            }) = self.peek(0)
                            {
                                self.pos += 1;
                            }
                            entries.push((key, self.value()?));
                        }
                    }
                }
            }
            Tok::Str | Tok::Other => {
                self.pos += 1;
                Some(Node {
                    start,
                    end: t.end,
                    kind: Kind::Leaf,
                })
            }
            Tok::Close(_) | Tok::Comma | Tok::Colon => None,
        }
    }

    /// `( ... )` after an optional tag; the opening paren is the current token.
    fn parens(&mut self, tag: Option<String>) -> Option<Node> {
        let start = self.peek(0)?.start;
        self.pos += 1;
        let named = matches!(
            (self.peek(0), self.peek(1)),
            (
                Some(Token {
                    kind: Tok::Ident,
                    ..
                }),
                Some(Token {
                    kind: Tok::Colon,
                    ..
                })
            )
        );
        let mut fields = Vec::new();
        let mut items = Vec::new();
        loop {
            match self.peek(0) {
                None => return None,
                Some(Token {
                    kind: Tok::Close(_),
                    end,
                    ..
                }) => {
                    let end = *end;
                    self.pos += 1;
                    let kind = if named {
                        Kind::Fields(fields)
                    } else {
                        Kind::Seq { tag, items }
                    };
                    return Some(Node { start, end, kind });
                }
                Some(Token {
                    kind: Tok::Comma, ..
                }) => self.pos += 1,
                Some(t) if named && t.kind == Tok::Ident => {
                    let name = self.text(t);
                    self.pos += 1;
                    if let Some(Token {
                        kind: Tok::Colon, ..
                    }) = self.peek(0)
                    {
                        self.pos += 1;
                    }
                    fields.push((name, self.value()?));
                }
                Some(_) => items.push(self.value()?),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at<'a>(src: &'a str, path: &FieldPath) -> &'a str {
        let (o, l) = Locator::new(src).span(path);
        &src[o..o + l]
    }

    #[test]
    fn finds_nested_fields_and_elements() {
        let src = r#"// comment (with parens)
#![enable(implicit_some)]
(
    version: 1,
    stem: (width: [8, 16], kernel: [3]),
    stages: [
        (block: ResidualBasic, depth: [1, 2], width: [4], /* [x] */ kernel: [3, 4]),
    ],
    quantization: (weights: [Int(8), Float(e: 3, m: 4)], pins: [(layer: Named("s0.b0.conv1"))]),
    downsampling: Some((configs: List([[1, 2], [3]]))),
    map: {"a": 1, "b": [2, 3]},
)"#;
        let root = FieldPath::root();
        assert_eq!(at(src, &root.field("version")), "1");
        assert_eq!(at(src, &root.field("stem").field("width").index(1)), "16");
        assert_eq!(
            at(src, &root.field("stages").index(0).field("kernel").index(1)),
            "4"
        );
        assert_eq!(
            at(src, &root.field("quantization").field("weights").index(1)),
            "Float(e: 3, m: 4)"
        );
        assert_eq!(
            at(
                src,
                &root
                    .field("quantization")
                    .field("weights")
                    .index(1)
                    .field("e")
            ),
            "3"
        );
        assert_eq!(
            at(
                src,
                &root
                    .field("downsampling")
                    .field("configs")
                    .index(1)
                    .index(0)
            ),
            "3"
        );
        assert_eq!(at(src, &root.field("map").key("b").index(1)), "3");
        assert_eq!(
            at(
                src,
                &root
                    .field("quantization")
                    .field("pins")
                    .index(0)
                    .field("layer")
            ),
            "Named(\"s0.b0.conv1\")"
        );
        // a missing field falls back to its parent
        assert_eq!(
            at(src, &root.field("stem").field("stride")),
            "(width: [8, 16], kernel: [3])"
        );
    }

    #[test]
    fn paths_display_like_code() {
        let p = FieldPath::root()
            .field("stages")
            .index(2)
            .field("kernel")
            .index(0);
        assert_eq!(p.to_string(), "stages[2].kernel[0]");
    }
}
