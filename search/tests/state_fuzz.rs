//! Mutation tests of a saved search (`OUT/study.db`): real studies, saved by searches over a
//! table of known accuracies, edited at random (the JSON of the study's state, settings and
//! rows: values replaced, removed and added, bytes edited, truncations, bytes that are not
//! UTF-8; and bytes of the database file itself), must each be read by `saved_rows` and
//! resumed by `search`, or give an error that names the study's file; never a panic.
//!
//! Every input comes from a fixed seed; a failure names its case. `QNAS_FUZZ_CASES=N` runs `N`
//! cases instead of the default (a longer campaign:
//! `QNAS_FUZZ_CASES=100000 cargo test --release -p qnas-search --test state_fuzz`).

#[path = "../../spaces/tests/mutate/json.rs"]
mod json_mutate;

use std::path::{Path, PathBuf};

use json_mutate::{Limits, edit_bytes, edit_value};

use search::driver::{EvaluationError, Evaluator, STUDY_FILE, SearchSetup, saved_rows};
use search::settings::{Overrides, Settings, settings};
use search::{Row, SearchError, SearchProgress, search};
use serde_json::Value;
use spaces::{Arch, Rng, SearchStrategy, Space};
use stats::Accuracy;

/// The largest strings and deepest nesting the JSON mutations make.
const LIMITS: Limits = Limits {
    string: 100_000,
    depth: 3_000,
};

fn space() -> Space {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    Space::load(&root.join("spaces/presets/digits.ron")).expect("the digits preset loads")
}

/// Accuracy grows with BitOps, out of 100 images.
struct Table<'a> {
    space: &'a Space,
    fail_after: Option<usize>,
    asked: usize,
}

impl Evaluator for Table<'_> {
    fn evaluate(&mut self, archs: &[Arch]) -> Result<Vec<Accuracy>, EvaluationError> {
        let mut out = Vec::new();
        for a in archs {
            if self.fail_after.is_some_and(|n| self.asked >= n) {
                return Err(EvaluationError {
                    arch: a.clone(),
                    message: "interrupted".into(),
                });
            }
            self.asked += 1;
            let cost = self.space.cost(a).map_err(|e| EvaluationError {
                arch: a.clone(),
                message: e.to_string(),
            })?;
            let correct = (cost.bitops as f64).log2().clamp(0.0, 100.0) as usize;
            out.push(Accuracy {
                correct,
                total: 100,
            });
        }
        Ok(out)
    }
}

struct Quiet;

impl SearchProgress for Quiet {
    fn evaluated(&mut self, _: usize, _: usize, _: &Row) {}
    fn note(&mut self, _: &str) {}
}

fn settings_of(space: &Space, strategy: SearchStrategy) -> Settings {
    let over = Overrides {
        strategy: Some(strategy),
        budget: Some(8),
        seed: Some(5),
        ..Overrides::default()
    };
    settings(space, &over).unwrap()
}

fn dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("qnas-state-fuzz-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// The study files of searches interrupted after `fail_after` evaluations and of finished
/// ones, with the settings they were saved with.
fn saved_states(space: &Space) -> Vec<(Settings, Vec<u8>)> {
    let mut out = Vec::new();
    for strategy in [SearchStrategy::Random, SearchStrategy::Nsga2] {
        let set = settings_of(space, strategy);
        for fail_after in [Some(12), Some(16), Some(20), None] {
            let d = dir("seed");
            let mut table = Table {
                space,
                fail_after,
                asked: 0,
            };
            let setup = SearchSetup {
                space,
                settings: &set,
                out_dir: &d,
                resume: false,
                sensitivity: None,
                study: None,
            };
            let _ = search(setup, &mut table, None, &mut Quiet);
            if let Ok(bytes) = std::fs::read(d.join(STUDY_FILE)) {
                out.push((set.clone(), bytes));
            }
            let _ = std::fs::remove_dir_all(&d);
        }
    }
    assert!(out.len() >= 4, "{} saved states", out.len());
    out
}

/// Checks the error of reading or resuming a mutated study in `out`: damaged contents are a
/// bad saved search naming the file; bytes of the database file edited (`raw`) may also show
/// as SQLite failing to read or write it (a header marking the file read-only, a page count
/// past the end), an error naming the file too.
fn check(e: &SearchError, state: &Path, what: &str, raw: bool) {
    match e {
        SearchError::Store(s) if raw => {
            assert_eq!(s.location(), state.display().to_string(), "{what}");
            assert!(e.to_string().contains(STUDY_FILE), "{what}: {e}");
        }
        SearchError::BadState { path, message } => {
            assert_eq!(path, state, "{what}");
            assert!(!message.is_empty(), "{what}");
            assert!(e.to_string().contains(STUDY_FILE), "{what}: {e}");
            assert!(e.is_invalid_input(), "{what}");
        }
        other => panic!("{what}: not an error naming the study's file: {other:?}"),
    }
}

#[test]
fn mutated_saved_searches_resume_or_give_errors_naming_the_study_file() {
    let space = space();
    let seeds = saved_states(&space);
    let n = mutate_cases(1_200);
    let out = dir("cases");
    let state = out.join(STUDY_FILE);
    let mut rng = Rng::new(0x57A7E);
    let (mut resumed, mut refused) = (0, 0);
    for case in 0..n {
        let mut r = rng.fork(case as u64);
        let (set, seed) = &seeds[case % seeds.len()];
        for extra in ["-wal", "-shm"] {
            let _ = std::fs::remove_file(out.join(format!("{STUDY_FILE}{extra}")));
        }
        std::fs::write(&state, seed).unwrap();
        if r.chance(0.7) {
            edit_document(&mut r, &state);
        }
        let raw = r.chance(0.3);
        if raw {
            let mut bytes = std::fs::read(&state).unwrap();
            for _ in 0..1 + r.below(3) {
                edit_db_bytes(&mut r, &mut bytes);
            }
            std::fs::write(&state, &bytes).unwrap();
        }
        let what = format!("case {case}");
        match saved_rows(&out, &space) {
            Ok(Some(_)) => {}
            // a file cut to nothing is an empty database
            Ok(None) => assert!(raw, "{what}: the study was not found"),
            Err(e) => check(&e, &state, &what, raw),
        }
        let mut table = Table {
            space: &space,
            fail_after: None,
            asked: 0,
        };
        let setup = SearchSetup {
            space: &space,
            settings: set,
            out_dir: &out,
            resume: true,
            sensitivity: None,
            study: None,
        };
        match search(setup, &mut table, None, &mut Quiet) {
            Ok(report) => {
                resumed += 1;
                assert!(report.evaluated > 0, "{what}");
            }
            Err(e) => {
                refused += 1;
                check(&e, &state, &what, raw);
            }
        }
    }
    let _ = std::fs::remove_dir_all(&out);
    assert!(
        resumed > 0 && refused > n / 2,
        "{resumed} resumed, {refused} refused"
    );
}

/// Edits one JSON document of the study in `db`: its state, its settings or one of its rows
/// (parsed and edited, or edited as bytes).
fn edit_document(r: &mut Rng, db: &Path) {
    let conn = rusqlite::Connection::open(db).unwrap();
    let rows: i64 = conn
        .query_row("SELECT COUNT(*) FROM qnas_row", [], |x| x.get(0))
        .unwrap();
    let (table, column, filter) = match r.below(3) {
        0 => ("qnas_study", "state", String::new()),
        1 => ("qnas_study", "settings", String::new()),
        _ => (
            "qnas_row",
            "data",
            format!("WHERE seq = {}", r.below(rows.max(1) as usize)),
        ),
    };
    let text: Option<String> = conn
        .query_row(&format!("SELECT {column} FROM {table} {filter}"), [], |x| {
            x.get(0)
        })
        .ok();
    let Some(text) = text else { return };
    let mut bytes = text.into_bytes();
    if r.chance(0.6) {
        let mut doc: Value = serde_json::from_slice(&bytes).unwrap();
        for _ in 0..1 + r.below(3) {
            edit_value(r, &mut doc, LIMITS);
        }
        bytes = serde_json::to_vec_pretty(&doc).unwrap();
    } else {
        for _ in 0..1 + r.below(3) {
            edit_bytes(r, &mut bytes);
        }
    }
    // text that is not UTF-8 is stored as such (a blob would be another damage)
    let value = rusqlite::types::Value::Text(lossy_text(bytes));
    conn.execute(
        &format!("UPDATE {table} SET {column} = ?1 {filter}"),
        [value],
    )
    .unwrap();
}

/// The bytes as text: invalid UTF-8 replaced (rusqlite stores only valid text).
fn lossy_text(bytes: Vec<u8>) -> String {
    String::from_utf8(bytes).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// Byte edits of the database file: a few bytes changed anywhere, or the file cut short.
fn edit_db_bytes(r: &mut Rng, b: &mut Vec<u8>) {
    if b.is_empty() {
        return;
    }
    match r.below(4) {
        0 => {
            let n = r.below(b.len());
            b.truncate(n);
        }
        1 => {
            // the 100-byte header: page size, format numbers, counters
            let i = r.below(b.len().min(100));
            b[i] = r.below(256) as u8;
        }
        _ => {
            for _ in 0..1 + r.below(8) {
                let i = r.below(b.len());
                b[i] = r.below(256) as u8;
            }
        }
    }
}

/// Cases of the test: `QNAS_FUZZ_CASES` when set, else `default`.
fn mutate_cases(default: usize) -> usize {
    std::env::var("QNAS_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}
