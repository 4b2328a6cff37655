//! One checkpoint file: written atomically (temporary file, sync, rename, folder sync) and
//! read back with every check.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use super::format::{decode, encode};
use super::{Checkpoint, CheckpointError};

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
