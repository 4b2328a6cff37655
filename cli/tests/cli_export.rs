//! `qnas export`, `qnas eval` and `qnas predict` on a briefly trained and searched digits run:
//! exported models reproduce the search's accuracy without the supernet, predictions agree with
//! the reported test accuracy, and damaged folders are refused.

mod common;
use common::*;

use std::io::Read;
use std::path::PathBuf;

fn searched(name: &str) -> PathBuf {
    let d = tmp(&format!("export-{name}"));
    train_and_search(&d, 60, 10);
    d
}

fn json(out: &std::process::Output) -> serde_json::Value {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn test_labels() -> Vec<u8> {
    let f =
        std::fs::File::open(root().join("data/uci-digits-8x8/t10k-labels-idx1-ubyte.gz")).unwrap();
    let mut bytes = Vec::new();
    flate2::read::GzDecoder::new(f)
        .read_to_end(&mut bytes)
        .unwrap();
    bytes[8..].to_vec()
}

/// The conv layers of a model folder's member whose weights and input activations are
/// integers of at most 8 bits and that are dense, and all its conv layers.
fn arch_int_layers(dir: &std::path::Path) -> (u64, u64) {
    let device = burn::tensor::Device::flex();
    let m = qnas_cli::model_dir::load_model(dir, &device).unwrap();
    let narrow = |f: spaces::Format| matches!(f, spaces::Format::Int(b) if b <= 8);
    let convs: Vec<_> = m.net.plan.convs().collect();
    let int = convs
        .iter()
        .filter(|c| c.groups == 1 && narrow(c.formats.weights) && narrow(c.formats.activations))
        .count();
    (int as u64, convs.len() as u64)
}

fn fail(out: &std::process::Output) -> String {
    assert!(!out.status.success(), "should fail");
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stderr).to_string()
}

#[test]
fn exported_models_reproduce_the_search_without_the_supernet() {
    let run = searched("front");
    let r = json(&qnas(&["export", run.to_str().unwrap(), "--json"]));
    assert_eq!(r["schema"], "qnas.export/1");
    let models = r["models"].as_array().unwrap();
    let front: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("search/pareto.json")).unwrap())
            .unwrap();
    assert_eq!(models.len(), front["front"].as_array().unwrap().len());
    let labels = test_labels();
    let mut flips = 0;
    for (m, row) in models.iter().zip(front["front"].as_array().unwrap()) {
        let dir = PathBuf::from(m["dir"].as_str().unwrap());
        for f in [
            "arch.ron",
            "space.ron",
            "weights.safetensors",
            "model.bpk",
            "model.json",
        ] {
            assert!(dir.join(f).exists(), "{}: {f}", dir.display());
        }
        let info = &m["info"];
        // the static model gives the search's validation accuracy exactly
        let close = |a: &serde_json::Value, b: &serde_json::Value| {
            (a.as_f64().unwrap() - b.as_f64().unwrap()).abs() < 1e-12
        };
        assert!(
            close(&info["accuracy"]["search"], &row["accuracy"]),
            "{info}"
        );
        assert!(
            close(
                &info["accuracy"]["validation"]["accuracy"],
                &row["accuracy"]
            ),
            "{info}"
        );
        assert!(info["max_logit_difference"].as_f64().unwrap() <= 1e-5);
        assert_eq!(info["cost"]["bitops"], row["bitops"]);
        // eval on f32 fake quantization reads the folder alone and gets the same numbers
        let d = dir.to_str().unwrap();
        let e = json(&qnas(&["eval", d, "--engine", "float", "--json"]));
        assert_eq!(e["schema"], "qnas.eval/1");
        assert_eq!(e["matches_report"], true, "{e}");
        assert_eq!(e["validation"], info["accuracy"]["validation"]);
        assert_eq!(e["test"], info["accuracy"]["test"]);
        assert_eq!(e["engine"]["name"], "float", "{e}");
        assert_eq!(e["engine"]["int_layers"], 0);
        // on the integer engine (the default): the layers whose weights and inputs are
        // integers of at most 8 bits run on integers, and the counts agree but for the rare
        // prediction the logits' rounding flips
        let int_formats = arch_int_layers(&dir);
        let e = json(&qnas(&["eval", d, "--json"]));
        let engine = &e["engine"];
        assert_eq!(engine["int_layers"].as_u64(), Some(int_formats.0), "{e}");
        assert_eq!(engine["layers"].as_u64(), Some(int_formats.1), "{e}");
        let expected = if int_formats.0 > 0 { "int" } else { "float" };
        assert_eq!(engine["name"], expected, "{e}");
        let count = |v: &serde_json::Value, part: &str| v[part]["correct"].as_i64().unwrap();
        for part in ["validation", "test"] {
            let (got, reported) = (count(&e, part), count(&info["accuracy"], part));
            assert!(
                (got - reported).abs() <= 1,
                "{part}: {got} correct on the integer engine, {reported} reported"
            );
            flips += (got - reported).unsigned_abs();
        }
        // predictions on the test file agree with eval's test accuracy on the same engine
        for (engine, test) in [("float", &info["accuracy"]["test"]), ("int", &e["test"])] {
            let p = json(&qnas(&[
                "predict",
                d,
                "data/uci-digits-8x8/t10k-images-idx3-ubyte.gz",
                "--engine",
                engine,
                "--json",
            ]));
            let preds = p["predictions"].as_array().unwrap();
            assert_eq!(preds.len(), labels.len());
            let correct = preds
                .iter()
                .zip(&labels)
                .filter(|(p, l)| p["class"].as_u64() == Some(u64::from(**l)))
                .count();
            assert_eq!(
                correct as u64,
                test["correct"].as_u64().unwrap(),
                "{} on {engine}",
                dir.display()
            );
        }
    }
    assert!(
        flips <= 2,
        "{flips} accuracy counts moved on the integer engine"
    );
    // export -> load -> write: the same files, byte for byte
    let first = PathBuf::from(models[0]["dir"].as_str().unwrap());
    let device = burn::tensor::Device::flex();
    let m = qnas_cli::model_dir::load_model(&first, &device).unwrap();
    let again = run.join("rewritten");
    let space_src = std::fs::read(first.join("space.ron")).unwrap();
    let weights = m.net.to_safetensors().unwrap();
    qnas_cli::model_dir::write_model_dir(
        &again,
        &space_src,
        &m.arch,
        &m.net,
        &m.info,
        &weights,
        &[],
    )
    .unwrap();
    for f in [
        "arch.ron",
        "space.ron",
        "weights.safetensors",
        "model.bpk",
        "model.json",
    ] {
        assert!(
            std::fs::read(first.join(f)).unwrap() == std::fs::read(again.join(f)).unwrap(),
            "{f} changed in export -> load -> export"
        );
    }
    // smaller formats, smaller weights: code bytes follow the weight bits of the cost model
    for m in models {
        let size = m["info"]["size"]["weight_code_bytes"].as_u64().unwrap();
        let bits = m["info"]["cost"]["weight_bits"].as_u64().unwrap();
        // weight_bits counts conv and fc weights plus full-precision BN/bias parameters
        assert!(size * 8 <= bits, "{size} bytes for {bits} bits");
    }
    std::fs::remove_dir_all(run).unwrap();
}

#[test]
fn export_selects_members_and_refuses_bad_requests_and_damaged_folders() {
    let run = searched("pick");
    let r = run.to_str().unwrap();
    let out_dir = run.join("picked");
    let e = json(&qnas(&[
        "export",
        r,
        "--pick",
        "1",
        "--out",
        out_dir.to_str().unwrap(),
        "--json",
    ]));
    let models = e["models"].as_array().unwrap();
    assert_eq!(models.len(), 1);
    assert_eq!(models[0]["position"], 1);
    let dir = out_dir.join("front-01");
    assert!(dir.join("weights.safetensors").exists());
    // exporting again gives byte-identical files
    let before = std::fs::read(dir.join("weights.safetensors")).unwrap();
    json(&qnas(&[
        "export",
        r,
        "--pick",
        "1",
        "--out",
        out_dir.to_str().unwrap(),
        "--json",
    ]));
    assert_eq!(
        std::fs::read(dir.join("weights.safetensors")).unwrap(),
        before
    );

    let err = fail(&qnas(&["export", r, "--pick", "99"]));
    assert!(err.contains("--pick 99"), "{err}");
    let err = fail(&qnas(&["export", r, "--max-bitops", "1"]));
    assert!(err.contains("no member"), "{err}");
    let empty = tmp("export-empty");
    let err = fail(&qnas(&["eval", empty.join("nothing").to_str().unwrap()]));
    assert!(err.contains("nothing"), "{err}");

    // damaged copies of the folder
    let copy = |name: &str| -> PathBuf {
        let d = empty.join(name);
        std::fs::create_dir_all(&d).unwrap();
        for f in std::fs::read_dir(&dir).unwrap() {
            let f = f.unwrap();
            std::fs::copy(f.path(), d.join(f.file_name())).unwrap();
        }
        d
    };
    let d = copy("truncated");
    let w = d.join("weights.safetensors");
    std::fs::write(&w, &before[..before.len() / 3]).unwrap();
    let err = fail(&qnas(&["eval", d.to_str().unwrap()]));
    assert!(err.contains("weights.safetensors"), "{err}");
    let d = copy("bad-arch");
    std::fs::write(d.join("arch.ron"), "(stem: 8, stages: [").unwrap();
    let err = fail(&qnas(&["eval", d.to_str().unwrap()]));
    assert!(err.contains("arch.ron"), "{err}");
    let d = copy("bad-json");
    std::fs::write(d.join("model.json"), "{\"schema\": \"qnas.model/1\"").unwrap();
    let err = fail(&qnas(&["eval", d.to_str().unwrap()]));
    assert!(err.contains("model.json") && err.contains("line"), "{err}");
    let not_image = empty.join("notes.txt");
    std::fs::write(&not_image, "hello").unwrap();
    let err = fail(&qnas(&[
        "predict",
        dir.to_str().unwrap(),
        not_image.to_str().unwrap(),
    ]));
    assert!(err.contains("notes.txt"), "{err}");
    std::fs::remove_dir_all(empty).unwrap();
    std::fs::remove_dir_all(run).unwrap();
}
