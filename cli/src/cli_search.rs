//! `qnas search`: arguments, progress and the front as a table (the binary's side).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use qnas_cli::backend::BackendKind;
use qnas_cli::search_cmd::{self, SearchOptions};
use qnas_cli::worker_cmd::StoreOptions;
use search::origin::{STRATEGIES, strategy_name};
use search::settings::Overrides;
use search::{Row, SearchProgress, SearchReport};
use spaces::SearchStrategy;

#[derive(Debug, Args)]
pub struct SearchArgs {
    /// The space file the supernet was trained on (`qnas train FILE`).
    pub file: PathBuf,
    /// Run folder (default `runs/<space name>`).
    #[arg(long)]
    pub run: Option<PathBuf>,
    /// Search strategy (default: the file's `search.strategy`, else nsga2).
    #[arg(long, value_parser = crate::common::named(&STRATEGIES, strategy_name))]
    pub strategy: Option<SearchStrategy>,
    /// Members to evaluate besides the uniform-precision baselines, per target for FLIQS
    /// (default: `search.budget`, else 64).
    #[arg(long)]
    pub budget: Option<usize>,
    /// Seed (default: `search.seed`).
    #[arg(long)]
    pub seed: Option<u64>,
    /// FLIQS cost targets, one search each: up to 1 a fraction of the largest member's BitOps,
    /// above 1 a BitOps budget; separate with commas (default: `search.targets`, else 0.25).
    #[arg(long = "target", value_delimiter = ',')]
    pub targets: Option<Vec<f64>>,
    /// FLIQS training mode: the supernet keeps training on the policy's members while the
    /// policy converges (one fine-tuned copy per target, saved next to the results).
    #[arg(long)]
    pub fliqs_train: bool,
    /// Continue a saved search.
    #[arg(long)]
    pub resume: bool,
    #[command(flatten)]
    pub store: StoreArgs,
    /// Backend; `wgpu` and `cuda` need a binary built with the cargo feature of that name.
    #[arg(long, value_parser = crate::common::named(&BackendKind::ALL, BackendKind::name), default_value_t = BackendKind::Flex)]
    pub device: BackendKind,
    /// Evaluate members on these devices at once, comma separated, all of one backend: one
    /// evaluation worker per device, each with its own copy of the supernet, e.g.
    /// `cuda:0,cuda:1`, or `flex,flex` (two workers on the CPU).
    #[arg(long, value_name = "LIST", conflicts_with = "device")]
    pub devices: Option<String>,
    /// Print the front as JSON (schema `qnas.search/1`, see docs/json.md).
    #[arg(long)]
    pub json: bool,
}

/// Where a study is kept and how its members are shared (`qnas search` and `qnas worker`).
#[derive(Debug, Args)]
pub struct StoreArgs {
    /// The study's store: a SQLite file (`sqlite:PATH` or a path; default RUN/search/study.db)
    /// or a PostgreSQL database (`postgres://USER@HOST:PORT/DATABASE`) that `qnas worker`s on
    /// other machines reach.
    #[arg(long, value_name = "URL")]
    pub storage: Option<String>,
    /// The study's name in the store (default: the space's name); search and workers must
    /// agree.
    #[arg(long, value_name = "NAME")]
    pub study: Option<String>,
    /// Seconds without a heartbeat after which a member being evaluated is handed to another
    /// process (default 60; a process on this machine that ended is noticed at once).
    #[arg(long, value_name = "SECONDS", value_parser = crate::common::positive_seconds)]
    pub stale_after: Option<std::time::Duration>,
    /// Threads of this process (its parallel evaluations, up to 4, and the kernels' pool;
    /// default: every core).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    pub threads: Option<u16>,
}

impl StoreArgs {
    /// The library's options.
    pub fn options(&self) -> StoreOptions {
        StoreOptions {
            storage: self.storage.clone(),
            study: self.study.clone(),
            stale_after: self.stale_after,
        }
    }

    /// Sizes the thread pool; the number of members evaluated at once.
    pub fn parallel(&self) -> Option<usize> {
        self.threads.map(|n| {
            crate::common::set_threads(n as usize);
            (n as usize).min(4)
        })
    }
}

/// Progress: one line per evaluated member on stderr.
#[derive(Default)]
pub struct Lines;

impl SearchProgress for Lines {
    fn evaluated(&mut self, done: usize, total: usize, last: &Row) {
        eprintln!(
            "[{done}/{total}] {:<24} accuracy {:>6.2}%  BitOps {:.3e}",
            last.origin,
            last.accuracy * 100.0,
            last.bitops as f64
        );
    }

    fn note(&mut self, message: &str) {
        eprintln!("{message}");
    }
}

/// A row's 95% interval in percent, `[a%, b%]`, or blank when it has none.
fn interval(row: &Row) -> String {
    row.interval
        .map_or(String::new(), crate::common::percent_interval)
}

/// The front and the baselines as a table.
pub fn table(r: &SearchReport) -> String {
    let mut s = format!(
        "Pareto front ({} of {} evaluated members), hypervolume {:.4}:\n",
        r.front.len(),
        r.evaluated,
        r.hypervolume
    );
    s += &format!(
        "  {:>3}  {:>8}  {:>17}    {:>12}  {:>10}  {:>9}  {}\n",
        "#", "accuracy", "95% interval", "BitOps", "MACs", "params", "from"
    );
    let overlaps = search::row::overlaps_cheaper(&r.front);
    for (i, row) in r.front.iter().enumerate() {
        s += &format!(
            "  {:>3}  {:>7.2}%  {:>17} {:>2} {:>12.4e}  {:>10}  {:>9}  {}\n",
            i + 1,
            row.accuracy * 100.0,
            interval(row),
            if overlaps[i] { "~" } else { "" },
            row.bitops as f64,
            row.macs,
            row.params,
            row.origin
        );
    }
    if overlaps.iter().any(|&o| o) {
        s += &format!(
            "  ~ its 95% interval overlaps a cheaper front member's: on these {} validation images the\n    gain over that cheaper member is not distinguishable from noise\n",
            r.front.iter().map(|x| x.samples).max().unwrap_or(0)
        );
    }
    s += "\nuniform-precision baselines:\n";
    for row in &r.baselines {
        s += &format!(
            "  {:>7.2}%  {:>17}  {:>12.4e}  {}\n",
            row.accuracy * 100.0,
            interval(row),
            row.bitops as f64,
            search::plot::baseline_label(&row.origin)
        );
    }
    if !r.policies.is_empty() {
        s += "\nFLIQS policies:\n";
    }
    for p in &r.policies {
        s += &format!(
            "  target {} ({:.4e} BitOps): argmax {:.4e} BitOps ({:.2}x the target); entropy {:.3} of {:.3} nats; argmax unchanged over the last {} of {} updates{}\n",
            p.target,
            p.target_bitops,
            p.argmax_bitops as f64,
            p.cost_ratio,
            p.entropy,
            p.max_entropy,
            p.stable_steps,
            p.steps,
            if p.stable {
                " (stable)"
            } else {
                " (NOT stable: more steps?)"
            }
        );
    }
    s += &format!(
        "\nplot: {}\ntables: {} and {}\nexport models: qnas export {} --pick <#>\n",
        r.out_dir.join("pareto.svg").display(),
        r.out_dir.join("pareto.csv").display(),
        r.out_dir.join("evaluated.csv").display(),
        r.out_dir.parent().unwrap_or(&r.out_dir).display()
    );
    s
}

/// Runs `qnas search`.
pub fn run(a: &SearchArgs) -> ExitCode {
    let device = match crate::common::device(a.device, a.json) {
        Ok(d) => d,
        Err(code) => return code,
    };
    let devices = match crate::common::device_list(a.devices.as_deref(), a.json) {
        Ok(d) => d,
        Err(code) => return code,
    };
    let opts = SearchOptions {
        file: a.file.clone(),
        run_dir: a.run.clone(),
        overrides: Overrides {
            strategy: a.strategy,
            budget: a.budget,
            seed: a.seed,
            targets: a.targets.clone(),
            fliqs_training: a.fliqs_train,
            hawq: None,
        },
        resume: a.resume,
        device: devices.first().unwrap_or(&device).clone(),
        out_dir: None,
        store: a.store.options(),
        parallel: a.store.parallel(),
        devices,
    };
    match search_cmd::search(&opts, &mut Lines) {
        Ok(report) => crate::common::emit(a.json, &report, table),
        Err(e) => crate::common::fail(a.json, &a.file.display().to_string(), e),
    }
}
