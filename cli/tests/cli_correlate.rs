//! `qnas train --arch` and `qnas correlate` as a user runs them, on the tiny digits preset:
//! stand-alone training and its resume, the correlation report and its files, the errors a user
//! can make, and an interrupted correlate continued.

mod common;
use common::*;

use std::path::{Path, PathBuf};

use spaces::{Format, Space};

const DIGITS: &str = "spaces/presets/digits.ron";

fn digits() -> Space {
    Space::load(&root().join(DIGITS)).unwrap()
}

fn json(out: &std::process::Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{e}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

fn write_arch(dir: &Path, name: &str, arch: &spaces::Arch) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, arch.to_ron()).unwrap();
    p
}

#[test]
fn a_member_trains_alone_and_resumes() {
    let d = tmp("alone");
    let space = digits();
    let small = space
        .with_uniform_formats(&space.smallest(), Format::Int(4), Format::Int(4))
        .unwrap();
    let arch = write_arch(&d, "small.ron", &small);
    let run = d.join("run");
    let args = |extra: &[&str]| {
        let mut v = vec![
            "train",
            DIGITS,
            "--arch",
            arch.to_str().unwrap(),
            "--run",
            run.to_str().unwrap(),
            "--steps",
            "60",
            "--json",
        ];
        v.extend_from_slice(extra);
        v.iter().map(|s| s.to_string()).collect::<Vec<_>>()
    };
    let call = |extra: &[&str]| {
        let a = args(extra);
        qnas(&a.iter().map(String::as_str).collect::<Vec<_>>())
    };
    let out = call(&[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let s = json(&out);
    assert_eq!(s["schema"], "qnas.train/1");
    assert_eq!(s["steps"], 60);
    let alone = &s["alone"];
    assert_eq!(
        serde_json::from_value::<spaces::Arch>(alone["arch"].clone()).unwrap(),
        small
    );
    for split in ["validation", "test"] {
        let m = &alone[split];
        let (acc, lo, hi) = (
            m["accuracy"].as_f64().unwrap(),
            m["interval"]["lo"].as_f64().unwrap(),
            m["interval"]["hi"].as_f64().unwrap(),
        );
        assert!(m["total"].as_u64().unwrap() > 100, "{m}");
        assert!(lo < acc && acc < hi && hi - lo < 0.2, "{m}");
        // a trained member beats chance (10 classes) by far
        assert!(acc > 0.4, "{m}");
    }
    assert!(run.join("arch.ron").exists());
    // the narrowed network: its config holds the member's widths only
    let cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("config.json")).unwrap()).unwrap();
    assert_eq!(cfg["stem"]["widths"], serde_json::json!([small.stem.width]));

    // again without --resume: refused; with --resume: nothing left to do, the same accuracy
    let again = call(&[]);
    assert_eq!(again.status.code(), Some(2));
    let resumed = call(&["--resume"]);
    assert!(
        resumed.status.success(),
        "{}",
        String::from_utf8_lossy(&resumed.stderr)
    );
    assert_eq!(json(&resumed)["alone"]["validation"], alone["validation"]);

    // another member in the same folder: refused with a clear message
    let other = write_arch(&d, "large.ron", &space.largest());
    let out = qnas(&[
        "train",
        DIGITS,
        "--arch",
        other.to_str().unwrap(),
        "--run",
        run.to_str().unwrap(),
        "--resume",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("another member"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn an_arch_of_another_space_is_refused_with_its_location() {
    let d = tmp("alone-bad");
    let mnist = Space::load(&root().join("spaces/presets/mnist.ron")).unwrap();
    let arch = write_arch(&d, "mnist-member.ron", &mnist.largest());
    let out = qnas(&[
        "train",
        DIGITS,
        "--arch",
        arch.to_str().unwrap(),
        "--run",
        d.join("r").to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("mnist-member.ron:"), "{err}");
    assert!(!d.join("r").join("checkpoints").exists());
    // and as JSON: a qnas.error/1 document
    let out = qnas(&[
        "train",
        DIGITS,
        "--arch",
        arch.to_str().unwrap(),
        "--run",
        d.join("r").to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(json(&out)["schema"], "qnas.error/1");
}

/// A digits run with a trained supernet and a finished random search.
fn searched(name: &str) -> PathBuf {
    let run = tmp(name);
    train_and_search(&run, 60, 10);
    run
}

fn correlate(run: &Path, members: usize, extra: &[&str]) -> std::process::Output {
    let m = members.to_string();
    let mut args = vec![
        "correlate",
        run.to_str().unwrap(),
        "--members",
        &m,
        "--steps",
        "60",
        "--bootstrap",
        "300",
        "--json",
    ];
    args.extend_from_slice(extra);
    qnas(&args)
}

fn front_len(run: &Path) -> usize {
    let text = std::fs::read_to_string(run.join("search/pareto.json")).unwrap();
    serde_json::from_str::<serde_json::Value>(&text).unwrap()["front"]
        .as_array()
        .unwrap()
        .len()
}

#[test]
fn correlate_reports_resumes_and_checks_its_input() {
    let run = searched("correlate");
    let k = front_len(&run) + 2;
    let out = correlate(&run, k, &["--jobs", "2"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r = json(&out);
    assert_eq!(r["schema"], "qnas.correlate/2");
    assert_eq!(r["members"], k);
    // measured on the test files by default: the digits' 359 test images
    assert_eq!(r["split"], "test");
    assert_eq!(r["images"], 359);
    let results = r["results"].as_array().unwrap();
    assert_eq!(results.len(), k);
    // every front member is among them, first
    let fronts = results.iter().filter(|m| m["front"] == true).count();
    assert_eq!(fronts, front_len(&run));
    assert!(results[..fronts].iter().all(|m| m["front"] == true));
    for m in results {
        // the stand-alone test accuracy is the one its own training reported
        assert_eq!(m["alone"]["seeds"][0], m["alone_test"][0], "{m}");
        assert_eq!(m["supernet"]["total"], 359, "{m}");
        let gap = m["gap"]["value"].as_f64().unwrap();
        let diff =
            m["supernet"]["accuracy"].as_f64().unwrap() - m["alone"]["accuracy"].as_f64().unwrap();
        assert!((gap - diff).abs() < 1e-12);
        let iv = &m["gap"]["interval"];
        assert!(
            iv["lo"].as_f64().unwrap() <= gap + 1e-12 && gap <= iv["hi"].as_f64().unwrap() + 1e-12
        );
    }
    let a = &r["analysis"];
    if let Some(tau) = a["kendall_tau_b"]["value"].as_f64() {
        assert!((-1.0..=1.0).contains(&tau));
    }
    assert_eq!(a["front_members"], fronts);
    for f in [
        "correlate.json",
        "correlate.csv",
        "correlate.svg",
        "correlate.png",
    ] {
        assert!(run.join("correlate").join(f).exists(), "{f}");
    }
    let csv = std::fs::read_to_string(run.join("correlate/correlate.csv")).unwrap();
    assert_eq!(csv.lines().count(), 1 + k);

    // a member trained by `qnas train --arch` with the same steps gets the same accuracy as in
    // correlate, where two members trained side by side
    let d = tmp("correlate-same");
    let arch: spaces::Arch = serde_json::from_value(results[k - 1]["arch"].clone()).unwrap();
    let file = write_arch(&d, "m.ron", &arch);
    let alone = qnas_ok(&[
        "train",
        DIGITS,
        "--arch",
        file.to_str().unwrap(),
        "--run",
        d.join("r").to_str().unwrap(),
        "--steps",
        "60",
        "--json",
    ]);
    assert_eq!(
        json(&alone)["alone"]["test"]["correct"],
        results[k - 1]["alone"]["seeds"][0]["correct"]
    );

    // interrupted: one member lost its last checkpoint and its summary; another never started
    let dirs: Vec<PathBuf> = results
        .iter()
        .map(|m| PathBuf::from(m["run_dirs"][0].as_str().unwrap()))
        .collect();
    let resolve = |p: &Path| {
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            root().join(p)
        }
    };
    let (cut, gone) = (resolve(&dirs[0]), resolve(&dirs[1]));
    std::fs::remove_file(cut.join("train.json")).unwrap();
    std::fs::remove_file(cut.join("checkpoints/step-000060.qckpt")).unwrap();
    assert!(cut.join("checkpoints/step-000050.qckpt").exists());
    std::fs::remove_dir_all(&gone).unwrap();
    let again = correlate(&run, k, &[]);
    assert!(
        again.status.success(),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    let r2 = json(&again);
    assert!(String::from_utf8_lossy(&again.stderr).contains("resumed"));
    // exactly the same figures as the uninterrupted run
    assert_eq!(r2["analysis"], r["analysis"]);
    for (a, b) in r2["results"].as_array().unwrap().iter().zip(results) {
        assert_eq!(a["alone"], b["alone"]);
    }
    // nothing left to train: a third run trains nothing
    let third = json(&correlate(&run, k, &[]));
    assert_eq!(third["training_seconds"], 0.0);

    // on the validation split, where the search measured: the supernet's accuracy, measured
    // again, is the search's, and the trainings are reused
    let val = json(&correlate(&run, k, &["--split", "validation"]));
    assert_eq!(val["split"], "validation");
    assert_eq!(val["training_seconds"], 0.0);
    for m in val["results"].as_array().unwrap() {
        assert_eq!(m["supernet"]["accuracy"], m["search_accuracy"], "{m}");
        assert_ne!(m["supernet"]["total"], 359, "{m}");
    }

    // a second seed per member: the first seed's trainings are kept, the mean is reported
    let two = json(&correlate(&run, k, &["--seeds", "2"]));
    assert_eq!(two["seeds"], 2);
    // one seed has no seed agreement; two seeds compare seed 0 with seed 1
    assert!(r["seed_agreement"].is_null());
    let largest = two["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["alone"]["spread"].as_f64().unwrap())
        .fold(0.0, f64::max);
    let agreement = &two["seed_agreement"];
    assert!((agreement["max_abs_difference"].as_f64().unwrap() - largest).abs() < 1e-12);
    if let Some(t) = agreement["kendall_tau_b"]["value"].as_f64() {
        assert!((-1.0..=1.0).contains(&t));
    }
    for (m, one) in two["results"].as_array().unwrap().iter().zip(results) {
        let seeds = m["alone"]["seeds"].as_array().unwrap();
        assert_eq!(seeds.len(), 2);
        assert_eq!(seeds[0], one["alone"]["seeds"][0]);
        let (a, b) = (
            seeds[0]["accuracy"].as_f64().unwrap(),
            seeds[1]["accuracy"].as_f64().unwrap(),
        );
        assert!((m["alone"]["accuracy"].as_f64().unwrap() - (a + b) / 2.0).abs() < 1e-12);
        assert!((m["alone"]["spread"].as_f64().unwrap() - (a - b).abs()).abs() < 1e-12);
        assert!(m["run_dirs"][1].as_str().unwrap().ends_with("-seed1"));
    }

    // what a user can get wrong: exit 2 and a message naming the problem
    let too_many = correlate(&run, 500, &[]);
    assert_eq!(too_many.status.code(), Some(2));
    assert_eq!(json(&too_many)["schema"], "qnas.error/1");
    assert!(
        json(&too_many)["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("evaluated only")
    );
    if front_len(&run) > 3 {
        let below = correlate(&run, front_len(&run) - 1, &[]);
        assert_eq!(below.status.code(), Some(2));
    }
    let few = correlate(&run, 2, &[]);
    assert_eq!(few.status.code(), Some(2));
}

#[test]
fn correlate_needs_a_search() {
    let run = tmp("correlate-nosearch");
    let r = run.to_str().unwrap();
    qnas_ok(&["train", DIGITS, "--run", r, "--steps", "20"]);
    let out = qnas(&["correlate", r, "--members", "4"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no finished search"), "{err}");
    let out = qnas(&["correlate", run.join("nothing").to_str().unwrap()]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
