//! `qnas space check` and `qnas space sample`, run as a user runs them.

mod common;
use common::*;

use std::process::Output;

fn json(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)))
}

fn within(v: &serde_json::Value, target: f64) -> bool {
    let v = v.as_f64().unwrap();
    ((v - target) / target).abs() <= 0.01
}

#[test]
fn check_resnet18_reports_published_costs() {
    let out = qnas(&["space", "check", "spaces/presets/resnet18.ron", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r = json(&out);
    assert_eq!(r["schema"], "qnas.space.check/1");
    let c = &r["largest"]["cost"];
    assert!(within(&c["macs"], 1.82e9), "{c}");
    assert!(within(&c["params"], 11.69e6), "{c}");
    assert!(within(&c["bitops"], 1.858e12), "{c}");
    assert_eq!(r["size"]["exact"], "1");
    let out = qnas(&[
        "space",
        "check",
        "spaces/presets/resnet18-w8a8.ron",
        "--json",
    ]);
    assert!(within(&json(&out)["smallest"]["cost"]["bitops"], 1.16e11));
}

#[test]
fn check_text_lists_decisions_size_and_costs() {
    let out = qnas(&["space", "check", "spaces/presets/mnist.ron", "--layers"]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    for needle in [
        "space `mnist`",
        "decisions (",
        "s0.depth",
        "size: ",
        "smallest",
        "largest",
        "layers of the largest member",
        "head.fc",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in\n{text}");
    }
}

#[test]
fn every_preset_checks_clean() {
    for entry in std::fs::read_dir(root().join("spaces/presets")).unwrap() {
        let path = entry.unwrap().path();
        let out = qnas(&["space", "check", path.to_str().unwrap(), "--json"]);
        assert!(
            out.status.success(),
            "{}: {}",
            path.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn malformed_file_exits_2_with_a_located_diagnostic() {
    let file = "spaces/tests/malformed/even_kernel.ron";
    let out = qnas(&["space", "check", file]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("even_kernel.ron:9:76"), "{err}");
    assert!(err.contains("kernel size 4 is even"), "{err}");
    assert!(!err.contains("panicked"), "{err}");

    let out = qnas(&["space", "check", file, "--json"]);
    assert_eq!(out.status.code(), Some(2));
    let r = json(&out);
    assert_eq!(r["schema"], "qnas.error/1");
    assert_eq!(r["errors"][0]["line"], 9);
    assert_eq!(r["errors"][0]["column"], 76);
    assert_eq!(r["errors"][0]["field"], "stages[0].kernel[1]");

    let out = qnas(&["space", "check", "does/not/exist.ron"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("does/not/exist.ron"));
}

#[test]
fn sample_is_seeded_and_valid() {
    let a = qnas(&[
        "space",
        "sample",
        "spaces/presets/resnet20.ron",
        "-n",
        "4",
        "--seed",
        "9",
        "--json",
    ]);
    let b = qnas(&[
        "space",
        "sample",
        "spaces/presets/resnet20.ron",
        "-n",
        "4",
        "--seed",
        "9",
        "--json",
    ]);
    assert!(a.status.success());
    assert_eq!(a.stdout, b.stdout);
    let r = json(&a);
    assert_eq!(r["schema"], "qnas.space.sample/1");
    let archs = r["archs"].as_array().unwrap();
    assert_eq!(archs.len(), 4);
    let space = spaces::Space::load(&root().join("spaces/presets/resnet20.ron")).unwrap();
    for s in archs {
        let arch: spaces::Arch = serde_json::from_value(s["arch"].clone()).unwrap();
        space.validate(&arch).unwrap();
        assert_eq!(
            s["cost"]["bitops"].as_u64().unwrap(),
            space.cost(&arch).unwrap().bitops
        );
    }
    let text = qnas(&[
        "space",
        "sample",
        "spaces/presets/mnist.ron",
        "-n",
        "2",
        "--seed",
        "1",
    ]);
    assert!(String::from_utf8_lossy(&text.stdout).contains("// sample 1"));
    // one sample is a valid arch file of its space (RON comments), as `qnas train --arch` reads
    let one = qnas(&["space", "sample", "spaces/presets/mnist.ron", "--seed", "4"]);
    let space = spaces::Space::load(&root().join("spaces/presets/mnist.ron")).unwrap();
    let arch =
        spaces::Arch::parse(&String::from_utf8_lossy(&one.stdout), "sample", &space).unwrap();
    assert_eq!(
        arch.to_ron().trim(),
        String::from_utf8_lossy(&one.stdout)
            .lines()
            .skip(1)
            .collect::<Vec<_>>()
            .join("\n")
            .trim()
    );
}

#[test]
fn help_has_examples() {
    for args in [
        vec!["--help"],
        vec!["space", "check", "--help"],
        vec!["space", "sample", "--help"],
    ] {
        let out = qnas(&args);
        assert!(out.status.success());
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("Example"),
            "{args:?}"
        );
    }
}
