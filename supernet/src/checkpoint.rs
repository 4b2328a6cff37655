//! Crash-safe checkpoint files: a container of named byte sections (the caller's serialized
//! model weights, optimizer state, ...) with a JSON header, written atomically and checked on
//! every read.
//!
//! # File format (version 1)
//!
//! All integers are little-endian.
//!
//! | offset | size | content |
//! |---|---|---|
//! | 0 | 8 | magic bytes `QNASCKPT` |
//! | 8 | 4 | format version, `u32` ([`FORMAT_VERSION`]) |
//! | 12 | 8 | total length of the file in bytes, checksum included, `u64` |
//! | 20 | 8 | header length `h`, `u64` |
//! | 28 | h | header: UTF-8 JSON `{"fingerprint", "step", "created_unix_ms", "metadata"}` |
//! | | 4 | number of sections, `u32` |
//! | | | per section: name length `u16`, name (UTF-8), data length `u64`, data |
//! | end - 4 | 4 | CRC-32 of every byte before it |
//!
//! The checksum is CRC-32 as in zlib, PNG and gzip (IEEE polynomial `0x04C11DB7`, reflected,
//! initial value and final xor `0xFFFFFFFF`; check value `0xCBF43926` for `"123456789"`),
//! table-driven and implemented here. It detects every error burst of up to 32 bits, so every
//! changed byte, and any other damage with probability `1 - 2^-32`. The recorded total length
//! tells a truncated file (shorter than recorded) from a corrupt one.
//!
//! A read checks, in order: the file exists, the magic, the version, the length, the checksum,
//! the structure, the header's JSON, and (when asked) the space fingerprint; each failure is its
//! own [`CheckpointError`] naming the file.
//!
//! # Writing
//!
//! [`write_checkpoint`] writes to a temporary file next to the target
//! (`<name>.tmp-<pid>-<n>`), flushes and syncs it, renames it over the target and syncs the
//! directory (on Unix; elsewhere the directory sync is skipped). A crash leaves either the old
//! file or the new one under the final name, never a mix; at worst a stray temporary file,
//! which [`list_checkpoints`] and [`latest_good`] ignore.
//!
//! # Folders of checkpoints
//!
//! [`save`] writes `step-000100.qckpt` style files ([`checkpoint_file_name`]) into a folder and
//! keeps the newest `keep`; [`latest_good`] finds the newest one that reads back intact,
//! reporting every damaged file it skipped.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// The first eight bytes of every checkpoint file.
pub const MAGIC: [u8; 8] = *b"QNASCKPT";

/// The format version written by this code, and the only one it reads.
pub const FORMAT_VERSION: u32 = 1;

/// The extension of checkpoint files in a folder (without the dot).
pub const EXTENSION: &str = "qckpt";

/// Magic, version and total length.
const PREAMBLE_LEN: usize = 8 + 4 + 8;

/// The smallest possible file: preamble, header length, section count and checksum (an empty
/// header is malformed, but has a well-defined layout).
const MIN_FILE_LEN: u64 = (PREAMBLE_LEN + 8 + 4 + 4) as u64;

/// One named byte section.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Section {
    /// Name, unique within a checkpoint, non-empty, at most `u16::MAX` bytes of UTF-8.
    pub name: String,
    /// Contents.
    pub bytes: Vec<u8>,
}

/// The contents of a checkpoint file.
#[derive(Clone, Debug, PartialEq)]
pub struct Checkpoint {
    /// Fingerprint of the space the checkpoint belongs to (`Space::fingerprint`).
    pub fingerprint: u64,
    /// Training step.
    pub step: u64,
    /// Creation time in milliseconds since the Unix epoch, if recorded.
    pub created_unix_ms: Option<u64>,
    /// The caller's JSON state (schedule position, RNG state, mixture, ...).
    pub metadata: serde_json::Value,
    /// Named byte sections, in order.
    pub sections: Vec<Section>,
}

impl Checkpoint {
    /// A checkpoint with no sections and no creation time.
    pub fn new(fingerprint: u64, step: u64, metadata: serde_json::Value) -> Self {
        Checkpoint {
            fingerprint,
            step,
            created_unix_ms: None,
            metadata,
            sections: Vec::new(),
        }
    }

    /// Appends a section.
    pub fn with_section(mut self, name: impl Into<String>, bytes: Vec<u8>) -> Self {
        self.sections.push(Section {
            name: name.into(),
            bytes,
        });
        self
    }

    /// Records the current time as the creation time.
    pub fn with_created_now(mut self) -> Self {
        self.created_unix_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .ok()
            .and_then(|d| u64::try_from(d.as_millis()).ok());
        self
    }

    /// The bytes of the section called `name`.
    pub fn section(&self, name: &str) -> Option<&[u8]> {
        self.sections
            .iter()
            .find(|s| s.name == name)
            .map(|s| s.bytes.as_slice())
    }
}

/// Why a checkpoint could not be read or written. Every variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// The file does not exist.
    #[error("{}: no such checkpoint file", path.display())]
    NotFound {
        /// The file.
        path: PathBuf,
    },
    /// Reading, writing, renaming or listing failed.
    #[error("{}: cannot {action}: {source}", path.display())]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// What was being done ("read", "write", "rename into place", "list", ...).
        action: &'static str,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The file does not start with [`MAGIC`].
    #[error("{}: not a qnas checkpoint (it does not start with the bytes `QNASCKPT`)", path.display())]
    NotACheckpoint {
        /// The file.
        path: PathBuf,
    },
    /// The format version is not [`FORMAT_VERSION`].
    #[error(
        "{}: checkpoint format version {found} is not supported (this build reads version {supported})",
        path.display()
    )]
    UnsupportedVersion {
        /// The file.
        path: PathBuf,
        /// The version in the file.
        found: u32,
        /// The version this build reads.
        supported: u32,
    },
    /// The file is shorter than its recorded length.
    #[error(
        "{}: truncated checkpoint: {actual} bytes, expected {expected} (an interrupted copy or a full disk?)",
        path.display()
    )]
    Truncated {
        /// The file.
        path: PathBuf,
        /// The recorded length (or, before it can be read, the length of the preamble).
        expected: u64,
        /// The file's length.
        actual: u64,
    },
    /// The checksum does not match the contents.
    #[error(
        "{}: corrupt checkpoint: checksum mismatch (stored CRC-32 {stored:08x}, computed {computed:08x})",
        path.display()
    )]
    ChecksumMismatch {
        /// The file.
        path: PathBuf,
        /// The checksum stored in the file.
        stored: u32,
        /// The checksum of its contents.
        computed: u32,
    },
    /// The file's structure is inconsistent (wrong length, sections that overrun).
    #[error("{}: corrupt checkpoint: {detail}", path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
    /// The checkpoint belongs to a different space.
    #[error(
        "{}: checkpoint belongs to another space: its space fingerprint is {found:016x}, the current space's is {expected:016x}",
        path.display()
    )]
    WrongSpace {
        /// The file.
        path: PathBuf,
        /// The fingerprint asked for.
        expected: u64,
        /// The fingerprint in the file.
        found: u64,
    },
    /// The header is not the expected JSON.
    #[error("{}: malformed checkpoint header: {detail}", path.display())]
    MalformedHeader {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
    /// A checkpoint to write has an invalid section (empty, too long or repeated name).
    #[error("{}: cannot write checkpoint: {detail}", path.display())]
    InvalidSection {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
    /// A folder helper was asked to keep no checkpoints.
    #[error("{}: the number of checkpoints to keep must be at least 1", path.display())]
    KeepZero {
        /// The folder.
        path: PathBuf,
    },
}

impl CheckpointError {
    /// The file (or folder) the error is about.
    pub fn path(&self) -> &Path {
        match self {
            CheckpointError::NotFound { path }
            | CheckpointError::Io { path, .. }
            | CheckpointError::NotACheckpoint { path }
            | CheckpointError::UnsupportedVersion { path, .. }
            | CheckpointError::Truncated { path, .. }
            | CheckpointError::ChecksumMismatch { path, .. }
            | CheckpointError::Corrupt { path, .. }
            | CheckpointError::WrongSpace { path, .. }
            | CheckpointError::MalformedHeader { path, .. }
            | CheckpointError::InvalidSection { path, .. }
            | CheckpointError::KeepZero { path } => path,
        }
    }
}

/// The JSON header.
#[derive(Serialize, Deserialize)]
struct Header {
    fingerprint: u64,
    step: u64,
    created_unix_ms: Option<u64>,
    metadata: serde_json::Value,
}

/// CRC-32 lookup table (reflected IEEE polynomial).
const CRC_TABLE: [u32; 256] = {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 {
                0xEDB8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
            k += 1;
        }
        table[i] = c;
        i += 1;
    }
    table
};

/// CRC-32 (IEEE, as in zlib) of `bytes`.
pub fn crc32(bytes: &[u8]) -> u32 {
    let mut c = 0xFFFF_FFFFu32;
    for &b in bytes {
        c = CRC_TABLE[((c ^ b as u32) & 0xFF) as usize] ^ (c >> 8);
    }
    c ^ 0xFFFF_FFFF
}

fn encode(ckpt: &Checkpoint, path: &Path) -> Result<Vec<u8>, CheckpointError> {
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

fn decode(
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

/// Distinguishes temporary files of concurrent writers within one process.
static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Writes `ckpt` to `path` atomically: into `<name>.tmp-<pid>-<n>` in the same folder, flushed
/// and synced, then renamed over `path`, then the folder synced (Unix). On any failure the
/// temporary file is removed and `path` is left as it was.
pub fn write_checkpoint(path: &Path, ckpt: &Checkpoint) -> Result<(), CheckpointError> {
    let bytes = encode(ckpt, path)?;
    let io_err = |action: &'static str| {
        move |source: io::Error| CheckpointError::Io {
            path: path.to_path_buf(),
            action,
            source,
        }
    };
    let name = path.file_name().ok_or_else(|| {
        io_err("write")(io::Error::new(
            io::ErrorKind::InvalidInput,
            "the path has no file name",
        ))
    })?;
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let mut tmp_name = name.to_os_string();
    tmp_name.push(format!(
        ".tmp-{}-{}",
        std::process::id(),
        TEMP_COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let tmp = dir.join(tmp_name);

    let write = || -> Result<(), CheckpointError> {
        let mut f = File::create(&tmp).map_err(io_err("create a temporary file for"))?;
        f.write_all(&bytes).map_err(io_err("write"))?;
        f.flush().map_err(io_err("write"))?;
        f.sync_all().map_err(io_err("sync"))?;
        drop(f);
        fs::rename(&tmp, path).map_err(io_err("rename into place"))
    };
    if let Err(e) = write() {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    sync_dir(&dir);
    Ok(())
}

/// Syncs a folder so that a rename in it is durable. Best effort: not every platform or file
/// system lets a folder be opened or synced, and the rename itself has already succeeded.
fn sync_dir(dir: &Path) {
    #[cfg(unix)]
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
    #[cfg(not(unix))]
    let _ = dir;
}

/// Reads and checks the checkpoint at `path`; with `expected_fingerprint`, a checkpoint of
/// another space is a [`CheckpointError::WrongSpace`].
pub fn read_checkpoint(
    path: &Path,
    expected_fingerprint: Option<u64>,
) -> Result<Checkpoint, CheckpointError> {
    let bytes = fs::read(path).map_err(|source| {
        if source.kind() == io::ErrorKind::NotFound {
            CheckpointError::NotFound {
                path: path.to_path_buf(),
            }
        } else {
            CheckpointError::Io {
                path: path.to_path_buf(),
                action: "read",
                source,
            }
        }
    })?;
    decode(&bytes, path, expected_fingerprint)
}

/// The file name of the checkpoint of `step` in a folder: `step-000100.qckpt` (at least six
/// digits, more for steps from a million on).
pub fn checkpoint_file_name(step: u64) -> String {
    format!("step-{step:06}.{EXTENSION}")
}

/// The step of a file named by [`checkpoint_file_name`], or `None` for any other name
/// (temporary files included).
pub fn parse_checkpoint_file_name(name: &str) -> Option<u64> {
    let digits = name.strip_prefix("step-")?.strip_suffix(".qckpt")?;
    if digits.len() < 6 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// The checkpoint files in `dir`, oldest step first; a missing folder has none.
pub fn list_checkpoints(dir: &Path) -> Result<Vec<(u64, PathBuf)>, CheckpointError> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(CheckpointError::Io {
                path: dir.to_path_buf(),
                action: "list",
                source,
            });
        }
    };
    let mut found = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|source| CheckpointError::Io {
            path: dir.to_path_buf(),
            action: "list",
            source,
        })?;
        let name = entry.file_name();
        if let Some(step) = name.to_str().and_then(parse_checkpoint_file_name) {
            found.push((step, entry.path()));
        }
    }
    found.sort();
    Ok(found)
}

/// What [`save`] did.
#[derive(Debug)]
pub struct Saved {
    /// The file written.
    pub path: PathBuf,
    /// The checkpoint files removed.
    pub removed: Vec<PathBuf>,
}

/// Writes `ckpt` into `dir` (created if missing) as [`checkpoint_file_name`]`(ckpt.step)`, then
/// removes every checkpoint file of a later step (left over from a run that did not continue
/// them, typically damaged ones that [`latest_good`] skipped on resume, which would otherwise
/// shadow the new one) and all but the `keep` newest of the rest. The file just written is
/// always kept.
pub fn save(dir: &Path, ckpt: &Checkpoint, keep: usize) -> Result<Saved, CheckpointError> {
    if keep == 0 {
        return Err(CheckpointError::KeepZero {
            path: dir.to_path_buf(),
        });
    }
    fs::create_dir_all(dir).map_err(|source| CheckpointError::Io {
        path: dir.to_path_buf(),
        action: "create the folder",
        source,
    })?;
    let path = dir.join(checkpoint_file_name(ckpt.step));
    write_checkpoint(&path, ckpt)?;
    let mut removed = Vec::new();
    let files = list_checkpoints(dir)?;
    let (older, later): (Vec<_>, Vec<_>) = files.into_iter().partition(|(s, _)| *s <= ckpt.step);
    let drop_older = older.len().saturating_sub(keep);
    for (_, p) in later.into_iter().chain(older.into_iter().take(drop_older)) {
        remove(&p)?;
        removed.push(p);
    }
    Ok(Saved { path, removed })
}

/// Removes all but the `keep` newest checkpoint files of `dir`; returns the removed files.
pub fn prune(dir: &Path, keep: usize) -> Result<Vec<PathBuf>, CheckpointError> {
    if keep == 0 {
        return Err(CheckpointError::KeepZero {
            path: dir.to_path_buf(),
        });
    }
    let files = list_checkpoints(dir)?;
    let n = files.len().saturating_sub(keep);
    let mut removed = Vec::new();
    for (_, p) in files.into_iter().take(n) {
        remove(&p)?;
        removed.push(p);
    }
    Ok(removed)
}

fn remove(path: &Path) -> Result<(), CheckpointError> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(CheckpointError::Io {
            path: path.to_path_buf(),
            action: "remove",
            source,
        }),
    }
}

/// What [`latest_good`] found.
#[derive(Debug)]
pub struct LatestGood {
    /// The newest checkpoint that read back intact, with its file.
    pub found: Option<(PathBuf, Checkpoint)>,
    /// Newer checkpoint files that were skipped, newest first, each with the reason.
    pub skipped: Vec<(PathBuf, CheckpointError)>,
}

/// The newest checkpoint in `dir` that reads back intact, skipping (and reporting) damaged,
/// unreadable or foreign-version files. A missing or empty folder gives `found: None`.
///
/// A checkpoint of another space ([`CheckpointError::WrongSpace`]) is an error rather than
/// skipped: the folder belongs to a different run, and resuming from an older file of it would
/// silently mix two runs.
pub fn latest_good(dir: &Path, fingerprint: Option<u64>) -> Result<LatestGood, CheckpointError> {
    let mut skipped = Vec::new();
    for (_, path) in list_checkpoints(dir)?.into_iter().rev() {
        match read_checkpoint(&path, fingerprint) {
            Ok(ckpt) => {
                return Ok(LatestGood {
                    found: Some((path, ckpt)),
                    skipped,
                });
            }
            Err(e @ CheckpointError::WrongSpace { .. }) => return Err(e),
            Err(e) => skipped.push((path, e)),
        }
    }
    Ok(LatestGood {
        found: None,
        skipped,
    })
}

#[cfg(test)]
mod tests {
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
        // A stray temporary file from a crashed writer is ignored.
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
}
