//! How each server speaks: how tokbench starts it, which API its requests use, where it
//! says it is healthy, and what it says about itself. One type per server.

use std::path::Path;

use tokbench_core::{BackendKind, BackendSettings, EngineParams};

use crate::serve::{self, client::Api};

/// What starting a server for a model load needs to know.
pub(crate) struct Start<'a> {
    pub(crate) model: &'a Path,
    pub(crate) port: u16,
    pub(crate) params: &'a EngineParams,
    /// Context for all slots together.
    pub(crate) n_ctx: u32,
    /// Parallel request slots.
    pub(crate) slots: u32,
    pub(crate) settings: &'a BackendSettings,
}

pub(crate) trait Dialect: Send + Sync {
    /// The API its requests use.
    fn api(&self) -> Api;
    /// Where its health answers, from the base URL requests go to.
    fn health_url(&self, base: &str) -> String;
    /// Its tokenizer, which builds prompts of an exact token count (none: prompts are
    /// sized by estimate).
    fn tokenize_url(&self, base: &str) -> Option<String>;
    /// Arguments and environment that start it on `start.port` on loopback, and the base
    /// URL it then answers at.
    fn start(&self, start: &Start<'_>) -> (Vec<String>, Vec<(String, String)>, String);
    /// Never started by tokbench: only attached to.
    fn attach_only(&self) -> bool {
        false
    }
    /// Whether a `model` setting names the model it serves (results are then stored under
    /// that name, not the suite's GGUF).
    fn serves_own_model(&self) -> bool {
        true
    }
    /// The model name each request carries.
    fn request_model(&self, settings: &BackendSettings, _model: &Path) -> Option<String> {
        settings.model.clone()
    }
    /// Read once per server: its own description, stored with its results.
    fn describe_url(&self, _base: &str) -> Option<String> {
        None
    }
    /// Read after each cell: what it holds in memory, stored with that cell.
    fn after_cell_url(&self, _base: &str) -> Option<String> {
        None
    }
}

/// The dialect of a server backend.
pub(crate) fn of(kind: BackendKind) -> Box<dyn Dialect> {
    match kind {
        BackendKind::Vllm => Box::new(Vllm),
        BackendKind::Ollama => Box::new(Ollama),
        BackendKind::OpenAi => Box::new(OpenAi),
        _ => Box::new(LlamaServer),
    }
}

fn loopback(port: u16) -> String {
    format!("http://127.0.0.1:{port}")
}

/// An OpenAI-compatible server's tokenizer (vLLM's, beside `/v1`).
fn openai_tokenize(base: &str) -> Option<String> {
    Some(format!("{}/tokenize", base.trim_end_matches("/v1")))
}

/// llama.cpp's llama-server: its native `/completion` API with timings.
struct LlamaServer;

impl Dialect for LlamaServer {
    fn api(&self) -> Api {
        Api::LlamaNative
    }
    fn health_url(&self, base: &str) -> String {
        format!("{}/health", base.trim_end_matches("/v1"))
    }
    fn tokenize_url(&self, base: &str) -> Option<String> {
        Some(format!("{base}/tokenize"))
    }
    fn start(&self, s: &Start<'_>) -> (Vec<String>, Vec<(String, String)>, String) {
        let args = serve::llama_server_args(
            s.model,
            s.port,
            s.params,
            s.n_ctx,
            s.slots,
            &s.settings.args,
        );
        (args, Vec::new(), loopback(s.port))
    }
    fn serves_own_model(&self) -> bool {
        false
    }
    fn describe_url(&self, base: &str) -> Option<String> {
        Some(format!("{base}/props"))
    }
}

/// vLLM's `vllm serve`: the OpenAI completions API.
struct Vllm;

impl Dialect for Vllm {
    fn api(&self) -> Api {
        Api::OpenAiCompletions
    }
    fn health_url(&self, base: &str) -> String {
        format!("{}/health", base.trim_end_matches("/v1"))
    }
    fn tokenize_url(&self, base: &str) -> Option<String> {
        openai_tokenize(base)
    }
    fn start(&self, s: &Start<'_>) -> (Vec<String>, Vec<(String, String)>, String) {
        let model = self.request_model(s.settings, s.model).unwrap_or_default();
        let mut args = vec![
            "serve".to_string(),
            model,
            "--host".into(),
            "127.0.0.1".into(),
            "--port".into(),
            s.port.to_string(),
        ];
        args.extend(s.settings.args.iter().cloned());
        (args, Vec::new(), format!("{}/v1", loopback(s.port)))
    }
    fn request_model(&self, settings: &BackendSettings, model: &Path) -> Option<String> {
        Some(
            settings
                .model
                .clone()
                .unwrap_or_else(|| model.display().to_string()),
        )
    }
}

/// Ollama: its native `/api/generate`, and `/api/ps` for what it holds in device memory.
struct Ollama;

impl Dialect for Ollama {
    fn api(&self) -> Api {
        Api::OllamaGenerate
    }
    fn health_url(&self, base: &str) -> String {
        format!("{base}/api/version")
    }
    fn tokenize_url(&self, _base: &str) -> Option<String> {
        None
    }
    fn start(&self, s: &Start<'_>) -> (Vec<String>, Vec<(String, String)>, String) {
        let mut args = vec!["serve".to_string()];
        args.extend(s.settings.args.iter().cloned());
        let envs = vec![("OLLAMA_HOST".into(), format!("127.0.0.1:{}", s.port))];
        (args, envs, loopback(s.port))
    }
    fn after_cell_url(&self, base: &str) -> Option<String> {
        Some(format!("{base}/api/ps"))
    }
}

/// Any OpenAI-compatible endpoint, attached to at its `base_url`.
struct OpenAi;

impl Dialect for OpenAi {
    fn api(&self) -> Api {
        Api::OpenAiCompletions
    }
    fn health_url(&self, base: &str) -> String {
        format!("{base}/models")
    }
    fn tokenize_url(&self, base: &str) -> Option<String> {
        openai_tokenize(base)
    }
    fn start(&self, s: &Start<'_>) -> (Vec<String>, Vec<(String, String)>, String) {
        // Never started (attach_only); were it, it would be at its loopback port.
        (s.settings.args.clone(), Vec::new(), loopback(s.port))
    }
    fn attach_only(&self) -> bool {
        true
    }
}
