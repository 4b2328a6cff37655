//! Several devices: `qnas train --devices` (data-parallel training, two replicas on the CPU's
//! one `flex` device), its resume and checkpoints, `qnas search --devices`, and the errors of a
//! malformed or unusable device list.

mod common;
use common::*;

use std::path::Path;

fn losses(run: &Path) -> Vec<f64> {
    std::fs::read_to_string(run.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["loss"]
                .as_f64()
                .unwrap()
        })
        .collect()
}

fn train(run: &Path, extra: &[&str]) -> std::process::Output {
    let mut args = vec![
        "train",
        "spaces/presets/digits.ron",
        "--run",
        run.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    qnas_ok(&args)
}

#[test]
fn two_replicas_train_resume_exactly_and_write_ordinary_checkpoints() {
    // uninterrupted, on two replicas
    let full = tmp("dp-full");
    let out = train(&full, &["--devices", "flex,flex", "--steps", "60"]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("data-parallel training on 2 replicas"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let a = losses(&full);
    assert_eq!(a.len(), 60);
    assert!(a.iter().all(|l| l.is_finite()));
    assert!(
        a[55..].iter().sum::<f64>() < a[..5].iter().sum::<f64>(),
        "two replicas learn: {a:?}"
    );
    // the same run with its last checkpoint gone, resumed from step 50 (the checkpoint before):
    // the same losses, step for step
    let part = tmp("dp-part");
    for f in ["space.ron", "config.json", "source.json"] {
        std::fs::copy(full.join(f), part.join(f)).unwrap();
    }
    std::fs::copy(full.join("metrics.jsonl"), part.join("metrics.jsonl")).unwrap();
    std::fs::create_dir_all(part.join("checkpoints")).unwrap();
    let ck = "checkpoints/step-000050.qckpt";
    std::fs::copy(full.join(ck), part.join(ck)).unwrap();
    let out = train(
        &part,
        &[
            "--devices",
            "flex,flex",
            "--steps",
            "60",
            "--resume",
            "--json",
        ],
    );
    let s: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(s["resumed_from"], 50);
    let b = losses(&part);
    assert_eq!(a.len(), b.len());
    for (i, (x, y)) in a.iter().zip(&b).enumerate() {
        assert!(x == y, "step {}: {x} vs {y}", i + 1);
    }
    // one device resumes the two replicas' checkpoint (the format does not change)
    let out = train(&full, &["--steps", "65", "--resume", "--json"]);
    let s: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(s["steps"], 65);
    assert_eq!(s["resumed_from"], 60);
    // the space file's `train.devices` setting trains the same way as --devices
    let text = std::fs::read_to_string(root().join("spaces/presets/digits.ron"))
        .unwrap()
        .replace(
            "checkpoint_every: 50,",
            "checkpoint_every: 50, devices: [\"flex\", \"flex\"],",
        )
        .replace("../../data/", &format!("{}/data/", root().display()));
    let file = tmp("dp-setting").with_extension("ron");
    std::fs::write(&file, text).unwrap();
    let set = tmp("dp-set");
    qnas_ok(&[
        "train",
        file.to_str().unwrap(),
        "--run",
        set.to_str().unwrap(),
        "--steps",
        "60",
    ]);
    assert_eq!(losses(&set), a);
    for d in [&full, &part, &set] {
        std::fs::remove_dir_all(d).unwrap();
    }
    std::fs::remove_file(file).unwrap();
}

#[test]
fn a_search_on_two_devices_measures_what_one_device_measures() {
    let run = tmp("dp-search");
    train(&run, &["--steps", "30"]);
    let search = |extra: &[&str]| {
        let mut args = vec![
            "search",
            "spaces/presets/digits.ron",
            "--run",
            run.to_str().unwrap(),
            "--strategy",
            "random",
            "--budget",
            "6",
            "--json",
        ];
        args.extend_from_slice(extra);
        let out = qnas_ok(&args);
        let front: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let csv = std::fs::read_to_string(run.join("search/pareto.csv")).unwrap();
        std::fs::remove_dir_all(run.join("search")).unwrap();
        (front["front"].clone(), csv)
    };
    let one = search(&["--threads", "1"]);
    let two = search(&["--devices", "flex,flex"]);
    assert!(one.0.as_array().is_some_and(|f| !f.is_empty()), "{}", one.0);
    assert_eq!(one, two);
    std::fs::remove_dir_all(run).unwrap();
}

#[test]
fn bad_device_lists_are_refused_with_exit_code_2() {
    let run = tmp("dp-bad");
    let cases: &[(&[&str], &str)] = &[
        (&["--devices", "tpu"], "unknown backend `tpu`"),
        (&["--devices", "flex,cuda:1"], "two backends"),
        (&["--devices", "flex:2"], "flex has one device"),
        (&["--devices", "cuda:x"], "index `x`"),
    ];
    for (args, expected) in cases {
        let mut all = vec![
            "train",
            "spaces/presets/digits.ron",
            "--run",
            run.to_str().unwrap(),
            "--json",
        ];
        all.extend_from_slice(args);
        let out = qnas(&all);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(doc["schema"], "qnas.error/1");
        let message = doc["errors"][0]["message"].as_str().unwrap();
        assert!(
            message.contains("--devices") && message.contains(expected),
            "{args:?}: {message}"
        );
        // the search's flag says the same
        let out = qnas(&[
            "search",
            "spaces/presets/digits.ron",
            "--json",
            args[0],
            args[1],
        ]);
        assert_eq!(out.status.code(), Some(2), "search {args:?}");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains(expected), "search {args:?}: {text}");
    }
    for (backend, compiled) in [
        ("wgpu", cfg!(feature = "wgpu")),
        ("cuda", cfg!(feature = "cuda")),
    ] {
        if compiled {
            continue;
        }
        let list = format!("{backend},{backend}");
        let out = qnas(&["train", "spaces/presets/digits.ron", "--devices", &list]);
        assert_eq!(out.status.code(), Some(2));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(&format!("--features {backend}")), "{err}");
    }
    // --device and --devices together
    let out = qnas(&[
        "train",
        "spaces/presets/digits.ron",
        "--device",
        "flex",
        "--devices",
        "flex,flex",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(!run.join("checkpoints").exists(), "nothing was trained");
}
