//! Test support of the loader fuzz tests: seeded mutations of bytes, the number of cases, and
//! the checks every error must pass (it names the file, its line and column lie inside the
//! file, and it renders through miette's graphical handler in bounded lines).

use spaces::{Rng, SpaceError};

/// Cases of a test: `QNAS_FUZZ_CASES` when set, else `default`.
pub fn cases(default: usize) -> usize {
    std::env::var("QNAS_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Tokens inserted or written over: RON punctuation, keywords of the space language, numbers
/// at the limits of every integer and float type, escapes, comments, multi-byte characters and
/// bytes that are not UTF-8.
const TOKENS: &[&[u8]] = &[
    b"(",
    b")",
    b"[",
    b"]",
    b"{",
    b"}",
    b",",
    b":",
    b"\"",
    b"'",
    b"\n",
    b"\r",
    b"\r\n",
    b"\t",
    b" ",
    b"//",
    b"/*",
    b"*/",
    b"#![enable(implicit_some)]",
    b"Some(",
    b"None",
    b"true",
    b"false",
    b"Int(",
    b"E4M3",
    b"Fp32",
    b"Float(exponent: 8, mantissa: 23)",
    b"version: 1,",
    b"depth: [",
    b"width: [",
    b"stride: ",
    b"kernel: [",
    b"expand: [",
    b"tie: Layer,",
    b"0",
    b"-0",
    b"1",
    b"-1",
    b"255",
    b"256",
    b"65535",
    b"65536",
    b"2147483647",
    b"2147483648",
    b"4294967295",
    b"4294967296",
    b"-2147483649",
    b"9223372036854775807",
    b"18446744073709551615",
    b"18446744073709551616",
    b"340282366920938463463374607431768211456",
    b"1e308",
    b"1e309",
    b"-1e309",
    b"5e-324",
    b"1e-400",
    b"0.0",
    b"-0.0",
    b"NaN",
    b"inf",
    b"-inf",
    b"0x",
    b"0xFFFFFFFFFFFFFFFFFF",
    b"0b",
    b"1_000",
    b"1.",
    b".5",
    b"1e",
    b"+1",
    b"\"\\u{0}\"",
    b"\"\\u{110000}\"",
    b"\"\\",
    b"r#\"",
    b"\"#",
    b"b\"\\xff\"",
    b"\xc3\xa9",
    b"\xe2\x82\xac",
    b"\xf0\x9f\x98\x80",
    b"\xff",
    b"\xc3",
    b"\xe2\x82",
    b"\xed\xa0\x80",
    b"\xf4\x90\x80\x80",
    b"\x00",
    b"\x7f",
    b"\xef\xbb\xbf",
];

/// Numbers written over the numbers of a file.
const LIMITS: &[&str] = &[
    "0",
    "-1",
    "1",
    "2",
    "3",
    "7",
    "4294967295",
    "4294967296",
    "18446744073709551615",
    "99999999999999999999999",
    "1e308",
    "1e309",
    "-1e309",
    "1e-320",
    "0.5",
    "-0.0",
    "NaN",
    "inf",
];

/// Seeded edits of a byte string.
#[derive(Debug)]
pub struct Mutator {
    rng: Rng,
}

impl Mutator {
    /// A mutator drawing from `rng`.
    pub fn new(rng: Rng) -> Self {
        Mutator { rng }
    }

    /// Uniform in `lo..=hi`.
    fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + self.rng.below(hi - lo + 1)
    }

    /// `seed` after one to four random edits.
    pub fn mutate(&mut self, seed: &[u8]) -> Vec<u8> {
        let mut b = seed.to_vec();
        let edits = self.range(1, 4);
        for _ in 0..edits {
            self.edit(&mut b);
        }
        b
    }

    fn edit(&mut self, b: &mut Vec<u8>) {
        let at = self.rng.below(b.len() + 1);
        match self.rng.below(100) {
            // a byte replaced by any byte
            0..=14 => {
                if at < b.len() {
                    b[at] = self.rng.next_u64() as u8;
                }
            }
            // a token inserted
            15..=34 => {
                let t = TOKENS[self.rng.below(TOKENS.len())];
                b.splice(at..at, t.iter().copied());
            }
            // a token written over the bytes at `at`
            35..=44 => {
                let t = TOKENS[self.rng.below(TOKENS.len())];
                let end = (at + t.len()).min(b.len());
                b.splice(at..end, t.iter().copied());
            }
            // a range deleted
            45..=59 => {
                let end = (at + self.range(1, 24)).min(b.len());
                b.drain(at..end);
            }
            // a range copied elsewhere
            60..=69 => {
                let end = (at + self.range(1, 80)).min(b.len());
                let piece = b[at..end].to_vec();
                let to = self.rng.below(b.len() + 1);
                b.splice(to..to, piece);
            }
            // truncated (possibly inside a multi-byte character)
            70..=74 => b.truncate(at),
            // a number replaced by a limit
            75..=89 => self.number(b),
            // a word (a field name, a variant) replaced by another word of the file
            90..=94 => self.word(b),
            // a long run: whitespace, a word, a comment or nesting
            95..=97 => {
                let n = self.range(1_000, 70_000);
                let run: Vec<u8> = match self.rng.below(4) {
                    0 => vec![b' '; n],
                    1 => vec![b'a'; n],
                    2 => [b"/*".as_slice(), &vec![b'x'; n], b"*/"].concat(),
                    _ => [b"[".repeat(n / 100), b"]".repeat(n / 100)].concat(),
                };
                b.splice(at..at, run);
            }
            // deep nesting, unbalanced
            _ => {
                let n = self.range(100, 3_000);
                let open = if self.rng.chance(0.5) { b"(" } else { b"[" };
                b.splice(at..at, open.repeat(n));
            }
        }
    }

    fn number(&mut self, b: &mut Vec<u8>) {
        let starts: Vec<usize> = (0..b.len())
            .filter(|&i| b[i].is_ascii_digit() && (i == 0 || !b[i - 1].is_ascii_alphanumeric()))
            .collect();
        if starts.is_empty() {
            return;
        }
        let s = starts[self.rng.below(starts.len())];
        let e = (s..b.len())
            .find(|&i| !matches!(b[i], b'0'..=b'9' | b'.' | b'e' | b'-' | b'_'))
            .unwrap_or(b.len());
        let v = LIMITS[self.rng.below(LIMITS.len())];
        b.splice(s..e, v.bytes());
    }

    fn word(&mut self, b: &mut Vec<u8>) {
        let words: Vec<(usize, usize)> = {
            let mut w = Vec::new();
            let mut i = 0;
            while i < b.len() {
                if b[i].is_ascii_alphabetic() {
                    let s = i;
                    while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
                        i += 1;
                    }
                    w.push((s, i));
                } else {
                    i += 1;
                }
            }
            w
        };
        if words.len() < 2 {
            return;
        }
        let (fs, fe) = words[self.rng.below(words.len())];
        let (ts, te) = words[self.rng.below(words.len())];
        let word = b[fs..fe].to_vec();
        b.splice(ts..te, word);
    }
}

/// The longest line a rendered diagnostic may have, whatever the lines of its file.
pub const MAX_RENDERED_LINE: usize = 2_000;

/// `e` rendered by miette's graphical handler (unicode, no colour).
pub fn render(e: &SpaceError) -> String {
    let mut out = String::new();
    miette::GraphicalReportHandler::new_themed(miette::GraphicalTheme::unicode_nocolor())
        .render_report(&mut out, e)
        .expect("a diagnostic renders");
    out
}

/// Checks an error of loading `bytes` as `file`: every record names the file; syntax and
/// semantic errors have a line and column inside the file; it renders in bounded lines that
/// name the file. `what` names the case in failures.
pub fn check_error(e: &SpaceError, file: &str, bytes: &[u8], what: &str) {
    let records = e.records();
    assert!(!records.is_empty(), "{what}: no records");
    assert!(
        e.to_string().contains(file),
        "{what}: `{e}` does not name {file}"
    );
    let text = String::from_utf8_lossy(bytes);
    let lines: Vec<&str> = text.split('\n').collect();
    for r in &records {
        assert_eq!(r.file, file, "{what}: {r:?}");
        if matches!(e, SpaceError::Io { .. }) {
            continue;
        }
        let (Some(line), Some(column)) = (r.line, r.column) else {
            panic!("{what}: not located: {r:?}");
        };
        assert!(
            line >= 1 && line <= lines.len(),
            "{what}: line {line} of {}: {r:?}",
            lines.len()
        );
        let width = lines[line - 1].chars().count();
        assert!(
            column >= 1 && column <= width + 1,
            "{what}: column {column} of a line of {width}: {r:?}"
        );
    }
    let rendered = render(e);
    assert!(
        rendered.contains(file),
        "{what}: rendered without the file:\n{rendered}"
    );
    let longest = rendered
        .lines()
        .map(|l| l.chars().count())
        .max()
        .unwrap_or(0);
    assert!(
        longest <= MAX_RENDERED_LINE,
        "{what}: a rendered line of {longest} characters"
    );
}
