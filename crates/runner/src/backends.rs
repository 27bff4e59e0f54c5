//! The backends other than the embedded engine: llama-bench (spawned per cell with
//! `-o json`, every field it prints kept) and the server backends (llama-server and
//! `vllm serve` spawned, any OpenAI-compatible endpoint attached), measured by the
//! streaming client with the server's own figures beside the client's.

use std::path::PathBuf;
use std::time::Duration;

use tokbench_core::serving::{ServingResult, ServingSummary};
use tokbench_core::{
    BackendBuild, BackendKind, Cell, CellResult, EngineParams, MetricSource, Repetition,
    ResultStatus,
};
use tokio::time::Instant;

use crate::child::{describe_exit, Line, Supervised};
use crate::serve::client::{Api, Endpoint};
use crate::serve::{self, llama_engine_args, Arrivals};
use crate::{now_rfc3339, unmeasured, until_cancelled, Ctx, PreparedModel, GRACE, LOG_LINES};

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
    if !warmup {
        a.push("--no-warmup".into());
    }
    a.extend(extra.iter().cloned());
    a
}

/// Runs one cell through llama-bench and returns its result and the build llama-bench
/// reported (commit, backends, CPU/GPU).
pub(crate) async fn llama_bench_cell(
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
    let mut child = match Supervised::spawn(program, &args, &[], "").await {
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
    crate::watch_memory(&mut child, suite);
    let deadline = Instant::now() + Duration::from_secs_f64(suite.timeout_s);
    let mut out = String::new();
    let mut cancel = ctx.cancel.clone();
    let mut failure: Option<(ResultStatus, String)> = None;
    loop {
        let line = tokio::select! {
            l = child.next_line(deadline) => l,
            () = until_cancelled(&mut cancel) => {
                child.terminate(GRACE).await;
                ctx.outcome.interrupted = true;
                failure = Some((ResultStatus::Interrupted, "run interrupted (SIGINT/SIGTERM) while this cell was running".into()));
                break;
            }
        };
        match line {
            Line::Text(t) => {
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
            Line::Eof => break,
            Line::Unreadable(e) => {
                child.terminate(GRACE).await;
                failure = Some((
                    ResultStatus::Failed,
                    format!("llama-bench output is unreadable: {e}"),
                ));
                break;
            }
            Line::Timeout => {
                let how = child
                    .terminate(GRACE)
                    .await
                    .map(|s| describe_exit(&s))
                    .unwrap_or_else(|| "could not be reaped".into());
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
    if let Some((status, reason)) = crate::stop_reason(&child, suite, failure) {
        return fail(status, reason);
    }
    match ended.status {
        Some(s) if !s.success() => {
            let (status, reason) = crate::exit_failure("llama-bench", &s);
            return fail(status, reason);
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

/// A server cell that produced nothing: the client row carries the reason.
pub(crate) fn server_failure(
    cell: &Cell,
    params: EngineParams,
    status: ResultStatus,
    reason: String,
    tail: Option<String>,
) -> CellResult {
    let mut r = unmeasured(cell, params, status, reason, tail);
    r.metric_source = MetricSource::Client;
    r.serving = Some(Box::new(ServingResult {
        summary: ServingSummary {
            concurrency: cell.concurrency,
            ..Default::default()
        },
        requests: Vec::new(),
    }));
    r
}

/// The requests a server cell sends: `requests_per_stream` (default: the suite's
/// repetitions) per stream, or in all with Poisson arrivals.
pub(crate) fn requests_of(suite: &tokbench_core::Suite, cell: &Cell) -> u32 {
    let per_stream = suite.serve.requests_per_stream.unwrap_or(suite.repetitions);
    match (suite.serve.request_rate, cell.concurrency) {
        (Some(_), _) => per_stream,
        (None, c) => per_stream * c.unwrap_or(1),
    }
}

/// Runs every cell of one server backend that shares a model and engine parameters on one
/// server: spawned (llama-server, vLLM) or attached (openai).
pub(crate) async fn server_group(
    ctx: &mut Ctx<'_>,
    kind: BackendKind,
    target: &BackendTarget,
    model: &PreparedModel,
    name: &str,
    cells: Vec<(Cell, EngineParams)>,
) {
    let suite = &ctx.plan.suite;
    let settings = suite.settings(kind);
    let build = target.build.clone();
    // An attached endpoint may be remote (TLS): keep its connections, as a real client
    // would. A server spawned here is on loopback: a fresh connection per request, so a
    // keep-alive connection the server just closed never fails a request.
    // With a `base_url`, any server backend is attached to, not started.
    let attach = kind == BackendKind::OpenAi || settings.base_url.is_some();
    let http = if attach {
        serve::http_client_pooled()
    } else {
        serve::http_client()
    };
    // Slots the server needs: the most parallel streams, or for Poisson arrivals as many
    // as could overlap (up to 16), so requests do not queue behind one slot.
    let per_stream = suite.serve.requests_per_stream.unwrap_or(suite.repetitions);
    let max_streams = match suite.serve.request_rate {
        Some(_) => per_stream.clamp(1, 16),
        None => cells
            .iter()
            .filter_map(|(c, _)| c.concurrency)
            .max()
            .unwrap_or(1),
    };
    // An endpoint that serves its own model (openai, ollama, vLLM with `model`) is stored
    // under that model's name, not the suite's GGUF.
    let served = settings.model.clone().filter(|_| {
        matches!(
            kind,
            BackendKind::OpenAi | BackendKind::Ollama | BackendKind::Vllm
        )
    });
    let name: &str = served.as_deref().unwrap_or(name);
    let record = served.is_none().then(|| model.record.clone());
    let n_ctx_per_slot = cells
        .iter()
        .map(|(c, _)| c.test.n_depth + c.test.n_prompt.max(1) + c.test.n_gen.max(1) + 16)
        .max()
        .unwrap_or(512);
    let params = cells[0].1;
    let started = Instant::now();
    // Spawn (or attach).
    let mut child: Option<Supervised> = None;
    let (base, api, tokenize_url) = match kind {
        BackendKind::Ollama if attach => (
            settings.base_url.clone().unwrap_or_default(),
            Api::OllamaGenerate,
            None,
        ),
        BackendKind::LlamaServer if attach => {
            let base = settings.base_url.clone().unwrap_or_default();
            (
                base.clone(),
                Api::LlamaNative,
                Some(format!("{base}/tokenize")),
            )
        }
        _ if attach => {
            let base = settings.base_url.clone().unwrap_or_default();
            let root = base.trim_end_matches("/v1").to_string();
            (
                base,
                Api::OpenAiCompletions,
                Some(format!("{root}/tokenize")),
            )
        }
        _ => {
            let Some(program) = &target.program else {
                for (cell, p) in cells {
                    let r = server_failure(
                        &cell,
                        p,
                        ResultStatus::Unavailable,
                        format!("{kind}: no program to start"),
                        None,
                    );
                    let expected = requests_of(&ctx.plan.suite, &cell);
                    ctx.finish_with(r, name, record.as_ref(), &build, expected)
                        .await;
                }
                return;
            };
            let port = match settings.port {
                Some(p) => match std::net::TcpListener::bind(("127.0.0.1", p)) {
                    Ok(_) => Ok(p),
                    Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => Err(format!("port {p} is already in use ({e}); choose another `port` in `[backend.{kind}]`, or leave it out for a free one")),
                    Err(e) => Err(format!("cannot listen on port {p} ({e}); choose another `port` in `[backend.{kind}]`, or leave it out for a free one")),
                },
                None => serve::free_port().map_err(|e| format!("no free port for {kind}: {e}")),
            };
            let port = match port {
                Ok(p) => p,
                Err(e) => {
                    for (cell, p) in cells {
                        let r = server_failure(&cell, p, ResultStatus::Failed, e.clone(), None);
                        let expected = requests_of(&ctx.plan.suite, &cell);
                        ctx.finish_with(r, name, record.as_ref(), &build, expected)
                            .await;
                    }
                    return;
                }
            };
            let mut envs: Vec<(String, String)> = Vec::new();
            let args = match kind {
                BackendKind::Ollama => {
                    envs.push(("OLLAMA_HOST".into(), format!("127.0.0.1:{port}")));
                    let mut a = vec!["serve".to_string()];
                    a.extend(settings.args.iter().cloned());
                    a
                }
                BackendKind::Vllm => {
                    let mut a = vec![
                        "serve".to_string(),
                        settings
                            .model
                            .clone()
                            .unwrap_or_else(|| model.path.display().to_string()),
                        "--host".into(),
                        "127.0.0.1".into(),
                        "--port".into(),
                        port.to_string(),
                    ];
                    a.extend(settings.args.iter().cloned());
                    a
                }
                _ => serve::llama_server_args(
                    &model.path,
                    port,
                    &params,
                    n_ctx_per_slot * max_streams,
                    max_streams,
                    &settings.args,
                ),
            };
            match Supervised::spawn(program, &args, &envs, "").await {
                Ok(mut c) => {
                    c.log_stdout();
                    if let Some(t) = &ctx.telemetry {
                        t.follow(c.pid());
                    }
                    crate::watch_memory(&mut c, suite);
                    child = Some(c);
                }
                Err(e) => {
                    for (cell, p) in cells {
                        let r = server_failure(
                            &cell,
                            p,
                            ResultStatus::Unavailable,
                            format!("cannot start {kind} {}: {e}", program.display()),
                            None,
                        );
                        let expected = requests_of(&ctx.plan.suite, &cell);
                        ctx.finish_with(r, name, record.as_ref(), &build, expected)
                            .await;
                    }
                    return;
                }
            }
            let root = format!("http://127.0.0.1:{port}");
            match kind {
                BackendKind::Vllm => (
                    format!("{root}/v1"),
                    Api::OpenAiCompletions,
                    Some(format!("{root}/tokenize")),
                ),
                BackendKind::Ollama => (root.clone(), Api::OllamaGenerate, None),
                _ => (
                    root.clone(),
                    Api::LlamaNative,
                    Some(format!("{root}/tokenize")),
                ),
            }
        }
    };
    let health = match kind {
        BackendKind::OpenAi => format!("{base}/models"),
        BackendKind::Ollama => format!("{base}/api/version"),
        _ => format!("{}/health", base.trim_end_matches("/v1")),
    };
    let deadline = Instant::now() + Duration::from_secs_f64(settings.startup_timeout_s);
    let mut cancel = ctx.cancel.clone();
    let api_key = settings
        .api_key_env
        .as_deref()
        .and_then(|v| std::env::var(v).ok())
        .filter(|k| !k.is_empty());
    let ready = tokio::select! {
        r = serve::wait_healthy(&http, &health, api_key.as_deref(), child.as_mut(), deadline) => Some(r),
        () = until_cancelled(&mut cancel) => None,
    };
    let load_ms = match ready {
        None => {
            ctx.outcome.interrupted = true;
            if let Some(c) = child.as_mut() {
                c.terminate(GRACE).await;
            }
            for (cell, p) in cells {
                let r = server_failure(
                    &cell,
                    p,
                    ResultStatus::Interrupted,
                    "run interrupted (SIGINT/SIGTERM) while the server started".into(),
                    None,
                );
                let expected = requests_of(&ctx.plan.suite, &cell);
                ctx.finish_with(r, name, record.as_ref(), &build, expected)
                    .await;
            }
            return;
        }
        Some(Err(nr)) => {
            let (tail, oom) = match child.as_mut() {
                Some(c) => {
                    c.terminate(GRACE).await;
                    (
                        Some(c.log_tail(LOG_LINES).await),
                        crate::memory_failure(c, suite),
                    )
                }
                None => (None, None),
            };
            let (status, reason) = oom.unwrap_or((nr.status, nr.reason));
            for (cell, p) in cells {
                let r = server_failure(&cell, p, status, reason.clone(), tail.clone());
                let expected = requests_of(&ctx.plan.suite, &cell);
                ctx.finish_with(r, name, record.as_ref(), &build, expected)
                    .await;
            }
            return;
        }
        // Spawn → healthy: the server's start, model load included (an attached endpoint
        // was already up: no load time).
        Some(Ok(_)) => (!attach).then(|| started.elapsed().as_secs_f64() * 1e3),
    };
    let ep = Endpoint {
        base_url: base.clone(),
        api,
        model: settings
            .model
            .clone()
            .or_else(|| (kind == BackendKind::Vllm).then(|| model.path.display().to_string())),
        api_key,
        ignore_eos: suite.serve.ignore_eos,
        request_timeout: Duration::from_secs_f64(suite.timeout_s),
    };
    // The server's own description (llama-server /props): every field, once per group.
    let props = match kind {
        BackendKind::LlamaServer => serve::get_text(&http, &format!("{base}/props"), None).await,
        _ => None,
    };
    let mut first = true;
    for (cell, p) in cells {
        if ctx.cancelled() {
            ctx.outcome.interrupted = true;
            break;
        }
        if let Some(c) = child.as_mut() {
            if let Some(status) = c.exited() {
                let tail = c.log_tail(LOG_LINES).await;
                let (st, reason) = crate::stop_reason(c, suite, None).unwrap_or_else(|| {
                    let (st, why) = crate::exit_failure("the server", &status);
                    (st, format!("{why} before this cell"))
                });
                let r = server_failure(&cell, p, st, reason, Some(tail));
                let expected = requests_of(&ctx.plan.suite, &cell);
                ctx.finish_with(r, name, record.as_ref(), &build, expected)
                    .await;
                continue;
            }
        }
        let _ = ctx
            .tx
            .send(crate::RunEvent::CellStarted {
                index: cell.index,
                label: format!(
                    "{} {} {kind}{}",
                    cell.model.display_name(),
                    cell.test.label(),
                    cell.concurrency
                        .map(|c| format!(" c{c}"))
                        .unwrap_or_default()
                ),
            })
            .await;
        let started_at = now_rfc3339();
        let t0 = std::time::Instant::now();
        let start_ns = tokbench_telemetry::monotonic_ns();
        let arrivals = match (suite.serve.request_rate, cell.concurrency) {
            (Some(rate), _) => Arrivals::Rate(rate),
            (None, c) => Arrivals::Closed(c.unwrap_or(1)),
        };
        let n_requests = requests_of(suite, &cell);
        let n_prompt = cell.test.n_depth + cell.test.n_prompt;
        let max_tokens = cell.test.n_gen.max(1);
        let warm = u32::from(suite.warmup);
        let work = async {
            let prompts = serve::build_prompts(
                &http,
                tokenize_url.as_deref(),
                ep.model.as_deref(),
                ep.api_key.as_deref(),
                n_prompt.max(1),
                n_requests + warm,
                cell.index as u64,
            )
            .await;
            let (warm_prompts, prompts) = prompts.split_at(warm as usize);
            if let Some(w) = warm_prompts.first() {
                // One request first, not measured: the server's first request pays one-off
                // costs (graph allocation, caches).
                let _ = serve::client::timed_request(&http, &ep, 0, w, max_tokens, Instant::now())
                    .await;
            }
            serve::run_level(
                &http,
                &ep,
                prompts.to_vec(),
                max_tokens,
                arrivals,
                cell.index as u64,
            )
            .await
        };
        let mut cancel = ctx.cancel.clone();
        let level = tokio::select! {
            l = work => Some(l),
            () = until_cancelled(&mut cancel) => None,
        };
        let Some((requests, duration_s)) = level else {
            ctx.outcome.interrupted = true;
            let r = server_failure(
                &cell,
                p,
                ResultStatus::Interrupted,
                "run interrupted (SIGINT/SIGTERM) while this cell was running".into(),
                None,
            );
            ctx.finish_with(r, name, record.as_ref(), &build, n_requests)
                .await;
            break;
        };
        // Ollama says what it holds in device memory (`size_vram`) for the loaded model.
        let ps = match kind {
            BackendKind::Ollama => {
                serve::get_text(&http, &format!("{base}/api/ps"), ep.api_key.as_deref()).await
            }
            _ => None,
        };
        let summary = ServingSummary::of(
            &requests,
            cell.concurrency,
            suite.serve.request_rate,
            duration_s,
        );
        let failed = requests.iter().filter(|r| !r.ok()).count();
        let (status, error) = if failed == 0 {
            (ResultStatus::Ok, None)
        } else {
            let first_err = requests
                .iter()
                .find_map(|r| r.error.clone())
                .unwrap_or_default();
            // A killed server's sockets close before its exit is visible: give it a
            // moment to be seen dead before calling the failure the requests' own.
            let died = match child.as_mut() {
                Some(c) => match c.exited() {
                    Some(s) => Some(s),
                    None => c.wait_for(Duration::from_millis(500)).await,
                },
                None => None,
            };
            let (st, how) = match (
                child.as_ref().and_then(|c| crate::memory_failure(c, suite)),
                died,
            ) {
                (Some((st, why)), _) => (st, format!("; {why}")),
                (None, Some(s)) => {
                    let (st, why) = crate::exit_failure("the server", &s);
                    (st, format!("; {why}"))
                }
                (None, None) => (ResultStatus::Failed, String::new()),
            };
            (
                st,
                Some(format!(
                    "{failed} of {} requests failed; first: {first_err}{how}",
                    requests.len()
                )),
            )
        };
        // A spawned server's log goes with every result it served (what it said while
        // measured: warnings, slot reuse, memory).
        let tail = child
            .as_ref()
            .map(|c| c.log_tail_now(LOG_LINES))
            .filter(|t| !t.is_empty());
        let ok = status == ResultStatus::Ok;
        let telemetry = ctx.telemetry.as_ref().map(|t| t.cell(start_ns, &[]));
        let duration_ms = t0.elapsed().as_secs_f64() * 1e3;
        let client_reps: Vec<Repetition> = if ok {
            requests
                .iter()
                .map(|q| Repetition {
                    prefill_tps: None,
                    decode_tps: q.decode_tps(),
                    ttft_ms: q.ttft_ms,
                    prompt_ms: None,
                    // First token → last, as for the engine (e2e is in `request`).
                    gen_ms: q.decode_ms(),
                })
                .collect()
        } else {
            Vec::new()
        };
        let server_reps: Vec<Repetition> = if ok {
            requests
                .iter()
                .filter_map(|q| q.server)
                .map(|t| Repetition {
                    // A pp test's one generated token and a tg test's one-token prompt say
                    // nothing about the phase they stand in for.
                    prefill_tps: t.prefill_tps().filter(|_| cell.test.n_prompt > 0),
                    decode_tps: t
                        .decode_tps()
                        .filter(|_| cell.test.n_gen > 1 && t.predicted_n.unwrap_or(0) > 1),
                    ttft_ms: None,
                    prompt_ms: t.prompt_ms,
                    gen_ms: t.predicted_ms,
                })
                .collect()
        } else {
            Vec::new()
        };
        let has_server_figures = !server_reps.is_empty();
        let client = CellResult {
            cell_index: cell.index,
            test: cell.test,
            params: p,
            status,
            error,
            metric_source: MetricSource::Client,
            load_ms: load_ms.filter(|_| first),
            rss_peak_bytes: None,
            allocated: None,
            telemetry,
            repetitions: client_reps,
            serving: Some(Box::new(ServingResult { summary, requests })),
            backend_json: ps.or_else(|| props.clone()),
            log_tail: tail,
            started_at: started_at.clone(),
            duration_ms,
        };
        let server = has_server_figures.then(|| CellResult {
            cell_index: cell.index,
            test: cell.test,
            params: p,
            status: ResultStatus::Ok,
            error: None,
            metric_source: MetricSource::Server,
            load_ms: None,
            rss_peak_bytes: None,
            allocated: None,
            telemetry: None,
            repetitions: server_reps,
            // The level it belongs to (its series), without the client's latencies.
            serving: Some(Box::new(ServingResult {
                summary: ServingSummary {
                    concurrency: cell.concurrency,
                    request_rate: suite.serve.request_rate,
                    n_requests,
                    ..Default::default()
                },
                requests: Vec::new(),
            })),
            backend_json: None,
            log_tail: None,
            started_at,
            duration_ms,
        });
        ctx.finish_cell(client, server, name, record.as_ref(), &build, n_requests)
            .await;
        first = false;
    }
    if let Some(mut c) = child {
        c.terminate(GRACE).await;
    }
}
