//! One writer per folder. Every command that writes into a run folder (`train`, `search`,
//! `export`, `correlate`) or writes a model folder (`finetune`) first takes an exclusive lock
//! on a lock file, and holds it until it returns; a second process that would write there is
//! refused with a message naming the holder (command and process id).
//!
//! The lock is the operating system's advisory file lock (`flock` on Unix, `LockFileEx` on
//! Windows) through the standard library's `File::try_lock`, not a lock file's mere presence:
//! the OS releases it when its holder exits, however it exits, so a lock left by a killed
//! process is free again and the next command takes it over (the file stays, with the dead
//! holder's details, and is rewritten). On network file systems without working `flock` the
//! lock protects only processes on one machine.
//!
//! Lock files: `RUN/qnas.lock` for a run folder; `.NAME.lock` next to a model folder `NAME`
//! (inside it would be moved away with the folder, which is replaced atomically).

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use search::fsio::IoError;
use serde::{Deserialize, Serialize};

/// Name of a run folder's lock file.
pub const RUN_LOCK_FILE: &str = "qnas.lock";

/// Why a folder could not be locked.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another process holds the lock.
    #[error(
        "{}: in use by {holder}; wait until it ends (or stop it), then run this again",
        dir.display()
    )]
    Held {
        /// The folder.
        dir: PathBuf,
        /// Who holds it, as the holder wrote it: `qnas train (process 1234, started ...)`.
        holder: String,
    },
    /// The lock file could not be created, read or written.
    #[error(transparent)]
    Io(#[from] IoError),
}

/// What the holder writes into the lock file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Holder {
    /// Its process id.
    pub pid: u32,
    /// The command, e.g. `qnas train`.
    pub command: String,
    /// When it took the lock, seconds since the Unix epoch.
    pub since: u64,
}

impl std::fmt::Display for Holder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        write!(
            f,
            "{} (process {}, for {} s)",
            self.command,
            self.pid,
            now.saturating_sub(self.since)
        )
    }
}

/// A held lock; released when dropped (or when the process ends).
#[derive(Debug)]
pub struct FolderLock {
    _file: File,
    path: PathBuf,
}

impl FolderLock {
    /// Locks the run folder `dir` for `command`; `None` when there is no such folder (nobody
    /// writes there, and the command reports what it misses on its own: a folder is never
    /// created only to be locked). A command that creates the folder creates it first.
    pub fn run_folder(dir: &Path, command: &str) -> Result<Option<Self>, LockError> {
        if !dir.is_dir() {
            return Ok(None);
        }
        Self::acquire(&dir.join(RUN_LOCK_FILE), dir, command).map(Some)
    }

    /// Locks the model folder `dir` (which need not exist yet; its parent is created) for
    /// `command`, through `.NAME.lock` next to it.
    pub fn model_folder(dir: &Path, command: &str) -> Result<Self, LockError> {
        let (parent, name) = crate::model_dir::parent_and_name(dir)?;
        Self::acquire(&parent.join(format!(".{name}.lock")), dir, command)
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn acquire(path: &Path, dir: &Path, command: &str) -> Result<Self, LockError> {
        let io = |what, e| LockError::Io(IoError::new(what, path, e));
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(|e| io("open", e))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut text = String::new();
                let _ = file.read_to_string(&mut text);
                let holder = serde_json::from_str::<Holder>(&text)
                    .map_or_else(|_| "another qnas process".to_string(), |h| h.to_string());
                return Err(LockError::Held {
                    dir: dir.to_path_buf(),
                    holder,
                });
            }
            Err(TryLockError::Error(e)) => return Err(io("lock", e)),
        }
        // ours now: whatever a previous (ended or killed) holder wrote is replaced
        let holder = Holder {
            pid: std::process::id(),
            command: command.to_string(),
            since: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
        };
        let text = serde_json::to_string(&holder).unwrap_or_default() + "\n";
        file.set_len(0).map_err(|e| io("truncate", e))?;
        file.seek(SeekFrom::Start(0)).map_err(|e| io("seek", e))?;
        file.write_all(text.as_bytes())
            .map_err(|e| io("write", e))?;
        Ok(FolderLock {
            _file: file,
            path: path.to_path_buf(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("qnas-lock-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn a_second_writer_is_refused_with_the_holder_named_until_the_first_lets_go() {
        let d = tmp("run");
        assert!(FolderLock::run_folder(&d, "qnas train").unwrap().is_none());
        assert!(!d.exists(), "no folder is created only to be locked");
        std::fs::create_dir_all(&d).unwrap();
        let first = FolderLock::run_folder(&d, "qnas train").unwrap().unwrap();
        assert_eq!(first.path(), d.join(RUN_LOCK_FILE));
        // a second open file description conflicts even within one process
        match FolderLock::run_folder(&d, "qnas search") {
            Err(LockError::Held { dir, holder }) => {
                assert_eq!(dir, d);
                assert!(
                    holder
                        .starts_with(&format!("qnas train (process {}, for ", std::process::id())),
                    "{holder}"
                );
            }
            other => panic!("expected Held, got {other:?}"),
        }
        drop(first);
        let second = FolderLock::run_folder(&d, "qnas search").unwrap().unwrap();
        let text = std::fs::read_to_string(second.path()).unwrap();
        let h: Holder = serde_json::from_str(&text).unwrap();
        assert_eq!(h.command, "qnas search");
        assert_eq!(h.pid, std::process::id());
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn a_lock_file_left_behind_without_its_lock_is_taken_over() {
        let d = tmp("stale");
        std::fs::create_dir_all(&d).unwrap();
        // what a killed holder leaves: the file with its details, but no OS lock
        std::fs::write(
            d.join(RUN_LOCK_FILE),
            r#"{"pid":4000000,"command":"qnas export","since":1}"#,
        )
        .unwrap();
        let l = FolderLock::run_folder(&d, "qnas correlate")
            .unwrap()
            .unwrap();
        let h: Holder = serde_json::from_str(&std::fs::read_to_string(l.path()).unwrap()).unwrap();
        assert_eq!(
            (h.pid, h.command.as_str()),
            (std::process::id(), "qnas correlate")
        );
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn model_folders_lock_beside_themselves() {
        let d = tmp("model");
        let m = d.join("models").join("tuned");
        let l = FolderLock::model_folder(&m, "qnas finetune").unwrap();
        assert_eq!(l.path(), d.join("models").join(".tuned.lock"));
        assert!(!m.exists(), "the model folder itself is left to its writer");
        assert!(matches!(
            FolderLock::model_folder(&m, "qnas finetune"),
            Err(LockError::Held { .. })
        ));
        let _ = std::fs::remove_dir_all(&d);
    }
}
