//! A search's study in its store (`qnas-store`): where it is ([`StudyConfig`]), and the
//! search's settings, state and table read back and checked against the space (damaged
//! contents are an error naming the store, never a panic).

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;
use spaces::Space;
use store::{Storage, Store, StoreError};

use crate::row::Row;
use crate::settings::Settings;

/// The embedded store's file in a search's output folder.
pub const STUDY_FILE: &str = "study.db";

/// The file an earlier qnas saved its search in, before the study store.
pub const LEGACY_STATE_FILE: &str = "state.json";

/// Where a search's study is kept and how its members are shared.
#[derive(Clone, Debug)]
pub struct StudyConfig {
    /// The store.
    pub storage: Storage,
    /// The study's name (one PostgreSQL database holds many; default: the space's name).
    pub name: String,
    /// A running member whose worker sent no heartbeat for this long is handed to another.
    pub stale_after: Duration,
    /// How often a process with nothing to evaluate looks again.
    pub poll: Duration,
}

/// The default time after which a silent worker's members are handed over.
pub const DEFAULT_STALE_AFTER: Duration = Duration::from_secs(60);
/// The default polling interval.
pub const DEFAULT_POLL: Duration = Duration::from_millis(100);

impl StudyConfig {
    /// The default: `OUT/study.db`, the study named after the space.
    pub fn sqlite_in(out_dir: &Path, space: &Space) -> StudyConfig {
        StudyConfig::new(Storage::sqlite_in(out_dir, STUDY_FILE), &space.name)
    }

    /// Study `name` in `storage` with the default timings.
    pub fn new(storage: Storage, name: &str) -> StudyConfig {
        StudyConfig {
            storage,
            name: name.to_string(),
            stale_after: DEFAULT_STALE_AFTER,
            poll: DEFAULT_POLL,
        }
    }

    /// Opens the study's store.
    pub fn open(&self) -> Result<Box<dyn Store>, StoreError> {
        self.storage.open(&self.name)
    }
}

/// Why a study could not be read.
#[derive(Debug, thiserror::Error)]
pub enum StudyError {
    /// The study does not fit (another space, damaged settings, state or rows).
    #[error("{}: {message}", path.display())]
    Bad {
        /// The store (its file, or its address without the password).
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The store could not be reached.
    #[error(transparent)]
    Store(StoreError),
}

impl From<StoreError> for StudyError {
    fn from(e: StoreError) -> Self {
        match e {
            // damaged contents are a damaged saved search, named by its store
            StoreError::Damaged { location, message } => StudyError::Bad {
                path: PathBuf::from(location),
                message,
            },
            other => StudyError::Store(other),
        }
    }
}

/// A study read back and checked.
#[derive(Clone, Debug)]
pub struct Saved<S> {
    /// The settings it was created with.
    pub settings: Settings,
    /// The search's state after its last saved batch.
    pub state: S,
    /// The search's table, in order.
    pub rows: Vec<Row>,
    /// Whether the search finished (it stored its report).
    pub finished: bool,
}

/// The fingerprint a study records for `space`.
pub fn fingerprint(space: &Space) -> String {
    format!("{:016x}", space.fingerprint())
}

/// Creates the study (replacing one of the same name) with its settings and first state.
pub fn create<S: Serialize>(
    store: &mut dyn Store,
    space: &Space,
    settings: &Settings,
    state: &S,
) -> Result<(), StudyError> {
    let settings = to_json(store, settings)?;
    let state = to_json(store, state)?;
    store.create(&store::NewStudy {
        fingerprint: &fingerprint(space),
        settings: &settings,
        state: &state,
    })?;
    Ok(())
}

/// JSON text of a value the search serializes (never fails for the search's own types).
pub fn to_json<T: Serialize>(store: &dyn Store, value: &T) -> Result<String, StudyError> {
    serde_json::to_string(value).map_err(|e| {
        StudyError::Store(StoreError::Failed {
            location: store.location().to_string(),
            message: format!("cannot serialize: {e}"),
        })
    })
}

/// The study in `store`, checked to belong to `space`; `None` when it was not created.
pub fn load<S: DeserializeOwned>(
    store: &mut dyn Store,
    space: &Space,
) -> Result<Option<Saved<S>>, StudyError> {
    let Some(study) = store.study()? else {
        return Ok(None);
    };
    let location = store.location().to_string();
    let bad = |message: String| StudyError::Bad {
        path: PathBuf::from(&location),
        message,
    };
    if study.fingerprint != fingerprint(space) {
        return Err(bad(format!(
            "the saved search (study {:?}) belongs to another space",
            study.name
        )));
    }
    let settings: Settings = serde_json::from_str(&study.settings)
        .map_err(|e| bad(format!("the study's settings: {e}")))?;
    let state: S = serde_json::from_str(&study.state)
        .map_err(|e| bad(format!("not a saved search: the study's state: {e}")))?;
    let mut rows = Vec::new();
    for (i, text) in store.rows()?.iter().enumerate() {
        let r: Row =
            serde_json::from_str(text).map_err(|e| bad(format!("rows[{i}]: not a row: {e}")))?;
        rows.push(r);
    }
    check_rows(space, &rows).map_err(bad)?;
    Ok(Some(Saved {
        settings,
        state,
        rows,
        finished: study.report.is_some(),
    }))
}

/// The rows are trusted from here on (plots, fronts): each must be a member of the space with
/// its costs, and an accuracy between 0 and 1.
fn check_rows(space: &Space, rows: &[Row]) -> Result<(), String> {
    for (i, r) in rows.iter().enumerate() {
        let cost = space.cost(&r.arch).map_err(|e| format!("rows[{i}]: {e}"))?;
        if (r.bitops, r.macs, r.params, r.weight_bits)
            != (cost.bitops, cost.macs, cost.params, cost.weight_bits)
        {
            return Err(format!(
                "rows[{i}]: its costs are not those of its member in this space"
            ));
        }
        if !(r.accuracy.is_nan() || (0.0..=1.0).contains(&r.accuracy)) {
            return Err(format!(
                "rows[{i}]: accuracy {} is not between 0 and 1",
                r.accuracy
            ));
        }
    }
    Ok(())
}

/// The members a search saved in `OUT/study.db` evaluated (baselines included, in the order
/// they were evaluated), and whether it finished; `None` when no search was saved there.
/// Nothing is created when there is none.
pub fn saved_rows(out_dir: &Path, space: &Space) -> Result<Option<(Vec<Row>, bool)>, StudyError> {
    let path = out_dir.join(STUDY_FILE);
    if !path.exists() {
        return Ok(None);
    }
    let mut store = StudyConfig::sqlite_in(out_dir, space).open()?;
    let saved: Option<Saved<serde_json::Value>> = load(store.as_mut(), space)?;
    Ok(saved.map(|s| (s.rows, s.finished)))
}
