//! A small, self-contained pseudo-random generator.
//!
//! Everything random in the data pipeline (split, shuffle, augmentation) draws from here, so a
//! seed gives the same result on every platform and with every version of the dependencies.
//! The generator is SplitMix64 (Steele, Lea, Flood 2014): 64 bits of state, passes BigCrush, and
//! more than good enough for shuffling and crop offsets.

/// Mixes a value through the SplitMix64 finaliser.
fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Derives an independent seed from a base seed and a list of stream coordinates
/// (for example `[STREAM_SHUFFLE, epoch]`).
pub(crate) fn derive_seed(seed: u64, coords: &[u64]) -> u64 {
    let mut h = mix64(seed ^ 0x5851_f42d_4c95_7f2d);
    for &c in coords {
        h = mix64(h ^ mix64(c.wrapping_add(0x9e37_79b9_7f4a_7c15)));
    }
    h
}

/// Stream tags, so that the split, the shuffle and the augmentation never share numbers.
pub(crate) const STREAM_SPLIT: u64 = 1;
pub(crate) const STREAM_SHUFFLE: u64 = 2;
pub(crate) const STREAM_AUGMENT: u64 = 3;

/// SplitMix64 generator.
#[derive(Debug, Clone)]
pub(crate) struct Rng {
    state: u64,
}

impl Rng {
    pub(crate) fn new(seed: u64) -> Self {
        Self { state: seed }
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        mix64(self.state)
    }

    /// A uniform integer in `0..n` (`n > 0`), without modulo bias (Lemire's method).
    pub(crate) fn below(&mut self, n: usize) -> usize {
        debug_assert!(n > 0);
        let n = n as u64;
        loop {
            let m = u128::from(self.next_u64()) * u128::from(n);
            let low = m as u64;
            if low >= n || low >= n.wrapping_neg() % n {
                return (m >> 64) as usize;
            }
        }
    }

    pub(crate) fn coin(&mut self) -> bool {
        self.next_u64() >> 63 == 1
    }

    /// Fisher-Yates shuffle.
    pub(crate) fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.below(i + 1);
            items.swap(i, j);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn below_is_in_range_and_covers_it() {
        let mut rng = Rng::new(7);
        let mut seen = [0usize; 5];
        for _ in 0..5000 {
            seen[rng.below(5)] += 1;
        }
        for &count in &seen {
            assert!((800..1200).contains(&count), "{seen:?}");
        }
    }

    #[test]
    fn shuffle_is_a_seeded_permutation() {
        let mut a: Vec<u32> = (0..100).collect();
        let mut b = a.clone();
        Rng::new(3).shuffle(&mut a);
        Rng::new(3).shuffle(&mut b);
        assert_eq!(a, b);
        let mut sorted = a.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..100).collect::<Vec<_>>());
        assert_ne!(a, sorted);
        let mut c: Vec<u32> = (0..100).collect();
        Rng::new(4).shuffle(&mut c);
        assert_ne!(a, c);
    }

    #[test]
    fn derived_seeds_differ_per_coordinate() {
        let a = derive_seed(1, &[STREAM_SHUFFLE, 0]);
        let b = derive_seed(1, &[STREAM_SHUFFLE, 1]);
        let c = derive_seed(2, &[STREAM_SHUFFLE, 0]);
        let d = derive_seed(1, &[STREAM_AUGMENT, 0]);
        assert!(a != b && a != c && a != d && b != c);
        assert_eq!(a, derive_seed(1, &[STREAM_SHUFFLE, 0]));
    }
}
