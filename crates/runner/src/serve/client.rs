//! The streaming client: sends one completion request, reads its event stream as it
//! arrives and times it — TTFT at the first token-carrying event, the gap between every two
//! such events (ITL), the end — and keeps the server's own `timings` where it sends them.
//! Every wait has a deadline; an HTTP error, a malformed or endless stream, a connection
//! that dies mid-stream each end the request with the reason.

use std::time::Duration;

use serde_json::{json, Value};
use tokbench_core::serving::{RequestTiming, ServerTimings};
use tokio::time::Instant;

use super::sse::{NdjsonParser, SseEvent, SseParser, StreamParser};

/// Which completion API a server speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Api {
    /// llama-server's native `POST /completion` (token-array prompts, `timings`,
    /// `cache_prompt`).
    LlamaNative,
    /// `POST {base}/completions`, OpenAI's legacy completions with `stream: true`.
    OpenAiCompletions,
    /// Ollama's native `POST /api/generate` (newline-delimited JSON, durations in ns).
    OllamaGenerate,
}

/// Where and how to send requests.
#[derive(Debug, Clone)]
pub struct Endpoint {
    /// `http://127.0.0.1:PORT` (native) or `http://HOST:PORT/v1` (OpenAI).
    pub base_url: String,
    pub api: Api,
    /// The `model` field (OpenAI-compatible servers want one).
    pub model: Option<String>,
    /// Sent as a bearer token; never logged or stored.
    pub api_key: Option<String>,
    pub ignore_eos: bool,
    /// A request that has not ended by then is abandoned.
    pub request_timeout: Duration,
}

/// A prompt of an exact token count (token ids), or text when the server cannot tokenize.
#[derive(Debug, Clone, PartialEq)]
pub enum Prompt {
    Tokens(Vec<u32>),
    Text(String),
}

impl Prompt {
    fn to_json(&self) -> Value {
        match self {
            Prompt::Tokens(t) => json!(t),
            Prompt::Text(s) => json!(s),
        }
    }
    fn len_tokens(&self) -> Option<u32> {
        match self {
            Prompt::Tokens(t) => Some(t.len() as u32),
            Prompt::Text(_) => None,
        }
    }
}

impl Endpoint {
    fn url(&self) -> String {
        match self.api {
            Api::LlamaNative => format!("{}/completion", self.base_url),
            Api::OpenAiCompletions => format!("{}/completions", self.base_url),
            Api::OllamaGenerate => format!("{}/api/generate", self.base_url),
        }
    }

    /// The request body for `prompt` and `max_tokens` generated tokens.
    pub fn body(&self, prompt: &Prompt, max_tokens: u32, seed: u64) -> Value {
        match self.api {
            Api::LlamaNative => json!({
                "prompt": prompt.to_json(),
                "n_predict": max_tokens,
                "stream": true,
                "ignore_eos": self.ignore_eos,
                // Each request must process its whole prompt: no reuse between requests.
                "cache_prompt": false,
                "seed": seed,
                "temperature": 0.0,
            }),
            Api::OpenAiCompletions => {
                let mut b = json!({
                    "prompt": prompt.to_json(),
                    "max_tokens": max_tokens,
                    "stream": true,
                    "stream_options": {"include_usage": true},
                    "temperature": 0.0,
                    "seed": seed,
                });
                if let Some(m) = &self.model {
                    b["model"] = json!(m);
                }
                if self.ignore_eos {
                    // Not in OpenAI's API; llama-server and vLLM honour it.
                    b["ignore_eos"] = json!(true);
                }
                b
            }
            // Ollama takes text only (no token arrays) and has no ignore-EOS option: a
            // request may end before `num_predict`; eval_count says how many came.
            Api::OllamaGenerate => json!({
                "model": self.model,
                "prompt": match prompt {
                    Prompt::Text(t) => t.clone(),
                    Prompt::Tokens(t) => t.iter().map(|i| i.to_string()).collect::<Vec<_>>().join(" "),
                },
                "stream": true,
                "raw": true,
                "options": {"num_predict": max_tokens, "temperature": 0.0, "seed": seed},
            }),
        }
    }

    pub fn request(&self, http: &reqwest::Client, url: &str) -> reqwest::RequestBuilder {
        let r = http.post(url);
        match &self.api_key {
            Some(k) => r.bearer_auth(k),
            None => r,
        }
    }
}

/// What one parsed event carried.
#[derive(Debug, Default, PartialEq)]
pub struct EventInfo {
    /// It carries a generated token (not only the final stop/usage record).
    pub token: bool,
    pub stop: bool,
    pub timings: Option<ServerTimings>,
    pub prompt_tokens: Option<u32>,
    pub completion_tokens: Option<u32>,
    pub error: Option<String>,
}

fn u32_of(v: &Value) -> Option<u32> {
    v.as_u64().and_then(|n| u32::try_from(n).ok())
}

fn timings_of(v: &Value) -> Option<ServerTimings> {
    let t = v.get("timings")?;
    Some(ServerTimings {
        prompt_n: t.get("prompt_n").and_then(u32_of),
        prompt_ms: t.get("prompt_ms").and_then(Value::as_f64),
        predicted_n: t.get("predicted_n").and_then(u32_of),
        predicted_ms: t.get("predicted_ms").and_then(Value::as_f64),
        load_ms: None,
        // llama-server starts its generation clock at the first sampled token.
        predicted_from_first_token: true,
    })
}

/// A stream event that is not JSON: the parser's reason and the event's first 200 characters.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed stream event ({reason}): {data}")]
pub struct MalformedEvent {
    pub reason: String,
    pub data: String,
}

/// Reads one event's JSON as `api` sends it (a stream's `data:` payload or NDJSON line):
/// tokens, stop, usage and the server's own timings. Public for the fuzz targets; the
/// server's bytes are untrusted, so this never panics.
pub fn event_info(api: Api, data: &str) -> Result<EventInfo, MalformedEvent> {
    let v: Value = serde_json::from_str(data).map_err(|e| MalformedEvent {
        reason: e.to_string(),
        data: data.chars().take(200).collect(),
    })?;
    if let Some(err) = v.get("error") {
        return Ok(EventInfo {
            error: Some(format!("server error in stream: {err}")),
            ..Default::default()
        });
    }
    let mut info = EventInfo {
        timings: timings_of(&v),
        ..Default::default()
    };
    match api {
        Api::OllamaGenerate => {
            info.stop = v.get("done").and_then(Value::as_bool).unwrap_or(false);
            info.token = !info.stop && (v.get("response").is_some() || v.get("thinking").is_some());
            if info.stop {
                let ms = |k: &str| v.get(k).and_then(Value::as_f64).map(|ns| ns / 1e6);
                info.prompt_tokens = v.get("prompt_eval_count").and_then(u32_of);
                info.completion_tokens = v.get("eval_count").and_then(u32_of);
                info.timings = Some(ServerTimings {
                    prompt_n: info.prompt_tokens,
                    prompt_ms: ms("prompt_eval_duration"),
                    predicted_n: info.completion_tokens,
                    predicted_ms: ms("eval_duration"),
                    load_ms: ms("load_duration"),
                    predicted_from_first_token: false,
                });
            }
        }
        Api::LlamaNative => {
            info.stop = v.get("stop").and_then(Value::as_bool).unwrap_or(false);
            // Every non-final chunk is one sampled token (its text may be empty while a
            // multi-byte character is incomplete).
            info.token = !info.stop && v.get("content").is_some();
            if info.stop {
                info.prompt_tokens = v.get("tokens_evaluated").and_then(u32_of);
                info.completion_tokens = v.get("tokens_predicted").and_then(u32_of);
            }
        }
        Api::OpenAiCompletions => {
            let choice = v.get("choices").and_then(|c| c.get(0));
            if let Some(c) = choice {
                let finish = c.get("finish_reason").filter(|f| !f.is_null());
                let text = c
                    .get("text")
                    .or_else(|| c.get("delta").and_then(|d| d.get("content")));
                info.stop = finish.is_some();
                info.token = text.is_some_and(|t| !t.is_null())
                    && (finish.is_none() || text.and_then(Value::as_str) != Some(""));
            }
            if let Some(u) = v.get("usage").filter(|u| !u.is_null()) {
                info.prompt_tokens = u.get("prompt_tokens").and_then(u32_of);
                info.completion_tokens = u.get("completion_tokens").and_then(u32_of);
            }
        }
    }
    Ok(info)
}

/// Sends one request and times it. `t0` is the level's start (for `start_ms`).
pub async fn timed_request(
    http: &reqwest::Client,
    ep: &Endpoint,
    index: u32,
    prompt: &Prompt,
    max_tokens: u32,
    t0: Instant,
) -> RequestTiming {
    let body = ep.body(prompt, max_tokens, u64::from(index));
    let mut start = Instant::now();
    let deadline = start + ep.request_timeout;
    let mut r = RequestTiming {
        index,
        start_ms: (start - t0).as_secs_f64() * 1e3,
        n_prompt: prompt.len_tokens(),
        ..Default::default()
    };
    let mut retried = false;
    let mut resp = loop {
        let send = ep.request(http, &ep.url()).json(&body).send();
        match tokio::time::timeout_at(deadline, send).await {
            Err(_) => {
                r.error = Some(format!(
                    "no response within {:.0} s",
                    ep.request_timeout.as_secs_f64()
                ));
                return r;
            }
            // A pooled keep-alive connection the server closed while idle: the request
            // never reached it. Once, on a fresh connection, timed from the new send.
            Ok(Err(e)) if !retried && stale_connection(&e) => {
                retried = true;
                start = Instant::now();
                r.start_ms = (start - t0).as_secs_f64() * 1e3;
            }
            Ok(Err(e)) => {
                r.error = Some(format!("request failed: {}", error_chain(&e)));
                return r;
            }
            Ok(Ok(resp)) => break resp,
        }
    };
    let status = resp.status();
    if !status.is_success() {
        let text = tokio::time::timeout_at(deadline, resp.text())
            .await
            .ok()
            .and_then(Result::ok)
            .unwrap_or_default();
        r.error = Some(format!(
            "HTTP {status}: {}",
            text.trim().chars().take(300).collect::<String>()
        ));
        r.e2e_ms = Some(ms_since(start));
        return r;
    }
    let mut parser = match ep.api {
        Api::OllamaGenerate => StreamParser::Ndjson(NdjsonParser::new()),
        _ => StreamParser::Sse(SseParser::new()),
    };
    let mut last_token: Option<Instant> = None;
    let mut n_events: u32 = 0;
    let mut usage_gen: Option<u32> = None;
    let mut usage_prompt: Option<u32> = None;
    let mut done = false;
    // More token events than asked for means the server is not honouring the limit (or
    // never ends): stop reading.
    let cap = max_tokens.saturating_mul(2).saturating_add(64);
    'read: loop {
        let chunk = match tokio::time::timeout_at(deadline, resp.chunk()).await {
            Err(_) => {
                r.error = Some(format!(
                    "the stream did not end within {:.0} s ({n_events} tokens received)",
                    ep.request_timeout.as_secs_f64()
                ));
                break;
            }
            Ok(Err(e)) => {
                r.error = Some(format!(
                    "the connection failed mid-stream after {n_events} tokens: {}",
                    error_chain(&e)
                ));
                break;
            }
            Ok(Ok(None)) => {
                if let Ok(Some(SseEvent::Data(d))) = parser.finish() {
                    if let Ok(info) = event_info(ep.api, &d) {
                        usage_gen = info.completion_tokens.or(usage_gen);
                        usage_prompt = info.prompt_tokens.or(usage_prompt);
                        r.server = info.timings.or(r.server);
                        done |= info.stop;
                    }
                }
                break;
            }
            Ok(Ok(Some(c))) => c,
        };
        let now = Instant::now();
        let events = match parser.push(&chunk) {
            Ok(e) => e,
            Err(e) => {
                r.error = Some(e.to_string());
                break;
            }
        };
        for ev in events {
            let data = match ev {
                SseEvent::Done => {
                    done = true;
                    continue;
                }
                SseEvent::Error(e) => {
                    r.error = Some(format!("server error in stream: {e:.300}"));
                    break 'read;
                }
                SseEvent::Data(d) => d,
            };
            let info = match event_info(ep.api, &data) {
                Ok(i) => i,
                Err(e) => {
                    r.error = Some(e.to_string());
                    break 'read;
                }
            };
            if let Some(e) = info.error {
                r.error = Some(e);
                break 'read;
            }
            if info.token {
                n_events += 1;
                match last_token {
                    None => r.ttft_ms = Some((now - start).as_secs_f64() * 1e3),
                    Some(prev) => r.itl_ms.push((now - prev).as_secs_f64() * 1e3),
                }
                last_token = Some(now);
                if n_events > cap {
                    r.error = Some(format!(
                        "the server streamed more than {cap} tokens for a request of {max_tokens}: stopped reading"
                    ));
                    break 'read;
                }
            }
            usage_gen = info.completion_tokens.or(usage_gen);
            usage_prompt = info.prompt_tokens.or(usage_prompt);
            r.server = info.timings.or(r.server);
            done |= info.stop;
        }
        if done && ep.api != Api::OpenAiCompletions {
            break;
        }
    }
    r.e2e_ms = Some(ms_since(start));
    if r.error.is_none() && !done {
        r.error = Some(format!(
            "the stream ended without a final event after {n_events} tokens (connection closed early)"
        ));
    }
    if r.error.is_none() && n_events == 0 {
        r.error = Some("the server finished without generating a token".into());
    }
    r.n_gen = usage_gen
        .or(r.server.and_then(|t| t.predicted_n))
        .or(Some(n_events));
    if let Some(p) = usage_prompt.or(r.server.and_then(|t| t.prompt_n)) {
        r.n_prompt = Some(p);
    }
    r
}

/// The send failed because the (reused) connection was closed before any response: what
/// hyper reports when a server closes an idle keep-alive connection as a request is
/// written on it.
fn stale_connection(e: &reqwest::Error) -> bool {
    e.is_request() && error_chain(e).contains("connection closed before message completed")
}

fn ms_since(start: Instant) -> f64 {
    start.elapsed().as_secs_f64() * 1e3
}

/// An error and its causes on one line (reqwest hides the useful part in `source`).
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let t = c.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        cur = c.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn llama_native_events() {
        let tok = event_info(
            Api::LlamaNative,
            r#"{"index":0,"content":"","tokens":[],"stop":false,"id_slot":-1}"#,
        )
        .unwrap();
        assert!(tok.token && !tok.stop);
        let last = event_info(
            Api::LlamaNative,
            r#"{"content":"","stop":true,"tokens_predicted":16,"tokens_evaluated":5,
               "timings":{"prompt_n":5,"prompt_ms":1.5,"predicted_n":16,"predicted_ms":20.0}}"#,
        )
        .unwrap();
        assert!(last.stop && !last.token);
        assert_eq!(last.completion_tokens, Some(16));
        assert_eq!(last.timings.unwrap().predicted_n, Some(16));
        // 15 tokens after the first in 20 ms (llama-server's clock starts at the first).
        assert_eq!(last.timings.unwrap().decode_tps(), Some(750.0));
    }

    #[test]
    fn openai_events() {
        let tok = event_info(
            Api::OpenAiCompletions,
            r#"{"choices":[{"text":"hi","index":0,"finish_reason":null}],"object":"text_completion"}"#,
        )
        .unwrap();
        assert!(tok.token && !tok.stop);
        let fin = event_info(
            Api::OpenAiCompletions,
            r#"{"choices":[{"text":"","index":0,"finish_reason":"length"}]}"#,
        )
        .unwrap();
        assert!(fin.stop && !fin.token);
        let usage = event_info(
            Api::OpenAiCompletions,
            r#"{"choices":[],"usage":{"prompt_tokens":5,"completion_tokens":8,"total_tokens":13}}"#,
        )
        .unwrap();
        assert_eq!(
            (usage.prompt_tokens, usage.completion_tokens),
            (Some(5), Some(8))
        );
        let err = event_info(Api::OpenAiCompletions, r#"{"error":{"message":"boom"}}"#).unwrap();
        assert!(err.error.unwrap().contains("boom"));
        assert!(event_info(Api::OpenAiCompletions, "{not json")
            .unwrap_err()
            .to_string()
            .contains("malformed"));
    }

    #[test]
    fn bodies_say_what_is_measured() {
        let ep = Endpoint {
            base_url: "http://x/v1".into(),
            api: Api::OpenAiCompletions,
            model: Some("m".into()),
            api_key: Some("secret".into()),
            ignore_eos: true,
            request_timeout: Duration::from_secs(1),
        };
        let b = ep.body(&Prompt::Tokens(vec![1, 2]), 8, 3);
        assert_eq!(b["max_tokens"], 8);
        assert_eq!(b["prompt"], json!([1, 2]));
        assert_eq!(b["model"], "m");
        assert_eq!(b["ignore_eos"], true);
        assert!(
            !b.to_string().contains("secret"),
            "the key is a header, never the body"
        );
        let n = Endpoint {
            api: Api::LlamaNative,
            ..ep
        }
        .body(&Prompt::Text("hi".into()), 4, 0);
        assert_eq!(n["cache_prompt"], false);
        assert_eq!(n["n_predict"], 4);
    }
}
