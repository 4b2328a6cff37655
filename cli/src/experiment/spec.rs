//! `experiment.ron`: what an experiment runs (its spaces, each trained once; its searches, each
//! over seeds; the checks that decide its verdict) and the small version `--quick` runs. Raw
//! serde types, then validation that reports every problem at its field, located in the file
//! like a space file's.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use spaces::{FieldPath, Problem, SearchStrategy, SpaceError};

/// The experiment file format version this build reads.
pub const EXPERIMENT_VERSION: u32 = 1;

/// One space of the experiment: trained once, searched by the searches that name it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpaceSpec {
    /// Its label in the report and in `searches[].space`.
    pub name: String,
    /// The space file, relative to the experiment file's folder.
    pub file: PathBuf,
}

/// One search: a strategy over seeds on one space's supernet.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SearchSpec {
    /// Its label in the report and in `checks` (unique).
    pub label: String,
    /// The space (a `spaces[].name`); default the first.
    #[serde(default)]
    pub space: Option<String>,
    /// The strategy.
    pub strategy: SearchStrategy,
    /// Members evaluated besides the baselines (per target for FLIQS).
    pub budget: u32,
    /// Seeds, one search each. Default `[0]`.
    #[serde(default = "default_seeds")]
    pub seeds: Vec<u64>,
    /// FLIQS cost targets; default the space file's.
    #[serde(default)]
    pub targets: Option<Vec<f64>>,
}

fn default_seeds() -> Vec<u64> {
    vec![0]
}

/// A correlation: members of a search (its first seed) trained alone from scratch with the
/// space's recipe, their stand-alone accuracies ranked against the supernet's (`qnas
/// correlate`'s figures).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CorrelationSpec {
    /// The search (a `searches[].label`).
    pub search: String,
    /// Members trained alone: every front member, then members spread over cost and accuracy;
    /// all the search measured when it measured fewer.
    pub members: u32,
    /// Trainings of each member alone (initialization seeds); its accuracy is their mean.
    /// Default 1.
    #[serde(default = "default_one")]
    pub seeds: u32,
    /// Steps of each training alone; default the supernet's.
    #[serde(default)]
    pub steps: Option<u64>,
}

fn default_one() -> u32 {
    1
}

/// How a claim is checked.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum CheckKind {
    /// `better`'s front has a larger hypervolume than `worse`'s, seed by seed. A side is a
    /// search label (its own members) or `uniform` (the uniform-precision baselines of the
    /// other side's space).
    Hypervolume {
        /// The side claimed better.
        better: String,
        /// The other side.
        worse: String,
    },
    /// At least `at_least` of the MACs of `search`'s front members run at weight formats of
    /// exactly `bits` bits, seed by seed.
    FormatShare {
        /// A search label.
        search: String,
        /// The bit width.
        bits: u32,
        /// The least share, in (0, 1].
        at_least: f64,
    },
    /// `better`'s supernet ranks its members more like stand-alone training than `worse`'s
    /// (Kendall tau-b of their correlations). Both are search labels with a correlation.
    KendallTau {
        /// The search claimed to rank better.
        better: String,
        /// The other.
        worse: String,
    },
    /// `better`'s front is worth more than `worse`'s trained alone: the hypervolume of its
    /// members' stand-alone accuracies (first seed) is larger. Both are search labels with a
    /// correlation.
    AloneHypervolume {
        /// The search claimed better.
        better: String,
        /// The other.
        worse: String,
    },
    /// Every uniform baseline at `format` (both sizes) is dominated by a member of `search`'s
    /// front (at most its BitOps and at least its accuracy, one of them strictly), seed by seed.
    Dominated {
        /// A search label.
        search: String,
        /// The baselines' format (e.g. `"bf16"`, `"fp32"`).
        format: String,
    },
}

/// A claim and how it is checked.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckSpec {
    /// The claim in words.
    pub claim: String,
    /// The check.
    pub check: CheckKind,
}

/// `quick`: the small version `--quick` runs (for the tests).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuickSpec {
    /// Training steps of every supernet. Default 30.
    #[serde(default = "default_quick_steps")]
    pub train_steps: u64,
    /// Budget of every search. Default 6.
    #[serde(default = "default_quick_budget")]
    pub budget: u32,
    /// Seeds of every search (the first ones). Default 1.
    #[serde(default = "default_quick_seeds")]
    pub seeds: usize,
    /// Random vectors of a `hawq` search's Hessian traces. Default 2.
    #[serde(default = "default_quick_hawq_samples")]
    pub hawq_samples: u32,
    /// Training images of a `hawq` search's Hessian traces. Default 32.
    #[serde(default = "default_quick_hawq_images")]
    pub hawq_images: u32,
    /// Members of every correlation (one seed each, `train_steps` steps alone). Default 3.
    #[serde(default = "default_quick_correlate_members")]
    pub correlate_members: u32,
}

fn default_quick_correlate_members() -> u32 {
    3
}

fn default_quick_steps() -> u64 {
    30
}
fn default_quick_budget() -> u32 {
    6
}
fn default_quick_seeds() -> usize {
    1
}
fn default_quick_hawq_samples() -> u32 {
    2
}
fn default_quick_hawq_images() -> u32 {
    32
}

impl Default for QuickSpec {
    fn default() -> Self {
        QuickSpec {
            train_steps: default_quick_steps(),
            budget: default_quick_budget(),
            seeds: default_quick_seeds(),
            hawq_samples: default_quick_hawq_samples(),
            hawq_images: default_quick_hawq_images(),
            correlate_members: default_quick_correlate_members(),
        }
    }
}

/// An experiment file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExperimentSpec {
    /// [`EXPERIMENT_VERSION`].
    pub version: u32,
    /// Name (the report's title and the run folder's).
    pub name: String,
    /// The paper's claim under test, in words.
    pub claim: String,
    /// Where the claim comes from.
    #[serde(default)]
    pub source: Option<String>,
    /// The spaces.
    pub spaces: Vec<SpaceSpec>,
    /// Training steps of every supernet; default each space file's.
    #[serde(default)]
    pub train_steps: Option<u64>,
    /// The searches.
    pub searches: Vec<SearchSpec>,
    /// Correlations against stand-alone training.
    #[serde(default)]
    pub correlations: Vec<CorrelationSpec>,
    /// The checks that decide the verdict.
    #[serde(default)]
    pub checks: Vec<CheckSpec>,
    /// The small version.
    #[serde(default)]
    pub quick: QuickSpec,
    /// What the measured results mean and what was tried, written after the full run (the
    /// report's last section; the quick version's report shows it too, marked as the full
    /// run's).
    #[serde(default)]
    pub discussion: Option<String>,
}

/// The label of the uniform baselines in checks.
pub const UNIFORM: &str = "uniform";

/// A search of the experiment as it runs: spec, resolved space file, seeds, budget.
#[derive(Clone, Debug, PartialEq)]
pub struct PlannedSearch {
    /// Its spec.
    pub spec: SearchSpec,
    /// Index into [`Experiment::spaces`].
    pub space: usize,
    /// Seeds (all, or the quick version's first ones).
    pub seeds: Vec<u64>,
    /// Budget.
    pub budget: u32,
}

/// A correlation of the experiment as it runs.
#[derive(Clone, Debug, PartialEq)]
pub struct PlannedCorrelation {
    /// Its spec.
    pub spec: CorrelationSpec,
    /// Index into [`Experiment::searches`].
    pub search: usize,
    /// Members.
    pub members: usize,
    /// Seeds of the trainings alone.
    pub seeds: usize,
    /// Steps alone (`None`: the supernet's).
    pub steps: Option<u64>,
}

/// A validated experiment, with `--quick` applied when asked.
#[derive(Clone, Debug, PartialEq)]
pub struct Experiment {
    /// The file's contents.
    pub spec: ExperimentSpec,
    /// The experiment file.
    pub file: PathBuf,
    /// The space files, resolved against the experiment file's folder.
    pub spaces: Vec<(String, PathBuf)>,
    /// Training steps (`None`: each space's own).
    pub train_steps: Option<u64>,
    /// The searches.
    pub searches: Vec<PlannedSearch>,
    /// The correlations.
    pub correlations: Vec<PlannedCorrelation>,
    /// Whether this is the quick version.
    pub quick: bool,
}

impl Experiment {
    /// Reads and validates `path`; `quick` applies the file's `quick` section.
    ///
    /// # Errors
    /// A located [`SpaceError`] (syntax, or every problem at its field).
    pub fn load(path: &Path, quick: bool) -> Result<Experiment, Box<SpaceError>> {
        let file = path.display().to_string();
        let src = spaces::read_source(path).map_err(Box::new)?;
        let spec: ExperimentSpec = spaces::space::ron_options()
            .from_str(&src)
            .map_err(|e| Box::new(SpaceError::syntax(&file, &src, &e)))?;
        let problems = check(&spec, path);
        if !problems.is_empty() {
            return Err(Box::new(SpaceError::invalid(&file, &src, problems)));
        }
        let base = path.parent().unwrap_or(Path::new("."));
        let spaces: Vec<(String, PathBuf)> = spec
            .spaces
            .iter()
            .map(|s| (s.name.clone(), base.join(&s.file)))
            .collect();
        let searches = spec
            .searches
            .iter()
            .map(|s| {
                let space = s
                    .space
                    .as_ref()
                    .and_then(|n| spaces.iter().position(|(m, _)| m == n))
                    .unwrap_or(0);
                let (seeds, budget) = if quick {
                    (
                        s.seeds
                            .iter()
                            .copied()
                            .take(spec.quick.seeds.max(1))
                            .collect(),
                        spec.quick.budget,
                    )
                } else {
                    (s.seeds.clone(), s.budget)
                };
                PlannedSearch {
                    spec: s.clone(),
                    space,
                    seeds,
                    budget,
                }
            })
            .collect();
        let correlations = spec
            .correlations
            .iter()
            .map(|c| PlannedCorrelation {
                spec: c.clone(),
                search: spec
                    .searches
                    .iter()
                    .position(|s| s.label == c.search)
                    .unwrap_or(0),
                members: if quick {
                    spec.quick.correlate_members as usize
                } else {
                    c.members as usize
                },
                seeds: if quick { 1 } else { c.seeds as usize },
                steps: if quick {
                    Some(spec.quick.train_steps)
                } else {
                    c.steps
                },
            })
            .collect();
        Ok(Experiment {
            correlations,
            train_steps: if quick {
                Some(spec.quick.train_steps)
            } else {
                spec.train_steps
            },
            spec,
            file: path.to_path_buf(),
            spaces,
            searches,
            quick,
        })
    }
}

/// Every problem of `spec`, at its field.
fn check(spec: &ExperimentSpec, path: &Path) -> Vec<Problem> {
    let root = FieldPath::root();
    let mut out = Vec::new();
    if spec.version != EXPERIMENT_VERSION {
        out.push(
            Problem::new(root.field("version"), format!("version {}", spec.version))
                .help(format!("this build reads version {EXPERIMENT_VERSION}")),
        );
    }
    let name_ok = |n: &str| {
        !n.is_empty()
            && n.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    };
    if !name_ok(&spec.name) {
        out.push(
            Problem::new(root.field("name"), format!("name {:?}", spec.name))
                .help("letters, digits, '-' and '_' (it names the run folder)"),
        );
    }
    if spec.spaces.is_empty() {
        out.push(
            Problem::new(root.field("spaces"), "no space")
                .help("e.g. spaces: [(name: \"mnist\", file: \"../../spaces/presets/mnist.ron\")]"),
        );
    }
    let base = path.parent().unwrap_or(Path::new("."));
    for (i, s) in spec.spaces.iter().enumerate() {
        let p = root.field("spaces").index(i);
        if !name_ok(&s.name) {
            out.push(
                Problem::new(p.field("name"), format!("name {:?}", s.name))
                    .help("letters, digits, '-' and '_' (it names a run folder)"),
            );
        }
        if spec.spaces[..i].iter().any(|o| o.name == s.name) {
            out.push(Problem::new(
                p.field("name"),
                format!("a second space named {:?}", s.name),
            ));
        }
        if !base.join(&s.file).is_file() {
            out.push(
                Problem::new(
                    p.field("file"),
                    format!("{} does not exist", base.join(&s.file).display()),
                )
                .help("a space file, relative to the experiment file's folder"),
            );
        }
    }
    if spec.train_steps == Some(0) {
        out.push(Problem::new(root.field("train_steps"), "0 training steps"));
    }
    if spec.searches.is_empty() {
        out.push(Problem::new(root.field("searches"), "no search"));
    }
    for (i, s) in spec.searches.iter().enumerate() {
        let p = root.field("searches").index(i);
        if !name_ok(&s.label) || s.label == UNIFORM {
            out.push(
                Problem::new(p.field("label"), format!("label {:?}", s.label))
                    .help("letters, digits, '-' and '_', not \"uniform\" (the baselines' label)"),
            );
        }
        if spec.searches[..i].iter().any(|o| o.label == s.label) {
            out.push(Problem::new(
                p.field("label"),
                format!("a second search labelled {:?}", s.label),
            ));
        }
        if let Some(n) = &s.space
            && !spec.spaces.iter().any(|o| &o.name == n)
        {
            out.push(
                Problem::new(p.field("space"), format!("no space named {n:?}")).help(format!(
                    "one of {}",
                    spec.spaces
                        .iter()
                        .map(|o| o.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )),
            );
        }
        if s.budget == 0 {
            out.push(Problem::new(p.field("budget"), "a budget of 0").help("at least 1 member"));
        }
        if s.seeds.is_empty() {
            out.push(Problem::new(p.field("seeds"), "no seed").help("e.g. seeds: [0, 1, 2]"));
        }
        if let Some(t) = &s.targets
            && (t.is_empty() || t.iter().any(|x| !(x.is_finite() && *x > 0.0)))
        {
            out.push(
                Problem::new(p.field("targets"), format!("targets {t:?}"))
                    .help("fractions of the largest member's BitOps in (0, 1], or BitOps above 1"),
            );
        }
    }
    let labelled = |l: &str| spec.searches.iter().any(|s| s.label == l);
    for (i, c) in spec.correlations.iter().enumerate() {
        let p = root.field("correlations").index(i);
        if !labelled(&c.search) {
            out.push(
                Problem::new(
                    p.field("search"),
                    format!("no search labelled {:?}", c.search),
                )
                .help("a search label"),
            );
        }
        if spec.correlations[..i].iter().any(|o| o.search == c.search) {
            out.push(Problem::new(
                p.field("search"),
                format!("a second correlation of {:?}", c.search),
            ));
        }
        if (c.members as usize) < crate::correlate::MIN_MEMBERS {
            out.push(
                Problem::new(p.field("members"), format!("{} members", c.members)).help(format!(
                    "a rank correlation needs at least {}",
                    crate::correlate::MIN_MEMBERS
                )),
            );
        }
        if c.seeds == 0 {
            out.push(Problem::new(p.field("seeds"), "0 seeds"));
        }
        if c.steps == Some(0) {
            out.push(Problem::new(p.field("steps"), "0 steps"));
        }
    }
    let correlated = |l: &str| spec.correlations.iter().any(|c| c.search == l);
    for (i, c) in spec.checks.iter().enumerate() {
        let p = root.field("checks").index(i).field("check");
        let mut no_search = |field: &str, label: &str, uniform: bool| {
            if !(labelled(label) || (uniform && label == UNIFORM)) {
                out.push(
                    Problem::new(p.field(field), format!("no search labelled {label:?}")).help(
                        if uniform {
                            "a search label, or \"uniform\" for the uniform baselines"
                        } else {
                            "a search label"
                        },
                    ),
                );
            }
        };
        match &c.check {
            CheckKind::Hypervolume { better, worse } => {
                no_search("better", better, true);
                no_search("worse", worse, true);
            }
            CheckKind::FormatShare {
                search,
                bits,
                at_least,
            } => {
                no_search("search", search, false);
                if *bits == 0 {
                    out.push(Problem::new(p.field("bits"), "0 bits"));
                }
                if !(at_least.is_finite() && *at_least > 0.0 && *at_least <= 1.0) {
                    out.push(
                        Problem::new(p.field("at_least"), format!("share {at_least}"))
                            .help("a share in (0, 1], e.g. 0.5"),
                    );
                }
            }
            CheckKind::KendallTau { better, worse }
            | CheckKind::AloneHypervolume { better, worse } => {
                for (field, label) in [("better", better), ("worse", worse)] {
                    if !correlated(label) {
                        out.push(
                            Problem::new(p.field(field), format!("no correlation of {label:?}"))
                                .help("a search label named by one of `correlations`"),
                        );
                    }
                }
            }
            CheckKind::Dominated { search, format } => {
                no_search("search", search, false);
                if format.parse::<spaces::Format>().is_err() {
                    out.push(
                        Problem::new(p.field("format"), format!("unknown format {format:?}"))
                            .help("e.g. \"fp32\", \"bf16\", \"int8\""),
                    );
                }
            }
        }
    }
    let q = root.field("quick");
    if spec.quick.train_steps == 0 {
        out.push(Problem::new(q.field("train_steps"), "0 training steps"));
    }
    if spec.quick.budget == 0 {
        out.push(Problem::new(q.field("budget"), "a budget of 0"));
    }
    if spec.quick.seeds == 0 {
        out.push(Problem::new(q.field("seeds"), "0 seeds"));
    }
    if spec.quick.hawq_samples == 0 {
        out.push(Problem::new(q.field("hawq_samples"), "0 random vectors"));
    }
    if spec.quick.hawq_images == 0 {
        out.push(Problem::new(q.field("hawq_images"), "0 images"));
    }
    if (spec.quick.correlate_members as usize) < crate::correlate::MIN_MEMBERS {
        out.push(
            Problem::new(
                q.field("correlate_members"),
                format!("{} members", spec.quick.correlate_members),
            )
            .help(format!("at least {}", crate::correlate::MIN_MEMBERS)),
        );
    }
    out
}
