//! Mutation tests of checkpoint files: real checkpoints (a digits supernet's weights and
//! optimizer state, written with the public API) edited at random (bytes flipped, inserted and
//! deleted, truncations, the length, header-length, section-count, name-length and
//! section-length fields at their limits, header JSON replaced, section names that are not
//! UTF-8 or repeat), half of them with the recorded length and the CRC-32 recomputed after the
//! edit so that the parser past the checksum is exercised too. Every mutant must be read by
//! `read_checkpoint` or give an error naming the file, an unrepaired mutant must always be
//! refused, `latest_good` must skip a damaged newest file and fall back to the good one, and
//! sections that read back are handed to `Trainer::restore`, which must not panic.
//!
//! Every input comes from a fixed seed, so a failure reproduces; a failure names its case.
//! `QNAS_FUZZ_CASES=N` runs `N` cases instead of the default (a longer campaign:
//! `QNAS_FUZZ_CASES=50000 cargo test --release -p qnas-supernet --test fuzz_checkpoint`).

use std::path::{Path, PathBuf};

use burn::tensor::Device;
use serde_json::{Value, json};
use spaces::{Rng, Space};
use supernet::Trainer;
use supernet::checkpoint::{
    Checkpoint, CheckpointError, checkpoint_file_name, crc32, latest_good, read_checkpoint,
    write_checkpoint,
};

/// Cases of a test: `QNAS_FUZZ_CASES` when set, else `default`.
fn cases(default: usize) -> usize {
    std::env::var("QNAS_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn digits() -> Space {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../spaces/presets/digits.ron");
    Space::load(&path).expect("the digits preset loads")
}

/// A fresh, empty folder of the test's own.
fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("qnas-ckpt-fuzz-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// The checkpoint a digits training run writes: the trainer's state as metadata, the model and
/// optimizer bytes of every supernet copy as sections.
fn real_checkpoint(trainer: &Trainer, fingerprint: u64) -> Checkpoint {
    let mut ck = Checkpoint::new(
        fingerprint,
        trainer.state.step,
        json!({ "space": "digits", "state": trainer.state }),
    )
    .with_created_now();
    for (i, (model, optim)) in trainer.weights_bytes().unwrap().into_iter().enumerate() {
        ck = ck
            .with_section(format!("model-{i}"), model)
            .with_section(format!("optim-{i}"), optim);
    }
    ck
}

/// Per section: the offsets of the name-length field, the name (start, end), the
/// data-length field and the data (start, end).
type SectionAt = (usize, (usize, usize), usize, (usize, usize));

/// The offsets of a checkpoint's fields.
struct Layout {
    header_len_at: usize,
    header: (usize, usize),
    count_at: usize,
    sections: Vec<SectionAt>,
}

fn le_u64(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().unwrap())
}

/// The fields of `b`, if it is still laid out as a checkpoint (edits may have broken it).
fn layout(b: &[u8]) -> Option<Layout> {
    let get = |at: usize, n: usize| b.get(at..at.checked_add(n)?);
    let header_len_at = 20;
    let h = usize::try_from(u64::from_le_bytes(get(header_len_at, 8)?.try_into().ok()?)).ok()?;
    let header = (28, 28usize.checked_add(h)?);
    let count_at = header.1;
    let count = u32::from_le_bytes(get(count_at, 4)?.try_into().ok()?);
    let mut at = count_at + 4;
    let mut sections = Vec::new();
    for _ in 0..count.min(64) {
        let name_len = u16::from_le_bytes(get(at, 2)?.try_into().ok()?) as usize;
        let name = (at + 2, at + 2 + name_len);
        let len_at = name.1;
        let len = usize::try_from(u64::from_le_bytes(get(len_at, 8)?.try_into().ok()?)).ok()?;
        let data = (len_at + 8, (len_at + 8).checked_add(len)?);
        get(data.0, len)?;
        sections.push((at, name, len_at, data));
        at = data.1;
    }
    Some(Layout {
        header_len_at,
        header,
        count_at,
        sections,
    })
}

fn limit_u64(rng: &mut Rng, original: u64) -> u64 {
    const LIMITS: &[u64] = &[
        0,
        1,
        2,
        3,
        4,
        8,
        31,
        32,
        255,
        0xFFFF,
        0x1_0000,
        0x7FFF_FFFF,
        0x8000_0000,
        0xFFFF_FFFF,
        0x1_0000_0000,
        1 << 40,
        1 << 62,
        i64::MAX as u64,
        u64::MAX - 1,
        u64::MAX,
    ];
    match rng.below(LIMITS.len() + 3) {
        i if i < LIMITS.len() => LIMITS[i],
        i if i == LIMITS.len() => original.wrapping_add(1 + rng.below(16) as u64),
        i if i == LIMITS.len() + 1 => original.wrapping_sub(1 + rng.below(16) as u64),
        _ => rng.next_u64(),
    }
}

/// Header documents that are not the expected one: fields missing, of the wrong type or at
/// their limits, not JSON, not UTF-8, nested too deep.
fn odd_header(rng: &mut Rng, original: &[u8]) -> Vec<u8> {
    // an earlier edit may have left something else than the object
    let Ok(doc @ Value::Object(_)) = serde_json::from_slice::<Value>(original) else {
        return b"{}".to_vec();
    };
    match rng.below(12) {
        0 => Vec::new(),
        1 => b"null".to_vec(),
        2 => b"{}".to_vec(),
        3 => b"[]".to_vec(),
        4 => {
            let mut d = doc;
            let keys: Vec<String> = d.as_object().unwrap().keys().cloned().collect();
            if !keys.is_empty() {
                d.as_object_mut()
                    .unwrap()
                    .remove(&keys[rng.below(keys.len())]);
            }
            serde_json::to_vec(&d).unwrap()
        }
        5 => {
            let mut d = doc;
            let key = ["fingerprint", "step", "created_unix_ms"][rng.below(3)];
            let v: Value = [
                json!(-1),
                json!(u64::MAX),
                json!(1e300),
                json!("1"),
                json!(null),
                json!([]),
                json!(0.5),
            ][rng.below(7)]
            .clone();
            d[key] = v;
            serde_json::to_vec(&d).unwrap()
        }
        6 => {
            let mut d = doc;
            d["extra"] = json!("x".repeat(rng.below(10_000)));
            serde_json::to_vec(&d).unwrap()
        }
        7 => {
            let n = 1 + rng.below(20_000);
            let mut s = "[".repeat(n);
            s += &"]".repeat(n);
            s.into_bytes()
        }
        8 => {
            let mut b = original.to_vec();
            let at = rng.below(b.len() + 1);
            b.insert(at, [0xFF, 0xC3, 0x80, 0x00][rng.below(4)]);
            b
        }
        9 => {
            let mut b = original.to_vec();
            b.truncate(rng.below(b.len() + 1));
            b
        }
        10 => {
            let mut d = doc;
            d["fingerprint"] = json!(rng.next_u64());
            serde_json::to_vec(&d).unwrap()
        }
        _ => {
            let mut d = doc;
            d["step"] = json!(rng.next_u64());
            serde_json::to_vec(&d).unwrap()
        }
    }
}

/// One edit of a checkpoint file, described.
fn edit(rng: &mut Rng, b: &mut Vec<u8>) -> &'static str {
    // structural edits need the structure: only on a file that still parses as the original
    let lay = layout(b);
    let set_u64 =
        |b: &mut Vec<u8>, at: usize, v: u64| b[at..at + 8].copy_from_slice(&v.to_le_bytes());
    match (rng.below(14), lay) {
        (0, _) if b.len() >= 12 => {
            let v = [0u32, 2, 3, u32::MAX, 0x0100_0000][rng.below(5)];
            b[8..12].copy_from_slice(&v.to_le_bytes());
            "version"
        }
        (1, _) if b.len() >= 20 => {
            let v = limit_u64(rng, le_u64(b, 12));
            set_u64(b, 12, v);
            "total length"
        }
        (2, Some(l)) => {
            let v = limit_u64(rng, le_u64(b, l.header_len_at));
            set_u64(b, l.header_len_at, v);
            "header length"
        }
        (3, Some(l)) => {
            let old = u32::from_le_bytes(b[l.count_at..l.count_at + 4].try_into().unwrap());
            let v = [
                0,
                1,
                old.wrapping_sub(1),
                old.wrapping_add(1),
                u32::MAX,
                0x8000_0000,
            ][rng.below(6)];
            b[l.count_at..l.count_at + 4].copy_from_slice(&v.to_le_bytes());
            "section count"
        }
        (4, Some(l)) if !l.sections.is_empty() => {
            let (at, (s, e), _, _) = l.sections[rng.below(l.sections.len())];
            let old = (e - s) as u16;
            let v = [
                0,
                1,
                old.wrapping_sub(1),
                old.wrapping_add(1),
                u16::MAX,
                0x8000,
            ][rng.below(6)];
            b[at..at + 2].copy_from_slice(&v.to_le_bytes());
            "name length"
        }
        (5, Some(l)) if !l.sections.is_empty() => {
            let (_, _, len_at, _) = l.sections[rng.below(l.sections.len())];
            let v = limit_u64(rng, le_u64(b, len_at));
            set_u64(b, len_at, v);
            "section length"
        }
        // the header replaced, its length field kept right
        (6, Some(l)) => {
            let new = odd_header(rng, &b[l.header.0..l.header.1]);
            set_u64(b, l.header_len_at, new.len() as u64);
            b.splice(l.header.0..l.header.1, new);
            "header"
        }
        // a section name that is not UTF-8, or another section's name
        (7, Some(l)) if l.sections.len() >= 2 => {
            let (_, (s, e), _, _) = l.sections[rng.below(l.sections.len())];
            if rng.chance(0.5) && e > s {
                b[s + rng.below(e - s)] = [0xFF, 0xC3, 0xED, 0x80][rng.below(4)];
            } else {
                // same length names: model-0 / optim-0 differ in length, so write over the
                // first bytes and keep the length: a duplicate when the prefix matches
                let (_, (s2, e2), _, _) = l.sections[rng.below(l.sections.len())];
                let n = (e - s).min(e2 - s2);
                let name = b[s2..s2 + n].to_vec();
                b[s..s + n].copy_from_slice(&name);
            }
            "section name"
        }
        // a section's data cut or grown, its length field kept right
        (8, Some(l)) if !l.sections.is_empty() => {
            let (_, _, len_at, (s, e)) = l.sections[rng.below(l.sections.len())];
            let new_len = if rng.chance(0.5) {
                rng.below(e - s + 1)
            } else {
                e - s + 1 + rng.below(100)
            };
            if new_len <= e - s {
                b.drain(s + new_len..e);
            } else {
                let extra: Vec<u8> = (0..new_len - (e - s))
                    .map(|_| rng.next_u64() as u8)
                    .collect();
                b.splice(e..e, extra);
            }
            set_u64(b, len_at, new_len as u64);
            "section data"
        }
        (9, _) => {
            b.truncate(rng.below(b.len() + 1));
            "truncated"
        }
        (10, _) => {
            let at = rng.below(b.len() + 1);
            let end = (at + 1 + rng.below(64)).min(b.len());
            b.drain(at..end);
            "deleted"
        }
        (11, _) => {
            let at = rng.below(b.len() + 1);
            let n = 1 + rng.below(64);
            b.splice(at..at, (0..n).map(|_| rng.next_u64() as u8));
            "inserted"
        }
        _ => {
            // a byte flip, near the start (the fields) half of the time
            if b.is_empty() {
                return "none";
            }
            let at = if rng.chance(0.5) {
                rng.below(b.len().min(64))
            } else {
                rng.below(b.len())
            };
            b[at] ^= 1 + rng.below(255) as u8;
            "flip"
        }
    }
}

/// The recorded length and the checksum made to match the (edited) bytes, as a writer that
/// does not know the format's rules would.
fn repair(b: &mut [u8]) {
    if b.len() < 24 || !b.starts_with(b"QNASCKPT") {
        return;
    }
    let len = b.len() as u64;
    b[12..20].copy_from_slice(&len.to_le_bytes());
    let body = b.len() - 4;
    let crc = crc32(&b[..body]);
    b[body..].copy_from_slice(&crc.to_le_bytes());
}

/// Checks an error of reading `path`.
fn check_error(e: &CheckpointError, path: &Path, what: &str) {
    assert_eq!(e.path(), path, "{what}: {e}");
    assert!(
        e.to_string().contains(&path.display().to_string()),
        "{what}: `{e}` does not name the file"
    );
}

#[test]
fn mutated_checkpoints_read_or_give_errors_naming_the_file() {
    let space = digits();
    let fingerprint = space.fingerprint();
    let device = Device::flex();
    let trainer = Trainer::new(&space, &device).unwrap();
    let ck = real_checkpoint(&trainer, fingerprint);
    let dir = temp_dir("cases");
    // the good checkpoint of step 1, and the seed bytes of the mutants
    write_checkpoint(&dir.join(checkpoint_file_name(1)), &ck).unwrap();
    let seed_path = dir.join("seed.bin");
    write_checkpoint(&seed_path, &ck).unwrap();
    let seed = std::fs::read(&seed_path).unwrap();
    std::fs::remove_file(&seed_path).unwrap();
    assert!(seed.len() > 10_000, "a checkpoint of {} bytes", seed.len());

    let n = cases(3_000);
    let mut rng = Rng::new(0xC4EC_4B01);
    let (mut read, mut refused, mut repaired_read, mut restored) = (0, 0, 0, 0);
    for case in 0..n {
        let mut r = rng.fork(case as u64);
        let mut b = seed.clone();
        let edits: Vec<&str> = (0..1 + r.below(3)).map(|_| edit(&mut r, &mut b)).collect();
        let fixed = r.chance(0.5);
        if fixed {
            repair(&mut b);
        }
        let what = format!("case {case} ({edits:?}, repaired: {fixed})");
        let path = dir.join(checkpoint_file_name(2));
        std::fs::write(&path, &b).unwrap();

        let result = read_checkpoint(&path, None);
        match &result {
            Ok(got) => {
                // unrepaired damage never reads back: CRC-32 catches it
                assert!(fixed || b == seed, "{what}: damage read back");
                if b == seed {
                    assert_eq!(got, &ck, "{what}");
                } else {
                    repaired_read += 1;
                }
                let names: Vec<&str> = got.sections.iter().map(|s| s.name.as_str()).collect();
                let mut unique = names.clone();
                unique.sort_unstable();
                unique.dedup();
                assert_eq!(unique.len(), names.len(), "{what}: repeated sections");
                read += 1;
            }
            Err(e) => {
                check_error(e, &path, &what);
                refused += 1;
            }
        }
        // with the space's fingerprint: the same, or a checkpoint of another space
        match (read_checkpoint(&path, Some(fingerprint)), &result) {
            (Ok(a), Ok(b)) => assert_eq!(&a, b, "{what}"),
            (Err(CheckpointError::WrongSpace { found, .. }), Ok(b)) => {
                assert_eq!(found, b.fingerprint, "{what}");
                assert_ne!(found, fingerprint, "{what}");
            }
            (Err(e), Err(_)) => check_error(&e, &path, &what),
            (a, b) => panic!("{what}: {a:?} with the fingerprint, {b:?} without"),
        }
        // the newest file is the mutant: skipped when damaged, the good one found
        match (latest_good(&dir, Some(fingerprint)), &result) {
            (Ok(l), Ok(got)) => {
                let (p, c) = l.found.expect("the mutant reads back");
                assert_eq!(p, path, "{what}");
                assert_eq!(&c, got, "{what}");
                assert!(l.skipped.is_empty(), "{what}");
            }
            (Ok(l), Err(_)) => {
                let (p, c) = l.found.expect("the good checkpoint is found");
                assert_eq!(p, dir.join(checkpoint_file_name(1)), "{what}");
                assert_eq!(c, ck, "{what}");
                assert_eq!(l.skipped.len(), 1, "{what}");
                assert_eq!(l.skipped[0].0, path, "{what}");
                check_error(&l.skipped[0].1, &path, &what);
            }
            (Err(e @ CheckpointError::WrongSpace { .. }), Ok(_)) => check_error(&e, &path, &what),
            (Err(e), _) => panic!("{what}: latest_good failed: {e}"),
        }
        // a repaired mutant that reads back: its sections restore a trainer or are refused
        if let Ok(got) = result
            && got != ck
        {
            let weights: Vec<(Vec<u8>, Vec<u8>)> = got
                .section("model-0")
                .zip(got.section("optim-0"))
                .map(|(m, o)| (m.to_vec(), o.to_vec()))
                .into_iter()
                .collect();
            let mut t = Trainer::new(&space, &device).unwrap();
            let state = t.state.clone();
            let _ = t.restore(weights, state);
            restored += 1;
        }
        let _ = std::fs::remove_file(&path);
    }
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        refused > n / 2 && repaired_read > 0 && restored > 0,
        "{read} read ({repaired_read} repaired mutants, {restored} restored), {refused} refused"
    );
}

#[test]
fn fields_at_their_limits_with_a_valid_checksum_are_corrupt_not_panics() {
    let dir = temp_dir("limits");
    let ck = Checkpoint::new(3, 4, json!({"a": 1}))
        .with_section("model", vec![7; 100])
        .with_section("optim", vec![9; 10]);
    let path = dir.join(checkpoint_file_name(4));
    write_checkpoint(&path, &ck).unwrap();
    let seed = std::fs::read(&path).unwrap();
    let l = layout(&seed).unwrap();
    let mut fields: Vec<(usize, usize)> = vec![(l.header_len_at, 8), (l.count_at, 4)];
    for &(name_at, _, len_at, _) in &l.sections {
        fields.push((name_at, 2));
        fields.push((len_at, 8));
    }
    for (at, width) in fields {
        for v in [
            0u64,
            1,
            u64::from(u16::MAX),
            u64::from(u32::MAX),
            1 << 40,
            u64::MAX,
        ] {
            let mut b = seed.clone();
            b[at..at + width].copy_from_slice(&v.to_le_bytes()[..width]);
            repair(&mut b);
            std::fs::write(&path, &b).unwrap();
            let what = format!("field at {at} = {v}");
            match read_checkpoint(&path, None) {
                Ok(got) => panic!("{what}: read back {got:?}"),
                Err(e) => {
                    check_error(&e, &path, &what);
                    assert!(
                        matches!(
                            e,
                            CheckpointError::Corrupt { .. }
                                | CheckpointError::MalformedHeader { .. }
                        ),
                        "{what}: {e}"
                    );
                }
            }
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}
