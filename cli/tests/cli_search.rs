//! `qnas search` on a briefly trained digits supernet: outputs, the front, resume.

mod common;
use common::*;

use std::path::{Path, PathBuf};

fn trained(name: &str) -> PathBuf {
    let d = tmp(&format!("search-{name}"));
    let out = qnas(&[
        "train",
        "spaces/presets/digits.ron",
        "--run",
        d.to_str().unwrap(),
        "--steps",
        "60",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    d
}

fn front(run: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(run.join("search/pareto.json")).unwrap();
    serde_json::from_str::<serde_json::Value>(&text).unwrap()["front"].clone()
}

#[test]
fn search_writes_a_non_dominated_front_and_its_files() {
    let run = trained("front");
    let out = qnas(&[
        "search",
        "spaces/presets/digits.ron",
        "--run",
        run.to_str().unwrap(),
        "--strategy",
        "random",
        "--budget",
        "12",
        "--json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["schema"], "qnas.search/1");
    assert!(r["hypervolume"].as_f64().unwrap() > 0.0);
    let front = r["front"].as_array().unwrap();
    assert!(!front.is_empty());
    // cheapest first, and accuracy rises along the front; members of equal cost and accuracy
    // (say int4 and e2m1 versions of one network) dominate neither each other and both stay
    for w in front.windows(2) {
        let (b0, b1) = (w[0]["bitops"].as_u64(), w[1]["bitops"].as_u64());
        let (a0, a1) = (w[0]["accuracy"].as_f64(), w[1]["accuracy"].as_f64());
        assert!(b0 <= b1, "{front:?}");
        if b0 < b1 {
            assert!(a0 < a1, "{front:?}");
        } else {
            assert_eq!(a0, a1, "{front:?}");
        }
    }
    let baselines = r["baselines"].as_array().unwrap();
    assert!(
        baselines
            .iter()
            .any(|b| b["origin"] == "baseline int8 largest")
    );
    for f in [
        "evaluated.csv",
        "pareto.csv",
        "pareto.json",
        "pareto.svg",
        "pareto.png",
        "hypervolume.svg",
        "hypervolume.png",
        "formats.svg",
        "formats.png",
        "study.db",
    ] {
        assert!(run.join("search").join(f).exists(), "{f}");
    }
    let csv = std::fs::read_to_string(run.join("search/evaluated.csv")).unwrap();
    assert_eq!(
        csv.lines().count(),
        1 + r["evaluated"].as_u64().unwrap() as usize
    );
    // no evaluated member dominates a front member
    let all: Vec<(f64, u64)> = csv
        .lines()
        .skip(1)
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            (f[1].parse().unwrap(), f[2].parse().unwrap())
        })
        .collect();
    for p in front {
        let (a, b) = (
            p["accuracy"].as_f64().unwrap(),
            p["bitops"].as_u64().unwrap(),
        );
        assert!(
            !all.iter()
                .any(|(x, y)| *x >= a - 5e-7 && *y <= b && (*x > a + 5e-7 || *y < b)),
            "{p}"
        );
    }
    // a second search refuses to overwrite the first
    let again = qnas(&[
        "search",
        "spaces/presets/digits.ron",
        "--run",
        run.to_str().unwrap(),
        "--strategy",
        "random",
        "--budget",
        "12",
    ]);
    assert_eq!(again.status.code(), Some(2));
    std::fs::remove_dir_all(run).unwrap();
}

#[test]
fn an_interrupted_search_resumes_to_the_same_front() {
    let full = trained("full");
    let out = qnas(&[
        "search",
        "spaces/presets/digits.ron",
        "--run",
        full.to_str().unwrap(),
        "--strategy",
        "nsga2",
        "--budget",
        "48",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let run = trained("killed");
    let mut child = spawn_qnas(&[
        "search",
        "spaces/presets/digits.ron",
        "--run",
        run.to_str().unwrap(),
        "--strategy",
        "nsga2",
        "--budget",
        "48",
    ]);
    let search_dir = run.join("search");
    wait_until("a saved search of 20 members", || {
        saved_rows(&search_dir, "digits") >= 20
    });
    child.kill().unwrap();
    child.wait().unwrap();
    let out = qnas(&[
        "search",
        "spaces/presets/digits.ron",
        "--run",
        run.to_str().unwrap(),
        "--strategy",
        "nsga2",
        "--budget",
        "48",
        "--resume",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(front(&full), front(&run));
    std::fs::remove_dir_all(full).unwrap();
    std::fs::remove_dir_all(run).unwrap();
}

#[test]
fn search_without_a_trained_supernet_is_a_clear_error() {
    let d = std::env::temp_dir().join(format!("qnas-search-none-{}", std::process::id()));
    let out = qnas(&[
        "search",
        "spaces/presets/digits.ron",
        "--run",
        d.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("qnas train"));
}

#[test]
fn fliqs_searches_one_member_per_target_and_can_train_the_supernet_with_the_policy() {
    let run = trained("fliqs");
    let out = qnas(&[
        "search",
        "spaces/presets/digits.ron",
        "--run",
        run.to_str().unwrap(),
        "--strategy",
        "fliqs",
        "--fliqs-train",
        "--target",
        "0.05,0.3",
        // 50 policy updates per target: at 10 (budget 40) the policy is still close to uniform
        // and the argmaxes of the two targets come in the right order on about three seeds in
        // four, whatever the dynamics (examples/fliqs_convergence on this space, 40 seeds)
        "--budget",
        "200",
        "--json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["settings"]["targets"], serde_json::json!([0.05, 0.3]));
    let csv = std::fs::read_to_string(run.join("search/evaluated.csv")).unwrap();
    for t in ["0.05", "0.3"] {
        assert!(
            csv.contains(&format!("fliqs target {t} (trained with the policy)")),
            "{csv}"
        );
    }
    for stage in 0..2 {
        assert!(
            run.join(format!("search/fliqs-stage-{stage}.qckpt"))
                .exists()
        );
    }
    // the cheaper target gives the cheaper member
    let bitops = |t: &str| -> u64 {
        let line = csv
            .lines()
            .find(|l| l.contains(&format!("fliqs target {t} ")))
            .unwrap();
        line.split(',').nth(2).unwrap().parse().unwrap()
    };
    assert!(bitops("0.05") < bitops("0.3"));
    std::fs::remove_dir_all(run).unwrap();
}

#[test]
fn run_trains_then_searches_and_a_second_run_resumes_both_stages() {
    let run = tmp("run");
    let out = qnas(&[
        "run",
        "spaces/presets/digits.ron",
        "--run",
        run.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("Pareto front") && text.contains("pareto.svg"),
        "{text}"
    );
    for f in ["train.json", "train.svg", "train.png", "search/pareto.png"] {
        assert!(run.join(f).exists(), "{f}");
    }
    // the time of each stage, with the search's time per member
    let time = text.lines().find(|l| l.starts_with("time: ")).unwrap_or("");
    assert!(
        time.contains("time: training ") && time.contains(" s each") && time.contains("export "),
        "{text}"
    );
    // every member of the front is exported, and listed
    let first = front(&run);
    let n = first.as_array().unwrap().len();
    for p in 1..=n {
        let d = run.join(format!("export/front-{p:02}"));
        assert!(d.join("weights.safetensors").exists(), "{}", d.display());
        assert!(text.contains(&d.display().to_string()), "{text}");
    }
    let again = qnas(&[
        "run",
        "spaces/presets/digits.ron",
        "--run",
        run.to_str().unwrap(),
    ]);
    assert!(
        again.status.success(),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    let err = String::from_utf8_lossy(&again.stderr);
    assert!(
        err.contains("training: already done")
            && err.contains("search (resuming)")
            && err.matches("(kept)").count() == n,
        "{err}"
    );
    assert_eq!(front(&run), first);
    let time = String::from_utf8_lossy(&again.stdout);
    assert!(
        time.contains("time: training already done") && time.contains(", resumed)"),
        "{time}"
    );
    // --onnx re-exports the folders that lack model.onnx
    let onnx = qnas_ok(&[
        "run",
        "spaces/presets/digits.ron",
        "--run",
        run.to_str().unwrap(),
        "--onnx",
    ]);
    assert!(!String::from_utf8_lossy(&onnx.stderr).contains("(kept)"));
    for p in 1..=n {
        assert!(run.join(format!("export/front-{p:02}/model.onnx")).exists());
    }
    std::fs::remove_dir_all(run).unwrap();
}
