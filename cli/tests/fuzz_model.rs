//! Mutation tests of exported model folders: a model exported from a briefly trained digits run,
//! its files edited at random (`model.json`: JSON values replaced, removed, added and set to
//! their limits, bytes edited; `arch.ron` and `space.ron`: the text mutations of the space
//! loader's fuzz test; `weights.safetensors`: its header length, its JSON header (dtypes,
//! shapes, offsets) and its data edited, truncations; `model.bpk`: byte flips and truncations,
//! a file that nothing reads back). Every mutant must be read by `load_model` or give an error
//! that names a file of the folder (syntax and semantic errors of the RON files located inside
//! them); a model that loads must predict, and be evaluated, or give such errors; never a
//! panic. A handful of damaged folders go through `qnas eval --json`: exit code 2 and a
//! `qnas.error/1` document.
//!
//! Every input comes from a fixed seed, so a failure reproduces; a failure names its case.
//! `QNAS_FUZZ_CASES=N` runs `N` in-process cases instead of the default (a longer campaign:
//! `QNAS_FUZZ_CASES=20000 cargo test --release -p qnas-cli --test fuzz_model`).

mod common;
#[path = "../../spaces/tests/mutate/json.rs"]
mod json_mutate;
#[path = "../../spaces/tests/mutate/mod.rs"]
mod mutate;

use json_mutate::{Limits, edit_bytes, edit_value};

/// The largest strings and deepest nesting the JSON mutations make.
const LIMITS: Limits = Limits {
    string: 10_000,
    depth: 300,
};

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use burn::tensor::Device;
use common::*;
use mutate::{Mutator, cases};
use qnas_cli::model_dir::{
    ARCH_FILE, INFO_FILE, ModelError, RECORD_FILE, SPACE_FILE, WEIGHTS_FILE, evaluate_model,
    load_model, predict,
};
use serde_json::{Value, json};
use spaces::Rng;
use supernet::int::Engine;

const FILES: [&str; 5] = [INFO_FILE, SPACE_FILE, ARCH_FILE, WEIGHTS_FILE, RECORD_FILE];

/// A model folder exported from a digits run trained for a few steps, made once per test
/// binary.
fn exported() -> &'static PathBuf {
    static MODEL: OnceLock<PathBuf> = OnceLock::new();
    MODEL.get_or_init(|| {
        let d = tmp("fuzz-model-run");
        let run = d.to_str().unwrap();
        train_and_search(&d, 20, 4);
        let out = d.join("export");
        qnas_ok(&["export", run, "--pick", "1", "--out", out.to_str().unwrap()]);
        let model = std::fs::read_dir(&out)
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| p.is_dir())
            .expect("an exported model folder");
        for f in FILES {
            assert!(model.join(f).is_file(), "{}: {f}", model.display());
        }
        model
    })
}

/// The files of the exported model.
fn originals() -> Vec<(&'static str, Vec<u8>)> {
    let dir = exported();
    FILES
        .iter()
        .map(|&f| (f, std::fs::read(dir.join(f)).unwrap()))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// JSON edits (`model.json`, the header of `weights.safetensors`).

/// The fields of `model.json` that the readers use, set to values at their limits.
fn limit_field(rng: &mut Rng, doc: &mut Value) {
    const FIELDS: &[&[&str]] = &[
        &["input", "channels"],
        &["input", "height"],
        &["input", "width"],
        &["classes"],
        &["normalization", "mean"],
        &["normalization", "std"],
        &["data", "validation_fraction"],
        &["data", "batch_size"],
        &["data", "seed"],
        &["data", "path"],
        &["data", "kind"],
        &["schema"],
        &["space"],
        &["name"],
    ];
    let values = [
        json!(0),
        json!(1),
        json!(2),
        json!(3),
        json!(4),
        json!(7),
        json!(16),
        json!(65_536),
        json!(1u64 << 31),
        json!(u64::MAX),
        json!(-1),
        json!(0.0),
        json!(1.0),
        json!(1.5),
        json!(1e-300),
        json!([]),
        json!([0.0]),
        json!([0.5, 0.5, 0.5]),
        json!([-1e30]),
        json!([3.5e38]),
        json!("Cifar10"),
        json!("Mnist"),
        json!(""),
        json!("/nonexistent"),
        json!("qnas.model/2"),
        json!("digits"),
    ];
    let path = FIELDS[rng.below(FIELDS.len())];
    let mut at = &mut *doc;
    for key in &path[..path.len() - 1] {
        at = &mut at[*key];
    }
    at[path[path.len() - 1]] = values[rng.below(values.len())].clone();
}

/// `model.json` edited.
fn mutate_info(rng: &mut Rng, seed: &[u8]) -> Vec<u8> {
    let mut doc: Value = serde_json::from_slice(seed).unwrap();
    for _ in 0..1 + rng.below(2) {
        if rng.chance(0.5) {
            limit_field(rng, &mut doc);
        } else {
            edit_value(rng, &mut doc, LIMITS);
        }
    }
    let mut b = serde_json::to_vec_pretty(&doc).unwrap();
    if rng.chance(0.25) {
        edit_bytes(rng, &mut b);
    }
    b
}

/// `weights.safetensors` edited: its header length, its JSON header (re-encoded with a length
/// that fits), its data, its end.
fn mutate_weights(rng: &mut Rng, seed: &[u8]) -> Vec<u8> {
    let n = u64::from_le_bytes(seed[..8].try_into().unwrap()) as usize;
    let header: Value = serde_json::from_slice(&seed[8..8 + n]).unwrap();
    let data = &seed[8 + n..];
    match rng.below(6) {
        // the header length at a limit
        0 => {
            let mut b = seed.to_vec();
            let v: u64 = [
                0,
                1,
                7,
                n as u64 - 1,
                n as u64 + 1,
                seed.len() as u64,
                1 << 40,
                u64::MAX,
            ][rng.below(8)];
            b[..8].copy_from_slice(&v.to_le_bytes());
            b
        }
        // the header's values (dtypes, shapes, offsets, metadata) edited
        1..=3 => {
            let mut h = header;
            for _ in 0..1 + rng.below(2) {
                edit_value(rng, &mut h, LIMITS);
            }
            let text = serde_json::to_vec(&h).unwrap();
            let mut b = (text.len() as u64).to_le_bytes().to_vec();
            b.extend_from_slice(&text);
            b.extend_from_slice(data);
            b
        }
        // bytes of the data (codes, scales), or of the header text
        4 => {
            let mut b = seed.to_vec();
            for _ in 0..1 + rng.below(8) {
                let at = rng.below(b.len());
                b[at] ^= 1 + rng.below(255) as u8;
            }
            b
        }
        _ => {
            let mut b = seed.to_vec();
            edit_bytes(rng, &mut b);
            b
        }
    }
}

fn mutate_binary(rng: &mut Rng, seed: &[u8]) -> Vec<u8> {
    let mut b = seed.to_vec();
    for _ in 0..1 + rng.below(3) {
        if rng.chance(0.6) && !b.is_empty() {
            let at = rng.below(b.len());
            b[at] ^= 1 + rng.below(255) as u8;
        } else {
            b.truncate(rng.below(b.len() + 1));
        }
    }
    b
}

// ---------------------------------------------------------------------------------------------
// Checks.

/// Checks an error about the folder `dir` whose file `mutated` was edited: it names the
/// mutated file, or a file whose meaning depends on it (the arch and the weights are read
/// against the space). A space-language error is located inside the file it names.
fn check_error(e: &ModelError, dir: &Path, mutated: &str, files: &[(&str, Vec<u8>)], what: &str) {
    let m = e.to_string();
    let allowed: &[&str] = match mutated {
        SPACE_FILE => &[SPACE_FILE, ARCH_FILE, WEIGHTS_FILE],
        ARCH_FILE => &[ARCH_FILE, WEIGHTS_FILE],
        f => &[f],
    };
    let named: Vec<&str> = allowed
        .iter()
        .copied()
        .filter(|f| m.contains(&dir.join(f).display().to_string()))
        .collect();
    assert!(
        !named.is_empty(),
        "{what}: `{m}` names none of {allowed:?} of {}",
        dir.display()
    );
    if let ModelError::Space(s) = e {
        let file = named[0];
        let bytes = &files.iter().find(|(f, _)| *f == file).unwrap().1;
        mutate::check_error(s, &dir.join(file).display().to_string(), bytes, what);
    }
}

/// One grey 8x8 image as an IDX file, for `predict`.
fn one_image(dir: &Path) -> PathBuf {
    let mut b = vec![0, 0, 8, 3, 0, 0, 0, 1, 0, 0, 0, 8, 0, 0, 0, 8];
    b.extend((0..64u8).map(|i| i * 4));
    let path = dir.join("one-image-idx3-ubyte");
    std::fs::write(&path, b).unwrap();
    path
}

/// Writes the files of a case into `dir`, `mutated` replaced by `bytes`.
fn write_case(dir: &Path, files: &[(&str, Vec<u8>)]) {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).unwrap();
    for (f, b) in files {
        std::fs::write(dir.join(f), b).unwrap();
    }
}

/// The files of case `case`: one of them mutated (which one, and its bytes).
fn mutant(
    r: &mut Rng,
    originals: &[(&'static str, Vec<u8>)],
) -> (&'static str, Vec<(&'static str, Vec<u8>)>) {
    let which = match r.below(20) {
        0..=5 => INFO_FILE,
        6..=9 => SPACE_FILE,
        10..=12 => ARCH_FILE,
        13..=18 => WEIGHTS_FILE,
        _ => RECORD_FILE,
    };
    let files: Vec<(&'static str, Vec<u8>)> = originals
        .iter()
        .map(|(f, b)| {
            if *f != which {
                return (*f, b.clone());
            }
            let m = match which {
                INFO_FILE => mutate_info(r, b),
                SPACE_FILE | ARCH_FILE => Mutator::new(r.fork(1)).mutate(b),
                WEIGHTS_FILE => mutate_weights(r, b),
                _ => mutate_binary(r, b),
            };
            (*f, m)
        })
        .collect();
    (which, files)
}

#[test]
fn mutated_model_folders_load_or_give_errors_naming_the_file() {
    let originals = originals();
    let device = Device::flex();
    let work = tmp("fuzz-model-cases");
    let image = one_image(&work);
    let dir = work.join("model");
    let n = cases(3_000);
    let mut rng = Rng::new(0x30DE_1F0D);
    let (mut loaded, mut refused, mut evaluated) = (0, 0, 0);
    for case in 0..n {
        let mut r = rng.fork(case as u64);
        let (which, files) = mutant(&mut r, &originals);
        write_case(&dir, &files);
        let what = format!("case {case} ({which})");
        match load_model(&dir, &device) {
            Ok(m) => {
                loaded += 1;
                // the model's description agrees with its space
                let i = m.space.input;
                assert_eq!(
                    (
                        m.info.input.channels,
                        m.info.input.height,
                        m.info.input.width
                    ),
                    (i.channels as usize, i.height as usize, i.width as usize),
                    "{what}"
                );
                match predict(&m, std::slice::from_ref(&image), &device, Engine::Int) {
                    Ok(p) => assert_eq!(p.predictions.len(), 1, "{what}"),
                    Err(e) => check_error(&e, &dir, which, &files, &what),
                }
                // the data part of model.json is read by eval alone
                if which == INFO_FILE && evaluated < 40 {
                    evaluated += 1;
                    if let Err(e) = evaluate_model(&m, None, &device, Engine::Int) {
                        // about model.json, or about the data folder it names
                        let msg = e.to_string();
                        let data = m.info.data.path.display().to_string();
                        assert!(
                            msg.contains(&dir.join(INFO_FILE).display().to_string())
                                || msg.contains(&data),
                            "{what}: `{msg}` names neither model.json nor the data folder"
                        );
                    }
                }
            }
            Err(e) => {
                assert_ne!(which, RECORD_FILE, "{what}: nothing reads model.bpk: {e}");
                check_error(&e, &dir, which, &files, &what);
                refused += 1;
            }
        }
    }
    let _ = std::fs::remove_dir_all(&work);
    assert!(
        loaded > n / 20 && refused > n / 2,
        "{loaded} loaded, {refused} refused"
    );
}

#[test]
fn damaged_model_folders_are_a_json_error_document_from_qnas_eval() {
    let originals = originals();
    let device = Device::flex();
    let work = tmp("fuzz-model-eval");
    let mut rng = Rng::new(0xE7A1);
    let mut run = 0;
    for case in 0.. {
        if run == 12 {
            break;
        }
        let mut r = rng.fork(case as u64);
        let (which, files) = mutant(&mut r, &originals);
        if which == RECORD_FILE {
            continue;
        }
        let dir = work.join(format!("m{run}"));
        write_case(&dir, &files);
        // the mutants the library refuses
        if load_model(&dir, &device).is_ok() {
            continue;
        }
        run += 1;
        let out = qnas(&["eval", dir.to_str().unwrap(), "--json"]);
        let what = format!("case {case} ({which})");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{what}: {stderr}");
        assert!(!stderr.contains("panicked"), "{what}: {stderr}");
        let doc: Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("{what}: stdout is not JSON ({e})"));
        assert_eq!(doc["schema"], "qnas.error/1", "{what}: {doc}");
        assert_eq!(doc["ok"], false, "{what}: {doc}");
        let text = doc.to_string();
        assert!(
            FILES.iter().any(|f| text.contains(f)),
            "{what}: names no file of the folder: {doc}"
        );
    }
    let _ = std::fs::remove_dir_all(&work);
}

#[test]
fn model_json_values_the_readers_rely_on_are_checked_on_load() {
    // found by the mutation test: a normalization, input shape, class count or validation
    // fraction in model.json that does not fit reached `qnas eval` as an error naming no file
    // and `qnas predict` as input of the wrong shape for the network
    let originals = originals();
    let device = Device::flex();
    let work = tmp("fuzz-model-info");
    let image = one_image(&work);
    let dir = work.join("model");
    let info: Value = serde_json::from_slice(&originals[0].1).unwrap();
    let edits: &[(&[&str], Value)] = &[
        (&["input", "channels"], json!(3)),
        (&["input", "channels"], json!(0)),
        (&["input", "height"], json!(16)),
        (&["input", "width"], json!(1u64 << 31)),
        (&["input", "height"], json!(u64::MAX)),
        (&["classes"], json!(0)),
        (&["classes"], json!(11)),
        (&["normalization", "mean"], json!([])),
        (&["normalization", "std"], json!([0.0])),
        (&["normalization", "mean"], json!([0.5, 0.5, 0.5])),
        (&["data", "validation_fraction"], json!(0.0)),
        (&["data", "validation_fraction"], json!(1.5)),
    ];
    for (path, value) in edits {
        let mut doc = info.clone();
        doc[path[0]] = if path.len() == 1 {
            value.clone()
        } else {
            let mut inner = doc[path[0]].clone();
            inner[path[1]] = value.clone();
            inner
        };
        let mut files = originals.clone();
        files[0].1 = serde_json::to_vec_pretty(&doc).unwrap();
        write_case(&dir, &files);
        let what = format!("{path:?} = {value}");
        match load_model(&dir, &device) {
            Ok(m) => {
                let p = predict(&m, std::slice::from_ref(&image), &device, Engine::Int);
                panic!("{what}: loaded; predict gives {p:?}");
            }
            Err(e) => {
                assert!(matches!(e, ModelError::Info { .. }), "{what}: {e}");
                let m = e.to_string();
                assert!(
                    m.contains(&dir.join(INFO_FILE).display().to_string()),
                    "{what}: {m}"
                );
            }
        }
    }
    let _ = std::fs::remove_dir_all(&work);
}
