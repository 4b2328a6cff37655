//! One checkpoint file: written atomically (the workspace's one atomic write,
//! [`fsio::write_atomic`]) and read back with every check.

use std::fs;
use std::io;
use std::path::Path;

use super::format::{decode, encode};
use super::{Checkpoint, CheckpointError};

/// Writes `ckpt` to `path` atomically: into a temporary file `.NAME.XXXXXX.tmp` in the same
/// folder, synced, then renamed over `path`, then the folder synced (Unix). On any failure the
/// temporary file is removed and `path` is left as it was.
pub fn write_checkpoint(path: &Path, ckpt: &Checkpoint) -> Result<(), CheckpointError> {
    let bytes = encode(ckpt, path)?;
    fsio::write_atomic(path, &bytes).map_err(|e| CheckpointError::Io {
        path: e.path,
        action: e.action,
        source: e.source,
    })
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
