//! `qnas experiment`: the committed experiments' quick versions run from a clean checkout, write
//! their report, plot and results, resume without redoing anything, and a broken experiment
//! file gets a located error.

mod common;

use common::{qnas, qnas_ok, root, tmp};

/// Runs the quick version of `experiments/NAME/experiment.ron` into a fresh folder and checks
/// what it wrote; runs it again and checks that every stage was read back, not redone.
fn quick(name: &str, searches: usize) {
    let dir = tmp(&format!("experiment-{name}"));
    let runs = dir.join("runs");
    let out = dir.join("out");
    let file = format!("experiments/{name}/experiment.ron");
    let args = [
        "experiment",
        file.as_str(),
        "--quick",
        "--runs",
        runs.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--json",
    ];
    let first = qnas_ok(&args);
    let r: serde_json::Value = serde_json::from_slice(&first.stdout).unwrap();
    assert_eq!(r["schema"], "qnas.experiment/1");
    assert_eq!(r["name"], name);
    assert_eq!(r["quick"], true);
    let found = r["searches"].as_array().unwrap();
    assert_eq!(found.len(), searches, "{r:#}");
    for s in found {
        for key in ["hypervolume", "strategy_hypervolume", "uniform_hypervolume"] {
            let h = s[key].as_f64().unwrap();
            assert!((0.0..=1.0).contains(&h), "{key} {h}");
        }
        assert!(s["evaluated"].as_u64().unwrap() >= 1);
        assert!(!s["front"].as_array().unwrap().is_empty());
        let share: f64 = s["format_share"]
            .as_object()
            .unwrap()
            .values()
            .map(|v| v.as_f64().unwrap())
            .sum();
        assert!((share - 1.0).abs() < 1e-9, "shares sum to {share}");
        if s["strategy"] == "hawq" {
            let dir = std::path::Path::new(s["out_dir"].as_str().unwrap());
            assert!(dir.join("hawq.json").is_file());
        }
    }
    for c in r["correlations"].as_array().unwrap() {
        let members = c["members"].as_u64().unwrap();
        assert!(members >= 3, "{c:#}");
        assert_eq!(c["results"].as_array().unwrap().len() as u64, members);
        let dir = std::path::Path::new(c["out_dir"].as_str().unwrap());
        assert!(dir.join("correlate.json").is_file(), "{}", dir.display());
        if let Some(t) = c["analysis"]["kendall_tau_b"]["value"].as_f64() {
            assert!((-1.0..=1.0).contains(&t), "tau {t}");
        }
    }
    let checks = r["checks"].as_array().unwrap();
    assert!(!checks.is_empty());
    for c in checks {
        let wins = c["wins"].as_u64().unwrap() as usize;
        let outcomes = c["outcomes"].as_array().unwrap();
        assert!(!outcomes.is_empty() && wins <= outcomes.len());
        let held = outcomes.iter().filter(|o| o["held"] == true).count();
        assert_eq!(held, wins);
        let expected = if wins == outcomes.len() {
            "Reproduced"
        } else if wins == 0 {
            "NotReproduced"
        } else {
            "Partly"
        };
        assert_eq!(c["verdict"], expected);
    }
    let report = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(report.starts_with(&format!("# Experiment {name} (quick version)")));
    assert!(report.contains("**Verdict: "), "{report}");
    assert!(report.contains("## Checks"));
    let svg = std::fs::read_to_string(out.join("fronts.svg")).unwrap();
    assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
    assert!(svg.contains("uniform baselines"));
    assert!(out.join("fronts.png").exists());
    let saved: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("results.json")).unwrap()).unwrap();
    assert_eq!(saved["searches"], r["searches"]);

    // again: every stage is read back, and the results are the same
    let again = qnas_ok(&args);
    let stderr = String::from_utf8_lossy(&again.stderr);
    assert!(
        !stderr.contains("supernet from"),
        "a search ran again: {stderr}"
    );
    assert!(stderr.contains("already done"), "{stderr}");
    let r2: serde_json::Value = serde_json::from_slice(&again.stdout).unwrap();
    assert_eq!(r2["searches"], r["searches"]);
    assert_eq!(r2["checks"], r["checks"]);
    assert_eq!(r2["correlations"], r["correlations"]);
}

#[test]
fn mixed_vs_uniform_quick() {
    quick("mixed-vs-uniform", 2);
}

#[test]
fn int_vs_float_quick() {
    quick("int-vs-float", 3);
}

#[test]
fn mostly_4bit_quick() {
    quick("mostly-4bit", 1);
}

#[test]
fn strategies_quick() {
    quick("strategies", 5);
}

#[test]
fn sampling_rules_quick() {
    quick("sampling-rules", 3);
}

#[test]
fn balanced_mixture_quick() {
    quick("balanced-mixture", 3);
}

#[test]
fn a_broken_experiment_file_gets_a_located_error() {
    let dir = tmp("experiment-broken");
    let path = dir.join("experiment.ron");
    let preset = root().join("spaces/presets/mnist.ron");
    std::fs::write(
        &path,
        format!(
            "(\n    version: 1,\n    name: \"broken\",\n    claim: \"c\",\n    spaces: [(name: \"m\", file: {:?})],\n    searches: [(label: \"a\", strategy: Nsga2, budget: 0)],\n    correlations: [(search: \"a\", members: 2)],\n    checks: [(claim: \"x\", check: Hypervolume(better: \"a\", worse: \"b\")), (claim: \"y\", check: KendallTau(better: \"a\", worse: \"c\"))],\n)\n",
            preset.display().to_string()
        ),
    )
    .unwrap();
    let out = qnas(&["experiment", path.to_str().unwrap(), "--json"]);
    assert_eq!(out.status.code(), Some(2));
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["schema"], "qnas.error/1");
    let errors = r["errors"].as_array().unwrap();
    let at = |text: &str| {
        errors
            .iter()
            .find(|e| e["message"].as_str().unwrap().contains(text))
            .unwrap_or_else(|| panic!("no error saying {text}: {r:#}"))
    };
    let budget = at("a budget of 0");
    assert_eq!(budget["line"], 6);
    assert_eq!(budget["file"], path.display().to_string());
    let members = at("2 members");
    assert_eq!(members["line"], 7);
    let label = at("no search labelled \"b\"");
    assert_eq!(label["line"], 8);
    let tau = at("no correlation of \"c\"");
    assert_eq!(tau["line"], 8);
    // a syntax error: line and column
    std::fs::write(&path, "(\n    version: 1\n    name: \"x\",\n)\n").unwrap();
    let out = qnas(&["experiment", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("experiment.ron:3:"), "{err}");
}

#[test]
fn a_finished_search_run_with_other_settings_is_not_read_back_as_the_files() {
    let dir = tmp("experiment-changed");
    let path = dir.join("experiment.ron");
    let preset = root().join("spaces/presets/mnist.ron");
    let write = |budget: u32| {
        std::fs::write(
            &path,
            format!(
                "(\n    version: 1,\n    name: \"changed\",\n    claim: \"c\",\n    spaces: [(name: \"m\", file: {:?})],\n    searches: [(label: \"r\", strategy: Random, budget: 8)],\n    quick: (train_steps: 3, budget: {budget}, seeds: 1),\n)\n",
                preset.display().to_string()
            ),
        )
        .unwrap();
    };
    let runs = dir.join("runs");
    let args = [
        "experiment",
        path.to_str().unwrap(),
        "--quick",
        "--runs",
        runs.to_str().unwrap(),
        "--json",
    ];
    write(2);
    qnas_ok(&args);
    write(3);
    let out = qnas(&args);
    assert_eq!(out.status.code(), Some(2));
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let text = r.to_string();
    assert!(
        text.contains("other settings") && text.contains("budget (saved 2, asked 3)"),
        "{r:#}"
    );
    // the finished search is still there
    assert!(runs.join("m/searches/r-seed0/pareto.json").is_file());
}
