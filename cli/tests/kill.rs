//! Every stage survives a kill: `train`, `search`, `export`, `correlate` and `finetune` are
//! each killed (SIGKILL) at several moments (fractions of an uninterrupted run's wall time, so
//! the kills land at different stages on any machine), the folder is checked for half-written
//! files under their final names, the command is run again, and its result must equal the
//! uninterrupted run's.

mod common;
use common::*;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const DIGITS: &str = "spaces/presets/digits.ron";

/// The moments of the kills, as fractions of the uninterrupted run's wall time.
const KILL_AT: [f64; 4] = [0.1, 0.3, 0.5, 0.7];

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

/// Runs `args` to the end; returns its wall time.
fn timed(args: &[&str]) -> Duration {
    let t0 = Instant::now();
    qnas_ok(args);
    t0.elapsed()
}

/// Starts `args` and kills it after `after` unless it ended before; true when it was killed.
fn killed_after(args: &[&str], after: Duration) -> bool {
    let mut child = spawn_qnas(args);
    let t0 = Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            return false;
        }
        if t0.elapsed() >= after {
            child.kill().unwrap();
            child.wait().unwrap();
            return true;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// A file name that is temporary by construction (a dot file, or a `.tmp` part), never a
/// final name.
fn temporary(name: &str) -> bool {
    name.starts_with('.') || name.contains(".tmp")
}

/// Every file under its final name in `dir` is whole: JSON parses, every line of an append
/// log but a torn last one parses (resuming drops it), checkpoints pass their CRC, plots are
/// complete.
fn assert_whole(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries {
        let e = e.unwrap();
        let path = e.path();
        let name = e.file_name().to_string_lossy().into_owned();
        if temporary(&name) {
            continue;
        }
        if e.file_type().unwrap().is_dir() {
            assert_whole(&path);
            continue;
        }
        let bytes = std::fs::read(&path).unwrap();
        let what = path.display();
        if name.ends_with(".jsonl") {
            let text = String::from_utf8(bytes).unwrap();
            let whole = text.rsplit_once('\n').map_or("", |(whole, _)| whole);
            for line in whole.lines() {
                serde_json::from_str::<serde_json::Value>(line)
                    .unwrap_or_else(|e| panic!("{what}: a torn line inside: {e}"));
            }
        } else if name.ends_with(".json") {
            serde_json::from_slice::<serde_json::Value>(&bytes)
                .unwrap_or_else(|e| panic!("{what}: {e}"));
        } else if name.ends_with(".qckpt") {
            supernet::checkpoint::read_checkpoint(&path, None)
                .unwrap_or_else(|e| panic!("{what}: {e}"));
        } else if name.ends_with(".svg") {
            assert!(bytes.ends_with(b"</svg>\n"), "{what}: torn");
        } else if name.ends_with(".png") {
            assert!(bytes.starts_with(b"\x89PNG"), "{what}: torn");
            assert!(bytes.ends_with(&[0xAE, 0x42, 0x60, 0x82]), "{what}: torn");
        } else if name.ends_with(".csv") {
            assert!(bytes.ends_with(b"\n"), "{what}: torn");
        } else if name == "study.db" {
            // the study opens and reads (SQLite recovers its journal): never torn
            let mut st = store::Storage::Sqlite(path.clone())
                .open("digits")
                .unwrap_or_else(|e| panic!("{what}: {e}"));
            st.rows().unwrap_or_else(|e| panic!("{what}: {e}"));
            st.all_members().unwrap_or_else(|e| panic!("{what}: {e}"));
        }
    }
}

/// No temporary folder of a killed writer is left behind (model folders are written into
/// `.NAME.tmp-PID` and renamed; the next writer clears a dead writer's).
fn assert_no_leftover_folders(dir: &Path) {
    for e in std::fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_dir() {
            let name = e.file_name().to_string_lossy().into_owned();
            assert!(
                !(name.starts_with('.') && (name.contains(".tmp-") || name.contains(".old-"))),
                "{}: left behind",
                e.path().display()
            );
            assert_no_leftover_folders(&e.path());
        }
    }
}

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).unwrap())
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The folder's outputs that must not depend on an interruption: every file's bytes, except
/// the timings and the absolute paths that JSON reports carry.
fn outputs(dir: &Path) -> Vec<(String, String)> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<(String, String)>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let e = e.unwrap();
            let name = e.file_name().to_string_lossy().into_owned();
            if temporary(&name) || name == "qnas.lock" {
                continue;
            }
            if e.file_type().unwrap().is_dir() {
                walk(root, &e.path(), out);
                continue;
            }
            let rel = e.path().strip_prefix(root).unwrap().display().to_string();
            if name.starts_with("study.db-") {
                // SQLite's journal (-wal, -shm): the study is compared through study.db
                continue;
            }
            let content = if name == "study.db" {
                // what the study holds, not its bytes (workers' names, heartbeats and the
                // number of claims of a member whose process was killed differ)
                let mut st = store::Storage::Sqlite(e.path()).open("digits").unwrap();
                let study = st.study().unwrap().unwrap();
                let members: Vec<String> = st
                    .all_members()
                    .unwrap()
                    .iter()
                    .map(|m| format!("{} {} {:?} {:?}", m.idx, m.key, m.status, m.outcome))
                    .collect();
                let report = study.report.map(|r| {
                    let mut v: serde_json::Value = serde_json::from_str(&r).unwrap();
                    scrub(&mut v);
                    v.to_string()
                });
                format!(
                    "{} {} {:?} {members:?} {report:?}",
                    study.settings,
                    study.state,
                    st.rows().unwrap()
                )
            } else if name.ends_with(".json") {
                let mut v = json(&e.path());
                scrub(&mut v);
                v.to_string()
            } else if name.ends_with(".qckpt") {
                // its step, space and training state (random streams included), not the time
                // it was written nor the record's bytes (burn's records carry parameter ids
                // drawn per process); the weights are compared through every step's loss in
                // `metrics.jsonl` and the final accuracies in `train.json`
                let c = supernet::checkpoint::read_checkpoint(&e.path(), None).unwrap();
                let mut meta = c.metadata.clone();
                scrub(&mut meta);
                let sections: Vec<&str> = c.sections.iter().map(|s| s.name.as_str()).collect();
                format!(
                    "step {} fingerprint {:x} {meta} {sections:?}",
                    c.step, c.fingerprint
                )
            } else if name == "metrics.jsonl" {
                let text = std::fs::read_to_string(e.path()).unwrap();
                text.lines()
                    .map(|l| {
                        let mut v: serde_json::Value = serde_json::from_str(l).unwrap();
                        scrub(&mut v);
                        v.to_string()
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            } else if name.ends_with(".png") {
                // plots of timings would differ; the data behind them is compared
                continue;
            } else {
                format!(
                    "{:x}",
                    supernet::checkpoint::crc32(&std::fs::read(e.path()).unwrap())
                )
            };
            out.push((rel, content));
        }
    }
    fn scrub(v: &mut serde_json::Value) {
        match v {
            serde_json::Value::Object(m) => {
                m.retain(|k, _| {
                    !(k.contains("seconds")
                        || k.contains("img_per_s")
                        || k.contains("per_second")
                        || k.contains("created")
                        || k.contains("dir")
                        || k.contains("path")
                        || k == "resumed_from"
                        || k == "kept"
                        || k == "written")
                });
                m.values_mut().for_each(scrub);
            }
            serde_json::Value::Array(a) => a.iter_mut().for_each(scrub),
            // paths into the test's own folders differ by name
            serde_json::Value::String(t)
                if t.starts_with(&*std::env::temp_dir().to_string_lossy()) =>
            {
                *t = "<path>".into();
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

fn assert_same_outputs(reference: &Path, resumed: &Path) {
    let (a, b) = (outputs(reference), outputs(resumed));
    let names = |v: &[(String, String)]| v.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>();
    assert_eq!(names(&a), names(&b), "the same files");
    for ((name, x), (_, y)) in a.iter().zip(&b) {
        assert_eq!(x, y, "{name} differs after the kill");
    }
}

/// Kills `stage(dir)` at every moment of [`KILL_AT`] in a copy of `start`, checks the folder,
/// runs `resume(dir)` and compares `out(dir)` with the uninterrupted run's.
fn survives_kills(
    name: &str,
    start: &Path,
    stage: impl Fn(&Path) -> Vec<String>,
    resume: impl Fn(&Path) -> Vec<String>,
    out: impl Fn(&Path) -> PathBuf,
) {
    let args = |v: &[String]| v.to_vec();
    let reference = tmp(&format!("kill-{name}-ref"));
    copy_dir(start, &reference);
    let a = args(&stage(&reference));
    let took = timed(&a.iter().map(String::as_str).collect::<Vec<_>>());
    let mut kills = 0;
    for (i, f) in KILL_AT.iter().enumerate() {
        let dir = tmp(&format!("kill-{name}-{i}"));
        copy_dir(start, &dir);
        let a = args(&stage(&dir));
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        if killed_after(&a, took.mul_f64(*f)) {
            kills += 1;
        }
        assert_whole(&dir);
        let r = args(&resume(&dir));
        qnas_ok(&r.iter().map(String::as_str).collect::<Vec<_>>());
        assert_whole(&dir);
        assert_no_leftover_folders(&dir);
        assert_same_outputs(&out(&reference), &out(&dir));
        std::fs::remove_dir_all(&dir).unwrap();
    }
    assert!(
        kills >= 2,
        "{name}: only {kills} of the kills hit a running process"
    );
    std::fs::remove_dir_all(&reference).unwrap();
}

fn s(v: &[&str]) -> Vec<String> {
    v.iter().map(|x| x.to_string()).collect()
}

fn p(d: &Path) -> String {
    d.to_str().unwrap().to_string()
}

/// A digits run trained for `steps` steps and searched with a budget of 24.
fn searched_run() -> PathBuf {
    let run = tmp("kill-base");
    let r = p(&run);
    qnas_ok(&["train", DIGITS, "--run", &r, "--steps", "60"]);
    qnas_ok(&["search", DIGITS, "--run", &r, "--budget", "24"]);
    run
}

#[test]
fn every_stage_killed_at_any_moment_resumes_to_the_uninterrupted_result() {
    let empty = tmp("kill-empty");
    // train: 200 steps, checkpoints every 50 (the digits preset), resumed with --resume when a
    // checkpoint was written, else started again
    survives_kills(
        "train",
        &empty,
        |d| s(&["train", DIGITS, "--run", &p(d), "--steps", "200"]),
        |d| {
            let resume = d.join("checkpoints").read_dir().is_ok_and(|mut r| {
                r.any(|e| e.is_ok_and(|e| e.file_name().to_string_lossy().ends_with(".qckpt")))
            });
            let mut v = s(&["train", DIGITS, "--run", &p(d), "--steps", "200"]);
            v.push(if resume { "--resume" } else { "--restart" }.into());
            v
        },
        |d| d.to_path_buf(),
    );

    let base = searched_run();
    let trained = tmp("kill-trained");
    copy_dir(&base, &trained);
    std::fs::remove_dir_all(trained.join("search")).unwrap();
    // search: resumed from its saved state when there is one
    survives_kills(
        "search",
        &trained,
        |d| s(&["search", DIGITS, "--run", &p(d), "--budget", "24"]),
        |d| {
            let mut v = s(&["search", DIGITS, "--run", &p(d), "--budget", "24"]);
            if d.join("search/study.db").exists() {
                v.push("--resume".into());
            }
            v
        },
        |d| d.join("search"),
    );
    // export of the whole front: run again (every model is written again, atomically)
    let export = |d: &Path| s(&["export", &p(d)]);
    survives_kills("export", &base, export, export, |d| d.join("export"));
    // correlate of the front and one more member: the finished trainings are kept, the started
    // ones resume
    let members = (json(&base.join("search/pareto.json"))["front"]
        .as_array()
        .unwrap()
        .len()
        + 1)
    .to_string();
    let correlate = |d: &Path| {
        s(&[
            "correlate",
            &p(d),
            "--members",
            &members,
            "--steps",
            "60",
            "--bootstrap",
            "200",
        ])
    };
    survives_kills("correlate", &base, correlate, correlate, |d| {
        d.join("correlate")
    });
    // finetune of an exported model into a new folder: run again from the start
    let models = tmp("kill-models");
    copy_dir(&base, &models);
    qnas_ok(&["export", &p(&models), "--pick", "1"]);
    let finetune = |d: &Path| {
        s(&[
            "finetune",
            &p(&d.join("export/front-01")),
            "--steps",
            "400",
            "--out",
            &p(&d.join("tuned")),
        ])
    };
    survives_kills("finetune", &models, finetune, finetune, |d| d.join("tuned"));

    for d in [empty, base, trained, models] {
        std::fs::remove_dir_all(d).unwrap();
    }
}
