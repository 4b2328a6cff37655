//! Which data set to load: the part of the user's RON file that names the data.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::cifar::{CIFAR10_CLASSES, load_cifar10_test, load_cifar10_train};
use super::dataset::{Dataset, SplitIndices, check_fraction};
use super::error::{DataError, DataResult};
use super::idx::{IdxPart, load_idx_dir};
use super::loader::{BatchLoader, LoaderConfig};
use super::transform::{Augment, Normalization};

/// The file format (and class count) of a data set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum DataKind {
    /// A folder in the MNIST layout: `train-images-idx3-ubyte`, `train-labels-idx1-ubyte`,
    /// `t10k-images-idx3-ubyte`, `t10k-labels-idx1-ubyte`, each raw or with `.gz`.
    /// Grey images of any size, labels 0..=9 (MNIST, the shipped 8x8 digits, Fashion-MNIST).
    Mnist,
    /// The binary CIFAR-10 folder (`cifar-10-batches-bin`, or the folder that holds it):
    /// `data_batch_1.bin` .. `data_batch_5.bin` and `test_batch.bin`.
    Cifar10,
}

impl DataKind {
    /// Number of classes.
    pub fn classes(self) -> usize {
        match self {
            DataKind::Mnist => 10,
            DataKind::Cifar10 => CIFAR10_CLASSES,
        }
    }

    /// The augmentation used when the description names none: crop + flip for colour photos,
    /// none for digits.
    pub fn default_augment(self) -> Augment {
        match self {
            DataKind::Mnist => Augment::NONE,
            DataKind::Cifar10 => Augment::CROP_FLIP,
        }
    }
}

fn default_validation_fraction() -> f64 {
    DataSpec::DEFAULT_VALIDATION_FRACTION
}

/// Which data set to use and how to hold out validation data.
///
/// In RON: `(kind: Mnist, path: "data/mnist-5k", validation_fraction: 0.1, seed: 7)`;
/// `validation_fraction` (default 0.1), `seed` (default 0) and `augment` (default: by kind)
/// may be left out. A relative `path` is relative to the directory of the file that holds
/// the description.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataSpec {
    /// File format.
    pub kind: DataKind,
    /// Folder of the data files.
    pub path: PathBuf,
    /// Share of the training files held out, per class, as the validation set the search
    /// ranks candidates on (the test files are never used by the search).
    #[serde(default = "default_validation_fraction")]
    pub validation_fraction: f64,
    /// Seed of the train/validation split (and, through [`SearchData`], of shuffling and
    /// augmentation).
    #[serde(default)]
    pub seed: u64,
    /// Training augmentation; `None` means [`DataKind::default_augment`].
    #[serde(default)]
    pub augment: Option<Augment>,
}

/// The training files of a data set split for search: the part to train on, the held-out
/// validation part, and the normalization computed from the training part alone.
#[derive(Debug, Clone)]
pub struct SearchData {
    /// The kind of data.
    pub kind: DataKind,
    /// The training part.
    pub train: Arc<Dataset>,
    /// The validation part (held out of the training files).
    pub validation: Arc<Dataset>,
    /// Which samples of the training files went where.
    pub split: SplitIndices,
    /// Per-channel statistics of the training part; use them for every evaluation too.
    pub normalization: Normalization,
    /// Training augmentation.
    pub augment: Augment,
    /// Seed for shuffling and augmentation.
    pub seed: u64,
}

impl SearchData {
    /// The same data with `fraction` of the training part held out (stratified, with the data
    /// seed), and the held-out part: what a learner of something other than the weights (the
    /// mixture's assignment) measures on, so that it never sees the validation split that
    /// ranks the members. Normalization stays that of the whole training part.
    pub fn hold_out(&self, fraction: f64) -> DataResult<(SearchData, Arc<Dataset>)> {
        let split = self
            .train
            .split_indices(fraction, self.seed.wrapping_add(0x5eed))?;
        let held = Arc::new(self.train.subset(&split.validation)?);
        let rest = SearchData {
            train: Arc::new(self.train.subset(&split.train)?),
            ..self.clone()
        };
        Ok((rest, held))
    }

    /// A shuffled, augmented loader over the training part.
    pub fn train_loader(&self, batch_size: usize) -> DataResult<BatchLoader> {
        BatchLoader::new(
            Arc::clone(&self.train),
            self.normalization.clone(),
            LoaderConfig::train(batch_size, self.augment, self.seed),
        )
    }

    /// An in-order, unaugmented loader over the validation part.
    pub fn validation_loader(&self, batch_size: usize) -> DataResult<BatchLoader> {
        self.eval_loader(Arc::clone(&self.validation), batch_size)
    }

    /// An in-order, unaugmented loader over any data (e.g. the test set), normalized with the
    /// training part's statistics.
    pub fn eval_loader(&self, data: Arc<Dataset>, batch_size: usize) -> DataResult<BatchLoader> {
        BatchLoader::new(
            data,
            self.normalization.clone(),
            LoaderConfig::eval(batch_size),
        )
    }
}

impl DataSpec {
    /// Validation fraction used when the description gives none.
    pub const DEFAULT_VALIDATION_FRACTION: f64 = 0.1;

    /// A description with the default fraction, seed 0 and the kind's augmentation.
    pub fn new(kind: DataKind, path: impl Into<PathBuf>) -> Self {
        Self {
            kind,
            path: path.into(),
            validation_fraction: Self::DEFAULT_VALIDATION_FRACTION,
            seed: 0,
            augment: None,
        }
    }

    /// Checks the values that can be checked without reading files.
    pub fn validate(&self) -> DataResult<()> {
        check_fraction(self.validation_fraction)
    }

    /// The data folder: `path` if absolute, else `base_dir/path`.
    pub fn resolve(&self, base_dir: &Path) -> PathBuf {
        if self.path.is_absolute() {
            self.path.clone()
        } else {
            base_dir.join(&self.path)
        }
    }

    /// The augmentation to train with.
    pub fn augment(&self) -> Augment {
        self.augment.unwrap_or_else(|| self.kind.default_augment())
    }

    /// Every sample of the training files, unsplit.
    pub fn load_train_files(&self, base_dir: &Path) -> DataResult<Dataset> {
        let dir = self.resolve(base_dir);
        match self.kind {
            DataKind::Mnist => load_idx_dir(&dir, IdxPart::Train, self.kind.classes()),
            DataKind::Cifar10 => load_cifar10_train(&dir),
        }
    }

    /// The test files. Only for the final report: the search must not look at them.
    pub fn load_test(&self, base_dir: &Path) -> DataResult<Dataset> {
        let dir = self.resolve(base_dir);
        match self.kind {
            DataKind::Mnist => load_idx_dir(&dir, IdxPart::Test, self.kind.classes()),
            DataKind::Cifar10 => load_cifar10_test(&dir),
        }
    }

    /// Reads the training files, splits off the validation part (stratified, seeded) and
    /// computes the normalization from the remaining training part.
    pub fn load(&self, base_dir: &Path) -> DataResult<SearchData> {
        self.validate()?;
        let all = self.load_train_files(base_dir)?;
        // the fraction is valid: a failure is the files' (too few samples of the classes)
        let split = all
            .split_indices(self.validation_fraction, self.seed)
            .map_err(|e| match e {
                DataError::Invalid(reason) => DataError::Split {
                    path: self.resolve(base_dir),
                    reason,
                },
                other => other,
            })?;
        let train = all.subset(&split.train)?;
        let validation = all.subset(&split.validation)?;
        let normalization = Normalization::from_dataset(&train)?;
        Ok(SearchData {
            kind: self.kind,
            train: Arc::new(train),
            validation: Arc::new(validation),
            split,
            normalization,
            augment: self.augment(),
            seed: self.seed,
        })
    }
}

impl From<&spaces::DataConfig> for DataSpec {
    /// The loader description of a space file's validated `data` section (its path is already
    /// resolved against the space file's folder).
    fn from(d: &spaces::DataConfig) -> Self {
        DataSpec {
            kind: match d.kind {
                spaces::DataKind::Mnist => DataKind::Mnist,
                spaces::DataKind::Cifar10 => DataKind::Cifar10,
            },
            path: d.path.clone(),
            validation_fraction: d.validation_fraction,
            seed: d.seed,
            augment: d.augment.map(|a| Augment {
                crop_padding: a.crop_padding as usize,
                horizontal_flip: a.horizontal_flip,
            }),
        }
    }
}
