//! `qnas train`: arguments, progress bar and report (the binary's side).

use std::path::PathBuf;
use std::process::ExitCode;

use crate::common::Outcome;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use qnas_cli::backend::BackendKind;
use qnas_cli::finetune_cmd::FinetuneProgress;
use qnas_cli::run_dir::TrainSummary;
use qnas_cli::train_cmd::{self, TrainOptions, TrainProgress};
use supernet::StepReport;

#[derive(Debug, Args)]
pub struct TrainArgs {
    /// The space file (RON) with its `data` and `train` sections.
    pub file: PathBuf,
    /// Run folder (default `runs/<space name>`).
    #[arg(long)]
    pub run: Option<PathBuf>,
    /// Continue from the last good checkpoint of the run folder.
    #[arg(long, conflicts_with = "restart")]
    pub resume: bool,
    /// Delete the run folder's checkpoints and metrics and start over.
    #[arg(long)]
    pub restart: bool,
    /// Train this many steps in all (overrides `train.steps`).
    #[arg(long)]
    pub steps: Option<u64>,
    /// Train this member alone from scratch instead of the supernet: an arch file (RON or
    /// JSON) of the space, e.g. from `qnas space sample` or `arch.ron` of an exported model.
    /// Its formats are fake-quantized from the first step, with the space's `train` recipe and
    /// no distillation; default run folder `runs/<space>-alone-<fingerprint>`.
    #[arg(long, value_name = "ARCH")]
    pub arch: Option<PathBuf>,
    /// Backend; `wgpu` and `cuda` need a binary built with the cargo feature of that name.
    #[arg(long, value_parser = crate::common::named(&BackendKind::ALL, BackendKind::name), default_value_t = BackendKind::Flex)]
    pub device: BackendKind,
    /// Train data-parallel on these devices, comma separated, all of one backend (overrides
    /// `train.devices`): each step's batch is split over them, one supernet replica each, and
    /// the gradients are summed on the first, e.g. `cuda:0,cuda:1`, or `flex,flex` (two
    /// replicas on the CPU's one flex device).
    #[arg(long, value_name = "LIST", conflicts_with = "device")]
    pub devices: Option<String>,
    /// Print the summary as JSON (schema `qnas.train/1`, see docs/json.md).
    #[arg(long)]
    pub json: bool,
}

/// Progress on stderr: a bar on a terminal, a line every few steps otherwise (training and
/// fine-tuning).
#[derive(Default)]
pub struct Bar {
    bar: Option<ProgressBar>,
    every: u64,
}

impl Bar {
    /// Starts a bar of `total` steps at `start`; true when it is drawn (stderr is a terminal).
    fn start(&mut self, total: u64, start: u64) -> bool {
        use std::io::IsTerminal;
        self.every = (total / 20).max(1);
        if !std::io::stderr().is_terminal() {
            return false;
        }
        let bar = ProgressBar::new(total);
        bar.set_position(start);
        let style = ProgressStyle::with_template(
            "{spinner} [{bar:30}] step {pos}/{len} {msg} ({elapsed}, eta {eta})",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
        bar.set_style(style);
        self.bar = Some(bar);
        true
    }

    /// Step `step` done, described by `msg`.
    fn show(&self, step: u64, msg: String) {
        match &self.bar {
            Some(bar) => {
                bar.set_position(step);
                bar.set_message(msg);
            }
            None if step.is_multiple_of(self.every) => eprintln!("step {step}: {msg}"),
            None => {}
        }
    }

    fn println(&self, message: &str) {
        match &self.bar {
            Some(bar) => bar.println(message),
            None => eprintln!("{message}"),
        }
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

impl TrainProgress for Bar {
    fn begin(&mut self, total: u64, start: u64) {
        if !self.start(total, start) {
            eprintln!("training from step {start} to {total}");
        }
    }

    fn step(&mut self, r: &StepReport, ips: f64) {
        let msg = format!(
            "loss {:.3}, largest {:.0}%, smallest {:.0}%, {:.0} img/s",
            r.largest_loss,
            r.largest_accuracy * 100.0,
            r.smallest_accuracy * 100.0,
            ips
        );
        self.show(r.step, msg);
    }

    fn note(&mut self, message: &str) {
        self.println(message);
    }

    fn end(&mut self) {
        self.finish();
    }
}

impl FinetuneProgress for Bar {
    fn begin(&mut self, total: u64) {
        self.start(total, 0);
    }

    fn step(&mut self, step: u64, loss: f64) {
        self.show(step, format!("loss {loss:.3}"));
    }

    fn note(&mut self, message: &str) {
        self.println(message);
    }

    fn end(&mut self) {
        self.finish();
    }
}

fn text(s: &TrainSummary) -> String {
    let mut out = format!(
        "trained `{}` to step {} in {:.1} s ({:.0} img/s{})\nrun folder: {}\ncheckpoint: {}\n\n",
        s.space,
        s.steps,
        s.seconds,
        s.images_per_second,
        if s.resumed_from > 0 {
            format!(", resumed from step {}", s.resumed_from)
        } else {
            String::new()
        },
        s.run_dir.display(),
        s.checkpoint.display()
    );
    if let Some(alone) = &s.alone {
        out += "the member alone, after BN recalibration (95% interval):\n";
        for (split, m) in [("validation", &alone.validation), ("test", &alone.test)] {
            out += &format!("  {split:<20} {}\n", crate::common::measured_cell(m));
        }
        return out;
    }
    out += "validation accuracy after BN recalibration (95% interval):\n";
    for m in &s.members {
        out += &format!(
            "  {:<20} {}\n",
            m.name,
            crate::common::measured_cell(&m.validation)
        );
    }
    if let Some(mix) = &s.mixture {
        out += "\nbalanced mixture: p(supernet | pooling configuration)\n";
        for (c, row) in mix.conditional.iter().enumerate() {
            let cells: Vec<String> = row.iter().map(|p| format!("{p:.3}")).collect();
            out += &format!(
                "  {:<24} {}  -> supernet {}\n",
                mix.configurations[c],
                cells.join(" "),
                mix.assignments[c]
            );
        }
        let marg: Vec<String> = mix.marginal.iter().map(|p| format!("{p:.4}")).collect();
        out += &format!("  marginal                 {}\n", marg.join(" "));
    }
    out
}

/// Runs `qnas train`.
pub fn run(a: &TrainArgs) -> ExitCode {
    let device = match crate::common::device(a.device, a.json) {
        Ok(d) => d,
        Err(code) => return code,
    };
    let opts = TrainOptions {
        file: a.file.clone(),
        run_dir: a.run.clone(),
        resume: a.resume,
        restart: a.restart,
        steps: a.steps,
        device,
        arch: a.arch.clone(),
        devices: a
            .devices
            .as_ref()
            .map(|l| l.split(',').map(str::to_string).collect()),
    };
    let mut bar = Bar {
        bar: None,
        every: 1,
    };
    match train_cmd::train(&opts, &mut bar) {
        Ok(summary) => {
            if a.json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&summary).unwrap_or_default()
                );
            } else {
                print!("{}", text(&summary));
            }
            Outcome::Success.into()
        }
        Err(e) => {
            bar.finish();
            crate::common::fail(a.json, &a.file.display().to_string(), e)
        }
    }
}
