//! The workspace's seeded random-number generator: `rand`'s xoshiro256++ behind a small
//! interface whose state serializes, so that every sampler, mutation, data shuffle and search
//! strategy is reproducible and resumable. Seeds expand through SplitMix64
//! (`SeedableRng::seed_from_u64`); the sampling methods are `rand`'s and `rand_distr`'s
//! (unbiased integer ranges, Fisher-Yates, weighted index, ziggurat normal).

use rand::distr::weighted::WeightedIndex;
use rand::rngs::Xoshiro256PlusPlus;
use rand::seq::SliceRandom;
use rand::{Rng as _, RngExt, SeedableRng};
use rand_distr::{Distribution, StandardNormal};
use serde::{Deserialize, Serialize};

/// A seeded generator (xoshiro256++, Blackman and Vigna, as `rand` implements it).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Rng(Xoshiro256PlusPlus);

impl Rng {
    /// A generator for `seed`.
    pub fn new(seed: u64) -> Self {
        Rng(Xoshiro256PlusPlus::seed_from_u64(seed))
    }

    /// A generator for `seed` and a list of stream coordinates (for example
    /// `[STREAM_SHUFFLE, epoch]`): different coordinates give independent streams, the same
    /// ones the same stream, without drawing from any other generator.
    pub fn stream(seed: u64, coordinates: &[u64]) -> Self {
        let mut rng = Rng::new(seed);
        for &c in coordinates {
            rng = Rng::new(rng.next_u64() ^ c.wrapping_mul(0xD2B7_4407_B1CE_6E93));
        }
        rng
    }

    /// An independent generator derived from this one and `stream` (e.g. a worker index).
    pub fn fork(&mut self, stream: u64) -> Rng {
        Rng::new(self.next_u64() ^ stream.wrapping_mul(0xD2B7_4407_B1CE_6E93))
    }

    /// Next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0.next_u64()
    }

    /// Uniform in `0..n` (`n > 0`), without bias.
    pub fn below(&mut self, n: usize) -> usize {
        assert!(n > 0, "Rng::below(0)");
        self.0.random_range(0..n)
    }

    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        self.0.random::<f64>()
    }

    /// True with probability `p` (clamped to `[0, 1]`; NaN is never true).
    pub fn chance(&mut self, p: f64) -> bool {
        if p.is_nan() {
            return false;
        }
        self.0.random_bool(p.clamp(0.0, 1.0))
    }

    /// A fair coin.
    pub fn coin(&mut self) -> bool {
        self.0.random::<bool>()
    }

    /// A standard normal sample.
    pub fn normal(&mut self) -> f64 {
        StandardNormal.sample(&mut self.0)
    }

    /// Shuffles a slice in place (Fisher-Yates).
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        items.shuffle(&mut self.0);
    }

    /// An index drawn from unnormalized non-negative weights; uniform when they are all zero
    /// (or not finite).
    pub fn weighted(&mut self, weights: &[f64]) -> usize {
        match WeightedIndex::new(weights.iter().map(|w| w.max(0.0))) {
            Ok(index) => index.sample(&mut self.0),
            Err(_) => self.below(weights.len().max(1)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_and_uniform_enough() {
        let mut a = Rng::new(7);
        let mut b = Rng::new(7);
        assert_eq!(
            (0..10).map(|_| a.next_u64()).collect::<Vec<_>>(),
            (0..10).map(|_| b.next_u64()).collect::<Vec<_>>()
        );
        let mut counts = [0usize; 5];
        let mut r = Rng::new(1);
        for _ in 0..50_000 {
            counts[r.below(5)] += 1;
        }
        for c in counts {
            assert!((9_500..10_500).contains(&c), "{counts:?}");
        }
        let samples: Vec<f64> = (0..20_000).map(|_| r.normal()).collect();
        let mean = samples.iter().sum::<f64>() / 20_000.0;
        let var = samples.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / 20_000.0;
        assert!(mean.abs() < 0.03, "{mean}");
        assert!((var - 1.0).abs() < 0.05, "{var}");
    }

    #[test]
    fn the_seeded_stream_is_pinned() {
        // Every seeded result qnas reports (splits, samples, fronts) follows from this stream:
        // rand keeps xoshiro256++ and its SplitMix64 seeding value-stable, and `rand`'s
        // sampling algorithms change only with its minor version (pinned in Cargo.lock). A
        // change here changes the README's measured figures.
        let mut r = Rng::new(0);
        let got = [
            r.next_u64(),
            r.next_u64(),
            r.below(1000) as u64,
            r.unit().to_bits(),
        ];
        // the first two words agree with an independent Python xoshiro256++ (reference C code
        // translated, SplitMix64 seeding)
        assert_eq!(
            got,
            [
                5987356902031041503,
                7051070477665621255,
                359,
                4577757273079542464
            ]
        );
    }

    #[test]
    fn streams_differ_per_coordinate() {
        let a = Rng::stream(1, &[2, 0]).next_u64();
        let b = Rng::stream(1, &[2, 1]).next_u64();
        let c = Rng::stream(2, &[2, 0]).next_u64();
        let d = Rng::stream(1, &[3, 0]).next_u64();
        assert!(a != b && a != c && a != d && b != c && b != d && c != d);
        assert_eq!(a, Rng::stream(1, &[2, 0]).next_u64());
    }

    #[test]
    fn weighted_follows_the_weights() {
        let mut r = Rng::new(5);
        let mut counts = [0usize; 3];
        for _ in 0..30_000 {
            counts[r.weighted(&[1.0, 0.0, 3.0])] += 1;
        }
        assert_eq!(counts[1], 0);
        assert!((7_000..8_000).contains(&counts[0]), "{counts:?}");
        let mut zero = [0usize; 2];
        for _ in 0..1_000 {
            zero[r.weighted(&[0.0, 0.0])] += 1;
        }
        assert!(zero[0] > 400 && zero[1] > 400, "{zero:?}");
    }

    #[test]
    fn chance_is_total() {
        let mut r = Rng::new(9);
        assert!(!r.chance(f64::NAN));
        assert!(!r.chance(-1.0));
        assert!(r.chance(2.0));
        let hits = (0..10_000).filter(|_| r.chance(0.25)).count();
        assert!((2_300..2_700).contains(&hits), "{hits}");
    }

    #[test]
    fn state_round_trips_through_json() {
        let mut r = Rng::new(3);
        r.next_u64();
        let json = serde_json::to_string(&r).unwrap();
        let mut back: Rng = serde_json::from_str(&json).unwrap();
        assert_eq!(back.next_u64(), r.next_u64());
    }
}
