//! Helpers shared by the command-line tests: run `qnas` from the repository root, fresh temp
//! folders, and waiting for a background run to reach a point.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The repository root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Runs `qnas` with `args` from the repository root.
pub fn qnas(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_qnas"))
        .args(args)
        .current_dir(root())
        .output()
        .expect("run qnas")
}

/// Runs `qnas` with `args` and fails the test, with its stderr, unless it succeeds.
pub fn qnas_ok(args: &[&str]) -> Output {
    let out = qnas(args);
    assert!(
        out.status.success(),
        "qnas {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Starts `qnas` with `args` in the background, output discarded.
pub fn spawn_qnas(args: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_qnas"))
        .args(args)
        .current_dir(root())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start qnas")
}

/// Polls `ready` every few milliseconds; fails the test after two minutes.
pub fn wait_until(what: &str, mut ready: impl FnMut() -> bool) {
    let t0 = Instant::now();
    while !ready() {
        assert!(
            t0.elapsed() < Duration::from_secs(120),
            "{what} did not happen"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Trains the digits preset's supernet into `run` for `steps` steps, then searches it at
/// random with `budget` members: the small searched run many tests start from.
pub fn train_and_search(run: &std::path::Path, steps: u64, budget: usize) {
    let (r, steps, budget) = (run.to_str().unwrap(), steps.to_string(), budget.to_string());
    let digits = "spaces/presets/digits.ron";
    qnas_ok(&["train", digits, "--run", r, "--steps", &steps]);
    qnas_ok(&[
        "search",
        digits,
        "--run",
        r,
        "--strategy",
        "random",
        "--budget",
        &budget,
    ]);
}

/// A fresh, empty temp folder for one test.
pub fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("qnas-test-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// The rows a search saved so far in its study (`SEARCH_DIR/study.db`, study `study`); 0 when
/// there is none yet.
pub fn saved_rows(search_dir: &std::path::Path, study: &str) -> usize {
    let path = search_dir.join("study.db");
    if !path.exists() {
        return 0;
    }
    store::Storage::Sqlite(path)
        .open(study)
        .and_then(|mut s| s.rows())
        .map_or(0, |r| r.len())
}
