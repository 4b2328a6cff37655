//! `qnas finetune`: arguments, progress bar and report (the binary's side).

use std::path::PathBuf;
use std::process::ExitCode;

use crate::common::Outcome;
use clap::Args;
use qnas_cli::backend::BackendKind;
use qnas_cli::finetune_cmd::{self, FinetuneOptions, FinetuneReport};

#[derive(Debug, Args)]
pub struct FinetuneArgs {
    /// An exported model folder (`qnas export`); it is only read.
    pub model: PathBuf,
    /// SGD steps (cosine learning-rate decay to 0 over them).
    #[arg(long, required = true)]
    pub steps: u64,
    /// Peak learning rate (default: 0.1 x the space's `train.optimizer` learning rate).
    #[arg(long)]
    pub lr: Option<f64>,
    /// Training batch size (default: the space's `train.batch_size`).
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// Seed of the shuffling and augmentation of the training batches.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Output folder (default: `<MODEL>-ft<STEPS>` next to MODEL); never the input folder.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Backend; `wgpu` and `cuda` need a binary built with the cargo feature of that name.
    #[arg(long, value_parser = crate::common::named(&BackendKind::ALL, BackendKind::name), default_value_t = BackendKind::Flex)]
    pub device: BackendKind,
    /// Print the report as JSON (schema `qnas.finetune/1`, see docs/json.md).
    #[arg(long)]
    pub json: bool,
}

/// The before/after table.
pub fn finetune_table(r: &FinetuneReport) -> String {
    let cell = crate::common::measured_cell;
    let mut s = format!(
        "fine-tuned {} for {} steps (lr {}, batch {}) in {:.1} s; last loss {:.3}\nwrote {}\n\n",
        r.model.display(),
        r.steps,
        r.lr,
        r.batch_size,
        r.seconds,
        r.final_loss,
        r.out.display()
    );
    s += &format!(
        "  {:<10}  {:<40}  {}\n",
        "", "before (95% interval)", "after (95% interval)"
    );
    s += &format!(
        "  {:<10}  {:<40}  {}\n",
        "validation",
        cell(&r.before.validation),
        cell(&r.after.validation)
    );
    s += &format!(
        "  {:<10}  {:<40}  {}\n",
        "test",
        cell(&r.before.test),
        cell(&r.after.test)
    );
    s += &format!(
        "  {:<10}  {:>7.2}%  (supernet member, validation)\n",
        "search",
        r.before.search * 100.0
    );
    s
}

/// Runs `qnas finetune`.
pub fn run(a: &FinetuneArgs) -> ExitCode {
    let device = match crate::common::device(a.device, a.json) {
        Ok(d) => d,
        Err(code) => return code,
    };
    let opts = FinetuneOptions {
        model: a.model.clone(),
        out: a.out.clone(),
        steps: a.steps,
        lr: a.lr,
        batch_size: a.batch_size,
        seed: a.seed,
        device,
    };
    match finetune_cmd::finetune(&opts, &mut crate::cli_train::Bar::default()) {
        Ok(r) => {
            if a.json {
                println!("{}", serde_json::to_string_pretty(&r).unwrap_or_default());
            } else {
                print!("{}", finetune_table(&r));
            }
            Outcome::Success.into()
        }
        Err(e) => crate::common::fail(a.json, &a.model.display().to_string(), e),
    }
}
