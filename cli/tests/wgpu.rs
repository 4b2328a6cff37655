//! `--device wgpu` end to end, built with `--features wgpu` (CI runs it on Mesa's software
//! Vulkan adapter, lavapipe): the digits supernet trained for a few steps, searched and
//! exported on wgpu, the exported model measured again on `flex`, and `qnas bench`. Without an
//! adapter the test is skipped with a note, unless `QNAS_REQUIRE_WGPU` is set (`.ci/run` sets
//! it), which makes it fail.
#![cfg(feature = "wgpu")]

mod common;
use common::*;

use std::time::Instant;

/// Largest number of validation or test images on which wgpu's and flex's inference of one
/// exported model may disagree, as a share of the images: the two backends sum in different
/// orders, which can flip a borderline image (and the rounding of a fake-quantized activation
/// that lands on a rounding boundary), never more than this.
const TOLERANCE: f64 = 0.01;

fn json(out: &std::process::Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)))
}

#[test]
#[allow(clippy::print_stderr)]
fn train_search_export_and_bench_on_wgpu() {
    let t0 = Instant::now();
    let probe = qnas(&[
        "bench",
        "--device",
        "wgpu",
        "--space",
        "spaces/presets/digits.ron",
        "--batch",
        "8",
        "--steps",
        "2",
        "--warmup",
        "1",
        "--json",
    ]);
    let stderr = String::from_utf8_lossy(&probe.stderr);
    if probe.status.code() == Some(1) && stderr.contains("no usable device") {
        assert!(
            std::env::var_os("QNAS_REQUIRE_WGPU").is_none(),
            "QNAS_REQUIRE_WGPU is set but wgpu has no adapter (install mesa-vulkan-drivers): \
             {stderr}"
        );
        eprintln!("skipped: wgpu has no adapter here ({stderr})");
        return;
    }
    assert!(probe.status.success(), "qnas bench --device wgpu: {stderr}");
    let bench = json(&probe);
    assert_eq!(bench["device"], "wgpu");
    assert_eq!(
        bench["kernels"], "burn",
        "our kernels are flex's alone: {bench}"
    );
    for mode in ["train", "infer"] {
        let ips = bench[mode]["fp32"]["img_per_s"].as_f64().unwrap();
        assert!(ips > 0.0 && ips.is_finite(), "{mode}: {bench}");
    }
    eprintln!(
        "wgpu bench: train {:.0} img/s, infer {:.0} img/s ({:.0} s)",
        bench["train"]["fp32"]["img_per_s"].as_f64().unwrap(),
        bench["infer"]["fp32"]["img_per_s"].as_f64().unwrap(),
        t0.elapsed().as_secs_f64()
    );

    let run = tmp("wgpu");
    let r = run.to_str().unwrap();
    let space = "spaces/presets/digits.ron";
    let trained = json(&qnas_ok(&[
        "train", space, "--run", r, "--device", "wgpu", "--steps", "20", "--json",
    ]));
    assert_eq!(trained["steps"], 20);
    let text = std::fs::read_to_string(run.join("metrics.jsonl")).unwrap();
    let losses: Vec<f64> = text
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["loss"]
                .as_f64()
                .unwrap()
        })
        .collect();
    assert_eq!(losses.len(), 20);
    assert!(losses.iter().all(|l| l.is_finite()), "{losses:?}");
    eprintln!(
        "wgpu training: losses {losses:?} ({:.0} s)",
        t0.elapsed().as_secs_f64()
    );
    qnas_ok(&[
        "search",
        space,
        "--run",
        r,
        "--device",
        "wgpu",
        "--strategy",
        "random",
        "--budget",
        "2",
        "--json",
    ]);
    let exported = json(&qnas_ok(&[
        "export", r, "--pick", "1", "--device", "wgpu", "--json",
    ]));
    eprintln!(
        "wgpu export: {exported} ({:.0} s)",
        t0.elapsed().as_secs_f64()
    );
    let folder = std::fs::read_dir(run.join("export"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.join("model.json").exists())
        .unwrap_or_else(|| panic!("no model exported: {exported}"));
    // the model measured on wgpu at export against the same model measured on flex now
    let eval = json(&qnas_ok(&[
        "eval",
        folder.to_str().unwrap(),
        "--device",
        "flex",
        "--json",
    ]));
    for split in ["validation", "test"] {
        let on_wgpu = &eval["reported"][split];
        let on_flex = &eval[split];
        let total = on_flex["total"].as_u64().unwrap();
        assert_eq!(on_wgpu["total"].as_u64().unwrap(), total);
        let (w, f) = (
            on_wgpu["correct"].as_u64().unwrap() as f64,
            on_flex["correct"].as_u64().unwrap() as f64,
        );
        eprintln!(
            "{split}: wgpu {w}/{total}, flex {f}/{total} (difference {} images)",
            (w - f).abs()
        );
        assert!(
            (w - f).abs() <= (TOLERANCE * total as f64).max(1.0),
            "{split}: wgpu {w} vs flex {f} correct of {total}"
        );
    }
    eprintln!("wgpu test: {:.0} s in all", t0.elapsed().as_secs_f64());
    std::fs::remove_dir_all(run).unwrap();
}
