//! `tokbench`: the binary. Clap commands that wire the runner to the store and the store to
//! the terminal. Library crates hold the logic; this file holds arguments, context and exit
//! codes.

/// `print!` for output a reader may stop reading (`tokbench hardware | head -2`): an error
/// instead of a panic when stdout is closed, which `main` turns into a quiet exit 0.
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::exit::write_stdout(format_args!($($arg)*))
    };
}

/// `println!`, the same way as [`out!`].
macro_rules! outln {
    () => {
        $crate::exit::write_stdout(format_args!("\n"))
    };
    ($($arg:tt)*) => {
        $crate::exit::write_stdout(format_args!("{}\n", format_args!($($arg)*)))
    };
}

mod backends;
mod check;
mod compare;
mod doctor;
mod eta;
mod exit;
mod fit;
mod front;
mod hardware;
mod import;
mod machine;
mod merge;
mod models;
mod output;
mod prune;
mod remote;
mod report;
mod run;
mod snapshot;
mod targets;
mod telemetry;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};

use crate::exit::ExitCode;

#[derive(Debug, Parser)]
#[command(
    name = "tokbench",
    version,
    about = "Benchmark local LLM inference (prefill and generation tok/s, TTFT, memory) and keep every result in SQLite.",
    after_help = "Examples:\n  tokbench run                                # the built-in default suite (bench-configs/smoke.toml)\n  tokbench run -m model.gguf -p 512 -n 128 -fa 0,1   # llama-bench's flags\n  tokbench results                            # the newest run as a table\n  tokbench query \"SELECT test, decode_tps FROM v_results\"\n  tokbench model inspect model.gguf\n\nExit codes: 0 ok, 1 tool error, 2 bad input (suite, model file, arguments), 4 some benchmark failed, 130 interrupted."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// One output vocabulary for every command, as llama-bench's `-o`: `table` for a person,
/// `md` (or `markdown`) for a pull request or job summary, `csv`, `json`, `jsonl` (one
/// object per line) and `sql` (`CREATE TABLE` and `INSERT`s) for tools. Not every command
/// writes every format; one that cannot says which it can.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Table,
    #[value(alias = "markdown")]
    Md,
    Csv,
    Json,
    Jsonl,
    Sql,
}

impl Format {
    /// The format's name as `--format` takes it.
    pub fn name(self) -> &'static str {
        match self {
            Format::Table => "table",
            Format::Md => "md",
            Format::Csv => "csv",
            Format::Json => "json",
            Format::Jsonl => "jsonl",
            Format::Sql => "sql",
        }
    }

    /// `Ok` when `command` writes this format, else an error listing what it writes.
    pub fn require(self, command: &str, writes: &[Format]) -> Result<(), exit::BadInput> {
        if writes.contains(&self) {
            return Ok(());
        }
        let names: Vec<&str> = writes.iter().map(|f| f.name()).collect();
        Err(exit::BadInput(format!(
            "tokbench {command} --format {}: not available; {command} writes {}",
            self.name(),
            names.join(", ")
        )))
    }
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a benchmark suite and store every result.
    #[command(
        after_help = "Examples:\n  tokbench run                                   # the built-in smoke suite\n  tokbench run model.gguf                        # pp512 and tg128, 5 repetitions\n  tokbench run -m a.gguf -m b.gguf -p 512 -n 128 -pg 512,128 -d 0,4096 -r 5 -t 4,8 -ngl 99 -fa 0,1 -ctk q8_0 -ub 256,512\n  tokbench run bench-configs/nightly.toml -r 10 -o csv   # a suite, with 10 repetitions\n  tokbench run --resume 5f0c…                    # finish an interrupted run\n\nLists make axes, as in llama-bench: -fa 0,1 runs every test with and without flash attention."
    )]
    Run(Box<run::RunArgs>),
    /// Show the results of the newest run (or of one run).
    #[command(
        after_help = "Examples:\n  tokbench results\n  tokbench results --run 5f0c… --format csv"
    )]
    Results(output::ResultsArgs),
    /// Run one read-only SQL statement against the database.
    #[command(
        after_help = "Examples:\n  tokbench query \"SELECT model, quant, test, decode_tps FROM v_results WHERE status = 'ok'\"\n  tokbench query --format json \"SELECT * FROM v_results LIMIT 5\"\n\nWrites, schema changes and ATTACH are refused."
    )]
    Query(output::QueryArgs),
    /// Inspect or synthesize GGUF models.
    #[command(subcommand)]
    Model(models::ModelCommand),
    /// Does a model fit? Weights, KV cache and compute buffer from the real architecture,
    /// per quantization and context length, against the hardware catalog; with --db, the
    /// prediction beside the memory stored results really took.
    #[command(
        after_help = "Examples:\n  tokbench fit --arch llama-3.1-405b --ctx 4096,32768 --format json\n  tokbench fit --gguf model.gguf --ctx 8192 --ctk q8_0 --ctv q8_0 --fa\n  tokbench fit --params layers=32,embd=4096,heads=32,kv_heads=8,ffn=14336,vocab=128256 --hardware \"2x GeForce RTX 5090\"\n  tokbench fit --db tokbench.db --format markdown   # predicted vs measured"
    )]
    Fit(fit::FitArgs),
    /// Regenerate the reports: leaderboard, quantization and picks tables (Markdown), CSV,
    /// JSON, plots (SVG, PNG) and a self-contained index.html, from the newest result of
    /// each series in the database.
    #[command(
        after_help = "Examples:\n  tokbench report\n  tokbench report --db nightly.db --out site/ --model synth:tiny --since 2026-11-01\n  tokbench report --quant Q4_K_M --quant Q8_0 --budget 1000,2500"
    )]
    Report(report::ReportArgs),
    /// Judge a run against the history of its series; re-measure suspects; exit 3 on a
    /// confirmed regression.
    #[command(
        after_help = "Examples:\n  tokbench check                      # the newest run\n  tokbench check --run 5f0c --format markdown >> $GITHUB_STEP_SUMMARY\n  tokbench check --accept latest --note \"driver 560: new normal\"\n\nExit codes: 0 ok, 1 tool error, 2 usage, 3 confirmed regression, 4 some benchmark failed.\nVerdicts are stored (table `verdict`) before exiting."
    )]
    Check(check::CheckArgs),
    /// Compare two runs, two backend builds or two hosts, series by series.
    #[command(
        after_help = "Examples:\n  tokbench compare previous latest\n  tokbench compare 5f0c 9a1e --format markdown\n  tokbench compare \"build:llama-cpp-2 0.1.159\" \"build:llama-cpp-2 0.1.160\"\n  tokbench compare host:box-a host:box-b"
    )]
    Compare(compare::CompareArgs),
    /// Merge databases into one: idempotent (run UUIDs identify runs), all or nothing.
    #[command(
        after_help = "Examples:\n  tokbench merge box-a.db box-b.db --into fleet.db\n\nA source with a newer schema is refused; sources are never written."
    )]
    Merge(merge::MergeArgs),
    /// Import llama-bench output (-o json, jsonl or sql): one run per file, idempotent.
    #[command(
        after_help = "Examples:\n  llama-bench -m model.gguf -o json > lb.json && tokbench import lb.json --host box-a\n  tokbench import results.sql --source \"llama.cpp discussion #4167\""
    )]
    Import(import::ImportArgs),
    /// Reduce the raw telemetry samples of old runs to per-phase summaries; results stay.
    #[command(
        after_help = "Examples:\n  tokbench prune --older-than 90d --dry-run\n  tokbench prune --older-than 90d --vacuum\n\nEach result keeps its power and memory figures, and its telemetry_json gains\n`samples_pruned`: count, min, mean, max and time span per phase, metric and source."
    )]
    Prune(prune::PruneArgs),
    /// What this machine can measure (power, energy, device and process memory) and why not.
    #[command(subcommand)]
    Telemetry(telemetry::TelemetryCommand),
    /// The hardware catalog: memory, bandwidth, TDP and MSRP of each part, with sources.
    #[command(
        after_help = "Examples:\n  tokbench hardware\n  tokbench hardware --format csv\n  tokbench hardware show \"GeForce RTX 4090\"\n  tokbench hardware show \"2x GeForce RTX 3090\"\n  tokbench hardware --catalog mine.toml"
    )]
    Hardware(hardware::HardwareArgs),
    /// The backends tokbench can run (engine, llama-bench, llama-server, vLLM, OpenAI-compatible
    /// endpoints), where each was found and its version; `build` builds llama.cpp's tools.
    #[command(
        after_help = "Examples:\n  tokbench backends\n  tokbench backends build\n  tokbench backends build --accel cuda --cuda-arch 90"
    )]
    Backends(backends::BackendsArgs),
    /// Check the database (integrity, schema, pending migrations, unfinished runs) without
    /// changing it, the backends found and what telemetry can measure; say what to fix.
    Doctor(doctor::DbArgs),
    /// Bring a database's schema up to date (the read-only commands never migrate; `run`,
    /// `import`, `merge` and `check` migrate what they write to).
    Migrate(doctor::DbArgs),
    /// Remote targets (bench-configs/targets.toml): list them with reachability, version,
    /// engine build and hardware; `sync` brings home what a dropped connection left there;
    /// `install` copies this tokbench to one.
    #[command(
        after_help = "Examples:\n  tokbench targets\n  tokbench run bench-configs/smoke.toml --target tower-3090 --target mac\n  tokbench run --target all\n  tokbench targets sync tower-3090\n  tokbench targets install tower-3090\n\nssh runs as you configured it (keys, agent, known_hosts, ~/.ssh/config), in batch mode:\nit never asks for a password. TOKBENCH_SSH replaces the ssh command (`ssh -F FILE`)."
    )]
    Targets(targets::TargetsArgs),
    /// The embedded engine (a child process the runner starts; speaks JSON lines).
    #[command(hide = true)]
    Engine,
    /// The target side of remote runs (what a controller asks over SSH).
    #[command(subcommand, hide = true)]
    Remote(remote::RemoteCommand),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse_from(front::rewrite_args(std::env::args_os().collect()));
    let code = match dispatch(cli) {
        Ok(code) => code,
        Err(e) if exit::stdout_closed(&e) => ExitCode::Ok,
        Err(e) => {
            eprintln!("error: {e:#}");
            exit::code_of(&e)
        }
    };
    std::process::ExitCode::from(code as u8)
}

/// Runs one command. Every command runs on one current-thread runtime (the synchronous
/// ones simply do not await); the engine child too, which never awaits either.
fn dispatch(cli: Cli) -> anyhow::Result<ExitCode> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let r = rt.block_on(async_dispatch(cli.command));
    // Do not wait for abandoned blocking work (a model synthesis cut short by an
    // interrupt): everything that matters is stored by now.
    rt.shutdown_background();
    r
}

async fn async_dispatch(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Run(a) => run::command(&a).await,
        Command::Results(a) => output::results_command(&a).await,
        Command::Query(a) => output::query_command(&a).await,
        Command::Model(c) => models::command(&c),
        Command::Fit(a) => fit::fit_command(&a).await,
        Command::Report(a) => report::report_command(&a).await,
        Command::Check(a) => check::check_command(&a).await,
        Command::Compare(a) => compare::compare_command(&a).await,
        Command::Merge(a) => merge::command(&a).await,
        Command::Import(a) => import::import_command(&a).await,
        Command::Prune(a) => prune::command(&a).await,
        Command::Telemetry(c) => telemetry::command(&c).await,
        Command::Hardware(a) => hardware::command(&a),
        Command::Backends(a) => backends::command(&a),
        Command::Doctor(a) => doctor::doctor_command(&a).await,
        Command::Migrate(a) => doctor::migrate_command(&a).await,
        Command::Targets(a) => targets::command(&a).await,
        Command::Engine => run::engine_child(),
        Command::Remote(c) => remote::command(&c).await,
    }
}
