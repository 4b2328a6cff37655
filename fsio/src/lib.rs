//! Writing files without losing data, the one way qnas writes a file atomically: the bytes go
//! to a temporary file in the file's own folder ([`tempfile::Builder::tempfile_in`]), are
//! synced to disk, the temporary file is renamed over the final name
//! ([`tempfile::NamedTempFile::persist`]), and the folder is synced (Unix), so that a crash or
//! a kill leaves under the final name either the old file or the new one, never a mix.
//!
//! A write that fails removes its temporary file (the temporary file's drop). A writer killed
//! mid-way leaves it behind as `.NAME.XXXXXX.tmp` (a dot file with a random part): never a
//! final name, never read, and never in the way of the next writer, which takes another name.

use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// An I/O failure on a named file: the final path, never a temporary one.
#[derive(Debug, thiserror::Error)]
#[error("cannot {action} {}: {source}", path.display())]
pub struct IoError {
    /// What was being done (`write`, `sync`, `rename into place`, `create folder`, ...).
    pub action: &'static str,
    /// The file (or, for `create folder`, the folder).
    pub path: PathBuf,
    /// Why it failed.
    #[source]
    pub source: io::Error,
}

impl IoError {
    /// Wraps an error.
    pub fn new(action: &'static str, path: &Path, source: io::Error) -> Self {
        IoError {
            action,
            path: path.to_path_buf(),
            source,
        }
    }
}

/// Writes `bytes` to `path` atomically (see the crate docs), creating its folder if missing.
///
/// # Errors
/// [`IoError`] naming `path` (its folder when that cannot be created), with the step that
/// failed; `path` is then left as it was.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), IoError> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| IoError::new("create folder", dir, e))?;
    let name = path.file_name().ok_or_else(|| {
        let e = io::Error::new(io::ErrorKind::InvalidInput, "the path has no file name");
        IoError::new("write", path, e)
    })?;
    let prefix = format!(".{}.", name.to_string_lossy());
    let mut builder = tempfile::Builder::new();
    builder.prefix(&prefix).suffix(".tmp");
    // the permissions `File::create` gives (0o666 less the umask), not tempfile's 0o600: the
    // file is an output, not a secret
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        builder.permissions(std::fs::Permissions::from_mode(0o666));
    }
    let mut tmp = builder
        .tempfile_in(dir)
        .map_err(|e| IoError::new("create a temporary file for", path, e))?;
    // the plain file, whose errors do not carry the temporary file's name
    let file = tmp.as_file_mut();
    file.write_all(bytes)
        .map_err(|e| IoError::new("write", path, e))?;
    file.sync_all().map_err(|e| IoError::new("sync", path, e))?;
    tmp.persist(path)
        .map_err(|e| IoError::new("rename into place", path, e.error))?;
    sync_dir(dir);
    Ok(())
}

/// Syncs a folder so that a rename in it is durable. Best effort: not every platform or file
/// system lets a folder be opened or synced, and the rename itself has already succeeded.
fn sync_dir(dir: &Path) {
    #[cfg(unix)]
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    #[cfg(not(unix))]
    let _ = dir;
}

#[cfg(test)]
mod tests {
    use std::fs::File;

    use super::*;

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn replaces_files_creates_folders_and_leaves_no_temporaries() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("a/b");
        let path = dir.join("out.json");
        write_atomic(&path, b"one").unwrap();
        // a reader of the old file keeps seeing it: the new one was renamed over it
        let mut old = File::open(&path).unwrap();
        write_atomic(&path, b"two").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        let mut seen = Vec::new();
        io::Read::read_to_end(&mut old, &mut seen).unwrap();
        assert_eq!(seen, b"one");
        assert_eq!(names(&dir), ["out.json"]);
    }

    #[test]
    fn a_failed_write_names_the_final_path_keeps_the_old_file_and_no_temporary() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path();
        let kept = dir.join("kept.txt");
        write_atomic(&kept, b"old").unwrap();
        // the rename fails: the target is a folder that is not empty
        let busy = dir.join("busy");
        std::fs::create_dir_all(busy.join("inside")).unwrap();
        let e = write_atomic(&busy, b"new").unwrap_err();
        assert_eq!(e.action, "rename into place");
        assert_eq!(e.path, busy);
        assert!(
            e.to_string()
                .starts_with(&format!("cannot rename into place {}: ", busy.display())),
            "{e}"
        );
        // not the temporary file's name (`.busy.XXXXXX.tmp`)
        assert!(!e.to_string().contains(".busy."), "{e}");
        assert_eq!(names(dir), ["busy", "kept.txt"]);
        assert_eq!(std::fs::read(&kept).unwrap(), b"old");
        // a path without a file name is refused
        assert_eq!(
            write_atomic(Path::new("/"), b"x").unwrap_err().action,
            "write"
        );
    }

    #[test]
    #[cfg(unix)]
    fn files_get_the_permissions_file_create_gives() {
        use std::os::unix::fs::PermissionsExt;
        let root = tempfile::tempdir().unwrap();
        let plain = root.path().join("plain");
        File::create(&plain).unwrap();
        let atomic = root.path().join("atomic");
        write_atomic(&atomic, b"x").unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&atomic), mode(&plain));
    }
}
