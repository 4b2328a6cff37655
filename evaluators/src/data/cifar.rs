//! The binary version of CIFAR-10 (`cifar-10-batches-bin`).
//!
//! Each batch file is a sequence of 3073-byte records: one label byte (0..=9), then a 32x32
//! image as 1024 red, 1024 green and 1024 blue bytes (C x H x W, rows top to bottom).
//! Training batches are `data_batch_1.bin` .. `data_batch_5.bin`, the test batch
//! `test_batch.bin`. A gzip-compressed file is also accepted (detected by its magic bytes).

use std::path::{Path, PathBuf};

use super::dataset::{Dataset, ImageShape};
use super::error::{DataError, DataResult};
use super::files::{io_error, read_maybe_gz};

/// Number of CIFAR-10 classes.
pub const CIFAR10_CLASSES: usize = 10;
/// Shape of a CIFAR image.
pub const CIFAR_SHAPE: ImageShape = ImageShape::new(3, 32, 32);
/// Bytes per record: the label byte and the image.
pub const CIFAR10_RECORD: usize = 1 + 3 * 32 * 32;

/// Reads one CIFAR-10 batch file.
pub fn read_cifar10_batch(path: &Path) -> DataResult<Dataset> {
    let bytes = read_maybe_gz(path)?;
    if bytes.is_empty() {
        return Err(DataError::Empty {
            path: path.to_path_buf(),
        });
    }
    let full = bytes.len() / CIFAR10_RECORD;
    let rest = bytes.len() % CIFAR10_RECORD;
    if rest != 0 {
        return Err(DataError::Truncated {
            path: path.to_path_buf(),
            what: format!(
                "record {} (records are {CIFAR10_RECORD} bytes: 1 label + 3x32x32 pixels)",
                full + 1
            ),
            expected: ((full + 1) * CIFAR10_RECORD) as u64,
            found: bytes.len() as u64,
        });
    }
    let mut images = Vec::with_capacity(full * (CIFAR10_RECORD - 1));
    let mut labels = Vec::with_capacity(full);
    for (index, record) in bytes.chunks_exact(CIFAR10_RECORD).enumerate() {
        let label = record[0];
        if usize::from(label) >= CIFAR10_CLASSES {
            return Err(DataError::LabelOutOfRange {
                path: path.to_path_buf(),
                index,
                label: u32::from(label),
                classes: CIFAR10_CLASSES,
            });
        }
        labels.push(u32::from(label));
        images.extend_from_slice(&record[1..]);
    }
    Dataset::new(images, labels, CIFAR_SHAPE, CIFAR10_CLASSES)
}

/// The directory that holds the batch files: `dir` itself, or `dir/cifar-10-batches-bin` when
/// `dir` is the folder the archive was unpacked into.
pub fn cifar10_batch_dir(dir: &Path) -> PathBuf {
    let nested = dir.join("cifar-10-batches-bin");
    if !dir.join("test_batch.bin").exists() && nested.is_dir() {
        nested
    } else {
        dir.to_path_buf()
    }
}

/// The training batch files of a CIFAR-10 directory, in order: every `data_batch_<k>.bin`,
/// which must be numbered 1, 2, .. without a gap.
pub fn cifar10_train_files(dir: &Path) -> DataResult<Vec<PathBuf>> {
    let dir = cifar10_batch_dir(dir);
    let entries = std::fs::read_dir(&dir).map_err(|e| io_error(&dir, e))?;
    let mut numbers = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| io_error(&dir, e))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if let Some(k) = name
            .strip_prefix("data_batch_")
            .and_then(|r| r.strip_suffix(".bin"))
            // the canonical decimal only: `data_batch_01.bin` or `data_batch_+2.bin` is not
            // batch 1 or 2 (else two files would claim one number)
            .and_then(|k| k.parse::<u32>().ok().filter(|n| n.to_string() == k))
        {
            numbers.push(k);
        }
    }
    numbers.sort_unstable();
    let file = |k: u32| dir.join(format!("data_batch_{k}.bin"));
    if numbers.is_empty() {
        return Err(DataError::Missing {
            path: file(1),
            also_tried: Vec::new(),
        });
    }
    for (expected, &k) in (1u32..).zip(&numbers) {
        if k != expected {
            return Err(DataError::Missing {
                path: file(expected),
                also_tried: Vec::new(),
            });
        }
    }
    Ok(numbers.into_iter().map(file).collect())
}

/// Loads all training batches of a CIFAR-10 directory (see [`cifar10_train_files`]).
pub fn load_cifar10_train(dir: &Path) -> DataResult<Dataset> {
    let files = cifar10_train_files(dir)?;
    let mut all = read_cifar10_batch(&files[0])?;
    for f in &files[1..] {
        all.append(&read_cifar10_batch(f)?)?;
    }
    Ok(all)
}

/// Loads `test_batch.bin` of a CIFAR-10 directory.
pub fn load_cifar10_test(dir: &Path) -> DataResult<Dataset> {
    read_cifar10_batch(&cifar10_batch_dir(dir).join("test_batch.bin"))
}
