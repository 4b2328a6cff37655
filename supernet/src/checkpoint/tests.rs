//! Tests of the checkpoint container, its files and folders.

use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};

use super::format::{PREAMBLE_LEN, decode, encode};
use super::*;
use serde_json::json;

/// A fresh folder under the system temp folder, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let p = std::env::temp_dir().join(format!(
            "qnas-checkpoint-test-{}-{name}",
            std::process::id()
        ));
        let _ = fs::remove_dir_all(&p);
        fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

fn sample(step: u64) -> Checkpoint {
    Checkpoint::new(
        0xDEAD_BEEF_0123_4567,
        step,
        json!({"lr": 0.05, "rng": [1u64, 2, 3, u64::MAX], "note": "ünïcode"}),
    )
    .with_created_now()
    .with_section("model", (0..200u32).map(|i| (i * 7) as u8).collect())
    .with_section("optimizer", vec![1, 2, 3])
    .with_section("empty", Vec::new())
}

fn small() -> Checkpoint {
    Checkpoint::new(42, 7, json!({"a": 1}))
        .with_section("m", vec![9, 8, 7, 6])
        .with_section("o", vec![5])
}

#[test]
fn crc32_check_value() {
    assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
    assert_eq!(crc32(b""), 0);
    assert_eq!(
        crc32(b"The quick brown fox jumps over the lazy dog"),
        0x414F_A339
    );
}

#[test]
fn round_trip() {
    let d = TempDir::new("round-trip");
    let path = d.0.join("a.qckpt");
    let c = sample(1234);
    write_checkpoint(&path, &c).unwrap();
    let back = read_checkpoint(&path, Some(c.fingerprint)).unwrap();
    assert_eq!(back, c);
    assert!(back.created_unix_ms.is_some());
    assert_eq!(back.section("optimizer"), Some(&[1u8, 2, 3][..]));
    assert_eq!(back.section("empty"), Some(&[][..]));
    assert_eq!(back.section("missing"), None);
    // No expected fingerprint: any space.
    assert_eq!(read_checkpoint(&path, None).unwrap(), c);
    // Only the final file is there.
    assert_eq!(names(&d.0), vec!["a.qckpt"]);
}

#[test]
fn every_single_byte_change_is_detected() {
    let c = small();
    let path = Path::new("mem.qckpt");
    let bytes = encode(&c, path).unwrap();
    assert_eq!(decode(&bytes, path, Some(42)).unwrap(), c);
    for i in 0..bytes.len() {
        for flip in [0x01u8, 0x80, 0xFF] {
            let mut b = bytes.clone();
            b[i] ^= flip;
            let r = decode(&b, path, None);
            assert!(
                r.is_err(),
                "change {flip:#x} at byte {i} of {} not detected",
                b.len()
            );
        }
    }
    // Which error, by region.
    let kind = |i: usize| {
        let mut b = bytes.clone();
        b[i] ^= 0x10;
        decode(&b, path, None).unwrap_err()
    };
    assert!(matches!(kind(0), CheckpointError::NotACheckpoint { .. }));
    assert!(matches!(
        kind(8),
        CheckpointError::UnsupportedVersion { found: 17, .. }
    ));
    assert!(matches!(kind(12), CheckpointError::Truncated { .. }));
    let header_at = PREAMBLE_LEN + 8 + 3;
    assert!(matches!(
        kind(header_at),
        CheckpointError::ChecksumMismatch { .. }
    ));
    let section_at = bytes.len() - 4 - 2; // inside section "o"'s length / data
    assert!(matches!(
        kind(section_at),
        CheckpointError::ChecksumMismatch { .. }
    ));
    let crc_at = bytes.len() - 1;
    match kind(crc_at) {
        CheckpointError::ChecksumMismatch {
            path: p,
            stored,
            computed,
        } => {
            assert_eq!(p, path);
            assert_eq!(stored ^ computed, 0x1000_0000);
        }
        e => panic!("{e}"),
    }
    let msg = kind(header_at).to_string();
    assert!(msg.starts_with("mem.qckpt: corrupt checkpoint"), "{msg}");
}

#[test]
fn truncation_is_detected_at_every_length() {
    let c = small();
    let path = Path::new("mem.qckpt");
    let bytes = encode(&c, path).unwrap();
    for len in 0..bytes.len() {
        match decode(&bytes[..len], path, None) {
            Err(CheckpointError::Truncated {
                expected, actual, ..
            }) => {
                assert_eq!(actual, len as u64);
                let want = if len < PREAMBLE_LEN {
                    PREAMBLE_LEN
                } else {
                    bytes.len()
                };
                assert_eq!(expected, want as u64, "at {len}");
            }
            other => panic!("truncated to {len}: {other:?}"),
        }
    }
    // Extra bytes are corruption, not silently ignored.
    let mut long = bytes.clone();
    long.push(0);
    assert!(matches!(
        decode(&long, path, None),
        Err(CheckpointError::Corrupt { .. })
    ));
    // And through the file system, with the file named.
    let d = TempDir::new("truncated");
    let p = d.0.join("t.qckpt");
    fs::write(&p, &bytes[..bytes.len() / 2]).unwrap();
    let e = read_checkpoint(&p, None).unwrap_err();
    assert!(matches!(e, CheckpointError::Truncated { .. }));
    assert!(e.to_string().contains("t.qckpt"), "{e}");
    assert_eq!(e.path(), p);
}

#[test]
fn other_errors_name_the_file() {
    let d = TempDir::new("errors");
    let missing = d.0.join("nope.qckpt");
    let e = read_checkpoint(&missing, None).unwrap_err();
    assert!(matches!(e, CheckpointError::NotFound { .. }));
    assert!(e.to_string().contains("nope.qckpt"));

    let other = d.0.join("other.qckpt");
    fs::write(&other, b"{\"not\": \"a checkpoint\"}").unwrap();
    let e = read_checkpoint(&other, None).unwrap_err();
    assert!(matches!(e, CheckpointError::NotACheckpoint { .. }), "{e}");
    assert!(e.to_string().contains("other.qckpt"));

    // A future version.
    let mut bytes = encode(&small(), &other).unwrap();
    bytes[8..12].copy_from_slice(&2u32.to_le_bytes());
    fs::write(&other, &bytes).unwrap();
    let e = read_checkpoint(&other, None).unwrap_err();
    assert!(
        matches!(
            e,
            CheckpointError::UnsupportedVersion {
                found: 2,
                supported: 1,
                ..
            }
        ),
        "{e}"
    );

    // A valid container whose header is not ours: rebuild the checksum around bad JSON.
    let mut c = small();
    c.metadata = json!(null);
    let good = encode(&c, &other).unwrap();
    let text = String::from_utf8_lossy(&good).into_owned();
    let at = text.find("\"fingerprint\"").unwrap();
    let mut bad = good.clone();
    bad[at + 1] = b'F'; // "Fingerprint": unknown field, required one missing
    let n = bad.len() - 4;
    let crc = crc32(&bad[..n]);
    bad[n..].copy_from_slice(&crc.to_le_bytes());
    fs::write(&other, &bad).unwrap();
    let e = read_checkpoint(&other, None).unwrap_err();
    assert!(matches!(e, CheckpointError::MalformedHeader { .. }), "{e}");
    assert!(e.to_string().contains("other.qckpt"));
}

#[test]
fn wrong_fingerprint() {
    let d = TempDir::new("fingerprint");
    let p = d.0.join("x.qckpt");
    write_checkpoint(&p, &small()).unwrap();
    let e = read_checkpoint(&p, Some(43)).unwrap_err();
    match &e {
        CheckpointError::WrongSpace {
            expected, found, ..
        } => {
            assert_eq!((*expected, *found), (43, 42));
        }
        other => panic!("{other}"),
    }
    let msg = e.to_string();
    assert!(
        msg.contains("x.qckpt")
            && msg.contains("000000000000002a")
            && msg.contains("000000000000002b"),
        "{msg}"
    );
}

#[test]
fn invalid_sections_are_refused_and_leave_nothing() {
    let d = TempDir::new("invalid");
    let p = d.0.join("x.qckpt");
    let dup = small().with_section("m", vec![]);
    assert!(matches!(
        write_checkpoint(&p, &dup),
        Err(CheckpointError::InvalidSection { .. })
    ));
    let empty = small().with_section("", vec![]);
    assert!(matches!(
        write_checkpoint(&p, &empty),
        Err(CheckpointError::InvalidSection { .. })
    ));
    assert!(names(&d.0).is_empty());
}

#[test]
fn replaces_an_existing_file_atomically_and_leaves_no_temp_files() {
    let d = TempDir::new("replace");
    let p = d.0.join("c.qckpt");
    write_checkpoint(&p, &small()).unwrap();
    // A handle on the old file keeps seeing the old contents: the new file was renamed
    // over it, not written into it.
    let old_bytes = fs::read(&p).unwrap();
    let mut old = File::open(&p).unwrap();
    let c2 = sample(8);
    write_checkpoint(&p, &c2).unwrap();
    let mut seen = Vec::new();
    io::Read::read_to_end(&mut old, &mut seen).unwrap();
    assert_eq!(seen, old_bytes);
    assert_eq!(read_checkpoint(&p, None).unwrap(), c2);
    assert_eq!(names(&d.0), vec!["c.qckpt"]);

    // A failed rename (the target is a non-empty folder) removes the temporary file.
    let target = d.0.join("busy");
    fs::create_dir_all(target.join("inside")).unwrap();
    let e = write_checkpoint(&target, &small()).unwrap_err();
    assert!(matches!(e, CheckpointError::Io { .. }), "{e}");
    assert_eq!(names(&d.0), vec!["busy", "c.qckpt"]);
    // And a failed write never touches the existing file.
    assert_eq!(read_checkpoint(&p, None).unwrap(), c2);
}

#[test]
fn file_names() {
    assert_eq!(checkpoint_file_name(100), "step-000100.qckpt");
    assert_eq!(checkpoint_file_name(12_345_678), "step-12345678.qckpt");
    assert_eq!(parse_checkpoint_file_name("step-000100.qckpt"), Some(100));
    assert_eq!(
        parse_checkpoint_file_name("step-12345678.qckpt"),
        Some(12_345_678)
    );
    for bad in [
        "step-100.qckpt",
        "step-000100.qckpt.tmp-1-0",
        ".step-000100.qckpt.a1B2c3.tmp",
        "step-00010a.qckpt",
        "step-+00100.qckpt",
        "x-000100.qckpt",
    ] {
        assert_eq!(parse_checkpoint_file_name(bad), None, "{bad}");
    }
}

#[test]
fn latest_good_skips_damaged_newest_files() {
    let d = TempDir::new("latest");
    assert!(
        latest_good(&d.0.join("missing"), None)
            .unwrap()
            .found
            .is_none()
    );
    for step in [100, 200, 300, 400] {
        save(&d.0, &sample(step), 10).unwrap();
    }
    // Newest corrupt (one flipped byte in the model section), next truncated.
    let p400 = d.0.join("step-000400.qckpt");
    let mut b = fs::read(&p400).unwrap();
    let mid = b.len() / 2;
    b[mid] ^= 0x04;
    fs::write(&p400, &b).unwrap();
    let p300 = d.0.join("step-000300.qckpt");
    let b = fs::read(&p300).unwrap();
    fs::write(&p300, &b[..b.len() - 10]).unwrap();
    // Stray temporary files from crashed writers (of this version and of earlier ones) are
    // ignored.
    fs::write(d.0.join(".step-000500.qckpt.x7Yz0q.tmp"), b"half").unwrap();
    fs::write(d.0.join("step-000500.qckpt.tmp-99999-0"), b"half").unwrap();

    let r = latest_good(&d.0, Some(sample(0).fingerprint)).unwrap();
    let (path, ckpt) = r.found.unwrap();
    assert_eq!(path, d.0.join("step-000200.qckpt"));
    assert_eq!(ckpt, read_checkpoint(&path, None).unwrap());
    assert_eq!(ckpt.step, 200);
    assert_eq!(r.skipped.len(), 2);
    assert_eq!(r.skipped[0].0, p400);
    assert!(matches!(
        r.skipped[0].1,
        CheckpointError::ChecksumMismatch { .. }
    ));
    assert_eq!(r.skipped[1].0, p300);
    assert!(matches!(r.skipped[1].1, CheckpointError::Truncated { .. }));

    // Another space's folder is an error, not a silent fallback.
    let e = latest_good(&d.0, Some(1)).unwrap_err();
    assert!(matches!(e, CheckpointError::WrongSpace { .. }));

    // Resuming from 200 and saving 250 removes the damaged later files.
    let saved = save(&d.0, &sample(250), 2).unwrap();
    assert_eq!(saved.path, d.0.join("step-000250.qckpt"));
    assert_eq!(
        names(&d.0),
        vec![
            ".step-000500.qckpt.x7Yz0q.tmp",
            "step-000200.qckpt",
            "step-000250.qckpt",
            "step-000500.qckpt.tmp-99999-0"
        ]
    );
    assert_eq!(saved.removed.len(), 3);
    let r = latest_good(&d.0, None).unwrap();
    assert_eq!(r.found.unwrap().1.step, 250);
    assert!(r.skipped.is_empty());

    // Everything damaged: nothing found, everything reported.
    for (_, p) in list_checkpoints(&d.0).unwrap() {
        fs::write(&p, b"QNASCK").unwrap();
    }
    let r = latest_good(&d.0, None).unwrap();
    assert!(r.found.is_none());
    assert_eq!(r.skipped.len(), 2);
}

#[test]
fn save_keeps_the_newest_k() {
    let d = TempDir::new("keep");
    for step in (1..=7).map(|i| i * 10) {
        save(&d.0, &small_at(step), 3).unwrap();
    }
    let steps: Vec<u64> = list_checkpoints(&d.0)
        .unwrap()
        .into_iter()
        .map(|(s, _)| s)
        .collect();
    assert_eq!(steps, vec![50, 60, 70]);
    assert_eq!(names(&d.0).len(), 3, "no temporary files left");
    let removed = prune(&d.0, 1).unwrap();
    assert_eq!(removed.len(), 2);
    assert_eq!(list_checkpoints(&d.0).unwrap()[0].0, 70);
    assert!(matches!(
        save(&d.0, &small_at(80), 0),
        Err(CheckpointError::KeepZero { .. })
    ));
    assert!(matches!(
        prune(&d.0, 0),
        Err(CheckpointError::KeepZero { .. })
    ));
}

fn small_at(step: u64) -> Checkpoint {
    let mut c = small();
    c.step = step;
    c
}
