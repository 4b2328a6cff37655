//! The statistics of `qnas correlate`: how well the supernet's accuracies of members agree
//! with their stand-alone accuracies, each figure with a bootstrap interval.
//!
//! Both accuracies of a member are measured on the same images, so the analysis
//! works from per-image records (correct or not). A bootstrap replicate resamples the images
//! (with replacement, the same images for both sides of every member: a paired comparison) and,
//! for the rank statistics, the members too; the interval is the percentile interval over the
//! replicates. The variation between stand-alone trainings of one member (other seeds) is not
//! in these intervals: one training per member is measured.

use serde::{Deserialize, Serialize};
use stats::{Interval, Resampler};

/// Per-image records of the members compared.
#[derive(Clone, Debug, PartialEq)]
pub struct Paired {
    /// `supernet[m][i]`: 1 when member `m`, on the supernet's weights, classifies image `i`
    /// correctly, else 0.
    pub supernet: Vec<Vec<f64>>,
    /// The same for the member trained alone: the share of its trainings (seeds) that
    /// classify image `i` correctly.
    pub alone: Vec<Vec<f64>>,
    /// Whether member `m` is on the search's front.
    pub front: Vec<bool>,
}

/// A figure and its bootstrap interval.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Estimate {
    /// The figure on the data as measured.
    pub value: f64,
    /// Its percentile bootstrap interval (none when no replicate defined it).
    pub interval: Option<Interval>,
}

/// Everything `qnas correlate` concludes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Analysis {
    /// Confidence of every interval.
    pub confidence: f64,
    /// Bootstrap replicates.
    pub replicates: usize,
    /// Kendall's tau-b between supernet and stand-alone accuracy (none when either side is
    /// constant).
    pub kendall_tau_b: Option<Estimate>,
    /// Spearman's rho.
    pub spearman_rho: Option<Estimate>,
    /// k of the top-k overlap.
    pub top_k: usize,
    /// Share of the k most accurate members alone that are among the supernet's k most
    /// accurate.
    pub top_k_overlap: Option<Estimate>,
    /// Per member: supernet minus stand-alone accuracy (fractions), interval over images.
    pub gaps: Vec<Estimate>,
    /// Per member: stand-alone accuracy, interval over images.
    pub alone: Vec<Estimate>,
    /// Median gap over all members.
    pub median_gap: Option<Estimate>,
    /// Median gap over the front's members.
    pub median_front_gap: Option<Estimate>,
    /// Largest |gap| over the front's members.
    pub max_abs_front_gap: Option<f64>,
    /// Front members whose |gap| is at most 3 points.
    pub front_within_3_points: usize,
    /// Front members.
    pub front_members: usize,
}

fn accuracy(correct: &[f64], idx: Option<&[usize]>) -> f64 {
    match idx {
        None => correct.iter().sum::<f64>() / correct.len().max(1) as f64,
        Some(idx) => idx.iter().map(|&i| correct[i]).sum::<f64>() / idx.len().max(1) as f64,
    }
}

/// The figures of one set of accuracies (`s`, `a`: supernet and alone, per member).
struct Figures {
    tau: Option<f64>,
    rho: Option<f64>,
    top: Option<f64>,
    gaps: Vec<f64>,
    median: Option<f64>,
    median_front: Option<f64>,
}

fn figures(s: &[f64], a: &[f64], front: &[bool], k: usize, members: &[usize]) -> Figures {
    let sm: Vec<f64> = members.iter().map(|&m| s[m]).collect();
    let am: Vec<f64> = members.iter().map(|&m| a[m]).collect();
    let gaps: Vec<f64> = s.iter().zip(a).map(|(x, y)| x - y).collect();
    let gm: Vec<f64> = members.iter().map(|&m| gaps[m]).collect();
    let gf: Vec<f64> = members
        .iter()
        .filter(|&&m| front[m])
        .map(|&m| gaps[m])
        .collect();
    Figures {
        tau: stats::kendall_tau_b(&sm, &am),
        rho: stats::spearman_rho(&sm, &am),
        top: stats::top_k_overlap(a, s, k),
        median: stats::median(&gm),
        median_front: stats::median(&gf),
        gaps,
    }
}

/// Analyses `p` with `replicates` bootstrap replicates drawn from `seed`, intervals at
/// `confidence`, and the top-`top_k` overlap.
pub fn analyse(
    p: &Paired,
    top_k: usize,
    replicates: usize,
    seed: u64,
    confidence: f64,
) -> Analysis {
    let m = p.supernet.len();
    let n = p.supernet.first().map_or(0, Vec::len);
    let all: Vec<usize> = (0..m).collect();
    let acc = |v: &[Vec<f64>], idx: Option<&[usize]>| -> Vec<f64> {
        v.iter().map(|c| accuracy(c, idx)).collect()
    };
    let (s, a) = (acc(&p.supernet, None), acc(&p.alone, None));
    let point = figures(&s, &a, &p.front, top_k, &all);

    let mut rng = Resampler::new(seed);
    let mut tau = Vec::with_capacity(replicates);
    let mut rho = Vec::with_capacity(replicates);
    let mut top = Vec::with_capacity(replicates);
    let mut med = Vec::with_capacity(replicates);
    let mut med_front = Vec::with_capacity(replicates);
    let mut gaps: Vec<Vec<f64>> = vec![Vec::with_capacity(replicates); m];
    let mut alone: Vec<Vec<f64>> = vec![Vec::with_capacity(replicates); m];
    for _ in 0..replicates {
        let images = rng.indices(n);
        let members = rng.indices(m);
        let (sb, ab) = (
            acc(&p.supernet, Some(&images)),
            acc(&p.alone, Some(&images)),
        );
        // the rank figures and medians over resampled members; the top-k overlap and each
        // member's gap over resampled images only (a member drawn twice has no meaning there)
        let f = figures(&sb, &ab, &p.front, top_k, &members);
        let fi = figures(&sb, &ab, &p.front, top_k, &all);
        tau.push(f.tau.unwrap_or(f64::NAN));
        rho.push(f.rho.unwrap_or(f64::NAN));
        top.push(fi.top.unwrap_or(f64::NAN));
        med.push(f.median.unwrap_or(f64::NAN));
        med_front.push(f.median_front.unwrap_or(f64::NAN));
        for (g, v) in gaps.iter_mut().zip(&fi.gaps) {
            g.push(*v);
        }
        for (g, v) in alone.iter_mut().zip(&ab) {
            g.push(*v);
        }
    }
    let est = |value: Option<f64>, reps: &[f64]| {
        value.map(|value| Estimate {
            value,
            interval: stats::percentile_interval(reps, confidence),
        })
    };
    let front_gaps: Vec<f64> = point
        .gaps
        .iter()
        .zip(&p.front)
        .filter(|(_, f)| **f)
        .map(|(g, _)| *g)
        .collect();
    Analysis {
        confidence,
        replicates,
        kendall_tau_b: est(point.tau, &tau),
        spearman_rho: est(point.rho, &rho),
        top_k,
        top_k_overlap: est(point.top, &top),
        gaps: point
            .gaps
            .iter()
            .zip(&gaps)
            .map(|(v, reps)| Estimate {
                value: *v,
                interval: stats::percentile_interval(reps, confidence),
            })
            .collect(),
        alone: a
            .iter()
            .zip(&alone)
            .map(|(v, reps)| Estimate {
                value: *v,
                interval: stats::percentile_interval(reps, confidence),
            })
            .collect(),
        median_gap: est(point.median, &med),
        median_front_gap: est(point.median_front, &med_front),
        max_abs_front_gap: front_gaps.iter().map(|g| g.abs()).reduce(f64::max),
        // a hair of tolerance: 3 points on 400 images is exactly 12 images
        front_within_3_points: front_gaps
            .iter()
            .filter(|g| g.abs() <= 0.03 + 1e-12)
            .count(),
        front_members: front_gaps.len(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A record with `k` of `n` images correct, spread by a stride.
    fn record(k: usize, n: usize, offset: usize) -> Vec<f64> {
        let mut v = vec![0.0; n];
        for j in 0..k {
            v[(j * 7 + offset) % n] = 1.0;
        }
        assert_eq!(v.iter().sum::<f64>(), k as f64);
        v
    }

    #[test]
    fn identical_rankings_give_tau_one_and_zero_gaps() {
        let n = 200;
        let rec: Vec<Vec<f64>> = [50, 90, 120, 160, 190]
            .iter()
            .map(|&k| record(k, n, 0))
            .collect();
        let p = Paired {
            supernet: rec.clone(),
            alone: rec,
            front: vec![false, true, false, true, true],
        };
        let a = analyse(&p, 2, 300, 1, 0.95);
        assert!((a.kendall_tau_b.unwrap().value - 1.0).abs() < 1e-12);
        assert!((a.spearman_rho.unwrap().value - 1.0).abs() < 1e-12);
        assert_eq!(a.top_k_overlap.unwrap().value, 1.0);
        for g in &a.gaps {
            assert_eq!(g.value, 0.0);
            // paired: the same images on both sides, so every replicate's gap is 0
            assert_eq!(g.interval.unwrap(), Interval { lo: 0.0, hi: 0.0 });
        }
        assert_eq!(a.front_members, 3);
        assert_eq!(a.front_within_3_points, 3);
        assert_eq!(a.max_abs_front_gap, Some(0.0));
    }

    #[test]
    fn reversed_rankings_and_a_known_gap() {
        let n = 400;
        let ks = [100, 200, 300, 380];
        let p = Paired {
            supernet: ks.iter().map(|&k| record(k, n, 0)).collect(),
            alone: ks.iter().rev().map(|&k| record(k, n, 3)).collect(),
            front: vec![true, false, false, true],
        };
        let a = analyse(&p, 1, 400, 7, 0.95);
        assert!((a.kendall_tau_b.unwrap().value + 1.0).abs() < 1e-12);
        assert!((a.spearman_rho.unwrap().value + 1.0).abs() < 1e-12);
        assert_eq!(a.top_k_overlap.unwrap().value, 0.0);
        // member 0: 25% in the supernet, 95% alone
        let g = a.gaps[0];
        assert!((g.value - (0.25 - 0.95)).abs() < 1e-12);
        let iv = g.interval.unwrap();
        assert!(iv.lo < g.value && g.value < iv.hi, "{iv:?}");
        // the interval of a difference of proportions on 400 images is a few points wide
        assert!(iv.hi - iv.lo > 0.03 && iv.hi - iv.lo < 0.15, "{iv:?}");
        assert_eq!(a.front_within_3_points, 0);
        assert!((a.max_abs_front_gap.unwrap() - 0.70).abs() < 1e-12);
        // tau's interval over resampled members contains its value
        let t = a.kendall_tau_b.unwrap().interval.unwrap();
        assert!(t.lo <= -1.0 + 1e-12 && t.hi >= -1.0 - 1e-12);
    }

    #[test]
    fn constant_accuracies_have_no_rank_correlation() {
        let n = 50;
        let p = Paired {
            supernet: vec![record(25, n, 0); 3],
            alone: vec![record(10, n, 1), record(20, n, 1), record(30, n, 1)],
            front: vec![true; 3],
        };
        let a = analyse(&p, 1, 50, 3, 0.95);
        assert!(a.kendall_tau_b.is_none());
        assert!(a.spearman_rho.is_none());
        assert_eq!(a.gaps.len(), 3);
        // and the analysis is deterministic for a seed
        assert_eq!(a, analyse(&p, 1, 50, 3, 0.95));
    }
}
