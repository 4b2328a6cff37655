//! The study store: everything a search keeps between processes and machines, behind one
//! trait ([`Store`]) with two implementations, SQLite ([`sqlite::SqliteStore`], embedded, one
//! file, WAL mode: several processes on one machine) and PostgreSQL
//! ([`postgres::PostgresStore`]: many machines). A study holds its settings and the strategy's
//! state (as the search serializes them), every member the strategy asked with its status
//! (asked, running, done, failed), the worker that holds it and that worker's last heartbeat,
//! its result, the rows of the search's table, and the finished search's report (its front).
//!
//! The store knows nothing of spaces, strategies or tensors: members, settings, states, rows
//! and reports are text the search crate writes and checks on reading. One writer asks
//! (`qnas search`); any number of workers claim asked members ([`Store::claim`]: `FOR UPDATE
//! SKIP LOCKED` in PostgreSQL, an immediate transaction in SQLite), send heartbeats while they
//! evaluate them, and write their results; a member whose worker stopped sending heartbeats is
//! claimed again by the next claimer.

pub mod postgres;
pub mod sqlite;
mod storage;

pub use storage::Storage;

/// The schema version every table of a store carries (`qnas_meta`).
pub const SCHEMA_VERSION: i64 = 1;

/// Why the store could not be used.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The store's contents are damaged or not a qnas study (a file that is not a database, a
    /// malformed page, a value of the wrong type): the user's input is at fault.
    #[error("{location}: {message}")]
    Damaged {
        /// The file, or the database's address (without its password).
        location: String,
        /// What is wrong.
        message: String,
    },
    /// The store could not be reached or written (I/O, connection, a lock held too long).
    #[error("{location}: {message}")]
    Failed {
        /// The file, or the database's address (without its password).
        location: String,
        /// Why.
        message: String,
    },
    /// A storage address qnas does not understand.
    #[error("--storage {url}: {message}")]
    BadUrl {
        /// The address as given (its password hidden).
        url: String,
        /// What is wrong.
        message: String,
    },
}

impl StoreError {
    /// True when the user's input is at fault (exit code 2).
    pub fn is_invalid_input(&self) -> bool {
        matches!(self, StoreError::Damaged { .. } | StoreError::BadUrl { .. })
    }

    /// The store's location (file or redacted address), for messages.
    pub fn location(&self) -> &str {
        match self {
            StoreError::Damaged { location, .. } | StoreError::Failed { location, .. } => location,
            StoreError::BadUrl { url, .. } => url,
        }
    }
}

/// A study as created by its search.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewStudy<'a> {
    /// The space's fingerprint (workers check theirs against it).
    pub fingerprint: &'a str,
    /// The search's settings (JSON).
    pub settings: &'a str,
    /// The search's state (JSON).
    pub state: &'a str,
}

/// A study as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Study {
    /// Its name (one database can hold many studies).
    pub name: String,
    /// The space's fingerprint.
    pub fingerprint: String,
    /// The search's settings (JSON).
    pub settings: String,
    /// The search's state after its last saved batch (JSON).
    pub state: String,
    /// The finished search's report (JSON), `None` while it runs.
    pub report: Option<String>,
}

/// A member the search asks to have evaluated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewMember {
    /// Its identity in the study (the arch's key).
    pub key: String,
    /// The member (JSON).
    pub arch: String,
    /// Where it came from (text, for progress lines).
    pub origin: String,
}

/// Where a member stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// Asked, not claimed yet (or released).
    Asked,
    /// Claimed by a worker, which sends heartbeats.
    Running,
    /// Evaluated.
    Done,
    /// Its evaluation failed (the error is kept); asked again by a resumed search.
    Failed,
}

impl Status {
    /// The stored text.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Asked => "asked",
            Status::Running => "running",
            Status::Done => "done",
            Status::Failed => "failed",
        }
    }

    /// From the stored text.
    pub fn parse(s: &str) -> Option<Status> {
        Some(match s {
            "asked" => Status::Asked,
            "running" => Status::Running,
            "done" => Status::Done,
            "failed" => Status::Failed,
            _ => return None,
        })
    }
}

/// An evaluation's result: correct of total images.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// Images classified correctly.
    pub correct: u64,
    /// Images measured.
    pub total: u64,
}

/// A member as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    /// Its place in the order the search asked (0, 1, ...).
    pub idx: i64,
    /// Its identity in the study (the arch's key).
    pub key: String,
    /// The member (JSON).
    pub arch: String,
    /// Where it came from (text).
    pub origin: String,
    /// Where it stands.
    pub status: Status,
    /// The worker that holds (or held) it.
    pub worker: Option<String>,
    /// That worker's last heartbeat, milliseconds since the Unix epoch on the store's clock.
    pub heartbeat_ms: Option<i64>,
    /// Its result once done.
    pub outcome: Option<Outcome>,
    /// Why its evaluation failed.
    pub error: Option<String>,
    /// How many times it was claimed.
    pub attempts: i64,
}

/// One study in a store. Every method is one transaction; a store is used from one thread
/// (workers open one connection per thread).
pub trait Store: Send {
    /// Where the store is (a file, or an address without its password), for messages.
    fn location(&self) -> &str;
    /// The study, if it was created.
    fn study(&mut self) -> Result<Option<Study>, StoreError>;
    /// Creates the study, replacing a study of the same name and everything it held.
    fn create(&mut self, study: &NewStudy<'_>) -> Result<(), StoreError>;
    /// Saves the search's state and appends rows to its table: `rows` take the places
    /// `first_row`, `first_row + 1`, ... (rows already there are kept).
    fn save(&mut self, state: &str, first_row: usize, rows: &[String]) -> Result<(), StoreError>;
    /// The search's table, in order.
    fn rows(&mut self) -> Result<Vec<String>, StoreError>;
    /// Asks for members: each whose key the study does not hold yet is added (status asked, the
    /// next index), each that failed is asked again; the others are left as they are.
    fn ask(&mut self, members: &[NewMember]) -> Result<(), StoreError>;
    /// The members with these keys (those the study holds), by index.
    fn members(&mut self, keys: &[String]) -> Result<Vec<Member>, StoreError>;
    /// Every member, by index.
    fn all_members(&mut self) -> Result<Vec<Member>, StoreError>;
    /// Claims up to `n` members for `worker`, lowest index first: asked ones, and running ones
    /// whose last heartbeat is older than `stale_ms` (their worker is taken for dead) or whose
    /// worker is in `dead`. Each is marked running with a fresh heartbeat. Two claimers never
    /// get the same member.
    fn claim(
        &mut self,
        worker: &str,
        n: usize,
        stale_ms: i64,
        dead: &[String],
    ) -> Result<Vec<Member>, StoreError>;
    /// Refreshes the heartbeat of `worker`'s running members among `idxs`.
    fn heartbeat(&mut self, worker: &str, idxs: &[i64]) -> Result<(), StoreError>;
    /// Records a member's result (unless it is done already: a member handed over to another
    /// worker may be finished twice, with the same result). Returns whether it was recorded.
    fn complete(&mut self, worker: &str, idx: i64, outcome: Outcome) -> Result<bool, StoreError>;
    /// Records that a member's evaluation failed (unless it is done).
    fn fail(&mut self, worker: &str, idx: i64, message: &str) -> Result<(), StoreError>;
    /// The workers that hold running members.
    fn running_workers(&mut self) -> Result<Vec<String>, StoreError>;
    /// Hands `worker`'s running members among `idxs` back (status asked).
    fn release(&mut self, worker: &str, idxs: &[i64]) -> Result<(), StoreError>;
    /// Marks the study finished with its report.
    fn finish(&mut self, report: &str) -> Result<(), StoreError>;
}

/// Milliseconds since the Unix epoch on this machine's clock.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// The tables of a store, the same in both databases (types written the way both accept).
const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS qnas_meta (
    key TEXT PRIMARY KEY,
    value BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS qnas_study (
    name TEXT PRIMARY KEY,
    fingerprint TEXT NOT NULL,
    settings TEXT NOT NULL,
    state TEXT NOT NULL,
    report TEXT,
    created_ms BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS qnas_member (
    study TEXT NOT NULL REFERENCES qnas_study(name) ON DELETE CASCADE,
    idx BIGINT NOT NULL,
    key TEXT NOT NULL,
    arch TEXT NOT NULL,
    origin TEXT NOT NULL,
    status TEXT NOT NULL,
    worker TEXT,
    heartbeat_ms BIGINT,
    correct BIGINT,
    total BIGINT,
    error TEXT,
    attempts BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (study, idx),
    UNIQUE (study, key)
);
CREATE INDEX IF NOT EXISTS qnas_member_status ON qnas_member (study, status, idx);
CREATE TABLE IF NOT EXISTS qnas_row (
    study TEXT NOT NULL REFERENCES qnas_study(name) ON DELETE CASCADE,
    seq BIGINT NOT NULL,
    data TEXT NOT NULL,
    PRIMARY KEY (study, seq)
);
";

/// The columns of a member, in the order both implementations select them.
const MEMBER_COLUMNS: &str =
    "idx, key, arch, origin, status, worker, heartbeat_ms, correct, total, error, attempts";

/// A member from its selected columns, or why it is damaged.
#[allow(clippy::too_many_arguments)]
fn member_of(
    idx: i64,
    key: String,
    arch: String,
    origin: String,
    status: String,
    worker: Option<String>,
    heartbeat_ms: Option<i64>,
    correct: Option<i64>,
    total: Option<i64>,
    error: Option<String>,
    attempts: i64,
) -> Result<Member, String> {
    let status =
        Status::parse(&status).ok_or_else(|| format!("member {idx}: unknown status {status:?}"))?;
    let outcome = match (correct, total) {
        (Some(c), Some(t)) if c >= 0 && t > 0 && c <= t => Some(Outcome {
            correct: c as u64,
            total: t as u64,
        }),
        (None, None) => None,
        (c, t) => {
            return Err(format!(
                "member {idx}: result {c:?} of {t:?} images is not a result"
            ));
        }
    };
    if status == Status::Done && outcome.is_none() {
        return Err(format!("member {idx}: done without a result"));
    }
    Ok(Member {
        idx,
        key,
        arch,
        origin,
        status,
        worker,
        heartbeat_ms,
        outcome,
        error,
        attempts,
    })
}

/// `url` with its password hidden: the user part's (`user:***@`) and a `password=` query
/// parameter's.
pub(crate) fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    let authority = match authority.rsplit_once('@') {
        Some((user, host)) => match user.split_once(':') {
            Some((name, _)) => format!("{name}:***@{host}"),
            None => authority.to_string(),
        },
        None => authority.to_string(),
    };
    let tail = match tail.split_once('?') {
        Some((path, query)) => {
            let query: Vec<String> = query
                .split('&')
                .map(|kv| match kv.split_once('=') {
                    Some(("password", _)) => "password=***".to_string(),
                    _ => kv.to_string(),
                })
                .collect();
            format!("{path}?{}", query.join("&"))
        }
        None => tail.to_string(),
    };
    format!("{scheme}://{authority}{tail}")
}
