//! Folders of checkpoints: file names by step, listing, saving with pruning, and the newest
//! checkpoint that reads back intact.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use super::file::{read_checkpoint, write_checkpoint};
use super::{Checkpoint, CheckpointError, EXTENSION};

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
