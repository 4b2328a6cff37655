//! The search loop over a table of known accuracies (no supernet, no tensors): every baseline
//! and asked member is measured once, the front is the non-dominated rows, an interrupted
//! search resumes to the same result, and a failed evaluation stops the search naming the
//! member.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use search::driver::{EvaluationError, Evaluator, STUDY_FILE, SearchSetup};
use search::settings::{Overrides, Settings, settings};
use search::{Row, SearchError, SearchProgress, search};
use spaces::{Arch, SearchStrategy, Space};
use stats::Accuracy;

fn space() -> Space {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    Space::load(&root.join("spaces/presets/digits.ron")).expect("the digits preset loads")
}

fn out_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("qnas-driver-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

/// Known accuracies: a member's accuracy grows with the log of its BitOps, out of 1000 images,
/// so the cheapest member is the least accurate; it fails from the `fail_after`-th member on.
struct Table<'a> {
    space: &'a Space,
    asked: Vec<String>,
    fail_after: Option<usize>,
}

impl Table<'_> {
    fn accuracy(&self, arch: &Arch) -> Accuracy {
        let top = self.space.cost(&self.space.largest()).unwrap().bitops as f64;
        let b = self.space.cost(arch).unwrap().bitops as f64;
        let correct = (500.0 + 450.0 * (b.ln() / top.ln())).round() as usize;
        Accuracy {
            correct: correct.min(1000),
            total: 1000,
        }
    }
}

impl Evaluator for Table<'_> {
    fn evaluate(&mut self, archs: &[Arch]) -> Result<Vec<Accuracy>, EvaluationError> {
        let mut out = Vec::new();
        for a in archs {
            if self.fail_after.is_some_and(|n| self.asked.len() >= n) {
                return Err(EvaluationError {
                    arch: a.clone(),
                    message: "the table ran out".into(),
                });
            }
            self.asked.push(a.key());
            out.push(self.accuracy(a));
        }
        Ok(out)
    }
}

struct Quiet;

impl SearchProgress for Quiet {
    fn evaluated(&mut self, _: usize, _: usize, _: &Row) {}
    fn note(&mut self, _: &str) {}
}

fn nsga2(space: &Space, budget: usize) -> Settings {
    settings(
        space,
        &Overrides {
            strategy: Some(SearchStrategy::Nsga2),
            budget: Some(budget),
            seed: Some(3),
            ..Overrides::default()
        },
    )
    .unwrap()
}

#[test]
fn every_member_is_measured_once_and_the_front_is_non_dominated() {
    let space = space();
    let set = nsga2(&space, 24);
    let dir = out_dir("once");
    let mut table = Table {
        space: &space,
        asked: Vec::new(),
        fail_after: None,
    };
    let setup = SearchSetup {
        space: &space,
        settings: &set,
        out_dir: &dir,
        resume: false,
        sensitivity: None,
        study: None,
    };
    let report = search(setup, &mut table, None, &mut Quiet).unwrap();
    let unique: HashSet<&String> = table.asked.iter().collect();
    assert_eq!(
        unique.len(),
        table.asked.len(),
        "a member was measured twice"
    );
    assert_eq!(report.evaluated, table.asked.len());
    assert!(!report.baselines.is_empty());
    assert!(report.baselines.iter().all(|b| b.origin.is_baseline()));
    // with accuracy growing in BitOps, no member dominates another on the front
    for a in &report.front {
        for b in &report.front {
            assert!(
                !(a.accuracy >= b.accuracy
                    && a.bitops <= b.bitops
                    && a.arch != b.arch
                    && (a.accuracy > b.accuracy || a.bitops < b.bitops)),
                "{} dominates {}",
                a.arch.key(),
                b.arch.key()
            );
        }
        assert_eq!(a.accuracy, table.accuracy(&a.arch).top1());
        assert_eq!(a.samples, 1000);
    }
    assert!(report.hypervolume > 0.0 && report.hypervolume <= 1.0);
    for f in ["pareto.json", "pareto.csv", "evaluated.csv"] {
        assert!(dir.join(f).exists(), "{f}");
    }
    // every plot as a whole SVG and a PNG that decodes
    for name in ["pareto", "hypervolume", "formats"] {
        let svg = std::fs::read_to_string(dir.join(format!("{name}.svg"))).unwrap();
        assert!(
            svg.starts_with("<svg ") && svg.ends_with("</svg>\n"),
            "{name}.svg"
        );
        let png = std::fs::read(dir.join(format!("{name}.png"))).unwrap();
        let reader = png::Decoder::new(std::io::Cursor::new(png)).read_info();
        let info = reader.unwrap_or_else(|e| panic!("{name}.png: {e}"));
        assert!(info.info().width >= 600, "{name}.png");
    }
    // the curve ends at the hypervolume the search reports
    let svg = std::fs::read_to_string(dir.join("hypervolume.svg")).unwrap();
    let last = format!(
        "{:.4} after {} members",
        report.hypervolume, report.evaluated
    );
    assert!(svg.contains(&last), "{last} not in hypervolume.svg");
    // the front's members are the formats plot's columns
    let svg = std::fs::read_to_string(dir.join("formats.svg")).unwrap();
    assert!(svg.contains(&format!("{} front members by BitOps", report.front.len())));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_failed_evaluation_names_the_member_and_a_resumed_search_ends_as_an_uninterrupted_one() {
    let space = space();
    let set = nsga2(&space, 24);
    let whole_dir = out_dir("whole");
    let mut whole = Table {
        space: &space,
        asked: Vec::new(),
        fail_after: None,
    };
    fn setup<'a>(
        space: &'a Space,
        set: &'a Settings,
        dir: &'a Path,
        resume: bool,
    ) -> SearchSetup<'a> {
        SearchSetup {
            space,
            settings: set,
            out_dir: dir,
            resume,
            sensitivity: None,
            study: None,
        }
    }
    let uninterrupted = search(
        setup(&space, &set, &whole_dir, false),
        &mut whole,
        None,
        &mut Quiet,
    )
    .unwrap();

    let dir = out_dir("resumed");
    let mut failing = Table {
        space: &space,
        asked: Vec::new(),
        fail_after: Some(20),
    };
    match search(
        setup(&space, &set, &dir, false),
        &mut failing,
        None,
        &mut Quiet,
    ) {
        Err(SearchError::Evaluation { arch, message, .. }) => {
            assert!(!arch.is_empty());
            assert_eq!(message, "the table ran out");
            assert!(
                !failing.asked.contains(&arch),
                "the failed member was recorded"
            );
        }
        other => panic!("expected an evaluation error, got {other:?}"),
    }
    assert!(
        dir.join(STUDY_FILE).exists(),
        "the state before the failure was saved"
    );
    // without --resume a saved search is an error, with it the search continues
    let mut table = Table {
        space: &space,
        asked: Vec::new(),
        fail_after: None,
    };
    assert!(matches!(
        search(
            setup(&space, &set, &dir, false),
            &mut table,
            None,
            &mut Quiet
        ),
        Err(SearchError::Exists { .. })
    ));
    let (saved, finished) = search::driver::saved_rows(&dir, &space).unwrap().unwrap();
    assert!(!finished);
    let resumed = search(
        setup(&space, &set, &dir, true),
        &mut table,
        None,
        &mut Quiet,
    )
    .unwrap();
    let keys = |rows: &[Row]| rows.iter().map(|r| r.arch.key()).collect::<Vec<_>>();
    assert_eq!(keys(&resumed.front), keys(&uninterrupted.front));
    assert_eq!(resumed.evaluated, uninterrupted.evaluated);
    assert_eq!(resumed.hypervolume, uninterrupted.hypervolume);
    // every member the interrupted run measured is in its study, the batch in flight at the
    // failure included: the resumed run measured only the others, and together they measured
    // what the uninterrupted run did, each member once
    let first: HashSet<&String> = failing.asked.iter().collect();
    assert!(
        saved.iter().all(|r| first.contains(&r.arch.key())),
        "a saved row was not measured"
    );
    assert!(
        table.asked.iter().all(|k| !first.contains(k)),
        "a member measured before the failure was measured again"
    );
    assert!(
        failing.asked.len() > saved.len(),
        "the test should fail in the middle of a batch"
    );
    let together: HashSet<&String> = failing.asked.iter().chain(&table.asked).collect();
    assert_eq!(together.len(), failing.asked.len() + table.asked.len());
    assert_eq!(together, whole.asked.iter().collect::<HashSet<_>>());
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_dir_all(&whole_dir);
}

#[test]
fn fliqs_training_mode_without_a_trainer_is_an_error() {
    let space = space();
    let set = settings(
        &space,
        &Overrides {
            strategy: Some(SearchStrategy::Fliqs),
            budget: Some(8),
            fliqs_training: true,
            ..Overrides::default()
        },
    )
    .unwrap();
    let dir = out_dir("fliqs");
    let mut table = Table {
        space: &space,
        asked: Vec::new(),
        fail_after: None,
    };
    let setup = SearchSetup {
        space: &space,
        settings: &set,
        out_dir: &dir,
        resume: false,
        sensitivity: None,
        study: None,
    };
    assert!(matches!(
        search(setup, &mut table, None, &mut Quiet),
        Err(SearchError::NoPolicyTraining)
    ));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn fliqs_reports_how_each_targets_policy_ended() {
    let space = space();
    let set = settings(
        &space,
        &Overrides {
            strategy: Some(SearchStrategy::Fliqs),
            // 40 members per target: 10 policy updates of the default 4 samples
            budget: Some(40),
            targets: Some(vec![0.1, 0.5]),
            ..Overrides::default()
        },
    )
    .unwrap();
    let fl = set.fliqs.clone().expect("FLIQS settings");
    assert_eq!((fl.steps, fl.samples_per_step, set.budget), (10, 4, 40));
    let dir = out_dir("fliqs-report");
    let mut table = Table {
        space: &space,
        asked: Vec::new(),
        fail_after: None,
    };
    let setup = SearchSetup {
        space: &space,
        settings: &set,
        out_dir: &dir,
        resume: false,
        sensitivity: None,
        study: None,
    };
    let report = search(setup, &mut table, None, &mut Quiet).unwrap();
    assert_eq!(report.policies.len(), 2);
    for (p, t) in report.policies.iter().zip([0.1, 0.5]) {
        assert_eq!(p.target, t);
        assert_eq!(p.steps, 10);
        assert!(
            p.entropy >= 0.0 && p.entropy <= p.max_entropy + 1e-9,
            "{p:?}"
        );
        assert!(p.stable_steps <= p.steps);
        assert_eq!(p.stable, p.stable_steps >= 10);
        assert_eq!(p.cost_ratio, p.argmax_bitops as f64 / p.target_bitops);
        let argmax: Vec<&Row> = report
            .front
            .iter()
            .chain(&report.baselines)
            .filter(|r| r.arch.key() == p.argmax)
            .collect();
        assert!(argmax.len() <= 1);
    }
    // the report's JSON carries them; a search of another strategy has none
    let json = std::fs::read_to_string(dir.join("pareto.json")).unwrap();
    assert!(json.contains("\"policies\""));
    let _ = std::fs::remove_dir_all(&dir);
    let other = out_dir("no-policies");
    let nsga = nsga2(&space, 8);
    let setup = SearchSetup {
        space: &space,
        settings: &nsga,
        out_dir: &other,
        resume: false,
        sensitivity: None,
        study: None,
    };
    let report = search(setup, &mut table, None, &mut Quiet).unwrap();
    assert!(report.policies.is_empty());
    let json = std::fs::read_to_string(other.join("pareto.json")).unwrap();
    assert!(!json.contains("\"policies\"") && !json.contains("\"fliqs\""));
    let _ = std::fs::remove_dir_all(&other);
}
