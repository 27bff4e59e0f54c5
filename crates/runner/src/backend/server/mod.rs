//! The server backends: a server started for a model load (llama-server, `vllm serve`,
//! `ollama serve`) or an endpoint attached to, measured by the streaming client, with the
//! server's own figures stored beside the client's. What differs between servers (how one
//! is started, which API it speaks, where it says it is healthy) is its [`Dialect`].

mod dialect;

use std::time::Duration;

use tokbench_core::serving::{ServingResult, ServingSummary};
use tokbench_core::{
    BackendKind, Cell, CellResult, EngineParams, MetricSource, Repetition, ResultStatus,
};
use tokio::time::Instant;

use self::dialect::{Dialect, Start};
use super::{
    allocation_failure, exit_failure, memory_failure, stop_reason, unmeasured, watch_memory,
    Backend, BackendTarget, Group, GRACE, LOG_LINES,
};
use crate::child::{BoxFuture, Process, Spawn};
use crate::serve::client::Endpoint;
use crate::serve::{self, Arrivals};
use crate::{now_rfc3339, until_cancelled, Ctx};

/// A server backend and how it speaks.
pub(crate) struct Server {
    kind: BackendKind,
    target: BackendTarget,
    dialect: Box<dyn Dialect>,
}

impl Server {
    pub(crate) fn new(kind: BackendKind, target: BackendTarget) -> Server {
        Server {
            kind,
            target,
            dialect: dialect::of(kind),
        }
    }
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

impl Backend for Server {
    fn run_group<'a>(&'a self, ctx: &'a mut Ctx<'_>, group: Group) -> BoxFuture<'a, ()> {
        Box::pin(self.group(ctx, group))
    }
}

impl Server {
    /// Runs every cell of the group on one server: spawned (llama-server, vLLM, Ollama) or
    /// attached (an OpenAI-compatible endpoint, or any server given a `base_url`).
    async fn group(&self, ctx: &mut Ctx<'_>, group: Group) {
        let Group { model, name, cells } = group;
        let (model, name) = (&model, name.as_str());
        let (kind, target, dialect) = (self.kind, &self.target, self.dialect.as_ref());
        let suite = &ctx.plan.suite;
        let settings = suite.settings(kind);
        let build = target.build.clone();
        // An attached endpoint may be remote (TLS): keep its connections, as a real client
        // would. A server spawned here is on loopback: a fresh connection per request, so a
        // keep-alive connection the server just closed never fails a request.
        // With a `base_url`, any server backend is attached to, not started.
        let attach = dialect.attach_only() || settings.base_url.is_some();
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
        let served = settings
            .model
            .clone()
            .filter(|_| dialect.serves_own_model());
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
        let mut child: Option<Box<dyn Process>> = None;
        let base = match settings.base_url.clone().filter(|_| attach) {
            Some(base) => base,
            None => {
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
                        ctx.finish_cell(r, None, name, record.as_ref(), &build, expected)
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
                            ctx.finish_cell(r, None, name, record.as_ref(), &build, expected)
                                .await;
                        }
                        return;
                    }
                };
                let (args, envs, base) = dialect.start(&Start {
                    model: &model.path,
                    port,
                    params: &params,
                    n_ctx: n_ctx_per_slot * max_streams,
                    slots: max_streams,
                    settings: &settings,
                });
                let spawn = Spawn {
                    program,
                    args: &args,
                    envs: &envs,
                    stdin: "",
                };
                match ctx.plan.launcher.spawn(spawn).await {
                    Ok(mut c) => {
                        c.log_stdout();
                        if let Some(t) = &ctx.telemetry {
                            t.follow(c.pid());
                        }
                        watch_memory(c.as_mut(), suite);
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
                            ctx.finish_cell(r, None, name, record.as_ref(), &build, expected)
                                .await;
                        }
                        return;
                    }
                }
                base
            }
        };
        let (api, tokenize_url) = (dialect.api(), dialect.tokenize_url(&base));
        let health = dialect.health_url(&base);
        let deadline = Instant::now() + Duration::from_secs_f64(settings.startup_timeout_s);
        let mut cancel = ctx.cancel.clone();
        let api_key = settings
            .api_key_env
            .as_deref()
            .and_then(|v| std::env::var(v).ok())
            .filter(|k| !k.is_empty());
        let ready = tokio::select! {
            r = serve::wait_healthy(&http, &health, api_key.as_deref(), child.as_deref_mut(), deadline) => Some(r),
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
                    ctx.finish_cell(r, None, name, record.as_ref(), &build, expected)
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
                            memory_failure(c.as_ref(), suite),
                        )
                    }
                    None => (None, None),
                };
                // A server that exited after llama.cpp could not allocate the model or
                // its context on the device: the cells did not fit (`oom`, its line).
                let (status, reason) =
                    oom.unwrap_or_else(|| match tail.as_deref().and_then(allocation_failure) {
                        Some(line) if nr.status == ResultStatus::Failed => {
                            (ResultStatus::Oom, format!("{}: {line}", nr.reason))
                        }
                        _ => (nr.status, nr.reason),
                    });
                for (cell, p) in cells {
                    let r = server_failure(&cell, p, status, reason.clone(), tail.clone());
                    let expected = requests_of(&ctx.plan.suite, &cell);
                    ctx.finish_cell(r, None, name, record.as_ref(), &build, expected)
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
            model: dialect.request_model(&settings, &model.path),
            api_key,
            ignore_eos: suite.serve.ignore_eos,
            request_timeout: Duration::from_secs_f64(suite.timeout_s),
        };
        // The server's own description (llama-server /props): every field, once per group.
        let props = match dialect.describe_url(&base) {
            Some(url) => serve::get_text(&http, &url, None).await,
            None => None,
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
                    let (st, reason) = stop_reason(c.as_ref(), suite, None).unwrap_or_else(|| {
                        let (st, why) = exit_failure("the server", &status);
                        (st, format!("{why} before this cell"))
                    });
                    let r = server_failure(&cell, p, st, reason, Some(tail));
                    let expected = requests_of(&ctx.plan.suite, &cell);
                    ctx.finish_cell(r, None, name, record.as_ref(), &build, expected)
                        .await;
                    continue;
                }
            }
            let label = format!(
                "{} {} {kind}{}",
                cell.model.display_name(),
                cell.test.label(),
                cell.concurrency
                    .map(|c| format!(" c{c}"))
                    .unwrap_or_default()
            );
            ctx.start_cell(cell.index, label).await;
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
                    let _ =
                        serve::client::timed_request(&http, &ep, 0, w, max_tokens, Instant::now())
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
                ctx.finish_cell(r, None, name, record.as_ref(), &build, n_requests)
                    .await;
                break;
            };
            // Ollama says what it holds in device memory (`size_vram`) for the loaded model.
            let ps = match dialect.after_cell_url(&base) {
                Some(url) => serve::get_text(&http, &url, ep.api_key.as_deref()).await,
                None => None,
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
                    child
                        .as_ref()
                        .and_then(|c| memory_failure(c.as_ref(), suite)),
                    died,
                ) {
                    (Some((st, why)), _) => (st, format!("; {why}")),
                    (None, Some(s)) => {
                        let (st, why) = exit_failure("the server", &s);
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
                conditions: None,
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
                conditions: None,
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
}
