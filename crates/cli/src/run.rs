//! `tokbench run` (suite → runner → store, with progress) and `tokbench engine` (the child
//! side of the engine protocol).

use std::collections::{BTreeSet, HashMap};
use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use tokbench_core::{EngineSettings, ModelSource, ResultStatus, Setting, Suite};
use tokbench_engine::protocol::{EngineEvent, EngineJob};
use tokbench_runner::{EngineCommand, RunEvent, RunPlan};
use tokbench_store::{NewRun, RunStatus, Store};
use tokio::sync::{mpsc, watch};

use crate::exit::{BadInput, ExitCode};
use crate::models::{read_model, CliModels, ModelCache};
use crate::Format;

pub(crate) fn now() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// The child side: one job on stdin, events on stdout.
pub fn engine_child() -> anyhow::Result<ExitCode> {
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("cannot read the job from stdin")?;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let job: EngineJob = match serde_json::from_str(&line) {
        Ok(j) => j,
        Err(e) => {
            writeln!(
                out,
                "{}",
                EngineEvent::Fatal {
                    error: format!("malformed job: {e}")
                }
                .to_line()
            )?;
            return Ok(ExitCode::BadInput);
        }
    };
    tokbench_engine::bench::run_job(&job, &mut out).context("cannot write engine events")?;
    Ok(ExitCode::Ok)
}

fn load_suite(path: &Path, text: &str) -> anyhow::Result<Suite> {
    Suite::from_toml(text, path).map_err(|e| BadInput(e.to_string()).into())
}

/// Checks the user's model files before anything runs: a missing or corrupt file is the
/// user's to fix, not a row of failures.
fn preflight(suite: &Suite) -> anyhow::Result<()> {
    for m in &suite.models {
        if let ModelSource::File { path } = m {
            read_model(path).with_context(|| format!("suite {}", suite.file.display()))?;
        }
    }
    Ok(())
}

/// Telemetry's sampling interval unless a run says otherwise.
pub const DEFAULT_TELEMETRY_INTERVAL: std::time::Duration = std::time::Duration::from_millis(100);

/// Opens the results database for writing; an error says what to do about it.
async fn open_store(db: &Path) -> anyhow::Result<Store> {
    Store::open(db).await.map_err(|e| {
        storage_error(e, db, |hint| {
            format!("cannot open the results database {}{hint}", db.display())
        })
    })
}

/// A database error with what it stopped (`what`, given the hint from [`storage_hint`]).
fn storage_error(
    e: impl Into<anyhow::Error>,
    db: &Path,
    what: impl FnOnce(&str) -> String,
) -> anyhow::Error {
    let e = e.into();
    let hint = storage_hint(&e, db);
    e.context(what(&hint))
}

/// What to do about a database that refuses writes, from SQLite's words in `e`: ` (…)`,
/// or nothing when the error is something else.
fn storage_hint(e: &anyhow::Error, db: &Path) -> String {
    let text = format!("{e:#}");
    let dir = db
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    if text.contains("database or disk is full") {
        format!(
            " (the disk holding it is full, or a file size limit was reached: free space in {})",
            dir.display()
        )
    } else if text.contains("readonly database") || text.contains("read-only") {
        format!(
            " (it is read-only for this user: SQLite needs to write the file and, beside it in {}, its -wal and -shm files)",
            dir.display()
        )
    } else if text.contains("disk I/O error") {
        " (a write failed: a full disk, a file size limit or a failing device)".to_string()
    } else {
        String::new()
    }
}

/// `tokbench run`'s arguments.
#[derive(Debug, Clone, clap::Args)]
pub struct RunArgs {
    /// A suite file, or a GGUF model to measure as llama-bench would (pp512 and tg128, 5
    /// repetitions, unless flags say otherwise). Default: the built-in smoke suite, the same
    /// as bench-configs/smoke.toml.
    pub suite: Option<PathBuf>,
    #[command(flatten)]
    pub bench: crate::front::BenchFlags,
    /// Refuse to start while another tokbench run measures on this machine or the load
    /// average says other work competes for the CPUs (default: warn and go on).
    #[arg(long)]
    pub exclusive: bool,
    /// Print the run's results to stdout when it ends (progress stays on stderr).
    #[arg(short = 'o', long = "output", value_enum, value_name = "FORMAT")]
    pub output: Option<Format>,
    /// The results database (created if missing): a SQLite file, or a PostgreSQL URL
    /// (`postgres://user@host/db`), which the run reaches through a local journal.
    #[arg(long, default_value = "tokbench.db", env = "TOKBENCH_DB")]
    pub db: PathBuf,
    /// With a PostgreSQL --db: the SQLite file every cell is stored in first, and forwarded
    /// from (default: $XDG_DATA_HOME/tokbench/journal.db, else ~/.local/share/…).
    #[arg(long, value_name = "FILE", env = "TOKBENCH_JOURNAL")]
    pub journal: Option<PathBuf>,
    /// Finish the run with this UUID: only its cells without a stored result run.
    #[arg(long, value_name = "RUN_UUID")]
    pub resume: Option<String>,
    /// The PostgreSQL server the journal (`db`) forwards each cell to as it is stored: set
    /// by a run into a server, never on the command line.
    #[arg(skip)]
    pub forward_to: Option<String>,
    /// Plain lines even on a terminal.
    #[arg(long)]
    pub plain: bool,
    /// What started the run (manual, ci, nightly …), stored with it.
    #[arg(long, default_value = "manual")]
    pub trigger: String,
    /// Telemetry's sampling interval in ms (power, energy, device and process memory,
    /// per phase); 0 turns it off.
    #[arg(long, default_value_t = 100)]
    pub telemetry_interval_ms: u64,
    /// The hardware, as the catalog names it (`GeForce RTX 3090`), in place of the suite's
    /// `hardware` and of detection.
    #[arg(long)]
    pub hardware: Option<String>,
    /// Run on these targets of targets.toml over SSH (`all`: every one), in parallel,
    /// each result stored here as the target stores it.
    #[arg(long = "target", value_name = "NAME")]
    pub targets: Vec<String>,
    /// The targets file (default: bench-configs/targets.toml).
    #[arg(long = "targets", value_name = "FILE")]
    pub targets_file: Option<PathBuf>,
    /// The target side of `--target`: how the controller starts a run here.
    #[command(flatten)]
    pub remote: crate::remote::RemoteRunArgs,
}

/// `tokbench run`: the suite, every result stored.
pub async fn command(args: &RunArgs) -> anyhow::Result<ExitCode> {
    let telemetry = (args.telemetry_interval_ms > 0)
        .then(|| std::time::Duration::from_millis(args.telemetry_interval_ms));
    if args.resume.is_some() && (args.suite.is_some() || !args.bench.is_empty()) {
        return Err(BadInput(
            "--resume runs the suite as it was stored; give no suite, model or flags with it"
                .into(),
        )
        .into());
    }
    let source = suite_source(args)?;
    if let Some(url) = args
        .db
        .to_str()
        .filter(|d| tokbench_store::is_postgres_url(d))
    {
        return run_into_postgres(args, &source, telemetry, url).await;
    }
    if !args.targets.is_empty() {
        return Ok(crate::targets::run_on_targets(args, &source).await?.0);
    }
    let (code, uuid) = run_command(&source, args, telemetry).await?;
    if let Some(format) = args.output {
        // Whoever reads stdout may be gone: the results are stored either way.
        let sel = tokbench_core::RunSelector::Uuid(uuid);
        match crate::output::print_results(&args.db, &sel, format).await {
            Err(e) if !crate::exit::stdout_closed(&e) => return Err(e),
            _ => {}
        }
    }
    Ok(code)
}

/// The embedded engine: this tokbench's own `engine` subcommand, as a child process.
pub(crate) fn own_engine() -> anyhow::Result<EngineCommand> {
    Ok(EngineCommand {
        program: std::env::current_exe().context("cannot find the tokbench executable")?,
        args: vec!["engine".into()],
        envs: Vec::new(),
    })
}

/// The journal a run into PostgreSQL stores its cells in first: `--journal`, else
/// `$XDG_DATA_HOME/tokbench/journal.db`, else `~/.local/share/tokbench/journal.db`.
fn journal_path(args: &RunArgs) -> anyhow::Result<PathBuf> {
    if let Some(j) = &args.journal {
        return Ok(j.clone());
    }
    let dir = crate::machine::user_dir("XDG_DATA_HOME", ".local/share", "--journal")?;
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    Ok(dir.join("journal.db"))
}

/// `tokbench run --db postgres://…`: the run stores every cell in the local journal (a
/// SQLite file), as any run does, so a server that is down or restarts costs nothing
/// measured. Each cell is forwarded to the server once stored (merge: idempotent by run
/// UUID and cell), and the whole run again when it ends, in one transaction, which adds
/// what the server missed. A server that cannot be reached then leaves it in the journal,
/// with the command that forwards it later.
async fn run_into_postgres(
    args: &RunArgs,
    source: &(PathBuf, String),
    telemetry: Option<std::time::Duration>,
    url: &str,
) -> anyhow::Result<ExitCode> {
    let shown = tokbench_store::redacted_url(url);
    let journal = journal_path(args)?;
    // The server first: a schema it is migrated past is refused before anything runs; one
    // that does not answer is only reported, the run goes on into the journal.
    match tokbench_store::PgStore::open(url).await {
        Ok(s) => s.close().await,
        Err(e @ tokbench_store::StoreError::NewerSchema { .. }) => {
            return Err(BadInput(e.to_string()).into())
        }
        Err(e) => eprintln!(
            "run: {e}; storing in the journal {} and forwarding each cell once the server answers",
            journal.display()
        ),
    }
    let local = RunArgs {
        db: journal.clone(),
        output: None,
        forward_to: Some(url.to_string()),
        ..args.clone()
    };
    // On remote targets: each target's run comes home into the journal as it is measured,
    // then each is forwarded.
    let (code, uuids) = match args.targets.is_empty() {
        true => {
            let (code, uuid) = run_command(source, &local, telemetry).await?;
            (code, vec![uuid])
        }
        false => crate::targets::run_on_targets(&local, source).await?,
    };
    let mut kept = false;
    for uuid in &uuids {
        match forward_run(url, &journal, uuid).await {
            Ok((r, there)) => match there {
                Some(n) if n != r.results_added as i64 => eprintln!(
                    "run {uuid}: forwarded to {shown}: its {n} results are there ({})",
                    match r.results_added {
                        0 => "each forwarded as it was stored".to_string(),
                        k =>
                            format!("{k} added as the run ended, the rest as each cell was stored"),
                    }
                ),
                _ => eprintln!(
                    "run {uuid}: forwarded to {shown} ({} results added{})",
                    r.results_added,
                    match r.runs_skipped {
                        0 => "",
                        _ => ", the run was there already",
                    }
                ),
            },
            Err(e) => {
                kept = true;
                eprintln!(
                    "run {uuid}: not forwarded to {shown}: {e:#}; it is kept in the journal {j}: `tokbench merge {j} --into {shown}` forwards it",
                    j = journal.display()
                )
            }
        }
    }
    if let Some(format) = args.output {
        for uuid in uuids {
            let sel = tokbench_core::RunSelector::Uuid(uuid);
            match crate::output::print_results(&journal, &sel, format).await {
                Err(e) if !crate::exit::stdout_closed(&e) => return Err(e),
                _ => {}
            }
        }
    }
    match (kept, code) {
        (true, ExitCode::Ok) => Ok(ExitCode::ToolError),
        (_, code) => Ok(code),
    }
}

/// Forwards run `uuid` of the journal to the server, trying 3 times 2 s apart (a server
/// restarting takes a moment): what the merge did, and how many results of the run the
/// server then has (where that could be read).
async fn forward_run(
    url: &str,
    journal: &Path,
    uuid: &str,
) -> Result<(tokbench_store::MergeReport, Option<i64>), tokbench_store::StoreError> {
    let mut tries = 0;
    loop {
        tries += 1;
        let attempt = async {
            let server = tokbench_store::PgStore::open(url).await?;
            let r = match server.merge_sqlite_run(journal, Some(uuid)).await {
                // Merged: the count is only told, never a reason to forward again.
                Ok(r) => Ok((r, server.run_results(uuid).await.ok())),
                Err(e) => Err(e),
            };
            server.close().await;
            r
        };
        match attempt.await {
            Ok(r) => return Ok(r),
            Err(e @ tokbench_store::StoreError::Connect { .. }) if tries < 3 => {
                eprintln!("run {uuid}: forwarding: {e}; trying again in 2 s");
                tokio::time::sleep(std::time::Duration::from_secs(2)).await;
            }
            Err(e) => return Err(e),
        }
    }
}

/// Forwards a run's cells from its journal to a PostgreSQL server as each is stored, so
/// the server shows a long run as it goes. Forwarding happens while the next cell runs; it
/// reads one run of the journal and writes what the server lacks. A server that fails is
/// left alone for [`Forwarder::PAUSE`] (the run goes on, the cells wait in the journal) and
/// tried again at the next cell after that; the run's end forwards whatever is left.
struct Forwarder {
    url: String,
    journal: PathBuf,
    server: Option<tokbench_store::PgStore>,
    /// No try before this, after a failure.
    paused_until: Option<Instant>,
}

impl Forwarder {
    const PAUSE: std::time::Duration = std::time::Duration::from_secs(30);
    /// The longest one cell's forward may take.
    const LIMIT: std::time::Duration = std::time::Duration::from_secs(20);

    fn new(url: String, journal: &Path) -> Forwarder {
        Forwarder {
            url,
            journal: journal.to_path_buf(),
            server: None,
            paused_until: None,
        }
    }

    /// Forwards what run `uuid` has stored so far; a failure is said once per pause.
    async fn cell_stored(&mut self, uuid: &str) {
        if self.paused_until.is_some_and(|t| Instant::now() < t) {
            return;
        }
        let held = self.server.take();
        let attempt = async {
            let server = match held {
                Some(s) => s,
                None => tokbench_store::PgStore::open(&self.url)
                    .await
                    .map_err(|e| e.to_string())?,
            };
            match server.merge_sqlite_run(&self.journal, Some(uuid)).await {
                Ok(_) => Ok(server),
                Err(e) => {
                    server.close().await;
                    Err(e.to_string())
                }
            }
        };
        // A server that hangs (a lock another session holds, a connection gone half-open)
        // holds up the run's event loop no longer than this; dropping the attempt closes
        // its connection, and the server rolls its transaction back.
        let outcome = match tokio::time::timeout(Self::LIMIT, attempt).await {
            Ok(outcome) => outcome,
            Err(_) => Err(format!("no answer in {} s", Self::LIMIT.as_secs())),
        };
        match outcome {
            Ok(server) => {
                self.server = Some(server);
                if self.paused_until.take().is_some() {
                    eprintln!(
                        "run {uuid}: {} answers again: forwarding each cell as it is stored",
                        tokbench_store::redacted_url(&self.url)
                    );
                }
            }
            Err(e) => {
                eprintln!(
                    "run {uuid}: cannot forward this cell yet ({e}); it stays in the journal {}, and forwarding is tried again at a cell {} s from now and when the run ends",
                    self.journal.display(),
                    Self::PAUSE.as_secs()
                );
                self.paused_until = Some(Instant::now() + Self::PAUSE);
            }
        }
    }

    async fn close(self) {
        if let Some(server) = self.server {
            server.close().await;
        }
    }
}

/// What a run started by a controller over SSH (or with `--hardware`) is told.
#[derive(Debug, Clone, Default)]
pub(crate) struct Remote {
    /// The run's UUID, chosen by the controller.
    pub uuid: Option<String>,
    /// The id the controller's runs on every target share.
    pub invocation: Option<String>,
    /// Where each stored cell is appended as a JSON line, for the controller to read.
    pub stream: Option<PathBuf>,
    /// The hardware in place of the suite's and detection.
    pub hardware: Option<String>,
}

impl From<&crate::remote::RemoteRunArgs> for Remote {
    fn from(a: &crate::remote::RemoteRunArgs) -> Remote {
        Remote {
            uuid: a.run_uuid.clone(),
            invocation: a.invocation.clone(),
            stream: a.stream.clone(),
            hardware: None,
        }
    }
}

/// The suite to run, as (the path it is stored and resolved under, its text): a suite file
/// or the built-in default, with any llama-bench flags written over it; or, for a model
/// alone, a suite written from the flags. Read and checked before the database is touched.
fn suite_source(args: &RunArgs) -> anyhow::Result<(PathBuf, String)> {
    let mut flags = args.bench.clone();
    let suite = match &args.suite {
        Some(p) if crate::front::is_gguf(p) => {
            flags.models.insert(0, p.clone());
            None
        }
        other => other.clone(),
    };
    let (path, base) = match suite {
        Some(p) => {
            if p.is_dir() {
                return Err(BadInput(format!(
                    "{} is a directory: give a suite file (.toml) or a model (.gguf)",
                    p.display()
                ))
                .into());
            }
            let bytes = std::fs::read(&p)
                .map_err(|e| BadInput(format!("cannot read suite {}: {e}", p.display())))?;
            let text = String::from_utf8(bytes).map_err(|_| {
                BadInput(format!(
                    "{} is neither a suite (TOML text) nor a GGUF model",
                    p.display()
                ))
            })?;
            (p, Some(text))
        }
        None if flags.models.is_empty() => (
            PathBuf::from(crate::front::DEFAULT_SUITE_NAME),
            Some(crate::front::DEFAULT_SUITE.to_string()),
        ),
        // Model paths are made absolute, so the directory only matters for messages.
        None => (PathBuf::from("command-line.toml"), None),
    };
    let text = crate::front::suite_text(base.as_deref(), &flags)?;
    Ok((path, text))
}

async fn run_command(
    (suite_path, suite_text): &(PathBuf, String),
    args: &RunArgs,
    telemetry: Option<std::time::Duration>,
) -> anyhow::Result<(ExitCode, String)> {
    let (db, resume, plain, exclusive, trigger) = (
        args.db.as_path(),
        args.resume.as_deref(),
        args.plain,
        args.exclusive,
        args.trigger.as_str(),
    );
    let remote = Remote {
        hardware: args.hardware.clone(),
        ..Remote::from(&args.remote)
    };
    // A suite with a mistake is refused before the database is created or touched.
    enum Start<'a> {
        New(Box<Suite>),
        Resume(&'a str),
    }
    let start = match resume {
        None => {
            let suite = load_suite(suite_path, suite_text)?;
            preflight(&suite)?;
            if suite.auto_repetitions.is_some() {
                let fixed: Vec<&str> = suite
                    .backends
                    .iter()
                    .filter(|b| **b != tokbench_core::BackendKind::Engine)
                    .map(|b| b.name())
                    .collect();
                if !fixed.is_empty() {
                    eprintln!(
                        "note: repetitions = \"auto\" stops on its own only in the embedded engine; {} cannot, and run{} {} repetitions (or requests) per cell",
                        fixed.join(", "),
                        if fixed.len() == 1 { "s" } else { "" },
                        suite.repetitions
                    );
                }
            }
            Start::New(Box::new(suite))
        }
        Some(uuid) => {
            crate::output::existing_db(db)?;
            Start::Resume(uuid)
        }
    };
    // Is the machine quiet? Asked once the run is known to be valid, before anything is
    // written; the claim is held until the run ends, so other runs see this one.
    let (busy, _claim) = crate::machine::check();
    if !busy.is_quiet() {
        let findings = busy.describe();
        if exclusive {
            anyhow::bail!("--exclusive: not starting: {}", findings.join("; "));
        }
        for f in findings {
            eprintln!("warning: {f}");
        }
    }
    let store = open_store(db).await?;
    // A resumed run re-reads the suite exactly as it was when the run began.
    let (suite, text, run_id, uuid, skip) = match start {
        Start::Resume(uuid) => {
            let Some(prev) = store.run_by_uuid(uuid).await? else {
                return Err(BadInput(format!("no run {uuid} in {}", db.display())).into());
            };
            let path = PathBuf::from(prev.suite_path.clone().unwrap_or_default());
            let text = prev.config_text.clone().unwrap_or_default();
            let suite = load_suite(&path, &text)?;
            store.delete_unfinished_results(prev.id).await?;
            let done: BTreeSet<usize> = store.stored_cells(prev.id).await?.into_iter().collect();
            store.reopen_run(prev.id).await?;
            (suite, text, prev.id, uuid.to_string(), done)
        }
        Start::New(suite) => (
            *suite,
            suite_text.clone(),
            tokbench_store::RunId(0),
            remote
                .uuid
                .clone()
                .unwrap_or_else(|| uuid::Uuid::new_v4().to_string()),
            BTreeSet::new(),
        ),
    };
    let stored_as = uuid.clone();
    execute(
        store,
        db,
        suite_path,
        Execution {
            suite,
            text,
            resume: resume.is_some(),
            run_id,
            uuid,
            skip,
            plain,
            trigger: trigger.to_string(),
            telemetry,
            remote,
            forward_to: args.forward_to.clone(),
        },
    )
    .await
    .map(|code| (code, stored_as))
}

/// What [`execute`] runs: a suite (as text and validated), into a new run or an existing one.
struct Execution {
    suite: Suite,
    text: String,
    /// Continue `run_id` instead of beginning a new run.
    resume: bool,
    run_id: tokbench_store::RunId,
    uuid: String,
    /// Cells not to run (already stored, or not asked for).
    skip: BTreeSet<usize>,
    plain: bool,
    trigger: String,
    /// Telemetry's sampling interval (`None`: off).
    telemetry: Option<std::time::Duration>,
    remote: Remote,
    /// The server each stored cell is forwarded to (the store is its journal).
    forward_to: Option<String>,
}

/// Runs only `cells` of the suite an earlier run used (read from that run, as it was), as a
/// new run on this machine with `trigger`: how `tokbench check` re-measures a suspect
/// series. Returns the new run's UUID and its exit code.
pub async fn rerun_cells(
    db: &Path,
    prev_uuid: &str,
    cells: &BTreeSet<usize>,
    trigger: &str,
    remote: Remote,
) -> anyhow::Result<(String, ExitCode)> {
    let store = open_store(db).await?;
    let Some(prev) = store.run_by_uuid(prev_uuid).await? else {
        return Err(BadInput(format!("no run {prev_uuid} in {}", db.display())).into());
    };
    let path = PathBuf::from(prev.suite_path.clone().unwrap_or_default());
    let text = prev.config_text.clone().unwrap_or_default();
    let suite = load_suite(&path, &text)?;
    let skip: BTreeSet<usize> = (0..suite.cells().len())
        .filter(|i| !cells.contains(i))
        .collect();
    let uuid = remote
        .uuid
        .clone()
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let code = execute(
        store,
        db,
        &path,
        Execution {
            suite,
            text,
            resume: false,
            run_id: tokbench_store::RunId(0),
            uuid: uuid.clone(),
            skip,
            plain: true,
            trigger: trigger.to_string(),
            telemetry: Some(DEFAULT_TELEMETRY_INTERVAL),
            remote,
            forward_to: None,
        },
    )
    .await?;
    Ok((uuid, code))
}

async fn execute(
    store: Store,
    db: &Path,
    suite_path: &Path,
    run: Execution,
) -> anyhow::Result<ExitCode> {
    let Execution {
        suite,
        text,
        resume,
        run_id,
        uuid,
        skip,
        plain,
        trigger,
        telemetry,
        remote,
        forward_to,
    } = run;
    let mut forward = forward_to.map(|url| Forwarder::new(url, db));
    let trigger = trigger.as_str();
    let mut stream = remote
        .stream
        .as_deref()
        .map(crate::remote::Stream::open)
        .transpose()?;
    preflight(&suite)?;
    let host = tokbench_runner::host::detect();
    let engine = own_engine()?;
    let build = tokbench_runner::probe_engine(&engine)
        .await
        .map_err(|e| anyhow::anyhow!("the embedded engine does not start: {e}"))?;
    let catalog = crate::hardware::load_catalog(None)?;
    let hardware = match &remote.hardware {
        Some(h) => Some(
            catalog
                .resolve(h)
                .map_err(|e| {
                    BadInput(format!(
                        "--hardware: {e} (`tokbench hardware` lists the catalog)"
                    ))
                })?
                .display_name,
        ),
        None => crate::hardware::hardware_for_run(&catalog, &suite, &host, &build.accel)?,
    };
    // The matrix, expanded once for the count, the progress labels and the ETA.
    let cells = suite.cells();
    let cells_total = cells.len();
    // Each cell's settings, and those that differ between cells: a progress line names
    // them (threads always, as `t4`).
    let threads = tokbench_runner::host::default_threads(&host);
    let cell_settings: HashMap<usize, EngineSettings> = cells
        .iter()
        .map(|c| (c.index, c.engine.resolve(threads).into()))
        .collect();
    let varying: Vec<&Setting> = EngineSettings::varying(cell_settings.values())
        .into_iter()
        .filter(|c| c.name != "threads")
        .collect();
    let varying_label = |s: &EngineSettings| {
        let l = s.compact(&varying);
        if l.is_empty() {
            l
        } else {
            format!(" {l}")
        }
    };
    let new_run = NewRun {
        uuid: uuid.clone(),
        started_at: now(),
        suite_name: suite.name.clone(),
        suite_path: Some(suite_path.display().to_string()),
        config_text: Some(text.clone()),
        tokbench_version: env!("CARGO_PKG_VERSION").into(),
        trigger: trigger.into(),
        cells_total,
        source: None,
        hardware,
    };
    let run_id = if resume {
        run_id
    } else {
        store.begin_run(&new_run, &host).await.map_err(|e| {
            storage_error(e, db, |hint| {
                format!(
                    "cannot begin the run in {}{hint}; nothing was changed",
                    db.display()
                )
            })
        })?
    };
    if remote.invocation.is_some() {
        store
            .set_run_origin(run_id, remote.invocation.as_deref(), None)
            .await?;
    }
    if let Some(out) = &mut stream {
        out.write(&crate::remote::StreamLine::Run {
            protocol: crate::remote::PROTOCOL,
            run: crate::remote::StreamRun::of(&new_run),
            invocation: remote.invocation.clone(),
            host: host.clone(),
        })?;
    }
    let to_run = cells_total.saturating_sub(skip.len());
    let mut eta =
        crate::eta::Eta::new(cells.iter().filter(|c| !skip.contains(&c.index)).map(|c| {
            let kind = crate::eta::CellKind {
                model: c.model.to_string(),
                test: c.test.label(),
            };
            (c.index, kind)
        }));
    let mut cell_started: HashMap<usize, Instant> = HashMap::new();
    let progress = !plain && std::io::stderr().is_terminal();
    eprintln!(
        "tokbench run {uuid}: suite {} ({} cells{}), engine {} [{}], {} threads by default, database {}",
        suite.name,
        cells_total,
        if skip.is_empty() { String::new() } else { format!(", {} already stored", skip.len()) },
        build.version,
        build.accel,
        threads,
        db.display()
    );
    let cache = ModelCache::new(std::env::var_os("TOKBENCH_CACHE").map(PathBuf::from))?;
    let plan = RunPlan {
        suite: suite.clone(),
        default_threads: threads,
        engine,
        skip,
        build,
        telemetry_interval: telemetry,
        // Long enough for five samples, and at least half a second: the idle after a
        // model's last cell, where power falls back (the `idle_after` phase).
        idle_after: telemetry
            .map(|i| (i * 5).max(std::time::Duration::from_millis(500)))
            .unwrap_or_default(),
        backends: tokbench_runner::resolve::resolve_targets(&suite).await,
        launcher: std::sync::Arc::new(tokbench_runner::child::RealProcesses),
    };
    for (kind, t) in &plan.backends {
        match &t.unavailable {
            Some(why) => eprintln!("backend {kind}: unavailable: {why}"),
            None => eprintln!(
                "backend {kind}: {}{} at {}",
                t.build.version,
                t.build
                    .commit
                    .as_deref()
                    .map(|c| format!(" ({c})"))
                    .unwrap_or_default(),
                t.program
                    .as_ref()
                    .map(|p| p.display().to_string())
                    .unwrap_or_else(|| t.build.flags.clone())
            ),
        }
    }
    let (tx, mut rx) = mpsc::channel::<RunEvent>(64);
    let (cancel_tx, cancel_rx) = watch::channel(false);
    let cancel_tx = Arc::new(cancel_tx);
    let cancel = Arc::clone(&cancel_tx);
    let signals = tokio::spawn(async move {
        use tokio::signal::unix::{signal, SignalKind};
        let (Ok(mut int), Ok(mut term)) = (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
        ) else {
            return;
        };
        tokio::select! {
            _ = int.recv() => {}
            _ = term.recv() => {}
        }
        eprintln!("interrupted: stopping the backend and marking the run interrupted");
        let _ = cancel_tx.send(true);
    });
    let provider = Arc::new(CliModels {
        cache,
        verbose: !progress,
    });
    let runner = tokio::spawn(tokbench_runner::run(plan, provider, tx, cancel_rx));

    let bar = progress.then(|| {
        let b = ProgressBar::new(to_run as u64);
        b.set_style(
            ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} {prefix} {msg}",
            )
            .expect("valid template"),
        );
        b.set_prefix("ETA …");
        b.enable_steady_tick(std::time::Duration::from_millis(200));
        b
    });
    let say = |line: String| match &bar {
        Some(b) => b.println(line),
        None => eprintln!("{line}"),
    };
    let started = Instant::now();
    let mut builds = HashMap::new();
    let mut models = HashMap::new();
    let mut done = 0usize;
    let mut failed = 0usize;
    let stored: anyhow::Result<()> = async {
    let mut tick = tokio::time::interval(std::time::Duration::from_millis(500));
    loop {
        let ev = tokio::select! {
            ev = rx.recv() => match ev {
                Some(ev) => ev,
                None => break,
            },
            _ = tick.tick() => {
                // The cell in flight counts down from its estimate.
                if let Some(t0) = cell_started.values().max() {
                    eta.tick(t0.elapsed());
                }
                if let Some(b) = &bar {
                    b.set_prefix(eta.text());
                }
                continue;
            }
        };
        match ev {
            RunEvent::Preparing { model } => say(format!("preparing model {model}")),
            RunEvent::Environment { json } => {
                store
                    .set_run_environment(run_id, &json)
                    .await
                    .context("cannot store the run's environment")?;
                if let Some(out) = &mut stream {
                    out.write(&crate::remote::StreamLine::Environment { json })?;
                }
            }
            RunEvent::CellStarted { label, index } => {
                eta.started(index);
                cell_started.insert(index, Instant::now());
                if let Some(b) = &bar {
                    let settings = cell_settings
                        .get(&index)
                        .map(varying_label)
                        .unwrap_or_default();
                    b.set_message(format!("{label}{settings}"));
                }
            }
            RunEvent::Repetition { index, done, max } => {
                if let Some(t0) = cell_started.get(&index) {
                    eta.repetition(index, done, max, t0.elapsed());
                }
                if let Some(b) = &bar {
                    b.set_prefix(eta.text());
                    let msg = b.message();
                    let base = msg.split(" · rep ").next().unwrap_or(&msg).to_string();
                    b.set_message(format!("{base} · rep {done}/{max}"));
                }
            }
            RunEvent::CellFinished {
                result,
                also,
                model_name,
                model,
                build,
                repetitions_expected,
            } => {
                match cell_started.remove(&result.cell_index) {
                    Some(t0) => eta.finished(result.cell_index, t0.elapsed()),
                    None => eta.dropped(result.cell_index),
                }
                if let Some(b) = &bar {
                    b.set_prefix(eta.text());
                }
                let build_key = format!("{build:?}");
                let build_id = match builds.get(&build_key) {
                    Some(id) => *id,
                    None => {
                        let id = store.backend_build(&build).await?;
                        builds.insert(build_key, id);
                        id
                    }
                };
                let model_id = match &model {
                    Some(m) => Some(match models.get(&(m.file_sha256.clone(), m.name.clone())) {
                        Some(id) => *id,
                        None => {
                            let id = store.model(m).await?;
                            models.insert((m.file_sha256.clone(), m.name.clone()), id);
                            id
                        }
                    }),
                    None => None,
                };
                let mut rows: Vec<&tokbench_core::CellResult> = vec![&result];
                rows.extend(also.as_deref());
                store
                    .insert_results(
                        run_id,
                        build_id,
                        model_id,
                        &model_name,
                        repetitions_expected,
                        &rows,
                    )
                    .await
                    .context("cannot store a result")?;
                if let Some(out) = &mut stream {
                    out.write(&crate::remote::StreamLine::Cell {
                        build: (*build).clone(),
                        model: model.as_deref().cloned(),
                        model_name: model_name.clone(),
                        repetitions_expected,
                        results: rows.iter().map(|r| (*r).clone()).collect(),
                    })?;
                }
                if let Some(f) = &mut forward {
                    f.cell_stored(&uuid).await;
                }
                done += 1;
                if result.status != ResultStatus::Ok {
                    failed += 1;
                }
                let quant = model.as_ref().map(|m| m.quant.clone()).unwrap_or_default();
                for result in rows {
                    // The figures the stored row holds.
                    let summary = result.summary();
                    let (mean, sd) = if result.test.n_gen > 0 {
                        (summary.decode_tps, summary.decode_tps_sd)
                    } else {
                        (summary.prefill_tps, summary.prefill_tps_sd)
                    };
                    let mut figure = match (mean, sd) {
                        (Some(m), Some(s)) if result.noisy() == Some(true) => format!(
                            "{m:.2} ± {s:.2} t/s (noisy: CV {})",
                            crate::output::fmt_cv(s / m)
                        ),
                        (Some(m), Some(s)) => format!("{m:.2} ± {s:.2} t/s"),
                        (Some(m), None) => format!("{m:.2} t/s"),
                        _ => String::new(),
                    };
                    if let Some(sv) = result.serving.as_ref().map(|s| &s.summary) {
                        if let (Some(t), Some(o)) = (sv.ttft_ms.p50, sv.output_tps) {
                            figure = format!("{figure} TTFT p50 {t:.1} ms, {o:.1} output t/s");
                        }
                    }
                    let mut status = match (&result.error, result.status) {
                        (_, ResultStatus::Ok) => "ok".to_string(),
                        (Some(e), s) => format!("{s}: {e}"),
                        (None, s) => s.to_string(),
                    };
                    if let Some(why) = result.conditions.as_ref().and_then(|c| c.throttle.as_ref()) {
                        status.push_str(&format!(" (throttled: {why})"));
                    }
                    let conc = result
                        .serving
                        .as_ref()
                        .and_then(|s| s.summary.concurrency)
                        .map(|c| format!(" c{c}"))
                        .unwrap_or_default();
                    say(format!(
                    "[{done}/{to_run}] {model_name} {quant} {} t{}{}{conc} {} ({}): {figure} {status}",
                    result.test.label(),
                    result.params.n_threads,
                    varying_label(&result.params.into()),
                    build.name,
                    result.metric_source.as_str(),
                ));
                }
                if let Some(b) = &bar {
                    b.inc(1);
                }
            }
        }
    }
    Ok(())
    }
    .await;
    if let Err(e) = stored {
        // The database cannot take what was measured (disk full, made read-only, I/O
        // error): stop the backends rather than measure what cannot be kept. What was
        // stored before stays, in whole cells; the run is marked interrupted where the
        // database still takes that, so `--resume` finishes it.
        let _ = cancel.send(true);
        drop(rx);
        let _ = tokio::time::timeout(std::time::Duration::from_secs(60), runner).await;
        signals.abort();
        if let Some(b) = &bar {
            b.finish_and_clear();
        }
        let marked = store
            .finish_run(run_id, RunStatus::Interrupted, &now())
            .await
            .is_ok();
        return Err(storage_error(e, db, |hint| {
            format!(
            "the run stopped: a result could not be stored in {}{hint}. Every cell stored before is kept ({done} by this invocation){}; once that is fixed, finish the run with `tokbench run --resume {uuid} --db {}`",
            db.display(),
            if marked { " and the run is marked interrupted" } else { "" },
            db.display()
        )
        }));
    }
    let outcome = runner.await.context("the runner task failed")?;
    signals.abort();
    if outcome.interrupted {
        // A model being synthesized is abandoned with the run: its half-written file goes.
        for p in crate::models::remove_unfinished() {
            eprintln!("removed the unfinished {}", p.display());
        }
    }
    if let Some(b) = &bar {
        b.finish_and_clear();
    }
    let status = if outcome.interrupted {
        RunStatus::Interrupted
    } else if failed > 0 {
        RunStatus::Failed
    } else {
        RunStatus::Ok
    };
    let finished_at = now();
    store
        .finish_run(run_id, status, &finished_at)
        .await
        .map_err(|e| {
            storage_error(e, db, |hint| format!(
                "every cell is stored, but the run could not be marked {} in {}{hint}; once that is fixed, `tokbench run --resume {uuid} --db {}` marks it",
                status.as_str(),
                db.display(),
                db.display()
            ))
        })?;
    if let Some(out) = &mut stream {
        out.write(&crate::remote::StreamLine::Finish {
            status: status.as_str().to_string(),
            finished_at,
        })?;
    }
    let integrity = store
        .integrity_check_up_to(tokbench_store::CLOSING_CHECK_MAX_BYTES)
        .await?;
    store.close().await;
    if let Some(f) = forward {
        f.close().await;
    }
    eprintln!(
        "run {uuid} {}: {} ok, {failed} failed of {to_run} in {:.1} s (database integrity: {integrity}); see `tokbench results --db {}`",
        status.as_str(),
        done - failed,
        started.elapsed().as_secs_f64(),
        db.display()
    );
    Ok(if outcome.interrupted {
        eprintln!(
            "resume with: tokbench run --resume {uuid} --db {}",
            db.display()
        );
        ExitCode::Interrupted
    } else if failed > 0 {
        ExitCode::SomeFailed
    } else {
        ExitCode::Ok
    })
}
