//! The data pipeline's randomness (split, shuffle, augmentation) is the workspace's one
//! generator, `spaces::Rng` (rand's xoshiro256++), on streams named by a tag and coordinates
//! (`Rng::stream(seed, &[STREAM_SHUFFLE, epoch])`): a seed gives the same split, order and
//! crops on every platform, and the three never share numbers.

pub(crate) use spaces::Rng;

/// Stream tags, so that the split, the shuffle and the augmentation never share numbers.
pub(crate) const STREAM_SPLIT: u64 = 1;
pub(crate) const STREAM_SHUFFLE: u64 = 2;
pub(crate) const STREAM_AUGMENT: u64 = 3;
