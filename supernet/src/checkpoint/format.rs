//! The bytes of a checkpoint file (see the format in the [module docs](super)): encoding,
//! the checks of a read, decoding, and the CRC-32 that guards them.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::{Checkpoint, CheckpointError, FORMAT_VERSION, MAGIC, Section};

/// Magic, version and total length.
pub(super) const PREAMBLE_LEN: usize = 8 + 4 + 8;

/// The smallest possible file: preamble, header length, section count and checksum (an empty
/// header is malformed, but has a well-defined layout).
const MIN_FILE_LEN: u64 = (PREAMBLE_LEN + 8 + 4 + 4) as u64;

/// The JSON header.
#[derive(Serialize, Deserialize)]
struct Header {
    fingerprint: u64,
    step: u64,
    created_unix_ms: Option<u64>,
    metadata: serde_json::Value,
}

/// CRC-32 (IEEE, as in zlib and PNG) of `bytes`, by `crc32fast`.
pub fn crc32(bytes: &[u8]) -> u32 {
    crc32fast::hash(bytes)
}

/// The bytes of `ckpt`, to be written to `path` (which errors name).
pub(super) fn encode(ckpt: &Checkpoint, path: &Path) -> Result<Vec<u8>, CheckpointError> {
    let invalid = |detail: String| CheckpointError::InvalidSection {
        path: path.to_path_buf(),
        detail,
    };
    for (i, s) in ckpt.sections.iter().enumerate() {
        if s.name.is_empty() {
            return Err(invalid(format!("section {i} has an empty name")));
        }
        if s.name.len() > u16::MAX as usize {
            return Err(invalid(format!(
                "section {i}'s name is {} bytes long, at most {} allowed",
                s.name.len(),
                u16::MAX
            )));
        }
        if ckpt.sections[..i].iter().any(|t| t.name == s.name) {
            return Err(invalid(format!("two sections are called `{}`", s.name)));
        }
    }
    let count = u32::try_from(ckpt.sections.len())
        .map_err(|_| invalid(format!("{} sections, too many", ckpt.sections.len())))?;
    let header = Header {
        fingerprint: ckpt.fingerprint,
        step: ckpt.step,
        created_unix_ms: ckpt.created_unix_ms,
        metadata: ckpt.metadata.clone(),
    };
    let header = serde_json::to_vec(&header).map_err(|e| CheckpointError::MalformedHeader {
        path: path.to_path_buf(),
        detail: e.to_string(),
    })?;

    let sections_len: usize = ckpt
        .sections
        .iter()
        .map(|s| 2 + s.name.len() + 8 + s.bytes.len())
        .sum();
    let total = PREAMBLE_LEN + 8 + header.len() + 4 + sections_len + 4;
    let mut out = Vec::with_capacity(total);
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    out.extend_from_slice(&(total as u64).to_le_bytes());
    out.extend_from_slice(&(header.len() as u64).to_le_bytes());
    out.extend_from_slice(&header);
    out.extend_from_slice(&count.to_le_bytes());
    for s in &ckpt.sections {
        out.extend_from_slice(&(s.name.len() as u16).to_le_bytes());
        out.extend_from_slice(s.name.as_bytes());
        out.extend_from_slice(&(s.bytes.len() as u64).to_le_bytes());
        out.extend_from_slice(&s.bytes);
    }
    let crc = crc32(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    debug_assert_eq!(out.len(), total);
    Ok(out)
}

/// A bounds-checked reader over the verified body of a file.
struct Cursor<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: u64, what: &str) -> Result<&'a [u8], String> {
        let left = (self.bytes.len() - self.at) as u64;
        if n > left {
            return Err(format!(
                "{what} at offset {} needs {n} bytes, only {left} remain",
                self.at
            ));
        }
        let s = &self.bytes[self.at..self.at + n as usize];
        self.at += n as usize;
        Ok(s)
    }

    fn u16(&mut self, what: &str) -> Result<u16, String> {
        let b = self.take(2, what)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }

    fn u32(&mut self, what: &str) -> Result<u32, String> {
        let b = self.take(4, what)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn u64(&mut self, what: &str) -> Result<u64, String> {
        let b = self.take(8, what)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }
}

fn le_u32(b: &[u8]) -> u32 {
    u32::from_le_bytes([b[0], b[1], b[2], b[3]])
}

fn le_u64(b: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    u64::from_le_bytes(a)
}

/// The checkpoint in `bytes`, read from `path` (which errors name), checked in the order the
/// module docs give.
pub(super) fn decode(
    bytes: &[u8],
    path: &Path,
    expected_fingerprint: Option<u64>,
) -> Result<Checkpoint, CheckpointError> {
    let path_buf = || path.to_path_buf();
    let actual = bytes.len() as u64;
    let truncated = |expected: u64| CheckpointError::Truncated {
        path: path_buf(),
        expected,
        actual,
    };
    if bytes.len() < MAGIC.len() {
        return Err(if MAGIC.starts_with(bytes) {
            truncated(PREAMBLE_LEN as u64)
        } else {
            CheckpointError::NotACheckpoint { path: path_buf() }
        });
    }
    if bytes[..MAGIC.len()] != MAGIC {
        return Err(CheckpointError::NotACheckpoint { path: path_buf() });
    }
    if bytes.len() < 12 {
        return Err(truncated(PREAMBLE_LEN as u64));
    }
    let version = le_u32(&bytes[8..12]);
    if version != FORMAT_VERSION {
        return Err(CheckpointError::UnsupportedVersion {
            path: path_buf(),
            found: version,
            supported: FORMAT_VERSION,
        });
    }
    if bytes.len() < PREAMBLE_LEN {
        return Err(truncated(PREAMBLE_LEN as u64));
    }
    let total = le_u64(&bytes[12..20]);
    let corrupt = |detail: String| CheckpointError::Corrupt {
        path: path_buf(),
        detail,
    };
    if total < MIN_FILE_LEN {
        return Err(corrupt(format!(
            "it records a length of {total} bytes, less than the smallest checkpoint ({MIN_FILE_LEN})"
        )));
    }
    if actual < total {
        return Err(truncated(total));
    }
    if actual > total {
        return Err(corrupt(format!(
            "{actual} bytes, but it records a length of {total}: {} unexpected trailing bytes",
            actual - total
        )));
    }
    let body_len = bytes.len() - 4;
    let stored = le_u32(&bytes[body_len..]);
    let computed = crc32(&bytes[..body_len]);
    if stored != computed {
        return Err(CheckpointError::ChecksumMismatch {
            path: path_buf(),
            stored,
            computed,
        });
    }

    // The checksum matched: what follows fails only for a file written by something else.
    let mut cur = Cursor {
        bytes: &bytes[..body_len],
        at: PREAMBLE_LEN,
    };
    fn parse<'a>(cur: &mut Cursor<'a>) -> Result<(&'a [u8], Vec<Section>), String> {
        let header_len = cur.u64("header length")?;
        let header = cur.take(header_len, "header")?;
        let count = cur.u32("section count")?;
        let mut sections: Vec<Section> = Vec::new();
        for i in 0..count {
            let name_len = cur.u16("section name length")?;
            let name = cur.take(name_len as u64, "section name")?;
            let name = std::str::from_utf8(name)
                .map_err(|_| format!("section {i}'s name is not UTF-8"))?
                .to_string();
            if sections.iter().any(|s| s.name == name) {
                return Err(format!("two sections are called `{name}`"));
            }
            let len = cur.u64("section length")?;
            let data = cur.take(len, "section data")?;
            sections.push(Section {
                name,
                bytes: data.to_vec(),
            });
        }
        if cur.at != cur.bytes.len() {
            return Err(format!(
                "{} unexplained bytes after the last section",
                cur.bytes.len() - cur.at
            ));
        }
        Ok((header, sections))
    }
    let (header, sections) = parse(&mut cur).map_err(corrupt)?;
    let header: Header =
        serde_json::from_slice(header).map_err(|e| CheckpointError::MalformedHeader {
            path: path_buf(),
            detail: e.to_string(),
        })?;
    if let Some(expected) = expected_fingerprint
        && expected != header.fingerprint
    {
        return Err(CheckpointError::WrongSpace {
            path: path_buf(),
            expected,
            found: header.fingerprint,
        });
    }
    Ok(Checkpoint {
        fingerprint: header.fingerprint,
        step: header.step,
        created_unix_ms: header.created_unix_ms,
        metadata: header.metadata,
        sections,
    })
}
