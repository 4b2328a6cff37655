//! Evaluating a study's members: claim some, evaluate them through an [`Evaluator`] while a
//! thread sends heartbeats, record the results. `qnas search` evaluates this way between its
//! asks, and `qnas worker` ([`work`]) does nothing else, on any machine that reaches the store.
//!
//! A member whose worker stops sending heartbeats for [`StudyConfig::stale_after`] is claimed
//! by the next claimer; on one machine a member whose worker's process has ended is claimed at
//! once (the process id in the worker's name is checked under `/proc`).

use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde::Serialize;
use spaces::{Arch, Space};
use stats::Accuracy;
use store::{Member, Outcome, Storage, Store, StoreError};

use crate::evaluator::Evaluator;
use crate::study::{StudyConfig, StudyError, fingerprint};

/// Schema tag of [`WorkReport`].
pub const WORKER_SCHEMA: &str = "qnas.worker/1";

/// Why a worker stopped.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    /// The study cannot be used (damaged, another space, unreachable).
    #[error(transparent)]
    Study(#[from] StudyError),
}

impl From<StoreError> for WorkerError {
    fn from(e: StoreError) -> Self {
        WorkerError::Study(e.into())
    }
}

impl WorkerError {
    /// True when the user's input is at fault (exit code 2).
    pub fn is_invalid_input(&self) -> bool {
        match self {
            WorkerError::Study(StudyError::Bad { .. }) => true,
            WorkerError::Study(StudyError::Store(e)) => e.is_invalid_input(),
        }
    }
}

/// This process's name in a study: `ROLE@HOST:PID`.
pub fn worker_id(role: &str) -> String {
    format!("{role}@{}:{}", host_name(), std::process::id())
}

/// The machine's name (Linux's, else `HOSTNAME`, else `localhost`).
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_string())
}

/// Of `workers`, those on this machine whose process has ended (known only where `/proc`
/// lists processes).
fn dead_here(workers: &[String]) -> Vec<String> {
    if !std::path::Path::new("/proc/self").exists() {
        return Vec::new();
    }
    let host = host_name();
    workers
        .iter()
        .filter(|w| {
            let Some((_, at)) = w.rsplit_once('@') else {
                return false;
            };
            let Some((h, pid)) = at.rsplit_once(':') else {
                return false;
            };
            h == host
                && pid.parse::<u32>().is_ok_and(|p| {
                    p != std::process::id() && !std::path::Path::new(&format!("/proc/{p}")).exists()
                })
        })
        .cloned()
        .collect()
}

/// Sends heartbeats for members being evaluated, from a thread with its own connection, until
/// dropped.
struct Heartbeat {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Heartbeat {
    fn start(
        storage: &Storage,
        study: &str,
        worker: &str,
        idxs: Vec<i64>,
        every: Duration,
    ) -> Self {
        let (tx, rx) = mpsc::channel::<()>();
        let (storage, study, worker) = (storage.clone(), study.to_string(), worker.to_string());
        let thread = std::thread::spawn(move || {
            let mut store: Option<Box<dyn Store>> = None;
            // a failed heartbeat is tried again at the next beat: a member whose beats all fail
            // is handed over, which costs time, not results
            while let Err(mpsc::RecvTimeoutError::Timeout) = rx.recv_timeout(every) {
                if store.is_none() {
                    store = storage.open(&study).ok();
                }
                if let Some(s) = store.as_mut()
                    && s.heartbeat(&worker, &idxs).is_err()
                {
                    store = None;
                }
            }
        });
        Heartbeat {
            stop: Some(tx),
            thread: Some(thread),
        }
    }
}

impl Drop for Heartbeat {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// One member evaluated here, for progress.
#[derive(Clone, Debug)]
pub struct Evaluated {
    /// The member as stored.
    pub member: Member,
    /// Its accuracy, or why it failed.
    pub result: Result<Accuracy, String>,
}

/// A process taking part in a study's evaluation.
pub struct Participant<'a> {
    store: &'a mut dyn Store,
    config: &'a StudyConfig,
    id: String,
}

impl std::fmt::Debug for Participant<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Participant").field("id", &self.id).finish()
    }
}

impl<'a> Participant<'a> {
    /// `id` (see [`worker_id`]) taking part through `store`, an open connection to the study
    /// of `config`.
    pub fn new(store: &'a mut dyn Store, config: &'a StudyConfig, id: String) -> Self {
        Participant { store, config, id }
    }

    /// This participant's name.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The store.
    pub fn store(&mut self) -> &mut dyn Store {
        self.store
    }

    /// Claims up to the evaluator's capacity of members, evaluates them and records the
    /// results (a member whose evaluation failed is recorded as failed with the message, the
    /// others of its claim handed back). Returns what was evaluated; empty when nothing was
    /// there to claim.
    pub fn evaluate_some(
        &mut self,
        space: &Space,
        evaluator: &mut dyn Evaluator,
    ) -> Result<Vec<Evaluated>, StoreError> {
        let running = self.store.running_workers()?;
        let dead = dead_here(&running);
        let stale_ms = self.config.stale_after.as_millis() as i64;
        let claimed = self
            .store
            .claim(&self.id, evaluator.capacity().max(1), stale_ms, &dead)?;
        if claimed.is_empty() {
            return Ok(Vec::new());
        }
        let mut out = Vec::new();
        let mut archs: Vec<(Member, Arch)> = Vec::new();
        for m in claimed {
            // members are the search's own JSON; a damaged one fails, naming the store
            let arch = serde_json::from_str::<Arch>(&m.arch)
                .map_err(|e| e.to_string())
                .and_then(|a| space.plan(&a).map(|_| a).map_err(|e| e.to_string()));
            match arch {
                Ok(a) => archs.push((m, a)),
                Err(e) => {
                    let message = format!("member {} is not a member of this space: {e}", m.idx);
                    self.store.fail(&self.id, m.idx, &message)?;
                    out.push(Evaluated {
                        member: m,
                        result: Err(message),
                    });
                }
            }
        }
        if archs.is_empty() {
            return Ok(out);
        }
        let idxs: Vec<i64> = archs.iter().map(|(m, _)| m.idx).collect();
        let every = (self.config.stale_after / 4).max(Duration::from_millis(50));
        let result = {
            let _beat = Heartbeat::start(
                &self.config.storage,
                &self.config.name,
                &self.id,
                idxs.clone(),
                every,
            );
            let batch: Vec<Arch> = archs.iter().map(|(_, a)| a.clone()).collect();
            evaluator.evaluate(&batch)
        };
        match result {
            Ok(accs) => {
                for ((m, _), acc) in archs.into_iter().zip(accs) {
                    let outcome = Outcome {
                        correct: acc.correct as u64,
                        total: acc.total as u64,
                    };
                    if acc.total == 0 {
                        let message = "the validation split has no images".to_string();
                        self.store.fail(&self.id, m.idx, &message)?;
                        out.push(Evaluated {
                            member: m,
                            result: Err(message),
                        });
                        continue;
                    }
                    self.store.complete(&self.id, m.idx, outcome)?;
                    out.push(Evaluated {
                        member: m,
                        result: Ok(acc),
                    });
                }
            }
            Err(e) => {
                let mut others = Vec::new();
                for (m, a) in archs {
                    if a == e.arch {
                        self.store.fail(&self.id, m.idx, &e.message)?;
                        out.push(Evaluated {
                            member: m,
                            result: Err(e.message.clone()),
                        });
                    } else {
                        others.push(m.idx);
                    }
                }
                self.store.release(&self.id, &others)?;
            }
        }
        Ok(out)
    }
}

/// Receives a worker's progress.
pub trait WorkerProgress {
    /// A member was evaluated (or failed).
    fn evaluated(&mut self, e: &Evaluated);
    /// A note.
    fn note(&mut self, message: &str);
}

/// What `qnas worker` reports when its study has finished.
#[derive(Clone, Debug, Serialize)]
pub struct WorkReport {
    /// [`WORKER_SCHEMA`].
    pub schema: String,
    /// The store (file, or address without its password).
    pub storage: String,
    /// The study.
    pub study: String,
    /// This worker's name.
    pub worker: String,
    /// Members it evaluated.
    pub evaluated: usize,
    /// Members whose evaluation failed here.
    pub failed: usize,
    /// Seconds spent evaluating.
    pub busy_seconds: f64,
    /// Seconds from start to the study's end.
    pub seconds: f64,
}

/// Works for the study of `config` as `id` (see [`worker_id`]) until it has finished: waits
/// for it to be created, checks that it belongs to `space`, then claims, evaluates and
/// records members.
pub fn work(
    space: &Space,
    config: &StudyConfig,
    id: &str,
    evaluator: &mut dyn Evaluator,
    progress: &mut dyn WorkerProgress,
) -> Result<WorkReport, WorkerError> {
    let t0 = Instant::now();
    let mut store = config.open()?;
    let mut report = WorkReport {
        schema: WORKER_SCHEMA.to_string(),
        storage: config.storage.display(),
        study: config.name.clone(),
        worker: id.to_string(),
        evaluated: 0,
        failed: 0,
        busy_seconds: 0.0,
        seconds: 0.0,
    };
    let mut waiting = false;
    loop {
        let Some(study) = store.study()? else {
            if !waiting {
                progress.note(&format!(
                    "waiting for study {:?} in {} (start qnas search with the same --storage)",
                    config.name,
                    config.storage.display()
                ));
                waiting = true;
            }
            std::thread::sleep(config.poll);
            continue;
        };
        if study.fingerprint != fingerprint(space) {
            return Err(StudyError::Bad {
                path: store.location().into(),
                message: format!(
                    "study {:?} belongs to another space than {}",
                    config.name, space.name
                ),
            }
            .into());
        }
        if study.report.is_some() {
            break;
        }
        let id = report.worker.clone();
        let t = Instant::now();
        let done = Participant::new(store.as_mut(), config, id).evaluate_some(space, evaluator)?;
        if done.is_empty() {
            std::thread::sleep(config.poll);
            continue;
        }
        report.busy_seconds += t.elapsed().as_secs_f64();
        for e in &done {
            match e.result {
                Ok(_) => report.evaluated += 1,
                Err(_) => report.failed += 1,
            }
            progress.evaluated(e);
        }
    }
    report.seconds = t0.elapsed().as_secs_f64();
    Ok(report)
}
