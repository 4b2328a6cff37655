//! An experiment's figures and its `report.md`: each search's hypervolumes (with and without
//! the uniform baselines, and over its evaluations), the share of each weight format on its
//! front, the checks with their verdict, and the setup, wall times and machine.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use search::pareto::{HvReference, Point, hypervolume};
use search::row::front_of;
use search::{Row, SearchReport};
use serde::{Deserialize, Serialize};
use spaces::Space;

use super::TrainResult;
use super::spec::{Experiment, PlannedSearch, UNIFORM};

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

/// One check: `better`'s hypervolume against `worse`'s, pair by pair of seeds.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CheckResult {
    /// The claim.
    pub claim: String,
    /// The side claimed better.
    pub better: String,
    /// The other side.
    pub worse: String,
    /// `(better, worse)` hypervolumes of each compared pair.
    pub pairs: Vec<(f64, f64)>,
    /// Pairs where `better` was strictly higher.
    pub wins: usize,
    /// The verdict.
    pub verdict: Verdict,
}

/// The hypervolumes a side of a check stands for, one per seed: a search's strategy members,
/// or the uniform baselines (measured with `other`'s searches, on their space).
fn side(label: &str, other: &str, results: &[SearchResult]) -> Vec<f64> {
    if label == UNIFORM {
        let of = results
            .iter()
            .filter(|r| r.label == other)
            .map(|r| r.uniform_hypervolume)
            .collect::<Vec<_>>();
        return of.into_iter().take(1).collect();
    }
    results
        .iter()
        .filter(|r| r.label == label)
        .map(|r| r.strategy_hypervolume)
        .collect()
}

/// The experiment's checks (see [`CheckResult`]); a side with one value is compared with every
/// value of the other.
pub fn checks(exp: &Experiment, _spaces: &[Space], results: &[SearchResult]) -> Vec<CheckResult> {
    exp.spec
        .checks
        .iter()
        .map(|c| {
            let b = side(&c.better, &c.worse, results);
            let w = side(&c.worse, &c.better, results);
            let pairs: Vec<(f64, f64)> = match (b.len(), w.len()) {
                (0, _) | (_, 0) => Vec::new(),
                (1, n) => (0..n).map(|i| (b[0], w[i])).collect(),
                (n, 1) => (0..n).map(|i| (b[i], w[0])).collect(),
                (n, m) => (0..n.min(m)).map(|i| (b[i], w[i])).collect(),
            };
            let wins = pairs.iter().filter(|(x, y)| x > y).count();
            let verdict = if !pairs.is_empty() && wins == pairs.len() {
                Verdict::Reproduced
            } else if wins == 0 {
                Verdict::NotReproduced
            } else {
                Verdict::Partly
            };
            CheckResult {
                claim: c.claim.clone(),
                better: c.better.clone(),
                worse: c.worse.clone(),
                pairs,
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

/// The plot of the fronts (first seed of each search) and the uniform baselines.
pub fn plot(exp: &Experiment, results: &[SearchResult]) -> String {
    let mut series: Vec<(String, Vec<Row>)> = Vec::new();
    for p in &exp.searches {
        if let Some(r) = results.iter().find(|r| r.label == p.spec.label) {
            series.push((format!("{} (seed {})", r.label, r.seed), r.own_front.clone()));
        }
    }
    let uniform = results
        .first()
        .map(|r| front_of(&r.baselines))
        .unwrap_or_default();
    super::plot::fronts_svg(&exp.spec.name, &series, &uniform)
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
    format!("{y:04}-{m:02}-{d:02} {:02}:{:02} UTC", s / 3600, s % 3600 / 60)
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

/// The table "at each uniform baseline's BitOps": the baseline's accuracy and, per search, the
/// best of its own front members at or under those BitOps (mean over seeds), in points against
/// the baseline.
fn equal_bitops(s: &mut String, exp: &Experiment, results: &[SearchResult]) {
    let Some(first) = results.first() else {
        return;
    };
    let labels: Vec<&str> = exp
        .searches
        .iter()
        .filter(|p| p.space == 0)
        .map(|p| p.spec.label.as_str())
        .collect();
    let _ = writeln!(
        s,
        "\nAt each uniform baseline's BitOps (space {}): the most accurate of each search's own \
         members at or under them, mean over seeds, and its difference from the baseline in \
         points (– where a search has no member that cheap):\n",
        first.space
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
            search::svg_plot::baseline_label(&b.origin),
            b.bitops as f64,
            pct(b.accuracy)
        );
        for l in &labels {
            let v: Vec<f64> = results
                .iter()
                .filter(|r| r.label == *l && r.space == first.space)
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

/// `report.md`.
pub fn markdown(
    exp: &Experiment,
    trainings: &[TrainResult],
    results: &[SearchResult],
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
    let _ = writeln!(s, "\n## Setup\n");
    let _ = writeln!(s, "| space | file | training steps | run folder | training wall time |");
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
        let col = |f: &dyn Fn(&SearchResult) -> f64| mean_range(&rs.iter().map(|r| f(r)).collect::<Vec<_>>());
        let secs: Vec<f64> = rs.iter().filter_map(|r| r.seconds).collect();
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} | {} |",
            p.spec.label,
            col(&|r| r.strategy_hypervolume),
            col(&|r| r.hypervolume),
            col(&|r| r.uniform_hypervolume),
            rs.iter().map(|r| r.evaluated.to_string()).collect::<Vec<_>>().join(", "),
            rs.iter().map(|r| r.front.len().to_string()).collect::<Vec<_>>().join(", "),
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
        let _ = writeln!(s, "| BitOps | accuracy | 95% interval | from |");
        let _ = writeln!(s, "|---|---|---|---|");
        for m in &r.front {
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
        let _ = writeln!(s, "\nShare of the front's MACs by weight format: {}.\n", share.join(", "));
    }
    if let Some(r) = results.first() {
        let _ = writeln!(s, "**Uniform baselines** ({} space):\n", r.space);
        let _ = writeln!(s, "| BitOps | accuracy | 95% interval | member |");
        let _ = writeln!(s, "|---|---|---|---|");
        for m in &r.baselines {
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
    if !checks.is_empty() {
        let _ = writeln!(s, "\n## Checks\n");
        let _ = writeln!(s, "| claim | better | worse | hypervolumes (better / worse) | verdict |");
        let _ = writeln!(s, "|---|---|---|---|---|");
        for c in checks {
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} ({} of {}) |",
                c.claim,
                c.better,
                c.worse,
                c.pairs
                    .iter()
                    .map(|(a, b)| format!("{a:.4} / {b:.4}"))
                    .collect::<Vec<_>>()
                    .join(", "),
                c.verdict.text(),
                c.wins,
                c.pairs.len()
            );
        }
        let _ = writeln!(
            s,
            "\nA check compares hypervolumes computed from point estimates; a difference in the \
             third decimal is within the members' intervals and is not a result on its own."
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
