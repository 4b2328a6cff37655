//! Two-sided intervals and the confidence intervals of a binomial proportion.

use serde::{Deserialize, Serialize};
use statrs::distribution::{Beta, Continuous, ContinuousCDF, Normal};

/// A two-sided interval [lo, hi].
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Interval {
    /// The lower end (included).
    pub lo: f64,
    /// The upper end (included).
    pub hi: f64,
}

impl Interval {
    /// Whether `lo <= x <= hi`.
    pub fn contains(&self, x: f64) -> bool {
        self.lo <= x && x <= self.hi
    }

    /// Whether the two intervals share at least one point (touching ends count).
    pub fn overlaps(&self, o: &Interval) -> bool {
        self.lo <= o.hi && o.lo <= self.hi
    }

    /// `hi - lo`.
    pub fn width(&self) -> f64 {
        self.hi - self.lo
    }
}

/// The smallest confidence level we compute with: `1e-12` away from the ends of (0, 1).
const EDGE: f64 = 1e-12;

/// `1 - confidence`, with the confidence clamped into `[EDGE, 1 - EDGE]`; NaN counts as the
/// upper end (the widest interval), so that no input panics or poisons the result.
fn alpha(confidence: f64) -> f64 {
    let c = if confidence.is_nan() { 1.0 } else { confidence };
    1.0 - c.clamp(EDGE, 1.0 - EDGE)
}

/// The `p` quantile of Beta(a, b): statrs' inverse CDF, polished by Newton steps on statrs' CDF.
///
/// statrs stops its search once the step is below about 1e-10 in absolute terms, which leaves
/// quantiles near 0 (a few successes in 10^5 trials or more) off by up to 4e-4 relative; a few
/// Newton steps on the CDF, each kept only if it brings the CDF closer to `p`, recover full
/// precision and can only improve the start. Every caller passes `a, b >= 1` and `p` in (0, 1),
/// where statrs cannot fail; `fallback` (the trivial bound) keeps the function panic-free
/// regardless.
fn beta_quantile(a: f64, b: f64, p: f64, fallback: f64) -> f64 {
    let Ok(d) = Beta::new(a, b) else {
        return fallback;
    };
    let mut x = match d.try_inverse_cdf(p) {
        Ok(x) if x.is_finite() => x.clamp(0.0, 1.0),
        _ => return fallback,
    };
    let mut residual = d.cdf(x) - p;
    for _ in 0..8 {
        let density = d.pdf(x);
        if residual == 0.0 || !(density.is_finite() && density > 0.0) {
            break;
        }
        let next = x - residual / density;
        if !(next > 0.0 && next < 1.0) {
            break;
        }
        let next_residual = d.cdf(next) - p;
        if !next_residual.is_finite() || next_residual.abs() >= residual.abs() {
            break;
        }
        x = next;
        residual = next_residual;
    }
    x
}

/// The most trials [`clopper_pearson`] computes exactly (2^20, far beyond any test set).
///
/// statrs' Beta inverse (AS 109) starts its Newton search no closer to 0 or 1 than 1e-4; with
/// shape parameters beyond about 7e6 the density there underflows, the step becomes NaN and the
/// search never ends (and its incomplete beta loses accuracy beyond about 1e7 anyway). Up to
/// 2^20 the search is safe, and a test checks it against scipy and for termination.
pub const MAX_EXACT_TRIALS: u64 = 1 << 20;

/// Exact (Clopper-Pearson) interval of a binomial proportion at `confidence` (e.g. 0.95),
/// from the Beta quantiles (statrs): `lo` is the `alpha/2` quantile of Beta(k, n - k + 1) and
/// `hi` the `1 - alpha/2` quantile of Beta(k + 1, n - k), as
/// `scipy.stats.binomtest(k, n).proportion_ci(method='exact')`.
///
/// `successes == 0` gives `lo = 0`, `successes == trials` gives `hi = 1`; `trials == 0` gives
/// [0, 1]. Never panics: `confidence` is clamped into (0, 1) (1e-12 from either end; NaN counts
/// as the widest), and `successes > trials` is read as `successes == trials`. Beyond
/// [`MAX_EXACT_TRIALS`] trials it returns the [`wilson`] interval, which there agrees with the
/// exact one to well within the sampling error.
///
/// Precision against `scipy.stats.beta.ppf` (checked on a grid of k, n and confidences 0.5 to
/// 1 - 1e-12): 1e-13 absolute up to n = 10^4; up to 2^20, 1e-12 absolute and 2e-9 relative,
/// where statrs' incomplete beta sets the limit.
pub fn clopper_pearson(successes: u64, trials: u64, confidence: f64) -> Interval {
    if trials == 0 {
        return Interval { lo: 0.0, hi: 1.0 };
    }
    if trials > MAX_EXACT_TRIALS {
        return wilson(successes, trials, confidence);
    }
    let k = successes.min(trials);
    let half = alpha(confidence) / 2.0;
    let (kf, nf) = (k as f64, trials as f64);
    let lo = if k == 0 {
        0.0
    } else {
        beta_quantile(kf, nf - kf + 1.0, half, 0.0)
    };
    // The upper quantile through the mirrored distribution: 1 - q_{alpha/2}(Beta(n - k, k + 1))
    // equals q_{1 - alpha/2}(Beta(k + 1, n - k)), and keeps the search in the accurate tail.
    let hi = if k == trials {
        1.0
    } else {
        1.0 - beta_quantile(nf - kf, kf + 1.0, half, 0.0)
    };
    Interval { lo, hi }
}

/// Wilson score interval of a binomial proportion at `confidence` (normal quantile from
/// statrs), without continuity correction, as
/// `scipy.stats.binomtest(k, n).proportion_ci(method='wilson')`:
/// `(2np + z^2 ± z sqrt(z^2 + 4np(1 - p))) / (2(n + z^2))`, clamped into [0, 1];
/// `successes == 0` gives `lo = 0` and `successes == trials` gives `hi = 1` exactly.
///
/// `trials == 0` gives [0, 1]; `confidence` and `successes` are handled as in
/// [`clopper_pearson`].
pub fn wilson(successes: u64, trials: u64, confidence: f64) -> Interval {
    if trials == 0 {
        return Interval { lo: 0.0, hi: 1.0 };
    }
    let k = successes.min(trials);
    let z = Normal::standard().inverse_cdf(1.0 - alpha(confidence) / 2.0);
    let (kf, nf) = (k as f64, trials as f64);
    let p = kf / nf;
    let z2 = z * z;
    let denom = 2.0 * (nf + z2);
    let center = (2.0 * nf * p + z2) / denom;
    let half = z * (z2 + 4.0 * nf * p * (1.0 - p)).sqrt() / denom;
    // at p = 0 (p = 1) the lower (upper) end is exactly 0 (1); rounding must not move it
    Interval {
        lo: if k == 0 {
            0.0
        } else {
            (center - half).clamp(0.0, 1.0)
        },
        hi: if k == trials {
            1.0
        } else {
            (center + half).clamp(0.0, 1.0)
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interval_predicates() {
        let a = Interval { lo: 0.2, hi: 0.5 };
        assert!(a.contains(0.2) && a.contains(0.5) && a.contains(0.3));
        assert!(!a.contains(0.1) && !a.contains(0.51) && !a.contains(f64::NAN));
        assert!(a.overlaps(&Interval { lo: 0.5, hi: 0.9 }));
        assert!(a.overlaps(&Interval { lo: 0.0, hi: 1.0 }));
        assert!(!a.overlaps(&Interval { lo: 0.51, hi: 0.9 }));
        assert!(!a.overlaps(&Interval { lo: 0.0, hi: 0.19 }));
        assert!((a.width() - 0.3).abs() < 1e-15);
    }

    #[test]
    fn degenerate_inputs_do_not_panic() {
        for conf in [0.0, -1.0, 1.0, 2.0, f64::NAN, f64::INFINITY, 1e-300] {
            for (k, n) in [
                (0, 0),
                (0, 1),
                (1, 1),
                (5, 10),
                (12, 10),
                (u64::MAX, u64::MAX),
            ] {
                for ci in [clopper_pearson(k, n, conf), wilson(k, n, conf)] {
                    assert!(
                        0.0 <= ci.lo && ci.lo <= ci.hi && ci.hi <= 1.0,
                        "{k}/{n} at {conf}: {ci:?}"
                    );
                }
            }
        }
        assert_eq!(clopper_pearson(0, 0, 0.95), Interval { lo: 0.0, hi: 1.0 });
        assert_eq!(wilson(3, 0, 0.95), Interval { lo: 0.0, hi: 1.0 });
        // more successes than trials reads as all successes
        assert_eq!(clopper_pearson(12, 10, 0.95), clopper_pearson(10, 10, 0.95));
        // NaN confidence is the widest interval
        assert_eq!(
            clopper_pearson(5, 10, f64::NAN),
            clopper_pearson(5, 10, 1.0)
        );
    }

    #[test]
    fn wider_with_confidence() {
        let narrow = clopper_pearson(47, 400, 0.8);
        let wide = clopper_pearson(47, 400, 0.99);
        assert!(wide.lo < narrow.lo && narrow.hi < wide.hi);
        let narrow = wilson(47, 400, 0.8);
        let wide = wilson(47, 400, 0.99);
        assert!(wide.lo < narrow.lo && narrow.hi < wide.hi);
    }
}
