//! The in-memory data set: u8 images in N x C x H x W order and their class labels.

use super::error::{DataError, DataResult};
use super::rng::{Rng, STREAM_SPLIT};

/// Shape of one image: channels, height, width.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct ImageShape {
    /// Number of channels (1 for grey, 3 for colour).
    pub channels: usize,
    /// Height in pixels.
    pub height: usize,
    /// Width in pixels.
    pub width: usize,
}

impl ImageShape {
    /// A new shape.
    pub const fn new(channels: usize, height: usize, width: usize) -> Self {
        Self {
            channels,
            height,
            width,
        }
    }

    /// Number of pixels in one channel plane (`H * W`).
    pub const fn plane(&self) -> usize {
        self.height * self.width
    }

    /// Number of bytes of one image (`C * H * W`).
    pub const fn len(&self) -> usize {
        self.channels * self.height * self.width
    }

    /// Whether the shape holds no pixel.
    pub const fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// `[C, H, W]`.
    pub const fn dims(&self) -> [usize; 3] {
        [self.channels, self.height, self.width]
    }
}

/// An image-classification data set held in memory.
///
/// Images are u8 (0..=255), stored one after another, each in C x H x W (planar) order.
/// Labels are class indices `0..classes`. The invariants (sizes match, labels in range) are
/// checked on construction, so every accessor is infallible.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dataset {
    images: Vec<u8>,
    labels: Vec<u32>,
    shape: ImageShape,
    classes: usize,
}

/// Indices of a train / validation split of one data set, each list ascending.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SplitIndices {
    /// Samples kept for training.
    pub train: Vec<usize>,
    /// Samples held out for validation.
    pub validation: Vec<usize>,
}

impl Dataset {
    /// Builds a data set, checking that `images` holds `labels.len()` images of `shape` and that
    /// every label is below `classes`.
    pub fn new(
        images: Vec<u8>,
        labels: Vec<u32>,
        shape: ImageShape,
        classes: usize,
    ) -> DataResult<Self> {
        if shape.is_empty() {
            return Err(DataError::Invalid(format!(
                "image shape {:?} has no pixels",
                shape.dims()
            )));
        }
        if classes == 0 {
            return Err(DataError::Invalid(
                "a data set needs at least one class".into(),
            ));
        }
        let expected = labels.len().checked_mul(shape.len());
        if expected != Some(images.len()) {
            return Err(DataError::Invalid(format!(
                "{} labels need {} image bytes of shape {:?}, got {}",
                labels.len(),
                labels.len().saturating_mul(shape.len()),
                shape.dims(),
                images.len()
            )));
        }
        if let Some((index, &label)) = labels
            .iter()
            .enumerate()
            .find(|&(_, &l)| l as usize >= classes)
        {
            return Err(DataError::Invalid(format!(
                "label {label} of sample {index} is out of range for {classes} classes"
            )));
        }
        Ok(Self {
            images,
            labels,
            shape,
            classes,
        })
    }

    /// Number of samples.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether there is no sample.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Shape of every image.
    pub fn shape(&self) -> ImageShape {
        self.shape
    }

    /// Number of classes (labels are `0..classes`).
    pub fn classes(&self) -> usize {
        self.classes
    }

    /// All image bytes, N x C x H x W.
    pub fn images(&self) -> &[u8] {
        &self.images
    }

    /// All labels.
    pub fn labels(&self) -> &[u32] {
        &self.labels
    }

    /// The bytes of image `index` (C x H x W). Panics if `index >= len()`, like slice indexing.
    pub fn image(&self, index: usize) -> &[u8] {
        let n = self.shape.len();
        &self.images[index * n..(index + 1) * n]
    }

    /// The label of sample `index`. Panics if `index >= len()`, like slice indexing.
    pub fn label(&self, index: usize) -> u32 {
        self.labels[index]
    }

    /// Number of samples of each class.
    pub fn class_counts(&self) -> Vec<usize> {
        let mut counts = vec![0; self.classes];
        for &l in &self.labels {
            counts[l as usize] += 1;
        }
        counts
    }

    /// A new data set holding the given samples, in the given order.
    ///
    /// Fails if an index is out of range.
    pub fn subset(&self, indices: &[usize]) -> DataResult<Self> {
        if let Some(&bad) = indices.iter().find(|&&i| i >= self.len()) {
            return Err(DataError::Invalid(format!(
                "subset index {bad} is out of range for a data set of {} samples",
                self.len()
            )));
        }
        let n = self.shape.len();
        let mut images = Vec::with_capacity(indices.len() * n);
        let mut labels = Vec::with_capacity(indices.len());
        for &i in indices {
            images.extend_from_slice(self.image(i));
            labels.push(self.labels[i]);
        }
        Ok(Self {
            images,
            labels,
            shape: self.shape,
            classes: self.classes,
        })
    }

    /// Appends the samples of `other`, which must have the same shape and class count.
    pub fn append(&mut self, other: &Dataset) -> DataResult<()> {
        if other.shape != self.shape || other.classes != self.classes {
            return Err(DataError::Invalid(format!(
                "cannot append a data set of shape {:?} with {} classes to one of shape {:?} with {} classes",
                other.shape.dims(),
                other.classes,
                self.shape.dims(),
                self.classes
            )));
        }
        self.images.extend_from_slice(&other.images);
        self.labels.extend_from_slice(&other.labels);
        Ok(())
    }

    /// A deterministic split into train and validation indices, stratified by class.
    ///
    /// Within each class the samples are shuffled with a generator seeded by `(seed, class)`
    /// and the first `round(validation_fraction * class_count)` go to validation, so every class
    /// keeps its proportion. The same `(data set, fraction, seed)` always gives the same split;
    /// the two lists are disjoint, ascending, and together hold every index once.
    ///
    /// `validation_fraction` must lie strictly between 0 and 1, and both parts must be non-empty.
    pub fn split_indices(&self, validation_fraction: f64, seed: u64) -> DataResult<SplitIndices> {
        check_fraction(validation_fraction)?;
        let mut by_class: Vec<Vec<usize>> = vec![Vec::new(); self.classes];
        for (i, &l) in self.labels.iter().enumerate() {
            by_class[l as usize].push(i);
        }
        let mut train = Vec::with_capacity(self.len());
        let mut validation = Vec::new();
        for (class, mut members) in by_class.into_iter().enumerate() {
            let mut rng = Rng::stream(seed, &[STREAM_SPLIT, class as u64]);
            rng.shuffle(&mut members);
            // Round half up; the product is small and non-negative, so the cast is exact.
            let n_val = (validation_fraction * members.len() as f64 + 0.5).floor() as usize;
            let n_val = n_val.min(members.len());
            validation.extend_from_slice(&members[..n_val]);
            train.extend_from_slice(&members[n_val..]);
        }
        if validation.is_empty() || train.is_empty() {
            return Err(DataError::Invalid(format!(
                "a validation fraction of {validation_fraction} of {} samples leaves {} for training and {} for validation; both need at least one",
                self.len(),
                train.len(),
                validation.len()
            )));
        }
        train.sort_unstable();
        validation.sort_unstable();
        Ok(SplitIndices { train, validation })
    }

    /// Splits into `(train, validation)` data sets; see [`Dataset::split_indices`].
    pub fn split(&self, validation_fraction: f64, seed: u64) -> DataResult<(Dataset, Dataset)> {
        let s = self.split_indices(validation_fraction, seed)?;
        Ok((self.subset(&s.train)?, self.subset(&s.validation)?))
    }
}

pub(crate) fn check_fraction(f: f64) -> DataResult<()> {
    if f.is_finite() && f > 0.0 && f < 1.0 {
        Ok(())
    } else {
        Err(DataError::Invalid(format!(
            "validation_fraction must be strictly between 0 and 1, got {f}"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `per_class[c]` samples of class `c`, interleaved; pixel value = sample index mod 256.
    fn toy(per_class: &[usize]) -> Dataset {
        let shape = ImageShape::new(1, 2, 2);
        let mut labels = Vec::new();
        let mut remaining = per_class.to_vec();
        while remaining.iter().any(|&r| r > 0) {
            for (c, r) in remaining.iter_mut().enumerate() {
                if *r > 0 {
                    labels.push(c as u32);
                    *r -= 1;
                }
            }
        }
        let images = (0..labels.len())
            .flat_map(|i| [i as u8; 4])
            .collect::<Vec<_>>();
        Dataset::new(images, labels, shape, per_class.len()).unwrap()
    }

    #[test]
    fn new_rejects_inconsistent_input() {
        let shape = ImageShape::new(1, 2, 2);
        assert!(Dataset::new(vec![0; 7], vec![0, 1], shape, 2).is_err());
        assert!(Dataset::new(vec![0; 8], vec![0, 2], shape, 2).is_err());
        assert!(Dataset::new(vec![], vec![], ImageShape::new(1, 0, 2), 2).is_err());
        assert!(Dataset::new(vec![], vec![], shape, 0).is_err());
        let d = Dataset::new(vec![1, 2, 3, 4, 5, 6, 7, 8], vec![0, 1], shape, 2).unwrap();
        assert_eq!(d.image(1), &[5, 6, 7, 8]);
        assert_eq!(d.label(1), 1);
        assert_eq!(d.class_counts(), vec![1, 1]);
    }

    #[test]
    fn split_is_deterministic_disjoint_and_complete() {
        let d = toy(&[50, 30, 20]);
        let a = d.split_indices(0.2, 11).unwrap();
        let b = d.split_indices(0.2, 11).unwrap();
        assert_eq!(a, b, "same seed, same split");
        let c = d.split_indices(0.2, 12).unwrap();
        assert_ne!(a.validation, c.validation, "another seed, another split");

        let mut all: Vec<usize> = a.train.iter().chain(&a.validation).copied().collect();
        all.sort_unstable();
        assert_eq!(
            all,
            (0..d.len()).collect::<Vec<_>>(),
            "disjoint and complete"
        );
        assert!(a.train.windows(2).all(|w| w[0] < w[1]));
        assert!(a.validation.windows(2).all(|w| w[0] < w[1]));

        // Stratified: 20% of each class.
        let mut val_counts = [0usize; 3];
        for &i in &a.validation {
            val_counts[d.label(i) as usize] += 1;
        }
        assert_eq!(val_counts, [10, 6, 4]);
    }

    #[test]
    fn split_datasets_carry_the_right_samples() {
        let d = toy(&[5, 5]);
        let s = d.split_indices(0.4, 1).unwrap();
        let (train, val) = d.split(0.4, 1).unwrap();
        assert_eq!(train.len(), 6);
        assert_eq!(val.len(), 4);
        for (k, &i) in s.validation.iter().enumerate() {
            assert_eq!(val.image(k), d.image(i));
            assert_eq!(val.label(k), d.label(i));
        }
        assert_eq!(train.class_counts(), vec![3, 3]);
    }

    #[test]
    fn split_rejects_bad_fractions_and_empty_parts() {
        let d = toy(&[5, 5]);
        for f in [0.0, 1.0, -0.1, 1.5, f64::NAN] {
            assert!(
                matches!(d.split_indices(f, 0), Err(DataError::Invalid(_))),
                "{f}"
            );
        }
        // 1% of 5 rounds to 0 in every class: no validation sample.
        let err = d.split_indices(0.01, 0).unwrap_err();
        assert!(err.to_string().contains("0 for validation"), "{err}");
    }

    #[test]
    fn subset_and_append() {
        let d = toy(&[2, 2]);
        let s = d.subset(&[3, 0]).unwrap();
        assert_eq!(s.labels(), &[1, 0]);
        assert_eq!(s.image(0), d.image(3));
        assert!(d.subset(&[4]).is_err());
        let mut e = s.clone();
        e.append(&s).unwrap();
        assert_eq!(e.len(), 4);
        let other = Dataset::new(vec![0; 3], vec![0], ImageShape::new(3, 1, 1), 2).unwrap();
        assert!(e.append(&other).is_err());
    }
}
