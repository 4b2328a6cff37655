//! The embedded store: one SQLite file (by default `RUN/search/study.db`) in WAL mode, so that
//! readers never wait for the writer and several processes on one machine share it. Every
//! method is one transaction; claims take the write lock first (`BEGIN IMMEDIATE`), so two
//! processes never claim the same member. A process killed at any point leaves the last
//! committed transaction (SQLite's journal), never a torn study.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, ErrorCode, OptionalExtension, TransactionBehavior, params};

use crate::{
    MEMBER_COLUMNS, Member, NewMember, NewStudy, Outcome, SCHEMA, SCHEMA_VERSION, Store,
    StoreError, Study, member_of, now_ms,
};

/// How long a transaction waits for another process's write lock before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(60);

/// One study in a SQLite file.
#[derive(Debug)]
pub struct SqliteStore {
    conn: Connection,
    path: PathBuf,
    location: String,
    study: String,
}

/// The store's error for a SQLite error: damaged contents or a failure to reach the file.
fn classify(location: &str, e: rusqlite::Error) -> StoreError {
    let damaged = match &e {
        // a file cut short reads short
        rusqlite::Error::SqliteFailure(f, _)
            if f.extended_code == rusqlite::ffi::SQLITE_IOERR_SHORT_READ =>
        {
            true
        }
        rusqlite::Error::SqliteFailure(f, _) => matches!(
            f.code,
            ErrorCode::DatabaseCorrupt
                | ErrorCode::NotADatabase
                | ErrorCode::Unknown
                | ErrorCode::SchemaChanged
                | ErrorCode::TypeMismatch
                | ErrorCode::ConstraintViolation
                | ErrorCode::TooBig
        ),
        rusqlite::Error::FromSqlConversionFailure(..)
        | rusqlite::Error::IntegralValueOutOfRange(..)
        | rusqlite::Error::Utf8Error(..)
        | rusqlite::Error::InvalidColumnType(..)
        | rusqlite::Error::InvalidColumnIndex(..)
        | rusqlite::Error::InvalidColumnName(..) => true,
        _ => false,
    };
    let message = match &e {
        rusqlite::Error::SqliteFailure(f, _) => format!("SQLite: {e} (code {})", f.extended_code),
        _ => format!("SQLite: {e}"),
    };
    if damaged {
        StoreError::Damaged {
            location: location.to_string(),
            message: format!("not a readable qnas study ({message})"),
        }
    } else {
        StoreError::Failed {
            location: location.to_string(),
            message,
        }
    }
}

/// Whether `e` is another connection's lock.
fn is_busy(e: &rusqlite::Error) -> bool {
    matches!(
        e,
        rusqlite::Error::SqliteFailure(f, _)
            if matches!(f.code, ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked)
    )
}

/// A member from a row selected with [`MEMBER_COLUMNS`].
fn member_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Result<Member, String>> {
    Ok(member_of(
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        r.get(4)?,
        r.get(5)?,
        r.get(6)?,
        r.get(7)?,
        r.get(8)?,
        r.get(9)?,
        r.get(10)?,
    ))
}

impl SqliteStore {
    /// Opens (or creates) the file `path` and study `study` in it.
    pub fn open(path: &Path, study: &str) -> Result<SqliteStore, StoreError> {
        let location = path.display().to_string();
        let failed = |message: String| StoreError::Failed {
            location: location.clone(),
            message,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| failed(format!("cannot create {}: {e}", dir.display())))?;
        }
        // whether this call creates the file: among processes that open a new study at the same
        // moment (a search and the workers started beside it) exactly one does (an empty file
        // is an empty SQLite database)
        let created = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(path)
            .is_ok();
        let conn = Connection::open(path).map_err(|e| classify(&location, e))?;
        let mut store = SqliteStore {
            conn,
            path: path.to_path_buf(),
            location,
            study: study.to_string(),
        };
        if let Err(e) = store.init_waiting() {
            let busy = is_busy(&e);
            let e = classify(&store.location, e);
            drop(store);
            if created && !busy {
                // a file this call created and could not set up (a full disk) is not left
                // behind to be read as a damaged study; one another connection holds a lock on
                // is that connection's, and stays
                for extra in ["", "-wal", "-shm", "-journal"] {
                    let mut p = path.as_os_str().to_owned();
                    p.push(extra);
                    let _ = std::fs::remove_file(PathBuf::from(p));
                }
            }
            return Err(e);
        }
        Ok(store)
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// [`Self::init`], again while another connection's lock stops it, for up to
    /// [`BUSY_TIMEOUT`]: SQLite does not wait for locks itself while a new file is switched to
    /// WAL, and connections that opened a new file at the same moment failed there ("database is
    /// locked") before this waited.
    fn init_waiting(&mut self) -> rusqlite::Result<()> {
        let start = std::time::Instant::now();
        loop {
            match self.init() {
                Err(e) if is_busy(&e) && start.elapsed() < BUSY_TIMEOUT => {
                    std::thread::sleep(Duration::from_millis(5));
                }
                done => return done,
            }
        }
    }

    fn init(&mut self) -> rusqlite::Result<()> {
        self.conn.busy_timeout(BUSY_TIMEOUT)?;
        // WAL: readers and one writer at a time, across processes. NORMAL: a commit survives
        // the process being killed at any point (the WAL is in the OS's hands when it returns);
        // a power cut may lose the last commits, never the file's consistency (SQLite's
        // documented guarantee for WAL with NORMAL)
        let _: String = self
            .conn
            .query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))?;
        self.conn.execute_batch(
            "PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON; PRAGMA trusted_schema=OFF;",
        )?;
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        tx.execute_batch(SCHEMA)?;
        tx.execute(
            "INSERT OR IGNORE INTO qnas_meta (key, value) VALUES ('schema', ?1)",
            params![SCHEMA_VERSION],
        )?;
        let version: i64 = tx.query_row(
            "SELECT value FROM qnas_meta WHERE key = 'schema'",
            [],
            |r| r.get(0),
        )?;
        tx.commit()?;
        if version != SCHEMA_VERSION {
            return Err(rusqlite::Error::SqliteFailure(
                rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_ERROR),
                Some(format!(
                    "study schema version {version}; this qnas reads version {SCHEMA_VERSION}"
                )),
            ));
        }
        Ok(())
    }

    fn err(&self, e: rusqlite::Error) -> StoreError {
        classify(&self.location, e)
    }

    fn damaged(&self, message: String) -> StoreError {
        StoreError::Damaged {
            location: self.location.clone(),
            message,
        }
    }

    fn select(&mut self, filter: &str, keys: &[String]) -> Result<Vec<Member>, StoreError> {
        let sql = format!(
            "SELECT {MEMBER_COLUMNS} FROM qnas_member WHERE study = ?1 {filter} ORDER BY idx"
        );
        let found = run_members(&mut self.conn, &sql, &self.study, keys, filter.is_empty())
            .map_err(|e| classify(&self.location, e))?;
        let mut members = Vec::with_capacity(found.len());
        for m in found {
            members.push(m.map_err(|e| self.damaged(e))?);
        }
        members.sort_by_key(|m| m.idx);
        Ok(members)
    }
}

/// Selects members with `sql` (parameters: the study, then a key when `keys` are given).
fn run_members(
    conn: &mut Connection,
    sql: &str,
    study: &str,
    keys: &[String],
    all: bool,
) -> rusqlite::Result<Vec<Result<Member, String>>> {
    let tx = conn.transaction()?;
    let mut out = Vec::new();
    {
        let mut st = tx.prepare(sql)?;
        if all {
            for r in st.query_map(params![study], member_row)? {
                out.push(r?);
            }
        } else {
            for k in keys {
                for r in st.query_map(params![study, k], member_row)? {
                    out.push(r?);
                }
            }
        }
    }
    tx.commit()?;
    Ok(out)
}

impl Store for SqliteStore {
    fn location(&self) -> &str {
        &self.location
    }

    fn study(&mut self) -> Result<Option<Study>, StoreError> {
        self.conn
            .query_row(
                "SELECT name, fingerprint, settings, state, report FROM qnas_study WHERE name = ?1",
                params![self.study],
                |r| {
                    Ok(Study {
                        name: r.get(0)?,
                        fingerprint: r.get(1)?,
                        settings: r.get(2)?,
                        state: r.get(3)?,
                        report: r.get(4)?,
                    })
                },
            )
            .optional()
            .map_err(|e| self.err(e))
    }

    fn create(&mut self, study: &NewStudy<'_>) -> Result<(), StoreError> {
        let name = self.study.clone();
        let run = |conn: &mut Connection| -> rusqlite::Result<()> {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            tx.execute("DELETE FROM qnas_row WHERE study = ?1", params![name])?;
            tx.execute("DELETE FROM qnas_member WHERE study = ?1", params![name])?;
            tx.execute("DELETE FROM qnas_study WHERE name = ?1", params![name])?;
            tx.execute(
                "INSERT INTO qnas_study (name, fingerprint, settings, state, report, created_ms) \
                 VALUES (?1, ?2, ?3, ?4, NULL, ?5)",
                params![
                    name,
                    study.fingerprint,
                    study.settings,
                    study.state,
                    now_ms()
                ],
            )?;
            tx.commit()
        };
        run(&mut self.conn).map_err(|e| self.err(e))
    }

    fn save(&mut self, state: &str, first_row: usize, rows: &[String]) -> Result<(), StoreError> {
        let name = self.study.clone();
        let run = |conn: &mut Connection| -> rusqlite::Result<()> {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            tx.execute(
                "UPDATE qnas_study SET state = ?2 WHERE name = ?1",
                params![name, state],
            )?;
            {
                let mut st = tx.prepare(
                    "INSERT OR IGNORE INTO qnas_row (study, seq, data) VALUES (?1, ?2, ?3)",
                )?;
                for (i, r) in rows.iter().enumerate() {
                    st.execute(params![name, (first_row + i) as i64, r])?;
                }
            }
            tx.commit()
        };
        run(&mut self.conn).map_err(|e| self.err(e))
    }

    fn rows(&mut self) -> Result<Vec<String>, StoreError> {
        let run = |conn: &Connection, name: &str| -> rusqlite::Result<Vec<String>> {
            let mut st = conn.prepare("SELECT data FROM qnas_row WHERE study = ?1 ORDER BY seq")?;
            st.query_map(params![name], |r| r.get(0))?.collect()
        };
        run(&self.conn, &self.study).map_err(|e| self.err(e))
    }

    fn ask(&mut self, members: &[NewMember]) -> Result<(), StoreError> {
        let name = self.study.clone();
        let run = |conn: &mut Connection| -> rusqlite::Result<()> {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let mut next: i64 = tx.query_row(
                "SELECT COALESCE(MAX(idx) + 1, 0) FROM qnas_member WHERE study = ?1",
                params![name],
                |r| r.get(0),
            )?;
            for m in members {
                let status: Option<String> = tx
                    .query_row(
                        "SELECT status FROM qnas_member WHERE study = ?1 AND key = ?2",
                        params![name, m.key],
                        |r| r.get(0),
                    )
                    .optional()?;
                match status.as_deref() {
                    None => {
                        tx.execute(
                            "INSERT INTO qnas_member (study, idx, key, arch, origin, status) \
                             VALUES (?1, ?2, ?3, ?4, ?5, 'asked')",
                            params![name, next, m.key, m.arch, m.origin],
                        )?;
                        next += 1;
                    }
                    Some("failed") => {
                        tx.execute(
                            "UPDATE qnas_member SET status = 'asked', worker = NULL, \
                             heartbeat_ms = NULL, error = NULL WHERE study = ?1 AND key = ?2",
                            params![name, m.key],
                        )?;
                    }
                    Some(_) => {}
                }
            }
            tx.commit()
        };
        run(&mut self.conn).map_err(|e| self.err(e))
    }

    fn members(&mut self, keys: &[String]) -> Result<Vec<Member>, StoreError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        self.select("AND key = ?2", keys)
    }

    fn all_members(&mut self) -> Result<Vec<Member>, StoreError> {
        self.select("", &[])
    }

    fn claim(
        &mut self,
        worker: &str,
        n: usize,
        stale_ms: i64,
        dead: &[String],
    ) -> Result<Vec<Member>, StoreError> {
        let name = self.study.clone();
        let run = |conn: &mut Connection| -> rusqlite::Result<Vec<Result<Member, String>>> {
            // the write lock first: no other process claims between our read and our update
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let now = now_ms();
            let mut picked: Vec<i64> = Vec::new();
            {
                let mut st = tx.prepare(
                    "SELECT idx, status, worker, heartbeat_ms FROM qnas_member \
                     WHERE study = ?1 AND status IN ('asked', 'running') ORDER BY idx",
                )?;
                let rows = st.query_map(params![name], |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, Option<String>>(2)?,
                        r.get::<_, Option<i64>>(3)?,
                    ))
                })?;
                for row in rows {
                    let (idx, status, holder, beat) = row?;
                    let free = status == "asked"
                        || beat.is_none_or(|b| b < now - stale_ms)
                        || holder.as_ref().is_some_and(|h| dead.contains(h));
                    if free {
                        picked.push(idx);
                        if picked.len() >= n {
                            break;
                        }
                    }
                }
            }
            let mut out = Vec::new();
            for idx in picked {
                tx.execute(
                    "UPDATE qnas_member SET status = 'running', worker = ?3, heartbeat_ms = ?4, \
                     attempts = attempts + 1 WHERE study = ?1 AND idx = ?2",
                    params![name, idx, worker, now],
                )?;
                out.push(tx.query_row(
                    &format!(
                        "SELECT {MEMBER_COLUMNS} FROM qnas_member WHERE study = ?1 AND idx = ?2"
                    ),
                    params![name, idx],
                    member_row,
                )?);
            }
            tx.commit()?;
            Ok(out)
        };
        let found = run(&mut self.conn).map_err(|e| self.err(e))?;
        found
            .into_iter()
            .map(|m| m.map_err(|e| self.damaged(e)))
            .collect()
    }

    fn heartbeat(&mut self, worker: &str, idxs: &[i64]) -> Result<(), StoreError> {
        let name = self.study.clone();
        let run = |conn: &mut Connection| -> rusqlite::Result<()> {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let now = now_ms();
            for idx in idxs {
                tx.execute(
                    "UPDATE qnas_member SET heartbeat_ms = ?4 WHERE study = ?1 AND idx = ?2 \
                     AND worker = ?3 AND status = 'running'",
                    params![name, idx, worker, now],
                )?;
            }
            tx.commit()
        };
        run(&mut self.conn).map_err(|e| self.err(e))
    }

    fn complete(&mut self, worker: &str, idx: i64, outcome: Outcome) -> Result<bool, StoreError> {
        let n = self
            .conn
            .execute(
                "UPDATE qnas_member SET status = 'done', worker = ?3, correct = ?4, total = ?5, \
                 error = NULL, heartbeat_ms = ?6 WHERE study = ?1 AND idx = ?2 AND status <> 'done'",
                params![
                    self.study,
                    idx,
                    worker,
                    outcome.correct as i64,
                    outcome.total as i64,
                    now_ms()
                ],
            )
            .map_err(|e| self.err(e))?;
        Ok(n > 0)
    }

    fn fail(&mut self, worker: &str, idx: i64, message: &str) -> Result<(), StoreError> {
        self.conn
            .execute(
                "UPDATE qnas_member SET status = 'failed', worker = ?3, error = ?4 \
                 WHERE study = ?1 AND idx = ?2 AND status <> 'done'",
                params![self.study, idx, worker, message],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    fn running_workers(&mut self) -> Result<Vec<String>, StoreError> {
        let run = |conn: &Connection, name: &str| -> rusqlite::Result<Vec<String>> {
            let mut st = conn.prepare(
                "SELECT DISTINCT worker FROM qnas_member WHERE study = ?1 AND status = 'running' \
                 AND worker IS NOT NULL ORDER BY worker",
            )?;
            st.query_map(params![name], |r| r.get(0))?.collect()
        };
        run(&self.conn, &self.study).map_err(|e| self.err(e))
    }

    fn release(&mut self, worker: &str, idxs: &[i64]) -> Result<(), StoreError> {
        let name = self.study.clone();
        let run = |conn: &mut Connection| -> rusqlite::Result<()> {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            for idx in idxs {
                tx.execute(
                    "UPDATE qnas_member SET status = 'asked', worker = NULL, heartbeat_ms = NULL \
                     WHERE study = ?1 AND idx = ?2 AND worker = ?3 AND status = 'running'",
                    params![name, idx, worker],
                )?;
            }
            tx.commit()
        };
        run(&mut self.conn).map_err(|e| self.err(e))
    }

    fn finish(&mut self, report: &str) -> Result<(), StoreError> {
        self.conn
            .execute(
                "UPDATE qnas_study SET report = ?2 WHERE name = ?1",
                params![self.study, report],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
    }
}
