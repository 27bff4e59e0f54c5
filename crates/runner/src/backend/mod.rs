//! The backends, one module each behind one trait: [`engine`] (the embedded engine child,
//! many tests per process), [`llama_bench`] (llama-bench spawned per cell) and [`server`]
//! (llama-server, vLLM, Ollama and any OpenAI-compatible endpoint, as dialects of one
//! streaming client). Every backend starts its processes through the plan's
//! [`Launcher`](crate::child::Launcher), reads them with [`next_output`], and turns how they
//! ended into a result with the helpers here, so a crash, a hang or a memory kill reads the
//! same whichever backend it struck.

pub mod engine;
pub mod llama_bench;
pub mod server;

use std::path::PathBuf;
use std::time::Duration;

use tokbench_core::{
    BackendBuild, BackendKind, Cell, CellResult, EngineParams, MetricSource, ResultStatus, Suite,
};
use tokio::time::Instant;

use crate::child::{describe_exit, BoxFuture, Line, Process};
use crate::{now_rfc3339, until_cancelled, Ctx, PreparedModel, RunPlan};

/// How long a child gets to stop after SIGTERM before SIGKILL.
pub(crate) const GRACE: Duration = Duration::from_secs(3);
/// Lines of a failed backend's log kept with its result.
pub(crate) const LOG_LINES: usize = 40;
/// Why the cell in flight has no figures when the run is interrupted.
pub(crate) const INTERRUPTED: &str = "run interrupted (SIGINT/SIGTERM) while this cell was running";

/// Cells that share one model load, handed to a backend.
#[derive(Debug)]
pub(crate) struct Group {
    pub(crate) model: PreparedModel,
    /// The model's name as results store it.
    pub(crate) name: String,
    pub(crate) cells: Vec<(Cell, EngineParams)>,
}

/// One backend: it loads a group's model (a process, a server), measures its cells and
/// stops. Every cell of the group is reported through `ctx` exactly once, measured or with
/// the reason it is not; an interrupt sets `ctx.outcome.interrupted` and returns.
pub(crate) trait Backend: Send + Sync {
    fn run_group<'a>(&'a self, ctx: &'a mut Ctx<'_>, group: Group) -> BoxFuture<'a, ()>;
}

/// The backend that runs `kind`'s cells in `plan`.
pub(crate) fn for_kind(plan: &RunPlan, kind: BackendKind) -> Box<dyn Backend> {
    let target = || {
        plan.backends.get(&kind).cloned().unwrap_or_else(|| {
            BackendTarget::unavailable(kind, format!("{kind} was not resolved before the run"))
        })
    };
    match kind {
        BackendKind::Engine => Box::new(engine::Engine {
            command: plan.engine.clone(),
            build: plan.build.clone(),
        }),
        _ if target().unavailable.is_some() => Box::new(Unavailable {
            kind,
            target: target(),
        }),
        BackendKind::LlamaBench => Box::new(llama_bench::LlamaBench { target: target() }),
        server => Box::new(server::Server::new(server, target())),
    }
}

/// A backend as the CLI resolved it before the run: the program to spawn (or none, for an
/// endpoint to attach to), its build, or why it cannot run here.
#[derive(Debug, Clone)]
pub struct BackendTarget {
    pub program: Option<PathBuf>,
    pub build: BackendBuild,
    /// Set when the backend is not installed or cannot run: its cells are stored as
    /// `unavailable` with this reason.
    pub unavailable: Option<String>,
}

impl BackendTarget {
    /// A backend that cannot run here, and why.
    pub fn unavailable(kind: BackendKind, reason: String) -> BackendTarget {
        BackendTarget {
            program: None,
            build: BackendBuild {
                name: kind.name().into(),
                version: "unavailable".into(),
                commit: None,
                accel: "unknown".into(),
                flags: String::new(),
            },
            unavailable: Some(reason),
        }
    }

    /// A backend whose accelerator tokbench cannot tell: started from `program`, or
    /// attached (`None`), with what is known of its version and configuration.
    pub fn opaque(
        kind: BackendKind,
        program: Option<PathBuf>,
        version: Option<String>,
        flags: String,
    ) -> BackendTarget {
        BackendTarget {
            program,
            build: BackendBuild {
                name: kind.name().into(),
                version: version.unwrap_or_else(|| "unknown".into()),
                commit: None,
                accel: "unknown".into(),
                flags,
            },
            unavailable: None,
        }
    }
}

/// A backend that cannot run here: each cell is stored `unavailable`, with the reason.
struct Unavailable {
    kind: BackendKind,
    target: BackendTarget,
}

impl Backend for Unavailable {
    fn run_group<'a>(&'a self, ctx: &'a mut Ctx<'_>, group: Group) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            let reason = self.target.unavailable.clone().unwrap_or_default();
            let suite = &ctx.plan.suite;
            for (cell, params) in group.cells {
                let status = ResultStatus::Unavailable;
                let (r, expected) = if self.kind.is_server() {
                    let r = server::server_failure(&cell, params, status, reason.clone(), None);
                    (r, server::requests_of(suite, &cell))
                } else {
                    let r = unmeasured(&cell, params, status, reason.clone(), None);
                    (r, suite.repetitions)
                };
                let record = Some(&group.model.record);
                ctx.finish_cell(r, None, &group.name, record, &self.target.build, expected)
                    .await;
            }
        })
    }
}

/// What reading a backend's output gave.
#[derive(Debug)]
pub(crate) enum Output {
    Line(String),
    /// Its stdout closed.
    End,
    /// The run was interrupted; the process was stopped.
    Interrupted,
    /// Its output could not be read as text; the process was stopped.
    Unreadable(String),
    /// Nothing came before the deadline; the process was stopped and ended `how`.
    TimedOut {
        how: String,
    },
}

/// The one output loop's step: the next line of `child`, unless the deadline passes, the
/// output is unreadable or the run is interrupted, in which case the child is stopped
/// (SIGTERM, grace, SIGKILL) before this returns.
pub(crate) async fn next_output(
    child: &mut dyn Process,
    deadline: Instant,
    ctx: &mut Ctx<'_>,
) -> Output {
    let mut cancel = ctx.cancel.clone();
    let line = tokio::select! {
        l = child.next_line(deadline) => l,
        () = until_cancelled(&mut cancel) => {
            child.terminate(GRACE).await;
            ctx.outcome.interrupted = true;
            return Output::Interrupted;
        }
    };
    match line {
        Line::Text(t) => Output::Line(t),
        Line::Eof => Output::End,
        Line::Unreadable(e) => {
            child.terminate(GRACE).await;
            Output::Unreadable(e)
        }
        Line::Timeout => {
            let how = child
                .terminate(GRACE)
                .await
                .map(|s| describe_exit(&s))
                .unwrap_or_else(|| "could not be reaped".into());
            Output::TimedOut { how }
        }
    }
}

/// Puts a spawned backend under the suite's memory limit, if it has one.
pub(crate) fn watch_memory(child: &mut dyn Process, suite: &Suite) {
    if let Some(mb) = suite.memory_limit_mb {
        child.limit_memory(mb.saturating_mul(1 << 20));
    }
}

/// The result a backend stopped by the memory watchdog gets.
pub(crate) fn memory_failure(child: &dyn Process, suite: &Suite) -> Option<(ResultStatus, String)> {
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

/// The first line of `said` (an error, a log tail) in which llama.cpp or ggml reports
/// memory it could not allocate: a model, KV-cache or compute buffer the device (or the
/// host) could not hold, a tensor larger than the device's largest buffer. A cell that
/// failed so did not fit: its status is `oom`, with llama.cpp's words.
pub(crate) fn allocation_failure(said: &str) -> Option<&str> {
    const MARKS: [&str; 6] = [
        "failed to allocate",
        "unable to allocate",
        "out of memory",
        "outofdevicememory",
        "cudamalloc failed",
        "too large to fit in a",
    ];
    // Warnings of an allocation llama.cpp recovers from (pinned host memory it replaces
    // with ordinary memory, a reorder it skips): not why anything failed.
    const RECOVERED: [&str; 3] = ["pinned memory", "skipping", "falling back"];
    // An engine's error holds llama.cpp's lines after "llama.cpp said: ", " | " apart.
    said.lines()
        .flat_map(|l| l.split(" | "))
        .map(|l| {
            l.rsplit_once("llama.cpp said: ")
                .map_or(l, |(_, line)| line)
                .trim()
        })
        .find(|l| {
            let l = l.to_ascii_lowercase();
            MARKS.iter().any(|m| l.contains(m)) && !RECOVERED.iter().any(|m| l.contains(m))
        })
}

/// A failed cell's status from what its backend said: `oom` where an allocation failed
/// ([`allocation_failure`]), else `failed`.
pub(crate) fn failed_status(said: &str) -> ResultStatus {
    if allocation_failure(said).is_some() {
        ResultStatus::Oom
    } else {
        ResultStatus::Failed
    }
}

/// Why a backend stopped when tokbench knows: its memory limit first (unless the run was
/// interrupted), then `failure`, what tokbench saw it do.
pub(crate) fn stop_reason(
    child: &dyn Process,
    suite: &Suite,
    failure: Option<(ResultStatus, String)>,
) -> Option<(ResultStatus, String)> {
    let interrupted = matches!(failure, Some((ResultStatus::Interrupted, _)));
    memory_failure(child, suite)
        .filter(|_| !interrupted)
        .or(failure)
}

/// A result with no figures: `status` and why.
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
        conditions: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allocation_failures_are_told_from_other_failures() {
        // What the engine reported on lavapipe with GGML_VK_FORCE_MAX_BUFFER_SIZE=8388608 at
        // ngl 99 (scripts/vulkan-check.sh): the bindings' generic error, then llama.cpp's
        // error lines, as captured.
        let load = "llama.cpp could not load m.gguf (n_gpu_layers 99): null result from llama cpp; llama.cpp said: ggml_backend_buft_alloc_buffer_n_default: failed to allocate Vulkan0 buffer of size 26773504 | llama_model_load: error loading model: unable to allocate Vulkan0 buffer | llama_model_load_from_file_impl: failed to load model";
        assert_eq!(
            allocation_failure(load),
            Some("ggml_backend_buft_alloc_buffer_n_default: failed to allocate Vulkan0 buffer of size 26773504")
        );
        assert_eq!(failed_status(load), ResultStatus::Oom);
        // The same device at 1 MiB, ngl 0: the context's compute buffer, in a log tail
        // (ggml-vulkan's own lines go to stderr, not through llama.cpp's log).
        let tail = "ggml_vulkan: Device memory allocation of size 2578960 failed.\nggml_vulkan: Requested buffer size exceeds device buffer size limit: ErrorOutOfDeviceMemory\nggml_gallocr_reserve_n_impl: failed to allocate Vulkan0 buffer of size 2578960\ngraph_reserve: failed to allocate compute buffers";
        assert_eq!(
            allocation_failure(tail),
            Some("ggml_vulkan: Requested buffer size exceeds device buffer size limit: ErrorOutOfDeviceMemory")
        );
        // CUDA's wording (ggml-cuda's format), and a tensor larger than the largest buffer.
        assert_eq!(
            failed_status("ggml_backend_cuda_buffer_type_alloc_buffer: allocating 4403.49 MiB on device 0: cudaMalloc failed: out of memory"),
            ResultStatus::Oom
        );
        assert_eq!(
            failed_status("ggml_backend_alloc_ctx_tensors_from_buft: tensor output.weight is too large to fit in a Vulkan0 buffer (tensor size: 17432576, max buffer size: 8388608)"),
            ResultStatus::Oom
        );
        // Not memory: a missing file, a bad architecture, a decode error; nor a server that
        // warned of pinned memory (ggml-vulkan's warning, as it formats it; it goes on
        // with ordinary memory) and then failed for another reason.
        for other in [
            "ggml_vulkan: Failed to allocate pinned memory (vk::Device::allocateMemory: ErrorOutOfDeviceMemory)\nllama_model_load: error loading model: error loading model architecture: unknown model architecture: 'xyz'",
            "model file not found: /x.gguf",
            "llama.cpp could not load m.gguf (n_gpu_layers 0): null result from llama cpp; llama.cpp said: llama_model_load: error loading model: error loading model architecture: unknown model architecture: 'xyz'",
            "llama_decode failed: Decode Error 1: NoKvCacheSlot",
        ] {
            assert_eq!(allocation_failure(other), None, "{other}");
            assert_eq!(failed_status(other), ResultStatus::Failed, "{other}");
        }
    }
}
