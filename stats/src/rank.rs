//! Agreement of two scorings of the same items: ranks, Kendall's tau-b, Spearman's rho and the
//! overlap of the top k.

use std::cmp::Ordering;

/// Ascending order of numbers, with every NaN after every number and NaNs equal to each other
/// (so that `-0.0` ties with `0.0`, unlike `f64::total_cmp`).
fn ascending(a: f64, b: f64) -> Ordering {
    match (a.is_nan(), b.is_nan()) {
        (false, false) => a.partial_cmp(&b).unwrap_or(Ordering::Equal),
        (false, true) => Ordering::Less,
        (true, false) => Ordering::Greater,
        (true, true) => Ordering::Equal,
    }
}

/// Average ranks (1-based, ties averaged), as `scipy.stats.rankdata(x)` (method `'average'`):
/// the smallest value has rank 1, and values that tie share the mean of the ranks they span.
/// NaNs (which scipy does not rank) come after every number, tied with each other.
pub fn ranks(x: &[f64]) -> Vec<f64> {
    let mut order: Vec<usize> = (0..x.len()).collect();
    order.sort_by(|&i, &j| ascending(x[i], x[j]));
    let mut out = vec![0.0; x.len()];
    let mut start = 0;
    while start < order.len() {
        let mut end = start + 1;
        while end < order.len() && ascending(x[order[start]], x[order[end]]) == Ordering::Equal {
            end += 1;
        }
        // positions start..end hold ranks start + 1 ..= end; their mean:
        let rank = (start + 1 + end) as f64 / 2.0;
        for &i in &order[start..end] {
            out[i] = rank;
        }
        start = end;
    }
    out
}

/// Whether two paired samples can be correlated: equal lengths, at least two, no NaN.
fn comparable(x: &[f64], y: &[f64]) -> bool {
    x.len() == y.len() && x.len() >= 2 && !x.iter().chain(y).any(|v| v.is_nan())
}

/// Kendall's tau-b, with ties handled as in `scipy.stats.kendalltau`'s default (variant 'b'):
/// `(C - D) / sqrt((P - T_x)(P - T_y))`, where `C` and `D` count the concordant and discordant
/// pairs, `P = n(n - 1)/2`, and `T_x` (`T_y`) the pairs tied in `x` (in `y`), a pair tied in both
/// counting in both. The counts are exact integers; O(n^2).
///
/// None when `x` and `y` differ in length, `n < 2`, either is constant, or any value is NaN
/// (where scipy returns NaN).
pub fn kendall_tau_b(x: &[f64], y: &[f64]) -> Option<f64> {
    if !comparable(x, y) {
        return None;
    }
    let n = x.len();
    let (mut concordant, mut discordant, mut tied_x, mut tied_y) = (0u64, 0u64, 0u64, 0u64);
    for i in 0..n {
        for j in i + 1..n {
            let dx = ascending(x[i], x[j]);
            let dy = ascending(y[i], y[j]);
            match (dx, dy) {
                (Ordering::Equal, Ordering::Equal) => {
                    tied_x += 1;
                    tied_y += 1;
                }
                (Ordering::Equal, _) => tied_x += 1,
                (_, Ordering::Equal) => tied_y += 1,
                _ if dx == dy => concordant += 1,
                _ => discordant += 1,
            }
        }
    }
    let pairs = (n as u64) * (n as u64 - 1) / 2;
    if tied_x == pairs || tied_y == pairs {
        return None;
    }
    let numerator = concordant as f64 - discordant as f64;
    let denominator = ((pairs - tied_x) as f64).sqrt() * ((pairs - tied_y) as f64).sqrt();
    Some((numerator / denominator).clamp(-1.0, 1.0))
}

/// Pearson's correlation; None when either side has no spread.
fn pearson(x: &[f64], y: &[f64]) -> Option<f64> {
    let n = x.len() as f64;
    let mean_x = x.iter().sum::<f64>() / n;
    let mean_y = y.iter().sum::<f64>() / n;
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for (a, b) in x.iter().zip(y) {
        let (dx, dy) = (a - mean_x, b - mean_y);
        sxy += dx * dy;
        sxx += dx * dx;
        syy += dy * dy;
    }
    if sxx <= 0.0 || syy <= 0.0 {
        return None;
    }
    Some((sxy / (sxx.sqrt() * syy.sqrt())).clamp(-1.0, 1.0))
}

/// Spearman's rho: the Pearson correlation of the average [`ranks`] (ties get the mean rank),
/// as `scipy.stats.spearmanr(x, y).statistic`.
///
/// None as for [`kendall_tau_b`]: lengths differ, `n < 2`, either side constant, or a NaN.
pub fn spearman_rho(x: &[f64], y: &[f64]) -> Option<f64> {
    if !comparable(x, y) {
        return None;
    }
    pearson(&ranks(x), &ranks(y))
}

/// The indices of the `k` largest values, largest first; ties broken by lower index first, NaN
/// below every number.
fn top_k(x: &[f64], k: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..x.len()).collect();
    // descending numbers, NaNs last; a stable sort keeps equal values in index order
    order.sort_by(|&i, &j| match (x[i].is_nan(), x[j].is_nan()) {
        (false, false) => ascending(x[j], x[i]),
        (nan_i, nan_j) => nan_i.cmp(&nan_j),
    });
    order.truncate(k);
    order
}

/// Top-k overlap: `|top_k(x) ∩ top_k(y)| / k`, the top k by value, largest first; ties at the
/// boundary broken by lower index first (NaN ranks below every number).
///
/// None when the lengths differ, `k == 0` or `k > n`.
pub fn top_k_overlap(x: &[f64], y: &[f64], k: usize) -> Option<f64> {
    if x.len() != y.len() || k == 0 || k > x.len() {
        return None;
    }
    let mut in_x = vec![false; x.len()];
    for i in top_k(x, k) {
        in_x[i] = true;
    }
    let shared = top_k(y, k).into_iter().filter(|&i| in_x[i]).count();
    Some(shared as f64 / k as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranks_of_ties_and_nan() {
        assert_eq!(ranks(&[]), Vec::<f64>::new());
        assert_eq!(ranks(&[5.0]), vec![1.0]);
        assert_eq!(ranks(&[0.0, -0.0, 1.0]), vec![1.5, 1.5, 3.0]);
        assert_eq!(
            ranks(&[f64::NAN, 2.0, f64::NAN, 1.0]),
            vec![3.5, 2.0, 3.5, 1.0]
        );
        assert_eq!(ranks(&[3.0, 3.0, 3.0]), vec![2.0, 2.0, 2.0]);
    }

    #[test]
    fn undefined_correlations() {
        assert_eq!(kendall_tau_b(&[1.0, 2.0], &[1.0]), None);
        assert_eq!(kendall_tau_b(&[1.0], &[1.0]), None);
        assert_eq!(kendall_tau_b(&[1.0, 1.0, 1.0], &[1.0, 2.0, 3.0]), None);
        assert_eq!(kendall_tau_b(&[1.0, 2.0, 3.0], &[4.0, 4.0, 4.0]), None);
        assert_eq!(kendall_tau_b(&[1.0, f64::NAN, 3.0], &[1.0, 2.0, 3.0]), None);
        assert_eq!(spearman_rho(&[1.0, 2.0], &[1.0, 2.0, 3.0]), None);
        assert_eq!(spearman_rho(&[], &[]), None);
        assert_eq!(spearman_rho(&[2.0, 2.0], &[1.0, 2.0]), None);
        assert_eq!(spearman_rho(&[1.0, 2.0, 3.0], &[1.0, f64::NAN, 3.0]), None);
    }

    #[test]
    fn perfect_agreement_and_reversal() {
        let x = [0.1, 0.4, 0.2, 0.9];
        let up = [1.0, 4.0, 2.0, 9.0];
        let down = [-1.0, -4.0, -2.0, -9.0];
        assert_eq!(kendall_tau_b(&x, &up), Some(1.0));
        assert_eq!(kendall_tau_b(&x, &down), Some(-1.0));
        assert!((spearman_rho(&x, &up).unwrap() - 1.0).abs() < 1e-12);
        assert!((spearman_rho(&x, &down).unwrap() + 1.0).abs() < 1e-12);
        // infinities are ordinary, comparable values
        assert_eq!(
            kendall_tau_b(&[f64::NEG_INFINITY, 0.0, f64::INFINITY], &[1.0, 2.0, 3.0]),
            Some(1.0)
        );
    }

    #[test]
    fn top_k_edges() {
        assert_eq!(top_k_overlap(&[1.0, 2.0], &[1.0], 1), None);
        assert_eq!(top_k_overlap(&[1.0, 2.0], &[1.0, 2.0], 0), None);
        assert_eq!(top_k_overlap(&[1.0, 2.0], &[1.0, 2.0], 3), None);
        assert_eq!(top_k_overlap(&[1.0, 2.0], &[2.0, 1.0], 2), Some(1.0));
        assert_eq!(top_k_overlap(&[1.0, 2.0], &[2.0, 1.0], 1), Some(0.0));
        // NaN is below every number
        assert_eq!(
            top_k_overlap(&[f64::NAN, 0.0, 1.0], &[-5.0, 0.0, 1.0], 2),
            Some(1.0)
        );
        assert_eq!(top_k(&[f64::NAN, 0.0, f64::NAN], 3), vec![1, 0, 2]);
    }
}
