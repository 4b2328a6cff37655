//! Image-classification data: file loaders (MNIST IDX, CIFAR-10 binary), the in-memory
//! [`Dataset`], its seeded stratified train/validation split, normalization, augmentation, and
//! a [`BatchLoader`] that prepares burn tensor batches on a background thread. The images given
//! to `qnas predict` (PNG or IDX files) are read by [`load_images`].
//!
//! The usual path is a [`DataSpec`] (from the user's RON file) and [`DataSpec::load`], which
//! gives the [`SearchData`]: training part, validation part and the training part's
//! normalization. The test files are read separately ([`DataSpec::load_test`]) and only for
//! the final report.

mod cifar;
mod dataset;
mod error;
mod files;
mod idx;
mod images;
mod loader;
mod rng;
mod spec;
mod transform;

#[cfg(test)]
mod tests;

pub use cifar::{
    CIFAR_SHAPE, CIFAR10_CLASSES, CIFAR10_RECORD, cifar10_batch_dir, cifar10_train_files,
    load_cifar10_test, load_cifar10_train, read_cifar10_batch,
};
pub use dataset::{Dataset, ImageShape, SplitIndices};
pub use error::{DataError, DataResult};
pub use idx::{
    IDX_IMAGES_MAGIC, IDX_LABELS_MAGIC, IdxImages, IdxPart, idx_part_files, load_idx_dir,
    load_idx_pair, read_idx_images, read_idx_labels,
};
pub use images::{InputImage, load_images};
pub use loader::{Batch, BatchLoader, Batches, HostBatch, HostBatches, LoaderConfig};
pub use spec::{DataKind, DataSpec, SearchData};
pub use transform::{Augment, Normalization};
