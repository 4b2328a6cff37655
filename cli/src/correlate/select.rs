//! Which members `qnas correlate` trains alone: every member of the search's front, then
//! members spread over cost and accuracy by farthest-point sampling.

use std::collections::HashSet;

use search::Row;

/// Why no selection can be made.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SelectError {
    /// More members asked for than the search evaluated.
    #[error(
        "--members {asked}: the search evaluated only {available} distinct members; ask for at most {available}"
    )]
    TooMany {
        /// Asked for.
        asked: usize,
        /// Distinct members evaluated.
        available: usize,
    },
    /// Fewer members asked for than the front has.
    #[error(
        "--members {asked}: the search's front has {front} members and every one is trained; ask for at least {front}"
    )]
    BelowFront {
        /// Asked for.
        asked: usize,
        /// Front members.
        front: usize,
    },
    /// Too few members for a rank correlation.
    #[error("--members {asked}: a rank correlation needs at least {min} members")]
    TooFew {
        /// Asked for.
        asked: usize,
        /// The least that works.
        min: usize,
    },
}

/// The least number of members a correlation is computed on.
pub const MIN_MEMBERS: usize = 3;

/// Indices into `rows` of `k` distinct members (by arch): first the members of `front` (in
/// their order), then, one at a time, the row farthest from every member chosen so far in the
/// plane of log10 BitOps and accuracy, each axis scaled to the range the rows span (ties go
/// to the earlier row). The choice for `k + 1` extends the choice for `k`.
pub fn select(rows: &[Row], front: &[Row], k: usize) -> Result<Vec<usize>, SelectError> {
    let mut seen = HashSet::new();
    let distinct: Vec<usize> = (0..rows.len())
        .filter(|&i| seen.insert(rows[i].arch.key()))
        .collect();
    if k < MIN_MEMBERS {
        return Err(SelectError::TooFew {
            asked: k,
            min: MIN_MEMBERS,
        });
    }
    if k > distinct.len() {
        return Err(SelectError::TooMany {
            asked: k,
            available: distinct.len(),
        });
    }
    let mut chosen: Vec<usize> = Vec::new();
    for f in front {
        let key = f.arch.key();
        if let Some(&i) = distinct.iter().find(|&&i| rows[i].arch.key() == key)
            && !chosen.contains(&i)
        {
            chosen.push(i);
        }
    }
    if chosen.len() > k {
        return Err(SelectError::BelowFront {
            asked: k,
            front: chosen.len(),
        });
    }
    let x = |i: usize| (rows[i].bitops.max(1) as f64).log10();
    let y = |i: usize| {
        let a = rows[i].accuracy;
        if a.is_finite() { a } else { 0.0 }
    };
    let span = |f: &dyn Fn(usize) -> f64| {
        let (lo, hi) = distinct
            .iter()
            .map(|&i| f(i))
            .fold((f64::MAX, f64::MIN), |(a, b), v| (a.min(v), b.max(v)));
        if hi > lo { hi - lo } else { 1.0 }
    };
    let (sx, sy) = (span(&x), span(&y));
    let dist = |i: usize, j: usize| {
        let dx = (x(i) - x(j)) / sx;
        let dy = (y(i) - y(j)) / sy;
        dx * dx + dy * dy
    };
    if chosen.is_empty() {
        // no front given: start from the cheapest member
        let first = distinct
            .iter()
            .copied()
            .min_by(|&a, &b| rows[a].bitops.cmp(&rows[b].bitops).then(a.cmp(&b)))
            .expect("k >= 3 members exist");
        chosen.push(first);
    }
    while chosen.len() < k {
        let mut best: Option<(f64, usize)> = None;
        for &i in &distinct {
            if chosen.contains(&i) {
                continue;
            }
            let d = chosen
                .iter()
                .map(|&j| dist(i, j))
                .fold(f64::INFINITY, f64::min);
            if best.is_none_or(|(bd, _)| d > bd) {
                best = Some((d, i));
            }
        }
        match best {
            Some((_, i)) => chosen.push(i),
            None => break,
        }
    }
    Ok(chosen)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use spaces::{Rng, Space};

    use super::*;

    fn rows(n: usize) -> Vec<Row> {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../spaces/presets/mnist.ron");
        let space = Space::load(&path).unwrap();
        let mut rng = Rng::new(3);
        let mut out: Vec<Row> = Vec::new();
        while out.len() < n {
            let arch = space.sample_uniform(&mut rng);
            if out.iter().any(|r| r.arch == arch) {
                continue;
            }
            let i = out.len() as f64;
            out.push(Row {
                origin: search::Origin::Strategy(spaces::SearchStrategy::Random),
                arch,
                accuracy: 0.5 + 0.45 * ((i * 0.37).sin().abs()),
                bitops: 1_000_000 + (i as u64) * 7_919_000,
                macs: 0,
                params: 0,
                weight_bits: 0,
                samples: 0,
                interval: None,
            });
        }
        out
    }

    #[test]
    fn front_first_then_spread_and_nested() {
        let r = rows(30);
        let front = vec![r[4].clone(), r[9].clone()];
        let s8 = select(&r, &front, 8).unwrap();
        assert_eq!(&s8[..2], &[4, 9]);
        let mut uniq = s8.clone();
        uniq.sort_unstable();
        uniq.dedup();
        assert_eq!(uniq.len(), 8);
        // nested: the choice for 12 extends the choice for 8
        let s12 = select(&r, &front, 12).unwrap();
        assert_eq!(&s12[..8], &s8[..]);
        // the third pick is the row farthest from the two front members
        let far = |i: usize| {
            let xs: Vec<f64> = r.iter().map(|x| (x.bitops as f64).log10()).collect();
            let (lx, hx) = xs
                .iter()
                .fold((f64::MAX, f64::MIN), |(a, b), v| (a.min(*v), b.max(*v)));
            let (ly, hy) = r.iter().fold((f64::MAX, f64::MIN), |(a, b), v| {
                (a.min(v.accuracy), b.max(v.accuracy))
            });
            [4usize, 9]
                .iter()
                .map(|&j| {
                    let dx = (xs[i] - xs[j]) / (hx - lx);
                    let dy = (r[i].accuracy - r[j].accuracy) / (hy - ly);
                    dx * dx + dy * dy
                })
                .fold(f64::INFINITY, f64::min)
        };
        let best = (0..r.len())
            .filter(|i| ![4, 9].contains(i))
            .max_by(|&a, &b| far(a).total_cmp(&far(b)).then(b.cmp(&a)))
            .unwrap();
        assert_eq!(s8[2], best);
    }

    #[test]
    fn duplicates_count_once_and_limits_are_checked() {
        let mut r = rows(5);
        r.push(Row {
            origin: "baseline int8 largest".parse().unwrap(),
            ..r[0].clone()
        });
        assert_eq!(
            select(&r, &[], 6),
            Err(SelectError::TooMany {
                asked: 6,
                available: 5
            })
        );
        assert_eq!(select(&r, &[], 5).unwrap().len(), 5);
        assert_eq!(
            select(&r, &[], 2),
            Err(SelectError::TooFew { asked: 2, min: 3 })
        );
        let front: Vec<Row> = r[..4].to_vec();
        assert_eq!(
            select(&r, &front, 3),
            Err(SelectError::BelowFront { asked: 3, front: 4 })
        );
        // without a front the cheapest member comes first
        assert_eq!(select(&r, &[], 3).unwrap()[0], 0);
    }
}
