//! `qnas train` as a user runs it: training, kill and resume, corrupt checkpoints, a diverging
//! run. Uses the tiny digits preset so that each run takes seconds.

mod common;
use common::*;

use std::path::Path;

/// One field of every line of the run's metrics log.
fn metrics(run: &Path, field: &str) -> Vec<serde_json::Value> {
    std::fs::read_to_string(run.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()[field].clone())
        .collect()
}

fn metrics_steps(run: &Path) -> Vec<u64> {
    metrics(run, "step")
        .iter()
        .map(|v| v.as_u64().unwrap())
        .collect()
}

fn losses(run: &Path) -> Vec<f64> {
    metrics(run, "loss")
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect()
}

fn checkpoints(run: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(run.join("checkpoints"))
        .map(|d| {
            d.map(|e| e.unwrap().file_name().into_string().unwrap())
                .filter(|n| n.ends_with(".qckpt"))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

#[test]
fn trains_and_reports_json() {
    let run = tmp("train");
    let out = qnas(&[
        "train",
        "spaces/presets/digits.ron",
        "--run",
        run.to_str().unwrap(),
        "--steps",
        "60",
        "--json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let s: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(s["schema"], "qnas.train/1");
    assert_eq!(s["steps"], 60);
    let members = s["members"].as_array().unwrap();
    assert!(members.iter().any(|m| m["name"] == "largest at fp32"));
    for m in members {
        let acc = m["validation_accuracy"].as_f64().unwrap();
        assert!(acc > 0.3, "{m}");
    }
    assert_eq!(metrics_steps(&run), (1..=60).collect::<Vec<_>>());
    for f in ["space.ron", "config.json", "train.json"] {
        assert!(run.join(f).exists(), "{f}");
    }
    // the curves of the metrics log, as SVG and PNG
    let svg = std::fs::read_to_string(run.join("train.svg")).unwrap();
    assert!(svg.contains("digits: training of the supernet (60 steps)"));
    assert!(svg.contains(">\nlearning rate\n</text>") && svg.ends_with("</svg>\n"));
    let png = std::fs::read(run.join("train.png")).unwrap();
    let info = png::Decoder::new(std::io::Cursor::new(png))
        .read_info()
        .unwrap();
    assert_eq!((info.info().width, info.info().height), (800, 780));
    // a second plain run refuses to overwrite the first
    let again = qnas(&[
        "train",
        "spaces/presets/digits.ron",
        "--run",
        run.to_str().unwrap(),
        "--steps",
        "60",
    ]);
    assert_eq!(again.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&again.stderr).contains("--resume"));
    std::fs::remove_dir_all(run).unwrap();
}

#[test]
fn a_killed_run_resumes_and_matches_an_uninterrupted_one() {
    let steps = "500";
    let full = tmp("full");
    let out = qnas(&[
        "train",
        "spaces/presets/digits.ron",
        "--run",
        full.to_str().unwrap(),
        "--steps",
        steps,
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let run = tmp("killed");
    let mut child = spawn_qnas(&[
        "train",
        "spaces/presets/digits.ron",
        "--run",
        run.to_str().unwrap(),
        "--steps",
        steps,
    ]);
    wait_until("a first checkpoint", || !checkpoints(&run).is_empty());
    child.kill().unwrap();
    child.wait().unwrap();
    let kept = checkpoints(&run);
    assert!(
        !kept.contains(&"step-000500.qckpt".to_string()),
        "killed before the end: {kept:?}"
    );

    let out = qnas(&[
        "train",
        "spaces/presets/digits.ron",
        "--run",
        run.to_str().unwrap(),
        "--steps",
        steps,
        "--resume",
        "--json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let s: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(s["steps"], 500);
    assert!(s["resumed_from"].as_u64().unwrap() >= 50);
    assert_eq!(
        metrics_steps(&run),
        (1..=500).collect::<Vec<_>>(),
        "every step logged once"
    );
    // the resumed run replays the same batches and draws: the same losses as the uninterrupted run
    let (a, b) = (losses(&full), losses(&run));
    assert_eq!(a.len(), b.len());
    for (i, (x, y)) in a.iter().zip(&b).enumerate() {
        assert!(x == y, "step {}: {x} vs {y}", i + 1);
    }
    // and so the same curves
    let plot = |d: &Path| std::fs::read_to_string(d.join("train.svg")).unwrap();
    assert!(
        plot(&full) == plot(&run),
        "the resumed run's train.svg differs"
    );
    std::fs::remove_dir_all(full).unwrap();
    std::fs::remove_dir_all(run).unwrap();
}

#[test]
fn corrupt_checkpoints_are_skipped_or_refused() {
    let run = tmp("corrupt");
    let out = qnas(&[
        "train",
        "spaces/presets/digits.ron",
        "--run",
        run.to_str().unwrap(),
        "--steps",
        "100",
    ]);
    assert!(out.status.success());
    let cks = checkpoints(&run);
    assert_eq!(cks, vec!["step-000050.qckpt", "step-000100.qckpt"]);
    // damage the newest: resume falls back to the previous one and says so
    let newest = run.join("checkpoints").join(&cks[1]);
    let mut bytes = std::fs::read(&newest).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x40;
    std::fs::write(&newest, &bytes).unwrap();
    let out = qnas(&[
        "train",
        "spaces/presets/digits.ron",
        "--run",
        run.to_str().unwrap(),
        "--steps",
        "100",
        "--resume",
        "--json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("skipped damaged checkpoint") && err.contains("step-000100.qckpt"),
        "{err}"
    );
    let s: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(s["resumed_from"], 50);
    assert_eq!(s["steps"], 100);
    // damage every checkpoint: a clear error naming the folder, exit code 2, no panic
    for c in checkpoints(&run) {
        let p = run.join("checkpoints").join(c);
        let len = std::fs::metadata(&p).unwrap().len();
        std::fs::OpenOptions::new()
            .write(true)
            .open(&p)
            .unwrap()
            .set_len(len / 3)
            .unwrap();
    }
    let out = qnas(&[
        "train",
        "spaces/presets/digits.ron",
        "--run",
        run.to_str().unwrap(),
        "--resume",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no good checkpoint") && err.contains("truncated"),
        "{err}"
    );
    assert!(!err.contains("panicked"));
    std::fs::remove_dir_all(run).unwrap();
}

#[test]
fn a_checkpoint_of_another_space_is_refused() {
    let run = tmp("other");
    assert!(
        qnas(&[
            "train",
            "spaces/presets/digits.ron",
            "--run",
            run.to_str().unwrap(),
            "--steps",
            "50"
        ])
        .status
        .success()
    );
    let other = run.join("other.ron");
    let src = std::fs::read_to_string(root().join("spaces/presets/digits.ron"))
        .unwrap()
        .replace("width: [8, 16]", "width: [8, 12]")
        .replace("../../data", &root().join("data").display().to_string());
    std::fs::write(&other, src).unwrap();
    let out = qnas(&[
        "train",
        other.to_str().unwrap(),
        "--run",
        run.to_str().unwrap(),
        "--resume",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("another space") || err.contains("fingerprint"),
        "{err}"
    );
    std::fs::remove_dir_all(run).unwrap();
}

#[test]
fn a_diverging_run_stops_with_a_clear_message_and_keeps_its_checkpoints() {
    let run = tmp("diverge");
    let file = run.join("diverge.ron");
    let src = std::fs::read_to_string(root().join("spaces/presets/digits.ron"))
        .unwrap()
        .replace("lr: 0.05", "lr: 1e30")
        .replace("checkpoint_every: 50", "checkpoint_every: 1")
        .replace("../../data", &root().join("data").display().to_string());
    std::fs::write(&file, src).unwrap();
    let out = qnas(&[
        "train",
        file.to_str().unwrap(),
        "--run",
        run.join("r").to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("became") && err.contains("resume from the last good checkpoint"),
        "{err}"
    );
    let cks = checkpoints(&run.join("r"));
    assert!(
        !cks.is_empty(),
        "the good steps before the failure are checkpointed"
    );
    std::fs::remove_dir_all(run).unwrap();
}

#[test]
fn a_mixture_of_four_supernets_reports_a_balanced_assignment() {
    let run = tmp("mixture");
    let file = run.join("mixture.ron");
    let src = format!(
        r#"(
        version: 1,
        name: "digits-mixture",
        input: (channels: 1, height: 8, width: 8),
        classes: 10,
        stem: (width: [8]),
        stages: [
            (block: ResidualBasic, depth: [2], width: [16], stride: 1),
            (block: ResidualBasic, depth: [2], width: [24], stride: 1),
        ],
        downsampling: (configs: Choose(count: 2, from: [0, 1, 2, 3]), ops: [MaxPool]),
        data: (kind: Mnist, path: "{}"),
        train: (steps: 60, batch_size: 32, sampling: Sandwich(random: 0), mixture: (supernets: 4), checkpoint_every: 30),
    )"#,
        root().join("data/uci-digits-8x8").display()
    );
    std::fs::write(&file, src).unwrap();
    let out = qnas(&[
        "train",
        file.to_str().unwrap(),
        "--run",
        run.join("r").to_str().unwrap(),
        "--json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let s: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let mix = &s["mixture"];
    let matrix = mix["matrix"].as_array().unwrap();
    assert_eq!(matrix.len(), 6, "C(4, 2) pooling configurations");
    assert!(matrix.iter().all(|row| row.as_array().unwrap().len() == 4));
    for m in mix["marginal"].as_array().unwrap() {
        assert!((m.as_f64().unwrap() - 0.25).abs() < 1e-3, "{mix}");
    }
    assert_eq!(mix["assignments"].as_array().unwrap().len(), 6);
    // resuming restores the mixture too
    let out = qnas(&[
        "train",
        file.to_str().unwrap(),
        "--run",
        run.join("r").to_str().unwrap(),
        "--steps",
        "90",
        "--resume",
        "--json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::remove_dir_all(run).unwrap();
}

#[test]
fn a_second_writer_is_refused_while_a_run_trains_and_a_killed_holder_is_taken_over() {
    let run = tmp("locked");
    let r = run.to_str().unwrap();
    // killed when the test ends, however it ends
    struct Killed(std::process::Child);
    impl Drop for Killed {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let mut child = Killed(spawn_qnas(&[
        "train",
        "spaces/presets/digits.ron",
        "--run",
        r,
        "--steps",
        "1000000",
    ]));
    let pid = child.0.id();
    let lock = run.join("qnas.lock");
    wait_until("the training's lock and a first checkpoint", || {
        std::fs::read_to_string(&lock).is_ok_and(|t| t.contains(&format!("\"pid\":{pid}")))
            && !checkpoints(&run).is_empty()
    });
    let refused = |args: &[&str]| {
        let out = qnas(args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let e: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(e["schema"], "qnas.error/1");
        let message = e["errors"][0]["message"].as_str().unwrap().to_string();
        assert!(
            message.contains(&format!("in use by qnas train (process {pid}, ")),
            "{message}"
        );
    };
    // a second training (even one that would start over) and a search are refused
    let digits = "spaces/presets/digits.ron";
    refused(&["train", digits, "--run", r, "--restart", "--json"]);
    refused(&["search", digits, "--run", r, "--json"]);
    assert!(
        child.0.try_wait().unwrap().is_none(),
        "the first still runs"
    );

    // killed, its lock is free: the next command takes it over
    drop(child);
    let out = qnas_ok(&[
        "train",
        digits,
        "--run",
        r,
        "--restart",
        "--steps",
        "20",
        "--json",
    ]);
    let s: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(s["steps"], 20);
    std::fs::remove_dir_all(run).unwrap();
}
