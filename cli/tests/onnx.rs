//! `qnas export --onnx`: int8, int4 and fp8 (e4m3) members of a briefly trained digits run,
//! run in onnxruntime, give the same top-1 answers as `qnas eval`'s network on the whole test
//! set (at least 99.5% agreement), and the largest logit difference is reported.
//!
//! Needs Python with onnxruntime and numpy: `.ci/run` installs them from PyPI into a virtual
//! environment and points `QNAS_PYTHON` at it; without `QNAS_PYTHON`, `python3` is used.

mod common;
use common::*;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use burn::tensor::Device;
use evaluators::data::{BatchLoader, DataSpec, LoaderConfig};
use spaces::{Format, Space};

fn python() -> String {
    std::env::var("QNAS_PYTHON").unwrap_or_else(|_| "python3".to_string())
}

fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// Test images normalized as the model says, and qnas's logits for them.
fn inputs_and_logits(model: &Path) -> (Vec<f32>, Vec<f32>, [usize; 5]) {
    let device = Device::flex();
    let m = qnas_cli::model_dir::load_model(model, &device).unwrap();
    let info = &m.info;
    let spec = DataSpec::new(info.data.kind, info.data.path.clone());
    let test = Arc::new(spec.load_test(Path::new("")).unwrap());
    let loader =
        BatchLoader::new(test, info.normalization.clone(), LoaderConfig::eval(100)).unwrap();
    let (mut xs, mut ys) = (Vec::new(), Vec::new());
    let mut n = 0;
    for b in loader.epoch(0, &device) {
        n += b.images.dims()[0];
        xs.extend(b.images.clone().into_data().try_to_vec::<f32>().unwrap());
        ys.extend(
            m.net
                .forward(b.images)
                .into_data()
                .try_to_vec::<f32>()
                .unwrap(),
        );
    }
    let i = info.input;
    (xs, ys, [n, i.channels, i.height, i.width, info.classes])
}

/// Runs `dir/model.onnx` in onnxruntime on the test images and compares it with qnas's logits
/// (files go to `scratch`): the top-1 agreement and a line for the report.
fn compare_in_onnxruntime(dir: &Path, scratch: &Path, name: &str) -> (f64, String) {
    let (xs, ys, [n, c, h, w, k]) = inputs_and_logits(dir);
    let (xf, yf) = (
        scratch.join(format!("{name}.x")),
        scratch.join(format!("{name}.y")),
    );
    std::fs::write(&xf, f32_bytes(&xs)).unwrap();
    std::fs::write(&yf, f32_bytes(&ys)).unwrap();
    let check = Command::new(python())
        .arg(root().join("experiments/reference/onnx_check.py"))
        .arg(dir.join("model.onnx"))
        .args([&xf, &yf])
        .args([n, c, h, w, k].map(|v| v.to_string()))
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "{name}: onnxruntime failed: {}",
        String::from_utf8_lossy(&check.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&check.stdout).unwrap();
    let agree = v["top1_agreement"].as_f64().unwrap();
    let diff = v["max_abs_diff"].as_f64().unwrap();
    let line = format!(
        "{name}: {n} test images, top-1 agreement {:.2}%, max |logit difference| {diff:.3e} (onnxruntime {})",
        agree * 100.0,
        v["onnxruntime"].as_str().unwrap_or("?")
    );
    (agree, line)
}

/// Exports the largest member of `space` with every format `format`, with `--arch` and
/// `--onnx`, from `run` into `scratch/arch/NAME`: its folder and `model.json`.
fn export_largest(
    space: &Space,
    format: Format,
    run: &Path,
    scratch: &Path,
    name: &str,
) -> (PathBuf, serde_json::Value) {
    let arch = space
        .with_uniform_formats(&space.largest(), format, format)
        .unwrap();
    let file = scratch.join(format!("{name}.ron"));
    std::fs::write(&file, arch.to_ron()).unwrap();
    let out_dir = scratch.join("arch");
    let out = qnas_ok(&[
        "export",
        run.to_str().unwrap(),
        "--arch",
        file.to_str().unwrap(),
        "--onnx",
        "--out",
        out_dir.to_str().unwrap(),
        "--json",
    ]);
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    (out_dir.join(name), r["models"][0]["info"].clone())
}

fn require_onnxruntime() {
    let probe = Command::new(python())
        .args(["-c", "import onnxruntime, numpy"])
        .output();
    assert!(
        probe.as_ref().is_ok_and(|o| o.status.success()),
        "this test needs Python with onnxruntime and numpy: run .ci/run (it installs them from \
         PyPI into a virtual environment), or set QNAS_PYTHON to such a python ({:?})",
        probe.map(|o| String::from_utf8_lossy(&o.stderr).to_string())
    );
}

/// The ONNX fallbacks of an exported model that leave activations unquantized (formats without
/// an ONNX type), from its model.json.
fn unquantized_activations(dir: &Path) -> Vec<String> {
    let info: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("model.json")).unwrap()).unwrap();
    info["onnx"]["fallbacks"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|f| f.as_str())
        .filter(|f| f.contains("left unquantized"))
        .map(str::to_string)
        .collect()
}

/// The default job (`qnas run` on the default space and the bundled MNIST data), its front
/// exported with `--onnx`: every member runs in onnxruntime with the same answers (except
/// members whose activations in a format without an ONNX type are left unquantized, a
/// documented fallback: reported, not required), and an int8, an int4 and an fp8 member are
/// among those checked (exported with `--arch` when the front has none).
#[test]
#[allow(clippy::print_stderr)]
fn the_default_runs_front_matches_qnas_in_onnxruntime() {
    require_onnxruntime();
    let d = tmp("onnx-default");
    let run = d.join("run");
    qnas_ok(&[
        "run",
        "spaces/presets/mnist.ron",
        "--run",
        run.to_str().unwrap(),
    ]);
    let out = qnas_ok(&[
        "export",
        run.to_str().unwrap(),
        "--onnx",
        "--out",
        d.join("front").to_str().unwrap(),
        "--json",
    ]);
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut dirs: Vec<(String, PathBuf)> = Vec::new();
    let mut kinds = std::collections::BTreeSet::new();
    for m in r["models"].as_array().unwrap() {
        let dir = PathBuf::from(m["dir"].as_str().unwrap());
        let arch = std::fs::read_to_string(dir.join("arch.ron")).unwrap();
        let checked = unquantized_activations(&dir).is_empty();
        for kind in ["int8", "int4", "e4m3", "e5m2"] {
            if checked && arch.contains(&format!("\"{kind}\"")) {
                kinds.insert(kind.replace("e4m3", "fp8").replace("e5m2", "fp8"));
            }
        }
        dirs.push((format!("front-{}", m["position"]), dir));
    }
    let space = Space::load(&root().join("spaces/presets/mnist.ron")).unwrap();
    for (kind, format) in [
        ("int8", Format::Int(8)),
        ("int4", Format::Int(4)),
        ("fp8", Format::E4M3),
    ] {
        if kinds.contains(kind) {
            continue;
        }
        // not on this front: the largest member in that format
        let name = format!("{kind}-largest");
        let (dir, _) = export_largest(&space, format, &run, &d, &name);
        dirs.push((format!("{name} (--arch)"), dir));
    }
    let mut report = Vec::new();
    let mut checked = 0;
    for (name, dir) in &dirs {
        let (agree, line) = compare_in_onnxruntime(dir, &d, name);
        // Activations in a format ONNX has no type for (e2m1, ...) are left unquantized in
        // the ONNX model, a documented fallback listed in model.json: such a member computes
        // something else by design and is reported, not required to agree.
        let unquantized = unquantized_activations(dir);
        if unquantized.is_empty() {
            report.push(line);
            assert!(agree >= 0.995, "{}", report.join("\n"));
            checked += 1;
        } else {
            report.push(format!("{line} [not required: {}]", unquantized.join("; ")));
        }
    }
    eprintln!("{}", report.join("\n"));
    assert!(
        checked >= 4,
        "too few members without activation fallbacks:\n{}",
        report.join("\n")
    );
    std::fs::remove_dir_all(d).unwrap();
}

#[test]
// the issue asks for the largest logit difference to be reported: the test prints it
#[allow(clippy::print_stderr)]
fn onnx_exports_match_qnas_in_onnxruntime() {
    require_onnxruntime();
    let d = tmp("onnx");
    let run = d.join("run");
    qnas_ok(&[
        "train",
        "spaces/presets/digits.ron",
        "--run",
        run.to_str().unwrap(),
        "--steps",
        "80",
    ]);

    let space = Space::load(&root().join("spaces/presets/digits.ron")).unwrap();
    let mut report = Vec::new();
    for (name, format) in [
        ("int8", Format::Int(8)),
        ("int4", Format::Int(4)),
        ("e4m3", Format::E4M3),
    ] {
        let (dir, info) = export_largest(&space, format, &run, &d, name);
        assert_eq!(info["onnx"]["opset"], 21);
        // every format here has an ONNX type: nothing falls back
        assert_eq!(info["onnx"]["fallbacks"], serde_json::json!([]), "{info}");
        assert!(dir.join("model.onnx").exists());

        let (agree, line) = compare_in_onnxruntime(&dir, &d, name);
        report.push(line);
        assert!(agree >= 0.995, "{}", report.last().unwrap());
    }
    // the figures the issue asks to report
    eprintln!("{}", report.join("\n"));
    std::fs::remove_dir_all(d).unwrap();
}
