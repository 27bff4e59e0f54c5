//! Suites: the raw TOML a user writes (`Raw*`, unknown keys rejected) and the validated
//! [`Suite`] the runner accepts. Every error names the file, the line and the key.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

use std::collections::BTreeMap;

use crate::arch::ArchSpec;
use crate::backend::{BackendKind, BackendSettings, ServeWorkload};
use crate::bench::{CacheType, EngineParams, TestSpec};
use crate::quant::QuantPreset;

/// A suite file that cannot be used, with where and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}{at}: {message}", at = .line.map(|l| format!(":{l}")).unwrap_or_default())]
pub struct SuiteError {
    pub file: PathBuf,
    /// 1-based line, when the problem has a place in the file.
    pub line: Option<usize>,
    pub message: String,
}

/// A value that may be written as a scalar or a list; lists become matrix axes.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany<T> {
    One(T),
    Many(Vec<T>),
}

impl<T: Clone> OneOrMany<T> {
    fn to_vec(&self) -> Vec<T> {
        match self {
            Self::One(v) => vec![v.clone()],
            Self::Many(v) => v.clone(),
        }
    }
}

/// The suite file as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSuite {
    pub name: Option<String>,
    pub description: Option<String>,
    pub hardware: Option<Spanned<String>>,
    #[serde(default, rename = "model")]
    pub models: Vec<Spanned<RawModel>>,
    #[serde(default)]
    pub engine: RawEngine,
    pub workload: Option<Spanned<RawWorkload>>,
    /// Which backends run every cell (default: the embedded engine).
    pub backends: Option<Spanned<Vec<Spanned<String>>>>,
    /// `[backend.NAME]` settings.
    #[serde(default)]
    pub backend: BTreeMap<String, Spanned<RawBackend>>,
    pub serve: Option<Spanned<RawServe>>,
}

/// `[backend.NAME]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBackend {
    pub binary: Option<String>,
    #[serde(default)]
    pub args: Vec<String>,
    pub base_url: Option<Spanned<String>>,
    pub model: Option<String>,
    pub api_key_env: Option<String>,
    pub startup_timeout_s: Option<Spanned<f64>>,
    pub port: Option<Spanned<i64>>,
}

/// `[serve]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawServe {
    pub concurrency: Option<Spanned<OneOrMany<i64>>>,
    pub request_rate: Option<Spanned<f64>>,
    pub requests_per_stream: Option<Spanned<i64>>,
    pub ignore_eos: Option<bool>,
}

/// One `[[model]]`: a synthesized architecture at some quantizations, or a GGUF file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawModel {
    pub synth: Option<Spanned<String>>,
    pub path: Option<Spanned<String>>,
    pub seed: Option<u64>,
    pub quants: Option<Spanned<Vec<Spanned<String>>>>,
    pub name: Option<String>,
}

/// `[engine]`: llama-bench's axes. Lists multiply the matrix.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawEngine {
    pub threads: Option<Spanned<OneOrMany<i64>>>,
    pub batch: Option<Spanned<OneOrMany<i64>>>,
    pub ubatch: Option<Spanned<OneOrMany<i64>>>,
    pub n_gpu_layers: Option<Spanned<OneOrMany<i64>>>,
    pub flash_attn: Option<Spanned<OneOrMany<bool>>>,
    pub cache_type_k: Option<Spanned<OneOrMany<String>>>,
    pub cache_type_v: Option<Spanned<OneOrMany<String>>>,
    pub mmap: Option<bool>,
}

/// `[workload]`: which tests, how often.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawWorkload {
    pub tests: Spanned<Vec<Spanned<String>>>,
    pub depths: Option<Spanned<Vec<Spanned<i64>>>>,
    pub repetitions: Option<Spanned<i64>>,
    pub warmup: Option<bool>,
    pub timeout_s: Option<Spanned<f64>>,
    pub memory_limit_mb: Option<Spanned<i64>>,
}

/// Where a model comes from.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ModelSource {
    /// A synthesized architecture preset at a quantization.
    Synth {
        arch: String,
        seed: u64,
        quant: QuantPreset,
    },
    /// A GGUF file the user has (path as written, resolved against the suite's folder).
    File { path: PathBuf },
}

impl ModelSource {
    /// The model's name without its quantization: `synth:tiny`, or the file name.
    pub fn model_name(&self) -> String {
        match self {
            Self::Synth { arch, .. } => format!("synth:{arch}"),
            Self::File { .. } => self.display_name(),
        }
    }

    /// A short name for progress lines: the model and, for a synthesized one, its quant.
    pub fn display_name(&self) -> String {
        match self {
            Self::Synth { arch, quant, .. } => format!("synth:{arch} {quant}"),
            Self::File { path } => path
                .file_name()
                .map(|f| f.to_string_lossy().into_owned())
                .unwrap_or_else(|| path.display().to_string()),
        }
    }
}

impl fmt::Display for ModelSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.display_name())
    }
}

/// Engine parameters before the thread count is known (it defaults to the machine's cores,
/// which only the runner can know).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct EngineAxes {
    pub n_threads: Option<u32>,
    pub n_batch: u32,
    pub n_ubatch: u32,
    pub n_gpu_layers: u32,
    pub flash_attn: bool,
    pub type_k: CacheType,
    pub type_v: CacheType,
    pub use_mmap: bool,
}

impl EngineAxes {
    /// The concrete parameters, with `default_threads` where the suite named none.
    pub fn resolve(&self, default_threads: u32) -> EngineParams {
        let Self {
            n_threads,
            n_batch,
            n_ubatch,
            n_gpu_layers,
            flash_attn,
            type_k,
            type_v,
            use_mmap,
        } = *self;
        EngineParams {
            n_threads: n_threads.unwrap_or(default_threads),
            n_batch,
            n_ubatch,
            n_gpu_layers,
            flash_attn,
            type_k,
            type_v,
            use_mmap,
        }
    }
}

/// A validated suite: the matrix is models × engine axes × tests.
#[derive(Debug, Clone, PartialEq)]
pub struct Suite {
    pub name: String,
    pub description: Option<String>,
    /// The hardware the suite runs on, as the catalog names it (`2x GeForce RTX 3090`),
    /// when the suite says; else the reports match the host's detected device.
    pub hardware: Option<SuiteHardware>,
    pub file: PathBuf,
    pub models: Vec<ModelSource>,
    pub engines: Vec<EngineAxes>,
    pub tests: Vec<TestSpec>,
    pub repetitions: u32,
    pub warmup: bool,
    pub timeout_s: f64,
    /// A spawned backend whose resident memory passes this is stopped and its cell stored
    /// as `oom` (Linux, where `/proc` is read).
    pub memory_limit_mb: Option<u64>,
    /// Backends every cell runs on, in order (default: `[Engine]`).
    pub backends: Vec<BackendKind>,
    /// Settings of the backends that have a `[backend.NAME]` table.
    pub backend_settings: BTreeMap<BackendKind, BackendSettings>,
    /// How server backends are loaded with requests.
    pub serve: ServeWorkload,
}

/// A suite's `hardware = "…"`, with its line for errors once the catalog is consulted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SuiteHardware {
    pub name: String,
    pub line: usize,
}

/// One cell of the matrix.
#[derive(Debug, Clone, PartialEq)]
pub struct Cell {
    /// Position in the matrix (stable for a given suite file; used to resume a run).
    pub index: usize,
    pub model: ModelSource,
    pub engine: EngineAxes,
    pub test: TestSpec,
    pub backend: BackendKind,
    /// Parallel request streams (server backends in closed-loop mode).
    pub concurrency: Option<u32>,
}

impl Suite {
    pub const DEFAULT_REPETITIONS: u32 = 5;
    pub const DEFAULT_TIMEOUT_S: f64 = 600.0;
    /// Most cells a suite may expand to (models × backends × engine settings × tests ×
    /// concurrency levels). A few lists of a few hundred values each multiply to billions
    /// of cells, more memory than any host has; no real suite comes near this.
    pub const MAX_CELLS: usize = 100_000;

    /// Expands the matrix in run order: model-major, so a model is loaded once for all the
    /// cells that share it; then backend, engine axes, test and (server backends)
    /// concurrency. Backends that do not run llama.cpp with tokbench's engine axes
    /// (`openai`, `vllm`, `ollama`) get the first axes only, recorded as given; those that
    /// serve a model of their own (`openai`, `ollama`, `vllm` with `model`) run once, with
    /// the first `[[model]]`, not once per suite model.
    pub fn cells(&self) -> Vec<Cell> {
        let mut out = Vec::new();
        let levels: Vec<Option<u32>> = if self.serve.request_rate.is_some() {
            vec![None]
        } else {
            self.serve.concurrency.iter().copied().map(Some).collect()
        };
        for (m, model) in self.models.iter().enumerate() {
            for &backend in &self.backends {
                if m > 0 && self.serves_own_model(backend) {
                    continue;
                }
                let engines = if backend.takes_engine_axes() {
                    &self.engines[..]
                } else {
                    &self.engines[..1]
                };
                for engine in engines {
                    for test in &self.tests {
                        let conc: &[Option<u32>] = if backend.is_server() {
                            &levels
                        } else {
                            &[None]
                        };
                        for &concurrency in conc {
                            out.push(Cell {
                                index: out.len(),
                                model: model.clone(),
                                engine: *engine,
                                test: *test,
                                backend,
                                concurrency,
                            });
                        }
                    }
                }
            }
        }
        out
    }

    /// Whether `backend` serves a model of its own rather than the suite's GGUF.
    pub fn serves_own_model(&self, backend: BackendKind) -> bool {
        match backend {
            BackendKind::OpenAi | BackendKind::Ollama => true,
            BackendKind::Vllm => self.settings(backend).model.is_some(),
            _ => false,
        }
    }

    /// The settings of `backend` (defaults when the suite has no table for it).
    pub fn settings(&self, backend: BackendKind) -> BackendSettings {
        self.backend_settings
            .get(&backend)
            .cloned()
            .unwrap_or_else(BackendSettings::new)
    }

    /// Parses and validates suite text; `file` names it in errors and anchors relative
    /// model paths.
    pub fn from_toml(text: &str, file: &Path) -> Result<Suite, SuiteError> {
        let ctx = Ctx { text, file };
        let raw: RawSuite = toml::from_str(text).map_err(|e| {
            let line = e.span().map(|s| ctx.line_of(&s));
            SuiteError {
                file: file.to_path_buf(),
                line,
                message: e.message().to_string(),
            }
        })?;
        ctx.validate(raw)
    }
}

/// The 1-based line of byte `offset` in `text` (a TOML span's start, for error messages).
pub(crate) fn line_at(text: &str, offset: usize) -> usize {
    let end = offset.min(text.len());
    text[..end].bytes().filter(|b| *b == b'\n').count() + 1
}

struct Ctx<'a> {
    text: &'a str,
    file: &'a Path,
}

impl Ctx<'_> {
    fn line_of(&self, span: &Range<usize>) -> usize {
        line_at(self.text, span.start)
    }

    fn err(&self, span: Option<&Range<usize>>, message: impl Into<String>) -> SuiteError {
        SuiteError {
            file: self.file.to_path_buf(),
            line: span.map(|s| self.line_of(s)),
            message: message.into(),
        }
    }

    fn validate(&self, raw: RawSuite) -> Result<Suite, SuiteError> {
        let RawSuite {
            name,
            description,
            hardware,
            models: raw_models,
            engine,
            workload,
            backends: raw_backends,
            backend: raw_backend,
            serve: raw_serve,
        } = raw;
        let backends = self.backends(raw_backends.as_ref())?;
        let backend_settings = self.backend_settings(&raw_backend)?;
        for (kind, s) in &backend_settings {
            if *kind == BackendKind::OpenAi && s.base_url.is_none() && backends.contains(kind) {
                let span = raw_backend.get("openai").map(|b| b.span());
                return Err(self.err(
                    span.as_ref(),
                    "`[backend.openai]` needs `base_url = \"http://HOST:PORT/v1\"` (tokbench attaches to a running endpoint)",
                ));
            }
        }
        // Ollama and OpenAI endpoints serve models by name; so does a vLLM that tokbench
        // attaches to (one it starts serves the suite's model file).
        for needs_model in [BackendKind::Ollama, BackendKind::OpenAi, BackendKind::Vllm] {
            if backends.contains(&needs_model)
                && backend_settings.get(&needs_model).is_some_and(|s| {
                    s.model.is_none() && (needs_model != BackendKind::Vllm || s.base_url.is_some())
                })
            {
                let span = raw_backend.get(needs_model.name()).map(|b| b.span());
                return Err(self.err(
                    span.as_ref(),
                    format!("`[backend.{needs_model}]` needs `model = \"NAME\"`: the model the server serves"),
                ));
            }
        }
        if backends.contains(&BackendKind::Ollama)
            && !backend_settings.contains_key(&BackendKind::Ollama)
        {
            return Err(self.err(
                raw_backends.as_ref().map(|b| b.span()).as_ref(),
                "backend `ollama` needs a `[backend.ollama]` table with `model` (an Ollama model name, e.g. \"llama3.2:1b\")",
            ));
        }
        if backends.contains(&BackendKind::OpenAi)
            && !backend_settings.contains_key(&BackendKind::OpenAi)
        {
            return Err(self.err(
                raw_backends.as_ref().map(|b| b.span()).as_ref(),
                "backend `openai` needs a `[backend.openai]` table with `base_url` and `model`",
            ));
        }
        let serve = self.serve(raw_serve.as_ref())?;
        let name = name.unwrap_or_else(|| {
            self.file
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_else(|| "suite".into())
        });
        let hardware = match hardware {
            None => None,
            Some(h) if h.get_ref().trim().is_empty() => {
                return Err(self.err(
                    Some(&h.span()),
                    "key `hardware`: empty; name a catalog entry (`tokbench hardware` lists them) or leave the key out",
                ))
            }
            Some(h) => Some(SuiteHardware {
                name: h.get_ref().trim().to_string(),
                line: self.line_of(&h.span()),
            }),
        };
        if raw_models.is_empty() {
            return Err(self.err(None, "no `[[model]]`: a suite needs at least one model"));
        }
        let mut models = Vec::new();
        for m in &raw_models {
            models.extend(self.model(m)?);
        }
        let engines = self.engine(&engine)?;
        let Some(workload) = workload else {
            return Err(self.err(
                None,
                "no `[workload]`: a suite needs `[workload] tests = [...]`",
            ));
        };
        let wspan = workload.span();
        let RawWorkload {
            tests: raw_tests,
            depths,
            repetitions,
            warmup,
            timeout_s,
            memory_limit_mb,
        } = workload.into_inner();
        if raw_tests.get_ref().is_empty() {
            return Err(self.err(Some(&raw_tests.span()), "key `tests`: the list is empty"));
        }
        let depths: Vec<u32> = match &depths {
            None => vec![0],
            Some(d) if d.get_ref().is_empty() => {
                return Err(self.err(Some(&d.span()), "key `depths`: the list is empty"))
            }
            Some(d) => d
                .get_ref()
                .iter()
                .map(|v| {
                    u32::try_from(*v.get_ref()).map_err(|_| {
                        self.err(
                            Some(&v.span()),
                            format!(
                                "key `depths`: {} is not a token count (0 or more)",
                                v.get_ref()
                            ),
                        )
                    })
                })
                .collect::<Result<_, _>>()?,
        };
        if raw_tests.get_ref().len().saturating_mul(depths.len()) > Suite::MAX_CELLS {
            return Err(self.err(
                Some(&wspan),
                format!(
                    "`[workload]`: {} tests × {} depths is more than the {} cells a suite may have",
                    raw_tests.get_ref().len(),
                    depths.len(),
                    Suite::MAX_CELLS
                ),
            ));
        }
        let mut tests = Vec::new();
        for t in raw_tests.get_ref() {
            let spec: TestSpec = t
                .get_ref()
                .parse()
                .map_err(|e| self.err(Some(&t.span()), format!("key `tests`: {e}")))?;
            if spec.n_depth > 0 {
                tests.push(spec);
            } else {
                for &d in &depths {
                    tests.push(TestSpec { n_depth: d, ..spec });
                }
            }
        }
        let repetitions = match repetitions {
            None => Suite::DEFAULT_REPETITIONS,
            Some(r) => match u32::try_from(*r.get_ref()) {
                Ok(n @ 1..=10_000) => n,
                _ => {
                    return Err(self.err(
                        Some(&r.span()),
                        format!(
                            "key `repetitions`: {} is not between 1 and 10000",
                            r.get_ref()
                        ),
                    ))
                }
            },
        };
        let timeout_s = match timeout_s {
            None => Suite::DEFAULT_TIMEOUT_S,
            Some(t) if t.get_ref().is_finite() && *t.get_ref() > 0.0 => *t.get_ref(),
            Some(t) => {
                return Err(self.err(
                    Some(&t.span()),
                    format!(
                        "key `timeout_s`: {} is not a positive number of seconds",
                        t.get_ref()
                    ),
                ))
            }
        };
        let memory_limit_mb = match memory_limit_mb {
            None => None,
            Some(m) => match u64::try_from(*m.get_ref()) {
                Ok(n @ 1..) => Some(n),
                _ => {
                    return Err(self.err(
                        Some(&m.span()),
                        format!(
                            "key `memory_limit_mb`: {} is not a positive number of MiB",
                            m.get_ref()
                        ),
                    ))
                }
            },
        };
        for t in &tests {
            if t.n_depth > 0 {
                if let Some(b) = backends.iter().find(|b| b.is_server()) {
                    return Err(self.err(
                        Some(&wspan),
                        format!(
                            "test `{}`: backend `{b}` is measured by requests, which process their whole prompt; a depth (a KV cache filled before the test) is an engine and llama-bench test. Use `pp{}` for a prompt of that length",
                            t.label(),
                            t.n_depth + t.n_prompt
                        ),
                    ));
                }
            }
            if t.n_prompt > 0 && t.n_gen > 0 && backends.contains(&BackendKind::LlamaBench) {
                return Err(self.err(
                    Some(&wspan),
                    format!(
                        "test `{}`: llama-bench reports a pp+tg test as one rate over both phases; give `pp{}` and `tg{}` as separate tests",
                        t.label(),
                        t.n_prompt,
                        t.n_gen
                    ),
                ));
            }
        }
        let levels = serve.concurrency.len().max(1);
        let n_cells = [
            models.len(),
            backends.len(),
            engines.len(),
            tests.len(),
            levels,
        ]
        .into_iter()
        .try_fold(1usize, usize::checked_mul)
        .filter(|&n| n <= Suite::MAX_CELLS);
        if n_cells.is_none() {
            return Err(self.err(
                None,
                format!(
                    "the matrix of {} models × {} backends × {} engine settings × {} tests × {levels} concurrency levels is more than the {} cells a suite may have; split the suite",
                    models.len(),
                    backends.len(),
                    engines.len(),
                    tests.len(),
                    Suite::MAX_CELLS
                ),
            ));
        }
        Ok(Suite {
            name,
            description,
            hardware,
            file: self.file.to_path_buf(),
            models,
            engines,
            tests,
            repetitions,
            warmup: warmup.unwrap_or(true),
            timeout_s,
            memory_limit_mb,
            backends,
            backend_settings,
            serve,
        })
    }

    fn backends(
        &self,
        raw: Option<&Spanned<Vec<Spanned<String>>>>,
    ) -> Result<Vec<BackendKind>, SuiteError> {
        let Some(raw) = raw else {
            return Ok(vec![BackendKind::Engine]);
        };
        if raw.get_ref().is_empty() {
            return Err(self.err(Some(&raw.span()), "key `backends`: the list is empty"));
        }
        let mut out = Vec::new();
        for b in raw.get_ref() {
            let kind: BackendKind = b
                .get_ref()
                .parse()
                .map_err(|e| self.err(Some(&b.span()), format!("key `backends`: {e}")))?;
            if out.contains(&kind) {
                return Err(self.err(
                    Some(&b.span()),
                    format!("key `backends`: `{kind}` is listed twice"),
                ));
            }
            out.push(kind);
        }
        Ok(out)
    }

    fn backend_settings(
        &self,
        raw: &BTreeMap<String, Spanned<RawBackend>>,
    ) -> Result<BTreeMap<BackendKind, BackendSettings>, SuiteError> {
        let mut out = BTreeMap::new();
        for (name, table) in raw {
            let span = table.span();
            let kind: BackendKind = name
                .parse()
                .map_err(|e| self.err(Some(&span), format!("table `[backend.{name}]`: {e}")))?;
            let RawBackend {
                binary,
                args,
                base_url,
                model,
                api_key_env,
                startup_timeout_s,
                port,
            } = table.get_ref().clone();
            let port = match port {
                None => None,
                Some(p) if !kind.is_server() || kind == BackendKind::OpenAi => {
                    return Err(self.err(
                        Some(&p.span()),
                        format!("`[backend.{name}]` key `port`: only a server tokbench starts listens on a port"),
                    ))
                }
                Some(p) if base_url.is_some() => {
                    return Err(self.err(
                        Some(&p.span()),
                        format!("`[backend.{name}]` key `port`: with `base_url` tokbench attaches to a running server and starts none; give one or the other"),
                    ))
                }
                Some(p) => match u16::try_from(*p.get_ref()) {
                    Ok(n @ 1..) => Some(n),
                    _ => {
                        return Err(self.err(
                            Some(&p.span()),
                            format!("`[backend.{name}]` key `port`: {} is not a TCP port (1 to 65535)", p.get_ref()),
                        ))
                    }
                },
            };
            if kind.is_server() && base_url.is_none() {
                if let Some(a) = args
                    .iter()
                    .find(|a| matches!(a.split('=').next(), Some("--port" | "--host")))
                {
                    return Err(self.err(
                        Some(&span),
                        format!("`[backend.{name}]` key `args`: `{a}` is tokbench's to set (it polls the server there); use `port = N` for a fixed port"),
                    ));
                }
            }
            if let Some(url) = &base_url {
                let u = url.get_ref();
                if !(u.starts_with("http://") || u.starts_with("https://")) {
                    return Err(self.err(
                        Some(&url.span()),
                        format!("`[backend.{name}]` key `base_url`: `{u}` is not an http:// or https:// URL"),
                    ));
                }
            }
            if let Some(env) = &api_key_env {
                if env.is_empty() || env.contains('=') {
                    return Err(self.err(
                        Some(&span),
                        format!("`[backend.{name}]` key `api_key_env`: `{env}` is not an environment variable name"),
                    ));
                }
            }
            let startup_timeout_s = match startup_timeout_s {
                None => BackendSettings::DEFAULT_STARTUP_TIMEOUT_S,
                Some(t) if t.get_ref().is_finite() && *t.get_ref() > 0.0 => *t.get_ref(),
                Some(t) => {
                    return Err(self.err(
                        Some(&t.span()),
                        format!(
                            "`[backend.{name}]` key `startup_timeout_s`: {} is not a positive number of seconds",
                            t.get_ref()
                        ),
                    ))
                }
            };
            out.insert(
                kind,
                BackendSettings {
                    binary: binary.map(|b| self.resolve_path(&b)),
                    args,
                    base_url: base_url.map(|u| u.into_inner().trim_end_matches('/').to_string()),
                    model,
                    api_key_env,
                    startup_timeout_s,
                    port,
                },
            );
        }
        Ok(out)
    }

    /// A path as written in the suite: `~/` expands, relative paths are the suite folder's.
    /// A bare program name (no `/`) is left for `PATH`.
    fn resolve_path(&self, p: &str) -> PathBuf {
        if !p.contains('/') {
            return PathBuf::from(p);
        }
        if let (Some(rest), Some(home)) = (p.strip_prefix("~/"), std::env::var_os("HOME")) {
            return PathBuf::from(home).join(rest);
        }
        let path = PathBuf::from(p);
        if path.is_absolute() {
            path
        } else {
            self.file.parent().map(|d| d.join(&path)).unwrap_or(path)
        }
    }

    fn serve(&self, raw: Option<&Spanned<RawServe>>) -> Result<ServeWorkload, SuiteError> {
        let mut out = ServeWorkload::default();
        let Some(raw) = raw else {
            return Ok(out);
        };
        let RawServe {
            concurrency,
            request_rate,
            requests_per_stream,
            ignore_eos,
        } = raw.get_ref();
        if let Some(c) = concurrency {
            let values: Vec<i64> = match c.get_ref() {
                OneOrMany::One(v) => vec![*v],
                OneOrMany::Many(v) => v.clone(),
            };
            if values.is_empty() {
                return Err(self.err(Some(&c.span()), "key `concurrency`: the list is empty"));
            }
            out.concurrency = values
                .iter()
                .map(|v| match u32::try_from(*v) {
                    Ok(n @ 1..=4096) => Ok(n),
                    _ => Err(self.err(
                        Some(&c.span()),
                        format!("key `concurrency`: {v} is not between 1 and 4096 streams"),
                    )),
                })
                .collect::<Result<_, _>>()?;
        }
        if let Some(r) = request_rate {
            let v = *r.get_ref();
            if !(v.is_finite() && v > 0.0) {
                return Err(self.err(
                    Some(&r.span()),
                    format!(
                        "key `request_rate`: {v} is not a positive number of requests per second"
                    ),
                ));
            }
            if concurrency.is_some() {
                return Err(self.err(
                    Some(&r.span()),
                    "`[serve]`: give `concurrency` (closed-loop streams) or `request_rate` (Poisson arrivals), not both",
                ));
            }
            out.request_rate = Some(v);
        }
        if let Some(n) = requests_per_stream {
            out.requests_per_stream = match u32::try_from(*n.get_ref()) {
                Ok(n @ 1..=100_000) => Some(n),
                _ => {
                    return Err(self.err(
                        Some(&n.span()),
                        format!(
                            "key `requests_per_stream`: {} is not between 1 and 100000",
                            n.get_ref()
                        ),
                    ))
                }
            };
        }
        if let Some(i) = ignore_eos {
            out.ignore_eos = *i;
        }
        Ok(out)
    }

    fn model(&self, m: &Spanned<RawModel>) -> Result<Vec<ModelSource>, SuiteError> {
        let span = m.span();
        let RawModel {
            synth,
            path,
            seed,
            quants,
            name: _,
        } = m.get_ref();
        match (synth, path) {
            (Some(_), Some(_)) | (None, None) => Err(self.err(
                Some(&span),
                "`[[model]]` needs exactly one of `synth = \"PRESET\"` or `path = \"FILE.gguf\"`",
            )),
            (Some(arch), None) => {
                if ArchSpec::preset(arch.get_ref()).is_none() {
                    let known: Vec<&str> = ArchSpec::presets()
                        .iter()
                        .map(|a| a.name.as_str())
                        .collect();
                    return Err(self.err(
                        Some(&arch.span()),
                        format!(
                            "key `synth`: unknown architecture preset `{}` (known: {})",
                            arch.get_ref(),
                            known.join(", ")
                        ),
                    ));
                }
                let Some(quants) = quants else {
                    return Err(self.err(
                        Some(&span),
                        "key `quants`: a synthesized model needs `quants = [\"Q8_0\", ...]`",
                    ));
                };
                if quants.get_ref().is_empty() {
                    return Err(self.err(Some(&quants.span()), "key `quants`: the list is empty"));
                }
                quants
                    .get_ref()
                    .iter()
                    .map(|q| {
                        let quant = q
                            .get_ref()
                            .parse::<QuantPreset>()
                            .map_err(|e| self.err(Some(&q.span()), format!("key `quants`: {e}")))?;
                        Ok(ModelSource::Synth {
                            arch: arch.get_ref().clone(),
                            seed: seed.unwrap_or(0),
                            quant,
                        })
                    })
                    .collect()
            }
            (None, Some(p)) => {
                if let Some(q) = quants {
                    return Err(self.err(
                        Some(&q.span()),
                        "key `quants`: only a synthesized model takes `quants`; a file's quantization is read from the file",
                    ));
                }
                if p.get_ref().trim().is_empty() {
                    return Err(self.err(Some(&p.span()), "key `path`: empty path"));
                }
                let written = PathBuf::from(p.get_ref());
                let path = if written.is_relative() {
                    self.file
                        .parent()
                        .map(|d| d.join(&written))
                        .unwrap_or(written)
                } else {
                    written
                };
                Ok(vec![ModelSource::File { path }])
            }
        }
    }

    fn ints(
        &self,
        v: &Option<Spanned<OneOrMany<i64>>>,
        key: &str,
        default: Option<u32>,
        range: Range<i64>,
    ) -> Result<Vec<Option<u32>>, SuiteError> {
        let Some(v) = v else {
            return Ok(vec![default]);
        };
        let values = v.get_ref().to_vec();
        if values.is_empty() {
            return Err(self.err(Some(&v.span()), format!("key `{key}`: the list is empty")));
        }
        values
            .into_iter()
            .map(|x| {
                if range.contains(&x) {
                    Ok(Some(x as u32))
                } else {
                    Err(self.err(
                        Some(&v.span()),
                        format!(
                            "key `{key}`: {x} is out of range ({}..={})",
                            range.start,
                            range.end - 1
                        ),
                    ))
                }
            })
            .collect()
    }

    fn cache_types(
        &self,
        v: &Option<Spanned<OneOrMany<String>>>,
        key: &str,
    ) -> Result<Vec<CacheType>, SuiteError> {
        let Some(v) = v else {
            return Ok(vec![CacheType::F16]);
        };
        let values = v.get_ref().to_vec();
        if values.is_empty() {
            return Err(self.err(Some(&v.span()), format!("key `{key}`: the list is empty")));
        }
        values
            .iter()
            .map(|s| {
                s.parse::<CacheType>()
                    .map_err(|e| self.err(Some(&v.span()), format!("key `{key}`: {e}")))
            })
            .collect()
    }

    fn engine(&self, e: &RawEngine) -> Result<Vec<EngineAxes>, SuiteError> {
        let threads = self.ints(&e.threads, "threads", None, 1..1025)?;
        let batch = self.ints(&e.batch, "batch", Some(2048), 1..1_048_577)?;
        let ubatch = self.ints(&e.ubatch, "ubatch", Some(512), 1..1_048_577)?;
        let ngl = self.ints(&e.n_gpu_layers, "n_gpu_layers", Some(99), 0..10_000)?;
        let fa = match &e.flash_attn {
            None => vec![false],
            Some(v) => {
                let vals = v.get_ref().to_vec();
                if vals.is_empty() {
                    return Err(self.err(Some(&v.span()), "key `flash_attn`: the list is empty"));
                }
                vals
            }
        };
        let ctk = self.cache_types(&e.cache_type_k, "cache_type_k")?;
        let ctv = self.cache_types(&e.cache_type_v, "cache_type_v")?;
        let axes = [
            threads.len(),
            batch.len(),
            ubatch.len(),
            ngl.len(),
            fa.len(),
            ctk.len(),
            ctv.len(),
        ];
        // Checked before the product is built: a few long lists multiply past any memory.
        if axes
            .into_iter()
            .try_fold(1usize, usize::checked_mul)
            .is_none_or(|n| n > Suite::MAX_CELLS)
        {
            return Err(self.err(
                None,
                format!(
                    "`[engine]`: the lists multiply to more than the {} cells a suite may have ({})",
                    Suite::MAX_CELLS,
                    axes.map(|n| n.to_string()).join(" × ")
                ),
            ));
        }
        let mut out = Vec::new();
        for &n_threads in &threads {
            for &n_batch in &batch {
                for &n_ubatch in &ubatch {
                    for &n_gpu_layers in &ngl {
                        for &flash_attn in &fa {
                            for &type_k in &ctk {
                                for &type_v in &ctv {
                                    if type_v.is_quantized() && !flash_attn {
                                        return Err(self.err(
                                            e.cache_type_v.as_ref().map(|s| s.span()).as_ref(),
                                            format!(
                                                "key `cache_type_v`: a quantized V cache ({type_v}) needs `flash_attn = true` in llama.cpp"
                                            ),
                                        ));
                                    }
                                    out.push(EngineAxes {
                                        n_threads,
                                        n_batch: n_batch.unwrap_or(2048),
                                        n_ubatch: n_ubatch.unwrap_or(512),
                                        n_gpu_layers: n_gpu_layers.unwrap_or(99),
                                        flash_attn,
                                        type_k,
                                        type_v,
                                        use_mmap: e.mmap.unwrap_or(true),
                                    });
                                }
                            }
                        }
                    }
                }
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Suite, SuiteError> {
        Suite::from_toml(text, Path::new("bench-configs/t.toml"))
    }

    const GOOD: &str = r#"
name = "t"
[[model]]
synth = "tiny"
quants = ["Q8_0", "Q4_K_M"]

[engine]
threads = [1, 2]

[workload]
tests = ["pp512", "tg128"]
repetitions = 3
"#;

    #[test]
    fn backends_multiply_the_matrix_and_servers_get_concurrency_levels() {
        // `backends` is a top-level key: it comes before the tables.
        let text = format!(
            "backends = [\"engine\", \"llama-server\", \"openai\"]\n{GOOD}\n\
             [backend.openai]\nbase_url = \"http://h:8000/v1/\"\nmodel = \"m\"\napi_key_env = \"KEY\"\n\
             [serve]\nconcurrency = [1, 4]\n"
        );
        let s = parse(&text).unwrap();
        let cells = s.cells();
        // Per model (2): engine 2 threads × 2 tests; llama-server 2 × 2 × 2 levels; and
        // once (it serves its own model, not the suite's): openai, no engine axes, 2 × 2.
        assert_eq!(cells.len(), 2 * (4 + 8) + 4);
        assert_eq!(
            cells
                .iter()
                .filter(|c| c.backend == BackendKind::OpenAi)
                .count(),
            4
        );
        let server: Vec<_> = cells
            .iter()
            .filter(|c| c.backend == BackendKind::LlamaServer)
            .collect();
        assert_eq!(server[0].concurrency, Some(1));
        assert_eq!(server[1].concurrency, Some(4));
        assert!(cells
            .iter()
            .filter(|c| c.backend == BackendKind::Engine)
            .all(|c| c.concurrency.is_none()));
        let oa = s.settings(BackendKind::OpenAi);
        assert_eq!(
            oa.base_url.as_deref(),
            Some("http://h:8000/v1"),
            "trailing slash dropped"
        );
        assert_eq!(oa.api_key_env.as_deref(), Some("KEY"));
        // Without `backends`, the engine alone: the old matrix, the old cell indices.
        assert_eq!(parse(GOOD).unwrap().cells().len(), 8);
    }

    #[test]
    fn tests_a_backend_cannot_measure_are_refused() {
        let depth = GOOD.replace(
            "tests = [\"pp512\", \"tg128\"]",
            "tests = [\"pp512 @ d4096\"]",
        );
        let e = parse(&format!(
            "backends = [\"engine\", \"llama-server\"]\n{depth}"
        ))
        .unwrap_err();
        assert!(e.to_string().contains("Use `pp4608`"), "{e}");
        let pg = GOOD.replace(
            "tests = [\"pp512\", \"tg128\"]",
            "tests = [\"pp512+tg128\"]",
        );
        let e = parse(&format!("backends = [\"llama-bench\"]\n{pg}")).unwrap_err();
        assert!(
            e.to_string()
                .contains("give `pp512` and `tg128` as separate tests"),
            "{e}"
        );
        // A server takes pp+tg gladly: a prompt, then generation.
        assert!(parse(&format!("backends = [\"llama-server\"]\n{pg}")).is_ok());
    }

    #[test]
    fn bad_backend_settings_name_the_key() {
        let cases = [
            ("backends = [\"llamacpp\"]\n", "unknown backend `llamacpp`"),
            ("backends = [\"engine\", \"engine\"]\n", "listed twice"),
            ("backends = []\n", "the list is empty"),
            ("backends = [\"openai\"]\n", "needs a `[backend.openai]` table"),
            ("backends = [\"openai\"]\n[backend.openai]\nmodel = \"m\"\n", "needs `base_url"),
            ("backends = [\"openai\"]\n[backend.openai]\nbase_url = \"ftp://x\"\nmodel = \"m\"\n", "not an http:// or https:// URL"),
            ("backends = [\"ollama\"]\n[backend.ollama]\nbase_url = \"http://x\"\n", "needs `model"),
            ("backends = [\"vllm\"]\n[backend.vllm]\nbase_url = \"http://x/v1\"\n", "`[backend.vllm]` needs `model"),
            ("[backend.tgi]\nbinary = \"x\"\n", "table `[backend.tgi]`: unknown backend"),
            ("[backend.llama-server]\nstartup_timeout_s = 0\n", "not a positive number of seconds"),
            ("[serve]\nconcurrency = [0]\n", "not between 1 and 4096"),
            ("[serve]\nconcurrency = 2\nrequest_rate = 1.5\n", "not both"),
            ("[serve]\nrequest_rate = -1.0\n", "not a positive number of requests"),
            ("[backend.llama-server]\nport = 70000\n", "key `port`: 70000 is not a TCP port"),
            ("[backend.llama-server]\nport = 8080\nbase_url = \"http://h:1\"\n", "give one or the other"),
            ("[backend.llama-bench]\nport = 8080\n", "only a server tokbench starts"),
            ("[backend.llama-server]\nargs = [\"--port=9\"]\n", "`--port=9` is tokbench's to set"),
        ];
        for (extra, want) in cases {
            // Top-level keys first, tables after the rest of the suite.
            let (top, tables) = match extra.find('[') {
                Some(0) => ("", extra),
                _ if extra.starts_with("backends") => match extra.find("\n[") {
                    Some(i) => (&extra[..=i], &extra[i + 1..]),
                    None => (extra, ""),
                },
                _ => ("", extra),
            };
            let text = format!("{top}{GOOD}\n{tables}");
            let e = parse(&text).unwrap_err();
            assert!(e.to_string().contains(want), "{extra:?}: {e}");
            assert!(e.to_string().contains("t.toml"), "{e}");
        }
    }

    #[test]
    fn memory_limit_is_a_positive_number_of_mib() {
        let with = |v: &str| {
            GOOD.replace(
                "[workload]\n",
                &format!("[workload]\nmemory_limit_mb = {v}\n"),
            )
        };
        assert_eq!(parse(&with("2048")).unwrap().memory_limit_mb, Some(2048));
        assert_eq!(parse(GOOD).unwrap().memory_limit_mb, None);
        for bad in ["0", "-5"] {
            let e = parse(&with(bad)).unwrap_err().to_string();
            assert!(
                e.contains(&format!(
                    "key `memory_limit_mb`: {bad} is not a positive number of MiB"
                )),
                "{e}"
            );
        }
    }

    #[test]
    fn expands_the_matrix_model_major() {
        let s = parse(GOOD).unwrap();
        assert_eq!(s.models.len(), 2);
        assert_eq!(s.engines.len(), 2);
        let cells = s.cells();
        assert_eq!(cells.len(), 8);
        assert_eq!(cells[0].test.label(), "pp512");
        assert_eq!(cells[1].test.label(), "tg128");
        assert_eq!(cells[0].engine.n_threads, Some(1));
        assert_eq!(cells[2].engine.n_threads, Some(2));
        assert!(matches!(
            cells[4].model,
            ModelSource::Synth {
                quant: QuantPreset::Q4_K_M,
                ..
            }
        ));
        assert_eq!(s.repetitions, 3);
        assert!(s.warmup);
    }

    #[test]
    fn unknown_key_names_line_and_key() {
        let text = GOOD.replace("repetitions = 3", "repetitions = 3\nrepetiton = 4");
        let e = parse(&text).unwrap_err();
        assert_eq!(e.line, Some(13), "{e}");
        assert!(e.to_string().contains("repetiton"), "{e}");
        assert!(e.to_string().starts_with("bench-configs/t.toml:13:"), "{e}");
    }

    #[test]
    fn wrong_type_names_line() {
        let text = GOOD.replace("repetitions = 3", "repetitions = \"three\"");
        let e = parse(&text).unwrap_err();
        assert_eq!(e.line, Some(12), "{e}");
    }

    #[test]
    fn impossible_values_name_line_and_key() {
        let cases = [
            ("repetitions = 3", "repetitions = 0", 12, "repetitions"),
            ("threads = [1, 2]", "threads = [1, -2]", 8, "threads"),
            ("\"Q4_K_M\"", "\"Q4_K_Z\"", 5, "quants"),
            ("\"tg128\"", "\"tg0\"", 11, "tests"),
            ("synth = \"tiny\"", "synth = \"huge\"", 4, "synth"),
        ];
        for (from, to, line, key) in cases {
            let e = parse(&GOOD.replace(from, to)).unwrap_err();
            assert_eq!(e.line, Some(line), "{to}: {e}");
            assert!(e.message.contains(key), "{to}: {e}");
        }
    }

    #[test]
    fn quantized_v_cache_needs_flash_attention() {
        let text = GOOD.replace("threads = [1, 2]", "cache_type_v = \"q8_0\"");
        let e = parse(&text).unwrap_err();
        assert!(e.message.contains("flash_attn"), "{e}");
        let ok = GOOD.replace(
            "threads = [1, 2]",
            "cache_type_v = \"q8_0\"\nflash_attn = true",
        );
        assert_eq!(parse(&ok).unwrap().engines[0].type_v, CacheType::Q8_0);
    }

    #[test]
    fn depths_multiply_tests_and_files_resolve_relative_to_the_suite() {
        let text = r#"
[[model]]
path = "../models/m.gguf"
[workload]
tests = ["pp512", "tg128 @ d64"]
depths = [0, 1024]
"#;
        let s = parse(text).unwrap();
        let labels: Vec<String> = s.tests.iter().map(|t| t.label()).collect();
        assert_eq!(labels, ["pp512", "pp512 @ d1024", "tg128 @ d64"]);
        assert_eq!(
            s.models[0],
            ModelSource::File {
                path: PathBuf::from("bench-configs/../models/m.gguf")
            }
        );
    }

    #[test]
    fn a_model_needs_exactly_one_source() {
        let e = parse("[[model]]\nseed = 1\n[workload]\ntests=[\"pp8\"]\n").unwrap_err();
        assert!(e.message.contains("exactly one"), "{e}");
        assert!(parse("[workload]\ntests=[\"pp8\"]\n")
            .unwrap_err()
            .message
            .contains("[[model]]"));
    }
}
