//! tokbench-runner: turns a validated [`Suite`] into measurements. It prepares each model
//! once, runs the engine child for every group of cells that share a model load,
//! supervises it (timeouts, crashes, interrupts), and reports everything as [`RunEvent`]s
//! on a bounded channel. It knows no SQL: the CLI subscribes and stores.

pub mod backends;
pub mod child;
pub mod host;
pub mod serve;
mod telemetry;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;
use std::time::Duration;

use tokbench_core::{
    BackendBuild, BackendKind, Cell, CellResult, EngineParams, MetricSource, ModelRecord,
    ModelSource, Repetition, ResultStatus, Suite,
};
use tokbench_engine::protocol::{EngineEvent, EngineJob, EngineTest, PROTOCOL_VERSION};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use crate::child::{describe_exit, Line, Supervised};

/// How long a child gets to stop after SIGTERM before SIGKILL.
pub(crate) const GRACE: Duration = Duration::from_secs(3);
/// Lines of a failed backend's log kept with its result.
pub(crate) const LOG_LINES: usize = 40;

/// A model ready to load: the file and what it is.
#[derive(Debug, Clone, PartialEq)]
pub struct PreparedModel {
    pub path: PathBuf,
    pub record: ModelRecord,
}

/// Makes models available (synthesizes, quantizes, reads and hashes files). A seam: the
/// CLI's implementation does the real work; tests may script one.
pub trait ModelProvider: Send + Sync + 'static {
    /// Blocking; called on a blocking thread.
    fn prepare(&self, source: &ModelSource) -> Result<PreparedModel, String>;
}

/// How to start the engine child.
#[derive(Debug, Clone)]
pub struct EngineCommand {
    pub program: PathBuf,
    pub args: Vec<String>,
    pub envs: Vec<(String, String)>,
}

/// What the runner tells its subscribers.
#[derive(Debug, Clone)]
pub enum RunEvent {
    /// A model is being prepared (synthesized / quantized / hashed).
    Preparing { model: String },
    /// A cell began.
    CellStarted { index: usize, label: String },
    /// Telemetry started: what each source reports about the machine (driver, power
    /// limit, clocks) and what it cannot measure, as JSON, for the run's record.
    Environment { json: String },
    /// A cell ended, measured or not. Subscribers store it at once.
    CellFinished {
        result: Box<CellResult>,
        /// A second result of the same cell, stored with it in one transaction: a server
        /// cell's own figures (`metric_source = server`) beside the client's.
        also: Option<Box<CellResult>>,
        model_name: String,
        model: Option<Box<ModelRecord>>,
        build: Box<BackendBuild>,
        repetitions_expected: u32,
    },
}

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunOutcome {
    pub cells_ok: usize,
    pub cells_failed: usize,
    pub interrupted: bool,
}

/// A whole run's inputs.
#[derive(Debug, Clone)]
pub struct RunPlan {
    pub suite: Suite,
    pub default_threads: u32,
    pub engine: EngineCommand,
    /// Cells already stored by an earlier attempt (for `--resume`); they are not run.
    pub skip: BTreeSet<usize>,
    /// The engine build (from [`probe_engine`]), recorded with every result.
    pub build: BackendBuild,
    /// Sample power, energy and memory at this interval while the engine works (`None`:
    /// no telemetry).
    pub telemetry_interval: Option<std::time::Duration>,
    /// With telemetry, how long the machine is watched after a model's last cell (the
    /// `idle_after` phase of that cell).
    pub idle_after: Duration,
    /// The suite's other backends as the CLI found them (missing: unavailable).
    pub backends: BTreeMap<BackendKind, backends::BackendTarget>,
}

/// Puts a spawned backend under the suite's memory limit, if it has one.
pub(crate) fn watch_memory(child: &mut Supervised, suite: &Suite) {
    if let Some(mb) = suite.memory_limit_mb {
        child.limit_memory(mb.saturating_mul(1 << 20));
    }
}

/// The result a backend stopped by the memory watchdog gets.
pub(crate) fn memory_failure(child: &Supervised, suite: &Suite) -> Option<(ResultStatus, String)> {
    let rss = child.over_limit()?;
    Some((
        ResultStatus::Oom,
        format!(
            "resident memory reached {:.0} MiB, over the suite's memory_limit_mb = {}; the backend was stopped",
            rss as f64 / (1u64 << 20) as f64,
            suite.memory_limit_mb.unwrap_or(0)
        ),
    ))
}

/// How a backend's unsuccessful exit reads in a result: a death by signal is `crashed` (a
/// SIGKILL tokbench did not send is said to be one: most often the kernel's out-of-memory
/// killer), any other exit `failed`.
pub(crate) fn exit_failure(
    what: &str,
    status: &std::process::ExitStatus,
) -> (ResultStatus, String) {
    use std::os::unix::process::ExitStatusExt;
    let how = describe_exit(status);
    match status.signal() {
        Some(libc::SIGKILL) => (
            ResultStatus::Crashed,
            format!("{what} {how}, not sent by tokbench (the kernel's out-of-memory killer, or another process)"),
        ),
        Some(_) => (ResultStatus::Crashed, format!("{what} {how}")),
        None => (ResultStatus::Failed, format!("{what} {how}")),
    }
}

/// Why a backend stopped when tokbench knows: its memory limit first (unless the run was
/// interrupted), then `failure`, what tokbench saw it do.
pub(crate) fn stop_reason(
    child: &Supervised,
    suite: &Suite,
    failure: Option<(ResultStatus, String)>,
) -> Option<(ResultStatus, String)> {
    let interrupted = matches!(failure, Some((ResultStatus::Interrupted, _)));
    memory_failure(child, suite)
        .filter(|_| !interrupted)
        .or(failure)
}

pub(crate) fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// Why the engine did not say what it is.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("cannot start engine {}: {source}", program.display())]
    Spawn {
        program: PathBuf,
        source: std::io::Error,
    },
    #[error("engine speaks protocol {theirs}, this runner {PROTOCOL_VERSION}")]
    Protocol { theirs: u32 },
    #[error("engine said something unexpected first: {line}")]
    Unexpected { line: String },
    #[error("engine {how} before saying hello: {log_tail}")]
    Ended { how: String, log_tail: String },
    #[error("engine did not say hello within 60 s")]
    Silent,
}

/// Starts the engine once with no work to learn what it is (version, accelerator, CPU
/// features). An engine that cannot start is an error naming why.
pub async fn probe_engine(engine: &EngineCommand) -> Result<BackendBuild, ProbeError> {
    let job = EngineJob {
        protocol: PROTOCOL_VERSION,
        model_path: PathBuf::new(),
        n_gpu_layers: 0,
        use_mmap: true,
        tests: Vec::new(),
    };
    let text = serde_json::to_string(&job).expect("job serializes");
    let mut child = Supervised::spawn(&engine.program, &engine.args, &engine.envs, &text)
        .await
        .map_err(|source| ProbeError::Spawn {
            program: engine.program.clone(),
            source,
        })?;
    let deadline = Instant::now() + Duration::from_secs(60);
    let result = match child.next_line(deadline).await {
        Line::Text(line) => match serde_json::from_str::<EngineEvent>(&line) {
            Ok(EngineEvent::Hello {
                protocol,
                version,
                accel,
                system_info,
                devices,
            }) if protocol == PROTOCOL_VERSION => Ok(BackendBuild {
                name: "engine".into(),
                version: format!("tokbench {} / {version}", env!("CARGO_PKG_VERSION")),
                commit: None,
                accel,
                flags: if devices.is_empty() {
                    system_info
                } else {
                    format!("{system_info} | devices: {}", devices.join(", "))
                },
            }),
            Ok(EngineEvent::Hello { protocol, .. }) => {
                Err(ProbeError::Protocol { theirs: protocol })
            }
            _ => Err(ProbeError::Unexpected { line }),
        },
        Line::Eof | Line::Unreadable(_) => {
            let ended = child.wait_or_stop(GRACE).await;
            let how = ended
                .status
                .map(|s| describe_exit(&s))
                .unwrap_or_else(|| "could not be reaped".into());
            Err(ProbeError::Ended {
                how,
                log_tail: child.log_tail(5).await,
            })
        }
        Line::Timeout => Err(ProbeError::Silent),
    };
    child.terminate(GRACE).await;
    result
}

/// Cells that share one model load: same model, same backend, same load parameters (a
/// server backend: the same engine parameters, since they are the server's arguments).
#[derive(Debug)]
struct LoadGroup {
    model: ModelSource,
    backend: BackendKind,
    load_key: (u32, bool),
    server_params: Option<EngineParams>,
    cells: Vec<(Cell, EngineParams)>,
}

/// Cells grouped by model, backend and load parameters, in run order.
fn load_groups(cells: Vec<Cell>, default_threads: u32) -> Vec<LoadGroup> {
    let mut groups: Vec<LoadGroup> = Vec::new();
    for cell in cells {
        let params = cell.engine.resolve(default_threads);
        let load_key = params.load_key();
        let server_params = cell.backend.is_server().then_some(params);
        match groups.iter_mut().find(|g| {
            g.model == cell.model
                && g.backend == cell.backend
                && g.load_key == load_key
                && g.server_params == server_params
        }) {
            Some(g) => g.cells.push((cell, params)),
            None => groups.push(LoadGroup {
                model: cell.model.clone(),
                backend: cell.backend,
                load_key,
                server_params,
                cells: vec![(cell, params)],
            }),
        }
    }
    groups
}

pub(crate) struct Ctx<'a> {
    pub(crate) plan: &'a RunPlan,
    pub(crate) tx: &'a mpsc::Sender<RunEvent>,
    pub(crate) cancel: watch::Receiver<bool>,
    pub(crate) outcome: RunOutcome,
    pub(crate) telemetry: Option<telemetry::RunTelemetry>,
}

impl Ctx<'_> {
    pub(crate) fn cancelled(&self) -> bool {
        *self.cancel.borrow()
    }

    async fn finish(&mut self, result: CellResult, model_name: &str, model: Option<&ModelRecord>) {
        let build = self.plan.build.clone();
        let expected = self.plan.suite.repetitions;
        self.finish_with(result, model_name, model, &build, expected)
            .await;
    }

    /// Reports a result measured by `build`, which expected `repetitions_expected`
    /// repetitions (requests, for a server backend).
    pub(crate) async fn finish_with(
        &mut self,
        result: CellResult,
        model_name: &str,
        model: Option<&ModelRecord>,
        build: &BackendBuild,
        repetitions_expected: u32,
    ) {
        self.finish_cell(result, None, model_name, model, build, repetitions_expected)
            .await;
    }

    /// Reports a cell's result and, for a server cell, the server's own figures with it.
    pub(crate) async fn finish_cell(
        &mut self,
        result: CellResult,
        also: Option<CellResult>,
        model_name: &str,
        model: Option<&ModelRecord>,
        build: &BackendBuild,
        repetitions_expected: u32,
    ) {
        if result.status == ResultStatus::Ok {
            self.outcome.cells_ok += 1;
        } else {
            self.outcome.cells_failed += 1;
        }
        let _ = self
            .tx
            .send(RunEvent::CellFinished {
                result: Box::new(result),
                also: also.map(Box::new),
                model_name: model_name.to_string(),
                model: model.cloned().map(Box::new),
                build: Box::new(build.clone()),
                repetitions_expected,
            })
            .await;
    }
}

pub(crate) fn unmeasured(
    cell: &Cell,
    params: EngineParams,
    status: ResultStatus,
    error: String,
    log_tail: Option<String>,
) -> CellResult {
    CellResult {
        cell_index: cell.index,
        test: cell.test,
        params,
        status,
        error: Some(error),
        metric_source: MetricSource::Engine,
        load_ms: None,
        rss_peak_bytes: None,
        allocated: None,
        telemetry: None,
        repetitions: Vec::new(),
        serving: None,
        backend_json: None,
        log_tail,
        started_at: now_rfc3339(),
        duration_ms: 0.0,
    }
}

/// Runs the plan, sending events on `tx`. Setting `cancel` to true stops the child in
/// flight and returns with `interrupted`; the cell in flight is reported as interrupted.
pub async fn run(
    plan: RunPlan,
    provider: std::sync::Arc<dyn ModelProvider>,
    tx: mpsc::Sender<RunEvent>,
    cancel: watch::Receiver<bool>,
) -> RunOutcome {
    let cells: Vec<Cell> = plan
        .suite
        .cells()
        .into_iter()
        .filter(|c| !plan.skip.contains(&c.index))
        .collect();
    let groups = load_groups(cells, plan.default_threads);
    let mut ctx = Ctx {
        plan: &plan,
        tx: &tx,
        cancel,
        outcome: RunOutcome {
            cells_ok: 0,
            cells_failed: 0,
            interrupted: false,
        },
        telemetry: plan.telemetry_interval.map(telemetry::RunTelemetry::start),
    };
    if let Some(t) = &ctx.telemetry {
        let _ = tx
            .send(RunEvent::Environment {
                json: t.environment_json(),
            })
            .await;
    }
    let mut prepared: HashMap<ModelSource, Result<PreparedModel, String>> = HashMap::new();
    for LoadGroup {
        model: source,
        backend,
        cells,
        ..
    } in groups
    {
        if ctx.cancelled() {
            ctx.outcome.interrupted = true;
            break;
        }
        let name = source.model_name();
        if !prepared.contains_key(&source) {
            let _ = tx
                .send(RunEvent::Preparing {
                    model: source.display_name(),
                })
                .await;
            let p = std::sync::Arc::clone(&provider);
            let s = source.clone();
            let task = tokio::task::spawn_blocking(move || p.prepare(&s));
            let mut cancel = ctx.cancel.clone();
            // Synthesizing a large model takes minutes: an interrupt must not wait for it.
            // (The blocking task is abandoned; the caller shuts the runtime down without
            // waiting for it.)
            let r = tokio::select! {
                r = task => r.unwrap_or_else(|e| Err(format!("model preparation panicked: {e}"))),
                () = until_cancelled(&mut cancel) => {
                    ctx.outcome.interrupted = true;
                    break;
                }
            };
            prepared.insert(source.clone(), r);
        }
        match &prepared[&source] {
            Err(e) => {
                for (cell, params) in &cells {
                    let r = unmeasured(
                        cell,
                        *params,
                        ResultStatus::Failed,
                        format!("model {name} is not available: {e}"),
                        None,
                    );
                    ctx.finish(r, &name, None).await;
                }
            }
            Ok(model) => {
                let model = model.clone();
                match backend {
                    BackendKind::Engine => run_group(&mut ctx, &model, &name, cells).await,
                    other => other_backend(&mut ctx, other, &model, &name, cells).await,
                }
                if ctx.outcome.interrupted {
                    break;
                }
            }
        }
    }
    if let Some(t) = ctx.telemetry.take() {
        t.stop();
    }
    ctx.outcome
}

/// Runs cells on a backend other than the embedded engine.
async fn other_backend(
    ctx: &mut Ctx<'_>,
    kind: BackendKind,
    model: &PreparedModel,
    name: &str,
    cells: Vec<(Cell, EngineParams)>,
) {
    let target = ctx.plan.backends.get(&kind).cloned().unwrap_or_else(|| {
        backends::BackendTarget::unavailable(
            kind,
            format!("{kind} was not resolved before the run"),
        )
    });
    if let Some(reason) = &target.unavailable {
        for (cell, params) in cells {
            let (r, expected) = if kind.is_server() {
                let r = backends::server_failure(
                    &cell,
                    params,
                    ResultStatus::Unavailable,
                    reason.clone(),
                    None,
                );
                (r, backends::requests_of(&ctx.plan.suite, &cell))
            } else {
                let r = unmeasured(
                    &cell,
                    params,
                    ResultStatus::Unavailable,
                    reason.clone(),
                    None,
                );
                (r, ctx.plan.suite.repetitions)
            };
            ctx.finish_with(r, name, Some(&model.record), &target.build, expected)
                .await;
        }
        return;
    }
    match kind {
        BackendKind::LlamaBench => {
            let Some(program) = target.program.clone() else {
                for (cell, params) in cells {
                    let r = unmeasured(
                        &cell,
                        params,
                        ResultStatus::Unavailable,
                        "llama-bench: no program to start".into(),
                        None,
                    );
                    let expected = ctx.plan.suite.repetitions;
                    ctx.finish_with(r, name, Some(&model.record), &target.build, expected)
                        .await;
                }
                return;
            };
            for (cell, params) in cells {
                if ctx.cancelled() {
                    ctx.outcome.interrupted = true;
                    return;
                }
                let _ = ctx
                    .tx
                    .send(RunEvent::CellStarted {
                        index: cell.index,
                        label: format!(
                            "{} {} llama-bench t{}",
                            cell.model.display_name(),
                            cell.test.label(),
                            params.n_threads
                        ),
                    })
                    .await;
                let (r, build) =
                    backends::llama_bench_cell(ctx, &program, model, &cell, params, &target.build)
                        .await;
                let expected = ctx.plan.suite.repetitions;
                ctx.finish_with(r, name, Some(&model.record), &build, expected)
                    .await;
                if ctx.outcome.interrupted {
                    return;
                }
            }
        }
        _ => backends::server_group(ctx, kind, &target, model, name, cells).await,
    }
}

/// Resolves once `cancel` turns true (never, if its sender is gone without doing so).
pub(crate) async fn until_cancelled(cancel: &mut watch::Receiver<bool>) {
    if cancel.wait_for(|c| *c).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// A test in flight inside the engine child.
struct Pending {
    cell: Cell,
    params: EngineParams,
    reps: Vec<Repetition>,
    started: Option<std::time::Instant>,
    started_at: String,
    /// When the cell began on the monotonic clock (its warm-up's start), and the phase
    /// windows the engine reported, for telemetry.
    start_ns: u64,
    windows: Vec<tokbench_telemetry::PhaseWindow>,
}

async fn run_group(
    ctx: &mut Ctx<'_>,
    model: &PreparedModel,
    name: &str,
    cells: Vec<(Cell, EngineParams)>,
) {
    let suite = &ctx.plan.suite;
    let timeout = Duration::from_secs_f64(suite.timeout_s);
    let mut queue: Vec<(Cell, EngineParams)> = cells;
    while !queue.is_empty() {
        let tests: Vec<EngineTest> = queue
            .iter()
            .map(|(cell, p)| EngineTest {
                id: cell.index as u64,
                n_prompt: cell.test.n_prompt,
                n_gen: cell.test.n_gen,
                n_depth: cell.test.n_depth,
                repetitions: suite.repetitions,
                warmup: suite.warmup,
                n_threads: p.n_threads,
                n_batch: p.n_batch,
                n_ubatch: p.n_ubatch,
                flash_attn: p.flash_attn,
                type_k: p.type_k,
                type_v: p.type_v,
                seed: cell.index as u64,
            })
            .collect();
        let (_, first_params) = queue[0];
        let job = EngineJob {
            protocol: PROTOCOL_VERSION,
            model_path: model.path.clone(),
            n_gpu_layers: first_params.n_gpu_layers,
            use_mmap: first_params.use_mmap,
            tests,
        };
        let text = serde_json::to_string(&job).expect("job serializes");
        let engine = &ctx.plan.engine;
        let mut child =
            match Supervised::spawn(&engine.program, &engine.args, &engine.envs, &text).await {
                Ok(c) => c,
                Err(e) => {
                    for (cell, params) in queue.drain(..) {
                        let r = unmeasured(
                            &cell,
                            params,
                            ResultStatus::Unavailable,
                            format!("cannot start engine {}: {e}", engine.program.display()),
                            None,
                        );
                        ctx.finish(r, name, Some(&model.record)).await;
                    }
                    return;
                }
            };
        if let Some(t) = &ctx.telemetry {
            t.follow(child.pid());
        }
        watch_memory(&mut child, suite);
        // From the spawn to the start of the load the engine is up but idle: the phase
        // telemetry calls idle_before, the machine's baseline.
        let spawned_ns = tokbench_telemetry::monotonic_ns();
        let mut load_ms = None;
        let mut load_window: Vec<tokbench_telemetry::PhaseWindow> = Vec::new();
        // The group's last result, held for its idle-after window.
        let mut idle_after: Option<(CellResult, u64, Vec<tokbench_telemetry::PhaseWindow>, u64)> =
            None;
        let mut current: Option<Pending> = None;
        let mut deadline = Instant::now() + timeout;
        let mut cancel = ctx.cancel.clone();
        // Why the child stopped talking, when it did not say Done.
        let mut failure: Option<(ResultStatus, String)> = None;
        loop {
            let line = tokio::select! {
                l = child.next_line(deadline) => l,
                () = until_cancelled(&mut cancel) => {
                    child.terminate(GRACE).await;
                    failure = Some((ResultStatus::Interrupted, "run interrupted (SIGINT/SIGTERM) while this cell was running".into()));
                    ctx.outcome.interrupted = true;
                    break;
                }
            };
            let text = match line {
                Line::Text(t) => t,
                Line::Eof => break,
                Line::Unreadable(e) => {
                    child.terminate(GRACE).await;
                    failure = Some((
                        ResultStatus::Failed,
                        format!("engine sent a malformed line (unreadable output: {e})"),
                    ));
                    break;
                }
                Line::Timeout => {
                    let status = child.terminate(GRACE).await;
                    let how = status
                        .map(|s| describe_exit(&s))
                        .unwrap_or_else(|| "could not be reaped".into());
                    let what = if current.is_some() {
                        "the test"
                    } else if load_ms.is_none() {
                        "loading the model"
                    } else if queue.is_empty() {
                        "exiting after its last test"
                    } else {
                        "starting the next test"
                    };
                    failure = Some((
                        ResultStatus::Timeout,
                        format!(
                            "{what} did not finish within {:.0} s; the engine was stopped ({how})",
                            timeout.as_secs_f64()
                        ),
                    ));
                    break;
                }
            };
            let event = match serde_json::from_str::<EngineEvent>(&text) {
                Ok(e) => e,
                Err(e) => {
                    child.terminate(GRACE).await;
                    failure = Some((
                        ResultStatus::Failed,
                        format!("engine sent a malformed line ({e}): {text:.200}"),
                    ));
                    break;
                }
            };
            match event {
                EngineEvent::Hello { .. } => {}
                EngineEvent::Loaded {
                    load_ms: ms,
                    load_ns,
                    ..
                } => {
                    load_ms = Some(ms);
                    // The model's load belongs to the first cell that runs on it.
                    let idle = load_ns.map(|[start, _]| [spawned_ns.min(start), start]);
                    load_window =
                        telemetry::window(tokbench_telemetry::Phase::IdleBefore, idle, None)
                            .into_iter()
                            .chain(telemetry::window(
                                tokbench_telemetry::Phase::Load,
                                load_ns,
                                None,
                            ))
                            .collect();
                    deadline = Instant::now() + timeout;
                }
                EngineEvent::TestStarted { id, warmup_ns, .. } => {
                    let Some(pos) = queue.iter().position(|(c, _)| c.index as u64 == id) else {
                        continue;
                    };
                    let (cell, params) = queue[pos].clone();
                    let _ = ctx
                        .tx
                        .send(RunEvent::CellStarted {
                            index: cell.index,
                            label: format!(
                                "{} {} t{}",
                                cell.model.display_name(),
                                cell.test.label(),
                                params.n_threads
                            ),
                        })
                        .await;
                    let warmup =
                        telemetry::window(tokbench_telemetry::Phase::Warmup, warmup_ns, None);
                    let load = std::mem::take(&mut load_window);
                    current = Some(Pending {
                        cell,
                        params,
                        reps: Vec::new(),
                        started: Some(std::time::Instant::now()),
                        started_at: now_rfc3339(),
                        start_ns: load
                            .first()
                            .map(|l| l.start_ns)
                            .or(warmup_ns.map(|w| w[0]))
                            .unwrap_or_else(tokbench_telemetry::monotonic_ns),
                        windows: load.into_iter().chain(warmup).collect(),
                    });
                    deadline = Instant::now() + timeout;
                }
                EngineEvent::Rep {
                    id,
                    prompt_ms,
                    gen_ms,
                    first_token_ms,
                    ttft_ms,
                    prefill_ns,
                    decode_ns,
                    ..
                } => {
                    if let Some(p) = current.as_mut().filter(|p| p.cell.index as u64 == id) {
                        let (n_prompt, n_gen) = (p.cell.test.n_prompt, p.cell.test.n_gen);
                        p.windows.extend(telemetry::window(
                            tokbench_telemetry::Phase::Prefill,
                            prefill_ns,
                            Some(u64::from(n_prompt)),
                        ));
                        p.windows.extend(telemetry::window(
                            tokbench_telemetry::Phase::Decode,
                            decode_ns,
                            Some(u64::from(n_gen)),
                        ));
                        p.reps.push(Repetition::from_timings(
                            &p.cell.test,
                            prompt_ms,
                            gen_ms,
                            first_token_ms,
                            Some(ttft_ms),
                        ));
                    }
                }
                EngineEvent::TestFinished {
                    id,
                    rss_peak_bytes,
                    allocated,
                } => {
                    let p = match current.take() {
                        Some(p) if p.cell.index as u64 == id => p,
                        other => {
                            current = other;
                            continue;
                        }
                    };
                    queue.retain(|(c, _)| c.index as u64 != id);
                    let complete = p.reps.len() == suite.repetitions as usize;
                    let (status, error) = if complete {
                        (ResultStatus::Ok, None)
                    } else {
                        (
                            ResultStatus::Failed,
                            Some(format!(
                                "engine reported {} of {} repetitions",
                                p.reps.len(),
                                suite.repetitions
                            )),
                        )
                    };
                    // The group's last cell is stored once the engine has exited: it also
                    // gets the idle after it (the machine settling once the work stops),
                    // and a fault at shutdown is written on it.
                    let last = queue.is_empty();
                    let r = CellResult {
                        cell_index: p.cell.index,
                        test: p.cell.test,
                        params: p.params,
                        status,
                        error,
                        metric_source: MetricSource::Engine,
                        load_ms,
                        rss_peak_bytes,
                        allocated,
                        telemetry: ctx
                            .telemetry
                            .as_ref()
                            .filter(|_| !last)
                            .map(|t| t.cell(p.start_ns, &p.windows)),
                        // A failed cell has no figures, only the reason.
                        repetitions: if complete { p.reps } else { Vec::new() },
                        serving: None,
                        backend_json: None,
                        log_tail: None,
                        started_at: p.started_at,
                        duration_ms: p
                            .started
                            .map(|s| s.elapsed().as_secs_f64() * 1e3)
                            .unwrap_or(0.0),
                    };
                    if last {
                        idle_after =
                            Some((r, p.start_ns, p.windows, tokbench_telemetry::monotonic_ns()));
                    } else {
                        ctx.finish(r, name, Some(&model.record)).await;
                    }
                    deadline = Instant::now() + timeout;
                }
                EngineEvent::TestFailed { id, error } => {
                    let Some(pos) = queue.iter().position(|(c, _)| c.index as u64 == id) else {
                        continue;
                    };
                    let (cell, params) = queue.remove(pos);
                    current = None;
                    let mut r = unmeasured(
                        &cell,
                        params,
                        ResultStatus::Failed,
                        error,
                        Some(child.log_tail_now(LOG_LINES)),
                    );
                    r.load_ms = load_ms;
                    ctx.finish(r, name, Some(&model.record)).await;
                    deadline = Instant::now() + timeout;
                }
                EngineEvent::Fatal { error } => {
                    child.terminate(GRACE).await;
                    // A finished cell held for its idle-after window is stored all the same,
                    // with what the engine said.
                    if let Some((mut r, start_ns, windows, _)) = idle_after.take() {
                        r.error = Some(format!(
                            "measured; at shutdown the engine reported: {error}"
                        ));
                        r.telemetry = ctx.telemetry.as_ref().map(|t| t.cell(start_ns, &windows));
                        ctx.finish(r, name, Some(&model.record)).await;
                    }
                    let tail = child.log_tail(LOG_LINES).await;
                    for (cell, params) in queue.drain(..) {
                        let r = unmeasured(
                            &cell,
                            params,
                            ResultStatus::Failed,
                            error.clone(),
                            Some(tail.clone()),
                        );
                        ctx.finish(r, name, Some(&model.record)).await;
                    }
                    return;
                }
                EngineEvent::Done => break,
            }
        }
        // After `done` or the end of its output the child exits by itself; one that keeps
        // running is stopped (and that is not a crash of its own).
        let ended = child.wait_or_stop(GRACE).await;
        if let Some((mut r, start_ns, mut windows, end_ns)) = idle_after.take() {
            // Its figures stand, but a backend that hangs or dies on its way out is a fault
            // the nightly run must see.
            let shutdown = match (stop_reason(&child, suite, failure.clone()), ended.status) {
                (Some((ResultStatus::Interrupted, _)), _) => None,
                (Some((ResultStatus::Oom, why)), _) => {
                    Some(format!("the engine was stopped: {why}"))
                }
                (Some((_, why)), _) => Some(format!("the engine failed: {why}")),
                _ if ended.stopped => {
                    Some("the engine did not exit after its last test; it was stopped".to_string())
                }
                (None, Some(s)) if !s.success() => Some(exit_failure("the engine", &s).1),
                (None, Some(_)) => None,
                (None, None) => Some("the engine could not be reaped".to_string()),
            };
            if let Some(how) = shutdown {
                r.error = Some(format!("measured; at shutdown {how}"));
            }
            // Idle after: from the last test's end, at least `idle_after` long (the engine's
            // exit included); an interrupt cuts it short.
            let elapsed =
                Duration::from_nanos(tokbench_telemetry::monotonic_ns().saturating_sub(end_ns));
            let wait = ctx
                .telemetry
                .is_some()
                .then(|| ctx.plan.idle_after.checked_sub(elapsed))
                .flatten();
            if let Some(rest) = wait {
                let mut cancel = ctx.cancel.clone();
                tokio::select! {
                    () = tokio::time::sleep(rest) => {}
                    () = until_cancelled(&mut cancel) => {}
                }
            }
            windows.extend(telemetry::window(
                tokbench_telemetry::Phase::IdleAfter,
                Some([end_ns, tokbench_telemetry::monotonic_ns()]),
                None,
            ));
            r.telemetry = ctx.telemetry.as_ref().map(|t| t.cell(start_ns, &windows));
            ctx.finish(r, name, Some(&model.record)).await;
        }
        if queue.is_empty() {
            continue;
        }
        // The child stopped before finishing the queue: the test in flight (or, if it died
        // while loading, every test) gets the reason; the rest run in a fresh child.
        let (status, reason) =
            stop_reason(&child, suite, failure).unwrap_or_else(|| match ended.status {
                _ if ended.stopped => (
                    ResultStatus::Failed,
                    "engine closed its output but did not exit; it was stopped".into(),
                ),
                Some(s) => exit_failure("engine", &s),
                None => (ResultStatus::Failed, "engine stopped answering".into()),
            });
        let tail = Some(child.log_tail(LOG_LINES).await).filter(|t| !t.is_empty());
        let victims: Vec<(Cell, EngineParams)> = match &current {
            Some(p) => {
                let id = p.cell.index;
                let pos = queue
                    .iter()
                    .position(|(c, _)| c.index == id)
                    .expect("current is queued");
                vec![queue.remove(pos)]
            }
            None if load_ms.is_none() || status == ResultStatus::Interrupted => {
                std::mem::take(&mut queue)
            }
            None => vec![queue.remove(0)],
        };
        // What telemetry saw up to the failure belongs to the cell in flight: the memory
        // and power that led to a crash or an out-of-memory kill.
        let in_flight_telemetry = current.as_ref().and_then(|p| {
            ctx.telemetry
                .as_ref()
                .map(|t| (p.cell.index, t.cell(p.start_ns, &p.windows)))
        });
        let in_flight = current.map(|p| (p.cell.index, p.reps.len(), p.started_at));
        for (cell, params) in victims {
            let mut reason = reason.clone();
            let mut started_at = None;
            if let Some((idx, done, at)) = &in_flight {
                if *idx == cell.index {
                    // Repetitions measured before the failure are not stored: a failed
                    // cell has no figures, only the reason.
                    reason = format!("{reason} after {done} of {} repetitions", suite.repetitions);
                    started_at = Some(at.clone());
                }
            }
            let mut r = unmeasured(&cell, params, status, reason, tail.clone());
            r.load_ms = load_ms;
            if let Some(at) = started_at {
                r.started_at = at;
            }
            if let Some((idx, t)) = &in_flight_telemetry {
                if *idx == cell.index {
                    r.telemetry = Some(t.clone());
                }
            }
            ctx.finish(r, name, Some(&model.record)).await;
        }
        if status == ResultStatus::Interrupted {
            return;
        }
    }
}
