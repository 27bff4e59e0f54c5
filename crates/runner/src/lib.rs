//! tokbench-runner: turns a validated [`Suite`] into measurements. It prepares each model
//! once, hands every group of cells that share a model load to its [`backend`] (the
//! embedded engine, llama-bench, a server), whose processes it supervises ([`child`]:
//! timeouts, crashes, memory, interrupts), and reports everything as [`RunEvent`]s on a
//! bounded channel. It knows no SQL: the CLI subscribes and stores.

pub mod backend;
pub mod child;
pub mod host;
pub mod resolve;
pub mod scripted;
pub mod serve;
mod telemetry;
pub mod tools;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokbench_core::{
    BackendBuild, BackendKind, Cell, CellResult, EngineParams, ModelRecord, ModelSource,
    ResultStatus, Suite,
};
use tokio::sync::{mpsc, watch};

pub use crate::backend::engine::{
    probe_engine, probe_engine_devices, probe_engine_with, EngineCommand, EngineDevice, ProbeError,
};
use crate::backend::unmeasured;

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
    fn prepare(&self, source: &ModelSource) -> Result<PreparedModel, ModelUnavailable>;
}

/// Why a model could not be made ready (its causes included): every cell on it is stored
/// `failed` with this reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ModelUnavailable(pub String);

impl From<String> for ModelUnavailable {
    fn from(why: String) -> Self {
        ModelUnavailable(why)
    }
}

impl From<&str> for ModelUnavailable {
    fn from(why: &str) -> Self {
        ModelUnavailable(why.to_string())
    }
}

/// What the runner tells its subscribers.
#[derive(Debug, Clone)]
pub enum RunEvent {
    /// A model is being prepared (synthesized / quantized / hashed).
    Preparing { model: String },
    /// A cell began.
    CellStarted { index: usize, label: String },
    /// A cell finished one more repetition (the engine reports each): `done` so far, of at
    /// most `max` (the suite's count, or `auto`'s ceiling).
    Repetition { index: usize, done: u32, max: u32 },
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
    pub backends: BTreeMap<BackendKind, backend::BackendTarget>,
    /// How backends start their processes ([`child::RealProcesses`] but in tests).
    pub launcher: Arc<dyn child::Launcher>,
}

pub(crate) fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// Cells that share one model load: same model, same backend, same load parameters (a
/// server backend: the same engine parameters, since they are the server's arguments).
#[derive(Debug)]
struct LoadGroup {
    model: ModelSource,
    backend: BackendKind,
    load_key: (u32, bool, tokbench_core::Offload),
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
    /// The CPUs' clock state when each cell in flight started.
    pub(crate) cell_clocks: HashMap<usize, tokbench_telemetry::throttle::CpuClocks>,
}

impl Ctx<'_> {
    pub(crate) fn cancelled(&self) -> bool {
        *self.cancel.borrow()
    }

    /// Reports that a cell began, and reads the CPUs' clock state to compare at its end.
    pub(crate) async fn start_cell(&mut self, index: usize, label: String) {
        self.cell_clocks
            .insert(index, tokbench_telemetry::throttle::CpuClocks::read());
        let _ = self.tx.send(RunEvent::CellStarted { index, label }).await;
    }

    /// What the machine's clocks did during a started cell: the CPU state now against its
    /// start, and the GPU's throttle reasons over the cell's telemetry samples. `None` for
    /// a cell that never started (its model or backend was unavailable).
    fn conditions(&mut self, result: &CellResult) -> Option<tokbench_core::CellConditions> {
        let before = self.cell_clocks.remove(&result.cell_index)?;
        let after = tokbench_telemetry::throttle::CpuClocks::read();
        let throttle = tokbench_telemetry::Metric::ClockThrottle.name();
        let gpu = result.telemetry.as_ref().and_then(|t| {
            t.samples
                .iter()
                .filter(|s| s.metric == throttle)
                .map(|s| s.value as u64)
                .reduce(|a, b| a | b)
        });
        Some(tokbench_telemetry::throttle::conditions(
            &before, &after, gpu,
        ))
    }

    /// Reports a cell's result and, for a server cell, the server's own figures with it.
    pub(crate) async fn finish_cell(
        &mut self,
        mut result: CellResult,
        also: Option<CellResult>,
        model_name: &str,
        model: Option<&ModelRecord>,
        build: &BackendBuild,
        repetitions_expected: u32,
    ) {
        if result.conditions.is_none() {
            result.conditions = self.conditions(&result);
        }
        let also = also.map(|mut a| {
            a.conditions.clone_from(&result.conditions);
            a
        });
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
        cell_clocks: HashMap::new(),
    };
    if let Some(t) = &ctx.telemetry {
        let _ = tx
            .send(RunEvent::Environment {
                json: t.environment_json(),
            })
            .await;
    }
    let mut prepared: HashMap<ModelSource, Result<PreparedModel, ModelUnavailable>> =
        HashMap::new();
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
                r = task => r.unwrap_or_else(|e| Err(format!("model preparation panicked: {e}").into())),
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
                    let (build, expected) = (&plan.build, plan.suite.repetitions);
                    ctx.finish_cell(r, None, &name, None, build, expected).await;
                }
            }
            Ok(model) => {
                let model = model.clone();
                let group = backend::Group { model, name, cells };
                backend::for_kind(&plan, backend)
                    .run_group(&mut ctx, group)
                    .await;
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

/// Resolves once `cancel` turns true (never, if its sender is gone without doing so).
pub(crate) async fn until_cancelled(cancel: &mut watch::Receiver<bool>) {
    if cancel.wait_for(|c| *c).await.is_err() {
        std::future::pending::<()>().await;
    }
}
