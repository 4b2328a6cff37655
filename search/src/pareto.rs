//! The Pareto front of (accuracy up, BitOps down), non-dominated sorting and the hypervolume of a
//! front on fixed, normalized axes.
//!
//! # Dominance
//! `a` dominates `b` when `a.accuracy >= b.accuracy` and `a.bitops <= b.bitops`, with at least
//! one of the two strict. A NaN accuracy counts as lower than every number (−∞), so a point with
//! NaN accuracy is dominated by every point with a number and no more BitOps. Two identical
//! points do not dominate each other: a front keeps every copy of a non-dominated point (and
//! different members with the same scores are all kept, since each is a member worth reporting).
//!
//! # Hypervolume
//! The hypervolume is measured on the unit square, with axes that depend only on a fixed
//! [`HvReference`] (so that the fronts of different runs over one space compare):
//!
//! - `x(p) = (log10(p.bitops) − log10(min_bitops)) / (log10(max_bitops) − log10(min_bitops))`,
//!   clamped to `[0, 1]` (BitOps of 0 count as 1); lower is better;
//! - `y(p) = p.accuracy` clamped to `[0, 1]` (NaN counts as 0); higher is better.
//!
//! The reference point is `(x, y) = (1, 0)`: `max_bitops` BitOps at accuracy 0. The hypervolume
//! of a set of points is the area of the union over its points of the rectangles
//! `[x(p), 1] × [0, y(p)]`, i.e. of the region they dominate within the square; it lies in
//! `[0, 1]`, dominated points add nothing to it and points at or above `max_bitops` add
//! nothing. [`HvReference::for_space`] takes `min_bitops` and `max_bitops` from the BitOps of a
//! space's smallest and largest members.

use serde::{Deserialize, Serialize};
use spaces::{ArchError, Space};

use crate::trial::{Evaluation, Trial};

/// One scored member: accuracy (higher is better) and BitOps (lower is better).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Point {
    /// Accuracy in `[0, 1]`.
    pub accuracy: f64,
    /// BitOps.
    pub bitops: u64,
}

impl Point {
    /// A point.
    pub fn new(accuracy: f64, bitops: u64) -> Self {
        Point { accuracy, bitops }
    }

    /// The accuracy used for comparisons: NaN becomes −∞.
    fn acc(&self) -> f64 {
        if self.accuracy.is_nan() {
            f64::NEG_INFINITY
        } else {
            self.accuracy
        }
    }
}

impl From<&Evaluation> for Point {
    fn from(e: &Evaluation) -> Self {
        Point::new(e.accuracy, e.bitops)
    }
}

impl From<&Trial> for Point {
    fn from(t: &Trial) -> Self {
        Point::from(&t.eval)
    }
}

/// Whether `a` dominates `b`: at least as accurate and at most as many BitOps, and strictly
/// better in one of the two (see the module docs for NaN).
pub fn dominates(a: &Point, b: &Point) -> bool {
    let (aa, ba) = (a.acc(), b.acc());
    aa >= ba && a.bitops <= b.bitops && (aa > ba || a.bitops < b.bitops)
}

/// The order of points within a front: BitOps ascending, then accuracy descending, then index.
fn front_order(points: &[Point], idx: &mut [usize]) {
    idx.sort_by(|&i, &j| {
        let (p, q) = (&points[i], &points[j]);
        p.bitops
            .cmp(&q.bitops)
            .then(q.acc().total_cmp(&p.acc()))
            .then(i.cmp(&j))
    });
}

/// The indices of the non-dominated points, sorted by BitOps ascending (identical points, which
/// are all kept, by index).
pub fn pareto_front(points: &[Point]) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..points.len()).collect();
    front_order(points, &mut idx);
    let mut out = Vec::new();
    // best accuracy among points with strictly fewer BitOps than the current group
    let mut best_below = f64::NEG_INFINITY;
    let mut any_below = false;
    let mut start = 0;
    while start < idx.len() {
        let bitops = points[idx[start]].bitops;
        let end = idx[start..]
            .iter()
            .position(|&i| points[i].bitops != bitops)
            .map_or(idx.len(), |k| start + k);
        // sorted by accuracy descending within the group: the first is the group's best
        let top = points[idx[start]].acc();
        if !any_below || top > best_below {
            out.extend(
                idx[start..end]
                    .iter()
                    .copied()
                    .filter(|&i| points[i].acc() == top),
            );
            best_below = top;
        }
        any_below = true;
        start = end;
    }
    out
}

/// Fast non-dominated sorting (Deb et al., NSGA-II): the points split into fronts, the first
/// being [`pareto_front`], each front non-dominated once the fronts before it are removed.
/// Every front is sorted like [`pareto_front`].
pub fn non_dominated_sort(points: &[Point]) -> Vec<Vec<usize>> {
    let n = points.len();
    let mut dominated_by_count = vec![0usize; n];
    let mut dominates_list: Vec<Vec<usize>> = vec![Vec::new(); n];
    for i in 0..n {
        for j in (i + 1)..n {
            if dominates(&points[i], &points[j]) {
                dominates_list[i].push(j);
                dominated_by_count[j] += 1;
            } else if dominates(&points[j], &points[i]) {
                dominates_list[j].push(i);
                dominated_by_count[i] += 1;
            }
        }
    }
    let mut fronts = Vec::new();
    let mut current: Vec<usize> = (0..n).filter(|&i| dominated_by_count[i] == 0).collect();
    while !current.is_empty() {
        let mut next = Vec::new();
        for &i in &current {
            for &j in &dominates_list[i] {
                dominated_by_count[j] -= 1;
                if dominated_by_count[j] == 0 {
                    next.push(j);
                }
            }
        }
        front_order(points, &mut current);
        fronts.push(current);
        current = next;
    }
    fronts
}

/// Why a hypervolume reference cannot be built.
#[derive(Debug, thiserror::Error)]
pub enum ParetoError {
    /// The BitOps range is empty or starts at 0.
    #[error(
        "the hypervolume needs 0 < min_bitops < max_bitops, got min_bitops = {min_bitops}, max_bitops = {max_bitops}"
    )]
    Range {
        /// Lower end.
        min_bitops: u64,
        /// Upper end.
        max_bitops: u64,
    },
    /// The cost of the space's smallest or largest member.
    #[error(transparent)]
    Cost(#[from] ArchError),
}

/// The fixed axes of the hypervolume: the BitOps range that maps to `x` in `[0, 1]` (see the
/// module docs). The reference point is `(x = 1, accuracy = 0)`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct HvReference {
    min_bitops: u64,
    max_bitops: u64,
}

impl HvReference {
    /// Axes from `min_bitops` to `max_bitops` (`0 < min_bitops < max_bitops`).
    pub fn new(min_bitops: u64, max_bitops: u64) -> Result<Self, ParetoError> {
        if min_bitops == 0 || min_bitops >= max_bitops {
            return Err(ParetoError::Range {
                min_bitops,
                max_bitops,
            });
        }
        Ok(HvReference {
            min_bitops,
            max_bitops,
        })
    }

    /// Axes from the BitOps of the space's smallest member to those of its largest (an error
    /// for a space whose smallest and largest members cost the same, e.g. a single member).
    pub fn for_space(space: &Space) -> Result<Self, ParetoError> {
        let lo = space.cost(&space.smallest())?.bitops;
        let hi = space.cost(&space.largest())?.bitops;
        HvReference::new(lo, hi)
    }

    /// The BitOps at `x = 0`.
    pub fn min_bitops(&self) -> u64 {
        self.min_bitops
    }

    /// The BitOps at `x = 1` (the reference point's).
    pub fn max_bitops(&self) -> u64 {
        self.max_bitops
    }

    /// `(x, y)` of a point on the unit square (see the module docs).
    pub fn normalize(&self, p: &Point) -> (f64, f64) {
        let lo = (self.min_bitops as f64).log10();
        let hi = (self.max_bitops as f64).log10();
        let b = (p.bitops.max(1) as f64).log10();
        let x = ((b - lo) / (hi - lo)).clamp(0.0, 1.0);
        let y = if p.accuracy.is_nan() {
            0.0
        } else {
            p.accuracy.clamp(0.0, 1.0)
        };
        (x, y)
    }
}

/// The hypervolume of a set of points (a front, or any set: dominated points add nothing) with
/// respect to `reference`, in `[0, 1]` (see the module docs for the exact definition).
pub fn hypervolume(points: &[Point], reference: &HvReference) -> f64 {
    let mut xy: Vec<(f64, f64)> = points.iter().map(|p| reference.normalize(p)).collect();
    xy.sort_by(|a, b| a.0.total_cmp(&b.0).then(b.1.total_cmp(&a.1)));
    let mut area = 0.0;
    let mut height = 0.0f64;
    for (k, &(x, y)) in xy.iter().enumerate() {
        height = height.max(y);
        let next_x = xy.get(k + 1).map_or(1.0, |p| p.0);
        area += (next_x - x) * height;
    }
    area
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(accuracy: f64, bitops: u64) -> Point {
        Point::new(accuracy, bitops)
    }

    #[test]
    fn dominance() {
        assert!(dominates(&p(0.9, 10), &p(0.8, 10)));
        assert!(dominates(&p(0.9, 10), &p(0.9, 20)));
        assert!(dominates(&p(0.9, 10), &p(0.8, 20)));
        assert!(!dominates(&p(0.8, 20), &p(0.9, 10)));
        // identical points do not dominate each other
        assert!(!dominates(&p(0.9, 10), &p(0.9, 10)));
        // a trade-off: neither dominates
        assert!(!dominates(&p(0.9, 20), &p(0.8, 10)));
        assert!(!dominates(&p(0.8, 10), &p(0.9, 20)));
        // NaN accuracy is the worst accuracy
        assert!(dominates(&p(0.0, 10), &p(f64::NAN, 10)));
        assert!(!dominates(&p(f64::NAN, 10), &p(0.0, 10)));
        assert!(!dominates(&p(0.0, 11), &p(f64::NAN, 10)));
    }

    #[test]
    fn front_with_ties_and_duplicates() {
        let pts = [
            p(0.50, 100),    // 0: dominated by 4 (same bitops, more accurate)
            p(0.90, 400),    // 1: front
            p(0.70, 200),    // 2: front
            p(0.70, 200),    // 3: duplicate of 2, kept
            p(0.60, 100),    // 4: front
            p(0.70, 300),    // 5: dominated by 2 (same accuracy, fewer bitops)
            p(0.95, 800),    // 6: front
            p(0.90, 500),    // 7: dominated by 1
            p(0.60, 100),    // 8: duplicate of 4, kept
            p(0.10, 50),     // 9: front (cheapest)
            p(f64::NAN, 10), // 10: front: nothing is as cheap
            p(f64::NAN, 60), // 11: dominated by 9
        ];
        assert_eq!(pareto_front(&pts), vec![10, 9, 4, 8, 2, 3, 1, 6]);
        let fronts = non_dominated_sort(&pts);
        assert_eq!(fronts[0], pareto_front(&pts));
        // every point is in exactly one front
        let mut all: Vec<usize> = fronts.iter().flatten().copied().collect();
        all.sort();
        assert_eq!(all, (0..pts.len()).collect::<Vec<_>>());
        // front k: nothing in fronts >= k dominates its points, something in front k-1 does
        for (k, front) in fronts.iter().enumerate() {
            for &i in front {
                for later in &fronts[k..] {
                    assert!(later.iter().all(|&j| !dominates(&pts[j], &pts[i])));
                }
                if k > 0 {
                    assert!(fronts[k - 1].iter().any(|&j| dominates(&pts[j], &pts[i])));
                }
            }
        }
        assert_eq!(fronts[1], vec![11, 0, 5, 7]);
        assert_eq!(fronts.len(), 2);
        assert!(pareto_front(&[]).is_empty());
        assert!(non_dominated_sort(&[]).is_empty());
    }

    #[test]
    fn front_matches_brute_force() {
        let mut rng = spaces::Rng::new(5);
        for _ in 0..50 {
            let pts: Vec<Point> = (0..30)
                .map(|_| p(rng.below(6) as f64 / 5.0, 1 + rng.below(8) as u64))
                .collect();
            let brute: Vec<usize> = (0..pts.len())
                .filter(|&i| pts.iter().all(|q| !dominates(q, &pts[i])))
                .collect();
            let mut front = pareto_front(&pts);
            let bitops: Vec<u64> = front.iter().map(|&i| pts[i].bitops).collect();
            assert!(bitops.windows(2).all(|w| w[0] <= w[1]));
            front.sort();
            assert_eq!(front, brute);
        }
    }

    #[test]
    fn hypervolume_by_hand() {
        // log10 axis from 1 to 10^4: 10 -> 0.25, 100 -> 0.5, 1000 -> 0.75
        let r = HvReference::new(1, 10_000).unwrap();
        let two = [p(0.5, 10), p(0.9, 1000)];
        // [0.25, 0.75] x 0.5 + [0.75, 1] x 0.9
        let hv2 = hypervolume(&two, &r);
        assert!((hv2 - 0.475).abs() < 1e-12, "{hv2}");
        let three = [p(0.5, 10), p(0.9, 1000), p(0.6, 100)];
        // 0.25 x 0.5 + 0.25 x 0.6 + 0.25 x 0.9
        let hv3 = hypervolume(&three, &r);
        assert!((hv3 - 0.5).abs() < 1e-12, "{hv3}");
        // one point at the smallest BitOps with accuracy 1 fills the square
        assert_eq!(hypervolume(&[p(1.0, 1)], &r), 1.0);
        // out-of-range values are clamped: beyond max_bitops or at accuracy 0 add nothing
        assert_eq!(hypervolume(&[p(0.9, 20_000), p(0.0, 1)], &r), 0.0);
        assert_eq!(hypervolume(&[], &r), 0.0);
        assert_eq!(hypervolume(&[p(1.5, 0)], &r), 1.0);
    }

    #[test]
    fn hypervolume_is_monotone() {
        let r = HvReference::new(10, 1_000_000).unwrap();
        let base = vec![p(0.5, 100), p(0.7, 1_000), p(0.8, 10_000)];
        let hv = hypervolume(&base, &r);
        // dominated points (including duplicates) change nothing
        for extra in [p(0.6, 1_000), p(0.7, 5_000), p(0.5, 100), p(0.1, 200)] {
            let mut pts = base.clone();
            pts.push(extra);
            // dominated, or a duplicate of a front point
            assert!(base.iter().any(|q| dominates(q, &extra) || *q == extra));
            assert_eq!(hypervolume(&pts, &r), hv, "{extra:?}");
        }
        // non-dominated points increase it
        for extra in [p(0.6, 500), p(0.9, 100_000), p(0.3, 20)] {
            let mut pts = base.clone();
            pts.push(extra);
            assert!(pareto_front(&pts).contains(&3));
            assert!(hypervolume(&pts, &r) > hv, "{extra:?}");
        }
    }

    #[test]
    fn reference_needs_a_range() {
        assert!(HvReference::new(0, 10).is_err());
        assert!(HvReference::new(10, 10).is_err());
        assert!(HvReference::new(11, 10).is_err());
        let src = r#"(
            version: 1,
            input: (channels: 1, height: 8, width: 8),
            classes: 10,
            stem: (width: [8, 16]),
            stages: [(block: ConvBnRelu, depth: [1], width: [16])],
            quantization: (weights: [Int(4), Int(8)], activations: [Int(8)], tie: Global),
        )"#;
        let space = Space::parse(src, "t.ron", "t").unwrap();
        let r = HvReference::for_space(&space).unwrap();
        assert_eq!(
            r.min_bitops(),
            space.cost(&space.smallest()).unwrap().bitops
        );
        assert_eq!(r.max_bitops(), space.cost(&space.largest()).unwrap().bitops);
        assert_eq!(r.normalize(&p(0.5, r.min_bitops())), (0.0, 0.5));
        assert_eq!(r.normalize(&p(0.5, r.max_bitops())), (1.0, 0.5));
    }
}
