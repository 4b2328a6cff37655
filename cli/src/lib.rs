//! The stage drivers of the `qnas` binary, as library functions: each opens what it needs (a
//! space, a run folder, a checkpoint), does its work through the library crates and returns a
//! report; progress goes through a trait. Nothing here prints or exits: the binary
//! (`main.rs` and its modules) does.
//!
//! - [`setup`]: the data set and the trained supernet of a run, and [`setup::SetupError`];
//! - [`run_dir`]: [`run_dir::RunDir`], every path of a run folder, and `train.json` typed;
//! - [`train_cmd`]: `qnas train`, checkpoints and resume;
//! - [`search_cmd`]: `qnas search` (the loop is the `search` crate's);
//! - [`worker_cmd`]: `qnas worker`, members of a shared study evaluated on this machine, and
//!   the storage options search and worker share;
//! - [`export_cmd`]: `qnas export`, front members as standalone model folders;
//! - [`model_dir`]: exported model folders: writing, reading, `qnas eval`, `qnas predict`;
//! - [`finetune_cmd`]: `qnas finetune`, quantization-aware fine-tuning of an exported model;
//! - [`correlate`]: `qnas correlate`, the supernet against stand-alone training;
//! - [`experiment`]: `qnas experiment`, a claim of the papers run and reported;
//! - [`bench`]: `qnas bench`, training and inference throughput;
//! - [`report`]: `qnas report`, the run's self-contained HTML page;
//! - [`space_report`]: `qnas space check` and `qnas space sample`;
//! - [`backend`]: the one place where `--device` becomes a `burn::tensor::Device`.

pub mod backend;
pub mod bench;
pub mod correlate;
pub mod experiment;
pub mod export_cmd;
pub mod finetune_cmd;
pub mod lock;
pub mod model_dir;
pub mod report;
pub mod run_dir;
pub mod search_cmd;
pub mod setup;
pub mod space_report;
pub mod train_cmd;
pub mod worker_cmd;
