//! Several processes on one study: the search and workers (threads here, each with its own
//! connection and evaluator, as `qnas worker` processes have) share the members of a SQLite
//! study. The members asked and the front are those of a single-process search; each member is
//! evaluated once; a member held by a worker that stopped sending heartbeats, or whose process
//! on this machine has ended, is evaluated by another.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use search::driver::{EvaluationError, Evaluator, SearchSetup};
use search::settings::{Overrides, Settings, settings};
use search::worker::{Evaluated, WorkerProgress, work, worker_id};
use search::{Row, SearchProgress, SearchReport, StudyConfig, search};
use spaces::{Arch, SearchStrategy, Space};
use stats::Accuracy;
use store::{NewMember, Status};

fn space() -> Space {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    Space::load(&root.join("spaces/presets/digits.ron")).expect("the digits preset loads")
}

fn out_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("qnas-workers-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

/// Known accuracies (growing with BitOps), each member taking `delay` to measure.
struct Table<'a> {
    space: &'a Space,
    delay: Duration,
    asked: Vec<String>,
}

impl Evaluator for Table<'_> {
    fn evaluate(&mut self, archs: &[Arch]) -> Result<Vec<Accuracy>, EvaluationError> {
        let top = self.space.cost(&self.space.largest()).unwrap().bitops as f64;
        Ok(archs
            .iter()
            .map(|a| {
                std::thread::sleep(self.delay);
                self.asked.push(a.key());
                let b = self.space.cost(a).unwrap().bitops as f64;
                Accuracy {
                    correct: ((500.0 + 450.0 * (b.ln() / top.ln())).round() as usize).min(1000),
                    total: 1000,
                }
            })
            .collect())
    }
}

struct Quiet;

impl SearchProgress for Quiet {
    fn evaluated(&mut self, _: usize, _: usize, _: &Row) {}
    fn note(&mut self, _: &str) {}
}

impl WorkerProgress for Quiet {
    fn evaluated(&mut self, _: &Evaluated) {}
    fn note(&mut self, _: &str) {}
}

fn nsga2(space: &Space) -> Settings {
    let over = Overrides {
        strategy: Some(SearchStrategy::Nsga2),
        budget: Some(32),
        seed: Some(11),
        ..Overrides::default()
    };
    settings(space, &over).unwrap()
}

fn run_search(space: &Space, set: &Settings, dir: &Path, config: &StudyConfig) -> SearchReport {
    let mut table = Table {
        space,
        delay: Duration::from_millis(2),
        asked: Vec::new(),
    };
    let setup = SearchSetup {
        space,
        settings: set,
        out_dir: dir,
        resume: false,
        sensitivity: None,
        study: Some(config),
    };
    search(setup, &mut table, None, &mut Quiet).unwrap()
}

fn keys(rows: &[Row]) -> Vec<String> {
    rows.iter().map(|r| r.arch.key()).collect()
}

fn evaluated_csv(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("evaluated.csv")).unwrap()
}

#[test]
fn a_search_with_three_workers_ends_as_a_single_process_search() {
    let space = space();
    let set = nsga2(&space);
    let alone_dir = out_dir("alone");
    let alone = run_search(
        &space,
        &set,
        &alone_dir,
        &StudyConfig::sqlite_in(&alone_dir, &space),
    );

    let dir = out_dir("shared");
    let mut config = StudyConfig::sqlite_in(&dir, &space);
    config.poll = Duration::from_millis(2);
    let workers: Vec<_> = (0..3)
        .map(|w| {
            let config = config.clone();
            std::thread::spawn(move || {
                let space = self::space();
                let mut table = Table {
                    space: &space,
                    delay: Duration::from_millis(5 + w),
                    asked: Vec::new(),
                };
                let id = format!("t{w}@test:{w}");
                let r = work(&space, &config, &id, &mut table, &mut Quiet).unwrap();
                assert_eq!(r.evaluated, table.asked.len());
                table.asked
            })
        })
        .collect();
    let shared = run_search(&space, &set, &dir, &config);
    let by_worker: Vec<Vec<String>> = workers.into_iter().map(|h| h.join().unwrap()).collect();

    assert_eq!(keys(&shared.front), keys(&alone.front));
    assert_eq!(shared.hypervolume, alone.hypervolume);
    assert_eq!(evaluated_csv(&dir), evaluated_csv(&alone_dir));
    assert!(
        by_worker.iter().filter(|a| !a.is_empty()).count() >= 2,
        "the workers took no part: {:?}",
        by_worker.iter().map(Vec::len).collect::<Vec<_>>()
    );
    let mut store = config.open().unwrap();
    let members = store.all_members().unwrap();
    assert!(
        members
            .iter()
            .all(|m| m.status == Status::Done && m.attempts == 1)
    );
    let all: Vec<&String> = by_worker.iter().flatten().collect();
    let unique: HashSet<&String> = all.iter().copied().collect();
    assert_eq!(all.len(), unique.len(), "a member was evaluated twice");
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_dir_all(&alone_dir);
}

/// Fails at once, as a search killed before its first result.
struct Broken;

impl Evaluator for Broken {
    fn evaluate(&mut self, archs: &[Arch]) -> Result<Vec<Accuracy>, EvaluationError> {
        Err(EvaluationError {
            arch: archs[0].clone(),
            message: "stopped".into(),
        })
    }
}

/// The study of a search in `dir` that stopped at its first member, that member then held by
/// `holder` (claimed, never finished), as a worker that died or went silent leaves it.
fn held_by(
    holder: &str,
    dir: &Path,
    space: &Space,
    set: &Settings,
    stale: Duration,
) -> StudyConfig {
    let mut config = StudyConfig::sqlite_in(dir, space);
    config.stale_after = stale;
    let setup = SearchSetup {
        space,
        settings: set,
        out_dir: dir,
        resume: false,
        sensitivity: None,
        study: Some(&config),
    };
    assert!(search(setup, &mut Broken, None, &mut Quiet).is_err());
    let mut store = config.open().unwrap();
    let failed = store.all_members().unwrap().remove(0);
    assert_eq!(failed.status, Status::Failed);
    store
        .ask(&[NewMember {
            key: failed.key,
            arch: failed.arch,
            origin: failed.origin,
        }])
        .unwrap();
    let got = store.claim(holder, 1, 60_000, &[]).unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].idx, 0);
    config
}

fn resume(space: &Space, set: &Settings, dir: &Path, config: &StudyConfig) -> SearchReport {
    let mut table = Table {
        space,
        delay: Duration::ZERO,
        asked: Vec::new(),
    };
    let setup = SearchSetup {
        space,
        settings: set,
        out_dir: dir,
        resume: true,
        sensitivity: None,
        study: Some(config),
    };
    search(setup, &mut table, None, &mut Quiet).unwrap()
}

#[test]
fn members_of_silent_or_dead_workers_are_handed_over() {
    let space = space();
    let set = nsga2(&space);
    let alone_dir = out_dir("alone2");
    let alone = run_search(
        &space,
        &set,
        &alone_dir,
        &StudyConfig::sqlite_in(&alone_dir, &space),
    );

    // a worker on another machine that stopped: its member goes after the stale time
    let dir = out_dir("silent");
    let config = held_by(
        "worker@elsewhere:7",
        &dir,
        &space,
        &set,
        Duration::from_millis(400),
    );
    let t = Instant::now();
    let r = resume(&space, &set, &dir, &config);
    assert!(
        t.elapsed() >= Duration::from_millis(300),
        "handed over early"
    );
    assert_eq!(keys(&r.front), keys(&alone.front));
    let m = config.open().unwrap().all_members().unwrap();
    // claimed by the stopped search, the silent worker, then the resumed search
    assert_eq!(m[0].attempts, 3);
    assert!(m[0].worker.as_deref().unwrap().starts_with("search@"));
    let _ = std::fs::remove_dir_all(&dir);

    // a worker process on this machine that ended: its member goes at once, long before the
    // stale time
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let pid = child.id();
    child.wait().unwrap();
    let dead = worker_id("worker").replace(&format!(":{}", std::process::id()), &format!(":{pid}"));
    let dir = out_dir("dead");
    let config = held_by(&dead, &dir, &space, &set, Duration::from_secs(600));
    let t = Instant::now();
    let r = resume(&space, &set, &dir, &config);
    assert!(
        t.elapsed() < Duration::from_secs(60),
        "waited for the stale time"
    );
    assert_eq!(keys(&r.front), keys(&alone.front));
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_dir_all(&alone_dir);
}
