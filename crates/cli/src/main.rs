//! `tokbench`: the binary. Clap commands that wire the runner to the store and the store to
//! the terminal. Library crates hold the logic; this file holds arguments, context and exit
//! codes.

mod backends;
mod check;
mod compare;
mod doctor;
mod exit;
mod fit;
mod hardware;
mod import;
mod merge;
mod models;
mod output;
mod report;
mod run;
mod telemetry;

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};

use crate::exit::ExitCode;

#[derive(Debug, Parser)]
#[command(
    name = "tokbench",
    version,
    about = "Benchmark local LLM inference (prefill and generation tok/s, TTFT, memory) and keep every result in SQLite.",
    after_help = "Examples:\n  tokbench run                                # the default suite, bench-configs/smoke.toml\n  tokbench results                            # the newest run as a table\n  tokbench query \"SELECT test, decode_tps FROM v_results\"\n  tokbench model inspect model.gguf\n\nExit codes: 0 ok, 1 tool error, 2 bad input (suite, model file, arguments), 4 some benchmark failed, 130 interrupted."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Format {
    Table,
    Csv,
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a benchmark suite and store every result.
    #[command(
        after_help = "Examples:\n  tokbench run\n  tokbench run bench-configs/smoke.toml --db results.db\n  tokbench run --resume 5f0c…   # finish an interrupted run"
    )]
    Run {
        /// The suite file.
        #[arg(default_value = "bench-configs/smoke.toml")]
        suite: PathBuf,
        /// The results database (created if missing).
        #[arg(long, default_value = "tokbench.db", env = "TOKBENCH_DB")]
        db: PathBuf,
        /// Finish the run with this UUID: only its cells without a stored result run.
        #[arg(long, value_name = "RUN_UUID")]
        resume: Option<String>,
        /// Plain lines even on a terminal.
        #[arg(long)]
        plain: bool,
        /// What started the run (manual, ci, nightly …), stored with it.
        #[arg(long, default_value = "manual")]
        trigger: String,
        /// Telemetry's sampling interval in ms (power, energy, device and process memory,
        /// per phase); 0 turns it off.
        #[arg(long, default_value_t = 100)]
        telemetry_interval_ms: u64,
    },
    /// Show the results of the newest run (or of one run).
    #[command(
        after_help = "Examples:\n  tokbench results\n  tokbench results --run 5f0c… --format csv"
    )]
    Results {
        #[arg(long, default_value = "tokbench.db", env = "TOKBENCH_DB")]
        db: PathBuf,
        /// The run's UUID (default: the newest).
        #[arg(long)]
        run: Option<String>,
        #[arg(long, value_enum, default_value = "table")]
        format: Format,
    },
    /// Run one read-only SQL statement against the database.
    #[command(
        after_help = "Examples:\n  tokbench query \"SELECT model, quant, test, decode_tps FROM v_results WHERE status = 'ok'\"\n  tokbench query --format json \"SELECT * FROM v_results LIMIT 5\"\n\nWrites, schema changes and ATTACH are refused."
    )]
    Query {
        /// The SQL statement.
        sql: String,
        #[arg(long, default_value = "tokbench.db", env = "TOKBENCH_DB")]
        db: PathBuf,
        #[arg(long, value_enum, default_value = "table")]
        format: Format,
    },
    /// Inspect or synthesize GGUF models.
    #[command(subcommand)]
    Model(ModelCommand),
    /// Does a model fit? Weights, KV cache and compute buffer from the real architecture,
    /// per quantization and context length, against the hardware catalog; with --db, the
    /// prediction beside the memory stored results really took.
    #[command(
        after_help = "Examples:\n  tokbench fit --arch llama-3.1-405b --ctx 4096,32768 --format json\n  tokbench fit --gguf model.gguf --ctx 8192 --ctk q8_0 --ctv q8_0 --fa\n  tokbench fit --params layers=32,embd=4096,heads=32,kv_heads=8,ffn=14336,vocab=128256 --hardware \"2x GeForce RTX 5090\"\n  tokbench fit --db tokbench.db --format markdown   # predicted vs measured"
    )]
    Fit {
        /// An architecture preset (see `tokbench model synth --list`).
        #[arg(long, conflicts_with_all = ["gguf", "params", "db"])]
        arch: Option<String>,
        /// A GGUF file: exact weights from its tensor table.
        #[arg(long, conflicts_with_all = ["params", "db"])]
        gguf: Option<PathBuf>,
        /// Explicit shape: layers=,embd=,heads=,kv_heads=,head_dim=,ffn=,vocab=[,tied=1].
        #[arg(long, conflicts_with = "db")]
        params: Option<String>,
        /// Quantizations, comma-separated (default: every preset from F16 to Q2_K).
        #[arg(long, value_delimiter = ',')]
        quant: Vec<String>,
        /// Context lengths in tokens, comma-separated; the first is used for the quantization table.
        #[arg(long, value_delimiter = ',', default_values_t = fit::DEFAULT_CTX)]
        ctx: Vec<u32>,
        /// K cache type.
        #[arg(long, default_value = "f16")]
        ctk: String,
        /// V cache type (a quantized V cache needs --fa).
        #[arg(long, default_value = "f16")]
        ctv: String,
        /// Flash attention.
        #[arg(long)]
        fa: bool,
        /// Physical batch (llama.cpp -ub), which sizes the compute buffer.
        #[arg(long, default_value_t = 512)]
        ubatch: u32,
        /// Hardware to check (repeatable; "2x NAME" for several devices). Default: the whole catalog.
        #[arg(long)]
        hardware: Vec<String>,
        /// The hardware catalog (default: bench-configs/hardware.toml, or $TOKBENCH_HARDWARE).
        #[arg(long)]
        catalog: Option<PathBuf>,
        #[arg(long, value_enum, default_value = "table")]
        format: fit::FitFormat,
        /// Print sizes in binary GiB, decimal GB, or binary MiB (small models).
        #[arg(long, default_value = "gib")]
        units: tokbench_report::fit::Units,
        /// Compare predictions with the memory measured by the newest run in this database.
        #[arg(long)]
        db: Option<PathBuf>,
    },
    /// Regenerate the reports: leaderboard, quantization and picks tables (Markdown), CSV,
    /// JSON, plots (SVG, PNG) and a self-contained index.html, from the newest result of
    /// each series in the database.
    #[command(
        after_help = "Examples:\n  tokbench report\n  tokbench report --db nightly.db --out site/ --model synth:tiny --since 2026-11-01\n  tokbench report --quant Q4_K_M --quant Q8_0 --budget 1000,2500"
    )]
    Report {
        #[arg(long, default_value = "tokbench.db", env = "TOKBENCH_DB")]
        db: PathBuf,
        /// The output directory (created; files in it are replaced).
        #[arg(long, default_value = "reports")]
        out: PathBuf,
        /// Only these models (repeatable), e.g. synth:tiny.
        #[arg(long)]
        model: Vec<String>,
        /// Only these quantizations (repeatable).
        #[arg(long)]
        quant: Vec<String>,
        /// Only these backends (repeatable): engine, llama-bench, …
        #[arg(long)]
        backend: Vec<String>,
        /// Only results from these hosts (repeatable, host names).
        #[arg(long)]
        host: Vec<String>,
        /// Only runs started on or after this date (YYYY-MM-DD or RFC 3339, UTC).
        #[arg(long)]
        since: Option<String>,
        /// Only runs started before this date.
        #[arg(long)]
        until: Option<String>,
        /// Budgets in US dollars for the "best under $X" picks.
        #[arg(long, value_delimiter = ',', default_values_t = [1500.0, 3000.0, 10000.0])]
        budget: Vec<f64>,
        /// The hardware catalog (default: bench-configs/hardware.toml, or $TOKBENCH_HARDWARE).
        #[arg(long)]
        catalog: Option<PathBuf>,
    },
    /// Judge a run against the history of its series; re-measure suspects; exit 3 on a
    /// confirmed regression.
    #[command(
        after_help = "Examples:\n  tokbench check                      # the newest run\n  tokbench check --run 5f0c --format markdown >> $GITHUB_STEP_SUMMARY\n  tokbench check --accept latest --note \"driver 560: new normal\"\n\nExit codes: 0 ok, 1 tool error, 2 usage, 3 confirmed regression, 4 some benchmark failed.\nVerdicts are stored (table `verdict`) before exiting."
    )]
    Check {
        #[arg(long, default_value = "tokbench.db", env = "TOKBENCH_DB")]
        db: PathBuf,
        /// The run: a UUID, a unique prefix, `latest` or `previous`.
        #[arg(long, default_value = "latest")]
        run: String,
        /// Re-measurements of a suspect series, at once on this machine (0: none).
        #[arg(long, default_value_t = tokbench_report::gate::CONFIRM_RUNS)]
        remeasure: usize,
        /// Results in the baseline, at most.
        #[arg(long, default_value_t = 30)]
        baseline: usize,
        /// Results the baseline needs, else the verdict is `insufficient`.
        #[arg(long, default_value_t = 5)]
        min_baseline: usize,
        /// Only history this recent counts, days.
        #[arg(long, default_value_t = 90.0)]
        window_days: f64,
        /// Practical floor for speeds and latencies, percent.
        #[arg(long, default_value_t = 5.0)]
        floor: f64,
        /// Practical floor for memory, percent.
        #[arg(long, default_value_t = 3.0)]
        floor_memory: f64,
        /// A result whose repetitions' CV exceeds this (percent) is noisy and never gates.
        #[arg(long, default_value_t = 5.0)]
        noisy_cv: f64,
        #[arg(long, value_enum, default_value = "table")]
        format: check::CheckFormat,
        /// Instead of judging: the run's level becomes the new normal of its series (a
        /// change point); later runs are judged against results from it on.
        #[arg(long, value_name = "RUN")]
        accept: Option<String>,
        /// Why the change point (with --accept).
        #[arg(long, default_value = "accepted as the new normal")]
        note: String,
    },
    /// Compare two runs, two backend builds or two hosts, series by series.
    #[command(
        after_help = "Examples:\n  tokbench compare previous latest\n  tokbench compare 5f0c 9a1e --format markdown\n  tokbench compare \"build:llama-cpp-2 0.1.159\" \"build:llama-cpp-2 0.1.160\"\n  tokbench compare host:box-a host:box-b"
    )]
    Compare {
        /// The reference: a run (UUID, prefix, `latest`, `previous`), `build:VERSION` or `host:NAME`.
        a: String,
        /// Compared against A, the same way.
        b: String,
        #[arg(long, default_value = "tokbench.db", env = "TOKBENCH_DB")]
        db: PathBuf,
        #[arg(long, value_enum, default_value = "table")]
        format: check::CheckFormat,
    },
    /// Merge databases into one: idempotent (run UUIDs identify runs), all or nothing.
    #[command(
        after_help = "Examples:\n  tokbench merge box-a.db box-b.db --into fleet.db\n\nA source with a newer schema is refused; sources are never written."
    )]
    Merge {
        /// Source databases.
        #[arg(required = true)]
        sources: Vec<PathBuf>,
        /// The destination (created if missing).
        #[arg(long)]
        into: PathBuf,
    },
    /// Import llama-bench output (-o json, jsonl or sql): one run per file, idempotent.
    #[command(
        after_help = "Examples:\n  llama-bench -m model.gguf -o json > lb.json && tokbench import lb.json --host box-a\n  tokbench import results.sql --source \"llama.cpp discussion #4167\""
    )]
    Import {
        /// llama-bench output files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        #[arg(long, default_value = "tokbench.db", env = "TOKBENCH_DB")]
        db: PathBuf,
        /// Where the numbers came from (shown beside the rows); default: the file.
        #[arg(long)]
        source: Option<String>,
        /// The machine's name, which llama-bench does not print.
        #[arg(long, default_value = "imported")]
        host: String,
        /// The hardware catalog used to name the hardware from gpu_info/cpu_info.
        #[arg(long)]
        catalog: Option<PathBuf>,
    },
    /// What this machine can measure (power, energy, device and process memory) and why not.
    #[command(subcommand)]
    Telemetry(TelemetryCommand),
    /// The hardware catalog: memory, bandwidth, TDP and MSRP of each part, with sources.
    #[command(
        after_help = "Examples:\n  tokbench hardware\n  tokbench hardware --format csv\n  tokbench hardware show \"GeForce RTX 4090\"\n  tokbench hardware show \"2x GeForce RTX 3090\"\n  tokbench hardware --catalog mine.toml"
    )]
    Hardware {
        #[command(subcommand)]
        command: Option<HardwareCommand>,
        /// The catalog file (default: bench-configs/hardware.toml, or $TOKBENCH_HARDWARE).
        #[arg(long, global = true)]
        catalog: Option<PathBuf>,
        #[arg(long, value_enum, default_value = "table")]
        format: Format,
    },
    /// The backends tokbench can run (engine, llama-bench, llama-server, vLLM, OpenAI-compatible
    /// endpoints), where each was found and its version; `build` builds llama.cpp's tools.
    #[command(
        after_help = "Examples:\n  tokbench backends\n  tokbench backends build\n  tokbench backends build --accel cuda --cuda-arch 90"
    )]
    Backends {
        #[command(subcommand)]
        command: Option<BackendsCommand>,
        #[arg(long, value_enum, default_value = "table")]
        format: Format,
    },
    /// Check the database (integrity, schema, pending migrations, unfinished runs) without
    /// changing it, the backends found and what telemetry can measure; say what to fix.
    Doctor {
        #[arg(long, default_value = "tokbench.db", env = "TOKBENCH_DB")]
        db: PathBuf,
    },
    /// Bring a database's schema up to date (the read-only commands never migrate; `run`,
    /// `import`, `merge` and `check` migrate what they write to).
    Migrate {
        #[arg(long, default_value = "tokbench.db", env = "TOKBENCH_DB")]
        db: PathBuf,
    },
    /// The embedded engine (a child process the runner starts; speaks JSON lines).
    #[command(hide = true)]
    Engine,
}

#[derive(Debug, Subcommand)]
enum TelemetryCommand {
    /// Every metric of every source, available or with the reason it is not.
    Probe {
        #[arg(long, value_enum, default_value = "table")]
        format: Format,
    },
    /// Record raw samples for a while into a JSON file (a fixture from another machine).
    #[command(
        after_help = "Example:\n  tokbench telemetry capture --seconds 30 --pid $(pgrep llama-server) --out h200.json"
    )]
    Capture {
        #[arg(long)]
        out: PathBuf,
        #[arg(long, default_value_t = 10.0)]
        seconds: f64,
        #[arg(long, default_value_t = 100)]
        interval_ms: u64,
        /// Follow this process tree's memory (and its device memory).
        #[arg(long)]
        pid: Option<u32>,
    },
}

#[derive(Debug, Subcommand)]
enum BackendsCommand {
    /// Build llama-bench and llama-server from the llama.cpp source vendored with the engine
    /// (plus third_party/llama-tools) into ~/.cache/tokbench/llama-tools; reused when built.
    Build {
        /// cpu, cuda, metal or vulkan.
        #[arg(long, default_value = "cpu")]
        accel: tokbench_runner::tools::Accel,
        /// CUDA architectures, e.g. 90 for H100/H200 (only that chip: a faster build).
        #[arg(long)]
        cuda_arch: Option<String>,
        /// The llama.cpp source (default: the llama-cpp-sys-2 crate in cargo's registry).
        #[arg(long, env = "TOKBENCH_LLAMA_SRC")]
        llama_src: Option<PathBuf>,
        /// Parallel compile jobs (default: the machine's cores).
        #[arg(long)]
        jobs: Option<usize>,
        /// Rebuild even when a build of the same sources exists.
        #[arg(long)]
        force: bool,
        /// Extra CMake flags, e.g. -DGGML_CUDA_F16=ON.
        #[arg(long = "cmake-flag", allow_hyphen_values = true)]
        cmake_flags: Vec<String>,
    },
}

#[derive(Debug, Subcommand)]
enum HardwareCommand {
    /// One entry (or "2x NAME" for several devices) with every figure and its source.
    Show { name: String },
}

#[derive(Debug, Subcommand)]
enum ModelCommand {
    /// Print what a GGUF file holds: architecture, shapes, parameters, tensor types.
    #[command(after_help = "Example:\n  tokbench model inspect ~/models/Llama-3.1-8B-Q4_K_M.gguf")]
    Inspect {
        file: PathBuf,
        /// Also list every tensor.
        #[arg(long)]
        tensors: bool,
        #[arg(long, value_enum, default_value = "table")]
        format: Format,
    },
    /// Write a synthetic model (seeded random weights, a working tokenizer) of a real
    /// architecture, quantized by llama.cpp's own quantizer.
    #[command(
        after_help = "Examples:\n  tokbench model synth --arch tiny --quant Q4_K_M,Q8_0\n  tokbench model synth --arch llama-3.1-8b --quant Q4_K_M --seed 7\n  tokbench model synth --list"
    )]
    Synth {
        /// Architecture preset (see --list).
        #[arg(long, default_value = "tiny")]
        arch: String,
        /// Quantizations, comma-separated.
        #[arg(long, value_delimiter = ',', default_value = "Q8_0")]
        quant: Vec<String>,
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Where models are cached (default: $TOKBENCH_CACHE, else ~/.cache/tokbench).
        #[arg(long, env = "TOKBENCH_CACHE")]
        cache_dir: Option<PathBuf>,
        /// List the architecture presets and their sizes.
        #[arg(long)]
        list: bool,
    },
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let code = match dispatch(cli) {
        Ok(code) => code,
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
        Command::Engine => run::engine_child(),
        Command::Backends {
            command: None,
            format,
        } => backends::list_command(format),
        Command::Backends {
            command:
                Some(BackendsCommand::Build {
                    accel,
                    cuda_arch,
                    llama_src,
                    jobs,
                    force,
                    cmake_flags,
                }),
            ..
        } => {
            let b = tokbench_runner::tools::build_tools(
                &tokbench_runner::tools::BuildArgs {
                    accel,
                    cuda_arch,
                    llama_src,
                    jobs,
                    force,
                    cmake_flags,
                },
                &mut |l| eprintln!("{l}"),
            )?;
            println!("{}", b.bin_dir.display());
            Ok(ExitCode::Ok)
        }
        Command::Telemetry(TelemetryCommand::Probe { format }) => telemetry::probe_command(format),
        Command::Telemetry(TelemetryCommand::Capture {
            out,
            seconds,
            interval_ms,
            pid,
        }) => telemetry::capture_command(&out, seconds, interval_ms, pid),
        Command::Hardware {
            command,
            catalog,
            format,
        } => {
            let catalog = hardware::load_catalog(catalog.as_deref())?;
            match command {
                None => hardware::list(&catalog, format),
                Some(HardwareCommand::Show { name }) => hardware::show(&catalog, &name),
            }
        }
        Command::Fit {
            arch,
            gguf,
            params,
            quant,
            ctx,
            ctk,
            ctv,
            fa,
            ubatch,
            hardware,
            catalog,
            format,
            units,
            db: None,
        } => {
            let model = match (arch, gguf, params) {
                (Some(a), None, None) => fit::FitModel::Preset(a),
                (None, Some(g), None) => fit::FitModel::Gguf(g),
                (None, None, Some(p)) => fit::FitModel::Explicit(p),
                _ => {
                    return Err(exit::BadInput(
                        "tokbench fit needs one of --arch PRESET, --gguf FILE, --params SHAPE (or --db to validate)".into(),
                    )
                    .into())
                }
            };
            fit::fit_command(&fit::FitArgs {
                model,
                quants: quant,
                ctx,
                type_k: ctk,
                type_v: ctv,
                flash_attn: fa,
                n_ubatch: ubatch,
                hardware,
                catalog,
                units,
                format,
            })
        }
        Command::Model(ModelCommand::Inspect {
            file,
            tensors,
            format,
        }) => models::inspect(&file, tensors, format),
        Command::Model(ModelCommand::Synth {
            arch,
            quant,
            seed,
            cache_dir,
            list,
        }) => {
            if list {
                return models::list_presets();
            }
            let cache = models::ModelCache::new(cache_dir)?;
            models::synth_command(&cache, &arch, &quant, seed)
        }
        Command::Run {
            suite,
            db,
            resume,
            plain,
            trigger,
            telemetry_interval_ms,
        } => {
            let telemetry = (telemetry_interval_ms > 0)
                .then(|| std::time::Duration::from_millis(telemetry_interval_ms));
            run::run_command(&suite, &db, resume.as_deref(), plain, &trigger, telemetry).await
        }
        Command::Results { db, run, format } => output::results(&db, run.as_deref(), format).await,
        Command::Doctor { db } => doctor::doctor_command(&db).await,
        Command::Migrate { db } => doctor::migrate_command(&db).await,
        Command::Query { sql, db, format } => output::query(&db, &sql, format).await,
        Command::Fit {
            db: Some(db),
            format,
            units,
            ..
        } => fit::validate_command(&db, format, units).await,
        Command::Report {
            db,
            out,
            model,
            quant,
            backend,
            host,
            since,
            until,
            budget,
            catalog,
        } => {
            report::report_command(&report::ReportArgs {
                db,
                out,
                catalog,
                filter: tokbench_store::PointFilter {
                    models: model,
                    quants: quant,
                    backends: backend,
                    hosts: host,
                    since,
                    until,
                },
                budgets_usd: budget,
            })
            .await
        }
        Command::Check {
            db,
            accept: Some(run),
            note,
            ..
        } => check::accept_command(&db, &run, &note).await,
        Command::Check {
            db,
            run,
            remeasure,
            baseline,
            min_baseline,
            window_days,
            floor,
            floor_memory,
            noisy_cv,
            format,
            accept: None,
            ..
        } => {
            check::check_command(&check::CheckArgs {
                db,
                run,
                remeasure,
                cfg: tokbench_report::gate::GateConfig {
                    baseline_max: baseline,
                    baseline_min: min_baseline,
                    window_days,
                    floor_speed: floor / 100.0,
                    floor_memory: floor_memory / 100.0,
                    noisy_cv: noisy_cv / 100.0,
                    ..Default::default()
                },
                format,
            })
            .await
        }
        Command::Compare { a, b, db, format } => {
            compare::compare_command(&compare::CompareArgs {
                db,
                a,
                b,
                format,
                cfg: Default::default(),
            })
            .await
        }
        Command::Merge { sources, into } => merge::merge_command(&sources, &into).await,
        Command::Import {
            files,
            db,
            source,
            host,
            catalog,
        } => {
            import::import_command(&import::ImportArgs {
                db,
                files,
                source,
                host,
                catalog,
            })
            .await
        }
    }
}
