//! `qnas search` with `qnas worker` processes sharing its study, on the run's SQLite file and
//! on a PostgreSQL database (a throwaway cluster; skipped with a note when the server is not
//! installed, required in CI through `QNAS_REQUIRE_POSTGRES`): three workers, one killed
//! (SIGKILL) while it evaluates a member, and the search ends with the members, table and front
//! of a single-process search of the same seed; the killed worker's member is evaluated again
//! by another process, every other member once.

mod common;
use common::*;

#[path = "../../store/tests/support/postgres.rs"]
mod pg;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use store::{Status, Storage};

const DIGITS: &str = "spaces/presets/digits.ron";

fn copy_dir(src: &Path, dst: &Path) {
    std::fs::create_dir_all(dst).unwrap();
    for e in std::fs::read_dir(src).unwrap() {
        let e = e.unwrap();
        let to = dst.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &to);
        } else {
            std::fs::copy(e.path(), to).unwrap();
        }
    }
}

fn search_args(run: &Path, storage: &[String]) -> Vec<String> {
    let mut v: Vec<String> = [
        "search",
        DIGITS,
        "--run",
        "",
        "--strategy",
        "nsga2",
        "--budget",
        "64",
        "--seed",
        "5",
        "--threads",
        "1",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    v[3] = run.display().to_string();
    v.extend(storage.iter().cloned());
    v
}

fn start(args: &[String]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_qnas"))
        .args(args)
        .current_dir(root())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start qnas")
}

/// Waits for `child` to end (two minutes at most) and fails the test with its stderr unless
/// it succeeded; its stdout.
fn finished(child: Child, what: &str) -> String {
    let t0 = Instant::now();
    let mut child = child;
    while child.try_wait().unwrap().is_none() {
        if t0.elapsed() > Duration::from_secs(180) {
            let _ = child.kill();
            panic!("{what} did not end");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{what}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// A trained digits run, and a single-process search of it (in a copy).
fn trained_and_alone(name: &str) -> (PathBuf, PathBuf) {
    let base = tmp(&format!("workers-{name}-trained"));
    qnas_ok(&[
        "train",
        DIGITS,
        "--run",
        base.to_str().unwrap(),
        "--steps",
        "40",
    ]);
    let alone = tmp(&format!("workers-{name}-alone"));
    copy_dir(&base, &alone);
    let args = search_args(&alone, &[]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    qnas_ok(&args);
    (base, alone)
}

/// A search of a copy of `base` with three workers on `storage` (the run's SQLite file when
/// `None`), the first worker killed while it holds a member; checked against `alone`.
fn three_workers_one_killed(base: &Path, alone: &Path, name: &str, storage: Option<&str>) {
    let run = tmp(&format!("workers-{name}-shared"));
    copy_dir(base, &run);
    let storage_args: Vec<String> = storage
        .map(|u| vec!["--storage".to_string(), u.to_string()])
        .unwrap_or_default();
    let store_at = match storage {
        Some(u) => Storage::parse(u).unwrap(),
        None => Storage::Sqlite(run.join("search/study.db")),
    };
    let worker = |storage_args: &[String]| {
        let mut v: Vec<String> = vec![
            "worker".into(),
            run.display().to_string(),
            "--threads".into(),
            "1".into(),
            "--json".into(),
        ];
        v.extend(storage_args.iter().cloned());
        start(&v)
    };
    // the workers first: they wait for the study
    let mut workers: Vec<Child> = (0..3).map(|_| worker(&storage_args)).collect();
    let search = start(&search_args(&run, &storage_args));
    let victim = format!(":{}", workers[0].id());
    let mut held = None;
    wait_until("the first worker to hold a member", || {
        if !store_at.may_hold_study() {
            return false;
        }
        let Ok(mut s) = store_at.open("digits") else {
            return false;
        };
        held = s.all_members().ok().and_then(|ms| {
            ms.into_iter().find(|m| {
                m.status == Status::Running
                    && m.worker.as_deref().is_some_and(|w| w.ends_with(&victim))
            })
        });
        held.is_some()
    });
    workers[0].kill().unwrap();
    workers[0].wait().unwrap();
    let held = held.unwrap();

    finished(search, "the search");
    let mut evaluated_by_workers = 0;
    for (i, w) in workers.drain(..).enumerate().skip(1) {
        let out = finished(w, &format!("worker {i}"));
        let r: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(r["schema"], "qnas.worker/1");
        evaluated_by_workers += r["evaluated"].as_u64().unwrap();
    }

    // the single-process search's members, table and front
    assert_eq!(
        std::fs::read_to_string(run.join("search/evaluated.csv")).unwrap(),
        std::fs::read_to_string(alone.join("search/evaluated.csv")).unwrap()
    );
    let (a, b) = (
        json(&run.join("search/pareto.json")),
        json(&alone.join("search/pareto.json")),
    );
    assert_eq!(a["front"], b["front"]);
    assert_eq!(a["hypervolume"], b["hypervolume"]);
    // every member done; the killed worker's member twice claimed and finished by another,
    // every other member claimed once
    let members = store_at.open("digits").unwrap().all_members().unwrap();
    assert!(members.iter().all(|m| m.status == Status::Done));
    for m in &members {
        if m.idx == held.idx {
            assert_eq!(m.attempts, 2, "the killed worker's member");
            assert!(!m.worker.as_deref().unwrap().ends_with(&victim));
        } else {
            assert_eq!(m.attempts, 1, "member {} was evaluated twice", m.idx);
        }
    }
    assert!(
        evaluated_by_workers > 0,
        "the surviving workers evaluated nothing"
    );
    let _ = std::fs::remove_dir_all(&run);
}

#[test]
fn three_workers_on_sqlite_one_killed_end_as_one_process() {
    let (base, alone) = trained_and_alone("sqlite");
    three_workers_one_killed(&base, &alone, "sqlite", None);
    let _ = std::fs::remove_dir_all(&base);
    let _ = std::fs::remove_dir_all(&alone);
}

#[test]
fn three_workers_on_postgres_one_killed_end_as_one_process() {
    let Some(cluster) = pg::Cluster::start("workers") else {
        return;
    };
    let (base, alone) = trained_and_alone("postgres");
    three_workers_one_killed(&base, &alone, "postgres", Some(&cluster.url));
    let _ = std::fs::remove_dir_all(&base);
    let _ = std::fs::remove_dir_all(&alone);
}
