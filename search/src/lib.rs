//! qnas search: everything of a search that needs no tensors. Spaces in; ask/tell strategies,
//! the search loop over an [`Evaluator`](driver::Evaluator), Pareto fronts, hypervolume and the
//! search's reports and plots out. burn is not in this crate's dependency tree (a test checks),
//! so strategies and the loop are tested against tables of known accuracies.
//!
//! - [`strategy`]: ask/tell strategies (`random`, `exhaustive`, `nsga2`, `fliqs`);
//! - [`trial`]: what a strategy is told of one member;
//! - [`settings`]: the effective settings of a search and the strategy of each stage;
//! - [`driver`]: the search loop, its report and outputs;
//! - [`evaluator`]: what the search needs of the supernet (the [`Evaluator`] trait);
//! - [`study`]: the search's study in its store (`qnas-store`: SQLite or PostgreSQL), where
//!   it is and its contents read back and checked;
//! - [`worker`]: claiming, evaluating and recording a study's members (`qnas search` between
//!   its asks, `qnas worker` on any machine);
//! - [`origin`]: where a member came from;
//! - [`row`]: one evaluated member, fronts of rows, the baselines of a space, CSV;
//! - [`pareto`]: dominance, non-dominated sorting, crowding, hypervolume;
//! - [`plot`]: the figures of a search, a training, `qnas correlate` and `qnas experiment`
//!   (plotters; each as SVG and PNG from one drawing);
//! - [`fsio`]: atomic writes.
//!
//! A saved search that is damaged gives an error naming its store (`study.db`), never a
//! panic: `tests/state_fuzz.rs` reads and resumes seeded mutations of real studies (1,200
//! cases in `cargo test`). A longer campaign:
//! `QNAS_FUZZ_CASES=20000 cargo test --release -p qnas-search --test state_fuzz`.

pub mod driver;
pub mod evaluator;
pub mod fsio;
pub mod origin;
pub mod pareto;
pub mod plot;
pub mod row;
pub mod settings;
pub mod strategy;
pub mod study;
pub mod trial;
pub mod worker;

pub use driver::{
    EvaluationError, Evaluator, PolicyTraining, SearchError, SearchProgress, SearchReport, search,
};
pub use origin::Origin;
pub use row::Row;
pub use settings::Settings;
pub use store::{Storage, StoreError};
pub use study::StudyConfig;
