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
use crate::bench::{AutoRepetitions, CacheType, EngineParams, TestSpec};
use crate::offload::{Offload, MAX_DEVICES};
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
    /// `none`, `layer` (the default), `row`, `tensor`.
    pub split_mode: Option<Spanned<OneOrMany<String>>>,
    pub main_gpu: Option<Spanned<OneOrMany<i64>>>,
    /// Shares per device, `"3/1"`.
    pub tensor_split: Option<Spanned<OneOrMany<String>>>,
    /// llama.cpp's `-ot`: `"PATTERN=BUFFER;…"`, `""` for none.
    pub override_tensor: Option<Spanned<OneOrMany<String>>>,
    pub n_cpu_moe: Option<Spanned<OneOrMany<i64>>>,
}

/// `[workload]`: which tests, how often.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawWorkload {
    pub tests: Spanned<Vec<Spanned<String>>>,
    pub depths: Option<Spanned<Vec<Spanned<i64>>>>,
    pub repetitions: Option<Spanned<RepetitionsValue>>,
    pub warmup: Option<bool>,
    pub timeout_s: Option<Spanned<f64>>,
    pub memory_limit_mb: Option<Spanned<i64>>,
}

/// `repetitions = 5` or `repetitions = "auto"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum RepetitionsValue {
    Count(i64),
    Word(String),
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
    pub offload: Offload,
}

/// llama-bench's defaults: what a suite's `[engine]` takes for a key it leaves out, and what
/// llama-bench's markdown table leaves out of its columns.
impl Default for EngineAxes {
    fn default() -> Self {
        EngineAxes {
            n_threads: None,
            n_batch: 2048,
            n_ubatch: 512,
            n_gpu_layers: 99,
            flash_attn: false,
            type_k: CacheType::F16,
            type_v: CacheType::F16,
            use_mmap: true,
            offload: Offload::default(),
        }
    }
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
            offload,
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
            offload,
            unset: Default::default(),
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
    /// Timed repetitions per cell; with `auto_repetitions`, what backends that cannot
    /// stop on their own (llama-bench, servers) run.
    pub repetitions: u32,
    /// `repetitions = "auto"`: the embedded engine repeats until the mean is known
    /// (see [`AutoRepetitions`]).
    pub auto_repetitions: Option<AutoRepetitions>,
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
                // A backend that takes no engine axes runs once, and applies no offload
                // setting: its cells are not stored with one.
                let first = [EngineAxes {
                    offload: Offload::default(),
                    ..self.engines[0]
                }];
                let engines = if backend.takes_engine_axes() {
                    &self.engines[..]
                } else {
                    &first[..]
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
            // A type error points at the value; name the key written before it.
            let key = line.and_then(|l| key_on_line(text, l));
            let message = match key {
                Some(k) if !e.message().contains(&format!("`{k}`")) => {
                    format!("key `{k}`: {}", e.message())
                }
                _ => e.message().to_string(),
            };
            SuiteError {
                file: file.to_path_buf(),
                line,
                message,
            }
        })?;
        ctx.validate(raw)
    }
}

/// The key of a `key = value` line (1-based `line` of `text`), if the line is one.
fn key_on_line(text: &str, line: usize) -> Option<&str> {
    let l = text.lines().nth(line.checked_sub(1)?)?;
    let (key, _) = l.split_once('=')?;
    let key = key.trim().trim_matches('"');
    let plain = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    plain.then_some(key)
}

/// The 1-based line of byte `offset` in `text` (a TOML span's start, for error messages).
pub(crate) fn line_at(text: &str, offset: usize) -> usize {
    let end = offset.min(text.len());
    text[..end].bytes().filter(|b| *b == b'\n').count() + 1
}

mod validate;

use validate::*;

#[cfg(test)]
mod tests;
