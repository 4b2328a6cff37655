//! `qnas correlate`: arguments, progress and the report as a table (the binary's side).

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use qnas_cli::backend::BackendKind;
use qnas_cli::correlate::{
    self, CorrelateOptions, CorrelateProgress, CorrelateReport, EvalSplit, with_interval,
};

#[derive(Debug, Args)]
pub struct CorrelateArgs {
    /// A run folder with a trained supernet and a finished search (or its space file).
    pub target: PathBuf,
    /// Run folder, when TARGET is a space file (default `runs/<space name>`).
    #[arg(long)]
    pub run: Option<PathBuf>,
    /// Members to train alone: every member of the front, then members spread over cost and
    /// accuracy.
    #[arg(long, default_value_t = 16)]
    pub members: usize,
    /// Training steps of each member alone (default: the space's `train.steps`, the recipe the
    /// supernet was trained with).
    #[arg(long)]
    pub steps: Option<u64>,
    /// Trainings of each member alone, with initialization seeds `train.seed`, `train.seed +
    /// 1`, ...: its stand-alone accuracy is their mean, and the table shows their spread
    /// (training noise, which one seed's interval does not hold).
    #[arg(long, default_value_t = 1)]
    pub seeds: usize,
    /// Members trained at the same time (default: the number of cores, at most 4).
    #[arg(long)]
    pub jobs: Option<usize>,
    /// k of the top-k overlap (default: a quarter of the members).
    #[arg(long)]
    pub top_k: Option<usize>,
    /// Bootstrap replicates of every interval.
    #[arg(long, default_value_t = 2000)]
    pub bootstrap: usize,
    /// Seed of the bootstrap.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// The images both accuracies are measured on: `test` (the data set's test files, which
    /// neither training nor the search saw; the default where the data set has them) or
    /// `validation` (where the search ranked its members; its front members' supernet
    /// accuracies there are biased upwards by the choice).
    #[arg(long, value_parser = crate::common::named(&EvalSplit::ALL, EvalSplit::name))]
    pub split: Option<EvalSplit>,
    /// Backend; `wgpu` and `cuda` need a binary built with the cargo feature of that name.
    #[arg(long, value_parser = crate::common::named(&BackendKind::ALL, BackendKind::name), default_value_t = BackendKind::Flex)]
    pub device: BackendKind,
    /// Print the report as JSON (schema `qnas.correlate/2`, see docs/json.md).
    #[arg(long)]
    pub json: bool,
}

/// Progress on stderr: a bar over all members' steps on a terminal, a line per finished
/// member otherwise.
#[derive(Default)]
pub struct Progress {
    bar: Option<ProgressBar>,
    steps: u64,
    members: usize,
    finished: usize,
}

impl CorrelateProgress for Progress {
    fn note(&mut self, message: &str) {
        match &self.bar {
            Some(b) => b.println(message),
            None => eprintln!("{message}"),
        }
    }

    fn begin(&mut self, members: usize, done: usize, steps: u64) {
        self.steps = steps;
        self.members = members;
        self.finished = done;
        eprintln!(
            "{} of {members} stand-alone trainings to run, {steps} steps each ({done} already done)",
            members - done
        );
        if std::io::stderr().is_terminal() && done < members {
            let bar = ProgressBar::new((members - done) as u64 * steps);
            let style = ProgressStyle::with_template(
                "{spinner} [{bar:30}] {pos}/{len} steps {msg} ({elapsed}, eta {eta})",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
            bar.set_style(style);
            self.bar = Some(bar);
        }
    }

    fn step(&mut self, index: usize, step: u64) {
        if step == self.steps {
            self.finished += 1;
            let line = format!(
                "training {} done ({}/{})",
                index + 1,
                self.finished,
                self.members
            );
            match &self.bar {
                Some(b) => b.println(line),
                None => eprintln!("{line}"),
            }
        }
        if let Some(b) = &self.bar {
            b.inc(1);
            b.set_message(format!("{}/{} trainings", self.finished, self.members));
        }
    }

    fn end(&mut self) {
        if let Some(b) = self.bar.take() {
            b.finish_and_clear();
        }
    }
}

fn pct(x: f64) -> String {
    format!("{:.2}%", x * 100.0)
}

/// The report as text.
pub fn table(r: &CorrelateReport) -> String {
    let a = &r.analysis;
    let mut s = format!(
        "supernet vs stand-alone training: {} members of {} evaluated, {} steps each alone ({} seed{}), {} {} images\n\n",
        r.members,
        r.evaluated,
        r.steps,
        r.seeds,
        if r.seeds == 1 { "" } else { "s" },
        r.images,
        r.split.name()
    );
    s += &format!(
        "  Kendall tau-b      {}\n  Spearman rho       {}\n  top-{} overlap      {}\n",
        with_interval(a.kendall_tau_b.as_ref()),
        with_interval(a.spearman_rho.as_ref()),
        a.top_k,
        with_interval(a.top_k_overlap.as_ref())
    );
    let points = |e: Option<&correlate::Estimate>| {
        correlate::signed_points(e, " points").unwrap_or_else(|| "undefined".into())
    };
    s += &format!(
        "  median gap         {}\n  median front gap   {}\n  front within 3 pts {} of {}{}\n",
        points(a.median_gap.as_ref()),
        points(a.median_front_gap.as_ref()),
        a.front_within_3_points,
        a.front_members,
        a.max_abs_front_gap.map_or(String::new(), |g| format!(
            " (largest |gap| {:.2} points)",
            g * 100.0
        ))
    );
    if let Some(sa) = &r.seed_agreement {
        s += &format!(
            "  seed 0 vs seed 1   tau-b {}, rho {}, largest |difference| {:.2} points\n                     (two trainings alone agree this well with each other)\n",
            with_interval(sa.kendall_tau_b.as_ref()),
            with_interval(sa.spearman_rho.as_ref()),
            sa.max_abs_difference * 100.0
        );
    }
    s += &format!(
        "  (95% intervals: {} bootstrap replicates over the {} images and the members; gap = supernet - alone)\n\n",
        a.replicates,
        r.split.name()
    );
    s += &format!(
        "  {:>3} {:>1} {:>11}  {:>7} {:>17}  {:>7} {:>17} {:>7}  {:>26}  {}\n",
        "#",
        "",
        "BitOps",
        "supernet",
        "95% interval",
        "alone",
        "95% interval",
        "seeds±",
        "gap, points [95%]",
        "from"
    );
    for m in &r.results {
        let iv = crate::common::percent_interval;
        let gap = match m.gap.interval {
            Some(i) => format!(
                "{:+6.2} [{:+6.2}, {:+6.2}]",
                m.gap.value * 100.0,
                i.lo * 100.0,
                i.hi * 100.0
            ),
            None => format!("{:+6.2}", m.gap.value * 100.0),
        };
        let spread = if m.alone.seeds.len() > 1 {
            format!("{:.2}", m.alone.spread * 100.0)
        } else {
            "-".to_string()
        };
        s += &format!(
            "  {:>3} {:>1} {:>11.4e}  {:>7} {:>17}  {:>7} {:>17} {:>7}  {:>26}  {}\n",
            m.index,
            if m.front { "*" } else { "" },
            m.bitops as f64,
            pct(m.supernet.accuracy),
            iv(m.supernet.interval),
            pct(m.alone.accuracy),
            iv(m.alone.interval),
            spread,
            gap,
            m.origin
        );
    }
    s += &format!(
        "\n  * member of the search's front; seeds±: largest minus smallest stand-alone accuracy over the seeds, points\nplot: {}\ntables: {} and {}\n",
        r.out_dir.join("correlate.svg").display(),
        r.out_dir.join("correlate.csv").display(),
        r.out_dir.join(correlate::REPORT_FILE).display()
    );
    s
}

/// Runs `qnas correlate`.
pub fn run(a: &CorrelateArgs) -> ExitCode {
    let device = match crate::common::device(a.device, a.json) {
        Ok(d) => d,
        Err(code) => return code,
    };
    let opts = CorrelateOptions {
        target: a.target.clone(),
        run_dir: a.run.clone(),
        members: a.members,
        steps: a.steps,
        seeds: a.seeds,
        jobs: a.jobs,
        top_k: a.top_k,
        replicates: a.bootstrap,
        seed: a.seed,
        split: a.split,
        device,
        folders: Default::default(),
    };
    let mut progress = Progress {
        bar: None,
        steps: 0,
        members: 0,
        finished: 0,
    };
    match correlate::correlate(&opts, &mut progress) {
        Ok(report) => {
            // the run's page, when it has one, shows the new figures
            let run = qnas_cli::run_dir::RunDir::new(&report.run_dir);
            let page = run.path().join(qnas_cli::report::REPORT_FILE);
            if report.out_dir == run.correlate_dir() && page.exists() {
                if let Err(e) = qnas_cli::report::write_report(run.path()) {
                    return crate::common::fail(a.json, &page.display().to_string(), e);
                }
                eprintln!("report: {}", page.display());
            }
            crate::common::emit(a.json, &report, table)
        }
        Err(e) => {
            progress.end();
            crate::common::fail(a.json, &a.target.display().to_string(), e)
        }
    }
}
