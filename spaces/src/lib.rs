//! qnas search spaces.
pub mod format;
pub use format::{Format, FormatError, RawFormat};
