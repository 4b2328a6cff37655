//! The shared store: a PostgreSQL database that the search and workers on many machines
//! reach (`--storage postgres://USER@HOST:PORT/DATABASE`). Several studies share one database,
//! told apart by name. Claims lock the rows they take (`FOR UPDATE SKIP LOCKED`), so
//! concurrent claimers skip each other's members instead of waiting; heartbeats and staleness
//! are measured on the database's clock, so workers' clocks need not agree.

use postgres::{Client, NoTls, Transaction};

use crate::{
    MEMBER_COLUMNS, Member, NewMember, NewStudy, Outcome, SCHEMA, SCHEMA_VERSION, Store,
    StoreError, Study, member_of, redact,
};

/// The database's clock, in milliseconds since the Unix epoch.
const NOW_MS: &str = "(extract(epoch from clock_timestamp()) * 1000)::bigint";

/// The advisory lock that serializes creating the tables (concurrent `CREATE TABLE IF NOT
/// EXISTS` can collide in PostgreSQL).
const SCHEMA_LOCK: i64 = 0x716e_6173_7374_6f72; // "qnasstor"

/// One study in a PostgreSQL database.
pub struct PostgresStore {
    client: Client,
    location: String,
    study: String,
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresStore")
            .field("location", &self.location)
            .field("study", &self.study)
            .finish()
    }
}

fn failed(location: &str, e: &postgres::Error) -> StoreError {
    let message = match e.as_db_error() {
        Some(db) => format!("PostgreSQL: {} ({})", db.message(), db.code().code()),
        None => format!("PostgreSQL: {e}"),
    };
    StoreError::Failed {
        location: location.to_string(),
        message,
    }
}

fn member_row(r: &postgres::Row) -> Result<Result<Member, String>, postgres::Error> {
    Ok(member_of(
        r.try_get(0)?,
        r.try_get(1)?,
        r.try_get(2)?,
        r.try_get(3)?,
        r.try_get(4)?,
        r.try_get(5)?,
        r.try_get(6)?,
        r.try_get(7)?,
        r.try_get(8)?,
        r.try_get(9)?,
        r.try_get(10)?,
    ))
}

impl PostgresStore {
    /// Connects to `url` and opens study `study` (creating the tables when missing).
    pub fn open(url: &str, study: &str) -> Result<PostgresStore, StoreError> {
        let location = redact(url);
        let client = Client::connect(url, NoTls).map_err(|e| failed(&location, &e))?;
        let mut store = PostgresStore {
            client,
            location,
            study: study.to_string(),
        };
        let version = store.init().map_err(|e| failed(&store.location, &e))?;
        if version != SCHEMA_VERSION {
            return Err(StoreError::Damaged {
                location: store.location,
                message: format!(
                    "study schema version {version}; this qnas reads version {SCHEMA_VERSION}"
                ),
            });
        }
        Ok(store)
    }

    fn init(&mut self) -> Result<i64, postgres::Error> {
        let mut tx = self.client.transaction()?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&SCHEMA_LOCK])?;
        tx.batch_execute(SCHEMA)?;
        tx.execute(
            "INSERT INTO qnas_meta (key, value) VALUES ('schema', $1) ON CONFLICT DO NOTHING",
            &[&SCHEMA_VERSION],
        )?;
        let version: i64 = tx
            .query_one("SELECT value FROM qnas_meta WHERE key = 'schema'", &[])?
            .try_get(0)?;
        tx.commit()?;
        Ok(version)
    }

    /// Runs `f` in one transaction, mapping errors to the store's.
    fn tx<T>(
        &mut self,
        f: impl FnOnce(&mut Transaction<'_>, &str) -> Result<T, postgres::Error>,
    ) -> Result<T, StoreError> {
        let run = |client: &mut Client, study: &str| -> Result<T, postgres::Error> {
            let mut tx = client.transaction()?;
            let out = f(&mut tx, study)?;
            tx.commit()?;
            Ok(out)
        };
        run(&mut self.client, &self.study).map_err(|e| failed(&self.location, &e))
    }

    fn checked(&self, found: Vec<Result<Member, String>>) -> Result<Vec<Member>, StoreError> {
        found
            .into_iter()
            .map(|m| {
                m.map_err(|message| StoreError::Damaged {
                    location: self.location.clone(),
                    message,
                })
            })
            .collect()
    }
}

impl Store for PostgresStore {
    fn location(&self) -> &str {
        &self.location
    }

    fn study(&mut self) -> Result<Option<Study>, StoreError> {
        self.tx(|tx, name| {
            let row = tx.query_opt(
                "SELECT name, fingerprint, settings, state, report FROM qnas_study WHERE name = $1",
                &[&name],
            )?;
            row.map(|r| {
                Ok(Study {
                    name: r.try_get(0)?,
                    fingerprint: r.try_get(1)?,
                    settings: r.try_get(2)?,
                    state: r.try_get(3)?,
                    report: r.try_get(4)?,
                })
            })
            .transpose()
        })
    }

    fn create(&mut self, study: &NewStudy<'_>) -> Result<(), StoreError> {
        self.tx(|tx, name| {
            // members and rows go with the study (ON DELETE CASCADE)
            tx.execute("DELETE FROM qnas_study WHERE name = $1", &[&name])?;
            tx.execute(
                &format!(
                    "INSERT INTO qnas_study (name, fingerprint, settings, state, report, created_ms) \
                     VALUES ($1, $2, $3, $4, NULL, {NOW_MS})"
                ),
                &[&name, &study.fingerprint, &study.settings, &study.state],
            )?;
            Ok(())
        })
    }

    fn save(&mut self, state: &str, first_row: usize, rows: &[String]) -> Result<(), StoreError> {
        self.tx(|tx, name| {
            tx.execute(
                "UPDATE qnas_study SET state = $2 WHERE name = $1",
                &[&name, &state],
            )?;
            let st = tx.prepare(
                "INSERT INTO qnas_row (study, seq, data) VALUES ($1, $2, $3) \
                 ON CONFLICT DO NOTHING",
            )?;
            for (i, r) in rows.iter().enumerate() {
                tx.execute(&st, &[&name, &((first_row + i) as i64), r])?;
            }
            Ok(())
        })
    }

    fn rows(&mut self) -> Result<Vec<String>, StoreError> {
        self.tx(|tx, name| {
            tx.query(
                "SELECT data FROM qnas_row WHERE study = $1 ORDER BY seq",
                &[&name],
            )?
            .iter()
            .map(|r| r.try_get(0))
            .collect()
        })
    }

    fn ask(&mut self, members: &[NewMember]) -> Result<(), StoreError> {
        self.tx(|tx, name| {
            // one asker per study (the search); the lock keeps a second one from colliding
            tx.execute(
                "SELECT 1 FROM qnas_study WHERE name = $1 FOR UPDATE",
                &[&name],
            )?;
            let mut next: i64 = tx
                .query_one(
                    "SELECT COALESCE(MAX(idx) + 1, 0)::bigint FROM qnas_member WHERE study = $1",
                    &[&name],
                )?
                .try_get(0)?;
            for m in members {
                let status: Option<String> = tx
                    .query_opt(
                        "SELECT status FROM qnas_member WHERE study = $1 AND key = $2",
                        &[&name, &m.key],
                    )?
                    .map(|r| r.try_get(0))
                    .transpose()?;
                match status.as_deref() {
                    None => {
                        tx.execute(
                            "INSERT INTO qnas_member (study, idx, key, arch, origin, status) \
                             VALUES ($1, $2, $3, $4, $5, 'asked')",
                            &[&name, &next, &m.key, &m.arch, &m.origin],
                        )?;
                        next += 1;
                    }
                    Some("failed") => {
                        tx.execute(
                            "UPDATE qnas_member SET status = 'asked', worker = NULL, \
                             heartbeat_ms = NULL, error = NULL WHERE study = $1 AND key = $2",
                            &[&name, &m.key],
                        )?;
                    }
                    Some(_) => {}
                }
            }
            Ok(())
        })
    }

    fn members(&mut self, keys: &[String]) -> Result<Vec<Member>, StoreError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let found = self.tx(|tx, name| {
            tx.query(
                &format!(
                    "SELECT {MEMBER_COLUMNS} FROM qnas_member WHERE study = $1 AND key = ANY($2) \
                     ORDER BY idx"
                ),
                &[&name, &keys],
            )?
            .iter()
            .map(member_row)
            .collect()
        })?;
        self.checked(found)
    }

    fn all_members(&mut self) -> Result<Vec<Member>, StoreError> {
        let found = self.tx(|tx, name| {
            tx.query(
                &format!("SELECT {MEMBER_COLUMNS} FROM qnas_member WHERE study = $1 ORDER BY idx"),
                &[&name],
            )?
            .iter()
            .map(member_row)
            .collect()
        })?;
        self.checked(found)
    }

    fn claim(
        &mut self,
        worker: &str,
        n: usize,
        stale_ms: i64,
        dead: &[String],
    ) -> Result<Vec<Member>, StoreError> {
        let n = n as i64;
        let dead = dead.to_vec();
        let mut found = self.tx(|tx, name| {
            tx.query(
                &format!(
                    "WITH picked AS ( \
                       SELECT idx FROM qnas_member WHERE study = $1 AND ( \
                         status = 'asked' OR (status = 'running' AND ( \
                           heartbeat_ms IS NULL OR heartbeat_ms < {NOW_MS} - $3 \
                           OR worker = ANY($5)))) \
                       ORDER BY idx LIMIT $2 FOR UPDATE SKIP LOCKED) \
                     UPDATE qnas_member m SET status = 'running', worker = $4, \
                       heartbeat_ms = {NOW_MS}, attempts = m.attempts + 1 \
                     FROM picked WHERE m.study = $1 AND m.idx = picked.idx \
                     RETURNING {}",
                    MEMBER_COLUMNS
                        .split(", ")
                        .map(|c| format!("m.{c}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                &[&name, &n, &stale_ms, &worker, &dead],
            )?
            .iter()
            .map(member_row)
            .collect::<Result<Vec<_>, _>>()
        })?;
        found.sort_by_key(|m| m.as_ref().map_or(i64::MAX, |m| m.idx));
        self.checked(found)
    }

    fn heartbeat(&mut self, worker: &str, idxs: &[i64]) -> Result<(), StoreError> {
        let idxs = idxs.to_vec();
        self.tx(|tx, name| {
            tx.execute(
                &format!(
                    "UPDATE qnas_member SET heartbeat_ms = {NOW_MS} WHERE study = $1 \
                     AND idx = ANY($2) AND worker = $3 AND status = 'running'"
                ),
                &[&name, &idxs, &worker],
            )?;
            Ok(())
        })
    }

    fn complete(&mut self, worker: &str, idx: i64, outcome: Outcome) -> Result<bool, StoreError> {
        let (correct, total) = (outcome.correct as i64, outcome.total as i64);
        self.tx(|tx, name| {
            let n = tx.execute(
                &format!(
                    "UPDATE qnas_member SET status = 'done', worker = $3, correct = $4, \
                     total = $5, error = NULL, heartbeat_ms = {NOW_MS} \
                     WHERE study = $1 AND idx = $2 AND status <> 'done'"
                ),
                &[&name, &idx, &worker, &correct, &total],
            )?;
            Ok(n > 0)
        })
    }

    fn fail(&mut self, worker: &str, idx: i64, message: &str) -> Result<(), StoreError> {
        self.tx(|tx, name| {
            tx.execute(
                "UPDATE qnas_member SET status = 'failed', worker = $3, error = $4 \
                 WHERE study = $1 AND idx = $2 AND status <> 'done'",
                &[&name, &idx, &worker, &message],
            )?;
            Ok(())
        })
    }

    fn running_workers(&mut self) -> Result<Vec<String>, StoreError> {
        self.tx(|tx, name| {
            tx.query(
                "SELECT DISTINCT worker FROM qnas_member WHERE study = $1 AND status = 'running' \
                 AND worker IS NOT NULL ORDER BY worker",
                &[&name],
            )?
            .iter()
            .map(|r| r.try_get(0))
            .collect()
        })
    }

    fn release(&mut self, worker: &str, idxs: &[i64]) -> Result<(), StoreError> {
        let idxs = idxs.to_vec();
        self.tx(|tx, name| {
            tx.execute(
                "UPDATE qnas_member SET status = 'asked', worker = NULL, heartbeat_ms = NULL \
                 WHERE study = $1 AND idx = ANY($2) AND worker = $3 AND status = 'running'",
                &[&name, &idxs, &worker],
            )?;
            Ok(())
        })
    }

    fn finish(&mut self, report: &str) -> Result<(), StoreError> {
        self.tx(|tx, name| {
            tx.execute(
                "UPDATE qnas_study SET report = $2 WHERE name = $1",
                &[&name, &report],
            )?;
            Ok(())
        })
    }
}
