//! The `qnas` binary: argument parsing lives in `cli.rs`; this file only hands over.
#![allow(clippy::print_stdout, clippy::print_stderr)]

mod cli;
mod cli_correlate;
mod cli_finetune;
mod cli_model;
mod cli_run;
mod cli_search;
mod cli_train;

fn main() -> std::process::ExitCode {
    cli::main()
}
