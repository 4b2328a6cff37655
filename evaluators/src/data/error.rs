//! Errors of the data module. Every error about a file names the file.

use std::path::PathBuf;

/// Everything that can go wrong while reading, splitting or batching a data set.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// A required file does not exist.
    #[error("{}: file not found{}", path.display(), also_tried_note(also_tried))]
    Missing {
        /// The file that was looked for.
        path: PathBuf,
        /// Other names that were tried for the same file (e.g. with `.gz`).
        also_tried: Vec<PathBuf>,
    },

    /// The file exists but could not be read.
    #[error("{}: cannot read: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The operating-system error.
        #[source]
        source: std::io::Error,
    },

    /// The file starts with the gzip magic but does not decompress.
    #[error("{}: corrupt gzip data: {source}", path.display())]
    Gzip {
        /// The file.
        path: PathBuf,
        /// The decompressor's error.
        #[source]
        source: std::io::Error,
    },

    /// The file's magic number is not the one expected for its role.
    #[error(
        "{}: wrong magic number 0x{found:08x}, expected 0x{expected:08x} for {what}",
        path.display()
    )]
    BadMagic {
        /// The file.
        path: PathBuf,
        /// The big-endian 32-bit number found at the start of the file.
        found: u32,
        /// The number expected.
        expected: u32,
        /// What kind of file was expected, e.g. "an IDX image file".
        what: &'static str,
    },

    /// The file ends before the data its header announces.
    #[error("{}: truncated: {what} needs {expected} bytes but the file has {found}", path.display())]
    Truncated {
        /// The file.
        path: PathBuf,
        /// What was being read.
        what: String,
        /// Bytes needed.
        expected: u64,
        /// Bytes present.
        found: u64,
    },

    /// The file has bytes after the data its header announces (probably the wrong file).
    #[error(
        "{}: {extra} unexpected bytes after the {expected} bytes announced by the header",
        path.display()
    )]
    TrailingBytes {
        /// The file.
        path: PathBuf,
        /// Size the header announces.
        expected: u64,
        /// Bytes beyond that.
        extra: u64,
    },

    /// The header describes a shape that cannot hold images.
    #[error("{}: bad header: {reason}", path.display())]
    BadHeader {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },

    /// A label is not a valid class index.
    #[error(
        "{}: label {label} of sample {index} is out of range: the data set has {classes} classes (0..={})",
        path.display(),
        classes.saturating_sub(1)
    )]
    LabelOutOfRange {
        /// The label file.
        path: PathBuf,
        /// Index of the sample in that file.
        index: usize,
        /// The label found.
        label: u32,
        /// Number of classes.
        classes: usize,
    },

    /// An image file and its label file disagree on the number of samples.
    #[error(
        "{} holds {images} images but {} holds {labels} labels",
        images_path.display(),
        labels_path.display()
    )]
    CountMismatch {
        /// The image file.
        images_path: PathBuf,
        /// Number of images.
        images: usize,
        /// The label file.
        labels_path: PathBuf,
        /// Number of labels.
        labels: usize,
    },

    /// The files hold no samples.
    #[error("{}: the data set is empty (0 samples)", path.display())]
    Empty {
        /// The file (or directory) that should have held samples.
        path: PathBuf,
    },

    /// The file is neither a PNG nor an IDX image file (nor a gzip-compressed one).
    #[error(
        "{}: not a PNG or IDX image file ({})",
        path.display(),
        starts_with_note(start)
    )]
    UnknownImageFormat {
        /// The file.
        path: PathBuf,
        /// Its first bytes (at most 8) after any gzip decompression.
        start: Vec<u8>,
    },

    /// The file starts like a PNG but does not decode (truncated, corrupt, too large).
    #[error("{}: cannot decode PNG: {reason}", path.display())]
    Png {
        /// The file.
        path: PathBuf,
        /// The decoder's message.
        reason: String,
    },

    /// The image cannot be converted to the requested number of channels.
    #[error(
        "{}: cannot convert the image to {channels} channels: only 1 (grey) and 3 (RGB) are supported",
        path.display()
    )]
    UnsupportedChannels {
        /// The file.
        path: PathBuf,
        /// The channel count asked for.
        channels: usize,
    },

    /// The files of a data folder hold too few samples to split off a validation part as the
    /// description asks (both parts need at least one).
    #[error("{}: cannot split the training files: {reason}", path.display())]
    Split {
        /// The data folder.
        path: PathBuf,
        /// What the split would leave.
        reason: String,
    },

    /// The data description (or a call) asks for something impossible.
    #[error("invalid data configuration: {0}")]
    Invalid(String),
}

fn also_tried_note(also: &[PathBuf]) -> String {
    if also.is_empty() {
        String::new()
    } else {
        let names: Vec<String> = also.iter().map(|p| p.display().to_string()).collect();
        format!(" (also tried {})", names.join(", "))
    }
}

fn starts_with_note(start: &[u8]) -> String {
    if start.is_empty() {
        "the file is empty".into()
    } else {
        let hex: Vec<String> = start.iter().map(|b| format!("{b:02x}")).collect();
        format!("it starts with bytes {}", hex.join(" "))
    }
}

/// Result alias of the data module.
pub type DataResult<T> = Result<T, DataError>;
