//! `qnas search`: from a trained supernet, the Pareto front of validation accuracy versus
//! BitOps. Members are evaluated with inherited weights after BN recalibration (cached by arch),
//! a strategy proposes them (ask/tell), and the search state is saved after every batch so that
//! `--resume` continues it exactly. Nothing here prints.
//!
//! Outputs in `RUN/search/`: `state.json` (strategy state and every evaluation),
//! `evaluated.csv`, `pareto.json`, `pareto.csv`, `pareto.svg`.

use std::collections::HashMap;
use std::path::PathBuf;

use burn::module::Module;
use burn::tensor::Device;
use evaluators::Accuracy;
use evaluators::{EvalConfig, recalibrate_and_evaluate};
use serde::{Deserialize, Serialize};
use spaces::{Arch, Cost, Format, Space};
use stats::Interval;
use supernet::checkpoint;
use supernet::{Supernet, Trainer};

use crate::fsio::{IoError, write_atomic, write_json_atomic};
use crate::pareto::{HvReference, Point, hypervolume, pareto_front};
use crate::strategy::exhaustive::Exhaustive;
use crate::strategy::fliqs::{CostTarget, Fliqs, FliqsConfig};
use crate::strategy::nsga2::{Nsga2, Nsga2Config};
use crate::strategy::random::RandomSearch;
use crate::strategy::{Evaluation, Strategy, StrategyError, Trial};
use crate::train_cmd::{TrainCmdError, load_data, run_dir};

/// Schema tag of [`SearchReport`].
pub const SEARCH_SCHEMA: &str = "qnas.search/1";

/// Which strategy to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
pub enum StrategyKind {
    /// Uniform random members.
    Random,
    /// NSGA-II multi-objective evolution.
    Nsga2,
    /// Every member (small spaces).
    Exhaustive,
    /// FLIQS REINFORCE controller towards a BitOps target.
    Fliqs,
}

/// What to search and where.
#[derive(Clone, Debug)]
pub struct SearchOptions {
    /// The space file the supernet was trained on.
    pub file: PathBuf,
    /// Run folder (default `runs/<space name>`).
    pub run_dir: Option<PathBuf>,
    /// Strategy (overrides the file's `search.strategy`).
    pub strategy: Option<StrategyKind>,
    /// Members to evaluate besides the baselines, per target for FLIQS (overrides
    /// `search.budget`).
    pub budget: Option<usize>,
    /// Seed (overrides `search.seed`).
    pub seed: Option<u64>,
    /// FLIQS targets as fractions of the largest member's BitOps (overrides `search.targets`).
    pub targets: Option<Vec<f64>>,
    /// FLIQS training mode (or `search.fliqs_training`).
    pub fliqs_training: bool,
    /// Continue a saved search.
    pub resume: bool,
    /// Device.
    pub device: Device,
}

/// Receives progress.
pub trait SearchProgress {
    /// `done` of `total` members evaluated.
    fn evaluated(&mut self, done: usize, total: usize, last: &Row);
    /// A note.
    fn note(&mut self, message: &str);
}

/// One evaluated member.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Row {
    /// Where it came from: the strategy's name or `baseline <formats> <size>`.
    pub origin: String,
    /// The member.
    pub arch: Arch,
    /// Validation accuracy.
    pub accuracy: f64,
    /// BitOps.
    pub bitops: u64,
    /// MACs.
    pub macs: u64,
    /// Parameters.
    pub params: u64,
    /// Weight memory in bits.
    pub weight_bits: u64,
    /// Validation images the accuracy was measured on (0 when unknown: a search saved before
    /// intervals were recorded, or a member not measured yet).
    #[serde(default)]
    pub samples: usize,
    /// 95% Clopper-Pearson interval of the accuracy (from `samples`).
    #[serde(default)]
    pub interval: Option<Interval>,
}

impl Row {
    /// The row of `arch` with its costs and, when measured, its accuracy and interval (an
    /// unmeasured member's accuracy is NaN).
    pub fn new(origin: String, arch: Arch, cost: &Cost, acc: Option<Accuracy>) -> Row {
        Row {
            origin,
            arch,
            accuracy: acc.map_or(f64::NAN, Accuracy::top1),
            bitops: cost.bitops,
            macs: cost.macs,
            params: cost.params,
            weight_bits: cost.weight_bits,
            samples: acc.map_or(0, |a| a.total),
            interval: acc.map(Accuracy::interval),
        }
    }
}

/// The effective settings of a search: the file's `search` section with the command line's
/// overrides.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Settings {
    /// Strategy.
    pub strategy: StrategyKind,
    /// Budget (per target for FLIQS).
    pub budget: usize,
    /// Seed.
    pub seed: u64,
    /// FLIQS cost targets (fractions of the largest member's BitOps); one stage each. Other
    /// strategies run one stage.
    pub targets: Vec<f64>,
    /// FLIQS training mode (see [`spaces::SearchConfig::fliqs_training`]).
    pub fliqs_training: bool,
}

impl Settings {
    fn stages(&self) -> usize {
        if self.strategy == StrategyKind::Fliqs {
            self.targets.len()
        } else {
            1
        }
    }
}

/// The saved search.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct SearchState {
    fingerprint: String,
    settings: Settings,
    /// Stage (FLIQS target) in progress.
    stage: usize,
    strategy_state: serde_json::Value,
    rows: Vec<Row>,
}

/// The members a saved search evaluated (`OUT/state.json`, baselines included, in the order
/// they were evaluated), and whether it finished (it wrote `pareto.json`); `None` when no
/// search was saved there.
pub fn saved_rows(
    out_dir: &std::path::Path,
    space: &Space,
) -> Result<Option<(Vec<Row>, bool)>, SearchCmdError> {
    let path = out_dir.join("state.json");
    if !path.exists() {
        return Ok(None);
    }
    let saved = read_state(&path, space)?;
    Ok(Some((saved.rows, out_dir.join("pareto.json").exists())))
}

/// The saved search in `path`, checked to belong to `space`.
fn read_state(path: &std::path::Path, space: &Space) -> Result<SearchState, SearchCmdError> {
    let text = std::fs::read_to_string(path).map_err(|e| IoError::new("read", path, e))?;
    let bad = |message: String| SearchCmdError::BadState {
        path: path.to_path_buf(),
        message,
    };
    let saved: SearchState =
        serde_json::from_str(&text).map_err(|e| bad(format!("not a saved search: {e}")))?;
    if saved.fingerprint != format!("{:016x}", space.fingerprint()) {
        return Err(bad("the saved search belongs to another space".into()));
    }
    Ok(saved)
}

/// The non-dominated rows (accuracy up, BitOps down), cheapest first.
pub fn front_of(rows: &[Row]) -> Vec<Row> {
    let points: Vec<Point> = rows
        .iter()
        .map(|r| Point::new(r.accuracy, r.bitops))
        .collect();
    pareto_front(&points)
        .into_iter()
        .map(|i| rows[i].clone())
        .collect()
}

/// For each member of `front` (cheapest first), whether its accuracy interval overlaps the
/// interval of a cheaper member of the front: its gain over that member is within noise.
pub fn overlaps_cheaper(front: &[Row]) -> Vec<bool> {
    front
        .iter()
        .enumerate()
        .map(|(i, r)| {
            r.interval.is_some_and(|iv| {
                front[..i]
                    .iter()
                    .filter(|c| c.bitops < r.bitops)
                    .filter_map(|c| c.interval)
                    .any(|c| c.overlaps(&iv))
            })
        })
        .collect()
}

/// What `qnas search` reports.
#[derive(Clone, Debug, Serialize)]
pub struct SearchReport {
    /// [`SEARCH_SCHEMA`].
    pub schema: &'static str,
    /// Output folder.
    pub out_dir: PathBuf,
    /// The settings used.
    pub settings: Settings,
    /// Members evaluated (baselines included).
    pub evaluated: usize,
    /// Hypervolume of the front (normalized log-BitOps and accuracy axes, reference at the
    /// space's largest BitOps and accuracy 0; see `pareto.rs`).
    pub hypervolume: f64,
    /// The non-dominated members, cheapest first.
    pub front: Vec<Row>,
    /// The uniform-precision baselines.
    pub baselines: Vec<Row>,
}

/// Why `qnas search` failed.
#[derive(Debug, thiserror::Error)]
pub enum SearchCmdError {
    /// Loading the space, data or checkpoint failed.
    #[error(transparent)]
    Setup(#[from] TrainCmdError),
    /// No trained supernet.
    #[error("{}: no trained supernet; run `qnas train` first", dir.display())]
    NotTrained {
        /// Checkpoint folder.
        dir: PathBuf,
    },
    /// The strategy cannot run.
    #[error(transparent)]
    Strategy(#[from] StrategyError),
    /// The saved search does not fit.
    #[error("{}: {message}", path.display())]
    BadState {
        /// The state file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A saved search exists.
    #[error("{}: a search was already saved here; pass --resume to continue it, or delete the folder", dir.display())]
    Exists {
        /// The folder.
        dir: PathBuf,
    },
    /// A member could not be evaluated.
    #[error("evaluating member {arch} ({origin}) failed: {message}")]
    Evaluation {
        /// Where it came from.
        origin: String,
        /// The member's key.
        arch: String,
        /// Why.
        message: String,
    },
    /// Writing failed.
    #[error(transparent)]
    Io(#[from] IoError),
}

impl SearchCmdError {
    /// True when the user's input is at fault (exit code 2).
    pub fn is_invalid_input(&self) -> bool {
        match self {
            SearchCmdError::Setup(e) => e.is_invalid_input(),
            SearchCmdError::Io(_) | SearchCmdError::Evaluation { .. } => false,
            _ => true,
        }
    }
}

fn make_strategy(
    space: &Space,
    s: &Settings,
    stage: usize,
) -> Result<Box<dyn Strategy>, StrategyError> {
    Ok(match s.strategy {
        StrategyKind::Random => Box::new(RandomSearch::new(s.budget, s.seed)?),
        StrategyKind::Exhaustive => Box::new(Exhaustive::new(space, s.budget.max(1))?),
        StrategyKind::Nsga2 => {
            let population = s.budget.clamp(2, 16);
            let generations = (s.budget / population).max(1);
            Box::new(Nsga2::new(Nsga2Config {
                population,
                generations,
                budget: Some(s.budget),
                seed: s.seed,
                ..Nsga2Config::default()
            })?)
        }
        StrategyKind::Fliqs => {
            // one ask of FLIQS_BATCH members per policy step
            let steps = (s.budget / FLIQS_BATCH).max(1) as u64;
            let cfg = FliqsConfig {
                steps,
                delay: steps / 5,
                target: cost_target(s.targets[stage]),
                seed: s.seed.wrapping_add(stage as u64),
                ..FliqsConfig::default()
            };
            Box::new(Fliqs::new(space, cfg)?)
        }
    })
}

/// A target up to 1 is a fraction of the largest member's BitOps; above 1, a BitOps budget.
pub fn cost_target(t: f64) -> CostTarget {
    if t <= 1.0 {
        CostTarget::Fraction(t)
    } else {
        CostTarget::BitOps(t.round() as u64)
    }
}

/// Members sampled per FLIQS policy step.
const FLIQS_BATCH: usize = 4;

impl From<spaces::SearchStrategy> for StrategyKind {
    fn from(s: spaces::SearchStrategy) -> Self {
        match s {
            spaces::SearchStrategy::Random => StrategyKind::Random,
            spaces::SearchStrategy::Nsga2 => StrategyKind::Nsga2,
            spaces::SearchStrategy::Exhaustive => StrategyKind::Exhaustive,
            spaces::SearchStrategy::Fliqs => StrategyKind::Fliqs,
        }
    }
}

/// The file's search settings with `opts`' overrides.
pub fn settings(space: &Space, opts: &SearchOptions) -> Result<Settings, StrategyError> {
    let f = &space.search;
    let s = Settings {
        strategy: opts.strategy.unwrap_or(f.strategy.into()),
        budget: opts.budget.unwrap_or(f.budget as usize),
        seed: opts.seed.unwrap_or(f.seed),
        targets: opts.targets.clone().unwrap_or_else(|| f.targets.clone()),
        fliqs_training: opts.fliqs_training || f.fliqs_training,
    };
    if s.budget == 0 {
        return Err(StrategyError::Invalid("--budget: at least 1 member".into()));
    }
    if s.targets.is_empty() || s.targets.iter().any(|t| !(t.is_finite() && *t > 0.0)) {
        return Err(StrategyError::Invalid(format!(
            "--target: fractions of the largest member's BitOps in (0, 1] or BitOps budgets above 1, got {:?}",
            s.targets
        )));
    }
    Ok(s)
}

/// Evaluates members on inherited weights, cached by arch.
struct Evaluator<'a> {
    space: &'a Space,
    /// One set of supernet copies per worker thread (each recalibrates its own statistics).
    workers: Vec<Vec<Supernet>>,
    trainer: &'a Trainer,
    train: evaluators::data::BatchLoader,
    val: evaluators::data::BatchLoader,
    cfg: EvalConfig,
    cache: HashMap<String, Row>,
}

/// Independent copies of eval networks: through a record, so that running statistics are not
/// shared between threads.
pub(crate) fn copies(space: &Space, nets: &[Supernet], device: &Device) -> Vec<Supernet> {
    nets.iter()
        .map(|n| {
            let fresh = Supernet::new(space, device);
            fresh.load_record(n.clone().into_record())
        })
        .collect()
}

impl Evaluator<'_> {
    fn row(&self, nets: &[Supernet], arch: &Arch, origin: &str) -> Result<Row, SearchCmdError> {
        let k = self.trainer.net_index_for(arch);
        measured_row(self.space, &nets[k], arch, origin.to_string(), self)
    }

    fn evaluate(&mut self, arch: &Arch, origin: &str) -> Result<Row, SearchCmdError> {
        Ok(self
            .evaluate_many(std::slice::from_ref(arch), origin)?
            .remove(0))
    }

    /// Rows of `archs` in order; members not cached yet are evaluated in parallel, one worker
    /// thread per set of supernet copies. Every evaluation recalibrates first, so a result does
    /// not depend on which worker computed it.
    fn evaluate_many(&mut self, archs: &[Arch], origin: &str) -> Result<Vec<Row>, SearchCmdError> {
        let mut todo: Vec<&Arch> = Vec::new();
        for a in archs {
            if !self.cache.contains_key(&a.key()) && !todo.iter().any(|t| t.key() == a.key()) {
                todo.push(a);
            }
        }
        let n = self.workers.len().max(1);
        let this = &*self;
        let done: Vec<Result<Row, SearchCmdError>> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..n)
                .map(|w| {
                    let mine: Vec<&Arch> = todo.iter().skip(w).step_by(n).copied().collect();
                    scope.spawn(move || {
                        mine.into_iter()
                            .map(|a| this.row(&this.workers[w], a, origin))
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            handles
                .into_iter()
                .flat_map(|h| h.join().expect("an evaluation worker panicked"))
                .collect()
        });
        for r in done {
            let r = r?;
            self.cache.insert(r.arch.key(), r);
        }
        Ok(archs.iter().map(|a| self.cache[&a.key()].clone()).collect())
    }
}

/// The row of `arch` measured on `net` (recalibrated first); an evaluation that fails stops
/// the search with an error naming the member, never a row of 0%.
fn measured_row(
    space: &Space,
    net: &Supernet,
    arch: &Arch,
    origin: String,
    ev: &Evaluator<'_>,
) -> Result<Row, SearchCmdError> {
    let failed = |message: String| SearchCmdError::Evaluation {
        origin: origin.clone(),
        arch: arch.key(),
        message,
    };
    let acc = recalibrate_and_evaluate(net, arch, &ev.train, &ev.val, ev.cfg)
        .map_err(|e| failed(e.to_string()))?;
    if acc.total == 0 {
        return Err(failed("the validation split has no images".to_string()));
    }
    let cost = space.cost(arch).map_err(|e| failed(e.to_string()))?;
    Ok(Row::new(origin, arch.clone(), &cost, Some(acc)))
}

/// The uniform-precision members a space allows: all-int8, all-int4, all-e4m3, all-e2m1 and
/// fp32, at the largest and the smallest architecture.
pub fn baselines(space: &Space) -> Vec<(String, Arch)> {
    let mut out = Vec::new();
    for (size, arch) in [("largest", space.largest()), ("smallest", space.smallest())] {
        for f in [
            Format::Int(8),
            Format::Int(4),
            Format::E4M3,
            Format::E2M1,
            Format::FP32,
        ] {
            if let Some(a) = space.with_uniform_formats(&arch, f, f) {
                out.push((format!("baseline {f} {size}"), a));
            }
        }
    }
    out
}

fn csv_escape(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

fn rows_csv(rows: &[Row]) -> String {
    let mut out = String::from(
        "origin,accuracy,bitops,macs,params,weight_bits,accuracy_lo,accuracy_hi,validation_images,arch\n",
    );
    for r in rows {
        let (lo, hi) = r.interval.map_or((f64::NAN, f64::NAN), |i| (i.lo, i.hi));
        out += &format!(
            "{},{:.6},{},{},{},{},{:.6},{:.6},{},{}\n",
            csv_escape(&r.origin),
            r.accuracy,
            r.bitops,
            r.macs,
            r.params,
            r.weight_bits,
            lo,
            hi,
            r.samples,
            csv_escape(&r.arch.key())
        );
    }
    out
}

/// An SVG plot of accuracy against BitOps (log x-axis), every evaluated member in grey, the
/// front as a line, baselines marked and labelled.
pub fn plot_svg(rows: &[Row], front: &[Row], baselines: &[Row], title: &str) -> String {
    let (w, h, ml, mr, mt, mb) = (720.0, 480.0, 70.0, 20.0, 40.0, 50.0);
    let xs: Vec<f64> = rows
        .iter()
        .map(|r| (r.bitops.max(1) as f64).log10())
        .collect();
    let (x0, x1) = xs
        .iter()
        .fold((f64::MAX, f64::MIN), |(a, b), x| (a.min(*x), b.max(*x)));
    let (x0, x1) = if xs.is_empty() {
        (0.0, 1.0)
    } else if x1 > x0 {
        (x0.floor(), x1.ceil())
    } else {
        (x0 - 1.0, x0 + 1.0)
    };
    let ys: Vec<f64> = rows.iter().map(|r| r.accuracy).collect();
    let y0 = (ys.iter().cloned().fold(1.0, f64::min) * 10.0).floor() / 10.0;
    let (y0, y1) = (y0.min(0.9), 1.0);
    let px = |b: u64| ml + ((b.max(1) as f64).log10() - x0) / (x1 - x0) * (w - ml - mr);
    let py = |a: f64| mt + (1.0 - (a - y0) / (y1 - y0)) * (h - mt - mb);
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
    );
    s += &format!(
        "<text x=\"{}\" y=\"22\" font-size=\"15\">{}</text>\n",
        ml,
        xml(title)
    );
    // axes and grid
    let mut e = x0 as i64;
    while e as f64 <= x1 {
        let x = ml + (e as f64 - x0) / (x1 - x0) * (w - ml - mr);
        s += &format!(
            "<line x1=\"{x:.1}\" y1=\"{mt}\" x2=\"{x:.1}\" y2=\"{}\" stroke=\"#ddd\"/><text x=\"{x:.1}\" y=\"{}\" text-anchor=\"middle\">1e{e}</text>\n",
            h - mb,
            h - mb + 16.0
        );
        e += 1;
    }
    let mut a = y0;
    while a <= y1 + 1e-9 {
        let y = py(a);
        s += &format!(
            "<line x1=\"{ml}\" y1=\"{y:.1}\" x2=\"{}\" y2=\"{y:.1}\" stroke=\"#ddd\"/><text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{:.0}%</text>\n",
            w - mr,
            ml - 6.0,
            y + 4.0,
            a * 100.0
        );
        a += if y1 - y0 > 0.3 { 0.1 } else { 0.02 };
    }
    s += &format!(
        "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">BitOps (log scale)</text>\n",
        (w + ml) / 2.0,
        h - 10.0
    );
    s += &format!(
        "<text transform=\"translate(16 {}) rotate(-90)\" text-anchor=\"middle\">validation accuracy</text>\n",
        (h + mt - mb) / 2.0
    );
    for r in rows {
        s += &format!(
            "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"2.5\" fill=\"#999\"/>\n",
            px(r.bitops),
            py(r.accuracy)
        );
    }
    let path: Vec<String> = front
        .iter()
        .map(|r| format!("{:.1},{:.1}", px(r.bitops), py(r.accuracy)))
        .collect();
    s += &format!(
        "<polyline points=\"{}\" fill=\"none\" stroke=\"#d62728\" stroke-width=\"2\"/>\n",
        path.join(" ")
    );
    for r in front {
        s += &format!(
            "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"4\" fill=\"#d62728\"/>\n",
            px(r.bitops),
            py(r.accuracy)
        );
    }
    for r in baselines {
        let (x, y) = (px(r.bitops), py(r.accuracy));
        s += &format!(
            "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"7\" height=\"7\" fill=\"#1f77b4\"/><text x=\"{:.1}\" y=\"{:.1}\" fill=\"#1f77b4\">{}</text>\n",
            x - 3.5,
            y - 3.5,
            x + 6.0,
            y - 6.0,
            xml(r.origin.trim_start_matches("baseline "))
        );
    }
    s += "</svg>\n";
    s
}

fn xml(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Runs the search; see the module docs.
pub fn search(
    opts: &SearchOptions,
    progress: &mut dyn SearchProgress,
) -> Result<SearchReport, SearchCmdError> {
    let space = Space::load(&opts.file).map_err(TrainCmdError::from)?;
    let data = load_data(&space, &opts.file)?;
    let dir = run_dir(&opts.run_dir, &space);
    let ck_dir = dir.join("checkpoints");
    let found =
        checkpoint::latest_good(&ck_dir, Some(space.fingerprint())).map_err(TrainCmdError::from)?;
    let Some((ck_path, ck)) = found.found else {
        return Err(SearchCmdError::NotTrained { dir: ck_dir });
    };
    let mut trainer = Trainer::new(&space, &opts.device).map_err(TrainCmdError::from)?;
    // the weights stay at hand: FLIQS training mode starts a fresh copy from them per target
    let (ck_weights, ck_state) =
        crate::train_cmd::checkpoint_contents(&ck_path, &ck, trainer.nets.len())?;
    trainer
        .restore(ck_weights.clone(), ck_state.clone())
        .map_err(|e| SearchCmdError::BadState {
            path: ck_path.clone(),
            message: e.to_string(),
        })?;
    progress.note(&format!(
        "supernet from {} (step {})",
        ck_path.display(),
        ck.step
    ));

    let out_dir = dir.join("search");
    let state_path = out_dir.join("state.json");
    let set = settings(&space, opts)?;
    let mut stage = 0;
    let mut strategy = make_strategy(&space, &set, 0)?;
    let mut rows: Vec<Row> = Vec::new();
    if state_path.exists() {
        if !opts.resume {
            return Err(SearchCmdError::Exists { dir: out_dir });
        }
        let saved = read_state(&state_path, &space)?;
        let bad = |message: String| SearchCmdError::BadState {
            path: state_path.clone(),
            message,
        };
        if saved.settings != set {
            return Err(bad(format!(
                "the saved search used {:?}; pass the same settings",
                saved.settings
            )));
        }
        stage = saved.stage;
        if stage < set.stages() {
            strategy = make_strategy(&space, &set, stage)?;
            strategy.restore(saved.strategy_state)?;
        }
        rows = saved.rows;
        progress.note(&format!(
            "resumed a search of {} evaluated members",
            rows.len()
        ));
    }

    let cfg = EvalConfig {
        recalibration_batches: space.train.recalibration_batches as usize,
        recalibration_epoch: 0,
    };
    let bs = space.train.batch_size as usize;
    let mut ev = Evaluator {
        space: &space,
        workers: {
            let nets = trainer.eval_nets();
            // parallel evaluation on the CPU backend (flex keeps about one core busy per
            // evaluation); one worker on accelerators
            let threads = if opts.device == Device::flex() {
                std::thread::available_parallelism()
                    .map_or(1, |n| n.get())
                    .min(4)
            } else {
                1
            };
            let mut w = Vec::new();
            for _ in 1..threads {
                w.push(copies(&space, &nets, &Device::flex()));
            }
            w.insert(0, nets);
            w
        },
        trainer: &trainer,
        train: data.train_loader(bs).map_err(TrainCmdError::from)?,
        val: data
            .validation_loader(bs.max(100))
            .map_err(TrainCmdError::from)?,
        cfg,
        cache: rows.iter().map(|r| (r.arch.key(), r.clone())).collect(),
    };
    let base = baselines(&space);
    let total = set.budget * set.stages() + base.len();
    let save = |strategy: &dyn Strategy, stage: usize, rows: &[Row]| -> Result<(), IoError> {
        let st = SearchState {
            fingerprint: format!("{:016x}", space.fingerprint()),
            settings: set.clone(),
            stage,
            strategy_state: strategy.save(),
            rows: rows.to_vec(),
        };
        write_json_atomic(&state_path, &st)
    };
    let missing: Vec<&(String, Arch)> = base
        .iter()
        .filter(|(name, _)| !rows.iter().any(|r| &r.origin == name))
        .collect();
    let archs: Vec<Arch> = missing.iter().map(|(_, a)| a.clone()).collect();
    for ((name, _), r) in missing.iter().zip(ev.evaluate_many(&archs, "baseline")?) {
        let r = Row {
            origin: name.clone(),
            ..r
        };
        rows.push(r.clone());
        progress.evaluated(rows.len(), total, &r);
    }
    if !missing.is_empty() {
        save(strategy.as_ref(), stage, &rows)?;
    }
    let batch = if set.strategy == StrategyKind::Fliqs {
        FLIQS_BATCH
    } else {
        8
    };
    while stage < set.stages() {
        let origin = match set.strategy {
            StrategyKind::Fliqs => format!("fliqs target {}", set.targets[stage]),
            _ => strategy.name().to_string(),
        };
        if set.strategy == StrategyKind::Fliqs && set.fliqs_training {
            // a fresh copy of the trained supernet keeps training on the policy's members; a
            // stage interrupted in the middle starts over when resumed
            strategy = make_strategy(&space, &set, stage)?;
            let mut tuner = Trainer::new(&space, &opts.device).map_err(TrainCmdError::from)?;
            tuner
                .restore(ck_weights.clone(), ck_state.clone())
                .map_err(TrainCmdError::from)?;
            let lr = space.train.optimizer.lr() * 0.1;
            let loader = data.train_loader(bs).map_err(TrainCmdError::from)?;
            let mut stream =
                crate::train_cmd::Stream::starting_at(&loader, &burn::tensor::Device::flex(), 0);
            while !strategy.finished() {
                let asked = strategy.ask(&space, batch);
                if asked.is_empty() {
                    break;
                }
                let b = stream.next();
                let members: Vec<(String, Arch)> =
                    asked.iter().map(|a| (origin.clone(), a.clone())).collect();
                let choice = supernet::Choice {
                    model: tuner.net_index_for(&asked[0]),
                    config: supernet::train::pooling_index(&space, &asked[0]),
                    distill: false,
                    lr,
                };
                let report = tuner
                    .train_members(b.images, b.labels, &members, choice, None)
                    .map_err(TrainCmdError::from)?;
                let trials: Vec<Trial> = asked
                    .iter()
                    .zip(&report.member_accuracies)
                    .map(|(a, acc)| Trial {
                        arch: a.clone(),
                        eval: Evaluation {
                            accuracy: *acc,
                            bitops: space.cost(a).map(|c| c.bitops).unwrap_or(0),
                        },
                    })
                    .collect();
                strategy.tell(&space, &trials);
            }
            if let Some(a) = strategy.recommendation(&space) {
                let name = format!("{origin} (trained with the policy)");
                let nets = tuner.eval_nets();
                let k = tuner.net_index_for(&a);
                let r = measured_row(&space, &nets[k], &a, name, &ev)?;
                progress.evaluated(rows.len() + 1, total, &r);
                rows.push(r);
                let ck = crate::train_cmd::checkpoint_of(&tuner, space.fingerprint())?;
                let path = out_dir.join(format!("fliqs-stage-{stage}.{}", checkpoint::EXTENSION));
                checkpoint::write_checkpoint(&path, &ck).map_err(TrainCmdError::from)?;
                progress.note(&format!(
                    "weights of the target {} member: {}",
                    set.targets[stage],
                    path.display()
                ));
            }
            stage += 1;
            if stage < set.stages() {
                strategy = make_strategy(&space, &set, stage)?;
            }
            save(strategy.as_ref(), stage, &rows)?;
            continue;
        }
        while !strategy.finished() {
            let asked = strategy.ask(&space, batch);
            if asked.is_empty() {
                break;
            }
            let mut trials = Vec::new();
            for r in ev.evaluate_many(&asked, &origin)? {
                let arch = &r.arch;
                trials.push(Trial {
                    arch: arch.clone(),
                    eval: Evaluation {
                        accuracy: r.accuracy,
                        bitops: r.bitops,
                    },
                });
                if !rows.iter().any(|x| x.arch == r.arch) {
                    rows.push(r.clone());
                }
                progress.evaluated(rows.len(), total, &r);
            }
            strategy.tell(&space, &trials);
            save(strategy.as_ref(), stage, &rows)?;
        }
        if let Some(a) = strategy.recommendation(&space) {
            let name = format!("{origin} (policy argmax)");
            let r = ev.evaluate(&a, &name)?;
            if !rows.iter().any(|x| x.arch == r.arch) {
                rows.push(Row { origin: name, ..r });
            }
        }
        stage += 1;
        if stage < set.stages() {
            strategy = make_strategy(&space, &set, stage)?;
        }
        save(strategy.as_ref(), stage, &rows)?;
    }

    let front = front_of(&rows);
    let hv = HvReference::for_space(&space)
        .map(|r| {
            hypervolume(
                &front
                    .iter()
                    .map(|x| Point::new(x.accuracy, x.bitops))
                    .collect::<Vec<_>>(),
                &r,
            )
        })
        .unwrap_or(0.0);
    let baselines_rows: Vec<Row> = rows
        .iter()
        .filter(|r| r.origin.starts_with("baseline"))
        .cloned()
        .collect();
    write_atomic(&out_dir.join("evaluated.csv"), rows_csv(&rows).as_bytes())?;
    write_atomic(&out_dir.join("pareto.csv"), rows_csv(&front).as_bytes())?;
    let report = SearchReport {
        schema: SEARCH_SCHEMA,
        out_dir: out_dir.clone(),
        settings: set.clone(),
        evaluated: rows.len(),
        hypervolume: hv,
        front,
        baselines: baselines_rows,
    };
    write_json_atomic(&out_dir.join("pareto.json"), &report)?;
    let title = format!(
        "{}: accuracy vs BitOps ({} members, {:?})",
        space.name,
        rows.len(),
        set.strategy
    );
    write_atomic(
        &out_dir.join("pareto.svg"),
        plot_svg(&rows, &report.front, &report.baselines, &title).as_bytes(),
    )?;
    write_atomic(
        &out_dir.join("pareto.png"),
        &crate::png_plot::plot_png(&rows, &report.front, &report.baselines, &title),
    )?;
    Ok(report)
}
