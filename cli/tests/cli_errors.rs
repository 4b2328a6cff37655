//! Every command, given `--json` and input it cannot use, prints a `qnas.error/1` document on
//! stdout and exits with code 2; without `--json` it prints a message on stderr, not a panic.

mod common;
use common::*;

fn assert_error_document(args: &[&str]) {
    let out = qnas(args);
    assert_eq!(
        out.status.code(),
        Some(2),
        "qnas {}: {}{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "qnas {}: stdout is not JSON ({e}): {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout)
        )
    });
    assert_eq!(doc["schema"], "qnas.error/1", "{doc}");
    assert_eq!(doc["ok"], false, "{doc}");
    let message = doc["errors"][0]["message"].as_str().unwrap_or("");
    assert!(!message.is_empty(), "{doc}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn every_command_reports_bad_input_as_a_json_error_document() {
    let d = tmp("errors");
    let missing = d.join("missing.ron");
    let missing = missing.to_str().unwrap();
    let no_model = d.join("no-model");
    let no_model = no_model.to_str().unwrap();
    let png = d.join("x.png");
    std::fs::write(&png, b"not a png").unwrap();
    let cases: Vec<Vec<&str>> = vec![
        vec!["space", "check", missing, "--json"],
        vec!["space", "sample", missing, "--json"],
        vec!["bench", "--space", missing, "--json"],
        vec!["train", missing, "--json"],
        vec![
            "train",
            "spaces/presets/digits.ron",
            "--arch",
            missing,
            "--json",
        ],
        vec!["search", missing, "--json"],
        vec!["run", missing, "--json"],
        vec!["export", no_model, "--json"],
        vec!["eval", no_model, "--json"],
        vec!["predict", no_model, png.to_str().unwrap(), "--json"],
        vec!["finetune", no_model, "--json"],
        vec!["correlate", no_model, "--json"],
        vec!["worker", no_model, "--json"],
        // a storage qnas does not know, found before anything is loaded
        vec![
            "worker",
            "spaces/presets/digits.ron",
            "--storage",
            "mysql://u:pw@h/db",
            "--json",
        ],
        vec![
            "worker",
            "spaces/presets/digits.ron",
            "--stale-after",
            "0",
            "--json",
        ],
        // what clap rejects: an unknown flag, a value of the wrong type
        vec!["train", "spaces/presets/digits.ron", "--bogus", "--json"],
        vec![
            "search",
            "spaces/presets/digits.ron",
            "--budget",
            "many",
            "--json",
        ],
        // a search of a run that was never trained
        vec![
            "search",
            "spaces/presets/digits.ron",
            "--run",
            no_model,
            "--json",
        ],
    ];
    for args in &cases {
        assert_error_document(args);
    }
    // a path that is neither a run folder nor a space file is named as such
    let out = qnas(&["correlate", no_model]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no such run folder or space file"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // without --json: clap's usage error and its exit code 2
    let out = qnas(&["train", "--bogus"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--bogus"));
    // help still prints with --json on the line
    for command in ["correlate", "worker", "search"] {
        let help = qnas(&[command, "--help", "--json"]);
        assert_eq!(help.status.code(), Some(0));
        assert!(String::from_utf8_lossy(&help.stdout).contains("Example"));
    }
    // the storage's password is never printed
    let out = qnas(&[
        "worker",
        "spaces/presets/digits.ron",
        "--storage",
        "mysql://u:pw@h/db",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("mysql://u:***@h/db"), "{stderr}");
    assert!(!stderr.contains("pw@"), "{stderr}");
}
