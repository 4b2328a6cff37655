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
//! [`write_checkpoint`] writes through the workspace's one atomic write ([`fsio::write_atomic`]):
//! a temporary file next to the target (`.<name>.XXXXXX.tmp`), synced, renamed over the target,
//! and the directory synced (on Unix; elsewhere the directory sync is skipped). A crash leaves
//! either the old file or the new one under the final name, never a mix; at worst a stray
//! temporary file, which [`list_checkpoints`] and [`latest_good`] ignore (as they ignore the
//! `<name>.tmp-<pid>-<n>` files of earlier versions).
//!
//! # Folders of checkpoints
//!
//! [`save`] writes `step-000100.qckpt` style files ([`checkpoint_file_name`]) into a folder and
//! keeps the newest `keep`; [`latest_good`] finds the newest one that reads back intact,
//! reporting every damaged file it skipped.
//!
//! The code: `format.rs` (the bytes of a file: encoding, checks, decoding, CRC-32), `file.rs`
//! (atomic writing and reading of one file), `folder.rs` (folders of checkpoints).

use std::io;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

mod file;
mod folder;
mod format;
#[cfg(test)]
mod tests;

pub use file::{read_checkpoint, write_checkpoint};
pub use folder::{
    LatestGood, Saved, checkpoint_file_name, latest_good, list_checkpoints,
    parse_checkpoint_file_name, prune, save,
};
pub use format::crc32;

/// The first eight bytes of every checkpoint file.
pub const MAGIC: [u8; 8] = *b"QNASCKPT";

/// The format version written by this code, and the only one it reads.
pub const FORMAT_VERSION: u32 = 1;

/// The extension of checkpoint files in a folder (without the dot).
pub const EXTENSION: &str = "qckpt";

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
        "{}: checkpoint belongs to another space: its space fingerprint is {found:016x}, the current space's is {expected:016x} (a space file written before 2026-12-03 evening that leaves out `quantization.activation_range` or `weight_range` meant `Max` for them: write `activation_range: Max, weight_range: Max` into it to read its checkpoints)",
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
