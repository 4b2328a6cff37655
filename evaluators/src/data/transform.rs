//! Normalization and augmentation of u8 images.

use serde::{Deserialize, Serialize};

use super::dataset::{Dataset, ImageShape};
use super::error::{DataError, DataResult};
use super::rng::Rng;

/// Per-channel normalization: a pixel `p` of channel `c` becomes `(p / 255 - mean[c]) / std[c]`.
///
/// Compute it once from the training part ([`Normalization::from_dataset`]) and keep it with
/// the results, so validation, test and deployment use the very same numbers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Normalization {
    /// Mean of `pixel / 255`, per channel.
    pub mean: Vec<f32>,
    /// Standard deviation of `pixel / 255`, per channel (population form, divided by N).
    pub std: Vec<f32>,
}

/// A channel whose standard deviation is below this is constant; it gets `std = 1` instead,
/// so normalization never divides by (almost) zero.
const MIN_STD: f64 = 1e-6;

impl Normalization {
    /// The per-channel mean and standard deviation of `pixel / 255` over every image of
    /// `data` (computed in f64). Fails on an empty data set.
    pub fn from_dataset(data: &Dataset) -> DataResult<Self> {
        if data.is_empty() {
            return Err(DataError::Invalid(
                "cannot compute normalization statistics of an empty data set".into(),
            ));
        }
        let shape = data.shape();
        let plane = shape.plane();
        let mut count = vec![0u64; shape.channels];
        let mut hist = vec![[0u64; 256]; shape.channels];
        for image in data.images().chunks_exact(shape.len()) {
            for (c, channel) in image.chunks_exact(plane).enumerate() {
                for &p in channel {
                    hist[c][usize::from(p)] += 1;
                }
                count[c] += plane as u64;
            }
        }
        let mut mean = Vec::with_capacity(shape.channels);
        let mut std = Vec::with_capacity(shape.channels);
        for (h, &n) in hist.iter().zip(&count) {
            let n = n as f64;
            let m = h
                .iter()
                .enumerate()
                .map(|(v, &k)| v as f64 / 255.0 * k as f64)
                .sum::<f64>()
                / n;
            let var = h
                .iter()
                .enumerate()
                .map(|(v, &k)| (v as f64 / 255.0 - m).powi(2) * k as f64)
                .sum::<f64>()
                / n;
            let s = var.sqrt();
            mean.push(m as f32);
            std.push(if s < MIN_STD { 1.0 } else { s as f32 });
        }
        Ok(Self { mean, std })
    }

    /// Mean 0, standard deviation 1: only the scaling to `0..=1`.
    pub fn unit(channels: usize) -> Self {
        Self {
            mean: vec![0.0; channels],
            std: vec![1.0; channels],
        }
    }

    /// Number of channels described.
    pub fn channels(&self) -> usize {
        self.mean.len()
    }

    /// Checks that the statistics fit images with `channels` channels and are usable
    /// (finite means, finite positive standard deviations).
    pub fn check(&self, channels: usize) -> DataResult<()> {
        if self.mean.len() != channels || self.std.len() != channels {
            return Err(DataError::Invalid(format!(
                "normalization has {} means and {} standard deviations for {channels}-channel images",
                self.mean.len(),
                self.std.len()
            )));
        }
        if self.mean.iter().any(|m| !m.is_finite())
            || self.std.iter().any(|s| !s.is_finite() || *s <= 0.0)
        {
            return Err(DataError::Invalid(format!(
                "normalization needs finite means and positive finite standard deviations, got mean {:?} std {:?}",
                self.mean, self.std
            )));
        }
        Ok(())
    }

    /// One lookup table per channel: the normalized value of each of the 256 pixel values.
    pub(crate) fn tables(&self) -> Vec<[f32; 256]> {
        self.mean
            .iter()
            .zip(&self.std)
            .map(|(&m, &s)| {
                let mut t = [0f32; 256];
                for (v, slot) in t.iter_mut().enumerate() {
                    *slot = (v as f32 / 255.0 - m) / s;
                }
                t
            })
            .collect()
    }

    /// Normalizes one C x H x W image into `out` (same length). Panics if the lengths or the
    /// channel count do not match `shape`; [`Normalization::check`] tells beforehand.
    pub fn apply(&self, image: &[u8], shape: ImageShape, out: &mut [f32]) {
        apply_tables(&self.tables(), image, shape, out);
    }
}

pub(crate) fn apply_tables(
    tables: &[[f32; 256]],
    image: &[u8],
    shape: ImageShape,
    out: &mut [f32],
) {
    assert_eq!(image.len(), shape.len());
    assert_eq!(out.len(), shape.len());
    let plane = shape.plane();
    for ((src, dst), table) in image
        .chunks_exact(plane)
        .zip(out.chunks_exact_mut(plane))
        .zip(tables)
    {
        for (d, &p) in dst.iter_mut().zip(src) {
            *d = table[usize::from(p)];
        }
    }
}

/// Training-time augmentation of u8 images, applied before normalization.
///
/// Random crop: the image is padded with `crop_padding` zero pixels on every side and a window
/// of the original size is cut at a uniformly random offset. Horizontal flip: mirrored with
/// probability 1/2. This is the usual CIFAR recipe (`crop_padding: 4, horizontal_flip: true`);
/// digits get none (a flipped digit is another symbol).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Augment {
    /// Zero padding around the image before the random crop; 0 turns cropping off.
    #[serde(default)]
    pub crop_padding: usize,
    /// Mirror left-right with probability 1/2.
    #[serde(default)]
    pub horizontal_flip: bool,
}

impl Augment {
    /// No augmentation.
    pub const NONE: Self = Self {
        crop_padding: 0,
        horizontal_flip: false,
    };

    /// Random crop with padding 4 and horizontal flip (CIFAR).
    pub const CROP_FLIP: Self = Self {
        crop_padding: 4,
        horizontal_flip: true,
    };

    /// Whether this changes nothing.
    pub fn is_identity(&self) -> bool {
        self.crop_padding == 0 && !self.horizontal_flip
    }

    /// Augments one C x H x W image into `out` (same length); the same `seed` gives the same
    /// crop and flip. Panics if the lengths do not match `shape`.
    pub fn apply(&self, image: &[u8], shape: ImageShape, seed: u64, out: &mut [u8]) {
        self.apply_rng(image, shape, &mut Rng::new(seed), out);
    }

    pub(crate) fn apply_rng(&self, image: &[u8], shape: ImageShape, rng: &mut Rng, out: &mut [u8]) {
        assert_eq!(image.len(), shape.len());
        assert_eq!(out.len(), shape.len());
        let p = self.crop_padding;
        let (dy, dx) = if p > 0 {
            (rng.below(2 * p + 1), rng.below(2 * p + 1))
        } else {
            (p, p)
        };
        let flip = self.horizontal_flip && rng.coin();
        let (h, w) = (shape.height, shape.width);
        for (src, dst) in image
            .chunks_exact(shape.plane())
            .zip(out.chunks_exact_mut(shape.plane()))
        {
            for y in 0..h {
                // Row y of the output is row y + dy - p of the source.
                let sy = (y + dy).checked_sub(p).filter(|&sy| sy < h);
                for x in 0..w {
                    let xc = if flip { w - 1 - x } else { x };
                    let sx = (xc + dx).checked_sub(p).filter(|&sx| sx < w);
                    dst[y * w + x] = match (sy, sx) {
                        (Some(sy), Some(sx)) => src[sy * w + sx],
                        _ => 0,
                    };
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalization_matches_hand_computed_stats() {
        // Two 2-channel 1x2 images. Channel 0: 0, 255, 0, 255 -> mean 0.5, std 0.5.
        // Channel 1: 51 everywhere -> mean 0.2, std 0 -> stored as 1.
        let shape = ImageShape::new(2, 1, 2);
        let d = Dataset::new(vec![0, 255, 51, 51, 255, 0, 51, 51], vec![0, 1], shape, 2).unwrap();
        let n = Normalization::from_dataset(&d).unwrap();
        assert!((n.mean[0] - 0.5).abs() < 1e-7);
        assert!((n.std[0] - 0.5).abs() < 1e-7);
        assert!((n.mean[1] - 0.2).abs() < 1e-7);
        assert_eq!(n.std[1], 1.0);
        n.check(2).unwrap();
        assert!(n.check(3).is_err());

        let mut out = [0f32; 4];
        n.apply(d.image(0), shape, &mut out);
        assert!((out[0] + 1.0).abs() < 1e-6);
        assert!((out[1] - 1.0).abs() < 1e-6);
        assert!(out[2].abs() < 1e-6);
    }

    #[test]
    fn normalization_matches_a_direct_computation() {
        let shape = ImageShape::new(3, 4, 5);
        let n_img = 7;
        let images: Vec<u8> = (0..n_img * shape.len())
            .map(|i| ((i * 37 + i / 13) % 256) as u8)
            .collect();
        let d = Dataset::new(images.clone(), vec![0; n_img], shape, 1).unwrap();
        let n = Normalization::from_dataset(&d).unwrap();
        for c in 0..3 {
            let values: Vec<f64> = images
                .chunks_exact(shape.len())
                .flat_map(|im| im[c * 20..(c + 1) * 20].iter().map(|&p| p as f64 / 255.0))
                .collect();
            let m = values.iter().sum::<f64>() / values.len() as f64;
            let v = values.iter().map(|x| (x - m).powi(2)).sum::<f64>() / values.len() as f64;
            assert!((n.mean[c] as f64 - m).abs() < 1e-6);
            assert!((n.std[c] as f64 - v.sqrt()).abs() < 1e-6);
        }
        // Normalized data has mean 0 and std 1 per channel.
        let mut out = vec![0f32; shape.len()];
        let mut sums = [0f64; 3];
        let mut sq = [0f64; 3];
        for i in 0..n_img {
            n.apply(d.image(i), shape, &mut out);
            for c in 0..3 {
                for &x in &out[c * 20..(c + 1) * 20] {
                    sums[c] += x as f64;
                    sq[c] += (x as f64).powi(2);
                }
            }
        }
        let count = (n_img * 20) as f64;
        for c in 0..3 {
            assert!((sums[c] / count).abs() < 1e-5);
            assert!((sq[c] / count - 1.0).abs() < 1e-4);
        }
    }

    #[test]
    fn empty_dataset_has_no_statistics() {
        let d = Dataset::new(vec![], vec![], ImageShape::new(1, 2, 2), 2).unwrap();
        assert!(Normalization::from_dataset(&d).is_err());
    }

    fn ramp(shape: ImageShape) -> Vec<u8> {
        (0..shape.len()).map(|i| (i % 251 + 1) as u8).collect()
    }

    #[test]
    fn no_augmentation_is_the_identity() {
        let shape = ImageShape::new(3, 6, 5);
        let img = ramp(shape);
        let mut out = vec![0; shape.len()];
        Augment::NONE.apply(&img, shape, 99, &mut out);
        assert_eq!(out, img);
    }

    #[test]
    fn crop_and_flip_keep_shape_and_content() {
        let shape = ImageShape::new(3, 8, 8);
        let img = ramp(shape);
        let mut seen_flip = false;
        let mut seen_shift = false;
        for seed in 0..200 {
            let mut out = vec![0; shape.len()];
            Augment::CROP_FLIP.apply(&img, shape, seed, &mut out);
            assert_eq!(out.len(), shape.len());
            // Every non-zero output pixel is a source pixel of the same channel, and every
            // channel is moved the same way.
            let mut again = vec![0; shape.len()];
            Augment::CROP_FLIP.apply(&img, shape, seed, &mut again);
            assert_eq!(out, again, "seeded");
            for c in 0..3 {
                let o = &out[c * 64..(c + 1) * 64];
                let s = &img[c * 64..(c + 1) * 64];
                for &v in o.iter().filter(|&&v| v != 0) {
                    assert!(s.contains(&v));
                }
                let zeros: Vec<bool> = o.iter().map(|&v| v == 0).collect();
                let zeros0: Vec<bool> = out[..64].iter().map(|&v| v == 0).collect();
                assert_eq!(zeros, zeros0);
            }
            if out[..64] != img[..64] {
                seen_shift = true;
            }
            // The ramp increases left to right, so a decreasing neighbour pair means a flip.
            if out[..64].chunks_exact(8).any(|row| {
                row.windows(2)
                    .any(|p| p[0] != 0 && p[1] != 0 && p[0] > p[1])
            }) {
                seen_flip = true;
            }
        }
        assert!(seen_shift && seen_flip);
    }

    #[test]
    fn flip_only_mirrors_rows() {
        let shape = ImageShape::new(1, 2, 3);
        let img = [1, 2, 3, 4, 5, 6];
        let flip = Augment {
            crop_padding: 0,
            horizontal_flip: true,
        };
        let mut flipped = 0;
        for seed in 0..64 {
            let mut out = [0u8; 6];
            flip.apply(&img, shape, seed, &mut out);
            if out == [3, 2, 1, 6, 5, 4] {
                flipped += 1;
            } else {
                assert_eq!(out, img);
            }
        }
        assert!((16..48).contains(&flipped), "{flipped} of 64 flipped");
    }

    #[test]
    fn crop_offsets_cover_the_padding() {
        // A single bright pixel in a 1x1 image: with padding 1 the 3x3 possible offsets move it
        // out of the window in 8 of 9 cases (output 0) and keep it in 1 of 9.
        let shape = ImageShape::new(1, 1, 1);
        let crop = Augment {
            crop_padding: 1,
            horizontal_flip: false,
        };
        let kept = (0..900)
            .filter(|&seed| {
                let mut out = [0u8];
                crop.apply(&[200], shape, seed, &mut out);
                out[0] == 200
            })
            .count();
        assert!((60..150).contains(&kept), "{kept}");

        // A 3x3 image padded by 1: the output equals the padded image shifted by (dy-1, dx-1).
        let shape = ImageShape::new(1, 3, 3);
        let img = [1, 2, 3, 4, 5, 6, 7, 8, 9];
        let mut outputs = std::collections::HashSet::new();
        for seed in 0..500 {
            let mut out = [0u8; 9];
            crop.apply(&img, shape, seed, &mut out);
            outputs.insert(out);
        }
        assert_eq!(outputs.len(), 9, "all 9 offsets occur");
        assert!(outputs.contains(&[0, 0, 0, 0, 1, 2, 0, 4, 5]));
        assert!(outputs.contains(&[5, 6, 0, 8, 9, 0, 0, 0, 0]));
        assert!(outputs.contains(&img));
    }
}
