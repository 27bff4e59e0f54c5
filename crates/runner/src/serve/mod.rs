//! Server backends: spawn a server (llama-server, `vllm serve`) on a free port or attach to
//! a running OpenAI-compatible endpoint, wait on its health endpoint with a timeout, build
//! prompts of an exact token count with its tokenizer, and load it with closed-loop
//! streams or Poisson arrivals while the streaming client times every request.

pub mod client;
pub mod sse;

use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use tokbench_core::serving::RequestTiming;
use tokio::time::Instant;

use crate::child::{describe_exit, Process};
use client::{error_chain, timed_request, Endpoint, Prompt};

/// A port nothing listens on now (the OS picks it; the server binds it a moment later).
pub fn free_port() -> std::io::Result<u16> {
    let l = std::net::TcpListener::bind(("127.0.0.1", 0))?;
    Ok(l.local_addr()?.port())
}

/// An HTTP client for one backend: no proxy (local servers), connect timeout bounded, and
/// no pooled connections — a server closes idle keep-alive connections on its own
/// schedule, and a request sent on one it just closed fails for no fault of the server's.
/// Every request opens its own connection (on loopback, well under a millisecond).
pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .connect_timeout(Duration::from_secs(10))
        .pool_max_idle_per_host(0)
        .build()
        .expect("an HTTP client with default TLS builds")
}

/// An HTTP client that keeps connections (an attached, possibly remote endpoint: TLS
/// set-up once, not inside every request's TTFT).
pub fn http_client_pooled() -> reqwest::Client {
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .pool_max_idle_per_host(64)
        .build()
        .expect("an HTTP client with default TLS builds")
}

/// `GET url`'s body when it answers 2xx within 5 s (headers and body), else `None`.
pub async fn get_text(http: &reqwest::Client, url: &str, api_key: Option<&str>) -> Option<String> {
    let mut req = http.get(url).timeout(Duration::from_secs(5));
    if let Some(k) = api_key {
        req = req.bearer_auth(k);
    }
    let r = req.send().await.ok()?;
    if !r.status().is_success() {
        return None;
    }
    r.text().await.ok()
}

/// Why a server could not be used.
#[derive(Debug, Clone, PartialEq)]
pub struct NotReady {
    /// `timeout`, `failed` or `crashed`, as a result status names it.
    pub status: tokbench_core::ResultStatus,
    pub reason: String,
}

/// Polls `url` until it answers 2xx, the child (if any) exits, or `deadline` passes.
pub async fn wait_healthy(
    http: &reqwest::Client,
    url: &str,
    api_key: Option<&str>,
    mut child: Option<&mut (dyn Process + 'static)>,
    deadline: Instant,
) -> Result<Duration, NotReady> {
    use tokbench_core::ResultStatus;
    let start = Instant::now();
    let mut last = String::from("no answer yet");
    loop {
        if let Some(c) = child.as_deref_mut() {
            if let Some(status) = c.exited() {
                let crashed = crate::child::died_by_signal(&status);
                return Err(NotReady {
                    status: if crashed {
                        ResultStatus::Crashed
                    } else {
                        ResultStatus::Failed
                    },
                    reason: format!(
                        "the server {} before it was healthy",
                        describe_exit(&status)
                    ),
                });
            }
        }
        let mut probe = http.get(url).timeout(Duration::from_secs(2));
        if let Some(k) = api_key {
            probe = probe.bearer_auth(k);
        }
        let probe = probe.send();
        match tokio::time::timeout_at(deadline, probe).await {
            Ok(Ok(r)) if r.status().is_success() => return Ok(start.elapsed()),
            Ok(Ok(r)) => last = format!("HTTP {}", r.status()),
            Ok(Err(e)) => last = error_chain(&e),
            Err(_) => {}
        }
        if Instant::now() >= deadline {
            return Err(NotReady {
                status: ResultStatus::Timeout,
                reason: format!(
                    "the server was not healthy within {:.0} s ({url}: {last})",
                    (deadline - start).as_secs_f64()
                ),
            });
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Words the prompt text is drawn from: common English, so any tokenizer splits them into
/// ordinary tokens.
const WORDS: &[&str] = &[
    "the", "model", "runs", "on", "a", "small", "machine", "and", "every", "token", "counts",
    "when", "people", "measure", "speed", "memory", "power", "time", "first", "answer", "long",
    "story", "about", "river", "city", "night", "light", "music", "window", "garden", "quiet",
    "road", "north", "winter", "table", "paper", "number", "letter", "green", "stone",
];

fn text_of(rng: &mut rand_chacha::ChaCha8Rng, n_words: usize) -> String {
    (0..n_words)
        .map(|_| WORDS[rng.gen_range(0..WORDS.len())])
        .collect::<Vec<_>>()
        .join(" ")
}

/// Token ids for `text` from the server's tokenizer endpoint (`/tokenize`: llama-server's
/// `{"content"}` or vLLM's `{"prompt", "model"}`), or `None` when it has none.
pub async fn tokenize(
    http: &reqwest::Client,
    url: &str,
    model: Option<&str>,
    api_key: Option<&str>,
    text: &str,
    timeout: Duration,
) -> Option<Vec<u32>> {
    let bodies = [
        json!({"content": text, "add_special": false}),
        json!({"prompt": text, "model": model, "add_special_tokens": false}),
    ];
    for body in bodies {
        let mut req = http.post(url).json(&body);
        if let Some(k) = api_key {
            req = req.bearer_auth(k);
        }
        let Ok(Ok(r)) = tokio::time::timeout(timeout, req.send()).await else {
            continue;
        };
        if !r.status().is_success() {
            continue;
        }
        let Ok(Ok(v)) = tokio::time::timeout(timeout, r.json::<Value>()).await else {
            continue;
        };
        let ids: Option<Vec<u32>> = v.get("tokens").and_then(Value::as_array).map(|a| {
            a.iter()
                // llama-server answers ids, or {id, piece} objects with `with_pieces`.
                .filter_map(|t| t.as_u64().or_else(|| t.get("id").and_then(Value::as_u64)))
                .filter_map(|t| u32::try_from(t).ok())
                .collect()
        });
        if let Some(ids) = ids.filter(|i| !i.is_empty()) {
            return Some(ids);
        }
    }
    None
}

/// `count` prompts of exactly `n_tokens` tokens each (distinct, so no prefix is shared
/// between requests), tokenized by the server; text of about that many words when it
/// cannot tokenize (the server's own count is stored per request either way).
pub async fn build_prompts(
    http: &reqwest::Client,
    tokenize_url: Option<&str>,
    model: Option<&str>,
    api_key: Option<&str>,
    n_tokens: u32,
    count: u32,
    seed: u64,
) -> Vec<Prompt> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let n = n_tokens.max(1) as usize;
    let mut out = Vec::with_capacity(count as usize);
    let mut pool: Vec<u32> = Vec::new();
    if let Some(url) = tokenize_url {
        // One long text, tokenized once; each prompt is a window of it at its own offset.
        let need = n + count as usize * 7 + 16;
        let mut words = need + 16;
        for _ in 0..4 {
            let text = text_of(&mut rng, words);
            match tokenize(http, url, model, api_key, &text, Duration::from_secs(30)).await {
                Some(ids) if ids.len() >= need => {
                    pool = ids;
                    break;
                }
                Some(ids) => words = words * need / ids.len().max(1) + 16,
                None => break,
            }
        }
    }
    for i in 0..count as usize {
        if pool.len() >= n + count as usize * 7 {
            let off = i * 7;
            out.push(Prompt::Tokens(pool[off..off + n].to_vec()));
        } else {
            out.push(Prompt::Text(text_of(&mut rng, n)));
        }
    }
    out
}

/// How requests arrive.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Arrivals {
    /// `n` streams, each sending its next request when the last ends.
    Closed(u32),
    /// Poisson arrivals at this many requests per second.
    Rate(f64),
}

/// Sends `prompts.len()` requests under `arrivals` and returns every request's timings
/// and the wall time from the first send to the last end.
pub async fn run_level(
    http: &reqwest::Client,
    ep: &Endpoint,
    prompts: Vec<Prompt>,
    max_tokens: u32,
    arrivals: Arrivals,
    seed: u64,
) -> (Vec<RequestTiming>, f64) {
    let prompts = Arc::new(prompts);
    let n = prompts.len() as u32;
    let t0 = Instant::now();
    let mut set = tokio::task::JoinSet::new();
    match arrivals {
        Arrivals::Closed(streams) => {
            let next = Arc::new(AtomicU32::new(0));
            for _ in 0..streams.min(n.max(1)) {
                let (http, ep, prompts, next) = (
                    http.clone(),
                    ep.clone(),
                    Arc::clone(&prompts),
                    Arc::clone(&next),
                );
                set.spawn(async move {
                    let mut mine = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::SeqCst);
                        if i >= n {
                            break;
                        }
                        mine.push(
                            timed_request(&http, &ep, i, &prompts[i as usize], max_tokens, t0)
                                .await,
                        );
                    }
                    mine
                });
            }
        }
        Arrivals::Rate(rate) => {
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
            let mut at = t0;
            for i in 0..n {
                let (http, ep, prompts) = (http.clone(), ep.clone(), Arc::clone(&prompts));
                let send_at = at;
                set.spawn(async move {
                    tokio::time::sleep_until(send_at).await;
                    vec![timed_request(&http, &ep, i, &prompts[i as usize], max_tokens, t0).await]
                });
                // Exponential gaps: −ln(U)/λ.
                let u: f64 = rng.gen_range(f64::EPSILON..1.0);
                at += Duration::from_secs_f64(-u.ln() / rate);
            }
        }
    }
    let mut all = Vec::with_capacity(n as usize);
    while let Some(r) = set.join_next().await {
        if let Ok(v) = r {
            all.extend(v);
        }
    }
    all.sort_by_key(|r| r.index);
    let end = all
        .iter()
        .filter_map(|r| r.e2e_ms.map(|e| r.start_ms + e))
        .fold(0.0f64, f64::max);
    (all, end / 1e3)
}

/// The engine settings llama.cpp's tools spell alike (`-t -b -ub -ngl -ctk -ctv`); flash
/// attention and mmap they spell differently, so the callers add those.
pub fn llama_engine_args(p: &tokbench_core::EngineParams) -> Vec<String> {
    vec![
        "-t".into(),
        p.n_threads.to_string(),
        "-b".into(),
        p.n_batch.to_string(),
        "-ub".into(),
        p.n_ubatch.to_string(),
        "-ngl".into(),
        p.n_gpu_layers.to_string(),
        "-ctk".into(),
        p.type_k.name().into(),
        "-ctv".into(),
        p.type_v.name().into(),
    ]
}

/// Which llama.cpp program takes [`offload_args`]: they spell a list of tensor overrides
/// differently (llama-bench keeps `,` for alternatives).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LlamaTool {
    Bench,
    Server,
}

/// The offload settings that differ from llama.cpp's defaults, as llama-bench and
/// llama-server take them (`-sm none -mg 1 -ts 3.00/1.00 -ot PAT=CPU -ncmoe 4`); none at the
/// defaults, so builds older than a flag still run a suite that leaves it alone.
pub fn offload_args(o: &tokbench_core::Offload, tool: LlamaTool) -> Vec<String> {
    let mut a: Vec<String> = Vec::new();
    if o.split_mode != tokbench_core::SplitMode::default() {
        a.extend(["-sm".into(), o.split_mode.name().into()]);
    }
    if o.main_gpu != 0 {
        a.extend(["-mg".into(), o.main_gpu.to_string()]);
    }
    if !o.tensor_split.is_default() {
        // Both split the shares on `/`.
        a.extend(["-ts".into(), o.tensor_split.to_string()]);
    }
    if !o.overrides.is_default() {
        let sep = match tool {
            LlamaTool::Bench => ";",
            LlamaTool::Server => ",",
        };
        let pairs: Vec<String> = o
            .overrides
            .pairs()
            .map(|(p, b)| format!("{p}={b}"))
            .collect();
        a.extend(["-ot".into(), pairs.join(sep)]);
    }
    if o.n_cpu_moe != 0 {
        a.extend(["-ncmoe".into(), o.n_cpu_moe.to_string()]);
    }
    a
}

/// `llama-server` arguments for a model and engine parameters (an argument vector).
pub fn llama_server_args(
    model: &Path,
    port: u16,
    p: &tokbench_core::EngineParams,
    n_ctx: u32,
    n_parallel: u32,
    extra: &[String],
) -> Vec<String> {
    let mut a: Vec<String> = vec![
        "-m".into(),
        model.display().to_string(),
        "--host".into(),
        "127.0.0.1".into(),
        "--port".into(),
        port.to_string(),
        "-c".into(),
        n_ctx.to_string(),
        "-np".into(),
        n_parallel.to_string(),
        "-fa".into(),
        if p.flash_attn { "on" } else { "off" }.into(),
    ];
    a.extend(llama_engine_args(p));
    a.extend(offload_args(&p.offload, LlamaTool::Server));
    if !p.use_mmap {
        a.push("--no-mmap".into());
    }
    a.extend(extra.iter().cloned());
    a
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_args_are_a_vector_with_every_setting() {
        let p = tokbench_core::EngineParams {
            use_mmap: false,
            ..tokbench_core::EngineAxes::default().resolve(2)
        };
        let a = llama_server_args(
            Path::new("/m/a b.gguf"),
            8080,
            &p,
            4096,
            4,
            &["--foo; rm -rf /".into()],
        );
        assert_eq!(a[1], "/m/a b.gguf", "a path with a space is one argument");
        let joined = a.join(" ");
        for want in [
            "-t 2",
            "-c 4096",
            "-np 4",
            "-fa off",
            "-ctk f16",
            "--no-mmap",
        ] {
            assert!(joined.contains(want), "{want} in {joined}");
        }
        assert_eq!(
            a.last().unwrap(),
            "--foo; rm -rf /",
            "passed verbatim, never to a shell"
        );
        assert!(
            !joined.contains("-sm") && !joined.contains("-ot"),
            "{joined}"
        );
    }

    #[test]
    fn offload_settings_are_passed_only_off_their_defaults_in_each_tools_spelling() {
        let o = tokbench_core::Offload {
            split_mode: tokbench_core::SplitMode::None,
            main_gpu: 1,
            tensor_split: "3/1".parse().unwrap(),
            overrides: r"blk\.0\..*=CPU;output=CUDA0".parse().unwrap(),
            n_cpu_moe: 4,
        };
        assert_eq!(
            offload_args(&o, LlamaTool::Bench).join(" "),
            r"-sm none -mg 1 -ts 3.00/1.00 -ot blk\.0\..*=CPU;output=CUDA0 -ncmoe 4"
        );
        // llama-server splits its override list on `,` (llama-bench keeps that for
        // alternatives, and takes `;`).
        assert_eq!(
            offload_args(&o, LlamaTool::Server)[7],
            r"blk\.0\..*=CPU,output=CUDA0"
        );
        assert!(offload_args(&tokbench_core::Offload::default(), LlamaTool::Bench).is_empty());
        let row = tokbench_core::Offload {
            split_mode: tokbench_core::SplitMode::Row,
            ..Default::default()
        };
        assert_eq!(offload_args(&row, LlamaTool::Server), ["-sm", "row"]);
    }

    #[tokio::test]
    async fn poisson_arrivals_and_closed_loops_send_every_request() {
        // Nothing listens on this port: every request fails fast, but each is sent once,
        // with its index, and timed.
        let port = free_port().unwrap();
        let ep = Endpoint {
            base_url: format!("http://127.0.0.1:{port}"),
            api: client::Api::LlamaNative,
            model: None,
            api_key: None,
            ignore_eos: true,
            request_timeout: Duration::from_secs(5),
        };
        let http = http_client();
        let prompts = vec![Prompt::Text("x".into()); 6];
        for arrivals in [Arrivals::Closed(4), Arrivals::Rate(200.0)] {
            let (rs, _) = run_level(&http, &ep, prompts.clone(), 4, arrivals, 1).await;
            assert_eq!(
                rs.iter().map(|r| r.index).collect::<Vec<_>>(),
                (0..6).collect::<Vec<_>>()
            );
            assert!(rs
                .iter()
                .all(|r| r.error.as_deref().unwrap().contains("request failed")));
        }
    }
}
