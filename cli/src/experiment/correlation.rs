//! An experiment's correlations: members of a search trained alone (`qnas correlate`), kept
//! as a summary in the run so that a finished correlation is read back, its section of the
//! report and its Kendall tau check.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use burn::tensor::Device;
use search::fsio::{IoError, write_json_atomic};
use search::pareto::{HvReference, Point, hypervolume};
use serde::{Deserialize, Serialize};
use spaces::Space;

use crate::correlate::{
    self, Analysis, CorrelateError, CorrelateFolders, CorrelateOptions, CorrelateProgress,
    CorrelateReport, Estimate, SeedAgreement, SelectError, with_interval,
};

use super::Outcome;
use super::spec::PlannedCorrelation;

/// File of a finished correlation's summary in its output folder.
pub const SUMMARY_FILE: &str = "experiment-correlation.json";

/// One member of a correlation.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CorrelatedMember {
    /// On the search's front.
    pub front: bool,
    /// BitOps.
    pub bitops: u64,
    /// Accuracy on the supernet's weights.
    pub supernet: f64,
    /// Accuracy trained alone (mean over the seeds).
    pub alone: f64,
    /// Where the search found it.
    pub origin: String,
}

/// A finished correlation.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CorrelationResult {
    /// The search's label.
    pub label: String,
    /// The seed of the search whose members were compared.
    pub seed: u64,
    /// Members asked for.
    pub asked: usize,
    /// Members compared (fewer when the search measured fewer, more when its front is larger).
    pub members: usize,
    /// Steps of each training alone.
    pub steps: u64,
    /// Trainings of each member alone.
    pub seeds: usize,
    /// The split both accuracies were measured on, and its images.
    pub split: String,
    /// How many images.
    pub images: usize,
    /// `qnas correlate`'s statistics.
    pub analysis: Analysis,
    /// With two seeds or more: how well the first two stand-alone trainings agree (the noise
    /// floor of the comparison).
    #[serde(default)]
    pub seed_agreement: Option<SeedAgreement>,
    /// The members, in selection order.
    pub results: Vec<CorrelatedMember>,
    /// Where `correlate.json` (every figure) and its plot are.
    pub out_dir: PathBuf,
    /// Hypervolume of the search's front (its members in this correlation) by the supernet's
    /// accuracies and by the same members' stand-alone accuracies; `None` when the space has no
    /// hypervolume reference.
    pub front_hypervolume: Option<FrontHypervolume>,
    /// Wall time of this correlation (seconds, summed over resumes).
    #[serde(default)]
    pub seconds: Option<f64>,
}

/// The hypervolume of a search's front, measured two ways on the same images.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct FrontHypervolume {
    /// With the supernet's accuracies (what the search hands the user).
    pub supernet: f64,
    /// With the front members' stand-alone accuracies (what they are worth trained alone).
    pub alone: f64,
}

/// The hypervolume (reference and axes as `qnas search`'s) of `(accuracy, BitOps)` points.
fn hypervolume_of(space: &Space, points: impl Iterator<Item = (f64, u64)>) -> Option<f64> {
    let reference = HvReference::for_space(space).ok()?;
    let pts: Vec<Point> = points
        .filter(|(a, _)| a.is_finite())
        .map(|(a, b)| Point::new(a, b))
        .collect();
    Some(hypervolume(&pts, &reference))
}

impl CorrelationResult {
    fn from_report(
        space: &Space,
        label: &str,
        seed: u64,
        asked: usize,
        r: &CorrelateReport,
    ) -> Self {
        let front = || r.results.iter().filter(|m| m.front);
        let front_hypervolume = match (
            hypervolume_of(space, front().map(|m| (m.supernet.accuracy, m.bitops))),
            hypervolume_of(space, front().map(|m| (m.alone.accuracy, m.bitops))),
        ) {
            (Some(supernet), Some(alone)) => Some(FrontHypervolume { supernet, alone }),
            _ => None,
        };
        CorrelationResult {
            front_hypervolume,
            label: label.to_string(),
            seed,
            asked,
            members: r.members,
            steps: r.steps,
            seeds: r.seeds,
            split: r.split.name().to_string(),
            images: r.images,
            analysis: r.analysis.clone(),
            seed_agreement: r.seed_agreement.clone(),
            results: r
                .results
                .iter()
                .map(|m| CorrelatedMember {
                    front: m.front,
                    bitops: m.bitops,
                    supernet: m.supernet.accuracy,
                    alone: m.alone.accuracy,
                    origin: m.origin.to_string(),
                })
                .collect(),
            out_dir: r.out_dir.clone(),
            seconds: None,
        }
    }
}

/// What a correlation of the experiment runs on.
#[derive(Debug)]
pub struct CorrelationJob<'a> {
    /// The plan.
    pub planned: &'a PlannedCorrelation,
    /// The search's label and the seed whose members are compared.
    pub label: &'a str,
    /// The search's seed.
    pub seed: u64,
    /// The space file and the space.
    pub file: &'a Path,
    /// The space.
    pub space: &'a Space,
    /// The space's run folder.
    pub run_dir: &'a Path,
    /// The search's output folder.
    pub search_dir: &'a Path,
    /// The experiment's runs folder (stand-alone trainings are shared under it).
    pub runs: &'a Path,
    /// Steps alone.
    pub steps: u64,
}

/// The folder of the stand-alone trainings of `space`'s members: one per data set and
/// training recipe ([`correlate::recipe_key`], the key `qnas correlate` names each member's
/// training by), shared by the experiment's spaces that differ only in how their supernet is
/// trained (a member alone is trained without sampling, distillation or a mixture, for the
/// steps its folder's name carries).
pub fn alone_root(runs: &Path, space: &Space) -> PathBuf {
    runs.join("alone")
        .join(format!("{:08x}", correlate::recipe_key(space)))
}

/// Runs one correlation, or reads back its saved summary (`true`); [`save`] saves one.
///
/// # Errors
/// What `qnas correlate` fails with.
pub fn run(
    job: &CorrelationJob<'_>,
    device: &Device,
    progress: &mut dyn CorrelateProgress,
) -> Result<(CorrelationResult, bool), CorrelateError> {
    let out_dir = job.run_dir.join("correlations").join(job.label);
    let summary = out_dir.join(SUMMARY_FILE);
    if let Some(r) = std::fs::read(&summary)
        .ok()
        .and_then(|b| serde_json::from_slice::<CorrelationResult>(&b).ok())
        .filter(|r| r.seed == job.seed && r.steps == job.steps && r.seeds == job.planned.seeds)
        .filter(|r| r.asked == job.planned.members)
    {
        return Ok((r, true));
    }
    let mut opts = CorrelateOptions {
        target: job.file.to_path_buf(),
        run_dir: Some(job.run_dir.to_path_buf()),
        members: job.planned.members,
        steps: Some(job.steps),
        seeds: job.planned.seeds,
        jobs: None,
        top_k: None,
        replicates: 2000,
        seed: 0,
        split: None,
        device: device.clone(),
        folders: CorrelateFolders {
            search: Some(job.search_dir.to_path_buf()),
            out: Some(out_dir.clone()),
            alone: Some(alone_root(job.runs, job.space)),
        },
    };
    let report = match correlate::correlate(&opts, progress) {
        // a search that measured fewer distinct members than asked: all of them
        Err(CorrelateError::Select(SelectError::TooMany { available, .. }))
            if available >= correlate::MIN_MEMBERS =>
        {
            progress.note(&format!(
                "{}: the search measured {available} distinct members; all of them are compared",
                job.label
            ));
            opts.members = available;
            correlate::correlate(&opts, progress)?
        }
        // a front larger than asked: every front member is compared
        Err(CorrelateError::Select(SelectError::BelowFront { front, .. })) => {
            progress.note(&format!(
                "{}: the front has {front} members; all of them are compared",
                job.label
            ));
            opts.members = front;
            correlate::correlate(&opts, progress)?
        }
        r => r?,
    };
    Ok((
        CorrelationResult::from_report(
            job.space,
            job.label,
            job.seed,
            job.planned.members,
            &report,
        ),
        false,
    ))
}

/// Writes `r`'s summary, which a rerun reads back instead of correlating again.
pub fn save(r: &CorrelationResult) -> Result<(), IoError> {
    write_json_atomic(&r.out_dir.join(SUMMARY_FILE), r)
}

fn est(e: Option<&Estimate>) -> String {
    with_interval(e)
}

fn points(e: Option<&Estimate>) -> String {
    correlate::signed_points(e, "").unwrap_or_else(|| "–".into())
}

/// The report's section on the correlations.
pub fn markdown(s: &mut String, correlations: &[CorrelationResult], out: &Path) {
    if correlations.is_empty() {
        return;
    }
    let _ = writeln!(s, "\n## Rank correlation against stand-alone training\n");
    let _ = writeln!(
        s,
        "Members of each search (its first seed: every front member, then members spread over \
         cost and accuracy) trained alone from scratch with the space's recipe, no \
         distillation; both accuracies on the same images after the same BN recalibration. \
         Intervals: 95%, 2,000 bootstrap replicates over the images and the members (`qnas \
         correlate`'s). Each search's own members: the sets differ between searches.\n"
    );
    let _ = writeln!(
        s,
        "| search | members | steps alone | images | Kendall tau-b | noise floor: tau-b seed 0 vs 1 alone | Spearman rho | median gap, points | median front gap | front within 3 points | front hypervolume: supernet / alone | wall time | every figure |"
    );
    let _ = writeln!(s, "|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    for c in correlations {
        let a = &c.analysis;
        let rel = c.out_dir.strip_prefix(out).map_or_else(
            |_| c.out_dir.display().to_string(),
            |p| p.display().to_string(),
        );
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} {} | {} | {} | {} | {} | {} | {} of {} | {} | {} | `{}/correlate.json` |",
            c.label,
            c.members,
            c.steps,
            c.images,
            c.split,
            est(a.kendall_tau_b.as_ref()),
            c.seed_agreement.as_ref().map_or_else(
                || "– (one seed)".to_string(),
                |sa| est(sa.kendall_tau_b.as_ref())
            ),
            est(a.spearman_rho.as_ref()),
            points(a.median_gap.as_ref()),
            points(a.median_front_gap.as_ref()),
            a.front_within_3_points,
            a.front_members,
            c.front_hypervolume.map_or("–".into(), |h| format!(
                "{:.4} / {:.4}",
                h.supernet, h.alone
            )),
            c.seconds.map_or("–".into(), |x| format!("{x:.0} s")),
            rel
        );
    }
    for c in correlations {
        let _ = writeln!(s, "\n**{}** (seed {}):\n", c.label, c.seed);
        let _ = writeln!(
            s,
            "| front | BitOps | supernet | alone | gap, points | from |"
        );
        let _ = writeln!(s, "|---|---|---|---|---|---|");
        for m in &c.results {
            let _ = writeln!(
                s,
                "| {} | {:.3e} | {:.2}% | {:.2}% | {:+.2} | {} |",
                if m.front { "yes" } else { "" },
                m.bitops as f64,
                m.supernet * 100.0,
                m.alone * 100.0,
                (m.supernet - m.alone) * 100.0,
                m.origin
            );
        }
    }
}

/// The outcome of a check on the fronts' stand-alone hypervolumes: `better`'s above `worse`'s.
pub fn alone_hypervolume_outcome(
    better: &str,
    worse: &str,
    correlations: &[CorrelationResult],
) -> Vec<Outcome> {
    let find = |l: &str| {
        correlations
            .iter()
            .find(|c| c.label == l)
            .and_then(|c| c.front_hypervolume)
    };
    let (Some(b), Some(w)) = (find(better), find(worse)) else {
        return Vec::new();
    };
    vec![Outcome {
        held: b.alone > w.alone,
        detail: format!(
            "trained alone {:.4} / {:.4} (by the supernet {:.4} / {:.4})",
            b.alone, w.alone, b.supernet, w.supernet
        ),
    }]
}

/// The outcome of a Kendall tau check: `better`'s tau-b above `worse`'s, and outside its
/// interval (a difference inside the intervals is not a result).
pub fn tau_outcome(better: &str, worse: &str, correlations: &[CorrelationResult]) -> Vec<Outcome> {
    let find = |l: &str| correlations.iter().find(|c| c.label == l);
    let (Some(b), Some(w)) = (find(better), find(worse)) else {
        return Vec::new();
    };
    let (Some(tb), Some(tw)) = (&b.analysis.kendall_tau_b, &w.analysis.kendall_tau_b) else {
        return vec![Outcome {
            held: false,
            detail: "tau-b undefined (tied accuracies)".into(),
        }];
    };
    let inside = match (tb.interval, tw.interval) {
        (Some(ib), Some(iw)) => ib.contains(tw.value) || iw.contains(tb.value),
        _ => true,
    };
    vec![Outcome {
        held: tb.value > tw.value && !inside,
        detail: format!(
            "tau-b {} / {}{}",
            with_interval(Some(tb)),
            with_interval(Some(tw)),
            match (inside, tb.value > tw.value) {
                (true, true) => " (higher, but inside the other's interval: not a result)",
                (true, false) => " (not higher, and inside the other's interval)",
                _ => "",
            }
        ),
    }]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn preset() -> Space {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../spaces/presets/mnist.ron");
        Space::load(&path).unwrap()
    }

    #[test]
    fn stand_alone_trainings_are_shared_only_between_equal_recipes() {
        let runs = Path::new("runs/x");
        let a = preset();
        let mut b = a.clone();
        b.train.sampling = spaces::Sampling::Uniform;
        b.train.distill = !a.train.distill;
        b.train.mixture.supernets = 4;
        b.train.steps *= 4;
        assert_eq!(alone_root(runs, &a), alone_root(runs, &b));
        let mut c = a.clone();
        c.train.seed += 1;
        assert_ne!(alone_root(runs, &a), alone_root(runs, &c));
        let mut d = a.clone();
        d.train.batch_size *= 2;
        assert_ne!(alone_root(runs, &a), alone_root(runs, &d));
        let mut e = a.clone();
        e.data.as_mut().unwrap().seed += 1;
        assert_ne!(alone_root(runs, &a), alone_root(runs, &e));
    }

    fn with_tau(label: &str, tau: Option<(f64, f64, f64)>) -> CorrelationResult {
        let estimate = tau
            .map(|(v, lo, hi)| serde_json::json!({"value": v, "interval": {"lo": lo, "hi": hi}}));
        let analysis: Analysis = serde_json::from_value(serde_json::json!({
            "confidence": 0.95, "replicates": 100, "kendall_tau_b": estimate,
            "spearman_rho": null, "top_k": 1, "top_k_overlap": null, "gaps": [], "alone": [],
            "median_gap": null, "median_front_gap": null, "max_abs_front_gap": null,
            "front_within_3_points": 0, "front_members": 0
        }))
        .unwrap();
        CorrelationResult {
            label: label.into(),
            seed: 0,
            asked: 3,
            members: 3,
            steps: 10,
            seeds: 1,
            split: "test".into(),
            images: 100,
            analysis,
            seed_agreement: None,
            results: Vec::new(),
            out_dir: PathBuf::new(),
            front_hypervolume: None,
            seconds: None,
        }
    }

    #[test]
    fn the_tau_check_holds_only_outside_the_intervals() {
        let c = [
            with_tau("a", Some((0.8, 0.7, 0.9))),
            with_tau("b", Some((0.3, 0.1, 0.5))),
            with_tau("c", Some((0.6, 0.2, 0.85))),
            with_tau("d", None),
        ];
        let o = tau_outcome("a", "b", &c);
        assert!(
            o[0].held && !o[0].detail.contains("inside"),
            "{}",
            o[0].detail
        );
        let o = tau_outcome("b", "a", &c);
        assert!(!o[0].held);
        let o = tau_outcome("a", "c", &c);
        assert!(
            !o[0].held && o[0].detail.contains("inside"),
            "{}",
            o[0].detail
        );
        let o = tau_outcome("a", "d", &c);
        assert!(!o[0].held && o[0].detail.contains("undefined"));
        assert!(tau_outcome("a", "zzz", &c).is_empty());
    }
}
