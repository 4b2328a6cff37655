//! House rules of the workspace, checked over its sources and its dependency graph: no source
//! file over [`MAX_LINES`] lines, no import loops between the files of a crate, and no burn in
//! the search crate. Each rule lists every offender, so that one run shows all there is to fix.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Value, json};

/// The most lines a file under a member's `src/` may have.
const MAX_LINES: usize = 900;

/// The files of one package's `src/`: path relative to `src/` (with `/`) → text.
type Files = BTreeMap<String, String>;

/// A module path, e.g. `["strategy", "fliqs"]`; the crate root is empty.
type ModPath = Vec<String>;

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The `members` of the root `Cargo.toml`'s `[workspace]` (plain paths; globs are refused).
fn members(root: &Path) -> Vec<String> {
    let toml = fs::read_to_string(root.join("Cargo.toml")).expect("read the root Cargo.toml");
    let lines: Vec<&str> = toml
        .lines()
        .map(|l| l.split('#').next().unwrap_or(""))
        .collect();
    // The `members = [...]` of the `[workspace]` section, over as many lines as it takes.
    let section = lines
        .iter()
        .skip_while(|l| l.trim() != "[workspace]")
        .skip(1);
    let section = section.take_while(|l| !l.trim_start().starts_with('['));
    let key = |l: &&&str| l.split('=').next().map(str::trim) != Some("members");
    let text: String = section.skip_while(key).copied().collect();
    let list = text.split_once('[').and_then(|(_, l)| l.split_once(']'));
    let list = list
        .expect("the root Cargo.toml has no [workspace] members = [...]")
        .0;
    let members: Vec<String> = list
        .split(',')
        .map(|s| s.trim().trim_matches('"').to_string())
        .filter(|s| !s.is_empty())
        .collect();
    let plain = !members.is_empty() && members.iter().all(|m| !m.contains(['*', '?', '[']));
    assert!(
        plain,
        "workspace members {members:?}: none, or a glob house.rs cannot expand"
    );
    members
}

/// Every `.rs` file under `dir` (recursively), relative to `dir`, with its text.
fn read_src(dir: &Path, prefix: &str, out: &mut Files) {
    let entries = fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    for path in entries.map(|e| e.expect("a directory entry").path()) {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if path.is_dir() {
            read_src(&path, &format!("{prefix}{name}/"), out);
        } else if name.ends_with(".rs") {
            let text = fs::read_to_string(&path).expect("read a source file");
            out.insert(format!("{prefix}{name}"), text);
        }
    }
}

/// The files under each workspace member's `src/`, by member.
fn sources() -> Vec<(String, Files)> {
    let root = workspace_root();
    let mut out = Vec::new();
    for member in members(&root) {
        let mut files = Files::new();
        read_src(&root.join(&member).join("src"), "", &mut files);
        assert!(!files.is_empty(), "{member}/src has no .rs file");
        out.push((member, files));
    }
    out
}

/// The tokens of Rust source without its comments and literals: words (identifiers, keywords,
/// numbers), `::`, and single punctuation characters.
fn tokens(text: &str) -> Vec<String> {
    let c: Vec<char> = text.chars().collect();
    let word = |k: usize| k < c.len() && (c[k].is_alphanumeric() || c[k] == '_');
    let at = |k: usize, s: &str| s.chars().zip(k..).all(|(ch, j)| c.get(j) == Some(&ch));
    let skip_to = |mut k: usize, end: char| {
        while k < c.len() && c[k] != end {
            k += if end == '"' && c[k] == '\\' { 2 } else { 1 };
        }
        k + 1
    };
    let mut out = Vec::new();
    let mut i = 0;
    while i < c.len() {
        if at(i, "//") {
            i = skip_to(i, '\n');
        } else if at(i, "/*") {
            let mut depth = 0; // block comments nest
            while i < c.len() {
                depth += i32::from(at(i, "/*")) - i32::from(at(i, "*/"));
                i += if at(i, "/*") || at(i, "*/") { 2 } else { 1 };
                if depth == 0 {
                    break;
                }
            }
        } else if c[i] == '"' {
            i = skip_to(i + 1, '"');
        } else if c[i] == '\'' && (at(i + 1, "\\") || at(i + 2, "'")) {
            // A char literal (a lifetime has no closing quote).
            i = skip_to(i + if at(i + 1, "\\") { 3 } else { 2 }, '\'');
        } else if word(i) {
            let start = i;
            while word(i) {
                i += 1;
            }
            let w: String = c[start..i].iter().collect();
            let hashes = c[i..].iter().take_while(|&&h| h == '#').count();
            if matches!(w.as_str(), "r" | "br" | "cr") && at(i + hashes, "\"") {
                let close: String = std::iter::once('"').chain(vec!['#'; hashes]).collect();
                i += hashes + 1;
                while i < c.len() && !at(i, &close) {
                    i += 1;
                }
                i += close.len();
            } else {
                out.push(w);
            }
        } else {
            let punct = if at(i, "::") {
                "::".to_string()
            } else {
                c[i].to_string()
            };
            i += punct.len();
            if !punct.trim().is_empty() {
                out.push(punct);
            }
        }
    }
    out
}

/// What a file declares and refers to, each with the inline modules (`mod x { .. }`) it is in:
/// its `mod name;` declarations, and its paths that start with `crate`, `self` or `super` (that
/// word included; one per leaf of a grouped `use`).
#[derive(Debug, Default)]
struct Scan {
    mods: Vec<(ModPath, String)>,
    paths: Vec<(ModPath, Vec<String>)>,
}

fn scan(text: &str) -> Scan {
    let t = tokens(text);
    let is = |i: usize, s: &str| t.get(i).is_some_and(|x| x == s);
    let mut scan = Scan::default();
    let (mut inline, mut opened_at, mut depth) = (ModPath::new(), Vec::new(), 0);
    let mut i = 0;
    while i < t.len() {
        let named = i + 1 < t.len() && t[i + 1].starts_with(char::is_alphabetic);
        if t[i] == "mod" && named && is(i + 2, ";") {
            scan.mods.push((inline.clone(), t[i + 1].clone()));
        } else if t[i] == "mod" && named && is(i + 2, "{") {
            inline.push(t[i + 1].clone());
            depth += 1;
            opened_at.push(depth);
            i += 2;
        } else if ["crate", "self", "super"].contains(&t[i].as_str())
            && is(i + 1, "::")
            && !is(i.wrapping_sub(1), "::")
        {
            let (paths, end) = path_tree(&t, i);
            scan.paths
                .extend(paths.into_iter().map(|p| (inline.clone(), p)));
            i = end - 1;
        } else if t[i] == "{" {
            depth += 1;
        } else if t[i] == "}" {
            if opened_at.last() == Some(&depth) {
                opened_at.pop();
                inline.pop();
            }
            depth -= 1;
        }
        i += 1;
    }
    scan
}

/// The paths of the path or `use` tree at token `i` (`a::b::{c, d::{e as f}, *}` gives
/// `a::b::c` and `a::b::d::e`), and the index of the token after it.
fn path_tree(t: &[String], mut i: usize) -> (Vec<Vec<String>>, usize) {
    let name = |s: &str| s.starts_with(|c: char| c.is_alphabetic() || c == '_') && s != "as";
    let mut prefix = vec![t[i].clone()];
    i += 1;
    while t.get(i).is_some_and(|x| x == "::") {
        match t.get(i + 1).map(String::as_str) {
            Some("{") => {
                let mut out = Vec::new();
                i += 2;
                while i < t.len() && t[i] != "}" {
                    if name(&t[i]) {
                        let (subs, end) = path_tree(t, i);
                        out.extend(subs.into_iter().map(|s| [prefix.clone(), s].concat()));
                        i = end;
                    } else {
                        i += if t[i] == "as" { 2 } else { 1 };
                    }
                }
                return (out, i + 1);
            }
            Some(seg) if name(seg) => prefix.push(seg.to_string()),
            _ => break,
        }
        i += 2;
    }
    (vec![prefix], i)
}

/// The module path that `path` (starting with `crate`, `self` or `super`) names when written
/// in module `module`; `None` for a `super` above the crate root.
fn resolve(module: &[String], path: &[String]) -> Option<ModPath> {
    let mut out = module.to_vec();
    out.truncate(if path[0] == "crate" { 0 } else { out.len() });
    for seg in &path[usize::from(path[0] != "super")..] {
        match seg.as_str() {
            "super" => drop(out.pop()?),
            "self" => {}
            _ => out.push(seg.clone()),
        }
    }
    Some(out)
}

/// The files of the binary whose root is `root` (those its `mod` declarations reach), with
/// their module paths.
fn bin_modules(files: &Files, root: &str) -> BTreeMap<String, ModPath> {
    let mut out = BTreeMap::from([(root.to_string(), ModPath::new())]);
    let mut todo = vec![root.to_string()];
    while let Some(rel) = todo.pop() {
        // A crate root's and a `mod.rs`'s children are beside it; those of `a.rs` in `a/`.
        let dir = if rel == root || rel == "mod.rs" || rel.ends_with("/mod.rs") {
            rel.rsplit_once('/').map_or("", |(d, _)| d)
        } else {
            rel.trim_end_matches(".rs")
        };
        for (inline, name) in scan(&files[&rel]).mods {
            let mut stem: Vec<&str> = vec![dir].into_iter().filter(|d| !d.is_empty()).collect();
            stem.extend(inline.iter().map(String::as_str).chain([name.as_str()]));
            let stem = stem.join("/");
            let found = [format!("{stem}.rs"), format!("{stem}/mod.rs")]
                .into_iter()
                .find(|f| files.contains_key(f) && !out.contains_key(f));
            if let Some(f) = found {
                out.insert(f.clone(), [out[&rel].clone(), inline, vec![name]].concat());
                todo.push(f);
            }
        }
    }
    out
}

/// The crates of a package's files, each as file → module path: each binary (`main.rs`,
/// `bin/*.rs`, `bin/*/main.rs`) with the files its `mod` declarations reach, then the library
/// with every other file (`lib.rs` is the root, `a.rs` and `a/mod.rs` are `a`, `a/b.rs` is
/// `a::b`).
fn crates(files: &Files) -> Vec<BTreeMap<String, ModPath>> {
    let bin_root = |f: &&String| match f.strip_prefix("bin/") {
        None => *f == "main.rs",
        Some(b) => b.split_once('/').is_none_or(|(_, rest)| rest == "main.rs"),
    };
    let mut out: Vec<_> = files
        .keys()
        .filter(bin_root)
        .map(|r| bin_modules(files, r))
        .collect();
    let in_bin: BTreeSet<&String> = out.iter().flat_map(|c| c.keys()).collect();
    let mut lib = BTreeMap::new();
    for f in files
        .keys()
        .filter(|f| !in_bin.contains(f) && !f.starts_with("bin/"))
    {
        let mut module: ModPath = f[..f.len() - 3].split('/').map(Into::into).collect();
        if f == "lib.rs" || module.last().is_some_and(|m| m == "mod") {
            module.pop();
        }
        lib.insert(f.clone(), module);
    }
    out.push(lib);
    out
}

/// The references between the files of one crate, `(from, to) → the first path written`: each
/// path resolved to the longest module path that is a file, kept unless that file is `from`
/// or one of its ancestors or descendants.
fn file_edges(
    files: &Files,
    krate: &BTreeMap<String, ModPath>,
) -> BTreeMap<(String, String), String> {
    let by_module: BTreeMap<&ModPath, &String> = krate.iter().map(|(f, m)| (m, f)).collect();
    let mut edges = BTreeMap::new();
    for (file, module) in krate {
        for (inline, path) in scan(&files[file]).paths {
            let Some(target) = resolve(&[module.clone(), inline].concat(), &path) else {
                continue;
            };
            let to = (0..=target.len())
                .rev()
                .find_map(|n| by_module.get(&target[..n].to_vec()));
            if let Some(&to) = to
                && !module.starts_with(&krate[to])
                && !krate[to].starts_with(module)
            {
                edges
                    .entry((file.clone(), to.clone()))
                    .or_insert_with(|| path.join("::"));
            }
        }
    }
    edges
}

/// The strongly connected components of more than one node.
fn components(nodes: &BTreeSet<String>, edges: &BTreeSet<(String, String)>) -> Vec<Vec<String>> {
    let reach = |from: &String| {
        let (mut seen, mut todo) = (BTreeSet::from([from.clone()]), vec![from.clone()]);
        while let Some(n) = todo.pop() {
            for (_, to) in edges.iter().filter(|(a, _)| *a == n) {
                if seen.insert(to.clone()) {
                    todo.push(to.clone());
                }
            }
        }
        seen
    };
    let reach: BTreeMap<&String, BTreeSet<String>> = nodes.iter().map(|n| (n, reach(n))).collect();
    let mut out: Vec<Vec<String>> = Vec::new();
    for n in nodes {
        let mut comp = reach[n].clone();
        comp.retain(|m| reach[m].contains(n));
        let comp: Vec<String> = comp.into_iter().collect();
        if comp.len() > 1 && !out.contains(&comp) {
            out.push(comp);
        }
    }
    out
}

/// Every import loop between the files of each crate of a package: the files of a strongly
/// connected component, and the references between them.
fn import_cycles(files: &Files) -> Vec<(Vec<String>, Vec<String>)> {
    let mut out = Vec::new();
    for krate in crates(files) {
        let edges = file_edges(files, &krate);
        let (nodes, links) = (
            krate.keys().cloned().collect(),
            edges.keys().cloned().collect(),
        );
        for comp in components(&nodes, &links) {
            let inside = edges
                .iter()
                .filter(|((a, b), _)| comp.contains(a) && comp.contains(b));
            let via = inside
                .map(|((a, b), p)| format!("{a} -> {b} ({p})"))
                .collect();
            out.push((comp, via));
        }
    }
    out
}

/// The shortest path of package names over normal dependencies (no dev or build edges) from
/// the package named `from` to one whose name starts with `prefix`, in `cargo metadata`'s
/// resolved graph (with the features actually enabled); `None` when none is reachable.
fn dependency_path(metadata: &Value, from: &str, prefix: &str) -> Option<Vec<String>> {
    fn array(v: &Value) -> &[Value] {
        v.as_array().map_or(&[], Vec::as_slice)
    }
    let text = |v: &Value| v.as_str().expect("cargo metadata: a string").to_string();
    let name: BTreeMap<String, String> = array(&metadata["packages"])
        .iter()
        .map(|p| (text(&p["id"]), text(&p["name"])))
        .collect();
    let node: BTreeMap<String, &Value> = array(&metadata["resolve"]["nodes"])
        .iter()
        .map(|n| (text(&n["id"]), n))
        .collect();
    let start = name.iter().find(|(_, n)| *n == from);
    let start = start.expect("the package in cargo metadata").0;
    let mut parent = BTreeMap::from([(start.as_str(), "")]);
    let mut todo = VecDeque::from([start.as_str()]);
    while let Some(id) = todo.pop_front() {
        if name[id].starts_with(prefix) {
            let mut path = vec![name[id].clone()];
            let mut at = parent[id];
            while !at.is_empty() {
                path.insert(0, name[at].clone());
                at = parent[at];
            }
            return Some(path);
        }
        for dep in array(&node.get(id).expect("a node of the resolve graph")["deps"]) {
            let normal = array(&dep["dep_kinds"]).iter().any(|k| k["kind"].is_null());
            let (to, _) = name
                .get_key_value(&text(&dep["pkg"]))
                .expect("a known package");
            if normal && !parent.contains_key(to.as_str()) {
                parent.insert(to, id);
                todo.push_back(to);
            }
        }
    }
    None
}

/// `cargo metadata` of the workspace, offline, for this platform (whose dependencies are all
/// there: other platforms' may not be).
fn cargo_metadata() -> Value {
    let cargo = |args: &[&str]| {
        let out = Command::new(env!("CARGO")).args(args).output();
        let out = out.expect("run cargo");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "cargo {args:?} failed: {err}");
        out.stdout
    };
    let version = String::from_utf8(cargo(&["-vV"])).expect("cargo -vV: UTF-8");
    let host = version
        .lines()
        .find_map(|l| l.strip_prefix("host: "))
        .expect("cargo -vV: host");
    let manifest = workspace_root().join("Cargo.toml");
    let manifest = manifest.to_str().expect("a UTF-8 path");
    let mut args: Vec<&str> = "metadata --format-version 1 --locked --offline"
        .split(' ')
        .collect();
    args.extend(["--filter-platform", host, "--manifest-path", manifest]);
    let metadata = cargo(&args);
    serde_json::from_slice(&metadata).expect("cargo metadata's JSON")
}

#[test]
fn no_source_file_over_900_lines() {
    let mut over = Vec::new();
    for (member, files) in sources() {
        for (rel, text) in files {
            let n = text.lines().count();
            if n > MAX_LINES {
                over.push(format!("{member}/src/{rel}: {n} lines"));
            }
        }
    }
    let (n, list) = (over.len(), over.join("\n  "));
    assert!(
        over.is_empty(),
        "{n} source files over {MAX_LINES} lines (split them):\n  {list}"
    );
}

#[test]
fn no_import_loops_between_files() {
    let mut loops = Vec::new();
    for (member, files) in sources() {
        for (cycle, via) in import_cycles(&files) {
            let names: Vec<_> = cycle.iter().map(|f| format!("{member}/src/{f}")).collect();
            let (names, via) = (names.join(" <-> "), via.join("\n      "));
            loops.push(format!("{names}\n      {via}"));
        }
    }
    let (n, list) = (loops.len(), loops.join("\n  "));
    assert!(
        loops.is_empty(),
        "{n} import loops between the files of a crate (a module and its own children may \
         refer to each other, other files only one way):\n  {list}"
    );
}

#[test]
fn search_crate_has_no_burn() {
    if let Some(path) = dependency_path(&cargo_metadata(), "qnas-search", "burn") {
        panic!(
            "qnas-search depends on burn (normal dependencies): {}",
            path.join(" -> ")
        );
    }
}

// The checkers themselves, on small file sets.

/// The import loops of a package's files, each as its files joined by ` <-> `.
fn loops(list: &[(&str, &str)]) -> Vec<String> {
    let files = list
        .iter()
        .map(|(f, t)| (f.to_string(), t.to_string()))
        .collect();
    import_cycles(&files)
        .into_iter()
        .map(|c| c.0.join(" <-> "))
        .collect()
}

#[test]
fn checker_finds_a_two_file_loop() {
    let found = loops(&[
        ("lib.rs", "pub mod a;\npub mod b;\npub mod c;"),
        ("a.rs", "use crate::b::B;\npub struct A;"),
        ("b.rs", "pub struct B;\npub fn f(_: crate::a::A) {}"),
        ("c.rs", "use crate::a::A;"),
    ]);
    assert_eq!(found, ["a.rs <-> b.rs"]);
}

#[test]
fn checker_allows_a_module_and_its_children() {
    let found = loops(&[
        ("lib.rs", "mod a;\nuse crate::a::A;"),
        ("a/mod.rs", "mod c;\nuse self::c::C;\npub struct A;"),
        (
            "a/c.rs",
            "use super::A;\nuse crate::a::A as B;\npub struct C;",
        ),
    ]);
    assert!(found.is_empty(), "{found:?}");
}

#[test]
fn checker_reads_grouped_uses() {
    let scan = scan("use crate::{a::X, b::{self, c::Y as Z, *}};");
    let paths: Vec<String> = scan.paths.iter().map(|p| p.1.join("::")).collect();
    assert_eq!(paths, ["crate::a::X", "crate::b::self", "crate::b::c::Y"]);
    let found = loops(&[
        ("lib.rs", "mod a;\nmod b;\nmod x;"),
        ("x.rs", "use crate::{a::A, b::{c::C, D}};\npub struct X;"),
        ("a.rs", "pub struct A;"),
        ("b.rs", "mod c;\npub struct D;"),
        ("b/c.rs", "pub struct C(crate::x::X);"),
    ]);
    assert_eq!(found, ["b/c.rs <-> x.rs"]);
}

#[test]
fn checker_ignores_comments_and_strings() {
    let quiet =
        "// crate::a::A\n/// crate::a::A\n//! crate::a::A\n/* crate::a::A /* */ crate::a::A */
        const S: &str = \"crate::a::A \\\" crate::a::A\"; const R: &str = r#\"crate::a::A\"#;
        const Q: char = '\"'; fn f<'a>(x: &'a str) -> &'a str { x }\npub struct B;";
    let set = |b: &str| {
        loops(&[
            ("lib.rs", "mod a;\nmod b;"),
            ("a.rs", "use crate::b::B;"),
            ("b.rs", b),
        ])
    };
    assert!(set(quiet).is_empty(), "{:?}", set(quiet));
    assert_eq!(
        set(&format!("{quiet}\nuse crate::a::A;")),
        ["a.rs <-> b.rs"]
    );
}

#[test]
fn checker_resolves_inline_modules_and_keeps_binaries_apart() {
    // `super::super` in `mod tests { .. }` of `a/b.rs` is `a`, so `super::super::c` is `a::c`.
    let found = loops(&[
        ("lib.rs", "mod a;"),
        ("a.rs", "mod b;\nmod c;"),
        (
            "a/b.rs",
            "pub struct B;\n#[cfg(test)]\nmod tests {\n    use super::super::c::C;\n}",
        ),
        ("a/c.rs", "pub struct C(crate::a::b::B);"),
    ]);
    assert_eq!(found, ["a/b.rs <-> a/c.rs"]);
    // `crate::` in the binary's `cli.rs` is the binary; in the library's `x.rs`, the library.
    let found = loops(&[
        ("lib.rs", "pub mod x;"),
        ("x.rs", "use crate::cli::C;"),
        ("main.rs", "mod cli;\nmod run;"),
        ("cli.rs", "use crate::x::X;\nuse crate::run::R;"),
        ("run.rs", "fn f() { crate::cli::g() }"),
    ]);
    assert_eq!(found, ["cli.rs <-> run.rs"]);
}

#[test]
fn checker_follows_normal_dependencies_only() {
    let pkg = |id: &str| json!({"id": id, "name": id});
    let dep = |id: &str, kind: Value| json!({"pkg": id, "dep_kinds": [{"kind": kind}]});
    let metadata = json!({
        "packages": [pkg("top"), pkg("mid"), pkg("burn-core"), pkg("burn-dev")],
        "resolve": {"nodes": [
            {"id": "top", "deps": [dep("burn-dev", "dev".into()), dep("mid", Value::Null)]},
            {"id": "mid", "deps": [dep("burn-core", Value::Null)]},
            {"id": "burn-core", "deps": []},
            {"id": "burn-dev", "deps": []},
        ]},
    });
    let path = dependency_path(&metadata, "top", "burn");
    assert_eq!(path.unwrap(), ["top", "mid", "burn-core"]);
    assert_eq!(dependency_path(&metadata, "top", "burn-dev"), None);
}
