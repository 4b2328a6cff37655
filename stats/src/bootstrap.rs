//! The pieces of a percentile bootstrap: a seeded resampler, quantiles and medians.

use rand::rngs::Xoshiro256PlusPlus;
use rand::{Rng, SeedableRng};

use crate::Interval;

/// The finite values of `x`, sorted ascending.
fn sorted_finite(x: &[f64]) -> Vec<f64> {
    let mut v: Vec<f64> = x.iter().copied().filter(|v| v.is_finite()).collect();
    v.sort_by(f64::total_cmp);
    v
}

/// The `q` quantile (`q` in [0, 1]) of non-empty sorted values, by linear interpolation between
/// order statistics, with numpy's `percentile(..., method='linear')` arithmetic (its `_lerp`).
fn quantile_sorted(v: &[f64], q: f64) -> f64 {
    let h = (v.len() - 1) as f64 * q;
    let below = h.floor();
    let i = below as usize;
    let t = h - below;
    if i + 1 >= v.len() {
        return v[v.len() - 1];
    }
    let (a, b) = (v[i], v[i + 1]);
    let diff = b - a;
    if t >= 0.5 {
        b - diff * (1.0 - t)
    } else {
        a + diff * t
    }
}

/// Percentile bootstrap interval of the finite values of `samples` at `confidence`: the
/// `(1 - confidence)/2` and `(1 + confidence)/2` quantiles (for 0.95 the 2.5% and 97.5%), with
/// linear interpolation between order statistics like numpy's default
/// (`numpy.percentile(finite, [2.5, 97.5])`).
///
/// `confidence` is clamped into [0, 1] (NaN counts as 1: the smallest and largest value).
/// None when no value is finite.
pub fn percentile_interval(samples: &[f64], confidence: f64) -> Option<Interval> {
    let v = sorted_finite(samples);
    if v.is_empty() {
        return None;
    }
    let c = if confidence.is_nan() {
        1.0
    } else {
        confidence.clamp(0.0, 1.0)
    };
    let tail = (1.0 - c) / 2.0;
    Some(Interval {
        lo: quantile_sorted(&v, tail),
        hi: quantile_sorted(&v, 1.0 - tail),
    })
}

/// Median of the finite values of `x` (the mean of the middle two for an even count, as
/// `numpy.median`); None if none is finite.
pub fn median(x: &[f64]) -> Option<f64> {
    let v = sorted_finite(x);
    let n = v.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(v[n / 2]),
        // halves first: no overflow for values near f64::MAX
        _ => Some(v[n / 2 - 1] / 2.0 + v[n / 2] / 2.0),
    }
}

/// A seeded resampler for bootstraps, deterministic for a seed on every platform and across
/// dependency updates.
///
/// The stream is rand's [`Xoshiro256PlusPlus`], one of the generators rand documents as
/// portable (value-stable, unlike `StdRng` and `SmallRng`), seeded through its documented
/// SplitMix64 `seed_from_u64`. The mapping of its 64-bit words onto `0..n` is our own
/// (Lemire's unbiased multiply-and-reject), not rand's `random_range`, whose algorithm rand may
/// change between releases. A test pins the first indices of a few seeds to values from an
/// independent implementation.
#[derive(Clone, Debug)]
pub struct Resampler {
    rng: Xoshiro256PlusPlus,
}

impl Resampler {
    /// A resampler for `seed`.
    pub fn new(seed: u64) -> Self {
        Resampler {
            rng: Xoshiro256PlusPlus::seed_from_u64(seed),
        }
    }

    /// A uniform draw from `0..n` (`n > 0`): Lemire's nearly divisionless method, exact (no
    /// modulo bias).
    fn below(&mut self, n: u64) -> u64 {
        let mut m = u128::from(self.rng.next_u64()) * u128::from(n);
        if (m as u64) < n {
            // 2^64 mod n: the low words below it would make some results more likely
            let threshold = n.wrapping_neg() % n;
            while (m as u64) < threshold {
                m = u128::from(self.rng.next_u64()) * u128::from(n);
            }
        }
        (m >> 64) as u64
    }

    /// n indices drawn uniformly with replacement from 0..n (empty for `n == 0`).
    pub fn indices(&mut self, n: usize) -> Vec<usize> {
        (0..n).map(|_| self.below(n as u64) as usize).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantile_ends_and_interpolation() {
        let v = [1.0, 2.0, 4.0];
        assert_eq!(quantile_sorted(&v, 0.0), 1.0);
        assert_eq!(quantile_sorted(&v, 1.0), 4.0);
        assert_eq!(quantile_sorted(&v, 0.5), 2.0);
        assert_eq!(quantile_sorted(&v, 0.75), 3.0);
        assert_eq!(quantile_sorted(&[7.0], 0.3), 7.0);
    }

    #[test]
    fn confidence_is_clamped() {
        let x = [3.0, 1.0, 2.0, f64::NAN, f64::INFINITY];
        let full = Interval { lo: 1.0, hi: 3.0 };
        assert_eq!(percentile_interval(&x, 1.0), Some(full));
        assert_eq!(percentile_interval(&x, 7.0), Some(full));
        assert_eq!(percentile_interval(&x, f64::NAN), Some(full));
        let mid = Interval { lo: 2.0, hi: 2.0 };
        assert_eq!(percentile_interval(&x, 0.0), Some(mid));
        assert_eq!(percentile_interval(&x, -3.0), Some(mid));
    }

    #[test]
    fn median_edges() {
        assert_eq!(median(&[]), None);
        assert_eq!(median(&[f64::NAN, f64::INFINITY]), None);
        assert_eq!(median(&[f64::MAX, f64::MAX]), Some(f64::MAX));
        assert_eq!(median(&[4.0, f64::NAN, 1.0, 3.0, 2.0]), Some(2.5));
    }

    #[test]
    fn below_small_bounds() {
        let mut r = Resampler::new(1);
        assert!((0..1000).all(|_| r.below(1) == 0));
        assert_eq!(r.indices(0), Vec::<usize>::new());
        let mut seen = [false; 3];
        for _ in 0..300 {
            seen[r.below(3) as usize] = true;
        }
        assert_eq!(seen, [true; 3]);
    }
}
