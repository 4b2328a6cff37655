//! Write failures: with the file-size limit at one block (`ulimit -f 1`, as a full disk
//! behaves for every file larger than that), `train`, `search`, `export` and `finetune` stop
//! with an error naming the file they could not write (exit code 1, not a signal) and leave the
//! previous good outputs as they were.

#![cfg(unix)]

mod common;
use common::*;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const DIGITS: &str = "spaces/presets/digits.ron";

/// `qnas args` with the file-size limit at one block of the shell's unit (512 or 1024 bytes).
fn qnas_limited(args: &[&str]) -> Output {
    Command::new("sh")
        .arg("-c")
        .arg("ulimit -f 1 && exec \"$0\" \"$@\"")
        .arg(env!("CARGO_BIN_EXE_qnas"))
        .args(args)
        .current_dir(root())
        .output()
        .expect("run qnas under a file-size limit")
}

/// Every file under `dir` with its bytes, sorted by path.
fn snapshot(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    fn walk(dir: &Path, out: &mut Vec<(PathBuf, Vec<u8>)>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let e = e.unwrap();
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') || name == "qnas.lock" {
                continue;
            }
            if e.file_type().unwrap().is_dir() {
                walk(&e.path(), out);
            } else {
                out.push((e.path(), std::fs::read(e.path()).unwrap()));
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, &mut out);
    out.sort();
    out
}

/// The command failed with exit code 1 and a message naming a file under `within` and saying
/// why: the system's "File too large", or for the search's study SQLite's "disk I/O error"
/// (SQLite reports a failed write by its own code, without the system's reason).
fn fails_naming_a_file(out: &Output, within: &Path) -> String {
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains(&*within.to_string_lossy()), "{err}");
    let err_lower = err.to_lowercase();
    assert!(
        err_lower.contains("too large")
            || (err.contains("study.db") && err_lower.contains("disk i/o error")),
        "{err}"
    );
    err
}

#[test]
fn write_failures_name_the_file_and_keep_the_previous_outputs() {
    let run = tmp("write-fail");
    let r = run.to_str().unwrap();
    qnas_ok(&["train", DIGITS, "--run", r, "--steps", "60"]);
    qnas_ok(&["search", DIGITS, "--run", r, "--budget", "12"]);
    qnas_ok(&["export", r, "--pick", "1"]);

    // train: continuing to 120 steps cannot write its log or checkpoint
    let checkpoints = snapshot(&run.join("checkpoints"));
    let out = qnas_limited(&["train", DIGITS, "--run", r, "--steps", "120", "--resume"]);
    fails_naming_a_file(&out, &run);
    assert_eq!(snapshot(&run.join("checkpoints")), checkpoints);

    // search: a new search cannot write its study; the trained run is as it was and nothing
    // is left under a final name (the study's file it could not set up is removed)
    let done = run.join("search-done");
    std::fs::rename(run.join("search"), &done).unwrap();
    let before = snapshot(&run);
    let out = qnas_limited(&["search", DIGITS, "--run", r, "--budget", "12"]);
    fails_naming_a_file(&out, &run.join("search"));
    let after: Vec<_> = snapshot(&run)
        .into_iter()
        .filter(|(p, _)| !p.starts_with(run.join("search")))
        .collect();
    assert_eq!(after, before);
    assert!(snapshot(&run.join("search")).is_empty());
    std::fs::remove_dir_all(run.join("search")).unwrap();
    std::fs::rename(&done, run.join("search")).unwrap();

    // export: the model folder written before stays as it was
    let export = snapshot(&run.join("export"));
    let out = qnas_limited(&["export", r, "--pick", "1"]);
    fails_naming_a_file(&out, &run.join("export"));
    assert_eq!(snapshot(&run.join("export")), export);

    // finetune: no output folder, the input model untouched
    let model = run.join("export/front-01");
    let tuned = run.join("tuned");
    let out = qnas_limited(&[
        "finetune",
        model.to_str().unwrap(),
        "--steps",
        "10",
        "--out",
        tuned.to_str().unwrap(),
    ]);
    fails_naming_a_file(&out, &run);
    assert!(!tuned.exists());
    assert_eq!(snapshot(&run.join("export")), export);

    std::fs::remove_dir_all(run).unwrap();
}
