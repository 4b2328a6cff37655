//! The IDX format of MNIST (raw or gzip-compressed).
//!
//! Images: big-endian `u32 magic = 0x00000803, u32 count, u32 rows, u32 cols`, then
//! `count * rows * cols` bytes. Labels: `u32 magic = 0x00000801, u32 count`, then `count`
//! bytes. Gzip is detected by its magic bytes, not by the file name.

use std::path::{Path, PathBuf};

use super::dataset::{Dataset, ImageShape};
use super::error::{DataError, DataResult};
use super::files::{first_existing, read_maybe_gz};

/// Magic number of an IDX file of u8 images (3 dimensions).
pub const IDX_IMAGES_MAGIC: u32 = 0x0000_0803;
/// Magic number of an IDX file of u8 labels (1 dimension).
pub const IDX_LABELS_MAGIC: u32 = 0x0000_0801;

/// The images of one IDX image file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdxImages {
    /// Number of images.
    pub count: usize,
    /// Image height.
    pub rows: usize,
    /// Image width.
    pub cols: usize,
    /// `count * rows * cols` bytes, row-major, one image after another.
    pub pixels: Vec<u8>,
}

fn be_u32(bytes: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
}

/// Checks the header of an IDX file against its length; returns the dimension words and the
/// header length.
fn parse_idx(
    path: &Path,
    bytes: &[u8],
    magic: u32,
    what: &'static str,
    dims: usize,
) -> DataResult<(Vec<usize>, usize)> {
    if bytes.len() < 4 {
        return Err(DataError::Truncated {
            path: path.to_path_buf(),
            what: format!("the magic number of {what}"),
            expected: 4,
            found: bytes.len() as u64,
        });
    }
    let found = be_u32(bytes, 0);
    if found != magic {
        return Err(DataError::BadMagic {
            path: path.to_path_buf(),
            found,
            expected: magic,
            what,
        });
    }
    let header = 4 + 4 * dims;
    if bytes.len() < header {
        return Err(DataError::Truncated {
            path: path.to_path_buf(),
            what: format!("the {header}-byte header of {what}"),
            expected: header as u64,
            found: bytes.len() as u64,
        });
    }
    let sizes: Vec<usize> = (0..dims)
        .map(|d| be_u32(bytes, 4 + 4 * d) as usize)
        .collect();
    let payload = sizes
        .iter()
        .try_fold(1u64, |acc, &s| acc.checked_mul(s as u64));
    let total = payload.and_then(|p| p.checked_add(header as u64));
    let Some(total) = total else {
        return Err(DataError::BadHeader {
            path: path.to_path_buf(),
            reason: format!("dimensions {sizes:?} overflow"),
        });
    };
    let len = bytes.len() as u64;
    if len < total {
        return Err(DataError::Truncated {
            path: path.to_path_buf(),
            what: format!("{what} with dimensions {sizes:?}"),
            expected: total,
            found: len,
        });
    }
    if len > total {
        return Err(DataError::TrailingBytes {
            path: path.to_path_buf(),
            expected: total,
            extra: len - total,
        });
    }
    Ok((sizes, header))
}

/// Reads an IDX image file (raw or gzip).
pub fn read_idx_images(path: &Path) -> DataResult<IdxImages> {
    parse_idx_images(path, read_maybe_gz(path)?)
}

/// Parses the (already decompressed) bytes of an IDX image file; `path` only names the file
/// in errors.
pub(crate) fn parse_idx_images(path: &Path, mut bytes: Vec<u8>) -> DataResult<IdxImages> {
    let (sizes, header) = parse_idx(path, &bytes, IDX_IMAGES_MAGIC, "an IDX image file", 3)?;
    let (count, rows, cols) = (sizes[0], sizes[1], sizes[2]);
    if count > 0 && (rows == 0 || cols == 0) {
        return Err(DataError::BadHeader {
            path: path.to_path_buf(),
            reason: format!("{count} images of {rows}x{cols} pixels"),
        });
    }
    bytes.drain(..header);
    Ok(IdxImages {
        count,
        rows,
        cols,
        pixels: bytes,
    })
}

/// Reads an IDX label file (raw or gzip).
pub fn read_idx_labels(path: &Path) -> DataResult<Vec<u8>> {
    let mut bytes = read_maybe_gz(path)?;
    let (_, header) = parse_idx(path, &bytes, IDX_LABELS_MAGIC, "an IDX label file", 1)?;
    bytes.drain(..header);
    Ok(bytes)
}

/// Reads an IDX image file and its label file into a one-channel [`Dataset`].
///
/// Fails if either file is missing or malformed, if the counts differ, if the set is empty or
/// if a label is `>= classes`.
pub fn load_idx_pair(
    images_path: &Path,
    labels_path: &Path,
    classes: usize,
) -> DataResult<Dataset> {
    let images = read_idx_images(images_path)?;
    let labels = read_idx_labels(labels_path)?;
    if images.count != labels.len() {
        return Err(DataError::CountMismatch {
            images_path: images_path.to_path_buf(),
            images: images.count,
            labels_path: labels_path.to_path_buf(),
            labels: labels.len(),
        });
    }
    if images.count == 0 {
        return Err(DataError::Empty {
            path: images_path.to_path_buf(),
        });
    }
    if let Some((index, &label)) = labels
        .iter()
        .enumerate()
        .find(|&(_, &l)| usize::from(l) >= classes)
    {
        return Err(DataError::LabelOutOfRange {
            path: labels_path.to_path_buf(),
            index,
            label: u32::from(label),
            classes,
        });
    }
    let shape = ImageShape::new(1, images.rows, images.cols);
    Dataset::new(
        images.pixels,
        labels.into_iter().map(u32::from).collect(),
        shape,
        classes,
    )
}

/// Which part of an MNIST-layout folder to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdxPart {
    /// `train-images-idx3-ubyte` / `train-labels-idx1-ubyte`.
    Train,
    /// `t10k-images-idx3-ubyte` / `t10k-labels-idx1-ubyte`.
    Test,
}

/// The image and label file of one part of an MNIST-layout folder: the name with `.gz` if it
/// exists, else the raw name.
pub fn idx_part_files(dir: &Path, part: IdxPart) -> DataResult<(PathBuf, PathBuf)> {
    let prefix = match part {
        IdxPart::Train => "train",
        IdxPart::Test => "t10k",
    };
    let pick = |stem: String| first_existing(&[dir.join(format!("{stem}.gz")), dir.join(&stem)]);
    let images = pick(format!("{prefix}-images-idx3-ubyte"))?;
    let labels = pick(format!("{prefix}-labels-idx1-ubyte"))?;
    Ok((images, labels))
}

/// Loads one part of an MNIST-layout folder (see [`idx_part_files`]).
pub fn load_idx_dir(dir: &Path, part: IdxPart, classes: usize) -> DataResult<Dataset> {
    let (images, labels) = idx_part_files(dir, part)?;
    load_idx_pair(&images, &labels, classes)
}
