//! Where a study is stored: a storage address (`--storage`) parsed, shown without its
//! password, and opened.

use std::path::{Path, PathBuf};

use crate::{Store, StoreError, redact};

/// A storage address.
#[derive(Clone, PartialEq, Eq)]
pub enum Storage {
    /// A SQLite file (`sqlite:PATH`, `sqlite://PATH` or a plain path).
    Sqlite(PathBuf),
    /// A PostgreSQL database (`postgres://...` or `postgresql://...`, libpq's URL form).
    Postgres(String),
}

impl std::fmt::Debug for Storage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Storage({})", self.display())
    }
}

impl Storage {
    /// Parses an address given on the command line.
    pub fn parse(url: &str) -> Result<Storage, StoreError> {
        let bad = |message: &str| StoreError::BadUrl {
            url: redact(url),
            message: message.to_string(),
        };
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let rest = url.split_once("://").map_or("", |(_, r)| r);
            if rest.is_empty() {
                return Err(bad("no host or database after postgres://"));
            }
            return Ok(Storage::Postgres(url.to_string()));
        }
        let path = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
            .unwrap_or(url);
        if let Some((scheme, _)) = url.split_once("://")
            && scheme != "sqlite"
        {
            return Err(bad(&format!(
                "unknown storage {scheme:?}: give a SQLite file (sqlite:PATH or a path) or a \
                 PostgreSQL address (postgres://USER@HOST:PORT/DATABASE)"
            )));
        }
        if path.is_empty() {
            return Err(bad("no file after sqlite:"));
        }
        Ok(Storage::Sqlite(PathBuf::from(path)))
    }

    /// The SQLite file `file` in `dir` (the default: `RUN/search/study.db`).
    pub fn sqlite_in(dir: &Path, file: &str) -> Storage {
        Storage::Sqlite(dir.join(file))
    }

    /// The address for messages and reports: a file's path, or the URL without its password.
    pub fn display(&self) -> String {
        match self {
            Storage::Sqlite(p) => p.display().to_string(),
            Storage::Postgres(u) => redact(u),
        }
    }

    /// Opens study `study` (creating the tables, and for SQLite the file, when missing).
    pub fn open(&self, study: &str) -> Result<Box<dyn Store>, StoreError> {
        Ok(match self {
            Storage::Sqlite(p) => Box::new(crate::sqlite::SqliteStore::open(p, study)?),
            Storage::Postgres(u) => Box::new(crate::postgres::PostgresStore::open(u, study)?),
        })
    }

    /// Whether a study may already be stored there without opening it: for SQLite, whether the
    /// file exists; a database is assumed to.
    pub fn may_hold_study(&self) -> bool {
        match self {
            Storage::Sqlite(p) => p.exists(),
            Storage::Postgres(_) => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_parse_and_hide_passwords() {
        assert_eq!(
            Storage::parse("runs/a/search/study.db").unwrap(),
            Storage::Sqlite("runs/a/search/study.db".into())
        );
        assert_eq!(
            Storage::parse("sqlite:/tmp/x.db").unwrap(),
            Storage::Sqlite("/tmp/x.db".into())
        );
        assert_eq!(
            Storage::parse("sqlite:///tmp/x.db").unwrap(),
            Storage::Sqlite("/tmp/x.db".into())
        );
        let pg = Storage::parse("postgres://qnas:secret@db.lan:5432/studies").unwrap();
        assert_eq!(pg.display(), "postgres://qnas:***@db.lan:5432/studies");
        let q =
            Storage::parse("postgresql://qnas@db/studies?password=secret&sslmode=disable").unwrap();
        assert_eq!(
            q.display(),
            "postgresql://qnas@db/studies?password=***&sslmode=disable"
        );
        let e = Storage::parse("mysql://u:pw@h/db").unwrap_err();
        assert!(e.is_invalid_input());
        assert!(e.to_string().contains("mysql://u:***@h/db"), "{e}");
        assert!(!e.to_string().contains("pw"), "{e}");
        assert!(Storage::parse("sqlite:").is_err());
        assert!(Storage::parse("postgres://").is_err());
    }
}
