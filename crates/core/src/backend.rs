//! Backends a suite can run its cells on, and each one's settings from the suite file
//! (`backends = [...]`, `[backend.NAME]`, `[serve]`). Validation lives in
//! [`crate::config`]; this is the validated shape.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

/// Which program measures a cell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum BackendKind {
    /// tokbench's embedded llama.cpp engine (the default).
    Engine,
    /// llama.cpp's `llama-bench`, spawned with `-o json`.
    LlamaBench,
    /// llama.cpp's `llama-server`, spawned; measured by a streaming client.
    LlamaServer,
    /// Any running OpenAI-compatible endpoint (`base_url`), attached, never spawned.
    OpenAi,
    /// `vllm serve`, spawned; measured through its OpenAI-compatible API.
    Vllm,
    /// `ollama serve`, spawned or attached; its native API.
    Ollama,
}

impl BackendKind {
    pub const ALL: [BackendKind; 6] = [
        Self::Engine,
        Self::LlamaBench,
        Self::LlamaServer,
        Self::OpenAi,
        Self::Vllm,
        Self::Ollama,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Self::Engine => "engine",
            Self::LlamaBench => "llama-bench",
            Self::LlamaServer => "llama-server",
            Self::OpenAi => "openai",
            Self::Vllm => "vllm",
            Self::Ollama => "ollama",
        }
    }

    /// Measured by requests to a server (TTFT, ITL, concurrency) rather than by an engine.
    pub fn is_server(self) -> bool {
        matches!(
            self,
            Self::LlamaServer | Self::OpenAi | Self::Vllm | Self::Ollama
        )
    }

    /// Runs llama.cpp with tokbench's engine axes (threads, batch, cache types, …).
    pub fn takes_engine_axes(self) -> bool {
        matches!(self, Self::Engine | Self::LlamaBench | Self::LlamaServer)
    }
}

impl fmt::Display for BackendKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A backend name tokbench does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown backend `{0}` (known: engine, llama-bench, llama-server, openai, vllm, ollama)")]
pub struct UnknownBackend(pub String);

impl FromStr for BackendKind {
    type Err = UnknownBackend;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|k| k.name() == s)
            .ok_or_else(|| UnknownBackend(s.to_string()))
    }
}

/// `[backend.NAME]`: how to reach or start one backend.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct BackendSettings {
    /// The program to spawn; default: found by `tokbench backends` (tokbench's own build
    /// of llama.cpp's tools, then `PATH`).
    pub binary: Option<PathBuf>,
    /// Extra arguments, appended after the ones tokbench sets (an argument vector: no
    /// shell ever sees it).
    pub args: Vec<String>,
    /// An endpoint to attach to instead of spawning (`openai` needs one; the other server
    /// backends may have one).
    pub base_url: Option<String>,
    /// The model name the endpoint serves (`openai`, `ollama`, `vllm`).
    pub model: Option<String>,
    /// The environment variable holding the API key; the key itself is never stored.
    pub api_key_env: Option<String>,
    /// How long a spawned server gets to answer its health check.
    pub startup_timeout_s: f64,
    /// The port a spawned server listens on; default: a free one.
    pub port: Option<u16>,
}

impl BackendSettings {
    pub const DEFAULT_STARTUP_TIMEOUT_S: f64 = 120.0;

    pub fn new() -> BackendSettings {
        BackendSettings {
            startup_timeout_s: Self::DEFAULT_STARTUP_TIMEOUT_S,
            ..Default::default()
        }
    }
}

/// `[serve]`: how server backends are loaded with requests.
#[derive(Debug, Clone, PartialEq)]
pub struct ServeWorkload {
    /// Parallel streams, one cell each (closed loop: each stream sends its next request
    /// when the last one ends).
    pub concurrency: Vec<u32>,
    /// Poisson arrivals at this rate (requests/s) instead of closed-loop streams.
    pub request_rate: Option<f64>,
    /// Requests per stream (closed loop) or in all (request rate); default: the suite's
    /// repetitions.
    pub requests_per_stream: Option<u32>,
    /// Ask the server to ignore end-of-sequence so every request generates exactly the
    /// test's tokens (where the server allows it).
    pub ignore_eos: bool,
}

impl Default for ServeWorkload {
    fn default() -> Self {
        ServeWorkload {
            concurrency: vec![1],
            request_rate: None,
            requests_per_stream: None,
            ignore_eos: true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for k in BackendKind::ALL {
            assert_eq!(k.name().parse::<BackendKind>(), Ok(k));
        }
        let e = "llamacpp".parse::<BackendKind>().unwrap_err();
        assert!(e.to_string().contains("`llamacpp`"), "{e}");
        assert!(BackendKind::LlamaServer.is_server());
        assert!(!BackendKind::LlamaBench.is_server());
    }
}
