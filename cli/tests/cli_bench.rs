//! `qnas bench`, run as a user runs it, on a tiny setting (no timing thresholds).

mod common;
use common::*;

fn positive(v: &serde_json::Value) -> bool {
    v.as_f64().is_some_and(|x| x > 0.0 && x.is_finite())
}

#[test]
fn bench_json_has_every_field() {
    let out = qnas(&[
        "bench",
        "--space",
        "spaces/presets/digits.ron",
        "--batch",
        "4",
        "--steps",
        "2",
        "--warmup",
        "1",
        "--json",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let r: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)));
    assert_eq!(r["schema"], "qnas.bench/1");
    assert_eq!(r["device"], "flex");
    assert_eq!(r["space"], "digits");
    assert_eq!(r["member"], "largest");
    assert_eq!(r["batch"], 4);
    assert_eq!(r["steps"], 2);
    assert_eq!(r["warmup"], 1);
    assert_eq!(r["input"], serde_json::json!([1, 8, 8]));
    assert_eq!(r["kernels"], "qnas");
    assert!(r["sgemm_peak_method"].as_str().unwrap().contains("1024"));
    for key in [
        "threads",
        "macs",
        "params",
        "classes",
        "sgemm_peak_gflop_per_s",
    ] {
        assert!(positive(&r[key]), "{key}: {}", r[key]);
    }
    assert!(r["flop_convention"].as_str().unwrap().contains("2*MACs"));
    assert_eq!(r["formats"]["int4"]["int4/int4"], 9, "{}", r["formats"]);
    for mode in ["train", "infer"] {
        for variant in ["fp32", "int4"] {
            let m = &r[mode][variant];
            for key in ["img_per_s", "median_s", "gflop_per_s", "peak_share"] {
                assert!(positive(&m[key]), "{mode}.{variant}.{key}: {m}");
            }
            let steps = m["step_s"].as_array().unwrap();
            assert_eq!(steps.len(), 2, "{m}");
            assert!(steps.iter().all(positive), "{m}");
            let img = m["img_per_s"].as_f64().unwrap();
            let median = m["median_s"].as_f64().unwrap();
            assert!(
                (img * median - 4.0).abs() < 1e-6,
                "img/s = batch / median: {m}"
            );
        }
        assert!(positive(&r[mode]["fake_quant_overhead"]), "{}", r[mode]);
    }
    // progress goes to stderr, one line per step when stderr is not a terminal: 2 modes x 2
    // variants x (1 warm-up + 2 measured), then the int8 section's 2 engines x (1 + 2)
    assert_eq!(
        stderr.lines().filter(|l| l.contains(" s")).count(),
        18,
        "{stderr}"
    );
}

#[test]
fn kernels_burn_selects_burns_path() {
    let out = qnas(&[
        "bench",
        "--space",
        "spaces/presets/digits.ron",
        "--batch",
        "2",
        "--steps",
        "1",
        "--warmup",
        "0",
        "--kernels",
        "burn",
        "--json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["kernels"], "burn");
    assert!(positive(&r["train"]["fp32"]["img_per_s"]), "{r}");
}

#[test]
fn bench_text_names_the_figures() {
    let out = qnas(&[
        "bench",
        "--space",
        "spaces/presets/digits.ron",
        "--batch",
        "2",
        "--steps",
        "1",
        "--warmup",
        "0",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    for needle in [
        "largest member of `digits`",
        "img/s",
        "train  int4",
        "infer  fp32",
        "fake-quant overhead",
        "GFLOP/s convention",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in\n{text}");
    }
}

#[test]
fn bench_rejects_bad_input_with_exit_code_2() {
    let zero = qnas(&[
        "bench",
        "--space",
        "spaces/presets/digits.ron",
        "--steps",
        "0",
    ]);
    assert_eq!(zero.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&zero.stderr).contains("--steps"));

    let missing = qnas(&["bench", "--space", "no/such/space.ron", "--json"]);
    assert_eq!(missing.status.code(), Some(2));
    let r: serde_json::Value = serde_json::from_slice(&missing.stdout).unwrap();
    assert_eq!(r["schema"], "qnas.error/1");

    // a backend this binary was built without (the wgpu build's bench on wgpu is
    // cli/tests/wgpu.rs's)
    let Some(missing) = [
        ("wgpu", cfg!(feature = "wgpu")),
        ("cuda", cfg!(feature = "cuda")),
    ]
    .into_iter()
    .find_map(|(name, compiled)| (!compiled).then_some(name)) else {
        return;
    };
    let device = qnas(&[
        "bench",
        "--space",
        "spaces/presets/digits.ron",
        "--device",
        missing,
    ]);
    assert_eq!(device.status.code(), Some(2));
    let err = String::from_utf8_lossy(&device.stderr);
    assert!(err.contains(&format!("--features {missing}")), "{err}");
}
