//! Every file in `tests/malformed/` is a broken space file whose second line says where the
//! first diagnostic must point and what it must say: `// expect: LINE:COL text`.

use std::path::PathBuf;

use spaces::{Space, SpaceError};

fn malformed_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/malformed")
}

fn expectation(src: &str) -> (usize, usize, String) {
    let line = src
        .lines()
        .find_map(|l| l.strip_prefix("// expect: "))
        .expect("an `// expect:` line");
    let (pos, text) = line.split_once(' ').unwrap_or((line, ""));
    let (l, c) = pos.split_once(':').expect("LINE:COL");
    (l.parse().unwrap(), c.parse().unwrap(), text.to_string())
}

#[test]
fn every_malformed_file_gets_its_located_diagnostic() {
    let mut files: Vec<PathBuf> = std::fs::read_dir(malformed_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "ron"))
        .collect();
    files.sort();
    assert!(files.len() >= 15, "only {} malformed files", files.len());
    let mut failures = Vec::new();
    for path in &files {
        let src = std::fs::read_to_string(path).unwrap();
        let (line, col, text) = expectation(&src);
        match Space::load(path) {
            Ok(_) => failures.push(format!("{}: accepted", path.display())),
            Err(e) => {
                let records = e.records();
                let hit = records.iter().any(|r| {
                    r.line == Some(line) && r.column == Some(col) && r.message.contains(&text)
                });
                if !hit {
                    failures.push(format!(
                        "{}: expected {line}:{col} `{text}`, got {records:?}",
                        path.display()
                    ));
                }
                for r in &records {
                    assert_eq!(r.file, path.display().to_string(), "errors name the file");
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn all_problems_of_a_file_are_reported_in_file_order() {
    let src = r#"(
    version: 1,
    input: (channels: 0, height: 28, width: 28),
    classes: 10,
    stem: (width: [0, 8], kernel: [2]),
    stages: [(block: ConvBnRelu, depth: [], width: [8], stride: 5)],
    quantization: (weights: [Int(1)], activations: [Fp32]),
)"#;
    let err = Space::parse(src, "many.ron", "many").unwrap_err();
    let records = err.records();
    let fields: Vec<_> = records.iter().map(|r| r.field.clone().unwrap()).collect();
    assert_eq!(
        fields,
        vec![
            "input.channels",
            "stem.width[0]",
            "stem.kernel[0]",
            "stages[0].depth",
            "stages[0].stride",
            "quantization.weights[0]"
        ]
    );
    let lines: Vec<_> = records.iter().map(|r| r.line.unwrap()).collect();
    assert_eq!(lines, vec![3, 5, 5, 6, 6, 7]);
    assert!(matches!(err, SpaceError::Invalid { .. }));
}

#[test]
fn unreadable_file_is_an_io_error_naming_it() {
    let err = Space::load(&malformed_dir().join("no-such-file.ron")).unwrap_err();
    assert!(matches!(err, SpaceError::Io { .. }));
    assert!(err.to_string().contains("no-such-file.ron"));
}

#[test]
fn syntax_errors_render_with_the_source_line() {
    let path = malformed_dir().join("unknown_format.ron");
    let err = Space::load(&path).unwrap_err();
    let mut rendered = String::new();
    miette::GraphicalReportHandler::new_themed(miette::GraphicalTheme::unicode_nocolor())
        .render_report(&mut rendered, &err)
        .unwrap();
    assert!(
        rendered.contains("weights: [Int(4), Int8, E4M3]"),
        "{rendered}"
    );
    assert!(rendered.contains("unknown_format.ron:13:27"), "{rendered}");
}
