//! The llama-bench backend: llama.cpp's own benchmark, spawned once per cell with
//! `-o json`; every field it prints is kept with the result.

use std::time::Duration;

use tokbench_core::{BackendBuild, BackendKind, Cell, CellResult, EngineParams, ResultStatus};
use tokio::time::Instant;

use super::{
    allocation_failure, exit_failure, next_output, stop_reason, unmeasured, watch_memory, Backend,
    BackendTarget, Group, Output, GRACE, INTERRUPTED, LOG_LINES,
};
use crate::child::{BoxFuture, Spawn};
use crate::serve::llama_engine_args;
use crate::{now_rfc3339, Ctx, PreparedModel};

/// llama-bench, as the CLI found it.
pub(crate) struct LlamaBench {
    pub(crate) target: BackendTarget,
}

impl Backend for LlamaBench {
    fn run_group<'a>(&'a self, ctx: &'a mut Ctx<'_>, group: Group) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            let Group { model, name, cells } = group;
            let target = &self.target;
            let expected = ctx.plan.suite.repetitions;
            for (cell, params) in cells {
                if ctx.cancelled() {
                    ctx.outcome.interrupted = true;
                    return;
                }
                let Some(program) = &target.program else {
                    let why = "llama-bench: no program to start".to_string();
                    let r = unmeasured(&cell, params, ResultStatus::Unavailable, why, None);
                    ctx.finish_cell(r, None, &name, Some(&model.record), &target.build, expected)
                        .await;
                    continue;
                };
                let label = format!(
                    "{} {} llama-bench t{}",
                    cell.model.display_name(),
                    cell.test.label(),
                    params.n_threads
                );
                ctx.start_cell(cell.index, label).await;
                let (r, build) =
                    llama_bench_cell(ctx, program, &model, &cell, params, &target.build).await;
                ctx.finish_cell(r, None, &name, Some(&model.record), &build, expected)
                    .await;
                if ctx.outcome.interrupted {
                    return;
                }
            }
        })
    }
}

/// `llama-bench` arguments for one cell (an argument vector; `-o json`).
pub fn llama_bench_args(
    model: &std::path::Path,
    cell: &Cell,
    p: &EngineParams,
    repetitions: u32,
    warmup: bool,
    extra: &[String],
) -> Vec<String> {
    let t = cell.test;
    let mut a: Vec<String> = vec![
        "-m".into(),
        model.display().to_string(),
        "-p".into(),
        t.n_prompt.to_string(),
        "-n".into(),
        t.n_gen.to_string(),
        "-d".into(),
        t.n_depth.to_string(),
        "-r".into(),
        repetitions.to_string(),
        "-fa".into(),
        if p.flash_attn { "1" } else { "0" }.into(),
        "-mmp".into(),
        if p.use_mmap { "1" } else { "0" }.into(),
        "-o".into(),
        "json".into(),
    ];
    a.extend(llama_engine_args(p));
    a.extend(crate::serve::offload_args(
        &p.offload,
        crate::serve::LlamaTool::Bench,
    ));
    if !warmup {
        a.push("--no-warmup".into());
    }
    a.extend(extra.iter().cloned());
    a
}

/// Runs one cell through llama-bench and returns its result and the build llama-bench
/// reported (commit, backends, CPU/GPU).
async fn llama_bench_cell(
    ctx: &mut Ctx<'_>,
    program: &std::path::Path,
    model: &PreparedModel,
    cell: &Cell,
    params: EngineParams,
    base_build: &BackendBuild,
) -> (CellResult, BackendBuild) {
    let suite = &ctx.plan.suite;
    let extra = suite.settings(BackendKind::LlamaBench).args;
    let args = llama_bench_args(
        &model.path,
        cell,
        &params,
        suite.repetitions,
        suite.warmup,
        &extra,
    );
    let started_at = now_rfc3339();
    let t0 = std::time::Instant::now();
    let start_ns = tokbench_telemetry::monotonic_ns();
    let spawn = Spawn {
        program,
        args: &args,
        envs: &[],
        stdin: "",
    };
    let mut child = match ctx.plan.launcher.spawn(spawn).await {
        Ok(c) => c,
        Err(e) => {
            let r = unmeasured(
                cell,
                params,
                ResultStatus::Unavailable,
                format!("cannot start llama-bench {}: {e}", program.display()),
                None,
            );
            return (r, base_build.clone());
        }
    };
    if let Some(t) = &ctx.telemetry {
        t.follow(child.pid());
    }
    watch_memory(child.as_mut(), suite);
    let deadline = Instant::now() + Duration::from_secs_f64(suite.timeout_s);
    let mut out = String::new();
    let mut failure: Option<(ResultStatus, String)> = None;
    loop {
        match next_output(child.as_mut(), deadline, ctx).await {
            Output::Line(t) => {
                out.push_str(&t);
                out.push('\n');
                if out.len() > tokbench_core::llama_bench::MAX_INPUT_BYTES {
                    child.terminate(GRACE).await;
                    failure = Some((
                        ResultStatus::Failed,
                        "llama-bench printed more than 16 MiB: stopped".into(),
                    ));
                    break;
                }
            }
            Output::End => break,
            Output::Interrupted => {
                failure = Some((ResultStatus::Interrupted, INTERRUPTED.into()));
                break;
            }
            Output::Unreadable(e) => {
                failure = Some((
                    ResultStatus::Failed,
                    format!("llama-bench output is unreadable: {e}"),
                ));
                break;
            }
            Output::TimedOut { how } => {
                failure = Some((
                    ResultStatus::Timeout,
                    format!(
                        "llama-bench did not finish within {:.0} s; it was stopped ({how})",
                        suite.timeout_s
                    ),
                ));
                break;
            }
        }
    }
    let ended = child.wait_or_stop(GRACE).await;
    let tail = child.log_tail(LOG_LINES).await;
    let telemetry = ctx.telemetry.as_ref().map(|t| t.cell(start_ns, &[]));
    let fail = |status, reason: String| {
        let mut r = unmeasured(cell, params, status, reason, Some(tail.clone()));
        r.started_at = started_at.clone();
        r.duration_ms = t0.elapsed().as_secs_f64() * 1e3;
        r.telemetry = telemetry.clone();
        (r, base_build.clone())
    };
    if let Some((status, reason)) = stop_reason(child.as_ref(), suite, failure) {
        return fail(status, reason);
    }
    match ended.status {
        Some(s) if !s.success() => {
            let (status, reason) = exit_failure("llama-bench", &s);
            // An exit after llama.cpp could not allocate (a model or context too large for
            // the device) is a cell that did not fit: `oom`, with llama.cpp's line.
            return match allocation_failure(&tail) {
                Some(line) if status == ResultStatus::Failed => {
                    fail(ResultStatus::Oom, format!("{reason}: {line}"))
                }
                _ => fail(status, reason),
            };
        }
        None => {
            return fail(
                ResultStatus::Failed,
                "llama-bench could not be reaped".into(),
            )
        }
        _ => {}
    }
    let records = match tokbench_core::llama_bench::parse_json(&out) {
        Ok(r) => r,
        Err(e) => return fail(ResultStatus::Failed, format!("llama-bench output: {e}")),
    };
    let raw: Vec<serde_json::Value> = serde_json::from_str(&out).unwrap_or_default();
    let want = cell.test;
    let Some((i, rec)) = records
        .iter()
        .enumerate()
        .find(|(_, r)| r.test_spec() == want)
    else {
        return fail(
            ResultStatus::Failed,
            format!(
                "llama-bench reported no {} test ({} records)",
                want.label(),
                records.len()
            ),
        );
    };
    let mut r = match rec.cell_result(cell.index) {
        Ok(r) => r,
        Err(e) => return fail(ResultStatus::Failed, format!("llama-bench output: {e}")),
    };
    if r.repetitions.len() != suite.repetitions as usize {
        return fail(
            ResultStatus::Failed,
            format!(
                "llama-bench reported {} of {} repetitions",
                r.repetitions.len(),
                suite.repetitions
            ),
        );
    }
    // The cell as the suite asked for it (llama-bench echoes the same settings).
    r.params = params;
    r.started_at = started_at;
    r.duration_ms = t0.elapsed().as_secs_f64() * 1e3;
    r.telemetry = telemetry;
    r.backend_json = raw.get(i).map(|v| v.to_string());
    let build = BackendBuild {
        name: "llama-bench".into(),
        version: if rec.build_number > 0 {
            format!("b{}", rec.build_number)
        } else {
            base_build.version.clone()
        },
        commit: Some(rec.build_commit.clone())
            .filter(|c| !c.is_empty() && c != "unknown")
            .or_else(|| base_build.commit.clone()),
        accel: tokbench_core::llama_bench::accel_of(rec.backends.as_deref()),
        flags: format!("{} | {}", rec.cpu_info, rec.gpu_info)
            .trim_end_matches(" | ")
            .to_string(),
    };
    (r, build)
}
