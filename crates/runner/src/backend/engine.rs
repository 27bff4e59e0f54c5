//! The embedded engine backend: `tokbench-engine` (llama.cpp linked in) as a child process
//! that reads one job line and answers with protocol events, one child per model load.

use std::path::PathBuf;
use std::time::Duration;

use tokbench_core::{
    BackendBuild, Cell, CellResult, EngineParams, MetricSource, Repetition, ResultStatus,
};
use tokbench_engine::protocol::{EngineEvent, EngineJob, EngineTest, PROTOCOL_VERSION};
use tokio::time::Instant;

use super::{
    exit_failure, failed_status, next_output, stop_reason, unmeasured, watch_memory, Backend,
    Group, Output, GRACE, INTERRUPTED, LOG_LINES,
};
use crate::child::{describe_exit, BoxFuture, Launcher, Line, RealProcesses, Spawn};
use crate::{now_rfc3339, telemetry, until_cancelled, Ctx, PreparedModel, RunEvent};

/// How to start the engine child.
#[derive(Debug, Clone)]
pub struct EngineCommand {
    pub program: PathBuf,
    pub args: Vec<String>,
    pub envs: Vec<(String, String)>,
}

impl EngineCommand {
    fn spawn<'a>(&'a self, stdin: &'a str) -> Spawn<'a> {
        Spawn {
            program: &self.program,
            args: &self.args,
            envs: &self.envs,
            stdin,
        }
    }
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
    probe_engine_with(&RealProcesses, engine).await
}

/// A device llama.cpp's backends list in the engine (`backend:name:description:bytes` in
/// its hello).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineDevice {
    /// The ggml backend: `CPU`, `Vulkan`, `CUDA`, `Metal`, …
    pub backend: String,
    /// `Vulkan0`, `CUDA0`, `CPU`.
    pub name: String,
    /// The driver's name for it: `llvmpipe (LLVM 15.0.6, 256 bits)`, `NVIDIA H200`.
    pub description: String,
    /// The memory llama.cpp says it has.
    pub memory_total: u64,
    /// What its backend said was free when the engine started; `None` from an engine that
    /// does not say.
    pub memory_free: Option<u64>,
}

impl EngineDevice {
    /// One device of the engine's hello; a description may hold `:`.
    pub fn parse(s: &str) -> Option<EngineDevice> {
        let (backend, rest) = s.split_once(':')?;
        let (name, rest) = rest.split_once(':')?;
        let (description, memory) = rest.rsplit_once(':')?;
        Some(EngineDevice {
            backend: backend.to_string(),
            name: name.to_string(),
            description: description.to_string(),
            memory_total: memory.parse().ok()?,
            memory_free: None,
        })
    }

    /// Whether the device's free memory says nothing about what is allocated on it: it
    /// reported all of it free, which is what a Vulkan driver without
    /// `VK_EXT_memory_budget` (lavapipe) always reports. `None` where free is unknown.
    pub fn reports_no_usage(&self) -> Option<bool> {
        self.memory_free.map(|free| free == self.memory_total)
    }
}

/// The devices the engine's llama.cpp sees (what `tokbench doctor` lists): it is started
/// once with no work, as [`probe_engine`] does.
pub async fn probe_engine_devices(engine: &EngineCommand) -> Result<Vec<EngineDevice>, ProbeError> {
    let (_, devices, free) = hello(&RealProcesses, engine).await?;
    Ok(devices
        .iter()
        .enumerate()
        .filter_map(|(i, d)| {
            let mut device = EngineDevice::parse(d)?;
            device.memory_free = free.get(i).copied();
            Some(device)
        })
        .collect())
}

/// [`probe_engine`], starting the engine through `launcher`.
pub async fn probe_engine_with(
    launcher: &dyn Launcher,
    engine: &EngineCommand,
) -> Result<BackendBuild, ProbeError> {
    hello(launcher, engine).await.map(|(build, ..)| build)
}

/// The engine's hello: its build, its devices as it wrote them, and each one's free memory
/// (in the same order; empty from an older engine).
async fn hello(
    launcher: &dyn Launcher,
    engine: &EngineCommand,
) -> Result<(BackendBuild, Vec<String>, Vec<u64>), ProbeError> {
    let job = EngineJob {
        protocol: PROTOCOL_VERSION,
        model_path: PathBuf::new(),
        n_gpu_layers: 0,
        use_mmap: true,
        offload: Default::default(),
        tests: Vec::new(),
    };
    let text = serde_json::to_string(&job).expect("job serializes");
    let mut child = launcher
        .spawn(engine.spawn(&text))
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
                devices_free_bytes,
            }) if protocol == PROTOCOL_VERSION => Ok((
                BackendBuild {
                    name: "engine".into(),
                    version: format!("tokbench {} / {version}", env!("CARGO_PKG_VERSION")),
                    commit: None,
                    accel,
                    flags: if devices.is_empty() {
                        system_info
                    } else {
                        format!("{system_info} | devices: {}", devices.join(", "))
                    },
                },
                devices,
                devices_free_bytes,
            )),
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

/// The embedded engine: one child per model load runs the group's tests in order; a child
/// that fails is replaced by a fresh one for the tests it did not reach.
pub(crate) struct Engine {
    pub(crate) command: EngineCommand,
    pub(crate) build: BackendBuild,
}

impl Backend for Engine {
    fn run_group<'a>(&'a self, ctx: &'a mut Ctx<'_>, group: Group) -> BoxFuture<'a, ()> {
        Box::pin(self.group(ctx, group))
    }
}

impl Engine {
    /// Reports a cell's result, measured by this engine.
    async fn finish(&self, ctx: &mut Ctx<'_>, r: CellResult, name: &str, model: &PreparedModel) {
        // With `auto`, a measured cell expected what it ran.
        let expected = match ctx.plan.suite.auto_repetitions {
            Some(_) if !r.repetitions.is_empty() => r.repetitions.len() as u32,
            Some(a) => a.max,
            None => ctx.plan.suite.repetitions,
        };
        ctx.finish_cell(r, None, name, Some(&model.record), &self.build, expected)
            .await;
    }

    async fn group(&self, ctx: &mut Ctx<'_>, group: Group) {
        let Group { model, name, cells } = group;
        let (model, name) = (&model, name.as_str());
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
                    auto: suite.auto_repetitions,
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
                offload: first_params.offload,
                tests,
            };
            let text = serde_json::to_string(&job).expect("job serializes");
            let engine = &self.command;
            let mut child = match ctx.plan.launcher.spawn(engine.spawn(&text)).await {
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
                        self.finish(ctx, r, name, model).await;
                    }
                    return;
                }
            };
            if let Some(t) = &ctx.telemetry {
                t.follow(child.pid());
            }
            watch_memory(child.as_mut(), suite);
            // From the spawn to the start of the load the engine is up but idle: the phase
            // telemetry calls idle_before, the machine's baseline.
            let spawned_ns = tokbench_telemetry::monotonic_ns();
            let mut load_ms = None;
            let mut load_window: Vec<tokbench_telemetry::PhaseWindow> = Vec::new();
            // The group's last result, held for its idle-after window.
            let mut idle_after: Option<(
                CellResult,
                u64,
                Vec<tokbench_telemetry::PhaseWindow>,
                u64,
            )> = None;
            let mut current: Option<Pending> = None;
            let mut deadline = Instant::now() + timeout;
            // Why the child stopped talking, when it did not say Done.
            let mut failure: Option<(ResultStatus, String)> = None;
            loop {
                let text = match next_output(child.as_mut(), deadline, ctx).await {
                    Output::Line(t) => t,
                    Output::End => break,
                    Output::Interrupted => {
                        failure = Some((ResultStatus::Interrupted, INTERRUPTED.into()));
                        break;
                    }
                    Output::Unreadable(e) => {
                        failure = Some((
                            ResultStatus::Failed,
                            format!("engine sent a malformed line (unreadable output: {e})"),
                        ));
                        break;
                    }
                    Output::TimedOut { how } => {
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
                        let label = format!(
                            "{} {} t{}",
                            cell.model.display_name(),
                            cell.test.label(),
                            params.n_threads
                        );
                        ctx.start_cell(cell.index, label).await;
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
                            let max = match suite.auto_repetitions {
                                Some(a) => a.max,
                                None => suite.repetitions,
                            };
                            let _ = ctx
                                .tx
                                .send(RunEvent::Repetition {
                                    index: p.cell.index,
                                    done: p.reps.len() as u32,
                                    max,
                                })
                                .await;
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
                        // With `auto`, the engine stops on its own between min and max.
                        let (complete, wanted) = match suite.auto_repetitions {
                            Some(a) => (
                                (a.min.max(1) as usize..=a.max.max(1) as usize)
                                    .contains(&p.reps.len()),
                                format!("{} to {}", a.min, a.max),
                            ),
                            None => (
                                p.reps.len() == suite.repetitions as usize,
                                suite.repetitions.to_string(),
                            ),
                        };
                        let (status, error) = if complete {
                            (ResultStatus::Ok, None)
                        } else {
                            (
                                ResultStatus::Failed,
                                Some(format!(
                                    "engine reported {} of {wanted} repetitions",
                                    p.reps.len(),
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
                            conditions: None,
                        };
                        if last {
                            idle_after = Some((
                                r,
                                p.start_ns,
                                p.windows,
                                tokbench_telemetry::monotonic_ns(),
                            ));
                        } else {
                            self.finish(ctx, r, name, model).await;
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
                            failed_status(&error),
                            error,
                            Some(child.log_tail_now(LOG_LINES)),
                        );
                        r.load_ms = load_ms;
                        self.finish(ctx, r, name, model).await;
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
                            r.telemetry =
                                ctx.telemetry.as_ref().map(|t| t.cell(start_ns, &windows));
                            self.finish(ctx, r, name, model).await;
                        }
                        let tail = child.log_tail(LOG_LINES).await;
                        // A model the device could not hold: every cell of its load
                        // did not fit.
                        let status = failed_status(&error);
                        for (cell, params) in queue.drain(..) {
                            let r = unmeasured(
                                &cell,
                                params,
                                status,
                                error.clone(),
                                Some(tail.clone()),
                            );
                            self.finish(ctx, r, name, model).await;
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
                let shutdown = match (
                    stop_reason(child.as_ref(), suite, failure.clone()),
                    ended.status,
                ) {
                    (Some((ResultStatus::Interrupted, _)), _) => None,
                    (Some((ResultStatus::Oom, why)), _) => {
                        Some(format!("the engine was stopped: {why}"))
                    }
                    (Some((_, why)), _) => Some(format!("the engine failed: {why}")),
                    _ if ended.stopped => Some(
                        "the engine did not exit after its last test; it was stopped".to_string(),
                    ),
                    (None, Some(s)) if !s.success() => Some(exit_failure("the engine", &s).1),
                    (None, Some(_)) => None,
                    (None, None) => Some("the engine could not be reaped".to_string()),
                };
                if let Some(how) = shutdown {
                    r.error = Some(format!("measured; at shutdown {how}"));
                }
                // Idle after: from the last test's end, at least `idle_after` long (the engine's
                // exit included), where telemetry can watch the machine fall back (a machine
                // with no power or device source has nothing to see, and was waiting half a
                // second per model for it); an interrupt cuts it short.
                let elapsed =
                    Duration::from_nanos(tokbench_telemetry::monotonic_ns().saturating_sub(end_ns));
                let wait = ctx
                    .telemetry
                    .as_ref()
                    .is_some_and(|t| t.watches_machine())
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
                self.finish(ctx, r, name, model).await;
            }
            if queue.is_empty() {
                continue;
            }
            // The child stopped before finishing the queue: the test in flight (or, if it died
            // while loading, every test) gets the reason; the rest run in a fresh child.
            let (status, reason) =
                stop_reason(child.as_ref(), suite, failure).unwrap_or_else(|| match ended.status {
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
                        reason =
                            format!("{reason} after {done} of {} repetitions", suite.repetitions);
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
                self.finish(ctx, r, name, model).await;
            }
            if status == ResultStatus::Interrupted {
                return;
            }
        }
    }
}

#[cfg(test)]
mod device_tests {
    use super::EngineDevice;

    #[test]
    fn an_engine_device_is_read_from_its_hello_whatever_its_description_holds() {
        let d = EngineDevice::parse("Vulkan:Vulkan0:llvmpipe (LLVM 15.0.6, 256 bits):2147483648");
        assert_eq!(
            d,
            Some(EngineDevice {
                backend: "Vulkan".into(),
                name: "Vulkan0".into(),
                description: "llvmpipe (LLVM 15.0.6, 256 bits)".into(),
                memory_total: 2147483648,
                memory_free: None,
            })
        );
        // lavapipe reports its whole heap free whatever is allocated; a GPU with a
        // budget holds some back.
        let mut d = d.unwrap();
        assert_eq!(d.reports_no_usage(), None);
        d.memory_free = Some(2147483648);
        assert_eq!(d.reports_no_usage(), Some(true));
        d.memory_free = Some(2_000_000_000);
        assert_eq!(d.reports_no_usage(), Some(false));
        let d = EngineDevice::parse("CPU:CPU:Model: X 9000:0").unwrap();
        assert_eq!(
            (d.description.as_str(), d.memory_total),
            ("Model: X 9000", 0)
        );
        assert_eq!(EngineDevice::parse("CPU:CPU:no size"), None);
        assert_eq!(EngineDevice::parse("garbage"), None);
    }
}
