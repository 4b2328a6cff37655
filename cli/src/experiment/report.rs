//! An experiment's figures and its `report.md`: each search's hypervolumes (with and without
//! the uniform baselines, and over its evaluations), the share of each weight format on its
//! front, the checks with their verdict, and the setup, wall times and machine.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use search::pareto::{HvReference, Point, hypervolume};
use search::plot::PlotError;
use search::plot::fronts::FrontsPlot;
use search::row::front_of;
use search::{Row, SearchReport};
use serde::{Deserialize, Serialize};
use spaces::Space;

use super::correlation::CorrelationResult;
use super::spec::{CheckKind, Experiment, PlannedSearch, UNIFORM};
use super::{Outcome, TrainResult};

/// One search of one seed.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SearchResult {
    /// Its label.
    pub label: String,
    /// The space's name in the experiment.
    pub space: String,
    /// The strategy's name.
    pub strategy: String,
    /// Its seed.
    pub seed: u64,
    /// Its budget.
    pub budget: u32,
    /// Members the strategy proposed and had measured (baselines apart).
    pub evaluated: usize,
    /// Hypervolume of the front of every member measured, baselines included.
    pub hypervolume: f64,
    /// Hypervolume of the front of the strategy's own members.
    pub strategy_hypervolume: f64,
    /// Hypervolume of the uniform baselines' front.
    pub uniform_hypervolume: f64,
    /// `(strategy members measured, hypervolume of their front)`, at 1, 2, 4, ... and the end.
    pub curve: Vec<(usize, f64)>,
    /// The front of every member measured, cheapest first.
    pub front: Vec<Row>,
    /// The front of the strategy's own members alone, cheapest first.
    pub own_front: Vec<Row>,
    /// The uniform baselines.
    pub baselines: Vec<Row>,
    /// Share of the front's MACs at each weight format (formats by name).
    pub format_share: BTreeMap<String, f64>,
    /// The search's folder.
    pub out_dir: PathBuf,
    /// Wall time, when this experiment ran it (seconds).
    pub seconds: Option<f64>,
}

fn hv(rows: &[Row], reference: &Option<HvReference>) -> f64 {
    match reference {
        Some(r) => {
            let pts: Vec<Point> = rows
                .iter()
                .filter(|r| r.accuracy.is_finite())
                .map(|r| Point::new(r.accuracy, r.bitops))
                .collect();
            hypervolume(&pts, r)
        }
        None => f64::NAN,
    }
}

/// The figures of one finished search (`rows` in the order they were evaluated).
#[allow(clippy::too_many_arguments)]
pub fn search_result(
    space: &Space,
    planned: &PlannedSearch,
    space_label: &str,
    seed: u64,
    report: &SearchReport,
    rows: &[Row],
    out_dir: PathBuf,
    seconds: Option<f64>,
) -> SearchResult {
    let reference = HvReference::for_space(space).ok();
    let own: Vec<Row> = rows
        .iter()
        .filter(|r| !r.origin.is_baseline())
        .cloned()
        .collect();
    let mut curve = Vec::new();
    let mut k = 1;
    while k < own.len() {
        curve.push((k, hv(&own[..k], &reference)));
        k *= 2;
    }
    if !own.is_empty() {
        curve.push((own.len(), hv(&own, &reference)));
    }
    let mut macs_by_format: BTreeMap<String, f64> = BTreeMap::new();
    let mut total = 0.0;
    for r in &report.front {
        if let Ok(plan) = space.plan(&r.arch) {
            for l in spaces::cost::layer_costs(&plan) {
                *macs_by_format.entry(l.weights.clone()).or_default() += l.macs as f64;
                total += l.macs as f64;
            }
        }
    }
    let format_share = macs_by_format
        .into_iter()
        .map(|(f, m)| (f, if total > 0.0 { m / total } else { 0.0 }))
        .collect();
    SearchResult {
        label: planned.spec.label.clone(),
        space: space_label.to_string(),
        strategy: search::origin::strategy_name(planned.spec.strategy).to_string(),
        seed,
        budget: planned.budget,
        evaluated: own.len(),
        hypervolume: report.hypervolume,
        strategy_hypervolume: hv(&own, &reference),
        uniform_hypervolume: hv(&report.baselines, &reference),
        curve,
        front: report.front.clone(),
        own_front: front_of(&own),
        baselines: report.baselines.clone(),
        format_share,
        out_dir,
        seconds,
    }
}

/// Whether a claim held.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Verdict {
    /// On every compared seed.
    Reproduced,
    /// On some seeds, or some checks.
    Partly,
    /// On none.
    NotReproduced,
}

impl Verdict {
    /// The verdict in words.
    pub fn text(self) -> &'static str {
        match self {
            Verdict::Reproduced => "reproduced",
            Verdict::Partly => "partly reproduced",
            Verdict::NotReproduced => "not reproduced",
        }
    }
}

/// One check and its outcome on every seed.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CheckResult {
    /// The claim.
    pub claim: String,
    /// How it was checked.
    pub check: CheckKind,
    /// One per compared seed (or pair of seeds).
    pub outcomes: Vec<Outcome>,
    /// Outcomes where the claim held.
    pub wins: usize,
    /// The verdict.
    pub verdict: Verdict,
}

/// The hypervolumes a side of a check stands for, one per seed: a search's strategy members,
/// or the uniform baselines (measured with `other`'s searches, on their space).
fn side(label: &str, other: &str, results: &[SearchResult]) -> Vec<f64> {
    if label == UNIFORM {
        return results
            .iter()
            .filter(|r| r.label == other)
            .map(|r| r.uniform_hypervolume)
            .take(1)
            .collect();
    }
    results
        .iter()
        .filter(|r| r.label == label)
        .map(|r| r.strategy_hypervolume)
        .collect()
}

/// Whether `a` dominates `b` (at most its BitOps and at least its accuracy, one strictly).
fn dominates(a: &Row, b: &Row) -> bool {
    a.bitops <= b.bitops
        && a.accuracy >= b.accuracy
        && (a.bitops < b.bitops || a.accuracy > b.accuracy)
}

/// The outcomes of one check.
fn outcomes(
    check: &CheckKind,
    results: &[SearchResult],
    correlations: &[CorrelationResult],
) -> Vec<Outcome> {
    match check {
        CheckKind::KendallTau { better, worse } => {
            super::correlation::tau_outcome(better, worse, correlations)
        }
        CheckKind::AloneHypervolume { better, worse } => {
            super::correlation::alone_hypervolume_outcome(better, worse, correlations)
        }
        CheckKind::Hypervolume { better, worse } => {
            let b = side(better, worse, results);
            let w = side(worse, better, results);
            let pairs: Vec<(f64, f64)> = match (b.len(), w.len()) {
                (0, _) | (_, 0) => Vec::new(),
                (1, n) => (0..n).map(|i| (b[0], w[i])).collect(),
                (n, 1) => (0..n).map(|i| (b[i], w[0])).collect(),
                (n, m) => (0..n.min(m)).map(|i| (b[i], w[i])).collect(),
            };
            pairs
                .into_iter()
                .map(|(x, y)| Outcome {
                    held: x > y,
                    detail: format!("{x:.4} / {y:.4}"),
                })
                .collect()
        }
        CheckKind::FormatShare {
            search,
            bits,
            at_least,
        } => results
            .iter()
            .filter(|r| &r.label == search)
            .map(|r| {
                let share: f64 = r
                    .format_share
                    .iter()
                    .filter(|(f, _)| f.parse::<spaces::Format>().is_ok_and(|f| f.bits() == *bits))
                    .map(|(_, v)| v)
                    .sum();
                Outcome {
                    held: share >= *at_least,
                    detail: format!("seed {}: {:.0}% at {bits} bits", r.seed, share * 100.0),
                }
            })
            .collect(),
        CheckKind::Dominated { search, format } => results
            .iter()
            .filter(|r| &r.label == search)
            .map(|r| {
                let of: Vec<&Row> = r
                    .baselines
                    .iter()
                    .filter(|b| match &b.origin {
                        search::Origin::Baseline { format: f, .. } => f.to_string() == *format,
                        _ => false,
                    })
                    .collect();
                let undominated: Vec<String> = of
                    .iter()
                    .filter(|b| !r.own_front.iter().any(|m| dominates(m, b)))
                    .map(|b| search::plot::baseline_label(&b.origin))
                    .collect();
                Outcome {
                    held: !of.is_empty() && undominated.is_empty(),
                    detail: if of.is_empty() {
                        format!("seed {}: no {format} baseline", r.seed)
                    } else if undominated.is_empty() {
                        format!("seed {}: all {} dominated", r.seed, of.len())
                    } else {
                        format!("seed {}: not dominated: {}", r.seed, undominated.join(", "))
                    },
                }
            })
            .collect(),
    }
}

/// The experiment's checks.
pub fn checks(
    exp: &Experiment,
    results: &[SearchResult],
    correlations: &[CorrelationResult],
) -> Vec<CheckResult> {
    exp.spec
        .checks
        .iter()
        .map(|c| {
            let outcomes = outcomes(&c.check, results, correlations);
            let wins = outcomes.iter().filter(|o| o.held).count();
            let verdict = if !outcomes.is_empty() && wins == outcomes.len() {
                Verdict::Reproduced
            } else if wins == 0 {
                Verdict::NotReproduced
            } else {
                Verdict::Partly
            };
            CheckResult {
                claim: c.claim.clone(),
                check: c.check.clone(),
                outcomes,
                wins,
                verdict,
            }
        })
        .collect()
}

/// The verdict over all checks: reproduced when every check is, not reproduced when none is
/// even partly, partly otherwise; `None` without checks.
pub fn verdict(checks: &[CheckResult]) -> Option<Verdict> {
    if checks.is_empty() {
        return None;
    }
    Some(if checks.iter().all(|c| c.verdict == Verdict::Reproduced) {
        Verdict::Reproduced
    } else if checks.iter().all(|c| c.verdict == Verdict::NotReproduced) {
        Verdict::NotReproduced
    } else {
        Verdict::Partly
    })
}

/// The plot of the fronts (first seed of each search) and the uniform baselines, written as
/// `fronts.svg` and `fronts.png` into `out`.
pub fn plot(exp: &Experiment, results: &[SearchResult], out: &Path) -> Result<(), PlotError> {
    let mut series: Vec<(String, Vec<Row>)> = Vec::new();
    for p in &exp.searches {
        if let Some(r) = results.iter().find(|r| r.label == p.spec.label) {
            series.push((
                format!("{} (seed {})", r.label, r.seed),
                r.own_front.clone(),
            ));
        }
    }
    let uniform = results
        .first()
        .map(|r| front_of(&r.baselines))
        .unwrap_or_default();
    let figure = FrontsPlot {
        series: &series,
        uniform: &uniform,
        title: &exp.spec.name,
    };
    search::plot::write(out, "fronts", &figure)
}

fn mean_range(v: &[f64]) -> String {
    if v.is_empty() {
        return "–".into();
    }
    let mean = v.iter().sum::<f64>() / v.len() as f64;
    if v.len() == 1 {
        return format!("{mean:.4}");
    }
    let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    format!("{mean:.4} [{lo:.4}, {hi:.4}]")
}

/// Days since 1970-01-01 to a civil date (proleptic Gregorian).
fn civil(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// Now, as `YYYY-MM-DD HH:MM UTC`.
fn now_utc() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let (y, m, d) = civil(secs.div_euclid(86_400));
    let s = secs.rem_euclid(86_400);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02} UTC",
        s / 3600,
        s % 3600 / 60
    )
}

/// The machine in one line: CPU model, cores, load average.
fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|s| s.trim().to_string())
        })
        .unwrap_or_else(|| std::env::consts::ARCH.to_string());
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let load = std::fs::read_to_string("/proc/loadavg")
        .ok()
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|| "unknown".into());
    format!("{cpu}, {cores} cores; load average at the end {load}")
}

fn pct(x: f64) -> String {
    format!("{:.2}%", x * 100.0)
}

/// The most accurate of a search's own members at or under `bitops`.
fn best_within(rows: &[Row], bitops: u64) -> Option<f64> {
    rows.iter()
        .filter(|m| !m.origin.is_baseline() && m.bitops <= bitops && m.accuracy.is_finite())
        .map(|m| m.accuracy)
        .fold(None, |a: Option<f64>, x| Some(a.map_or(x, |a| a.max(x))))
}

/// The tables "at each uniform baseline's BitOps", one per space: the baseline's accuracy and,
/// per search of that space, the best of its own front members at or under those BitOps (mean
/// over seeds), in points against the baseline.
fn equal_bitops(s: &mut String, exp: &Experiment, results: &[SearchResult]) {
    for (index, (space, _)) in exp.spaces.iter().enumerate() {
        let Some(first) = results.iter().find(|r| &r.space == space) else {
            continue;
        };
        let labels: Vec<&str> = exp
            .searches
            .iter()
            .filter(|p| p.space == index)
            .map(|p| p.spec.label.as_str())
            .collect();
        let _ = writeln!(
            s,
            "\nAt each uniform baseline's BitOps (space {space}, its supernet's measurement of the \
             baselines): the most accurate of each search's own members at or under them, mean \
             over seeds, and its difference from the baseline in points (– where a search has no \
             member that cheap):\n"
        );
        let _ = write!(s, "| baseline | BitOps | accuracy |");
        for l in &labels {
            let _ = write!(s, " {l} |");
        }
        let _ = writeln!(s, "\n|---|---|---|{}", "---|".repeat(labels.len()));
        let mut base = first.baselines.clone();
        base.sort_by_key(|b| b.bitops);
        for b in &base {
            let _ = write!(
                s,
                "| {} | {:.3e} | {} |",
                search::plot::baseline_label(&b.origin),
                b.bitops as f64,
                pct(b.accuracy)
            );
            for l in &labels {
                let v: Vec<f64> = results
                    .iter()
                    .filter(|r| r.label == *l)
                    .filter_map(|r| best_within(&r.own_front, b.bitops))
                    .collect();
                let n = results.iter().filter(|r| r.label == *l).count();
                let _ = write!(
                    s,
                    " {} |",
                    if v.len() == n && n > 0 {
                        let m = v.iter().sum::<f64>() / n as f64;
                        format!("{} ({:+.2})", pct(m), (m - b.accuracy) * 100.0)
                    } else {
                        "–".into()
                    }
                );
            }
            let _ = writeln!(s);
        }
    }
}

/// A table of members: BitOps, accuracy, its interval and their origin (under `last`).
fn rows_table(s: &mut String, last: &str, rows: &[Row]) {
    let _ = writeln!(s, "| BitOps | accuracy | 95% interval | {last} |");
    let _ = writeln!(s, "|---|---|---|---|");
    for m in rows {
        let _ = writeln!(
            s,
            "| {:.3e} | {} | {} | {} |",
            m.bitops as f64,
            pct(m.accuracy),
            m.interval
                .map_or("–".into(), |i| format!("[{}, {}]", pct(i.lo), pct(i.hi))),
            m.origin
        );
    }
}

/// `report.md`.
#[allow(clippy::too_many_arguments)]
pub fn markdown(
    exp: &Experiment,
    trainings: &[TrainResult],
    results: &[SearchResult],
    correlations: &[CorrelationResult],
    checks: &[CheckResult],
    verdict: Option<Verdict>,
    plot: &Path,
    out: &Path,
) -> String {
    let mut s = String::new();
    let spec = &exp.spec;
    let _ = writeln!(
        s,
        "# Experiment {}{}\n",
        spec.name,
        if exp.quick { " (quick version)" } else { "" }
    );
    let _ = writeln!(s, "**Claim.** {}", spec.claim);
    if let Some(src) = &spec.source {
        let _ = writeln!(s, "\n**Source.** {src}");
    }
    if let Some(v) = verdict {
        let _ = writeln!(s, "\n**Verdict: {}.**", v.text());
    }
    let _ = writeln!(
        s,
        "\n**Command.** `qnas experiment {}{}` (written by it, {}; {}).",
        exp.file.display(),
        if exp.quick { " --quick" } else { "" },
        now_utc(),
        machine()
    );
    let total: f64 = trainings.iter().filter_map(|t| t.seconds).sum::<f64>()
        + results.iter().filter_map(|r| r.seconds).sum::<f64>()
        + correlations.iter().filter_map(|c| c.seconds).sum::<f64>();
    let _ = writeln!(
        s,
        "\n**Wall time.** {:.1} minutes: every training, search and correlation this experiment \
         ran, summed over its runs and resumes (the tables give each stage's).",
        total / 60.0
    );
    let _ = writeln!(s, "\n## Setup\n");
    let _ = writeln!(
        s,
        "| space | file | training steps | run folder | training wall time |"
    );
    let _ = writeln!(s, "|---|---|---|---|---|");
    for t in trainings {
        let written = spec
            .spaces
            .iter()
            .find(|x| x.name == t.space)
            .map_or_else(|| t.file.clone(), |x| x.file.clone());
        let _ = writeln!(
            s,
            "| {} | `{}` | {} | `{}` | {} |",
            t.space,
            written.display(),
            t.steps,
            t.run_dir.display(),
            t.seconds.map_or("–".into(), |x| format!("{x:.0} s"))
        );
    }
    let _ = writeln!(s, "\n| search | space | strategy | budget | seeds |");
    let _ = writeln!(s, "|---|---|---|---|---|");
    for p in &exp.searches {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} |",
            p.spec.label,
            exp.spaces[p.space].0,
            search::origin::strategy_name(p.spec.strategy),
            p.budget,
            p.seeds
                .iter()
                .map(u64::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    let _ = writeln!(
        s,
        "\nHypervolume: of the (log BitOps, accuracy) front on normalized axes, reference at the \
         space's largest BitOps and accuracy 0 (`qnas search`'s), from the validation accuracies \
         the search measured (400 images in the default space: ±2 points per member at 95%)."
    );
    let _ = writeln!(s, "\n## Results\n");
    let _ = writeln!(
        s,
        "| search | strategy's members: hypervolume, mean [min, max] over seeds | with the baselines | uniform baselines alone | members measured | front members | wall time per seed |"
    );
    let _ = writeln!(s, "|---|---|---|---|---|---|---|");
    for p in &exp.searches {
        let rs: Vec<&SearchResult> = results.iter().filter(|r| r.label == p.spec.label).collect();
        let col = |f: &dyn Fn(&SearchResult) -> f64| {
            mean_range(&rs.iter().map(|r| f(r)).collect::<Vec<_>>())
        };
        let secs: Vec<f64> = rs.iter().filter_map(|r| r.seconds).collect();
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} | {} |",
            p.spec.label,
            col(&|r| r.strategy_hypervolume),
            col(&|r| r.hypervolume),
            col(&|r| r.uniform_hypervolume),
            rs.iter()
                .map(|r| r.evaluated.to_string())
                .collect::<Vec<_>>()
                .join(", "),
            rs.iter()
                .map(|r| r.front.len().to_string())
                .collect::<Vec<_>>()
                .join(", "),
            if secs.is_empty() {
                "–".into()
            } else {
                format!("{:.0} s", secs.iter().sum::<f64>() / secs.len() as f64)
            }
        );
    }
    // hypervolume against evaluations
    let mut ks: Vec<usize> = results
        .iter()
        .flat_map(|r| r.curve.iter().map(|(k, _)| *k))
        .filter(|k| k.is_power_of_two())
        .collect();
    ks.sort_unstable();
    ks.dedup();
    if !ks.is_empty() {
        let _ = writeln!(
            s,
            "\nHypervolume of the strategy's members against the number measured (mean over seeds):\n"
        );
        let _ = write!(s, "| search |");
        for k in &ks {
            let _ = write!(s, " {k} |");
        }
        let _ = writeln!(s, " all |");
        let _ = writeln!(s, "|---|{}---|", "---|".repeat(ks.len()));
        for p in &exp.searches {
            let rs: Vec<&SearchResult> =
                results.iter().filter(|r| r.label == p.spec.label).collect();
            let _ = write!(s, "| {} |", p.spec.label);
            for k in &ks {
                let v: Vec<f64> = rs
                    .iter()
                    .filter_map(|r| r.curve.iter().find(|(j, _)| j == k).map(|(_, h)| *h))
                    .collect();
                let _ = write!(
                    s,
                    " {} |",
                    if v.len() == rs.len() && !v.is_empty() {
                        format!("{:.4}", v.iter().sum::<f64>() / v.len() as f64)
                    } else {
                        "–".into()
                    }
                );
            }
            let all: Vec<f64> = rs.iter().map(|r| r.strategy_hypervolume).collect();
            let _ = writeln!(s, " {} |", mean_range(&all));
        }
    }
    let rel = plot
        .strip_prefix(out)
        .map_or_else(|_| plot.display().to_string(), |p| p.display().to_string());
    let _ = writeln!(s, "\n![fronts]({rel})");
    equal_bitops(&mut s, exp, results);
    // the fronts
    let _ = writeln!(s, "\n## Fronts (first seed of each search)\n");
    for p in &exp.searches {
        let Some(r) = results.iter().find(|r| r.label == p.spec.label) else {
            continue;
        };
        let _ = writeln!(s, "**{}** (seed {}):\n", r.label, r.seed);
        rows_table(&mut s, "from", &r.front);
        let share: Vec<String> = r
            .format_share
            .iter()
            .filter(|(_, v)| **v > 0.0)
            .map(|(f, v)| {
                if *v < 0.01 {
                    format!("{f} {:.2}%", v * 100.0)
                } else {
                    format!("{f} {:.0}%", v * 100.0)
                }
            })
            .collect();
        let _ = writeln!(
            s,
            "\nShare of the front's MACs by weight format: {}.\n",
            share.join(", ")
        );
    }
    for r in exp
        .spaces
        .iter()
        .filter_map(|(name, _)| results.iter().find(|r| &r.space == name))
    {
        let _ = writeln!(s, "**Uniform baselines** ({} space):\n", r.space);
        rows_table(&mut s, "member", &r.baselines);
        let _ = writeln!(s);
    }
    super::correlation::markdown(&mut s, correlations, out);
    if !checks.is_empty() {
        let _ = writeln!(s, "\n## Checks\n");
        let _ = writeln!(s, "| claim | check | measured | verdict |");
        let _ = writeln!(s, "|---|---|---|---|");
        for c in checks {
            let how = match &c.check {
                CheckKind::Hypervolume { better, worse } => {
                    format!("hypervolume of {better} over {worse} (per seed: {better} / {worse})")
                }
                CheckKind::FormatShare {
                    search,
                    bits,
                    at_least,
                } => format!(
                    "at least {:.0}% of {search}'s front MACs at {bits}-bit weights",
                    at_least * 100.0
                ),
                CheckKind::KendallTau { better, worse } => {
                    format!("Kendall tau-b against stand-alone training, {better} over {worse}")
                }
                CheckKind::AloneHypervolume { better, worse } => format!(
                    "hypervolume of the front members' stand-alone accuracies (first seed), {better} over {worse}"
                ),
                CheckKind::Dominated { search, format } => {
                    format!("every uniform {format} baseline dominated by {search}'s own front")
                }
            };
            let _ = writeln!(
                s,
                "| {} | {how} | {} | {} ({} of {}) |",
                c.claim,
                c.outcomes
                    .iter()
                    .map(|o| o.detail.clone())
                    .collect::<Vec<_>>()
                    .join("; "),
                c.verdict.text(),
                c.wins,
                c.outcomes.len()
            );
        }
        let _ = writeln!(
            s,
            "\nChecks use the searches' point estimates; a hypervolume difference in the third \
             decimal, or an accuracy difference of a point, is within the members' intervals and \
             is not a result on its own."
        );
    }
    if let Some(d) = &spec.discussion {
        let _ = writeln!(
            s,
            "\n## Discussion{}\n\n{}",
            if exp.quick {
                " (of the full run, not of this quick one)"
            } else {
                ""
            },
            d.trim()
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates_match_known_days() {
        assert_eq!(civil(0), (1970, 1, 1));
        assert_eq!(civil(11_016), (2000, 2, 29));
        assert_eq!(civil(20_790), (2026, 12, 3));
    }
}
