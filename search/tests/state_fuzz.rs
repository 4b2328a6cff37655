//! Mutation tests of a saved search (`OUT/state.json`): real states, saved by searches over a
//! table of known accuracies, edited at random (JSON values replaced, removed and added, bytes
//! edited, truncations, bytes that are not UTF-8), must each be read by `saved_rows` and
//! resumed by `search`, or give an error that names the state file; never a panic.
//!
//! Every input comes from a fixed seed; a failure names its case. `QNAS_FUZZ_CASES=N` runs `N`
//! cases instead of the default (a longer campaign:
//! `QNAS_FUZZ_CASES=100000 cargo test --release -p qnas-search --test state_fuzz`).

#[path = "../../spaces/tests/mutate/json.rs"]
mod json_mutate;

use std::path::{Path, PathBuf};

use json_mutate::{Limits, edit_bytes, edit_value};

use search::driver::{EvaluationError, Evaluator, STATE_FILE, SearchSetup, saved_rows};
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

/// The state files of searches interrupted after `fail_after` evaluations and of finished
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
            };
            let _ = search(setup, &mut table, None, &mut Quiet);
            if let Ok(bytes) = std::fs::read(d.join(STATE_FILE)) {
                out.push((set.clone(), bytes));
            }
            let _ = std::fs::remove_dir_all(&d);
        }
    }
    assert!(out.len() >= 4, "{} saved states", out.len());
    out
}

/// Checks the error of reading or resuming a mutated state in `out`.
fn check(e: &SearchError, state: &Path, what: &str) {
    match e {
        SearchError::BadState { path, message } => {
            assert_eq!(path, state, "{what}");
            assert!(!message.is_empty(), "{what}");
            assert!(e.to_string().contains(STATE_FILE), "{what}: {e}");
            assert!(e.is_invalid_input(), "{what}");
        }
        other => panic!("{what}: not an error naming the state file: {other:?}"),
    }
}

#[test]
fn mutated_saved_searches_resume_or_give_errors_naming_the_state_file() {
    let space = space();
    let seeds = saved_states(&space);
    let n = mutate_cases(1_200);
    let out = dir("cases");
    let state = out.join(STATE_FILE);
    let mut rng = Rng::new(0x57A7E);
    let (mut resumed, mut refused) = (0, 0);
    for case in 0..n {
        let mut r = rng.fork(case as u64);
        let (set, seed) = &seeds[case % seeds.len()];
        let mut bytes = seed.clone();
        if r.chance(0.6) {
            let mut doc: Value = serde_json::from_slice(seed).unwrap();
            for _ in 0..1 + r.below(3) {
                edit_value(&mut r, &mut doc, LIMITS);
            }
            bytes = serde_json::to_vec_pretty(&doc).unwrap();
        }
        if r.chance(0.4) {
            for _ in 0..1 + r.below(3) {
                edit_bytes(&mut r, &mut bytes);
            }
        }
        std::fs::write(&state, &bytes).unwrap();
        let what = format!("case {case}");
        match saved_rows(&out, &space) {
            Ok(Some(_)) => {}
            Ok(None) => panic!("{what}: the state was not found"),
            Err(e) => check(&e, &state, &what),
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
        };
        match search(setup, &mut table, None, &mut Quiet) {
            Ok(report) => {
                resumed += 1;
                assert!(report.evaluated > 0, "{what}");
            }
            Err(e) => {
                refused += 1;
                check(&e, &state, &what);
            }
        }
    }
    let _ = std::fs::remove_dir_all(&out);
    assert!(
        resumed > 0 && refused > n / 2,
        "{resumed} resumed, {refused} refused"
    );
}

/// Cases of the test: `QNAS_FUZZ_CASES` when set, else `default`.
fn mutate_cases(default: usize) -> usize {
    std::env::var("QNAS_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}
