//! qnas search: strategies, Pareto fronts, reports and export, and the `qnas` binary's
//! commands as library functions (the binary only parses arguments and prints).
//!
//! - [`backend`]: the one place where `--device` becomes a `burn::tensor::Device`;
//! - [`bench`]: `qnas bench`, training and inference throughput;
//! - [`export_cmd`]: `qnas export`, front members as standalone model folders;
//! - [`finetune_cmd`]: `qnas finetune`, quantization-aware fine-tuning of an exported model;
//! - [`fsio`]: atomic writes;
//! - [`model_dir`]: exported model folders: writing, reading, `qnas eval`, `qnas predict`;
//! - [`search_cmd`]: `qnas search`, the Pareto front from a trained supernet;
//! - [`space_report`]: `qnas space check` and `qnas space sample`;
//! - [`strategy`]: ask/tell search strategies (no tensors);
//! - [`train_cmd`]: `qnas train`, checkpoints and resume.

pub mod backend;
pub mod bench;
pub mod correlate;
pub mod correlate_plot;
pub mod export_cmd;
pub mod finetune_cmd;
pub mod fsio;
pub mod model_dir;
pub mod pareto;
pub mod png_plot;
pub mod search_cmd;
pub mod space_report;
pub mod strategy;
pub mod train_cmd;
