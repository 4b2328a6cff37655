//! Reading whole files, transparently gunzipping them.

use std::io::Read;
use std::path::{Path, PathBuf};

use super::error::{DataError, DataResult};

/// The two bytes every gzip stream starts with.
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// Reads a file into memory; if it starts with the gzip magic it is decompressed.
pub(crate) fn read_maybe_gz(path: &Path) -> DataResult<Vec<u8>> {
    let bytes = std::fs::read(path).map_err(|source| io_error(path, source))?;
    if bytes.starts_with(&GZIP_MAGIC) {
        let mut out = Vec::new();
        flate2::read::MultiGzDecoder::new(bytes.as_slice())
            .read_to_end(&mut out)
            .map_err(|source| DataError::Gzip {
                path: path.to_path_buf(),
                source,
            })?;
        Ok(out)
    } else {
        Ok(bytes)
    }
}

pub(crate) fn io_error(path: &Path, source: std::io::Error) -> DataError {
    if source.kind() == std::io::ErrorKind::NotFound {
        DataError::Missing {
            path: path.to_path_buf(),
            also_tried: Vec::new(),
        }
    } else {
        DataError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// Picks the first of `candidates` that exists, or reports the first one as missing and names
/// the others as also tried.
pub(crate) fn first_existing(candidates: &[PathBuf]) -> DataResult<PathBuf> {
    if let Some(found) = candidates.iter().find(|p| p.is_file()) {
        return Ok(found.clone());
    }
    Err(DataError::Missing {
        path: candidates[0].clone(),
        also_tried: candidates[1..].to_vec(),
    })
}
