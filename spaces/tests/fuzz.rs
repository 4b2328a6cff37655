//! Mutation tests of the space and arch loaders: the presets and the malformed files, edited at
//! random (bytes replaced, inserted, deleted and duplicated, truncations, numbers at the limits,
//! invalid UTF-8, long lines, deep nesting), must each load or give an error that names the
//! file, with a line and column inside the file for syntax and semantic errors, and that renders
//! through miette's graphical handler without a panic and in short lines.
//!
//! Every input comes from a fixed seed, so a failure reproduces; a failure names its case.
//! `QNAS_FUZZ_CASES=N` runs `N` cases in each mutation test instead of the defaults (a longer
//! campaign: `QNAS_FUZZ_CASES=200000 cargo test --release -p qnas-spaces --test fuzz`).

mod mutate;

use std::path::{Path, PathBuf};

use mutate::{MAX_RENDERED_LINE, Mutator, cases, check_error, render};
use spaces::{Arch, Rng, Space, SpaceError};

fn files(dir: &str) -> Vec<(String, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(dir);
    let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "ron"))
        .map(|p| (p.display().to_string(), std::fs::read(&p).unwrap()))
        .collect();
    out.sort();
    out
}

/// The presets and the malformed files: the seeds of the space mutations.
fn seeds() -> Vec<(String, Vec<u8>)> {
    let mut all = files("presets");
    all.extend(files("tests/malformed"));
    assert!(all.len() >= 30, "{} seed files", all.len());
    all
}

fn preset(name: &str) -> Space {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("presets")
        .join(name);
    Space::load(&path).unwrap()
}

/// Loads `bytes` as the space file `file` (decoded as [`Space::load`] decodes a file); an
/// accepted space must also resolve and price its extremes.
fn load_space(bytes: &[u8], file: &str) -> Result<Space, SpaceError> {
    let src = spaces::decode_source(bytes, file)?;
    let space = Space::parse(&src, file, "fuzz")?;
    for arch in [space.smallest(), space.largest()] {
        space
            .validate(&arch)
            .expect("a space's extremes are members");
        space.cost(&arch).expect("a member has a cost");
    }
    Ok(space)
}

/// Loads `bytes` as the arch file `file` of `space`; an accepted arch must have a cost.
fn load_arch(bytes: &[u8], file: &str, space: &Space) -> Result<Arch, SpaceError> {
    let src = spaces::decode_source(bytes, file)?;
    let arch = Arch::parse(&src, file, space)?;
    space.cost(&arch).expect("a member has a cost");
    Ok(arch)
}

#[test]
fn mutated_space_files_load_or_give_located_errors() {
    let seeds = seeds();
    let n = cases(3_000);
    let mut rng = Rng::new(0x5EED_5FACE);
    let (mut accepted, mut rejected) = (0, 0);
    for case in 0..n {
        let (name, seed) = &seeds[case % seeds.len()];
        let bytes = Mutator::new(rng.fork(case as u64)).mutate(seed);
        let file = format!("{name}#{case}");
        match load_space(&bytes, &file) {
            Ok(_) => accepted += 1,
            Err(e) => {
                check_error(&e, &file, &bytes, &format!("space case {case} of {name}"));
                rejected += 1;
            }
        }
    }
    // the mutations keep some files valid and break most
    assert!(
        accepted > 0 && rejected > n / 2,
        "{accepted} accepted, {rejected} rejected"
    );
}

#[test]
fn mutated_arch_files_load_or_give_located_errors() {
    let spaces: Vec<Space> = ["digits.ron", "mobilenetv2.ron", "resnet20-pooling.ron"]
        .into_iter()
        .map(preset)
        .collect();
    // RON and JSON files of members: the extremes and samples of each space
    let mut seeds: Vec<(usize, Vec<u8>)> = Vec::new();
    let mut rng = Rng::new(7);
    for (i, space) in spaces.iter().enumerate() {
        let mut archs = vec![space.smallest(), space.largest()];
        archs.extend((0..4).map(|_| space.sample_uniform(&mut rng)));
        for a in archs {
            seeds.push((i, a.to_ron().into_bytes()));
            seeds.push((i, a.key().into_bytes()));
        }
    }
    let n = cases(2_000);
    let mut rng = Rng::new(0xA2C4);
    let (mut accepted, mut rejected) = (0, 0);
    for case in 0..n {
        let (s, seed) = &seeds[case % seeds.len()];
        let bytes = Mutator::new(rng.fork(case as u64)).mutate(seed);
        let file = format!("arch#{case}.ron");
        match load_arch(&bytes, &file, &spaces[*s]) {
            Ok(_) => accepted += 1,
            Err(e) => {
                check_error(&e, &file, &bytes, &format!("arch case {case}"));
                rejected += 1;
            }
        }
    }
    assert!(
        accepted > 0 && rejected > n / 2,
        "{accepted} accepted, {rejected} rejected"
    );
}

/// A file of the test's own under the temporary folder.
fn temp_file(name: &str, bytes: &[u8]) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("qnas-spaces-fuzz-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

/// Loads `bytes` from a file named `name` and checks its error; returns it rendered.
fn load_from_file(name: &str, bytes: &[u8]) -> String {
    let path = temp_file(name, bytes);
    let file = path.display().to_string();
    let err = Space::load(&path).expect_err(name);
    check_error(&err, &file, bytes, name);
    let _ = std::fs::remove_file(&path);
    render(&err)
}

fn malformed(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/malformed")
        .join(name);
    std::fs::read_to_string(path).unwrap()
}

#[test]
fn megabyte_lines_render_a_window_with_the_file_position() {
    let pad = " ".repeat(4 << 20);
    // 4 MB of whitespace before the opening parenthesis: the error is on the next lines
    let src = malformed("syntax_missing_comma.ron").replacen("\n(", &format!("\n{pad}("), 1);
    let out = load_from_file("before_paren.ron", src.as_bytes());
    assert!(out.contains("before_paren.ron:7:5"), "{out}");
    // on the line of the error, before it: the column counts the whole line
    let src = malformed("syntax_missing_comma.ron").replacen("stem:", &format!("{pad}stem:"), 1);
    let out = load_from_file("same_line.ron", src.as_bytes());
    assert!(
        out.contains(&format!("same_line.ron:7:{}", 5 + pad.len())),
        "{out}"
    );
    assert!(out.contains("…") && out.contains("stem:"), "{out}");
    // a semantic error whose field spans the long line, and one after it
    let src = malformed("bad_version.ron").replacen("\n(", &format!("\n{pad}("), 1);
    load_from_file("bad_version_long.ron", src.as_bytes());
    let src = malformed("zero_width.ron").replacen("stages:", &format!("stages:{pad}"), 1);
    load_from_file("zero_width_long.ron", src.as_bytes());
    // one line of 4 MB of numbers, a 4 MB identifier, string and comment
    let nums = format!("classes: [{}]", vec!["1"; 2 << 20].join(","));
    let src = malformed("zero_width.ron").replacen("classes: 10", &nums, 1);
    load_from_file("numbers.ron", src.as_bytes());
    for (name, with) in [
        ("ident.ron", "a".repeat(4 << 20)),
        ("string.ron", format!("name: \"{}\",", "é".repeat(2 << 20))),
        ("comment.ron", format!("/* {} */ oops", "x".repeat(4 << 20))),
    ] {
        let src =
            malformed("zero_width.ron").replacen("version: 1,", &format!("version: 1, {with}"), 1);
        load_from_file(name, src.as_bytes());
    }
}

#[test]
fn large_files_deep_nesting_and_invalid_utf8_are_located_errors() {
    // 200,000 lines, the error at the end
    let src = format!(
        "{}{}",
        "// filler\n".repeat(200_000),
        malformed("zero_width.ron")
    );
    let out = load_from_file("many_lines.ron", src.as_bytes());
    assert!(out.contains("many_lines.ron:2"), "{out}");
    // nesting far deeper than the parser's limit
    for open in ["(", "[", "Some("] {
        let src = format!("(version: 1, input: {}", open.repeat(100_000));
        load_from_file("deep.ron", src.as_bytes());
    }
    // bytes that are not UTF-8: located at the first of them, in a short file and a long line
    let mut bytes = malformed("zero_width.ron").into_bytes();
    let at = bytes.windows(5).position(|w| w == b"width").unwrap();
    bytes.splice(at..at, *b"\xff\xfe");
    let out = load_from_file("latin1.ron", &bytes);
    assert!(out.contains("not UTF-8") && out.contains("0xff"), "{out}");
    let mut long = vec![b' '; 4 << 20];
    long.extend_from_slice(b"\xc3(");
    let out = load_from_file("cut_char.ron", &long);
    assert!(
        out.contains(&format!("cut_char.ron:1:{}", (4 << 20) + 1)),
        "{out}"
    );
    // arch files take the same path
    let space = preset("digits.ron");
    let path = temp_file("arch.json", b"{\"stem\": \xff}");
    let err = Arch::load(&path, &space).unwrap_err();
    check_error(
        &err,
        &path.display().to_string(),
        b"{\"stem\": \xff}",
        "arch.json",
    );
}

#[test]
fn json_arch_errors_count_columns_in_characters() {
    let space = preset("digits.ron");
    let src = "{\"stem\": {\"width\": \"éé\", \"kernel\": 3}}";
    let err = Arch::parse(src, "a.json", &space).unwrap_err();
    let r = &err.records()[0];
    // serde_json points at the closing quote as byte column 25; the diagnostic, like RON's,
    // counts characters
    assert_eq!((r.line, r.column), (Some(1), Some(23)), "{r:?}");
    assert!(
        render(&err)
            .lines()
            .all(|l| l.chars().count() <= MAX_RENDERED_LINE)
    );
}

#[test]
fn sizes_at_the_limits_of_their_types_load_and_their_costs_saturate() {
    // used to overflow computing the feature-map size
    let src = malformed("zero_width.ron")
        .replace("height: 28", "height: 4294967295")
        .replace("width: [24, 0]", "width: [4294967295]");
    let space = Space::parse(&src, "huge.ron", "huge").unwrap();
    let cost = space.cost(&space.largest()).unwrap();
    assert_eq!(cost.bitops, u64::MAX);
    assert_eq!(cost.macs, u64::MAX);
}

#[test]
fn a_depth_beyond_the_limit_is_an_error_not_an_allocation() {
    // the validator used to name every layer of a 4294967295-block stage and run out of memory
    let src = malformed("zero_width.ron")
        .replace("width: [24, 0]", "width: [24]")
        .replacen("depth: [1, 2]", "depth: [1, 4294967295]", 1);
    let err = Space::parse(&src, "deep.ron", "deep").unwrap_err();
    let r = &err.records()[0];
    assert_eq!(r.field.as_deref(), Some("stages[0].depth[1]"), "{r:?}");
    assert!(r.message.contains("more than 100"), "{r:?}");
}
