//! The streaming client against a scripted HTTP server on loopback: captured real
//! llama-server streams (fixtures/llama-server, see its README) replayed byte for byte, and
//! every fault the client must survive — HTTP errors, malformed events, an endless stream,
//! a connection that dies mid-stream, a server that never answers. Each ends the request
//! with a reason within its deadline.

use std::time::Duration;

use tokbench_runner::serve::client::{timed_request, Api, Endpoint, Prompt};
use tokbench_runner::serve::{build_prompts, http_client, run_level, Arrivals};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::time::Instant;

/// What the scripted server does with each connection.
#[derive(Clone)]
enum Script {
    /// Answer 200 with this event-stream body, in chunks of `chunk` bytes `gap` apart.
    Stream {
        body: Vec<u8>,
        chunk: usize,
        gap: Duration,
    },
    /// Answer with this status and body.
    Status(u16, String),
    /// Send `prefix` as a streamed body, then drop the connection.
    DieAfter(Vec<u8>),
    /// Stream token events forever.
    Endless,
    /// Accept and never answer.
    Silent,
}

async fn read_request(sock: &mut tokio::net::TcpStream) {
    // Headers, then Content-Length bytes of body.
    let mut buf = Vec::new();
    let mut tmp = [0u8; 4096];
    loop {
        let n = sock.read(&mut tmp).await.unwrap_or(0);
        if n == 0 {
            return;
        }
        buf.extend_from_slice(&tmp[..n]);
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            while buf.len() < end + 4 + len {
                let n = sock.read(&mut tmp).await.unwrap_or(0);
                if n == 0 {
                    return;
                }
                buf.extend_from_slice(&tmp[..n]);
            }
            return;
        }
    }
}

async fn serve(script: Script) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else {
                return;
            };
            let script = script.clone();
            tokio::spawn(async move {
                read_request(&mut sock).await;
                let sse = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n";
                match script {
                    Script::Stream { body, chunk, gap } => {
                        let _ = sock.write_all(sse.as_bytes()).await;
                        for c in body.chunks(chunk) {
                            let _ = sock.write_all(c).await;
                            tokio::time::sleep(gap).await;
                        }
                    }
                    Script::Status(code, body) => {
                        let _ = sock
                            .write_all(
                                format!(
                                    "HTTP/1.1 {code} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                                    body.len()
                                )
                                .as_bytes(),
                            )
                            .await;
                    }
                    Script::DieAfter(prefix) => {
                        let _ = sock.write_all(sse.as_bytes()).await;
                        let _ = sock.write_all(&prefix).await;
                        // Dropped without the final event.
                    }
                    Script::Endless => {
                        let _ = sock.write_all(sse.as_bytes()).await;
                        let ev = b"data: {\"content\":\"x\",\"stop\":false}\n\n";
                        while sock.write_all(ev).await.is_ok() {
                            tokio::time::sleep(Duration::from_millis(1)).await;
                        }
                    }
                    Script::Silent => {
                        tokio::time::sleep(Duration::from_secs(3600)).await;
                    }
                }
            });
        }
    });
    format!("http://127.0.0.1:{port}")
}

fn endpoint(base: String, api: Api, timeout_ms: u64) -> Endpoint {
    Endpoint {
        base_url: base,
        api,
        model: Some("m".into()),
        api_key: None,
        ignore_eos: true,
        request_timeout: Duration::from_millis(timeout_ms),
    }
}

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!(
        "{}/tests/fixtures/llama-server/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

async fn one(ep: &Endpoint, max_tokens: u32) -> tokbench_core::serving::RequestTiming {
    let started = std::time::Instant::now();
    let r = timed_request(
        &http_client(),
        ep,
        0,
        &Prompt::Tokens(vec![1, 2, 3]),
        max_tokens,
        Instant::now(),
    )
    .await;
    // Every wait is bounded by the request timeout (plus slack for the machine).
    assert!(started.elapsed() < ep.request_timeout + Duration::from_secs(5));
    r
}

#[tokio::test]
async fn a_captured_llama_server_stream_is_timed_token_by_token() {
    // 16 token events 5 ms apart, then the final event with the server's timings.
    let body = fixture("completion-stream.txt");
    let base = serve(Script::Stream {
        body: body.clone(),
        chunk: body.len() / 17 + 1,
        gap: Duration::from_millis(5),
    })
    .await;
    let r = one(&endpoint(base, Api::LlamaNative, 10_000), 16).await;
    assert_eq!(r.error, None);
    assert_eq!(r.n_gen, Some(16), "tokens_predicted of the final event");
    assert_eq!(r.n_prompt, Some(5), "tokens_evaluated of the final event");
    let t = r.server.expect("the final event's timings");
    assert_eq!((t.prompt_n, t.predicted_n), (Some(5), Some(16)));
    assert!(r.ttft_ms.unwrap() > 0.0);
    assert!(
        !r.itl_ms.is_empty() && r.itl_ms.len() <= 15,
        "{:?}",
        r.itl_ms
    );
    assert!(r.e2e_ms.unwrap() >= r.ttft_ms.unwrap());
}

#[tokio::test]
async fn a_captured_openai_stream_with_usage_and_done() {
    let body = fixture("v1-completions-stream.txt");
    let base = serve(Script::Stream {
        body,
        chunk: 97,
        gap: Duration::from_millis(1),
    })
    .await;
    let r = one(
        &endpoint(format!("{base}/v1"), Api::OpenAiCompletions, 10_000),
        8,
    )
    .await;
    assert_eq!(r.error, None);
    assert_eq!(r.n_gen, Some(8), "usage.completion_tokens");
    assert_eq!(r.n_prompt, Some(3), "usage.prompt_tokens");
    assert_eq!(
        r.server.unwrap().predicted_n,
        Some(8),
        "llama-server adds timings to /v1 too"
    );
}

#[tokio::test]
async fn an_http_error_is_the_reason() {
    let body = String::from_utf8(fixture("error.json")).unwrap();
    let base = serve(Script::Status(500, body)).await;
    let r = one(&endpoint(base, Api::LlamaNative, 5_000), 8).await;
    let e = r.error.unwrap();
    assert!(e.starts_with("HTTP 500"), "{e}");
    assert!(e.contains("parse error"), "the server's own message: {e}");
}

#[tokio::test]
async fn malformed_events_are_the_reason() {
    let base = serve(Script::Stream {
        body: b"data: {\"content\": tru\n\n".to_vec(),
        chunk: 64,
        gap: Duration::ZERO,
    })
    .await;
    let e = one(&endpoint(base, Api::LlamaNative, 5_000), 8)
        .await
        .error
        .unwrap();
    assert!(e.contains("malformed stream event"), "{e}");
    let base = serve(Script::Stream {
        body: vec![b'x'; 5 << 20],
        chunk: 1 << 16,
        gap: Duration::ZERO,
    })
    .await;
    let e = one(&endpoint(base, Api::LlamaNative, 20_000), 8)
        .await
        .error
        .unwrap();
    assert!(e.contains("grew past"), "an event that never ends: {e}");
    let base = serve(Script::Stream {
        body: b"error: {\"message\":\"out of memory\"}\n\n".to_vec(),
        chunk: 64,
        gap: Duration::ZERO,
    })
    .await;
    let e = one(&endpoint(base, Api::LlamaNative, 5_000), 8)
        .await
        .error
        .unwrap();
    assert!(e.contains("out of memory"), "{e}");
}

#[tokio::test]
async fn an_endless_stream_is_cut_off() {
    let base = serve(Script::Endless).await;
    let r = one(&endpoint(base, Api::LlamaNative, 20_000), 8).await;
    let e = r.error.unwrap();
    assert!(e.contains("more than 80 tokens"), "{e}");
}

#[tokio::test]
async fn a_connection_that_dies_mid_stream() {
    let body = fixture("completion-stream.txt");
    let base = serve(Script::DieAfter(body[..600].to_vec())).await;
    let r = one(&endpoint(base, Api::LlamaNative, 5_000), 16).await;
    let e = r.error.unwrap();
    assert!(
        e.contains("without a final event") || e.contains("mid-stream"),
        "{e}"
    );
    assert!(r.ttft_ms.is_some(), "the tokens before the end were timed");
}

#[tokio::test]
async fn a_silent_server_times_out() {
    let base = serve(Script::Silent).await;
    let r = one(&endpoint(base, Api::LlamaNative, 500), 8).await;
    assert!(r.error.unwrap().contains("no response within"));
}

#[tokio::test]
async fn a_level_keeps_every_request_and_its_order() {
    let body = fixture("completion-stream.txt");
    let base = serve(Script::Stream {
        body,
        chunk: 4096,
        gap: Duration::ZERO,
    })
    .await;
    let ep = endpoint(base.clone(), Api::LlamaNative, 10_000);
    let http = http_client();
    // No tokenizer behind this server: text prompts.
    let prompts = build_prompts(
        &http,
        Some(&format!("{base}/tokenize")),
        None,
        None,
        16,
        6,
        1,
    )
    .await;
    assert!(prompts.iter().all(|p| matches!(p, Prompt::Text(_))));
    let (rs, wall_s) = run_level(&http, &ep, prompts, 16, Arrivals::Closed(3), 0).await;
    assert_eq!(rs.len(), 6);
    assert!(rs.iter().all(|r| r.error.is_none()), "{rs:?}");
    assert!(wall_s > 0.0);
}

fn ollama_fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!(
        "{}/tests/fixtures/ollama/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

#[tokio::test]
async fn a_captured_ollama_stream_with_its_native_durations() {
    let body = ollama_fixture("generate-stream.ndjson");
    let base = serve(Script::Stream {
        body,
        chunk: 211,
        gap: Duration::from_millis(1),
    })
    .await;
    let r = one(&endpoint(base, Api::OllamaGenerate, 10_000), 64).await;
    assert_eq!(r.error, None);
    // 63 streamed tokens; eval_count (64) also counts the stop token, and is what is stored.
    assert_eq!(r.itl_ms.len(), 62);
    assert_eq!(r.n_gen, Some(64));
    assert_eq!(r.n_prompt, Some(51));
    let t = r.server.unwrap();
    assert_eq!(t.load_ms, Some(1158.8428));
    assert_eq!(t.prompt_ms, Some(107.1611));
    assert_eq!(t.predicted_ms, Some(608.6536));
    // 64 tokens in 608.6536 ms, as Ollama's docs say to compute it.
    assert!((t.decode_tps().unwrap() - 64.0 / 0.6086536).abs() < 1e-9);
}

#[tokio::test]
async fn an_ollama_model_that_is_not_pulled() {
    let body = String::from_utf8(ollama_fixture("error-not-found.json")).unwrap();
    let base = serve(Script::Status(404, body)).await;
    let e = one(&endpoint(base, Api::OllamaGenerate, 5_000), 8)
        .await
        .error
        .unwrap();
    assert!(e.starts_with("HTTP 404"), "{e}");
    assert!(e.contains("try pulling it first"), "{e}");
}

#[test]
fn ollama_ps_reports_device_memory() {
    let v: serde_json::Value = serde_json::from_slice(&ollama_fixture("ps.json")).unwrap();
    // What tokbench keeps in backend_json and a query reads back.
    assert_eq!(v["models"][0]["size_vram"], 8372905984u64);
    assert_eq!(v["models"][0]["details"]["quantization_level"], "Q4_0");
}

#[tokio::test]
async fn a_captured_vllm_stream_counts_the_token_in_the_final_chunk() {
    let body = std::fs::read(format!(
        "{}/tests/fixtures/vllm/completions-stream.txt",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    let base = serve(Script::Stream {
        body,
        chunk: 150,
        gap: Duration::from_millis(1),
    })
    .await;
    let r = one(
        &endpoint(format!("{base}/v1"), Api::OpenAiCompletions, 10_000),
        7,
    )
    .await;
    assert_eq!(r.error, None);
    assert_eq!(
        r.n_gen,
        Some(7),
        "no usage sent: every token event counts, the last included"
    );
    assert_eq!(r.itl_ms.len(), 6);
    assert_eq!(r.server, None, "vLLM sends no timings of its own");
}
